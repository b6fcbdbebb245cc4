"""Linen building blocks of the decoder: RMSNorm, embedding, GQA attention, SwiGLU MLP, block.

Lives here: the modules, the masked-softmax attention (`attend`, XLA) and the fused causal
attention of a forward without a cache or a prefill (`causal_attention`: cuDNN on GPU, Pallas
splash attention on TPU; ``model.attention`` chooses). Every param is declared with
`nn.with_logical_partitioning` (logical names ``embed``, ``vocab``, ``heads``, ``kv_heads``,
``head_dim``, ``mlp``, ``norm``). Not here: the stack of blocks, masks and the public
`forward` (`r1jax.models.transformer`), cache layout (`r1jax.models.kv_cache`).

Layouts (einsum letters as in the shape vocabulary): q kernel ``[D, H, Dh]``, k/v kernels
``[D, K, Dh]``, o kernel ``[H, Dh, D]``, gate/up ``[D, F]``, down ``[F, D]``, embedding
``[V, D]``, untied unembedding ``[D, V]``; with ``kernels_by_rows`` every kernel is stored
output dims first (q ``[H, Dh, D]``, o ``[D, H, Dh]``, gate/up ``[F, D]``, unembedding
``[V, D]``, ...), the decode layout of `r1jax.models.transformer.kernels_by_rows`. Matmuls run
in ``config.dtype`` and accumulate in float32 (``preferred_element_type``); norms, softmax and
logits are float32.

The modules declare shapes, dtypes and logical axes; their initializers are placeholders
(ones for norm scales, zeros elsewhere). `r1jax.models.transformer.init_params` draws the
random kernels and embeddings for the whole tree at once.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from r1jax.models.config import ModelConfig
from r1jax.models.rope import apply_rope
from r1jax.sharding import ShardingRules, constrain

# Large but finite, so a query row whose keys are all masked (a left-pad position) gives a
# uniform softmax instead of NaN.
MASK_VALUE = -0.7 * float(np.finfo(np.float32).max)
HIGHEST = lax.Precision.HIGHEST


def _dot(x: jax.Array, w: jax.Array) -> jax.Array:
    """``[N, I] x [I, O] -> [N, O]`` float32 (accumulated in float32)."""
    return jnp.dot(x, w, preferred_element_type=jnp.float32)


@jax.custom_vjp
def _linear(x: jax.Array, w: jax.Array) -> jax.Array:
    """``[N, I] x [I, O] -> [N, O]`` float32; see `linear` for why it has its own gradient."""
    return _dot(x, w)


def _linear_fwd(x, w):
    return _dot(x, w), (x, w)


def _dot_transposed(x: jax.Array, w: jax.Array) -> jax.Array:
    """``[N, O] x [I, O]^T -> [N, I]`` float32: contracts ``w`` in its stored layout.

    Written as one `lax.dot_general` rather than ``dot(x, w.T)``: XLA:CPU turns a dot whose
    operand is a transpose op into an upcast float32 dot for 16-bit inputs (measured on a
    ``[2560, 1536] x [512, 1536]^T`` bfloat16 product: 15.4 ms against 3.4 ms).
    """
    return lax.dot_general(x, w, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)


def transpose_copy(x: jax.Array) -> jax.Array:
    """``[N, I] -> [I, N]`` as a physical copy that the compiler keeps.

    XLA folds a plain transpose into the dot that consumes it, giving a dot that contracts
    its left operand's major dimension; XLA:CPU's YNNPACK matmuls do not take that form in
    16-bit, so the dot is upcast to a float32 Eigen matmul (measured on a bfloat16 weight
    gradient ``[512, 2560] x [2560, 1536]``: 16.6 ms against 4.4 ms). A transpose between two
    reshapes is not folded, and costs the same as the copy the transpose needs anyway.

    Example:
      >>> transpose_copy(jnp.arange(6).reshape(2, 3)).tolist()
      [[0, 3], [1, 4], [2, 5]]
    """
    rows, cols = x.shape
    return x.reshape(rows, cols, 1).transpose(1, 2, 0).reshape(cols, rows)


def _linear_bwd(residuals, grad):
    x, w = residuals  # [N, I], [I, O]
    grad_x = _dot_transposed(grad.astype(w.dtype), w)  # [N, I]
    grad = grad.astype(x.dtype)
    # The weight gradient contracts the row axis N, the major axis of both x and grad, so one
    # of them must be laid out transposed. Transpose the narrower one, as a plain copy of its
    # own: left to the compiler, the transpose can land on the wider gradient and fuse into
    # the elementwise ops that produce it, which then write with a stride (seen on XLA:CPU,
    # where that fused transpose was the costliest op of a SwiGLU block's backward pass), or
    # fold into the dot (see `transpose_copy`).
    if x.shape[1] <= grad.shape[1]:
        x_t = jax.lax.optimization_barrier(transpose_copy(x))  # [I, N]
        grad_w = _dot(x_t, grad)  # [I, O]
    else:
        grad_t = jax.lax.optimization_barrier(transpose_copy(grad))  # [O, N]
        grad_w = transpose_copy(_dot(grad_t, x))  # [I, O]; a plain .T folds into the dot
    return grad_x.astype(x.dtype), grad_w.astype(w.dtype)


_linear.defvjp(_linear_fwd, _linear_bwd)


@jax.custom_vjp
def _linear_by_rows(x: jax.Array, w_rows: jax.Array) -> jax.Array:
    """``[N, I] x [O, I]^T -> [N, O]`` float32: `_linear` with the weight stored by output."""
    return jnp.einsum("ni,oi->no", x, w_rows, preferred_element_type=jnp.float32)


def _linear_by_rows_fwd(x, w_rows):
    return _linear_by_rows(x, w_rows), (x, w_rows)


def _linear_by_rows_bwd(residuals, grad):
    x, w_rows = residuals  # [N, I], [O, I]
    grad = grad.astype(w_rows.dtype)
    grad_x = _dot(grad, w_rows)  # [N, I]
    # The weight gradient [O, I] contracts N, the major axis of grad and x: either grad is
    # transposed, or x and then the [I, O] product are (see `_linear_bwd`). Copy fewer elements.
    rows, width = x.shape
    outputs = grad.shape[1]
    if rows * outputs <= rows * width + width * outputs:
        grad_t = jax.lax.optimization_barrier(transpose_copy(grad))  # [O, N]
        grad_w = _dot(grad_t, x.astype(grad.dtype))  # [O, I]
    else:
        x_t = jax.lax.optimization_barrier(transpose_copy(x.astype(grad.dtype)))  # [I, N]
        grad_w = transpose_copy(_dot(x_t, grad))  # [O, I]
    return grad_x.astype(x.dtype), grad_w.astype(w_rows.dtype)


_linear_by_rows.defvjp(_linear_by_rows_fwd, _linear_by_rows_bwd)


def linear_by_rows(x: jax.Array, w_rows: jax.Array, dtype: jnp.dtype) -> jax.Array:
    """``x [..., I]`` times the transpose of ``w_rows [O, I]`` (a tied unembedding), as `linear`.

    The forward contracts ``w_rows`` in its stored layout, so a decode loop can keep one
    transposed copy of a large embedding outside the loop.

    Example:
      >>> linear_by_rows(jnp.ones((2, 3, 4)), jnp.ones((5, 4)), jnp.float32).shape
      (2, 3, 5)
    """
    x2 = x.reshape(-1, x.shape[-1]).astype(dtype)  # [N, I]
    out = _linear_by_rows(x2, w_rows.astype(dtype))  # [N, O]
    return out.reshape(*x.shape[:-1], w_rows.shape[0])


def linear(x: jax.Array, w: jax.Array, num_in: int, dtype: jnp.dtype) -> jax.Array:
    """Contracts the last ``num_in`` dims of ``x`` with the first ``num_in`` dims of ``w``.

    Runs in ``dtype`` with float32 accumulation and returns float32 ``[..., *w.shape[num_in:]]``.
    The gradient is the usual one, computed as two 2-D matmuls whose transposed operand is
    chosen explicitly (see ``_linear_bwd``).

    Example:
      >>> linear(jnp.ones((2, 3, 4)), jnp.ones((4, 5)), 1, jnp.float32).shape
      (2, 3, 5)
    """
    batch_shape = x.shape[: x.ndim - num_in]
    out_shape = w.shape[num_in:]
    x2 = x.reshape(-1, math.prod(x.shape[x.ndim - num_in :])).astype(dtype)  # [N, I]
    w2 = w.reshape(-1, math.prod(out_shape)).astype(dtype)  # [I, O]
    return _linear(x2, w2).reshape(*batch_shape, *out_shape)


class RMSNorm(nn.Module):
    """Root-mean-square norm over the last axis, computed in float32."""

    config: ModelConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param(
            "scale",
            nn.with_logical_partitioning(nn.initializers.ones, ("norm",)),
            (x.shape[-1],),
            self.config.params_dtype,
        )
        x32 = x.astype(jnp.float32)
        x32 = x32 * lax.rsqrt(
            jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.config.rms_norm_eps
        )
        return (x32 * scale.astype(jnp.float32)).astype(self.config.compute_dtype)


class Embed(nn.Module):
    """Token embedding ``[V, D]``; `attend` is the tied unembedding."""

    config: ModelConfig

    def setup(self):
        self.embedding = self.param(
            "embedding",
            nn.with_logical_partitioning(nn.initializers.zeros, ("vocab", "embed")),
            (self.config.vocab_size, self.config.hidden_size),
            self.config.params_dtype,
        )

    def __call__(self, tokens: jax.Array) -> jax.Array:
        """``[B, S]`` ids -> ``[B, S, D]`` embeddings in the compute dtype."""
        return jnp.take(self.embedding, tokens, axis=0).astype(self.config.compute_dtype)

    def attend(self, x: jax.Array) -> jax.Array:
        """``[B, S, D]`` -> ``[B, S, V]`` float32 logits against the embedding matrix."""
        return linear_by_rows(x, self.embedding, self.config.compute_dtype)


class Unembed(nn.Module):
    """Untied output projection ``[D, V]`` (HF ``lm_head``), ``[V, D]`` with ``by_rows``."""

    config: ModelConfig
    by_rows: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """``[B, S, D]`` -> ``[B, S, V]`` float32 logits."""
        cfg = self.config
        if self.by_rows:  # [V, D]
            axes, shape = ("vocab", "embed"), (cfg.vocab_size, cfg.hidden_size)
        else:  # [D, V]
            axes, shape = ("embed", "vocab"), (cfg.hidden_size, cfg.vocab_size)
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(nn.initializers.zeros, axes),
            shape,
            cfg.params_dtype,
        )
        if self.by_rows:
            return linear_by_rows(x, kernel, cfg.compute_dtype)
        return linear(x, kernel, 1, cfg.compute_dtype)


def attend(
    q: jax.Array, keys: jax.Array, values: jax.Array, mask: jax.Array, dtype: jnp.dtype
) -> jax.Array:
    """Grouped-query attention without repeating KV heads.

    Args:
      q: ``[B, S, H, Dh]`` queries (after RoPE).
      keys: ``[B, K, Dh, T]`` head-major keys (after RoPE), the cache's layout; ``T`` is ``S``
        or the attended cache length.
      values: ``[B, K, T, Dh]``.
      mask: ``[B, S, T]`` bool, True where query ``s`` may attend key ``t``.
      dtype: compute dtype of the model; the two matmuls run in it, or in float32 when the
        keys are float32 (a float32 cache under a 16-bit model; scores and softmax are always
        float32).

    Returns:
      ``[B, S, H, Dh]`` in ``dtype``.
    """
    batch, length, num_heads, head_dim = q.shape
    num_kv_heads = keys.shape[1]
    out_dtype = dtype
    dtype = jnp.promote_types(dtype, keys.dtype)
    if length == 1:
        return _attend_one_query(q, keys, values, mask, dtype).astype(out_dtype)
    q = q.reshape(batch, length, num_kv_heads, num_heads // num_kv_heads, head_dim)  # [B,S,K,G,Dh]
    scores = jnp.einsum(
        "bskgd,bkdt->bkgst", q.astype(dtype), keys.astype(dtype), preferred_element_type=jnp.float32
    )  # [B, K, G, S, T]
    scores = scores * np.float32(head_dim**-0.5)
    scores = jnp.where(mask[:, None, None, :, :], scores, MASK_VALUE)
    probs = jax.nn.softmax(scores, axis=-1)
    out = jnp.einsum(
        "bkgst,bktd->bskgd",
        probs.astype(dtype),
        values.astype(dtype),
        preferred_element_type=jnp.float32,
    )  # [B, S, K, G, Dh]
    return out.reshape(batch, length, num_heads, head_dim).astype(out_dtype)  # [B, S, H, Dh]


FUSED_ATTENTION = ("cudnn", "splash", "dot_product")


def attention_implementation(
    choice: str, platform: str | None = None, *, compute_dtype: str = "bfloat16"
) -> str:
    """The attention a forward without a cache (and a prefill) runs, from ``model.attention``.

    ``auto`` picks cuDNN's fused attention on GPU (it takes 16-bit inputs only, so a float32
    model keeps the XLA path there), Pallas splash attention on TPU and the XLA masked softmax
    (`attend`) elsewhere; any other value is kept. ``platform`` defaults to
    ``jax.default_backend()``.

    Example:
      >>> attention_implementation("auto", "tpu"), attention_implementation("auto", "cpu")
      ('splash', 'xla')
      >>> attention_implementation("auto", "gpu", compute_dtype="float32")
      'xla'
    """
    if choice != "auto":
        return choice
    platform = jax.default_backend() if platform is None else platform
    if platform == "gpu" and compute_dtype == "float32":
        return "xla"
    return {"gpu": "cudnn", "tpu": "splash"}.get(platform, "xla")


def compaction_order(key_mask: jax.Array) -> jax.Array:
    """``[B, S]`` gather indices that put each row's real tokens first, in order.

    Example:
      >>> compaction_order(jnp.array([[False, True, True]])).tolist()
      [[1, 2, 0]]
    """
    return jnp.argsort(~key_mask, axis=1, stable=True).astype(jnp.int32)


def _splash_kernel(q: jax.Array, keys: jax.Array, values: jax.Array, interpret: bool = False):
    """Causal splash attention on ``[B, H, S, Dh]`` queries (pre-scaled), ``[B, K, S, Dh]``
    keys and values; ``S`` a multiple of 128."""
    from jax.experimental.pallas.ops.tpu import splash_attention as splash

    _, num_heads, length, _ = q.shape
    block = next(b for b in (512, 256, 128) if length % b == 0)
    sizes = splash.BlockSizes(
        block_q=block,
        block_kv=block,
        block_kv_compute=block,
        block_q_dkv=block,
        block_kv_dkv=block,
        block_kv_dkv_compute=block,
        block_q_dq=block,
        block_kv_dq=block,
    )
    mask = splash.MultiHeadMask([splash.CausalMask((length, length))] * num_heads)
    kernel = splash.make_splash_mha(
        mask, block_sizes=sizes, head_shards=1, q_seq_shards=1, interpret=interpret
    )
    return jax.vmap(kernel)(q, keys, values)


def causal_attention(
    q: jax.Array,
    keys: jax.Array,
    values: jax.Array,
    key_mask: jax.Array,
    implementation: str,
    rules: ShardingRules | None = None,
    *,
    interpret: bool = False,
) -> jax.Array:
    """Causal self-attention over left- (or otherwise) padded rows with a fused kernel.

    Each row's real tokens are gathered to the front (`compaction_order`), in order, so that a
    plain causal mask is exact for them: a real query then sees exactly the real keys at or
    before it, and the pads, now at the end, are seen by pad queries only (whose outputs no
    caller reads; they stay finite). The kernels take no ``[S, S]`` mask, so no ``[B, H, S, S]``
    score tensor is ever held. The output is scattered back to the original order.

    On a mesh the kernel runs per shard (``jax.shard_map``): rows split as ``batch``, heads as
    ``heads`` when the rule's axes divide both ``H`` and ``K``, replicated otherwise.

    Args:
      q: ``[B, S, H, Dh]`` queries after RoPE.
      keys: ``[B, S, K, Dh]`` keys after RoPE.
      values: ``[B, S, K, Dh]``.
      key_mask: ``[B, S]`` bool, True on real tokens.
      implementation: ``cudnn`` (`jax.nn.dot_product_attention`, cuDNN flash attention),
        ``splash`` (Pallas splash attention, TPU), ``dot_product``
        (`jax.nn.dot_product_attention`'s XLA implementation: the cuDNN path's layout on any
        platform).
      rules: sharding rules (for the per-shard split).
      interpret: run the splash kernel in the Pallas interpreter (tests on CPU).

    Returns:
      ``[B, S, H, Dh]`` in ``q``'s dtype.
    """
    order = compaction_order(key_mask)  # [B, S]
    inverse = jnp.argsort(order, axis=1)  # [B, S]

    def gather(x, index):
        return jnp.take_along_axis(x, index[:, :, None, None], axis=1)

    q, keys, values = (gather(x, order) for x in (q, keys, values))
    head_dim = q.shape[-1]

    def kernel(q, keys, values):
        if implementation in ("cudnn", "dot_product"):
            return jax.nn.dot_product_attention(
                q,
                keys,
                values,
                is_causal=True,
                implementation="cudnn" if implementation == "cudnn" else "xla",
            )
        if implementation != "splash":
            raise ValueError(
                f"unknown fused attention {implementation!r}; one of {FUSED_ATTENTION}"
            )
        length = q.shape[1]
        padded = -(-length // 128) * 128
        widths = ((0, 0), (0, padded - length), (0, 0), (0, 0))
        q, keys, values = (jnp.pad(x, widths).transpose(0, 2, 1, 3) for x in (q, keys, values))
        q = q * jnp.asarray(head_dim**-0.5, q.dtype)
        out = _splash_kernel(q, keys, values, interpret)  # [B, H, S', Dh]
        return out.transpose(0, 2, 1, 3)[:, :length]

    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or mesh.size == 1:
        out = kernel(q, keys, values)
    else:
        from r1jax.sharding import logical_to_spec

        kv_spec = logical_to_spec(
            ("batch", "seq", "kv_heads", "head_dim"), rules, shape=keys.shape, mesh=mesh
        )
        q_spec = logical_to_spec(
            ("batch", "seq", "heads", "head_dim"), rules, shape=q.shape, mesh=mesh
        )
        if q_spec[2] != kv_spec[2]:  # heads and KV heads must split alike: replicate both
            q_spec = jax.sharding.PartitionSpec(q_spec[0], None, None, None)
            kv_spec = jax.sharding.PartitionSpec(kv_spec[0], None, None, None)
        out = jax.shard_map(
            kernel,
            in_specs=(q_spec, kv_spec, kv_spec),
            out_specs=q_spec,
            check_vma=False,
        )(q, keys, values)
    return gather(out, inverse)


def _one_query_scores(
    q: jax.Array, keys: jax.Array, mask: jax.Array, dtype: jnp.dtype
) -> jax.Array:
    """Scaled float32 scores ``[B, K, G, T]`` of ``q [B, K, G, Dh]`` against ``keys [B, K,
    Dh, T]`` (one ``[G, Dh] x [Dh, T]`` product per ``(B, K)``), ``MASK_VALUE`` where the
    ``[B, 1, T]`` ``mask`` is False."""
    scores = jnp.einsum(
        "bkgd,bkdt->bkgt", q.astype(dtype), keys.astype(dtype), preferred_element_type=jnp.float32
    )
    scores = scores * np.float32(q.shape[-1] ** -0.5)
    return jnp.where(mask[:, :, None, :], scores, MASK_VALUE)


def _attend_one_query(
    q: jax.Array, keys: jax.Array, values: jax.Array, mask: jax.Array, dtype: jnp.dtype
) -> jax.Array:
    """`attend` for one query per row (a decode step).

    Both products are batched over ``(B, K)`` and read the cache's blocks as they lie:
    ``[G, Dh] x [Dh, T]`` scores, ``[G, T] x [T, Dh]`` output. The ``G`` query heads of a KV
    head share one pass over its keys and values.
    """
    batch, _, num_heads, head_dim = q.shape
    num_kv_heads = keys.shape[1]
    q = q.reshape(batch, num_kv_heads, num_heads // num_kv_heads, head_dim)  # [B, K, G, Dh]
    scores = _one_query_scores(q, keys, mask, dtype)  # [B, K, G, T]
    probs = jax.nn.softmax(scores, axis=-1)  # [B, K, G, T]
    out = jnp.einsum(
        "bkgt,bktd->bkgd",
        probs.astype(dtype),
        values.astype(dtype),
        preferred_element_type=jnp.float32,
    )  # [B, K, G, Dh]
    return out.reshape(batch, 1, num_heads, head_dim).astype(dtype)  # [B, 1, H, Dh]


def _one_query_partial(
    q: jax.Array, keys: jax.Array, values: jax.Array, valid: jax.Array, dtype: jnp.dtype
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One query per row over some of its keys, unnormalised (a flash-attention partial).

    Args:
      q: ``[B, K, G, Dh]`` queries grouped by KV head.
      keys: ``[B, K, Dh, T]``; values: ``[B, K, T, Dh]``.
      valid: ``[B, T]`` bool.
      dtype: the dtype of the two products.

    Returns:
      ``out [B, K, G, Dh]`` float32 (``sum_t w_t v_t``), ``top [B, K, G]`` (the largest valid
      score, ``MASK_VALUE`` where none) and ``total [B, K, G]`` (``sum_t w_t``) with
      ``w_t = exp(score_t - top)`` on valid keys and 0 elsewhere.
    """
    scores = _one_query_scores(q, keys, valid[:, None, :], dtype)  # [B, K, G, T]
    keep = valid[:, None, None, :]
    top = jnp.max(scores, axis=-1)  # [B, K, G]
    weights = jnp.where(keep, jnp.exp(scores - top[..., None]), 0.0)  # [B, K, G, T]
    out = jnp.einsum(
        "bkgt,bktd->bkgd",
        weights.astype(dtype),
        values.astype(dtype),
        preferred_element_type=jnp.float32,
    )  # [B, K, G, Dh]
    return out, top, jnp.sum(weights, axis=-1)


