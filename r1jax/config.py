"""Experiment configs: the key schema, loading ``experiments/*.py`` files, overrides, the CLI.

r1jax configs are ``ml_collections.ConfigDict`` trees nested by stage (``model.*``, ``data.*``,
``sampling.*``, ``rewards.*``, ``objective.*`` ...). :func:`base_config` lists every key the
trainer understands, with its default and a one-line comment. An experiment file defines
``get_config(arg=None)`` and returns either a full config (usually ``base_config()`` with some
keys changed) or a partial ``ConfigDict``/dict; :func:`load_config` lays it over
:func:`base_config`, applies ``key.sub=value`` overrides and locks the result, so a misspelt key
fails with an error listing the valid keys at that level, closest matches first.

Types follow the defaults in :func:`base_config`: an override or experiment value must have
the type of the default (an ``int`` is accepted for a ``float``, a list for a ``tuple``); keys
whose default is ``None`` accept any value. The open groups (``OPEN_GROUPS``) take any key:
``data.task_options`` and ``verifier.options`` hold keyword arguments that the task checks
itself; ``data.mixture`` and ``eval.sets`` map names the user chooses to settings, which
`r1jax.mixture` and `r1jax.eval_sets` check. An open group can also be set whole from the
command line with a dict literal (``--config.eval.sets='{"aime": {"path": "aime.jsonl"}}'``),
which replaces what the experiment file put there.

The command line (:func:`parse_command_line`) is a small argparse equivalent of
``ml_collections.config_flags``: ``--config path.py[:preset] --config.key=value ...
--workdir DIR``. ``config_flags`` itself is not used because, in ml_collections 1.1, it cannot
override keys whose default is ``None``, reports a missing config file only lazily, and needs
``sys.argv`` pre-scanning; the argparse version shares :func:`load_config`'s semantics exactly.

What does not live here: reading the config (only ``train.run`` unpacks it into the explicit
arguments of library functions) and schedules derived from it.
"""

from __future__ import annotations

import argparse
import ast
import copy
import dataclasses
import difflib
import hashlib
import importlib.util
import inspect
import json
import os
import types
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from r1jax import algorithms
from r1jax.algorithms import policy_gradient

# Groups whose keys are free-form (passed as keyword arguments to a constructor that checks
# them, or named by the user: the tasks of a mixture, the evaluation sets). Tuple of dotted
# paths; a literal, not a registry.
OPEN_GROUPS = ("data.task_options", "verifier.options", "data.mixture", "eval.sets")

# Keys that do not change the training trajectory: excluded from :func:`config_hash` by
# default so that resuming with a longer run, other logging, another eval cadence or on another
# mesh or number of hosts (checkpoints restore into the new shardings) is allowed.
RESUMABLE_KEYS = ("steps", "logging", "checkpoint", "eval", "mesh", "sharding", "distributed")


class ConfigError(ValueError):
    """A config file, key or override value is invalid; the message names which."""


def _budget_forcing_config() -> ml_collections.ConfigDict:
    """s1 budget forcing (arXiv:2501.19393 §3.1) around the evaluation sampler (a test-time method:
    forced tokens are not the policy's samples, so RL rollouts do not use it)."""
    c = ml_collections.ConfigDict()
    c.mode = "none"  # none | cap (force an answer at the budget) | extend (append ignore_string)
    c.thinking_budget = 0  # max thinking tokens; 0 = max_new_tokens minus answer_reserve
    c.answer_reserve = 100  # tokens kept for the answer after the thinking is closed
    c.num_ignore = 1  # extend mode: how many times the end-of-thinking is replaced
    c.ignore_string = "Wait"  # extend mode: appended in place of the end-of-thinking
    c.end_of_thinking = "</think>"  # delimiter that closes the thinking
    c.answer_prefix = "\nFinal Answer:"  # appended after a forced end of thinking
    # s1's scaling curve: each evaluation also runs once per budget (x each of num_ignores in
    # extend mode; () = num_ignore) and reports them as budget_sweep; () = no sweep
    c.thinking_budgets = ()
    c.num_ignores = ()
    return c


