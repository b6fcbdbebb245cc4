"""Training curves from ``metrics.jsonl``: ``python -m r1jax.plot WORKDIR [WORKDIR ...] [--out DIR]``.

Writes one PNG per panel (reward, accuracy, response length, reflection, evaluation) with
every matching metric as a line over steps. Panels whose metrics are absent are skipped.
Several runs (seeds of one recipe, say) share each panel: one colour per run, one line style
per metric, labelled ``RUN: metric`` by the run directory's name; ``--smooth N`` draws each
training line as a trailing mean over ``N`` logged points (evaluations are never smoothed).
Metrics are matched by name (see the naming convention in :mod:`r1jax.metrics`); ``*/std``,
``*/min`` and ``*/max`` companions are left out to keep the plots readable.

A run that swept s1 thinking budgets (``eval.budget_forcing.thinking_budgets``) also gets
``budget_forcing.png`` from ``summary.json``: accuracy against the thinking budget and against
the mean thinking length actually used (s1's x axis, arXiv:2501.19393 Fig. 1), one line per
evaluation, set and number of ``Wait`` extensions.

Matplotlib is used through its object API with the Agg canvas, so importing this module or
plotting does not switch the process-wide backend.

What does not live here: reading other formats (TensorBoard has its own UI).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

from r1jax import metrics as metrics_lib

# Panel file name -> (title, y label, regex the metric name must match). Evaluation first so
# that eval/* metrics are not claimed by the training panels.
PANELS = (
    ("eval", "Evaluation", "score", r"^eval/.*(pass@|maj@|accuracy|avg@)"),
    ("reward", "Reward", "reward", r"^(?!eval/)((reward|rewards)(/|_|$)|rollout/.+/reward)"),
    (
        "accuracy",
        "Accuracy",
        "fraction correct",
        r"^(?!eval/)((accuracy|acc)(/|_|$)|rollout/.+/accuracy$)",
    ),
    ("response_length", "Response length", "tokens", r"^(?!eval/).*(response_length|length/)"),
    (
        "reflection",
        "Self-reflection",
        "rate",
        r"^(eval/)?(reflection/)?(reflect|ssr_|acc_given_reflect)",
    ),
)
_HIDDEN_SUFFIXES = ("/std", "/min", "/max", "_tie_rate")
LEGEND_INSIDE_MAX = 6
"""Panels with more lines than this put their legend beside the axes."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if value in ("nan", "inf", "-inf"):
        return float(value)
    return None


def series(records: Sequence[dict[str, Any]]) -> dict[str, tuple[list[int], list[float]]]:
    """Metric name -> ``(steps, values)`` for every numeric metric in ``records``."""
    out: dict[str, tuple[list[int], list[float]]] = {}
    for record in records:
        step = int(record["step"])
        for name, value in record.items():
            if name == "step" or (number := _number(value)) is None:
                continue
            steps, values = out.setdefault(name, ([], []))
            steps.append(step)
            values.append(number)
    return out


