"""A run killed with SIGKILL many times at random moments and restarted ends exactly where an
uninterrupted run ends."""

import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from gmmjax import train

WORKER = pathlib.Path(__file__).with_name("resume_worker.py")
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}
KILL_STEPS = 45


def _train_losses(workdir):
  return [(r["step"], r["loss"]) for r in train.read_metrics(workdir) if r["split"] == "train"]


def _start(workdir, *extra):
  command = [sys.executable, str(WORKER), str(workdir), str(KILL_STEPS), "--checkpoint-every", "3", *extra]
  return subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc):
  """Waits for a run that is not killed; returns the step it resumed from (None: from scratch)."""
  stdout, stderr = proc.communicate(timeout=300)
  assert proc.returncode == 0, stderr[-3000:]
  resumed_from = stdout.split("resumed_from=")[1].split()[0]
  return None if resumed_from == "None" else int(resumed_from)


def _train_steps_on_disk(workdir):
  path = workdir / "metrics.jsonl"
  return path.read_bytes().count(b'"split": "train"') if path.exists() else 0


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing(tmp_path):
  """Many runs on one workdir, each killed at a random moment (while starting, restoring, stepping, saving a
  checkpoint, deleting an old one or appending metrics), then one run to the end: the history holds every
  step once and the parameters are those of an uninterrupted run."""
  rng = random.Random(0)
  reference, workdir = tmp_path / "reference", tmp_path / "killed"
  assert _finish(_start(reference)) is None

  kills, resumed_from = 0, None
  for attempt in range(40):
    proc = _start(workdir, "--sleep", "0.02")  # Steps of ~20 ms: a kill window (<= 0.3 s) spans a few saves.
    if attempt % 4 == 3:
      time.sleep(rng.uniform(0.0, 4.0))  # Anywhere, startup and restore included.
    else:  # Somewhere in training: after this run's first new record.
      seen, deadline = _train_steps_on_disk(workdir), time.time() + 120
      while _train_steps_on_disk(workdir) == seen and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
      time.sleep(rng.uniform(0.0, 0.3))
    if proc.poll() is None:
      proc.send_signal(signal.SIGKILL)
      kills += 1
      proc.wait(timeout=120)
      proc.stdout.close()
      proc.stderr.close()
      assert proc.returncode == -signal.SIGKILL
    else:
      resumed_from = _finish(proc)
      break
    if kills >= 10:
      resumed_from = _finish(_start(workdir))
      break
  assert kills >= 8
  # The last run went on from a checkpoint: resuming, not retraining, gave the equal result below.
  assert resumed_from is not None and 0 < resumed_from <= KILL_STEPS

  a, b = np.load(reference / "final.npz"), np.load(workdir / "final.npz")
  assert sorted(a.files) == sorted(b.files)
  for name in a.files:
    np.testing.assert_array_equal(a[name], b[name], err_msg=name)
  assert _train_losses(workdir) == _train_losses(reference)
  assert [s for s, _ in _train_losses(workdir)] == list(range(1, KILL_STEPS + 1))
