"""Mixture of factor analysers on all 60,000 Fashion-MNIST training images.

Run:  python -m experiments.mfa.run --workdir runs/mfa                  # default: 2 CPU cores, ~5 min
      python -m experiments.mfa.run --workdir runs/mfa_full --config full  # a GPU
      python -m experiments.mfa.run --workdir runs/mfa --k 30 --l 6        # any size
      python -m experiments.mfa.run --workdir runs/mfa --gan-workdir runs/gan --vade-workdir runs/vade

Writes `results.json` (held-out bits per dimension of MFA and of a diagonal GMM
with the same k, NDB/K and Frechet distance of their samples and of real images,
time per EM iteration), `samples_per_component.png` and `inpainting.png` to the
workdir. With `--gan-workdir` / `--vade-workdir` (finished runs of
`experiments.gan.main` and `experiments.vade.main`), the mixture-latent GAN's and
VaDE's samples are scored the same way, and VaDE's bound on the test images too.
"""

import argparse
import functools
import json
import math
import os
import time

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from tqdm.auto import tqdm

import gmmjax
import gmmjax.data
from gmmjax import _em, mfa
from gmmjax.mfa import _fit, _model
from gmmjax.nn import fid

from . import baselines

CONFIGS = {
    "default": {"k": 20, "l": 8, "max_iter": 40, "ndb_bins": 100, "n_samples": 10000, "classifier_steps": 1000},
    "full": {"k": 100, "l": 10, "max_iter": 100, "ndb_bins": 100, "n_samples": 20000, "classifier_steps": 3000},
    "tiny": {"k": 3, "l": 2, "max_iter": 3, "ndb_bins": 10, "n_samples": 500, "classifier_steps": 20,
             "limit": 2000},
}
SIDE = 28
D = SIDE * SIDE


def dequantised(split: str, seed: int, limit=None) -> tuple[np.ndarray, np.ndarray]:
  """`(images [n, 784], labels [n])`, the images as (pixel + u) / 256, u ~ U[0, 1): a density on
  [0, 1]^784 whose bits per dimension bound those of the discrete images."""
  data = gmmjax.data.load("fashion_mnist", split=split, normalize="none", flatten=True, limit=limit)
  u = np.random.default_rng(seed).uniform(size=data.images.shape)
  return ((data.images.astype(np.float64) + u) / 256).astype(np.float32), np.asarray(data.labels)


def bits_per_dim(mean_log_density: float) -> float:
  return 8.0 - mean_log_density / (D * math.log(2))


def ndb(train: np.ndarray, samples: np.ndarray, centroids: np.ndarray, alpha: float = 0.05) -> float:
  """NDB/K (Richardson and Weiss): the fraction of k-means bins of the
  training images whose share of `samples` differs significantly (two-
  proportion z-test at level `alpha`)."""
  from scipy.stats import norm

  def shares(x):
    d2 = (x * x).sum(1)[:, None] - 2 * x @ centroids.T + (centroids * centroids).sum(1)[None]
    return np.bincount(np.argmin(d2, axis=1), minlength=len(centroids))

  c1, c2 = shares(train), shares(samples)
  n1, n2 = len(train), len(samples)
  p1, p2, pooled = c1 / n1, c2 / n2, (c1 + c2) / (n1 + n2)
  se = np.sqrt(np.maximum(pooled * (1 - pooled) * (1 / n1 + 1 / n2), 1e-300))
  return float(np.mean(np.abs(p1 - p2) / se > norm.ppf(1 - alpha / 2)))


class FrechetScorer:
  """The project's Frechet distance (`gmmjax.nn.fid`) of `[n, 784]` images in [0, 1] to `reference`,
  with a classifier trained on the training images."""

  def __init__(self, key, train, train_labels, reference, reference_labels, steps):
    self.params = fid.train_classifier(key, self._images(train), jnp.asarray(train_labels), steps=steps)
    probs, self.reference = fid.classify(self.params, self._images(reference))
    self.accuracy = float(np.mean(probs.argmax(-1) == reference_labels))

  @staticmethod
  def _images(x):
    return jnp.asarray(2 * np.clip(x, 0, 1) - 1, jnp.float32).reshape(-1, SIDE, SIDE, 1)

  def features(self, x):
    return fid.classify(self.params, self._images(x))[1]

  def __call__(self, x) -> float:
    return fid.frechet_distance_of_features(self.features(x), self.reference)


