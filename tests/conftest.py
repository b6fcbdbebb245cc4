"""Test-wide settings: 8 simulated CPU devices, so sharded code runs on one host."""

import gc
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import jax  # after the environment is set
import pytest

RELEASE_ABOVE_BYTES = 3 * 2**30


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drops jax's compilation caches after a test module once the worker holds over 3 GiB.

    A test worker runs hundreds of modules, each compiling its own models and steps; without
    this the cached executables accumulate for the whole session (about 10 GiB per worker by
    the end of the suite), which can exhaust a CI machine's memory. Clearing only above the
    threshold keeps the recompilations few.
    """
    yield
    if os.path.exists("/proc/self/statm") and _resident_bytes() > RELEASE_ABOVE_BYTES:
        jax.clear_caches()
        gc.collect()
