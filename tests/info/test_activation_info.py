"""Tests for gbounds.info._activation_info: histogram entropy and KSG mutual information."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import digamma

import gbounds
from gbounds.info import _activation_info
from gbounds.info._activation_info import (
  DEFAULT_TIE_NOISE,
  Binning,
  activation_information,
  histogram_bin_indices,
  ksg_mutual_information,
  neuron_entropy,
  pairwise_mutual_information,
  subsample_neurons,
)


def _ksg_brute(x, y, k=3):
  """Independent dense KSG-1 (Kraskov et al. 2004, eq. 8) in float64 numpy."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  s = x.size
  dx, dy = np.abs(x[:, None] - x[None]), np.abs(y[:, None] - y[None])
  d = np.maximum(dx, dy)
  np.fill_diagonal(d, np.inf)
  eps = np.sort(d, axis=1)[:, k - 1]
  np.fill_diagonal(dx, np.inf)
  np.fill_diagonal(dy, np.inf)
  nx, ny = (dx < eps[:, None]).sum(1), (dy < eps[:, None]).sum(1)
  return digamma(s) + digamma(k) - np.mean(digamma(nx + 1) + digamma(ny + 1))


def _np_entropy(a, bins, per_neuron):
  out = []
  for col in a.T:
    rng = (col.min(), col.max()) if per_neuron else (a.min(), a.max())
    if rng[0] == rng[1]:
      out.append(0.0)
      continue
    c, _ = np.histogram(col, bins=bins, range=rng)
    p = c[c > 0] / col.size
    out.append(-np.sum(p * np.log(p)))
  return np.array(out)


# ----------------------------------------------------------------------------- entropy


@pytest.mark.x64  # float64 references (tolerances below float32 rounding)
def test_entropy_of_known_distributions():
  s = 400
  uniform = np.repeat(np.arange(4.0), s // 4)        # 4 equally likely values -> log 4
  point = np.zeros(s)                               # point mass -> 0
  two = np.r_[np.zeros(s // 4), np.ones(3 * s // 4)]  # 1/4, 3/4 split
  h2 = -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))
  a = np.stack([uniform, two * 3.0], axis=1)        # global range [0, 3]
  h = neuron_entropy(a, bins=4)
  np.testing.assert_allclose(h, [np.log(4), h2], rtol=1e-12)
  np.testing.assert_allclose(neuron_entropy(point[:, None], bins=10), [0.0], atol=0)
  np.testing.assert_allclose(neuron_entropy(uniform[:, None], bins=2), [np.log(2)], rtol=1e-12)


@pytest.mark.x64  # float64 references (tolerances below float32 rounding)
def test_maximum_falls_in_last_bin():
  a = np.array([[0.0], [1.0], [2.0], [3.0]])
  idx = histogram_bin_indices(a, bins=3)
  np.testing.assert_array_equal(idx[:, 0], [0, 1, 2, 2])
  np.testing.assert_allclose(neuron_entropy(a, bins=3)[0],
                             -(2 * 0.25 * np.log(0.25) + 0.5 * np.log(0.5)), rtol=1e-12)


@pytest.mark.parametrize("binning", ["global", "per_neuron"])
@pytest.mark.parametrize("dtype", [np.float32, pytest.param(np.float64, marks=pytest.mark.x64)])
def test_entropy_matches_numpy_histogram(binning, dtype):
  rng = np.random.default_rng(0)
  a = (rng.normal(size=(500, 7)) * np.arange(1, 8)).astype(dtype)
  ref = _np_entropy(a.astype(np.float64), 100, binning == "per_neuron")
  h = neuron_entropy(a, binning=binning)
  assert h.dtype == dtype
  np.testing.assert_allclose(h, ref, rtol=1e-5 if dtype == np.float32 else 1e-12)
  jitted = jax.jit(lambda x: neuron_entropy(x, binning=binning))(a)
  np.testing.assert_allclose(jitted, h, rtol=1e-6)
  batched = jax.vmap(lambda x: neuron_entropy(x, binning=binning))(np.stack([a, a[::-1]]))
  np.testing.assert_allclose(batched[1], h, rtol=1e-6)  # row order does not matter


def test_binning_invariant_to_neuron_order():
  rng = np.random.default_rng(1)
  a = rng.gamma(2.0, size=(300, 9))
  perm = rng.permutation(9)
  for binning in Binning:
    h = neuron_entropy(a, binning=binning)
    np.testing.assert_allclose(neuron_entropy(a[:, perm], binning=binning), h[perm], rtol=1e-12)


def test_per_neuron_binning_is_scale_free_global_is_not():
  rng = np.random.default_rng(2)
  a = rng.normal(size=(1000, 2))
  a[:, 1] = 0.01 * a[:, 0]
  hp = neuron_entropy(a, binning=Binning.PER_NEURON)
  np.testing.assert_allclose(hp[0], hp[1], rtol=1e-12)
  hg = neuron_entropy(a, binning=Binning.GLOBAL)
  assert hg[1] < hg[0] - 1.0


def test_constant_activations_have_zero_entropy():
  a = np.ones((50, 3))
  for binning in Binning:
    np.testing.assert_array_equal(neuron_entropy(a, binning=binning), np.zeros(3))
  b = np.c_[np.ones(50), np.linspace(0, 1, 50)]
  assert neuron_entropy(b, binning="per_neuron")[0] == 0.0


# ----------------------------------------------------------------------------- KSG


def _gaussian_pair(rho, s, seed):
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(s, 2))
  return z[:, 0], rho * z[:, 0] + np.sqrt(1 - rho ** 2) * z[:, 1]