def seconds_per_iteration(x, params, reg_covar, chunk_size=None, repeats=2) -> float:
  """One jitted EM step (pass and M-step) on the padded data, best of `repeats`."""
  xp, w, options = _fit._padded(x, None, _fit.MFAOptions(params.n_components, params.n_factors))
  xp = jnp.asarray(xp)
  frame, reg = _em.working_frame(_em.Local(), xp, w, jnp.asarray(reg_covar, xp.dtype))
  start = _model.to_frame(params, frame)
  step = jax.jit(functools.partial(_fit._step, backend=_em.Local(), chunk_size=options.chunk_size))
  jax.block_until_ready(step(start, xp, w, reg, frame))
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(step(start, xp, w, reg, frame))
    best = min(best, time.perf_counter() - t0)
  return best


def sample_grid(params, path, per_component=10, max_components=20):
  k = min(params.n_components, max_components)
  fig, axes = plt.subplots(k, per_component + 1, figsize=(per_component + 1, k), squeeze=False)
  for j in range(k):
    one = mfa.MFAParams(jnp.eye(params.n_components, dtype=params.weights.dtype)[j], params.means, params.factors,
                        params.noise_variances, params.isotropic)
    x, _ = mfa.sample(jax.random.key(100 + j), one, per_component)
    images = [params.means[j]] + list(x)
    for i, im in enumerate(images):
      axes[j, i].imshow(np.clip(np.asarray(im).reshape(SIDE, SIDE), 0, 1), cmap="gray", vmin=0, vmax=1)
      axes[j, i].axis("off")
  axes[0, 0].set_title("mean", fontsize=7)
  fig.savefig(path, dpi=80, bbox_inches="tight")
  plt.close(fig)


