"""Tests for gbounds.bounds._cmi: estimators vs hand tables, formulas vs brute force, synthetic
algorithms with known answers, and bound validity on a Wang & Mao-style synthetic study."""

import collections
import dataclasses
import functools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gbounds
from gbounds import InvalidInputError
from gbounds.bounds import (
  BoundName,
  BoundResult,
  BoundsReport,
  EcmiForm,
  LdcmiForm,
  MeasuredGap,
  MIEstimator,
  binary_kl,
  cmi_bounds,
  ecmi_bound,
  ecmi_kl_test_error,
  ecmi_linear_test_error,
  fcmi_bound,
  ldcmi_bound,
  ldcmi_fast_rate_gap,
  measured_gap,
  mutual_information_from_counts,
  plugin_mutual_information,
  samplewise_mi,
  sqrt_bound,
)

LOG2 = math.log(2)


def _mi_by_hand(x, y):
  """Plug-in MI from a Python dictionary of joint counts."""
  n = len(x)
  joint = collections.Counter(zip(x, y))
  px, py = collections.Counter(x), collections.Counter(y)
  return sum(c / n * math.log(c * n / (px[a] * py[b])) for (a, b), c in joint.items())


# --- Estimators --------------------------------------------------------------------------------


@pytest.mark.x64  # compares with float64 references to 1e-9 or tighter
@pytest.mark.parametrize("x,u,want", [
    ([0, 0, 1, 1], [0, 0, 1, 1], LOG2),
    ([0, 1, 0, 1], [0, 0, 1, 1], 0.0),
    ([5, 5, 5, 5], [0, 1, 0, 1], 0.0),
    # table u=0: x in {a, a, b}; u=1: x in {b, c, c}  ->  (2/3) log 2 by hand.
    ([0, 0, 1, 1, 2, 2], [0, 0, 0, 1, 1, 1], 2 / 3 * LOG2),
])
def test_plugin_mi_hand_tables(x, u, want):
  assert float(plugin_mutual_information(np.array(x), np.array(u))) == pytest.approx(want,
                                                                                    abs=1e-12)
  table = np.zeros((max(x) + 1, 2))
  np.add.at(table, (np.array(x), np.array(u)), 1)
  assert float(mutual_information_from_counts(table)) == pytest.approx(want, abs=1e-12)


@pytest.mark.x64  # compares with float64 references to 1e-9 or tighter
def test_miller_madow_hand():
  # x = u = [0, 0, 1, 1]: m_xy = 2, m_x = 2, m_u = 2 -> I - (2 - 2 - 2 + 1) / (2 * 4).
  x = np.array([0, 0, 1, 1])
  got = float(plugin_mutual_information(x, x, estimator="miller_madow"))
  assert got == pytest.approx(LOG2 + 1 / 8, abs=1e-12)
  # independent: x = [0, 1, 0, 1], u = [0, 0, 1, 1]: m_xy = 4 -> -1/8, clipped to 0.
  y = np.array([0, 0, 1, 1])
  x2 = np.array([0, 1, 0, 1])
  assert float(plugin_mutual_information(x2, y, estimator=MIEstimator.MILLER_MADOW,
                                         clip=False)) == pytest.approx(-1 / 8, abs=1e-12)
  assert float(plugin_mutual_information(x2, y, estimator=MIEstimator.MILLER_MADOW)) == 0.0


