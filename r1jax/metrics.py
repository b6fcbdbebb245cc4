"""Metric writers (console, JSONL, TensorBoard, W&B), a progress bar, timers and peak FLOPs.

Writers follow the :class:`MetricWriter` protocol: ``write_scalars(step, {name: number})``,
``write_texts(step, {name: text})``, ``flush()`` and ``close()``. The caller creates them
(usually through :func:`create_writer`), passes them down, and closes them in a ``finally``.
Only process 0 writes in multi-host runs: :func:`create_writer` takes ``process_index`` and
returns a writer that drops everything on other processes. Nothing here is global.

Metric names are slash-separated, lower-case: ``reward/mean``, ``accuracy``,
``response_length/mean``, ``reflect_rate``, ``time/sample``, ``eval/pass@1``; a named
evaluation set's under ``eval/<set>/`` (``eval/aime24/pass@16``, `r1jax.eval_sets`) and a task
of a mixture's under ``rollout/<task>/`` (``rollout/countdown/accuracy``, `r1jax.mixture`).
The progress bar and :mod:`r1jax.plot` look names up by these conventions.

clu is not used: its latest release (0.0.12) cannot import ``metric_writers`` or
``periodic_actions`` without TensorFlow, and ``clu.metrics.Std`` fails on jax >= 0.10.

What does not live here: computing the metrics (the update step and the evaluation code do).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, TextIO

import numpy as np

METRICS_FILE = "metrics.jsonl"
SAMPLES_FILE = "samples.jsonl"


class MetricWriter(Protocol):
    """What the trainer writes metrics to."""

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        """Writes numbers (Python, numpy or jax scalars) for ``step``."""

    def write_texts(self, step: int, texts: Mapping[str, Any]) -> None:
        """Writes strings (e.g. sampled completions) for ``step``."""

    def flush(self) -> None:
        """Pushes buffered output to its destination."""

    def close(self) -> None:
        """Flushes and releases files / connections. Idempotent."""


def _to_float(value: Any) -> float | None:
    """A Python float for numeric scalars (incl. numpy / jax 0-d arrays), else ``None``."""
    if isinstance(value, bool | np.bool_):
        return float(value)
    try:
        array = np.asarray(value)
    except Exception:
        return None
    if array.size != 1 or not (
        np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)
    ):
        return None
    return float(array.reshape(()))


def _json_number(value: float) -> float | str:
    """JSON has no NaN/inf: they are written as the strings "nan", "inf", "-inf"."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _format_number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e9:
        return str(int(value))
    if 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.3e}"


# ----------------------------------------------------------------------------- writers


