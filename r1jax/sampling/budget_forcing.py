"""s1 budget forcing (arXiv:2501.19393 §3.1) as a controller around `sample`.

The controller runs the sampler in phases on token ids:

* **Thinking phases.** Generate with the end-of-thinking ids (for example those of
  ``</think>``) as an extra stop sequence and a per-row limit equal to the thinking tokens left.
* **Extend (minimum).** When a row ends its thinking with the end-of-thinking ids while it has
  ignores left (``num_ignores``, s1's ``NUM_IGNORE``), the controller removes those ids, appends
  the ignore ids (``Wait``) and lets the row think on in the next phase. The thinking budget
  keeps counting every generated and appended token.
* **Cap (maximum).** A row that uses up ``max_thinking_tokens`` gets the end-of-thinking ids
  and then ``answer_prefix`` (s1 uses ``"\\nFinal Answer:"``) appended; a row that ended its
  thinking on its own keeps its own end-of-thinking ids and gets nothing appended, since our
  completions include the stop sequence.
* **Answer phase.** Every row that has closed its thinking generates up to
  ``max_answer_tokens`` with the caller's stop ids. A row that emitted one of the caller's own
  stop tokens or stop sequences while thinking is finished and skips the remaining phases.

Each phase re-prefills prompt + text so far (left-padded to a static bucket), so all shapes are
static: phase ``i`` compiles once per (batch, prompt bucket, budget) and the whole controller
compiles ``num_ignores + 2`` sampler programs. Rows that are finished ride along with a limit of
0 tokens. Inserted tokens are marked in ``forced`` and carry log-probability 0; the new-line
before the end-of-thinking ids that s1 adds "if needed" is up to the caller (put it in
``end_of_thinking``).

What does not live here: the sampler (``sampler.py``).
"""

import dataclasses

import jax
import numpy as np

from r1jax import sharding as sharding_lib
from r1jax.models import ModelConfig
from r1jax.sampling import stopping
from r1jax.sampling.rollout import PromptBatch, Rollout
from r1jax.sampling.sampler import SamplingParams, sample


@dataclasses.dataclass(frozen=True)
class BudgetForcing:
    """Budget-forcing settings, all on token ids.

    Attributes:
      end_of_thinking: ids that close the thinking (``</think>``; s1: ``<|im_start|>``).
      max_thinking_tokens: the cap on thinking tokens (generated and appended ``Wait`` ids).
      max_answer_tokens: tokens generated after the thinking is closed.
      num_ignores: times an end of thinking is replaced by ``ignore`` (0 = cap only).
      ignore: ids appended in place of a suppressed end of thinking (``Wait``; s1 ablates
        ``Hmm`` and ``Alternatively`` too; which is best is UNVERIFIED, so it is a parameter).
      answer_prefix: ids appended after a forced end of thinking (s1: ``"\\nFinal Answer:"``).
    """

    end_of_thinking: tuple[int, ...]
    max_thinking_tokens: int
    max_answer_tokens: int
    num_ignores: int = 0
    ignore: tuple[int, ...] = ()
    answer_prefix: tuple[int, ...] = ()

    def __post_init__(self):
        if not self.end_of_thinking:
            raise ValueError("end_of_thinking must not be empty")
        if self.max_thinking_tokens < 1 or self.max_answer_tokens < 1:
            raise ValueError("max_thinking_tokens and max_answer_tokens must be >= 1")
        if self.num_ignores < 0:
            raise ValueError(f"num_ignores must be >= 0, got {self.num_ignores}")
        if self.num_ignores and not self.ignore:
            raise ValueError("num_ignores > 0 needs the ignore ids (for example 'Wait')")

    @property
    def completion_length(self) -> int:
        """Static ``T`` of the combined completion."""
        return (
            self.max_thinking_tokens
            + len(self.end_of_thinking)
            + len(self.answer_prefix)
            + self.max_answer_tokens
        )


