"""Open-R1: distil R1's reasoning traces into an instruct model by SFT, then GRPO on math.

Command:

    python -m r1jax.train --config experiments/open_r1.py --workdir runs/open_r1 \\
        --config.model.name=/path/to/Qwen2.5-1.5B-Instruct \\
        --config.sft.source=/path/to/openr1_math_220k.jsonl \\
        --config.data.path=/path/to/numina_math_tir.jsonl --config.eval.path=/path/to/math500.jsonl

Follows Open-R1 (repo huggingface/open-r1: README "Training models", ``src/open_r1/sft.py``,
``src/open_r1/grpo.py``, ``src/open_r1/rewards.py``, ``recipes/Qwen2.5-1.5B-Instruct/sft/
config_demo.yaml`` and ``recipes/Qwen2.5-1.5B-Instruct/grpo/config_demo.yaml``), both stages in
one run:

1. SFT distillation (``sft.mode=warmup``): Qwen2.5-1.5B-Instruct on DeepSeek-R1 traces of
   OpenR1-Math-220k (the README's command: lr 1e-5, one epoch, 16 sequences per device on 8
   GPUs = 128 per step, up to 16,384 tokens; the demo config's cosine schedule to 10% after 5%
   warm-up). The file is a JSONL of ``problem`` / ``response`` rows (``sft.prompt_field``,
   ``sft.response_field``: e.g. each problem with its first correct generation); the 93.7k rows
   of the default split at 128 per step are 733 steps. Open-R1 packs sequences; r1jax pads
   each batch to its longest row (same tokens, more padding).
2. GRPO on NuminaMath-TIR (JSONL rows with ``problem`` and ``solution``; the gold answer is the
   solution's last ``\\boxed{}``): 16 samples per prompt at temperature 0.7, completions up to
   2,048 tokens after prompts up to 512, lr 1e-6 on a cosine schedule to 10% after 10% warm-up,
   the k3 KL in the loss at β = 0.04 (TRL's ``GRPOConfig`` default that Open-R1's demo leaves
   unset). The prompt is Open-R1's demo system prompt in the model's chat template. Rewards,
   from ``rewards.py``: accuracy (Math-Verify, gold first) scaled by length with
   ``get_cosine_scaled_reward``'s own defaults (a correct answer earns 1.0 at length 0 down to
   0.5 at the cap, a wrong one -1.0 up to -0.5: ``rewards.cosine``), the strict format reward
   (``^<think>\\n.*?\\n</think>\\n<answer>\\n.*?\\n</answer>$``: ``verifier.options.
   format_check=strict``, weight 1) and an n-gram repetition penalty. 32 prompts per step is
   this file's choice (Open-R1 sets the batch through per-device sizes and accumulation).

Differences from Open-R1, by design of r1jax: the cosine reward measures length in tokens
(as the paper it comes from, arXiv:2502.03373 §3.2) where Open-R1 counts characters
(``max_len`` 1,000); the repetition penalty is the paper's dense per-token n-gram penalty
(App. C, with its run constants n = 40 and -0.05 per repeated token) where Open-R1 scores
word 3-grams once per sequence; Open-R1's ``tag_count`` reward has no r1jax term; a correct
answer counts as well formed for the format term; both stages render prompts with the demo's
system prompt (Open-R1's SFT run used the chat template's default). The SFT stage's sequences
are sized by ``sampling.max_new_tokens`` (16,384 here), while RL samples 2,048 tokens
(``schedule.context_stages``).

Evaluation as Open-R1's lighteval setup: MATH-500, 4 samples per problem at temperature 0.6 and
top-p 0.95, up to 32,768 new tokens.

What it shows: distillation supplies long-CoT behaviour that small models do not find by RL
alone, and GRPO with shaped rewards then tunes its length, format and repetition.

Hardware: written for 8 accelerators with 80 GB each (Open-R1's node of 8 H100s); the 1.5B
policy, its AdamW state and the reference are sharded over ``mesh.fsdp``. Not run at this
scale.

Presets:

- ``:cpu``: both stages on the ``tiny`` model trained from scratch on the math task's
  procedural problems: a warm start on worked solutions in Open-R1's strict layout, then GRPO
  with the same three reward terms (the cosine reward's cap is the tiny model's 192 tokens;
  repetition n-grams of 8 tokens at -0.01), in the R1 template instead of a chat prompt (a
  system prompt would cost the from-scratch tokenizer hundreds of byte tokens). Result on a
  shared 2-core CPU (seed 0, commit cc317fa, ``python -m r1jax.train --config
  experiments/open_r1.py:cpu --workdir DIR``), pass@1 / pass@4 / maj@4 in % on 200 held-out
  problems x 4 samples: after the warm start 50.0 / 68.0 / 51.0, after 60 GRPO steps 35.0 /
  50.0 / 34.5, in 6 min 1 s. The cosine term penalises a wrong answer less the longer it is,
  and the policy took that route: the mean response length grew from 76 to 104 tokens while
  rollout correctness fell (27 -> 22 correct of 64); the strict format held at 98-100%. At this
  scale the length shaping costs accuracy.
- ``:smoke``: two SFT steps read from ``experiments/data/math_traces.jsonl`` (16 generated
  problems with traces; ``experiments/data/make_math_traces.py`` rewrites it) through the tiny
  tokenizer's chat template with the demo's system prompt, then two GRPO steps (used by the
  tests).
"""

import os

import ml_collections

