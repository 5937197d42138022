"""The VaDE / GMVAE clustering experiment: `train_and_evaluate(config, workdir)` (`main.py` parses arguments).

What the experiment shows, its commands and what a run writes: the docstring of `main.py`.
"""

from __future__ import annotations

import dataclasses
import importlib
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gmmjax import data as gdata
from gmmjax import metrics as gmetrics
from gmmjax import nn as gnn
from gmmjax import train as gtrain
from gmmjax.nn import gmvae, vade

from .. import cli
from .configs.base import Config


def load_config(name: str, overrides: list[str] | None = None) -> Config:
  """`configs/<name>.py`'s config with `key=value` overrides (values parsed as Python literals)."""
  config = importlib.import_module(f"{__package__}.configs.{name}").get_config()
  return cli.parse_overrides(config, overrides or [])


MODELS = ("vade", "gmvae")


def build_model(config: Config) -> vade.VaDE | gmvae.GMVAE:
  if config.model not in MODELS:
    raise ValueError(f"model must be one of {MODELS}, got {config.model!r}")
  # Checked here, not where the joint loss is first traced: that is after the whole pretraining.
  for name in ("pretrain_input_dropout", "input_dropout"):
    if not 0.0 <= getattr(config, name) < 1.0:
      raise ValueError(f"{name} must be in [0, 1), got {getattr(config, name)}")
  if config.uniform_weights_epochs < 0:
    raise ValueError(f"uniform_weights_epochs must be >= 0, got {config.uniform_weights_epochs}")
  if not config.kl_weight >= 0.0:
    raise ValueError(f"kl_weight must be >= 0, got {config.kl_weight}")
  image_shape = gdata.IMAGE_SHAPES[config.dataset]
  if config.architecture == "mlp":
    encoder = gnn.MLPEncoder(config.latent_dim, tuple(config.hidden))
    decoder = gnn.MLPDecoder(tuple(reversed(config.hidden)), image_shape=image_shape)
  else:
    encoder = gnn.make_encoder("conv", config.latent_dim, image_shape=image_shape)
    decoder = gnn.make_decoder("conv", image_shape=image_shape)
  if config.model == "gmvae":
    if config.prior_covariance != "diag":
      raise ValueError("model='gmvae' needs prior_covariance='diag'")
    return gmvae.GMVAE(encoder, decoder, config.n_components, config.latent_dim, config.likelihood,
                       head_hidden=config.head_hidden, uniform_weights=config.uniform_weights)
  return vade.VaDE(encoder, decoder, config.n_components, config.latent_dim, config.likelihood,
                   prior_covariance=config.prior_covariance, uniform_weights=config.uniform_weights)


def load_images(config: Config) -> tuple[np.ndarray, np.ndarray, Any]:
  ds = gdata.load(config.dataset, split=config.split, limit=config.limit, data_dir=config.data_dir)
  s = config.stride
  return ds.images[::s].astype(np.float32), ds.labels[::s], ds.info


def _optimizer(config: Config, learning_rate: float, steps_per_epoch: int, decay: bool):
  return gtrain.make_optimizer(
      learning_rate=learning_rate,
      schedule="exponential" if decay else "constant",
      decay_steps=config.lr_decay_epochs * steps_per_epoch,
      decay_rate=config.lr_decay_rate,
      clip_norm=config.clip_norm,
  )


def make_epoch_step(loss_fn, batch_size: int, seed_keys: jax.Array):
  """`train_step(state, epoch, key) -> (state, metrics)` for `gmmjax.train.run`: one epoch of every seed.

  `loss_fn(params, x [b, ...], key) -> []`; `state` is a `TrainState` stacked over seeds, and seed i's
  batches and keys derive from `seed_keys[i]` and the epoch alone. Each seed's pass is a scan over
  shuffled batches (the last incomplete one dropped), all seeds in one `vmap`.
  """

  def step(state, x, key):
    loss, grads = jax.value_and_grad(loss_fn)(state.params, x, key)
    return state.apply_gradients(grads), {"loss": loss}

  epoch_fn = gtrain.make_epoch(step, batch_size=batch_size, vmap=True)

  @jax.jit
  def train_step(state, images, epoch):
    state, metrics = epoch_fn(state, seed_keys, epoch, images)
    mean_loss = metrics["loss"]  # [n_seeds]
    finite = jnp.isfinite(mean_loss)
    return state, {
        "loss": jnp.mean(jnp.where(finite, mean_loss, jnp.nan)),
        "loss_min_seed": jnp.min(mean_loss),
        "loss_max_seed": jnp.max(mean_loss),
        "nan_seeds": jnp.sum(~finite),
    }

  return train_step


