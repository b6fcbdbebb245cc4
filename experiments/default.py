"""Default experiment: a model trained from scratch learns 3-digit x 1-digit multiplication.

Command (what ``python -m r1jax.train`` with no arguments runs):

    python -m r1jax.train --config experiments/default.py --workdir runs/default

Recipe. A 0.45M-parameter Qwen2-style model (the ``tiny`` preset) and a 443-token byte-level
BPE tokenizer fit on the task's text start from random weights. A supervised warm start on
generated traces mixes two behaviours: 30% of the traces work the product out digit by digit
with carries (TinyZero's prompt, ``reference_completion(method="long")``), 70% guess the
answer directly (``</think> <answer>N</answer>``). The warm-started model therefore samples
the reliable method only some of the time: sampled pass@1 sits far below pass@k and the
rewards within a group differ. GRPO with the verifier's 0/1 reward (no KL, 8 prompts x 8
samples) then shifts the policy towards the method that earns reward. Held-out accuracy is
measured on 500 problems from another generator seed (the problem space has 7,200 items, so
some of them also occur in training), pass@1 averaged over 4 samples at temperature 1, next to
pass@4, maj@4 and greedy accuracy.

Expected result: see the figures measured on a 2-core CPU in the r1jax report of this
experiment (``summary.json`` in the workdir holds ``eval_after_sft`` and ``eval_final``).

Presets: ``:smoke`` (two SFT and two RL steps on the same model with tiny batches; used by the
tests).
"""

import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.steps = 100
    c.model = dict(name="tiny", dtype="float32", param_dtype="float32", remat="none")
    c.data = dict(
        task="multiplication",
        task_options=dict(digits=3, digits_b=1, distribution="exact_digits"),
        template="base",
        prompts_per_step=8,
        bucket_sizes=(128,),
    )
    c.sampling = dict(
        group_size=8, temperature=1.0, max_new_tokens=128, stop_strings=("</answer>",)
    )
    c.objective = dict(algorithm="grpo", kl_coef=0.0)
    c.reference = dict(mode="none")
    c.optim = dict(lr=2e-4, weight_decay=0.0, grad_clip_norm=1.0)
    c.sft = dict(
        mode="warmup", steps=400, lr=2e-3, batch_size=32, source="reference:long=0.3,direct=0.7"
    )
    c.eval = dict(num_problems=500, k=4, temperature=1.0, top_p=1.0, greedy=True)
    c.checkpoint = dict(every=100, keep=2)
    c.logging = dict(every=10, tensorboard=True, progress_bar=True, samples_to_log=2)
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
        c.logging.tensorboard = False
        c.logging.progress_bar = False
    elif arg is not None:
        raise ValueError(f"unknown preset {arg!r}; known: smoke")
    return c
