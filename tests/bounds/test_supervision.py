"""Tests for supervision complexity and the kernel margin bound."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import gbounds
from gbounds.bounds import _supervision as sc


def _kernel(n=8, rank=None, seed=0):
  r = np.random.default_rng(seed)
  a = r.normal(size=(n, rank or n + 3))
  return a @ a.T


@pytest.mark.x64  # compares with float64 solves to 1e-9 or tighter
def test_matches_direct_solve():
  k = _kernel()
  y = np.random.default_rng(1).normal(size=(8, 3))
  got = sc.supervision_complexity(k, y)
  direct = np.sqrt(np.trace(y.T @ scipy.linalg.solve(k, y, assume_a="pos")))
  np.testing.assert_allclose(got.complexity, direct, rtol=1e-10)
  per = [np.sqrt(y[:, c] @ scipy.linalg.solve(k, y[:, c])) for c in range(3)]
  np.testing.assert_allclose(got.per_output, per, rtol=1e-10)
  np.testing.assert_allclose(got.adjusted, direct * np.sqrt(np.trace(k)) / 8, rtol=1e-10)
  # The interpolating kernel machine's coefficients alpha = K^-1 y: ||f||^2 = alpha^T K alpha.
  alpha = np.linalg.solve(k, y[:, 0])
  np.testing.assert_allclose(got.per_output[0] ** 2, alpha @ k @ alpha, rtol=1e-9)


@pytest.mark.x64  # compares with float64 solves to 1e-9 or tighter
def test_ridge_and_full_kernel_layout():
  k = _kernel(6, rank=3)
  y = np.random.default_rng(2).normal(size=6)
  got = sc.supervision_complexity(k, y, ridge=0.5)
  np.testing.assert_allclose(got.complexity, np.sqrt(y @ np.linalg.solve(k + 0.5 * np.eye(6), y)),
                             rtol=1e-10)
  # (n k, n k) kernel with (n, k) targets: flattened sample-major.
  kf = _kernel(6)
  yk = np.random.default_rng(3).normal(size=(3, 2))
  np.testing.assert_allclose(sc.supervision_complexity(kf, yk).complexity,
                             np.sqrt(yk.reshape(-1) @ np.linalg.solve(kf, yk.reshape(-1))),
                             rtol=1e-10)


def test_invariant_to_example_order():
  k = _kernel(10)
  y = np.random.default_rng(4).normal(size=(10, 2))
  perm = np.random.default_rng(5).permutation(10)
  a = sc.supervision_complexity(k, y)
  b = sc.supervision_complexity(k[np.ix_(perm, perm)], y[perm])
  rtol = 1e-10 if np.asarray(a.complexity).dtype == np.float64 else 2e-5  # float32 rounding
  np.testing.assert_allclose(a.complexity, b.complexity, rtol=rtol)
  np.testing.assert_allclose(a.adjusted, b.adjusted, rtol=rtol)


@pytest.mark.x64  # compares with float64 solves to 1e-9 or tighter
def test_jit_and_vmap():
  k = jnp.asarray(_kernel(7))
  ys = jnp.asarray(np.random.default_rng(6).normal(size=(4, 7)))
  f = jax.jit(jax.vmap(lambda y: sc.supervision_complexity(k, y, ridge=0.1).complexity))
  want = [np.sqrt(y @ np.linalg.solve(np.asarray(k) + 0.1 * np.eye(7), y)) for y in np.asarray(ys)]
  np.testing.assert_allclose(f(ys), want, rtol=1e-9)


@pytest.mark.x64  # compares with float64 solves to 1e-9 or tighter
def test_smooth_targets_are_cheaper():
  """Targets along the top eigenvector cost less than targets along the bottom one."""
  k = _kernel(9)
  mu, v = np.linalg.eigh(k)
  top = sc.supervision_complexity(k, v[:, -1]).complexity
  bottom = sc.supervision_complexity(k, v[:, 0]).complexity
  np.testing.assert_allclose([top, bottom], [1 / np.sqrt(mu[-1]), 1 / np.sqrt(mu[0])], rtol=1e-9)


@pytest.mark.x64  # compares with float64 solves to 1e-9 or tighter
def test_margin_bound_terms():
  n, kcls = 12, 3
  k = _kernel(n)
  labels = np.arange(n) % kcls
  y = np.eye(kcls)[labels]
  b = sc.kernel_margin_bound(k, y, labels, margin=0.5, delta=0.1)
  # interpolation: margins on the training set are exactly 1 > 0.5
  assert float(b.empirical_margin_loss) == 0.0
  lam = max(np.sqrt(y[:, c] @ np.linalg.solve(k, y[:, c])) for c in range(kcls))
  np.testing.assert_allclose(b.complexity_term, 4 * kcls * lam * np.sqrt(np.trace(k)) / (0.5 * n),
                             rtol=1e-9)
  np.testing.assert_allclose(b.confidence_term, 3 * math.sqrt(math.log(2 / 0.1) / (2 * n)))
  np.testing.assert_allclose(b.bound, b.complexity_term + b.confidence_term, rtol=1e-12)
  # binary, one column of +-1 targets, with a ridge: margins y f(x) from the ridge predictor
  yb = np.where(labels == 0, 1.0, -1.0)
  bb = sc.kernel_margin_bound(k, yb, yb, margin=0.9, ridge=5.0, teacher_error=0.1)
  f = k @ np.linalg.solve(k + 5.0 * np.eye(n), yb)
  np.testing.assert_allclose(bb.empirical_margin_loss, np.mean(yb * f <= 0.9))
  np.testing.assert_allclose(
      bb.bound, 0.1 + np.mean(yb * f <= 0.9)
      + 2 * np.sqrt(yb @ np.linalg.solve(k + 5 * np.eye(n), yb)) * np.sqrt(np.trace(k)) / (0.9 * n)
      + 3 * math.sqrt(math.log(2 / 0.05) / (2 * n)), rtol=1e-9)


def test_bad_input():
  k = _kernel(5)
  with pytest.raises(gbounds.InvalidInputError, match="targets"):
    sc.supervision_complexity(k, np.ones(4))
  with pytest.raises(gbounds.InvalidInputError, match="kernel"):
    sc.supervision_complexity(_kernel(5, rank=2), np.ones(5))
  sc.supervision_complexity(_kernel(5, rank=2), np.ones(5), ridge=1e-3)  # fine with a ridge
  with pytest.raises(gbounds.InvalidInputError, match="ridge"):
    sc.supervision_complexity(k, np.ones(5), ridge=-1.0)
  with pytest.raises(gbounds.InvalidInputError, match="kernel"):
    sc.supervision_complexity(np.ones((5, 4)), np.ones(5))
  with pytest.raises(gbounds.InvalidInputError, match="margin"):
    sc.kernel_margin_bound(k, np.ones(5), np.ones(5), margin=0.0)
  with pytest.raises(gbounds.InvalidInputError, match="labels"):
    sc.kernel_margin_bound(k, np.ones(5), np.ones(4), margin=1.0)


@pytest.mark.x64  # compares with float64 solves to 1e-9 or tighter
def test_full_kernel_adjusted_divides_by_examples():
  """(n k, n k) kernel with (n, k) targets: adjusted = complexity sqrt(tr K) / n, n examples."""
  n, kcls = 5, 3
  kf = _kernel(n * kcls, seed=7)
  yk = np.random.default_rng(8).normal(size=(n, kcls))
  got = sc.supervision_complexity(kf, yk)
  comp = np.sqrt(yk.reshape(-1) @ np.linalg.solve(kf, yk.reshape(-1)))
  np.testing.assert_allclose(got.adjusted, comp * np.sqrt(np.trace(kf)) / n, rtol=1e-10)
  # the margin bound on a FULL kernel: scores reshaped (n, k), Lambda the full norm
  labels = np.array([0, 1, 2, 0, 1])
  onehot = np.eye(kcls)[labels]
  b = sc.kernel_margin_bound(kf, onehot, labels, margin=0.5)
  lam = np.sqrt(onehot.reshape(-1) @ np.linalg.solve(kf, onehot.reshape(-1)))
  np.testing.assert_allclose(b.complexity_term, 4 * kcls * lam * np.sqrt(np.trace(kf)) / (0.5 * n),
                             rtol=1e-9)
  assert float(b.empirical_margin_loss) == 0.0  # interpolation: margins exactly 1


@pytest.mark.parametrize("dtype", [np.int32, np.float64, bool])
def test_binary_label_conventions_agree(dtype):
  k = _kernel(10, seed=9)
  r = np.random.default_rng(10)
  scores = r.normal(size=10)
  pm = np.where(r.random(10) < 0.5, 1, -1)
  zero_one = (pm > 0).astype(dtype)
  a = sc.kernel_margin_bound(k, scores, zero_one, margin=0.3, ridge=0.5)
  if dtype is not bool:
    b = sc.kernel_margin_bound(k, scores, pm.astype(dtype), margin=0.3, ridge=0.5)
    np.testing.assert_allclose(a.bound, b.bound, rtol=0, atol=0)
  f = k @ np.linalg.solve(k + 0.5 * np.eye(10), scores)
  np.testing.assert_allclose(a.empirical_margin_loss, np.mean(pm * f <= 0.3))


@pytest.mark.parametrize("labels", [[0, 1, 2, 0, 1], [-1, 0, 1, 1, 0], [3, 3, 3, 3, 3],
                                    [0.5, 1, 0, 1, 0], [-3, 1, 1, 1, 1]])
def test_binary_labels_outside_both_conventions_raise(labels):
  k = _kernel(5)
  with pytest.raises(gbounds.InvalidInputError, match="labels"):
    sc.kernel_margin_bound(k, np.ones(5), np.asarray(labels), margin=0.5)


def test_binary_labels_checked_under_jit():
  k = jnp.asarray(_kernel(5))
  f = jax.jit(lambda lab: sc.kernel_margin_bound(k, jnp.ones(5), lab, margin=0.5).bound)
  np.testing.assert_allclose(f(jnp.array([1, -1, 1, -1, 1])), f(jnp.array([1, 0, 1, 0, 1])))
  with pytest.raises(Exception, match="labels"):
    jax.block_until_ready(f(jnp.array([1, -1, 0, 2, 1])))


def test_non_psd_and_non_finite_kernels_raise():
  k = _kernel(5)
  with pytest.raises(gbounds.InvalidInputError, match="kernel"):
    sc.supervision_complexity(k - 2 * np.eye(5) * np.linalg.eigvalsh(k)[-1], np.ones(5),
                              ridge=1.0)
  bad = k.copy()
  bad[0, 0] = np.nan
  with pytest.raises(gbounds.InvalidInputError, match="kernel"):
    sc.supervision_complexity(bad, np.ones(5), ridge=1.0)
  with pytest.raises(gbounds.InvalidInputError, match="labels"):
    sc.kernel_margin_bound(k, np.eye(3)[[0, 1, 2, 0, 1]], np.array([0, 1, 3, 0, 1]), margin=0.5)


def test_results_round_trip_through_json():
  import json
  k = _kernel()
  y = np.random.default_rng(3).normal(size=(8, 3))
  for res in (sc.supervision_complexity(k, y),
              sc.kernel_margin_bound(k, y, np.arange(8) % 3, margin=0.5, ridge=0.1)):
    back = type(res).from_dict(json.loads(json.dumps(res.to_dict())))
    assert type(back) is type(res) and back._fields == res._fields
    for a, b in zip(res, back):
      np.testing.assert_array_equal(np.asarray(a), b)
