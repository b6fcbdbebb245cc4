"""``rollout.mode = "async"`` (r1jax/async_rollouts.py): the schedule and its staleness bound,
the config checks, and the trainer on 8 simulated CPU devices split 4 (learner) + 4 (rollout):
with staleness 0 it is the synchronous run; with staleness 1 rows lag one version and train."""

import json
import re
import shutil
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import async_rollouts, experience, metrics, train
from r1jax import config as config_lib
from r1jax.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SMOKE = f"{ROOT / 'experiments' / 'default.py'}:smoke"
TIMING = ("time/", "tokens_per_second", "mfu", "async/")
# 2 prompts x 2 samples = 4 rows: they split over a 4-device mesh. The entropy bonus gives the
# steps a gradient although the random model earns no reward (see test_train_sharded.py for
# the raised Adam epsilon).
COMMON = (
    "sft.mode=none",
    "eval.num_problems=0",
    "verifier.workers=1",
    "optim.eps=1e-3",
    "objective.entropy_coef=0.01",
    "logging.console=false",
    "model.vocab_multiple=8",
    "checkpoint.every=0",
    "steps=3",
)


def _config(*overrides):
    return config_lib.load_config(SMOKE, [*COMMON, *overrides])


# ------------------------------------------------------------------------- the schedule


class _Fake:
    """A pipeline over fake collect / update functions that log what they saw."""

    def __init__(self, staleness, overlap=True, steps=5):
        self.sampled, self.prompt_position = [], 0
        device = jax.devices()[-1]
        self.pipeline = async_rollouts.RolloutPipeline(
            async_rollouts.AsyncSettings(devices=1, staleness=staleness, overlap=overlap),
            rollout_policy_sharding=jax.sharding.SingleDeviceSharding(device),
            collect=self.collect,
            prompt_state=lambda: self.prompt_position,
            total_rl_steps=steps,
        )
        self.policy = jnp.zeros(())

    def collect(self, rl_step, params, version):
        assert float(params) == version  # the weights of that version are on the rollout mesh
        assert params.devices() == {jax.devices()[-1]}
        self.sampled.append((rl_step, version))
        self.prompt_position += 1
        return types.SimpleNamespace(texts=["a", "b"], rl_step=rl_step)

    def run(self, steps=5):
        records = []
        for rl_step in range(steps):

            def update(experience, rl_step=rl_step):
                assert experience.rl_step == rl_step
                self.policy = self.policy + 1  # version rl_step + 1
                new = self.policy
                return "result", new, lambda: new

            experience, result, record = self.pipeline.step(rl_step, self.policy, update)
            assert result == "result" and experience.rl_step == rl_step
            records.append(record | {"prompt_state": self.pipeline.prompt_state()})
        return records


@pytest.mark.parametrize("staleness", [0, 1, 2])
def test_rows_lag_at_most_the_staleness_bound(staleness):
    fake = _Fake(staleness)
    records = fake.run()
    lags = [r["async/version_lag_max"] for r in records]
    want = [min(step, staleness) for step in range(5)]  # steady state: exactly s
    assert lags == want
    assert [r["async/version_lag_mean"] for r in records] == want
    assert sorted(step for step, _ in fake.sampled) == list(range(5))  # each step once
    assert all(step - version <= staleness for step, version in fake.sampled)
    # The queue never holds more than s batches, nor batches past the last step.
    assert [r["async/queued"] for r in records] == [min(staleness, 4 - k) for k in range(5)]
    # A checkpoint after step k holds the data position before step k+1's prompts.
    assert [r["prompt_state"] for r in records] == [k + 1 for k in range(5)]


def test_overlap_off_runs_the_same_schedule():
    on, off = _Fake(1, overlap=True), _Fake(1, overlap=False)
    on.run(), off.run()
    assert on.sampled == off.sampled == [(0, 0), (1, 0), (2, 1), (3, 2), (4, 3)]


# ---------------------------------------------------------------------------- config


def test_settings():
    assert async_rollouts.settings_from_config(_config()) is None
    settings = async_rollouts.settings_from_config(
        _config("rollout.mode=async", "rollout.staleness=2", "rollout.overlap=false"), 8
    )
    assert settings == async_rollouts.AsyncSettings(devices=4, staleness=2, overlap=False)
    learner, rollout = async_rollouts.split_devices(settings, jax.devices())
    assert learner == jax.devices()[:4] and rollout == jax.devices()[4:]


@pytest.mark.parametrize(
    "overrides, key",
    [
        (("rollout.mode=pipelined",), "rollout.mode"),
        (("rollout.staleness=0",), "rollout.staleness"),  # async-only key in sync mode
        (("rollout.mode=async", "rollout.devices=8"), "rollout.devices"),
        (("rollout.mode=async", "rollout.staleness=-1"), "rollout.staleness"),
        (("rollout.mode=async", "sampling.mode=continuous"), "sampling.mode"),
        (("rollout.mode=async", "lora.rank=4"), "lora.rank"),
    ],
)
def test_config_errors_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        async_rollouts.settings_from_config(_config(*overrides), 8)


def test_one_device_cannot_split():
    with pytest.raises(ConfigError, match=r"rollout\.devices"):
        async_rollouts.settings_from_config(_config("rollout.mode=async"), 1)


