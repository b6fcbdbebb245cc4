"""Algorithms side by side from one warm start: ``python -m r1jax.compare SPEC --workdir DIR``.

``SPEC`` is a Python file (see ``experiments/comparisons/algorithms.py``) with module-level

* ``EXPERIMENT``: the experiment every run uses (``"experiments/default.py"``, a bundled name
  such as ``"default"``, or ``FILE.py:preset``);
* ``STEPS``: RL steps of each run; ``SEEDS``: the seeds of each row (``--config.seed``; the data
  and the held-out problems stay those of the experiment);
* ``ALGORITHMS``: ``{row name: {dotted config key: value}}``, each row's overrides (at least
  ``objective.algorithm``).

The comparison runs, each a ``python -m r1jax.train`` subprocess with its own workdir:

1. ``DIR/warm_start``: the experiment with ``steps=0``: its warm start (``sft.*``) and one
   evaluation (``eval_after_sft``), unless ``--warm-start WORKDIR`` names an existing one;
2. ``DIR/<row>/seed<N>`` for every row and seed: ``model.init_from=DIR/warm_start``,
   ``sft.mode=none``, ``steps=STEPS``, ``seed=N`` and the row's overrides.

A run whose ``summary.json`` exists is not run again, so an interrupted comparison picks up
where it stopped. The table (``DIR/comparison.md``, also printed) has per row the held-out
pass@1 of each seed, their mean and its change over the warm start, pass@k and maj@k (means,
k the evaluation's samples per problem)
and the wall time of each run; ``DIR/comparison.json`` holds every figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

SUMMARY_FILE = "summary.json"
WALL_FILE = "wall_seconds.txt"
WARM_START = "warm_start"


def load_spec(path: str) -> dict[str, Any]:
    """``EXPERIMENT``, ``STEPS``, ``SEEDS`` and ``ALGORITHMS`` of a comparison file, checked."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"comparison file {path!r} does not exist")
    spec_module = importlib.util.spec_from_file_location("r1jax_comparison", path)
    module = importlib.util.module_from_spec(spec_module)
    spec_module.loader.exec_module(module)
    spec = {}
    for name in ("EXPERIMENT", "STEPS", "SEEDS", "ALGORITHMS"):
        if not hasattr(module, name):
            raise ValueError(f"{path}: {name} is not defined")
        spec[name] = getattr(module, name)
    if not isinstance(spec["STEPS"], int) or spec["STEPS"] < 1:
        raise ValueError(f"{path}: STEPS must be a positive int, got {spec['STEPS']!r}")
    if not spec["SEEDS"] or not all(isinstance(s, int) for s in spec["SEEDS"]):
        raise ValueError(f"{path}: SEEDS must be a non-empty sequence of ints")
    if not isinstance(spec["ALGORITHMS"], dict) or not spec["ALGORITHMS"]:
        raise ValueError(f"{path}: ALGORITHMS must be a non-empty dict")
    for row, overrides in spec["ALGORITHMS"].items():
        if not isinstance(overrides, dict) or "objective.algorithm" not in overrides:
            raise ValueError(
                f"{path}: ALGORITHMS[{row!r}] must be a dict that sets objective.algorithm"
            )
        if "/" in row or row == WARM_START:
            raise ValueError(f"{path}: ALGORITHMS key {row!r} cannot name a directory")
    return spec


def _flag(key: str, value: Any) -> str:
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, (tuple, list)):
        value = repr(tuple(value))
    return f"--config.{key}={value}"


def train_command(experiment: str, workdir: str, overrides: dict[str, Any]) -> list[str]:
    """The ``python -m r1jax.train`` argv of one run.

    Example:
      >>> train_command("default", "/w", {"steps": 0, "objective.algorithm": "rloo"})[3:]
      ['--config', 'default', '--workdir', '/w', '--config.steps=0', '--config.objective.algorithm=rloo', '--config.logging.progress_bar=false']
    """
    flags = [_flag(key, value) for key, value in overrides.items()]
    return [
        sys.executable,
        "-m",
        "r1jax.train",
        "--config",
        experiment,
        "--workdir",
        workdir,
        *flags,
        "--config.logging.progress_bar=false",
    ]


def run_once(command: list[str], workdir: str, log: Any = print) -> dict[str, Any]:
    """Runs ``command`` unless ``workdir`` holds a summary; returns the summary and wall time."""
    summary_path = os.path.join(workdir, SUMMARY_FILE)
    wall_path = os.path.join(workdir, WALL_FILE)
    if not os.path.exists(summary_path):
        os.makedirs(workdir, exist_ok=True)
        log(f"run: {' '.join(command[1:])}")
        start = time.perf_counter()
        with open(os.path.join(workdir, "train.log"), "w") as out:
            returncode = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - start
        if returncode != 0 or not os.path.exists(summary_path):
            raise RuntimeError(
                f"run in {workdir} failed (exit {returncode}); see {workdir}/train.log"
            )
        with open(wall_path, "w") as f:
            f.write(f"{wall:.1f}\n")
    with open(summary_path) as f:
        summary = json.load(f)
    wall = float("nan")
    if os.path.exists(wall_path):
        with open(wall_path) as f:
            wall = float(f.read())
    return {"summary": summary, "wall_seconds": wall}


