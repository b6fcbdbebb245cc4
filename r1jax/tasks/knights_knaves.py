"""Knights and Knaves (Logic-RL, with mem-kk-logic's generator).

What lives here: the statement sampler and brute-force solver (Logic-RL arXiv:2502.14768 §2; the K&K puzzles of Xie et al., arXiv:2410.23123), the
natural-language rendering with mem-kk-logic's 51 common names and 18 saying templates
(§5.3.4), the prompt templates (§1.4), and the Logic-RL reward (§5.3.5-5.3.6).

A statement is a nested list: ``["telling-truth", j]`` ("j is a knight"), ``["lying", j]``,
``["not", s]``, ``["and", s1, s2]``, ``["or", s1, s2]``, ``["->", s1, s2]``,
``["<=>", s1, s2]``. A problem is ``{"n_people", "names", "statements", "solution"
(list of bool, True = knight), "quiz", "solution_text", "solution_text_format"}``; only
``solution_text_format`` (``"(1) Name is a knight\\n(2) ..."``, Logic-RL's ground truth) is
needed to verify, so Logic-RL's own records verify too.

Scoring (Logic-RL ``kk.py``): the text checked is ``PREFILL + completion`` (the prompt's
``<think>`` counts). Format: ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` each exactly
once, first positions in that order: +1, else -1. Answer (only when the format passes and an
answer tag exists): the last ``<answer>(.*?)</answer>`` (DOTALL); the number of ``knight`` plus
``knave`` substrings in its lower-cased text must equal the number of people, and each name must
match ``\\bNAME\\b\\s+is\\s+a\\s+\\b(knight|knave)\\b`` (case-insensitive), else unparseable (-2);
all right +2, any wrong -1.5; missing answer or failed format -2. Totals: 3, -0.5, -1, -3.
"""

import ast
import itertools
import json
import re

import numpy as np

from r1jax.tasks import format as format_lib
from r1jax.tasks import verdict as verdict_lib
from r1jax.tasks.verdict import Verdict

COMMON_NAMES = (
    "Emma", "Liam", "Olivia", "Noah", "Ava", "Ethan", "Sophia", "Mason", "Isabella", "William",
    "Mia", "James", "Charlotte", "Benjamin", "Amelia", "Lucas", "Harper", "Henry", "Evelyn",
    "Alexander", "Abigail", "Michael", "Emily", "Daniel", "Elizabeth", "Jacob", "Sofia", "Logan",
    "Avery", "Jackson", "Ella", "Sebastian", "Scarlett", "Jack", "Grace", "Aiden", "Chloe", "Owen",
    "Victoria", "Samuel", "Riley", "Matthew", "Aria", "Joseph", "Lily", "Luke", "Aurora", "David",
    "Zoey", "Oliver", "Penelope",
)  # fmt: skip
"""mem-kk-logic's ``COMMON_NAMES`` (51)."""

SAYING_TEMPLATES = (
    "{name} said that {content}.",
    "{name} told you that {content}.",
    '{name} said, "{content}."',
    '{name} stated, "{content}".',
    'According to {name}, "{content}".',
    'In {name}\'s words: "{content}".',
    '{name} remarked, "{content}".',
    '"{content}," {name} declared.',
    '{name} was heard saying, "{content}".',
    "{name} expressed that {content}.",
    '"{content}" - {name}.',
    'As {name} put it, "{content}".',
    '{name} asserted: "{content}".',
    '"{content}," {name} mentioned.',
    '{name} commented, "{content}".',
    'In a statement by {name}: "{content}".',
    '{name} noted, "{content}".',
    '"{content}," {name} claimed.',
)
"""mem-kk-logic's ``TEMPLATES`` (18)."""

_PREFIX = (
    "A very special island is inhabited only by knights and knaves. Knights always tell the "
    "truth, and knaves always lie. "
)
_POSTFIX = "So who is a knight and who is a knave?"

