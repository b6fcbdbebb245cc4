"""Every RL algorithm of r1jax from one warm start, side by side, on the default experiment.

Command (on a 2-core CPU, 35 minutes for the 18 RL runs after the warm start's supervised
steps):

    python -m r1jax.compare experiments/comparisons/algorithms.py --workdir runs/compare

What it runs (`r1jax.compare`): the default experiment's warm start once (its supervised steps
on the ``tiny`` model from scratch; ``runs/compare/warm_start``), then for every row below and
each seed in ``SEEDS`` the same experiment started from that checkpoint
(``model.init_from``, ``sft.mode=none``) for ``STEPS`` RL steps of 8 prompts x 8 samples, and
an evaluation on the experiment's 500 held-out problems x 4 samples (temperature 0.6, top-p
0.95). The seed changes the RL run's sampling only; the warm start and the held-out problems
are shared. The table goes to ``runs/compare/comparison.md``.

Rows: the algorithm's preset under the default experiment's settings (lr 2e-4, no KL, no
reference, 128 new tokens), plus what the algorithm needs on this model, taken from its own
``:cpu`` recipe: DAPO's overlong ramp over the last 32 of the 128 tokens and its dynamic
sampling; PPO's critic (initialised from the policy, lr 1e-3, 4 mini-batches;
``experiments/orz_ppo.py``); iterative online DPO's lr 5e-5 and its reference moved to the
policy every 25 steps (``experiments/online_dpo_r1.py``); PRIME's
implicit PRM (lr 1e-4, β 0.05) and the frozen reference it scores against
(``experiments/prime.py``). This is a comparison to report, not
a tuned leaderboard: each algorithm runs with one setting, for a short budget.

Hardware: a 2-core CPU. The table in README ("Algorithms side by side") is the result of
commit dee331a, whose default experiment had a 900-step warm start at a constant lr and
evaluated on problems of another generator seed; the default experiment has changed since, so
a rerun gives other figures.
"""

EXPERIMENT = "experiments/default.py"
STEPS = 80
SEEDS = (0, 1)

ALGORITHMS = {
    "grpo": {"objective.algorithm": "grpo"},
    "dr_grpo": {"objective.algorithm": "dr_grpo", "objective.aggregation_constant": 128},
    "dapo": {
        "objective.algorithm": "dapo",
        "objective.dynamic_sampling.enabled": True,
        "rewards.overlong.cache_length": 32,
    },
    "reinforce_pp": {"objective.algorithm": "reinforce_pp"},
    "rloo": {"objective.algorithm": "rloo"},
    "ppo": {
        "objective.algorithm": "ppo",
        "optim.b2": 0.95,
        "optim.warmup_steps": 0,
        "critic.init": "policy",
        "critic.lr": 1e-3,
        "critic.lr_warmup_steps": 0,
        "critic.minibatches_per_step": 4,
    },
    "online_dpo": {
        "objective.algorithm": "iterative_dpo",
        "optim.lr": 5e-5,
        "reference.mode": "reset_every",
        "reference.reset_every": 25,
    },
    "raft": {"objective.algorithm": "raft", "objective.selection": "correct"},
    "prime": {
        "objective.algorithm": "prime",
        "reference.mode": "frozen",
        "prm.init": "policy",
        "prm.lr": 1e-4,
        "prm.grad_clip_norm": 10.0,
        "prm.beta": 0.05,
    },
}
