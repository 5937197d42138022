"""Small data: first-call latency and sweeps over many row counts, against scikit-learn.

Run:  python experiments/benchmarks/small_data.py
      python experiments/benchmarks/small_data.py --sizes 20   # quick

Prints, measured in this one run:
  1. the first call of `gmmjax.fit` on (2000, 5) data with 3 components in a fresh process
     (compilation included) against scikit-learn's `GaussianMixture.fit`;
  2. the wall time of fitting, scoring (`score_samples`) and sampling (`sample(n)`) over
     `--sizes` row counts spread between 500 and 50,000, with `gmmjax.sklearn.GaussianMixture`
     and with scikit-learn's estimator, and their ratio. Rows are padded to a few size classes,
     so the sweep compiles a handful of programs rather than one per row count.
Both estimators run float32 data, one initialisation, k-means++ seeding.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

FIRST_CALL = """
import time, numpy as np
t0 = time.perf_counter()
import jax, gmmjax
t1 = time.perf_counter()
x = np.random.default_rng(0).standard_normal((2000, 5)).astype(np.float32)
r = gmmjax.fit(jax.random.key(0), x, 3)
jax.block_until_ready(r)
t2 = time.perf_counter()
r = gmmjax.fit(jax.random.key(1), x[:1990], 3)
jax.block_until_ready(r)
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def first_call() -> tuple[float, float, float]:
  """(import, first fit, second fit of another row count) seconds, in a fresh process."""
  out = subprocess.run([sys.executable, "-c", FIRST_CALL], capture_output=True, text=True, check=True)
  return tuple(float(v) for v in out.stdout.split())


def sweep(estimator, sizes, d: int, k: int) -> float:
  rng = np.random.default_rng(0)
  centers = rng.standard_normal((k, d)) * 4
  t0 = time.perf_counter()
  for i, n in enumerate(sizes):
    x = (centers[rng.integers(0, k, n)] + rng.standard_normal((n, d))).astype(np.float32)
    gm = estimator(n_components=k, init_params="k-means++", random_state=i).fit(x)
    gm.score_samples(x)
    gm.sample(int(n))
  return time.perf_counter() - t0


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--sizes", type=int, default=100, help="number of row counts in the sweep")
  parser.add_argument("--d", type=int, default=5)
  parser.add_argument("--k", type=int, default=3)
  parser.add_argument("--out", default=None, help="optional JSON file for the numbers")
  args = parser.parse_args()

  from sklearn.mixture import GaussianMixture as SkGaussianMixture

  import gmmjax.sklearn

  print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
  imported, first, second = first_call()
  x = np.random.default_rng(0).standard_normal((2000, 5)).astype(np.float32)
  t0 = time.perf_counter()
  SkGaussianMixture(3, init_params="k-means++", random_state=0).fit(x)
  sk_first = time.perf_counter() - t0
  print(f"first fit (2000, 5, 3): gmmjax {first:.2f} s (import {imported:.2f} s; a second row count "
        f"{second:.2f} s), scikit-learn {sk_first:.3f} s")

  sizes = np.unique(np.geomspace(500, 50_000, args.sizes).astype(int))
  sizes = np.random.default_rng(1).permutation(sizes)
  gj = sweep(gmmjax.sklearn.GaussianMixture, sizes, args.d, args.k)
  sk = sweep(SkGaussianMixture, sizes, args.d, args.k)
  print(f"fit + score_samples + sample over {len(sizes)} row counts in [500, 50000], d={args.d}, k={args.k}: "
        f"gmmjax {gj:.2f} s, scikit-learn {sk:.2f} s, ratio {gj / sk:.2f}x")
  if args.out:
    with open(args.out, "w") as f:
      json.dump(dict(first_fit_s=first, import_s=imported, second_size_s=second, sklearn_first_fit_s=sk_first,
                     sweep_sizes=len(sizes), gmmjax_sweep_s=gj, sklearn_sweep_s=sk), f, indent=1)


if __name__ == "__main__":
  main()
