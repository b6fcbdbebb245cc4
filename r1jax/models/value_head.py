"""A value model: the policy's architecture with a scalar head on the final hidden states.

PPO's critic (Open-Reasoner-Zero arXiv:2503.24290 §2.1.3; TinyZero/verl) is a copy of the
language model whose unembedding is replaced by one linear map ``D -> 1`` without bias. Its
params are the policy's tree without ``lm_head`` (the trunk, with the embedding even when it is
tied) plus ``{"value_head": {"kernel": [D]}}``, so the trunk loads from the same checkpoints and
shards with the same rules; the ``[D]`` head is replicated.

``V(s_t)`` for completion token ``t`` is read from the hidden state that predicts token ``t``
(the state before the action), the positions `token_logprobs` scores, as OpenRLHF-style critics
do (``values[:, :-1]`` then the last ``num_actions``).

Not here: the value loss (`r1jax.objectives.value_loss`), GAE (`r1jax.objectives.advantages`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from r1jax.models.config import ModelConfig
from r1jax.models.transformer import Params, Transformer
from r1jax.sharding import ShardingRules

VALUE_HEAD = "value_head"


def value_params_from_policy(policy: Params, config: ModelConfig, key: jax.Array) -> Params:
    """A value model initialised from ``policy``: its trunk copied, a fresh head.

    The head is drawn from ``U(−1/√D, 1/√D)``, the default init of torch's
    ``nn.Linear(D, 1, bias=False)`` that OpenRLHF-derived critics (ORZ) use.

    Args:
      policy: the policy's params tree.
      config: its model config.
      key: RNG key of the head.

    Returns:
      The value params: ``policy`` without ``lm_head`` (copied) plus ``value_head``.
    """
    trunk = {name: jax.tree.map(jnp.copy, tree) for name, tree in policy.items()}
    trunk.pop("lm_head", None)
    bound = config.hidden_size**-0.5
    kernel = jax.random.uniform(key, (config.hidden_size,), jnp.float32, -bound, bound)
    trunk[VALUE_HEAD] = {"kernel": kernel.astype(config.param_dtype)}
    return trunk


def value_param_shardings(policy_shardings: Params) -> Params:
    """The value params' shardings: the policy's for the trunk, the head replicated."""
    mesh = jax.tree.leaves(policy_shardings)[0].mesh
    shardings = {name: tree for name, tree in policy_shardings.items() if name != "lm_head"}
    shardings[VALUE_HEAD] = {"kernel": NamedSharding(mesh, PartitionSpec())}
    return shardings


def token_values(
    params: Params,
    tokens: jax.Array,
    positions: jax.Array,
    config: ModelConfig,
    *,
    attention_mask: jax.Array | None = None,
    target_start: int = 1,
    remat: bool = False,
    rules: ShardingRules | None = None,
) -> jax.Array:
    """``V(s_t)`` for ``t`` in ``[target_start, S)``: the head on the hidden state at ``t − 1``.

    Args:
      params: value params (`value_params_from_policy`).
      tokens: ``[B, S]`` int32 ids.
      positions: ``[B, S]`` int32 RoPE positions.
      config: the model config (static under jit).
      attention_mask: ``[B, S]`` bool, True for real tokens; None means all real.
      target_start: first scored position (pass ``Tp`` for the completion's values).
      remat: rematerialise each block.
      rules: sharding rules for activation constraints.

    Returns:
      ``[B, S − target_start]`` float32 values.

    Example:
      >>> from r1jax.models import init_params
      >>> config = ModelConfig.preset("tiny")
      >>> params = value_params_from_policy(
      ...     init_params(config, jax.random.key(0)), config, jax.random.key(1))
      >>> run = jax.jit(token_values, static_argnames=("config", "target_start"))
      >>> run(params, jnp.array([[3, 5, 7]]), jnp.arange(3)[None], config, target_start=1).shape
      (1, 2)
    """
    length = tokens.shape[1]
    if not 1 <= target_start <= length:
        raise ValueError(f"target_start={target_start} must be in [1, S={length}]")
    trunk = {name: tree for name, tree in params.items() if name != VALUE_HEAD}
    model = Transformer(config, remat=remat, rules=rules)
    hidden, _ = model.apply(
        {"params": trunk}, tokens, positions, attention_mask, None, method=Transformer.trunk
    )  # [B, S, D]
    hidden = hidden[:, target_start - 1 : length - 1].astype(jnp.float32)  # [B, N, D]
    kernel = params[VALUE_HEAD]["kernel"].astype(jnp.float32)  # [D]
    return jnp.einsum("bnd,d->bn", hidden, kernel)  # [B, N]