TEMPLATES = {
    "base": (
        "The user asks a question, and the Assistant solves it.The assistant first thinks about "
        "the reasoning process in the mind and then provides the user with the final answer. The "
        "reasoning process and answer are enclosed within <think> </think> and <answer> </answer> "
        "tags, respectively, i.e., <think> reasoning process here </think><answer> answer here "
        "</answer>. Now the user asks you to solve a logical reasoning problem. After thinking, "
        "when you finally reach a conclusion, clearly state the identity of each character within "
        "<answer> </answer> tags. List the identity of each person one by one, for example, "
        "<answer> (1) Zoey is a knight\n(2) Oliver is a knight\n(3)... </answer>.\n\n"
        "User:{quiz}\nAssistant: <think>"
    ),
    "qwen_instruct": (
        "<|im_start|>system\nYou are a helpful assistant. The assistant first thinks about the "
        "reasoning process in the mind and then provides the user with the answer. The reasoning "
        "process and answer are enclosed within <think> </think> and<answer> </answer> tags, "
        "respectively, i.e., <think> reasoning process here </think><answer> answer here "
        "</answer>.  Now the user asks you to solve a logical reasoning problem. After thinking, "
        "when you finally reach a conclusion, clearly state the identity of each character within "
        "<answer> </answer> tags. i.e., <answer> (1) Zoey is a knight\n(2) ... </answer>.\n"
        "<|im_end|>\n<|im_start|>user\n{quiz}\n<|im_end|>\n<|im_start|>assistant\n<think>"
    ),
}
"""Prompt templates by name (Logic-RL's, byte for byte)."""

PREFILL = "<think>"
"""The ``<think>`` every template ends with; the format check prepends it to the completion."""

FORMAT_REWARD = 1.0
CORRECT_REWARD = 2.0
WRONG_REWARD = -1.5
UNPARSEABLE_REWARD = -2.0

_LEAVES = ("telling-truth", "lying")


def _sample_statement(rng: np.random.Generator, person: int, n_people: int, depth: int, width: int):
    """mem-kk-logic ``KKProblemSampler._sample_statement``, statements as lists."""
    dice = int(rng.integers(0, 6))
    if depth == 1 or dice == 0:
        while True:
            kind = str(rng.choice(list(_LEAVES)))
            target = int(rng.integers(0, n_people))
            if not (kind == "lying" and target == person):  # "I am a knave" is contradictory
                return [kind, target]
    if dice == 1:
        return ["not", _sample_statement(rng, person, n_people, depth - 1, width)]
    if dice in (2, 3):
        count = int(rng.integers(2, width + 1))
        operator = ("and", "or")[dice - 2]
    else:
        count = 2
        operator = ("->", "<=>")[dice - 4]
    parts = []
    while len(parts) < count:
        part = _sample_statement(rng, person, n_people, depth - 1, width)
        if part not in parts:
            parts.append(part)
    return [operator, *parts]


def holds(statement, assignment) -> bool:
    """Whether ``statement`` is true when ``assignment[i]`` says if person ``i`` is a knight.

    Example:
      >>> holds(["->", ["telling-truth", 0], ["lying", 1]], [True, False])
      True
    """
    kind = statement[0]
    if kind == "telling-truth":
        return bool(assignment[statement[1]])
    if kind == "lying":
        return not assignment[statement[1]]
    if kind == "not":
        return not holds(statement[1], assignment)
    if kind == "and":
        return all(holds(part, assignment) for part in statement[1:])
    if kind == "or":
        return any(holds(part, assignment) for part in statement[1:])
    if kind == "->":
        return (not holds(statement[1], assignment)) or holds(statement[2], assignment)
    if kind == "<=>":
        return holds(statement[1], assignment) == holds(statement[2], assignment)
    raise ValueError(f"unknown knights-and-knaves statement {statement!r}")


def solutions(statements) -> list[tuple[bool, ...]]:
    """Every consistent assignment: knights' statements hold, knaves' statements fail.

    Example:
      >>> solutions([["lying", 1], ["and", ["telling-truth", 0], ["telling-truth", 1]]])
      [(True, False)]
    """
    return [
        assignment
        for assignment in itertools.product((True, False), repeat=len(statements))
        if all(assignment[i] == holds(s, assignment) for i, s in enumerate(statements))
    ]


