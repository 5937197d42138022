"""100 independent GMM fits in one program (`jax.vmap` or `jax.lax.map` of `gmmjax.fit`) vs a loop of scikit-learn fits.

    python experiments/benchmarks/batched_fits.py [--b 100 --n 2000 --d 8 --k 5]

Each of the `b` data sets is drawn from its own random mixture. Both sides fit
full covariances, float64, k-means++ initialisation, one init, `tol=1e-3`,
`max_iter=100` (`--dtype float32` runs the JAX side in float32). Each JAX
strategy is timed twice: the first call includes compilation, the second (new
keys) is the steady state; scikit-learn is one loop over the data sets, after
one untimed warm-up fit.
"""

import argparse
import json
import os
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import gmmjax  # noqa: E402


def datasets(b, n, k, d, seed=0):
  rng = np.random.default_rng(seed)
  xs = np.empty((b, n, d))
  for i in range(b):
    means = rng.standard_normal((k, d)) * 3
    a = rng.standard_normal((k, d, d)) / np.sqrt(d)
    z = rng.choice(k, n, p=rng.dirichlet(np.full(k, 5.0)))
    xs[i] = means[z] + np.einsum("nde,ne->nd", a[z], rng.standard_normal((n, d))) + 0.3 * rng.standard_normal((n, d))
  return xs


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--b", type=int, default=100)
  p.add_argument("--n", type=int, default=2000)
  p.add_argument("--d", type=int, default=8)
  p.add_argument("--k", type=int, default=5)
  p.add_argument("--max-iter", type=int, default=100)
  p.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="JAX side (scikit-learn is float64)")
  p.add_argument("--sklearn-threads", type=int, default=1, help="BLAS threads for scikit-learn")
  p.add_argument("--json", default=None, help="also write the results to this file")
  args = p.parse_args()
  import sklearn
  from sklearn.exceptions import ConvergenceWarning
  from threadpoolctl import threadpool_limits
  from sklearn.mixture import GaussianMixture

  xs = datasets(args.b, args.n, args.k, args.d)
  xs_dev = jnp.asarray(xs, args.dtype)
  kw = dict(covariance_type="full", max_iter=args.max_iter, tol=1e-3, reg_covar=1e-6)
  one = lambda key, x: gmmjax.fit(key, x, args.k, **kw)
  # vmap runs the fits in lockstep (best on accelerators: big kernels, all
  # fits iterate until the slowest converges); lax.map runs them one after the
  # other inside one program (best on CPU: each fit stops on its own and its
  # [n, k*d] intermediates stay in cache).
  strategies = {
      "vmap": jax.jit(jax.vmap(one)),
      "map": jax.jit(lambda keys, xs: jax.lax.map(lambda a: one(*a), (keys, xs))),
  }
  keys = jax.random.split(jax.random.key(0), args.b)
  timings = {}
  for name, fn in strategies.items():
    t0 = time.perf_counter()
    jax.block_until_ready(fn(keys, xs_dev))
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = jax.block_until_ready(fn(jax.random.split(jax.random.key(1), args.b), xs_dev))
    timings[name] = (t_first, time.perf_counter() - t0, res)

  sk_ll, sk_iter = [], []
  # One BLAS thread: the fastest setting for these small matrices; with the
  # default thread count a loaded machine oversubscribes and sklearn slows 10x.
  with threadpool_limits(args.sklearn_threads), warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    GaussianMixture(args.k, init_params="k-means++", random_state=0, **kw).fit(xs[0])  # warm-up
    t0 = time.perf_counter()
    for i in range(args.b):
      gm = GaussianMixture(args.k, init_params="k-means++", random_state=i, **kw).fit(xs[i])
      sk_ll.append(gm.lower_bound_)
      sk_iter.append(gm.n_iter_)
  t_sk = time.perf_counter() - t0

  out = {"b": args.b, "n": args.n, "d": args.d, "k": args.k, "sklearn_loop_s": round(t_sk, 3), "sklearn_threads": args.sklearn_threads}
  for name, (t_first, t_run, res) in timings.items():
    out[f"{name}_first_call_s"] = round(t_first, 3)
    out[f"{name}_s"] = round(t_run, 3)
    out[f"{name}_speedup"] = round(t_sk / t_run, 1)
    out[f"{name}_mean_ll"] = float(jnp.mean(res.log_likelihood))
    out[f"{name}_mean_iter"] = float(jnp.mean(res.n_iter))
  out.update(
      sklearn_mean_ll=float(np.mean(sk_ll)),
      sklearn_mean_iter=float(np.mean(sk_iter)),
      dtype=args.dtype,
      backend=jax.default_backend(),
      device=jax.devices()[0].device_kind,
      cpu_count=os.cpu_count(),
      jax=jax.__version__,
      sklearn=sklearn.__version__,
  )
  print(json.dumps(out, indent=1))
  if args.json:
    with open(args.json, "w") as f:
      json.dump(out, f, indent=1)
  for name, (t_first, t_run, _) in timings.items():
    print(
        f"{args.b} fits of (N={args.n}, D={args.d}, K={args.k}), {name}: {t_run:.3f} s "
        f"({t_first:.2f} s with compilation); scikit-learn loop {t_sk:.3f} s: {t_sk / t_run:.1f}x"
    )

if __name__ == "__main__":
  main()
