import threading
import time

import pytest

from r1jax.tasks import countdown
from r1jax.verifiers import VerifierPool, inprocess, verify_batch
from tests.verifiers import pool_helpers

ECHO = pool_helpers.misbehaving_verify


@pytest.fixture(scope="module")
def pool():
    pool = VerifierPool(2, timeout_seconds=1.0, preload=())
    try:
        yield pool
    finally:
        pool.close()


def test_pool_matches_in_process(pool):
    problems = [
        countdown.generate(__import__("numpy").random.default_rng([0, i])) for i in range(40)
    ]
    completions = [
        countdown.reference_completion(p) if i % 2 else "<answer>1 + 1</answer>"
        for i, p in enumerate(problems)
    ]
    pooled = pool.verify_batch("countdown", completions, problems)
    assert pooled == inprocess.verify_each("countdown", completions, problems)
    assert [v.correct for v in pooled] == [bool(i % 2) for i in range(40)]


def test_workers_hide_accelerators(pool):
    verdict = pool.verify_batch(ECHO, ["x"], [{"answer": "x"}])[0]
    assert verdict.detail == "cpu|"


def test_hanging_item_times_out_and_the_pool_keeps_working(pool):
    completions = ["a", "hang", "b", "c", "crash", "raise", "not a verdict", "d"]
    problems = [{"answer": c} for c in completions]
    start = time.monotonic()
    verdicts = pool.verify_batch(ECHO, completions, problems)
    elapsed = time.monotonic() - start
    reasons = [v.reason for v in verdicts]
    assert reasons == [
        "correct",
        "timeout",
        "correct",
        "correct",
        "error",
        "error",
        "error",
        "correct",
    ]
    assert all(v.score == 0.0 for v in verdicts if v.reason in ("timeout", "error"))
    assert "boom" in verdicts[5].detail
    assert elapsed < 20
    # the pool still works afterwards
    assert pool.verify_batch(ECHO, ["e"] * 5, [{"answer": "e"}] * 5)[0].correct


def test_async_batches_complete_independently(pool):
    first = pool.submit_batch(ECHO, ["a"] * 50, [{"answer": "a"}] * 50)
    second = pool.submit_batch(ECHO, ["b"] * 30, [{"answer": "x"}] * 30)
    assert [v.reason for v in second.result(timeout=30)] == ["wrong"] * 30
    assert all(v.correct for v in first.result(timeout=30))
    assert first.done() and second.done()
    assert pool.submit_batch(ECHO, [], []).result() == []


def test_submissions_from_several_threads(pool):
    results = {}

    def submit(index):
        results[index] = pool.verify_batch(ECHO, [str(index)] * 10, [{"answer": str(index)}] * 10)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(all(v.correct for v in results[i]) for i in range(4))


def test_bad_arguments_fail_in_the_caller(pool):
    with pytest.raises(ValueError, match="unknown task"):
        pool.submit_batch("nope", ["a"], [{}])
    with pytest.raises(ValueError, match="problems"):
        pool.submit_batch(ECHO, ["a", "b"], [{}])
    verdict = pool.verify_batch("countdown", ["<answer>1</answer>"], [{"target": 1}])[0]
    assert verdict.reason == "error" and "KeyError" in verdict.detail


def test_workers_are_recycled():
    with VerifierPool(
        1, timeout_seconds=5.0, max_tasks_per_worker=4, chunk_size=2, preload=()
    ) as pool:
        verdicts = pool.verify_batch(ECHO, ["a"] * 12, [{"answer": "a"}] * 12)
        assert all(v.correct for v in verdicts)
        assert pool.restarts == 0  # graceful retirements are not restarts
        assert pool.verify_batch(ECHO, ["a"], [{"answer": "a"}])[0].correct


def test_close_fails_unfinished_items_and_rejects_new_ones():
    pool = VerifierPool(1, timeout_seconds=30.0, preload=())
    handle = pool.submit_batch(ECHO, ["hang", "a"], [{"answer": "a"}] * 2)
    time.sleep(0.5)
    pool.close()
    assert [v.reason for v in handle.result(timeout=10)] == ["error", "error"]
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit_batch(ECHO, ["a"], [{"answer": "a"}])
    pool.close()  # idempotent


def test_verify_batch_in_process_and_with_a_temporary_pool():
    problems = [{"target": 6}, {"target": 7}]
    completions = ["<answer>6</answer>", "<answer>6</answer>"]
    local = verify_batch("multiplication", completions, problems, num_workers=0)
    assert [v.correct for v in local] == [True, False]
    assert verify_batch("multiplication", completions, problems, num_workers=1) == local
    broken = verify_batch("multiplication", ["<answer>6</answer>"], [{}], num_workers=0)
    assert broken[0].reason == "error"


def test_math_in_a_worker_uses_signal_timeouts():
    with VerifierPool(1, timeout_seconds=20.0) as pool:
        verdicts = pool.verify_batch(
            "math",
            [r"\boxed{(x+1)^2}", r"\boxed{9^{9^{9}}}", r"\boxed{3}"],
            [{"answer": "x^2+2x+1"}, {"answer": "5"}, {"answer": "3"}],
            timeout_seconds=1,
        )
    assert [v.reason for v in verdicts] == ["correct", "wrong", "correct"]


def test_a_hang_inside_a_chunk_is_isolated():
    completions = ["a", "b", "hang", "c", "d"]
    with VerifierPool(1, timeout_seconds=1.0, chunk_size=5, preload=()) as pool:
        verdicts = pool.verify_batch(ECHO, completions, [{"answer": c} for c in completions])
        assert [v.reason for v in verdicts] == [
            "correct",
            "correct",
            "timeout",
            "correct",
            "correct",
        ]
        assert pool.restarts >= 2
