"""End-to-end tiny run of the one-class Fashion-MNIST experiment."""

import dataclasses
import json
import shutil

import jax
import numpy as np
import pytest

from gmmjax import data as gdata
from helpers import snapshot

from experiments import cli
from experiments.anomaly import train as anomaly
from experiments.anomaly.configs import get_config


@pytest.fixture(scope="module")
def fashion_mnist_available():
  # Fails with the install command if Debian's dataset-fashion-mnist is missing.
  gdata.load("fashion_mnist", split="test", source="local", limit=1)


@pytest.mark.slow
def test_tiny_config_end_to_end(tmp_path, fashion_mnist_available):
  config = get_config("tiny")
  results = anomaly.train_and_evaluate(config, tmp_path)
  for name in ("config.json", "metrics.jsonl", "results.json", "results.md", "auroc_per_class.png",
               "learning_curves.png"):
    assert (tmp_path / name).stat().st_size > 0
  assert (tmp_path / "checkpoints" / str(config.epochs)).is_dir()
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == list(range(1, config.epochs + 1))
  assert all(r["finite"] for r in rows)
  assert set(rows[0]) >= {"total", "reconstruction", "energy", "penalty", "transform"}
  for det in anomaly.DETECTORS:
    auc = np.asarray(results["auroc"][det])
    assert auc.shape == (len(config.classes), len(config.seeds))
    # T-shirt vs Sneaker as the normal class: even a tiny model separates them from most classes.
    assert 0.6 < results[det]["mean"] <= 1.0
  assert json.loads((tmp_path / "results.json").read_text()) == results
  # The command again on the finished run reads it: the same results and times, nothing written.
  before = snapshot(tmp_path)
  assert anomaly.train_and_evaluate(config, tmp_path) == results
  assert snapshot(tmp_path) == before


@pytest.mark.slow
def test_vmapped_models_match_separate_runs(tmp_path, fashion_mnist_available):
  """Training two seeds in one vmapped program equals training each seed alone."""
  config = dataclasses.replace(get_config("tiny"), classes=(7,), seeds=(0, 1), epochs=1, test_limit=200)
  both = anomaly.train_and_evaluate(config, tmp_path / "both")
  alone = anomaly.train_and_evaluate(dataclasses.replace(config, seeds=(1,)), tmp_path / "alone")
  np.testing.assert_allclose(both["auroc"]["dagmm"][0][1], alone["auroc"]["dagmm"][0][0], atol=2e-3)


def _checkpoint_steps(workdir):
  return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def _without_timings(history):
  return [{k: v for k, v in r.items() if k not in ("seconds", "elapsed_s")} for r in history]


@pytest.mark.slow
def test_training_checkpoints_and_resumes(tmp_path):
  """A rerun resumes from the last checkpoint; from an earlier one it repeats the same epochs."""
  config = dataclasses.replace(get_config("tiny"), seeds=(0, 1), epochs=2, batch_size=16, checkpoint_every=1)
  x_train = np.random.default_rng(0).uniform(size=(2, 32, 28, 28, 1)).astype(np.float32)
  first = anomaly.train_models(config, x_train, tmp_path)
  assert first.resumed_from is None
  assert _checkpoint_steps(tmp_path) == [1, 2]
  assert [r["step"] for r in first.history] == [1, 2]
  np.testing.assert_array_equal(first.state.step, [2 * 2] * 4)  # 2 epochs of 2 steps, 4 models

  again = anomaly.train_models(config, x_train, tmp_path)
  assert again.resumed_from == 2 and again.history == first.history

  shutil.rmtree(tmp_path / "checkpoints" / "2")  # as if killed during the second epoch
  resumed = anomaly.train_models(config, x_train, tmp_path)
  assert resumed.resumed_from == 1
  assert _without_timings(resumed.history) == _without_timings(first.history)
  for a, b in zip(jax.tree.leaves(first.state), jax.tree.leaves(resumed.state)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_overrides():
  config = cli.parse_overrides(get_config("tiny"), ["epochs=3", "architecture=conv", "classes=(1,)"])
  assert (config.epochs, config.architecture, config.classes) == (3, "conv", (1,))
  with pytest.raises(ValueError, match="unknown"):
    cli.parse_overrides(config, ["nope=1"])


@pytest.mark.parametrize("name", ["tiny", "cpu", "mlp", "full"])
def test_named_configs_load(name):
  config = get_config(name)
  assert config.architecture in ("mlp", "conv") and config.gmm_components >= 1
