"""Two tasks in one run: Countdown and Knights & Knaves, mixed by weight (``data.mixture``).

Command (the ``:cpu`` recipe, which is also what no preset gives: a model trained from scratch
on a laptop-class CPU):

    python -m r1jax.train --config experiments/mixture_countdown_kk.py \\
        --workdir runs/mixture_countdown_kk

What it shows: one policy trained on two tasks at once. Every prompt batch draws each row's
task by weight (here 50/50) from that task's own problem stream, prompted with its own template
(TinyZero's countdown prompt, Logic-RL's Knights & Knaves prompt); each completion is scored by
its own task's verifier in the worker pool, and a group of ``G`` samples always shares one
problem. The metrics carry each task next to the totals (``rollout/countdown/accuracy``,
``rollout/knights_knaves/reward_mean``, ``rollout/<task>/prompts`` ...), and every evaluation
reports one held-out set per task (``eval/countdown/pass@1``, ``eval/knights_knaves/maj@4``
...; ``summary.json`` holds both sets under ``eval_after_sft`` and ``eval_final``).

Recipe (``:cpu``). Small instances of both tasks so that the ``tiny`` model (random init; a
byte-level BPE tokenizer with 256 merges per task fit on both tasks' prompts and traces) learns
something within minutes: countdown with 2 numbers from 1-20 and a target up to 100, Knights &
Knaves with 2 people. A supervised warm start mixes the tasks' reference traces by the same
weights (countdown: 35% worked equations ``method="witness"``, 65% the bare answer; Knights &
Knaves: the bare answer, since its worked traces run to hundreds of tokens), then GRPO with the
verifier's 0/1 reward, no KL, 8 prompts x 8 samples at temperature 1, at most 64 new tokens.
Evaluation: 100 held-out problems per task (the generators' held-out seed), 4 samples at
temperature 0.6 / top-p 0.95 (pass@1 over the 4, pass@4, maj@4).

Measured (seed 0, float32, this project's shared 2-core 2.6 GHz Xeon KVM guest, one run);
pass@1 / pass@4 / maj@4 in % on the held-out sets:

    task             after the warm start   after RL
    countdown        35.0 / 64.0 / 39.0     48.8 / 67.0 / 50.0
    knights_knaves   12.5 / 35.0 / 14.0     13.5 / 39.0 / 13.0

Countdown gains 14 points of pass@1 from RL; Knights & Knaves stays where the warm start left
it (at the logged RL steps its rollout accuracy, ``rollout/knights_knaves/accuracy``, is 3% to
25%, countdown's 28% to 75%): answering a puzzle without working it out is more than
this model learns in the budget, and the per-task metrics show which task the reward comes
from. Wall time 13 min 48 s with other jobs on the machine (the warm start's steps took 1.2 s
while it was busy, 0.65 s once it was not); an estimate for an idle machine of this kind is
about 9 minutes (600 x 0.65 s of warm start, 60 x 1.7 s of RL, the evaluations).

Presets:

- ``:cpu``: the recipe above (also what no preset gives).
- ``:smoke``: two warm-start and two RL steps with tiny batches and two evaluation problems per
  task (used by the tests).
"""

import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.steps = 60
    c.model = dict(name="tiny", dtype="float32", param_dtype="float32", remat=False)
    c.data = dict(
        mixture=dict(
            countdown=dict(
                weight=0.5,
                task_options=dict(num_numbers=2, number_range=(1, 20), target_range=(1, 100)),
                template="base",
                sft_source="reference:witness=0.35,direct=0.65",
            ),
            knights_knaves=dict(
                weight=0.5,
                task_options=dict(n_people=2),
                template="base",
                sft_source="reference:direct=1",
            ),
        ),
        prompts_per_step=8,
        bucket_sizes=(160, 320),
    )
    c.sampling = dict(group_size=8, temperature=1.0, max_new_tokens=64, stop_strings=("</answer>",))
    c.objective = dict(algorithm="grpo", kl_coef=0.0)
    c.reference = dict(mode="none")
    c.optim = dict(lr=2e-4, weight_decay=0.0, grad_clip_norm=1.0)
    c.sft = dict(mode="warmup", steps=600, lr=2e-3, batch_size=32, source="reference")
    c.eval = dict(num_problems=100, k=4, temperature=0.6, top_p=0.95, greedy=False)
    c.checkpoint = dict(every=100, keep=2)
    c.logging = dict(every=10, tensorboard=True, progress_bar=True, samples_to_log=2)
    if arg == "smoke":
        c.steps = 2
        c.data.prompts_per_step = 2
        c.data.bucket_sizes = (320,)
        c.sampling.group_size = 2
        c.sampling.max_new_tokens = 16
        c.sft.steps = 2
        c.sft.batch_size = 2
        c.sft.bucket_step = 512  # one width: one compile
        c.eval.num_problems = 2
        c.eval.k = 2
        c.checkpoint.every = 1
        c.logging.every = 1
        c.logging.tensorboard = False
        c.logging.progress_bar = False
    elif arg not in (None, "cpu"):
        raise ValueError(f"unknown preset {arg!r}; known: cpu, smoke")
    return c
