"""TinyZero's multiplication: a base model learns 3-digit multiplication by RL alone.

Command:

    python -m r1jax.train --config experiments/tinyzero_multiplication.py \\
        --workdir runs/tinyzero_multiplication --config.model.name=/path/to/Qwen2.5-3B

Follows TinyZero (repo Jiayi-Pan/TinyZero: ``examples/data_preprocess/multiply.py`` for the
data and the prompt, ``verl/utils/reward_score/multiply.py`` for the score,
``scripts/train_tiny_zero.sh`` and ``verl/trainer/config/ppo_trainer.yaml`` for the settings,
which TinyZero shares with its Countdown run): Qwen2.5-3B base; operands drawn as
``multiply.py`` draws them with ``DIGIT=3`` (each one independently: with probability 1/4 in
0..9, 1/4 in 0..99, 1/2 in 0..999; ``data.task_options.distribution=tinyzero``); TinyZero's
one-line prompt ("... <answer> RESULT_NUMBER </answer>. User: Give me the answer of the
following equation: {a} * {b} = Assistant: Ok let me think about it.\\n<think>"); TinyZero's
score as the reward (``rewards.score_weight=1``, ``rewards.correctness_weight=0``): 1 for the
right integer in the last ``<answer>`` tags, 0.1 for another integer, 0 without one. Per step
256 prompts, completions up to 1,024 tokens, temperature 1 and top-p 1, no stop string, lr 1e-6
constant, four updates per step (``ppo_mini_batch_size=64`` prompts), token-mean loss, entropy
bonus 0.001 and KL coefficient 0.001; 15 passes over the 32,768 training pairs are 1,920
steps, evaluated every 100 steps on 1,024 held-out pairs, greedily.

GRPO here (the default): 8 samples per prompt (TinyZero's README asks for more than one:
r1jax's choice), k3 KL in the loss (arXiv:2402.03300 §4.1). ``:ppo`` is TinyZero's PPO with a
critic started from the base model: one sample per prompt, GAE with γ = λ = 1, critic lr 1e-5
with value clipping 0.5, the KL as k1 in the reward (the ``ppo_tinyzero`` preset of
`r1jax.algorithms.ppo`).

Data: r1jax's generator with TinyZero's operand distribution, endless and seeded (TinyZero
deduplicates 100,000 draws of seed 1 and keeps 32,768 for training); held-out pairs come from
another seed, so some also occur in training (the 3-digit space holds 10^6 pairs).

What it shows: TinyZero's observation that on multiplication the model learns to break the
product down (by the distributive rule) and work it out step by step, unlike the search it
learns on Countdown (TinyZero's announcement thread, "Model's reasoning behavior is very task
dependent").

Hardware: as TinyZero's 3B runs, 2 GPUs (README: ``N_GPUS=2``, ``ROLLOUT_TP_SIZE=2``); the
policy, the reference and the optimizer state are sharded over ``mesh.fsdp``. Not run at this
scale here: check memory with ``python -m r1jax.plan`` first.

Presets (comma-separated words, e.g. ``:ppo,cpu``):

- ``:ppo``: TinyZero's PPO with a critic instead of GRPO (see above).
- ``:cpu``: the same recipe on the ``tiny`` model trained from scratch on 3-digit x 1-digit
  multiplication, with the default experiment's warm start (900 steps x 32 traces: 35% work the
  product out digit by digit, 65% give the answer alone), then 160 GRPO steps of 8 prompts x 8
  samples with TinyZero's score, KL and entropy terms, at most 128 new tokens, lr 2e-4.
  Evaluation: 200 held-out problems, 4 samples each at temperature 0.6 / top-p 0.95.
- ``:smoke``: two warm-start and two RL steps with tiny batches (used by the tests).

Measured with ``:cpu`` (seed 0, commit 9118226) on the 2-core CPU with nothing else running:
``python -m r1jax.train --config experiments/tinyzero_multiplication.py:cpu
--config.logging.progress_bar=false --workdir DIR``; pass@1 / pass@4 / maj@4 in %:

    after the warm start   19.4 / 33.5 / 23.0
    after 160 GRPO steps   46.6 / 57.0 / 47.0   (pass@1 +27.2)

in 9 min 36 s (576.0 s; an earlier run on commit 51ca16a, on a loaded machine, printed the
same figures in 28 min). Mean completion length went from 26 to 101
tokens: RL moved the policy from the direct guess to the digit-by-digit method.
"""

