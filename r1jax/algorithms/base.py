"""What an algorithm provides to the generic update step (`r1jax.learner.step`).

An algorithm is a frozen, hashable config object (so the compiled step can take it as a static
argument) whose methods the step calls in this order, every one a pure function of arrays:

1. ``prepare(batch, config) -> (prepared, metrics)`` on the full batch, before any split:
   rewards, advantages, the loss mask. ``prepared`` is a dict of ``[B, ...]`` arrays that is
   split with the batch into mini- and micro-batches; it must hold ``"loss_mask"`` ``[B, T]``.
2. ``denominator(prepared, config) -> scalar`` once per mini-batch: the loss aggregation's
   denominator over the whole mini-batch, so micro-batch losses add up to the mini-batch loss.
3. ``loss(logprobs, entropy, batch, prepared, denominator, config) -> (loss, sums)`` per
   micro-batch, with the policy's ``[b, T]`` log-probs and entropies; every entry of ``sums``
   adds up over micro-batches (``"tokens"``: the loss tokens, ``"loss"``: this micro-batch's
   share of the loss).
4. ``summarize(sums) -> metrics`` once per step, from the sums added over every micro-batch
   and update.

It also has ``num_iterations`` (passes over each batch) and ``uses_reference`` (whether the step
needs the reference's log-probs: the batch then carries ``reference_logprobs``). An algorithm
may also have ``uses_learner_logprobs`` (missing means False): the step then fills
``learner_logprobs``, the policy's own log-probs before any update (rollout correction), and
``loss_couples_rows`` (missing means False): True when ``loss`` is not a sum over rows (online
DPO pairs the rows of a group), which rules out length-sorted micro-batches
(`r1jax.learner.length_groups`). Otherwise every ``prepared`` leaf with a second axis is
per-token, ``[B, T, ...]``, so a micro-batch can cut it with the completions.

Each algorithm module also holds ``PRESETS``: named presets as config-key overrides (dotted
keys of `r1jax.config.base_config`), applied between the base defaults and the experiment file,
and ``from_config(config)``, the one translation of a resolved config into the frozen object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import jax
import jax.numpy as jnp


class Algorithm(Protocol):
    """The methods the generic step calls (see the module docstring for the order)."""

    num_iterations: int

    @property
    def uses_reference(self) -> bool: ...

    def prepare(self, batch: Any, config: Any) -> tuple[dict[str, jax.Array], dict[str, Any]]: ...

    def denominator(self, prepared: dict[str, jax.Array], config: Any) -> jax.Array: ...

    def loss(
        self,
        logprobs: jax.Array,
        entropy: jax.Array,
        batch: Any,
        prepared: dict[str, jax.Array],
        denominator: jax.Array,
        config: Any,
    ) -> tuple[jax.Array, dict[str, jax.Array]]: ...

    def summarize(self, sums: Mapping[str, jax.Array]) -> dict[str, jax.Array]: ...


def per_token_means(sums: Mapping[str, jax.Array], names: tuple[str, ...]) -> dict[str, jax.Array]:
    """``sums[name] / sums["tokens"]`` for each of ``names`` present (the tokens at least 1).

    ``sums`` leaves are ``[U]`` (one entry per optimizer update) or scalars; they are added.
    """
    tokens = jnp.maximum(jnp.sum(sums["tokens"]), 1.0)
    return {name: jnp.sum(sums[name]) / tokens for name in names if name in sums}
