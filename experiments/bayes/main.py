"""How many components: a Dirichlet-process mixture started with 30 components against BIC's choice.

Run:  python -m experiments.vade.encode --workdir /tmp/fmnist_vade --out /tmp/fmnist_vade_codes.npz
      python -m experiments.bayes.main --codes /tmp/fmnist_vade_codes.npz --out experiments/bayes/results
      python -m experiments.bayes.main --quick --data synthetic,pca --out /tmp/bayes   # a few minutes

Data sets with a known number of groups: synthetic Gaussian clusters, and
Fashion-MNIST's 70,000 images (10 classes) as the codes (encoder means) of a
trained VaDE (`experiments.vade`, written by `experiments.vade.encode`) and as
10-dimensional PCA codes. On each, `gmmjax.fit_variational` (truncated
Dirichlet process, 30 components, scikit-learn's default prior) counts the
components with expected weight above 1 %, and `gmmjax.select_n_components`
picks k by BIC over a sweep of fits; both are timed (wall clock, compilation
included). Writes results.json and bayes.png to --out; the rows of data sets
not in --data are kept from --out's results.json.
"""

import argparse
import json
import os
import time

import jax
import matplotlib
import numpy as np
from tqdm import tqdm

import gmmjax
from gmmjax import data as gdata

matplotlib.use("Agg")
import matplotlib.pyplot as plt

TRUNCATION = 30
THRESHOLD = 0.01


def synthetic(n, seed=0, k=6, d=5):
  """`k` Gaussian clusters in `d` dimensions, random full covariances, unequal sizes."""
  rng = np.random.default_rng(seed)
  means = rng.uniform(-10, 10, (k, d))
  weights = rng.dirichlet(np.full(k, 4.0))
  z = rng.choice(k, n, p=weights)
  a = rng.standard_normal((k, d, d)) / np.sqrt(d)
  chol = np.linalg.cholesky(a @ np.swapaxes(a, 1, 2) + 0.3 * np.eye(d))
  x = means[z] + np.einsum("nde,ne->nd", chol[z], rng.standard_normal((n, d)))
  return x.astype(np.float32), k


def fashion_pca(n, dims=10):
  """PCA codes of Fashion-MNIST (train + test), standardised."""
  from sklearn.decomposition import PCA

  ds = gdata.load("fashion_mnist", split="all", flatten=True, limit=n)
  codes = PCA(dims, random_state=0).fit_transform(np.asarray(ds.images, np.float32))
  return (codes / codes.std(axis=0)).astype(np.float32), len(np.unique(ds.labels))


def vade_codes(path, n):
  """A trained VaDE's codes of Fashion-MNIST as they are (`experiments.vade.encode`'s file)."""
  with np.load(path) as f:
    codes, labels = f["codes"][:n].astype(np.float32), f["labels"][:n]
    source = f"VaDE codes after joint epoch {int(f['epoch'])} of {int(f['epochs'])}"
  return codes, len(np.unique(labels)), source


# key: (row name, candidates of the BIC sweep)
DATASETS = {"synthetic": ("synthetic", range(1, 16)),
            "vade": ("Fashion-MNIST VaDE-10", range(2, 31, 2)),
            "pca": ("Fashion-MNIST PCA-10", range(2, 31, 2))}


def study(name, x, truth, candidates):
  t0 = time.perf_counter()
  fit = gmmjax.fit_variational(jax.random.key(0), x, TRUNCATION, max_iter=500, tol=1e-4 * len(x))
  weights = np.asarray(fit.posterior.weights)
  t_dp = time.perf_counter() - t0
  t0 = time.perf_counter()
  bic = gmmjax.select_n_components(jax.random.key(0), x, candidates, max_iter=500)
  t_bic = time.perf_counter() - t0
  return {"data": name, "n": len(x), "d": x.shape[1], "truth": truth,
          "dp_used": int(np.sum(weights > THRESHOLD)), "dp_seconds": t_dp, "dp_iterations": int(fit.n_iter),
          "dp_converged": bool(fit.converged), "dp_weights": sorted(weights.tolist(), reverse=True),
          "bic_choice": bic.best_n_components, "bic_seconds": t_bic, "bic_candidates": list(bic.candidates),
          "bic_scores": bic.scores.tolist()}


