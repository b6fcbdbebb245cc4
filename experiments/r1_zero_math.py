"""DeepSeek-R1-Zero's GRPO on math: a base model, the R1 template, a rule-based reward, no SFT.

Command:

    python -m r1jax.train --config experiments/r1_zero_math.py --workdir runs/r1_zero_math \\
        --config.model.name=/path/to/Qwen2.5-7B --config.data.path=/path/to/math_train.jsonl \\
        --config.eval.path=/path/to/aime24.jsonl

Follows DeepSeek-R1-Zero (DeepSeek-R1, arXiv:2501.12948 §2.2, Table 1; the Nature version's
Methods, "Training details of DeepSeek-R1-Zero"): GRPO (DeepSeekMath eq. 3, token-level, the
group's mean and unbiased std) with the k3 KL estimator in the loss at β = 0.001, lr 3e-6,
32 questions x 16 samples per optimizer update at temperature 1, rollouts of 8,192 outputs
(512 questions x 16) split into 16 mini-batch updates with one pass (``optim.
minibatches_per_step=16``: one r1jax step is one rollout, so 10,400 updates are 650 steps),
completions up to 32,768 tokens raised to 65,536 at update 8,200 (rollout 513,
``schedule.context_stages``), and the reference replaced by the current policy every 400
updates (25 rollouts, ``reference.mode=reset_every``). The prompt is R1's Table 1 template
(``data.template=r1_zero``), generation stops after ``</answer>``, and the reward is rule-based
only: accuracy (the math verifier: the last ``\\boxed{}``, else the ``<answer>`` tag, graded with
an exact fast path and Math-Verify) plus a format term for ``<think>...</think> <answer>...
</answer>`` (``verifier.options.format_check=lenient``). R1 gives neither the two terms'
weights nor PPO's clip ε for R1-Zero (the Nature Methods give ε = 10 only for R1's first RL
stage); this file weights them 1 : 0.5 and keeps ε = 0.2.

Model and data: R1-Zero trained DeepSeek-V3-Base (671B MoE, multi-head latent attention), which
r1jax does not implement; this file takes a dense Qwen2.5 base with a long context in its place
(``Qwen2.5-Math-7B`` has a 4,096-token window: use it with
``--config.sampling.max_new_tokens=3000 --config.schedule.context_stages='()'``). DeepSeek did
not release the RL prompts; any JSONL of math problems with ``problem`` and ``answer`` fields
works (e.g. the MATH training set). Evaluation follows R1 §3: AIME 2024 (30 problems), 64
samples per problem at temperature 0.6 and top-p 0.95 (pass@1 is their mean; cons@64 is
``maj@64``), up to 32,768 new tokens.

What it shows: reasoning behaviour (long chains of thought, re-checking) emerging from a base
model under outcome rewards alone; R1 reports AIME 2024 pass@1 rising from 15.6% to 71.0%
(cons@64 86.7%) for DeepSeek-V3-Base.

Hardware: written for 64 or more accelerators with 80 GB each (a 7B policy with float32 master
weights, AdamW moments and a reference, sharded over ``mesh.fsdp``; 32K-token rollouts); not run
at this scale. Check memory with ``python -m r1jax.plan`` first.

Presets:

- ``:cpu``: the same loss (GRPO, k3 KL 0.001 in the loss, reference reset, format term) on the
  ``tiny`` model trained from scratch on the math task's procedural problems (small integer and
  fraction arithmetic with LaTeX answers) in the R1 template, after a supervised warm start on
  the task's worked solutions (half of them cut to the bare answer, so the policy starts out
  mixing a reliable and an unreliable behaviour); learning rates and lengths fit the tiny model.
  Result on a shared 2-core CPU (seed 0, commit cc317fa, ``python -m r1jax.train --config
  experiments/r1_zero_math.py:cpu --workdir DIR``), pass@1 / pass@4 / maj@4 in % on 200
  held-out problems x 4 samples: after the warm start 16.8 / 40.5 / 18.0, after 60 GRPO steps
  11.2 / 23.5 / 11.0, in 9 min 7 s. The format term moved first (rollout format rate 0.66 ->
  0.95, response length 57 -> 105 tokens) while rollout correctness stayed near 10%: at this
  budget the run shows the mechanism (format and length shaping, KL, reference resets), not a
  gain in accuracy.
- ``:smoke``: two warm-start and two GRPO steps with tiny batches (used by the tests).
"""