class ConsoleWriter:
    """One line per ``write_scalars`` call: ``step 10 | accuracy 0.5 | reward/mean 0.62``.

    Args:
      stream: where to print (default ``sys.stdout``).
      keys: names to show, in order; ``None`` shows every scalar, sorted.
      show_texts: also print texts (truncated to ``max_text_chars``).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        keys: Sequence[str] | None = None,
        show_texts: bool = False,
        max_text_chars: int = 500,
    ):
        self._stream = stream if stream is not None else sys.stdout
        self._keys = tuple(keys) if keys is not None else None
        self._show_texts = show_texts
        self._max_text_chars = max_text_chars

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        names = self._keys if self._keys is not None else sorted(scalars)
        parts = [f"step {step}"]
        for name in names:
            if name in scalars and (value := _to_float(scalars[name])) is not None:
                parts.append(f"{name} {_format_number(value)}")
        print(" | ".join(parts), file=self._stream)

    def write_texts(self, step: int, texts: Mapping[str, Any]) -> None:
        if not self._show_texts:
            return
        for name, text in texts.items():
            text = str(text)
            if len(text) > self._max_text_chars:
                text = text[: self._max_text_chars] + "..."
            print(f"step {step} | {name}:\n{text}", file=self._stream)

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self.flush()


class JsonlWriter:
    """``metrics.jsonl`` (one JSON object per ``write_scalars`` call) and ``samples.jsonl``.

    Both files are opened in append mode, so a resumed run continues them. With
    ``resume_from_step`` set, records written after that step by an interrupted run (which
    the resumed run will write again) are removed first. NaN and inf are written as the
    strings ``"nan"``, ``"inf"``, ``"-inf"``; non-numeric scalars are written as strings.

    Args:
      workdir: directory for the two files (created if needed).
      resume_from_step: the checkpoint step the run resumes from, or ``None``.
    """

    def __init__(self, workdir: str, *, resume_from_step: int | None = None):
        os.makedirs(workdir, exist_ok=True)
        self._metrics_path = os.path.join(workdir, METRICS_FILE)
        self._samples_path = os.path.join(workdir, SAMPLES_FILE)
        if resume_from_step is not None:
            for path in (self._metrics_path, self._samples_path):
                _truncate_after(path, resume_from_step)
        self._metrics = open(self._metrics_path, "a")  # noqa: SIM115 (closed in close())
        self._samples = open(self._samples_path, "a")  # noqa: SIM115

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        record: dict[str, Any] = {"step": int(step)}
        for name, value in scalars.items():
            number = _to_float(value)
            if number is not None:
                record[name] = _json_number(number)
            else:
                record[name] = None if value is None else str(value)
        self._metrics.write(json.dumps(record, allow_nan=False) + "\n")

    def write_texts(self, step: int, texts: Mapping[str, Any]) -> None:
        record = {"step": int(step), **{name: _jsonable(text) for name, text in texts.items()}}
        self._samples.write(json.dumps(record, allow_nan=False) + "\n")

    def flush(self) -> None:
        for f in (self._metrics, self._samples):
            if not f.closed:
                f.flush()

    def close(self) -> None:
        for f in (self._metrics, self._samples):
            if not f.closed:
                f.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    number = _to_float(value)
    return _json_number(number) if number is not None else str(value)


def _read_jsonl(path: str) -> list[dict[str, Any]]:
    """Records of a JSONL file; a torn last line (a crash mid-write) is skipped."""
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        lines = f.read().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if number == len(lines):
                continue
            raise ValueError(f"{path}:{number}: not valid JSON ({e})") from None
    return records


def _truncate_after(path: str, step: int) -> None:
    records = _read_jsonl(path)
    kept = [r for r in records if r.get("step", -1) <= step]
    if len(kept) == len(records):
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in kept)
    os.replace(tmp, path)


class TensorBoardWriter:
    """TensorBoard event files through tensorboardX (no TensorFlow needed).

    Args:
      logdir: directory for the event files.
    """

    def __init__(self, logdir: str):
        from tensorboardX import SummaryWriter

        self._writer = SummaryWriter(logdir=logdir)
        self._closed = False

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        for name, value in scalars.items():
            if (number := _to_float(value)) is not None:
                self._writer.add_scalar(name, number, global_step=int(step))

    def write_texts(self, step: int, texts: Mapping[str, Any]) -> None:
        for name, text in texts.items():
            self._writer.add_text(name, str(text), global_step=int(step))

    def flush(self) -> None:
        if not self._closed:
            self._writer.flush()

    def close(self) -> None:
        if not self._closed:
            self._writer.close()
            self._closed = True


class WandbWriter:
    """Weights & Biases, imported only when this writer is created.

    Args:
      project: W&B project.
      config: the resolved config as a plain dict, stored with the run.
      name: display name of the run.
      directory: where wandb keeps its local files (e.g. the workdir).
      resume_id: run id to resume, so a restarted job continues the same W&B run.

    Raises:
      ImportError: wandb is not installed (``pip install r1jax[wandb]``).
    """

    def __init__(
        self,
        project: str,
        *,
        config: Mapping[str, Any] | None = None,
        name: str | None = None,
        directory: str | None = None,
        resume_id: str | None = None,
    ):
        try:
            import wandb
        except ImportError as e:
            raise ImportError(
                "logging.wandb=True needs the wandb package: pip install 'r1jax[wandb]'"
            ) from e
        self._wandb = wandb
        self._run = wandb.init(
            project=project,
            config=dict(config or {}),
            name=name,
            dir=directory,
            id=resume_id,
            resume="allow" if resume_id else None,
        )
        self._closed = False

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        numbers = {
            k: v for k, v in ((k, _to_float(v)) for k, v in scalars.items()) if v is not None
        }
        self._run.log(numbers, step=int(step))

    def write_texts(self, step: int, texts: Mapping[str, Any]) -> None:
        table = self._wandb.Table(
            columns=["name", "text"], data=[[k, str(v)] for k, v in texts.items()]
        )
        self._run.log({"samples": table}, step=int(step))

    def flush(self) -> None:
        pass  # wandb streams in the background

    def close(self) -> None:
        if not self._closed:
            self._run.finish()
            self._closed = True


class MultiWriter:
    """Sends every call to each of ``writers`` (an empty list gives a writer that drops all)."""

    def __init__(self, writers: Sequence[MetricWriter]):
        self.writers = list(writers)

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        for writer in self.writers:
            writer.write_scalars(step, scalars)

    def write_texts(self, step: int, texts: Mapping[str, Any]) -> None:
        for writer in self.writers:
            writer.write_texts(step, texts)

    def flush(self) -> None:
        for writer in self.writers:
            writer.flush()

    def close(self) -> None:
        errors = []
        for writer in self.writers:
            try:
                writer.close()
            except Exception as e:  # close the others before reporting
                errors.append(e)
        if errors:
            raise errors[0]


def create_writer(
    workdir: str,
    *,
    process_index: int = 0,
    console: bool = True,
    jsonl: bool = True,
    tensorboard: bool = False,
    wandb_project: str | None = None,
    wandb_config: Mapping[str, Any] | None = None,
    run_name: str | None = None,
    resume_from_step: int | None = None,
) -> MultiWriter:
    """The writers a training run uses, as one :class:`MultiWriter`.

    On any process but 0 the result writes nothing (and opens no files).

    Args:
      workdir: run directory: ``metrics.jsonl``, ``samples.jsonl`` and ``tensorboard/``.
      process_index: ``jax.process_index()`` of the caller.
      console: print one line per step.
      jsonl: write the JSONL files.
      tensorboard: write TensorBoard event files.
      wandb_project: log to this W&B project when set.
      wandb_config: the resolved config as a dict, stored with the W&B run.
      run_name: W&B display name.
      resume_from_step: checkpoint step of a resumed run (see :class:`JsonlWriter`).
    """
    if process_index != 0:
        return MultiWriter([])
    writers: list[MetricWriter] = []
    try:
        if console:
            writers.append(ConsoleWriter())
        if jsonl:
            writers.append(JsonlWriter(workdir, resume_from_step=resume_from_step))
        if tensorboard:
            writers.append(TensorBoardWriter(os.path.join(workdir, "tensorboard")))
        if wandb_project:
            writers.append(
                WandbWriter(wandb_project, config=wandb_config, name=run_name, directory=workdir)
            )
    except BaseException:
        MultiWriter(writers).close()
        raise
    return MultiWriter(writers)


def read_metrics(workdir: str) -> list[dict[str, Any]]:
    """Reads ``workdir/metrics.jsonl``: one dict per step, sorted by step.

    Records of the same step are merged (later values win), and the strings "nan", "inf",
    "-inf" are read back as floats.

    Example:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as d:
      ...     w = JsonlWriter(d)
      ...     w.write_scalars(1, {"loss": float("nan")})
      ...     w.write_scalars(1, {"eval/pass@1": 0.5})
      ...     w.close()
      ...     read_metrics(d)
      [{'step': 1, 'loss': nan, 'eval/pass@1': 0.5}]
    """
    merged: dict[int, dict[str, Any]] = {}
    for record in _read_jsonl(os.path.join(workdir, METRICS_FILE)):
        step = int(record["step"])
        entry = merged.setdefault(step, {"step": step})
        for name, value in record.items():
            if name != "step":
                entry[name] = float(value) if value in ("nan", "inf", "-inf") else value
    return [merged[step] for step in sorted(merged)]


def read_samples(workdir: str) -> list[dict[str, Any]]:
    """Reads ``workdir/samples.jsonl``: one dict per ``write_texts`` call, in file order."""
    return _read_jsonl(os.path.join(workdir, SAMPLES_FILE))


# ----------------------------------------------------------------------------- progress bar


class ProgressBar:
    """A tqdm bar over the training steps showing reward, accuracy, response length and ETA.

    Args:
      total_steps: the last step of the run.
      initial_step: the step a resumed run starts from.
      postfix_keys: display name -> metric name shown after the bar.
      enabled: ``False`` (e.g. on processes other than 0) makes every call a no-op.
      stream: where tqdm draws (default ``sys.stderr``).
    """

    def __init__(
        self,
        total_steps: int,
        *,
        initial_step: int = 0,
        postfix_keys: Mapping[str, str] | None = None,
        enabled: bool = True,
        stream: TextIO | None = None,
    ):
        self._postfix_keys = dict(
            postfix_keys
            if postfix_keys is not None
            else {"reward": "reward/mean", "acc": "accuracy", "len": "response_length/mean"}
        )
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total_steps,
                initial=initial_step,
                file=stream,
                unit="step",
                dynamic_ncols=True,
            )
        self._step = initial_step

    def update(self, step: int, scalars: Mapping[str, Any] | None = None) -> None:
        """Moves the bar to ``step`` and shows the chosen ``scalars``."""
        if self._bar is None:
            return
        if scalars:
            postfix = {}
            for label, name in self._postfix_keys.items():
                if name in scalars and (value := _to_float(scalars[name])) is not None:
                    postfix[label] = _format_number(value)
            self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(step - self._step)
        self._step = step

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


# ----------------------------------------------------------------------------- summaries


def summarize(values: Mapping[str, Any]) -> dict[str, float]:
    """Mean, std, min and max of each array, as ``name/mean``, ``name/std`` ... scalars.

    Empty arrays give NaN for all four (written as "nan" in JSONL).

    Example:
      >>> summarize({"response_length": np.array([1, 2, 3])})
      {'response_length/mean': 2.0, 'response_length/std': 0.816..., 'response_length/min': 1.0, 'response_length/max': 3.0}
    """
    out = {}
    for name, value in values.items():
        array = np.asarray(value, dtype=np.float64).reshape(-1)
        if array.size == 0:
            stats = (math.nan,) * 4
        else:
            stats = (array.mean(), array.std(), array.min(), array.max())
        for suffix, stat in zip(("mean", "std", "min", "max"), stats):
            out[f"{name}/{suffix}"] = float(stat)
    return out


class Timer:
    """Accumulates wall-clock time per named section; created by the caller, one per run.

    Time is measured on the host: block on device results (``jax.block_until_ready``) inside
    the section if its device work should count.

    Example:
      >>> timer = Timer()
      >>> with timer.section("verify"):
      ...     pass
      >>> sorted(timer.durations())
      ['time/verify']
    """

    def __init__(self, prefix: str = "time/"):
        self._prefix = prefix
        self._totals: dict[str, float] = {}

    @contextlib.contextmanager
    def section(self, name: str) -> Iterator[None]:
        """Adds the time spent inside the ``with`` block to ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self._totals[name] = self._totals.get(name, 0.0) + time.perf_counter() - start

    def durations(self) -> dict[str, float]:
        """Seconds per section since the last :meth:`reset`, keyed ``prefix + name``."""
        return {self._prefix + name: total for name, total in self._totals.items()}

    def reset(self) -> None:
        self._totals = {}