def attend_tiered(
    q: jax.Array,
    keys: jax.Array,
    values: jax.Array,
    valid: jax.Array,
    tiers: tuple[tuple[jax.Array, jax.Array, jax.Array, jax.Array], ...],
    dtype: jnp.dtype,
) -> jax.Array:
    """One query per row over its newest keys and, for some rows, older bands of keys.

    Every row attends over ``keys``/``values`` (masked by ``valid``); tier ``j`` adds its
    ``C_j`` rows' older columns. The partial softmaxes are merged exactly (each scaled by
    ``exp(top - max top)``), so the result is the attention over the union of the columns,
    up to float rounding. Used by the continuous sampler's decode
    (`r1jax.sampling.continuous`), which keeps most rows' attention short.

    Args:
      q: ``[B, 1, H, Dh]`` queries (after RoPE).
      keys: ``[B, K, Dh, A]``; values: ``[B, K, A, Dh]``; valid: ``[B, A]`` bool.
      tiers: ``(rows [C], keys [C, K, Dh, W], values [C, K, W, Dh], valid [C, W])`` per tier;
        ``rows`` are the distinct batch rows the tier's rows belong to (a padding row has no
        valid column).
      dtype: compute dtype of the model (the products run in it, or in float32 for float32
        keys).

    Returns:
      ``[B, 1, H, Dh]`` in ``dtype``.
    """
    batch, _, num_heads, head_dim = q.shape
    num_kv_heads = keys.shape[1]
    out_dtype = dtype
    dtype = jnp.promote_types(dtype, keys.dtype)
    q = q.reshape(batch, num_kv_heads, num_heads // num_kv_heads, head_dim)  # [B, K, G, Dh]
    out, top, total = _one_query_partial(q, keys, values, valid, dtype)
    # Each tier's rows are moved to and from the batch by one-hot products ([C, B]; exact at
    # the highest precision, and far faster on CPU than scatters).
    partials = []
    for rows, tier_keys, tier_values, tier_valid in tiers:
        owner = rows[:, None] == jnp.arange(batch)[None, :]  # [C, B]
        tier_out, tier_top, tier_total = _one_query_partial(
            q[rows], tier_keys, tier_values, tier_valid, dtype
        )
        partials.append((owner, tier_out, tier_top, tier_total))
    best = top  # [B, K, G]: the largest score of each row over all its columns
    for owner, _, tier_top, _ in partials:
        spread = jnp.where(owner[:, :, None, None], tier_top[:, None], MASK_VALUE)  # [C,B,K,G]
        best = jnp.maximum(best, jnp.max(spread, axis=0))
    scale = jnp.exp(top - best)  # [B, K, G]
    out, total = out * scale[..., None], total * scale
    for owner, tier_out, tier_top, tier_total in partials:
        owner = owner.astype(jnp.float32)
        tier_scale = jnp.exp(
            tier_top - jnp.einsum("cb,bkg->ckg", owner, best, precision=HIGHEST)
        )  # [C, K, G]
        out = out + jnp.einsum(
            "cb,ckgd->bkgd", owner, tier_out * tier_scale[..., None], precision=HIGHEST
        )
        total = total + jnp.einsum("cb,ckg->bkg", owner, tier_total * tier_scale, precision=HIGHEST)
    out = out / jnp.where(total > 0, total, 1.0)[..., None]
    return out.reshape(batch, 1, num_heads, head_dim).astype(out_dtype)


# The leaves a LoRA adapter adds to a projection's params (`r1jax.models.lora.combine`).
LORA_A = "lora_a"  # [*in, r]
LORA_B = "lora_b"  # [r, *out], already scaled by alpha / r
LORA_DROPOUT_KEY = "lora_dropout_key"  # uint32 raw key data; only in a training forward
LORA_DROPOUT_RATE = "lora_dropout_rate"  # float32 []
KERNEL_SCALE = "kernel_scale"  # float32 [*out]: an int8 kernel's per-output-channel scale


def dequantize(kernel: jax.Array, scale: jax.Array | None, dtype: Any) -> jax.Array:
    """``kernel * scale`` in ``dtype`` (``scale [*out]`` broadcast over the input dims of a
    ``[*in, *out]`` kernel); the kernel cast to ``dtype`` when ``scale`` is None.

    Example:
      >>> dequantize(jnp.array([[50, -127]], jnp.int8), jnp.array([0.02, 0.004]), jnp.float32)
      Array([[ 1.   , -0.508]], dtype=float32)
    """
    if scale is None:
        return kernel.astype(dtype)
    return (kernel.astype(jnp.float32) * scale.astype(jnp.float32)).astype(dtype)


def lora_delta(x: jax.Array, params: dict, num_in: int, dtype: jnp.dtype) -> jax.Array:
    """The adapter's term ``dropout(x) A B`` of a projection (LoRA, arXiv:2106.09685 §4.1).

    Args:
      x: ``[..., *in]`` the projection's input.
      params: the projection's params with ``lora_a`` ``[*in, r]`` and ``lora_b``
        ``[r, *out]`` (scaled by ``alpha / r``), and, in a training forward with dropout,
        ``lora_dropout_key`` and ``lora_dropout_rate`` (inverted dropout on ``x``).
      num_in: how many trailing dims of ``x`` the kernel contracts.
      dtype: the compute dtype of the two matmuls (float32 accumulation).

    Returns:
      ``[..., *out]`` float32.
    """
    if LORA_DROPOUT_KEY in params:
        key = jax.random.wrap_key_data(params[LORA_DROPOUT_KEY])
        keep = 1.0 - params[LORA_DROPOUT_RATE]
        kept = jax.random.bernoulli(key, keep, x.shape)
        x = jnp.where(kept, x.astype(jnp.float32) / keep, 0.0).astype(x.dtype)
    low = linear(x, params[LORA_A], num_in, dtype)  # [..., r]
    return linear(low, params[LORA_B], 1, dtype)  # [..., *out]


class Projection(nn.Module):
    """Contracts the last ``num_in`` dims of ``x`` with a ``kernel`` (+ optional ``bias``).

    ``shape`` and ``axes`` describe the kernel; its first ``num_in`` dims are contracted. With
    ``by_rows`` the kernel is stored output dims first, ``shape[num_in:] + shape[:num_in]``
    (see `kernels_by_rows` in `r1jax.models.transformer`), and contracted in that layout.
    When the params hold a LoRA adapter (``lora_a``, ``lora_b``: `r1jax.models.lora`), its
    low-rank term `lora_delta` is added to the output; the kernel stays as it is. An int8
    kernel with a ``kernel_scale`` (a QLoRA-style base) is dequantized to the compute dtype
    first; being frozen, it gets no gradient (only the input's flows through it).
    """

    config: ModelConfig
    shape: tuple[int, ...]
    axes: tuple[str, ...]
    num_in: int = 1
    use_bias: bool = False
    by_rows: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cfg = self.config
        in_shape, out_shape = self.shape[: self.num_in], self.shape[self.num_in :]
        if self.by_rows:
            kernel_shape = out_shape + in_shape
            kernel_axes = self.axes[self.num_in :] + self.axes[: self.num_in]
        else:
            kernel_shape, kernel_axes = self.shape, self.axes
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(nn.initializers.zeros, kernel_axes),
            kernel_shape,
            cfg.params_dtype,
        )
        if self.has_variable("params", KERNEL_SCALE):  # an int8 frozen base (`r1jax.models.lora`)
            kernel = dequantize(kernel, self.variables["params"][KERNEL_SCALE], cfg.compute_dtype)
        if self.by_rows:
            batch_shape = x.shape[: x.ndim - self.num_in]
            rows = kernel.reshape(math.prod(out_shape), math.prod(in_shape))  # [O, I]
            flat = x.reshape(*batch_shape, math.prod(in_shape))  # [..., I]
            out = linear_by_rows(flat, rows, cfg.compute_dtype).reshape(*batch_shape, *out_shape)
        else:
            out = linear(x, kernel, self.num_in, cfg.compute_dtype)  # [..., *shape[num_in:]]
        if self.has_variable("params", LORA_A):  # a low-rank adapter (`r1jax.models.lora`)
            out = out + lora_delta(x, self.variables["params"], self.num_in, cfg.compute_dtype)
        if self.use_bias:
            bias = self.param(
                "bias",
                nn.with_logical_partitioning(nn.initializers.zeros, self.axes[self.num_in :]),
                self.shape[self.num_in :],
                cfg.params_dtype,
            )
            out = out + bias.astype(jnp.float32)
        return out.astype(cfg.compute_dtype)