def test_a_rollout_mesh_that_does_not_fit_the_batch(tmp_path):
    """6 + 2 devices: the learner's 6-way data axis cannot split the 4 rows."""
    with pytest.raises(ConfigError, match=r"data\.prompts_per_step"):
        train.run(_config("rollout.mode=async", "rollout.devices=2"), str(tmp_path))


# ----------------------------------------------------------------------- the trainer


def _records(workdir):
    return metrics.read_metrics(str(workdir))


@pytest.mark.multidevice
@pytest.mark.parametrize(
    "objective",
    [(), ("objective.kl_coef=0.01", "reference.mode=frozen")],
    ids=["no_reference", "kl_to_reference"],
)
def test_staleness_0_is_the_synchronous_run(tmp_path, objective):
    """Async with s = 0 (overlap off) on 4 + 4 devices = the synchronous run on the learner's
    4 devices: same rollouts (sampled on the other 4), same metrics within 1e-6; with a KL
    term the reference log-probs are computed on the learner mesh when the batch is used."""
    train.run(_config(*objective), str(tmp_path / "sync"), devices=jax.devices()[:4])
    train.run(
        _config(*objective, "rollout.mode=async", "rollout.staleness=0", "rollout.overlap=false"),
        str(tmp_path / "async"),
    )
    want, got = _records(tmp_path / "sync"), _records(tmp_path / "async")
    assert [r["step"] for r in got] == [r["step"] for r in want] == [1, 2, 3]
    for a, b in zip(got, want):
        assert a["async/version_lag_max"] == 0.0
        keys = [key for key in b if not key.startswith(TIMING)]
        assert set(keys) <= set(a)
        for key in keys:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-6, err_msg=key)
    assert got[-1]["grad_norm"] > 0


@pytest.mark.multidevice
def test_one_step_stale_rollouts_train_and_overlap(tmp_path):
    """s = 1 with overlap: step k+1's rows are sampled (with version k) while step k updates,
    so they lag one version from the second step on; the loss stays finite. Overlap off runs
    the same schedule one phase after the other: the same numbers."""
    train.run(_config("rollout.mode=async", "rollout.staleness=1"), str(tmp_path / "on"))
    train.run(
        _config("rollout.mode=async", "rollout.staleness=1", "rollout.overlap=false"),
        str(tmp_path / "off"),
    )
    on, off = _records(tmp_path / "on"), _records(tmp_path / "off")
    assert [r["async/version_lag_max"] for r in on] == [0.0, 1.0, 1.0]
    assert [r["async/queued"] for r in on] == [1.0, 1.0, 0.0]
    for record in on:
        assert np.isfinite(record["loss"]) and record["skipped_updates"] == 0
        for key in ("time/learner_wait", "time/sampler_wait", "async/overlap_seconds"):
            assert record[key] >= 0.0
    assert on[0]["async/overlap_seconds"] > 0.0  # step 2's rows sampled during update 1
    assert off[0]["async/overlap_seconds"] == 0.0
    for a, b in zip(on, off):
        for key in b:
            if not key.startswith(TIMING):
                np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-6, err_msg=key)


@pytest.mark.multidevice
def test_the_decoupled_correction_sees_stale_rows(tmp_path, monkeypatch):
    """objective.rollout_correction.mode=on (the decoupled objective): the learner recomputes
    π_prox, so log π_prox - log μ is float noise for step 1's on-policy rows and clearly not
    for the one-version-old rows of steps 2 and 3. Every batch is sampled on the rollout
    mesh's devices (the last 4)."""
    sample, devices = experience.sampler_lib.sample, []

    def recording(params, *args, **kwargs):
        devices.append({d.id for leaf in jax.tree.leaves(params) for d in leaf.devices()})
        return sample(params, *args, **kwargs)

    monkeypatch.setattr(experience.sampler_lib, "sample", recording)
    overrides = ("rollout.mode=async", "objective.rollout_correction.mode=on", "optim.eps=1e-8")
    train.run(_config(*overrides), str(tmp_path))
    assert devices == [{d.id for d in jax.devices()[4:]}] * 3
    gaps = [r["rollout_correction/abs_log_ratio_max"] for r in _records(tmp_path)]
    assert gaps[0] < 1e-5 and min(gaps[1:]) > 100 * max(gaps[0], 1e-7), gaps


@pytest.mark.multidevice
def test_a_resumed_run_skips_no_prompt(tmp_path):
    """The checkpoint after step 2 holds the data position before step 3's prompts (generated
    ahead during step 2, not yet used): resumed from it, step 3 sees the prompts it saw in
    the uninterrupted run."""
    overrides = ("rollout.mode=async", "checkpoint.every=1")
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    train.run(_config(*overrides), str(whole))  # checkpoints 1, 2 and 3
    shutil.copytree(whole, resumed)
    shutil.rmtree(resumed / "checkpoints" / "3")
    (resumed / experience.PROBLEM_REWARDS_FILE).write_text("")
    summary = train.run(_config(*overrides), str(resumed))  # from checkpoint 2: step 3
    assert summary["final_step"] == 3

    def problems(workdir):
        with open(workdir / experience.PROBLEM_REWARDS_FILE) as f:
            return [(r["step"], r["problem_id"]) for r in map(json.loads, f)]

    assert problems(resumed) == [p for p in problems(whole) if p[0] == 3] != []