# ----------------------------------------------------------------------------- peak FLOPs

# Dense bf16 peak FLOP/s per device (vendor datasheets). Matched in order against the
# lower-cased ``device.device_kind``: more specific names first.
PEAK_BF16_FLOPS = (
    ("tpu v6 lite", 918e12),  # v6e (Trillium)
    ("tpu v6e", 918e12),
    ("tpu v5 lite", 197e12),  # v5e
    ("tpu v5e", 197e12),
    ("tpu v5p", 459e12),
    ("tpu v5", 459e12),  # v5p reports "TPU v5"
    ("tpu v4", 275e12),
    ("h200", 989e12),  # SXM, dense
    ("h100 pcie", 756e12),
    ("h100", 989e12),  # SXM, dense
    ("a100", 312e12),
)


def peak_flops(device: Any, *, measure_size: int = 1024) -> float:
    """Peak bf16 FLOP/s of ``device``, for MFU.

    Known TPUs and NVIDIA GPUs come from :data:`PEAK_BF16_FLOPS`; anything else (CPU, other
    GPUs) is measured with :func:`measure_matmul_flops`, which takes about a second.

    Args:
      device: a ``jax.Device``.
      measure_size: matrix size for the measurement fallback.
    """
    kind = str(getattr(device, "device_kind", "")).lower()
    for name, flops in PEAK_BF16_FLOPS:
        if name in kind:
            return flops
    return measure_matmul_flops(device, size=measure_size)


