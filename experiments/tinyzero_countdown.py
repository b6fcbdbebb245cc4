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
- ``:cpu``: the same recipe on the ``tiny`` model (0.45M parameters, a byte-level BPE tokenizer
  fit on the task's prompts and traces), trained from scratch: an easier Countdown (3 numbers
  in 1..9, targets up to 50), a supervised warm start on the task's reference traces (600 steps
  x 32; 35% search traces that try equations until one reaches the target, 65% the answer
  alone), then 80 GRPO steps of 8 prompts x 8 samples with TinyZero's score, KL and entropy
  terms, at most 192 new tokens, lr 2e-4. Evaluation: 200 held-out problems, 4 samples each at
  temperature 0.6 / top-p 0.95.
- ``:smoke``: two warm-start and two RL steps with tiny batches (used by the tests).

Measured with ``:cpu`` (seed 0; code of commit 51ca16a with this file as committed in 86738f2)
on the shared 2-core CPU (2.6 GHz Xeon guest, jax float32), load average about 3 from other
work: ``python -m r1jax.train --config experiments/tinyzero_countdown.py:cpu
--config.logging.progress_bar=false --workdir DIR``; pass@1 / pass@4 / maj@4 in %:

    after the warm start   4.8 / 16.5 / 4.5
    after 80 GRPO steps    8.5 / 21.0 / 7.5   (pass@1 +3.7)

in 18 min 2 s (1.27 s per warm-start step, 3.5 s per RL step). A small gain: the warm-started
tiny model rarely finds the equation by search (mean completion 35 tokens), and RL settled on
guessing the equation directly (17 tokens), which TinyZero's score keeps at 0.1 whenever the
guess uses each number once; the reward's 0.1 floor and the low accuracy (0 to 6% of the
training samples correct) leave little signal. This preset shows the recipe running end to
end on a CPU, not TinyZero's result.
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
        c.steps = 80
        c.model = dict(name="tiny", dtype="float32", param_dtype="float32", remat=False)
        c.data.task_options = dict(num_numbers=3, number_range=(1, 9), target_range=(1, 50))
        c.data.prompts_per_step = 8
        c.data.bucket_sizes = (160,)
        c.sampling.group_size = 1 if ppo else 8
        c.sampling.max_new_tokens = 192
        c.sampling.stop_strings = ("</answer>",)  # the tiny model has no habit of stopping
        c.optim = dict(lr=2e-4, weight_decay=0.0, grad_clip_norm=1.0, minibatches_per_step=1)
        if ppo:
            c.critic = dict(init="policy", lr=1e-3, minibatches_per_step=2)
        c.sft = dict(
            mode="warmup",
            steps=600,
            lr=2e-3,
            batch_size=32,
            source="reference:search=0.35,direct=0.65",
        )
        c.eval = dict(every=0, num_problems=200, k=4, temperature=0.6, top_p=0.95, greedy=False)
        c.mesh = dict(data=1, fsdp=1, tensor=1)
        c.checkpoint = dict(every=50, keep=2)
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