@pytest.mark.x64  # compares with float64 references to 1e-9 or tighter
def test_two_estimator_implementations_agree_with_dictionary_counts():
  rng = np.random.default_rng(0)
  masks = rng.integers(0, 2, (3, 17, 6))
  values = rng.integers(0, 4, (3, 17, 6, 2)) * rng.integers(0, 2, (3, 17, 6, 1))
  cond = samplewise_mi(masks, values)
  pooled = samplewise_mi(masks, values, pooled=True)
  codes = values[..., 0] * 10 + values[..., 1]
  pairwise = np.asarray(plugin_mutual_information(np.moveaxis(codes, 1, -1),
                                                  np.moveaxis(masks, 1, -1)))
  for s in range(3):
    for i in range(6):
      want = _mi_by_hand(list(codes[s, :, i]), list(masks[s, :, i]))
      assert cond[s, i] == pytest.approx(want, abs=1e-12)
      assert pairwise[s, i] == pytest.approx(want, abs=1e-12)
  for i in range(6):
    want = _mi_by_hand(list(codes[:, :, i].ravel()), list(masks[:, :, i].ravel()))
    assert pooled[i] == pytest.approx(want, abs=1e-12)
  mm = samplewise_mi(masks, values, estimator="miller_madow", clip=False)
  mm2 = np.asarray(plugin_mutual_information(np.moveaxis(codes, 1, -1), np.moveaxis(masks, 1, -1),
                                             estimator="miller_madow", clip=False))
  np.testing.assert_allclose(mm, mm2, atol=1e-12)
  from gbounds.bounds._cmi import _mi_from_counts_np, _pair_counts
  counts = _pair_counts(masks, values)
  for est in MIEstimator:
    for clip in (True, False):
      np.testing.assert_allclose(
          np.asarray(mutual_information_from_counts(counts, estimator=est, clip=clip)),
          _mi_from_counts_np(counts, est, clip), atol=1e-12)


def test_estimators_jit_and_vmap():
  rng = np.random.default_rng(1)
  x = rng.integers(0, 3, (5, 12))
  u = rng.integers(0, 2, (5, 12))
  want = np.asarray(plugin_mutual_information(x, u))
  f = jax.jit(functools.partial(plugin_mutual_information, estimator=MIEstimator.PLUGIN))
  np.testing.assert_allclose(np.asarray(jax.vmap(f)(x, u)), want, atol=1e-12)
  counts = rng.integers(0, 5, (4, 3, 2)).astype(float)
  g = jax.jit(mutual_information_from_counts)
  np.testing.assert_allclose(np.asarray(jax.vmap(g)(counts)),
                             np.asarray(mutual_information_from_counts(counts)), atol=1e-12)
  np.testing.assert_allclose(np.asarray(jax.jit(sqrt_bound)(want)),
                             np.mean(np.sqrt(2 * want)), atol=1e-12)


# --- Bound formulas vs brute force --------------------------------------------------------------


def _linear_brute(ls, info):
  lam = np.linspace(1e-4, 0.4, 1500)[:, None]
  gam = np.linspace(1, 60, 3000)[None, :]
  ok = lam * (gam - 1) >= (np.exp(lam) - 1 - lam) * (1 + gam**2)
  return np.where(ok, gam * ls + info / lam, np.inf).min()


def _fast_brute(ls, info):
  c2 = np.linspace(1e-4, LOG2 / 2 - 1e-6, 3000)[:, None]
  c1 = np.concatenate([np.linspace(1e-4, 5, 2000), np.geomspace(5, 1e4, 500)])[None, :]
  ok = np.exp(2 * c2) + np.exp(-2 * c2 * (1 + c1)) <= 2
  return np.where(ok, c1 * ls + info / c2, np.inf).min()


@pytest.mark.parametrize("ls,info", [(0.05, 0.02), (0.2, 0.1), (0.0, 0.3), (0.4, 0.005)])
def test_linear_and_fast_rate_vs_brute_force(ls, info):
  lin = float(ecmi_linear_test_error(ls, info))
  fast = float(ldcmi_fast_rate_gap(ls, info))
  lin_b = _linear_brute(ls, info)
  fast_b = _fast_brute(ls, info)
  # Ours searches the exact 1-D reduction: never worse than the 2-D brute grid, and close.
  assert lin <= lin_b + 1e-9 and lin >= lin_b - 0.02 * lin_b
  assert fast <= fast_b + 1e-9 and fast >= fast_b - 0.02 * fast_b


