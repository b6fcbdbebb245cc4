"""DeepScaleR: GRPO on a distilled 1.5B model with the context lengthened 8K -> 16K -> 24K.

Command:

    python -m r1jax.train --config experiments/deepscaler.py --workdir runs/deepscaler \\
        --config.model.name=/path/to/DeepSeek-R1-Distill-Qwen-1.5B \\
        --config.data.path=/path/to/deepscaler.jsonl --config.eval.path=/path/to/aime24.jsonl

Follows DeepScaleR (agentica-project/deepscaler: ``scripts/train/run_deepscaler_1.5b_8k.sh``,
``_16k.sh``, ``_24k.sh``, README; reward ``deepscaler/rewards/math_reward.py``): GRPO (verl's,
token-mean loss over the batch, clip 0.2, the k3 KL in the loss at β = 0.001 to a frozen
reference, entropy bonus 0.001) at lr 1e-6 constant; 128 prompts x 8 samples per step at
temperature 0.6, prompts up to 1,024 tokens, two mini-batch updates of 64 prompts per step
(``optim.minibatches_per_step=2``), one pass; the completion cap and the group size change
within the run, ``schedule.context_stages`` (`r1jax.schedule`): 8,192 tokens and 8 samples per
prompt for steps 0-1,039, 16,384 tokens and 16 samples for 1,040-1,519, 24,576 tokens and 16
samples from 1,520 on (the step boundaries are the README's; DeepScaleR ran each stage as a
new verl job from the previous checkpoint, r1jax switches inside one run and keeps the
optimizer state).
About 1,750 steps in all (from summaries of the DeepScaleR blog). The reward is binary:
``<think>`` and ``</think>`` must appear in the prefilled ``<think>\\n`` + completion, the last
``\\boxed{}`` after the first ``</think>`` is graded, 1 if correct else 0, and a truncated
completion scores 0 (``verifier.options.scoring=deepscaler``; r1jax grades with its exact fast
path and Math-Verify where DeepScaleR uses the MATH normaliser and PRM800K's sympy grader).
The prompt is DeepScaleR's user message ``{problem} Let's think step by step and output the
final answer within \\boxed{}.`` in DeepSeek-R1-Distill's chat template, which ends with
``<think>\\n``.

Data: DeepScaleR-Preview-Dataset (about 40k AIME 1984-2023, AMC, Omni-MATH and STILL problems)
as JSONL rows with ``problem`` and ``answer`` fields. Evaluation as DeepScaleR's
``scripts/eval/eval_model.sh``: AIME 2024, 16 samples per problem at temperature 0.6 and
top-p 0.95 (pass@1 is their mean), up to 32,768 new tokens.

What it shows: short contexts first force concise reasoning (wrong answers were about 3x longer
than right ones), and lengthening afterwards recovers the truncated ones; DeepScaleR reports
43.1% AIME 2024 pass@1 for the 1.5B model, up from 28.8% for the distilled base.

Hardware: written for 8 accelerators with 80 GB each in the 8K stage and 32 in the 16K/24K
stages (DeepScaleR used 8 and 32 A100-80GB); the policy, its AdamW state and the reference are
sharded over ``mesh.fsdp``. Not run at this scale.

Presets:

- ``:cpu``: the same schedule shape for the completion cap (112 -> 160 -> 208 tokens at RL
  steps 0, 25 and 45; the group size stays 8, which keeps the run within 20 minutes) and reward on the ``tiny`` model trained from scratch on the math task's procedural
  problems, after a warm start on worked solutions in DeepScaleR's layout; the prompt is
  DeepScaleR's user message as plain text (no chat markup: the from-scratch tokenizer would
  spell a system message out in bytes), the grader assumes the distilled template's
  ``<think>\\n`` prefill as in the paper setup; learning rates fit the tiny model. Result on a
  shared 2-core CPU (seed 0, commit cc317fa, ``python -m r1jax.train --config
  experiments/deepscaler.py:cpu --workdir DIR``), pass@1 / pass@4 / maj@4 in % on 200 held-out
  problems x 4 samples: after the warm start 42.1 / 56.5 / 44.5, after 60 GRPO steps 42.5 /
  57.0 / 44.0, in 3 min 31 s. The stages did what DeepScaleR's did: at the 112-token cap 25-36%
  of the rollouts were truncated (reward 0); after the switch to 160 tokens none were, and the
  rollouts' correctness rose from 0.14-0.20 to 0.28-0.41 while the mean length settled near 100
  tokens.
- ``:smoke``: two warm-start and two GRPO steps with tiny batches, crossing one context stage
  (used by the tests).
"""