def _leaf_text(names, statement, negated: bool = False) -> str:
    if statement[0] not in _LEAVES:
        raise ValueError(f"only depth-2 statements can be rendered, got {statement!r}")
    role = "a knight" if statement[0] == "telling-truth" else "a knave"
    return f"{names[statement[1]]} is {'not ' if negated else ''}{role}"


def render_statement(names, statement) -> str:
    """mem-kk-logic ``format_statement``: a statement of depth at most 2 as English.

    Example:
      >>> render_statement(["Emma", "Liam"], ["<=>", ["telling-truth", 0], ["lying", 1]])
      'Emma is a knight if and only if Liam is a knave'
    """
    kind = statement[0]
    if kind == "not":
        return _leaf_text(names, statement[1], negated=True)
    if kind in ("and", "or"):
        return f" {kind} ".join(_leaf_text(names, part) for part in statement[1:])
    if kind == "->":
        return f"If {_leaf_text(names, statement[1])} then {_leaf_text(names, statement[2])}"
    if kind == "<=>":
        return f"{_leaf_text(names, statement[1])} if and only if {_leaf_text(names, statement[2])}"
    return _leaf_text(names, statement)


def solution_text_format(names, solution) -> str:
    """Logic-RL's ground-truth text: ``"(1) Emma is a knight\\n(2) Liam is a knave"``."""
    return "\n".join(
        f"({i + 1}) {name} is {'a knight' if knight else 'a knave'}"
        for i, (name, knight) in enumerate(zip(names, solution))
    )


def problem_key(problem: dict) -> str:
    """What makes two puzzles the same (`r1jax.data.partition`): the statements' structure,
    whatever the names.

    Example:
      >>> problem_key({"n_people": 2, "statements": [["lying", 1], ["telling-truth", 0]]})
      '[["lying", 1], ["telling-truth", 0]]'
    """
    return json.dumps(problem["statements"])


def generate(
    rng: np.random.Generator,
    *,
    n_people: int | tuple[int, ...] = (3, 4, 5, 6, 7),
    depth: int = 2,
    width: int = 2,
    max_tries: int = 1000,
) -> dict:
    """Draws a puzzle with exactly one solution and renders it as mem-kk-logic does.

    Statements are sampled per person (mem-kk-logic ``KKProblemSampler``) until the puzzle has
    a unique solution; then names (without replacement from ``COMMON_NAMES``) and one saying
    template per person are drawn from the same ``rng``. Deduplication across a data set is the
    caller's job (mem-kk-logic's sampler skips repeated statement tuples).

    Args:
      rng: the generator; the result is a function of its state.
      n_people: the number of people (2 to 8 in Logic-RL's evaluation, 3 to 7 in its training
        data), or a tuple to draw it from uniformly.
      depth: statement depth; the rendering supports 1 or 2.
      width: branches of ``and``/``or``; the rendering supports 2.
      max_tries: statement tuples drawn before giving up.

    Raises:
      RuntimeError: if no puzzle with a unique solution turns up within ``max_tries``.

    Example:
      >>> p = generate(np.random.default_rng(0), n_people=3)
      >>> solutions(p["statements"]) == [tuple(p["solution"])]
      True
    """
    choices = (n_people,) if isinstance(n_people, int) else tuple(n_people)
    if not choices or min(choices) < 1 or max(choices) > len(COMMON_NAMES):
        raise ValueError(f"n_people must be between 1 and {len(COMMON_NAMES)}, got {n_people!r}")
    if depth not in (1, 2) or width != 2:
        raise ValueError(f"only depth 1 or 2 and width 2 can be rendered, got {depth}, {width}")
    n = int(choices[int(rng.integers(len(choices)))])
    for _ in range(max_tries):
        statements = [_sample_statement(rng, i, n, depth, width) for i in range(n)]
        found = solutions(statements)
        if len(found) == 1:
            break
    else:
        raise RuntimeError(
            f"no knights-and-knaves puzzle with a unique solution in {max_tries} tries"
        )
    solution = [bool(x) for x in found[0]]
    names = [str(x) for x in rng.choice(list(COMMON_NAMES), size=n, replace=False)]
    text = _PREFIX + f"You meet {n} inhabitants: " + ", ".join(names[:-1])
    text += (", and " if n > 1 else "") + names[-1] + "."
    for i, statement in enumerate(statements):
        template = SAYING_TEMPLATES[int(rng.integers(len(SAYING_TEMPLATES)))]
        text += " " + template.format(name=names[i], content=render_statement(names, statement))
    text += " " + _POSTFIX
    roles = [
        f"{name} is {'a knight' if knight else 'a knave'}" for name, knight in zip(names, solution)
    ]
    return {
        "n_people": n,
        "names": names,
        "statements": statements,
        "solution": solution,
        "quiz": text,
        "solution_text": (", ".join(roles[:-1]) + ", and " + roles[-1] + ".")
        if n > 1
        else roles[0] + ".",
        "solution_text_format": solution_text_format(names, solution),
    }


