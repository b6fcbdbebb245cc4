"""Tests for r1jax.export: a training checkpoint's policy as a Hugging Face directory."""

import shutil
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from etils import epath

from r1jax import config as config_lib
from r1jax import export, train
from r1jax.models import forward, load_pretrained
from r1jax.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[1]
SMOKE = f"{ROOT / 'experiments' / 'default.py'}:smoke"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Two supervised steps of the smoke run, with a frozen reference in the train state."""
    path = tmp_path_factory.mktemp("run")
    config = config_lib.load_config(
        SMOKE,
        [
            "steps=0",
            "eval.num_problems=0",
            "checkpoint.keep=3",
            "objective.kl_coef=0.01",
            "reference.mode=frozen",
            "model.vocab_multiple=64",  # padding rows the export must rebuild
        ],
    )
    assert train.run(config, str(path), devices=jax.devices()[:1])["final_step"] == 2
    return path


def saved_tree(workdir, step):
    """The whole saved train state, read without r1jax.export."""
    item = epath.Path(workdir / "checkpoints" / str(step) / "train_state")
    return ocp.StandardCheckpointHandler().restore(item)


def assert_same_params(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_export_writes_the_checkpoint_policy_exactly(workdir, tmp_path, capsys):
    out = export.main([str(workdir), "--step", "1", "--out", str(tmp_path / "step1")])
    assert out == str(tmp_path / "step1")
    assert str(tmp_path / "step1") in capsys.readouterr().out
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (tmp_path / "step1" / name).is_file(), name
    model_config, params = load_pretrained(out)
    assert model_config.vocab_size % 64 == 0
    assert model_config.vocab_size > Tokenizer.from_pretrained(out).vocab_size
    first = saved_tree(workdir, 1)
    assert "reference" in first and "opt_state" in first  # only the policy was exported
    assert_same_params(params, first["policy"])
    with pytest.raises(AssertionError):  # step 2 is another policy (a supervised update later)
        assert_same_params(params, saved_tree(workdir, 2)["policy"])

    newest = export.export(str(workdir))  # no step: the newest checkpoint
    assert newest == str(workdir / "export_step_2")
    _, params = load_pretrained(newest)
    assert_same_params(params, saved_tree(workdir, 2)["policy"])
    _, final = load_pretrained(workdir / "export")  # what the trainer exported at the end
    assert_same_params(params, final)


def test_only_the_policy_is_read(workdir, monkeypatch):
    restored_items = []
    original = ocp.PyTreeCheckpointHandler.restore

    def spy(self, directory, *args, **kwargs):
        result = original(self, directory, *args, **kwargs)
        restored_items.append(sorted(result))
        return result

    monkeypatch.setattr(ocp.PyTreeCheckpointHandler, "restore", spy)
    config = export.read_run_config(str(workdir))
    model_config, _ = export.model_and_tokenizer(str(workdir), config)
    step, policy = export.restore_policy(str(workdir), model_config, step=1)
    assert step == 1 and restored_items == [["policy"]]
    assert_same_params(policy, saved_tree(workdir, 1)["policy"])


@pytest.mark.torch_reference
def test_transformers_loads_the_export(workdir, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    out = export.export(str(workdir), step=2, out=str(tmp_path / "hf"))
    model = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    ids = tokenizer("What is 123 * 4?")["input_ids"]
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits.numpy()
    config, params = load_pretrained(out)
    tokens = np.array([ids], np.int32)
    logits, _ = forward(params, tokens, np.arange(len(ids), dtype=np.int32)[None], config)
    np.testing.assert_allclose(np.asarray(logits), expected, atol=2e-4, rtol=2e-4)


def test_export_errors_name_the_problem(workdir, tmp_path):
    with pytest.raises(SystemExit, match=r"no config\.json"):
        export.main([str(tmp_path)])
    with pytest.raises(SystemExit, match="no such directory"):
        export.main([str(tmp_path / "missing")])
    with pytest.raises(SystemExit, match=r"no checkpoint for step 7 \(have \[1, 2\]\)"):
        export.main([str(workdir), "--step", "7"])

    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(workdir / "config.json", empty / "config.json")
    shutil.copytree(workdir / "tokenizer", empty / "tokenizer")
    with pytest.raises(SystemExit, match="no checkpoints directory"):
        export.main([str(empty)])
    (empty / "checkpoints").mkdir()
    with pytest.raises(SystemExit, match="no checkpoint"):
        export.main([str(empty)])

    corrupt = tmp_path / "corrupt"
    shutil.copytree(workdir, corrupt)
    for path in (corrupt / "checkpoints" / "2" / "train_state").rglob("*"):
        if path.is_file():
            path.write_bytes(b"garbage")
    with pytest.raises(SystemExit, match=r"checkpoints/2/train_state.* unreadable"):
        export.main([str(corrupt), "--out", str(tmp_path / "never")])
    assert not (tmp_path / "never").exists()


def test_a_checkpoint_of_another_model_is_refused(workdir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(workdir, other)
    config = (other / "config.json").read_text().replace('"tiny"', '"small"')
    (other / "config.json").write_text(config)
    with pytest.raises(export.ExportError, match="does not match the model"):
        export.export(str(other))
