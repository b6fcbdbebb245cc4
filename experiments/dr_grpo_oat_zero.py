"""Dr. GRPO on Qwen2.5-Math-7B with the Qwen-Math template, logging oat-zero's self-reflection.

Command:

    python -m r1jax.train --config experiments/dr_grpo_oat_zero.py --workdir runs/dr_grpo \\
        --config.model.name=/path/to/Qwen2.5-Math-7B \\
        --config.data.path=/path/to/math_lvl3to5_8k.jsonl --config.eval.path=/path/to/math500.jsonl

Follows "Understanding R1-Zero-Like Training: A Critical Perspective" (Dr. GRPO,
arXiv:2503.20783 §3; repo sail-sg/understand-r1-zero ``examples/qwen2.5-math-7b.sh``,
``train_zero_math.py``) and oat-zero (repo sail-sg/oat-zero ``analysis/eval_self_reflect.py``):
Dr. GRPO (the ``dr_grpo`` preset of `r1jax.algorithms.policy_gradient`: advantages
``R_i - mean(R)`` without the std, per-token losses summed and divided by the constant
``C = 3000`` = the generation cap, no KL and no reference) at lr 1e-6 constant, one pass over
each rollout; 128 prompts x 8 samples at temperature 1 and top-p 1, prompts up to 1,024 and
completions up to 3,000 tokens; oat's ``train_batch_size 128`` samples per update over rollouts
of 1,024 gives 8 updates per rollout (``optim.minibatches_per_step=8``); 20 passes
(``num_prompt_epoch``) over the 8,523 MATH level 3-5 problems at 128 per step are 1,332 steps.
The prompt is the Qwen-Math template (``data.template=qwen_math``: Qwen's chat markup with
"Please reason step by step, and put your final answer within \\boxed{}."), generation stops on
EOS only, and the reward is 1 for a correct last ``\\boxed{}`` and 0 otherwise
(``verifier.options.scoring=boxed``), with truncated completions scored 0. Every 16 steps the
policy is evaluated greedily with 3,000 new tokens. Every step logs oat-zero's self-reflection
metrics of the rollouts (``reflection/*``: the share of responses with one of oat-zero's 11
keywords, ``reflection/ssr_rate`` = P(wrong | reflecting), accuracy and length with and without
reflection; ``logging.reflection_keywords=oat_zero``), and ``python -m r1jax.plot WORKDIR``
draws them.

Data: MATH level 3-5 as JSONL rows with ``problem`` and ``answer`` fields (understand-r1-zero's
``datasets/train/math_lvl3to5_8k``); evaluation on MATH-500 (their suite also holds AIME 2024,
AMC, Minerva-Math and OlympiadBench: point ``eval.path`` at each).

What it shows: the std and length normalisations of GRPO bias it (long wrong answers,
difficulty weighting); without them response length stops growing on wrong answers while
accuracy matches. oat-zero's point, visible in the reflection panel: Qwen2.5-Math bases already
self-reflect at step 0, and reflection often does not lead to a correct answer (superficial
self-reflection). The paper reports 43.3% AIME 2024 for its 7B model (Oat-Zero-7B).

Hardware: written for 8 accelerators with 80 GB each (the policy's float32 master weights and
AdamW moments sharded over ``mesh.fsdp``; no reference model); not run at this scale.

Presets:

- ``:cpu``: Dr. GRPO on the ``tiny`` model trained from scratch on the math task's procedural
  problems in the Qwen-Math template, after a warm start on worked solutions of which 30% end
  with a self-check line (``Let me check again: ...``, one of oat-zero's keywords), so the
  reflection metrics have something to measure; learning rates and lengths fit the tiny model.
  Result on a shared 2-core CPU (seed 0, commit cc317fa, ``python -m r1jax.train --config
  experiments/dr_grpo_oat_zero.py:cpu --workdir DIR``, run beside other jobs at load 6-9),
  greedy / pass@1 / pass@4 / maj@4 in % on 200 held-out problems x 4 samples: after the warm
  start 42.5 / 41.2 / 57.5 / 42.0, after 80 Dr. GRPO steps 40.5 / 41.0 / 52.5 / 41.5, in
  16 min 39 s. The rollouts' reflection rate (``reflection/reflect_rate``, oat-zero's
  keywords) fell from 0.39 at the first logged RL step to 0.08 at the last, with the
  accuracy of reflecting responses at 0.36 -> 0.0: on this task the self-check line does not
  earn reward, so RL drops it, and pass@1 stays flat at this budget.
- ``:smoke``: two warm-start and two Dr. GRPO steps with tiny batches (used by the tests).
"""

