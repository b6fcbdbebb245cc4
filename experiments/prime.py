"""PRIME: an implicit process reward model trained online from outcome labels (Eurus-2-7B).

Command:

    python -m r1jax.train --config experiments/prime.py --workdir runs/prime \\
        --config.model.name=/path/to/Eurus-2-7B-SFT --config.data.path=/path/to/eurus2_rl.jsonl

Follows PRIME (arXiv:2502.01456; repo PRIME-RL/PRIME ``training/examples/run_prime_main.sh``,
``training/verl/trainer/ppo/core_algos.py``, ``training/verl/workers/actor/dp_prime.py``): the
policy, the implicit PRM and the frozen reference all start from the SFT model
(``Eurus-2-7B-SFT``); per step 256 prompts x 4 samples at temperature 1, prompts up to 1,024
and completions up to 3,072 tokens; groups whose accuracy is outside [0.2, 0.8] are dropped;
token rewards ``0.05 · log(π_prm / π_ref)`` and the 0/1 outcome each get PRIME's leave-one-out
baseline, are summed as returns with γ = 1 and whitened; the policy takes PPO's clipped
surrogate (ε = 0.2, token mean, no KL, no entropy) at lr 5e-7 in one update per step, and the
PRM its cross-entropy on the outcome at lr 1e-6 with gradient clip 10 (the ``prime`` preset of
`r1jax.algorithms.prime`).

Data: Eurus-2-RL-Data's math part as JSONL rows with a ``question`` and an ``answer`` field;
the prompt is Qwen's math chat prompt (``data.template=qwen_math``).

What it shows: dense process rewards without process labels, the PRM learning online from the
verifier's outcomes alongside the policy (PRIME reports faster and better learning than RLOO
with outcome rewards alone).

Hardware: written for 8 accelerators with 80 GB each or more (policy, PRM, their moments and
the reference are sharded over ``mesh.fsdp``). Not run at this scale.

Presets:

- ``:cpu``: PRIME on the ``tiny`` model trained from scratch on 3-digit x 1-digit
  multiplication after the default experiment's warm start (600 supervised steps, then 100
  PRIME steps of 8 prompts x 4 samples). Result on a shared 2-core CPU (seed 0, commit
  cc317fa, ``python -m r1jax.train --config experiments/prime.py:cpu --workdir DIR``), pass@1 /
  pass@4 / maj@4 in % on 200 held-out problems x 4 samples: after the warm start 17.6 / 23.5 /
  19.0, after 100 PRIME steps 17.1 / 19.5 / 16.5, in 11 min 54 s beside another job. PRIME's
  accuracy filter kept few groups (a quarter of them at the first logged step, an eighth at
  the last: with 4 samples, most groups were all wrong), so few updates carried signal; the
  PRM's loss stayed near log 2 (0.70) and the mean response length fell from 51 to 34 tokens.
- ``:smoke``: two warm-start and two PRIME steps with tiny batches (used by the tests).
"""

import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.steps = 1000
    c.model = dict(
        name="/path/to/Eurus-2-7B-SFT", dtype="bfloat16", param_dtype="float32", remat=True
    )
    c.data = dict(
        task="math",
        source="jsonl",
        path="/path/to/eurus2_rl.jsonl",
        prompt_field="question",
        answer_field="answer",
        template="qwen_math",
        prompts_per_step=256,
        bucket_sizes=(256, 512, 1024),
    )
    c.sampling = dict(group_size=4, temperature=1.0, top_p=1.0, max_new_tokens=3072)
    c.rewards = dict(correctness_weight=1.0)
    c.objective = dict(algorithm="prime")
    c.reference = dict(mode="frozen")
    c.optim = dict(lr=5e-7, weight_decay=0.0, micro_batch_size=64)
    c.prm = dict(init="policy", lr=1e-6, grad_clip_norm=10.0, beta=0.05)
    c.sft = dict(mode="none")
    c.eval = dict(
        every=16, num_problems=500, k=1, temperature=0.0, greedy=True, path="/path/to/math500.jsonl"
    )
    c.mesh = dict(data=1, fsdp=-1, tensor=1)
    c.checkpoint = dict(every=32, keep=2)
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
            group_size=4,
            temperature=1.0,
            top_p=1.0,
            max_new_tokens=128,
            stop_strings=("</answer>",),
        )
        c.optim = dict(lr=2e-4, weight_decay=0.0, micro_batch_size=0)
        c.prm = dict(init="policy", lr=1e-4, grad_clip_norm=10.0, beta=0.05)
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
