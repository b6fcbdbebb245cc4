"""s1 budget forcing: accuracy against the thinking budget (cap, and "Wait" extensions). No training.

Command:

    python -m r1jax.train --config experiments/s1_budget_forcing.py --workdir runs/s1 \\
        --config.model.name=/path/to/s1-32B --config.eval.path=/path/to/aime24.jsonl \\
        --config.data.path=/path/to/aime24.jsonl
    python -m r1jax.plot runs/s1   # runs/s1/plots/budget_forcing.png

Follows s1: Simple test-time scaling (arXiv:2501.19393 §3.1, §4; repo simplescaling/s1 README
"vLLM with budget forcing" and ``eval/lm-evaluation-harness/lm_eval/models/
vllm_causallms.py``, ``eval/commands.sh``): the model trains zero steps (``steps=0``, no SFT) and
is evaluated once at the start (``eval.at_start``) on AIME 2024 with greedy decoding and up to
32,768 new tokens, through s1's delimiters: the Qwen chat template with its default system
message, the assistant turn prefilled with ``<|im_start|>think`` (``data.prefill``), the
thinking closed by ``<|im_start|>answer``. Budget forcing (`r1jax.sampling.budget_forcing`,
``eval.budget_forcing``): at the thinking budget the end of thinking and ``\\nFinal Answer:``
are forced; in ``extend`` mode an end of thinking the model writes is replaced by ``Wait``
``num_ignore`` times. The headline evaluation is the README's setting (the automatic budget,
one ``Wait``); the sweep (``thinking_budgets`` x ``num_ignores``) adds one evaluation per point,
s1's budgets 500 to 16,000 tokens, each capped (0 extensions) and extended 1, 2, 4 and 6 times
(s1's extension counts), reported per point in ``summary.json`` (``eval_at_start.budget_sweep``)
and drawn by ``python -m r1jax.plot``. The answer is graded by the math verifier (the last
``\\boxed{}``, else an ``Answer:`` line such as ``Final Answer: 42``).

Model and data: s1-32B (Qwen2.5-32B-Instruct fine-tuned on s1K) or s1.1-32B, any local Hugging
Face directory; AIME 2024 as JSONL rows with ``problem`` and ``answer``. ``data.path`` only names
a file for the prompt pipeline, which a run without RL steps builds but never draws from. The
weights are kept in bfloat16 (no optimizer runs).

What it shows: test-time scaling by budget control alone; s1 reports AIME 2024 rising from 50%
to 57% for s1-32B when budget forcing extends its thinking, and accuracy falling as the cap
shrinks the thinking.

Hardware: written for 4 or more accelerators with 80 GB each (32B parameters in bfloat16, 64 GB,
plus the KV cache of 32K-token sequences; ``mesh.fsdp`` shards the weights). Each sweep point is
a greedy pass over the 30 problems. Not run at this scale.

Presets:

- ``:cpu``: the ``tiny`` model trained from scratch for a short supervised warm start on worked
  solutions of the math task's procedural problems in the R1 layout (``<think> ...
  </think> <answer> ... </answer>``; 30% of them re-check their result with ``Let me check
  again:``), no RL, then the same evaluation with the end of thinking ``</think>``, the answer
  prefix `` <answer>`` and the ignore string ``Let me check again:`` (the phrase the tiny model
  knows; s1 ablates ignore strings as well), sweeping budgets of 16 to 96 thinking tokens, capped
  and with one extension. Measured (seed 0, commit 6c23398, the shared 2-core CPU with nothing
  else running, jax float32) with ``python -m r1jax.train --config
  experiments/s1_budget_forcing.py:cpu --config.logging.progress_bar=false --workdir DIR`` in
  6 min 33 s; pass@1 / pass@4 in % on 100 problems x 4 samples (unforced: 7.8 / 21.0):

      thinking budget     16         32         48         64          96
      capped              0.5 / 2.0  1.8 / 4.0  2.2 / 6.0  9.2 / 21.0  16.5 / 33.0
      + one "Wait"        0.8 / 2.0  2.2 / 5.0  4.0 / 9.0  8.8 / 17.0   7.2 / 17.0

  Accuracy rises with the budget when the thinking is capped (the capped budgets beat the
  unforced run from 96 tokens on); one forced extension helps at the small budgets and hurts
  at 96.
- ``:smoke``: two warm-start steps, then the evaluation with a two-budget sweep (used by the
  tests).
"""

