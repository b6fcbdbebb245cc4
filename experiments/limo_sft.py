"""LIMO: supervised fine-tuning on a few hundred curated long-CoT solutions, and nothing else.

Command:

    python -m r1jax.train --config experiments/limo_sft.py --workdir runs/limo \\
        --config.model.name=/path/to/Qwen2.5-32B-Instruct \\
        --config.sft.source=/path/to/limo.jsonl --config.eval.path=/path/to/aime24.jsonl \\
        --config.data.path=/path/to/aime24.jsonl

Follows LIMO: Less is More for Reasoning (arXiv:2502.03387; repo GAIR-NLP/LIMO
``train/examples/train_limo.yaml``, a LLaMA-Factory config, and ``eval/``): full-parameter SFT of
Qwen2.5-32B-Instruct on the 817 curated problems of the LIMO data set (``question`` /
``solution`` rows) in the model's chat template, sequences up to 16,384 tokens, lr 5e-6 on a
cosine schedule with no warm-up, 15 epochs; at 64 sequences per step (the batch the paper
reports; the repository's example sets one sequence per device) that is 192 steps. No RL
(``steps=0``): the run is ``sft.mode=warmup`` followed directly by the evaluation after SFT,
which ``summary.json`` records as ``eval_after_sft``. ``data.path`` only names a file for the
prompt pipeline, which an SFT-only run builds but never draws from.

Evaluation as LIMO's ``eval/eval.sh``: greedy decoding (temperature 0, one sample: pass@1), up
to 32,768 new tokens, the Qwen-Math system prompt "Please reason step by step, and put your
final answer within \\boxed{}." (LIMO's ``qwen-instruct`` prompt type) in the chat template, the
last ``\\boxed{}`` graded (``verifier.options.scoring=boxed``). The same system prompt frames
the SFT rows (LLaMA-Factory's ``qwen`` template adds its own default system message instead).

What it shows: a strong instruct model's latent reasoning is elicited by a small set of
carefully chosen demonstrations (LIMO v1 reports AIME 2024 57.1% and MATH 94.8% from 817
examples; later versions 63.3% / 95.6%).

Hardware: written for 16 or more accelerators with 80 GB each (32B parameters with float32
master weights and AdamW moments, 16K-token sequences; LIMO used DeepSpeed ZeRO-3), sharded over
``mesh.fsdp``. Not run at this scale.

Presets:

- ``:cpu``: SFT only on the ``tiny`` model trained from scratch on worked solutions of the math
  task's procedural problems (Qwen-Math layout), then the held-out evaluation; it exercises the
  SFT-only run, not LIMO's data-efficiency claim (the traces come from an endless generator, not
  a curated set). Measured (seed 0, commit 6c23398, the shared 2-core CPU with nothing else
  running, jax float32): ``python -m r1jax.train --config experiments/limo_sft.py:cpu
  --config.logging.progress_bar=false --workdir DIR`` printed ``eval after SFT (step 600):
  greedy 68.0% | pass@1 62.9% | pass@4 79.5% | maj@1 66.0% | maj@4 65.5% (200 problems x 4
  samples)`` in 3 min 52 s (about 0.35 s per step).
- ``:smoke``: two SFT steps read from ``experiments/data/math_traces.jsonl`` (16 generated
  problems with traces; ``experiments/data/make_math_traces.py`` rewrites it) through the tiny
  tokenizer's chat template, then the evaluation (used by the tests).
"""

import os

import ml_collections

SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
TRACES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "math_traces.jsonl")


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.steps = 0  # no RL
    c.model = dict(
        name="/path/to/Qwen2.5-32B-Instruct", dtype="bfloat16", param_dtype="float32", remat=True
    )
    c.tokenizer = dict(use_chat_template=True)
    c.data = dict(
        task="math",
        source="jsonl",
        path="/path/to/aime24.jsonl",
        prompt_field="problem",
        answer_field="answer",
        system_prompt=SYSTEM_PROMPT,
        prompts_per_step=8,
        bucket_sizes=(256, 512, 1024),
    )
    c.sampling = dict(group_size=1, temperature=0.0, max_new_tokens=16384, stop_strings=())
    c.verifier = dict(options=dict(scoring="boxed"))
    c.reference = dict(mode="none")
    c.objective = dict(algorithm="grpo", kl_coef=0.0)
    c.sft = dict(
        mode="warmup",
        steps=192,
        lr=5e-6,
        batch_size=64,
        warmup_steps=0,
        schedule="cosine",
        min_lr_ratio=0.0,
        source="/path/to/limo.jsonl",
        prompt_field="question",
        response_field="solution",
    )
    c.optim = dict(weight_decay=0.0, grad_clip_norm=1.0, micro_batch_size=1)
    c.eval = dict(
        num_problems=30,
        k=1,
        temperature=0.0,
        top_p=1.0,
        greedy=False,
        max_new_tokens=32768,
        path="/path/to/aime24.jsonl",
    )
    c.mesh = dict(data=1, fsdp=-1, tensor=1)
    c.checkpoint = dict(every=64, keep=1)
    c.logging = dict(every=1, tensorboard=True, progress_bar=False, samples_to_log=0)
    if arg in ("cpu", "smoke"):
        c.model = dict(name="tiny", dtype="float32", param_dtype="float32", remat=False)
        c.tokenizer = dict(use_chat_template=False)
        c.data = dict(
            task="math",
            source="procedural",
            task_options=dict(max_integer=9, max_denominator=4, word_problems=0.25),
            template="qwen_math",
            system_prompt="",
            prompts_per_step=8,
            bucket_sizes=(96,),
        )
        c.sampling = dict(group_size=1, temperature=0.0, max_new_tokens=192, stop_strings=())
        c.sft = dict(
            mode="warmup",
            steps=600,
            lr=2e-3,
            batch_size=32,
            warmup_steps=0,
            schedule="cosine",
            min_lr_ratio=0.0,
            source="reference:qwen_math",
        )
        c.optim = dict(weight_decay=0.0, grad_clip_norm=1.0, micro_batch_size=0)
        c.eval = dict(
            num_problems=200,
            k=4,
            temperature=0.6,
            top_p=0.95,
            greedy=True,
            max_new_tokens=0,
            path="",
        )
        c.mesh = dict(data=1, fsdp=1, tensor=1)
        c.checkpoint = dict(every=200, keep=1)
        c.logging = dict(every=20, tensorboard=False, progress_bar=True, samples_to_log=0)
    if arg == "smoke":
        c.tokenizer.use_chat_template = True
        c.data.template = ""
        c.data.system_prompt = SYSTEM_PROMPT
        c.data.bucket_sizes = (128,)
        c.sampling.max_new_tokens = 512  # the trace rows fit; the evaluation takes 16
        c.sft.steps = 2
        c.sft.batch_size = 2
        c.sft.source = TRACES
        c.sft.prompt_field = "problem"
        c.sft.response_field = "boxed_response"
        c.eval.num_problems = 2
        c.eval.k = 2
        c.eval.max_new_tokens = 16
        c.checkpoint.every = 1
        c.logging.every = 1
        c.logging.progress_bar = False
    elif arg not in (None, "cpu"):
        raise ValueError(f"unknown preset {arg!r}; known: cpu, smoke")
    return c
