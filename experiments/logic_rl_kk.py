"""Logic-RL: an instruct model learns Knights & Knaves puzzles with REINFORCE++ and a curriculum.

Command:

    python -m r1jax.train --config experiments/logic_rl_kk.py --workdir runs/logic_rl_kk \\
        --config.model.name=/path/to/Qwen2.5-7B-Instruct-1M

Follows Logic-RL (arXiv:2502.14768; repo Unakar/Logic-RL: ``scripts/curriculum.sh`` for the
settings, ``examples/data_preprocess/kk.py`` for the prompt, ``verl/utils/reward_score/kk.py``
for the reward): Qwen2.5-7B-Instruct-1M; the puzzles of mem-kk-logic's generator
(arXiv:2410.23123) with 3, then 4, 5, 6 and 7 people, one stage each (``data.curriculum``:
curriculum.sh trains one epoch of the 900 puzzles of each size at 8 per step, 112 steps, and
starts each stage from the previous one's policy, which is also the stage's KL reference, so
``reference.mode=reset_every`` with 112 steps); Logic-RL's instruct prompt, built with the
model's chat template from a system prompt, the puzzle as the user message and ``<think>``
prefilled after the assistant header (``data.system_prompt``, ``data.user_template``,
``data.prefill``: byte for byte the ``qwen_instruct`` template of
`r1jax.tasks.knights_knaves`, which is Logic-RL's ``data/kk/instruct`` prompt); Logic-RL's
reward as the reward (``rewards.score_weight=1``, ``rewards.correctness_weight=0``, the
verifier's ``template=qwen_instruct`` option): +1 / -1 for the format (each of ``<think>``,
``</think>``, ``<answer>``, ``</answer>`` once and in order, the prefilled ``<think>``
counted) plus +2 for every role right, -1.5 for a parsed wrong answer, -2 for no parseable
answer, so 3, -0.5, -1 or -3. Logic-RL's modified REINFORCE++ (its "RL algorithm" section): the
advantage is the terminal reward's return whitened over the whole batch, with no critic and no
group baseline, and the KL to the reference is not in the reward but in the loss as k3
(``use_kl_loss=True``, ``kl_loss_type=low_var_kl``, ``kl_loss_coef=0.001``): the
``reinforce_pp`` preset of `r1jax.algorithms.policy_gradient` with ``objective.kl_placement=
loss`` and ``objective.kl_estimator=k3``. Per step 8 puzzles x 8 samples at temperature 1 and
top-p 1 (the script sets no temperature, so verl's 1.0; the paper reports 0.7), prompts up to
512 and completions up to 4,096 tokens, generation ending at the model's EOS, lr 5e-7 constant
(the paper: 4e-7), one update per step (``ppo_mini_batch_size=256`` holds the whole batch),
token-mean loss, verl's entropy bonus 0.001; 5 stages x 112 steps = 560 steps. Evaluated at
the end of each stage on 100 five-person puzzles (curriculum.sh validates on the 5-person test
split), one sample each at temperature 1.

Differences: the puzzles are drawn afresh from the generator (seeded per stage) rather than
read from Logic-RL's 900-puzzle files, so no puzzle repeats; the optimizer state carries over
between stages (curriculum.sh starts a new run per stage). The paper's main run mixes 3-7
people for 3,600 steps at lr 4e-7 and temperature 0.7: ``--config.data.curriculum="()"
--config.data.task_options.n_people="(3, 4, 5, 6, 7)" --config.steps=3600
--config.optim.lr=4e-7 --config.sampling.temperature=0.7 --config.reference.mode=frozen``.

What it shows: Logic-RL's finding that rule-based RL on 5,000 synthetic logic puzzles teaches
a 7B model to reason (reflect, verify, summarise) and that the skill transfers to math (AIME,
AMC) it was not trained on.

Hardware: curriculum.sh runs on 4 GPUs (``trainer.n_gpus_per_node=4``, vLLM tensor parallel 2);
this file shards the policy, the reference and the optimizer state over ``mesh.fsdp``. Not run
at this scale here: check memory with ``python -m r1jax.plan`` first.

Presets:

- ``:cpu``: Logic-RL's task, prompt and reward on the ``tiny`` model trained from scratch on a
  2-core CPU: 3-person puzzles (depth-2 statements, as above), Logic-RL's base prompt
  (``data.template=base``; the same instruction text as its instruct prompt) and a from-scratch
  byte-level BPE tokenizer with 1,024 merges (``tokenizer.merges_per_task``), so each of the
  51 names is one token and a prompt about 247 tokens. The puzzle space is split by a hash of
  the statements (``data.heldout_fraction=0.15``, `r1jax.data.partition`; names do not make
  two puzzles different): the warm start, the RL prompts and the tokenizer's text come from 85%
  of it, the evaluation from 500 different puzzles of the other 15% (``eval.distinct``), 4
  samples each at temperature 0.6 / top-p 0.95. A supervised warm start of 1,000 steps x 16
  answers (``reference:direct``: ``</think>`` and the answer in Logic-RL's format; lr 2e-3
  after 20 warm-up steps, cosine decay), then 160 Dr. GRPO steps (arXiv:2503.20783 §3.1; no
  KL) of 8 puzzles x 8 samples at temperature 1 with Logic-RL's reward (the verifier keeps the
  instruct template's option, which cuts a completion at a stray ``Assistant:``), at most 48
  new tokens, lr 2e-4.
- ``:smoke``: two warm-start and two RL steps with tiny batches (used by the tests).

Measured with ``:cpu`` on the 2-core CPU (an Intel Xeon KVM guest; jax float32), one run at a
time, ``python -m r1jax.train --config experiments/logic_rl_kk.py:cpu --config.seed=N
--config.data.seed=N --workdir DIR``, 2026-12-06; pass@1 / pass@4 / maj@4 in %:

    seed  after the warm start  after 160 RL steps  pass@1 gain  wall time
    0     23.0 / 54.6 / 24.8    29.7 / 33.2 / 29.8  +6.7         13 min 15 s
    1     11.5 / 27.0 / 14.6    15.3 / 21.8 / 15.4  +3.8         13 min 21 s
    2     7.8 / 21.8 / 8.8      10.5 / 18.4 / 12.0  +2.7         11 min 37 s

(warm-start steps about 0.37 s, RL steps about 1.4 s; seeds 0 and 1 at earlier commits, seed 2
at 5dd0657: the same settings, key for key in each run's config.json). Expected: a gain of 2 to
7 points. Seed 2's warm start is below chance: its logged answers name one person twice (``(1)
Aria is a knave (2) Aria is a knight (3) Grace is a knave``), so they cannot be right. Short of
Logic-RL's result, RL teaching the puzzles: here RL turns the warm start's greedy answer into
its sampled one and stops there. ``python -m r1jax.eval --checkpoint DIR --task knights_knaves
--task-option n_people=3 --heldout-fraction 0.15 --distinct --num-problems 500 --k 4
--max-new-tokens 48 --stop '</answer>'`` on the seed-0 warm start (a run with
``--config.steps=0``) prints greedy 32.6% against pass@1 22.6% and pass@4 52.8%; after 160 RL
steps from it, greedy 29.0 / pass@1 28.8 / pass@4 31.2; with dynamic sampling, greedy 31.6 /
pass@1 31.2, and after 240 steps 31.8 / 31.8. On seeds 1 and 2 (the same commands) the warm
starts print greedy 14.4 / pass@1 10.2 and greedy 11.6 / pass@1 7.1, the runs' final models
greedy 15.2 / pass@1 14.1 and greedy 11.0 / pass@1 9.2. So on each seed RL closes the gap
between the sampled and the greedy answer (10.0, 4.2 and 4.5 points; the runs gained 6.7, 3.8
and 2.7), and the greedy accuracy rises by 0.8 points at most: 10-15 thousand rewarded samples
teach this model next to nothing about the puzzles that the warm start's 16 thousand answers
did not. The gap is small because the warm start barely solves: a random guess of the
three roles is right 12.5% of the time and, over 4 samples, 41.4%, and seed 1's warm start
(11.5 / 27.0) is at chance. What was tried (500 held-out puzzles x 4 samples each):

- RL from the seed-0 warm start (``--config.model.init_from=WARMSTART
  --config.sft.mode=none``), 160 steps, pass@1 after RL against 23.0 before: as committed,
  28.3; 16 samples of 4 puzzles a step, 28.4; rollouts at temperature 0.7 (Logic-RL's paper),
  26.8; DAPO's dynamic sampling (``objective.dynamic_sampling.enabled=True``), 31.4 (its RL-only
  run took 7 min 16 s against 4 min 42 s without), and 32.0 after 240 steps (8 min 51 s).
- dynamic sampling in whole runs: seed 0 23.0 -> 29.4 (+6.4, 12 min 42 s), seed 1 11.5 ->
  12.2 (+0.7, 14 min 19 s), no better than without it; so the preset leaves it off.
- a curriculum by difficulty: a warm start on 2- and 3-person puzzles
  (``data.task_options={'n_people': (2, 3)}``, evaluated on 3 people with ``eval.sets``): 2.5
  / 8.6 after the warm start; the model named the wrong people (one name twice, another
  missing). Two people alone have 399 distinct puzzles, too few to hold 500 out.
- a warm-start mixture, the default experiment's recipe (a worked method beside direct answers,
  for RL to move the policy to the one that earns reward): half the warm start ``enumerate``
  traces (``reference_completion(method="enumerate")``: the claims in a short form, then each
  assignment tried and checked claim by claim; 252 tokens on average for 3 people, 382 at the
  90th percentile, against 31 for a direct answer), seed 0 with
  ``--config.sft.source=reference:enumerate=0.5,direct=0.5 --config.sft.steps=600
  --config.steps=100 --config.sampling.max_new_tokens=384``: 0.8 / 3.2 after the warm start.
  The first RL steps' samples name people who are not in the puzzle, in direct answers
  (``Sebastian`` and ``Amelia`` for Ella, Sofia and Evelyn) and in traces of the right shape
  (``Emily`` and ``Riley`` for Aurora, Luke and Avery); RL accuracy stayed at 0-1.6% for 25
  steps while the responses shortened from 68 to 33 tokens, back to direct answers (stopped
  there). Its warm-start steps took 1.17 s (median, against 0.37 s for direct
  answers) and its RL steps 4.6-6.0 s (1.4 s): the preset's 1,000 warm-start and 160 RL steps
  would take about 20 and 13 minutes before any evaluation.
- this preset before (2- and 3-person puzzles, worked traces, REINFORCE++, 40 steps): 2.0 ->
  2.0. Worked traces run to 300-500 tokens for 3 people (``verify`` traces average 385 with a
  256-merge tokenizer), so a warm-start batch pads to about 800 tokens and RL samples hundreds
  of tokens per row: more than this CPU trains and samples in 20 minutes.
- direct answers with the 256-merge tokenizer (600 x 16 warm-start steps): 4.4% after the
  warm start, below a random guess: names were 4 tokens on average and the model mixed them up
  (``Scarlettte``, a name given twice), so most answers did not parse (RL accuracy 2-3%).
  Hence 1,024 merges: every name one token.
- 800 warm-start steps, 320 RL steps: 8.8 / 24.4 after the warm start; RL accuracy stayed at
  0-8% for 260 steps (stopped there).
- 1,200 warm-start steps, 320 RL steps: 10.9 / 37.2 / 11.8 -> 12.2 / 12.4 / 12.4 in 18 min 40 s:
  the warm start guessed no better than chance and RL settled on one assignment for every
  puzzle.
"""