import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.steps = 0  # evaluation only
    c.model = dict(name="/path/to/s1-32B", dtype="bfloat16", param_dtype="bfloat16", remat=True)
    c.tokenizer = dict(use_chat_template=True)
    c.data = dict(
        task="math",
        source="jsonl",
        path="/path/to/aime24.jsonl",
        prompt_field="problem",
        answer_field="answer",
        prefill="<|im_start|>think",
        prompts_per_step=8,
        bucket_sizes=(256, 512),
    )
    c.sampling = dict(group_size=1, temperature=0.0, max_new_tokens=32768, stop_strings=())
    c.reference = dict(mode="none")
    c.objective = dict(algorithm="grpo", kl_coef=0.0)
    c.sft = dict(mode="none")
    c.eval = dict(
        at_start=True,
        num_problems=30,
        k=1,
        temperature=0.0,
        top_p=1.0,
        greedy=False,
        max_new_tokens=32768,
        path="/path/to/aime24.jsonl",
        budget_forcing=dict(
            mode="extend",
            thinking_budget=0,  # auto: 32,768 minus the answer's reserve and the forced strings
            answer_reserve=100,
            num_ignore=1,
            ignore_string="Wait",
            end_of_thinking="<|im_start|>answer",
            answer_prefix="\nFinal Answer:",
            thinking_budgets=(500, 1000, 2000, 4000, 8000, 16000),
            num_ignores=(0, 1, 2, 4, 6),
        ),
    )
    c.mesh = dict(data=1, fsdp=-1, tensor=1)
    c.checkpoint = dict(every=0, keep=1)
    c.logging = dict(every=1, tensorboard=True, progress_bar=False, samples_to_log=0)
    if arg in ("cpu", "smoke"):
        c.model = dict(name="tiny", dtype="float32", param_dtype="float32", remat=False)
        c.tokenizer = dict(use_chat_template=False)
        c.data = dict(
            task="math",
            source="procedural",
            task_options=dict(max_integer=9, max_denominator=4, word_problems=0.25),
            template="r1_zero",
            prefill="",
            prompts_per_step=8,
            bucket_sizes=(160,),
        )
        c.sampling = dict(
            group_size=1, temperature=0.0, max_new_tokens=192, stop_strings=("</answer>",)
        )
        c.sft = dict(
            mode="warmup",
            steps=400,
            lr=2e-3,
            batch_size=32,
            source="reference:r1_zero=0.7,r1_zero+recheck=0.3",
        )
        c.optim = dict(weight_decay=0.0, grad_clip_norm=1.0)
        c.eval = dict(
            at_start=False,
            num_problems=100,
            k=4,
            temperature=0.6,
            top_p=0.95,
            greedy=False,
            max_new_tokens=0,
            path="",
            budget_forcing=dict(
                mode="extend",
                thinking_budget=0,
                answer_reserve=24,
                num_ignore=1,
                ignore_string="Let me check again:",
                end_of_thinking="</think>",
                answer_prefix=" <answer>",
                thinking_budgets=(16, 32, 48, 64, 96),
                num_ignores=(0, 1),
            ),
        )
        c.mesh = dict(data=1, fsdp=1, tensor=1)
        c.checkpoint = dict(every=0, keep=1)
        c.logging = dict(every=20, tensorboard=False, progress_bar=True, samples_to_log=0)
    if arg == "smoke":
        c.sft.steps = 2
        c.sft.batch_size = 2
        c.eval.num_problems = 2
        c.eval.k = 2
        c.eval.max_new_tokens = 40
        c.eval.budget_forcing.thinking_budgets = (4, 8)
        c.eval.budget_forcing.num_ignores = (0,)
        c.logging.every = 1
        c.logging.progress_bar = False
    elif arg not in (None, "cpu"):
        raise ValueError(f"unknown preset {arg!r}; known: cpu, smoke")
    return c
