"""Mixtures of factor analysers: densities against the full-covariance GMM and
SciPy, sampling moments, EM against closed forms and scikit-learn, invariants
(monotone likelihood, weights == repeated rows, chunks), and inpainting
against the conditional Gaussian of the equivalent full-covariance GMM."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal

import gmmjax
import gmmjax.data
from gmmjax import mfa


def random_mfa(seed, k, d, l, isotropic=False, spread=3.0, dtype=np.float64):
  rng = np.random.default_rng(seed)
  psi = rng.uniform(0.1, 1.0, (k, 1) if isotropic else (k, d)) * np.ones((k, d))
  return mfa.MFAParams(
      jnp.asarray(rng.dirichlet(np.full(k, 5.0)), dtype), jnp.asarray(spread * rng.standard_normal((k, d)), dtype),
      jnp.asarray(rng.standard_normal((k, d, l)), dtype), jnp.asarray(psi, dtype), isotropic)


def scipy_log_prob(p, x):
  cov = np.asarray(p.covariances)
  comp = np.stack([multivariate_normal(np.asarray(p.means[j]), cov[j]).logpdf(x) for j in range(len(cov))], 1)
  return np.logaddexp.reduce(comp + np.log(np.asarray(p.weights))[None], axis=1)


def test_log_prob_equals_full_gmm_and_scipy():
  d, l = 100, 10
  p = random_mfa(0, 3, d, l)
  x = np.asarray(mfa.sample(jax.random.key(1), p, 40)[0]) + np.random.default_rng(2).normal(size=(40, d))
  ours = np.asarray(mfa.log_prob(p, x))
  np.testing.assert_allclose(ours, gmmjax.log_prob(mfa.to_gmm(p), x), rtol=1e-6)
  np.testing.assert_allclose(ours, scipy_log_prob(p, x), rtol=1e-6)
  mean_ll, log_resp = mfa.e_step(p, x)
  ref_ll, ref_resp = gmmjax.e_step(mfa.to_gmm(p), x)
  np.testing.assert_allclose(mean_ll, ref_ll, rtol=1e-6)
  np.testing.assert_allclose(np.exp(log_resp), np.exp(ref_resp), atol=1e-8)
  np.testing.assert_array_equal(mfa.predict(p, x), gmmjax.predict(mfa.to_gmm(p), x))
  np.testing.assert_allclose(mfa.component_log_prob(p, x), gmmjax.component_log_prob(mfa.to_gmm(p), x), rtol=1e-6)


# With noise 1e-6, x - mu - W z* is a thousandth of x - mu: three of float32's seven digits go to it.
@pytest.mark.parametrize(("noise", "rtol"), [(1.0, 2e-6), (1e-6, 1e-4)])
def test_float32_log_prob_close_to_float64(noise, rtol):
  # Far from the origin, and (noise 1e-6) with noise a millionth of the factors' variance, as for image
  # pixels, where the Woodbury form of the quadratic cancels to a few digits in float32.
  p64 = random_mfa(3, 3, 100, 10, spread=100.0)
  p64 = mfa.MFAParams(p64.weights, p64.means, p64.factors, noise * p64.noise_variances)
  p32 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), p64)
  x = np.asarray(mfa.sample(jax.random.key(4), p64, 40)[0]).astype(np.float32)
  # The reference has the same (float32) points and parameters: what differs is the arithmetic.
  ref = np.asarray(mfa.log_prob(jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), p32), x.astype(np.float64)))
  got = np.asarray(mfa.log_prob(p32, x))
  assert got.dtype == np.float32
  np.testing.assert_allclose(got, ref, rtol=rtol)


def test_sample_matches_moments():
  p = random_mfa(5, 2, 5, 2)
  x, comp = mfa.sample(jax.random.key(6), p, 40000)
  x, comp = np.asarray(x), np.asarray(comp)
  assert x.shape == (40000, 5) and comp.shape == (40000,)
  np.testing.assert_allclose(np.bincount(comp) / len(comp), p.weights, atol=0.01)
  for j in range(2):
    xj = x[comp == j]
    cov = np.asarray(p.covariances[j])
    se = np.sqrt(np.diag(cov) / len(xj))
    assert np.all(np.abs(xj.mean(0) - p.means[j]) < 5 * se)
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / len(xj))
    assert np.all(np.abs(np.cov(xj.T) - cov) < 5 * se_cov)


def test_noise_free_samples_are_the_means_of_the_same_draws():
  p = random_mfa(9, 2, 5, 2)
  x, comp = mfa.sample(jax.random.key(3), p, 500)
  mean, comp_mean = mfa.sample(jax.random.key(3), p, 500, noise=False)
  np.testing.assert_array_equal(comp, comp_mean)
  # The left-out part is sqrt(psi) eps with eps ~ N(0, I): standardised, mean 0 and variance 1.
  eps = (np.asarray(x) - np.asarray(mean)) / np.sqrt(np.asarray(p.noise_variances)[np.asarray(comp)])
  assert abs(eps.mean()) < 5 / np.sqrt(eps.size) and abs(eps.var() - 1) < 5 * np.sqrt(2 / eps.size)
  # Each noise-free draw lies in its component's affine subspace mu_k + span(W_k).
  for j in range(2):
    r = np.asarray(mean)[np.asarray(comp) == j] - np.asarray(p.means[j])
    w = np.asarray(p.factors[j])
    np.testing.assert_allclose(r - r @ w @ np.linalg.pinv(w), 0, atol=1e-10)


def test_posterior_over_factors_is_the_gaussian_conditional():
  p = random_mfa(7, 2, 6, 2)
  x = np.asarray(mfa.sample(jax.random.key(8), p, 5)[0])
  resp, zmean, zcov = mfa.posterior(p, x)
  np.testing.assert_allclose(resp, np.exp(mfa.e_step(p, x)[1]), atol=1e-12)
  for j in range(2):
    w, psi = np.asarray(p.factors[j]), np.asarray(p.noise_variances[j])
    cov = w @ w.T + np.diag(psi)
    # z, x jointly Gaussian: E[z|x] = W^T C^-1 (x - mu), Cov = I - W^T C^-1 W.
    np.testing.assert_allclose(zmean[:, j], (w.T @ np.linalg.solve(cov, (x - np.asarray(p.means[j])).T)).T,
                               atol=1e-10)
    np.testing.assert_allclose(zcov[j], np.eye(2) - w.T @ np.linalg.solve(cov, w), atol=1e-10)


def test_inpainting_equals_full_covariance_conditional():
  p = random_mfa(9, 3, 12, 3, spread=1.0)
  x = np.asarray(mfa.sample(jax.random.key(10), p, 6)[0])
  observed = np.random.default_rng(11).uniform(size=(6, 12)) < 0.5
  observed[0] = np.arange(12) < 6  # top half given
  filled, resp, ll_obs = mfa.inpaint(p, np.where(observed, x, 0.0), observed)
  cov, means = np.asarray(p.covariances), np.asarray(p.means)
  for i in range(6):
    o, m = observed[i], ~observed[i]
    comp_ll = np.array([multivariate_normal(means[j][o], cov[j][np.ix_(o, o)]).logpdf(x[i, o]) for j in range(3)])
    joint = comp_ll + np.log(np.asarray(p.weights))
    r = np.exp(joint - np.logaddexp.reduce(joint))
    cond = [means[j][m] + cov[j][np.ix_(m, o)] @ np.linalg.solve(cov[j][np.ix_(o, o)], x[i, o] - means[j][o])
            for j in range(3)]
    np.testing.assert_allclose(resp[i], r, atol=1e-10)
    np.testing.assert_allclose(ll_obs[i], np.logaddexp.reduce(joint), rtol=1e-10)
    np.testing.assert_allclose(filled[i, m], r @ np.array(cond), atol=1e-10)
    np.testing.assert_array_equal(filled[i, o], x[i, o])
  # One mask for all rows.
  np.testing.assert_allclose(mfa.inpaint(p, x, observed[0])[0][0], filled[0], atol=1e-12)


def test_validation_errors():
  p = random_mfa(0, 2, 4, 2)
  x = np.zeros((3, 4))
  with pytest.raises(ValueError, match="factors must have shape"):
    mfa.log_prob(mfa.MFAParams(p.weights, p.means, p.factors[:, :3], p.noise_variances), x)
  with pytest.raises(ValueError, match="noise_variances must be positive"):
    mfa.log_prob(mfa.MFAParams(p.weights, p.means, p.factors, -p.noise_variances), x)
  with pytest.raises(ValueError, match="sum to one"):
    mfa.log_prob(mfa.MFAParams(2 * p.weights, p.means, p.factors, p.noise_variances), x)
  with pytest.raises(ValueError, match="isotropic"):
    mfa.log_prob(mfa.MFAParams(p.weights, p.means, p.factors, p.noise_variances, isotropic=True), x)
  with pytest.raises(ValueError, match="features"):
    mfa.log_prob(p, np.zeros((3, 5)))
  with pytest.raises(ValueError, match="expected MFAParams"):
    mfa.log_prob(mfa.to_gmm(p), x)
  with pytest.raises(ValueError, match="n_factors must be below"):
    mfa.fit(jax.random.key(0), np.ones((10, 4)), 1, 4)
  with pytest.raises(ValueError, match="n_components"):
    mfa.fit(jax.random.key(0), np.ones((10, 4)), 11, 1)
  with pytest.raises(ValueError, match="NaN"):
    mfa.fit(jax.random.key(0), np.full((10, 4), np.nan), 1, 1)
  with pytest.raises(ValueError, match="observed must have shape"):
    mfa.inpaint(p, x, np.ones(3, bool))
  with pytest.raises(ValueError, match="non-negative integer"):
    mfa.sample(jax.random.key(0), p, -1)


# One compiled EM program serves the tests below: (rows in one size class, d = 6, k = 2, l = 2).
K, D, L, MAX_ITER = 2, 6, 2, 400


@settings(max_examples=6)
@given(seed=st.integers(0, 2**31 - 1), spread=st.floats(0.0, 5.0))
def test_em_never_lowers_the_likelihood(seed, spread):
  truth = random_mfa(seed % 1000, K, D, L, spread=spread)
  x = np.asarray(mfa.sample(jax.random.key(seed), truth, 300)[0])
  r = mfa.fit(jax.random.key(seed), x, K, L, max_iter=MAX_ITER, tol=1e-9 if seed % 2 else 1e-6)
  trace = np.asarray(r.log_likelihood_trace)[: int(r.n_iter)]
  assert np.all(np.isfinite(trace))
  assert np.all(np.diff(trace) >= -1e-10 * np.abs(trace[1:])), np.diff(trace).min()


def test_recovers_a_known_mixture():
  truth = random_mfa(12, K, D, L, spread=4.0)
  x = np.asarray(mfa.sample(jax.random.key(13), truth, 3000)[0])
  test = np.asarray(mfa.sample(jax.random.key(14), truth, 3000)[0])
  r = mfa.fit(jax.random.key(15), x, K, L, max_iter=MAX_ITER, tol=1e-6)
  assert bool(r.converged)
  held_out, true_ll = float(np.mean(mfa.log_prob(r.params, test))), float(np.mean(mfa.log_prob(truth, test)))
  assert abs(held_out - true_ll) < 0.01 * abs(true_ll), (held_out, true_ll)
  # float32 reaches the float64 fit.
  r32 = mfa.fit(jax.random.key(15), x.astype(np.float32), K, L, max_iter=MAX_ITER, tol=1e-6)
  np.testing.assert_allclose(float(r32.log_likelihood), float(r.log_likelihood), rtol=1e-5)


@pytest.mark.slow  # three compiled fits: about 7 s
def test_weights_equal_repeated_rows_and_chunks_do_not_matter():
  truth = random_mfa(16, K, D, L)
  x = np.asarray(mfa.sample(jax.random.key(17), truth, 400)[0])
  counts = np.random.default_rng(18).integers(0, 4, len(x))
  start = random_mfa(19, K, D, L)
  kw = {"max_iter": MAX_ITER, "tol": 1e-9, "init_params": start}
  weighted = mfa.fit(jax.random.key(0), x, K, L, weights=counts.astype(float), **kw)
  repeated = mfa.fit(jax.random.key(0), np.repeat(x, counts, axis=0), K, L, **kw)
  chunked = mfa.fit(jax.random.key(0), x, K, L, weights=counts.astype(float), chunk_size=64, **kw)
  for other in (repeated, chunked):
    assert int(other.n_iter) == int(weighted.n_iter)
    for a, b in zip(jax.tree.leaves(weighted.params), jax.tree.leaves(other.params)):
      np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
  # The statistics API is the same M-step: merge over two batches, one iteration.
  s = mfa.merge(mfa.suff_stats(start, x[:150], counts[:150].astype(float)),
                mfa.suff_stats(start, x[150:], counts[150:].astype(float)))
  one = mfa.fit(jax.random.key(0), x, K, L, weights=counts.astype(float), max_iter=1, init_params=start)
  for a, b in zip(jax.tree.leaves(mfa.params_from_stats(s, start)), jax.tree.leaves(one.params)):
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def _spiked_data(seed, n, d, l):
  rng = np.random.default_rng(seed)
  basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
  spectrum = np.concatenate([np.linspace(9.0, 4.0, l), np.linspace(1.0, 0.6, d - l)])
  return rng.standard_normal((n, d)) * np.sqrt(spectrum) @ basis.T + 5.0


def test_one_component_mppca_reaches_tipping_bishop_solution():
  d, l = 8, 3
  x = _spiked_data(20, 2000, d, l)
  s = np.cov(x.T, bias=True)
  lam, u = np.linalg.eigh(s)
  lam, u = lam[::-1], u[:, ::-1]
  sigma2 = lam[l:].mean()
  w = u[:, :l] * np.sqrt(lam[:l] - sigma2)
  c = w @ w.T + sigma2 * np.eye(d)
  closed_ll = multivariate_normal(x.mean(0), c).logpdf(x).mean()
  rng = np.random.default_rng(21)
  start = mfa.MFAParams(np.ones(1), x[:1], rng.standard_normal((1, d, l)), np.ones((1, d)), isotropic=True)
  r = mfa.fit(jax.random.key(0), x, 1, l, isotropic=True, max_iter=3000, tol=1e-13, init_params=start,
              reg_covar=0.0)
  np.testing.assert_allclose(r.params.covariances[0], c, atol=1e-5)
  np.testing.assert_allclose(np.mean(mfa.log_prob(r.params, x)), closed_ll, rtol=1e-9)
  # From k-means and PCA, the start is already that solution.
  r0 = mfa.fit(jax.random.key(0), x, 1, l, isotropic=True, max_iter=1, reg_covar=0.0, n_power_iter=50)
  np.testing.assert_allclose(r0.log_likelihood, closed_ll, rtol=1e-9)


@pytest.mark.slow  # scikit-learn's own EM to tol 1e-9: about 9 s
def test_one_component_factor_analysis_reaches_sklearn():
  from sklearn.decomposition import FactorAnalysis

  d, l = 8, 3
  truth = random_mfa(22, 1, d, l, spread=5.0)
  x = np.asarray(mfa.sample(jax.random.key(23), truth, 2000)[0])
  fa = FactorAnalysis(l, tol=1e-9, max_iter=5000, svd_method="lapack").fit(x)
  r = mfa.fit(jax.random.key(0), x, 1, l, max_iter=3000, tol=1e-12, reg_covar=0.0)
  np.testing.assert_allclose(np.mean(mfa.log_prob(r.params, x)), fa.score(x), rtol=1e-4)
  np.testing.assert_allclose(r.params.covariances[0], fa.get_covariance(), atol=2e-3 * np.max(np.abs(fa.get_covariance())))


@pytest.mark.slow  # compiles the gradients of both densities: about 5 s
def test_log_prob_gradient_equals_full_gmm_gradient():
  p = random_mfa(24, K, D, L)
  x = np.asarray(mfa.sample(jax.random.key(25), p, 30)[0])
  ours = jax.grad(lambda p: jnp.mean(mfa.log_prob(p, x)))(p)
  ref = jax.grad(lambda p: jnp.mean(gmmjax.log_prob(gmmjax.GMMParams.from_covariances(
      p.weights, p.means, p.covariances), x)))(p)
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)):
    np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)


@pytest.mark.slow  # a few hundred Adam steps: about 10 s
def test_adam_on_mini_batches_through_train_approaches_em():
  from gmmjax import train

  truth = random_mfa(26, K, D, L)
  x = np.asarray(mfa.sample(jax.random.key(27), truth, 2000)[0])
  em = mfa.fit(jax.random.key(28), x, K, L, max_iter=MAX_ITER, tol=1e-8)
  # From the start EM takes (k-means and per-cluster PCA, one EM step).
  start = mfa.to_unconstrained(mfa.fit(jax.random.key(28), x, K, L, max_iter=1).params)
  initial = float(np.mean(mfa.log_prob(mfa.from_unconstrained(start), x)))
  loss = lambda u, batch, key: (-jnp.mean(mfa.log_prob(mfa.from_unconstrained(u), batch)), {})
  step = train.make_train_step(loss)
  state = train.TrainState.create(params=start, tx=train.make_optimizer(learning_rate=0.01))
  for i in range(600):
    state, _ = step(state, jnp.asarray(train_batch(x, i)), jax.random.key(i))
  trained = float(np.mean(mfa.log_prob(mfa.from_unconstrained(state.params), x)))
  assert trained > initial + 0.5 * (float(em.log_likelihood) - initial), (initial, trained, em.log_likelihood)
  assert trained > float(em.log_likelihood) - 0.01 * abs(float(em.log_likelihood)), (trained, em.log_likelihood)


def train_batch(x, step, size=200):
  return gmmjax.data.get_batch((x,), step, size, seed=0)[0]


@pytest.mark.slow  # the streamed programs: about 5 s
def test_stream_equals_fit():
  truth = random_mfa(30, K, D, L)
  x = np.asarray(mfa.sample(jax.random.key(31), truth, 900)[0])
  start = random_mfa(32, K, D, L)
  kw = {"max_iter": 50, "tol": 1e-9, "init_params": start}
  streamed = mfa.fit_stream(jax.random.key(0), np.split(x, [400, 700]), K, L, progress=False, **kw)
  whole = mfa.fit(jax.random.key(0), x, K, L, **kw)
  assert int(streamed.n_iter) == int(whole.n_iter)
  for a, b in zip(jax.tree.leaves(streamed.params), jax.tree.leaves(whole.params)):
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)