def plot(rows, path):
  fig, axes = plt.subplots(2, len(rows), figsize=(4.5 * len(rows), 6.5), squeeze=False)
  for col, r in enumerate(rows):
    ax = axes[0, col]
    ax.bar(np.arange(1, TRUNCATION + 1), r["dp_weights"], color="tab:blue")
    ax.axhline(THRESHOLD, color="k", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_ylim(1e-6, 1)
    ax.set_title(f"{r['data']}\nDP keeps {r['dp_used']} of {TRUNCATION} (truth {r['truth']})", fontsize=10)
    ax.set_xlabel("component (sorted)")
    ax.set_ylabel("expected weight")
    ax = axes[1, col]
    ax.plot(r["bic_candidates"], r["bic_scores"], "o-", color="tab:orange")
    ax.axvline(r["truth"], color="k", lw=0.8, ls=":", label="truth")
    ax.axvline(r["bic_choice"], color="tab:orange", lw=0.8, label=f"BIC's choice ({r['bic_choice']})")
    ax.set_xlabel("k")
    ax.set_ylabel("BIC")
    ax.set_title(f"BIC sweep: {r['bic_seconds']:.0f} s vs DP fit {r['dp_seconds']:.0f} s", fontsize=10)
    ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=80)  # Kept in git: small.


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", default="experiments/bayes/results")
  parser.add_argument("--data", default=",".join(DATASETS),
                      help=f"comma-separated data sets to (re)run, of {', '.join(DATASETS)}")
  parser.add_argument("--codes", help="experiments.vade.encode's .npz of the Fashion-MNIST codes (for vade)")
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--replot", action="store_true", help="redraw bayes.png from --out's results.json")
  args = parser.parse_args()
  results = os.path.join(args.out, "results.json")
  if args.replot:
    with open(results) as f:
      plot(json.load(f), os.path.join(args.out, "bayes.png"))
    return
  selected = args.data.split(",")
  if unknown := set(selected) - set(DATASETS):
    parser.error(f"unknown data sets {sorted(unknown)}; expected some of {list(DATASETS)}")
  if "vade" in selected and not (args.codes and os.path.isfile(args.codes)):
    parser.error("--data vade needs --codes, the file `python -m experiments.vade.encode` writes")
  os.makedirs(args.out, exist_ok=True)
  n_syn, n_fm = (4000, 5000) if args.quick else (20000, None)
  make = {"synthetic": lambda: (*synthetic(n_syn), "6 Gaussian clusters"),
          "pca": lambda: (*fashion_pca(n_fm), "first 10 principal components, standardised"),
          "vade": lambda: vade_codes(args.codes, n_fm)}
  rows = {}
  if os.path.isfile(results):
    with open(results) as f:
      rows = {r["data"]: r for r in json.load(f)}
  for key in tqdm(selected, desc="data sets"):
    name, candidates = DATASETS[key]
    x, truth, source = make[key]()
    r = rows[name] = {**study(name, x, truth, candidates), "source": source}
    tqdm.write(f"{name}: n={r['n']} truth {r['truth']}, DP keeps {r['dp_used']} ({r['dp_seconds']:.1f} s, "
               f"{r['dp_iterations']} it), BIC picks {r['bic_choice']} ({r['bic_seconds']:.1f} s)")
  ordered = [rows[name] for name, _ in DATASETS.values() if name in rows]
  with open(results, "w") as f:
    json.dump(ordered, f, indent=1)
  plot(ordered, os.path.join(args.out, "bayes.png"))


if __name__ == "__main__":
  main()