def budget_sweeps(summary: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """``label -> sweep points`` of every budget sweep in a run's ``summary.json``.

    Labels are the evaluation's summary key (``eval_after_sft``, ``eval_final`` ...), with
    ``/<set>`` for named evaluation sets.
    """
    out = {}
    for key, entry in summary.items():
        if not (key.startswith("eval") and isinstance(entry, dict)):
            continue
        if isinstance(entry.get("budget_sweep"), list):
            out[key] = entry["budget_sweep"]
        for name, value in entry.items():
            if isinstance(value, dict) and isinstance(value.get("budget_sweep"), list):
                out[f"{key}/{name}"] = value["budget_sweep"]
    return out


def plot_budget_sweep(workdir: str, out_dir: str, *, dpi: int = 100) -> str | None:
    """Writes ``budget_forcing.png`` from ``workdir/summary.json``, or returns None when the
    run swept no thinking budgets."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = os.path.join(workdir, "summary.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        sweeps = budget_sweeps(json.load(f))
    if not sweeps:
        return None
    figure = Figure(figsize=(11, 4), dpi=dpi)
    FigureCanvasAgg(figure)
    by_budget, by_length = figure.subplots(1, 2, sharey=True)
    for label, points in sorted(sweeps.items()):
        for num_ignore in sorted({p["num_ignore"] for p in points}):
            chosen = sorted(
                (p for p in points if p["num_ignore"] == num_ignore),
                key=lambda p: p["thinking_budget"],
            )
            for metric in ("pass@1", "greedy_accuracy"):
                if not all(metric in p for p in chosen):
                    continue
                name = f"{label} {metric}" + (f" +{num_ignore} Wait" if num_ignore else " cap")
                accuracy = [100 * p[metric] for p in chosen]
                by_budget.plot([p["thinking_budget"] for p in chosen], accuracy, ".-", label=name)
                by_length.plot([p["thinking_length"] for p in chosen], accuracy, ".-", label=name)
    for axes, x_label in (
        (by_budget, "thinking budget (tokens)"),
        (by_length, "mean thinking length (tokens)"),
    ):
        axes.set_xscale("log", base=2)
        axes.set_xlabel(x_label)
        axes.grid(alpha=0.3)
    by_budget.set_ylabel("accuracy (%)")
    by_budget.set_title("Budget forcing: accuracy vs budget")
    by_length.set_title("accuracy vs thinking used")
    by_length.legend(fontsize="small")
    figure.tight_layout()
    target = os.path.join(out_dir, "budget_forcing.png")
    figure.savefig(target)
    return target


def panel_metrics(names: Iterable[str]) -> list[list[str]]:
    """The metric names each of `PANELS` draws, in panel order (a name goes to the first panel
    whose pattern it matches; ``*/std``-style companions to none).

      >>> panel_metrics(["eval/pass@1", "eval/reflect_rate", "reflection/reflect_rate", "loss"])
      [['eval/pass@1'], [], [], [], ['eval/reflect_rate', 'reflection/reflect_rate']]
    """
    names = list(names)  # read once per panel
    claimed: set[str] = set()
    out = []
    for _, _, _, pattern in PANELS:
        chosen = sorted(
            name
            for name in names
            if name not in claimed
            and re.search(pattern, name)
            and not name.endswith(_HIDDEN_SUFFIXES)
        )
        claimed.update(chosen)
        out.append(chosen)
    return out


def run_labels(workdirs: Sequence[str]) -> list[str]:
    """Each run's label: its directory's name, or its whole path where two names coincide."""
    names = [os.path.basename(os.path.normpath(w)) for w in workdirs]
    return [w if names.count(n) > 1 else n for w, n in zip(workdirs, names, strict=True)]


def trailing_mean(values: Sequence[float], window: int) -> list[float]:
    """The mean of each value and the ``window - 1`` before it (fewer at the start), skipping
    non-finite values.

      >>> trailing_mean([1.0, 3.0, 5.0, float("nan"), 7.0], 2)
      [1.0, 2.0, 4.0, 5.0, 7.0]
    """
    out = []
    for index in range(len(values)):
        finite = [v for v in values[max(0, index - window + 1) : index + 1] if math.isfinite(v)]
        out.append(sum(finite) / len(finite) if finite else float("nan"))
    return out


def drawn_values(name: str, values: Sequence[float], smooth: int) -> list[float]:
    """The values drawn for metric ``name``: a trailing mean over ``smooth`` points for a
    training metric, an evaluation (``eval/*``) as measured, whichever panel it is on.

    Example:
      >>> drawn_values("reflection/reflect_rate", [0.0, 1.0], 2), drawn_values(
      ...     "eval/reflect_rate", [0.0, 1.0], 2)
      ([0.0, 0.5], [0.0, 1.0])
    """
    if smooth > 1 and not name.startswith("eval/"):
        return trailing_mean(values, smooth)
    return list(values)


def plot_metrics(
    workdir: str | Sequence[str],
    out_dir: str | None = None,
    *,
    smooth: int = 1,
    dpi: int = 100,
) -> list[str]:
    """Writes the PNG panels for ``workdir/metrics.jsonl`` (and, for one run, ``budget_forcing.png``
    for a budget sweep in ``workdir/summary.json``; several runs get no sweep plot) and returns
    their paths.

    Args:
      workdir: run directory holding ``metrics.jsonl``, or several, drawn on the same panels.
      out_dir: where to write the PNGs; defaults to ``workdir/plots`` (required for several
        runs).
      smooth: trailing mean over this many logged points for the training panels (1: none).
      dpi: resolution.

    Raises:
      FileNotFoundError: there is no ``metrics.jsonl`` in a run directory.
      ValueError: several runs without ``out_dir``, or ``smooth < 1``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    workdirs = [workdir] if isinstance(workdir, str) else list(workdir)
    if not workdirs:
        raise ValueError("no run directory to plot")
    if len(workdirs) > 1 and out_dir is None:
        raise ValueError("several runs need an output directory (--out)")
    if smooth < 1:
        raise ValueError(f"smooth={smooth}: must be at least 1")
    runs = {}
    for label, run_dir in zip(run_labels(workdirs), workdirs, strict=True):
        path = os.path.join(run_dir, metrics_lib.METRICS_FILE)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no {metrics_lib.METRICS_FILE} in {run_dir}")
        runs[label] = series(metrics_lib.read_metrics(run_dir))
    out_dir = out_dir or os.path.join(workdirs[0], "plots")
    os.makedirs(out_dir, exist_ok=True)
    written = []
    if len(workdirs) == 1:
        sweep = plot_budget_sweep(workdirs[0], out_dir, dpi=dpi)
        if sweep is not None:
            written.append(sweep)
    plotted = {
        name
        for run in runs.values()
        for name, (_, values) in run.items()
        if any(math.isfinite(v) for v in values)
    }
    colours = [f"C{index % 10}" for index in range(len(runs))]
    styles = ("-", "--", ":", "-.")
    for (file_name, title, y_label, _), names in zip(PANELS, panel_metrics(plotted), strict=True):
        if not names:
            continue
        figure = Figure(figsize=(7, 4), dpi=dpi)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        for colour, (run_label, run) in zip(colours, runs.items(), strict=True):
            for index, name in enumerate(n for n in names if n in run):
                steps, values = run[name]
                values = drawn_values(name, values, smooth)
                axes.plot(
                    steps,
                    values,
                    label=name if len(runs) == 1 else f"{run_label}: {name}",
                    marker="." if len(steps) < 30 else None,
                    color=colour if len(runs) > 1 else None,
                    linestyle=styles[index % len(styles)] if len(runs) > 1 else "-",
                )
        smoothed = smooth > 1 and any(not n.startswith("eval/") for n in names)
        axes.set_title(f"{title} (training: trailing mean of {smooth})" if smoothed else title)
        axes.set_xlabel("step")
        axes.set_ylabel(y_label)
        axes.grid(alpha=0.3)
        if len(axes.get_lines()) > LEGEND_INSIDE_MAX:  # beside the axes, not over the lines
            figure.set_figwidth(10)
            axes.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        else:
            axes.legend(fontsize="small")
        figure.tight_layout()
        target = os.path.join(out_dir, f"{file_name}.png")
        figure.savefig(target)
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m r1jax.plot", description="Plot training curves from metrics.jsonl."
    )
    parser.add_argument("workdir", nargs="+", help="run directories with metrics.jsonl")
    parser.add_argument(
        "--out",
        default=None,
        help="output directory (default WORKDIR/plots; several runs: required)",
    )
    parser.add_argument(
        "--smooth", type=int, default=1, help="trailing mean over N logged points (default 1)"
    )
    args = parser.parse_args(argv)
    try:
        paths = plot_metrics(args.workdir, args.out, smooth=args.smooth)
    except (FileNotFoundError, ValueError) as e:
        parser.exit(1, f"error: {e}\n")
    for path in paths:
        print(path)
    if not paths:
        print(f"no plottable metrics in {', '.join(args.workdir)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
