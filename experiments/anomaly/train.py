"""The one-class anomaly detection experiment: `train_and_evaluate(config, workdir)` (`main.py` parses
arguments).

What the experiment shows, its commands and what a run writes: the docstring of `main.py`.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

import gmmjax
from gmmjax import data as gdata
from gmmjax import metrics
from gmmjax import train as gtrain
from gmmjax.nn import dagmm, geometric

from .configs import Config


def _load(config: Config):
  """`(train [C, n, 28, 28, 1], test images [m, ...], test labels [m])` as float32 in [0, 1]."""
  train = gdata.load("fashion_mnist", split="train", source="local", data_dir=config.data_dir)
  test = gdata.load("fashion_mnist", split="test", source="local", data_dir=config.data_dir)
  per_class = [train.images[train.labels == c] for c in config.classes]
  n = min(len(p) for p in per_class)
  if config.train_per_class is not None:
    n = min(n, config.train_per_class)
  x_train = np.stack([p[:n] for p in per_class])
  m = len(test.labels) if config.test_limit is None else config.test_limit
  return x_train, test.images[:m], test.labels[:m]


def make_model(config: Config) -> dagmm.DAGMM:
  return dagmm.DAGMM(
      latent_dim=config.latent_dim,
      n_components=config.n_components,
      architecture=config.architecture,
      encoder_hidden=config.encoder_hidden,
      decoder_hidden=config.decoder_hidden,
  )


# The four scores of each test image; higher means more anomalous.
DETECTORS = ("dagmm", "gmm_latent", "gmm_transform", "combined")


@functools.lru_cache(maxsize=2)
def make_functions(config: Config):
  """Jitted `init(keys)`, `epoch(state, e, keys, x_train, class_idx)` and `score_all(...)`.

  Cached per config, so that a rerun in the same process (a resume) reuses the compilations.
  """
  model = make_model(config)
  classifier = geometric.TransformClassifier(
      config.transform_hidden, geometric.n_transforms(config.transform_shift))
  tx = optax.adam(config.learning_rate)

  def init_one(key):
    k_p, k_d = jax.random.split(key)
    x0 = jnp.zeros((2, 28, 28, 1), jnp.float32)
    params = {
        "dagmm": model.init({"params": k_p, "dropout": k_d}, x0, train=True)["params"],
        "transform": classifier.init(jax.random.fold_in(key, 1), x0)["params"],
    }
    return gtrain.TrainState.create(params=params, tx=tx)

  def loss_fn(params, x, key):
    """The two networks share batches but not parameters: the sum trains each on its own loss."""
    out = model.apply({"params": params["dagmm"]}, x, train=True, rngs={"dropout": key})
    terms, _ = dagmm.dagmm_loss(
        out, x, lambda_energy=config.lambda_energy, lambda_cov=config.lambda_cov,
        reg_covar=config.reg_covar)
    ce = geometric.transform_loss(
        classifier, params["transform"], x, jax.random.fold_in(key, 1), config.transform_shift)
    return terms.total + ce, {**terms._asdict(), "transform": ce}

  def step(state, x, key):
    (_, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, x, key)
    return state.apply_gradients(grads), terms

  # Batches drawn with replacement from each model's class, all models in one program.
  models_epoch = gtrain.make_epoch(step, batch_size=config.batch_size, sampling="replace", vmap=True)

  def epoch(state, e, model_keys, x_train, class_idx):
    """One epoch of every model: `state` and `model_keys` `[M]`, `e` the epoch index.

    Returns the new state and the loss terms (DAGMM's, whose "total" excludes the transform
    classifier's cross-entropy "transform"; each model's mean over the epoch, then the mean over the
    models) with "finite": whether all of them are finite.
    """
    n_c, n = x_train.shape[:2]
    rows = class_idx[:, None] * n + jnp.arange(n)[None, :]  # [M, n]: model m's class in the flat data.
    state, terms = models_epoch(state, model_keys, e, x_train.reshape(n_c * n, *x_train.shape[2:]), rows)
    out = {f: jnp.mean(a) for f, a in terms.items()}
    out["finite"] = jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in terms.values()]))
    return state, out

  def embed(params, x):
    """`x: [n, ...]` -> `(z [n, l + 2], gamma [n, k], transform features [n, h])` of one model, in chunks."""

    def fn(xc):
      out = model.apply({"params": params["dagmm"]}, xc, train=False)
      return out.z, out.gamma, classifier.apply({"params": params["transform"]}, xc)[1]

    return gtrain.map_batches(fn, x, config.eval_chunk)

  def scores(params, x_class, x_test):
    """DAGMM energies of the test images (mixture from all training memberships), and the
    features of the training and test images: `(energies, (z, f) train, (z, f) test)`."""
    z_tr, g_tr, f_tr = embed(params, x_class)
    z_te, _, f_te = embed(params, x_test)
    mixture = dagmm.mixture_from_memberships(z_tr, g_tr, config.reg_covar)
    return dagmm.energy(mixture, z_te), (z_tr, f_tr), (z_te, f_te)

  def score_all(params, x_train, class_idx, x_test):
    return jax.vmap(lambda p, c: scores(p, x_train[c], x_test))(params, class_idx)

  return jax.jit(jax.vmap(init_one)), jax.jit(epoch), jax.jit(score_all)


def _model_keys(config: Config) -> jax.Array:
  """`[C * S]` keys; model m = (class m // S, seed m % S)."""
  return jnp.stack([jax.random.key(1000 * s + c) for c in config.classes for s in config.seeds])


def train_models(config: Config, x_train: jax.Array, workdir: str | pathlib.Path,
                 resume: str = "auto") -> gtrain.TrainResult:
  """Trains the (class, seed) models on `x_train: [C, n, 28, 28, 1]` with `gmmjax.train.run`.

  One fit step is one epoch of all models; a workdir with checkpoints resumes where it stopped.

  Returns:
    The `TrainResult`; its state's leaves have a leading `[C * S]` model axis.
  """
  n_c, n_s = len(config.classes), len(config.seeds)
  class_idx = jnp.repeat(jnp.arange(n_c), n_s)
  model_keys = _model_keys(config)
  init, epoch, _ = make_functions(config)

  def train_step(state, e, key):
    del key  # Each model's keys derive from its own key and the epoch.
    t = time.time()
    state, out = epoch(state, e, model_keys, x_train, class_idx)
    jax.block_until_ready(out)  # the epoch's one host sync
    return state, {**out, "seconds": time.time() - t}

  return gtrain.run(
      train_step, init(model_keys), lambda e: jnp.asarray(e, jnp.int32), key=jax.random.key(0),
      num_steps=config.epochs, batch_size=config.batch_size, workdir=workdir,
      checkpoint_every=config.checkpoint_every, log_every=1, config=dataclasses.asdict(config),
      resume=resume)


def _gmm_scores(key, f_train: np.ndarray, f_test: np.ndarray, config: Config) -> np.ndarray:
  """Negative log-likelihood of the test features under `gmmjax.fit` on the training features,
  standardised by its mean and standard deviation over the training features (so that scores of
  different feature spaces add up)."""
  mu, sd = f_train.mean(0), f_train.std(0) + 1e-6
  tr, te = (f_train - mu) / sd, (f_test - mu) / sd
  fit = gmmjax.fit(key, tr, config.gmm_components, covariance_type=config.gmm_covariance_type,
                   reg_covar=config.gmm_reg_covar, n_init=config.gmm_n_init, max_iter=200)
  nll_train = -np.asarray(gmmjax.log_prob(fit.params, tr))
  nll = -np.asarray(gmmjax.log_prob(fit.params, te))
  return (nll - nll_train.mean()) / (nll_train.std() + 1e-12)


def _summary(auc: np.ndarray, classes, seeds) -> dict:
  """`auc: [C, S]` -> per-class mean/std and the mean over classes (mean +- std over seeds)."""
  per_seed_mean = auc.mean(0)  # [S]: mean AUROC over classes, per seed
  return {
      # String keys, as in results.json.
      "per_class_mean": {str(c): float(auc[i].mean()) for i, c in enumerate(classes)},
      "per_class_std": {str(c): float(auc[i].std()) for i, c in enumerate(classes)},
      "per_seed_mean": {str(s): float(v) for s, v in zip(seeds, per_seed_mean)},
      "mean": float(per_seed_mean.mean()),
      "std_over_seeds": float(per_seed_mean.std()),
  }


def _plot(results: dict, classes, path: pathlib.Path) -> None:
  plt = gtrain.plots.pyplot()

  names = [gdata.FASHION_MNIST_CLASSES[c] for c in classes]
  x = np.arange(len(classes))
  fig, ax = plt.subplots(figsize=(1.0 + 1.2 * len(classes), 3.5))
  width = 0.8 / len(DETECTORS)
  for j, det in enumerate(DETECTORS):
    s = results[det]
    ax.bar(x + (j - (len(DETECTORS) - 1) / 2) * width, [s["per_class_mean"][str(c)] for c in classes],
           width, yerr=[s["per_class_std"][str(c)] for c in classes], label=f"{det} (mean {s['mean']:.3f})")
  ax.axhline(0.5, color="gray", lw=0.8, ls=":")
  ax.set_xticks(x, names, rotation=30, ha="right")
  ax.set_ylabel("AUROC")
  ax.set_ylim(0.3, 1.0)
  ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
  ax.set_title("One-class Fashion-MNIST")
  fig.savefig(path, dpi=120, bbox_inches="tight")
  plt.close(fig)


def results_table(results: dict, classes) -> str:
  lines = ["| class | DAGMM energy | GMM on latents | GMM on transform features | combined |",
           "|---|---|---|---|---|"]
  for c in classes:
    cells = [f"{results[d]['per_class_mean'][str(c)]:.3f} +- {results[d]['per_class_std'][str(c)]:.3f}"
             for d in DETECTORS]
    lines.append(f"| {c} {gdata.FASHION_MNIST_CLASSES[c]} | " + " | ".join(cells) + " |")
  cells = [f"**{results[d]['mean']:.3f} +- {results[d]['std_over_seeds']:.3f}**" for d in DETECTORS]
  lines.append("| mean (+- std over seeds) | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def train_and_evaluate(config: Config, workdir: str | pathlib.Path, resume: str = "auto") -> dict:
  """Trains all (class, seed) models, scores the test set with both detectors, writes the results.

  `resume="force"` resumes a workdir that holds another config (recorded in `resumes.jsonl`). A finished
  run is read: its results.json is returned and nothing is written.

  Returns:
    The results dictionary also written to `workdir/results.json`.
  """
  workdir = pathlib.Path(workdir)
  t0 = time.time()
  x_train_np, x_test_np, y_test = _load(config)
  x_train, x_test = jnp.asarray(x_train_np, jnp.float32), jnp.asarray(x_test_np, jnp.float32)
  n_c, n_s = len(config.classes), len(config.seeds)
  class_idx = jnp.repeat(jnp.arange(n_c), n_s)  # model m = (class m // S, seed m % S)

  t_run = time.time()
  trained = train_models(config, x_train, workdir, resume)
  if trained.resumed_from == config.epochs:
    finished = gtrain.read_results(workdir, config, ignore=gtrain.CONFIG_IGNORE)
    if finished is not None:
      return finished
  own_training_s = time.time() - t_run
  params = trained.state.params
  history = [r for r in trained.history if r.get("split") == "train"]
  # One per epoch, including those of the run this one resumed.
  timings = [r["seconds"] for r in history]
  _, _, score_all = make_functions(config)
  energies, (z_tr, f_tr), (z_te, f_te) = jax.tree.map(
      np.asarray, score_all(params, x_train, class_idx, x_test))
  cols = slice(0, config.latent_dim) if config.gmm_features == "code" else slice(None)
  auc = {det: np.zeros((n_c, n_s)) for det in DETECTORS}
  for m in tqdm(range(n_c * n_s), desc="gmm fits"):
    i, j = divmod(m, n_s)
    key = jax.random.key(m)
    latent = _gmm_scores(key, z_tr[m][:, cols], z_te[m][:, cols], config)
    transform = _gmm_scores(jax.random.fold_in(key, 1), f_tr[m], f_te[m], config)
    scores = {"dagmm": energies[m], "gmm_latent": latent, "gmm_transform": transform,
              # A product of the two GMMs' densities, each rescaled by its spread on normal data.
              "combined": latent + transform}
    anomalous = (y_test != config.classes[i]).astype(np.int32)
    for det, s in scores.items():
      auc[det][i, j] = metrics.auroc(anomalous, np.minimum(np.nan_to_num(s, nan=np.inf), 1e30))

  results = {det: _summary(a, config.classes, config.seeds) for det, a in auc.items()}
  results["auroc"] = {det: a.tolist() for det, a in auc.items()}
  # Median over the epochs after the first, which includes compilation.
  results["seconds_per_epoch"] = float(np.median(timings[1:] if len(timings) > 1 else timings))
  results["first_epoch_seconds"] = timings[0]
  # The training time of every run that made the history, not only this one's part.
  results["total_seconds"] = time.time() - t0 - own_training_s + (trained.elapsed_s or 0.0)
  results["device"] = str(jax.devices()[0].device_kind)

  def plots(workdir):
    _plot(results, config.classes, workdir / "auroc_per_class.png")
    gtrain.plots.plot_learning_curves(history, workdir / "learning_curves.png",
                                      keys=[*dagmm.DAGMMLoss._fields, "transform"])

  files = {"results.md": results_table(results, config.classes)}
  return gtrain.write_results(workdir, config, results, files, plots)
