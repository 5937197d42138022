"""Multi-device EM: rows sharded over 8 (fake CPU) devices equal the single-device fit.

The device count is fixed when JAX starts, so the checks run in a subprocess
(this file run as a script with `--xla_force_host_platform_device_count=8`);
it reports maximum differences as JSON and the tests below judge them.
"""

import json
import os
import sys

import pytest
from helpers import fake_devices_report, max_abs_diff

# One subprocess compiles ~20 sharded programs: over a minute on 2 CPU cores.
pytestmark = pytest.mark.slow

N_DEVICES = 8
FIT_TYPES = ("full", "tied")
TOL = 1e-5


def _fit_diff(a, b):
  return {"n_iter": [int(a.n_iter), int(b.n_iter)], "diff": max_abs_diff(a.params, b.params), "ll": max_abs_diff(a.log_likelihood, b.log_likelihood)}


def _worker() -> dict:
  import jax
  import numpy as np
  from jax.sharding import AxisType

  jax.config.update("jax_enable_x64", True)
  jax.config.update("jax_numpy_rank_promotion", "raise")
  from helpers import mixture_data, random_params

  import gmmjax
  from gmmjax import _sharded
  from gmmjax._stream import fit_stream

  out = {"devices": len(jax.devices())}
  key = jax.random.key(0)
  mesh = jax.make_mesh((N_DEVICES,), ("data",))  # explicit axes, JAX's default
  for ct in gmmjax.COVARIANCE_TYPES:
    truth = random_params(0, 4, 3, ct, spread=3.0)
    x, _ = mixture_data(1, truth, 2400)
    xs = _sharded.shard_rows(x, mesh)
    out[f"rows_split_{ct}"] = xs.sharding.spec[0] == "data" and len(xs.addressable_shards) == N_DEVICES
    kw = dict(covariance_type=ct, max_iter=40, tol=1e-6)
    if ct in FIT_TYPES:  # every type's statistics are compared; the M-step does not see where rows lie
      out[f"fit_{ct}"] = _fit_diff(gmmjax.fit(key, xs, 4, **kw), gmmjax.fit(key, x, 4, **kw))
    if ct == "full":
      out["n_init"] = _fit_diff(gmmjax.fit(key, xs, 4, n_init=2, **kw), gmmjax.fit(key, x, 4, n_init=2, **kw))
    start = random_params(2, 4, 3, ct)
    out[f"stats_{ct}"] = max_abs_diff(gmmjax.suff_stats(start, xs), gmmjax.suff_stats(start, x))

  # Rows over one axis of a 2-D mesh with auto axes, sample weights from the host.
  truth = random_params(3, 3, 2, "full", spread=3.0)
  x, _ = mixture_data(4, truth, 1600)
  w = np.random.default_rng(0).uniform(0.1, 2.0, len(x))
  mesh2 = jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Auto, AxisType.Auto))
  kw = dict(max_iter=30, tol=1e-6, weights=w)
  out["fit_2d_weighted"] = _fit_diff(gmmjax.fit(key, _sharded.shard_rows(x, mesh2), 3, **kw), gmmjax.fit(key, x, 3, **kw))
  # Rows over both axes.
  for init in ("random_from_data", "kmeans"):
    kw = dict(max_iter=30, tol=1e-6, init=init)
    out[f"fit_2axes_{init}"] = _fit_diff(
        gmmjax.fit(key, _sharded.shard_rows(x, mesh2, ("data", "model")), 3, **kw), gmmjax.fit(key, x, 3, **kw)
    )

  # fit_stream over the mesh: batches of 803, 600 and 197 rows, padded to
  # multiples of 8 with zero-weight rows; default init on the first batch.
  batches = np.split(x, [803, 1403])
  kw = dict(max_iter=25, tol=1e-6)
  out["stream_init"] = _fit_diff(
      fit_stream(key, batches, 3, mesh=mesh, progress=False, **kw), fit_stream(key, batches, 3, progress=False, **kw)
  )
  start = random_params(5, 3, 2, "full")
  out["stream_vs_fit"] = _fit_diff(
      fit_stream(key, batches, 3, mesh=mesh, init_params=start, progress=False, **kw),
      gmmjax.fit(key, x, 3, init_params=start, **kw),
  )

  # Under `jax.set_mesh` (JAX's context for explicit axes), every init and the implicit
  # derivative through the fit, on auto and on explicit axes; gradients keep the row sharding.
  with jax.set_mesh(mesh):
    for init in ("kmeans++", "random_from_data", "kmeans"):
      kw = dict(max_iter=30, tol=1e-6, init=init)
      out[f"set_mesh_{init}"] = _fit_diff(gmmjax.fit(key, _sharded.shard_rows(x, mesh), 3, **kw), gmmjax.fit(key, x, 3, **kw))
  loss = lambda x: gmmjax.fit(key, x, 3, max_iter=200, tol=1e-12).log_likelihood
  g_single = jax.grad(loss)(x)
  mesh_auto = jax.make_mesh((N_DEVICES,), ("data",), axis_types=(AxisType.Auto,))
  g_auto = jax.grad(loss)(_sharded.shard_rows(x, mesh_auto))
  with jax.set_mesh(mesh):
    g_explicit = jax.grad(loss)(_sharded.shard_rows(x, mesh))
  scale = float(np.max(np.abs(np.asarray(g_single))))
  for name, g in (("auto", g_auto), ("explicit", g_explicit)):
    out[f"grad_{name}"] = max_abs_diff(g, g_single) / scale
    out[f"grad_spec_{name}"] = g.sharding.spec[0] == "data"

  # float32, far from the origin: the psum of centred moments stays accurate.
  rng = np.random.default_rng(1)
  x32 = (3e3 + 0.05 * rng.standard_normal((8000, 2))).astype(np.float32)
  one = gmmjax.GMMParams.from_covariances(np.ones(1, np.float32), x32[:1], np.eye(2, dtype=np.float32)[None])
  s = gmmjax.suff_stats(one, _sharded.shard_rows(x32, mesh))
  ref = np.cov(x32.astype(np.float64).T, bias=True) * len(x32)
  out["f32_rel_err_m2"] = float(np.max(np.abs(np.asarray(s.m2[0], np.float64) - ref)) / np.max(np.abs(ref)))

  return out


