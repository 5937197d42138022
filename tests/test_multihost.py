"""Multi-host EM: two processes on 127.0.0.1, each holding half of the rows.

Each process runs this file as a script: `jax.distributed.initialize` with
CPU collectives (gloo), builds the global array from its own half with
`make_array_from_process_local_data`, and fits it; the statistics cross
processes through `psum`. The test compares with the one-process fit.
"""

import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

import gmmjax
from gmmjax._stream import fit_stream
from helpers import mixture_data, random_params

N_PROCESSES = 2
DEVICES_PER_PROCESS = 2


def _data():
  truth = random_params(0, 3, 2, "full", spread=3.0)
  x, _ = mixture_data(1, truth, 2000)
  w = np.random.default_rng(2).uniform(0.2, 2.0, len(x))
  return x, w


def _worker(process_id: int, port: int, out_path: str) -> None:
  jax.config.update("jax_enable_x64", True)
  jax.config.update("jax_numpy_rank_promotion", "raise")
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(
      coordinator_address=f"127.0.0.1:{port}", num_processes=N_PROCESSES, process_id=process_id
  )
  from gmmjax import _sharded

  assert jax.process_count() == N_PROCESSES and len(jax.devices()) == N_PROCESSES * DEVICES_PER_PROCESS
  x, w = _data()
  half = len(x) // N_PROCESSES
  mine = slice(process_id * half, (process_id + 1) * half)
  mesh = jax.make_mesh((len(jax.devices()),), ("data",))
  xg = _sharded.shard_rows(x[mine], mesh)
  wg = _sharded.shard_rows(w[mine], mesh)
  assert not xg.is_fully_addressable and xg.shape == x.shape
  key = jax.random.key(0)
  res = gmmjax.fit(key, xg, 3, max_iter=40, tol=1e-6, weights=wg)
  # The stream: each process reads its own half, in batches of 400 and 600 rows.
  batches = [(x[mine][:400], w[mine][:400]), (x[mine][400:], w[mine][400:])]
  stream = fit_stream(key, batches, 3, max_iter=40, tol=1e-6, mesh=mesh, progress=False)
  gather = lambda a: np.asarray(a.addressable_data(0))
  np.savez(
      out_path,
      **{f"fit_{k}": gather(getattr(res.params, k)) for k in ("weights", "means", "precisions_cholesky")},
      fit_ll=gather(res.log_likelihood),
      fit_n_iter=gather(res.n_iter),
      **{f"stream_{k}": gather(getattr(stream.params, k)) for k in ("weights", "means", "precisions_cholesky")},
      stream_ll=gather(stream.log_likelihood),
      stream_n_iter=gather(stream.n_iter),
  )
  jax.distributed.shutdown()


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("multihost")
  port = _free_port()
  env = dict(
      os.environ,
      JAX_PLATFORMS="cpu",
      XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={DEVICES_PER_PROCESS}",
  )
  here = os.path.dirname(os.path.abspath(__file__))
  procs = [
      subprocess.Popen(
          [sys.executable, __file__, str(i), str(port), str(tmp / f"p{i}.npz")],
          env=env, cwd=here, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      )
      for i in range(N_PROCESSES)
  ]
  logs = []
  for p in procs:
    try:
      _, err = p.communicate(timeout=600)
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      raise
    logs.append((p.returncode, err))
  for rc, err in logs:
    assert rc == 0, err[-4000:]
  return [dict(np.load(tmp / f"p{i}.npz")) for i in range(N_PROCESSES)]


pytestmark = pytest.mark.slow


def test_processes_agree(results):
  for name, value in results[0].items():
    np.testing.assert_array_equal(results[1][name], value, err_msg=name)


def test_two_process_fit_equals_single_process(results):
  x, w = _data()
  want = gmmjax.fit(jax.random.key(0), x, 3, max_iter=40, tol=1e-6, weights=w)
  got = results[0]
  assert int(got["fit_n_iter"]) == int(want.n_iter) > 2
  np.testing.assert_allclose(got["fit_ll"], want.log_likelihood, rtol=1e-9)
  for k in ("weights", "means", "precisions_cholesky"):
    np.testing.assert_allclose(got[f"fit_{k}"], getattr(want.params, k), rtol=1e-5, atol=1e-8)


def test_two_process_stream_equals_single_process_stream(results):
  x, w = _data()
  # One process reading both halves batch by batch sees the rows in another
  # order, which EM does not care about; its first batch (the init) is the
  # union of both processes' first batches.
  half = len(x) // 2
  first = np.r_[0:400, half : half + 400]
  rest = np.setdiff1d(np.arange(len(x)), first)
  batches = [(x[first], w[first]), (x[rest], w[rest])]
  want = fit_stream(jax.random.key(0), batches, 3, max_iter=40, tol=1e-6, progress=False)
  got = results[0]
  assert int(got["stream_n_iter"]) == int(want.n_iter) > 2
  np.testing.assert_allclose(got["stream_ll"], want.log_likelihood, rtol=1e-9)
  for k in ("weights", "means", "precisions_cholesky"):
    np.testing.assert_allclose(got[f"stream_{k}"], getattr(want.params, k), rtol=1e-5, atol=1e-8)


if __name__ == "__main__":
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  _worker(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
