"""Length-aware reward shaping in tokens: the cosine length-scaled reward and DAPO's overlong penalty.

Cosine length-scaled correctness reward ("Demystifying Long CoT", arXiv:2502.03373 §4;
[repo:demystify-long-cot openrlhf/openrlhf/reward/cosine.py]):

    r = r_exceed                                        if L + margin ≥ L_max
    r = r_L + ½ (r_0 − r_L) (1 + cos(π L / L_max))      otherwise,

with ``(r_0, r_L) = (r0_correct, rL_correct)`` for a correct answer and
``(r0_wrong, rL_wrong)`` for a wrong one, so ``r = r_0`` at ``L = 0`` and ``r_L`` at
``L = L_max``. Short correct answers earn more, long wrong answers are penalised less, and
truncated ones are penalised hard.

DAPO soft overlong punishment (arXiv:2503.14476 eq. 13; verl ``reward_manager/dapo.py``):

    R_len(L) = 0                                        if L ≤ L_max − L_cache
             = ((L_max − L_cache) − L) / L_cache        if L_max − L_cache < L ≤ L_max
             = −1                                       if L > L_max

times ``penalty_factor``; added to the correctness reward.

Lengths are token counts of the completion (the paper's unit; open-r1's port uses characters).
Not here: correctness itself (host verifiers), repetition penalties (``repetition``).
"""

import math

import jax
import jax.numpy as jnp


def cosine_length_reward(
    is_correct: jax.typing.ArrayLike,
    lengths: jax.typing.ArrayLike,
    *,
    max_length: int,
    r0_correct: float = 2.0,
    rL_correct: float = 1.0,
    r0_wrong: float = -10.0,
    rL_wrong: float = 0.0,
    r_exceed: float = -10.0,
    exceed_margin: int = 16,
) -> jax.Array:
    """Cosine length-scaled correctness reward, with the paper runs' defaults.

    Defaults are those of the paper's cosine + repetition-penalty runs (``r0_correct=2``,
    ``rL_correct=1``, ``r0_wrong=−10``, ``rL_wrong=0``, ``r_exceed=−10`` with
    ``max_length = 14336``). The reference CLI's defaults, when unset, are ``r0_correct=1``,
    ``rL_correct=0``, ``r0_wrong=−1``, ``rL_wrong=0`` and no exceed value, which scores a
    truncated answer 0: pass ``r_exceed=0.0`` to reproduce them. In the code's names
    ``max_value_correct = r0_correct``, ``min_value_correct = rL_correct``,
    ``min_value_wrong = r0_wrong``, ``max_value_wrong = rL_wrong``.

    Args:
      is_correct: ``[B]`` bool, the verifier's verdict.
      lengths: ``[B]`` int, generated tokens per completion.
      max_length: ``L_max``, the generation budget (``max_new_tokens``).
      r0_correct: reward of a correct answer of length 0.
      rL_correct: reward of a correct answer of length ``L_max``.
      r0_wrong: reward of a wrong answer of length 0.
      rL_wrong: reward of a wrong answer of length ``L_max``.
      r_exceed: reward when ``L + exceed_margin ≥ L_max`` (treated as truncated).
      exceed_margin: the reference's ``MAX_LEN_MARGIN`` (16 tokens).

    Returns:
      ``[B]`` float32 rewards.

    Example:
      >>> import jax.numpy as jnp
      >>> cosine_length_reward(jnp.array([True, True, False, True]), jnp.array([0, 50, 50, 90]),
      ...                      max_length=100).round(3)
      Array([  2. ,   1.5,  -5. , -10. ], dtype=float32)
    """
    correct = jnp.asarray(is_correct).astype(bool)
    length = jnp.asarray(lengths).astype(jnp.float32)
    r0 = jnp.where(correct, r0_correct, r0_wrong)
    r_len = jnp.where(correct, rL_correct, rL_wrong)
    cosine = jnp.cos(math.pi * length / max_length)
    reward = r_len + 0.5 * (r0 - r_len) * (1.0 + cosine)
    exceeded = length + exceed_margin >= max_length
    return jnp.where(exceeded, jnp.float32(r_exceed), reward).astype(jnp.float32)


def overlong_penalty(
    lengths: jax.typing.ArrayLike,
    *,
    max_length: int,
    cache_length: int,
    penalty_factor: float = 1.0,
) -> jax.Array:
    """DAPO's soft overlong punishment (eq. 13), in tokens.

    DAPO's runs use ``max_length = 20480`` and ``cache_length = 4096`` (so answers up to 16,384
    tokens are free) and ``penalty_factor = 1``. The result is in ``[−penalty_factor, 0]``.

    Args:
      lengths: ``[B]`` int, generated tokens per completion.
      max_length: ``L_max``.
      cache_length: ``L_cache``, the width of the linear ramp (``0 < L_cache ≤ L_max``).
      penalty_factor: scale of the penalty (verl ``overlong_buffer.penalty_factor``).

    Returns:
      ``[B]`` float32 penalties (≤ 0), to add to the correctness reward.

    Example:
      >>> import jax.numpy as jnp
      >>> overlong_penalty(jnp.array([10, 16, 18, 20, 25]), max_length=20, cache_length=4)
      Array([ 0. ,  0. , -0.5, -1. , -1. ], dtype=float32)
    """
    if not 0 < cache_length <= max_length:
        raise ValueError(f"need 0 < cache_length <= max_length, got {cache_length}, {max_length}")
    length = jnp.asarray(lengths).astype(jnp.float32)
    ramp = ((max_length - cache_length) - length) / cache_length
    return (jnp.clip(ramp, -1.0, 0.0) * penalty_factor).astype(jnp.float32)