def encode_all(model, params, images: jax.Array, batch_size: int = 1000):
  """`[n_seeds, n, l]` encoder means for stacked params."""
  fn = jax.jit(jax.vmap(lambda p: gtrain.map_batches(lambda x: model.encode(p, x)[0], images, batch_size)))
  return fn(params)


def predict_all(model, params, images: jax.Array, batch_size: int = 1000):
  """`[n_seeds, n]` cluster assignments argmax q(c | x) for stacked params."""
  fn = jax.jit(jax.vmap(lambda p: gtrain.map_batches(lambda x: model.predict(p, x), images, batch_size)))
  return fn(params)


def init_state(params, tx) -> gtrain.TrainState:
  """A `TrainState` stacked over the seeds of `params` (leaves `[n_seeds, ...]`)."""
  return jax.vmap(lambda p: gtrain.TrainState.create(params=p, tx=tx))(params)


def _clustering_scores(labels: np.ndarray, predictions: np.ndarray) -> list[dict]:
  return [
      {
          "acc": float(gmetrics.cluster_accuracy(labels, p)),
          "nmi": float(gmetrics.nmi(labels, p)),
          "ari": float(gmetrics.ari(labels, p)),
      }
      for p in predictions
  ]


def summarize_scores(scores: list[dict], names=("acc", "nmi", "ari")) -> dict:
  """Mean and (population) std over seeds of each score in `names`."""
  out = {}
  for name in names:
    values = np.array([s[name] for s in scores])
    out[name] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
  return out


def _tree_all_finite(tree) -> np.ndarray:
  """`[n_seeds]` whether every leaf of each seed is finite."""
  leaves = [jnp.all(jnp.isfinite(x.reshape(x.shape[0], -1)), axis=1) for x in jax.tree.leaves(tree)]
  return np.asarray(jnp.all(jnp.stack(leaves), axis=0))


def _stack_init(model, images: jax.Array, seeds):
  keys = jnp.stack([jax.random.key(s) for s in seeds])
  return jax.vmap(lambda k: model.init(k, images[:2]))(keys)


# Fields that only change what is reported, not what is trained: they may differ on resume.
EVAL_ONLY = ("eval_size", "samples_per_component", "n_reconstructions")


def train_and_evaluate(config: Config, workdir: str | pathlib.Path, resume: str = "auto") -> dict:
  """Trains every seed of `config` and writes metrics, checkpoints and plots to `workdir`.

  Every float32 matrix product and convolution runs at `config.matmul_precision`.

  Args:
    config: the run's settings.
    workdir: output folder; a run there is resumed.
    resume: "auto" (a workdir holding another config is refused) or "force" (resumed anyway, recorded in
      `<phase>/resumes.jsonl`).

  Returns:
    The results written to `workdir/results.json`. A finished run is read: its results.json is returned and
    nothing is written (a change of an evaluation-only field evaluates it again).
  """
  with jax.default_matmul_precision(config.matmul_precision):  # ValueError for an unknown name.
    return _train_and_evaluate(config, pathlib.Path(workdir), resume)


