"""Seconds per EM iteration of a mixture of factor analysers against a
full-covariance GMM of the same k on the same data, measured in one run.

Run:  python experiments/benchmarks/mfa_em.py            # (60000, 784), k = 50, l = 10, float32
      python experiments/benchmarks/mfa_em.py --quick    # (8192, 784), k = 10: a minute on 2 cores
      python experiments/benchmarks/mfa_em.py --no-gmm   # MFA only (the full GMM takes minutes on CPU)

One iteration is one call of each fit's jitted EM step (the E-step pass over
the data through the statistics backend, then the M-step), after a call that
compiles it; the best of `--repeats` calls. Flops counted per iteration:
MFA 4 n k d l (the two GEMMs against the `[d, k l]` factor maps) + 8 n k d
(the elementwise diagonal terms), full GMM 4 n k d^2. GFLOP/s are set against
this machine's `jax.jit(jnp.dot)` float32 GFLOP/s, measured in the same run
before and after the MFA step (on a shared machine the load drifts): the
higher of the two, so the fraction errs low.
"""

import argparse
import datetime
import functools
import platform

import jax
import jax.numpy as jnp
import numpy as np
from em_vs_sklearn import best_seconds, matmul_gflops

from gmmjax import _em, _init
from gmmjax._options import EMOptions
from gmmjax.mfa import _fit


def make_data(n, d, k, l, seed=0):
  """Images-like data: k clusters, each a low-rank subspace plus noise."""
  rng = np.random.default_rng(seed)
  centers = rng.standard_normal((k, d))
  loads = rng.standard_normal((k, d, l)) / np.sqrt(l)
  labels = rng.integers(0, k, n)
  z = rng.standard_normal((n, l))
  x = centers[labels] + np.einsum("ndl,nl->nd", loads[labels], z) + 0.3 * rng.standard_normal((n, d))
  return x.astype(np.float32)


@functools.partial(jax.jit, static_argnames=("options",))
def _starts(key, x, w, *, options):
  """MFA and full-GMM starting parameters in the working frame."""
  frame, reg = _em.working_frame(_em.Local(), x, w, jnp.asarray(1e-6, x.dtype))
  mfa_params, _ = _fit.initial_params(key, x, w, reg, frame, backend=_em.Local(), options=options)
  gmm_options = EMOptions(options.n_components, "full", 1, "kmeans++", 1, options.chunk_size)
  gmm_params, _ = _init.initial_params(key, x, w, reg, frame, None, backend=_em.Local(), options=gmm_options)
  return frame, reg, mfa_params, gmm_params


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--n", type=int, default=60000)
  parser.add_argument("--d", type=int, default=784)
  parser.add_argument("--k", type=int, default=50)
  parser.add_argument("--l", type=int, default=10)
  parser.add_argument("--quick", action="store_true", help="(8192, 784), k = 10")
  parser.add_argument("--no-gmm", dest="gmm", action="store_false", help="skip the full-covariance GMM")
  parser.add_argument("--repeats", type=int, default=2)
  args = parser.parse_args()
  if args.quick:
    args.n, args.k = 8192, 10
  n, d, k, l = args.n, args.d, args.k, args.l
  print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{jax.devices()[0].device_kind}, jax {jax.__version__}")

  x = jnp.asarray(make_data(n, d, k, l))
  options = _fit.MFAOptions(k, l, init="kmeans++", n_power_iter=2)
  x, w, options = _fit._padded(x, None, options)
  x = jnp.asarray(x)
  frame, reg, mfa_params, gmm_params = _starts(jax.random.key(0), x, w, options=options)

  mfa_step = jax.jit(functools.partial(_fit._step, backend=_em.Local(), chunk_size=options.chunk_size))
  before = matmul_gflops()
  t_mfa = best_seconds(lambda: mfa_step(mfa_params, x, w, reg, frame), args.repeats)
  after = matmul_gflops()
  peak = max(before, after)
  print(f"jax.jit(jnp.dot) float32 4096^2: {before:.1f} GFLOP/s before, {after:.1f} after the MFA step")
  print(f"MFA chunk: {options.chunk_size} rows")
  flops_mfa = 4 * n * k * d * l + 8 * n * k * d
  print(f"{'model':<10} {'n':>7} {'d':>5} {'k':>4} {'s/it':>9} {'GFLOP/it':>9} {'GFLOP/s':>8} {'of dot':>7}")
  row = lambda name, t, flops: print(f"{name:<10} {n:>7} {d:>5} {k:>4} {t:>9.4f} {flops / 1e9:>9.1f} "
                                     f"{flops / t / 1e9:>8.1f} {flops / t / 1e9 / peak:>7.0%}")
  row(f"MFA l={l}", t_mfa, flops_mfa)
  if args.gmm:
    # The GMM's own default chunk (its [c, k d] products bound it, not the MFA's).
    gmm_step = jax.jit(functools.partial(_em._step, active=None, backend=_em.Local(), chunk_size=None))
    t_gmm = best_seconds(lambda: gmm_step(gmm_params, x, w, reg, frame), 1)
    row("GMM full", t_gmm, 4 * n * k * d * d)
    print(f"full GMM / MFA time per iteration: {t_gmm / t_mfa:.1f}x")


if __name__ == "__main__":
  main()
