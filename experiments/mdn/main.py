"""Mixture density network on a multimodal inverse problem with a known conditional density.

  python -m experiments.mdn.main --config full --workdir /tmp/mdn

Data: x ~ N(0.5, prior_sd^2), y = x + 0.3 sin(2 pi x) + N(0, noise^2); the MDN
models p(x | y), which has up to three modes. The true conditional density is
p(x) p(y | x) / p(y), with p(y) a 1-D integral computed by quadrature, so the
learned held-out NLL can be compared with the true NLL. Training is
`gmmjax.train.run` with one full-batch Adam step per fit step: JSONL metrics,
tqdm, Orbax checkpoints, and resume when the same command is run again. Writes
config.json, metrics.jsonl, checkpoints/, results.json, samples.png (MDN samples
over the data) and learning_curves.png.
"""

from __future__ import annotations

import json
import sys

from .. import cli
from . import train
from .configs import get_config


def main(argv=None) -> None:
  args = cli.parse_args(argv, __doc__, "tiny", ("tiny", "cpu", "full"))
  config = cli.parse_overrides(get_config(args.config), args.set)
  print(json.dumps(train.train_and_evaluate(config, args.workdir, resume=args.resume), indent=2))


if __name__ == "__main__":
  main(sys.argv[1:])
