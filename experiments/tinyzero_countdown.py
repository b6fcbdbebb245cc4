"""TinyZero's Countdown: a base model learns to reach a target from 3-4 numbers, by RL alone.

Command:

    python -m r1jax.train --config experiments/tinyzero_countdown.py \\
        --workdir runs/tinyzero_countdown --config.model.name=/path/to/Qwen2.5-3B

Follows TinyZero (repo Jiayi-Pan/TinyZero: ``examples/data_preprocess/countdown.py``
``make_prefix`` for the prompt, ``verl/utils/reward_score/countdown.py`` for the score,
``scripts/train_tiny_zero.sh`` and ``verl/trainer/config/ppo_trainer.yaml`` for the settings;
README: GRPO by ``algorithm.adv_estimator=grpo`` with more than one sample per prompt):
Qwen2.5-3B base, TinyZero's base prompt (``data.template=base``: "... Show your work in
<think> </think> tags. And return the final answer in <answer> </answer> tags ... Assistant:
Let me solve this step by step.\\n<think>"), TinyZero's score as the reward
(``rewards.score_weight=1``, ``rewards.correctness_weight=0``): 1 for an equation that uses each
number once and equals the target, 0.1 for any other equation in ``<answer>`` tags on the last
line, 0 without one (r1jax's exact-rational evaluator instead of ``eval``; truncated completions
are scored like the others, as in TinyZero). Per step 256 prompts (``data.train_batch_size``),
prompts up to 256 and completions up to 1,024 tokens, temperature 1 and top-p 1, no stop string
(generation ends at EOS), lr 1e-6 constant, four updates per step (``ppo_mini_batch_size=64``
prompts), token-mean loss, entropy bonus 0.001 (``ppo_trainer.yaml``) and KL coefficient 0.001
(``algorithm.kl_ctrl.kl_coef``); 15 passes (``trainer.total_epochs``) over TinyZero's 327,680
training problems are 19,200 steps. r1jax evaluates every 100 steps on 1,024 held-out problems,
greedily (TinyZero's test split is the 1,024 rows after its training rows).

GRPO here (the default): 8 samples per prompt (TinyZero's README asks for more than one and
names no number: r1jax's choice, the oat-zero Countdown value), group-normalised advantages and
the KL as GRPO puts it, k3 in the loss (arXiv:2402.03300 §4.1). ``:ppo`` is TinyZero's
original run: one sample per prompt, PPO with a critic started from the base model (GAE with
γ = λ = 1, critic lr 1e-5 with value clipping 0.5, four critic mini-batches per step) and the
KL as k1 in the reward (the ``ppo_tinyzero`` preset of `r1jax.algorithms.ppo`).

Data: r1jax's Countdown generator (3 or 4 numbers in 1..99, a target reachable by a random
expression over all of them, so every problem is solvable) instead of the
``Jiayi-Pan/Countdown-Tasks-3to4`` data set; held-out problems come from another seed.

What it shows: TinyZero's result that a 3B base model, with a rule reward and no supervised
data, learns to search, check and revise its equations and raises its Countdown accuracy
(TinyZero reports that the 0.5B base model fails to and that 1.5B and up learn).

Hardware: TinyZero ran the 3B model on 2 GPUs (README: ``N_GPUS=2``, ``ROLLOUT_TP_SIZE=2``);
this file shards the policy, the reference and the optimizer state over ``mesh.fsdp`` on
whatever accelerators there are. Not run at this scale here: check memory with
``python -m r1jax.plan`` first.

Presets (comma-separated words, e.g. ``:ppo,cpu``):

- ``:ppo``: TinyZero's PPO with a critic instead of GRPO (see above).
- ``:cpu``: TinyZero's task and score on the ``tiny`` model (0.45M parameters, a byte-level
  BPE tokenizer fit on the task's prompts and traces) trained from scratch on a 2-core CPU,
  in a smaller range: two numbers in 1..50 and a target in 1..100, which every problem reaches
  by one of ``+ - * /``. The 2,851-problem space is split by a hash of each problem
  (``data.heldout_fraction=0.2``, `r1jax.data.partition`): the warm start, the RL prompts and
  the tokenizer's text come from 80% of it, the evaluation from 500 different problems of the
  other 20% (``eval.distinct``), 4 samples each at temperature 0.6 / top-p 0.95, pass@1
  averaged over the samples. A supervised warm start of 600 steps x 32 answers
  (``reference:direct``: ``</think> <answer>x op y</answer>``; lr 2e-3 after 20 warm-up steps,
  cosine decay), then 400 Dr. GRPO steps (arXiv:2503.20783 §3.1; no KL) of 8 prompts x 8
  samples at temperature 1 with TinyZero's score (1 / 0.1 / 0), at most 32 new tokens, lr 2e-4.
- ``:smoke``: two warm-start and two RL steps with tiny batches (used by the tests).

Measured with ``:cpu`` on the 2-core CPU (an Intel Xeon KVM guest; jax float32), one run at a
time, ``python -m r1jax.train --config experiments/tinyzero_countdown.py:cpu --config.seed=N
--config.data.seed=N --workdir DIR``; pass@1 / pass@4 / maj@4 in %:

    seed  after SFT           after RL            pass@1 gain  wall time
    0     56.5 / 85.4 / 57.6  68.3 / 75.8 / 69.0  +11.8        9 min 57 s
    1     43.5 / 76.0 / 44.4  61.0 / 68.8 / 61.8  +17.5        10 min 38 s
    2     51.9 / 82.6 / 55.2  65.8 / 72.6 / 66.6  +13.9        9 min 26 s

(2026-12-06, code of commit e035337 with this file's settings; tests of the recipe files ran
beside seed 1 for a minute and a half.) Expected: pass@1 rises by 12 to 18 points, to 61-68%,
in about 10 minutes on such a machine (warm-start steps about 0.4 s, RL steps about 0.7 s).

What ``:cpu`` shows: TinyZero's score as the only RL signal raises accuracy on problems the
model never trained on. The warm-started model finds the equation for most problems within 4
samples (pass@4 76-85%) but in only 44-57% of its samples; RL makes the right operator its
habit (pass@4 falls as the samples agree). Tuned on seed 0 (each run from scratch; 500
held-out problems x 4 samples unless said):

- 3 numbers in 1..9, targets up to 50 (this preset before; search traces in the warm start):
  4.8% after the warm start, 8.5% after RL (200 problems of a held-out seed): too rare a
  success for RL to build on, hence two numbers.
- 35% worked traces that tried the four operations in order until one reached the target,
  65% direct answers (1,200 warm-start steps, 160 RL steps): 53.2 -> 59.3 (+6.1); RL moved the
  policy to the direct answers (mean response 35 -> 15 tokens).
- 35% traces that computed all four operations before picking (the ``enumerate`` method): 47.6
  -> 51.1 (+3.5), again to the direct answers. Forcing the worked trace on the final model
  gave 32.6% at temperature 1 and 42.6% at 0.6: the tiny model writes the target in place of
  the two-digit sums and products (``35 + 1 = 35, 35 - 1 = 35, ...``), so its worked traces
  are no better than a guess, and RL rightly drops them.
- direct answers only, 600 warm-start steps, 400 RL steps: this preset.
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
    c.steps = 19_200
    c.model = dict(name="/path/to/Qwen2.5-3B", dtype="bfloat16", param_dtype="float32", remat=True)
    c.data = dict(
        task="countdown",
        task_options=dict(num_numbers=(3, 4), number_range=(1, 99)),
        template="base",
        prompts_per_step=256,
        bucket_sizes=(128, 256),
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
        c.steps = 400
        c.model = dict(name="tiny", dtype="float32", param_dtype="float32", remat=False)
        c.data.task_options = dict(num_numbers=2, number_range=(1, 50), target_range=(1, 100))
        c.data.prompts_per_step = 8
        c.data.bucket_sizes = (160,)
        c.data.heldout_fraction = 0.2
        c.sampling.group_size = 1 if ppo else 8
        c.sampling.max_new_tokens = 32
        c.sampling.stop_strings = ("</answer>",)  # the tiny model has no habit of stopping
        if not ppo:
            c.objective = dict(algorithm="dr_grpo", kl_coef=0.0)
            c.reference = dict(mode="none")
        c.optim = dict(lr=2e-4, weight_decay=0.0, grad_clip_norm=1.0, minibatches_per_step=1)
        if ppo:
            c.critic = dict(init="policy", lr=1e-3, minibatches_per_step=2)
        c.sft = dict(
            mode="warmup",
            steps=600,
            lr=2e-3,
            schedule="cosine",
            warmup_steps=20,
            batch_size=32,
            source="reference:direct",
        )
        c.eval = dict(
            num_problems=500, distinct=True, k=4, temperature=0.6, top_p=0.95, greedy=False
        )
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
