"""End-to-end smoke test of experiments/vade with the tiny config, VaDE and GMVAE: train, write, resume,
generate."""

import dataclasses
import json
import os
import shutil
import time

import jax
import numpy as np
import pytest
from helpers import snapshot

from experiments.vade import encode as vade_encode
from experiments.vade import generate as vade_generate
from experiments.vade import train as vade_train


@pytest.mark.slow
# VaDE's default path end to end; GMVAE's run also takes the denoising paths (dropout and shifts in
# pretraining, dropout in the ELBO). The full prior's own code is checked in tests/nn/test_vade.py.
@pytest.mark.parametrize("model, prior_covariance, input_dropout, max_shift",
                         [("vade", "diag", 0.0, 0), ("gmvae", "diag", 0.2, 1)])
def test_tiny_run_writes_outputs_resumes_and_generates(tmp_path, model, prior_covariance, input_dropout,
                                                       max_shift):
  assert set(vade_train.MODELS) == {"vade", "gmvae"}
  config = vade_train.load_config("tiny", [f"model={model}", f"prior_covariance={prior_covariance!r}",
                                          f"pretrain_input_dropout={input_dropout}",
                                          f"pretrain_max_shift={max_shift}",
                                          f"input_dropout={input_dropout}"])
  results = vade_train.train_and_evaluate(config, tmp_path)

  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["config"]["model"] == model
  assert saved["config"]["prior_covariance"] == prior_covariance
  assert saved["config"]["pretrain_input_dropout"] == input_dropout
  assert saved["config"]["pretrain_max_shift"] == max_shift
  assert saved["config"]["input_dropout"] == input_dropout
  assert saved["seeds"] == [0, 1]
  assert saved["nan_free_seeds"] == 2
  for seed in saved["per_seed"]:
    # 25 images of each of 10 digits in 3 clusters: matched accuracy lies in [0.1, 0.3].
    assert 0.1 - 1e-9 <= seed["acc"] <= 0.3 + 1e-9
    assert np.isfinite(seed["elbo"]) and seed["elbo"] < 0  # Bernoulli likelihood: log p(x) < 0.
  for name in ("samples_per_component.png", "reconstructions.png", "learning_curves.png"):
    assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  for phase, epochs in (("pretrain", config.pretrain_epochs), ("joint", config.epochs)):
    records = [json.loads(line) for line in (tmp_path / phase / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == list(range(1, epochs + 1))
    assert all(r["nan_seeds"] == 0 for r in records)
    assert (tmp_path / phase / "checkpoints" / str(epochs)).is_dir()

  # A second call resumes from the final checkpoints and reproduces the same model.
  again = vade_train.train_and_evaluate(config, tmp_path)
  assert [s["acc"] for s in again["per_seed"]] == [s["acc"] for s in results["per_seed"]]
  np.testing.assert_allclose([s["elbo"] for s in again["per_seed"]], [s["elbo"] for s in results["per_seed"]],
                             rtol=1e-5)

  out = tmp_path / "gen.npz"
  vade_generate.main(["--workdir", str(tmp_path), "--n", "2", "--per_component", "--out", str(out)])
  arrays = np.load(out)
  assert arrays["images"].shape == (2 * config.n_components, 28, 28, 1)
  assert arrays["images"].dtype == np.float32
  np.testing.assert_array_equal(arrays["components"], np.repeat(np.arange(config.n_components), 2))
  assert np.all((arrays["images"] >= 0) & (arrays["images"] <= 1))

  out = tmp_path / "codes.npz"
  vade_encode.main(["--workdir", str(tmp_path), "--seed_index", "1", "--out", str(out)])
  arrays = np.load(out)
  images, labels, _ = vade_train.load_images(config)
  _, model, params, epoch = vade_generate.load_trained(tmp_path, seed_index=1)
  assert arrays["epoch"] == arrays["epochs"] == epoch == config.epochs
  assert arrays["codes"].shape == (len(images), config.latent_dim) and arrays["codes"].dtype == np.float32
  np.testing.assert_array_equal(arrays["labels"], labels)
  np.testing.assert_allclose(arrays["codes"], model.encode(params, images)[0], rtol=1e-5, atol=1e-6)


def test_config_overrides_are_parsed_and_checked():
  config = vade_train.load_config("tiny", ["epochs=7", "hidden=(8, 4)", "elbo_method=monte_carlo"])
  assert config.epochs == 7 and config.hidden == (8, 4) and config.elbo_method == "monte_carlo"
  with pytest.raises(ValueError, match="unknown config field"):
    vade_train.load_config("tiny", ["epochz=7"])
  with pytest.raises(ValueError, match="model"):
    vade_train.build_model(vade_train.load_config("tiny", ["model=vae"]))
  with pytest.raises(ValueError, match="prior_covariance"):
    vade_train.build_model(vade_train.load_config("tiny", ["model=gmvae", "prior_covariance='full'"]))
  with pytest.raises(ValueError, match="prior_covariance"):
    vade_train.build_model(vade_train.load_config("tiny", ["prior_covariance='tied'"]))
  for name in ("pretrain_input_dropout", "input_dropout"):
    with pytest.raises(ValueError, match=name):
      vade_train.build_model(vade_train.load_config("tiny", [f"{name}=1.0"]))
  with pytest.raises(ValueError, match="kl_weight"):
    vade_train.build_model(vade_train.load_config("tiny", ["kl_weight=-0.5"]))
  for model in ("vade", "gmvae"):
    config = vade_train.load_config("tiny", [f"model={model}", "uniform_weights=True"])
    assert vade_train.build_model(config).uniform_weights


def test_run_uses_the_configured_matmul_precision(tmp_path, monkeypatch):
  seen = []
  monkeypatch.setattr(vade_train, "_train_and_evaluate",
                      lambda config, workdir, resume: seen.append(jax.config.jax_default_matmul_precision))
  for precision in ("float32", "tensorfloat32"):
    config = vade_train.load_config("tiny", [f"matmul_precision='{precision}'"])
    vade_train.train_and_evaluate(config, tmp_path)
  assert seen == ["float32", "tensorfloat32"]
  assert vade_train.load_config("fashion_mnist").matmul_precision == "float32"
  monkeypatch.undo()
  with pytest.raises(ValueError, match="tensorfloat32"):
    config = vade_train.load_config("tiny", ["matmul_precision='tf32'"])
    vade_train.train_and_evaluate(config, tmp_path / "w")
  assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
@pytest.mark.parametrize("model", ["vade", "gmvae"])
def test_models_take_the_image_shape_of_their_data_set(architecture, model):
  config = vade_train.load_config("tiny", ["dataset='digits'", f"architecture='{architecture}'",
                                           f"model='{model}'", "prior_covariance='diag'"])
  built = vade_train.build_model(config)
  x = jax.ShapeDtypeStruct((2, 8, 8, 1), np.float32)
  params = jax.eval_shape(built.init, jax.random.key(0), x)  # traced only: nothing compiles
  images, _ = jax.eval_shape(lambda p: built.sample(jax.random.key(1), p, 3), params)
  assert images.shape == (3, 8, 8, 1)


def test_gmvae_config_differs_from_default_only_in_the_model():
  default, gmvae = vade_train.load_config("default"), vade_train.load_config("gmvae")
  assert default.model == "vade" and gmvae.model == "gmvae" and gmvae.prior_covariance == "diag"
  assert dataclasses.replace(gmvae, model="vade", prior_covariance=default.prior_covariance) == default
  assert isinstance(vade_train.build_model(gmvae), vade_train.gmvae.GMVAE)
  assert isinstance(vade_train.build_model(default), vade_train.vade.VaDE)


@pytest.mark.slow
def test_uniform_weights_warmup_is_the_uniform_model_until_p_c_is_released(tmp_path):
  def run(name, *overrides):
    config = vade_train.load_config("tiny", ["seeds=(0,)", "epochs=2", *overrides])
    return vade_train.train_and_evaluate(config, tmp_path / name)["per_seed"][0]

  uniform = run("uniform", "uniform_weights=True")
  held = run("held", "uniform_weights_epochs=2")  # Held for the whole run: the uniform model, exactly.
  assert held == uniform
  released = run("released", "uniform_weights_epochs=1")  # Learned from the second epoch on.
  assert released["init_acc"] == uniform["init_acc"]
  assert released["elbo"] != uniform["elbo"]
  with pytest.raises(ValueError, match="uniform_weights_epochs"):
    vade_train.build_model(vade_train.load_config("tiny", ["uniform_weights_epochs=-1"]))


@pytest.mark.slow
def test_resumed_run_reports_the_full_training_time_and_generate_only_reads(tmp_path, monkeypatch):
  fit, sleep_s = vade_train.gtrain.run, 1.5

  def slow_fit(*args, workdir, **kwargs):  # Each joint epoch takes at least `sleep_s` seconds.
    if str(workdir).endswith("joint"):
      kwargs["callback"] = lambda step, state, metrics: time.sleep(sleep_s)
    return fit(*args, workdir=workdir, **kwargs)

  monkeypatch.setattr(vade_train.gtrain, "run", slow_fit)
  config = vade_train.load_config("tiny", ["seeds=(0,)"])
  first = vade_train.train_and_evaluate(config, tmp_path)
  assert first["timings"]["joint_s"] >= config.epochs * sleep_s
  # Killed before the last joint checkpoint: the rerun trains one epoch and adds its time.
  shutil.rmtree(tmp_path / "joint" / "checkpoints" / str(config.epochs))
  assert vade_generate.load_trained(tmp_path)[3] == config.epochs - 1
  again = vade_train.train_and_evaluate(config, tmp_path)
  assert again["per_seed"][0]["acc"] == first["per_seed"][0]["acc"]
  # The first run's epoch 1 plus the rerun's epoch 2 (and its compilation): at least the first total,
  # where the rerun alone would be one epoch shorter.
  assert again["timings"]["joint_s"] >= first["timings"]["joint_s"] - 0.5
  assert again["timings"]["pretrain_s"] == first["timings"]["pretrain_s"]

  monkeypatch.undo()
  changed = vade_train.load_config("tiny", ["seeds=(0,)", "learning_rate=0.01"])
  with pytest.raises(vade_train.gtrain.ConfigMismatchError, match="learning_rate"):
    vade_train.train_and_evaluate(changed, tmp_path)

  before = snapshot(tmp_path)
  _, model, params, _ = vade_generate.load_trained(tmp_path)  # Reading never writes.
  images, _ = vade_generate.generate(jax.random.key(0), model, params, 3, per_component=False)
  assert images.shape == (3, 28, 28, 1)
  assert snapshot(tmp_path) == before
  # The command again on the finished run reads it: the same results and times, nothing written.
  assert vade_train.train_and_evaluate(config, tmp_path) == again
  assert snapshot(tmp_path) == before
  # Another evaluation-only setting evaluates it again, in a folder it cannot write to (root writes anyway:
  # pretend).
  access = os.access
  monkeypatch.setattr(os, "access",
                      lambda path, mode: False if str(path) == str(tmp_path) else access(path, mode))
  with pytest.warns(UserWarning, match="read-only"):
    evaluated = vade_train.train_and_evaluate(dataclasses.replace(config, eval_size=200), tmp_path)
  assert evaluated["config"]["eval_size"] == 200
  assert evaluated["timings"]["joint_s"] == again["timings"]["joint_s"]
  assert snapshot(tmp_path) == before