@pytest.mark.slow
@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_ksg_matches_gaussian_closed_form(rho):
  exact = -0.5 * np.log(1 - rho ** 2)
  # average over a few seeds: the estimator's standard deviation at S = 2,000 is ~0.015 nats
  est = [float(ksg_mutual_information(*_gaussian_pair(rho, 2000, seed))) for seed in range(4)]
  assert abs(np.mean(est) - exact) < 0.05
  assert all(abs(e - exact) < 0.06 for e in est)


@pytest.mark.x64  # float64 references (tolerances below float32 rounding)
def test_ksg_equals_dense_brute_force_and_under_jit():
  rng = np.random.default_rng(3)
  x = rng.standard_t(3, size=300)
  y = np.sin(x) + 0.3 * rng.normal(size=300)
  ref = _ksg_brute(x, y)
  np.testing.assert_allclose(ksg_mutual_information(x, y), ref, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(jax.jit(ksg_mutual_information)(x, y), ref, rtol=1e-10, atol=1e-12)
  for k in (1,):
    np.testing.assert_allclose(ksg_mutual_information(x, y, k=k), _ksg_brute(x, y, k),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_ksg_under_vmap():
  rng = np.random.default_rng(3)
  x = rng.standard_t(3, size=300)
  y = np.sin(x) + 0.3 * rng.normal(size=300)
  ref = _ksg_brute(x, y)
  xs, ys = np.stack([x, y]), np.stack([y, x ** 2])
  batched = jax.vmap(ksg_mutual_information)(xs, ys)
  np.testing.assert_allclose(batched, [ref, _ksg_brute(y, x ** 2)], rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_ksg_independent_is_near_zero():
  rng = np.random.default_rng(4)
  a = rng.normal(size=(2000, 2))
  assert abs(float(ksg_mutual_information(a[:, 0], a[:, 1]))) < 0.03


@pytest.mark.x64  # float64 references (tolerances below float32 rounding)
def test_pairwise_all_pairs_against_brute_force_and_blocks():
  rng = np.random.default_rng(5)
  a = rng.normal(size=(250, 6)) @ rng.normal(size=(6, 6))
  a[:, 5] = rng.exponential(size=250)  # a skewed, independent neuron
  res = pairwise_mutual_information(a, k=3, block_size=4, unroll=1)
  assert res.pairs.shape == (15, 2)
  ref = [_ksg_brute(a[:, i], a[:, j]) for i, j in np.asarray(res.pairs)]
  np.testing.assert_allclose(res.values, ref, rtol=1e-10, atol=1e-12)
  m = res.matrix()
  assert m.shape == (6, 6) and np.all(np.isnan(np.diag(m)))
  np.testing.assert_allclose(m[1, 4], m[4, 1])


@pytest.mark.slow
def test_pairwise_on_neuron_subset_and_float32():
  rng = np.random.default_rng(6)
  a = rng.normal(size=(400, 10)).astype(np.float32)
  a[:, 7] = a[:, 2] + 0.1 * a[:, 7]
  res = pairwise_mutual_information(a, neurons=np.array([2, 7, 9]))
  assert res.values.dtype == np.float32
  np.testing.assert_array_equal(res.pairs, [[2, 7], [2, 9], [7, 9]])
  ref = [_ksg_brute(a[:, i], a[:, j]) for i, j in [(2, 7), (2, 9), (7, 9)]]
  np.testing.assert_allclose(res.values, ref, atol=2e-3)
  assert res.values[0] > 1.0


@pytest.mark.slow
def test_pairwise_blocked_equals_unblocked():
  rng = np.random.default_rng(5)
  a = rng.normal(size=(250, 6)) @ rng.normal(size=(6, 6))
  whole = pairwise_mutual_information(a, block_size=15, unroll=4)
  for bs, un in [(1, 1), (7, 2)]:
    other = pairwise_mutual_information(a, block_size=bs, unroll=un)
    np.testing.assert_allclose(other.values, whole.values, rtol=1e-12, atol=1e-12)


def test_constant_neuron_has_zero_mi():
  rng = np.random.default_rng(7)
  a = np.c_[np.full(300, 2.5), rng.normal(size=300)]
  np.testing.assert_allclose(pairwise_mutual_information(a).values, [0.0], atol=1e-12)


@pytest.mark.x64  # float64 references (tolerances below float32 rounding)
def test_subsample_and_aggregate():
  sel = subsample_neurons(50, 10, seed=3)
  assert sel.shape == (10,) and np.unique(np.asarray(sel)).size == 10
  np.testing.assert_array_equal(sel, subsample_neurons(50, 10, seed=3))
  assert not np.array_equal(sel, subsample_neurons(50, 10, seed=4))
  np.testing.assert_array_equal(subsample_neurons(5, None), np.arange(5))
  rng = np.random.default_rng(8)
  a = rng.normal(size=(200, 12))
  info = activation_information(a, mi_neurons=5, seed=1, bins=20)
  np.testing.assert_allclose(info.mean_entropy, np.mean(_np_entropy(a, 20, False)), rtol=1e-12)
  assert info.mi.values.shape == (10,)
  np.testing.assert_array_equal(info.mi.neurons, subsample_neurons(12, 5, seed=1))
  np.testing.assert_allclose(info.mean_mi, np.mean(info.mi.values))


# ----------------------------------------------------------------------------- constants


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constant_neuron_entropy_is_exactly_zero(dtype):
  rng = np.random.default_rng(11)
  a = np.c_[rng.normal(size=300), np.full(300, 0.1), np.maximum(rng.normal(size=300), 0),
            np.full(300, -7.3e5), np.zeros(300)].astype(dtype)
  jitted = jax.jit(lambda x: neuron_entropy(x, bins=37))(a)
  for binning in Binning:
    for h in (neuron_entropy(a, binning=binning, bins=37),) + (
        (jitted,) if binning is Binning.GLOBAL else ()):
      for col in (1, 3, 4):
        assert float(h[col]) == 0.0
      np.testing.assert_allclose(np.asarray(h)[[0, 2]], _np_entropy(a.astype(np.float64), 37,
                                                        binning is Binning.PER_NEURON)[[0, 2]],
                                 rtol=1e-5)
  # a matrix that is constant everywhere, and one of a single input
  assert np.all(np.asarray(neuron_entropy(np.full((5, 3), 2.0, dtype))) == 0.0)
  assert np.all(np.asarray(neuron_entropy(a[:1])) == 0.0)


@pytest.mark.parametrize("dtype", [np.float32, pytest.param(np.float64, marks=pytest.mark.x64)])
def test_entropy_with_extreme_but_finite_range(dtype):
  # hi - lo overflows; the halved, rescaled form must still bin correctly
  big = np.finfo(dtype).max / 1.5
  a = np.array([[-big], [big], [big], [0.0]], dtype)
  np.testing.assert_allclose(neuron_entropy(a, bins=2),
                             [-(0.25 * np.log(0.25) + 0.75 * np.log(0.75))], rtol=1e-6)


def test_constant_variable_has_exactly_zero_mi_either_side():
  rng = np.random.default_rng(7)
  s = 300
  z = rng.normal(size=s)
  relu = np.maximum(z + 0.43, 0)           # a third of the samples tied at 0
  const = np.full(s, 2.5)
  zero = np.zeros(s)
  for other in (z, relu, const, zero):
    for c in (const, zero):
      assert float(ksg_mutual_information(c, other)) == 0.0
      assert float(ksg_mutual_information(other, c)) == 0.0
  a = np.c_[const, z, relu, zero]
  res = pairwise_mutual_information(a)
  vals = dict(zip(map(tuple, np.asarray(res.pairs).tolist()), np.asarray(res.values)))
  for pair in [(0, 1), (0, 2), (0, 3), (1, 3), (2, 3)]:
    assert vals[pair] == 0.0
  assert vals[(1, 2)] > 1.0                 # relu(z) is a function of z: large MI
  assert float(jax.jit(ksg_mutual_information)(relu, const)) == 0.0
  info = activation_information(a, bins=10)
  assert float(info.entropies[0]) == 0.0 and float(info.entropies[3]) == 0.0


# ----------------------------------------------------------------------------- ties


def _censored_gaussian_mi(rho, c):
  """True MI (nats) of ``(max(Z1, c), max(Z2, c))``, ``(Z1, Z2)`` standard normal, corr ``rho``.

  ``X = relu(Z1 - c)`` is an invertible function of ``max(Z1, c)`` (likewise ``Y``), so this is
  also the MI of the post-ReLU pair. The joint law has four parts: an atom at ``(c, c)`` of mass
  ``P00 = Phi2(c, c; rho)``, two half-lines (one coordinate at its atom, the other continuous)
  and a continuous quadrant. ``I = E[log dP_XY / d(P_X x P_Y)]`` is the sum of
    * atom: ``P00 log(P00 / p^2)``, ``p = Phi(c)``;
    * each half-line: ``int_c^inf phi(y) g(y) log(g(y) / p) dy`` with
      ``g(y) = P(Z1 < c | Z2 = y) = Phi((c - rho y) / sqrt(1 - rho^2))`` (the density of the
      joint law w.r.t. atom x Lebesgue is ``g(y) phi(y)``, of the product law ``p phi(y)``);
    * quadrant: ``int_c^inf int_c^inf phi2(x, y) log(phi2(x, y) / (phi(x) phi(y))) dx dy``,
  computed here by adaptive quadrature (scipy), independently of the estimator.
  """
  if rho == 0:
    return 0.0
  p = stats.norm.cdf(c)
  s = np.sqrt(1 - rho ** 2)
  p00 = stats.multivariate_normal(cov=[[1, rho], [rho, 1]]).cdf(  # pyright: ignore[reportArgumentType]
      [c, c])

  def line(y):
    lg = stats.norm.logcdf((c - rho * y) / s)
    return stats.norm.pdf(y) * np.exp(lg) * (lg - np.log(p))

  def quadrant(y, x):
    q = (rho * rho * x * x - 2 * rho * x * y + rho * rho * y * y) / (2 * s * s)
    dens = np.exp(-(x * x - 2 * rho * x * y + y * y) / (2 * s * s)) / (2 * np.pi * s)
    return dens * (-np.log(s) - q)

  t_line = integrate.quad(line, c, np.inf, epsabs=1e-12, epsrel=1e-10)[0]
  t_quad = integrate.dblquad(quadrant, c, np.inf, c, np.inf, epsabs=1e-11, epsrel=1e-9)[0]
  return p00 * np.log(p00 / p ** 2) + 2 * t_line + t_quad


_C = stats.norm.ppf(1 / 3)                   # a third of the samples at the atom


def _relu_pair(rho, s, seed, saturate=False):
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(s, 2))
  z1, z2 = z[:, 0], rho * z[:, 0] + np.sqrt(1 - rho ** 2) * z[:, 1]
  if saturate:       # min(-Z, -c) + 1 - c: an atom at the top value 1 (a saturated unit)
    return np.minimum(-z1, -_C) + 1 + _C, np.minimum(-z2, -_C) + 1 + _C
  return np.maximum(z1 - _C, 0), np.maximum(z2 - _C, 0)


def test_censored_gaussian_truth_by_monte_carlo():
  # second, independent computation of the truth: the sample mean of log dP_XY / d(P_X x P_Y)
  rho, m = 0.6, 400_000
  rng = np.random.default_rng(0)
  z = rng.normal(size=(m, 2))
  z1, z2 = z[:, 0], rho * z[:, 0] + np.sqrt(1 - rho ** 2) * z[:, 1]
  s = np.sqrt(1 - rho ** 2)
  p = stats.norm.cdf(_C)
  p00 = stats.multivariate_normal(cov=[[1, rho], [rho, 1]]).cdf(  # pyright: ignore[reportArgumentType]
      [_C, _C])
  a1, a2 = z1 < _C, z2 < _C
  lr = np.where(a1 & a2, np.log(p00 / p ** 2), 0.0)
  lr = np.where(a1 & ~a2, stats.norm.logcdf((_C - rho * z2) / s) - np.log(p), lr)
  lr = np.where(~a1 & a2, stats.norm.logcdf((_C - rho * z1) / s) - np.log(p), lr)
  both = ~a1 & ~a2
  lr = np.where(both, -np.log(s) - (rho ** 2 * (z1 ** 2 + z2 ** 2) - 2 * rho * z1 * z2)
                / (2 * s * s), lr)
  mc, se = lr.mean(), lr.std() / np.sqrt(m)
  assert abs(mc - _censored_gaussian_mi(rho, _C)) < 4 * se + 1e-4
  assert 0.15 < mc < 0.22          # well below the uncensored -0.5 log(1 - rho^2) = 0.223


def _tied_errors(rho, seeds, dtype: type = np.float64, saturate=False):
  truth = _censored_gaussian_mi(rho, _C)
  est = []
  for seed in seeds:
    x, y = _relu_pair(rho, 2000, seed, saturate)
    assert 0.3 < np.mean(x == x.min() if not saturate else x == x.max()) < 0.37
    est.append(float(ksg_mutual_information(x.astype(dtype), y.astype(dtype), seed=seed)))
  return truth, np.array(est)


@pytest.mark.parametrize("rho", [0.0, 0.6, 0.9])
def test_ksg_on_tied_relu_pairs_matches_quadrature(rho):
  """Acceptance: within 0.05 nats of the true MI of post-ReLU Gaussian pairs at S = 2,000.

  KSG-1 without tie handling gives about 1.1, 2.0 and 3.1 nats here (truth 0, 0.18, 0.67).
  """
  truth, est = _tied_errors(rho, range(3))
  assert abs(est.mean() - truth) < 0.05, (truth, est)
  assert np.all(np.abs(est - truth) < 0.08), (truth, est)
  # the old behaviour (no tie handling) is far off: the test can fail
  x, y = _relu_pair(rho, 2000, 0)
  assert float(ksg_mutual_information(x, y, tie_noise=0)) > truth + 0.8


def test_ksg_on_tied_pairs_float32_and_atom_at_a_nonzero_value():
  # float32 (the dtype activations usually come in) and an atom at 1.0, where sklearn's 1e-10
  # relative noise would round away in float32
  truth, est = _tied_errors(0.6, range(2), np.float32, saturate=True)
  assert abs(est.mean() - truth) < 0.05, (truth, est)
  x, y = (v.astype(np.float32) for v in _relu_pair(0.6, 2000, 0, saturate=True))
  assert float(ksg_mutual_information(x, y, tie_noise=1e-10)) > truth + 0.8
  assert DEFAULT_TIE_NOISE["float32"] > 1e-7 > DEFAULT_TIE_NOISE["float64"]


@pytest.mark.slow
@pytest.mark.parametrize("rho", [0.0, 0.3, 0.6, 0.9])
def test_ksg_on_tied_relu_pairs_many_seeds(rho):
  truth, est = _tied_errors(rho, range(10))
  assert abs(est.mean() - truth) < 0.03, (truth, est)
  assert np.all(np.abs(est - truth) < 0.06), (truth, est)
  truth32, est32 = _tied_errors(rho, range(10), np.float32, saturate=True)
  assert abs(est32.mean() - truth32) < 0.03, (truth32, est32)


@pytest.mark.x64  # float64 references (tolerances below float32 rounding)
def test_tie_noise_leaves_untied_columns_alone_and_pairs_agree():
  rng = np.random.default_rng(12)
  s = 300
  z = rng.normal(size=(s, 5))
  a = np.c_[z[:, 0], np.maximum(z[:, 1] + 0.43, 0), np.round(z[:, 0] + z[:, 2], 1), z[:, 3],
            np.maximum(z[:, 4] + z[:, 1], 0)]
  # no ties in column 0 and in a Gaussian partner: exactly KSG-1 whatever the seed
  for seed in (0, 5):
    np.testing.assert_allclose(ksg_mutual_information(z[:, 0], z[:, 2], seed=seed),
                               _ksg_brute(z[:, 0], z[:, 2]), rtol=1e-10, atol=1e-12)
  # the all-pairs path breaks ties per column (key: seed and column index), so pair (0, j)
  # equals the single-pair path on columns 0 and 1; and does not depend on the neuron subset
  res = pairwise_mutual_information(a, seed=3, block_size=8)
  np.testing.assert_allclose(res.values[0], ksg_mutual_information(a[:, 0], a[:, 1], seed=3),
                             rtol=1e-12)
  sub = pairwise_mutual_information(a, neurons=np.array([1, 2, 3, 4]), seed=3)
  np.testing.assert_allclose(sub.values, np.asarray(res.values)[4:], rtol=1e-12)
  assert float(res.values[6]) > 0.1         # relu(z4 + z1) depends on relu(z1 + 0.43)
  # tie-broken pairs equal the dense brute force on the same noisy columns
  scale = DEFAULT_TIE_NOISE["float64"]
  keys = jax.vmap(lambda c: jax.random.fold_in(jax.random.key(3), c))(
      jnp.arange(5, dtype=jnp.uint32))
  noisy = a.copy()
  for c in (1, 2, 4):
    amp = scale * max(a[:, c].std(), np.abs(a[:, c]).mean())
    noisy[:, c] = a[:, c] + amp * np.asarray(jax.random.normal(keys[c], (s,), jnp.float64))
  assert not np.array_equal(noisy[:, 1], a[:, 1])
  ref = [_ksg_brute(noisy[:, i], noisy[:, j]) for i, j in np.asarray(res.pairs)]
  np.testing.assert_allclose(res.values, ref, rtol=1e-10, atol=1e-12)


def _duplicated_columns(s, seed):
  """Columns with exact ties of every kind: a post-ReLU atom at 0, a coarse quantisation, a
  repeated block of rows (duplicated (x, y) points: eps = 0 there) and a smooth column."""
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(s, 3))
  a = np.c_[np.maximum(z[:, 0] + 0.3, 0), np.round(z[:, 0] + z[:, 1], 1), z[:, 2],
            np.round(z[:, 2] * 2) / 2]
  a[s // 2: s // 2 + 12] = a[:12]
  return a


@pytest.mark.x64  # float64 references (tolerances below float32 rounding)
@pytest.mark.parametrize("chunk,cap,first", [
    (1, 4096, 1), (3, 7, 5), pytest.param(2, 1, 0, marks=pytest.mark.slow),
    pytest.param(16, 256, 48, marks=pytest.mark.slow)])
def test_pair_blocks_every_search_path_equals_brute_force_with_ties(chunk, cap, first):
  # (1, 4096, 1): almost every sample goes to the dense fallback; (2, 1, 0): the scan certifies
  # all but one sample; the others mix the static first scan, the loop and the fallback
  a = _duplicated_columns(200, 21)
  xt = np.ascontiguousarray(a.T)
  sv, order, inverse = _activation_info._sorted_columns(xt)
  li, lj = np.triu_indices(4, 1)
  for k in (1, 3):
    vals = _activation_info._pairs_block(
        jnp.asarray(xt), jnp.asarray(sv), jnp.asarray(order, jnp.int32),
        jnp.asarray(inverse, jnp.int32), jnp.asarray(li, jnp.int32), jnp.asarray(lj, jnp.int32),
        k, chunk, cap, first)
    ref = [_ksg_brute(a[:, i], a[:, j], k) for i, j in zip(li, lj)]
    np.testing.assert_allclose(vals, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.x64  # float64 references (tolerances below float32 rounding)
def test_pairwise_without_tie_noise_is_plain_ksg_on_duplicated_values():
  a = _duplicated_columns(300, 22)
  res = pairwise_mutual_information(a, tie_noise=0, block_size=4)
  ref = [_ksg_brute(a[:, i], a[:, j]) for i, j in np.asarray(res.pairs)]
  np.testing.assert_allclose(res.values, ref, rtol=1e-10, atol=1e-12)


def test_pairwise_float32_against_brute_force_on_the_same_values():
  # float32 distances and counts: the brute force on the float32 values (cast exactly to
  # float64) differs only through the rounding of the distances, far below 1e-4 nats
  rng = np.random.default_rng(23)
  z = rng.normal(size=(300, 3))
  a = np.c_[z[:, 0], z[:, 0] + 0.5 * z[:, 1], np.exp(z[:, 2])].astype(np.float32)
  res = pairwise_mutual_information(a, block_size=2)
  assert res.values.dtype == np.float32
  ref = [_ksg_brute(a[:, i], a[:, j]) for i, j in np.asarray(res.pairs)]
  np.testing.assert_allclose(res.values, ref, atol=1e-4)


def test_kth_smallest_counts_repeated_values():
  rng = np.random.default_rng(24)
  d = np.round(rng.random((50, 9)) * 5)          # many repeats within each column
  for k in (1, 2, 3, 5):
    np.testing.assert_array_equal(_activation_info._kth_smallest(jnp.asarray(d), k),
                                  np.sort(d, axis=0)[k - 1])


def test_take_rows_equals_take_along_axis():
  rng = np.random.default_rng(25)
  a = rng.normal(size=(4, 30)).astype(np.float32)
  idx = rng.integers(0, 30, size=(4, 30))
  np.testing.assert_array_equal(_activation_info._take_rows(jnp.asarray(a), jnp.asarray(idx)),
                                np.take_along_axis(a, idx, axis=1))


def test_activation_information_on_relu_activations_is_not_inflated():
  # independent post-ReLU units: the mean MI must be near 0 (it was above 1 nat before)
  rng = np.random.default_rng(13)
  a = np.maximum(rng.normal(size=(300, 5)) + 0.43, 0)
  info = activation_information(a, bins=10, block_size=8)
  assert abs(float(info.mean_mi)) < 0.05
  old = activation_information(a, bins=10, block_size=8, tie_noise=0)
  assert float(old.mean_mi) > 0.5


# ----------------------------------------------------------------------------- validation


def test_bad_input():
  err = gbounds.InvalidInputError
  a = np.random.default_rng(0).normal(size=(10, 3))
  with pytest.raises(err, match="bins"):
    neuron_entropy(a, bins=1)
  with pytest.raises(err, match="binning"):
    neuron_entropy(a, binning="quantile")
  with pytest.raises(err, match=r"k: .*k \+ 1 = 4"):
    pairwise_mutual_information(a[:3])
  with pytest.raises(err, match=r"k: .*k \+ 1"):
    ksg_mutual_information(np.arange(3.0), np.arange(3.0), k=3)
  with pytest.raises(err, match="k:"):
    pairwise_mutual_information(a, k=0)
  with pytest.raises(err, match="activations"):
    neuron_entropy(np.ones(5))
  with pytest.raises(err, match="finite"):
    neuron_entropy(np.array([[np.nan], [1.0]]))
  with pytest.raises(err, match="neurons"):
    pairwise_mutual_information(a, neurons=np.array([0, 3]))
  with pytest.raises(err, match="neurons"):
    pairwise_mutual_information(a, neurons=np.array([1, 1]))
  with pytest.raises(err, match="at least 2 neurons"):
    pairwise_mutual_information(a[:, :1])
  with pytest.raises(err, match="mi_neurons"):
    activation_information(a, mi_neurons=1)
  with pytest.raises(err, match="activations: .*2 neurons"):
    activation_information(a[:, :1])


def test_non_finite_input_raises_under_jit():
  x = jnp.asarray(np.r_[np.arange(9.0), np.nan])
  with pytest.raises(Exception, match="activations: expected finite"):
    jax.jit(neuron_entropy)(x[:, None]).block_until_ready()


@pytest.mark.slow
def test_non_finite_input_raises_under_jit_ksg():
  x = jnp.asarray(np.r_[np.arange(9.0), np.inf])
  with pytest.raises(Exception, match="x: expected finite"):
    jax.jit(ksg_mutual_information)(x, jnp.arange(10.0)).block_until_ready()


def test_progress_callback_and_legacy_callable_progress():
  """``callback(done, total)`` after each block (last call done == total); a callable
  ``progress`` (the earlier form) is the same callback; ``progress=True`` gives the same numbers."""
  rng = np.random.default_rng(5)
  a = rng.normal(size=(60, 5))
  calls, legacy = [], []
  res = pairwise_mutual_information(a, block_size=4, callback=lambda done, total: calls.append((done, total)))
  assert calls == [(4, 10), (8, 10), (10, 10)]
  pairwise_mutual_information(a, block_size=4, progress=lambda done, total: legacy.append((done, total)))
  assert legacy == calls
  bar = pairwise_mutual_information(a, block_size=4, progress=True)
  np.testing.assert_array_equal(bar.values, res.values)
  agg = []
  activation_information(a, bins=10, block_size=4, callback=lambda done, total: agg.append((done, total)))
  assert agg[-1] == (10, 10)


def test_results_to_dict_round_trip():
  rng = np.random.default_rng(8)
  a = rng.normal(size=(80, 6))
  info = activation_information(a, mi_neurons=4, seed=1, bins=20)
  again = type(info).from_dict(json.loads(json.dumps(info.to_dict())))
  for f in ("mean_entropy", "mean_mi", "entropies"):
    np.testing.assert_array_equal(getattr(again, f), np.asarray(getattr(info, f)))
  for f in ("neurons", "pairs", "values"):
    np.testing.assert_array_equal(getattr(again.mi, f), np.asarray(getattr(info.mi, f)))
  np.testing.assert_array_equal(np.asarray(again.mi.matrix()), np.asarray(info.mi.matrix()))
