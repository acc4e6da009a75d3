"""Tests for gbounds._activation_info: histogram entropy and KSG mutual information."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import digamma

import gbounds
from gbounds._activation_info import (
    Binning, activation_information, histogram_bin_indices, ksg_mutual_information,
    neuron_entropy, pairwise_mutual_information, subsample_neurons)


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


def test_maximum_falls_in_last_bin():
  a = np.array([[0.0], [1.0], [2.0], [3.0]])
  idx = histogram_bin_indices(a, bins=3)
  np.testing.assert_array_equal(idx[:, 0], [0, 1, 2, 2])
  np.testing.assert_allclose(neuron_entropy(a, bins=3)[0],
                             -(2 * 0.25 * np.log(0.25) + 0.5 * np.log(0.5)), rtol=1e-12)


@pytest.mark.parametrize("binning", ["global", "per_neuron"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
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


def test_bad_input():
  err = gbounds.InvalidInputError
  a = np.random.default_rng(0).normal(size=(10, 3))
  with pytest.raises(err, match="bins"):
    neuron_entropy(a, bins=1)
  with pytest.raises(err, match="binning"):
    neuron_entropy(a, binning="quantile")
  with pytest.raises(err, match="k \\+ 1 = 4"):
    pairwise_mutual_information(a[:3])
  with pytest.raises(err, match="k \\+ 1"):
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