def _train_and_evaluate(config: Config, workdir: pathlib.Path, resume: str = "auto") -> dict:
  if not workdir.exists():
    workdir.mkdir(parents=True)
  config_dict = dataclasses.asdict(config)
  timings = {}

  t0 = time.perf_counter()
  host_images, labels, info = load_images(config)
  images = jax.device_put(jnp.asarray(host_images))
  timings["load_s"] = time.perf_counter() - t0
  n = images.shape[0]
  if config.batch_size > n:
    raise ValueError(f"batch_size {config.batch_size} is larger than the data set ({n} images)")
  steps_per_epoch = n // config.batch_size
  model = build_model(config)
  seeds = tuple(config.seeds)
  n_seeds = len(seeds)
  seed_keys = jnp.stack([jax.random.key(1000 + s) for s in seeds])
  run_key = jax.random.key(seeds[0])

  # Phase 1: autoencoder pretraining (deterministic codes, reconstruction only).
  pre_tx = _optimizer(config, config.pretrain_learning_rate, steps_per_epoch, decay=False)
  params = _stack_init(model, images, seeds)
  # Pretraining never reads the prior; with the diagonal placeholder for every prior type, the same
  # pretraining checkpoints serve runs with either prior (phase 2 replaces it).
  params = params._replace(prior=jax.vmap(lambda p: vade.standard_prior(
      config.n_components, config.latent_dim, p.means.dtype))(params.prior))
  state = init_state(params, pre_tx)
  pre_epoch = make_epoch_step(
      lambda p, x, k: model.pretrain_loss(p, x, key=k, input_dropout=config.pretrain_input_dropout,
                                        max_shift=config.pretrain_max_shift),
      config.batch_size, seed_keys)

  def run_phase(epoch_fn, state, num_steps, name):
    # One fit step is one epoch (the "data" is the epoch index).
    result = gtrain.run(
        lambda state, e, key: epoch_fn(state, images, e), state, lambda step: jnp.asarray(step, jnp.int32),
        key=run_key,
        num_steps=num_steps, batch_size=config.batch_size, workdir=workdir / name,
        checkpoint_every=config.checkpoint_every, log_every=1, progress=config.progress, config=config_dict,
        seed=seeds[0], resume=resume, config_ignore=gtrain.CONFIG_IGNORE + EVAL_ONLY,
    )
    jax.block_until_ready(result.state)
    # The training time of all the calls that made this history (a resumed run adds its own part).
    total = result.elapsed_s
    timings[f"{name}_s"] = total
    timings[f"{name}_s_per_epoch"] = None if total is None else total / max(1, num_steps)
    return result

  pre = run_phase(pre_epoch, state, config.pretrain_epochs, "pretrain")
  pretrained = pre.state.params

  # Phase 2: the mixture prior from `gmmjax.fit` on the latent means, per seed.
  t0 = time.perf_counter()
  eval_images = images if config.eval_size is None else images[: config.eval_size]
  eval_labels = labels if config.eval_size is None else labels[: config.eval_size]
  latents = encode_all(model, pretrained, images)
  gmm_keys = jnp.stack([jax.random.key(2000 + s) for s in seeds])
  prior = jax.jit(jax.vmap(lambda k, z: vade.init_prior(
      k, z, config.n_components, n_init=config.gmm_n_init, max_iter=config.gmm_max_iter,
      reg_covar=config.gmm_reg_covar, covariance_type=config.prior_covariance)))(gmm_keys, latents)
  warmup = 0 if config.uniform_weights else config.uniform_weights_epochs
  if warmup:  # p(c) starts uniform and is held there for the first `warmup` joint epochs.
    prior = prior._replace(logits=jnp.zeros_like(prior.logits))
  params = jax.vmap(model.init_posterior_from_prior)(pretrained._replace(prior=prior))
  init_scores = _clustering_scores(eval_labels, np.asarray(predict_all(model, params, eval_images)))
  timings["gmm_init_s"] = time.perf_counter() - t0

  # Phase 3: joint training of encoder, decoder and prior on the ELBO.
  tx = _optimizer(config, config.learning_rate, steps_per_epoch, decay=True)
  state = init_state(params, tx)

  def joint_epoch(m):
    return make_epoch_step(
        lambda p, x, k: m.loss(k, p, x, method=config.elbo_method, input_dropout=config.input_dropout,
                                 kl_weight=config.kl_weight),
        config.batch_size, seed_keys)

  learned_epoch = joint_epoch(model)
  uniform_epoch = joint_epoch(dataclasses.replace(model, uniform_weights=True)) if warmup else None

  def epoch(state, images, e):
    # `gtrain.run` calls the step eagerly, so the epoch index is concrete and each phase keeps its own
    # compiled epoch. The logits get no gradient in the uniform phase: they are learned from zero after it.
    return (uniform_epoch if int(e) < warmup else learned_epoch)(state, images, e)

  joint = run_phase(epoch, state, config.epochs, "joint")
  if pre.resumed_from == config.pretrain_epochs and joint.resumed_from == config.epochs:
    finished = gtrain.read_results(workdir, config, ignore=gtrain.CONFIG_IGNORE)
    if finished is not None:
      return finished
  params = joint.state.params

  # Evaluation.
  t0 = time.perf_counter()
  finite = _tree_all_finite(params)
  predictions = np.asarray(predict_all(model, params, eval_images))
  scores = _clustering_scores(eval_labels, predictions)
  elbo_n = min(2000, n)
  elbos = jax.jit(jax.vmap(lambda p, k: jnp.mean(model.elbo(k, p, images[:elbo_n]).elbo)))(
      params, jnp.stack([jax.random.key(3000 + s) for s in seeds]))
  timings["eval_s"] = time.perf_counter() - t0

  head = scores[: min(5, n_seeds)]
  results = {
      "dataset": {"name": info.name, "split": info.split, "source": info.source, "n": int(n)},
      "device": str(jax.devices()[0].device_kind),
      "seeds": list(seeds),
      "per_seed": [{"seed": s, **sc, "finite": bool(f), "elbo": float(e),
                    "init_acc": ini["acc"], "init_nmi": ini["nmi"]}
                   for s, sc, f, e, ini in zip(seeds, scores, finite, np.asarray(elbos), init_scores)],
      "first5": summarize_scores(head),
      "all": summarize_scores(scores),
      "after_gmm_init": summarize_scores(init_scores),
      "after_gmm_init_first5": summarize_scores(init_scores[: min(5, n_seeds)]),
      "nan_free_seeds": int(np.sum(finite & np.isfinite(np.asarray(elbos)))),
      "timings": timings,
  }
  return gtrain.write_results(
      workdir, config, results,
      plots=lambda workdir: _write_plots(config, model, params, images, workdir, joint.history, pre.history))


