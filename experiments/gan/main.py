"""Fashion-MNIST GAN with a learnable mixture latent (DeLiGAN) against a N(0, I) latent.

  python -m experiments.gan.main --config full --workdir /tmp/gan
  python -m experiments.gan.main --config tiny --workdir /tmp/gan_tiny --set steps=10

Evaluation uses only networks trained here: a Fashion-MNIST classifier's
penultimate features give the Frechet distance between generated and real test
images, its labels the per-image entropy, the class coverage and the inception
score. Training runs in chunks of `log_every` steps (`gmmjax.train.make_epoch`: one
`lax.scan` each, a loop of the jitted step on CPU; one host sync per chunk), driven by `gmmjax.train.run`
(one fit step = one chunk): JSONL metrics, tqdm, Orbax checkpoints, and resume
when the same command is run again. Writes
config.json, results.json, results.md, learning_curves.png, a sample grid PNG per
GAN, and per GAN a folder `<latent>/` (config.json, metrics.jsonl, checkpoints/)
into the workdir.
"""

from __future__ import annotations

import sys

from .. import cli
from . import train
from .configs import get_config


def main(argv=None) -> None:
  args = cli.parse_args(argv, __doc__, "tiny", ("tiny", "cpu", "cpu_long", "full"))
  config = cli.parse_overrides(get_config(args.config), args.set)
  results = train.train_and_evaluate(config, args.workdir, resume=args.resume)
  print(f"classifier test accuracy {results['classifier_test_accuracy']:.4f}")
  print(train.results_table(results))
  print(f"total {results['total_seconds']:.1f} s")


if __name__ == "__main__":
  main(sys.argv[1:])
