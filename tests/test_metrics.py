"""Tests for r1jax.metrics: writers, reading back, progress bar, summaries, timers, FLOPs."""

import io
import json
import math
import os
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import metrics


def test_jsonl_writes_one_object_per_call_and_handles_nonfinite(tmp_path):
    writer = metrics.JsonlWriter(str(tmp_path))
    writer.write_scalars(
        1,
        {
            "loss": jnp.float32(0.5),
            "nan": float("nan"),
            "inf": np.array(np.inf),
            "neg": -math.inf,
            "flag": True,
            "count": np.int64(3),
            "name": "grpo",
            "missing": None,
        },
    )
    writer.write_texts(1, {"sample/0": "<think>hi</think>", "lengths": [1, 2]})
    writer.close()
    writer.close()  # idempotent
    with open(tmp_path / "metrics.jsonl") as f:
        lines = f.read().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record == {
        "step": 1,
        "loss": 0.5,
        "nan": "nan",
        "inf": "inf",
        "neg": "-inf",
        "flag": 1.0,
        "count": 3.0,
        "name": "grpo",
        "missing": None,
    }
    [sample] = metrics.read_samples(str(tmp_path))
    assert sample == {"step": 1, "sample/0": "<think>hi</think>", "lengths": [1, 2]}
    [back] = metrics.read_metrics(str(tmp_path))
    assert math.isnan(back["nan"]) and back["inf"] == math.inf and back["neg"] == -math.inf


def test_jsonl_appends_on_resume_and_drops_steps_after_the_checkpoint(tmp_path):
    writer = metrics.JsonlWriter(str(tmp_path))
    for step in range(1, 6):
        writer.write_scalars(step, {"reward/mean": step / 10})
        writer.write_texts(step, {"s": str(step)})
    writer.close()
    # The run crashed after step 5; the last checkpoint was step 3.
    writer = metrics.JsonlWriter(str(tmp_path), resume_from_step=3)
    writer.write_scalars(4, {"reward/mean": 0.44})
    writer.close()
    got = [(r["step"], r["reward/mean"]) for r in metrics.read_metrics(str(tmp_path))]
    assert got == [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.44)]
    assert [r["step"] for r in metrics.read_samples(str(tmp_path))] == [1, 2, 3]


def test_read_metrics_merges_steps_and_skips_a_torn_last_line(tmp_path):
    with open(tmp_path / "metrics.jsonl", "w") as f:
        f.write('{"step": 2, "a": 1}\n{"step": 1, "a": 0}\n{"step": 2, "b": 2}\n{"step": 3, "a"')
    assert metrics.read_metrics(str(tmp_path)) == [
        {"step": 1, "a": 0},
        {"step": 2, "a": 1, "b": 2},
    ]
    assert metrics.read_metrics(str(tmp_path / "nowhere")) == []


def test_read_metrics_reports_a_corrupt_line(tmp_path):
    with open(tmp_path / "metrics.jsonl", "w") as f:
        f.write('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl:2"):
        metrics.read_metrics(str(tmp_path))


def test_console_writer_one_line():
    stream = io.StringIO()
    writer = metrics.ConsoleWriter(stream, keys=["reward/mean", "accuracy", "absent"])
    writer.write_scalars(7, {"accuracy": 0.25, "reward/mean": jnp.float32(1.5), "x": 1})
    writer.write_texts(7, {"sample": "hidden"})
    writer.close()
    assert stream.getvalue() == "step 7 | reward/mean 1.5 | accuracy 0.25\n"
    stream = io.StringIO()
    metrics.ConsoleWriter(stream, show_texts=True, max_text_chars=3).write_texts(1, {"s": "abcdef"})
    assert "abc..." in stream.getvalue()


def test_tensorboard_writer_creates_event_file(tmp_path):
    writer = metrics.TensorBoardWriter(str(tmp_path / "tb"))
    writer.write_scalars(1, {"loss": 0.5, "bad": float("nan"), "name": "text"})
    writer.write_texts(1, {"sample": "hello"})
    writer.close()
    writer.close()
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "tb"))


