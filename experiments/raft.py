"""RAFT (reward-ranked fine-tuning) on verified math: the Online-DPO-R1 RAFT baseline.

Command:

    python -m r1jax.train --config experiments/raft.py --config.model.name=/models/Qwen2.5-Math-7B \
        --config.data.path=/data/numina_prompts.jsonl --workdir runs/raft
    python -m r1jax.train --config experiments/raft.py:cpu --workdir runs/raft_cpu     # 2-core CPU
    python -m r1jax.train --config experiments/raft.py:smoke --workdir /tmp/raft_smoke   # test

Follows RLHFlow/Online-DPO-R1 (README "RAFT": the iterative loop of ``run_iter_dpo.sh`` with
plain SFT on the positive samples only), RAFT (Dong et al., arXiv:2304.06767 §3) for the
selection, and the recipe: sample K = 8 completions
per prompt at temperature 1.0 / top-p 1.0, at most 4,096 new tokens, the Qwen chat template
with the ``Let's think step by step and output the final answer within \\boxed{}`` suffix,
label them with the math verifier, fine-tune on the correct ones. The repository does not
publish RAFT's own optimizer settings; this file uses the recipe's DPO learning rate 5e-7
(cosine) and no KL. Online-DPO-R1 reports RAFT-Zero at 44.4 average over its five math
benchmarks against 47.0 for DPO-Zero and 51.8 for PPO (README).

What it shows: rejection-sampling fine-tuning on the policy's own verified samples, with
``objective.selection=correct`` (every correct sample) or ``best`` (best-of-8, RAFT's top-1).
Metrics: ``raft/selected_fraction``, ``raft/prompts_without_sample``, accuracy, NLL.

Hardware: the paper-scale config wants a TPU v4-32 / v5e-64 or 8 H100s (7B policy, no
reference). ``:cpu`` trains the 0.45M-parameter ``tiny`` model from scratch on 3-digit x
1-digit multiplication (a short warm start, then RAFT) on a 2-core CPU.

Result of ``:cpu`` on the 2-core CPU (seed 0, commit 9118226, ``python -m r1jax.train
--config experiments/raft.py:cpu --workdir DIR``), pass@1 / pass@4 / maj@4 in % on 200
held-out problems x 4 samples: after the warm start 17.6 / 23.5 / 19.0, after 120 RAFT steps
16.9 / 18.0 / 17.0, in 6 min 15 s (374.8 s, nothing else running; an earlier run on commit
cc317fa printed the same figures). RAFT fine-tuned on the correct samples,
and more of those were short direct guesses than worked products: the mean response length
fell from 48 to 17 tokens and pass@4 fell with it, the selection narrowing the policy onto the
cheap method rather than the reliable one.
"""

import ml_collections

SUFFIX = " Let's think step by step and output the final answer within \\boxed{}"


def get_config(arg=None):
    if arg in ("cpu", "smoke"):
        return _cpu(arg)
    if arg is not None:
        raise ValueError(f"unknown preset {arg!r}; known: cpu, smoke")
    c = ml_collections.ConfigDict()
    c.steps = 500
    c.model = dict(name="/models/Qwen2.5-Math-7B", dtype="bfloat16", remat=True)
    c.tokenizer = dict(use_chat_template=True)
    c.data = dict(
        task="math",
        source="jsonl",
        path="/data/numina_prompts.jsonl",
        prompt_field="problem",
        answer_field="answer",
        user_template="{question}" + SUFFIX,
        prompts_per_step=128,
        bucket_sizes=(256, 512, 1024),
    )
    c.sampling = dict(
        group_size=8, temperature=1.0, top_p=1.0, max_new_tokens=4096, stop_strings=()
    )
    c.objective = dict(algorithm="raft", selection="correct")
    c.reference = dict(mode="none")
    c.optim = dict(lr=5e-7, schedule="cosine", micro_batch_size=16)
    c.eval = dict(every=50, num_problems=500, k=4, path="/data/math500.jsonl")
    c.checkpoint = dict(every=50)
    return c


def _cpu(arg):
    c = ml_collections.ConfigDict()
    c.steps = 120
    c.model = dict(name="tiny", dtype="float32", param_dtype="float32", remat=False)
    c.data = dict(
        task="multiplication",
        task_options=dict(digits=3, digits_b=1, distribution="exact_digits"),
        template="base",
        prompts_per_step=8,
        bucket_sizes=(128,),
    )
    c.sampling = dict(group_size=8, temperature=1.0, max_new_tokens=128)
    c.objective = dict(algorithm="raft", selection="correct")
    c.reference = dict(mode="none")
    c.optim = dict(lr=2e-4, weight_decay=0.0)
    c.sft = dict(
        mode="warmup", steps=600, lr=2e-3, batch_size=32, source="reference:long=0.35,direct=0.65"
    )
    c.eval = dict(num_problems=200, k=4, temperature=0.6, top_p=0.95, greedy=False)
    c.checkpoint = dict(every=100, keep=2)
    c.logging = dict(every=10)
    if arg == "smoke":
        c.steps = 2
        c.data.prompts_per_step = 2
        c.sampling.group_size = 2
        c.sampling.max_new_tokens = 16
        c.sft.steps = 2
        c.sft.batch_size = 2
        c.eval.num_problems = 0
        c.checkpoint.every = 1
        c.logging = dict(every=1, progress_bar=False)
    return c
