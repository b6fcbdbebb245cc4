"""Log-probs of a batch's completion tokens under some params, as the learner needs them.

With LoRA the learner's "params" are adapters; `model_params` joins them to the frozen base
(`r1jax.models.lora.combine`) right before the forward, so gradients reach only the adapters.

Not here: the model's forward pass and chunked log-softmax (`r1jax.models.token_logprobs`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from r1jax.learner import length_groups
from r1jax.learner.batch import Batch
from r1jax.learner.config import LearnerConfig
from r1jax.models import lora as lora_lib
from r1jax.models import token_logprobs


def model_params(
    params: Any, base: Any, config: LearnerConfig, *, dropout_key: jax.Array | None = None
) -> Any:
    """What the forward takes: ``params`` itself, or with ``config.lora`` the base with the
    adapters ``params`` applied (``params`` None: the base alone, adapters off).

    ``dropout_key``: the LoRA dropout masks of a training forward (None: no dropout).
    """
    if config.lora is None:
        return params
    return lora_lib.combine(base, params, config.lora, dropout_key=dropout_key)


def sequence_inputs(batch: Batch) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Prompt and completion joined: tokens, positions and key mask, each ``[B, S]``.

    Positions count real tokens only (left padding does not advance them), the sampler's
    convention: the first completion token sits at position ``prompt_length``.
    """
    tokens = jnp.concatenate([batch.prompt_tokens, batch.completion_tokens], axis=1)  # [B, S]
    mask = jnp.concatenate(
        [batch.prompt_mask.astype(bool), jnp.ones(batch.completion_tokens.shape, bool)], axis=1
    )  # [B, S]
    positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0).astype(jnp.int32)  # [B, S]
    return tokens.astype(jnp.int32), positions, mask


def completion_logprobs(
    params: Any, batch: Batch, config: LearnerConfig, *, with_entropy: bool
) -> tuple[jax.Array, jax.Array | None]:
    """``[B, T]`` log-probs of the completion tokens (and ``[B, T]`` entropies when asked),
    under ``log_softmax(logits / config.temperature)``."""
    tokens, positions, mask = sequence_inputs(batch)
    out = token_logprobs(
        params,
        tokens,
        positions,
        config.model,
        attention_mask=mask,
        target_start=batch.prompt_tokens.shape[1],
        temperature=config.temperature,
        chunk_size=config.logprob_chunk_size,
        remat=config.remat,
        return_entropy=with_entropy,
        rules=config.rules,
    )
    return out if with_entropy else (out, None)


def split_rows(tree: Any, parts: int) -> Any:
    """Reshapes every ``[B, ...]`` leaf to ``[parts, B/parts, ...]``."""

    def split(x):
        if x.shape[0] % parts:
            raise ValueError(f"batch of {x.shape[0]} rows does not split into {parts} parts")
        return x.reshape(parts, x.shape[0] // parts, *x.shape[1:])

    return jax.tree.map(split, tree)


def _rows_in_chunks(fn: Any, batch: Batch, rows_per_chunk: int) -> jax.Array:
    """``fn(batch_chunk) -> [b, ...]`` over chunks of rows with ``lax.map``; ``[B, ...]``."""
    rows = batch.rows
    if rows_per_chunk <= 0 or rows_per_chunk >= rows or rows % rows_per_chunk:
        return fn(batch)
    chunks = split_rows(batch, rows // rows_per_chunk)
    out = jax.lax.map(fn, chunks)  # [n, b, ...]
    return out.reshape(rows, *out.shape[2:])


def reference_logprobs_fn(
    reference: Any, batch: Batch, config: LearnerConfig, base: Any = None
) -> jax.Array:
    """``[B, T]`` reference log-probs of the completions (no gradient), in micro-batches:
    ``config.micro_batch_size`` rows each, or with ``config.micro_batch_tokens`` rows sorted
    by length and cut to buckets (`r1jax.learner.length_groups.map_rows`; then 0 past each
    row's last sampled token, where no loss reads them).

    With LoRA, ``reference`` is an adapters tree (or None: the base with the adapters off)
    applied to ``base``.
    """
    params = model_params(reference, base, config)

    def score(chunk):
        return completion_logprobs(params, chunk, config, with_entropy=False)[0]

    if config.micro_batch_tokens:
        out = length_groups.map_rows(
            score, batch, budget=config.micro_batch_tokens, buckets=config.length_buckets
        )
    else:
        out = _rows_in_chunks(score, batch, config.micro_batch_size)
    return jax.lax.stop_gradient(out)


reference_logprobs = jax.jit(reference_logprobs_fn, static_argnames="config")
