"""Strict JAX settings for the whole suite.

float64 is enabled so oracle comparisons can be exact; float32 paths are tested
by passing float32 arrays explicitly. Rank promotion raises, so the library
never relies on implicit broadcasting between arrays of different rank.
"""

import os
import shutil
import tempfile

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# The suite's programs are small and most run once: LLVM's optimisation passes took about half of each
# compilation and saved little at run time (a quarter less CPU time on CPU-only runs). Subprocesses that
# the tests start inherit it.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
# Programs compiled once in a run are read back from disk wherever the same program is compiled again:
# by a re-created closure (a resumed or rerun training), a notebook's kernel, a subprocess, the other
# xdist worker. The directory is made by the first process (pytest's controller under xdist, whose
# workers inherit the variable) and removed when that process ends; a directory set by the caller is
# kept.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="gmmjax-tests-jax-cache-")
  _OWN_CACHE_DIR = os.environ["JAX_COMPILATION_CACHE_DIR"]
else:
  _OWN_CACHE_DIR = None
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# Subprocesses import this tree's gmmjax (and the tests' helpers) whether or not it is installed.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p)

import jax
import pytest
from hypothesis import settings

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




def pytest_unconfigure(config):
  if _OWN_CACHE_DIR is not None:
    shutil.rmtree(_OWN_CACHE_DIR, ignore_errors=True)
