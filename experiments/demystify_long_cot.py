"""Demystifying long CoT: a long-CoT SFT warm start, then RL with the cosine length reward and
the n-gram repetition penalty.

Command:

    python -m r1jax.train --config experiments/demystify_long_cot.py --workdir runs/demystify \\
        --config.model.name=/path/to/Llama-3.1-8B \\
        --config.sft.source=/path/to/math_train_qwq_rs.jsonl \\
        --config.data.path=/path/to/math_train.jsonl --config.eval.path=/path/to/math500.jsonl

    # the paper's optimizer, PPO with a critic:
    python -m r1jax.train --config experiments/demystify_long_cot.py:ppo --workdir runs/demystify_ppo ...

Follows "Demystifying Long Chain-of-Thought Reasoning in LLMs" (arXiv:2502.03373 §3.1, §4.2,
App. C; repo eddycmu/demystify-long-cot ``openrlhf/scripts/section_3.1_sft_scaling/*.sh`` and
``section_4.2__active_scaling_of_cot_length__cosine_repetition_penalty.sh``, rewards in
``openrlhf/openrlhf/reward/cosine.py`` and ``repetition.py``):

1. Long-CoT SFT (``sft.mode=warmup``): Llama-3.1-8B on QwQ-32B-Preview traces rejection-sampled
   on the MATH training problems (``demystify-long-cot/math-train-qwq-rs-*``; a JSONL of
   ``problem`` / ``response`` rows here), in the model's chat template, lr 5e-6, 256 sequences
   per step, two epochs (``sft.steps`` = 2 x rows / 256; 120 fits about 15k rows).
2. RL on the MATH training prompts with the paper's reward: the cosine length-scaled
   correctness reward with the run's constants (a correct answer earns +2 at length 0 down to
   +1 at the cap, a wrong one -10 at length 0 up to 0 at the cap, and -10 when the completion
   comes within 16 tokens of the cap; ``L_max`` = 14,336 new tokens after prompts of up to
   2,048: ``rewards.cosine``) plus the dense n-gram repetition penalty (-0.05 for every token
   of a repeated 40-gram: ``rewards.repetition``), with the run's batch (512 prompts x 16
   samples at temperature 1, top-p 1; 512 samples per update and two passes: 16 mini-batches,
   ``objective.num_iterations=2``), 8 episodes over the 7,500 problems (117 steps), actor lr
   5e-7 and the k1 KL in the reward at 0.01.

Presets of the RL algorithm: by default GRPO (the group's mean and std as the baseline, with
the paper's reward, batch and KL); ``:ppo`` is the paper's PPO (``objective.algorithm=ppo``: a
critic initialised from the policy at lr 9e-6, GAE with λ = 1, whitened advantages; see
`r1jax.algorithms.ppo`).

Differences from the paper, by design of r1jax: the repetition penalty is summed into the
sequence reward, so both reward terms are returned with γ = 1, where the paper discounts the
penalty with γ = 0.99 (``--gamma 1,0.99``) to place it near the repetition; OpenRLHF's
``--normalize_reward`` (running reward statistics) is approximated by whitening advantages
(PPO) or the group std (GRPO). Correctness comes from the math verifier (fast path, then
Math-Verify) where the paper grades with a Hendrycks-MATH string grader. The SFT stage's
sequences are sized by ``sampling.max_new_tokens`` (28,672 here, for QwQ's long traces), while
RL samples 14,336 tokens (``schedule.context_stages``).

Evaluation: MATH-500 (the paper also reports AIME 2024, TheoremQA and MMLU-Pro-1k: point
``eval.path`` at each), 4 samples at temperature 0.6 / top-p 0.95 (R1's protocol; this file's
choice), up to 14,336 new tokens.

What it shows: with a plain 0/1 reward long-CoT lengths grow until they hit the context and
training destabilises; the cosine reward keeps lengths in check while accuracy rises, and the
repetition penalty stops the model from gaming it by repeating text.

Hardware: written for 16 accelerators with 80 GB each (the paper's run: actor, critic and
reference on two nodes of 8 GPUs each, plus vLLM engines); sharded over ``mesh.fsdp``. Not run
at this scale.

Presets (comma-separated words, e.g. ``:ppo,cpu``):

- ``:ppo``: the paper's PPO with a critic (above); with ``cpu`` or ``smoke`` the critic's lr
  and mini-batches fit the tiny model (1e-3, 4 or 2).
- ``:cpu``: GRPO with the paper's cosine constants (``L_max`` the tiny model's 192 tokens) and
  a repetition penalty of 8-grams at -0.01 on the ``tiny`` model trained from scratch on the
  math task's procedural problems, after a warm start on worked solutions in the Qwen-Math
  layout of which 30% re-check their result; learning rates fit the tiny model. Result on a
  shared 2-core CPU (seed 0, commit cc317fa, ``python -m r1jax.train --config
  experiments/demystify_long_cot.py:cpu --workdir DIR``), pass@1 / pass@4 / maj@4 in % on 200
  held-out problems x 4 samples: after the warm start 41.2 / 57.5 / 42.0, after 60 GRPO steps
  29.9 / 44.0 / 30.5, in 4 min 40 s. With the paper's constants a short wrong answer costs -10
  and one near the cap 0, so the policy lengthened its answers (mean 82 -> 121 tokens) and the
  mean cosine reward rose from -3.8 to -1.5 while held-out accuracy fell: the length incentive
  for wrong answers dominates at this scale.
- ``:smoke``: two SFT steps read from ``experiments/data/math_traces.jsonl`` (16 generated
  problems with traces; ``experiments/data/make_math_traces.py`` rewrites it) through the tiny
  tokenizer's chat template, then two GRPO steps (used by the tests).
"""