@pytest.fixture(scope="module")
def report():
  return fake_devices_report(__file__, N_DEVICES)


def test_runs_on_eight_devices(report):
  assert report["devices"] == N_DEVICES
  assert all(report[f"rows_split_{ct}"] for ct in ("full", "diag", "spherical", "tied"))


@pytest.mark.parametrize("covariance_type", FIT_TYPES)
def test_sharded_fit_equals_single_device(report, covariance_type):
  for name in (f"fit_{covariance_type}",) + (("n_init",) if covariance_type == "full" else ()):
    r = report[name]
    assert r["n_iter"][0] == r["n_iter"][1] > 2, name
    assert r["diff"] < TOL and r["ll"] < TOL, (name, r)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical", "tied"])
def test_sharded_statistics_equal_single_device(report, covariance_type):
  assert report[f"stats_{covariance_type}"] < 1e-9


@pytest.mark.parametrize("name", ["fit_2d_weighted", "fit_2axes_random_from_data", "fit_2axes_kmeans"])
def test_other_meshes_and_inits(report, name):
  r = report[name]
  assert r["n_iter"][0] == r["n_iter"][1]
  assert r["diff"] < TOL and r["ll"] < TOL, r


@pytest.mark.parametrize("name", ["stream_init", "stream_vs_fit"])
def test_sharded_stream_equals_single_device(report, name):
  r = report[name]
  assert r["n_iter"][0] == r["n_iter"][1] > 2
  assert r["diff"] < TOL and r["ll"] < TOL, r


def test_float32_psum_of_centred_moments_is_accurate(report):
  # Raw moments about the origin would lose all digits (offset^2 / var = 4e9 >
  # 1 / eps_f32); what is left is the rounding of each shard's mean at 3e3.
  assert report["f32_rel_err_m2"] < 1e-3


@pytest.mark.parametrize("init", ["kmeans++", "random_from_data", "kmeans"])
def test_fit_under_set_mesh_equals_single_device(report, init):
  r = report[f"set_mesh_{init}"]
  assert r["n_iter"][0] == r["n_iter"][1]
  assert r["diff"] < TOL and r["ll"] < TOL, r


@pytest.mark.parametrize("axes", ["auto", "explicit"])
def test_gradient_of_sharded_fit_equals_single_device(report, axes):
  assert report[f"grad_spec_{axes}"]
  assert report[f"grad_{axes}"] < 1e-9


if __name__ == "__main__":
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  print(json.dumps(_worker()))
