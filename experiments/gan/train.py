"""The mixture-latent GAN experiment: `train_and_evaluate(config, workdir)` (`main.py` parses arguments).

What the experiment shows, its commands and what a run writes: the docstring of `main.py`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gmmjax import data as gdata
from gmmjax import train as gtrain
from gmmjax.nn import fid, gan

from .configs import Config


def _grid(images: np.ndarray, path: pathlib.Path, title: str) -> None:
  plt = gtrain.plots.pyplot()

  n = int(np.sqrt(len(images)))
  tiles = images[: n * n, :, :, 0].reshape(n, n, 28, 28).transpose(0, 2, 1, 3).reshape(n * 28, n * 28)
  fig, ax = plt.subplots(figsize=(5, 5))
  ax.imshow((tiles + 1) / 2, cmap="gray", vmin=0, vmax=1)
  ax.set_axis_off()
  ax.set_title(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


@functools.lru_cache(maxsize=8)
def make_functions(config: Config, latent: str, scan: bool | None = None):
  """`(generator, init, run_chunk)` of one GAN.

  `init(key) -> gan.GANState`; `run_chunk(state, key, c, n, x_train) -> (state, metrics)` runs chunk c:
  n steps of `gmmjax.train.make_epoch` (keys from `fold_in(key, c)`), metrics averaged over them.
  `scan` as in `make_epoch` (None: a scan, except on CPU, where a loop of the jitted step avoids XLA's
  slow path for convolution gradients in a loop body). Cached per (config, latent, scan), so that a
  rerun in the same process (a resume) reuses the compilations.
  """
  generator = gan.Generator(latent=latent, latent_dim=config.latent_dim, n_components=config.n_components,
                            features=config.g_features)
  discriminator = gan.Discriminator(features=config.d_features)
  tx = optax.adam(config.learning_rate, b1=config.beta1)
  init, step = gan.make_gan(generator, discriminator, tx, tx, config.scale_weight)

  def one_step(s, batch, k):
    return step(s, k, batch)

  @functools.lru_cache(maxsize=4)
  def chunk_epoch(n):  # A chunk of n steps is one "epoch" of batches drawn with replacement.
    return gtrain.make_epoch(one_step, batch_size=config.batch_size, num_steps=n, sampling="replace",
                             scan=scan)

  def run_chunk(state, key, c, n, x_train):
    state, m = chunk_epoch(n)(state, key, c, x_train)
    return state, {**m._asdict(), "gan_step": state.step}

  return generator, init, run_chunk


def num_chunks(config: Config) -> int:
  """The `gmmjax.train.run` steps of one GAN: chunks of `log_every` GAN steps (the last may be shorter)."""
  return -(-config.steps // min(config.log_every, config.steps))


def train_gan(key: jax.Array, config: Config, latent: str, x_train: jax.Array,
              workdir: str | pathlib.Path, resume: str = "auto") -> tuple[gan.Generator, gtrain.TrainResult]:
  """Trains one GAN with `gmmjax.train.run` in `workdir`, resuming from its checkpoints.

  Returns:
    `(generator, fit result)`; the result's state is a `gan.GANState`.
  """
  generator, init, run_chunk = make_functions(config, latent)
  k_init, k_train = jax.random.split(key)
  chunk = min(config.log_every, config.steps)

  def check(state, expected):
    # Chunks are indexed by fit's steps: a checkpoint of other chunks would resume the wrong run.
    if int(state.step) != expected:
      raise ValueError(f"{workdir} holds a run with other `steps` or `log_every` (GAN step "
                       f"{int(state.step)}, expected {expected}); use another workdir.")

  def train_step(state, c, key):
    del key  # Chunk c's keys derive from `k_train` and c alone.
    check(state, c * chunk)
    n = min(chunk, config.steps - c * chunk)
    t = time.time()
    state, m = run_chunk(state, k_train, c, n, x_train)
    jax.block_until_ready(m)  # the chunk's one host sync
    return state, {**m, "seconds_per_step": (time.time() - t) / n}

  result = gtrain.run(
      train_step, init(k_init), lambda c: c, key=k_train, num_steps=num_chunks(config),
      batch_size=config.batch_size, workdir=workdir, seed=config.seed,
      checkpoint_every=max(1, -(-config.checkpoint_every // chunk)), log_every=1,
      config=dataclasses.asdict(config), resume=resume)
  check(result.state, config.steps)
  return generator, result


def generate(generator: gan.Generator, g_params, key: jax.Array, n: int, block: int = 1000) -> jax.Array:
  """`[n, 28, 28, 1]` images in [-1, 1]; block j of `block` images is drawn with `fold_in(key, j)`."""
  sample = jax.jit(lambda k: generator.apply({"params": g_params}, k, block))
  return jnp.concatenate([sample(jax.random.fold_in(key, j)) for j in range(-(-n // block))])[:n]


def load_generator(workdir: str | pathlib.Path, latent: str = "mixture") -> tuple[gan.Generator, dict]:
  """`(generator, g_params)` of a finished run's GAN `latent`, read from its checkpoints; writes nothing."""
  workdir = pathlib.Path(workdir)
  raw = json.loads((workdir / "config.json").read_text())
  config = Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
  if latent not in config.latents:
    raise ValueError(f"{workdir} trained the latents {config.latents}, not {latent!r}")
  if gtrain.read_results(workdir, config, ignore=gtrain.CONFIG_IGNORE) is None:
    raise ValueError(f"{workdir} holds no finished run; finish it with experiments.gan.main first")
  i = config.latents.index(latent)
  k_gan = jax.random.split(jax.random.key(config.seed), 3)[1]
  # A finished GAN is restored without a step, so no training data is needed.
  generator, trained = train_gan(jax.random.fold_in(k_gan, i), config, latent, None, workdir / latent)
  return generator, trained.state.g_params


