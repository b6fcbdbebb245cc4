"""The step benchmark's workload run by TRL's ``GRPOTrainer``, for a side-by-side comparison.

``python -m r1jax.bench step --vs-trl`` calls `measure`: it writes the r1jax params as a
Hugging Face directory (`r1jax.models.save_pretrained`, float32) next to the prompts' token ids,
then runs ``python -m r1jax.bench.trl_step`` in a subprocess, so TRL's peak resident set size
and torch threads do not mix with the r1jax process; the child prints one JSON object.

The child trains with TRL's GRPO on the same workload as `r1jax.bench.step`: the same ``P``
prompts of ``Tp`` token ids, ``G = --samples`` completions each, exactly ``T`` new tokens
(the tokenizer's end-of-sequence id lies outside the model's vocabulary, so no row stops early
and every token of the vocabulary can be sampled), temperature 1 with no top-k / top-p,
``loss_type="grpo"`` (sequence mean of token means, r1jax's default aggregation), a k3 KL term
against a frozen reference without TRL's importance-sampling correction of the KL, AdamW
(torch's fused one, TRL's default; learning rate 1e-6, constant, no weight decay, global-norm
clipping at 1), one optimizer update per ``P * G`` completions, float32, no gradient
checkpointing unless ``--remat``. Prompts reach TRL as text: a word-level tokenizer maps token
id ``i`` to the word ``t{i}``, so each prompt text tokenizes back to exactly its ids. The reward is the multiplication verifier on the
decoded completion (all zero for random weights, as on the r1jax side). Each step is timed
from one ``on_step_end`` to the next (after one warm-up step), and generation separately.

Nothing here is imported by r1jax itself; TRL is not a dependency (``pip install trl`` to
measure it). This module imports neither jax nor torch at import time: `measure` loads
`r1jax.models` (jax) in the parent, and `main` loads torch and TRL in the child.
"""

import argparse
import dataclasses
import importlib.metadata
import importlib.util
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from r1jax.tasks import multiplication

PROMPTS_FILE = "prompt_ids.json"
EOS_TOKEN = "<eos>"


def trl_version() -> str | None:
    """The installed TRL version, or None when ``import trl`` would fail (TRL is not imported).

    Example:
      >>> version = trl_version()
      >>> version is None or isinstance(version, str)
      True
    """
    try:
        spec = importlib.util.find_spec("trl")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    try:
        return importlib.metadata.version("trl")
    except importlib.metadata.PackageNotFoundError:
        return None


def measure(
    model_config: Any,
    params: Any,
    prompt_ids: list[list[int]],
    *,
    samples: int,
    new_tokens: int,
    kl_coef: float,
    repeats: int,
    micro_batch_size: int = 0,
    remat: bool = False,
    seed: int = 0,
    timeout_seconds: float = 3600.0,
) -> dict:
    """Times TRL's ``GRPOTrainer`` on ``params`` and ``prompt_ids`` in a subprocess.

    Args:
      model_config: the r1jax `ModelConfig` of ``params``; TRL gets float32 weights whatever
        its ``dtype``.
      params: the r1jax params pytree to start from.
      prompt_ids: ``P`` lists of ``Tp`` token ids in ``[1, V)``.
      samples: ``G``, completions per prompt.
      new_tokens: ``T``, exactly this many tokens per completion.
      kl_coef: ``β`` of the k3 KL term.
      repeats: timed steps after one warm-up step (the median is reported).
      micro_batch_size: rows per gradient-accumulation micro-batch; ``0`` = all ``P * G``.
      remat: gradient checkpointing in TRL (r1jax's ``--remat``).
      seed: TRL's seed.
      timeout_seconds: the child is killed after this long.

    Returns:
      The child's JSON object (see `run_trl`).

    Raises:
      RuntimeError: the child failed or printed no JSON (its stderr's end is in the message).
    """
    from r1jax.models import save_pretrained  # here, not at the top: the child needs no jax

    float32_config = dataclasses.replace(model_config, dtype="float32", param_dtype="float32")
    with tempfile.TemporaryDirectory(prefix="r1jax-trl-step-") as directory:
        save_pretrained(directory, float32_config, params)
        Path(directory, PROMPTS_FILE).write_text(json.dumps(prompt_ids))
        command = [
            sys.executable,
            "-m",
            "r1jax.bench.trl_step",
            "--model-dir",
            directory,
            "--samples",
            str(samples),
            "--new-tokens",
            str(new_tokens),
            "--kl-coef",
            str(kl_coef),
            "--repeats",
            str(repeats),
            "--micro-batch-size",
            str(micro_batch_size),
            "--seed",
            str(seed),
            *(["--remat"] if remat else []),
        ]
        package_root = str(Path(__file__).resolve().parents[2])  # the child imports this r1jax
        python_path = [package_root, *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(python_path),
            "TOKENIZERS_PARALLELISM": "false",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_VERBOSITY": "error",
            "WANDB_DISABLED": "true",
        }
        completed = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=timeout_seconds, check=False
        )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(
            f"the TRL benchmark ({' '.join(command[1:3])}) failed with exit code "
            f"{completed.returncode}:\n{completed.stderr[-3000:]}"
        )
    return json.loads(lines[-1])


