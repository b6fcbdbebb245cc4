"""Command line for the r1jax benchmarks: ``python -m r1jax.bench SUBCOMMAND [--json] ...``."""

import argparse
import importlib
import json
import sys

SUBCOMMANDS = {
    "sample": "r1jax.bench.sample",
    "step": "r1jax.bench.step",
    "verify": "r1jax.bench.verify",
}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m r1jax.bench", description=__doc__)
    subparsers = parser.add_subparsers(dest="subcommand", required=True)
    modules = {}
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        modules[name] = module
        subparser = subparsers.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        subparser.add_argument("--json", action="store_true", help="print results as one JSON object")
        module.add_arguments(subparser)
    args = parser.parse_args(argv)
    results = modules[args.subcommand].run(args)
    if args.json:
        json.dump(results, sys.stdout, indent=None, sort_keys=True, default=str)
        sys.stdout.write("\n")
    return results


if __name__ == "__main__":
    main()