import ml_collections

PRESETS = ("ppo", "cpu", "smoke")


def get_config(arg=None):
    words = set(arg.split(",")) if arg else set()
    if words - set(PRESETS):
        raise ValueError(f"unknown preset {arg!r}; known words: {', '.join(PRESETS)}")
    ppo = "ppo" in words
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.steps = 1_920
    c.model = dict(name="/path/to/Qwen2.5-3B", dtype="bfloat16", param_dtype="float32", remat=True)
    c.data = dict(
        task="multiplication",
        task_options=dict(digits=3, distribution="tinyzero"),
        template="base",
        prompts_per_step=256,
        bucket_sizes=(64, 128),
    )
    c.sampling = dict(
        group_size=1 if ppo else 8,
        temperature=1.0,
        top_p=1.0,
        max_new_tokens=1024,
        stop_strings=(),
    )
    c.rewards = dict(correctness_weight=0.0, score_weight=1.0, truncated_is_incorrect=False)
    if ppo:  # KL (k1, in the reward), entropy and critic settings: the ppo_tinyzero preset
        c.objective = dict(algorithm="ppo_tinyzero")
        c.critic = dict(init="policy", minibatches_per_step=4)
    else:
        c.objective = dict(
            algorithm="grpo",
            kl_coef=0.001,
            kl_estimator="k3",
            kl_placement="loss",
            entropy_coef=0.001,
            aggregation="token-mean",
        )
    c.reference = dict(mode="frozen")
    c.optim = dict(lr=1e-6, weight_decay=0.01, grad_clip_norm=1.0, minibatches_per_step=4)
    c.sft = dict(mode="none")
    c.eval = dict(every=100, num_problems=1024, k=1, temperature=1.0, top_p=1.0, greedy=True)
    c.mesh = dict(data=1, fsdp=-1, tensor=1)
    c.checkpoint = dict(every=100, keep=2)
    c.logging = dict(every=1, tensorboard=True, progress_bar=False, samples_to_log=2)
    if "cpu" in words or "smoke" in words:
        c.steps = 160
        c.model = dict(name="tiny", dtype="float32", param_dtype="float32", remat=False)
        c.data.task_options = dict(digits=3, digits_b=1, distribution="exact_digits")
        c.data.prompts_per_step = 8
        c.data.bucket_sizes = (128,)
        c.sampling.max_new_tokens = 128
        c.sampling.stop_strings = ("</answer>",)  # the tiny model has no habit of stopping
        c.optim = dict(lr=2e-4, weight_decay=0.0, grad_clip_norm=1.0, minibatches_per_step=1)
        if ppo:
            c.critic = dict(init="policy", lr=1e-3, minibatches_per_step=2)
        c.sft = dict(
            mode="warmup",
            steps=900,
            lr=2e-3,
            batch_size=32,
            source="reference:long=0.35,direct=0.65",
        )
        c.eval = dict(every=0, num_problems=200, k=4, temperature=0.6, top_p=0.95, greedy=False)
        c.mesh = dict(data=1, fsdp=1, tensor=1)
        c.checkpoint = dict(every=100, keep=2)
        c.logging = dict(every=10, tensorboard=False, progress_bar=True, samples_to_log=2)
    if "smoke" in words:
        c.steps = 2
        c.data.prompts_per_step = 2
        c.sampling.group_size = 1 if ppo else 2
        c.sampling.max_new_tokens = 16
        c.sft = dict(mode="warmup", steps=2, lr=2e-3, batch_size=2, source="reference:direct")
        c.eval.num_problems = 2
        c.eval.k = 2
        c.checkpoint.every = 1
        c.logging.every = 1
        c.logging.progress_bar = False
    return c
