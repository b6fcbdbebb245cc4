"""Command line for the r1jax benchmarks: ``python -m r1jax.bench SUBCOMMAND [--json] ...``.

Only the chosen subcommand's module is imported, so ``verify`` never loads jax.
"""

import argparse
import importlib
import json
import sys

SUBCOMMANDS = {
    "sample": ("r1jax.bench.sample", "sampler throughput against the matmul peak and transformers"),
    "step": ("r1jax.bench.step", "one GRPO step: sample / verify / update times"),
    "verify": ("r1jax.bench.verify", "verifications per second, in-process and through the pool"),
    "async": ("r1jax.bench.async_steps", "step time of async rollouts, overlap off / on vs sync"),
}


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python -m r1jax.bench", description=__doc__)
    subparsers = parser.add_subparsers(dest="subcommand", required=True)
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    module = None
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_text)
        subparser.add_argument(
            "--json", action="store_true", help="print results as one JSON object"
        )
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(subparser)
    args = parser.parse_args(argv)
    results = module.run(args)
    if args.json:
        json.dump(results, sys.stdout, indent=None, sort_keys=True, default=str)
        sys.stdout.write("\n")
    return results


if __name__ == "__main__":
    main()
