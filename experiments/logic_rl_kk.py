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

- ``:cpu``: the same algorithm, reward and curriculum mechanism on the ``tiny`` model trained
  from scratch on 2- and 3-person puzzles, with the ``qwen_instruct`` task template (the same
  prompt text, so the from-scratch tokenizer is fit on whole prompts): a warm start on the
  task's reference traces (250 steps x 16: half work the puzzle out by assuming roles in
  order and backing up on a contradiction, half give the answer alone), then 40 REINFORCE++
  steps of 4 puzzles x 8 samples, 2-person puzzles for 20 steps and a mix of 2 and 3 people
  after (the reference reset at the stage change), at most 448 new tokens, lr 2e-4.
  Evaluation: 100 held-out 2- or 3-person puzzles, 4 samples each at temperature 0.6 / top-p
  0.95.
- ``:smoke``: two warm-start and two RL steps with tiny batches, crossing a curriculum stage
  (used by the tests).

Measured with ``:cpu`` (seed 0, commit 6c23398) on the shared 2-core CPU (2.6 GHz Xeon guest,
jax float32, nothing else running): ``python -m r1jax.train --config
experiments/logic_rl_kk.py:cpu --config.logging.progress_bar=false --workdir DIR``; pass@1 /
pass@4 / maj@4 in %:

    after the warm start   2.0 / 8.0 / 1.0
    after 40 RL steps      2.0 / 5.0 / 2.0

in 10 min 58 s (about 1.5 s per warm-start step, 5 s per RL step). No gain: the warm-started
tiny model solves 2% of the puzzles, its RL samples were almost never right (0 to 3% of them),
and Logic-RL's reward then mostly grades the format (the mean reward stayed near -1). This
preset shows the algorithm, reward, prompt and curriculum running end to end on a CPU, not
Logic-RL's result.
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
        stage = 20
        c.steps = 2 * stage
        c.model = dict(name="tiny", dtype="float32", param_dtype="float32", remat=False)
        c.tokenizer = dict(use_chat_template=False)
        c.data = dict(  # the task template: the same prompt text, and the tokenizer sees it all
            task="knights_knaves",
            task_options=dict(n_people=(2, 3)),
            curriculum=((0, dict(n_people=2)), (stage, dict(n_people=(2, 3)))),
            template="qwen_instruct",
            prompts_per_step=4,
            bucket_sizes=(448,),
        )
        c.sampling.update(max_new_tokens=448, stop_strings=("</answer>",))
        c.reference = dict(mode="reset_every", reset_every=stage)
        c.optim = dict(lr=2e-4, weight_decay=0.0, grad_clip_norm=1.0, minibatches_per_step=1)
        c.sft = dict(
            mode="warmup", steps=250, lr=2e-3, batch_size=16, source="reference:ordered,direct"
        )
        c.eval = dict(every=0, num_problems=100, k=4, temperature=0.6, top_p=0.95, greedy=False)
        c.mesh = dict(data=1, fsdp=1, tensor=1)
        c.checkpoint = dict(every=20, keep=2)
        c.logging = dict(every=5, tensorboard=False, progress_bar=True, samples_to_log=2)
    if arg == "smoke":
        c.steps = 2
        c.data.task_options = dict(n_people=2)
        c.data.curriculum = ((0, dict(n_people=2)), (1, dict(n_people=3)))
        c.data.prompts_per_step = 2
        c.sampling.group_size = 2
        c.sampling.max_new_tokens = 16
        c.reference.reset_every = 1
        c.sft = dict(mode="warmup", steps=2, lr=2e-3, batch_size=2, source="reference:direct")
        c.eval.num_problems = 2
        c.eval.k = 2
        c.checkpoint.every = 1
        c.logging.every = 1
        c.logging.progress_bar = False
    elif arg not in (None, "cpu"):
        raise ValueError(f"unknown preset {arg!r}; known: cpu, smoke")
    return c