import ml_collections

USER_TEMPLATE = "{question} Let's think step by step and output the final answer within \\boxed{}."


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.steps = 1750
    c.model = dict(
        name="/path/to/DeepSeek-R1-Distill-Qwen-1.5B",
        dtype="bfloat16",
        param_dtype="float32",
        remat=True,
    )
    c.tokenizer = dict(use_chat_template=True)
    c.data = dict(
        task="math",
        source="jsonl",
        path="/path/to/deepscaler.jsonl",
        prompt_field="problem",
        answer_field="answer",
        user_template=USER_TEMPLATE,
        prompts_per_step=128,
        bucket_sizes=(256, 512, 1024),
    )
    c.sampling = dict(
        group_size=8, temperature=0.6, top_p=1.0, max_new_tokens=24576, stop_strings=()
    )
    c.schedule = dict(context_stages=((0, 8192, 8), (1040, 16384, 16), (1520, 24576, 16)))
    c.verifier = dict(options=dict(scoring="deepscaler"))
    c.rewards = dict(correctness_weight=1.0, truncated_is_incorrect=True)
    c.objective = dict(
        algorithm="grpo",
        aggregation="token-mean",
        kl_coef=0.001,
        kl_estimator="k3",
        kl_placement="loss",
        clip_eps_low=0.2,
        clip_eps_high=0.2,
        entropy_coef=0.001,
    )
    c.reference = dict(mode="frozen")
    c.optim = dict(
        lr=1e-6, weight_decay=0.0, grad_clip_norm=1.0, minibatches_per_step=2, micro_batch_size=8
    )
    c.sft = dict(mode="none")
    c.eval = dict(
        every=20,
        num_problems=30,
        k=16,
        temperature=0.6,
        top_p=0.95,
        greedy=False,
        max_new_tokens=32768,
        path="/path/to/aime24.jsonl",
    )
    c.mesh = dict(data=1, fsdp=-1, tensor=1)
    c.checkpoint = dict(every=20, keep=2)
    c.logging = dict(every=1, tensorboard=True, progress_bar=False, samples_to_log=2)
    if arg in ("cpu", "smoke"):
        c.steps = 60
        c.model = dict(name="tiny", dtype="float32", param_dtype="float32", remat=False)
        c.tokenizer = dict(use_chat_template=False)
        c.data = dict(
            task="math",
            source="procedural",
            task_options=dict(max_integer=9, max_denominator=4, word_problems=0.25),
            template="deepscaler",
            prompts_per_step=8,
            bucket_sizes=(64,),
        )
        c.sampling = dict(
            group_size=8, temperature=0.6, top_p=1.0, max_new_tokens=208, stop_strings=()
        )
        c.schedule = dict(context_stages=((0, 112), (25, 160), (45, 208)))
        c.optim = dict(
            lr=2e-4,
            weight_decay=0.0,
            grad_clip_norm=1.0,
            minibatches_per_step=2,
            micro_batch_size=0,
        )
        c.sft = dict(
            mode="warmup", steps=400, lr=2e-3, batch_size=32, source="reference:deepscaler"
        )
        c.eval = dict(
            every=0,
            num_problems=200,
            k=4,
            temperature=0.6,
            top_p=0.95,
            greedy=False,
            max_new_tokens=208,
            path="",
        )
        c.mesh = dict(data=1, fsdp=1, tensor=1)
        c.checkpoint = dict(every=50, keep=1)
        c.logging = dict(every=10, tensorboard=False, progress_bar=True, samples_to_log=2)
    if arg == "smoke":
        c.steps = 2
        c.data.prompts_per_step = 2
        c.sampling.group_size = 2
        c.schedule.context_stages = ((0, 8), (1, 16))  # warm-start rows still fit 208 tokens
        c.sft.steps = 2
        c.sft.batch_size = 2
        c.eval.num_problems = 2
        c.eval.k = 2
        c.eval.max_new_tokens = 16
        c.checkpoint.every = 1
        c.logging.every = 1
        c.logging.progress_bar = False
    elif arg not in (None, "cpu"):
        raise ValueError(f"unknown preset {arg!r}; known: cpu, smoke")
    return c
