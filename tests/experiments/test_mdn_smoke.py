"""End-to-end tiny run of the mixture density network experiment, and its true density."""

import json

import numpy as np
import pytest
from scipy import integrate

from experiments.mdn import main as mdn_main
from experiments.mdn.configs import get_config  # noqa: E402


def test_true_conditional_density_integrates_to_one():
  config = get_config("tiny")
  for y in (0.1, 0.5, 0.9):
    value, _ = integrate.quad(
        lambda x: np.exp(mdn_main.true_log_density(np.array([[y]]), np.array([[x]]), config))[0],
        -1.5, 2.5, limit=200, points=[0.0, 0.5, 1.0])
    assert abs(value - 1) < 1e-3


def test_tiny_config_end_to_end(tmp_path):
  results = mdn_main.train_and_evaluate(get_config("tiny"), tmp_path)
  for name in ("config.json", "metrics.jsonl", "results.json", "samples.png"):
    assert (tmp_path / name).stat().st_size > 0
  assert np.isfinite(results["test_nll"]) and np.isfinite(results["true_nll"])
  assert results["test_nll"] > results["true_nll"] - 0.05  # the truth is (nearly) unbeatable
  assert json.loads((tmp_path / "results.json").read_text())["gap"] == pytest.approx(results["gap"])
