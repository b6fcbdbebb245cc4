"""An installed wheel (not the source checkout) finds and runs its bundled experiments."""

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "r1jax", "experiments")


def _run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, command))}\n{result.stdout}{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_a_wheel_runs_the_default_experiments_smoke_preset_outside_the_checkout(tmp_path):
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "notebooks")
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", "dist", "."],
         cwd=source)  # fmt: skip
    (wheel,) = glob.glob(str(source / "dist" / "r1jax-*.whl"))
    venv = tmp_path / "venv"  # sees jax & co. from this interpreter; r1jax only from the wheel
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)])
    python = str(venv / "bin" / "python")
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--no-input", wheel])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
    where = _run(
        [python, "-c", "import r1jax, r1jax.train as t; print(r1jax.__file__); "
         "print(t.default_experiment())"],
        cwd=elsewhere, env=env,
    ).split()  # fmt: skip
    site = str(venv / "lib")
    assert where[0].startswith(site), where  # the wheel's r1jax, not the checkout's
    assert where[1].startswith(site) and where[1].endswith("r1jax/experiments/default.py")
    output = _run(
        [python, "-m", "r1jax.train", "--config", "default:smoke", "--workdir", "run"],
        cwd=elsewhere, env=env,
    )  # fmt: skip
    assert '"final_step": 4' in output
    assert (elsewhere / "run" / "export" / "model.safetensors").exists()
