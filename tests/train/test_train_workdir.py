"""The workdir under hostile use: failed writes, changed configs, two writers, damaged checkpoints,
shorter reruns and read-only reading. Each test reproduces a way the first version lost or misreported
work."""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading

import jax
import numpy as np
import pytest
from helpers import snapshot

from gmmjax import train

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import resume_worker  # noqa: E402

WORKER = pathlib.Path(__file__).with_name("resume_worker.py")
# Reading a damaged checkpoint leaves orbax coroutines behind that report when collected.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _params(state):
  return [np.asarray(v) for v in jax.tree.leaves(jax.device_get(state.params))]


def _assert_same_params(a, b):
  for x, y in zip(_params(a), _params(b), strict=True):
    np.testing.assert_array_equal(x, y)


def _train_losses(history):
  return [(r["step"], r["loss"]) for r in history if r["split"] == "train"]


@pytest.mark.slow
def test_failed_write_during_resume_loses_no_history(tmp_path):
  # A run killed after step 10's metrics but before its checkpoint: metrics 1..10, checkpoint 5.
  reference = resume_worker.run(tmp_path / "reference", 12)
  workdir = tmp_path / "run"
  resume_worker.run(workdir, 10)
  shutil.rmtree(workdir / "checkpoints" / "10")
  metrics = workdir / "metrics.jsonl"
  before = metrics.read_bytes()
  # The resume's first write past 3 records' size fails (Python ignores SIGXFSZ, so it gets EFBIG): a
  # full disk, or a kill in mid-write.
  limit = len(b"".join(before.splitlines(keepends=True)[:3]))
  proc = subprocess.run(["prlimit", f"--fsize={limit}", sys.executable, str(WORKER), str(workdir), "12"],
                        capture_output=True, env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=300)
  assert proc.returncode == 1 and b"File too large" in proc.stderr, proc.stderr.decode()[-2000:]
  assert metrics.read_bytes().startswith(before)  # Nothing that was written is gone.
  resumed = resume_worker.run(workdir, 12)
  assert resumed.resumed_from == 5
  assert _train_losses(resumed.history) == _train_losses(reference.history)
  assert [s for s, _ in _train_losses(train.read_metrics(workdir))] == list(range(1, 13))
  _assert_same_params(resumed.state, reference.state)


def test_resume_appends_and_reads_each_step_once(tmp_path):
  resume_worker.run(tmp_path, 10, checkpoint_every=5)
  shutil.rmtree(tmp_path / "checkpoints" / "10")  # Killed after step 10's metrics, before its save.
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 11, "split": "tra')  # ... and in the middle of a record.
  before = (tmp_path / "metrics.jsonl").read_bytes()
  resumed = resume_worker.run(tmp_path, 12)
  after = (tmp_path / "metrics.jsonl").read_bytes()
  assert after.startswith(before)  # Append-only: the repeated steps 6..10 are written again, after.
  assert len(after.splitlines()) == 10 + 1 + 7
  assert [r["step"] for r in resumed.history] == list(range(1, 13))
  assert all(r["elapsed_s"] > 0 for r in resumed.history)


def test_changed_config_is_refused_naming_the_fields_unless_forced(tmp_path):
  config = {"learning_rate": 1e-3, "model": {"width": 32}, "progress": True}
  resume_worker.run(tmp_path, 6, config=config)
  saved = (tmp_path / "config.json").read_text()
  changed = {"learning_rate": 2e-3, "model": {"width": 32}, "progress": False}
  match = r"(?s)learning_rate: 0.001 .*0.002.*new workdir.*force"
  with pytest.raises(train.CheckpointError, match=match) as e:
    resume_worker.run(tmp_path, 10, config=changed)
  assert isinstance(e.value, train.ConfigMismatchError)
  assert (tmp_path / "config.json").read_text() == saved
  assert [r["step"] for r in train.read_metrics(tmp_path)] == list(range(1, 7))
  # Fields that do not change the result (progress) may differ.
  resume_worker.run(tmp_path, 6, config={**config, "progress": False})

  forced = resume_worker.run(tmp_path, 10, config=changed, resume="force")
  assert forced.resumed_from == 6
  assert json.loads((tmp_path / "config.json").read_text())["learning_rate"] == 2e-3
  record = json.loads((tmp_path / "resumes.jsonl").read_text())
  assert record["step"] == 6 and record["changed"] == {"learning_rate": {"was": 1e-3, "now": 2e-3}}


def test_shorter_run_is_evaluated_at_its_own_step_or_refused(tmp_path):
  short = resume_worker.run(tmp_path / "short", 5)
  resume_worker.run(tmp_path / "long", 10, checkpoint_every=5)  # Checkpoints 5 and 10.
  again = resume_worker.run(tmp_path / "long", 5)
  assert again.resumed_from == 5 and int(again.state.step) == 5
  _assert_same_params(again.state, short.state)
  assert [r["step"] for r in again.history] == list(range(1, 6))
  with pytest.raises(train.CheckpointError, match="went to step 10.*no checkpoint at step 7"):
    resume_worker.run(tmp_path / "long", 7)


