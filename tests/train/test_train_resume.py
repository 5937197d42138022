"""A run killed with SIGKILL and restarted ends exactly where an uninterrupted run ends."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from gmmjax import train

WORKER = pathlib.Path(__file__).with_name("resume_worker.py")
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}
NUM_STEPS = 60


def _run(workdir, *extra, check=True):
  return subprocess.run([sys.executable, str(WORKER), str(workdir), str(NUM_STEPS), *extra], env=ENV,
                        capture_output=True, text=True, timeout=300, check=check)


def _train_losses(workdir):
  return [(r["step"], r["loss"]) for r in train.read_metrics(workdir) if r["split"] == "train"]


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
  reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
  out = _run(reference)
  assert "resumed_from=None" in out.stdout

  proc = subprocess.Popen([sys.executable, str(WORKER), str(interrupted), str(NUM_STEPS), "--sleep", "0.1"],
                          env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  checkpoints = interrupted / "checkpoints"
  deadline = time.time() + 240
  while time.time() < deadline:
    steps = [int(p.name) for p in checkpoints.glob("*") if p.name.isdigit()] if checkpoints.exists() else []
    if steps and max(steps) >= 15:
      break
    assert proc.poll() is None, proc.communicate()
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait(timeout=60)
  proc.stdout.close()
  proc.stderr.close()
  assert proc.returncode == -signal.SIGKILL
  assert not (interrupted / "final.npz").exists()
  killed_at = max(s for s, _ in _train_losses(interrupted))
  assert killed_at < NUM_STEPS

  out = _run(interrupted)
  resumed_from = int(out.stdout.split("resumed_from=")[1].split()[0])
  assert 15 <= resumed_from < NUM_STEPS

  a, b = np.load(reference / "final.npz"), np.load(interrupted / "final.npz")
  assert sorted(a.files) == sorted(b.files)
  for name in a.files:
    np.testing.assert_array_equal(a[name], b[name], err_msg=name)
  # Step for step: the resumed run's log is the uninterrupted run's, record by record.
  assert _train_losses(interrupted) == _train_losses(reference)
  assert [s for s, _ in _train_losses(reference)] == list(range(1, NUM_STEPS + 1))
