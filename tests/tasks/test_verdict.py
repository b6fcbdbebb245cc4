import json
import pickle

import pytest

from r1jax.tasks import verdict as verdict_lib
from r1jax.tasks.verdict import Verdict


def test_verdict_is_frozen_and_serialisable():
    verdict = Verdict(correct=True, well_formed=True, reason="correct", score=1.0, answer="4")
    assert pickle.loads(pickle.dumps(verdict)) == verdict
    assert json.loads(json.dumps(verdict.to_dict()))["score"] == 1.0
    with pytest.raises(AttributeError):
        verdict.score = 0.0


def test_reason_vocabulary_is_closed():
    with pytest.raises(ValueError, match="reason"):
        Verdict(correct=False, well_formed=False, reason="nope", score=0.0)
    assert set(verdict_lib.REASONS) == {
        "correct", "wrong", "no_answer", "unparseable", "bad_format", "timeout", "error",
    }  # fmt: skip


def test_failure_truncates_detail():
    verdict = Verdict.failure("error", "x" * 10_000)
    assert verdict.score == 0.0 and not verdict.correct
    assert len(verdict.detail) <= verdict_lib.MAX_DETAIL_CHARS
