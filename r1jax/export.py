"""``python -m r1jax.export WORKDIR [--step N] [--out DIR]``: a checkpoint as a Hugging Face model.

Reads the policy of the newest (or ``--step``) checkpoint of a training workdir and writes a
Hugging Face directory (``config.json``, safetensors, tokenizer files) with
`r1jax.models.save_pretrained`, so a run can be evaluated (``python -m r1jax.eval``), served or
loaded with transformers at any step, not only at the end of training (where the trainer writes
``WORKDIR/export`` itself).

How the policy is found: the workdir's ``config.json`` (written by `r1jax.train.run`) names the
model (a preset trained from scratch, sized to the tokenizer, or a Hugging Face directory) and
the tokenizer (``tokenizer.path``, the model directory, or ``WORKDIR/tokenizer`` for presets).
The checkpoint's ``train_state`` item is read with orbax's partial restore: only the ``policy``
subtree is read from disk, so neither the optimizer state nor the reference is built or loaded.
Its shapes and dtypes are checked against the model the config describes before any array is
read. A LoRA run (``lora.rank > 0``) checkpoints only its adapters: they are read the same way,
the frozen base is rebuilt as the run built it (the preset's init from the run's seed, the
Hugging Face directory, or the ``model.init_from`` source, in ``lora.base_dtype``) and the
export holds the merged weights ``W + (alpha / r) A B``.

Example:

    python -m r1jax.export runs/default --step 900 --out runs/default/export_sft
    python -m r1jax.eval --checkpoint runs/default/export_sft --task multiplication

Errors (no workdir config, no checkpoint, a missing step, a corrupt or mismatching checkpoint)
raise `ExportError` naming the path; the command line prints the message and exits with
status 1.

Not here: saving and resuming train states (`r1jax.checkpointing`), the safetensors layout
(`r1jax.models.hf`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import jax
from etils import epath

from r1jax import build, checkpointing
from r1jax.models import (
    MODEL_PRESETS,
    ModelConfig,
    abstract_params,
    init_params,
    load_pretrained,
    save_pretrained,
)
from r1jax.models import lora as lora_lib
from r1jax.tokenizer import Tokenizer

# Mirrors the trainer: model names that are presets trained from scratch, not HF directories.
POLICY = "policy"


class ExportError(RuntimeError):
    """The workdir or its checkpoint cannot be exported; the message names the path."""


def _short(error: BaseException, limit: int = 300) -> str:
    text = f"{type(error).__name__}: {error}".replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + " ..."


def read_run_config(workdir: str) -> dict[str, Any]:
    """The resolved config a training run saved as ``WORKDIR/config.json``, as a dict."""
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise ExportError(f"{workdir}: no config.json; not a training workdir of r1jax.train")
    try:
        with open(path) as f:
            config = json.load(f)
        config["model"]["name"], config["tokenizer"]["path"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ExportError(f"{path}: not a readable r1jax config ({_short(error)})") from None
    return config


def model_and_tokenizer(workdir: str, config: dict[str, Any]) -> tuple[ModelConfig, Tokenizer]:
    """The `ModelConfig` and tokenizer that the run's config describes (as `train.run` builds
    them), without reading any weights."""
    model, tokenizer_path = config["model"], config["tokenizer"]["path"]
    name = model["name"]
    if tokenizer_path:
        directory = tokenizer_path
    elif name in MODEL_PRESETS:
        directory = os.path.join(workdir, "tokenizer")
    else:
        directory = name = build.model_directory(name)
    if not os.path.isfile(os.path.join(directory, "tokenizer.json")):
        raise ExportError(f"no tokenizer.json in {directory} (the run's tokenizer)")
    tokenizer = Tokenizer.from_pretrained(directory)
    dtype = model.get("dtype", "float32")
    if name in MODEL_PRESETS:
        model_config = ModelConfig.from_scratch(
            name,
            tokenizer.vocab_size,
            vocab_multiple=model.get("vocab_multiple", 1),
            dtype=dtype,
            param_dtype=model.get("param_dtype", "float32"),
        )
    else:
        path = os.path.join(name, "config.json")
        try:
            with open(path) as f:
                hf_config = json.load(f)
            param_dtype = model.get("param_dtype", dtype)  # the trained (master) weights' dtype
            model_config = ModelConfig.from_hf_config(
                hf_config, dtype=dtype, param_dtype=param_dtype
            )
        except (OSError, ValueError) as error:
            raise ExportError(
                f"{path}: cannot read the run's model config ({_short(error)})"
            ) from None
    return model_config, tokenizer


def checkpoint_steps(workdir: str) -> list[int]:
    """Steps with a finished checkpoint under ``WORKDIR/checkpoints``, ascending."""
    directory = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(directory):
        raise ExportError(f"{workdir}: no checkpoints directory (no checkpoint was saved)")
    with checkpointing.Checkpointer(directory, async_save=False) as checkpointer:
        return checkpointer.all_steps()


def lora_settings(config: dict[str, Any]) -> lora_lib.LoraConfig | None:
    """The run's `r1jax.models.lora.LoraConfig`, or None for a full fine-tuning run."""
    if not config.get("lora", {}).get("rank", 0):
        return None
    import ml_collections

    from r1jax.learner import from_config

    return from_config.lora_config(ml_collections.ConfigDict(config))


