"""``python -m r1jax.eval --checkpoint DIR --task TASK``: evaluate a trained policy.

``DIR`` is either a Hugging Face model directory (``config.json`` + safetensors + tokenizer,
e.g. the ``export/`` directory a training run writes) or a training workdir, in which case its
``export/`` directory is used. Problems come from the task's generator with a held-out seed
(``--problem-seed``; ``--heldout-fraction F``: only the problems a run with
``data.heldout_fraction=F`` holds out from training) or from a JSONL/Parquet file (``--problems``, rows with a ``question``
and an ``answer`` field). Prompts use the task's default template unless ``--template`` names
another. Prints the headline line and, with ``--json``, the full results as one JSON object.

Examples:

    python -m r1jax.eval --checkpoint runs/default --task multiplication \\
        --task-option digits=3 --task-option digits_b=1 --task-option distribution=exact_digits \\
        --num-problems 500 --k 4 --temperature 1.0
    python -m r1jax.eval --checkpoint runs/math/export --task math --problems math500.jsonl

s1 budget forcing (arXiv:2501.19393 §3.1) applies to the greedy and the sampled completions alike:
``--budget-forcing cap --thinking-budget 500`` closes the thinking with ``</think>`` and
``"\nFinal Answer:"`` after 500 thinking tokens; ``--budget-forcing extend --num-ignore 2``
also replaces the first two ends of thinking with ``Wait``. ``--thinking-budget 0`` (the
default) is ``--max-new-tokens`` minus ``--answer-reserve`` and the inserted strings.

The evaluation itself is `r1jax.evaluate.evaluate`.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import jax

from r1jax import config as config_lib
from r1jax import evaluate
from r1jax.data import partition, sources
from r1jax.data import prompts as prompt_data
from r1jax.data.from_config import DISTINCT_DRAWS_PER_PROBLEM, EVAL_SEED_OFFSET
from r1jax.models import hf, load_pretrained
from r1jax.tasks import TASKS, resolve_task
from r1jax.tokenizer import Tokenizer
from r1jax.verifiers import VerifierPool, reflection


def _is_model_directory(path: str) -> bool:
    """config.json beside weights: a training workdir holds a config.json (the run's) too."""
    return os.path.isfile(os.path.join(path, "config.json")) and any(
        os.path.isfile(os.path.join(path, name)) for name in (hf.SINGLE_FILE, hf.INDEX_FILE)
    )


def _model_directory(path: str) -> str:
    if _is_model_directory(path):
        return path
    export = os.path.join(path, "export")
    if _is_model_directory(export):
        return export
    raise SystemExit(
        f"--checkpoint {path!r}: neither a model directory (config.json and model.safetensors) "
        "nor a training workdir with an export/ directory"
    )


def _parse_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--task-option {text!r} is not key=value")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m r1jax.eval", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--checkpoint", required=True, help="HF model dir or training workdir")
    parser.add_argument(
        "--task",
        required=True,
        help=f"one of {', '.join(sorted(TASKS))}, or the import path of a task module",
    )
    parser.add_argument("--task-option", action="append", type=_parse_option, default=[])
    parser.add_argument(
        "--template", default="", help="the task's prompt template name (empty: its default)"
    )
    parser.add_argument("--problems", default="", help="JSONL/Parquet problems instead")
    parser.add_argument("--num-problems", type=int, default=500)
    parser.add_argument("--problem-seed", type=int, default=EVAL_SEED_OFFSET)
    parser.add_argument(
        "--heldout-fraction",
        type=float,
        default=0.0,
        help="generated problems from the held-out hash share only (a run's data.heldout_fraction)",
    )
    parser.add_argument(
        "--distinct",
        action="store_true",
        help="--num-problems different problems (a run's eval.distinct), not independent draws",
    )
    parser.add_argument("--k", type=int, default=4, help="samples per problem")
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--no-greedy", action="store_true", help="skip the greedy decode")
    parser.add_argument("--stop", action="append", default=None, help="stop string(s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64, help="prompts per sampler call")
    parser.add_argument(
        "--reflection-keywords",
        default="default",
        choices=reflection.KEYWORD_SETS,
        help="keyword set of reflect_rate (the training run's logging.reflection_keywords)",
    )
    parser.add_argument("--workers", type=int, default=2, help="verifier processes")
    parser.add_argument(
        "--verifier-timeout",
        type=float,
        default=10.0,
        help="seconds per completion; a timeout counts as wrong",
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    budget = config_lib.base_config().eval.budget_forcing
    group = parser.add_argument_group("s1 budget forcing")
    group.add_argument(
        "--budget-forcing", choices=evaluate.BUDGET_FORCING_MODES, default=budget.mode
    )
    group.add_argument(
        "--thinking-budget", type=int, default=budget.thinking_budget, help="0 = auto"
    )
    group.add_argument("--answer-reserve", type=int, default=budget.answer_reserve)
    group.add_argument("--num-ignore", type=int, default=budget.num_ignore)
    group.add_argument("--ignore-string", default=budget.ignore_string)
    group.add_argument("--end-of-thinking", default=budget.end_of_thinking)
    group.add_argument("--answer-prefix", default=budget.answer_prefix)
    return parser


def budget_forcing_section(args: argparse.Namespace) -> dict[str, Any]:
    """The ``budget_forcing`` config section that the command-line flags spell."""
    return {
        "mode": args.budget_forcing,
        "thinking_budget": args.thinking_budget,
        "answer_reserve": args.answer_reserve,
        "num_ignore": args.num_ignore,
        "ignore_string": args.ignore_string,
        "end_of_thinking": args.end_of_thinking,
        "answer_prefix": args.answer_prefix,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    directory = _model_directory(args.checkpoint)
    model_config, params = load_pretrained(directory, dtype="float32")
    tokenizer = Tokenizer.from_pretrained(directory)
    try:
        needs = ("prompt",) if args.problems else ("prompt", "generate")
        task = resolve_task(args.task, require=needs)
    except (ValueError, TypeError) as error:
        raise SystemExit(f"python -m r1jax.eval: {error}") from None
    if args.problems:
        if args.heldout_fraction:
            raise SystemExit(
                "python -m r1jax.eval: --heldout-fraction splits generated problems; "
                f"--problems {args.problems} is a file, which is held out as a whole"
            )
        problems = list(sources.load_problems(args.problems))[: args.num_problems]
    else:
        if not 0.0 <= args.heldout_fraction < 1.0:
            raise SystemExit(f"--heldout-fraction {args.heldout_fraction}: must be in [0, 1)")
        generator = partition.split_task(task, args.heldout_fraction, heldout=True).generate
        source = sources.ProceduralSource(
            generator, seed=args.problem_seed, options=dict(args.task_option)
        )
        if args.distinct:
            try:
                problems = partition.distinct_problems(
                    source,
                    task,
                    args.num_problems,
                    max_draws=DISTINCT_DRAWS_PER_PROBLEM * args.num_problems,
                )
            except ValueError as error:
                raise SystemExit(f"python -m r1jax.eval --distinct: {error}") from None
        else:
            problems = [source[i] for i in range(args.num_problems)]
    stops = ["</answer>"] if args.stop is None else args.stop
    try:
        budget = evaluate.budget_forcing_from_config(
            budget_forcing_section(args), tokenizer, max_new_tokens=args.max_new_tokens
        )
    except ValueError as error:
        raise SystemExit(f"python -m r1jax.eval: {error}") from None
    settings = evaluate.EvalSettings(
        num_samples=args.k,
        temperature=args.temperature,
        top_p=args.top_p,
        greedy=not args.no_greedy,
        max_new_tokens=args.max_new_tokens,
        prompts_per_batch=min(args.batch_size, len(problems)),
        stop_token_ids=tuple(tokenizer.eos_token_ids),
        stop_sequences=tuple(tuple(tokenizer.encode(s)) for s in stops if s),
        pad_id=tokenizer.pad_token_id,
        ks=(1, args.k),
        budget_forcing=budget,
        reflection_keywords=args.reflection_keywords,
    )
    prompt_fn = task.prompt  # the task's default wording, as data.template="" trains with
    if args.template:
        prompt_fn = prompt_data.make_prompt_fn(task, template=args.template)
    with VerifierPool(args.workers, timeout_seconds=args.verifier_timeout) as pool:
        results = evaluate.evaluate(
            params,
            model_config,
            tokenizer,
            problems,
            task=args.task,
            prompt_fn=prompt_fn,
            key=jax.random.key(args.seed),
            settings=settings,
            pool=pool,
        )
    print(evaluate.format_summary(results, label=directory), flush=True)
    if args.json:
        print(json.dumps(results, default=str))
    return results


if __name__ == "__main__":
    main()
