"""Default experiment: teach a from-scratch model 2-digit multiplication, SFT then GRPO.

Command: ``python -m r1jax.train`` (no arguments) or
``python -m r1jax.train --config experiments/default.py --workdir runs/default``.
Presets: ``:smoke`` (two SFT + two RL steps on the tiny model; used by the tests).
"""

import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.steps = 60
    c.model = dict(name="tiny", dtype="float32", param_dtype="float32", remat="none")
    c.data = dict(
        task="multiplication",
        task_options=dict(digits=2, distribution="exact_digits"),
        template="base",
        prompts_per_step=8,
        bucket_sizes=(128,),
    )
    c.sampling = dict(group_size=8, temperature=1.0, max_new_tokens=96, stop_strings=("</answer>",))
    c.objective = dict(algorithm="grpo", kl_coef=0.0)
    c.reference = dict(mode="none")
    c.optim = dict(lr=1e-4, weight_decay=0.0, grad_clip_norm=1.0)
    c.sft = dict(mode="warmup", steps=300, lr=1e-3, batch_size=32, source="reference")
    c.eval = dict(num_problems=500, k=4, temperature=1.0, top_p=1.0, greedy=True)
    c.checkpoint = dict(every=50, keep=2)
    c.logging = dict(every=10, tensorboard=False, progress_bar=False)
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
    elif arg is not None:
        raise ValueError(f"unknown preset {arg!r}; known: smoke")
    return c
