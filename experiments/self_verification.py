"""Self-verification that RL amplifies: the default experiment with a warm start that sometimes
checks its own answer.

Command:

    python -m r1jax.train --config experiments/self_verification.py --workdir runs/self_verification
    python -m r1jax.plot runs/self_verification     # reflection rate and response length

What it shows: oat-zero's observation (repo sail-sg/oat-zero, README "There May Not be Aha
Moment in R1-Zero-like Training"): the self-reflection behaviour is already in the base model
at step 0, and RL does not create it but raises how often it is used, because the responses
that check their answer earn more reward.

Recipe: the default experiment (``experiments/default.py``: the ``tiny`` model from scratch,
3-digit x 1-digit multiplication, a 1,200-step cosine warm start, 160 Dr. GRPO steps of
8 prompts x 8 samples, 500 hash-held-out evaluation problems x 4 samples) with two changes:

- the warm start's traces are 35% ``verify`` and 65% direct answers
  (``sft.source=reference:verify=0.35,direct=0.65``). A ``verify`` trace
  (`r1jax.tasks.multiplication.reference_completion`) states an answer first, as a direct
  guess would (half the time a near miss, one digit off), then checks it after "Hmm, wait, let
  me check:" by working the product out digit by digit and ends with "X is right." or "X is
  wrong, so the answer is Y.";
- at most 192 new tokens (a ``verify`` response is 131-162 tokens).

The warm-started model checks its answer in about a quarter of its samples and guesses in the
rest; the checked answers are right far more often, so RL moves the policy to checking. The
reflection metrics count the samples with a self-reflection keyword ("wait", "check", ...:
``logging.reflection_keywords``): ``rollout/reflect_rate`` at every logged RL step,
``eval/reflect_rate`` in both evaluations.

Measured on the 2-core CPU (an Intel Xeon KVM guest; jax float32), one run at a time,
``--config.seed=N --config.data.seed=N``; evaluation reflect rate and pass@1 / pass@4 in %:

    seed  after SFT: reflect, pass@1 / pass@4   after RL: reflect, pass@1 / pass@4   wall time
    0     23.5, 32.8 / 59.8                    100.0, 78.6 / 83.2                   17 min 39 s
    1     23.1, 48.3 / 77.6                    100.0, 91.0 / 96.6                   17 min 54 s
    2     22.9, 38.8 / 67.8                    100.0, 86.0 / 93.0                   18 min 51 s

(reflect +76.5 / +76.9 / +77.1, pass@1 +45.8 / +42.7 / +47.2; run as the default experiment
with ``--config.sft.source=reference:verify=0.35,direct=0.65
--config.sampling.max_new_tokens=192``, the same config key for key, code of commit 239ca47,
2026-12-06, in a slow hour of the shared machine: warm-start steps 0.62-0.76 s against 0.41-0.49 s
in a normal one; seeds 0 and 1 first ran beside benchmarks and tests of other work, 20 min
24 s and 21 min 20 s; their times here are their second runs, alone, with this file at commits
45bdd1b and 61954e1, which gave the same evaluations to the last digit.)

Expected: the reflect rate rises from about 23% to all samples and pass@1 by 40-50 points, to
78-91%, in 18-19 minutes in a slow hour like the one above; in a normal hour an estimate
(not measured) is 14-15 minutes: 1,200 warm-start steps at the default experiment's 0.41-0.49 s,
160 RL steps at these runs' 1.6-1.75 s, and the two evaluations.

Presets: ``:smoke`` (the default experiment's smoke preset with this warm start; used by the
tests).
"""

import importlib.util
import os


def _default_experiment():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default.py")
    spec = importlib.util.spec_from_file_location("r1jax_default_experiment", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def get_config(arg=None):
    if arg not in (None, "smoke"):
        raise ValueError(f"unknown preset {arg!r}; known: smoke")
    c = _default_experiment().get_config(arg)
    c.sft.source = "reference:verify=0.35,direct=0.65"
    if arg is None:
        c.sampling.max_new_tokens = 192
    return c
