"""Property-based tests (hypothesis) of the bound and kl helpers.

For random valid inputs every bound is finite, monotone in the confidence ``delta`` and in the
empirical error (and in the information it is charged), and never below the quantity it bounds;
for random invalid inputs every helper raises :class:`gbounds.InvalidInputError` naming the
argument. Validity is checked on a synthetic algorithm whose CMI is known in closed form: on each
pair the output reveals the mask bit with probability ``a`` (the training example gets loss 0 and
the ghost loss 1) and otherwise both losses are independent Bernoulli(``b``) draws, so

* expected gap ``= a``, training error ``= (1 - a) b``, test error ``= a + (1 - a) b``;
* ``I(L~_i; U_i)``, ``I(DL_i; U_i)`` and ``I(L~_{i,j}; U_i)`` are sums over at most 4 x 2 cells,
  computed here with plain Python floats (independently of gbounds' estimators).

The end-to-end test feeds :func:`gbounds.bounds.cmi_bounds` runs in which every outcome occurs exactly
in proportion to its probability, so the plug-in estimates equal the exact informations; it
checks that, and that every applicable bound lies above the exact gap and test error.
Settings are modest (<= 60 examples per property, no deadline, no example database); the module
runs in about 30 s on 2 CPU cores.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gbounds as gb
from gbounds import InvalidInputError

# GB_PROP_EXAMPLES raises the number of examples for a local stress run (default 60).
SETTINGS = settings(max_examples=int(os.environ.get("GB_PROP_EXAMPLES", "60")), deadline=None,
                    database=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=25, deadline=None, database=None,
               suppress_health_check=[HealthCheck.too_slow])

# Subnormal floats are excluded: XLA on CPU flushes them to zero (log(1e-311) = -inf there).
prob = st.floats(0.0, 1.0, allow_subnormal=False)
delta_st = st.floats(1e-6, 0.999)
kl_st = st.floats(0.0, 1e4, allow_subnormal=False)
n_st = st.integers(1, 10**6)
info_st = st.floats(0.0, 5.0, allow_subnormal=False)


def _f(x) -> float:
  return float(np.asarray(x))


# ------------------------------------------------------------------------ kl and its inverses


@pytest.mark.x64  # compares with float64 references to 1e-9 or tighter
@SETTINGS
@given(q=prob, p=prob)
def test_binary_kl_nonnegative_zero_on_diagonal(q, p):
  kl = _f(gb.bounds.binary_kl(q, p))
  assert kl >= 0
  if 0 < p < 1:
    assert math.isfinite(kl)
  assert _f(gb.bounds.binary_kl(q, q)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.x64  # compares with float64 references to 1e-9 or tighter
@SETTINGS
@given(q=prob, c1=info_st, c2=info_st)
def test_kl_inverses_bracket_and_are_monotone_in_the_budget(q, c1, c2):
  lo_c, hi_c = sorted((c1, c2))
  up_lo, up_hi = _f(gb.bounds.kl_inverse_upper(q, lo_c)), _f(gb.bounds.kl_inverse_upper(q, hi_c))
  dn_lo, dn_hi = _f(gb.bounds.kl_inverse_lower(q, lo_c)), _f(gb.bounds.kl_inverse_lower(q, hi_c))
  for v in (up_lo, up_hi, dn_lo, dn_hi):
    assert math.isfinite(v)
  assert q <= up_lo <= 1 and q <= up_hi <= 1 and up_lo <= up_hi + 1e-12
  assert 0 <= dn_lo <= q and 0 <= dn_hi <= q and dn_hi <= dn_lo + 1e-12
  # p+ is the supremum to a few ulps: feasible just below it, infeasible just above it (near
  # p = 1 the kl grows so fast that one ulp of p moves it by ~1e-2, hence the 1e-15 offsets).
  assert _f(gb.bounds.binary_kl(q, max(q, up_lo - 1e-15))) <= lo_c + 1e-9
  if up_lo < 1 - 1e-9:
    assert _f(gb.bounds.binary_kl(q, up_lo + 1e-9)) >= lo_c - 1e-9


@SETTINGS
@given(q1=prob, q2=prob, c=info_st)
def test_kl_inverse_upper_monotone_in_the_empirical_value(q1, q2, c):
  a, b = sorted((q1, q2))
  lo, hi = gb.bounds.kl_inverse_upper(a, c), gb.bounds.kl_inverse_upper(b, c)
  # up to rounding of the computing dtype (float32 when x64 is off: the q = 0 closed form and
  # the bisection next to it may differ by an ulp)
  tol = 1e-12 if lo.dtype == np.float64 else 4 * float(np.finfo(np.float32).eps)
  assert _f(lo) <= _f(hi) + tol


# ------------------------------------------------------------------------ PAC-Bayes bounds


def _pac_bayes_bounds(e, kl, n, delta):
  return {"mcallester": _f(gb.bounds.mcallester_bound(e, kl, n, delta)),
          "pac_bayes_kl": _f(gb.bounds.pac_bayes_kl_bound(e, kl, n, delta)),
          "catoni": _f(gb.bounds.catoni_bound(e, kl, n, delta, 2.0)),
          "mc": _f(gb.bounds.mc_error_upper_bound(e, n, delta))}


@SETTINGS
@given(e=prob, kl=kl_st, n=n_st, d1=delta_st, d2=delta_st)
def test_pac_bayes_bounds_finite_above_error_and_monotone_in_delta(e, kl, n, d1, d2):
  small, large = sorted((d1, d2))
  tight = _pac_bayes_bounds(e, kl, n, large)  # larger delta: less confidence, smaller bound
  loose = _pac_bayes_bounds(e, kl, n, small)
  for name in tight:
    assert math.isfinite(tight[name]) and math.isfinite(loose[name]), name
    assert tight[name] >= e - 1e-12, name  # never below the empirical error it starts from
    assert loose[name] >= tight[name] - 1e-12, name
  assert tight["pac_bayes_kl"] <= 1.0 and tight["mc"] <= 1.0


@SETTINGS
@given(e1=prob, e2=prob, kl=kl_st, n=n_st, delta=delta_st)
def test_pac_bayes_bounds_monotone_in_the_empirical_error(e1, e2, kl, n, delta):
  lo, hi = sorted((e1, e2))
  b_lo, b_hi = _pac_bayes_bounds(lo, kl, n, delta), _pac_bayes_bounds(hi, kl, n, delta)
  for name in b_lo:
    assert b_lo[name] <= b_hi[name] + 1e-12, name


@SETTINGS
@given(e=prob, k1=kl_st, k2=kl_st, n=n_st, delta=delta_st)
def test_pac_bayes_bounds_monotone_in_kl(e, k1, k2, n, delta):
  lo, hi = sorted((k1, k2))
  b_lo, b_hi = _pac_bayes_bounds(e, lo, n, delta), _pac_bayes_bounds(e, hi, n, delta)
  for name in ("mcallester", "pac_bayes_kl", "catoni"):
    assert b_lo[name] <= b_hi[name] + 1e-12, name


@FEW
@given(p=st.floats(0.02, 0.98), m=st.integers(20, 400), delta=st.floats(0.01, 0.5))
def test_pac_bayes_kl_bound_covers_the_true_error_of_a_binomial(p, m, delta):
  # Independent check of the kl-inverse confidence bound behind mc_error_upper_bound (and, with
  # KL = 0, of the PAC-Bayes-kl bound): P[bound(e_hat) < p] <= delta, by the exact binomial law.
  from math import comb
  miss = 0.0
  for k in range(m + 1):
    if _f(gb.bounds.mc_error_upper_bound(k / m, m, delta)) < p:
      miss += comb(m, k) * p**k * (1 - p) ** (m - k)
  assert miss <= delta + 1e-9


# ------------------------------------------------------------------------ CMI bound formulas


def _cmi_bounds(ls, info):
  return {"ecmi_kl": _f(gb.bounds.ecmi_kl_test_error(ls, info)),
          "ecmi_linear": _f(gb.bounds.ecmi_linear_test_error(ls, info)),
          "fast_rate": _f(gb.bounds.ldcmi_fast_rate_gap(ls, info))}


@pytest.mark.x64  # compares with float64 references to 1e-9 or tighter
@SETTINGS
@given(l1=prob, l2=prob, i1=info_st, i2=info_st)
def test_cmi_formulas_finite_and_monotone(l1, l2, i1, i2):
  ls_lo, ls_hi = sorted((l1, l2))
  in_lo, in_hi = sorted((i1, i2))
  base = _cmi_bounds(ls_lo, in_lo)
  more_err = _cmi_bounds(ls_hi, in_lo)
  more_info = _cmi_bounds(ls_lo, in_hi)
  for name in base:
    assert all(math.isfinite(d[name]) for d in (base, more_err, more_info)), name
    # Above 1 (vacuous for a 0-1 error) the binary-KL form saturates, p* = 1 gives 2 - L_S,
    # which decreases in L_S; below 1 every form is monotone.
    assert min(base[name], 1.0) <= min(more_err[name], 1.0) + 1e-9, name
    assert base[name] <= more_info[name] + 1e-9, name
  assert base["ecmi_kl"] >= ls_lo - 1e-12 and base["ecmi_linear"] >= ls_lo - 1e-12
  assert base["fast_rate"] >= -1e-12


@pytest.mark.x64  # compares with float64 references to 1e-9 or tighter
@SETTINGS
@given(mi=st.lists(info_st, min_size=1, max_size=6), j=st.integers(0, 5), extra=info_st)
def test_sqrt_bound_monotone_in_each_information(mi, j, extra):
  mi = np.asarray(mi)
  more = mi.copy()
  more[j % len(mi)] += extra
  a, b = _f(gb.bounds.sqrt_bound(mi)), _f(gb.bounds.sqrt_bound(more))
  assert math.isfinite(a) and a <= b + 1e-12
  assert a == pytest.approx(np.mean(np.sqrt(2 * mi)), rel=1e-12, abs=1e-15)


# ------------------------------------------------------------------------ known-CMI algorithm


def _mi(joint: dict) -> float:
  """I(V; U) in nats from {(v, u): probability} (plain Python, U uniform on {0, 1})."""
  pv: dict = {}
  for (v, _u), p in joint.items():
    pv[v] = pv.get(v, 0.0) + p
  mi = sum(p * math.log(p / (pv[v] * 0.5)) for (v, u), p in joint.items() if p > 0)
  return max(mi, 0.0)  # a sum of rounded terms can be -1e-17 where the MI is 0


def _leak_joint(a: float, b: float) -> dict:
  """Joint law of (L~ = (L0, L1), U) for the leaking algorithm."""
  joint: dict = {}
  for u in (0, 1):
    leak = (0, 1) if u == 0 else (1, 0)  # training example (index u) loss 0, ghost loss 1
    for l0 in (0, 1):
      for l1 in (0, 1):
        p = (1 - a) * (b if l0 else 1 - b) * (b if l1 else 1 - b) + a * ((l0, l1) == leak)
        joint[((l0, l1), u)] = joint.get(((l0, l1), u), 0.0) + 0.5 * p
  return joint


def _marginal(joint: dict, f) -> dict:
  out: dict = {}
  for (v, u), p in joint.items():
    out[(f(v), u)] = out.get((f(v), u), 0.0) + p
  return out


def _exact(a: float, b: float) -> dict:
  joint = _leak_joint(a, b)
  train = (1 - a) * b
  return {"gap": a, "train": train, "test": a + (1 - a) * b,
          "i_pair": _mi(joint), "i_delta": _mi(_marginal(joint, lambda v: v[1] - v[0])),
          "i_sl": 0.5 * (_mi(_marginal(joint, lambda v: v[0]))
                         + _mi(_marginal(joint, lambda v: v[1])))}


# The leak probability is 0 or >= 1e-4: below that the information (~a^2) is lost to rounding in
# the reference computation (its terms cancel to ~1e-17), not in gbounds.
leak_st = st.one_of(st.just(0.0), st.floats(1e-4, 1.0))


@pytest.mark.x64  # compares with float64 references to 1e-9 or tighter
@SETTINGS
@given(a=leak_st, b=prob)
def test_bounds_with_exact_cmi_never_below_the_true_gap_or_test_error(a, b):
  ex = _exact(a, b)
  assert ex["i_pair"] <= math.log(2) + 1e-12  # I(L~; U) <= H(U)
  assert ex["i_delta"] <= ex["i_pair"] + 1e-12  # data processing
  tol = 1e-9
  assert _f(gb.bounds.sqrt_bound(np.full(5, ex["i_pair"]))) >= ex["gap"] - tol  # e-CMI sqrt
  assert _f(gb.bounds.sqrt_bound(np.full(5, ex["i_delta"]))) >= ex["gap"] - tol  # ld-CMI sqrt
  assert 2 * _f(gb.bounds.sqrt_bound(np.full(5, 0.5 * ex["i_sl"] * 2))) >= ex["gap"] - tol
  assert _f(gb.bounds.ecmi_kl_test_error(ex["train"], ex["i_pair"])) >= ex["test"] - tol
  assert _f(gb.bounds.ecmi_linear_test_error(ex["train"], ex["i_pair"])) >= ex["test"] - tol
  assert _f(gb.bounds.ldcmi_fast_rate_gap(ex["train"], ex["i_sl"])) >= ex["gap"] - tol
  if b == 0:  # interpolating: zero training loss, I(L~; U) = a log 2, bound = test error
    assert ex["i_pair"] == pytest.approx(a * math.log(2), abs=1e-12)
    assert ex["i_pair"] / math.log(2) >= ex["test"] - tol


def _balanced_runs(a_tenths: int, b_half: bool, k1: int, n: int):
  """Masks and losses in which every outcome occurs exactly in proportion to its probability:
  per pair and mask value, 40 runs of which 4 a_tenths leak; the others split evenly over the
  four loss pairs (b = 1/2) or are all (0, 0) (b = 0)."""
  per_u = []
  for u in (0, 1):
    leak = (0, 1) if u == 0 else (1, 0)
    rows = [leak] * (4 * a_tenths)
    rest = 40 - 4 * a_tenths
    rows += ([(0, 0), (0, 1), (1, 0), (1, 1)] * (rest // 4)) if b_half else [(0, 0)] * rest
    per_u.append([(u, r) for r in rows])
  runs = per_u[0] + per_u[1]  # k2 = 80
  masks = np.empty((k1, len(runs), n), np.int64)
  losses = np.empty((k1, len(runs), n, 2))
  rng = np.random.default_rng(a_tenths)
  for s in range(k1):
    for i in range(n):
      order = rng.permutation(len(runs))  # pairs differ in which run holds which outcome
      for j, r in enumerate(order):
        u, ls = runs[r]
        masks[s, j, i] = u
        losses[s, j, i] = ls
  return masks, losses


@pytest.mark.x64  # compares with float64 references to 1e-9 or tighter
@FEW
@given(a_tenths=st.integers(0, 10), b_half=st.booleans())
def test_cmi_bounds_end_to_end_on_the_known_cmi_algorithm(a_tenths, b_half):
  a, b = a_tenths / 10, (0.5 if b_half else 0.0)
  ex = _exact(a, b)
  masks, losses = _balanced_runs(a_tenths, b_half, k1=2, n=3)
  preds = losses.astype(np.int64)  # labels 0: prediction 1 <=> loss 1, so F = L~
  rep = gb.bounds.cmi_bounds(masks, preds, np.zeros((2, 3, 2), np.int64), full_vector=False)
  assert rep.measured.gap == pytest.approx(ex["gap"], abs=1e-12)
  assert rep.measured.test_error == pytest.approx(ex["test"], abs=1e-12)
  # The plug-in informations equal the exact ones on these balanced runs.
  np.testing.assert_allclose(gb.bounds.samplewise_mi(masks, losses), ex["i_pair"], atol=1e-12)
  np.testing.assert_allclose(gb.bounds.samplewise_mi(masks, losses[..., 1] - losses[..., 0],
                                              pooled=True), ex["i_delta"], atol=1e-12)
  for bound in rep.bounds:
    if not bound.applicable:
      continue
    assert math.isfinite(bound.value) and math.isfinite(bound.test_error), bound.name
    assert bound.value >= ex["gap"] - 1e-9, (bound.name, bound.value, ex)
    assert bound.test_error >= ex["test"] - 1e-9, (bound.name, bound.test_error, ex)
  interp = rep["ecmi_interpolating"]
  assert interp.applicable == (b == 0 or a == 1)  # zero training loss in every run


# ------------------------------------------------------------------------ invalid inputs

bad_delta = st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0), st.just(math.nan))
bad_prob = st.one_of(st.floats(max_value=-1e-12), st.floats(min_value=1 + 1e-9),
                     st.just(math.nan))
bad_info = st.one_of(st.floats(max_value=-1e-12), st.just(math.inf), st.just(math.nan))
bad_count = st.one_of(st.integers(max_value=0), st.floats(0.01, 1e6).filter(
    lambda v: v != round(v)), st.just(math.nan))


def _refused(call, arg):
  with pytest.raises(InvalidInputError, match=rf"^{arg}: expected"):
    call()


@SETTINGS
@given(d=bad_delta)
def test_every_helper_with_a_delta_rejects_bad_delta(d):
  _refused(lambda: gb.bounds.pac_bayes_kl_bound(0.1, 1.0, 100, d), "delta")
  _refused(lambda: gb.bounds.mcallester_bound(0.1, 1.0, 100, d), "delta")
  _refused(lambda: gb.bounds.catoni_bound(0.1, 1.0, 100, d, 2.0), "delta")
  _refused(lambda: gb.bounds.mc_error_upper_bound(0.1, 100, d), "delta")
  _refused(lambda: gb.bounds.pac_bayes_confidence(1.0, 100, d), "delta")


@SETTINGS
@given(p=bad_prob)
def test_every_helper_with_a_probability_rejects_bad_probabilities(p):
  _refused(lambda: gb.bounds.binary_kl(p, 0.5), "q")
  _refused(lambda: gb.bounds.binary_kl(0.5, p), "p")
  _refused(lambda: gb.bounds.kl_inverse_upper(p, 0.1), "q")
  _refused(lambda: gb.bounds.kl_inverse_lower(p, 0.1), "q")
  _refused(lambda: gb.bounds.pac_bayes_kl_bound(p, 1.0, 100, 0.05), "empirical_error")
  _refused(lambda: gb.bounds.mcallester_bound(p, 1.0, 100, 0.05), "empirical_error")
  _refused(lambda: gb.bounds.catoni_bound(p, 1.0, 100, 0.05, 2.0), "empirical_error")
  _refused(lambda: gb.bounds.mc_error_upper_bound(p, 100, 0.05), "mc_error")
  _refused(lambda: gb.bounds.ecmi_kl_test_error(p, 0.1), "train_error")
  _refused(lambda: gb.bounds.ecmi_linear_test_error(p, 0.1), "train_error")
  _refused(lambda: gb.bounds.ldcmi_fast_rate_gap(p, 0.1), "train_error")


@SETTINGS
@given(i=bad_info)
def test_every_helper_with_an_information_rejects_bad_values(i):
  _refused(lambda: gb.bounds.ecmi_kl_test_error(0.1, i), "cmi")
  _refused(lambda: gb.bounds.ecmi_linear_test_error(0.1, i), "cmi")
  _refused(lambda: gb.bounds.ldcmi_fast_rate_gap(0.1, i), "mi")
  _refused(lambda: gb.bounds.sqrt_bound(np.array([0.1, i])), "mi")
  if not (isinstance(i, float) and i == math.inf):  # an infinite budget / KL is meaningful
    _refused(lambda: gb.bounds.kl_inverse_upper(0.1, i), "c")
    _refused(lambda: gb.bounds.kl_inverse_lower(0.1, i), "c")
    _refused(lambda: gb.bounds.pac_bayes_kl_bound(0.1, i, 100, 0.05), "kl")
    _refused(lambda: gb.bounds.mcallester_bound(0.1, i, 100, 0.05), "kl")


@SETTINGS
@given(c=bad_count)
def test_every_helper_with_a_count_rejects_bad_counts(c):
  _refused(lambda: gb.bounds.pac_bayes_kl_bound(0.1, 1.0, c, 0.05), "n")
  _refused(lambda: gb.bounds.mcallester_bound(0.1, 1.0, c, 0.05), "n")
  _refused(lambda: gb.bounds.catoni_bound(0.1, 1.0, c, 0.05, 2.0), "n")
  _refused(lambda: gb.bounds.mc_error_upper_bound(0.1, c, 0.05), "num_samples")
  table = np.array([[3.0, 1.0], [2.0, 4.0]])
  table[0, 1] = c if c != 0 else -1
  _refused(lambda: gb.bounds.mutual_information_from_counts(table), "counts")


@FEW
@given(v=st.integers(2, 9), k2=st.integers(2, 5))
def test_masks_that_are_not_binary_are_rejected(v, k2):
  masks = np.zeros((1, k2, 2), np.int64)
  masks[0, 0, 0] = v
  losses = np.zeros((1, k2, 2, 2))
  for fn in (gb.bounds.measured_gap, gb.bounds.ecmi_bound, gb.bounds.ldcmi_bound):
    _refused(lambda f=fn: f(masks, losses), "masks")
