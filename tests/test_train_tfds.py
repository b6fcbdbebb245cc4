"""r1jax.train on a ``data.source = "tfds"`` dataset, evaluated with s1 budget forcing."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest

pytest.importorskip("tensorflow_datasets")

from r1jax import config as config_lib
from r1jax import metrics, train
from r1jax.data import tfds_builder
from r1jax.tasks import multiplication
from r1jax.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[1]
SMOKE = f"{ROOT / 'experiments' / 'default.py'}:smoke"


def _write_rows(path: Path, seed: int, count: int) -> None:
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        problem = multiplication.generate(rng, digits=3, digits_b=1, distribution="exact_digits")
        question = f"{problem['a']} * {problem['b']}"
        rows.append({**problem, "problem": question, "answer": problem["target"], "n": index})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """``<data_dir>/products``: 8 train and 4 test multiplication problems as ArrayRecords."""
    root = tmp_path_factory.mktemp("tfds")
    _write_rows(root / "train.jsonl", seed=0, count=8)
    _write_rows(root / "test.jsonl", seed=1, count=4)
    tfds_builder.build_array_record_dataset(
        name="products",
        split_files={"train": [root / "train.jsonl"], "test": [root / "test.jsonl"]},
        data_dir=root / "data",
        fields={"question": "problem", "answer": "answer"},
    )
    return root / "data" / "products"


def test_tfds_source_trains_and_evaluates_with_budget_forcing(dataset, tmp_path):
    config = config_lib.load_config(
        SMOKE,
        [
            "data.source=tfds",
            "data.heldout_fraction=0",  # a file source holds out by eval.path
            f"data.path={dataset}",
            "sft.mode=none",
            "eval.num_problems=4",
            "eval.greedy=false",  # the k samples alone: two budget-forcing phases to compile
            "eval.budget_forcing.mode=cap",
            "eval.budget_forcing.thinking_budget=6",
            "eval.budget_forcing.answer_reserve=4",
            "logging.console=false",
        ],
    )
    summary = train.run(config, str(tmp_path), devices=jax.devices()[:1])
    assert summary["final_step"] == 2 and summary["stopped"] == "completed"
    final = summary["eval_final"]
    assert final["num_problems"] == 4  # the dataset's test split (eval.split)
    for name in ("pass@1", "thinking_length", "capped_fraction", "ignores_per_sample"):
        assert name in final, name
    assert 0.0 <= final["capped_fraction"] <= 1.0
    assert final["ignores_per_sample"] == 0.0  # cap mode never replaces an end of thinking
    end_of_thinking = Tokenizer.from_pretrained(str(tmp_path / "tokenizer")).encode("</think>")
    assert final["thinking_length"] <= 6 + len(end_of_thinking)
    logged = metrics.read_metrics(str(tmp_path))
    assert [r["step"] for r in logged if "accuracy" in r] == [1, 2]
    assert logged[-1]["eval/capped_fraction"] == pytest.approx(final["capped_fraction"])
    # The evaluated prompts are the test split's problems.
    rows = [json.loads(line) for line in (dataset.parent.parent / "test.jsonl").open()]
    (record,) = [r for r in metrics.read_samples(str(tmp_path)) if "eval_examples" in r]
    prompts = [example["prompt"] for example in json.loads(record["eval_examples"])]
    assert all(f"{row['a']} * {row['b']}" in prompt for row, prompt in zip(rows, prompts))