@pytest.mark.x64  # compares with float64 references to 1e-9 or tighter
def test_fast_rate_limits():
  assert float(ldcmi_fast_rate_gap(0.0, 0.3)) == pytest.approx(2 * 0.3 / LOG2, rel=1e-12)
  assert float(ldcmi_fast_rate_gap(0.3, 0.0)) == 0.0
  assert float(ecmi_linear_test_error(0.3, 0.0)) == 0.3


@pytest.mark.x64  # compares with float64 references to 1e-9 or tighter
def test_kl_bound_inverts_binary_kl():
  ls = np.array([0.0, 0.01, 0.1, 0.3])
  info = np.array([0.2, 0.05, 0.01, 0.3])
  test = np.asarray(ecmi_kl_test_error(ls, info))
  np.testing.assert_allclose(np.asarray(binary_kl(ls, (ls + test) / 2)), info, rtol=1e-9)
  assert float(ecmi_kl_test_error(0.0, LOG2)) == pytest.approx(1.0, abs=1e-12)
  assert float(ecmi_kl_test_error(0.2, 0.0)) == pytest.approx(0.2, abs=1e-15)


def test_formulas_jit_and_vmap():
  ls = np.array([0.0, 0.1, 0.2])
  info = np.array([0.1, 0.0, 0.05])
  for fn in (ecmi_linear_test_error, ecmi_kl_test_error, ldcmi_fast_rate_gap):
    want = np.array([float(fn(a, b)) for a, b in zip(ls, info)])  # jitted, scalar by scalar
    np.testing.assert_allclose(np.asarray(jax.vmap(fn)(ls, info)), want, rtol=1e-12)


@pytest.mark.slow
def test_formulas_float32():
  ls = np.array([0.0, 0.1, 0.2])
  info = np.array([0.1, 0.0, 0.05])
  for fn in (ecmi_linear_test_error, ecmi_kl_test_error, ldcmi_fast_rate_gap):
    want = np.asarray(fn(ls, info))
    got32 = fn(ls.astype(np.float32), info.astype(np.float32))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(np.asarray(got32), want, rtol=1e-4, atol=1e-6)


# --- Synthetic algorithms with known answers ------------------------------------------------


def _balanced_masks(rng, k1, k2, n):
  base = np.tile(np.arange(k2) % 2, (k1, n, 1))  # k2 / 2 ones per pair
  return np.moveaxis(rng.permuted(base, axis=-1), -1, 1)


def _memoriser(masks, labels, num_classes=2):
  """Training label on training points, a class that never occurs (K) on ghost points."""
  side = np.arange(2)[None, None, None, :]
  return np.where(side == masks[..., None], labels[:, None], num_classes)


@pytest.mark.x64  # compares with float64 references to 1e-9 or tighter
def test_constant_predictor_every_bound_is_zero():
  rng = np.random.default_rng(0)
  k1, k2, n = 3, 10, 6
  # Balanced masks (k2 / 2 ones per pair and supersample) make U empirically independent of
  # anything constant within a supersample, so even the pooled (unconditional) estimates are 0.
  masks = _balanced_masks(rng, k1, k2, n)
  labels = rng.integers(0, 2, (k1, n, 2))
  pred = np.zeros((k1, k2, n, 2), np.int64)
  rep = cmi_bounds(masks, pred, labels, full_vector=True)
  # (The measured gap is a finite-sample estimate of an expected gap of 0.)
  for b in rep.bounds:
    if b.name.endswith("interpolating"):
      assert not b.applicable  # nonzero training error
      continue
    assert b.value == pytest.approx(0.0, abs=1e-12), b.name
    assert b.test_error == pytest.approx(rep.measured.train_error, abs=1e-12)
    np.testing.assert_allclose(b.per_supersample, 0.0, atol=1e-12)