class Attention(nn.Module):
    """Causal GQA self-attention with RoPE, optional q/k/v bias and per-head q/k RMSNorm."""

    config: ModelConfig
    attend_length: int | None = None
    rules: ShardingRules | None = None
    kernels_by_rows: bool = False

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        cos: jax.Array,
        sin: jax.Array,
        mask: jax.Array,
        layer_cache: tuple[jax.Array, jax.Array] | None = None,
        end: jax.Array | None = None,
        tiers: tuple = (),
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
        """Attends ``x`` over itself, or writes it to the cache and attends over the cache.

        Args:
          x: ``[B, S, D]`` normalised hidden states.
          cos: ``[B, S, Dh/2]`` float32 RoPE cosines.
          sin: ``[B, S, Dh/2]`` float32 RoPE sines.
          mask: ``[B, S, S]`` without a cache, ``[B, S, A]`` with one (``A`` attended slots);
            or a ``[B, S]`` key mask: causal self-attention over the ``S`` new tokens with
            the fused kernel of ``config.attention`` (`causal_attention`).
          layer_cache: this layer's ``([B, K, Dh, Smax], [B, K, Smax, Dh])`` buffers, or None.
          end: ``[]`` int32, the first slot to write (with a cache).
          tiers: older key bands some rows also attend over (one new token with a cache;
            `attend_tiered`): ``(rows, keys, values, valid)`` per tier, this layer's buffers.

        Returns:
          The ``[B, S, D]`` output and the updated layer cache (None without one).
        """
        cfg = self.config
        d, h, k, dh = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        q_axes = ("embed", "heads", "head_dim")
        kv_axes = ("embed", "kv_heads", "head_dim")
        by_rows = self.kernels_by_rows
        q = Projection(cfg, (d, h, dh), q_axes, 1, cfg.qkv_bias, by_rows, name="q_proj")(x)
        keys = Projection(cfg, (d, k, dh), kv_axes, 1, cfg.qkv_bias, by_rows, name="k_proj")(x)
        values = Projection(cfg, (d, k, dh), kv_axes, 1, cfg.qkv_bias, by_rows, name="v_proj")(x)
        if cfg.qk_norm:
            q = RMSNorm(cfg, name="q_norm")(q)  # [B, S, H, Dh]
            keys = RMSNorm(cfg, name="k_norm")(keys)  # [B, S, K, Dh]
        q = constrain(apply_rope(q, cos, sin), ("batch", "seq", "heads", "head_dim"), self.rules)
        keys = constrain(
            apply_rope(keys, cos, sin), ("batch", "seq", "kv_heads", "head_dim"), self.rules
        )
        values = constrain(values, ("batch", "seq", "kv_heads", "head_dim"), self.rules)

        fused_out = None
        if mask.ndim == 2:  # a key mask: causal self-attention with a fused kernel
            implementation = attention_implementation(cfg.attention, compute_dtype=cfg.dtype)
            fused_out = causal_attention(q, keys, values, mask, implementation, self.rules)
        keys = keys.transpose(0, 2, 3, 1)  # [B, K, Dh, S]
        values = values.transpose(0, 2, 1, 3)  # [B, K, S, Dh]
        if layer_cache is not None:
            cache_keys, cache_values = layer_cache
            cache_keys = lax.dynamic_update_slice(
                cache_keys, keys.astype(cache_keys.dtype), (0, 0, 0, end)
            )
            cache_values = lax.dynamic_update_slice(
                cache_values, values.astype(cache_values.dtype), (0, 0, end, 0)
            )
            layer_cache = (cache_keys, cache_values)
            length = cache_keys.shape[3] if self.attend_length is None else self.attend_length
            keys = lax.slice_in_dim(cache_keys, 0, length, axis=3)  # [B, K, Dh, A]
            values = lax.slice_in_dim(cache_values, 0, length, axis=2)  # [B, K, A, Dh]

        if tiers:
            out = attend_tiered(q, keys, values, mask[:, 0], tiers, cfg.compute_dtype)
        elif fused_out is None:
            out = attend(q, keys, values, mask, cfg.compute_dtype)  # [B, S, H, Dh]
        else:
            out = fused_out.astype(cfg.compute_dtype)  # [B, S, H, Dh]
        o_axes = ("heads", "head_dim", "embed")
        out = Projection(cfg, (h, dh, d), o_axes, 2, by_rows=by_rows, name="o_proj")(out)  # [B,S,D]
        return out, layer_cache