def base_config() -> ml_collections.ConfigDict:
    """Every key the r1jax trainer understands, with its default.

    The defaults describe a small GRPO run (R1-Zero settings, arXiv:2501.12948 §2.2, where they
    apply). The returned config is locked: assigning a key that does not exist raises, while
    existing keys can be changed. ``data.task_options`` stays open.

    Returns:
      A locked ``ConfigDict``.

    Example:
      >>> cfg = base_config()
      >>> cfg.objective.algorithm, cfg.sampling.group_size
      ('grpo', 8)
    """
    c = ml_collections.ConfigDict()
    c.steps = 1000  # RL steps (one rollout batch of P prompts x G samples each)
    c.seed = 0  # root seed; every stream folds in its own constant and the step
    c.max_nonfinite_in_a_row = 3  # stop after this many consecutive steps with a NaN/inf loss

    c.model = ml_collections.ConfigDict()
    c.model.name = "tiny"  # preset (tiny, small, ...), a local HF checkpoint dir or a hub id
    c.model.dtype = "bfloat16"  # compute / activation dtype
    c.model.param_dtype = "float32"  # parameter and optimizer-state dtype
    c.model.remat = True  # recompute each block's activations in the backward pass (memory)
    c.model.vocab_multiple = 1  # a from-scratch preset's vocab rounds up to a multiple of this
    c.model.attention = "auto"  # auto (cuDNN on GPU, splash on TPU, XLA on CPU) | xla | cudnn |
    # splash | dot_product
    c.model.init_from = ""  # start from another run's workdir (its checkpoint) or an export dir

    c.tokenizer = ml_collections.ConfigDict()
    c.tokenizer.path = ""  # dir with tokenizer.json; empty = the model dir
    c.tokenizer.use_chat_template = False  # wrap prompts in the tokenizer's chat template
    c.tokenizer.extra_stop_token_ids = ()  # token ids that end a completion besides EOS
    # A tokenizer fit from scratch (a model preset): more merges make whole words (names,
    # say) single tokens and prompts shorter.
    c.tokenizer.merges_per_task = 256  # BPE merges learnt per task

    c.data = ml_collections.ConfigDict()
    c.data.task = "countdown"  # countdown | multiplication | knights_knaves | math | format
    # Several tasks in one run: name -> {weight, task, task_options, template, path, ...}
    # (r1jax.mixture.ENTRY_KEYS); excludes data.task. Empty = the single task of data.task.
    c.data.mixture = ml_collections.ConfigDict()
    c.data.task_options = ml_collections.ConfigDict()  # keyword arguments for the task
    # RL prompts' generator options by stage: ((first RL step, {option: value}), ...), laid
    # over data.task_options; the first stage starts at 0 (r1jax.data.curriculum).
    c.data.curriculum = ()  # () = no curriculum
    c.data.source = "procedural"  # procedural | jsonl | parquet | tfds
    c.data.path = ""  # JSONL/Parquet file, or tfds dataset dir <data_dir>/<name>[/<version>]
    c.data.split = "train"  # tfds split of the training problems (JSONL/Parquet have none)
    c.data.prompt_field = "problem"  # row field holding the question
    c.data.answer_field = "answer"  # row field holding the reference answer
    c.data.id_field = ""  # row field holding a stable id; empty = row index
    c.data.template = ""  # a template name of the task (r1_zero, base, ...); "" = its default
    c.data.system_prompt = ""  # chat template only: the system message ("" = none)
    c.data.user_template = ""  # chat template only: user message, {field} slots of the problem
    c.data.prefill = ""  # chat template only: text after the assistant header (e.g. "<think>")
    c.data.prompts_per_step = 8  # P
    c.data.bucket_sizes = (64, 128, 256, 512)  # prompt length buckets Tp in tokens
    c.data.shuffle = True  # shuffle file sources each epoch
    c.data.seed = 0  # data order / procedural generator seed
    c.data.heldout_fraction = 0.0  # > 0: this hash share of generated problems is eval-only
    c.data.num_workers = 0  # grain worker processes (0 = in the main process)
    c.data.on_bad_row = "error"  # error | skip (skipped rows are counted and logged)

    c.sampling = ml_collections.ConfigDict()
    c.sampling.group_size = 8  # G completions per prompt
    c.sampling.temperature = 1.0  # softmax temperature (the learner uses the same one)
    c.sampling.top_p = 1.0  # nucleus threshold; 1.0 disables
    c.sampling.top_k = 0  # keep the k most likely tokens; 0 disables
    c.sampling.min_p = 0.0  # drop tokens below min_p x max prob; 0.0 disables
    c.sampling.max_new_tokens = 1024  # T, completion length cap
    c.sampling.stop_strings = ("</answer>",)  # a completion ends after any of these
    c.sampling.dtype = ""  # the sampler's compute dtype; "" = model.dtype (the learner's)
    c.sampling.mode = "static"  # static (one call per round) | continuous (refilled slots)
    c.sampling.slots = 0  # continuous: decode slots N; 0 = data.prompts_per_step * group_size
    c.sampling.partial_rollouts = False  # continuous: unfinished rows continue in the next step
    c.sampling.partial_step_budget = 0  # decode steps per generation call; 0 = max_new_tokens
    c.sampling.attention_tiers = (256,)  # continuous: decode attention bands; () = whole rings

    c.verifier = ml_collections.ConfigDict()
    c.verifier.workers = 0  # verifier processes; 0 = the machine's cores, at most 4
    c.verifier.timeout_seconds = 10.0  # per completion; a timeout counts as a zero reward
    c.verifier.options = ml_collections.ConfigDict()  # keyword arguments of the task's verify

    c.rewards = ml_collections.ConfigDict()
    c.rewards.correctness_weight = 1.0  # weight of the verifier's 0/1 correctness
    c.rewards.score_weight = 0.0  # weight of the verifier's own score (the task's published rule)
    c.rewards.format_weight = 0.0  # weight of the well-formed-output term
    c.rewards.truncated_is_incorrect = True  # completions without EOS/stop score as wrong
    c.rewards.cosine = ml_collections.ConfigDict()  # cosine length scaling (arXiv:2502.03373)
    c.rewards.cosine.enabled = False  # replaces correctness with the cosine-shaped value
    c.rewards.cosine.max_correct = 2.0  # r0_c: reward of a correct answer of length 0
    c.rewards.cosine.min_correct = 1.0  # rL_c: reward of a correct answer at L_max
    c.rewards.cosine.max_wrong = 0.0  # rL_w: reward of a wrong answer at L_max
    c.rewards.cosine.min_wrong = -10.0  # r0_w: reward of a wrong answer of length 0
    c.rewards.cosine.exceed = -10.0  # reward when L + margin >= L_max
    c.rewards.cosine.margin = 16  # MAX_LEN_MARGIN in tokens
    c.rewards.cosine.max_length = 0  # L_max in tokens; 0 = sampling.max_new_tokens
    c.rewards.overlong = ml_collections.ConfigDict()  # DAPO soft overlong punishment (§3.2)
    c.rewards.overlong.enabled = False  # add the overlong term to the reward
    c.rewards.overlong.cache_length = 256  # L_cache: penalty ramps over the last L_cache tokens
    c.rewards.overlong.penalty_factor = 1.0  # scale of the ramp (reaches -factor at L_max)
    c.rewards.repetition = ml_collections.ConfigDict()  # dense n-gram penalty (§4.2)
    c.rewards.repetition.enabled = False  # add the per-token repetition penalty
    c.rewards.repetition.ngram_size = 40  # n, in tokens
    c.rewards.repetition.penalty = -0.05  # p, assigned to each token of a repeated n-gram
    c.rewards.repetition.only_start = False  # penalise only the first n-gram of a repeated run

    # The objective's defaults are the policy-gradient family's published GRPO settings
    # (one source of truth: `r1jax.algorithms.policy_gradient.PolicyGradient`); the chosen
    # algorithm's preset is laid over them by `load_config`.
    pg = policy_gradient.PolicyGradient()
    c.objective = ml_collections.ConfigDict()
    c.objective.algorithm = "grpo"  # a name of r1jax.algorithms.ALGORITHMS (its preset applies)
    c.objective.advantage = pg.advantage  # group | rloo | reinforce_pp | reinforce_pp_baseline
    c.objective.surrogate = pg.surrogate  # clip (per-token ratio) | gspo (sequence ratio)
    c.objective.clip_eps_low = pg.clip_eps_low  # ratio floor 1 - eps_low
    c.objective.clip_eps_high = pg.clip_eps_high  # ratio ceiling 1 + eps_high (DAPO: 0.28)
    c.objective.dual_clip = pg.dual_clip  # dual-clip c for negative advantages; 0 disables
    c.objective.kl_coef = pg.kl_coef  # beta; 0 disables the KL term (and the reference forward)
    c.objective.kl_estimator = pg.kl_estimator  # k1 | k2 | k3 | k3+ (k3 value, k2 gradient)
    c.objective.kl_placement = pg.kl_placement  # loss (GRPO) | reward (PPO / REINFORCE++, k1)
    c.objective.aggregation = pg.aggregation  # | token-mean | seq-mean-token-sum |
    # seq-mean-token-sum-norm (Dr. GRPO; divides by aggregation_constant)
    c.objective.aggregation_constant = pg.aggregation_constant  # C of Dr. GRPO; 0 = T
    c.objective.num_iterations = pg.num_iterations  # mu: passes over each rollout batch
    c.objective.std = pg.std  # group std flavour: unbiased | population | none
    c.objective.advantage_eps = pg.advantage_eps  # added to the group std
    c.objective.entropy_coef = pg.entropy_coef  # entropy bonus weight (verl's old default 0.001)
    c.objective.logratio_clamp = pg.logratio_clamp  # clamp log ratios to +-this before exp
    c.objective.mask_truncated = pg.mask_truncated  # DAPO overlong filtering: no loss
    c.objective.dynamic_sampling = ml_collections.ConfigDict()  # DAPO group filtering
    c.objective.dynamic_sampling.enabled = False  # drop groups whose rewards are all equal
    c.objective.dynamic_sampling.max_rounds = 10  # sampling rounds per step; <= 0 unlimited
    # TIS / MIS between the learner's and the sampler's log-probs of the rollout policy
    # (r1jax.algorithms.rollout_correction; policy-gradient algorithms)
    c.objective.rollout_correction = ml_collections.ConfigDict()
    c.objective.rollout_correction.mode = "auto"  # auto (on iff sampling.dtype differs) | on | off
    c.objective.rollout_correction.level = "token"  # token | sequence (product of token ratios)
    c.objective.rollout_correction.action = "truncate"  # truncate (TIS) | mask (MIS)
    c.objective.rollout_correction.clip_min = 0.0  # C_min of the band (truncate: 0 = no floor)
    c.objective.rollout_correction.clip_max = 2.0  # C_max of the band (TIS cap)
    c.objective.selection = "correct"  # raft: correct (every correct row) | best (best-of-G)
    c.objective.pairing = "max_min"  # online_dpo: max_min (best vs worst) | all (every R_i > R_j)
    c.objective.dpo_beta = 0.1  # online_dpo: beta of the DPO sigmoid loss
    c.objective.dpo_label_smoothing = 0.0  # online_dpo: label smoothing alpha (recipe: 0.1)

    c.objective.gamma = 1.0  # ppo / prime: discount of the returns
    c.objective.gae_lambda = 1.0  # ppo: GAE lambda (ORZ: 1)
    c.objective.whiten_advantages = True  # ppo: normalise advantages over the batch (ORZ)

    # PPO's critic (r1jax.algorithms.ppo): the policy's architecture with a scalar head.
    c.critic = ml_collections.ConfigDict()
    c.critic.init = "policy"  # policy (its weights at the start of RL) | a local HF dir
    c.critic.lr = 5e-6  # peak AdamW learning rate (ORZ 5e-6, TinyZero 1e-5)
    c.critic.lr_warmup_steps = 0  # linear lr warm-up steps (ORZ: 50)
    c.critic.b1 = 0.9  # AdamW beta1
    c.critic.b2 = 0.999  # AdamW beta2 (ORZ: 0.95)
    c.critic.eps = 1e-8  # AdamW epsilon
    c.critic.weight_decay = 0.0  # decoupled weight decay
    c.critic.grad_clip_norm = 1.0  # global-norm clip; 0 disables
    c.critic.minibatches_per_step = 1  # critic updates per rollout batch (ORZ: 12)
    c.critic.value_clip = 0.0  # c of the clipped value loss; 0 = unclipped (ORZ; TinyZero 0.5)
    c.critic.warmup_steps = 0  # first RL steps in which only the critic trains

    # PRIME's implicit process reward model (r1jax.algorithms.prime): a second causal LM.
    c.prm = ml_collections.ConfigDict()
    c.prm.init = "policy"  # policy (= the frozen reference at the start of RL) | a local HF dir
    c.prm.lr = 1e-6  # peak AdamW learning rate
    c.prm.lr_warmup_steps = 0  # linear lr warm-up steps
    c.prm.b1 = 0.9  # AdamW beta1
    c.prm.b2 = 0.999  # AdamW beta2
    c.prm.eps = 1e-8  # AdamW epsilon
    c.prm.weight_decay = 0.0  # decoupled weight decay
    c.prm.grad_clip_norm = 10.0  # global-norm clip (PRIME: 10); 0 disables
    c.prm.minibatches_per_step = 1  # PRM updates per rollout batch
    c.prm.beta = 0.05  # beta of r_t = beta * log(pi_prm / pi_ref) (beta_train)
    c.prm.reward_form = "rloo"  # rloo (PRIME's code) | paper (the paper's advantage equation)
    c.prm.process_weight = 1.0  # weight of the implicit process-reward returns
    c.prm.outcome_weight = 1.0  # weight of the verifier-outcome returns
    c.prm.accuracy_low = 0.2  # keep a prompt group iff accuracy_low <= its accuracy ...
    c.prm.accuracy_high = 0.8  # ... <= accuracy_high (PRIME: 0.2-0.8)

    c.reference = ml_collections.ConfigDict()
    c.reference.mode = "frozen"  # none | frozen | reset_every
    c.reference.reset_every = 0  # reset_every mode: steps between reference <- policy (R1: 400)

    # Low-rank adapters (LoRA, arXiv:2106.09685; r1jax.models.lora): the base is frozen and
    # only the adapters train (and hold optimizer state); the reference is the base.
    c.lora = ml_collections.ConfigDict()
    c.lora.rank = 0  # r; 0 = full fine-tuning (no adapters)
    c.lora.alpha = 16.0  # the adapters' output is scaled by alpha / rank
    c.lora.targets = (  # projections with an adapter in every layer; also all | attention | mlp
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )
    c.lora.dropout = 0.0  # dropout on the adapters' input in the learner's training forward
    c.lora.base_dtype = ""  # frozen base: float32 | bfloat16 | int8 (QLoRA); "" = param_dtype
    c.lora.merge_for_sampling = True  # sampler: merged W + (alpha/r) A B (else A, B per step)

    c.optim = ml_collections.ConfigDict()
    c.optim.lr = 1e-6  # peak AdamW learning rate
    c.optim.b1 = 0.9  # AdamW beta1
    c.optim.b2 = 0.999  # AdamW beta2 (ORZ: 0.95)
    c.optim.eps = 1e-8  # AdamW epsilon
    c.optim.weight_decay = 0.01  # decoupled weight decay
    c.optim.warmup_steps = 0  # linear warm-up from 0 to lr
    c.optim.schedule = "constant"  # constant | cosine | linear (after warm-up)
    c.optim.decay_steps = 0  # steps of decay after warm-up; 0 = steps - warmup_steps
    c.optim.min_lr_ratio = 0.0  # final lr as a fraction of lr (cosine / linear)
    c.optim.grad_clip_norm = 1.0  # global-norm clip; 0 disables
    c.optim.minibatches_per_step = 1  # optimizer updates per rollout batch (PPO mini-batches)
    c.optim.micro_batch_size = 0  # rows per gradient-accumulation micro-batch; 0 = no split
    c.optim.micro_batch_tokens = 0  # >0: length-sorted micro-batches of this many tokens
    c.optim.length_buckets = 4  # lengths T, T/2, T/4 ... they are cut to (a compile each)
    c.optim.logprob_chunk_size = 256  # positions per chunk of the log-softmax (memory vs speed)

    c.schedule = ml_collections.ConfigDict()
    c.schedule.context_stages = ()  # ((start_step, max_new_tokens[, group_size]), ...); () = constant
    # DeepScaleR: ((0, 8192), (1040, 16384), (1520, 24576))

    c.sft = ml_collections.ConfigDict()
    c.sft.mode = "none"  # none | warmup (supervised steps before RL)
    c.sft.steps = 0  # supervised steps
    c.sft.lr = 1e-5  # supervised learning rate
    c.sft.batch_size = 8  # supervised sequences per step
    c.sft.warmup_steps = 0  # linear warm-up from 0 to sft.lr
    c.sft.schedule = "constant"  # constant | cosine | linear (after sft.warmup_steps)
    c.sft.min_lr_ratio = 0.0  # final lr as a fraction of sft.lr (cosine / linear)
    c.sft.bucket_step = 64  # batches pad to a multiple of this (each width compiles once)
    c.sft.source = ""  # JSONL / Parquet file of prompt/response rows, or reference[:METHOD=W,..]
    c.sft.prompt_field = "prompt"  # file rows: the field holding the prompt (or the question)
    c.sft.response_field = "response"  # file rows: the field holding the target response
    c.sft.id_field = ""  # file rows: a stable id field; empty = row index

    c.eval = ml_collections.ConfigDict()
    c.eval.every = 0  # steps between evaluations; 0 disables
    c.eval.at_start = False  # also evaluate before the first step
    c.eval.split = "test"  # tfds split of the evaluation problems (JSONL/Parquet have none)
    c.eval.path = ""  # file / tfds dir; empty = data.path (file sources) or the procedural test set
    c.eval.num_problems = 64  # problems per evaluation
    c.eval.distinct = False  # generated problems: num_problems different ones (by problem_key)
    c.eval.k = 4  # samples per problem (pass@1 over k, pass@k, maj@k)
    c.eval.temperature = 0.6  # sampling temperature (R1 / DeepScaleR: 0.6)
    c.eval.top_p = 0.95  # nucleus threshold
    c.eval.greedy = True  # also decode greedily once per problem
    c.eval.max_new_tokens = 0  # 0 = sampling.max_new_tokens
    c.eval.budget_forcing = _budget_forcing_config()  # s1 budget forcing at evaluation
    # Named evaluation sets: name -> {path, task, k, num_problems, ...} (r1jax.eval_sets.
    # SET_KEYS), each reported as eval/<name>/...; empty = one set (eval.path or the held-out
    # generator) reported as eval/... (with data.mixture: one set per task).
    c.eval.sets = ml_collections.ConfigDict()

    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1  # data-parallel axis size; -1 = devices / (fsdp * tensor)
    c.mesh.fsdp = 1  # parameter-sharding axis size
    c.mesh.tensor = 1  # tensor-parallel axis size

    c.rollout = ml_collections.ConfigDict()  # sampler and learner meshes (r1jax.async_rollouts)
    c.rollout.mode = "sync"  # sync (sample and update on one mesh) | async (a mesh for each)
    c.rollout.devices = 0  # async: devices of the rollout mesh (the last N); 0 = half of them
    c.rollout.staleness = 1  # async: s, the most policy versions a row may lag (0 = on-policy)
    c.rollout.overlap = True  # async: sample step k+1 while step k updates; False = in turn

    c.sharding = ml_collections.ConfigDict()  # logical name -> mesh axes; None = built-in rule
    for name in ("batch", "seq", "embed", "heads", "kv_heads", "head_dim", "mlp", "vocab"):
        c.sharding[name] = None  # a mesh axis name, a tuple of names, or () to replicate

    c.distributed = ml_collections.ConfigDict()  # multi-host: jax.distributed.initialize
    c.distributed.auto = False  # initialize() with no arguments (TPU pods, SLURM: auto-detected)
    c.distributed.coordinator_address = ""  # host:port of process 0; empty = one process
    c.distributed.num_processes = 0  # processes in the job (with coordinator_address)
    c.distributed.process_id = -1  # this process, 0 .. num_processes - 1 (with the address)

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every = 100  # steps between checkpoints; 0 disables
    c.checkpoint.keep = 3  # most recent checkpoints kept
    c.checkpoint.async_save = True  # write in the background while training continues

    c.logging = ml_collections.ConfigDict()
    c.logging.every = 1  # steps between metric writes
    c.logging.samples_to_log = 4  # completions written to samples.jsonl per log step
    c.logging.console = True  # one-line summary per log step
    c.logging.progress_bar = True  # tqdm bar with reward, accuracy, length and ETA
    c.logging.jsonl = True  # metrics.jsonl / samples.jsonl in the workdir
    c.logging.tensorboard = True  # tensorboardX event files in workdir/tensorboard
    c.logging.wandb = False  # Weights & Biases (needs the wandb package)
    c.logging.wandb_project = "r1jax"  # W&B project
    c.logging.run_name = ""  # W&B / display name; empty = the workdir name
    c.logging.reflection_keywords = "default"  # default | oat_zero | understand_r1_zero | orz | r1

    c.lock()
    for path in OPEN_GROUPS:
        _get_path(c, path.split(".")).unlock()
    return c


