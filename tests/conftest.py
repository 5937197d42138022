"""Strict JAX settings for the whole suite.

float64 is enabled so oracle comparisons can be exact; float32 paths are tested
by passing float32 arrays explicitly. Rank promotion raises, so the library
never relies on implicit broadcasting between arrays of different rank.
"""

import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

settings.register_profile("default", deadline=None, max_examples=15, derandomize=True)
settings.load_profile("default")


@pytest.fixture
def key():
  return jax.random.key(0)


# Compiled programs are kept across test modules (later modules reuse many of them) until the process
# maps this many memory regions; see `_release_compiled_programs`.
MAX_MAPPED_REGIONS = 20_000


def _mapped_regions():
  """Memory regions this process maps (Linux), or None where /proc is not available."""
  try:
    with open("/proc/self/maps", "rb") as f:
      return sum(1 for _ in f)
  except OSError:
    return None


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
  """Drops JAX's compilation caches after a test module once the process maps many regions.

  XLA's CPU backend maps about three memory regions per compiled program, and
  the suite compiles tens of thousands of programs; past the kernel's
  `vm.max_map_count` (65530 by default) LLVM's JIT cannot map new code and the
  process dies with SIGSEGV inside the compiler. Freed programs unmap theirs.
  Clearing after every module would recompile the programs later modules share,
  so the caches go only past `MAX_MAPPED_REGIONS` (a third of the default
  limit), or after every module where the count cannot be read.
  """
  yield
  regions = _mapped_regions()
  if regions is None or regions > MAX_MAPPED_REGIONS:
    jax.clear_caches()
