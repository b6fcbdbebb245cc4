"""The Colab notebooks under experiments/notebooks run end to end (smoke presets).

A notebook that loads a Hugging Face model (``R1JAX_NOTEBOOK_MODEL``, a hub id on Colab) gets a
tiny random local one with a tokenizer fit on Countdown prompts instead.
"""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted(
    (Path(__file__).resolve().parents[1] / "experiments" / "notebooks").glob("*.ipynb")
)


def write_tiny_model_with_tokenizer(path: Path) -> Path:
    """A random tiny Qwen2 model directory with a byte-level BPE tokenizer (no downloads)."""
    import numpy as np

    from r1jax.tasks import countdown
    from r1jax.tokenizer import Tokenizer
    from tests.models.hf_fixtures import write_tiny_hf_model

    rng = np.random.default_rng(0)
    texts = []
    for _ in range(200):
        problem = countdown.generate(rng, num_numbers=3, number_range=(1, 9), target_range=(1, 50))
        texts.append(countdown.prompt(problem, template="qwen_instruct"))
        texts.append(countdown.reference_completion(problem, rng=rng))
    tokenizer = Tokenizer.train(texts, vocab_size=400, min_frequency=2)
    vocab = -(-tokenizer.vocab_size // 64) * 64
    write_tiny_hf_model(path, "qwen2", vocab_size=vocab, max_position_embeddings=1024)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_with_the_smoke_preset(path, tmp_path, monkeypatch):
    monkeypatch.setenv("R1JAX_NOTEBOOK_PRESET", "smoke")
    if "R1JAX_NOTEBOOK_MODEL" in path.read_text():
        model = write_tiny_model_with_tokenizer(tmp_path / "model")
        monkeypatch.setenv("R1JAX_NOTEBOOK_MODEL", str(model))
    monkeypatch.setenv("R1JAX_NOTEBOOK_WORKDIR", str(tmp_path / "run"))
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    outputs = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "held-out after RL" in outputs
    assert (tmp_path / "run" / "metrics.jsonl").exists()
    assert os.listdir(tmp_path / "run")
