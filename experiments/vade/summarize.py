"""Pools the `results.json` of runs that trained different seeds of one config into one summary.

  python -m experiments.vade.summarize --group full runs/full_s*/results.json \\
      [--group diag runs/diag_s*/results.json] [--best-of 2] [--out pooled.json] [--plot per_seed.png]

On a CPU the full protocol fits one seed per run; this gives the same mean +- std over seeds as a run
that trained them all together. The runs must agree on everything but `seeds`, `progress` and the fields
named with `--ignore`, and no seed may appear twice.

`--best-of R` also scores the protocol that trains R models and keeps the one with the highest ELBO,
a label-free choice (as `gmmjax.fit` keeps the best of `n_init` restarts by likelihood): the sorted
seeds are cut into R equal blocks, and run i keeps the best of the i-th seeds of the blocks.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np

from gmmjax import train as gtrain

from . import train as vade_train

_FREE_FIELDS = ("seeds", "progress")  # May differ between the pooled runs.
TARGETS = {"acc": 0.70, "nmi": 0.69}  # Fashion-MNIST targets (experiments/vade/README.md).


def pool(results: list[dict], ignore: tuple[str, ...] = ()) -> dict:
  """One results dict from several runs of the same config, as if their seeds had trained together.

  Config fields named in `ignore` may differ (e.g. one the runs were known not to depend on, or one
  added after some of them were recorded); the pooled config lists each such field's values in
  the order the runs are given.
  """
  if not results:
    raise ValueError("nothing to pool")
  free = set(_FREE_FIELDS) | set(ignore)
  first = {k: v for k, v in results[0]["config"].items() if k not in free}
  for r in results[1:]:
    other = {k: v for k, v in r["config"].items() if k not in free}
    diff = sorted(k for k in first.keys() | other.keys() if first.get(k) != other.get(k))
    if diff:
      raise ValueError(f"runs differ in more than their seeds: {diff}")
  ignored = {k: list(dict.fromkeys(json.dumps(r["config"].get(k)) for r in results)) for k in ignore}
  per_seed = sorted((s for r in results for s in r["per_seed"]), key=lambda s: s["seed"])
  seeds = [s["seed"] for s in per_seed]
  if len(set(seeds)) != len(seeds):
    raise ValueError(f"a seed appears in more than one run: {seeds}")
  init = [{"acc": s["init_acc"], "nmi": s["init_nmi"]} for s in per_seed]
  return {
      "dataset": results[0]["dataset"],
      "devices": sorted({r["device"] for r in results}),
      "seeds": seeds,
      "per_seed": per_seed,
      "first5": vade_train.summarize_scores(per_seed[:5]),
      "all": vade_train.summarize_scores(per_seed),
      "after_gmm_init": vade_train.summarize_scores(init, names=("acc", "nmi")),
      "nan_free_seeds": sum(r["nan_free_seeds"] for r in results),
      "s_per_epoch": {
          phase: [r["timings"][f"{phase}_s_per_epoch"] for r in results] for phase in ("pretrain", "joint")
      },
      "config": {**first, "seeds": seeds, **{k: [json.loads(v) for v in vs] for k, vs in ignored.items()}},
  }


def best_of(pooled: dict, restarts: int) -> dict:
  """Scores of "train `restarts` models, keep the highest ELBO" from the pooled per-seed results.

  With seeds 0-9 and `restarts=2`, run i keeps seed i or seed i + 5, whichever has the higher ELBO;
  the first block's seeds are the runs' names.
  """
  per_seed = pooled["per_seed"]
  if restarts < 1 or len(per_seed) % restarts:
    raise ValueError(f"{len(per_seed)} seeds do not split into {restarts} equal blocks of restarts")
  runs = len(per_seed) // restarts

  def score(s):  # A non-finite run (NaN ELBO) is never kept over a finite one.
    return s["elbo"] if s["finite"] and np.isfinite(s["elbo"]) else -np.inf

  kept = [max(per_seed[i::runs], key=score) for i in range(runs)]
  return {
      "restarts": restarts,
      "kept_seeds": [s["seed"] for s in kept],
      "per_run": kept,
      "scores": vade_train.summarize_scores(kept),
  }


def plot_per_seed(pooled: dict[str, dict], path: pathlib.Path) -> pathlib.Path:
  """One panel per score (ACC, NMI, ARI): each group's per-seed values and their mean, with the targets."""
  plt = gtrain.plots.pyplot()
  fig, axes = plt.subplots(1, 3, figsize=(12, 4.4 + 0.25 * len(pooled)))
  offsets = np.linspace(-0.15, 0.15, len(pooled)) if len(pooled) > 1 else [0.0]
  all_seeds = sorted({s for p in pooled.values() for s in p["seeds"]})
  for ax, name in zip(axes, ("acc", "nmi", "ari")):
    for (label, p), dx in zip(pooled.items(), offsets):
      seeds = np.array(p["seeds"])
      line = ax.plot(seeds + dx, [s[name] for s in p["per_seed"]], "o", label=label)[0]
      mean, std = p["all"][name]["mean"], p["all"][name]["std"]
      ax.axhline(mean, color=line.get_color(), alpha=0.6, label=f"{label} mean {mean:.3f} +- {std:.3f}")
    if name in TARGETS:
      ax.axhline(TARGETS[name], color="k", linestyle="--", label=f"target {TARGETS[name]}")
    ax.set_title(name.upper())
    ax.set_xlabel("seed")
    ax.set_xticks(all_seeds)
    ax.grid(alpha=0.3)
    # Below the panel: inside it, the legend would hide points.
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18))
  fig.tight_layout()
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def _format(summary: dict) -> str:
  return "  ".join(f"{name.upper()} {v['mean']:.4f} +- {v['std']:.4f}" for name, v in summary.items())


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--group", nargs="+", action="append", required=True, metavar=("LABEL", "RESULTS"),
                      help="a label, then the results.json files of the runs to pool under it (repeatable)")
  parser.add_argument("--ignore", nargs="+", default=(), metavar="FIELD",
                      help="config fields that may differ between the pooled runs")
  parser.add_argument("--best-of", type=int, metavar="R",
                      help="also score keeping the highest-ELBO model of each R seeds (see above)")
  parser.add_argument("--out", type=pathlib.Path, help="where to write {label: pooled results} as JSON")
  parser.add_argument("--plot", type=pathlib.Path, help="where to write the per-seed scores as a PNG")
  args = parser.parse_args(argv)
  pooled = {}
  for label, *paths in args.group:
    if not paths or label in pooled:
      parser.error(f"--group {label}: give a new label and at least one results.json")
    pooled[label] = pool([json.loads(pathlib.Path(p).read_text()) for p in paths], tuple(args.ignore))
    if args.best_of is not None:
      try:
        pooled[label]["best_of"] = best_of(pooled[label], args.best_of)
      except ValueError as e:
        parser.error(f"--group {label}: {e}")
  for label, p in pooled.items():
    print(f"[{label}]")
    for s in p["per_seed"]:
      print(f"seed {s['seed']}: ACC {s['acc']:.4f}  NMI {s['nmi']:.4f}  ARI {s['ari']:.4f}  "
            f"(after GMM init ACC {s['init_acc']:.4f})")
    for part in ("after_gmm_init", "first5", "all"):
      print(f"{part:>15}: {_format(p[part])}")
    print(f"NaN-free seeds: {p['nan_free_seeds']}/{len(p['seeds'])}")
    if args.best_of is not None:
      kept = p["best_of"]
      print(f"best of {args.best_of} by ELBO, kept seeds {kept['kept_seeds']}: {_format(kept['scores'])}")
  if args.out:
    args.out.write_text(json.dumps(pooled, indent=2) + "\n")
  if args.plot:
    plot_per_seed(pooled, args.plot)


if __name__ == "__main__":
  main()
