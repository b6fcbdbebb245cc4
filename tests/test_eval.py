"""Tests for r1jax.eval (``python -m r1jax.eval``): the README's math command runs as written."""

import json
import re
import shlex
from pathlib import Path

import pytest

from r1jax import eval as eval_cli
from r1jax.data import partition
from r1jax.models import save_pretrained
from r1jax.tasks import multiplication
from tests.evaluate_fixtures import tiny_multiplication_model

README = Path(__file__).resolve().parents[1] / "README.md"
# The README's placeholders and what the test puts in their place.
MODEL_PLACEHOLDER, PROBLEMS_PLACEHOLDER = "RUN/export", "math500.jsonl"


def readme_eval_commands(task: str) -> list[str]:
    """Every ``python -m r1jax.eval ... --task TASK ...`` command of the README, from code
    blocks or inline code (which may wrap over lines), whitespace collapsed."""
    text = README.read_text()
    candidates = re.findall(r"`(python -m r1jax\.eval [^`]*)`", text)  # inline code
    in_block = False
    for line in text.replace("\\\n", " ").splitlines():  # code blocks, continuations joined
        in_block ^= line.startswith("```")
        if in_block:
            candidates.append(line)
    commands = {
        " ".join(candidate.split("#")[0].split())
        for candidate in candidates
        if candidate.lstrip().startswith("python -m r1jax.eval ")
    }
    return sorted(c for c in commands if re.search(rf"--task {task}(\s|$)", c))


def test_the_readme_shows_a_math_evaluation_of_a_problems_file():
    commands = readme_eval_commands("math")
    assert commands, "README.md has no `python -m r1jax.eval ... --task math` command"
    for command in commands:
        assert MODEL_PLACEHOLDER in command and f"--problems {PROBLEMS_PLACEHOLDER}" in command


@pytest.mark.parametrize("command", readme_eval_commands("math"))
def test_the_readme_math_evaluation_runs_as_written(command, tmp_path, capsys):
    config, params, tokenizer, _ = tiny_multiplication_model()
    model_dir = tmp_path / "run" / "export"
    save_pretrained(model_dir, config, params, tokenizer)  # a Hugging Face model directory
    problems = tmp_path / "math500.jsonl"
    rows = [
        {"question": "What is $1 + 1$?", "answer": "2"},
        {"question": "Simplify $\\frac{6}{4}$.", "answer": "\\frac{3}{2}"},
    ]
    problems.write_text("".join(json.dumps(row) + "\n" for row in rows))
    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "r1jax.eval"]
    substitutes = {MODEL_PLACEHOLDER: str(model_dir), PROBLEMS_PLACEHOLDER: str(problems)}
    argv = [substitutes.get(arg, arg) for arg in argv[3:]]  # only the paths change
    results = eval_cli.main(argv)
    assert results["num_problems"] == 2
    assert 0.0 <= results["pass@1"] <= 1.0
    assert str(model_dir) in capsys.readouterr().out


def _export_and_record_problems(tmp_path, monkeypatch) -> list[dict]:
    """Exports a tiny multiplication model to ``tmp_path/export``; the returned list collects
    every problem the CLI then evaluates."""
    config, params, tokenizer, _ = tiny_multiplication_model()
    save_pretrained(tmp_path / "export", config, params, tokenizer)
    seen = []
    evaluate = eval_cli.evaluate.evaluate

    def recording(params, model_config, tokenizer, problems, **kwargs):
        seen.extend(problems)
        return evaluate(params, model_config, tokenizer, problems, **kwargs)

    monkeypatch.setattr(eval_cli.evaluate, "evaluate", recording)
    return seen


def test_heldout_fraction_evaluates_only_held_out_problems(tmp_path, monkeypatch):
    """``--heldout-fraction 0.3``: every generated problem is on the held-out side of the
    split a run with ``data.heldout_fraction=0.3`` trains beside; a fraction of 1 is refused."""
    seen = _export_and_record_problems(tmp_path, monkeypatch)
    argv = ["--checkpoint", str(tmp_path / "export"), "--task", "multiplication"]
    argv += ["--num-problems", "6", "--k", "1", "--no-greedy", "--max-new-tokens", "4"]
    results = eval_cli.main([*argv, "--heldout-fraction", "0.3"])
    assert results["num_problems"] == 6 and len(seen) == 6
    assert all(partition.is_heldout(multiplication, p, 0.3) for p in seen)
    with pytest.raises(SystemExit, match="--heldout-fraction"):
        eval_cli.main([*argv, "--heldout-fraction", "1"])
    problems_file = tmp_path / "problems.jsonl"
    problems_file.write_text('{"question": "2 * 3", "answer": "6"}\n')
    with pytest.raises(SystemExit, match="--heldout-fraction splits generated problems"):
        eval_cli.main([*argv, "--problems", str(problems_file), "--heldout-fraction", "0.3"])


def test_distinct_evaluates_different_problems_and_refuses_more_than_exist(tmp_path, monkeypatch):
    """``--distinct``: the problems evaluated are all different (1-digit x 1-digit has under
    100, so 40 independent draws would repeat some); asking for more than exist is an error."""
    seen = _export_and_record_problems(tmp_path, monkeypatch)
    argv = ["--checkpoint", str(tmp_path / "export"), "--task", "multiplication"]
    argv += ["--task-option", "digits=1", "--task-option", "digits_b=1"]
    argv += ["--k", "1", "--no-greedy", "--max-new-tokens", "2"]
    eval_cli.main([*argv, "--num-problems", "40"])
    assert len({multiplication.problem_key(p) for p in seen}) < len(seen) == 40
    seen.clear()
    argv.append("--distinct")
    eval_cli.main([*argv, "--num-problems", "40"])
    assert len({multiplication.problem_key(p) for p in seen}) == len(seen) == 40
    with pytest.raises(SystemExit, match=r"--distinct: only \d+ distinct problems"):
        eval_cli.main([*argv, "--num-problems", "1000"])
