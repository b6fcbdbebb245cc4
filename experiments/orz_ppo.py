"""PPO with a critic as Open-Reasoner-Zero runs it: Qwen2.5-7B base on math with a 0/1 reward.

Command:

    python -m r1jax.train --config experiments/orz_ppo.py --workdir runs/orz_ppo \\
        --config.model.name=/path/to/Qwen2.5-7B --config.data.path=/path/to/orz_math.jsonl

Follows Open-Reasoner-Zero (arXiv:2503.24290 §2.1.3 and §3.1; repo Open-Reasoner-Zero
``config.py`` ``CommonPPOConfig`` and ``playground/orz_7b_ppo.py``): vanilla PPO with GAE at
γ = λ = 1, batch-normalised advantages, clip 0.2, no KL of any kind and no entropy bonus
(the ``ppo`` preset of `r1jax.algorithms.ppo`); policy and critic both start from the base
model and share no weights; AdamW β = (0.9, 0.95), no weight decay, lr 1e-6 (policy) and 5e-6
(critic), each with 50 warm-up steps then constant; 128 prompts x 64 samples per step at
temperature 1 and top-p 1, up to 8,000 new tokens after prompts of up to 2,048; one policy
update and 12 critic mini-batch updates per rollout (``policy_update_steps``,
``critic_update_steps``); generation stops at ORZ's strings ``User:``, ``Human:``,
``Assistant:``, ``</answer>``; the reward is 1 for a correct answer in a completion that
stopped, else 0 (truncation earns 0). 20 passes (``num_episodes``) over the ~57k prompts of
``data/orz_math_57k_collected.json`` at 128 per step are about 8,900 steps.

Data: ORZ's JSON holds conversations; convert it to JSONL rows with a ``question`` and an
``answer`` field (the ``math`` task reads the last ``\\boxed{}``). The prompt is ORZ's
(``data.template=orz``).

What it shows: the recipe with which ORZ reports matching DeepSeek-R1-Zero-Qwen-32B on AIME,
MATH500 and GPQA Diamond with a tenth of the steps, run through r1jax's learner with a critic.

Hardware: written for 64 accelerators with about 80 GB each (ORZ trained the 7B model on 8
nodes x 8 GPUs); the policy, the critic and their AdamW moments are sharded over
``mesh.fsdp``, and no reference is kept. Not run at this scale: check memory with
``python -m r1jax.plan`` before launching.

Presets:

- ``:cpu``: the same algorithm on the ``tiny`` model trained from scratch on 3-digit x 1-digit
  multiplication with the default experiment's warm start (600 supervised steps, then 100 PPO
  steps of 8 prompts x 8 samples, the critic in 4 mini-batches); the learning rates fit the
  tiny model. Result on the 2-core CPU (seed 0, commit 9118226, ``python -m r1jax.train
  --config experiments/orz_ppo.py:cpu --workdir DIR``), pass@1 / pass@4 / maj@4 in % on 200
  held-out problems x 4 samples: after the warm start 14.2 / 21.0 / 16.0, after 100 PPO steps
  21.8 / 27.0 / 21.5 (+7.6 pass@1); the critic's explained variance rose from -0.02 at the
  first logged step to 0.90 at the last. Wall time 8 min 35 s (514.6 s; a short test run
  shared the cores for two minutes of it). An earlier run on commit cc317fa printed the same
  figures.
- ``:smoke``: two warm-start and two PPO steps with tiny batches (used by the tests).
"""

import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.steps = 8900
    c.model = dict(name="/path/to/Qwen2.5-7B", dtype="bfloat16", param_dtype="float32", remat=True)
    c.data = dict(
        task="math",
        source="jsonl",
        path="/path/to/orz_math.jsonl",
        prompt_field="question",
        answer_field="answer",
        template="orz",
        prompts_per_step=128,
        bucket_sizes=(512, 1024, 2048),
    )
    c.sampling = dict(
        group_size=64,
        temperature=1.0,
        top_p=1.0,
        max_new_tokens=8000,
        stop_strings=("User:", "Human:", "Assistant:", "</answer>"),
    )
    c.rewards = dict(correctness_weight=1.0, truncated_is_incorrect=True)
    c.objective = dict(algorithm="ppo")
    c.reference = dict(mode="none")
    c.optim = dict(lr=1e-6, b2=0.95, weight_decay=0.0, warmup_steps=50, micro_batch_size=64)
    c.critic = dict(init="policy", lr=5e-6, lr_warmup_steps=50, b2=0.95, minibatches_per_step=12)
    c.sft = dict(mode="none")
    c.eval = dict(
        every=10,
        num_problems=500,
        k=1,
        temperature=1.0,
        top_p=1.0,
        greedy=True,
        path="/path/to/math500.jsonl",
    )
    c.mesh = dict(data=1, fsdp=-1, tensor=1)
    c.checkpoint = dict(every=50, keep=2)
    c.logging = dict(every=1, tensorboard=True, progress_bar=False, samples_to_log=2)
    if arg in ("cpu", "smoke"):
        c.steps = 100
        c.model = dict(name="tiny", dtype="float32", param_dtype="float32", remat=False)
        c.data = dict(
            task="multiplication",
            source="procedural",
            task_options=dict(digits=3, digits_b=1, distribution="exact_digits"),
            template="base",
            prompts_per_step=8,
            bucket_sizes=(128,),
        )
        c.sampling = dict(
            group_size=8,
            temperature=1.0,
            top_p=1.0,
            max_new_tokens=128,
            stop_strings=("</answer>",),
        )
        c.optim = dict(lr=2e-4, b2=0.95, weight_decay=0.0, warmup_steps=0, micro_batch_size=0)
        c.critic = dict(init="policy", lr=1e-3, lr_warmup_steps=0, b2=0.95, minibatches_per_step=4)
        c.sft = dict(
            mode="warmup",
            steps=600,
            lr=2e-3,
            batch_size=32,
            source="reference:long=0.35,direct=0.65",
        )
        c.eval = dict(every=0, num_problems=200, k=4, temperature=0.6, top_p=0.95, greedy=False)
        c.mesh = dict(data=1, fsdp=1, tensor=1)
        c.checkpoint = dict(every=50, keep=2)
        c.logging = dict(every=10, tensorboard=False, progress_bar=True, samples_to_log=2)
    if arg == "smoke":
        c.steps = 2
        c.data.prompts_per_step = 2
        c.sampling.group_size = 2
        c.sampling.max_new_tokens = 16
        c.critic.minibatches_per_step = 2
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
