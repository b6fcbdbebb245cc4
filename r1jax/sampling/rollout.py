"""The sampler's input and output: ``PromptBatch`` (left-padded prompts) and ``Rollout``.

Both are frozen dataclasses registered as pytrees, so they pass through ``jax.jit`` and
``jax.device_get`` whole. ``Rollout.sequences()`` rebuilds the ``[B, S]`` prompt + completion
layout that the learner's ``token_logprobs`` consumes.

What does not live here: sampling itself (``sampler.py``).
"""

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from r1jax.sampling import stopping


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PromptBatch:
    """Left-padded prompt token ids.

    Attributes:
      tokens: ``[P, Tp]`` int32 ids, left-padded (the pad value is ignored).
      lengths: ``[P]`` int32 number of real tokens at the right end of each row (>= 1).
      prompt_ids: ``[P]`` int32 identifiers folded into each row's PRNG key (for example the
        dataset index), so a prompt samples the same tokens wherever it sits in the batch.
    """

    tokens: jax.Array
    lengths: jax.Array
    prompt_ids: jax.Array

    @classmethod
    def from_token_lists(
        cls,
        prompts: Sequence[Sequence[int]],
        *,
        length_bucket: int | None = None,
        batch_bucket: int | None = None,
        pad_id: int = 0,
        prompt_ids: Sequence[int] | None = None,
    ) -> "PromptBatch":
        """Left-pads token lists to ``length_bucket`` (default: the longest) on the host.

        Rows added to reach ``batch_bucket`` repeat the last prompt; callers drop their
        outputs. ``prompt_ids`` default to the row indices.

        Example:
          >>> batch = PromptBatch.from_token_lists([[5, 6, 7], [8]], length_bucket=4)
          >>> batch.tokens.tolist(), batch.lengths.tolist()
          ([[0, 5, 6, 7], [0, 0, 0, 8]], [3, 1])
        """
        prompts = [list(p) for p in prompts]
        if not prompts:
            raise ValueError("no prompts given")
        for index, prompt in enumerate(prompts):
            if not prompt:
                raise ValueError(f"prompt {index} is empty")
        longest = max(len(p) for p in prompts)
        width = longest if length_bucket is None else length_bucket
        if longest > width:
            raise ValueError(f"a prompt has {longest} tokens, more than length_bucket={width}")
        ids = list(range(len(prompts))) if prompt_ids is None else [int(i) for i in prompt_ids]
        if len(ids) != len(prompts):
            raise ValueError(f"{len(ids)} prompt_ids for {len(prompts)} prompts")
        rows = len(prompts) if batch_bucket is None else batch_bucket
        if rows < len(prompts):
            raise ValueError(f"{len(prompts)} prompts exceed batch_bucket={rows}")
        prompts += [prompts[-1]] * (rows - len(prompts))
        ids += [ids[-1]] * (rows - len(ids))
        tokens = np.full((rows, width), pad_id, np.int32)
        for row, prompt in enumerate(prompts):
            tokens[row, width - len(prompt) :] = prompt
        lengths = np.array([len(p) for p in prompts], np.int32)
        return cls(tokens=tokens, lengths=lengths, prompt_ids=np.array(ids, np.int32))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Rollout:
    """Completions sampled for a batch of prompts; rows ``p*G:(p+1)*G`` come from prompt ``p``.

    Attributes:
      tokens: ``[B, T]`` int32 generated tokens, ``pad_id`` after the stop.
      logprobs: ``[B, T]`` float32 ``log_softmax(logits / temperature)`` of each generated token
        (before top-k / top-p / min-p truncation), 0 after the stop.
      mask: ``[B, T]`` int32, 1 up to and including the stop token (the completion mask).
      lengths: ``[B]`` int32 number of generated tokens (the sum of ``mask``).
      finish_reason: ``[B]`` int32 codes from ``stopping`` (stop token, stop sequence, length).
      prompt_tokens: ``[B, Tp]`` int32 left-padded prompt of each row.
      prompt_lengths: ``[B]`` int32 real prompt length of each row.
    """

    tokens: jax.Array
    logprobs: jax.Array
    mask: jax.Array
    lengths: jax.Array
    finish_reason: jax.Array
    prompt_tokens: jax.Array
    prompt_lengths: jax.Array

    def finish_reason_names(self) -> list[str]:
        """Names of the ``[B]`` finish codes (host side)."""
        return stopping.finish_reason_names(np.asarray(self.finish_reason))

    def completions(self) -> list[list[int]]:
        """Generated token ids of each row up to and including its stop (host side)."""
        tokens = np.asarray(self.tokens)
        lengths = np.asarray(self.lengths)
        return [tokens[row, : lengths[row]].tolist() for row in range(tokens.shape[0])]

    def sequences(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Prompt + completion in the learner's layout.

        Returns:
          ``(tokens [B, S], attention_mask [B, S], positions [B, S])`` with ``S = Tp + T``:
          the left-padded prompt followed by the completion; completion targets start at
          ``Tp`` (``target_start`` of ``token_logprobs``).
        """
        prompt_width = self.prompt_tokens.shape[1]
        prompt_mask = jnp.arange(prompt_width)[None, :] >= (
            prompt_width - self.prompt_lengths[:, None]
        )  # [B, Tp]
        tokens = jnp.concatenate([self.prompt_tokens, self.tokens], axis=1)  # [B, S]
        attention_mask = jnp.concatenate(
            [prompt_mask.astype(jnp.int32), self.mask.astype(jnp.int32)], axis=1
        )  # [B, S]
        positions = jnp.maximum(jnp.cumsum(attention_mask, axis=1) - 1, 0)  # [B, S]
        return tokens, attention_mask, positions.astype(jnp.int32)
