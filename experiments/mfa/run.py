"""Mixture of factor analysers on all 60,000 Fashion-MNIST training images.

Run:  python -m experiments.mfa.run --workdir runs/mfa                  # default: 2 CPU cores, ~5 min
      python -m experiments.mfa.run --workdir runs/mfa_full --config full  # a GPU
      python -m experiments.mfa.run --workdir runs/mfa --k 30 --l 6        # any size

Writes `results.json` (held-out bits per dimension of MFA and of a diagonal GMM
with the same k, NDB/K of their samples and of the test images, time per EM
iteration), `samples_per_component.png` and `inpainting.png` to the workdir.
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

CONFIGS = {
    "default": {"k": 20, "l": 8, "max_iter": 40, "ndb_bins": 100, "n_samples": 10000},
    "full": {"k": 100, "l": 10, "max_iter": 100, "ndb_bins": 100, "n_samples": 20000},
    "tiny": {"k": 3, "l": 2, "max_iter": 3, "ndb_bins": 10, "n_samples": 500, "limit": 2000},
}
SIDE = 28
D = SIDE * SIDE


def dequantised(split: str, seed: int, limit=None) -> np.ndarray:
  """Images as (pixel + u) / 256, u ~ U[0, 1): a density on [0, 1]^784 whose
  bits per dimension bound those of the discrete images."""
  images = gmmjax.data.load("fashion_mnist", split=split, normalize="none", flatten=True, limit=limit).images
  u = np.random.default_rng(seed).uniform(size=images.shape)
  return ((images.astype(np.float64) + u) / 256).astype(np.float32)


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


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--config", default="default", choices=sorted(CONFIGS))
  parser.add_argument("--k", type=int)
  parser.add_argument("--l", type=int)
  parser.add_argument("--max-iter", type=int)
  parser.add_argument("--reg-covar", type=float, default=1e-6)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  cfg = dict(CONFIGS[args.config])
  for name in ("k", "l", "max_iter"):
    if getattr(args, name) is not None:
      cfg[name] = getattr(args, name)
  os.makedirs(args.workdir, exist_ok=True)
  steps = tqdm(total=7, desc="mfa experiment")

  train = dequantised("train", args.seed, cfg.get("limit"))
  test = dequantised("test", args.seed + 1, cfg.get("limit"))
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
  centroids = np.asarray(gmmjax.kmeans(jax.random.key(args.seed + 2), train, cfg["ndb_bins"]).centroids)
  n_samples = cfg["n_samples"]
  mfa_samples = np.asarray(mfa.sample(jax.random.key(args.seed + 3), fit.params, n_samples)[0])
  diag_samples = np.asarray(gmmjax.sample(jax.random.key(args.seed + 4), diag.params, n_samples)[0])
  steps.update()
  results = {
      "config": {**cfg, "config": args.config, "reg_covar": args.reg_covar, "seed": args.seed,
                 "n_train": len(train), "n_test": len(test)},
      "device": jax.devices()[0].device_kind,
      "mfa": {"test_bits_per_dim": bits_per_dim(mfa_test), "train_log_likelihood": float(fit.log_likelihood),
              "n_iter": int(fit.n_iter), "converged": bool(fit.converged), "fit_seconds": fit_seconds,
              "seconds_per_iteration": seconds_per_iteration(train, fit.params, args.reg_covar),
              "ndb_over_k": ndb(train, mfa_samples, centroids)},
      "diag_gmm": {"test_bits_per_dim": bits_per_dim(diag_test), "n_iter": int(diag.n_iter),
                   "fit_seconds": diag_seconds, "ndb_over_k": ndb(train, diag_samples, centroids)},
      "test_images_ndb_over_k": ndb(train, test[:n_samples], centroids),
  }
  steps.update()
  sample_grid(fit.params, os.path.join(args.workdir, "samples_per_component.png"))
  steps.update()
  inpainting_figure(fit.params, test, os.path.join(args.workdir, "inpainting.png"))
  steps.update()
  steps.close()
  with open(os.path.join(args.workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
  print(json.dumps(results, indent=2))


if __name__ == "__main__":
  main()
