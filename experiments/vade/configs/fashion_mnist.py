"""The full protocol: all 70,000 Fashion-MNIST images, 10 seeds trained at once with `vmap`.

ACC/NMI/ARI are reported as mean +- std over seeds 0-4 and over all ten, and every seed is checked
for NaN. Sized for one GPU (see experiments/vade/README.md); far too slow on 2 CPU cores.
Local IDX files are read from `GMMJAX_FASHION_MNIST_DIR` when TFDS is absent.
"""

from .base import Config


def get_config() -> Config:
  return Config(
      dataset="fashion_mnist",
      split="all",
      architecture="mlp",
      hidden=(500, 500, 2000),
      batch_size=256,
      pretrain_epochs=50,
      pretrain_learning_rate=1e-3,
      epochs=100,
      learning_rate=2e-3,
      lr_decay_epochs=10,
      lr_decay_rate=0.9,
      seeds=tuple(range(10)),
      checkpoint_every=25,
      eval_size=None,
  )
