"""End-to-end tiny run of the mixture-latent GAN comparison."""

import json

import numpy as np
import pytest


from experiments.gan import main as gan_main
from experiments.gan.configs import get_config  # noqa: E402


@pytest.mark.slow
def test_tiny_config_end_to_end(tmp_path):
  config = get_config("tiny")
  results = gan_main.train_and_evaluate(config, tmp_path)
  for name in ("config.json", "metrics.jsonl", "results.json", "results.md", "samples_mixture.png",
               "samples_gaussian.png"):
    assert (tmp_path / name).stat().st_size > 0
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert {r["gan"] for r in rows} == {"mixture", "gaussian"}
  assert all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in rows)
  models = results["models"]
  assert set(models) == {"real train images", "mixture latent", "gaussian latent"}
  for r in models.values():
    assert r["frechet_distance"] >= 0 and 1 <= r["coverage"] <= 10
  # Real images are far closer to real images than an almost untrained generator's.
  assert models["real train images"]["frechet_distance"] < models["mixture latent"]["frechet_distance"]
