"""MFA EM over rows sharded across 8 (fake CPU) devices equals the single-device fit.

As in test_sharded.py, the device count is fixed when JAX starts, so the fits
run in a subprocess (this file as a script) that reports differences as JSON.
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
  from test_mfa import random_mfa

  import gmmjax
  from gmmjax import mfa

  def diff(a, b):
    return {"n_iter": [int(a.n_iter), int(b.n_iter)], "ll": abs(float(a.log_likelihood - b.log_likelihood)),
            "diff": max_abs_diff(a.params, b.params)}

  truth = random_mfa(0, 3, 6, 2, spread=4.0)
  x = np.asarray(mfa.sample(jax.random.key(1), truth, 1600)[0])
  w = np.random.default_rng(2).uniform(0.1, 2.0, len(x))
  mesh = jax.make_mesh((N_DEVICES,), ("data",))
  xs = gmmjax.shard_rows(x, mesh)
  key = jax.random.key(3)
  out = {"devices": len(jax.devices())}
  for isotropic in (False, True):
    kw = {"max_iter": 60, "tol": 1e-8, "isotropic": isotropic, "weights": w}
    out[f"fit_{isotropic}"] = diff(mfa.fit(key, xs, 3, 2, **kw), mfa.fit(key, x, 3, 2, **kw))
  return out


@pytest.fixture(scope="module")
def report():
  return fake_devices_report(__file__, N_DEVICES)


@pytest.mark.parametrize("isotropic", [False, True])
def test_sharded_weighted_fit_equals_single_device(report, isotropic):
  assert report["devices"] == N_DEVICES
  r = report[f"fit_{isotropic}"]
  assert r["n_iter"][0] == r["n_iter"][1] > 2, r
  assert r["diff"] < 1e-7 and r["ll"] < 1e-9, r


if __name__ == "__main__":
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  print(json.dumps(_worker()))
