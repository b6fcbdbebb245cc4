"""LIMR: select the problems whose learning curve follows the run's average, then train on them.

Commands (two runs and a selection in between):

    python -m r1jax.train --config experiments/limr.py --config.model.name=/models/Qwen2.5-Math-7B \
        --config.data.path=/data/math_level3to5.jsonl --workdir runs/limr_full
    python -m r1jax.select runs/limr_full --threshold 0.6 --steps-per-epoch 8 --out limr.jsonl
    python -m r1jax.train --config experiments/limr.py --config.model.name=/models/Qwen2.5-Math-7B \
        --config.data.path=limr.jsonl --config.data.id_field=id --workdir runs/limr_subset
    python -m r1jax.train --config experiments/limr.py:cpu --workdir runs/limr_cpu    # 2-core CPU
    python -m r1jax.train --config experiments/limr.py:smoke --workdir /tmp/limr_smoke

Follows LIMR (Li et al., arXiv:2502.11886 §2.2; repo GAIR-NLP/LIMR ``lim/lim_selection.py``,
``lim.sh``): RL on the whole MATH level 3-5 pool (8,523 problems)
records each problem's accuracy every epoch (``WORKDIR/problem_rewards.jsonl``), then keeps the
problems whose score ``s_i = 1 − Σ_k (r_i^k − r̄^k)² / Σ_k (1 − r̄^k)²`` is at least 0.6 (1,389
problems in the paper: RL on them matched RL on the full pool). ``lim.sh`` uses 8 steps per
epoch and 21 epochs; this file's RL settings are r1jax's GRPO defaults at the paper's scale
(G = 8, temperature 1.0, 1,024 prompts per step would be LIMR's; here 1,066 prompts per epoch =
8 steps x 133 prompts).

What it shows: the per-problem reward log and ``python -m r1jax.select`` producing a JSONL
subset that a second run reads as ``data.source=jsonl``.

Hardware: the paper-scale config wants a TPU v4-32 / v5e-64 or 8 H100s. ``:cpu`` writes a
small arithmetic data file and trains the ``tiny`` model from scratch on it for a few epochs,
enough to score and select its problems.

Result of ``:cpu`` on a shared 2-core CPU (seed 0, commit cc317fa, ``python -m r1jax.train
--config experiments/limr.py:cpu --workdir DIR``): 300 warm-start and 80 GRPO steps in 5 min
39 s; ``problem_rewards.jsonl`` holds 640 group accuracies (64 problems x 10 epochs; the
run's mean rose from 0.016 at the first RL step to 0.125 at the last). ``python -m
r1jax.select DIR --threshold 0.6 --out subset.jsonl`` printed ``{"problems": 64, "epochs": 10,
"selected": 64, ...}``: with the run's average accuracy this low, ``Σ_k (1 − r̄^k)²`` is large
against every problem's deviation, so every score cleared 0.6 and LIMR's rule kept the whole
pool; it discriminates once the average curve rises, as in the paper's runs.
"""

import json
import os
import tempfile

import ml_collections


def get_config(arg=None):
    if arg in ("cpu", "smoke"):
        return _cpu(arg)
    if arg is not None:
        raise ValueError(f"unknown preset {arg!r}; known: cpu, smoke")
    c = ml_collections.ConfigDict()
    c.steps = 8 * 21  # 21 epochs of 8 steps (lim.sh)
    c.model = dict(name="/models/Qwen2.5-Math-7B", dtype="bfloat16", remat=True)
    c.data = dict(
        task="math",
        source="jsonl",
        path="/data/math_level3to5.jsonl",
        prompt_field="problem",
        answer_field="answer",
        template="qwen_math",
        prompts_per_step=1066,
        shuffle=True,
    )
    c.sampling = dict(group_size=8, temperature=1.0, max_new_tokens=3072)
    c.objective = dict(algorithm="grpo", kl_coef=0.0)
    c.reference = dict(mode="none")
    c.optim = dict(lr=1e-6, micro_batch_size=16)
    c.eval = dict(every=8, num_problems=500, k=4, path="/data/math500.jsonl")
    c.checkpoint = dict(every=8)
    return c


def _arithmetic_file(count: int) -> str:
    """A JSONL of ``count`` two-digit additions (a file source, so problems have ids); each row
    also holds the multiplication task's fields (``a``, ``b``, ``operator``, ``target``), which
    its prompt and verifier read."""
    path = os.path.join(tempfile.gettempdir(), f"r1jax_limr_add_v2_{count}.jsonl")
    if not os.path.exists(path):
        with open(path + ".tmp", "w") as f:
            for i in range(count):
                a, b = 10 + (7 * i) % 90, 10 + (13 * i + 5) % 90
                row = {"problem": f"{a} + {b}", "answer": str(a + b), "a": a, "b": b}
                f.write(json.dumps({**row, "operator": "+", "target": a + b}) + "\n")
        os.replace(path + ".tmp", path)
    return path


def _cpu(arg):
    c = ml_collections.ConfigDict()
    problems = 64 if arg == "cpu" else 4
    c.model = dict(name="tiny", dtype="float32", param_dtype="float32", remat=False)
    c.data = dict(
        task="multiplication",
        source="jsonl",
        path=_arithmetic_file(problems),
        prompt_field="problem",
        answer_field="answer",
        template="base",
        prompts_per_step=8 if arg == "cpu" else 2,
        bucket_sizes=(128,),
    )
    c.steps = 8 * 10 if arg == "cpu" else 2  # 10 epochs of 8 steps x 8 prompts
    c.sampling = dict(group_size=8 if arg == "cpu" else 2, temperature=1.0, max_new_tokens=64)
    c.objective = dict(algorithm="grpo", kl_coef=0.0)
    c.reference = dict(mode="none")
    c.optim = dict(lr=2e-4, weight_decay=0.0)
    c.sft = dict(mode="warmup", steps=300 if arg == "cpu" else 2, lr=2e-3, batch_size=32)
    c.eval = dict(num_problems=0)
    c.checkpoint = dict(every=20 if arg == "cpu" else 1, keep=2)
    c.logging = dict(every=8 if arg == "cpu" else 1, progress_bar=arg == "cpu")
    if arg == "smoke":
        c.sft.batch_size = 2
        c.sampling.max_new_tokens = 16
    return c
