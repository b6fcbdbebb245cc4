"""One process of a two-process ``python -m r1jax.train`` run on localhost (4 CPU devices each).

Run by tests/multihost/test_train_two_processes.py as
``python -m tests.multihost.train_worker OUT_DIR [DEVICES] -- TRAIN_ARGS...`` (``DEVICES``
simulated CPU devices in this process, 4 unless given; the single-process reference run of
test_grpo_equality.py takes 8). The training command line
(with its ``--config.distributed.*`` flags) goes to `r1jax.train.main` unchanged; the only
difference from the real command is that every process writes its metrics to
``OUT_DIR/process_<i>/metrics.jsonl`` (normally only process 0 writes), so the test can check
that the processes agree.
"""

import os
import sys


def main(out_dir: str, argv: list[str], devices: int = 4) -> None:
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    os.environ["JAX_PLATFORMS"] = "cpu"
    from r1jax import metrics, train

    create_writer = metrics.create_writer

    def per_process_writer(workdir, *, process_index=0, **options):
        del workdir
        directory = os.path.join(out_dir, f"process_{process_index}")
        return create_writer(directory, process_index=0, **options)

    train.metrics.create_writer = per_process_writer
    train.main(argv)


if __name__ == "__main__":
    separator = sys.argv.index("--")
    main(sys.argv[1], sys.argv[separator + 1 :], *map(int, sys.argv[2:separator]))
