"""Shared test data: random mixture parameters and data drawn from them."""

import jax
import jax.numpy as jnp
import numpy as np

import gmmjax


def random_covariances(rng, k, d, covariance_type):
  if covariance_type == "full":
    a = rng.standard_normal((k, d, d))
    return a @ np.swapaxes(a, -1, -2) / d + 0.5 * np.eye(d)[None]
  if covariance_type == "tied":
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.5 * np.eye(d)
  if covariance_type == "diag":
    return rng.uniform(0.3, 2.0, (k, d))
  return rng.uniform(0.3, 2.0, (k,))


def random_params(seed, k, d, covariance_type, spread=4.0, dtype=np.float64):
  rng = np.random.default_rng(seed)
  weights = rng.dirichlet(np.full(k, 5.0))
  means = rng.standard_normal((k, d)) * spread
  cov = random_covariances(rng, k, d, covariance_type)
  return gmmjax.GMMParams.from_covariances(
      jnp.asarray(weights, dtype), jnp.asarray(means, dtype), jnp.asarray(cov, dtype), covariance_type
  )


def full_covariances(params):
  """`[k, d, d]` covariance matrices for any covariance type."""
  cov = np.asarray(params.covariances)
  k, d = params.means.shape
  if params.covariance_type == "full":
    return cov
  if params.covariance_type == "tied":
    return np.broadcast_to(cov, (k, d, d))
  if params.covariance_type == "diag":
    return np.stack([np.diag(c) for c in cov])
  return cov[:, None, None] * np.eye(d)[None]


def mixture_data(seed, params, n):
  """`[n, d]` float64 samples of a mixture, drawn with numpy."""
  rng = np.random.default_rng(seed)
  k, d = params.means.shape
  z = rng.choice(k, size=n, p=np.asarray(params.weights) / np.sum(params.weights))
  cov = full_covariances(params)
  x = np.empty((n, d))
  for j in range(k):
    idx = z == j
    x[idx] = rng.multivariate_normal(np.asarray(params.means[j]), cov[j], size=idx.sum())
  return x, z


def max_abs_diff(a, b) -> float:
  """The largest absolute difference between matching leaves of two pytrees."""
  return max(float(np.max(np.abs(np.asarray(u) - np.asarray(v)))) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def call_with_encoder_input(monkeypatch, cls, method_name, x_in, fn):
  """`fn()` while `cls.<method_name>(self, params, x)` reads `x_in` in place of `x`; returns its result."""
  original = getattr(cls, method_name)
  monkeypatch.setattr(cls, method_name, lambda self, params, _: original(self, params, x_in))
  try:
    return fn()
  finally:
    monkeypatch.undo()


def fake_devices_report(script: str, n_devices: int = 8, timeout: int = 900) -> dict:
  """Runs the test module `script` as a script with `n_devices` fake CPU devices and returns the JSON it
  prints last. The device count is fixed when JAX starts, hence the subprocess; the module's
  `__main__` block computes the differences and its tests judge them."""
  import json
  import os
  import subprocess
  import sys

  flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n_devices}"
  env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, script], env=env, cwd=os.path.dirname(os.path.abspath(script)),
                        capture_output=True, text=True, timeout=timeout, check=False)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def optimized_jit(fn, **kwargs):
  """`jax.jit` with LLVM's optimisation passes on, for the few long-running programs: the suite's
  `--xla_backend_optimization_level=0` (tests/conftest.py) runs them about twice as slowly."""
  return jax.jit(fn, compiler_options={"xla_backend_optimization_level": 2}, **kwargs)


def fast_only(values, *fast):
  """`parametrize` values: those in `fast` run in the fast suite, the others are marked slow.

  The fast suite then checks each oracle or invariant on one representative case and CI's slow run
  checks the rest, so nothing leaves CI.
  """
  import pytest  # noqa: PLC0415

  return [v if v in fast else pytest.param(*(v if isinstance(v, tuple) else (v,)), marks=pytest.mark.slow)
          for v in values]


def snapshot(directory) -> dict:
  """{path: (size, mtime)} of a folder and everything in it: equal snapshots mean nothing was written."""
  return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
          for p in [directory, *sorted(directory.rglob("*"))]}