import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.steps = 650  # rollouts; x16 mini-batch updates = R1-Zero's 10,400 steps
    c.model = dict(name="/path/to/Qwen2.5-7B", dtype="bfloat16", param_dtype="float32", remat=True)
    c.data = dict(
        task="math",
        source="jsonl",
        path="/path/to/math_train.jsonl",
        prompt_field="problem",
        answer_field="answer",
        template="r1_zero",
        prompts_per_step=512,
        bucket_sizes=(256, 512, 1024),
    )
    c.sampling = dict(
        group_size=16,
        temperature=1.0,
        top_p=1.0,
        max_new_tokens=32768,
        stop_strings=("</answer>",),
    )
    c.schedule = dict(context_stages=((513, 65536),))
    c.verifier = dict(options=dict(format_check="lenient"))
    c.rewards = dict(correctness_weight=1.0, format_weight=0.5, truncated_is_incorrect=True)
    c.objective = dict(
        algorithm="grpo",
        kl_coef=0.001,
        kl_estimator="k3",
        kl_placement="loss",
        clip_eps_low=0.2,
        clip_eps_high=0.2,
        entropy_coef=0.0,
    )
    c.reference = dict(mode="reset_every", reset_every=25)
    c.optim = dict(
        lr=3e-6, weight_decay=0.0, grad_clip_norm=1.0, minibatches_per_step=16, micro_batch_size=16
    )
    c.sft = dict(mode="none")
    c.eval = dict(
        every=25,
        num_problems=30,
        k=64,
        temperature=0.6,
        top_p=0.95,
        greedy=False,
        max_new_tokens=32768,
        path="/path/to/aime24.jsonl",
    )
    c.mesh = dict(data=1, fsdp=-1, tensor=1)
    c.checkpoint = dict(every=25, keep=2)
    c.logging = dict(every=1, tensorboard=True, progress_bar=False, samples_to_log=2)
    if arg in ("cpu", "smoke"):
        c.steps = 60
        c.model = dict(name="tiny", dtype="float32", param_dtype="float32", remat=False)
        c.data = dict(
            task="math",
            source="procedural",
            task_options=dict(max_integer=9, max_denominator=4, word_problems=0.25),
            template="r1_zero",
            prompts_per_step=8,
            bucket_sizes=(160,),
        )
        c.sampling = dict(
            group_size=8,
            temperature=1.0,
            top_p=1.0,
            max_new_tokens=192,
            stop_strings=("</answer>",),
        )
        c.schedule = dict(context_stages=())
        c.reference = dict(mode="reset_every", reset_every=20)
        c.optim = dict(lr=2e-4, weight_decay=0.0, grad_clip_norm=1.0, minibatches_per_step=1)
        c.sft = dict(
            mode="warmup",
            steps=400,
            lr=2e-3,
            batch_size=32,
            source="reference:r1_zero=0.5,direct=0.5",
        )
        c.eval = dict(
            every=0, num_problems=200, k=4, temperature=0.6, top_p=0.95, greedy=False, path=""
        )
        c.eval.max_new_tokens = 0
        c.mesh = dict(data=1, fsdp=1, tensor=1)
        c.checkpoint = dict(every=50, keep=1)
        c.logging = dict(every=10, tensorboard=False, progress_bar=True, samples_to_log=2)
    if arg == "smoke":
        c.steps = 2
        c.data.prompts_per_step = 2
        c.sampling.group_size = 2
        c.schedule.context_stages = ((0, 16),)  # RL samples 16; warm-start rows still fit
        c.eval.max_new_tokens = 16
        c.reference.reset_every = 1
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
