"""Seconds per variational iteration: gmmjax against scikit-learn's BayesianGaussianMixture, in one run.

Run:  python experiments/benchmarks/bayes_vs_sklearn.py
      python experiments/benchmarks/bayes_vs_sklearn.py --quick        # (20000, 16, 8), a minute

Both sides start from the same posterior (scikit-learn's `_initialize` and
gmmjax's `variational_m_step` from the same hard responsibilities) and run
with `tol=0`. Time per iteration = (best fit of 1 + iters iterations - best fit
of 1 iteration) / iters, so set-up, checks and the final E-step cancel.
GFLOP/s counts 4 n k d^2 per full-covariance iteration (6 n k d for diag),
against this machine's `jax.jit(jnp.dot)` float32 rate. gmmjax runs in
float32; scikit-learn is timed on a float64 copy (its default for NumPy data,
and for its variational class also its fastest: given float32 data it mixes
them with its float64 prior) and, with `--float32-sklearn`, on the same
float32 array.

With `--with-em` the run also times gmmjax's EM (`gmmjax.fit`) against
scikit-learn's `GaussianMixture` on the same data and clocks, as
`em_vs_sklearn.py` does, so the two speed-ups come from one run.

Each time is also taken as this process's CPU time (`time.process_time`, all
threads), which other jobs on a shared machine disturb far less than the wall
clock; both libraries use every core, so on an idle machine the two ratios agree.
"""

import argparse
import datetime
import functools
import json
import os
import platform
import time
import warnings

import em_vs_sklearn
import jax
import jax.numpy as jnp
import numpy as np
from em_vs_sklearn import make_data, matmul_gflops
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture

import gmmjax
from gmmjax import variational


def best_seconds(fn, repeats: int) -> np.ndarray:
  """The shortest wall-clock and CPU seconds of `repeats` timed calls of `fn` (after one untimed call)."""
  jax.block_until_ready(fn())
  best = np.full(2, np.inf)
  for _ in range(repeats):
    t0, c0 = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn())
    best = np.minimum(best, [time.perf_counter() - t0, time.process_time() - c0])
  return best


def start_resp(x, k):
  """Hard responsibilities `[n, k]` of a short EM fit on a sample (the common start)."""
  params = gmmjax.fit(jax.random.key(0), x[: min(len(x), 20_000)], k, covariance_type="diag", max_iter=3).params
  return np.eye(k, dtype=np.float64)[np.asarray(gmmjax.predict(params, x))]


def time_gmmjax(x, resp, cov_type, iters, repeats):
  k = resp.shape[1]
  with jax.enable_x64(True):
    prior = variational.variational_prior(k, x.shape[1], covariance_type=cov_type)
    x64 = x.astype(np.float64)
    q0 = variational.variational_m_step(variational.resolve_prior(prior, x64), x64, resp)
  q0 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), q0)
  xj = jnp.asarray(x)

  def fit_seconds(max_iter):
    run = lambda: gmmjax.fit_variational(jax.random.key(0), xj, k, covariance_type=cov_type, init_posterior=q0,
                                         max_iter=max_iter, tol=0.0)
    assert int(run().n_iter) == max_iter  # also compiles
    return best_seconds(run, repeats)

  return (fit_seconds(1 + iters) - fit_seconds(1)) / iters