SYSTEM_PROMPT = (
    "You are a helpful AI Assistant that provides well-reasoned and detailed responses. You "
    "first think about the reasoning process as an internal monologue and then provide the user "
    "with the answer. Respond in the following format: <think>\n...\n</think>\n<answer>\n...\n"
    "</answer>"
)
TRACES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "math_traces.jsonl")


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.steps = 2264  # NuminaMath-TIR's 72.4k problems once, at 32 per step
    c.model = dict(
        name="/path/to/Qwen2.5-1.5B-Instruct", dtype="bfloat16", param_dtype="float32", remat=True
    )
    c.tokenizer = dict(use_chat_template=True)
    c.data = dict(
        task="math",
        source="jsonl",
        path="/path/to/numina_math_tir.jsonl",
        prompt_field="problem",
        answer_field="solution",
        system_prompt=SYSTEM_PROMPT,
        prompts_per_step=32,
        bucket_sizes=(128, 256, 512),
    )
    c.sampling = dict(
        group_size=16, temperature=0.7, top_p=1.0, max_new_tokens=16384, stop_strings=()
    )
    c.schedule = dict(context_stages=((0, 2048),))  # RL samples 2,048; SFT rows fit 16,384
    c.verifier = dict(options=dict(format_check="strict"))
    c.rewards = dict(
        correctness_weight=1.0,
        format_weight=1.0,
        truncated_is_incorrect=True,
        cosine=dict(
            enabled=True,
            max_correct=1.0,
            min_correct=0.5,
            min_wrong=-1.0,
            max_wrong=-0.5,
            exceed=-0.5,
            margin=0,
            max_length=0,
        ),
        repetition=dict(enabled=True, ngram_size=40, penalty=-0.05),
    )
    c.objective = dict(algorithm="grpo", kl_coef=0.04, kl_estimator="k3", kl_placement="loss")
    c.reference = dict(mode="frozen")
    c.optim = dict(
        lr=1e-6,
        warmup_steps=226,
        schedule="cosine",
        min_lr_ratio=0.1,
        weight_decay=0.0,
        grad_clip_norm=1.0,
        micro_batch_size=16,
    )
    c.sft = dict(
        mode="warmup",
        steps=733,
        lr=1e-5,
        batch_size=128,
        warmup_steps=37,
        schedule="cosine",
        min_lr_ratio=0.1,
        source="/path/to/openr1_math_220k.jsonl",
        prompt_field="problem",
        response_field="response",
    )
    c.eval = dict(
        every=100,
        num_problems=500,
        k=4,
        temperature=0.6,
        top_p=0.95,
        greedy=False,
        max_new_tokens=32768,
        path="/path/to/math500.jsonl",
    )
    c.mesh = dict(data=1, fsdp=-1, tensor=1)
    c.checkpoint = dict(every=100, keep=2)
    c.logging = dict(every=1, tensorboard=True, progress_bar=False, samples_to_log=2)
    if arg in ("cpu", "smoke"):
        c.steps = 60
        c.model = dict(name="tiny", dtype="float32", param_dtype="float32", remat=False)
        c.tokenizer = dict(use_chat_template=False)
        c.data = dict(
            task="math",
            source="procedural",
            task_options=dict(max_integer=9, max_denominator=4, word_problems=0.25),
            template="r1_zero",
            system_prompt="",
            prompts_per_step=8,
            bucket_sizes=(160,),
        )
        c.sampling = dict(
            group_size=8, temperature=0.7, top_p=1.0, max_new_tokens=192, stop_strings=()
        )
        c.schedule = dict(context_stages=())
        c.rewards.repetition = dict(enabled=True, ngram_size=8, penalty=-0.01)
        c.optim = dict(
            lr=2e-4,
            warmup_steps=6,
            schedule="cosine",
            min_lr_ratio=0.1,
            weight_decay=0.0,
            grad_clip_norm=1.0,
            micro_batch_size=0,
        )
        c.sft = dict(
            mode="warmup",
            steps=400,
            lr=2e-3,
            batch_size=32,
            warmup_steps=20,
            schedule="cosine",
            min_lr_ratio=0.1,
            source="reference:open_r1",
        )
        c.eval = dict(
            every=0,
            num_problems=200,
            k=4,
            temperature=0.6,
            top_p=0.95,
            greedy=False,
            max_new_tokens=0,
            path="",
        )
        c.mesh = dict(data=1, fsdp=1, tensor=1)
        c.checkpoint = dict(every=50, keep=1)
        c.logging = dict(every=10, tensorboard=False, progress_bar=True, samples_to_log=2)
    if arg == "smoke":
        c.steps = 2
        c.tokenizer.use_chat_template = True
        c.data.template = ""
        c.data.system_prompt = SYSTEM_PROMPT
        c.data.prompts_per_step = 2
        c.data.bucket_sizes = (256,)
        c.sampling.group_size = 2
        c.sampling.max_new_tokens = 512  # the warm start's rows fit; RL and eval take 16
        c.schedule.context_stages = ((0, 16),)
        c.eval.max_new_tokens = 16
        c.optim.warmup_steps = 0
        c.sft.steps = 2
        c.sft.batch_size = 2
        c.sft.warmup_steps = 0
        c.sft.source = TRACES
        c.sft.prompt_field = "problem"
        c.sft.response_field = "response"
        c.eval.num_problems = 2
        c.eval.k = 2
        c.checkpoint.every = 1
        c.logging.every = 1
        c.logging.progress_bar = False
    elif arg not in (None, "cpu"):
        raise ValueError(f"unknown preset {arg!r}; known: cpu, smoke")
    return c
