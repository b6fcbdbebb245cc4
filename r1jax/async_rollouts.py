"""Bounded-staleness asynchronous rollouts on a rollout mesh beside the learner's (``rollout.*``).

With ``rollout.mode = "async"`` the devices are split in two: the last ``rollout.devices``
form the **rollout mesh**, which only samples, and the others the **learner mesh**, which
holds the train state and runs every update (reference log-probs, evaluation and the warm
start included). Both meshes take the ``mesh.*`` sizes over their own devices (``-1`` fills).
`settings_from_config` reads and checks the keys; `split_devices` cuts the device list.

**The schedule** (`RolloutPipeline.step`, one RL step ``k``; versions count the RL updates
applied, so the learner at step ``k`` holds version ``k``):

1. if step ``k``'s batch was not generated ahead, generate it now with the newest weights on
   the rollout mesh (the learner waits);
2. dispatch update ``k`` on the learner mesh (JAX returns at once; the devices work on);
3. while the update runs, generate the batches of steps ``k+1 .. k+s`` that are not yet
   queued (``s = rollout.staleness``) with the weights the rollout mesh holds (version ``k``):
   sampling, the host's decoding and the verifier pool all overlap the update;
4. wait for update ``k``, then move its weights to the rollout mesh (``jax.device_put`` of the
   policy into the rollout mesh's parameter shardings): version ``k+1``.

A row of step ``j`` sampled with version ``v`` is ``j - v`` versions old when the learner uses
it, never more than ``s`` (AReaL's ``max_head_offpolicyness`` η, arXiv:2505.24298,
repo inclusionAI/AReaL ``areal/infra/staleness_manager.py``; verl's one-step-off policy is
``s = 1``, repo verl-project/verl ``docs/advance/one_step_off.md``). In steady state every
batch is exactly ``s`` versions old; ``s = 0`` generates each batch with the newest weights
(step 1 every time), which is the synchronous run on the two meshes. Every row records its
version (``Experience.policy_versions``).

``rollout.overlap = False`` runs the same schedule in turn: step 3 starts only after update
``k`` has finished (before its weights move). The rows, versions and numbers are the same as
with overlap on (same keys, same weights), only the wall time differs, so the two measure what
the overlap buys. One thread does all of it: JAX dispatches the update asynchronously, and the
host's sampling calls then block only on the rollout mesh's devices.

**Staleness correction.** The learner always has the sampler's per-token log-probs ``μ`` of
the version that sampled the row (``Batch.old_logprobs``). Two corrections are available
through the existing rollout correction: the bypass that verl and AReaL default to, and AReaL's
decoupled PPO objective (arXiv:2505.24298) with a recomputed proximal policy:

- **bypass** (the default, ``objective.rollout_correction.mode`` resolving off): the clipped
  ratio is ``π_θ / μ``, so the trust region is anchored on the stale sampler. No extra pass.
  This is verl's one-step-off default (``rollout_correction.bypass_mode=True``, preset
  ``bypass_ppo_clip``: the ratio against the rollout's log-probs) and AReaL's default
  (``use_decoupled_loss=false``, ``areal/api/cli_args.py``).
- **decoupled** (``objective.rollout_correction.mode = "on"``; ``auto`` turns it on when
  ``sampling.dtype`` differs from ``model.dtype``): the step recomputes the proximal policy
  ``π_prox`` with the learner's current weights before any update (one extra forward pass
  over the batch, `r1jax.learner.step`), clips ``π_θ / π_prox`` and weighs each token by the
  truncated (or masked) ``π_prox / μ`` of ``objective.rollout_correction.*`` (AReaL
  ``areal/utils/functional/functional.py`` ``ppo_actor_loss_fn`` with rejection sampling at
  token level; verl's ``bypass_mode=False`` with ``rollout_is``).

Why bypass by default: every row here is sampled whole by one policy version, so ``μ`` is a
proper behaviour policy and ``π_θ / μ`` a proper PPO ratio against it (unlike a partial
rollout, whose row mixes versions, for which ``auto`` turns the correction on); with ``s = 1``
the rows lag by one update, whose ratios stay close to 1 at GRPO's learning rates, so the clip
on ``π_θ / μ`` already bounds the step. The decoupled form costs one more forward pass of the
whole batch each step (about a third of a forward-and-backward update) and pays off for larger
``s`` or a sampler in another dtype, where ``π_prox / μ`` is no longer close to 1.

**Checkpoints** hold the data position of the oldest batch not yet used
(`RolloutPipeline.prompt_state`): a resumed run generates those batches again, with the restored weights (their
first batch is then on-policy), and skips no prompt.

Not supported (ConfigError naming the key): several processes, ``sampling.mode=continuous``,
LoRA (``lora.rank > 0``), a split that leaves either mesh without devices or does not fit
``mesh.*``.

What does not live here: sampling and verification (`r1jax.experience`), the update
(`r1jax.learner`), the loop (`r1jax.train`).
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from r1jax.config import ConfigError

MODES = ("sync", "async")


@dataclasses.dataclass(frozen=True)
class AsyncSettings:
    """The checked ``rollout.*`` keys of async mode.

    Attributes:
      devices: devices of the rollout mesh (the last ones of the device list).
      staleness: ``s``, the most versions a row may lag the policy that learns from it.
      overlap: whether generation runs while the update runs.
    """

    devices: int
    staleness: int
    overlap: bool


def settings_from_config(config, num_devices: int | None = None) -> AsyncSettings | None:
    """The async settings, or None for ``rollout.mode = "sync"``.

    Args:
      config: the resolved run config.
      num_devices: how many devices the run splits (default: all of JAX's).

    Raises:
      ConfigError: naming the key: an unknown mode, async-only keys changed in sync mode, a
        split that leaves a mesh empty, a negative staleness, several processes, continuous
        sampling or LoRA.

    Example:
      >>> from r1jax import config as config_lib
      >>> c = config_lib.base_config()
      >>> settings_from_config(c) is None
      True
      >>> c.rollout.mode = "async"
      >>> settings_from_config(c, num_devices=8)
      AsyncSettings(devices=4, staleness=1, overlap=True)
    """
    r = config.rollout
    if r.mode not in MODES:
        raise ConfigError(f"rollout.mode={r.mode!r}: must be one of {', '.join(MODES)}")
    if r.mode == "sync":
        for key, default in (("devices", 0), ("staleness", 1), ("overlap", True)):
            if r[key] != default:
                raise ConfigError(
                    f"rollout.{key}={r[key]!r} applies to rollout.mode=async only: set "
                    "rollout.mode=async (or leave the key at its default)"
                )
        return None
    total = len(jax.devices()) if num_devices is None else num_devices
    devices = r.devices or total // 2
    if not 0 < devices < total:
        raise ConfigError(
            f"rollout.devices={r.devices}: the rollout mesh takes 1 .. {total - 1} of the "
            f"{total} devices and the learner mesh the rest (0 = half); rollout.mode=async "
            "needs at least 2 devices"
        )
    if r.staleness < 0:
        raise ConfigError(f"rollout.staleness={r.staleness}: must be >= 0 (0 = on-policy)")
    if jax.process_count() > 1:
        raise ConfigError(
            f"rollout.mode=async runs in one process ({jax.process_count()} here): use "
            "rollout.mode=sync with several processes"
        )
    if config.sampling.mode != "static":
        raise ConfigError(
            f"rollout.mode=async samples with the static sampler: sampling.mode="
            f"{config.sampling.mode!r} is not supported with it (set sampling.mode=static)"
        )
    if config.lora.rank:
        raise ConfigError(
            f"rollout.mode=async moves the full policy to the rollout mesh: lora.rank="
            f"{config.lora.rank} is not supported with it (set lora.rank=0 or rollout.mode=sync)"
        )
    return AsyncSettings(devices=int(devices), staleness=int(r.staleness), overlap=bool(r.overlap))


def split_devices(
    settings: AsyncSettings, devices: Sequence[jax.Device]
) -> tuple[list[jax.Device], list[jax.Device]]:
    """``(learner devices, rollout devices)``: the rollout mesh takes the last ``devices``.

    Example:
      >>> split_devices(AsyncSettings(devices=1, staleness=1, overlap=True), ["d0", "d1", "d2"])
      (['d0', 'd1'], ['d2'])
    """
    devices = list(devices)
    if not 0 < settings.devices < len(devices):
        raise ConfigError(
            f"rollout.devices={settings.devices} does not leave both meshes a device out of "
            f"{len(devices)}"
        )
    cut = len(devices) - settings.devices
    return devices[:cut], devices[cut:]


@dataclasses.dataclass
class _Queued:
    """A generated batch waiting for its update."""

    rl_step: int
    version: int
    experience: Any  # r1jax.experience.Experience
    started: float  # perf_counter when its generation started
    ready: float  # ... and when its rows were verified and on the learner mesh
    prompt_state: Any  # the data iterator's state before its prompts were drawn


def _interval_overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


class _ReadyWatch:
    """Records when the arrays of a tree are ready, from a helper thread (the update's end)."""

    def __init__(self, tree: Any):
        self.finished: float | None = None
        self._thread = threading.Thread(target=self._wait, args=(tree,), daemon=True)
        self._thread.start()

    def _wait(self, tree: Any) -> None:
        jax.block_until_ready(tree)
        self.finished = time.perf_counter()

    def join(self) -> float:
        self._thread.join()
        return self.finished


class RolloutPipeline:
    """The weights on the rollout mesh, their version, and the batches generated ahead.

    Args:
      settings: the checked settings.
      rollout_policy_sharding: the policy's parameter shardings on the rollout mesh.
      collect: ``collect(rl_step, params, version) -> Experience``: samples and verifies
        step ``rl_step``'s batch with ``params`` (on the rollout mesh) and returns it with its
        rows on the learner mesh (`r1jax.experience.ExperienceCollector.collect`).
      prompt_state: ``() -> state`` of the data iterator (saved before each generation).
      total_rl_steps: RL steps of the run (nothing is generated past the last).
    """

    def __init__(
        self,
        settings: AsyncSettings,
        *,
        rollout_policy_sharding: Any,
        collect: Callable[[int, Any, int], Any],
        prompt_state: Callable[[], Any],
        total_rl_steps: int,
    ):
        self.settings = settings
        self.rollout_policy_sharding = rollout_policy_sharding
        self._collect, self._prompt_state = collect, prompt_state
        self.total_rl_steps = total_rl_steps
        self.params: Any = None  # the sampler's weights on the rollout mesh
        self.version: int | None = None  # ... and their version
        self.queue: collections.deque[_Queued] = collections.deque()
        self._learner_free = 0.0  # perf_counter when the last update finished

    def publish(self, policy: Any, version: int) -> float:
        """Moves ``policy`` (the learner's params) to the rollout mesh as ``version``; the
        seconds the copy took (it is waited for, so the learner may donate its state)."""
        started = time.perf_counter()
        self.params = jax.block_until_ready(jax.device_put(policy, self.rollout_policy_sharding))
        self.version = version
        return time.perf_counter() - started

    def prompt_state(self) -> Any:
        """The data position a checkpoint should hold: before the oldest queued batch."""
        return self.queue[0].prompt_state if self.queue else self._prompt_state()

    def _generate(self, rl_step: int) -> _Queued:
        prompt_state = self._prompt_state()
        started = time.perf_counter()
        experience = self._collect(rl_step, self.params, self.version)
        rows = len(experience.texts)
        experience.policy_versions = np.full((rows,), self.version, np.int64)
        return _Queued(
            rl_step, self.version, experience, started, time.perf_counter(), prompt_state
        )

    def step(
        self,
        rl_step: int,
        policy: Any,
        update: Callable[[Any], tuple[Any, Any, Callable[[], Any]]],
    ) -> tuple[Any, Any, dict[str, float]]:
        """One RL step as the module docstring's schedule says.

        Args:
          rl_step: the RL step ``k`` (the learner holds version ``k``).
          policy: the learner's current params (published first if the rollout mesh holds
            none yet: the run's first RL step, or the first after a resume).
          update: ``update(experience) -> (result, ready_tree, new_policy)``: dispatches the
            update on the experience's batch; ``ready_tree`` is an output that is ready when
            the update has finished, ``new_policy()`` the updated params (called after it).

        Returns:
          ``(experience used, update's result, host metrics)``: ``async/version_lag_mean``
          and ``_max`` over the batch's rows, ``async/queued`` (batches generated ahead),
          ``time/learner_wait`` (the learner idle for want of rollouts),
          ``time/sampler_wait`` (the rollout mesh idle during the update: it has generated
          all it may with the weights it holds),
          ``time/update_device`` (dispatch to finish of the update), ``time/weight_transfer``,
          ``async/overlap_seconds`` (update and generation at once) and
          ``async/overlap_fraction`` (that over the update's time).
        """
        transfer = 0.0
        if self.version is None:
            transfer += self.publish(policy, rl_step)
        if not self.queue:  # nothing generated ahead: the learner waits for this one
            self.queue.append(self._generate(rl_step))
        queued = self.queue.popleft()
        if queued.rl_step != rl_step:
            raise RuntimeError(f"queued rollouts of step {queued.rl_step} at step {rl_step}")
        learner_wait = max(0.0, queued.ready - max(self._learner_free, queued.started))
        dispatched = time.perf_counter()
        result, ready_tree, new_policy = update(queued.experience)
        watch = _ReadyWatch(ready_tree)
        if not self.settings.overlap:
            watch.join()
        spans = []
        last = rl_step + len(self.queue)  # the newest step generated so far
        while last + 1 < self.total_rl_steps and last + 1 - self.version <= self.settings.staleness:
            last += 1
            self.queue.append(self._generate(last))
            spans.append((self.queue[-1].started, self.queue[-1].ready))
        finished = watch.join()
        transfer += self.publish(new_policy(), rl_step + 1)
        self._learner_free = finished
        update_span = (dispatched, finished)
        overlap = sum(_interval_overlap(update_span, span) for span in spans)
        lags = rl_step - queued.experience.policy_versions
        metrics = {
            "async/version_lag_mean": float(lags.mean()),
            "async/version_lag_max": float(lags.max()),
            "async/queued": float(len(self.queue)),
            "async/overlap_seconds": overlap,
            "async/overlap_fraction": overlap / max(finished - dispatched, 1e-9),
            "time/learner_wait": learner_wait,
            "time/sampler_wait": max(0.0, finished - dispatched - overlap),
            "time/update_device": finished - dispatched,
            "time/weight_transfer": transfer,
        }
        return queued.experience, result, metrics
