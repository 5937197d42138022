"""End-to-end tiny run of the MFA experiment, with a tiny VaDE of Fashion-MNIST as the compared model."""

import json

import jax
import numpy as np
import pytest

from gmmjax.nn import networks, vade
from helpers import snapshot

from experiments.mfa import baselines, run
from experiments.vade import generate as vade_generate
from experiments.vade import train as vade_train


@pytest.mark.slow
def test_tiny_run_scores_mfa_diag_gmm_vade_and_real_images(tmp_path):
  vade_dir = tmp_path / "vade"
  config = vade_train.load_config("tiny", ["dataset='fashion_mnist'", "split='train'", "limit=500", "stride=1",
                                           "seeds=(0,)"])
  vade_train.train_and_evaluate(config, vade_dir)
  before = snapshot(vade_dir)
  results = run.main(["--config", "tiny", "--workdir", str(tmp_path / "mfa"), "--vade-workdir", str(vade_dir)])
  assert snapshot(vade_dir) == before  # the compared run is only read
  assert json.loads((tmp_path / "mfa" / "results.json").read_text()) == results
  for name in ("samples_per_component.png", "inpainting.png"):
    assert (tmp_path / "mfa" / name).stat().st_size > 0
  for name in ("mfa", "mfa_noise_free", "diag_gmm", "vade", "real_images"):
    assert 0 <= results[name]["ndb_over_k"] <= 1 and results[name]["frechet_distance"] >= 0
  # Real images against real images: the smallest distance of all.
  assert results["real_images"]["frechet_distance"] == min(results[n]["frechet_distance"] for n in results
                                                           if isinstance(results[n], dict) and
                                                           "frechet_distance" in results[n])
  assert results["vade"]["trained_on"] == "train" and np.isfinite(results["vade"]["test_bits_per_dim_bound"])
  assert results["mfa"]["test_bits_per_dim"] < results["diag_gmm"]["test_bits_per_dim"]

  # The bound is VaDE's ELBO (same draws of z) plus each pixel's continuous-Bernoulli log normaliser.
  _, model, params, _ = vade_generate.load_trained(vade_dir)
  x = jax.random.uniform(jax.random.key(1), (6, 28, 28, 1))
  key = jax.random.key(2)
  mean, log_var = model.encode(params, x)
  logits = model.decode(params, vade._reparam(key, mean, log_var, 3).reshape(18, -1))
  x_rep = np.broadcast_to(x[None], (3, *x.shape)).reshape(logits.shape)
  log_norm = (networks.continuous_bernoulli_log_prob(logits, x_rep)
              - networks.bernoulli_log_prob(logits, x_rep)).reshape(3, 6).mean(0)
  expected = vade.elbo(key, model, params, x, n_samples=3).elbo + log_norm
  np.testing.assert_allclose(baselines._bound(key, model, params, x, 3), expected, rtol=1e-5)