class MLP(nn.Module):
    """SwiGLU feed-forward: ``down(silu(gate(x)) * up(x))``."""

    config: ModelConfig
    rules: ShardingRules | None = None
    kernels_by_rows: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cfg = self.config
        d, f = cfg.hidden_size, cfg.mlp_dim
        by_rows = self.kernels_by_rows
        gate = Projection(cfg, (d, f), ("embed", "mlp"), by_rows=by_rows, name="gate_proj")(x)
        up = Projection(cfg, (d, f), ("embed", "mlp"), by_rows=by_rows, name="up_proj")(x)
        hidden = constrain(nn.silu(gate) * up, ("batch", "seq", "mlp"), self.rules)  # [B, S, F]
        down = Projection(cfg, (f, d), ("mlp", "embed"), by_rows=by_rows, name="down_proj")
        return down(hidden)  # [B, S, D]


class Block(nn.Module):
    """Pre-norm decoder block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))``."""

    config: ModelConfig
    attend_length: int | None = None
    rules: ShardingRules | None = None
    kernels_by_rows: bool = False

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        cos: jax.Array,
        sin: jax.Array,
        mask: jax.Array,
        layer_cache: tuple[jax.Array, jax.Array] | None,
        end: jax.Array | None,
        tiers: tuple = (),
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
        """``[B, S, D]`` -> ``[B, S, D]``; see `Attention` for the other arguments."""
        cfg = self.config
        by_rows = self.kernels_by_rows
        attention = Attention(cfg, self.attend_length, self.rules, by_rows, name="attn")
        attn_out, layer_cache = attention(
            RMSNorm(cfg, name="attn_norm")(x), cos, sin, mask, layer_cache, end, tiers
        )
        x = x + attn_out
        mlp = MLP(cfg, self.rules, by_rows, name="mlp")
        x = x + mlp(RMSNorm(cfg, name="mlp_norm")(x))
        return constrain(x, ("batch", "seq", "embed"), self.rules), layer_cache


