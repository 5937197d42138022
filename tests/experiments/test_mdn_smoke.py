"""End-to-end tiny run of the mixture density network experiment, and its true density."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
from scipy import integrate

from gmmjax import train
from helpers import snapshot

from experiments.mdn import train as mdn_train
from experiments.mdn.configs import get_config  # noqa: E402


@pytest.mark.slow
def test_true_conditional_density_integrates_to_one():
  config = get_config("tiny")
  for y in (0.1, 0.5, 0.9):
    value, _ = integrate.quad(
        lambda x: np.exp(mdn_train.true_log_density(np.array([[y]]), np.array([[x]]), config))[0],
        -1.5, 2.5, limit=200, points=[0.0, 0.5, 1.0])
    assert abs(value - 1) < 1e-3


@pytest.mark.slow
def test_tiny_config_end_to_end(tmp_path):
  results = mdn_train.train_and_evaluate(get_config("tiny"), tmp_path)
  for name in ("config.json", "metrics.jsonl", "results.json", "samples.png", "learning_curves.png"):
    assert (tmp_path / name).stat().st_size > 0
  assert np.isfinite(results["test_nll"]) and np.isfinite(results["true_nll"])
  assert results["test_nll"] > results["true_nll"] - 0.05  # the truth is (nearly) unbeatable
  assert json.loads((tmp_path / "results.json").read_text())["gap"] == pytest.approx(results["gap"])


@pytest.mark.slow
def test_rerun_resumes_from_the_checkpoints(tmp_path, monkeypatch):
  """A rerun resumes from the last checkpoint; from an earlier one it repeats the same steps."""
  fit, resumed_from = train.run, []

  def recording_fit(*args, **kwargs):
    result = fit(*args, **kwargs)
    resumed_from.append(result.resumed_from)
    return result

  monkeypatch.setattr(train, "run", recording_fit)
  config = dataclasses.replace(get_config("tiny"), steps=60, checkpoint_every=30)

  def run():
    results = mdn_train.train_and_evaluate(config, tmp_path)
    history = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in train.read_metrics(tmp_path)]
    return results, history

  first, first_metrics = run()
  assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == [30, 60]
  assert [r["step"] for r in train.read_metrics(tmp_path)] == list(range(1, 61))
  # The finished run is read: the same results and times, nothing written.
  before = snapshot(tmp_path)
  assert run() == (first, first_metrics)
  assert snapshot(tmp_path) == before
  shutil.rmtree(tmp_path / "checkpoints" / "60")  # as if killed after step 30
  again, again_metrics = run()
  assert again_metrics == first_metrics
  del again["total_seconds"], first["total_seconds"]
  assert again == first
  assert resumed_from == [None, 60, 30]
