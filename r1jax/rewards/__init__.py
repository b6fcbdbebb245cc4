"""Device-side reward shaping: pure ``jnp`` functions of verdicts, lengths and token ids.

The host verifiers return verdicts (correct, well formed); everything numeric after that runs
inside the compiled update: the cosine length-scaled reward and DAPO's overlong penalty
(``length``), n-gram repetition penalties (``repetition``), format rewards and the weighted
combination of named terms (``combine``). Nothing here imports flax or host-side code.
"""

from r1jax.rewards.combine import combine_rewards, format_reward
from r1jax.rewards.length import cosine_length_reward, overlong_penalty
from r1jax.rewards.repetition import (
    repeated_ngram_starts,
    repetition_penalty,
    sequence_repetition_penalty,
)

__all__ = [
    "combine_rewards",
    "cosine_length_reward",
    "format_reward",
    "overlong_penalty",
    "repeated_ngram_starts",
    "repetition_penalty",
    "sequence_repetition_penalty",
]