def inpainting_figure(params, test, path, n=10):
  observed = np.arange(D) < D // 2  # top half given
  filled, _, _ = mfa.inpaint(params, test[:n], observed)
  masked = np.where(observed, test[:n], 0.5)
  fig, axes = plt.subplots(3, n, figsize=(n, 3.2), squeeze=False)
  for row, (name, images) in enumerate((("original", test[:n]), ("top half", masked), ("inpainted", filled))):
    for i in range(n):
      axes[row, i].imshow(np.clip(np.asarray(images[i]).reshape(SIDE, SIDE), 0, 1), cmap="gray", vmin=0, vmax=1)
      axes[row, i].axis("off")
    axes[row, 0].set_title(name, fontsize=7, loc="left")
  fig.savefig(path, dpi=80, bbox_inches="tight")
  plt.close(fig)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser()
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--config", default="default", choices=sorted(CONFIGS))
  parser.add_argument("--k", type=int)
  parser.add_argument("--l", type=int)
  parser.add_argument("--max-iter", type=int)
  parser.add_argument("--reg-covar", type=float, default=1e-6)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--gan-workdir", help="a finished experiments.gan.main run: score its mixture-latent GAN")
  parser.add_argument("--vade-workdir", help="a finished experiments.vade.main run: score its VaDE")
  args = parser.parse_args(argv)
  cfg = dict(CONFIGS[args.config])
  for name in ("k", "l", "max_iter"):
    if getattr(args, name) is not None:
      cfg[name] = getattr(args, name)
  os.makedirs(args.workdir, exist_ok=True)
  steps = tqdm(total=8, desc="mfa experiment")

  train, train_labels = dequantised("train", args.seed, cfg.get("limit"))
  test, test_labels = dequantised("test", args.seed + 1, cfg.get("limit"))
  steps.update()
  key = jax.random.key(args.seed)
  k, l = cfg["k"], cfg["l"]
  t0 = time.perf_counter()
  fit = mfa.fit(key, train, k, l, max_iter=cfg["max_iter"], reg_covar=args.reg_covar)
  fit_seconds = time.perf_counter() - t0
  steps.update()
  t0 = time.perf_counter()
  diag = gmmjax.fit(key, train, k, covariance_type="diag", max_iter=cfg["max_iter"], reg_covar=args.reg_covar)
  diag_seconds = time.perf_counter() - t0
  steps.update()

  mfa_test = float(np.mean(mfa.log_prob(fit.params, test)))
  diag_test = float(np.mean(gmmjax.log_prob(diag.params, test)))
  n_samples = cfg["n_samples"]
  # The MFA's samples with and without the per-pixel noise psi: the second are the means of p(x | z, k),
  # as VaDE's and the GAN's images are.
  samples = {"mfa": np.asarray(mfa.sample(jax.random.key(args.seed + 3), fit.params, n_samples)[0]),
             "mfa_noise_free": np.asarray(mfa.sample(jax.random.key(args.seed + 3), fit.params, n_samples,
                                                     noise=False)[0]),
             "diag_gmm": np.asarray(gmmjax.sample(jax.random.key(args.seed + 4), diag.params, n_samples)[0])}
  if args.gan_workdir:
    samples["gan_mixture"] = baselines.gan_samples(args.gan_workdir, n_samples, jax.random.key(args.seed + 5))
  if args.vade_workdir:
    samples["vade"] = baselines.vade_samples(args.vade_workdir, n_samples, jax.random.key(args.seed + 6))
  steps.update()
  # The reference row: real images scored as samples (test images against the training bins; 10,000
  # training images against the test images' features).
  samples["real_images"] = test[:n_samples]
  centroids = np.asarray(gmmjax.kmeans(jax.random.key(args.seed + 2), train, cfg["ndb_bins"]).centroids)
  frechet = FrechetScorer(jax.random.key(args.seed + 7), train, train_labels, test, test_labels,
                          cfg["classifier_steps"])
  scores = {name: {"ndb_over_k": ndb(train, x, centroids),
                   "frechet_distance": frechet(train[:n_samples] if name == "real_images" else x)}
            for name, x in samples.items()}
  steps.update()
  results = {
      "config": {**cfg, "config": args.config, "reg_covar": args.reg_covar, "seed": args.seed,
                 "n_train": len(train), "n_test": len(test), "gan_workdir": args.gan_workdir,
                 "vade_workdir": args.vade_workdir},
      "device": jax.devices()[0].device_kind,
      "classifier_test_accuracy": frechet.accuracy,
      "mfa": {"test_bits_per_dim": bits_per_dim(mfa_test), "train_log_likelihood": float(fit.log_likelihood),
              "n_iter": int(fit.n_iter), "converged": bool(fit.converged), "fit_seconds": fit_seconds,
              "seconds_per_iteration": seconds_per_iteration(train, fit.params, args.reg_covar),
              **scores.pop("mfa")},
      "diag_gmm": {"test_bits_per_dim": bits_per_dim(diag_test), "n_iter": int(diag.n_iter),
                   "fit_seconds": diag_seconds, **scores.pop("diag_gmm")},
      **scores,
  }
  if args.vade_workdir:
    bpd, split = baselines.vade_bits_per_dim(args.vade_workdir, test, jax.random.key(args.seed + 8))
    results["vade"].update(test_bits_per_dim_bound=bpd, trained_on=split)
  steps.update()
  sample_grid(fit.params, os.path.join(args.workdir, "samples_per_component.png"))
  steps.update()
  inpainting_figure(fit.params, test, os.path.join(args.workdir, "inpainting.png"))
  steps.update()
  steps.close()
  path = os.path.join(args.workdir, "results.json")
  with open(path, "w") as f:
    json.dump(results, f, indent=2)
  print(json.dumps(results, indent=2))
  print(f"wrote {path}, samples_per_component.png and inpainting.png in {args.workdir}")
  return results


if __name__ == "__main__":
  main()