def lora_base(workdir: str, config: dict[str, Any], model_config: ModelConfig) -> Any:
    """The frozen base of a LoRA run, rebuilt as `r1jax.train` built it (before the cast to
    ``lora.base_dtype``): the ``model.init_from`` source, the preset's init from the run's
    seed, or the Hugging Face directory."""
    from r1jax.train import INIT_STREAM

    model = config["model"]
    dtypes = dict(dtype=model_config.dtype, param_dtype=model_config.param_dtype)
    source = model.get("init_from", "")
    if source and os.path.isdir(os.path.join(source, "checkpoints")):
        return restore_policy(source, model_config)[1]
    if source:
        return load_pretrained(source, **dtypes)[1]
    if model["name"] in MODEL_PRESETS:
        key = jax.random.fold_in(jax.random.key(config.get("seed", 0)), INIT_STREAM)
        return init_params(model_config, key)
    return load_pretrained(build.model_directory(model["name"]), **dtypes)[1]


def restore_policy(
    workdir: str, model_config: ModelConfig, *, step: int | None = None, merge: bool = True
) -> tuple[int, Any]:
    """Reads only the policy params of a checkpoint onto the default device.

    For a LoRA run the checkpoint's policy is the adapters; the result is the merged params
    (`lora_base` plus the adapters, in ``model_config.params_dtype``), or with ``merge=False``
    the adapters as saved.

    Args:
      workdir: the training workdir.
      model_config: the policy's config (its abstract tree is checked against the checkpoint).
      step: checkpoint step; the newest when None.
      merge: LoRA runs: merge the adapters into the rebuilt base.

    Returns:
      ``(step, policy params)`` with host-readable ``jax.Array`` leaves.

    Raises:
      ExportError: no checkpoint, no such step, unreadable files, or a policy whose shapes or
        dtypes differ from ``model_config``'s.
    """
    import orbax.checkpoint as ocp

    steps = checkpoint_steps(workdir)
    directory = os.path.join(workdir, "checkpoints")
    if not steps:
        raise ExportError(f"{directory}: no checkpoint")
    if step is None:
        step = steps[-1]
    elif step not in steps:
        raise ExportError(f"{directory}: no checkpoint for step {step} (have {steps})")
    item = os.path.join(directory, str(step), checkpointing.TRAIN_STATE)
    handler = ocp.PyTreeCheckpointHandler()
    try:
        metadata = handler.metadata(epath.Path(item))
        tree = getattr(metadata, "tree", metadata)
        saved_policy = tree[POLICY]
    except Exception as error:  # orbax raises many types for damaged files
        raise ExportError(f"checkpoint {item} is unreadable: {_short(error)}") from None
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    run_config = read_run_config(workdir)
    lora = lora_settings(run_config)
    if lora is None:
        saved_tree = abstract_params(model_config)
    else:
        saved_tree = lora_lib.abstract_adapters(model_config, lora)
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), saved_tree
    )
    problems = checkpointing.compare_tree_to_metadata(abstract, saved_policy)
    if problems:
        raise ExportError(
            f"checkpoint {item}: the policy does not match the model in the workdir's "
            "config.json: " + "; ".join(problems)
        )
    restore_args = jax.tree.map(lambda _: ocp.ArrayRestoreArgs(sharding=device), abstract)
    args = ocp.args.PyTreeRestore(
        item={POLICY: abstract}, restore_args={POLICY: restore_args}, partial_restore=True
    )
    try:
        restored = handler.restore(epath.Path(item), args=args)
        policy = restored[POLICY]
        jax.block_until_ready(policy)
    except Exception as error:
        raise ExportError(
            f"checkpoint {item}: the policy could not be read: {_short(error)}"
        ) from None
    finally:
        handler.close()
    if lora is not None and merge:
        base = lora_lib.cast_base(lora_base(workdir, run_config, model_config), lora)
        policy = lora_lib.merge(base, policy, lora, dtype=model_config.params_dtype)
    return step, policy


def export(workdir: str, *, step: int | None = None, out: str | None = None) -> str:
    """Writes the policy of a checkpoint as a Hugging Face directory and returns its path.

    Args:
      workdir: the training workdir (``config.json``, ``checkpoints/``, maybe ``tokenizer/``).
      step: checkpoint step; the newest when None.
      out: output directory; ``WORKDIR/export_step_<step>`` when None.

    Returns:
      The output directory (``config.json``, ``model.safetensors``, tokenizer files).

    Raises:
      ExportError: see `restore_policy`, or a workdir without a config or tokenizer.
    """
    workdir = os.path.abspath(os.fspath(workdir))
    if not os.path.isdir(workdir):
        raise ExportError(f"{workdir}: no such directory")
    config = read_run_config(workdir)
    model_config, tokenizer = model_and_tokenizer(workdir, config)
    step, policy = restore_policy(workdir, model_config, step=step)
    out = os.path.abspath(out or os.path.join(workdir, f"export_step_{step}"))
    save_pretrained(out, model_config, jax.device_get(policy), tokenizer)
    return out


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(
        prog="python -m r1jax.export", description=__doc__.split("\n")[0]
    )
    parser.add_argument("workdir", help="training workdir (config.json + checkpoints/)")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (newest)")
    parser.add_argument("--out", default=None, help="output dir (WORKDIR/export_step_N)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        out = export(args.workdir, step=args.step, out=args.out)
    except ExportError as error:
        raise SystemExit(f"python -m r1jax.export: {error}") from None
    print(f"r1jax: exported {args.workdir} to {out}", flush=True)
    return out


if __name__ == "__main__":
    main()