def prompt(problem: dict, *, template: str = "base") -> str:
    """The prompt for ``problem`` with template ``"base"`` or ``"qwen_instruct"``."""
    if template not in TEMPLATES:
        raise ValueError(
            f"knights_knaves template must be one of {sorted(TEMPLATES)}, got {template!r}"
        )
    return TEMPLATES[template].format(quiz=problem["quiz"])


def user_message(problem: dict) -> str:
    """The bare puzzle text, for prompts built with a tokenizer's chat template."""
    return problem["quiz"]


# ------------------------------------------------------------------ reference reasoning

REFERENCE_METHODS = ("search", "ordered", "guess", "verify", "enumerate")
_REFERENCE_HEAD = (
    "Let's think step by step, by considering whether each person is lying and if that leads "
    "to contradiction."
)


def _role(is_knight: bool) -> str:
    return "a knight" if is_knight else "a knave"


def _join(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _mentioned(statement) -> list[int]:
    """People a statement names, in order of first mention."""
    if statement[0] in _LEAVES:
        return [int(statement[1])]
    people = []
    for part in statement[1:]:
        people += [p for p in _mentioned(part) if p not in people]
    return people


def _can_hold(statement, wanted: bool, assignment) -> bool:
    """Whether some completion of ``assignment``'s ``None`` entries makes ``statement == wanted``."""
    open_people = [i for i, x in enumerate(assignment) if x is None]
    for values in itertools.product((True, False), repeat=len(open_people)):
        full = list(assignment)
        for person, value in zip(open_people, values):
            full[person] = value
        if holds(statement, full) == wanted:
            return True
    return False


def _first_conflict(statements, assignment) -> int | None:
    """The first assigned person whose statement cannot take the truth value their role needs.

    mem-kk-logic ``can_be_falsified_v2``: each assigned person is checked on their own against
    every completion of the unassigned people.
    """
    for person, is_knight in enumerate(assignment):
        if is_knight is not None and not _can_hold(statements[person], is_knight, assignment):
            return person
    return None


def _reasoning_steps(statements, names, order_rng: np.random.Generator | None) -> list[str]:
    """Assume-and-check backtracking over people, as text lines; ends at the unique solution.

    People are considered in order (the first drawn by ``order_rng`` when given, else person
    1); after a consistent assumption the people its speaker mentions come next (mem-kk-logic
    ``generate_chain_of_thoughts`` with ``dynamic_person_order``). Each person is first assumed
    a knight, or, with ``order_rng``, a knight or a knave first at random.
    """
    n = len(statements)
    order = list(range(n))
    first_guess = [True] * n
    if order_rng is not None:
        start = int(order_rng.integers(n))
        order = [start] + [p for p in order if p != start]
        first_guess = [bool(order_rng.integers(2)) for _ in range(n)]
    assignment: list[bool | None] = [None] * n
    remaining = {p: [not first_guess[p], first_guess[p]] for p in range(n)}  # pop() = first
    lines, cursor = [], 0

    def claim(person):
        text = render_statement(names, statements[person])
        return "if" + text[2:] if text.startswith("If ") else text

    while cursor < n:
        person = order[cursor]
        if not remaining[person]:
            exhausted = []
            while cursor >= 0 and not remaining[order[cursor]]:
                remaining[order[cursor]] = [
                    not first_guess[order[cursor]],
                    first_guess[order[cursor]],
                ]
                assignment[order[cursor]] = None
                exhausted.append(names[order[cursor]])
                cursor -= 1
            if cursor < 0:  # cannot happen for a puzzle with a solution
                raise ValueError("knights_knaves puzzle has no consistent assignment")
            lines.append(
                f"Both roles fail for {_join(exhausted)}, so the assumption about "
                f"{names[order[cursor]]} must be wrong; let us go back to {names[order[cursor]]}."
            )
            continue
        is_knight = remaining[person].pop()
        assignment[person] = is_knight
        conflict = _first_conflict(statements, assignment)
        if conflict is None:
            truth = "true" if is_knight else "false"
            lines.append(
                f"Assume {names[person]} is {_role(is_knight)}. Then {names[person]}'s claim "
                f"that {claim(person)} must be {truth}, and no contradiction is found so far."
            )
            cursor += 1
            later = order[cursor:]
            mentioned = [p for p in _mentioned(statements[person]) if p in later]
            order = order[:cursor] + mentioned + [p for p in later if p not in mentioned]
            continue
        needed = "true" if assignment[conflict] else "false"
        if conflict == person:
            whose = f"Then {names[person]}'s own"
        else:
            role = _role(assignment[conflict])
            whose = f"Then, since {names[conflict]} is {role}, {names[conflict]}'s"
        known = [
            f"{names[p]} is {_role(assignment[p])}"
            for p in _mentioned(statements[conflict])
            if assignment[p] is not None and p != conflict
        ]
        given = f" given that {_join(known)}" if known else ""
        lines.append(
            f"Assume {names[person]} is {_role(is_knight)}. {whose} claim that "
            f"{claim(conflict)} would have to be {needed}, but it cannot be{given}. "
            f"That is a contradiction, so {names[person]} is not {_role(is_knight)}."
        )
        assignment[person] = None
    return lines


def _short_leaf(names, statement) -> str:
    return f"{names[statement[1]]} {'knight' if statement[0] == 'telling-truth' else 'knave'}"


def short_claim(names, statement) -> str:
    """A depth-2 statement in the ``enumerate`` trace's short form: ``Liam knave``, ``not Emma
    knight``, ``Emma knight and Liam knave``, ``if Emma knight then Liam knave``, ``Emma knight
    iff Liam knave``.
    """
    kind = statement[0]
    if kind == "not":
        return "not " + _short_leaf(names, statement[1])
    if kind in ("and", "or"):
        return f" {kind} ".join(_short_leaf(names, part) for part in statement[1:])
    if kind == "->":
        return f"if {_short_leaf(names, statement[1])} then {_short_leaf(names, statement[2])}"
    if kind == "<=>":
        return f"{_short_leaf(names, statement[1])} iff {_short_leaf(names, statement[2])}"
    if kind not in _LEAVES:
        raise ValueError(f"only depth-2 statements can be written short, got {statement!r}")
    return _short_leaf(names, statement)


def _leaves(statement) -> list:
    """The leaf statements (``["lying", i]`` / ``["telling-truth", i]``), left to right."""
    return (
        [statement] if statement[0] in _LEAVES else [x for p in statement[1:] for x in _leaves(p)]
    )


def _enumeration_lines(statements, names) -> list[str]:
    """``enumerate`` lines: the claims in short form, then every assignment in order (knights
    first) checked person by person up to the first claim that does not fit, until one fits."""
    lines = [". ".join(f"{n}: {short_claim(names, s)}" for n, s in zip(names, statements)) + "."]
    for assignment in itertools.product((True, False), repeat=len(statements)):
        role = {n: "knight" if k else "knave" for n, k in zip(names, assignment)}
        checks = []
        for person, statement in enumerate(statements):
            looked_up = ", ".join(
                f"{names[leaf[1]]} {role[names[leaf[1]]]} "
                + ("yes" if holds(leaf, assignment) else "no")
                for leaf in _leaves(statement)
            )
            truth = holds(statement, assignment)
            fits = truth == assignment[person]
            checks.append(
                f"{names[person]} {role[names[person]]} says {short_claim(names, statement)}: "
                f"{looked_up}, {'true' if truth else 'false'}, {'fits' if fits else 'fails'}."
            )
            if not fits:
                break
        head = ", ".join(f"{n} {role[n]}" for n in names) + "."
        lines.append(" ".join([head, *checks]))
        if fits:  # the loop ran through every person
            return lines
    raise ValueError("knights_knaves puzzle has no consistent assignment")


def _claim_text(names, statement) -> str:
    text = render_statement(names, statement)
    return "if" + text[2:] if text.startswith("If ") else text


def _assignment_text(names, assignment) -> str:
    return ", ".join(f"{name} is {_role(k)}" for name, k in zip(names, assignment))


def _check_steps(statements, names, assignment) -> tuple[list[str], bool]:
    """Each person's claim checked against ``assignment`` in order, up to the first that does
    not fit (a knight's claim false or a knave's true); whether all fit."""
    steps = []
    for person, statement in enumerate(statements):
        needed, actual = bool(assignment[person]), holds(statement, assignment)
        steps.append(
            f"{names[person]} is {_role(needed)}, so the claim that "
            f"{_claim_text(names, statement)} must be {'true' if needed else 'false'}, "
            f"and it is {'true' if actual else 'false'}"
        )
        if needed != actual:
            return steps, False
    return steps, True


def _stated_and_checked(statements, names, solution, rng, max_wrong: int, check: bool):
    """``guess`` / ``verify`` lines: assignments stated (wrong ones first, each checked and
    found wrong, when ``check``), then the solution, checked when ``check``."""
    lines = []
    if check:
        wrong = [
            a
            for a in itertools.product((True, False), repeat=len(statements))
            if a != tuple(solution)
        ]
        count = min(int(rng.integers(0, max_wrong + 1)), len(wrong))
        for index in rng.choice(len(wrong), size=count, replace=False):
            assignment = wrong[int(index)]
            steps, _ = _check_steps(statements, names, assignment)
            lines.append(f"The answer is: {_assignment_text(names, assignment)}.")
            lines.append(format_lib.CHECK_PHRASE + "; ".join(steps) + ". So this is wrong.")
    lines.append(f"The answer is: {_assignment_text(names, solution)}.")
    if check:
        steps, _ = _check_steps(statements, names, solution)
        lines.append(format_lib.CHECK_PHRASE + "; ".join(steps) + ". Everything fits.")
    return lines


def _thought_then_answer(lines: list[str], names, solution) -> str:
    """The reasoning lines after the prompt's ``<think>``, then ``</think>`` and the answer."""
    lines = [" " + lines[0], *lines[1:]]
    return "\n".join(
        [*lines, "</think>", f"<answer> {solution_text_format(names, solution)} </answer>"]
    )


def reference_completion(
    problem: dict, rng: np.random.Generator | None = None, *, method: str = "search"
) -> str:
    """An assume-and-check chain of thought after the prompt's ``<think>``, then the answer.

    The reasoning is the puzzle's own backtracking solver written out (mem-kk-logic
    ``data_prep/lib_kk.py`` ``generate_chain_of_thoughts`` / ``format_chain_of_thoughts``, the
    chains of thought of arXiv:2410.23123 §2, which Logic-RL's K&K data comes from): assume a
    person's role, check every assumed person's statement against it, back up on a
    contradiction. It ends with ``</think>`` and the answer in Logic-RL's format
    (``<answer> (1) Name is a knight\\n(2) ... </answer>``, arXiv:2502.14768 §2.1), which
    ``verify`` scores correct under either template.

    Args:
      problem: a puzzle with ``names`` and ``statements`` (a list, or Logic-RL's ``str`` of a
        tuple).
      rng: ``"search"`` draws the first person considered and, per person, whether a knight or
        a knave is assumed first; ``None`` uses a fixed seed. The text is a function of
        ``problem`` and the rng's state.
      method: ``"search"`` (as above), ``"ordered"`` (person 1 first, a knight assumed first:
        mem-kk-logic's order; ``rng`` unused), ``"guess"`` (the solution stated, no working)
        or ``"verify"`` (``"guess"`` followed by a check: after "Hmm, wait, let me check:"
        each person's claim is tested against the stated roles, up to the first that does
        not fit; up to two wrong assignments drawn by ``rng`` are stated, checked and found
        wrong before the solution is stated and checked). ``"guess"`` and ``"verify"`` differ
        only in the checks, so a warm start that mixes them has a self-verification rate to
        amplify. ``"enumerate"`` (a truth-table search written for small models: for 3 people
        252 tokens on average and 382 at the 90th percentile with a 1,024-merge tokenizer;
        ``rng`` unused): each claim once in a
        short form (`short_claim`), then each assignment in order, knights first, as ``Emma
        knight, Liam knave.`` followed by each person's check until the first that fails, the
        roles the claim names looked up in the assignment (``Emma knight says Liam knave: Liam
        knave yes, true, fits.``); it stops at the assignment where every claim fits.

    Raises:
      ValueError: an unknown method, or a problem without names and statements or with no
        consistent assignment.

    Example:
      >>> p = generate(np.random.default_rng(0), n_people=3)
      >>> verify(reference_completion(p, np.random.default_rng(1)), p).correct
      True
    """
    if method not in REFERENCE_METHODS:
        raise ValueError(f"knights_knaves reference method must be one of {REFERENCE_METHODS}")
    statements = problem.get("statements")
    if isinstance(statements, str):
        statements = ast.literal_eval(statements)  # Logic-RL stores str(tuple)
    names = problem.get("names")
    if not statements or not names or len(names) != len(statements):
        raise ValueError("a knights_knaves reference needs the problem's names and statements")
    names = [str(name) for name in names]
    found = solutions(statements)
    if len(found) != 1:
        raise ValueError(f"knights_knaves puzzle has {len(found)} solutions, not one")
    if method in ("guess", "verify"):
        rng = np.random.default_rng(0) if rng is None else rng
        lines = _stated_and_checked(
            statements, names, found[0], rng, max_wrong=2, check=method == "verify"
        )
        return _thought_then_answer(lines, names, found[0])
    if method == "enumerate":
        return _thought_then_answer(_enumeration_lines(statements, names), names, found[0])
    order_rng = None
    if method == "search":
        order_rng = np.random.default_rng(0) if rng is None else rng
    roles = ", ".join(f"{name} is {_role(k)}" for name, k in zip(names, found[0]))
    lines = [
        _REFERENCE_HEAD,
        *_reasoning_steps(statements, names, order_rng),
        f"This leads to a consistent assignment: {roles}.",
    ]
    return _thought_then_answer(lines, names, found[0])


def reference_roles(problem: dict) -> dict[str, str]:
    """The ground truth as ``{name: "knight" | "knave"}``, parsed as Logic-RL parses it.

    Uses ``solution_text_format`` when present (each line's first word and first role word),
    else ``names`` and ``solution``.
    """
    text = problem.get("solution_text_format")
    if text is None:
        text = solution_text_format(problem["names"], problem["solution"])
    roles = {}
    for line in text.split("\n"):
        match = re.search(r"\b([A-Za-z]+)\b.*?\b(knight|knave)\b", line.strip(), re.IGNORECASE)
        if match:
            roles[match.group(1)] = match.group(2).lower()
    if not roles:
        raise ValueError(f"knights_knaves problem has no parseable solution: {text!r}")
    return roles


def parse_answer(answer: str, names) -> dict[str, str] | None:
    """Logic-RL ``parse_model_answer``: each name's role, or ``None`` if unparseable.

    Example:
      >>> parse_answer("(1) Emma is a knight\\n(2) liam IS a  Knave", ["Emma", "Liam"])
      {'Emma': 'knight', 'Liam': 'knave'}
    """
    lowered = answer.lower()
    if lowered.count("knight") + lowered.count("knave") != len(names):
        return None
    roles = {}
    for name in names:
        pattern = rf"\b{re.escape(name)}\b\s+is\s+a\s+\b(knight|knave)\b"
        match = re.search(pattern, answer, re.IGNORECASE)
        if match is None:
            return None
        roles[name] = match.group(1).lower()
    return roles


def _format_ok(text: str) -> bool:
    """Logic-RL ``validate_response_structure``."""
    tags = (
        format_lib.THINK_OPEN,
        format_lib.THINK_CLOSE,
        format_lib.ANSWER_OPEN,
        format_lib.ANSWER_CLOSE,
    )
    if any(text.count(tag) != 1 for tag in tags):
        return False
    positions = [text.find(tag) for tag in tags]
    return positions == sorted(positions)


def verify(
    completion: str,
    problem: dict,
    *,
    template: str = "base",
    format_reward: float = FORMAT_REWARD,
    correct_reward: float = CORRECT_REWARD,
    wrong_reward: float = WRONG_REWARD,
    unparseable_reward: float = UNPARSEABLE_REWARD,
) -> Verdict:
    """Scores a knights-and-knaves completion with Logic-RL's reward.

    Args:
      completion: the decoded response after the prompt (which ends with ``PREFILL``).
      problem: a puzzle; ``solution_text_format`` or ``names`` + ``solution`` is used.
      template: the prompt template; with ``"qwen_instruct"`` a completion containing
        ``Assistant:`` is cut there, as Logic-RL's extraction does on prompt + response.
      format_reward: ``+format_reward`` if the format passes, ``-format_reward`` if not.
      correct_reward, wrong_reward, unparseable_reward: the answer part.

    Returns:
      a ``Verdict``: ``correct`` means the answer part earned ``correct_reward`` (so the format
      passed too), ``well_formed`` that the format passed, ``score`` the total.

    Example:
      >>> problem = {"solution_text_format": "(1) Emma is a knight\\n(2) Liam is a knave"}
      >>> verify("ok</think><answer>Emma is a knight, Liam is a knave</answer>", problem).score
      3.0
    """
    if not isinstance(completion, str):
        return Verdict.failure(verdict_lib.ERROR, f"completion is {type(completion).__name__}")
    truth = reference_roles(problem)
    if template not in TEMPLATES:
        raise ValueError(
            f"knights_knaves template must be one of {sorted(TEMPLATES)}, got {template!r}"
        )
    text = PREFILL + completion
    if template == "qwen_instruct" and "Assistant:" in completion:
        text = completion.split("Assistant:", 1)[1]
    format_ok = _format_ok(text)
    format_score = format_reward if format_ok else -abs(format_reward)
    answer = format_lib.last_answer_tag(text, dotall=True)
    answer = answer.strip() if answer is not None else None
    shown = verdict_lib.truncate(answer)
    if not format_ok:
        reason = verdict_lib.BAD_FORMAT
        answer_score, correct = unparseable_reward, False
    elif not answer:
        reason = verdict_lib.NO_ANSWER
        answer_score, correct = unparseable_reward, False
    else:
        predicted = parse_answer(answer, list(truth))
        if predicted is None:
            reason = verdict_lib.UNPARSEABLE
            answer_score, correct = unparseable_reward, False
        else:
            correct = predicted == truth
            reason = verdict_lib.CORRECT if correct else verdict_lib.WRONG
            answer_score = correct_reward if correct else wrong_reward
    return Verdict(
        correct=correct,
        well_formed=format_ok,
        reason=reason,
        score=float(format_score + answer_score),
        answer=shown,
    )
