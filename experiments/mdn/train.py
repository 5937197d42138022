"""The mixture density network experiment: `train_and_evaluate(config, workdir)` (`main.py` parses arguments).

What the experiment shows, its commands and what a run writes: the docstring of `main.py`.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import stats

from gmmjax import train as gtrain
from gmmjax.nn import mdn

from .configs import Config


def forward(x: np.ndarray) -> np.ndarray:
  return x + 0.3 * np.sin(2 * np.pi * x)


def make_data(seed: int, n: int, config: Config) -> tuple[np.ndarray, np.ndarray]:
  """`(features y [n, 1], targets x [n, 1])` as float64."""
  rng = np.random.default_rng(seed)
  x = rng.normal(0.5, config.prior_sd, n)
  y = forward(x) + config.noise * rng.normal(size=n)
  return y[:, None], x[:, None]


def true_log_density(features: np.ndarray, targets: np.ndarray, config: Config) -> np.ndarray:
  """`[n]` log p(x | y) by Bayes' rule, p(y) by a Riemann sum on a fine grid."""
  grid = np.linspace(0.5 - 8 * config.prior_sd, 0.5 + 8 * config.prior_sd, 20001)
  log_joint_grid = (stats.norm.logpdf(grid, 0.5, config.prior_sd)[None]
                    + stats.norm.logpdf(features, forward(grid)[None], config.noise))
  log_marginal = np.logaddexp.reduce(log_joint_grid, axis=-1) + np.log(grid[1] - grid[0])
  log_joint = (stats.norm.logpdf(targets[:, 0], 0.5, config.prior_sd)
               + stats.norm.logpdf(features[:, 0], forward(targets[:, 0]), config.noise))
  return log_joint - log_marginal


class MDNNet(nn.Module):
  """tanh MLP then `MDNHead`."""

  hidden: tuple[int, ...]
  n_components: int
  target_dim: int
  covariance_type: str = "diag"
  min_scale: float = 1e-3

  @nn.compact
  def __call__(self, h: jax.Array) -> mdn.MDNParams:
    for width in self.hidden:
      h = nn.tanh(nn.Dense(width)(h))
    return mdn.MDNHead(self.n_components, self.target_dim, self.covariance_type, self.min_scale)(h)


def _plot(f_test, t_test, samples, path: pathlib.Path) -> None:
  plt = gtrain.plots.pyplot()

  fig, ax = plt.subplots(figsize=(5, 4))
  ax.scatter(f_test[:, 0], t_test[:, 0], s=2, alpha=0.4, label="data")
  ax.scatter(f_test[:, 0], samples[:, 0], s=2, alpha=0.4, label="MDN samples")
  ax.set_xlabel("y (input)")
  ax.set_ylabel("x (target)")
  ax.legend(markerscale=4)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def train_and_evaluate(config: Config, workdir: str | pathlib.Path, resume: str = "auto") -> dict:
  """Trains the MDN full-batch, compares held-out NLL with the true NLL, writes the results.

  `resume="force"` resumes a workdir that holds another config (recorded in `resumes.jsonl`). A finished
  run is read: its results.json is returned and nothing is written.
  """
  workdir = pathlib.Path(workdir)
  t0 = time.time()
  f_train, t_train = make_data(config.seed, config.n_train, config)
  f_test, t_test = make_data(config.seed + 1, config.n_test, config)
  net = MDNNet(config.hidden, config.n_components, 1, config.covariance_type, config.min_scale)
  f, t = jnp.asarray(f_train, jnp.float32), jnp.asarray(t_train, jnp.float32)
  key = jax.random.key(config.seed)
  state = gtrain.TrainState.create(params=net.init(key, f)["params"], tx=optax.adam(config.learning_rate))

  def loss_fn(params, batch, key):
    del key
    features, targets = batch
    return mdn.nll(net.apply({"params": params}, features), targets), {}

  t_run = time.time()
  trained = gtrain.run(
      gtrain.make_train_step(loss_fn), state, lambda step: (f, t), key=key, num_steps=config.steps,
      batch_size=config.n_train, workdir=workdir, seed=config.seed, checkpoint_every=config.checkpoint_every,
      log_every=100, config=dataclasses.asdict(config), resume=resume)
  if trained.resumed_from == config.steps:
    finished = gtrain.read_results(workdir, config, ignore=gtrain.CONFIG_IGNORE)
    if finished is not None:
      return finished
  own_training_s = time.time() - t_run
  params = trained.state.params
  out = net.apply({"params": params}, jnp.asarray(f_test, jnp.float32))
  test_nll = float(mdn.nll(out, jnp.asarray(t_test, jnp.float32)))
  true_nll = float(-true_log_density(f_test, t_test, config).mean())
  gauss_nll = float(-stats.norm.logpdf(t_test[:, 0], t_train.mean(), t_train.std()).mean())
  samples = np.asarray(mdn.sample(jax.random.fold_in(key, 1), out))
  # The training time of every run that made the history, not only this one's part.
  total_s = time.time() - t0 - own_training_s + (trained.elapsed_s or 0.0)
  results = {"test_nll": test_nll, "true_nll": true_nll, "gap": test_nll - true_nll,
             "unconditional_gaussian_nll": gauss_nll, "total_seconds": total_s}
  history = [r for r in trained.history if r.get("split") == "train"]

  def plots(workdir):
    _plot(f_test, t_test, samples, workdir / "samples.png")
    gtrain.plots.plot_learning_curves(history, workdir / "learning_curves.png", keys=["loss", "grad_norm"],
                                      log_y=True)

  return gtrain.write_results(workdir, config, results, plots=plots)