def time_sklearn(x, resp, cov_type, iters, repeats):
  def fit_seconds(max_iter):
    b = BayesianGaussianMixture(n_components=resp.shape[1], covariance_type=cov_type, max_iter=max_iter, tol=0.0)
    b._initialize_parameters = lambda X, random_state, xp=None: b._initialize(X, resp.astype(X.dtype))
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", ConvergenceWarning)
      return best_seconds(lambda: b.fit(x), repeats)

  return (fit_seconds(1 + iters) - fit_seconds(1)) / iters


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--sizes", default="100000,32,16;200000,64,32", help="n,d,k;n,d,k;...")
  parser.add_argument("--quick", action="store_true", help="one small size, (20000, 16, 8)")
  parser.add_argument("--types", default="full,diag")
  parser.add_argument("--iters", type=int, default=5, help="gmmjax iterations timed")
  parser.add_argument("--sk-iters", type=int, default=2, help="scikit-learn iterations timed")
  parser.add_argument("--repeats", type=int, default=2, help="each fit's time is the best of this many")
  parser.add_argument("--json", default=None, help="also write the rows to this file")
  parser.add_argument("--with-em", action="store_true", help="also time EM against GaussianMixture")
  parser.add_argument("--float32-sklearn", action="store_true", help="also time scikit-learn on float32 data")
  args = parser.parse_args()
  sizes = "20000,16,8" if args.quick else args.sizes
  peak = matmul_gflops()
  em_vs_sklearn.best_seconds = best_seconds  # its timings with both clocks
  print(f"{datetime.date.today()}  {platform.processor() or platform.machine()}  {os.cpu_count()} cpus  "
        f"jax {jax.__version__} on {jax.devices()[0].device_kind}")
  print(f"jax.jit(jnp.dot) float32 4096^2: {peak:.1f} GFLOP/s")
  print("seconds per iteration, wall clock (CPU seconds); speed-ups over scikit-learn on float64 data, each clock")
  print(f"{'n':>8} {'d':>4} {'k':>4} {'type':>5} {'model':>6} {'sklearn f64':>16} {'gmmjax f32':>16} "
        f"{'speed-up':>13} {'of dot':>7}" + (f" {'sklearn f32':>16} {'speed-up':>13}" if args.float32_sklearn else ""))
  pair = lambda t: f"{t[0]:.4f} ({t[1]:.4f})"
  ratio = lambda r: f"{r[0]:.1f}x ({r[1]:.1f}x)"
  rows = []
  for size in sizes.split(";"):
    n, d, k = (int(v) for v in size.split(","))
    x = make_data(n, d, k)
    resp = start_resp(x, k)
    for cov_type in args.types.split(","):
      flops = 4 * n * k * d * d if cov_type == "full" else 6 * n * k * d
      # model -> (scikit-learn's time on given data, gmmjax's time)
      timings = {"vb": (functools.partial(time_sklearn, resp=resp, cov_type=cov_type, iters=args.sk_iters,
                                          repeats=args.repeats),
                        functools.partial(time_gmmjax, x, resp, cov_type, args.iters, args.repeats))}
      if args.with_em:
        start = gmmjax.fit(jax.random.key(0), x[: min(n, 20_000)], k, covariance_type=cov_type, max_iter=3).params
        timings["em"] = (functools.partial(em_vs_sklearn.time_sklearn, start=start, iters=args.sk_iters,
                                           repeats=args.repeats),
                         functools.partial(em_vs_sklearn.time_gmmjax, x, start, args.iters, args.repeats))
      for model, (sklearn_time, gmmjax_time) in timings.items():
        t_sk = sklearn_time(x.astype(np.float64))
        t_jx = gmmjax_time()
        row = dict(n=n, d=d, k=k, type=cov_type, model=model, sklearn_float64_s=t_sk.tolist(),
                   gmmjax_s=t_jx.tolist(), speedup=(t_sk / t_jx).tolist(), gflops=flops / t_jx[0] / 1e9,
                   dot_gflops=peak)
        line = (f"{n:>8} {d:>4} {k:>4} {cov_type:>5} {model:>6} {pair(t_sk):>16} {pair(t_jx):>16} "
                f"{ratio(t_sk / t_jx):>13} {row['gflops'] / peak:>6.0%}")
        if args.float32_sklearn:
          t_sk32 = sklearn_time(x)
          row.update(sklearn_float32_s=t_sk32.tolist(), speedup_vs_float32=(t_sk32 / t_jx).tolist())
          line += f" {pair(t_sk32):>16} {ratio(t_sk32 / t_jx):>13}"
        rows.append(row)
        print(line, flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
