"""GRPO on Qwen2.5-1.5B (base) for Countdown, TinyZero-style, over a TPU pod slice.

Command (on every worker of the slice; tpu/README.md walks through it from an empty project):

    bash tpu/run.sh experiments/tpu_qwen25_1p5b_countdown.py /mnt/BUCKET/runs/countdown

which runs, on each worker,

    python -m r1jax.train --config experiments/tpu_qwen25_1p5b_countdown.py \\
        --workdir /mnt/BUCKET/runs/countdown --config.distributed.auto=true

The model is read from a local Hugging Face directory, ``model.name`` (default
``/mnt/models/Qwen2.5-1.5B``, the same path on every worker; its tokenizer comes from the same
directory). Override it with ``--config.model.name=/path/to/Qwen2.5-1.5B``.

Recipe. Countdown problems with 3 or 4 numbers (TinyZero trains on
``Jiayi-Pan/Countdown-Tasks-3to4``; r1jax generates solvable problems of the same shape) under
TinyZero's base-model prompt (github.com/Jiayi-Pan/TinyZero,
examples/data_preprocess/countdown.py ``make_prefix``), scored by the countdown verifier (1 for
a correct equation, 0.1 for a well-formed wrong one, 0 without an answer; TinyZero's
verl/utils/reward_score/countdown.py, with a safe evaluator). GRPO (DeepSeekMath,
arXiv:2402.03300) with the k3 KL estimator in the loss at beta 0.001 against a frozen reference
(DeepSeek-R1-Zero's beta, arXiv:2501.12948). Hyperparameters follow TinyZero's
scripts/train_tiny_zero.sh (prompts up to 256 tokens, completions up to 1,024, actor lr 1e-6,
KL coefficient 0.001, temperature 1) and oat-zero's GRPO run of the same task
(github.com/sail-sg/oat-zero, training/run_grpo.sh: 128 prompts x 8 samples per step, lr 1e-6,
beta 0.001, 1,024 new tokens, one update per rollout; it samples with top-p 0.9, this file with
top-p 1 so that the learner scores the same distribution that sampled). The 400 steps are this
file's budget, not a published figure.

Layout: the mesh is pure FSDP over every chip of the slice (``mesh.data=1``, ``mesh.fsdp=-1``):
parameters, optimizer state and the reference are sharded over all chips, and the 1,024 rows of
a step (128 prompts x 8) split evenly over 16 chips (v4-32) or 64 (v5e-64); the 128 prompts
split over the 4 or 16 workers. Gradients accumulate over micro-batches of 256 rows.

Memory: the per-chip figures for this model, batch and mesh come from ``python -m r1jax.plan``
run with this file; check them there before changing the batch, the lengths or the slice.

Presets: ``:smoke`` runs the same pipeline on CPU with the from-scratch ``tiny`` model for 2
steps with tiny batches (``python -m r1jax.train --config
experiments/tpu_qwen25_1p5b_countdown.py:smoke --workdir /tmp/smoke``).
"""

import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.steps = 400
    c.model = dict(
        name="/mnt/models/Qwen2.5-1.5B", dtype="bfloat16", param_dtype="float32", remat=True
    )
    c.tokenizer = dict(path="", use_chat_template=False)
    c.data = dict(
        task="countdown",
        task_options=dict(num_numbers=(3, 4)),
        template="base",
        prompts_per_step=128,
        bucket_sizes=(256,),
    )
    c.sampling = dict(
        group_size=8,
        temperature=1.0,
        top_p=1.0,
        max_new_tokens=1024,
        stop_strings=("</answer>",),
    )
    c.objective = dict(algorithm="grpo", kl_coef=0.001, kl_estimator="k3", kl_placement="loss")
    c.reference = dict(mode="frozen")
    c.optim = dict(lr=1e-6, weight_decay=0.01, grad_clip_norm=1.0, micro_batch_size=256)
    c.sft = dict(mode="none")
    c.eval = dict(every=50, num_problems=512, k=4, temperature=0.6, top_p=0.95, greedy=True)
    c.mesh = dict(data=1, fsdp=-1, tensor=1)
    c.checkpoint = dict(every=25, keep=2)
    c.logging = dict(every=1, tensorboard=True, progress_bar=False, samples_to_log=2)
    if arg == "smoke":
        c.steps = 2
        c.model = dict(name="tiny", dtype="float32", param_dtype="float32", remat=False)
        c.data.prompts_per_step = 4
        c.data.bucket_sizes = (128, 256)
        c.sampling.group_size = 2
        c.sampling.max_new_tokens = 16
        c.optim.micro_batch_size = 0
        c.eval = dict(every=0, num_problems=2, k=2, temperature=0.6, top_p=0.95, greedy=True)
        c.checkpoint = dict(every=1, keep=2)
        c.logging.tensorboard = False
    elif arg is not None:
        raise ValueError(f"unknown preset {arg!r}; known: smoke")
    return c
