"""End-to-end tiny run of the one-class Fashion-MNIST experiment."""

import dataclasses
import json

import numpy as np
import pytest

from gmmjax import data as gdata

from experiments import cli
from experiments.anomaly import main as anomaly
from experiments.anomaly.configs import get_config


@pytest.fixture(scope="module")
def fashion_mnist_available():
  # Fails with the install command if Debian's dataset-fashion-mnist is missing.
  gdata.load("fashion_mnist", split="test", source="local", limit=1)


@pytest.mark.slow
def test_tiny_config_end_to_end(tmp_path, fashion_mnist_available):
  config = get_config("tiny")
  results = anomaly.train_and_evaluate(config, tmp_path)
  for name in ("config.json", "metrics.jsonl", "results.json", "results.md", "auroc_per_class.png"):
    assert (tmp_path / name).stat().st_size > 0
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["epoch"] for r in rows] == list(range(1, config.epochs + 1))
  assert all(r["finite"] for r in rows)
  for det in ("dagmm", "gmm_latent"):
    auc = np.asarray(results["auroc"][det])
    assert auc.shape == (len(config.classes), len(config.seeds))
    # T-shirt vs Sneaker as the normal class: even a tiny model separates them from most classes.
    assert 0.6 < results[det]["mean"] <= 1.0
  assert json.loads((tmp_path / "results.json").read_text())["gmm_latent"]["mean"] == results["gmm_latent"]["mean"]


@pytest.mark.slow
def test_vmapped_models_match_separate_runs(tmp_path, fashion_mnist_available):
  """Training two seeds in one vmapped program equals training each seed alone."""
  config = dataclasses.replace(get_config("tiny"), classes=(7,), seeds=(0, 1), epochs=1, test_limit=200)
  both = anomaly.train_and_evaluate(config, tmp_path / "both")
  alone = anomaly.train_and_evaluate(dataclasses.replace(config, seeds=(1,)), tmp_path / "alone")
  np.testing.assert_allclose(both["auroc"]["dagmm"][0][1], alone["auroc"]["dagmm"][0][0], atol=2e-3)


def test_overrides():
  config = cli.parse_overrides(get_config("tiny"), ["epochs=3", "architecture=conv", "classes=(1,)"])
  assert (config.epochs, config.architecture, config.classes) == (3, "conv", (1,))
  with pytest.raises(ValueError, match="unknown"):
    cli.parse_overrides(config, ["nope=1"])
