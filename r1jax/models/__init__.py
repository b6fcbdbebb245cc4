"""Decoder-only language models (Qwen2/Qwen2.5, Qwen3, Llama 3.x) as pure functions of params.

Public API: `ModelConfig` (+ `RopeScaling`, `num_params`, `flops_per_token`), `init_params`,
`abstract_params`, `param_logical_axes`, `param_shardings`, `forward`, `token_logprobs`,
`KVCache`, `load_pretrained`, `load_generation_config`, `save_pretrained`; low-rank adapters
as params transforms in `r1jax.models.lora`. This is the only r1jax package that imports flax;
everything outside sees a params pytree and pure functions.

Design note: why Flax Linen, used functionally. The policy, the frozen reference, optax
state and orbax checkpoints all want the same thing: params as a plain nested dict of arrays.
A Linen module holds no state, so ``model.apply({"params": params}, ...)`` is a pure function
of that dict; there is no graph state to split and merge on every call (as NNX would need
inside jit), and the reference model is just a second dict passed to the same `forward`.
``jax.eval_shape(model.init)`` gives the abstract tree, and the
``nn.with_logical_partitioning`` annotation on every param gives its logical axes, from which
`r1jax.sharding` derives the shardings; `init_params` then creates the values in place with
a jit whose ``out_shardings`` are those shardings, and `load_pretrained` fills the same tree
slice by slice from safetensors.

Sharding: `forward` and `token_logprobs` take an optional ``rules`` (`r1jax.sharding.ShardingRules`)
for their activation constraints, which apply when a mesh is set with ``jax.set_mesh``;
`init_params` / `load_pretrained` take ``mesh`` and ``rules`` and create every param in its
sharding; `KVCache.shardings` gives the cache's.

Layers are separate submodules ``layers_0 .. layers_{L-1}`` (unrolled, not scanned), so each
layer's KV cache is its own buffer that the sampler's ``while_loop`` updates in place. Blocks
can be rematerialised (``remat=True``) for training.
"""

from r1jax.models.config import (
    MODEL_PRESETS,
    ModelConfig,
    RopeScaling,
    flops_per_token,
    num_params,
)
from r1jax.models.hf import (
    GenerationConfig,
    load_generation_config,
    load_pretrained,
    save_pretrained,
)
from r1jax.models.kv_cache import CacheTier, KVCache
from r1jax.models.transformer import (
    abstract_params,
    forward,
    init_params,
    kernels_by_rows,
    param_logical_axes,
    param_shardings,
    token_logprobs,
)

__all__ = [
    "MODEL_PRESETS",
    "CacheTier",
    "GenerationConfig",
    "KVCache",
    "ModelConfig",
    "RopeScaling",
    "abstract_params",
    "flops_per_token",
    "forward",
    "init_params",
    "kernels_by_rows",
    "load_generation_config",
    "load_pretrained",
    "num_params",
    "param_logical_axes",
    "param_shardings",
    "save_pretrained",
    "token_logprobs",
]
