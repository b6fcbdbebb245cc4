"""Test-wide settings: 8 simulated CPU devices, so sharded code runs on one host; compiled
programs shared through a persistent cache; slow tests start first; whole-recipe tests run only
when asked for."""

import gc
import os
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Many tests compile the same programs (every smoke run of the default experiment, in each
# xdist worker and in the command-line tests' subprocesses, which inherit these variables).
# jax's persistent cache serves a repeat from disk: 116.7 s -> 87.8 s on three such test files.
# The size limit turns on jax's file lock, so workers never read a half-written entry. An
# empty JAX_COMPILATION_CACHE_DIR turns the cache off.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "r1jax-tests-jax-cache")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(4 * 2**30))

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


RECIPE_TESTS_VARIABLE = "R1JAX_RECIPE_TESTS"


def pytest_collection_modifyitems(config, items):
    """Skips ``recipe`` tests unless ``R1JAX_RECIPE_TESTS=1``, and starts ``slow`` tests first.

    A whole CPU recipe takes about 15 minutes of a 2-core machine, more than the suite's time
    budget leaves; it runs where it is asked for. Slow tests first: the workers (``-n auto``,
    work stealing) then run the long tests beside the short ones instead of one long test alone
    at the end. The order is deterministic, as xdist needs.
    """
    if os.environ.get(RECIPE_TESTS_VARIABLE) != "1":
        skip = pytest.mark.skip(reason=f"a whole CPU recipe: set {RECIPE_TESTS_VARIABLE}=1")
        for item in items:
            if item.get_closest_marker("recipe") is not None:
                item.add_marker(skip)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
