"""Peak memory of an exact EM fit on N = 5,000,000 x D = 32 rows, K = 16 full covariances.

    python experiments/benchmarks/memory_bound.py [--n 5000000 --d 32 --k 16 --max-iter 3 --mode fit --dtype float32]

Re-runs itself under `/usr/bin/time -v` and reports the child's peak resident
set size next to the size of the data. `fit` passes over the rows in fixed
chunks, so beyond the data itself memory holds one chunk's `[c, k*d]`
intermediates. Both modes start from `init_params` fitted (k-means++ and 20 EM iterations) on
an independent 100k-row sample before the data are loaded; then glibc's
`malloc_trim(0)` returns the compiler's freed heap to the OS (`--no-trim`
skips it). Modes:

  fit     the data as one device array, `gmmjax.fit`. The rows are
          generated with NumPy into an aligned read-only buffer that
          `jax.device_put` shares with the CPU backend, as a user holding a
          large NumPy array would pass it.
  stream  the data in a `.npy` file on disk (written part by part), read in
          100k-row batches by `gmmjax.fit_stream`: memory does not grow
          with N at all.
"""

import argparse
import ctypes
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
_INIT_PART = 1_000_000  # draws independent of the data's parts 0, 1, ...


def _vm_rss_bytes() -> int:
  with open("/proc/self/status") as f:
    return 1024 * int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def child(args) -> dict:
  import jax
  import jax.numpy as jnp
  import numpy as np

  jax.config.update("jax_enable_x64", args.dtype == "float64")
  dtype = jnp.dtype(args.dtype)
  sys.path.insert(0, HERE)
  import gmmjax
  from gmmjax._stream import fit_stream
  from synthetic import host_mixture_rows

  key = jax.random.key(0)
  kw = dict(covariance_type="full", max_iter=args.max_iter, tol=0.0, reg_covar=1e-4)
  # Initialise from an independent sample of the same mixture before the data
  # arrive, as a user would: compiling and running k-means++ then does not
  # stack its transient memory on top of the data.
  sample = host_mixture_rows(0, args.init_rows, args.k, args.d, dtype, part=_INIT_PART)
  init = gmmjax.fit(jax.random.key(1), sample, args.k, max_iter=20, reg_covar=1e-4).params
  jax.block_until_ready(init)
  del sample
  if args.trim:
    # Compiling leaves tens of MiB of freed heap that glibc keeps mapped;
    # hand it back before the data arrive.
    ctypes.CDLL("libc.so.6").malloc_trim(0)
  rss_before_data = _vm_rss_bytes()
  t0 = time.perf_counter()
  if args.mode == "stream":
    # Written to disk part by part with plain writes (pages written through a
    # memmap would count as resident); never whole in memory.
    path = os.path.join(args.tmpdir, "x.npy")
    with open(path, "wb") as f:
      header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": (args.n, args.d)}
      np.lib.format.write_array_header_1_0(f, header)
      offset = f.tell()
      for part, i in enumerate(range(0, args.n, args.batch)):
        rows = min(args.batch, args.n - i)
        f.write(host_mixture_rows(0, rows, args.k, args.d, dtype, part=part).tobytes())
    data_bytes = args.n * args.d * dtype.itemsize
    t_gen = time.perf_counter() - t0

    def batches():
      # Plain reads rather than a memmap: mapped pages would count as resident.
      with open(path, "rb") as f:
        f.seek(offset)
        while True:
          b = np.fromfile(f, dtype, args.batch * args.d)
          if b.size == 0:
            return
          yield b.reshape(-1, args.d)

    t0 = time.perf_counter()
    res = fit_stream(key, batches, args.k, init_params=init, progress=False, **kw)
  else:
    x = jax.device_put(host_mixture_rows(0, args.n, args.k, args.d, dtype))
    data_bytes = x.size * x.dtype.itemsize
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = gmmjax.fit(key, x, args.k, init_params=init, **kw)
  res.params.means.block_until_ready()
  t_fit = time.perf_counter() - t0
  return {
      "mode": args.mode,
      "dtype": args.dtype,
      "n": args.n, "d": args.d, "k": args.k,
      "data_bytes": int(data_bytes),
      "rss_before_data_bytes": rss_before_data,
      "malloc_trim": args.trim,
      "generate_s": round(t_gen, 2),
      "fit_s": round(t_fit, 2),
      "n_iter": int(res.n_iter),
      "s_per_iter": round(t_fit / int(res.n_iter), 2),
      "log_likelihood": float(res.log_likelihood),
      "backend": jax.default_backend(),
  }


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--n", type=int, default=5_000_000)
  p.add_argument("--d", type=int, default=32)
  p.add_argument("--k", type=int, default=16)
  p.add_argument("--max-iter", type=int, default=3)
  p.add_argument("--init-rows", type=int, default=100_000)
  p.add_argument("--batch", type=int, default=100_000)
  p.add_argument("--mode", choices=("fit", "stream"), default="fit")
  p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
  p.add_argument("--no-trim", dest="trim", action="store_false",
                 help="skip glibc malloc_trim(0) after the initial fit's compilation")
  p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--tmpdir", default=None, help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.child:
    print("RESULT " + json.dumps(child(args)), flush=True)
    return
  with tempfile.TemporaryDirectory() as tmp:
    cmd = ["/usr/bin/time", "-v", sys.executable, os.path.abspath(__file__), "--child", "--tmpdir", tmp]
    cmd += [f"--n={args.n}", f"--d={args.d}", f"--k={args.k}", f"--max-iter={args.max_iter}"]
    cmd += [f"--init-rows={args.init_rows}", f"--batch={args.batch}", f"--mode={args.mode}", f"--dtype={args.dtype}"]
    cmd += [] if args.trim else ["--no-trim"]
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
  if proc.returncode != 0:
    sys.exit(proc.stderr[-4000:])
  result = json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))[7:])
  peak_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
  result["peak_rss_bytes"] = peak_kib * 1024
  result["peak_rss_over_data"] = round(peak_kib * 1024 / result["data_bytes"], 3)
  print(json.dumps(result, indent=1))
  print(
      f"{result['mode']}: N={result['n']} D={result['d']} K={result['k']} {result['dtype']}: data "
      f"{result['data_bytes'] / 2**30:.2f} GiB, peak RSS {result['peak_rss_bytes'] / 2**30:.2f} GiB "
      f"= {result['peak_rss_over_data']:.2f}x data ({result['rss_before_data_bytes'] / 2**30:.2f} GiB before "
      f"the data were loaded), {result['s_per_iter']} s/iter"
  )


if __name__ == "__main__":
  main()
