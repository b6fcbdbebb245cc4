import os
import subprocess
import sys

import numpy as np
import pytest

from r1jax import tasks
from r1jax.tasks import TASKS, countdown, knights_knaves, multiplication, resolve_task
from r1jax.verifiers import VerifierPool, verify, verify_batch
from tests.tasks import user_task

USER_TASK = "tests.tasks.user_task"


def test_registry_names_modules_and_aliases():
    assert TASKS["arithmetic"] is TASKS["multiplication"] is multiplication
    assert TASKS["kk"] is TASKS["knights_knaves"] is knights_knaves
    assert set(TASKS) == {
        "countdown", "multiplication", "arithmetic", "knights_knaves", "kk", "math", "format"
    }  # fmt: skip
    for name, task in TASKS.items():
        assert resolve_task(name) is task
        assert isinstance(task, tasks.Task), name


def test_verifiers_reexport_the_same_table():
    from r1jax import verifiers

    assert verifiers.TASKS is TASKS


def test_importing_tasks_imports_no_jax():
    code = "import sys, r1jax.tasks\nassert 'jax' not in sys.modules and 'flax' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_generated_tasks_implement_the_optional_parts():
    for name in ("countdown", "multiplication", "knights_knaves"):
        task = resolve_task(name, require=("generate", "prompt", "reference_completion"))
        assert isinstance(task, tasks.GeneratesProblems)
        assert isinstance(task, tasks.HasPrompts)
        assert isinstance(task, tasks.HasReferenceCompletions)


def test_import_path_resolves_a_user_task():
    assert resolve_task(USER_TASK) is user_task
    problem = user_task.generate(np.random.default_rng(0))
    assert verify(USER_TASK, user_task.reference_completion(problem), problem).correct
    assert not verify(user_task, "no", problem).correct


def test_errors_name_what_is_missing():
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        resolve_task("nope")
    with pytest.raises(ValueError, match="not an importable module"):
        resolve_task("tests.tasks.no_such_module")
    with pytest.raises(TypeError, match=r"'tests.tasks.incomplete_task' has no verify\(completion"):
        resolve_task("tests.tasks.incomplete_task")
    with pytest.raises(TypeError, match=r"'format' has no generate\(rng"):
        resolve_task("format", require=("generate",))
    with pytest.raises(TypeError, match=r"'format' has no reference_completion\(problem, rng\)"):
        resolve_task("format", require=("reference_completion",))
    with pytest.raises(ValueError, match="has no attribute 'missing'"):
        resolve_task(USER_TASK + ":missing")


def test_user_task_verifies_in_the_worker_pool():
    problems = [user_task.generate(np.random.default_rng(i)) for i in range(6)]
    completions = [
        user_task.reference_completion(p) if i % 2 else "wrong" for i, p in enumerate(problems)
    ]
    with VerifierPool(1, timeout_seconds=10, preload=()) as pool:
        by_path = pool.verify_batch(USER_TASK, completions, problems)
        by_module = pool.verify_batch(user_task, completions, problems)
    for verdicts in (by_path, by_module):
        assert [v.correct for v in verdicts] == [bool(i % 2) for i in range(6)]
        assert all(v.detail != f"pid={os.getpid()}" for v in verdicts)  # verified elsewhere
    in_process = verify_batch(USER_TASK, completions, problems, num_workers=0)
    assert [v.correct for v in in_process] == [v.correct for v in by_path]


def test_countdown_still_verifies_by_name_and_module():
    problem = countdown.generate(np.random.default_rng(3))
    text = countdown.reference_completion(problem)
    assert verify("countdown", text, problem) == verify(countdown, text, problem)