def test_memoriser_mi_tends_to_log2():
  rng = np.random.default_rng(1)
  errs = []
  for k2 in (10, 100, 1000):
    masks = rng.integers(0, 2, (2, k2, 8))
    labels = rng.integers(0, 2, (2, 8, 2))
    mi = samplewise_mi(masks, _memoriser(masks, labels))
    # Plug-in I(F; U) = H(empirical U) when F reveals U: compare with the exact entropy.
    p = masks.mean(axis=1)
    h = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    np.testing.assert_allclose(mi, h, atol=1e-12)
    errs.append(np.abs(mi - LOG2).mean())
  assert errs[2] < errs[1] < errs[0] and errs[2] < 2e-3


@pytest.mark.x64  # compares with float64 references to 1e-9 or tighter
def test_memoriser_bounds_hold_and_balanced_masks_are_exact():
  rng = np.random.default_rng(2)
  k1, k2, n = 2, 16, 4
  masks = _balanced_masks(rng, k1, k2, n)
  labels = rng.integers(0, 2, (k1, n, 2))
  rep = cmi_bounds(masks, _memoriser(masks, labels), labels, full_vector=True)
  assert rep.measured.gap == 1.0 and rep.measured.train_error == 0.0
  exact = {"fcmi": math.sqrt(2 * LOG2), "ecmi_sqrt": math.sqrt(2 * LOG2),
           "ldcmi_sqrt": math.sqrt(2 * LOG2), "ldcmi_single_loss": 2 * math.sqrt(2 * LOG2),
           "ecmi_kl": 1.0, "ecmi_interpolating": 1.0, "ldcmi_interpolating": 1.0,
           "ldcmi_fast_rate": 2.0}
  for b in rep.bounds:
    if b.name in exact:
      assert b.value == pytest.approx(exact[b.name], abs=1e-9), b.name
    if b.applicable:
      assert b.value >= rep.measured.gap - 1e-9, b.name
  # fcmi_full: k2 = 16 masks of 2^4 values: flagged (plug-in capped at log k2).
  assert not rep["fcmi_full"].applicable


def test_full_vector_fcmi_tiny_n():
  rng = np.random.default_rng(3)
  k1, k2, n = 2, 64, 2
  masks = rng.integers(0, 2, (k1, k2, n))
  labels = rng.integers(0, 2, (k1, n, 2))
  pred = _memoriser(masks, labels)
  res = fcmi_bound(masks, pred, (pred != labels[:, None]).astype(float), full_vector=True)
  assert res.applicable
  for s in range(k1):
    f = [tuple(r) for r in pred[s].reshape(k2, -1)]
    u = [tuple(r) for r in masks[s]]
    want = math.sqrt(2 * _mi_by_hand(f, u) / n)
    assert res.per_supersample[s] == pytest.approx(want, abs=1e-12)


def _noisy_algorithm(rng, k1=3, k2=40, n=10, flip=0.3):
  """Memorises with probability 1 - flip per example, otherwise predicts a random label."""
  masks = rng.integers(0, 2, (k1, k2, n))
  labels = rng.integers(0, 3, (k1, n, 2))
  pred = np.where(np.arange(2) == masks[..., None], labels[:, None], 0)
  noise = rng.random(pred.shape) < flip
  pred = np.where(noise, rng.integers(0, 3, pred.shape), pred)
  return masks, pred, labels


def test_ecmi_below_fcmi_per_pair():
  rng = np.random.default_rng(4)
  masks, pred, labels = _noisy_algorithm(rng)
  losses = (pred != labels[:, None]).astype(float)
  i_f = samplewise_mi(masks, pred)
  i_l = samplewise_mi(masks, losses)
  i_dl = samplewise_mi(masks, losses[..., 1] - losses[..., 0])
  assert np.all(i_l <= i_f + 1e-12) and np.all(i_dl <= i_l + 1e-12)
  assert np.any(i_l < i_f - 1e-3)  # not trivially equal
  rep = cmi_bounds(masks, pred, labels)
  assert rep["ecmi_sqrt"].value <= rep["fcmi"].value + 1e-12
  assert np.all(rep["ecmi_sqrt"].per_supersample <= rep["fcmi"].per_supersample + 1e-12)


