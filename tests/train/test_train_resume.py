"""A run killed with SIGKILL (once, or many times at random moments) and restarted ends exactly where an
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


KILL_STEPS = 30


def _start(workdir, *extra):
  command = [sys.executable, str(WORKER), str(workdir), str(KILL_STEPS), "--checkpoint-every", "3", *extra]
  return subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


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
  proc = _start(reference)
  assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-3000:]
  proc.stderr.close()

  kills = 0
  for attempt in range(40):
    proc = _start(workdir, "--sleep", "0.01")  # Steps of ~10 ms: saves are a good part of the time.
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
    returncode = proc.wait(timeout=120)
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert returncode in (0, -signal.SIGKILL), stderr[-3000:]
    if returncode == 0:
      break
    if kills >= 12:
      proc = _start(workdir)
      assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-3000:]
      proc.stderr.close()
      break
  assert kills >= 8

  a, b = np.load(reference / "final.npz"), np.load(workdir / "final.npz")
  assert sorted(a.files) == sorted(b.files)
  for name in a.files:
    np.testing.assert_array_equal(a[name], b[name], err_msg=name)
  assert _train_losses(workdir) == _train_losses(reference)
  assert [s for s, _ in _train_losses(workdir)] == list(range(1, KILL_STEPS + 1))
