"""LIMR data selection: keep the problems whose learning curve follows the run's average.

``python -m r1jax.select WORKDIR --threshold 0.6 --out subset.jsonl`` reads the per-problem
rewards an RL run logged (``WORKDIR/problem_rewards.jsonl``: step, problem id and the group's
accuracy, written by `r1jax.train`) and scores each problem as LIMR does (Li et al.,
"LIMR: Less is More for RL Scaling", arXiv:2502.11886 §2.2; repo GAIR-NLP/LIMR
``lim/lim_selection.py``): with ``r_i^k`` problem ``i``'s accuracy in epoch ``k`` and
``r̄^k = mean_i r_i^k`` the run's average curve,

    s_i = 1 − Σ_k (r_i^k − r̄^k)² / Σ_k (1 − r̄^k)²

and keeps the problems with ``s_i ≥ threshold`` (LIMR's script: 0.6). An epoch is either the
k-th time a problem was seen (the default: each problem is drawn once per pass over the data)
or ``--steps-per-epoch`` consecutive steps (LIMR: 8); a problem seen several times in one epoch
takes its mean, and a missing epoch takes the next epoch's value (the last ones the last seen).

The selected problems are written as JSONL rows that a run reads with ``data.source=jsonl
data.path=subset.jsonl`` (the run's ``data.prompt_field`` / ``data.answer_field`` and an id
field, ``data.id_field`` or ``id``), taken from the run's own data file (``WORKDIR/config.json``
names it).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from collections.abc import Sequence

import numpy as np

from r1jax.data import sources

PROBLEM_REWARDS_FILE = "problem_rewards.jsonl"


def read_problem_rewards(path: str) -> list[dict]:
    """The records of a ``problem_rewards.jsonl``; a step logged twice (a resumed run) keeps its
    last record per problem."""
    latest: dict[tuple[int, str], dict] = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                latest[(int(record["step"]), str(record["problem_id"]))] = record
    return [latest[key] for key in sorted(latest)]


def epoch_curves(records: list[dict], *, steps_per_epoch: int = 0) -> dict[str, np.ndarray]:
    """Each problem's ``[K]`` accuracy per epoch (missing epochs back-filled from the next).

    Args:
      records: ``{"step", "problem_id", "reward"}`` dicts.
      steps_per_epoch: an epoch is this many steps (``(step − 1) // steps_per_epoch``); 0 = the
        k-th occurrence of a problem is its epoch k.

    Returns:
      problem id -> ``[K]`` float array, ``K`` the run's number of epochs.
    """
    seen: dict[str, dict[int, list[float]]] = collections.defaultdict(
        lambda: collections.defaultdict(list)
    )
    for record in sorted(records, key=lambda r: r["step"]):
        problem = str(record["problem_id"])
        if steps_per_epoch > 0:
            epoch = (int(record["step"]) - 1) // steps_per_epoch
        else:
            epoch = sum(len(v) for v in seen[problem].values())
        seen[problem][epoch].append(float(record["reward"]))
    epochs = 1 + max((max(by_epoch) for by_epoch in seen.values()), default=-1)
    curves = {}
    for problem, by_epoch in seen.items():
        curve = np.full(epochs, np.nan)
        for epoch, values in by_epoch.items():
            curve[epoch] = np.mean(values)
        following = np.nan
        for k in range(epochs - 1, -1, -1):  # back-fill from the next epoch
            following = curve[k] = curve[k] if not np.isnan(curve[k]) else following
        last = np.nan
        for k in range(epochs):  # epochs after the last one seen keep the last value
            last = curve[k] = curve[k] if not np.isnan(curve[k]) else last
        curves[problem] = curve
    return curves


def limr_scores(curves: dict[str, np.ndarray]) -> dict[str, float]:
    """LIMR's alignment score ``s_i = 1 − Σ_k (r_i^k − r̄^k)² / Σ_k (1 − r̄^k)²``.

    Example:
      >>> scores = limr_scores({"a": np.array([0.0, 1.0]), "b": np.array([0.0, 0.0])})
      >>> {k: round(v, 4) for k, v in scores.items()}  # r̄ = (0, 0.5)
      {'a': 0.8, 'b': 0.8}
    """
    ids = list(curves)
    table = np.stack([curves[i] for i in ids])  # [N, K]
    average = table.mean(axis=0)  # [K]
    scale = np.sum(np.square(1.0 - average))
    if scale == 0:  # every problem always solved: every curve is the average
        return dict.fromkeys(ids, 1.0)
    distance = np.sum(np.square(table - average), axis=1)  # [N]
    return {i: float(1.0 - d / scale) for i, d in zip(ids, distance)}


def _problem_id(problem: dict, index: int) -> str:
    """The id `r1jax.data.prompts` gives a problem (its ``"id"``, else ``record-<index>``)."""
    return str(problem["id"]) if problem.get("id") is not None else f"record-{index}"


def write_subset(config: dict, selected: set[str], out: str) -> int:
    """Writes the run's data rows whose ids are in ``selected`` to ``out``; returns the count."""
    data = config["data"]
    if data["source"] not in ("jsonl", "parquet"):
        raise ValueError(
            f"the run read data.source={data['source']!r}; LIMR selection writes rows of a "
            "JSONL or Parquet data file"
        )
    problems = sources.problems_from_config(data)
    id_key = data.get("id_field") or "id"
    count = 0
    with open(out, "w") as f:
        for index in range(len(problems)):
            problem = problems[index]
            problem_id = _problem_id(problem, index)
            if problem_id not in selected:
                continue
            row = {k: v for k, v in problem.items() if k not in ("question", "answer", "id")}
            row[data["prompt_field"]] = problem["question"]
            row[data["answer_field"]] = problem["answer"]
            row[id_key] = problem_id
            f.write(json.dumps(row) + "\n")
            count += 1
    return count


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m r1jax.select", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("workdir", help="an RL run's workdir (problem_rewards.jsonl, config.json)")
    parser.add_argument("--threshold", type=float, default=0.6, help="keep s_i >= this (LIMR 0.6)")
    parser.add_argument("--out", required=True, help="JSONL file of the selected problems")
    parser.add_argument(
        "--steps-per-epoch", type=int, default=0, help="0: a problem's k-th visit is epoch k"
    )
    parser.add_argument("--scores", default="", help="also write every problem's score (JSONL)")
    args = parser.parse_args(argv)
    records = read_problem_rewards(os.path.join(args.workdir, PROBLEM_REWARDS_FILE))
    curves = epoch_curves(records, steps_per_epoch=args.steps_per_epoch)
    scores = limr_scores(curves)
    # 1e-9: a score equal to the threshold on paper stays selected after float rounding.
    selected = {i for i, score in scores.items() if score >= args.threshold - 1e-9}
    with open(os.path.join(args.workdir, "config.json")) as f:
        config = json.load(f)
    written = write_subset(config, selected, args.out)
    if args.scores:
        with open(args.scores, "w") as f:
            for problem_id, score in sorted(scores.items()):
                f.write(json.dumps({"problem_id": problem_id, "score": score}) + "\n")
    summary = {
        "problems": len(scores),
        "epochs": len(next(iter(curves.values()))) if curves else 0,
        "selected": written,
        "threshold": args.threshold,
        "out": args.out,
    }
    print(f"r1jax.select: {json.dumps(summary)}", file=sys.stderr)
    return summary


if __name__ == "__main__":
    main()