def _tokenizer(vocab_size: int) -> Any:
    """A word-level tokenizer mapping id ``i < V`` to ``t{i}``; ``<eos>`` is id ``V`` (unsampled)."""
    import tokenizers
    from tokenizers import models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(vocab_size)}
    vocab[EOS_TOKEN] = vocab_size
    backend = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token=EOS_TOKEN))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=EOS_TOKEN, pad_token="t0")


def _peak_rss_bytes() -> int:
    """This process's peak resident set size.

    On Linux, ``VmHWM`` of ``/proc/self/status``: ``ru_maxrss`` would carry over the parent's
    peak across ``fork`` + ``exec``, so the child would report r1jax's memory.
    """
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is KiB on Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # "VmHWM:  123456 kB"
    raise RuntimeError("/proc/self/status has no VmHWM line")


def run_trl(args: argparse.Namespace) -> dict:
    """Runs ``--repeats + 1`` GRPO steps with TRL and returns their median timings.

    Returns:
      ``trl_version``, ``total_seconds`` and ``generate_seconds`` (medians over the timed
      steps; ``update_seconds`` is the rest: rewards, reference log-probs, loss, backward,
      AdamW), ``first_step_seconds``, ``peak_memory_gib`` (this process's peak RSS),
      ``completions_per_step`` and ``completion_lengths`` (the distinct lengths TRL produced),
      ``threads``, ``model_dtype``, ``has_reference`` and the generation settings TRL used.
    """
    import datasets
    import torch
    import transformers
    import trl

    torch.set_num_threads(os.cpu_count() or 1)
    model_dir = Path(args.model_dir)
    prompt_ids = json.loads((model_dir / PROMPTS_FILE).read_text())
    vocab_size = json.loads((model_dir / "config.json").read_text())["vocab_size"]
    tokenizer = _tokenizer(vocab_size)
    prompts = [" ".join(f"t{i}" for i in ids) for ids in prompt_ids]
    for row, (text, ids) in enumerate(zip(prompts, prompt_ids, strict=True)):
        if not all(0 <= i < vocab_size for i in ids) or tokenizer(text)["input_ids"] != ids:
            raise ValueError(f"{PROMPTS_FILE} row {row}: token ids must lie in [0, {vocab_size})")
    targets = [sum(ids) for ids in prompt_ids]  # any integer target: random text never matches
    dataset = datasets.Dataset.from_dict({"prompt": prompts, "target": targets})

    rows = len(prompts) * args.samples
    micro_batch = args.micro_batch_size or rows
    if rows % micro_batch:
        raise ValueError(f"--micro-batch-size {micro_batch} must divide P * G = {rows}")
    lengths_per_step: list[list[int]] = []

    def multiplication_reward(completions, completion_ids, target, **kwargs) -> list[float]:
        lengths_per_step.append([len(ids) for ids in completion_ids])
        return [
            multiplication.verify(text, {"target": t}).score
            for text, t in zip(completions, target, strict=True)
        ]

    step_ends: list[float] = []

    class StepTimer(transformers.TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if not step_ends:
                step_ends.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            step_ends.append(time.perf_counter())

    with tempfile.TemporaryDirectory(prefix="r1jax-trl-out-") as output_dir:
        config = trl.GRPOConfig(
            output_dir=output_dir,
            max_steps=args.repeats + 1,
            per_device_train_batch_size=micro_batch,
            gradient_accumulation_steps=rows // micro_batch,
            num_generations=args.samples,
            max_completion_length=args.new_tokens,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            beta=args.kl_coef,
            use_bias_correction_kl=False,
            loss_type="grpo",
            epsilon=0.2,
            scale_rewards="group",
            learning_rate=1e-6,
            lr_scheduler_type="constant",
            weight_decay=0.0,
            max_grad_norm=1.0,
            optim="adamw_torch_fused",
            activation_checkpointing=args.remat,
            bf16=False,
            fp16=False,
            use_cpu=True,
            use_vllm=False,
            model_init_kwargs={"dtype": torch.float32},
            shuffle_dataset=False,
            report_to="none",
            logging_strategy="no",
            save_strategy="no",
            disable_tqdm=True,
            seed=args.seed,
        )
        trainer = trl.GRPOTrainer(
            model=str(model_dir),
            reward_funcs=multiplication_reward,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[StepTimer()],
        )
        generate_times: list[float] = []
        generate = trainer._generate

        def timed_generate(*generate_args, **generate_kwargs):
            start = time.perf_counter()
            result = generate(*generate_args, **generate_kwargs)
            generate_times.append(time.perf_counter() - start)
            return result

        trainer._generate = timed_generate
        trainer.train()
        generation = trainer.generation_config
        model_dtype = str(next(trainer.model.parameters()).dtype)
        has_reference = trainer.ref_model is not None

    totals = [end - start for start, end in itertools.pairwise(step_ends)]
    if len(totals) != args.repeats + 1 or len(generate_times) != args.repeats + 1:
        raise RuntimeError(
            f"TRL ran {len(totals)} steps and {len(generate_times)} generations, "
            f"expected {args.repeats + 1} of each"
        )
    total = statistics.median(totals[1:])
    generated = statistics.median(generate_times[1:])
    return {
        "trl_version": trl.__version__,
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "model_dtype": model_dtype,
        "has_reference": has_reference,
        "total_seconds": total,
        "generate_seconds": generated,
        "update_seconds": statistics.median(
            t - g for t, g in zip(totals[1:], generate_times[1:], strict=True)
        ),
        "first_step_seconds": totals[0],
        "peak_memory_gib": _peak_rss_bytes() / 2**30,
        "completions_per_step": sorted({len(lengths) for lengths in lengths_per_step}),
        "completion_lengths": sorted({n for lengths in lengths_per_step for n in lengths}),
        "generation": {
            key: getattr(generation, key)
            for key in ("do_sample", "max_new_tokens", "temperature", "top_k", "top_p", "min_p")
        },
        "settings": {
            "per_device_train_batch_size": config.per_device_train_batch_size,
            "gradient_accumulation_steps": config.gradient_accumulation_steps,
            "steps_per_generation": config.steps_per_generation,
            "generation_batch_size": config.generation_batch_size,
            "num_generations": config.num_generations,
            "beta": config.beta,
            "loss_type": config.loss_type,
            "optim": str(config.optim),
            "activation_checkpointing": config.activation_checkpointing,
        },
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m r1jax.bench.trl_step", description=__doc__)
    parser.add_argument("--model-dir", required=True, help="HF directory with prompt_ids.json")
    parser.add_argument("--samples", type=int, default=8, help="G")
    parser.add_argument("--new-tokens", type=int, default=128, help="T")
    parser.add_argument("--kl-coef", type=float, default=0.04)
    parser.add_argument("--repeats", type=int, default=3, help="timed steps (median is kept)")
    parser.add_argument("--micro-batch-size", type=int, default=0, help="rows per micro-batch")
    parser.add_argument("--remat", action="store_true", help="gradient checkpointing")
    parser.add_argument("--seed", type=int, default=0)
    results = run_trl(parser.parse_args(argv))
    sys.stdout.write(json.dumps(results, default=str) + "\n")
    return results


if __name__ == "__main__":
    main()
