"""A small training run for the kill-and-resume and data-parallel tests (run as a subprocess).

Usage: python resume_worker.py WORKDIR NUM_STEPS [--sleep SECONDS] [--data-parallel]
Writes WORKDIR/final.npz with the final parameters and prints `resumed_from=<step or None>`.
"""

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gmmjax import data, train


class MLP(nn.Module):
  @nn.compact
  def __call__(self, x, key):
    h = nn.relu(nn.Dense(32)(x))
    # Dropout-like noise makes the run depend on the per-step keys too.
    h = h * jax.random.bernoulli(key, 0.9, h.shape) / 0.9
    return nn.Dense(10)(h)


MODEL = MLP()


def loss_fn(params, batch, key):
  x, y = batch
  logits = MODEL.apply({"params": params}, x, key)
  log_p = jax.nn.log_softmax(logits)
  loss = -jnp.mean(jnp.take_along_axis(log_p, y[:, None], axis=1))
  return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == y)}


def make_state(key, x0):
  params = MODEL.init(key, x0, key)["params"]
  tx = train.make_optimizer(train.OptimizerConfig(learning_rate=3e-3, schedule="warmup_cosine",
                                                  warmup_steps=5, decay_steps=100, clip_norm=1.0))
  return train.TrainState.create(params=params, tx=tx)


def run(workdir, num_steps, *, sleep=0.0, data_parallel=False, checkpoint_every=5, batch_size=64, keep=2,
        callback=None, **fit_kwargs):
  ds = data.load("digits", flatten=True)
  key = jax.random.key(42)
  state = make_state(jax.random.key(0), ds.images[:1])
  if sleep:
    callback = lambda step, state, metrics: time.sleep(sleep)  # noqa: E731
  return train.run(train.make_train_step(loss_fn), state, (ds.images, ds.labels), key=key,
                   num_steps=num_steps, batch_size=batch_size, workdir=workdir, seed=1,
                   checkpoint_every=checkpoint_every, keep=keep, log_every=1, progress=False,
                   callback=callback, data_parallel=data_parallel, **fit_kwargs)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("workdir")
  parser.add_argument("num_steps", type=int)
  parser.add_argument("--sleep", type=float, default=0.0)
  parser.add_argument("--data-parallel", action="store_true")
  parser.add_argument("--checkpoint-every", type=int, default=5)
  args = parser.parse_args()
  result = run(args.workdir, args.num_steps, sleep=args.sleep, data_parallel=args.data_parallel,
               checkpoint_every=args.checkpoint_every)
  leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(result.state.params))[0]
  np.savez(f"{args.workdir}/final.npz", **{jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves})
  print(f"resumed_from={result.resumed_from}", flush=True)


if __name__ == "__main__":
  main()