def test_measured_gap_by_hand():
  masks = np.array([[[0, 1], [1, 1]]])  # k1 = 1, k2 = 2, n = 2
  losses = np.array([[[[0.1, 0.9], [0.2, 0.4]], [[0.3, 0.5], [0.0, 1.0]]]])
  g = measured_gap(masks, losses)
  train = (0.1 + 0.4 + 0.5 + 1.0) / 4
  test = (0.9 + 0.2 + 0.3 + 0.0) / 4
  assert g.train_error == pytest.approx(train) and g.test_error == pytest.approx(test)
  assert g.gap == pytest.approx(test - train)


def test_single_bound_functions_match_report():
  rng = np.random.default_rng(5)
  masks, pred, labels = _noisy_algorithm(rng, k2=20)
  losses = (pred != labels[:, None]).astype(float)
  rep = cmi_bounds(masks, pred, losses)
  assert fcmi_bound(masks, pred, losses).value == rep["fcmi"].value
  for form, name in [(EcmiForm.SQRT, "ecmi_sqrt"), (EcmiForm.LINEAR, "ecmi_linear"),
                     (EcmiForm.KL, "ecmi_kl")]:
    assert ecmi_bound(masks, losses, form=form).value == rep[name].value
  for form, name in [(LdcmiForm.SQRT, "ldcmi_sqrt"), ("single_loss", "ldcmi_single_loss"),
                     (LdcmiForm.FAST_RATE, "ldcmi_fast_rate")]:
    assert ldcmi_bound(masks, losses, form=form).value == rep[name].value
  table = rep.table()
  assert isinstance(table, gbounds.Table)
  rows = table.rows
  assert [r[0] for r in rows] == [b.name for b in rep.bounds]
  assert all(len(r) == 4 and isinstance(r[3], str) for r in rows)


def test_bootstrap_is_seeded_and_brackets():
  rng = np.random.default_rng(6)
  masks, pred, labels = _noisy_algorithm(rng, k1=3, k2=20)
  a = cmi_bounds(masks, pred, labels, bootstrap=4, seed=1)  # 1 + k1 + 4 evaluations
  b = cmi_bounds(masks, pred, labels, bootstrap=4, seed=1)
  c = cmi_bounds(masks, pred, labels, bootstrap=4, seed=2)
  for x, y in zip(a.bounds, b.bounds):
    assert x.interval == y.interval and x.test_error_interval == y.test_error_interval
    assert x.interval[0] <= x.interval[1]
    assert x.test_error_interval[0] <= x.test_error_interval[1]
  assert any(x.interval != z.interval for x, z in zip(a.bounds, c.bounds))
  assert min(x.interval[0] for x in a.bounds) >= 0  # every replicate is a bound >= 0


def test_miller_madow_lowers_the_estimate():
  rng = np.random.default_rng(7)
  masks, pred, labels = _noisy_algorithm(rng, k2=20)
  plug = cmi_bounds(masks, pred, labels)
  mm = cmi_bounds(masks, pred, labels, estimator="miller_madow")
  assert mm["fcmi"].value < plug["fcmi"].value


# --- Bad input ------------------------------------------------------------------------------