def test_wandb_writer_with_a_stub_module(monkeypatch):
    logged = []

    class Run:
        def log(self, data, step):
            logged.append((step, data))

        def finish(self):
            logged.append("finished")

    stub = types.SimpleNamespace(
        init=lambda **kwargs: Run(), Table=lambda columns, data: ("table", data)
    )
    monkeypatch.setitem(sys.modules, "wandb", stub)
    writer = metrics.WandbWriter("proj", config={"a": 1})
    writer.write_scalars(3, {"loss": np.float32(2.0), "name": "x"})
    writer.write_texts(3, {"s": "t"})
    writer.close()
    writer.close()
    assert logged == [(3, {"loss": 2.0}), (3, {"samples": ("table", [["s", "t"]])}), "finished"]


def test_wandb_writer_without_wandb_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportError, match="pip install"):
        metrics.WandbWriter("proj")


def test_create_writer_only_process_zero_writes(tmp_path):
    quiet = metrics.create_writer(str(tmp_path / "p1"), process_index=1, tensorboard=True)
    quiet.write_scalars(1, {"a": 1})
    quiet.close()
    assert not os.path.exists(tmp_path / "p1")
    writer = metrics.create_writer(str(tmp_path / "p0"), console=False, tensorboard=True)
    try:
        writer.write_scalars(1, {"a": 1})
        writer.flush()
    finally:
        writer.close()
    assert metrics.read_metrics(str(tmp_path / "p0")) == [{"step": 1, "a": 1.0}]
    assert os.path.isdir(tmp_path / "p0" / "tensorboard")


def test_progress_bar_shows_reward_accuracy_length():
    stream = io.StringIO()
    bar = metrics.ProgressBar(10, initial_step=2, stream=stream)
    bar.update(3, {"reward/mean": 0.5, "accuracy": 0.25, "response_length/mean": 120.0})
    bar.update(4)
    bar.close()
    text = stream.getvalue()
    assert "4/10" in text and "reward=0.5" in text and "acc=0.25" in text and "len=120" in text
    disabled = metrics.ProgressBar(10, enabled=False)
    disabled.update(1, {"accuracy": 1.0})
    disabled.close()


def test_summarize():
    out = metrics.summarize({"len": jnp.array([[1.0, 3.0]]), "empty": np.zeros((0,))})
    assert out["len/mean"] == 2.0 and out["len/std"] == 1.0
    assert out["len/min"] == 1.0 and out["len/max"] == 3.0
    assert all(math.isnan(out[f"empty/{s}"]) for s in ("mean", "std", "min", "max"))


def test_timer_accumulates_sections():
    timer = metrics.Timer()
    for _ in range(2):
        with timer.section("sample"):
            pass
    with pytest.raises(RuntimeError), timer.section("update"):
        raise RuntimeError("still timed")
    assert set(timer.durations()) == {"time/sample", "time/update"}
    assert all(v >= 0 for v in timer.durations().values())
    timer.reset()
    assert timer.durations() == {}


@pytest.mark.parametrize(
    "kind, flops",
    [
        ("TPU v4", 275e12),
        ("TPU v5 lite", 197e12),
        ("TPU v5", 459e12),
        ("TPU v5p", 459e12),
        ("TPU v6 lite", 918e12),
        ("NVIDIA H100 80GB HBM3", 989e12),
        ("NVIDIA H100 PCIe", 756e12),
        ("NVIDIA H200", 989e12),
        ("NVIDIA A100-SXM4-80GB", 312e12),
    ],
)
def test_peak_flops_table(kind, flops):
    assert metrics.peak_flops(types.SimpleNamespace(device_kind=kind)) == flops


def test_peak_flops_measures_cpu():
    flops = metrics.peak_flops(jax.devices("cpu")[0], measure_size=128)
    assert 1e6 < flops < 1e14
