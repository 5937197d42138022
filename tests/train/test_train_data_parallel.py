"""The loop with the batch sharded over 8 (fake CPU) devices follows the single-device loss curve."""

import os
import pathlib
import subprocess
import sys

import pytest

WORKER_DIR = pathlib.Path(__file__).parent

CODE = """
import sys
import jax
import numpy as np
sys.path.insert(0, {worker_dir!r})
import resume_worker
from gmmjax import train

assert jax.local_device_count() == 8, jax.devices()
sharded = train.shard_batch(np.zeros((64, 3), np.float32), train.data_mesh())
assert len(sharded.addressable_shards) == 8
assert {{s.data.shape for s in sharded.addressable_shards}} == {{(8, 3)}}

single = resume_worker.run({tmp!r} + "/single", 30, data_parallel=False)
parallel = resume_worker.run({tmp!r} + "/parallel", 30, data_parallel=True)
leaf = jax.tree.leaves(parallel.state.params)[0]
assert len(leaf.sharding.device_set) == 8, leaf.sharding

def curve(result):
  return np.array([r["loss"] for r in result.history if r["split"] == "train"])

a, b = curve(single), curve(parallel)
assert len(a) == len(b) == 30
np.testing.assert_allclose(b, a, atol=1e-5, rtol=0)
for x, y in zip(jax.tree.leaves(single.state.params), jax.tree.leaves(parallel.state.params)):
  np.testing.assert_allclose(np.asarray(y), np.asarray(x), atol=1e-5, rtol=0)
# Evaluation with the replicated state and host batches (the last one smaller than the others).
from gmmjax import data
ds = data.load("digits", flatten=True)
eval_step = train.make_eval_step(resume_worker.loss_fn)
e1 = train.evaluate(eval_step, single.state, (ds.images, ds.labels), batch_size=500)
e8 = train.evaluate(eval_step, parallel.state, (ds.images, ds.labels), batch_size=500)
np.testing.assert_allclose(e8["loss"], e1["loss"], atol=1e-5)
print("max abs loss difference", np.abs(a - b).max())
"""


@pytest.mark.slow
def test_eight_devices_match_one_device(tmp_path):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  code = CODE.format(worker_dir=str(WORKER_DIR), tmp=str(tmp_path))
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-4000:]
  assert "max abs loss difference" in out.stdout