def remat_block(
    block: Block,
    x: jax.Array,
    cos: jax.Array,
    sin: jax.Array,
    mask: jax.Array,
    *,
    order_by_data: bool | None = None,
):
    """``block(x, ...)`` without a cache, rematerialised in the backward pass in layer order.

    The forward keeps only the block's input; the backward recomputes the block's activations
    from it, after the gradient from the block above has arrived. On XLA:CPU that order has to
    be forced through data (``order_by_data``): it drops `lax.optimization_barrier` before it
    schedules, and with `jax.checkpoint` it ran every layer's recomputation at the start of the
    backward pass and every weight-gradient matmul at its end, holding all layers' activations
    at once (measured: a small-model micro-batch used 1.1 GiB of temporaries with and without
    remat, 0.2 GiB with this). So there the recomputation's input depends on the incoming
    gradient, and the gradient passed down on this block's param gradients (`_after`). GPU and
    TPU schedulers keep barriers and overlap the weight-gradient reduce-scatters of FSDP with
    the next block's backward, so there one barrier ties the recomputation's inputs to the
    incoming gradient, as `jax.checkpoint` does, and nothing waits for the param gradients.

    Args:
      block: a bound `Block` (the layer whose params are used).
      x: ``[B, S, D]`` block input; cos, sin: ``[B, S, Dh/2]``; mask: ``[B, S, S]`` bool.
      order_by_data: force the order through data dependencies; None does so on the CPU
        backend only.

    Returns:
      ``[B, S, D]``, the block's output.
    """
    config, rules = block.config, block.rules
    if order_by_data is None:
        order_by_data = jax.default_backend() == "cpu"

    def output(module, x, cos, sin, mask):
        return module(x, cos, sin, mask, None, None)[0]

    def forward(module, x, cos, sin, mask):
        return output(module, x, cos, sin, mask), (module.variables["params"], x, cos, sin, mask)

    def backward(residuals, grad):
        params, x, cos, sin, mask = residuals
        if order_by_data:
            x = _after(x, grad)
        else:
            params, x, cos, sin, grad = lax.optimization_barrier((params, x, cos, sin, grad))

        def apply(params, x):
            fresh = Block(config, None, rules, block.kernels_by_rows)
            return fresh.apply({"params": params}, x, cos, sin, mask, None, None)[0]

        _, vjp = jax.vjp(apply, params, x)
        params_grad, x_grad = vjp(grad)
        if order_by_data:
            x_grad = _after(x_grad, params_grad)
        no_grad = jnp.zeros_like(cos), jnp.zeros_like(sin), np.zeros(mask.shape, jax.dtypes.float0)
        return {"params": params_grad}, x_grad, *no_grad

    return nn.custom_vjp(output, forward, backward)(block, x, cos, sin, mask)


def _after(x: jax.Array, tree) -> jax.Array:
    """``x`` unchanged, but computed only once every leaf of ``tree`` is.

    Adds zero times the first element of each leaf: a data dependency that any scheduling must
    respect (XLA:CPU drops `lax.optimization_barrier` before it schedules). A non-finite leaf
    makes ``x`` non-finite, which the update step already treats as a skipped step.
    """
    leaves = jax.tree.leaves(tree)
    probe = sum(leaf[(0,) * leaf.ndim].astype(jnp.float32) for leaf in leaves)
    return x + (probe * 0).astype(x.dtype)