def test_second_writer_gets_a_clear_error(tmp_path):
  started, release = threading.Event(), threading.Event()
  results = {}

  def hold(step, state, metrics):
    if step == 2:
      started.set()
      release.wait(timeout=120)

  def first():
    results["first"] = resume_worker.run(tmp_path, 6, callback=hold)

  thread = threading.Thread(target=first)
  thread.start()
  try:
    assert started.wait(timeout=120)
    with pytest.raises(RuntimeError, match=f"{tmp_path}.*in use by another process") as e:
      resume_worker.run(tmp_path, 6)
    assert isinstance(e.value, train.WorkdirLockedError)
  finally:
    release.set()
    thread.join(timeout=120)
  assert [r["step"] for r in results["first"].history] == list(range(1, 7))
  assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 6


def test_damaged_latest_checkpoint_falls_back_to_newest_intact_one(tmp_path):
  reference = resume_worker.run(tmp_path / "reference", 20)
  workdir = tmp_path / "run"
  resume_worker.run(workdir, 15, keep=3)  # Checkpoints 5, 10, 15.
  target = max((p for p in (workdir / "checkpoints" / "15" / "state").rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)
  raw = bytearray(target.read_bytes())
  raw[len(raw) // 2:len(raw) // 2 + 64] = bytes(64)
  target.write_bytes(bytes(raw))
  (workdir / "checkpoints" / "20").mkdir()  # An empty numbered folder, as a kill can leave.
  with pytest.warns(UserWarning, match="Falling back") as warned:
    resumed = resume_worker.run(workdir, 20, keep=3)
  assert not any("delete" in str(w.message) for w in warned)
  assert resumed.resumed_from == 10
  _assert_same_params(resumed.state, reference.state)
  assert _train_losses(resumed.history) == _train_losses(reference.history)
  assert sorted(p.name.split("-")[0] for p in (workdir / "checkpoints.damaged").iterdir()) == ["15", "20"]


def test_reading_a_finished_run_writes_nothing(tmp_path):
  config = {"learning_rate": 1e-3}
  done = resume_worker.run(tmp_path, 6, config=config)
  before = snapshot(tmp_path)
  modes = {p: p.stat().st_mode for p in [tmp_path, *tmp_path.rglob("*")]}
  for p in modes:  # Read-only for a user who is not root (root writes anyway; the snapshot tells).
    p.chmod(modes[p] & ~0o222)
  try:
    again = resume_worker.run(tmp_path, 6, config=config)
  finally:
    for p, mode in modes.items():
      p.chmod(mode)
  assert snapshot(tmp_path) == before
  assert again.resumed_from == 6
  _assert_same_params(again.state, done.state)
  assert [r["step"] for r in again.history] == list(range(1, 7))


def test_results_are_written_last_and_read_back_only_for_their_config(tmp_path):
  config = {"learning_rate": 1e-3, "progress": True, "classes": (0, 7)}
  seen = []

  def plots(workdir):  # The results' other files come first: results.json marks them complete.
    seen.append(sorted(p.name for p in workdir.iterdir()))
    (workdir / "plot.png").write_bytes(b"png")

  assert train.read_results(tmp_path, config) is None
  written = train.write_results(tmp_path, config, {"auc": {0: 0.5}, "t": np.float64(2.0)},
                                {"results.md": "| table |\n"}, plots)
  assert seen == [[]]
  assert written == {"auc": {"0": 0.5}, "t": 2.0, "config": {"learning_rate": 1e-3, "progress": True,
                                                                 "classes": [0, 7]}}
  assert (tmp_path / "results.md").read_text() == "| table |\n"
  assert train.read_results(tmp_path, config) == written
  assert train.read_results(tmp_path, {**config, "progress": False}, ignore=train.CONFIG_IGNORE) == written
  assert train.read_results(tmp_path, {**config, "progress": False}) is None
  assert train.read_results(tmp_path, {**config, "learning_rate": 1e-2}, ignore=train.CONFIG_IGNORE) is None
  (tmp_path / "results.json").write_text('{"auc": ')  # Torn by hand: evaluated again, not an error.
  assert train.read_results(tmp_path, config) is None

  before = snapshot(tmp_path)
  access = os.access
  with pytest.MonkeyPatch.context() as m:  # Root writes anyway: pretend the folder is read-only.
    m.setattr(os, "access", lambda path, mode: False if str(path) == str(tmp_path) else access(path, mode))
    with pytest.warns(UserWarning, match="read-only"):
      assert train.write_results(tmp_path, config, {"auc": 1.0}, plots=plots)["auc"] == 1.0
  assert snapshot(tmp_path) == before and len(seen) == 1
