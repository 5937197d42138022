"""One-class Fashion-MNIST: DAGMM, GMMs on learned features and their combination, all (class, seed)
models at once.

  python -m experiments.anomaly.main --config full --workdir /tmp/anomaly
  python -m experiments.anomaly.main --config tiny --workdir /tmp/anomaly_tiny --set epochs=1

All models share one program: parameters and optimiser states are stacked on a
leading model axis and `gmmjax.train.make_epoch` runs an epoch of all of them as
one `vmap`-ed `lax.scan` (one host sync per epoch).
`gmmjax.train.run` drives the epochs (one "step" = one epoch): JSONL metrics,
tqdm, Orbax checkpoints, and resume when the same command is run again.
Writes config.json, metrics.jsonl (per epoch), checkpoints/, results.json,
results.md, auroc_per_class.png and learning_curves.png into the workdir.
"""

from __future__ import annotations

import sys

from .. import cli
from . import train
from .configs import get_config


def main(argv=None) -> None:
  args = cli.parse_args(argv, __doc__, "tiny", ("tiny", "cpu", "mlp", "full"))
  config = cli.parse_overrides(get_config(args.config), args.set)
  results = train.train_and_evaluate(config, args.workdir, resume=args.resume)
  print(train.results_table(results, config.classes))
  print(f"seconds/epoch {results['seconds_per_epoch']:.2f}, total {results['total_seconds']:.1f} s")


if __name__ == "__main__":
  main(sys.argv[1:])
