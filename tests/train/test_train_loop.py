"""fit: metrics JSONL, config, checkpoint retention, in-process resume, refusing bad checkpoints."""

import hashlib
import json
import pathlib
import sys

import jax
import numpy as np
import pytest

from gmmjax import train

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import resume_worker  # noqa: E402
from helpers import fast_only

# Reading a damaged checkpoint leaves orbax coroutines behind that report when collected.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _tree_digest(directory: pathlib.Path) -> dict:
  return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(directory.rglob("*")) if p.is_file()}


def _params(result):
  return [np.asarray(v) for v in jax.tree.leaves(jax.device_get(result.state.params))]


@pytest.mark.slow
def test_fit_writes_metrics_config_and_keeps_checkpoints(tmp_path):
  result = resume_worker.run(tmp_path, 12, checkpoint_every=5)
  records = train.read_metrics(tmp_path)
  assert [r["step"] for r in records] == list(range(1, 13))
  assert all({"loss", "accuracy", "grad_norm", "split"} <= set(r) for r in records)
  assert all(np.isfinite(r["loss"]) for r in records)
  steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
  assert steps == [10, 12]  # keep=2, and always the last step.
  assert result.resumed_from is None and int(result.state.step) == 12


@pytest.mark.slow
def test_resume_in_process_continues_the_same_run(tmp_path):
  straight = resume_worker.run(tmp_path / "a", 14)
  resume_worker.run(tmp_path / "b", 8, checkpoint_every=4)
  resumed = resume_worker.run(tmp_path / "b", 14)
  assert resumed.resumed_from == 8
  for a, b in zip(_params(straight), _params(resumed)):
    np.testing.assert_array_equal(a, b)
  assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]
  again = resume_worker.run(tmp_path / "b", 14)  # Already done: restores and returns.
  assert again.resumed_from == 14
  for a, b in zip(_params(straight), _params(again)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_incompatible_checkpoint_is_refused_and_untouched(tmp_path):
  resume_worker.run(tmp_path, 5)
  before = _tree_digest(tmp_path / "checkpoints")
  with pytest.raises(train.IncompatibleCheckpointError, match="run settings"):
    resume_worker.run(tmp_path, 10, batch_size=32)

  ds_x = np.zeros((40, 5), np.float32)
  ds_y = np.zeros((40,), np.int32)
  state = resume_worker.make_state(jax.random.key(0), ds_x[:1])  # Another input width: other shapes.
  with pytest.raises(train.IncompatibleCheckpointError, match=r"Dense_0.*kernel"):
    train.run(train.make_train_step(resume_worker.loss_fn), state, (ds_x, ds_y), key=jax.random.key(0),
              num_steps=10, batch_size=64 // 2, workdir=tmp_path, seed=1, progress=False)
  assert _tree_digest(tmp_path / "checkpoints") == before


@pytest.mark.parametrize("damage", fast_only(["data", "metadata"], "metadata"))
def test_corrupted_checkpoint_is_refused_and_untouched(tmp_path, damage):
  resume_worker.run(tmp_path, 5)
  step_dir = tmp_path / "checkpoints" / "5"
  if damage == "data":
    target = max((p for p in (step_dir / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2:len(raw) // 2 + 64] = bytes(64)  # Zero a stretch in the middle of the arrays.
    target.write_bytes(bytes(raw))
  else:
    (step_dir / "state" / "_METADATA").write_text("{not json")
  before = _tree_digest(tmp_path / "checkpoints")
  with pytest.raises(train.CorruptCheckpointError, match="left as"):
    resume_worker.run(tmp_path, 10)
  assert _tree_digest(tmp_path / "checkpoints") == before


def test_config_is_written_and_bad_arguments_raise(tmp_path):
  x, y = np.zeros((10, 64), np.float32), np.zeros((10,), np.int32)
  state = resume_worker.make_state(jax.random.key(0), x[:1])
  step = train.make_train_step(resume_worker.loss_fn)
  train.run(step, state, (x, y), key=jax.random.key(0), num_steps=2, batch_size=5, workdir=tmp_path,
            progress=False, config=train.OptimizerConfig(learning_rate=0.5))
  assert json.loads((tmp_path / "config.json").read_text())["learning_rate"] == 0.5
  with pytest.raises(ValueError, match="larger than the training set"):
    train.run(step, state, (x, y), key=jax.random.key(0), num_steps=2, batch_size=11,
              workdir=tmp_path / "other", progress=False)


def test_initial_state_stays_usable(tmp_path):
  x, y = np.zeros((10, 64), np.float32), np.zeros((10,), np.int32)
  state = resume_worker.make_state(jax.random.key(0), x[:1])
  step = train.make_train_step(resume_worker.loss_fn)
  for name in ("a", "b"):  # The second run starts from the same initial state object.
    train.run(step, state, (x, y), key=jax.random.key(0), num_steps=2, batch_size=5, workdir=tmp_path / name,
              progress=False)
  assert np.all(np.isfinite(np.asarray(jax.tree.leaves(state.params)[0])))


def test_checkpointer_roundtrip_with_typed_keys_and_extra(tmp_path):
  state = {"key": jax.random.key(7), "w": np.arange(6, dtype=np.float32).reshape(2, 3),
           "extra": {"count": np.int32(3)}}
  ckpt = train.Checkpointer(tmp_path, keep=1, run_info={"seed": 0})
  ckpt.save(4, state)
  ckpt.wait()
  restored = ckpt.restore(4, state)
  ckpt.close()
  np.testing.assert_array_equal(jax.random.key_data(restored["key"]), jax.random.key_data(state["key"]))
  np.testing.assert_array_equal(restored["w"], state["w"])
  assert int(restored["extra"]["count"]) == 3
  with pytest.raises(train.IncompatibleCheckpointError, match="run settings"):
    train.Checkpointer(tmp_path, run_info={"seed": 1}).restore(4, state)


def test_fit_is_a_deprecated_alias_of_run(tmp_path):
  x, y = np.zeros((10, 64), np.float32), np.zeros((10,), np.int32)
  state = resume_worker.make_state(jax.random.key(0), x[:1])
  with pytest.warns(DeprecationWarning, match="train.run"):
    result = train.fit(train.make_train_step(resume_worker.loss_fn), state, (x, y), key=jax.random.key(0),
                       num_steps=2, batch_size=5, workdir=tmp_path, progress=False)
  assert isinstance(result, train.TrainResult) and train.FitResult is train.TrainResult
