"""Fashion-MNIST GAN with a learnable mixture latent (DeLiGAN) against a N(0, I) latent.

  python -m experiments.gan.main --config full --workdir /tmp/gan
  python -m experiments.gan.main --config tiny --workdir /tmp/gan_tiny --set steps=10

Evaluation uses only networks trained here: a Fashion-MNIST classifier's
penultimate features give the Frechet distance between generated and real test
images, its labels the per-image entropy, the class coverage and the inception
score. Training runs in scanned chunks of `log_every` steps (one host sync per
chunk). Writes config.json, metrics.jsonl, results.json, results.md and a sample
grid PNG per GAN into the workdir.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from gmmjax import data as gdata
from gmmjax.nn import fid, gan

from .. import cli
from .configs import Config, get_config


def _grid(images: np.ndarray, path: pathlib.Path, title: str) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  n = int(np.sqrt(len(images)))
  tiles = images[: n * n, :, :, 0].reshape(n, n, 28, 28).transpose(0, 2, 1, 3).reshape(n * 28, n * 28)
  fig, ax = plt.subplots(figsize=(5, 5))
  ax.imshow((tiles + 1) / 2, cmap="gray", vmin=0, vmax=1)
  ax.set_axis_off()
  ax.set_title(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def train_gan(key: jax.Array, config: Config, latent: str, x_train: jax.Array, log, desc: str):
  """Trains one GAN; returns `(generator, generator params, seconds per step)`."""
  generator = gan.Generator(latent=latent, latent_dim=config.latent_dim, n_components=config.n_components,
                            features=config.g_features)
  discriminator = gan.Discriminator(features=config.d_features)
  tx = optax.adam(config.learning_rate, b1=config.beta1)
  init, step = gan.make_gan(generator, discriminator, tx, tx, config.scale_weight)
  k_init, k_train = jax.random.split(key)
  state = init(k_init)
  chunk = min(config.log_every, config.steps)

  @jax.jit
  def run_chunk(state, keys):
    def body(s, k):
      k_idx, k_step = jax.random.split(k)
      idx = jax.random.randint(k_idx, (config.batch_size,), 0, x_train.shape[0])
      return step(s, k_step, x_train[idx])

    state, m = jax.lax.scan(body, state, keys)
    return state, jax.tree.map(jnp.mean, m)

  times = []
  for c in tqdm(range(-(-config.steps // chunk)), desc=desc):
    n = min(chunk, config.steps - c * chunk)
    keys = jax.random.split(jax.random.fold_in(k_train, c), n)
    t = time.time()
    state, m = run_chunk(state, keys)
    m = jax.tree.map(float, m)  # the chunk's one host sync
    times.append((time.time() - t) / n)
    log.write(json.dumps({"gan": latent, "step": int(state.step), "seconds_per_step": times[-1],
                          **m._asdict()}) + "\n")
    log.flush()
  steady = times[1:] if len(times) > 1 else times
  return generator, state.g_params, float(np.median(steady))


def _evaluate(cls_params, cls_model, images, real_feats) -> dict:
  probs, feats = fid.classify(cls_params, images, model=cls_model)
  s = fid.label_stats(probs)
  return {"frechet_distance": fid.frechet_distance_of_features(feats, real_feats),
          "mean_entropy": s.mean_entropy, "marginal_entropy": s.marginal_entropy,
          "coverage": s.coverage, "inception_score": s.inception_score,
          "class_shares": s.class_shares.round(4).tolist()}


def _table(results: dict) -> str:
  rows = ["| | Frechet distance | inception score | coverage (of 10) | label entropy per image | "
          "marginal label entropy |", "|---|---|---|---|---|---|"]
  for name, r in results["models"].items():
    rows.append(f"| {name} | {r['frechet_distance']:.2f} | {r['inception_score']:.2f} | {r['coverage']} | "
                f"{r['mean_entropy']:.3f} | {r['marginal_entropy']:.3f} |")
  return "\n".join(rows) + "\n"


def train_and_evaluate(config: Config, workdir: str | pathlib.Path) -> dict:
  """Trains the classifier and both GANs, evaluates them, writes results; returns the results dict."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
  t0 = time.time()
  kw = dict(source="local", data_dir=config.data_dir, normalize="symmetric")
  train = gdata.load("fashion_mnist", split="train", limit=config.train_limit, **kw)
  test = gdata.load("fashion_mnist", split="test", **kw)
  x_train = jnp.asarray(train.images, jnp.float32)
  x_test = jnp.asarray(test.images[: config.n_eval], jnp.float32)
  key = jax.random.key(config.seed)
  k_cls, k_gan, k_eval = jax.random.split(key, 3)

  cls_model = fid.Classifier()
  cls_params = fid.train_classifier(k_cls, x_train, jnp.asarray(train.labels), steps=config.classifier_steps,
                                    batch_size=config.classifier_batch, model=cls_model)
  test_probs, real_feats = fid.classify(cls_params, x_test, model=cls_model)
  accuracy = float(np.mean(test_probs.argmax(-1) == test.labels[: config.n_eval]))
  results = {"classifier_test_accuracy": accuracy, "models": {}}
  # Reference points: real training images against the real test images.
  results["models"]["real train images"] = _evaluate(cls_params, cls_model, x_train[: config.n_eval], real_feats)

  with open(workdir / "metrics.jsonl", "w") as log:
    for i, latent in enumerate(config.latents):
      generator, g_params, sps = train_gan(jax.random.fold_in(k_gan, i), config, latent, x_train, log, latent)
      sample = jax.jit(lambda k: generator.apply({"params": g_params}, k, 1000))
      images = jnp.concatenate([sample(jax.random.fold_in(k_eval, j))
                                for j in range(-(-config.n_eval // 1000))])[: config.n_eval]
      r = _evaluate(cls_params, cls_model, images, real_feats)
      r["seconds_per_step"] = sps
      if latent == "mixture":
        scales = generator.apply({"params": g_params}, method=lambda m: m.prior.scales())
        r["latent_scale_mean"] = float(jnp.mean(scales))
      results["models"][f"{latent} latent"] = r
      _grid(np.asarray(images[:64]), workdir / f"samples_{latent}.png", f"{latent} latent")
  results["total_seconds"] = time.time() - t0
  results["device"] = str(jax.devices()[0].device_kind)
  (workdir / "results.json").write_text(json.dumps(results, indent=2))
  (workdir / "results.md").write_text(_table(results))
  return results


def main(argv=None) -> None:
  args = cli.parse_args(argv, __doc__, "tiny", ("tiny", "cpu", "full"))
  config = cli.parse_overrides(get_config(args.config), args.set)
  results = train_and_evaluate(config, args.workdir)
  print(f"classifier test accuracy {results['classifier_test_accuracy']:.4f}")
  print(_table(results))
  print(f"total {results['total_seconds']:.1f} s")


if __name__ == "__main__":
  main(sys.argv[1:])