def test_bad_input_messages():
  rng = np.random.default_rng(8)
  masks = rng.integers(0, 2, (2, 4, 3))
  losses = rng.random((2, 4, 3, 2))
  pred = rng.integers(0, 2, (2, 4, 3, 2))
  with pytest.raises(InvalidInputError, match="masks: expected binary"):
    measured_gap(masks * 2, losses)
  with pytest.raises(InvalidInputError, match="masks: expected at least 2 masks"):
    measured_gap(masks[:, :1], losses[:, :1])
  with pytest.raises(InvalidInputError, match="losses: expected a pair axis"):
    measured_gap(masks, rng.random((2, 4, 3, 3)))
  with pytest.raises(InvalidInputError, match="predictions: expected a pair axis"):
    fcmi_bound(masks, rng.integers(0, 2, (2, 4, 3, 3)), losses)
  with pytest.raises(InvalidInputError, match="losses: expected values in"):
    ecmi_bound(masks, losses + 1)
  with pytest.raises(InvalidInputError, match="predictions: expected n = 3"):
    fcmi_bound(masks, rng.integers(0, 2, (2, 4, 5, 2)), losses)
  with pytest.raises(InvalidInputError, match="losses: expected n = 3"):
    ldcmi_bound(masks, rng.random((2, 4, 4, 2)))
  with pytest.raises(InvalidInputError, match="form: expected one of"):
    ecmi_bound(masks, losses, form="cubic")
  with pytest.raises(InvalidInputError, match="labels_or_losses"):
    cmi_bounds(masks, pred, rng.integers(0, 2, (2, 5, 2)))
  rep = cmi_bounds(masks, pred, losses)
  assert not rep["ecmi_interpolating"].applicable  # non-binary losses
  assert math.isnan(dict((r[0], r[1]) for r in rep.table().rows)["ldcmi_interpolating"])


# --- Wang & Mao-style synthetic study ----------------------------------------------------------


def _synthetic_study(n, k1=5, k2=20, seed=0, lr=0.01, epochs=500):
  """make_classification (d = 5, 2 classes); linear softmax by full-batch GD, all k1 k2 models
  at once in numpy; stop a model once its training accuracy reaches 99%."""
  from sklearn.datasets import make_classification
  x_pool, y_pool = make_classification(n_samples=4000, n_features=5, n_informative=5,
                                       n_redundant=0, n_classes=2, n_clusters_per_class=1,
                                       flip_y=0.05, random_state=seed)
  rng = np.random.default_rng(seed)
  idx = np.stack([rng.choice(len(x_pool), 2 * n, replace=False) for _ in range(k1)])
  xs = x_pool[idx].reshape(k1, n, 2, 5)
  ys = y_pool[idx].reshape(k1, n, 2)
  masks = rng.integers(0, 2, (k1, k2, n))
  x_tr = np.take_along_axis(xs[:, None], masks[..., None, None], axis=3)[..., 0, :]
  y_tr = np.take_along_axis(ys[:, None], masks[..., None], axis=3)[..., 0]
  w = np.zeros((k1, k2, 5, 2))
  b = np.zeros((k1, k2, 2))
  onehot = np.eye(2)[y_tr]
  active = np.ones((k1, k2), bool)
  for _ in range(epochs):
    logits = np.einsum("abnd,abdk->abnk", x_tr, w) + b[:, :, None]
    acc = (logits.argmax(-1) == y_tr).mean(-1)
    active &= acc < 0.99
    if not active.any():
      break
    z = logits - logits.max(-1, keepdims=True)
    prob = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    g = (prob - onehot) / n
    step = lr * active[..., None, None]
    w -= step * np.einsum("abnd,abnk->abdk", x_tr, g)
    b -= step[..., 0] * g.sum(2)
  logits = np.einsum("anpd,abdk->abnpk", xs, w) + b[:, :, None, None]
  return masks, logits, ys


@pytest.mark.parametrize("n", [10, 30])
def test_every_bound_holds_on_synthetic_study(n):
  masks, scores, labels = _synthetic_study(n)
  rep = cmi_bounds(masks, scores, labels)
  gap = rep.measured.gap
  assert rep.measured.train_error < rep.measured.test_error  # it does overfit a little
  for b in rep.bounds:
    if b.applicable:
      assert b.value >= gap, (b.name, b.value, gap)
      assert b.test_error >= rep.measured.test_error
  # The ordering of the measures carries over to the bounds on the same runs.
  assert rep["ecmi_sqrt"].value <= rep["fcmi"].value + 1e-12