import ml_collections

from r1jax.tasks import knights_knaves

_INSTRUCT = knights_knaves.TEMPLATES["qwen_instruct"]
SYSTEM_PROMPT = _INSTRUCT[len("<|im_start|>system\n") : _INSTRUCT.index("<|im_end|>")]
"""Logic-RL's system message: Qwen's chat template renders it, the puzzle as ``{quiz}\\n`` and
the ``<think>`` prefill into the ``qwen_instruct`` template exactly."""

STAGE_STEPS = 112  # curriculum.sh: one epoch of 900 puzzles at 8 per step


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.steps = 5 * STAGE_STEPS
    c.model = dict(
        name="/path/to/Qwen2.5-7B-Instruct-1M", dtype="bfloat16", param_dtype="float32", remat=True
    )
    c.tokenizer = dict(use_chat_template=True)
    c.data = dict(
        task="knights_knaves",
        task_options=dict(n_people=5),  # the evaluation's puzzles; the curriculum sets training's
        curriculum=tuple((i * STAGE_STEPS, dict(n_people=n)) for i, n in enumerate(range(3, 8))),
        system_prompt=SYSTEM_PROMPT,
        user_template="{quiz}\n",
        prefill="<think>",
        prompts_per_step=8,
        bucket_sizes=(256, 384, 512),
    )
    c.sampling = dict(
        group_size=8, temperature=1.0, top_p=1.0, max_new_tokens=4096, stop_strings=()
    )
    c.verifier = dict(options=dict(template="qwen_instruct"))
    c.rewards = dict(correctness_weight=0.0, score_weight=1.0, truncated_is_incorrect=False)
    c.objective = dict(
        algorithm="reinforce_pp",
        kl_coef=0.001,
        kl_estimator="k3",
        kl_placement="loss",
        entropy_coef=0.001,
        aggregation="token-mean",
    )
    c.reference = dict(mode="reset_every", reset_every=STAGE_STEPS)
    c.optim = dict(lr=5e-7, weight_decay=0.01, grad_clip_norm=1.0, minibatches_per_step=1)
    c.sft = dict(mode="none")
    c.eval = dict(
        every=STAGE_STEPS, num_problems=100, k=1, temperature=1.0, top_p=1.0, greedy=False
    )
    c.mesh = dict(data=1, fsdp=-1, tensor=1)
    c.checkpoint = dict(every=56, keep=2)
    c.logging = dict(every=1, tensorboard=True, progress_bar=False, samples_to_log=2)
    if arg in ("cpu", "smoke"):
        c.steps = 160
        c.model = dict(name="tiny", dtype="float32", param_dtype="float32", remat=False)
        c.tokenizer = dict(use_chat_template=False, merges_per_task=1024)
        c.data = dict(
            task="knights_knaves",
            task_options=dict(n_people=3),
            template="base",
            prompts_per_step=8,
            bucket_sizes=(256, 384),
            heldout_fraction=0.15,
        )
        c.sampling.update(max_new_tokens=48, stop_strings=("</answer>",))
        c.objective = dict(algorithm="dr_grpo", kl_coef=0.0)
        c.reference = dict(mode="none")
        c.optim = dict(lr=2e-4, weight_decay=0.0, grad_clip_norm=1.0, minibatches_per_step=1)
        c.sft = dict(
            mode="warmup",
            steps=1000,
            lr=2e-3,
            schedule="cosine",
            warmup_steps=20,
            batch_size=16,
            source="reference:direct",
        )
        c.eval = dict(
            num_problems=500, distinct=True, k=4, temperature=0.6, top_p=0.95, greedy=False
        )
        c.mesh = dict(data=1, fsdp=1, tensor=1)
        c.checkpoint = dict(every=100, keep=2)
        c.logging = dict(every=10, tensorboard=False, progress_bar=True, samples_to_log=2)
    if arg == "smoke":
        c.steps = 2
        c.data.prompts_per_step = 2
        c.sampling.group_size = 2
        c.sampling.max_new_tokens = 16
        c.sft = dict(mode="warmup", steps=2, lr=2e-3, batch_size=2, source="reference:direct")
        c.eval.num_problems = 2
        c.eval.k = 2
        c.checkpoint.every = 1
        c.logging.every = 1
        c.logging.progress_bar = False
    elif arg not in (None, "cpu"):
        raise ValueError(f"unknown preset {arg!r}; known: cpu, smoke")
    return c
