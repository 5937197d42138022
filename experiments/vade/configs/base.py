"""The VaDE experiment's settings, with the defaults of the original recipe."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
  """Settings of one VaDE or GMVAE run (all seeds of it train side by side with `vmap`)."""

  # Data (`gmmjax.data.load`).
  dataset: str = "mnist_5k"
  split: str = "all"
  limit: int | None = None  # Keep only the first `limit` images.
  stride: int = 1  # Then keep every `stride`-th image (a class-balanced subset of sorted data).
  data_dir: str | None = None

  # Model.
  model: str = "vade"  # or "gmvae" (gmmjax.nn.gmvae).
  architecture: str = "mlp"  # "mlp" (VaDE's 500-500-2000) or "conv".
  hidden: tuple[int, ...] = (500, 500, 2000)  # MLP widths (decoder uses them reversed).
  latent_dim: int = 10
  n_components: int = 10
  likelihood: str = "bernoulli"
  elbo_method: str = "closed_form"  # or "monte_carlo".
  head_hidden: int = 128  # GMVAE only: hidden width of the q(c | x), q(z | x, c) head.
  uniform_weights: bool = False  # p(c) = 1 / k instead of learned.
  # > 0: p(c) held at 1 / k for this many joint epochs, then learned (ignored with uniform_weights).
  uniform_weights_epochs: int = 0
  prior_covariance: str = "diag"  # VaDE only: "diag" or "full" covariances of the prior's components.

  # Training.
  seeds: tuple[int, ...] = (0,)  # Trained together; metrics are reported per seed and as mean +- std.
  batch_size: int = 100
  pretrain_epochs: int = 20
  pretrain_learning_rate: float = 1e-3
  pretrain_input_dropout: float = 0.0  # > 0: denoising pretraining, pixels zeroed with this probability.
  pretrain_max_shift: int = 0  # > 0: the encoder sees images translated by up to this many pixels.
  epochs: int = 50
  input_dropout: float = 0.0  # > 0: denoising ELBO in joint training (the encoder sees masked pixels).
  kl_weight: float = 1.0  # Weight of the KL part of the joint loss (1: the ELBO).
  learning_rate: float = 2e-3
  lr_decay_rate: float = 0.9  # Multiplied into the learning rate every `lr_decay_epochs` epochs.
  lr_decay_epochs: int = 10
  clip_norm: float = 10.0
  gmm_n_init: int = 5
  gmm_max_iter: int = 200
  gmm_reg_covar: float = 1e-4
  # `jax.default_matmul_precision` for the whole run. "float32" computes on every device what the CPU
  # computes; JAX's "default" lets recent GPUs round float32 matmul inputs to TF32 (10-bit mantissa).
  matmul_precision: str = "float32"

  # Outputs.
  checkpoint_every: int = 10  # Epochs.
  eval_size: int | None = None  # Images used for ACC/NMI/ARI (None: all).
  samples_per_component: int = 10
  n_reconstructions: int = 16
  progress: bool = True