def _metrics(summary: dict[str, Any], key: str, where: str) -> dict[str, float]:
    if key not in summary:
        raise ValueError(f"{where}/{SUMMARY_FILE} has no {key!r} (did the run evaluate?)")
    evaluation = summary[key]
    k = int(evaluation["num_samples"])
    return {
        "pass@1": float(evaluation["pass@1"]),
        "pass@k": float(evaluation[f"pass@{k}"]),
        "maj@k": float(evaluation[f"maj@{k}"]),
        "k": k,
    }


def compare(
    spec: dict[str, Any], workdir: str, *, warm_start: str = "", log: Any = print
) -> dict[str, Any]:
    """Runs (or reuses) the warm start and every row x seed; returns every figure."""
    experiment = spec["EXPERIMENT"]
    if warm_start:
        if not os.path.exists(os.path.join(warm_start, SUMMARY_FILE)):
            raise FileNotFoundError(f"--warm-start {warm_start!r} holds no {SUMMARY_FILE}")
        warm = run_once([], warm_start, log)
    else:
        warm_start = os.path.join(workdir, WARM_START)
        warm = run_once(train_command(experiment, warm_start, {"steps": 0}), warm_start, log)
    results: dict[str, Any] = {
        "experiment": experiment,
        "steps": spec["STEPS"],
        "seeds": list(spec["SEEDS"]),
        "warm_start": {
            "workdir": warm_start,
            **_metrics(warm["summary"], "eval_after_sft", warm_start),
            "wall_seconds": warm["wall_seconds"],
        },
        "rows": {},
    }
    for row, overrides in spec["ALGORITHMS"].items():
        runs = []
        for seed in spec["SEEDS"]:
            run_dir = os.path.join(workdir, row, f"seed{seed}")
            flags = {
                "model.init_from": warm_start,
                "sft.mode": "none",
                "steps": spec["STEPS"],
                "seed": seed,
                **overrides,
            }
            outcome = run_once(train_command(experiment, run_dir, flags), run_dir, log)
            runs.append(
                {
                    "seed": seed,
                    **_metrics(outcome["summary"], "eval_final", run_dir),
                    "wall_seconds": outcome["wall_seconds"],
                }
            )
        results["rows"][row] = {"overrides": overrides, "runs": runs}
    return results


def table(results: dict[str, Any]) -> str:
    """A Markdown table of ``results`` (percentages, one row per algorithm).

    Example:
      >>> r = {"steps": 2, "warm_start": {"pass@1": 0.2, "pass@k": 0.3, "maj@k": 0.2, "k": 4,
      ...      "wall_seconds": 60.0}, "rows": {"grpo": {"overrides": {}, "runs": [
      ...      {"seed": 0, "pass@1": 0.3, "pass@k": 0.4, "maj@k": 0.3, "wall_seconds": 30.0}]}}}
      >>> print(table(r).splitlines()[2])
      | warm start | 20.0 | 20.0 |  | 30.0 | 20.0 | 60 s |
      >>> print(table(r).splitlines()[3])
      | grpo | 30.0 | 30.0 | +10.0 | 40.0 | 30.0 | 30 s |
    """
    warm = results["warm_start"]
    k = warm["k"]
    lines = [
        f"| algorithm | pass@1 per seed | pass@1 mean | change | pass@{k} | maj@{k} | wall per run |",
        "|---|---|---|---|---|---|---|",
        f"| warm start | {100 * warm['pass@1']:.1f} | {100 * warm['pass@1']:.1f} |  | "
        f"{100 * warm['pass@k']:.1f} | {100 * warm['maj@k']:.1f} | {warm['wall_seconds']:.0f} s |",
    ]
    for row, entry in results["rows"].items():
        runs = entry["runs"]

        def mean(name, runs=runs):
            return 100 * sum(run[name] for run in runs) / len(runs)

        per_seed = " / ".join(f"{100 * run['pass@1']:.1f}" for run in runs)
        walls = " / ".join(f"{run['wall_seconds']:.0f}" for run in runs)
        change = mean("pass@1") - 100 * warm["pass@1"]
        lines.append(
            f"| {row} | {per_seed} | {mean('pass@1'):.1f} | {change:+.1f} | "
            f"{mean('pass@k'):.1f} | {mean('maj@k'):.1f} | {walls} s |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m r1jax.compare", description=__doc__.split("\n")[0]
    )
    parser.add_argument("spec", help="a comparison file (experiments/comparisons/algorithms.py)")
    parser.add_argument("--workdir", required=True, help="where the runs and the table go")
    parser.add_argument("--warm-start", default="", help="an existing warm-start run's workdir")
    parser.add_argument("--steps", type=int, default=0, help="override the file's STEPS")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="override SEEDS")
    parser.add_argument("--only", nargs="+", default=None, help="run only these rows of ALGORITHMS")
    args = parser.parse_args(argv)
    spec = load_spec(args.spec)
    if args.steps:
        spec["STEPS"] = args.steps
    if args.seeds:
        spec["SEEDS"] = args.seeds
    if args.only:
        unknown = sorted(set(args.only) - set(spec["ALGORITHMS"]))
        if unknown:
            parser.error(f"--only: {unknown} not in ALGORITHMS ({sorted(spec['ALGORITHMS'])})")
        spec["ALGORITHMS"] = {row: spec["ALGORITHMS"][row] for row in args.only}
    workdir = os.path.abspath(args.workdir)
    warm_start = os.path.abspath(args.warm_start) if args.warm_start else ""
    results = compare(spec, workdir, warm_start=warm_start)
    text = table(results)
    with open(os.path.join(workdir, "comparison.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(workdir, "comparison.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    return results


if __name__ == "__main__":
    main()