def measure_matmul_flops(
    device: Any, *, size: int = 1024, dtype: str = "float32", repeats: int = 5
) -> float:
    """FLOP/s of a jitted ``[size, size] @ [size, size]`` matmul on ``device`` (best of N).

    Float32 by default, because CPUs emulate bf16 matmuls slowly.
    """
    import jax
    import jax.numpy as jnp

    a = jax.device_put(jnp.ones((size, size), dtype), device)
    matmul = jax.jit(lambda x: x @ x)
    matmul(a).block_until_ready()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


def model_flops_utilization(
    flops_per_step: float, step_seconds: float, *, peak_flops_per_device: float, num_devices: int
) -> float:
    """MFU = achieved model FLOP/s over the peak of all devices.

    Example:
      >>> model_flops_utilization(1e15, 2.0, peak_flops_per_device=1e15, num_devices=1)
      0.5
    """
    return flops_per_step / step_seconds / (peak_flops_per_device * num_devices)


def print_step_summary(step: int, total: int, scalars: Mapping[str, float]) -> None:
    """One console line per logged step: loss, reward, accuracy, length, KL, entropy, time."""
    names = (
        ("loss", "loss"),
        ("reward", "reward/total"),
        ("acc", "accuracy"),
        ("len", "response_length/mean"),
        ("kl", "kl"),
        ("ent", "entropy"),
        ("gnorm", "grad_norm"),
        ("s", "time/step"),
    )
    parts = [f"{label} {scalars[name]:.4g}" for label, name in names if name in scalars]
    print(f"step {step}/{total}: " + " | ".join(parts), flush=True)


