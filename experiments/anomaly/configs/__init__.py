"""Configurations of the one-class Fashion-MNIST experiment: `get_config(name)` for tiny, cpu, mlp, full."""

import dataclasses
import importlib


@dataclasses.dataclass(frozen=True)
class Config:
  """One-class anomaly detection: one DAGMM per (normal class, seed), all trained at once.

  Attributes:
    classes: normal classes (one set of models per class).
    seeds: seeds per class.
    train_per_class: training images per class (None: all 6000).
    test_limit: first test images scored (None: all 10000).
    architecture: "mlp" or "conv" compression network.
    latent_dim, n_components: code size and DAGMM mixture size.
    encoder_hidden, decoder_hidden: MLP widths (architecture "mlp").
    epochs, batch_size, learning_rate: Adam training.
    lambda_energy, lambda_cov, reg_covar: DAGMM's loss weights and the covariance regulariser.
    transform_hidden, transform_shift: the transform classifier (`gmmjax.nn.geometric`) trained
      beside each DAGMM on the same batches: its MLP widths (the last is its feature size), and the
      shift in pixels of its shifted transforms (0: the 8 rotations/flips only).
    gmm_components, gmm_covariance_type, gmm_features, gmm_reg_covar, gmm_n_init: the GMM
      detectors, `gmmjax.fit` on standardised training features: the compression network's
      ("code" or "z" = code plus reconstruction features) and the transform classifier's.
    eval_chunk: images per chunk when embedding (bounds memory).
    checkpoint_every: epochs between checkpoints (the last epoch is always saved).
    data_dir: folder of the Fashion-MNIST IDX files (None: $GMMJAX_FASHION_MNIST_DIR or Debian's).
  """

  classes: tuple[int, ...] = tuple(range(10))
  seeds: tuple[int, ...] = (0, 1, 2)
  train_per_class: int | None = None
  test_limit: int | None = None
  architecture: str = "conv"
  latent_dim: int = 16
  n_components: int = 4
  encoder_hidden: tuple[int, ...] = (256, 64)
  decoder_hidden: tuple[int, ...] = (64, 256)
  epochs: int = 20
  batch_size: int = 128
  learning_rate: float = 1e-3
  lambda_energy: float = 0.1
  lambda_cov: float = 0.005
  reg_covar: float = 1e-3
  transform_hidden: tuple[int, ...] = (1024, 64)
  transform_shift: int = 6
  gmm_components: int = 4
  gmm_covariance_type: str = "full"
  gmm_features: str = "z"
  gmm_reg_covar: float = 1e-3
  gmm_n_init: int = 2
  eval_chunk: int = 2000
  checkpoint_every: int = 5
  data_dir: str | None = None


def get_config(name: str) -> Config:
  """The named configuration ("tiny", "cpu" or "full")."""
  return importlib.import_module(f"{__name__}.{name}").get_config()