@dataclasses.dataclass(frozen=True)
class BudgetForcedRollout:
    """Combined completion of a budget-forced run (host numpy arrays).

    Attributes:
      rollout: the `Rollout` of thinking + inserted ids + answer (``T =
        BudgetForcing.completion_length``); ``finish_reason`` is that of the answer (or of the
        thinking for rows that stopped while thinking).
      forced: ``[B, T]`` int32, 1 on ids the controller inserted (log-prob 0 there).
      thinking_lengths: ``[B]`` tokens up to and including the end of thinking.
      num_ignored: ``[B]`` ends of thinking that were replaced by ``ignore``.
      capped: ``[B]`` bool, the thinking hit ``max_thinking_tokens`` and was closed by force.
    """

    rollout: Rollout
    forced: np.ndarray
    thinking_lengths: np.ndarray
    num_ignored: np.ndarray
    capped: np.ndarray


def _ends_with(sequence: list[int], suffix: tuple[int, ...]) -> bool:
    return len(sequence) >= len(suffix) and tuple(sequence[len(sequence) - len(suffix) :]) == suffix


def sample_with_budget(
    params,
    config: ModelConfig,
    prompts: PromptBatch,
    key: jax.Array,
    sampling_params: SamplingParams,
    budget: BudgetForcing,
    *,
    mesh: jax.sharding.Mesh | None = None,
    rules: sharding_lib.ShardingRules | None = None,
) -> BudgetForcedRollout:
    """Samples with s1 budget forcing; see the module docstring for the phases.

    Args:
      params: model params.
      config: model config.
      prompts: ``P`` left-padded prompts (a `PromptBatch`).
      key: PRNG key; phase ``i`` uses ``fold_in(key, i)``.
      sampling_params: temperature etc., the caller's stop ids, ``G``. Its ``max_new_tokens``
        is ignored (the budget sets the phase lengths).
      budget: the `BudgetForcing` settings.
      mesh: optional mesh passed to `sample`. With several processes every process calls
        this with the same arguments; each phase's rows are all-gathered to every host, so the
        controller takes the same decisions everywhere.
      rules: logical sharding rules passed to `sample`.

    Returns:
      A `BudgetForcedRollout` with ``B = P * G`` rows.
    """
    group = sampling_params.num_samples_per_prompt
    prompt_tokens = np.asarray(prompts.tokens)
    prompt_lengths = np.asarray(prompts.lengths)
    prompt_ids = np.asarray(prompts.prompt_ids)
    batch = prompt_tokens.shape[0] * group
    width = prompt_tokens.shape[1]
    base = [
        prompt_tokens[p, width - prompt_lengths[p] :].tolist()
        for p in range(prompt_tokens.shape[0])
        for _ in range(group)
    ]
    row_ids = [int(prompt_ids[p]) * group + g for p in range(len(prompt_ids)) for g in range(group)]
    text = [[] for _ in range(batch)]  # completion ids so far
    logprob = [[] for _ in range(batch)]
    forced = [[] for _ in range(batch)]
    thinking = np.ones(batch, bool)  # still thinking
    finished = np.zeros(batch, bool)  # stopped on the caller's stop ids
    finish_reason = np.zeros(batch, np.int32)
    num_ignored = np.zeros(batch, np.int32)
    capped = np.zeros(batch, bool)
    thinking_lengths = np.zeros(batch, np.int32)
    end = tuple(budget.end_of_thinking)
    caller_sequences = tuple(tuple(s) for s in sampling_params.stop_sequences)

    def run_phase(phase, *, max_new_tokens, limits, stop_sequences):
        bucket = width + budget.max_thinking_tokens  # thinking so far fits the budget
        if phase > budget.num_ignores:  # the answer phase: plus the inserted ids
            bucket += len(end) + len(budget.answer_prefix)
        batch_prompts = PromptBatch.from_token_lists(
            [base[row] + text[row] for row in range(batch)],
            length_bucket=bucket,
            pad_id=sampling_params.pad_id,
            prompt_ids=row_ids,
        )
        params_i = dataclasses.replace(
            sampling_params,
            max_new_tokens=max_new_tokens,
            stop_sequences=stop_sequences,
            num_samples_per_prompt=1,
        )
        if phase == 0:
            batch_prompts = prompts
            params_i = dataclasses.replace(params_i, num_samples_per_prompt=group)
        out = sample(
            params,
            config,
            batch_prompts,
            jax.random.fold_in(key, phase),
            params_i,
            mesh=mesh,
            rules=rules,
            max_new_tokens_per_row=np.asarray(limits, np.int32),
        )
        return sharding_lib.to_host(out)

    for phase in range(budget.num_ignores + 1):
        used = np.array([len(t) for t in text], np.int32)
        limits = np.where(thinking & ~finished, budget.max_thinking_tokens - used, 0)
        if not np.any(limits > 0):
            break
        out = run_phase(
            phase,
            max_new_tokens=budget.max_thinking_tokens,
            limits=limits,
            stop_sequences=(*caller_sequences, end),
        )
        completions = out.completions()
        for row in np.flatnonzero(limits > 0):
            generated = completions[row]
            text[row] += generated
            logprob[row] += np.asarray(out.logprobs[row, : len(generated)]).tolist()
            forced[row] += [0] * len(generated)
            reason = int(out.finish_reason[row])
            own_end = reason == stopping.FINISH_STOP_SEQUENCE and _ends_with(generated, end)
            if own_end and num_ignored[row] < budget.num_ignores:
                del text[row][-len(end) :], logprob[row][-len(end) :], forced[row][-len(end) :]
                room = budget.max_thinking_tokens - len(text[row])
                ignore = list(budget.ignore)[: max(room, 0)]
                text[row] += ignore
                logprob[row] += [0.0] * len(ignore)
                forced[row] += [1] * len(ignore)
                num_ignored[row] += 1
            elif own_end:
                thinking[row] = False
            elif reason in (stopping.FINISH_STOP_TOKEN, stopping.FINISH_STOP_SEQUENCE):
                thinking[row] = False
                finished[row] = True
                finish_reason[row] = reason
    # Close the thinking of every row still thinking: it ran out of budget (or of ignores).
    for row in range(batch):
        if finished[row]:
            thinking_lengths[row] = len(text[row])
            continue
        if thinking[row]:
            capped[row] = True
            inserted = list(end) + list(budget.answer_prefix)
            text[row] += inserted
            logprob[row] += [0.0] * len(inserted)
            forced[row] += [1] * len(inserted)
        thinking_lengths[row] = len(text[row]) - (len(budget.answer_prefix) if capped[row] else 0)
    limits = np.where(finished, 0, budget.max_answer_tokens)
    if np.any(limits > 0):
        out = run_phase(
            budget.num_ignores + 1,
            max_new_tokens=budget.max_answer_tokens,
            limits=limits,
            stop_sequences=caller_sequences,
        )
        completions = out.completions()
        for row in np.flatnonzero(limits > 0):
            generated = completions[row]
            text[row] += generated
            logprob[row] += np.asarray(out.logprobs[row, : len(generated)]).tolist()
            forced[row] += [0] * len(generated)
            finish_reason[row] = int(out.finish_reason[row])
    total = budget.completion_length
    tokens = np.full((batch, total), sampling_params.pad_id, np.int32)
    logprobs = np.zeros((batch, total), np.float32)
    forced_mask = np.zeros((batch, total), np.int32)
    lengths = np.array([len(t) for t in text], np.int32)
    for row in range(batch):
        tokens[row, : lengths[row]] = text[row]
        logprobs[row, : lengths[row]] = logprob[row]
        forced_mask[row, : lengths[row]] = forced[row]
    rows_prompt = np.repeat(prompt_tokens, group, axis=0)
    rollout = Rollout(
        tokens=tokens,
        logprobs=logprobs,
        mask=(np.arange(total)[None, :] < lengths[:, None]).astype(np.int32),
        lengths=lengths,
        finish_reason=finish_reason,
        prompt_tokens=rows_prompt.astype(np.int32),
        prompt_lengths=np.repeat(prompt_lengths, group).astype(np.int32),
    )
    return BudgetForcedRollout(
        rollout=rollout,
        forced=forced_mask,
        thinking_lengths=thinking_lengths,
        num_ignored=num_ignored,
        capped=capped,
    )
