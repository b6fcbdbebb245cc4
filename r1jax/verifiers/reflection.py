"""Self-reflection keyword metrics (oat-zero, sail-sg/oat-zero; Dr. GRPO arXiv:2503.20783 §2).

What lives here: the keyword lists of oat-zero (11), understand-r1-zero (15), ORZ's
case-sensitive regexes and DeepSeek-R1's reflective terms, a per-text counter, and
``reflection_stats``, which groups responses by (reflecting) x (correct) as oat-zero's
superficial-self-reflection analysis does. The LLM cross-check of understand-r1-zero (§7.2) is
not here.
"""

import re
from collections.abc import Sequence

OAT_ZERO_KEYWORDS = (
    "recheck", "rethink", "reevaluate", "re-evaluate", "reevaluation", "re-examine", "reexamine",
    "try again", "check again", "think again", "go over the steps",
)  # fmt: skip
"""oat-zero ``analysis/eval_self_reflect.py``: case-insensitive substrings."""

UNDERSTAND_R1_ZERO_KEYWORDS = (
    "recheck", "rethink", "reassess", "reevaluate", "re-evaluate", "reevaluation", "re-examine",
    "reexamine", "reconsider", "reanalyze", "double-check", "check again", "think again",
    "verify again", "go over the steps",
)  # fmt: skip
"""understand-r1-zero ``analysis/keyword_count.py``: case-insensitive substrings."""

ORZ_PATTERNS = (r"wait,", r"recheck[,\s]", r"retry", r"alternatively,", r"however,")
"""ORZ ``check_reflection_pattern``: case-sensitive regexes, every match counted."""

R1_TERMS = (
    "wait",
    "mistake",
    "however",
    "but",
    "retry",
    "error",
    "verify",
    "wrong",
    "evaluate",
    "check",
)
"""DeepSeek-R1 (Nature, Extended Data Fig. 1) reflective terms. r1jax counts them as whole words
(case-insensitive), since as substrings ``but`` and ``error`` hit ``distribute`` and ``terror``."""

KEYWORD_SETS = ("default", "oat_zero", "understand_r1_zero", "orz", "r1")


def reflection_count(text: str, *, keywords: str | Sequence[str] = "default") -> int:
    """How many reflection markers ``text`` contains.

    Args:
      text: one response.
      keywords: ``"default"`` (understand-r1-zero's 15 substrings plus ORZ's regexes),
        ``"oat_zero"``, ``"understand_r1_zero"``, ``"orz"``, ``"r1"``, or a sequence of
        case-insensitive substrings.

    Example:
      >>> reflection_count("wait, let me recheck it. However, ...", keywords="orz")  # case-sensitive
      2
      >>> reflection_count("Let me double-check and RETHINK.")
      2
    """
    if isinstance(keywords, str):
        if keywords not in KEYWORD_SETS:
            raise ValueError(f"keywords must be one of {KEYWORD_SETS} or a list, got {keywords!r}")
        if keywords == "orz":
            return sum(len(re.findall(pattern, text)) for pattern in ORZ_PATTERNS)
        if keywords == "r1":
            lowered = text.lower()
            return sum(len(re.findall(rf"\b{term}\b", lowered)) for term in R1_TERMS)
        if keywords == "default":
            return reflection_count(text, keywords=UNDERSTAND_R1_ZERO_KEYWORDS) + reflection_count(
                text, keywords="orz"
            )
        keywords = OAT_ZERO_KEYWORDS if keywords == "oat_zero" else UNDERSTAND_R1_ZERO_KEYWORDS
    lowered = text.lower()
    return sum(lowered.count(keyword.lower()) for keyword in keywords)


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def reflection_stats(
    texts: Sequence[str],
    correct: Sequence[bool],
    *,
    keywords: str | Sequence[str] = "default",
    lengths: Sequence[float] | None = None,
    group_size: int | None = None,
) -> dict:
    """Reflection metrics over ``B`` responses (oat-zero's grouping).

    Args:
      texts: ``[B]`` responses.
      correct: ``[B]`` correctness of each response.
      keywords: see ``reflection_count``.
      lengths: ``[B]`` lengths to average (e.g. token counts); default character counts.
      group_size: ``G``; when given, ``reflection_at_k`` is the fraction of prompt groups
        (consecutive runs of ``G``) with at least one reflecting response.

    Returns:
      a dict of floats: ``reflect_rate``, ``reflect_count_mean``, ``ssr_rate``
      (P(wrong | reflecting), superficial self-reflection), ``acc_given_reflect``,
      ``acc_given_no_reflect``, ``mean_length_{reflect,no_reflect}_{correct,wrong}``, the four
      group counts ``count_...``, and ``reflection_at_k`` when ``group_size`` is given.
      Conditional rates and means over an empty group are NaN.

    Example:
      >>> stats = reflection_stats(["wait, no", "ok", "recheck: fine"], [False, True, True])
      >>> stats["reflect_rate"], stats["ssr_rate"], stats["acc_given_no_reflect"]
      (0.6666666666666666, 0.5, 1.0)
    """
    if len(texts) != len(correct):
        raise ValueError(f"texts and correct differ in length: {len(texts)} != {len(correct)}")
    if lengths is None:
        lengths = [len(text) for text in texts]
    counts = [reflection_count(text, keywords=keywords) for text in texts]
    reflects = [count > 0 for count in counts]
    groups = {
        (reflect, bool(is_correct)): [
            length
            for length, r, c in zip(lengths, reflects, correct)
            if r == reflect and bool(c) == is_correct
        ]
        for reflect in (True, False)
        for is_correct in (True, False)
    }
    n_reflect = sum(reflects)
    n_other = len(texts) - n_reflect
    stats = {
        "reflect_rate": n_reflect / len(texts) if texts else float("nan"),
        "reflect_count_mean": _mean(counts),
        "ssr_rate": len(groups[True, False]) / n_reflect if n_reflect else float("nan"),
        "acc_given_reflect": len(groups[True, True]) / n_reflect if n_reflect else float("nan"),
        "acc_given_no_reflect": len(groups[False, True]) / n_other if n_other else float("nan"),
    }
    for (reflect, is_correct), values in groups.items():
        name = f"{'reflect' if reflect else 'no_reflect'}_{'correct' if is_correct else 'wrong'}"
        stats[f"mean_length_{name}"] = _mean(values)
        stats[f"count_{name}"] = float(len(values))
    if group_size is not None:
        if group_size < 1 or len(texts) % group_size:
            raise ValueError(f"{len(texts)} responses do not split into groups of {group_size}")
        n_groups = len(texts) // group_size
        hits = sum(any(reflects[g * group_size : (g + 1) * group_size]) for g in range(n_groups))
        stats["reflection_at_k"] = hits / n_groups if n_groups else float("nan")
    return stats
