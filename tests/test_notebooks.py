"""The Colab notebooks under experiments/notebooks run end to end (smoke presets)."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted(
    (Path(__file__).resolve().parents[1] / "experiments" / "notebooks").glob("*.ipynb")
)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_with_the_smoke_preset(path, tmp_path, monkeypatch):
    monkeypatch.setenv("R1JAX_NOTEBOOK_PRESET", "smoke")
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