def _seed0(tree):
  return jax.tree.map(lambda a: a[0], tree)


def _write_plots(config, model, params, images, workdir, joint_history, pre_history):
  p0 = _seed0(params)
  k, m = config.n_components, config.samples_per_component
  key = jax.random.key(config.seeds[0])
  comps = jnp.repeat(jnp.arange(k), m)
  samples, _ = model.sample(key, p0, k * m, component=comps)
  gtrain.plots.plot_image_grid(np.asarray(samples), workdir / "samples_per_component.png", ncols=m,
                               title="row c: samples of mixture component c", vmin=0, vmax=1)
  r = min(config.n_reconstructions, images.shape[0])
  originals = images[:: images.shape[0] // r][:r]  # Spread out: some data sets are sorted by class.
  recon = model.reconstruct(p0, originals)
  gtrain.plots.plot_image_grid(np.concatenate([np.asarray(originals), np.asarray(recon)]),
                               workdir / "reconstructions.png", ncols=r,
                               title="top: data, bottom: reconstructions", vmin=0, vmax=1)
  records = ([{**rec, "step": rec["step"], "pretrain_loss": rec.get("loss")} for rec in pre_history
              if rec.get("split") == "train"]
             + [{**rec, "step": rec["step"] + config.pretrain_epochs, "neg_elbo": rec.get("loss")}
                for rec in joint_history if rec.get("split") == "train"])
  keep = ("step", "pretrain_loss", "neg_elbo")
  records = [{kk: v for kk, v in rec.items() if kk in keep} for rec in records]
  if records:
    gtrain.plots.plot_learning_curves(records, workdir / "learning_curves.png",
                                      keys=["pretrain_loss", "neg_elbo"])