def test_formula_helpers_refuse_invalid_inputs_eagerly_and_traced():
  bad = [(lambda: ecmi_kl_test_error(1.5, 0.1), "train_error"),
         (lambda: ecmi_linear_test_error(0.1, -0.2), "cmi"),
         (lambda: ldcmi_fast_rate_gap(0.1, np.nan), "mi"),
         (lambda: sqrt_bound(np.array([0.1, -0.1])), "mi"),
         (lambda: mutual_information_from_counts(np.array([[1.0, 2.5], [3.0, 4.0]])), "counts"),
         (lambda: plugin_mutual_information(np.array([0.0, np.nan]), np.array([0, 1])), "x")]
  for call, arg in bad:
    with pytest.raises(InvalidInputError, match=rf"^{arg}: expected"):
      call()
  with pytest.raises(Exception, match=r"train_error: expected probabilities"):
    np.asarray(jax.jit(ecmi_kl_test_error)(jnp.asarray(-0.1), jnp.asarray(0.1)))
  with pytest.raises(Exception, match=r"counts: expected finite integer counts"):
    np.asarray(jax.jit(mutual_information_from_counts)(-jnp.ones((2, 2))))


# --- names and results -------------------------------------------------------------------------


def test_report_is_keyed_by_bound_name_and_still_by_string():
  rng = np.random.default_rng(11)
  masks, pred, labels = _noisy_algorithm(rng, k2=8)
  rep = cmi_bounds(masks, pred, labels)
  assert rep.names == tuple(BoundName)  # n <= 12: the full-vector bound too
  for b in rep.bounds:
    assert type(b.name) is BoundName
    assert rep[b.name] is b and rep[b.name.value] is b
    assert b.name in rep and b.name.value in rep
  assert BoundName.FCMI == "fcmi" and f"{BoundName.ECMI_KL}" == "ecmi_kl"
  assert {b.name: 1 for b in rep.bounds}["ldcmi_fast_rate"] == 1  # str keys hash alike
  with pytest.raises(KeyError):
    rep["not_a_bound"]
  no_f = cmi_bounds(masks, None, labels_to_losses(pred, labels))
  assert BoundName.FCMI not in no_f
  with pytest.raises(KeyError):
    no_f[BoundName.FCMI]
  # A string name given to BoundResult is coerced.
  r = dataclasses.replace(rep.bounds[0], name="ecmi_kl")
  assert r.name is BoundName.ECMI_KL


def labels_to_losses(pred, labels):
  return (pred != labels[:, None]).astype(float)


def _assert_results_equal(a, b):
  assert type(a) is type(b)
  for f in dataclasses.fields(a) if dataclasses.is_dataclass(a) else a._fields:
    name = f.name if dataclasses.is_dataclass(a) else f
    x, y = getattr(a, name), getattr(b, name)
    if dataclasses.is_dataclass(x) or isinstance(x, MeasuredGap):
      _assert_results_equal(x, y)
    elif isinstance(x, tuple) and x and isinstance(x[0], BoundResult):
      assert len(x) == len(y)
      for u, v in zip(x, y):
        _assert_results_equal(u, v)
    elif isinstance(x, np.ndarray):
      np.testing.assert_array_equal(x, y)
    elif isinstance(x, float) and math.isnan(x):
      assert math.isnan(y)
    else:
      assert x == y and type(x) is type(y), (name, x, y)


def test_results_round_trip_through_json():
  rng = np.random.default_rng(12)
  masks, pred, labels = _noisy_algorithm(rng, k2=8)
  rep = cmi_bounds(masks, pred, labels, bootstrap=5)
  back = BoundsReport.from_dict(json.loads(json.dumps(rep.to_dict())))
  _assert_results_equal(rep, back)
  assert back.estimator is MIEstimator.PLUGIN
  b = rep["ecmi_kl"]
  _assert_results_equal(b, BoundResult.from_dict(json.loads(json.dumps(b.to_dict()))))
  m = measured_gap(masks, labels_to_losses(pred, labels))
  _assert_results_equal(m, MeasuredGap.from_dict(json.loads(json.dumps(m.to_dict()))))
  t = rep.table()
  assert t.columns == ("bound", "gap bound", "test-error bound", "source")
  assert "fcmi" in t.to_text() and t.to_csv().splitlines()[1].startswith("fcmi,")