# ----------------------------------------------------------------------------- key paths


def _get_path(config: ml_collections.ConfigDict, parts: Sequence[str]) -> Any:
    node = config
    for part in parts:
        node = node[part]
    return node


def _closest_first(name: str, candidates: Sequence[str]) -> list[str]:
    close = difflib.get_close_matches(name, candidates, n=len(candidates), cutoff=0.5)
    return close + sorted(c for c in candidates if c not in close)


def _unknown_key_error(path: Sequence[str], index: int, node: Mapping, source: str) -> ConfigError:
    level = ".".join(path[:index]) or "<top level>"
    valid = ", ".join(_closest_first(path[index], list(node.keys())))
    return ConfigError(
        f"{source}: unknown config key '{'.'.join(path)}'. Valid keys under {level}: {valid}"
    )


def _is_open(path: Sequence[str]) -> bool:
    dotted = ".".join(path)
    return any(dotted == g or dotted.startswith(g + ".") for g in OPEN_GROUPS)


def _check_type(default: Any, value: Any, key: str, source: str) -> Any:
    """Returns ``value`` converted to the type of ``default``, or raises ConfigError."""
    if default is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, tuple | list):
        ok = isinstance(value, tuple | list)
        value = _to_tuples(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(
            f"{source}: config key '{key}' expects {type(default).__name__} "
            f"(default {default!r}), got {type(value).__name__} {value!r}"
        )
    return value


def _to_tuples(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_to_tuples(v) for v in value)
    return value


def _set_leaf(config: ml_collections.ConfigDict, path: list[str], value: Any, source: str) -> None:
    """Sets ``config[path] = value`` after checking the key exists and the type matches."""
    node = config
    for i, part in enumerate(path[:-1]):
        if part not in node:
            if not _is_open(path[: i + 1]):
                raise _unknown_key_error(path, i, node, source)
            node[part] = ml_collections.ConfigDict()
        elif not isinstance(node[part], ml_collections.ConfigDict):
            raise ConfigError(
                f"{source}: '{'.'.join(path[: i + 1])}' is a value, not a group, so "
                f"'{'.'.join(path)}' does not exist"
            )
        node = node[part]
    leaf = path[-1]
    if isinstance(value, Mapping) and not value and _is_open(path):
        if not isinstance(node.get(leaf), ml_collections.ConfigDict):
            node[leaf] = ml_collections.ConfigDict()  # an empty entry (e.g. a set with no keys)
        return
    if leaf not in node:
        if not _is_open(path[:-1]):
            raise _unknown_key_error(path, len(path) - 1, node, source)
        node[leaf] = _to_tuples(value)
        return
    if isinstance(node[leaf], ml_collections.ConfigDict):
        raise ConfigError(
            f"{source}: '{'.'.join(path)}' is a group; set its keys instead: "
            + ", ".join(node[leaf].keys())
        )
    node[leaf] = _check_type(node[leaf], value, ".".join(path), source)


def _leaves(tree: Mapping, prefix: tuple[str, ...] = ()) -> list[tuple[list[str], Any]]:
    """``(key path, value)`` of every leaf; an empty mapping inside an open group is a leaf
    (``{}``), so ``eval.sets.countdown = {}`` creates the entry."""
    out = []
    for key, value in tree.items():
        if isinstance(value, Mapping | ml_collections.ConfigDict):
            if not value and _is_open([*prefix, key]):
                out.append(([*prefix, key], {}))
            out.extend(_leaves(value, (*prefix, key)))
        else:
            out.append(([*prefix, key], value))
    return out


# ----------------------------------------------------------------------------- overrides


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parse_override_value(text: str, default: Any) -> Any:
    """Parses an override string into the type of ``default``.

    Booleans accept true/false/yes/no/1/0; tuples accept a Python literal (``"(1, 2)"``) or
    a comma-separated list (``"a,b"``, elements parsed like the default's first element);
    keys whose default is ``None`` take a Python literal, ``None``, or else the raw string.
    Strings are taken as-is (surrounding quotes are removed).

    Raises:
      ValueError: ``text`` cannot be read as the default's type.

    Example:
      >>> parse_override_value("0.5", 1.0), parse_override_value("no", True)
      (0.5, False)
      >>> parse_override_value("</answer>,User:", ("</answer>",))
      ('</answer>', 'User:')
    """
    stripped = text.strip()
    if isinstance(default, bool):
        lowered = stripped.lower()
        if lowered in ("true", "yes", "1", "on"):
            return True
        if lowered in ("false", "no", "0", "off"):
            return False
        raise ValueError(f"expected a bool (true/false), got {text!r}")
    if isinstance(default, int):
        return int(stripped)
    if isinstance(default, float):
        return float(stripped)
    if isinstance(default, str):
        if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "'\"":
            return stripped[1:-1]
        return text
    if isinstance(default, tuple | list):
        if stripped in ("", "()", "[]"):
            return ()
        value = _literal(stripped)
        if isinstance(value, tuple | list):
            return _to_tuples(value)
        element = default[0] if default else None
        return tuple(parse_override_value(part, element) for part in stripped.split(","))
    if default is None:
        if stripped in ("None", "null"):
            return None
        return _to_tuples(_literal(stripped))
    raise ValueError(f"cannot override a value of type {type(default).__name__}")


def _mapping_literal(text: str) -> Any:
    """``text`` read as a Python or JSON dict literal, or None when it is not one."""
    stripped = text.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "'\"":
        stripped = stripped[1:-1].strip()  # a shell-quoted literal
    if not stripped.startswith("{"):
        return None
    value = _literal(stripped)
    if isinstance(value, Mapping):
        return value
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    return value if isinstance(value, Mapping) else None


def _replace_group(
    config: ml_collections.ConfigDict, path: list[str], mapping: Mapping, source: str
) -> None:
    """Replaces the open group at ``path`` (created if missing) with ``mapping``'s keys."""
    _set_leaf(config, path, {}, source)  # creates the group (and its parents) when missing
    group = _get_path(config, path)
    for key in list(group.keys()):
        del group[key]
    for leaf_path, value in _leaves(mapping, tuple(path)):
        _set_leaf(config, leaf_path, value, source)


def apply_overrides(
    config: ml_collections.ConfigDict, overrides: Sequence[str], *, source: str = "override"
) -> ml_collections.ConfigDict:
    """Applies ``key.sub=value`` strings to ``config`` in place and returns it.

    Raises:
      ConfigError: a malformed override, an unknown key (valid keys listed, closest first) or
        a value that does not parse as the key's type.

    Example:
      >>> cfg = apply_overrides(base_config(), ["sampling.temperature=0.6", "steps=10"])
      >>> cfg.sampling.temperature, cfg.steps
      (0.6, 10)
    """
    for override in overrides:
        key, sep, text = override.partition("=")
        key = key.strip().removeprefix("--").removeprefix("config.")
        if not sep or not key:
            raise ConfigError(f"{source}: override {override!r} is not of the form key.sub=value")
        path = key.split(".")
        if _is_open(path) and isinstance(mapping := _mapping_literal(text), Mapping):
            _replace_group(config, path, mapping, source)
            continue
        try:
            default = _get_path(config, path)
        except (KeyError, AttributeError, TypeError):
            default = None
            _set_leaf(config, path, None, source)  # raises for unknown keys outside open groups
        if isinstance(default, ml_collections.ConfigDict):
            _set_leaf(config, path, None, source)  # raises the "is a group" error
        try:
            value = parse_override_value(text, default)
        except ValueError as e:
            raise ConfigError(f"{source}: bad value for '{key}': {e}") from None
        _set_leaf(config, path, value, source)
    return config


# ----------------------------------------------------------------------------- loading


def _load_experiment(path: str) -> types.ModuleType:
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist")
    module_name = "r1jax_experiment_" + hashlib.sha1(os.path.abspath(path).encode()).hexdigest()
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"config file {path!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise ConfigError(f"config file {path!r} failed to import: {type(e).__name__}: {e}") from e
    if not callable(getattr(module, "get_config", None)):
        raise ConfigError(f"config file {path!r} does not define get_config(arg=None)")
    return module


def experiments_directory() -> str:
    """The folder of the experiment files that ship with r1jax.

    A wheel carries them inside the package (``r1jax/experiments``); a source checkout has
    them next to the package (``experiments/``, the folder users edit).

    Raises:
      ConfigError: neither folder holds ``default.py``.
    """
    package = os.path.dirname(os.path.abspath(__file__))
    for candidate in (
        os.path.join(package, "experiments"),
        os.path.join(os.path.dirname(package), "experiments"),
    ):
        if os.path.isfile(os.path.join(candidate, "default.py")):
            return candidate
    raise ConfigError(f"no experiments folder with default.py next to the r1jax package {package}")


def experiment_path(name_or_path: str) -> str:
    """The file of an experiment: a path as given, or a bundled experiment's name.

    A name (no ``.py`` suffix and no folder, e.g. ``default`` or ``tinyzero_countdown``) is
    a file of :func:`experiments_directory`, so ``--config default:smoke`` works from any
    directory, also from an installed wheel.

    Raises:
      ConfigError: a name no bundled experiment has (the message lists the names).

    Example:
      >>> os.path.basename(experiment_path("default"))
      'default.py'
    """
    if name_or_path.endswith(".py") or os.sep in name_or_path or "/" in name_or_path:
        return name_or_path
    directory = experiments_directory()
    path = os.path.join(directory, f"{name_or_path}.py")
    if not os.path.isfile(path):
        names = sorted(f[:-3] for f in os.listdir(directory) if f.endswith(".py"))
        raise ConfigError(
            f"{name_or_path!r} is neither a .py file nor a bundled experiment ({', '.join(names)})"
        )
    return path


def load_config(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """Loads ``path/to/experiment.py[:preset]``, applies overrides and locks the result.

    The file's ``get_config(arg)`` is called with the preset string (or with no argument when
    there is none). Its result, a full or partial config, is laid over :func:`base_config`;
    every key must exist there (except under ``data.task_options``). An empty ``spec`` gives
    :func:`base_config` itself.

    Precedence, lowest first: the base defaults, the preset of ``objective.algorithm``
    (`r1jax.algorithms.preset`, e.g. DAPO's ``clip_eps_high = 0.28``), the experiment file,
    the overrides. A key the file or an override sets keeps its value even when it equals the
    base default: ``objective.algorithm=dapo`` with ``objective.clip_eps_high=0.2`` trains
    with 0.2. The result holds the resolved values the run uses (what ``config.json``
    records).

    Args:
      spec: ``"experiments/name.py"`` or ``"experiments/name.py:preset"``, a bundled
        experiment's name with or without a preset (``"default:smoke"``, see
        :func:`experiment_path`), or ``""``.
      overrides: ``"key.sub=value"`` strings, applied in order after the file.

    Returns:
      A locked ``ConfigDict``.

    Raises:
      ConfigError: naming the file, the preset or the key that is wrong.

    Example:
      >>> load_config("", ["objective.algorithm=dapo"]).objective.algorithm
      'dapo'
    """
    file_values, source = _experiment_values(spec)
    # Precedence: base defaults < the algorithm's preset < the experiment file < the command
    # line. The algorithm is known only once the file and the overrides are read, so they are
    # read into a scratch config first, then laid over the base defaults and the preset.
    scratch = base_config()
    for leaf_path, value in file_values:
        _set_leaf(scratch, leaf_path, value, source)
    apply_overrides(scratch, overrides, source="override")
    algorithm = scratch.objective.algorithm
    try:
        preset_values = algorithms.preset(algorithm)
    except ValueError as error:
        raise ConfigError(f"{source or 'override'}: {error}") from None
    config = base_config()
    for key, value in preset_values.items():
        _set_leaf(config, key.split("."), value, f"preset of objective.algorithm={algorithm}")
    for leaf_path, value in file_values:
        _set_leaf(config, leaf_path, value, source)
    apply_overrides(config, overrides, source="override")
    _check_task_or_mixture(config, file_values, overrides, source)
    config.lock()
    return config


def _check_task_or_mixture(
    config: ml_collections.ConfigDict,
    file_values: list[tuple[list[str], Any]],
    overrides: Sequence[str],
    source: str,
) -> None:
    """``data.task`` (one task) and ``data.mixture`` (several) exclude each other."""
    if not config.data.mixture:
        return
    in_file = any(path == ["data", "task"] for path, _ in file_values)
    in_overrides = any(
        o.partition("=")[0].strip().removeprefix("--").removeprefix("config.") == "data.task"
        for o in overrides
    )
    if in_file or in_overrides:
        where = source if in_file else "an override"
        raise ConfigError(
            f"data.task={config.data.task!r} (set by {where}) and data.mixture "
            f"({', '.join(config.data.mixture.keys())}) exclude each other: data.task names the "
            "one task of a run, data.mixture the tasks of a mixed run (each entry's 'task' key "
            "names its task when it differs from the entry's name); set only one"
        )


def _experiment_values(spec: str) -> tuple[list[tuple[list[str], Any]], str]:
    """The ``(key path, value)`` leaves an experiment file's ``get_config`` sets, and the
    source name used in error messages; ``([], "")`` for an empty ``spec``."""
    if not spec:
        return [], ""
    name, _, preset = spec.partition(":")
    path = experiment_path(name)
    module = _load_experiment(path)
    takes_arg = bool(inspect.signature(module.get_config).parameters)
    if preset and not takes_arg:
        raise ConfigError(f"{path}: get_config() takes no argument, but preset {preset!r} given")
    try:
        loaded = module.get_config(preset or None) if takes_arg else module.get_config()
    except Exception as e:
        raise ConfigError(
            f"{path}: get_config({preset or None!r}) failed: {type(e).__name__}: {e}"
        ) from e
    if isinstance(loaded, ml_collections.ConfigDict):
        loaded = loaded.to_dict()
    if not isinstance(loaded, Mapping):
        raise ConfigError(f"{path}: get_config() returned {type(loaded).__name__}, not a config")
    return _leaves(loaded), f"{path}" + (f":{preset}" if preset else "")


# ----------------------------------------------------------------------------- command line


@dataclasses.dataclass(frozen=True)
class CommandLine:
    """What :func:`parse_command_line` read: the resolved config and the workdir."""

    config: ml_collections.ConfigDict
    workdir: str
    config_spec: str
    overrides: tuple[str, ...]


def parse_command_line(argv: Sequence[str], *, prog: str = "r1jax") -> CommandLine:
    """Parses ``--config path.py[:preset] --config.key=value ... --workdir DIR``.

    Overrides may be written ``--config.key=value`` or ``--config.key value``. Unknown flags
    and config errors exit with status 2 and a message, as argparse does.

    Args:
      argv: the arguments without the program name (``sys.argv[1:]``).
      prog: program name shown in usage messages.

    Example:
      >>> cli = parse_command_line(["--config.steps=3", "--workdir", "/tmp/run"])
      >>> cli.config.steps, cli.workdir
      (3, '/tmp/run')
    """
    parser = argparse.ArgumentParser(prog=prog, allow_abbrev=False)
    parser.add_argument(
        "--config",
        default="",
        help="experiment file path.py[:preset] or a bundled experiment name[:preset]",
    )
    parser.add_argument("--workdir", required=True, help="directory for checkpoints and logs")
    known, rest = parser.parse_known_args(list(argv))
    overrides = []
    i = 0
    while i < len(rest):
        arg = rest[i]
        if not arg.startswith("--config."):
            parser.error(f"unrecognized argument {arg!r} (overrides look like --config.key=value)")
        if "=" not in arg:
            if i + 1 >= len(rest):
                parser.error(f"{arg} needs a value")
            arg = f"{arg}={rest[i + 1]}"
            i += 1
        overrides.append(arg.removeprefix("--config."))
        i += 1
    try:
        config = load_config(known.config, overrides)
    except ConfigError as e:
        parser.error(str(e))
    return CommandLine(config, known.workdir, known.config, tuple(overrides))


# ----------------------------------------------------------------------------- export


def config_to_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """A plain nested dict of the config (tuples become lists), JSON-serialisable."""
    return json.loads(json.dumps(config.to_dict(), default=str))


def config_hash(
    config: ml_collections.ConfigDict, *, ignore: Sequence[str] = RESUMABLE_KEYS
) -> str:
    """A short stable hash of the config, leaving out ``ignore`` (top-level or dotted keys).

    Stored with checkpoints so a resume with a config that changes the training trajectory
    is caught. By default ``steps``, ``logging``, ``checkpoint``, ``eval`` and the device layout
    (``mesh``, ``sharding``, ``distributed``) may change.

    Example:
      >>> a, b = base_config(), base_config()
      >>> b.steps = 5
      >>> config_hash(a) == config_hash(b)
      True
    """
    tree = config_to_dict(config)
    for key in ignore:
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.get(part, {})
        node.pop(leaf, None)
    blob = json.dumps(tree, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def save_config(config: ml_collections.ConfigDict, workdir: str, name: str = "config.json") -> str:
    """Writes the resolved config as JSON to ``workdir/name`` and returns the path."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, name)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(config_to_dict(config), f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return path


def with_values(
    config: ml_collections.ConfigDict, values: Mapping[str, Any]
) -> ml_collections.ConfigDict:
    """A copy of ``config`` with dotted keys replaced; ``config`` itself is unchanged.

    A mapping value replaces a whole group (``{"data.task_options": {"digits": 3}}``). Used
    for the one-task views of a run with several tasks or evaluation sets: every reader of
    ``data.*`` / ``eval.*`` then works on a view unchanged.

    Raises:
      ConfigError: a key that does not exist, or a value of another type than the key's.

    Example:
      >>> view = with_values(base_config(), {"data.task": "kk", "eval.k": 16})
      >>> view.data.task, view.eval.k, base_config().data.task
      ('kk', 16, 'countdown')
    """
    view = copy.deepcopy(config)
    for key, value in values.items():
        *parents, leaf = key.split(".")
        try:
            node = _get_path(view, parents)
            current = node[leaf]
        except (KeyError, AttributeError, TypeError):
            raise ConfigError(f"with_values: unknown config key {key!r}") from None
        if isinstance(current, ml_collections.ConfigDict):
            value = ml_collections.ConfigDict(dict(value or {}))
        else:
            value = _check_type(current, value, key, "with_values")
        with node.unlocked():
            node[leaf] = value
    return view


def to_dataclass(cls: type, section: ml_collections.ConfigDict | Mapping, **overrides: Any) -> Any:
    """Builds the frozen dataclass ``cls`` from the matching keys of a config section.

    Keys of ``section`` that are not fields of ``cls`` are ignored, so one section can feed
    several dataclasses; ``overrides`` replace or add field values. Lists become tuples, so the
    result is hashable and can be a static ``jax.jit`` argument.

    Raises:
      ConfigError: a required field is neither in ``section`` nor in ``overrides``.

    Example:
      >>> @dataclasses.dataclass(frozen=True)
      ... class Clip:
      ...     clip_eps_low: float
      ...     clip_eps_high: float
      >>> to_dataclass(Clip, base_config().objective)
      Clip(clip_eps_low=0.2, clip_eps_high=0.2)
    """
    values = section.to_dict() if isinstance(section, ml_collections.ConfigDict) else section
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name in overrides:
            kwargs[field.name] = overrides[field.name]
        elif field.name in values:
            kwargs[field.name] = _to_tuples(values[field.name])
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(
                f"{cls.__name__}: field '{field.name}' is not in the config section "
                f"(keys: {', '.join(values)})"
            )
    return cls(**kwargs)