import os

import ml_collections

PRESETS = ("ppo", "cpu", "smoke")
TRACES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "math_traces.jsonl")


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.steps = 117  # 8 episodes over 7,500 prompts at 512 per step
    c.model = dict(
        name="/path/to/Llama-3.1-8B", dtype="bfloat16", param_dtype="float32", remat=True
    )
    c.tokenizer = dict(use_chat_template=True)
    c.data = dict(
        task="math",
        source="jsonl",
        path="/path/to/math_train.jsonl",
        prompt_field="problem",
        answer_field="answer",
        prompts_per_step=512,
        bucket_sizes=(512, 1024, 2048),
    )
    c.sampling = dict(
        group_size=16, temperature=1.0, top_p=1.0, max_new_tokens=28672, stop_strings=()
    )
    c.schedule = dict(context_stages=((0, 14336),))  # RL samples 14,336; SFT rows fit 28,672
    c.rewards = dict(
        correctness_weight=1.0,
        truncated_is_incorrect=True,
        cosine=dict(
            enabled=True,
            max_correct=2.0,
            min_correct=1.0,
            min_wrong=-10.0,
            max_wrong=0.0,
            exceed=-10.0,
            margin=16,
            max_length=0,
        ),
        repetition=dict(enabled=True, ngram_size=40, penalty=-0.05),
    )
    c.objective = dict(
        algorithm="grpo",
        kl_coef=0.01,
        kl_estimator="k1",
        kl_placement="reward",
        num_iterations=2,
    )
    c.reference = dict(mode="frozen")
    c.optim = dict(
        lr=5e-7, weight_decay=0.0, grad_clip_norm=1.0, minibatches_per_step=16, micro_batch_size=8
    )
    c.sft = dict(
        mode="warmup",
        steps=120,
        lr=5e-6,
        batch_size=256,
        source="/path/to/math_train_qwq_rs.jsonl",
        prompt_field="problem",
        response_field="response",
    )
    c.eval = dict(
        every=10,
        num_problems=500,
        k=4,
        temperature=0.6,
        top_p=0.95,
        greedy=False,
        max_new_tokens=14336,
        path="/path/to/math500.jsonl",
    )
    c.mesh = dict(data=1, fsdp=-1, tensor=1)
    c.checkpoint = dict(every=8, keep=2)
    c.logging = dict(every=1, tensorboard=True, progress_bar=False, samples_to_log=2)
    words = set(arg.split(",")) if arg else set()
    if words - set(PRESETS):
        raise ValueError(f"unknown preset {arg!r}; known words: {', '.join(PRESETS)}")
    if "cpu" in words or "smoke" in words:
        c.steps = 60
        c.model = dict(name="tiny", dtype="float32", param_dtype="float32", remat=False)
        c.tokenizer = dict(use_chat_template=False)
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
        c.schedule = dict(context_stages=())
        c.verifier = dict(options=dict(scoring="boxed"))
        c.rewards.repetition = dict(enabled=True, ngram_size=8, penalty=-0.01)
        c.objective = dict(
            algorithm="grpo",
            kl_coef=0.01,
            kl_estimator="k1",
            kl_placement="reward",
            num_iterations=1,
        )
        c.optim = dict(
            lr=2e-4,
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
            greedy=False,
            max_new_tokens=0,
            path="",
        )
        c.mesh = dict(data=1, fsdp=1, tensor=1)
        c.checkpoint = dict(every=50, keep=1)
        c.logging = dict(every=10, tensorboard=False, progress_bar=True, samples_to_log=2)
    if "ppo" in words:
        c.objective.algorithm = "ppo"
        c.objective.gamma = 1.0
        c.objective.gae_lambda = 1.0
        c.critic = dict(init="policy", lr=9e-6, minibatches_per_step=16)
        if "cpu" in words or "smoke" in words:
            c.critic = dict(init="policy", lr=1e-3, minibatches_per_step=4)
    if "smoke" in words:
        c.steps = 2
        c.tokenizer.use_chat_template = True
        c.data.template = ""
        c.data.prompts_per_step = 2
        c.data.bucket_sizes = (128,)
        c.sampling.group_size = 2
        c.sampling.max_new_tokens = 512  # the warm start's rows fit; RL and eval take 16
        c.schedule.context_stages = ((0, 16),)
        c.sft.steps = 2
        c.sft.batch_size = 2
        c.sft.source = TRACES
        c.sft.prompt_field = "problem"
        c.sft.response_field = "boxed_response"
        c.eval.num_problems = 2
        c.eval.k = 2
        c.eval.max_new_tokens = 16
        c.checkpoint.every = 1
        c.logging.every = 1
        c.logging.progress_bar = False
        if "ppo" in words:
            c.critic.minibatches_per_step = 2
    return c
