"""The weight matmuls of a model alone: how fast a step could be if nothing else cost time.

Small matmuls run below the peak of the large square matmul that defines it, and a decode step
or an update also spends time in attention, norms, activations and per-op overhead. Timing the
weight matmuls on their own, at a workload's shapes and contracted exactly as the model does
(`r1jax.models.layers.linear`, with its hand-written backward), separates the two: the result
is a floor for any implementation built from these matmuls on this machine.
"""

import functools
import math
import time

import jax
import jax.numpy as jnp

from r1jax.models import ModelConfig, flops_per_token, kernels_by_rows
from r1jax.models.layers import linear, linear_by_rows


def best_time(fn, repeats: int) -> float:
    """The shortest wall time of ``repeats`` calls of ``fn`` (each waited for)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


def _project(x: jax.Array, kernel: jax.Array, num_in: int, dtype, by_rows: bool) -> jax.Array:
    """``x [N, *in]`` times a kernel stored ``[*in, *out]``, or ``[*out, *in]`` when
    ``by_rows``, as `r1jax.models.layers.Projection` contracts it: ``[N, *out]``."""
    if not by_rows:
        return linear(x, kernel, num_in, dtype)
    out_shape = kernel.shape[: kernel.ndim - num_in]
    rows = kernel.reshape(math.prod(out_shape), -1)  # [O, I]
    flat = x.reshape(x.shape[0], -1)  # [N, I]
    return linear_by_rows(flat, rows, dtype).reshape(x.shape[0], *out_shape)


def weight_matmuls(
    params,
    config: ModelConfig,
    hidden: jax.Array,
    scored_rows: int | None = None,
    by_rows: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """Every weight matmul of one pass over ``hidden [N, D]``, and nothing else.

    Each layer's q/k/v/o and gate/up/down projections at ``N`` rows, then the unembedding of
    the first ``scored_rows`` rows (all when None), chained so that each layer depends on the
    one before (and a loop's steps on each other); no attention, norms or activations.
    ``by_rows``: ``params`` are in the layout of `r1jax.models.kernels_by_rows`.

    Returns:
      ``([N, D], [scored_rows, V])``: the last layer's output, kept near ``hidden`` so a long
      loop neither overflows nor decays into denormals, and the logits.
    """
    dtype = config.compute_dtype
    rows = hidden.shape[0]
    x = hidden
    for i in range(config.num_layers):
        attn, mlp = params[f"layers_{i}"]["attn"], params[f"layers_{i}"]["mlp"]
        project = functools.partial(_project, dtype=dtype, by_rows=by_rows)
        q = project(x, attn["q_proj"]["kernel"], 1)  # [N, H, Dh]
        k = project(x, attn["k_proj"]["kernel"], 1)  # [N, K, Dh]
        v = project(x, attn["v_proj"]["kernel"], 1)  # [N, K, Dh]
        o = project(q, attn["o_proj"]["kernel"], 2)  # [N, D]
        gate = project(x, mlp["gate_proj"]["kernel"], 1)  # [N, F]
        up = project(x, mlp["up_proj"]["kernel"], 1)  # [N, F]
        down = project(gate + up, mlp["down_proj"]["kernel"], 1)  # [N, D]
        kv = (k + v).reshape(rows, -1)[:, :1]  # [N, 1]
        x = hidden + 1e-3 * (o + down + kv)
    scored = x if scored_rows is None else x[:scored_rows]
    if config.tie_embeddings:
        logits = linear_by_rows(scored, params["embed"]["embedding"], dtype)  # [n, V]
    else:
        logits = _project(scored, params["lm_head"]["kernel"], 1, dtype, by_rows)  # [n, V]
    return x, logits


def decode_seconds(
    params, config: ModelConfig, rows: int, steps: int, repeats: int, by_rows: bool = False
) -> tuple[float, int]:
    """``(seconds, flops)`` of ``steps`` decode steps' weight matmuls at ``rows`` rows.

    Looped in one compiled program as the sampler loops its steps; the best of ``repeats``.
    ``by_rows``: contract the kernels in the sampler's decode layout (``params`` are converted
    with `r1jax.models.kernels_by_rows` first, untimed), as `r1jax.sampling.sample` does.
    """
    hidden = jnp.ones((rows, config.hidden_size), jnp.float32)
    if by_rows:
        params = jax.jit(kernels_by_rows, static_argnames="config")(params, config)

    @jax.jit
    def loop(params, hidden):
        def step(_, x):
            out, logits = weight_matmuls(params, config, x, by_rows=by_rows)
            return out + 1e-3 * logits[:, :1]

        return jax.lax.fori_loop(0, steps, step, hidden)

    jax.block_until_ready(loop(params, hidden))
    seconds = best_time(lambda: loop(params, hidden), repeats)
    return seconds, steps * rows * flops_per_token(config, context_length=0)


def update_matmuls(policy, reference, config: ModelConfig, hidden: jax.Array, scored_rows: int):
    """An update's weight matmuls over ``hidden [N, D]``: the reference's forward (skipped when
    ``reference`` is None), then the policy's forward and backward (input and weight
    gradients), unembedding ``scored_rows`` rows. Returns ``(reference sum, policy grads)``."""

    def loss(params, hidden):
        out, logits = weight_matmuls(params, config, hidden, scored_rows)
        return jnp.sum(logits) + jnp.sum(out)

    ref = 0.0
    if reference is not None:
        ref = jnp.sum(weight_matmuls(reference, config, hidden, scored_rows)[1])
    return ref, jax.grad(loss)(policy, hidden)


def update_seconds(
    policy, reference, config: ModelConfig, rows: int, scored_rows: int, repeats: int
) -> float:
    """Seconds of `update_matmuls` at ``rows`` token rows, ``scored_rows`` of them unembedded;
    one compiled program, the best of ``repeats``."""
    hidden = jnp.ones((rows, config.hidden_size), jnp.float32)
    update = jax.jit(functools.partial(update_matmuls, config=config, scored_rows=scored_rows))
    jax.block_until_ready(update(policy, reference, hidden=hidden))
    return best_time(lambda: update(policy, reference, hidden=hidden), repeats)
