"""Seconds per EM iteration: gmmjax against scikit-learn, measured in one run.

Run:  python experiments/benchmarks/em_vs_sklearn.py
      python experiments/benchmarks/em_vs_sklearn.py --sizes 20000,16,8 --types full   # quick
      python experiments/benchmarks/em_vs_sklearn.py --baseline ../gmmjax-main   # against another checkout

Prints, per (n, d, k, covariance type): seconds per iteration of both, the
speed-up, and gmmjax's GFLOP/s against this machine's `jax.jit(jnp.dot)`
float32 GFLOP/s (full covariance counts 4 n k d^2 flops per iteration: the
E-step and M-step GEMMs).

With `--baseline DIR`, the gmmjax of another checkout (its root folder) is timed in a
subprocess of the same run, interleaved size by size, and the ratio is printed.

gmmjax runs in float32. scikit-learn keeps the dtype it is given, so it is timed
twice: on the same float32 array (the like-for-like figure) and on a float64
copy (what it computes for a default NumPy array).
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.mixture import GaussianMixture

import gmmjax


def best_seconds(fn, repeats: int) -> float:
  """The shortest of `repeats` timed calls of `fn` (after one untimed call)."""
  jax.block_until_ready(fn())
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    best = min(best, time.perf_counter() - t0)
  return best


def matmul_gflops(size: int = 4096, repeats: int = 5) -> float:
  a = jnp.asarray(np.random.default_rng(0).standard_normal((size, size)), jnp.float32)
  dot = jax.jit(jnp.dot)
  return 2 * size**3 / best_seconds(lambda: dot(a, a), repeats) / 1e9


def make_data(n, d, k, seed=0):
  rng = np.random.default_rng(seed)
  centers = rng.standard_normal((k, d)) * 3
  labels = rng.integers(0, k, n)
  scales = rng.uniform(0.5, 1.5, (k, 1))
  return (centers[labels] + rng.standard_normal((n, d)) * scales[labels]).astype(np.float32)


def time_gmmjax(x, start, iters, repeats):
  """Per-iteration time from fits of 1 and 1 + iters iterations, as for
  scikit-learn: the difference cancels the checks, the copy of `x` to the
  device and the final E-step."""
  x = jnp.asarray(x)

  def fit_seconds(max_iter):
    run = lambda: gmmjax.fit(
        jax.random.key(0), x, start.means.shape[0], covariance_type=start.covariance_type,
        init_params=start, max_iter=max_iter, tol=0.0,
    )
    assert int(run().n_iter) == max_iter  # also compiles
    return best_seconds(run, repeats)

  return (fit_seconds(1 + iters) - fit_seconds(1)) / iters


def time_sklearn(x, start, iters, repeats):
  """Per-iteration time from fits of 1 and 1 + iters iterations: the difference
  cancels scikit-learn's set-up and its final E-step."""
  import warnings

  from sklearn.exceptions import ConvergenceWarning

  def fit_seconds(max_iter):
    gm = GaussianMixture(
        start.means.shape[0], covariance_type=start.covariance_type, init_params="random_from_data",
        weights_init=np.asarray(start.weights), means_init=np.asarray(start.means),
        precisions_init=np.asarray(start.precisions), reg_covar=1e-6, max_iter=max_iter, tol=0.0,
        random_state=0,
    )
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", ConvergenceWarning)
      return best_seconds(lambda: gm.fit(x), repeats)

  return (fit_seconds(1 + iters) - fit_seconds(1)) / iters


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--sizes", default="100000,32,16;200000,64,32", help="n,d,k;n,d,k;...")
  parser.add_argument("--types", default="full,diag")
  parser.add_argument("--iters", type=int, default=5, help="gmmjax iterations timed")
  parser.add_argument("--sk-iters", type=int, default=3, help="scikit-learn iterations timed")
  parser.add_argument("--repeats", type=int, default=3, help="each fit's time is the best of this many")
  parser.add_argument("--json", default=None, help="also write the rows to this file")
  parser.add_argument("--baseline", default=None, help="root of another gmmjax checkout to time beside this one")
  parser.add_argument("--gmmjax-only", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.gmmjax_only:  # the baseline's side of a --baseline run: one JSON line of s/iter
    n, d, k = (int(v) for v in args.sizes.split(","))
    x = make_data(n, d, k)
    start = gmmjax.fit(jax.random.key(0), x[: min(n, 20_000)], k, covariance_type=args.types, max_iter=3).params
    print(json.dumps(time_gmmjax(x, start, args.iters, args.repeats)))
    return

  peak = matmul_gflops()
  print(f"{datetime.date.today()}  {platform.processor() or platform.machine()}  {os.cpu_count()} cpus  "
        f"jax {jax.__version__} on {jax.devices()[0].device_kind}")
  print(f"jax.jit(jnp.dot) float32 4096^2: {peak:.1f} GFLOP/s")
  header = (f"{'n':>8} {'d':>4} {'k':>4} {'type':>5} {'sklearn s/it':>13} {'gmmjax s/it':>12} {'speed-up':>9} "
            f"{'GFLOP/s':>8} {'of dot':>7} {'sklearn f64':>12} {'speed-up':>9}")
  print(header)
  rows = []
  for size in args.sizes.split(";"):
    n, d, k = (int(v) for v in size.split(","))
    x = make_data(n, d, k)
    for cov_type in args.types.split(","):
      start = gmmjax.fit(jax.random.key(0), x[: min(n, 20_000)], k, covariance_type=cov_type, max_iter=3).params
      t_sk = time_sklearn(x, start, args.sk_iters, args.repeats)
      t_sk64 = time_sklearn(x.astype(np.float64), start, args.sk_iters, args.repeats)
      t_jx = time_gmmjax(x, start, args.iters, args.repeats)
      flops = 4 * n * k * d * d if cov_type == "full" else 6 * n * k * d
      gflops = flops / t_jx / 1e9
      if args.baseline:
        env = dict(os.environ, PYTHONPATH=os.path.abspath(args.baseline))
        cmd = [sys.executable, __file__, "--gmmjax-only", "--sizes", size, "--types", cov_type,
               "--iters", str(args.iters), "--repeats", str(args.repeats)]
        t_base = float(subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout.split()[-1])
        print(f"  baseline {args.baseline}: {t_base:.4f} s/it; this checkout / baseline = {t_jx / t_base:.3f}")
      rows.append(dict(n=n, d=d, k=k, type=cov_type, sklearn_s=t_sk, gmmjax_s=t_jx,
                       baseline_s=t_base if args.baseline else None,
                       speedup=t_sk / t_jx, gflops=gflops, dot_gflops=peak,
                       sklearn_float64_s=t_sk64, speedup_vs_float64=t_sk64 / t_jx))
      print(f"{n:>8} {d:>4} {k:>4} {cov_type:>5} {t_sk:>13.4f} {t_jx:>12.4f} {t_sk / t_jx:>8.1f}x "
            f"{gflops:>8.1f} {gflops / peak:>6.0%} {t_sk64:>12.4f} {t_sk64 / t_jx:>8.1f}x")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
