"""End-to-end tiny run of the mixture-latent GAN comparison, and its checkpoints and resume."""

import dataclasses
import json
import shutil

import jax
import numpy as np
import pytest

from gmmjax import train as gtrain
from helpers import snapshot

from experiments.gan import train as gan_train
from experiments.mfa import baselines
from experiments.gan.configs import get_config  # noqa: E402


@pytest.mark.slow
def test_tiny_config_end_to_end(tmp_path):
  config = get_config("tiny")
  results = gan_train.train_and_evaluate(config, tmp_path)
  for name in ("config.json", "results.json", "results.md", "samples_mixture.png", "samples_gaussian.png",
               "learning_curves.png"):
    assert (tmp_path / name).stat().st_size > 0
  for latent in ("mixture", "gaussian"):
    assert (tmp_path / latent / "checkpoints" / str(config.steps // config.log_every)).is_dir()
    rows = [json.loads(line) for line in (tmp_path / latent / "metrics.jsonl").read_text().splitlines()]
    assert [r["gan_step"] for r in rows] == list(range(config.log_every, config.steps + 1, config.log_every))
    assert all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in rows)
  models = results["models"]
  assert set(models) == {"real train images", "mixture latent", "gaussian latent"}
  for r in models.values():
    assert r["frechet_distance"] >= 0 and 1 <= r["coverage"] <= 10
  # Real images are far closer to real images than an almost untrained generator's.
  assert models["real train images"]["frechet_distance"] < models["mixture latent"]["frechet_distance"]
  assert json.loads((tmp_path / "results.json").read_text()) == results
  # The command again on the finished run reads it: the same results and times, nothing written.
  before = snapshot(tmp_path)
  assert gan_train.train_and_evaluate(config, tmp_path) == results
  # Loading a generator (for the MFA comparison) reads too, and gives images in [0, 1].
  images = baselines.gan_samples(tmp_path, 7, jax.random.key(0))
  assert images.shape == (7, 784) and 0 <= images.min() and images.max() <= 1
  with pytest.raises(ValueError, match="not 'uniform'"):
    gan_train.load_generator(tmp_path, "uniform")
  assert snapshot(tmp_path) == before


def _without_timings(history):
  return [{k: v for k, v in r.items() if k not in ("seconds_per_step", "elapsed_s")} for r in history]


@pytest.mark.slow
def test_training_checkpoints_and_resumes(tmp_path):
  """A rerun resumes from the last checkpoint; from an earlier one it repeats the same chunks."""
  config = dataclasses.replace(get_config("tiny"), steps=4, log_every=2, checkpoint_every=2, batch_size=8)
  x_train = np.random.default_rng(0).uniform(-1, 1, size=(64, 28, 28, 1)).astype(np.float32)
  key = jax.random.key(0)
  _, first = gan_train.train_gan(key, config, "mixture", x_train, tmp_path)
  assert first.resumed_from is None and int(first.state.step) == 4
  assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == [1, 2]
  assert [r["gan_step"] for r in first.history] == [2, 4]

  _, again = gan_train.train_gan(key, config, "mixture", x_train, tmp_path)
  assert again.resumed_from == 2 and again.history == first.history

  shutil.rmtree(tmp_path / "checkpoints" / "2")  # as if killed during the second chunk
  _, resumed = gan_train.train_gan(key, config, "mixture", x_train, tmp_path)
  assert resumed.resumed_from == 1
  assert _without_timings(resumed.history) == _without_timings(first.history)
  for a, b in zip(jax.tree.leaves(first.state), jax.tree.leaves(resumed.state)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

  # A run with other steps (so other chunks) is refused: its config differs.
  with pytest.raises(gtrain.ConfigMismatchError, match="steps"):
    gan_train.train_gan(key, dataclasses.replace(config, steps=3), "mixture", x_train, tmp_path)