import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.steps = 1332
    c.model = dict(
        name="/path/to/Qwen2.5-Math-7B", dtype="bfloat16", param_dtype="float32", remat=True
    )
    c.data = dict(
        task="math",
        source="jsonl",
        path="/path/to/math_lvl3to5_8k.jsonl",
        prompt_field="problem",
        answer_field="answer",
        template="qwen_math",
        prompts_per_step=128,
        bucket_sizes=(256, 512, 1024),
    )
    c.sampling = dict(
        group_size=8, temperature=1.0, top_p=1.0, max_new_tokens=3000, stop_strings=()
    )
    c.verifier = dict(options=dict(scoring="boxed"))
    c.rewards = dict(correctness_weight=1.0, truncated_is_incorrect=True)
    c.objective = dict(algorithm="dr_grpo", aggregation_constant=3000, num_iterations=1)
    c.reference = dict(mode="none")
    c.optim = dict(
        lr=1e-6,
        schedule="constant",
        weight_decay=0.0,
        grad_clip_norm=1.0,
        minibatches_per_step=8,
        micro_batch_size=8,
    )
    c.sft = dict(mode="none")
    c.eval = dict(
        every=16,
        num_problems=500,
        k=1,
        temperature=0.0,
        greedy=False,
        max_new_tokens=3000,
        path="/path/to/math500.jsonl",
    )
    c.mesh = dict(data=1, fsdp=-1, tensor=1)
    c.checkpoint = dict(every=64, keep=2)
    c.logging = dict(
        every=1,
        tensorboard=True,
        progress_bar=False,
        samples_to_log=2,
        reflection_keywords="oat_zero",
    )
    if arg in ("cpu", "smoke"):
        c.steps = 80
        c.model = dict(name="tiny", dtype="float32", param_dtype="float32", remat=False)
        c.data = dict(
            task="math",
            source="procedural",
            task_options=dict(max_integer=9, max_denominator=4, word_problems=0.25),
            template="qwen_math",
            prompts_per_step=8,
            bucket_sizes=(96,),
        )
        c.sampling = dict(
            group_size=8, temperature=1.0, top_p=1.0, max_new_tokens=192, stop_strings=()
        )
        c.objective = dict(algorithm="dr_grpo", aggregation_constant=192, num_iterations=1)
        c.optim = dict(
            lr=2e-4,
            schedule="constant",
            weight_decay=0.0,
            grad_clip_norm=1.0,
            minibatches_per_step=1,
            micro_batch_size=0,
        )
        c.sft = dict(
            mode="warmup",
            steps=400,
            lr=2e-3,
            batch_size=32,
            source="reference:qwen_math=0.7,qwen_math+recheck=0.3",
        )
        c.eval = dict(
            every=0,
            num_problems=200,
            k=4,
            temperature=0.6,
            top_p=0.95,
            greedy=True,
            max_new_tokens=0,
            path="",
        )
        c.mesh = dict(data=1, fsdp=1, tensor=1)
        c.checkpoint = dict(every=50, keep=1)
        c.logging = dict(
            every=10,
            tensorboard=False,
            progress_bar=True,
            samples_to_log=2,
            reflection_keywords="oat_zero",
        )
    if arg == "smoke":
        c.steps = 2
        c.data.prompts_per_step = 2
        c.sampling.group_size = 2
        c.schedule = dict(context_stages=((0, 16),))  # RL samples 16; warm-start rows fit
        c.eval.max_new_tokens = 16
        c.objective.aggregation_constant = 16
        c.sft.steps = 2
        c.sft.batch_size = 2
        c.eval.num_problems = 2
        c.eval.k = 2
        c.checkpoint.every = 1
        c.logging.every = 1
        c.logging.progress_bar = False
    elif arg not in (None, "cpu"):
        raise ValueError(f"unknown preset {arg!r}; known: cpu, smoke")
    return c
