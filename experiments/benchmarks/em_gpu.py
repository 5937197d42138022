"""EM throughput on one accelerator: full covariances, N = 10M, D = 64, K = 64, float32.

    python experiments/benchmarks/em_gpu.py                      # on a GPU/TPU
    JAX_PLATFORMS=cpu python experiments/benchmarks/em_gpu.py --n 100000 --iters 2   # CPU smoke run

The data (N x D float32 = 2.56 GB at the defaults) are generated on the device
in chunks; each EM iteration is one chunked pass (`gmmjax.em_step`). Prints
seconds per iteration (median of `--iters` timed iterations after `--warmup`)
and the achieved TFLOP/s, counting 4 N K D^2 flops per iteration: the
E-step's whitening GEMM `[N, D] x [D, K*D]` and the M-step's scatter GEMM of
the same size, 2 N K D^2 each.
"""

import argparse
import json
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gmmjax  # noqa: E402
from synthetic import mixture_rows  # noqa: E402


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--n", type=int, default=10_000_000)
  p.add_argument("--d", type=int, default=64)
  p.add_argument("--k", type=int, default=64)
  p.add_argument("--iters", type=int, default=10)
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--chunk-size", type=int, default=None, help="rows per chunk (default: gmmjax's)")
  p.add_argument(
      "--precision", choices=("default", "high", "highest"), default="highest",
      help="matmul precision: 'default' lets GPUs use TF32/bf16 passes for float32 GEMMs",
  )
  p.add_argument("--json", default=None, help="also write the results to this file")
  args = p.parse_args()

  dev = jax.devices()[0]
  print(f"device: {dev.device_kind} ({jax.default_backend()}), jax {jax.__version__}", flush=True)
  key = jax.random.key(0)
  t0 = time.perf_counter()
  x = mixture_rows(key, args.n, args.k, args.d, jnp.float32).block_until_ready()
  print(f"generated {args.n} x {args.d} float32 ({x.nbytes / 2**30:.2f} GiB) in {time.perf_counter() - t0:.1f} s", flush=True)

  # Start: K rows as means, unit covariances (a fixed amount of work per
  # iteration, whatever the start).
  idx = jax.random.choice(jax.random.key(1), args.n, (args.k,), replace=False)
  params = gmmjax.GMMParams.from_covariances(
      jnp.full((args.k,), 1.0 / args.k, jnp.float32),
      x[idx],
      jnp.broadcast_to(jnp.eye(args.d, dtype=jnp.float32), (args.k, args.d, args.d)),
      "full",
  )
  times, lls = [], []
  with jax.default_matmul_precision(args.precision):
    for i in range(args.warmup + args.iters):
      t0 = time.perf_counter()
      params, ll = gmmjax.em_step(params, x, reg_covar=1e-4, chunk_size=args.chunk_size)
      ll = float(ll)  # waits for the step
      dt = time.perf_counter() - t0
      if i >= args.warmup:
        times.append(dt)
        lls.append(ll)
      print(f"iter {i}{' (warm-up)' if i < args.warmup else ''}: {dt:.4f} s, mean log-likelihood {ll:.5f}", flush=True)

  s_iter = statistics.median(times)
  flops = 4.0 * args.n * args.k * args.d**2
  out = {
      "device": dev.device_kind,
      "backend": jax.default_backend(),
      "n": args.n, "d": args.d, "k": args.k,
      "precision": args.precision,
      "chunk_size": args.chunk_size,
      "s_per_iter": s_iter,
      "tflops": flops / s_iter / 1e12,
      "log_likelihood_first_last": [lls[0], lls[-1]],
      "finite": all(map(lambda v: v == v and abs(v) != float("inf"), lls)),
  }
  print(json.dumps(out))
  print(f"{s_iter:.4f} s/iter, {out['tflops']:.2f} TFLOP/s (4 N K D^2 = {flops:.3g} flop/iter)")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(out, f, indent=1)


if __name__ == "__main__":
  main()