class StepLogger:
    """Where a training run's step metrics go: metric writers, the progress bar, the console.

    ``log`` adds the step's timings, tokens per second and model FLOP utilisation (forward-pass
    equivalents per token, as the phase reports them in ``host["forward_passes"]``, times the
    forward FLOPs of one token; prompt tokens are left out) to the device and host metrics.

    Args:
      config: the resolved run config (``logging.*``).
      workdir: the run directory.
      total_steps: warm-start plus RL steps (the progress bar's length).
      start: the step the run starts (or resumes) at.
      flops_per_token: forward FLOPs of one generated token (`r1jax.models.flops_per_token`).
      main_process: whether this process writes the bar and the console.
    """

    def __init__(self, config, workdir: str, *, total_steps: int, start: int, flops_per_token):
        import jax

        logging = config.logging
        self.total_steps, self.flops_per_token, self.peak = total_steps, flops_per_token, None
        self.console = logging.console and jax.process_index() == 0
        self.writer = create_writer(
            workdir,
            console=False,
            jsonl=logging.jsonl,
            tensorboard=logging.tensorboard,
            wandb_project=logging.wandb_project if logging.wandb else None,
            wandb_config=json.loads(json.dumps(config.to_dict(), default=str)),
            process_index=jax.process_index(),
            run_name=logging.run_name or os.path.basename(workdir),
            resume_from_step=start if start else None,
        )
        self.bar = ProgressBar(
            total_steps,
            initial_step=start,
            enabled=logging.progress_bar and jax.process_index() == 0,
            postfix_keys={
                "reward": "reward/total",
                "acc": "accuracy",
                "len": "response_length/mean",
            },
        )

    def log(self, step: int, elapsed: float, device_metrics, host, samples, timer: Timer) -> None:
        """Writes one step's metrics (``samples``: completions to keep, may be empty)."""
        import jax

        scalars = {k: float(v) for k, v in jax.device_get(device_metrics).items()}
        scalars.update(host)
        scalars.update(timer.durations())
        scalars["time/step"] = elapsed
        scalars["tokens_per_second"] = host["tokens"] / max(elapsed, 1e-9)
        if self.peak is None:
            self.peak = peak_flops(jax.devices()[0])
        scalars["mfu"] = model_flops_utilization(
            host["forward_passes"] * self.flops_per_token * host["tokens"],
            elapsed,
            peak_flops_per_device=self.peak,
            num_devices=jax.device_count(),
        )
        self.writer.write_scalars(step, scalars)
        if samples:
            self.writer.write_texts(step, {"samples": json.dumps(samples, default=str)})
        self.writer.flush()
        self.bar.update(step, scalars)
        if self.console:
            print_step_summary(step, self.total_steps, scalars)

    def close(self) -> None:
        self.bar.close()
        self.writer.close()
