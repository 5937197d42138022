"""VaDE (or GMVAE) on images: AE pretraining -> `gmmjax.fit` on latent means -> joint ELBO training.

All seeds of a run train at once: parameters and optimiser states are stacked along a leading seed
axis and one jitted `vmap`ped function runs a whole epoch as a `lax.scan` over mini-batches, with the
data set resident on the device. `gmmjax.train.run` drives the epochs (one "step" = one epoch): JSONL
metrics, tqdm, Orbax checkpoints and resume.

  python -m experiments.vade.main --config default --workdir runs/vade
  python -m experiments.vade.main --config fashion_mnist --workdir runs/vade_fmnist --set epochs=20
  python -m experiments.vade.main --config gmvae --workdir runs/gmvae

`config.model` picks the model: "vade" (`gmmjax.nn.vade`) or "gmvae" (`gmmjax.nn.gmvae`, q(c | x)
and q(z | x, c) from a head on the same encoder; the same pretraining and GMM initialisation).

Writes to `workdir`: `pretrain/` and `joint/` (config.json, metrics.jsonl, checkpoints/), `results.json`
(ACC/NMI/ARI per seed, mean +- std, NaN checks, timings), `samples_per_component.png`,
`reconstructions.png`, `learning_curves.png`.
"""

from __future__ import annotations

import json

from .. import cli
from . import train


def main(argv=None):
  args = cli.parse_args(argv, __doc__, "default")
  config = train.load_config(args.config, args.set)
  results = train.train_and_evaluate(config, args.workdir, resume=args.resume)
  for part in ("after_gmm_init", "first5", "all"):
    s = results[part]
    print(f"{part:>15}: ACC {s['acc']['mean']:.4f} +- {s['acc']['std']:.4f}  NMI {s['nmi']['mean']:.4f} "
          f"+- {s['nmi']['std']:.4f}  ARI {s['ari']['mean']:.4f} +- {s['ari']['std']:.4f}")
  print(f"NaN-free seeds: {results['nan_free_seeds']}/{len(results['seeds'])}; timings: "
        + json.dumps({k: v if v is None else round(v, 2) for k, v in results["timings"].items()}))


if __name__ == "__main__":
  main()
