"""Tests for gbounds.bounds._kl against an independent numpy float64 bisection (no scipy/mpmath)."""

import math
from decimal import Decimal, getcontext

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gbounds import InvalidInputError
from gbounds.bounds import binary_kl, kl_inverse_lower, kl_inverse_upper

getcontext().prec = 40


def _kl_ref(q, p):
  """Binary KL with 40-digit decimal arithmetic; 0 log 0 = 0, a log(a/0) = inf."""
  q, p = Decimal(float(q)), Decimal(float(p))
  out = Decimal(0)
  for a, b in ((q, p), (1 - q, 1 - p)):
    if a == 0:
      continue
    if b == 0:
      return math.inf
    out += a * (a / b).ln()
  return max(float(out), 0.0)


def _upper_ref(q, c, steps=1100):
  lo, hi = q, 1.0
  if _kl_ref(q, hi) <= c:
    return 1.0
  for _ in range(steps):
    mid = (lo + hi) / 2
    if mid in (lo, hi):
      break
    if _kl_ref(q, mid) <= c:
      lo = mid
    else:
      hi = mid
  return lo


def _lower_ref(q, c, steps=1100):
  lo, hi = 0.0, q
  if _kl_ref(q, lo) <= c:
    return 0.0
  for _ in range(steps):
    mid = (lo + hi) / 2
    if mid in (lo, hi):
      break
    if _kl_ref(q, mid) <= c:
      hi = mid
    else:
      lo = mid
  return hi


def _random_cases(seed=0, size=100):
  rng = np.random.default_rng(seed)
  q = rng.uniform(size=size)
  q[:10] = rng.uniform(size=10) * 1e-6  # near 0
  q[10:20] = 1 - rng.uniform(size=10) * 1e-6  # near 1
  scale = rng.choice([1e-10, 1e-4, 1e-1, 1.0, 10.0], size=size)
  c = rng.exponential(size=size) * scale
  return q, c


@pytest.mark.x64  # float64 accuracy (1e-12 and below) and budgets beyond float32
def test_binary_kl_matches_reference():
  q, c = _random_cases()
  p = np.random.default_rng(1).uniform(size=q.shape)
  got = np.asarray(binary_kl(q, p))
  want = np.array([_kl_ref(a, b) for a, b in zip(q, p)])
  np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-300)
  # Close to the diagonal, where the textbook formula loses all relative accuracy.
  p = np.clip(q + np.random.default_rng(2).normal(size=q.shape) * 1e-7, 1e-9, 1 - 1e-9)
  got = np.asarray(binary_kl(q, p))
  want = np.array([_kl_ref(a, b) for a, b in zip(q, p)])
  np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-300)


@pytest.mark.x64  # float64 accuracy (1e-15)
@pytest.mark.parametrize("q,p,want", [
    (0.0, 0.0, 0.0), (1.0, 1.0, 0.0), (0.5, 0.5, 0.0), (0.5, 0.0, math.inf),
    (0.5, 1.0, math.inf), (0.0, 1.0, math.inf), (1.0, 0.0, math.inf),
    (0.0, 0.3, -math.log(0.7)), (1.0, 0.3, -math.log(0.3)),
])
def test_binary_kl_edges(q, p, want):
  assert float(binary_kl(q, p)) == pytest.approx(want, abs=1e-15)


@pytest.mark.x64  # float64 accuracy (1e-12 and below) and budgets beyond float32
def test_kl_inverse_upper_matches_bisection():
  q, c = _random_cases()
  got = np.asarray(kl_inverse_upper(q, c))
  want = np.array([_upper_ref(a, b) for a, b in zip(q, c)])
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
  np.testing.assert_allclose(got, want, rtol=1e-10, atol=0)


@pytest.mark.x64  # float64 accuracy (1e-12 and below) and budgets beyond float32
def test_kl_inverse_lower_matches_bisection():
  q, c = _random_cases(seed=2)
  c[-10:] = [20, 50, 100, 300, 600, 20, 50, 100, 300, 600]  # roots far below 1e-12
  got = np.asarray(kl_inverse_lower(q, c))
  want = np.array([_lower_ref(a, b) for a, b in zip(q, c)])
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
  tiny = want < 1e-290  # float64 denormals: only absolute accuracy is meaningful there
  np.testing.assert_allclose(got[~tiny], want[~tiny], rtol=1e-10, atol=0)


@pytest.mark.x64  # float64 accuracy (1e-12 and below) and budgets beyond float32
def test_kl_inverse_attains_the_budget():
  q, c = _random_cases(seed=3)
  c = np.minimum(c, 5.0)
  up = np.asarray(kl_inverse_upper(q, c))
  lo = np.asarray(kl_inverse_lower(q, c))
  inner = (up < 1 - 1e-9)
  kl_up = np.array([_kl_ref(a, b) for a, b in zip(q, up)])
  np.testing.assert_allclose(kl_up[inner], c[inner], rtol=1e-6, atol=1e-12)
  assert np.all(lo <= q) and np.all(up >= q)