def _evaluate(cls_params, cls_model, images, real_feats) -> dict:
  probs, feats = fid.classify(cls_params, images, model=cls_model)
  s = fid.label_stats(probs)
  return {"frechet_distance": fid.frechet_distance_of_features(feats, real_feats),
          "mean_entropy": s.mean_entropy, "marginal_entropy": s.marginal_entropy,
          "coverage": s.coverage, "inception_score": s.inception_score,
          "class_shares": s.class_shares.round(4).tolist()}


def results_table(results: dict) -> str:
  rows = ["| | Frechet distance | inception score | coverage (of 10) | label entropy per image | "
          "marginal label entropy |", "|---|---|---|---|---|---|"]
  for name, r in results["models"].items():
    rows.append(f"| {name} | {r['frechet_distance']:.2f} | {r['inception_score']:.2f} | {r['coverage']} | "
                f"{r['mean_entropy']:.3f} | {r['marginal_entropy']:.3f} |")
  return "\n".join(rows) + "\n"


def train_and_evaluate(config: Config, workdir: str | pathlib.Path, resume: str = "auto") -> dict:
  """Trains both GANs and the classifier, evaluates the GANs, writes results; returns the results dict.

  `resume="force"` resumes GANs whose workdir holds another config (recorded in `<latent>/resumes.jsonl`).
  A finished run is read: its results.json is returned and nothing is written.
  """
  workdir = pathlib.Path(workdir)
  if not workdir.exists():
    workdir.mkdir(parents=True)
  t0 = time.time()
  kw = dict(source="local", data_dir=config.data_dir, normalize="symmetric")
  train = gdata.load("fashion_mnist", split="train", limit=config.train_limit, **kw)
  test = gdata.load("fashion_mnist", split="test", **kw)
  x_train = jnp.asarray(train.images, jnp.float32)
  x_test = jnp.asarray(test.images[: config.n_eval], jnp.float32)
  key = jax.random.key(config.seed)
  k_cls, k_gan, k_eval = jax.random.split(key, 3)

  t_run = time.time()
  gans = [train_gan(jax.random.fold_in(k_gan, i), config, latent, x_train, workdir / latent, resume)
          for i, latent in enumerate(config.latents)]
  if all(trained.resumed_from == num_chunks(config) for _, trained in gans):
    finished = gtrain.read_results(workdir, config, ignore=gtrain.CONFIG_IGNORE)
    if finished is not None:
      return finished
  own_training_s = time.time() - t_run

  cls_model = fid.Classifier()
  cls_params = fid.train_classifier(k_cls, x_train, jnp.asarray(train.labels), steps=config.classifier_steps,
                                    batch_size=config.classifier_batch, model=cls_model)
  test_probs, real_feats = fid.classify(cls_params, x_test, model=cls_model)
  accuracy = float(np.mean(test_probs.argmax(-1) == test.labels[: config.n_eval]))
  results = {"classifier_test_accuracy": accuracy, "models": {}}
  # Reference points: real training images against the real test images.
  results["models"]["real train images"] = _evaluate(cls_params, cls_model, x_train[: config.n_eval], real_feats)

  curves, grids = [], {}
  for latent, (generator, trained) in zip(config.latents, gans):
    g_params = trained.state.g_params
    images = generate(generator, g_params, k_eval, config.n_eval)
    r = _evaluate(cls_params, cls_model, images, real_feats)
    # Median over the chunks after the first, which includes compilation.
    times = [rec["seconds_per_step"] for rec in trained.history if rec.get("split") == "train"]
    r["seconds_per_step"] = float(np.median(times[1:] if len(times) > 1 else times))
    if latent == "mixture":
      scales = generator.apply({"params": g_params}, method=lambda m: m.prior.scales())
      r["latent_scale_mean"] = float(jnp.mean(scales))
    results["models"][f"{latent} latent"] = r
    grids[latent] = np.asarray(images[:64])
    # One line per GAN: the plot draws one line per "split".
    curves += [{**rec, "step": rec["gan_step"], "split": latent} for rec in trained.history]
  # The training time of every run that made the histories, not only this one's part.
  elapsed_s = sum(trained.elapsed_s or 0.0 for _, trained in gans)
  results["total_seconds"] = time.time() - t0 - own_training_s + elapsed_s
  results["device"] = str(jax.devices()[0].device_kind)

  def plots(workdir):
    for latent, images in grids.items():
      _grid(images, workdir / f"samples_{latent}.png", f"{latent} latent")
    gtrain.plots.plot_learning_curves(curves, workdir / "learning_curves.png",
                                      keys=["d_loss", "g_loss", "scale_penalty"])

  # The GANs' own config.json files are checked when they resume; this one goes with the results.
  files = {"config.json": json.dumps(dataclasses.asdict(config), indent=2),
           "results.md": results_table(results)}
  return gtrain.write_results(workdir, config, results, files, plots)
