"""Step time of asynchronous rollouts with and without overlap, beside the synchronous run.

``python -m r1jax.bench async [--config FILE[:preset]] [--steps N] [--staleness S]
[--rollout-devices R] [--set key=value ...]``

Trains one config three times, each in a fresh temporary workdir: ``rollout.mode=sync`` on all
devices, then ``rollout.mode=async`` (the last ``R`` devices sample, the others learn,
`r1jax.async_rollouts`) with ``rollout.overlap=false`` and with ``true``. Overlap off and on
run the same schedule and compute the same numbers; only the wall time differs. Reported per
run, as means over steps 2..N (step 1 compiles): ``time/step``; the generation time
(``time/sample``: sampling on the host's critical path, or the batches generated ahead);
the update (``time/update``, or ``time/update_device`` from dispatch to finish in async
mode); the learner's and the sampler's waits; the overlap fraction; the version lag.

On one CPU (``XLA_FLAGS=--xla_force_host_platform_device_count=8``) all simulated devices
share the same cores, so the two meshes compete and overlap gains little or nothing; on
accelerators each mesh has its own chips. The default config is the smoke experiment scaled
to 8 prompts x 4 samples of up to 64 tokens with an entropy bonus (so the steps train).
"""

import argparse
import statistics
import tempfile

DEFAULT_SETTINGS = (
    "sft.mode=none",
    "eval.num_problems=0",
    "checkpoint.every=0",
    "logging.console=false",
    "data.prompts_per_step=8",
    "sampling.group_size=4",
    "sampling.max_new_tokens=64",
    "objective.entropy_coef=0.01",
)
RUNS = (
    ("sync", ("rollout.mode=sync",)),
    ("async, overlap off", ("rollout.mode=async", "rollout.overlap=false")),
    ("async, overlap on", ("rollout.mode=async", "rollout.overlap=true")),
)
FIGURES = (  # (name in the results, metrics keys tried in order, column title)
    ("step_seconds", ("time/step",), "step s"),
    ("sample_seconds", ("time/sample",), "sample s"),
    ("update_seconds", ("time/update_device", "time/update"), "update s"),
    ("learner_wait_seconds", ("time/learner_wait",), "learner wait s"),
    ("sampler_wait_seconds", ("time/sampler_wait",), "sampler wait s"),
    ("overlap_fraction", ("async/overlap_fraction",), "overlap"),
    ("version_lag", ("async/version_lag_mean",), "lag"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="default:smoke", help="experiment FILE[:preset]")
    parser.add_argument("--steps", type=int, default=10, help="RL steps per run (>= 2)")
    parser.add_argument("--staleness", type=int, default=1, help="rollout.staleness")
    parser.add_argument("--rollout-devices", type=int, default=0, help="rollout.devices (0 = half)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override (after the benchmark's own: " + ", ".join(DEFAULT_SETTINGS) + ")",
    )


def _means(records: list[dict]) -> dict[str, float]:
    rows = records[1:]  # step 1 compiles
    out = {}
    for name, keys, _ in FIGURES:
        key = next((k for k in keys if any(k in r for r in rows)), None)
        # A step without a section (no batch generated ahead at the last step) counts 0.
        out[name] = statistics.mean(r.get(key, 0.0) for r in rows) if key else 0.0
    return out


def run(args: argparse.Namespace) -> dict:
    import jax

    from r1jax import config as config_lib
    from r1jax import metrics, train

    if args.steps < 2:
        raise SystemExit("--steps must be >= 2 (step 1 compiles and is left out)")
    path, _, preset = args.config.partition(":")
    experiment = config_lib.experiment_path(path) + (f":{preset}" if preset else "")
    common = [*DEFAULT_SETTINGS, f"steps={args.steps}", *args.set]
    asynchronous = [
        f"rollout.staleness={args.staleness}",
        f"rollout.devices={args.rollout_devices}",
    ]
    results = {"devices": jax.device_count(), "platform": jax.devices()[0].platform, "runs": {}}
    for label, overrides in RUNS:
        extra = list(overrides) + (asynchronous if "async" in label else [])
        config = config_lib.load_config(experiment, [*common, *extra])
        with tempfile.TemporaryDirectory() as workdir:
            train.run(config, workdir)
            results["runs"][label] = _means(metrics.read_metrics(workdir))
    sync, off, on = (results["runs"][label] for label, _ in RUNS)
    results["speedup_overlap"] = off["step_seconds"] / on["step_seconds"]
    results["speedup_vs_sync"] = sync["step_seconds"] / on["step_seconds"]
    if not args.json:
        rollout = args.rollout_devices or results["devices"] // 2
        print(
            f"async rollouts on {results['devices']} {results['platform']} devices "
            f"({results['devices'] - rollout} learn + {rollout} sample in async mode), "
            f"{args.steps} steps of {args.config}, rollout.staleness={args.staleness}; "
            "means over steps 2..N"
        )
        titles = [title for _, _, title in FIGURES]
        print(f"{'run':<20}" + "".join(f"{t:>15}" for t in titles))
        for label, figures in results["runs"].items():
            print(f"{label:<20}" + "".join(f"{figures[n]:>15.3f}" for n, _, _ in FIGURES))
        print(
            f"overlap on vs off: {results['speedup_overlap']:.2f}x; "
            f"async overlap on vs sync: {results['speedup_vs_sync']:.2f}x"
        )
    return results