@pytest.mark.x64  # float64 accuracy (1e-12 and below) and budgets beyond float32
def test_kl_inverse_edges():
  c = np.array([1e-30, 0.1, 1.0, 1e3, 1e300, np.inf])
  qq, cc = np.meshgrid([0.0, 1.0, 0.25], c)
  qq, cc = np.resize(qq.ravel(), 100), np.resize(cc.ravel(), 100)  # the shape compiled above
  for fn, ref in ((kl_inverse_upper, _upper_ref), (kl_inverse_lower, _lower_ref)):
    got = np.asarray(fn(qq, cc))
    want = np.array([ref(a, b) for a, b in zip(qq[:18], cc[:18])])
    np.testing.assert_allclose(got[:18], want, rtol=0, atol=1e-12)
  # Closed forms at the edges.
  assert float(kl_inverse_upper(0.0, 2.0)) == pytest.approx(1 - math.exp(-2.0), abs=1e-15)
  assert float(kl_inverse_lower(1.0, 2.0)) == pytest.approx(math.exp(-2.0), abs=1e-15)
  assert float(kl_inverse_upper(0.3, 0.0)) == 0.3 and float(kl_inverse_lower(0.3, 0.0)) == 0.3
  assert float(kl_inverse_upper(0.3, np.inf)) == 1.0
  assert float(kl_inverse_lower(0.3, np.inf)) == 0.0
  # A negative budget used to return NaN; it is now refused with a message naming c.
  with pytest.raises(InvalidInputError, match=r"^c: expected values >= 0"):
    kl_inverse_upper(0.3, -1.0)


@pytest.mark.x64  # float64 accuracy (1e-12 and below) and budgets beyond float32
def test_kl_inverse_symmetry():
  q, c = _random_cases(seed=4)
  np.testing.assert_allclose(np.asarray(kl_inverse_lower(q, c)),
                             1 - np.asarray(kl_inverse_upper(1 - q, c)), atol=1e-12)


def test_jit_and_vmap():
  q, c = _random_cases(seed=5)
  want_u = np.asarray(kl_inverse_upper(q, c))
  want_l = np.asarray(kl_inverse_lower(q, c))
  np.testing.assert_array_equal(np.asarray(jax.vmap(kl_inverse_upper)(q, c)), want_u)
  np.testing.assert_array_equal(np.asarray(jax.jit(jax.vmap(kl_inverse_lower))(q, c)), want_l)


@pytest.mark.slow
def test_float32():
  q, c = _random_cases(seed=6, size=64)
  q32, c32 = q.astype(np.float32), c.astype(np.float32)
  up = kl_inverse_upper(q32, c32)
  lo = kl_inverse_lower(jnp.asarray(q32), jnp.asarray(c32))
  assert up.dtype == jnp.float32 and lo.dtype == jnp.float32
  want_u = np.array([_upper_ref(float(a), float(b)) for a, b in zip(q32, c32)])
  want_l = np.array([_lower_ref(float(a), float(b)) for a, b in zip(q32, c32)])
  np.testing.assert_allclose(np.asarray(up), want_u, atol=2e-6)
  np.testing.assert_allclose(np.asarray(lo), want_l, atol=2e-6)


def test_invalid_arguments_refused_eagerly_and_under_jit():
  # Eager: the house message names the argument.
  for call, arg in ((lambda: binary_kl(1.2, 0.5), "q"), (lambda: binary_kl(0.2, -0.1), "p"),
                    (lambda: binary_kl(0.2, np.nan), "p"),
                    (lambda: kl_inverse_lower(0.2, np.nan), "c"),
                    (lambda: kl_inverse_upper([0.1, 0.2], [0.1, 0.2, 0.3]), "c")):
    with pytest.raises(InvalidInputError, match=rf"^{arg}: expected"):
      call()
  # Traced: the check runs at execution time and the call fails instead of returning a number.
  with pytest.raises(Exception, match=r"q: expected probabilities in \[0, 1\]"):
    np.asarray(jax.jit(kl_inverse_upper)(jnp.asarray(1.5), jnp.asarray(0.1)))
  with pytest.raises(Exception, match=r"c: expected values >= 0"):
    np.asarray(jax.jit(jax.vmap(kl_inverse_lower))(jnp.asarray([0.1, 0.2]),
                                                   jnp.asarray([0.1, -1.0])))


def test_kl_inverses_in_float32():
  # float32 inputs are computed in float32 (x64 on or off) to float32 accuracy.
  q, c = _random_cases(seed=5)
  q32, c32 = q.astype(np.float32), np.minimum(c, 30.0).astype(np.float32)
  up = kl_inverse_upper(q32, c32)
  lo = kl_inverse_lower(q32, c32)
  assert up.dtype == jnp.float32 and lo.dtype == jnp.float32
  q64, c64 = q32.astype(np.float64), c32.astype(np.float64)
  want_up = np.array([_upper_ref(a, b) for a, b in zip(q64, c64)])
  want_lo = np.array([_lower_ref(a, b) for a, b in zip(q64, c64)])
  np.testing.assert_allclose(np.asarray(up, np.float64), want_up, rtol=0, atol=2e-6)
  np.testing.assert_allclose(np.asarray(lo, np.float64), want_lo, rtol=0, atol=2e-6)
  assert np.all(np.asarray(lo) <= q32) and np.all(np.asarray(up) >= q32)
