"""Variational mixtures over rows sharded on 8 (fake CPU) devices equal the single-device fit.

As in test_sharded.py, the checks run in a subprocess started with
`--xla_force_host_platform_device_count=8`, which reports differences as JSON.
"""

import json
import os
import sys

import pytest
from helpers import fake_devices_report, max_abs_diff

pytestmark = pytest.mark.slow

N_DEVICES = 8


def _worker() -> dict:
  import jax
  import numpy as np

  jax.config.update("jax_enable_x64", True)
  jax.config.update("jax_numpy_rank_promotion", "raise")
  from helpers import mixture_data, random_params

  import gmmjax
  from gmmjax import variational as V

  def diff(a, b):
    return {"n_iter": [int(a.n_iter), int(b.n_iter)],
            "diff": max_abs_diff((a.posterior, a.prior), (b.posterior, b.prior)),
            "bound": abs(float(a.lower_bound) - float(b.lower_bound)) / abs(float(b.lower_bound))}

  out = {"devices": len(jax.devices())}
  key = jax.random.key(0)
  mesh = jax.make_mesh((N_DEVICES,), ("data",))
  x, _ = mixture_data(1, random_params(0, 4, 3, "full", spread=3.0), 2400)
  w = np.random.default_rng(2).uniform(0.1, 2.0, len(x))
  xs = gmmjax.shard_rows(x, mesh)
  for ct, wt in (("full", "dirichlet_process"), ("diag", "dirichlet_distribution")):
    kw = dict(covariance_type=ct, weight_concentration_prior_type=wt, max_iter=60, tol=1e-8)
    out[f"fit_{ct}"] = diff(V.fit_variational(key, xs, 6, **kw), V.fit_variational(key, x, 6, **kw))
    out[f"weighted_{ct}"] = diff(V.fit_variational(key, xs, 6, weights=w, **kw),
                                 V.fit_variational(key, x, 6, weights=w, **kw))
  start = V.fit_variational(key, x, 6, max_iter=2).posterior
  batches = np.split(x, [803, 1403])
  kw = dict(max_iter=60, tol=1e-8, init_posterior=start)
  out["stream"] = diff(V.fit_variational_stream(key, batches, 6, mesh=mesh, progress=False, **kw),
                       V.fit_variational(key, x, 6, **kw))
  return out


@pytest.fixture(scope="module")
def report():
  return fake_devices_report(__file__, N_DEVICES)


@pytest.mark.parametrize("name", ["fit_full", "weighted_full", "fit_diag", "weighted_diag", "stream"])
def test_sharded_variational_fit_equals_single_device(report, name):
  assert report["devices"] == N_DEVICES
  r = report[name]
  assert r["n_iter"][0] == r["n_iter"][1] > 2, r
  assert r["diff"] < 1e-6 and r["bound"] < 1e-10, r


if __name__ == "__main__":
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  print(json.dumps(_worker()))
