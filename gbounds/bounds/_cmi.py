"""Conditional-mutual-information (CMI) generalization bounds from supersample experiments.

Setting (Steinke & Zakynthinou 2020): a supersample of ``n`` pairs ``Z~_i = (Z~_{i,0}, Z~_{i,1})``,
a mask ``U ~ Bernoulli(1/2)^n`` that puts ``Z~_{i,U_i}`` in the training set and
``Z~_{i,1-U_i}`` in the ghost (test) set. An experiment draws ``k1`` supersamples and ``k2``
masks for each, trains one model per (supersample, mask) and records, per pair,

* ``masks``: shape ``(k1, k2, n)`` in {0, 1};
* ``predictions``: ``(k1, k2, n, 2)`` integer class labels, or ``(k1, k2, n, 2, K)`` scores
  (reduced by ``argmax``), on ``(Z~_{i,0}, Z~_{i,1})``;
* ``losses``: ``(k1, k2, n, 2)`` in [0, 1] (0-1 loss of the predictions in the papers).

Everything is in nats; ``gap = E[test loss] - E[training loss]``. The mutual informations are
plug-in (histogram) estimates over the ``k2`` masks of each supersample, per pair (the public
estimator of Harutyunyan et al.), with two labelled departures from the papers: an optional
Miller-Madow bias correction (:class:`MIEstimator`) and bootstrap intervals over supersamples.

Mutual informations used (per pair ``i``; conditional ones per supersample ``z~``):

* f-CMI: ``I^{z~}(F_i; U_i)``, ``F_i`` the pair of predicted labels;
* e-CMI: ``I^{z~}(L~_i; U_i)``, ``L~_i`` the pair of losses;
* loss-difference MI: ``I(DL_i; U_i)``, ``DL_i = L~_{i,1} - L~_{i,0}``, and single-loss MIs
  ``I(L~_{i,0}; U_i)``, ``I(L~_{i,1}; U_i)``, all *unconditional* (pooled over the ``k1 k2``
  runs, as in Wang & Mao's code); their per-supersample values use the conditional version,
  which is larger and therefore also a valid (looser) bound.

What was checked, and against what (``[code: ...]`` in a ``source`` string marks it):

* hrayrhar/f-CMI ``modules/bound_utils.py``: the plug-in MI of the pair code ``F_i = K a + b``
  against the mask bit over the ``k2`` masks (unclipped there), and the sample-wise bound
  ``(1/n) sum_i sqrt(2 I_i)`` (``FCMI``). The full-vector form (``FCMI_FULL``) is not in that code.
* ZiqiaoWangGeothe/ld-single-CMI ``modules/bound_utils.py`` (``estimate_ecmi_bound_classification``
  and the ``estimate_{interp,kl,lg}_bound_classification`` helpers): the loss-difference bound
  ``sqrt(2 I(DL_i; U_i))``, the single-loss bound ``2 sqrt(2 I(L_i; U_i))``, ``I_SL`` as the mean
  of the two single-loss MIs, the fast-rate constraint ``e^{2 C2} + e^{-2 C2 (1 + C1)} <= 2``,
  the linear constraint ``lambda (gamma - 1) >= (e^lambda - 1 - lambda)(1 + gamma^2)`` with
  ``gamma >= 1`` (searched there on ``lambda <= 0.37``, here on ``(0, 0.5]``: same constraint,
  a superset of the feasible points), the binary-KL bound ``kl(L_S || (L_S + L_D)/2) <= I`` and
  the interpolating ``I / log 2``. That code feeds its e-CMI helpers the *prediction* MI
  ``I(F_i; U_i)``; this module uses the loss-pair MI ``I(L~_i; U_i)`` of the e-CMI definition,
  which is never larger (data processing), so both are valid and the values here are tighter.
* Not checked against the papers' theorem statements (their bodies could not be retrieved here;
  only the abstracts): equation/theorem numbers, the constant ``2/n`` of the full-vector f-CMI
  bound (taken from Steinke & Zakynthinou's ``sqrt(2 CMI / n)``) and the square-root e-CMI form
  (the f-CMI sample-wise form with the losses' MI). Each ``source`` string says which applies.

Every public function validates its arguments first (:class:`gbounds.InvalidInputError` naming
the argument): error rates in [0, 1], informations finite and ``>= 0``, counts non-negative
integers, masks in {0, 1}, no NaN anywhere. The formula helpers (``sqrt_bound``,
``ecmi_*_test_error``, ``ldcmi_fast_rate_gap``, ``mutual_information_from_counts``,
``plugin_mutual_information``) check eagerly on concrete values and at run time under
``jax.jit``/``jax.vmap`` (a host callback), so no traced call returns a number from invalid
inputs. A bound whose value comes out non-finite is reported as not applicable.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy
from jax.typing import ArrayLike

from gbounds._src import batching as _batching
from gbounds._src import results as _results
from gbounds._src.errors import (
  as_enum,
  check_binary,
  check_finite,
  check_in_unit_interval,
  check_nonnegative_int,
  check_open_unit_interval,
  check_rank,
  fail,
)
from gbounds.bounds._kl import _check_broadcast, _checked, _kl_inverse_upper

_LOG2 = math.log(2.0)


class MIEstimator(enum.IntEnum):
  """How a mutual information is estimated from a contingency table of ``N`` samples.

  Attributes:
    PLUGIN: the plug-in (maximum-likelihood) estimate
      ``sum_{a,b} p(a,b) log(p(a,b) / (p(a) p(b)))``: the estimator of all three papers.
      Biased upward by about ``(m_xy - m_x - m_y + 1) / (2N)`` nats.
    MILLER_MADOW: plug-in minus that first-order bias, with ``m`` the numbers of occupied cells
      (Miller 1955). A departure from the papers: it can be negative before clipping and
      gives smaller, less conservative bounds when ``k2`` is small.
  """
  PLUGIN = 0
  MILLER_MADOW = 1


class EcmiForm(enum.IntEnum):
  """Which e-CMI bound of Hellstrom & Durisi (2022) to evaluate.

  Attributes:
    SQRT: ``|gap| <= (1/n) sum_i E_z~ sqrt(2 I^{z~}(L~_i; U_i))``.
    LINEAR: ``E L_D <= gamma L_S + I_bar / lambda`` minimised over ``lambda > 0``,
      ``gamma >= 1`` with ``lambda (gamma - 1) >= (e^lambda - 1 - lambda)(1 + gamma^2)``.
    KL: ``kl(L_S || (L_S + E L_D) / 2) <= I_bar``, i.e.
      ``E L_D <= 2 kl^{-1}_+(L_S, I_bar) - L_S``.
    INTERPOLATING: ``E L_D <= I_bar / log 2``; needs {0, 1} losses and zero training loss.
  """
  SQRT = 0
  LINEAR = 1
  KL = 2
  INTERPOLATING = 3


class LdcmiForm(enum.IntEnum):
  """Which loss-difference / single-loss bound of Wang & Mao (2023) to evaluate.

  Attributes:
    SQRT: ``|gap| <= (1/n) sum_i sqrt(2 I(DL_i; U_i))``.
    SINGLE_LOSS: ``|gap| <= (2/n) sum_i sqrt(2 I(L~_{i,0}; U_i))``.
    INTERPOLATING: ``E L_D = (1/n) sum_i I(DL_i; U_i) / log 2`` (an equality for {0, 1} losses
      and zero training loss).
    FAST_RATE: ``gap <= C1 L_S + I_SL / C2`` minimised over ``C1, C2 > 0`` with
      ``e^{2 C2} + e^{-2 C2 (1 + C1)} <= 2``, where
      ``I_SL = (1/n) sum_i [I(L~_{i,0}; U_i) + I(L~_{i,1}; U_i)] / 2``.
  """
  SQRT = 0
  SINGLE_LOSS = 1
  INTERPOLATING = 2
  FAST_RATE = 3


class BoundName(enum.StrEnum):
  """The name of each bound of this module: the keys of :class:`BoundsReport`.

  A ``str`` enum whose values are the short names used in files and tables (``"fcmi"``,
  ``"ecmi_kl"``, ...), so ``BoundName.FCMI == "fcmi"`` and a report can be indexed by either.

  Attributes:
    FCMI: sample-wise f-CMI bound (:func:`fcmi_bound`).
    FCMI_FULL: full-vector f-CMI bound (:func:`fcmi_bound` with ``full_vector=True``).
    ECMI_SQRT: square-root e-CMI bound (:attr:`EcmiForm.SQRT`).
    ECMI_LINEAR: linear e-CMI bound (:attr:`EcmiForm.LINEAR`).
    ECMI_KL: binary-KL e-CMI bound (:attr:`EcmiForm.KL`).
    ECMI_INTERPOLATING: interpolating e-CMI bound (:attr:`EcmiForm.INTERPOLATING`).
    LDCMI_SQRT: loss-difference MI bound (:attr:`LdcmiForm.SQRT`).
    LDCMI_SINGLE_LOSS: single-loss MI bound (:attr:`LdcmiForm.SINGLE_LOSS`).
    LDCMI_INTERPOLATING: interpolating loss-difference equality (:attr:`LdcmiForm.INTERPOLATING`).
    LDCMI_FAST_RATE: fast-rate single-loss bound (:attr:`LdcmiForm.FAST_RATE`).
  """
  FCMI = "fcmi"
  FCMI_FULL = "fcmi_full"
  ECMI_SQRT = "ecmi_sqrt"
  ECMI_LINEAR = "ecmi_linear"
  ECMI_KL = "ecmi_kl"
  ECMI_INTERPOLATING = "ecmi_interpolating"
  LDCMI_SQRT = "ldcmi_sqrt"
  LDCMI_SINGLE_LOSS = "ldcmi_single_loss"
  LDCMI_INTERPOLATING = "ldcmi_interpolating"
  LDCMI_FAST_RATE = "ldcmi_fast_rate"


_SOURCES: dict[BoundName, str] = {
    BoundName.FCMI: (
        "Harutyunyan et al. 2021, arXiv 2110.01584, sample-wise f-CMI bound "
        "|gap| <= (1/n) sum_i E sqrt(2 I(F_i; U_i | z~)) [code: hrayrhar/f-CMI]"),
    BoundName.FCMI_FULL: (
        "Harutyunyan et al. 2021, arXiv 2110.01584, full-vector f-CMI bound "
        "|gap| <= E sqrt(2 I(F; U | z~) / n) (not in the public code, which computes only the "
        "sample-wise form; the constant 2/n is the one of Steinke & Zakynthinou's CMI bound, "
        "not checked against the paper's theorem text)"),
    BoundName.ECMI_SQRT: (
        "Hellstrom & Durisi 2022, NeurIPS (arXiv 2210.06422), samplewise e-CMI "
        "square-root bound |gap| <= (1/n) sum_i E sqrt(2 I(L_i; U_i | z~)) (the form of the "
        "f-CMI bound above with the losses' MI, which is at most the predictions' MI; "
        "theorem number not checked)"),
    BoundName.ECMI_LINEAR: (
        "Hellstrom & Durisi 2022, NeurIPS (arXiv 2210.06422), linear e-CMI bound, "
        "lambda (gamma - 1) >= (e^lambda - 1 - lambda)(1 + gamma^2) "
        "[code: ld-single-CMI bound_utils]"),
    BoundName.ECMI_KL: (
        "Hellstrom & Durisi 2022, NeurIPS (arXiv 2210.06422), binary-KL e-CMI bound "
        "kl(L_S || (L_S + L_D)/2) <= I_bar [code: ld-single-CMI bound_utils]"),
    BoundName.ECMI_INTERPOLATING: (
        "Hellstrom & Durisi 2022, NeurIPS (arXiv 2210.06422), interpolating "
        "bound L_D <= I_bar / log 2 [code: ld-single-CMI bound_utils]"),
    BoundName.LDCMI_SQRT: (
        "Wang & Mao 2023, ICML (arXiv 2302.02432), loss-difference MI bound "
        "|gap| <= (1/n) sum_i sqrt(2 I(DL_i; U_i)) [code: ld-single-CMI]"),
    BoundName.LDCMI_SINGLE_LOSS: (
        "Wang & Mao 2023, ICML (arXiv 2302.02432), single-loss MI bound "
        "|gap| <= (2/n) sum_i sqrt(2 I(L_i; U_i)) [code: ld-single-CMI]"),
    BoundName.LDCMI_INTERPOLATING: (
        "Wang & Mao 2023, ICML (arXiv 2302.02432), interpolating 0-1 loss "
        "L_D = (1/n) sum_i I(DL_i; U_i) / log 2 [code: ld-single-CMI]"),
    BoundName.LDCMI_FAST_RATE: (
        "Wang & Mao 2023, ICML (arXiv 2302.02432), fast-rate single-loss bound "
        "gap <= C1 L_S + I_SL / C2, e^{2C2} + e^{-2C2(1+C1)} <= 2 [code: ld-single-CMI]"),
}


# ----------------------------------------------------------------------------------------------
# Mutual information estimators (jax.numpy).


def _mi_terms(joint, cx, cy, total):
  # (1/N) sum_cells c log(N c / (cx cy)) with 0 log 0 = 0.
  safe = jnp.where(joint > 0, joint, jnp.ones_like(joint))
  return xlogy(joint, total * safe / (cx * cy))


def _mi_from_counts_np(counts: np.ndarray, estimator: MIEstimator, clip: bool) -> np.ndarray:
  """float64 numpy twin of :func:`mutual_information_from_counts` (no compilation per shape)."""
  counts = np.asarray(counts, np.float64)
  total = counts.sum(axis=(-2, -1), keepdims=True)
  cx = counts.sum(axis=-1, keepdims=True)
  cy = counts.sum(axis=-2, keepdims=True)
  safe = np.where(counts > 0, counts, 1.0)
  ratio = safe * np.where(total > 0, total, 1.0) / (np.where(cx > 0, cx, 1.0)
                                                     * np.where(cy > 0, cy, 1.0))
  tot = np.where(total > 0, total, 1.0)[..., 0, 0]
  mi = np.where(counts > 0, counts * np.log(ratio), 0.0).sum(axis=(-2, -1)) / tot
  if estimator == MIEstimator.MILLER_MADOW:
    occ = lambda c: (c > 0).sum(axis=(-2, -1))
    mi = mi - (occ(counts) - occ(cx) - occ(cy) + 1) / (2 * tot)
  return np.maximum(mi, 0.0) if clip else mi


def _finish(mi, occupied_xy, occupied_x, occupied_y, total, estimator, clip):
  if estimator == MIEstimator.MILLER_MADOW:
    mi = mi - (occupied_xy - occupied_x - occupied_y + 1) / (2 * total)
  if clip:
    mi = jnp.maximum(mi, jnp.zeros((), mi.dtype))
  return mi


def mutual_information_from_counts(counts: ArrayLike, *,
                                   estimator: MIEstimator | str = MIEstimator.PLUGIN,
                                   clip: bool = True) -> jax.Array:
  r"""Mutual information (nats) of the empirical joint distribution of a contingency table.

  .. math::
    \hat I = \sum_{a,b} \frac{c_{ab}}{N} \log\frac{N c_{ab}}{c_{a\cdot} c_{\cdot b}},
    \qquad N = \sum_{ab} c_{ab},

  minus ``(m_ab - m_a - m_b + 1) / (2N)`` for :attr:`MIEstimator.MILLER_MADOW` (``m`` the
  numbers of non-empty cells, rows and columns).

  Args:
    counts: ``(..., mx, my)`` non-negative integer counts (whole floats accepted). Negative,
      fractional or non-finite entries are refused: the plug-in and Miller-Madow estimates
      are functions of sample counts.
    estimator: plug-in (the papers) or Miller-Madow (a departure).
    clip: clip the estimate at 0.

  Returns:
    ``(...)`` estimates in nats. An all-zero table gives 0.
  """
  if np.ndim(counts) < 2:
    fail("counts", "a contingency table (..., mx, my) of rank >= 2", f"shape {np.shape(counts)}")
  counts = _checked("counts", counts, "nonnegative_count")
  return _mi_from_counts(counts, estimator=as_enum("estimator", estimator, MIEstimator),
                         clip=bool(clip))


@functools.partial(jax.jit, static_argnames=("estimator", "clip"))
def _mi_from_counts(counts, *, estimator, clip):
  counts = jnp.asarray(counts)
  if not jnp.issubdtype(counts.dtype, jnp.floating):
    counts = counts.astype(jnp.result_type(float))
  total = counts.sum(axis=(-2, -1), keepdims=True)
  cx = counts.sum(axis=-1, keepdims=True)
  cy = counts.sum(axis=-2, keepdims=True)
  safe_total = jnp.where(total > 0, total, jnp.ones_like(total))
  mi = _mi_terms(counts, jnp.where(cx > 0, cx, 1), jnp.where(cy > 0, cy, 1), safe_total)
  mi = mi.sum(axis=(-2, -1)) / safe_total[..., 0, 0]
  occ = lambda c: (c > 0).sum(axis=(-2, -1)).astype(mi.dtype)
  return _finish(mi, occ(counts), occ(cx), occ(cy), safe_total[..., 0, 0], estimator, clip)


def plugin_mutual_information(x: ArrayLike, y: ArrayLike, *,
                              estimator: MIEstimator | str = MIEstimator.PLUGIN,
                              clip: bool = True) -> jax.Array:
  r"""Plug-in mutual information (nats) between two discrete variables from paired samples.

  Samples lie along the last axis (size ``N``); leading axes are batch axes (e.g. pairs and
  supersamples). Values are compared for equality, so any discrete codes (ints or floats)
  work without knowing the alphabet. With ``c_x(j)`` the number of samples equal to ``x_j``:

  .. math::
    \hat I(X; Y) = \frac{1}{N} \sum_{j=1}^{N} \log \frac{N\, c_{xy}(j)}{c_x(j)\, c_y(j)},

  which equals the histogram formula of :func:`mutual_information_from_counts`; the numbers of
  occupied cells for Miller-Madow are ``m_x = sum_j 1 / c_x(j)``. Cost ``O(N^2)`` per batch
  element (fine for ``N = k2`` in the hundreds).

  Args:
    x: ``(..., N)`` discrete samples (finite values; NaN would equal nothing, itself included).
    y: ``(..., N)`` discrete samples, broadcast against ``x``.
    estimator: plug-in (the papers) or Miller-Madow (a departure).
    clip: clip the estimate at 0.

  Returns:
    ``(...)`` estimates in nats (float dtype of JAX's default float).
  """
  for name, v in (("x", x), ("y", y)):
    if np.ndim(v) < 1 or np.shape(v)[-1] == 0:
      fail(name, "samples (..., N) with N >= 1 along the last axis", f"shape {np.shape(v)}")
  x = _checked("x", x, "finite")
  y = _checked("y", y, "finite")
  _check_broadcast(("x", "y"), x, y)
  return _plugin_mi(x, y, estimator=as_enum("estimator", estimator, MIEstimator),
                    clip=bool(clip))


@functools.partial(jax.jit, static_argnames=("estimator", "clip"))
def _plugin_mi(x, y, *, estimator, clip):
  x, y = jnp.broadcast_arrays(jnp.asarray(x), jnp.asarray(y))
  dtype = jnp.result_type(float)
  eq_x = x[..., :, None] == x[..., None, :]
  eq_y = y[..., :, None] == y[..., None, :]
  c_x = eq_x.sum(-1).astype(dtype)
  c_y = eq_y.sum(-1).astype(dtype)
  c_xy = (eq_x & eq_y).sum(-1).astype(dtype)
  n = jnp.asarray(x.shape[-1], dtype)
  mi = jnp.mean(jnp.log(n * c_xy / (c_x * c_y)), axis=-1)
  occ = lambda c: jnp.sum(1.0 / c, axis=-1)
  return _finish(mi, occ(c_xy), occ(c_x), occ(c_y), n, estimator, clip)


# ----------------------------------------------------------------------------------------------
# Bound formulas as functions of (training error, information) (jax.numpy, jit/vmap-able).


def sqrt_bound(mi: ArrayLike) -> jax.Array:
  r"""Sample-wise square-root bound ``(1/n) sum_i sqrt(2 I_i)`` over the last axis (nats in).

  Args:
    mi: ``(..., n)`` per-pair mutual informations in nats: finite and ``>= 0`` (clip
      Miller-Madow estimates at 0 first), with ``n >= 1``.

  Returns:
    ``(...)`` bounds on ``|gap|``.
  """
  if np.ndim(mi) < 1 or np.shape(mi)[-1] == 0:
    fail("mi", "an array (..., n) of per-pair informations with n >= 1", f"shape {np.shape(mi)}")
  mi = jnp.asarray(_checked("mi", mi, "nonnegative"))
  return jnp.mean(jnp.sqrt(2 * jnp.maximum(mi, 0)), axis=-1)


def _sqrt_bound_np(mi):
  return np.mean(np.sqrt(2 * np.maximum(mi, 0)), axis=-1)


def _geomspace(lo, hi, num, dtype):
  return jnp.exp(jnp.linspace(jnp.log(jnp.asarray(lo, dtype)), jnp.log(jnp.asarray(hi, dtype)),
                              num, dtype=dtype))


def _grid_min(objective, lo, hi, num, dtype):
  """Minimises ``objective(x)`` (broadcasting ``(..., G)``) on a log grid, then refines once."""
  grid = _geomspace(lo, hi, num, dtype)
  vals = objective(grid)
  j = jnp.argmin(vals, axis=-1)
  left = grid[jnp.maximum(j - 1, 0)]
  right = grid[jnp.minimum(j + 1, num - 1)]
  t = jnp.linspace(0, 1, 257, dtype=dtype).reshape((1,) * left.ndim + (257,))
  fine = left[..., None] + (right - left)[..., None] * t
  return jnp.minimum(vals.min(-1), objective(fine).min(-1))


def _broadcast_pair(a, b, dtype):
  """``a`` and ``b`` as ``dtype``, broadcast explicitly to one shape, with a trailing grid axis
  of size 1."""
  a, b = jnp.asarray(a, dtype), jnp.asarray(b, dtype)
  shape = np.broadcast_shapes(a.shape, b.shape)
  return jnp.broadcast_to(a, shape)[..., None], jnp.broadcast_to(b, shape)[..., None]


def _batched(grid, like):
  """``grid`` (``(G,)`` or ``(..., G)``) broadcast explicitly to the batch axes of ``like``
  (``(..., 1)``), so the objectives never rely on rank promotion."""
  return jnp.broadcast_to(grid, like.shape[:-1] + grid.shape[-1:])


def _expm1_minus_x_over_x2(lam):
  # h(lambda) = (e^lambda - 1 - lambda) / lambda^2 without cancellation for small lambda.
  small = lam < 0.1
  ls = jnp.where(small, lam, jnp.zeros_like(lam))
  series = jnp.zeros_like(lam)
  fact = [math.factorial(k) for k in range(2, 13)]
  for k in range(12, 1, -1):
    series = 1.0 / fact[k - 2] + ls * series
  big = jnp.where(small, jnp.ones_like(lam), lam)
  return jnp.where(small, series, (jnp.expm1(big) - big) / big**2)


# duplicates: the argument checks have the shape of those in _kl (checked array, domain, broadcast)
# but check the supersample arrays; the shared checkers live in gbounds._src.errors.
def ecmi_linear_test_error(train_error: ArrayLike, cmi: ArrayLike) -> jax.Array:
  r"""Linear e-CMI bound on the test error (Hellstrom & Durisi 2022), optimised.

  .. math::
    \mathbb{E} L_D \le \min_{\lambda, \gamma}\; \gamma L_S + \frac{\bar I}{\lambda}
    \quad \text{s.t.}\quad \lambda > 0,\ \gamma \ge 1,\
    \lambda(\gamma - 1) \ge (e^\lambda - 1 - \lambda)(1 + \gamma^2).

  For fixed ``lambda`` the feasible ``gamma`` form an interval ``[g_lo, g_hi]`` (roots of a
  quadratic); the optimum takes ``gamma = max(1, g_lo)``, leaving a 1-D search over ``lambda``
  (log grid + one local refinement; every grid point is feasible, so the result is a valid
  bound, at most slightly above the exact minimum).

  Args:
    train_error: training error(s) ``L_S`` in [0, 1].
    cmi: average e-CMI ``I_bar = (1/n) sum_i I(L~_i; U_i | Z~_i)`` in nats, broadcast.

  Returns:
    Bound(s) on the expected test error.
  """
  train_error = _checked("train_error", train_error, "probability")
  cmi = _checked("cmi", cmi, "nonnegative")
  _check_broadcast(("train_error", "cmi"), train_error, cmi)
  return _ecmi_linear_test_error(train_error, cmi)


@jax.jit
def _ecmi_linear_test_error(train_error, cmi):
  dtype = jnp.result_type(train_error, cmi, float)
  ls, info = _broadcast_pair(train_error, cmi, dtype)

  def objective(lam):
    lam = _batched(lam, ls)
    h = _expm1_minus_x_over_x2(lam)
    s = 1 - 4 * h * lam * (1 + h * lam)  # discriminant / lambda^2
    root = jnp.sqrt(jnp.maximum(s, 0))
    g_lo = 2 * (1 + h * lam) / (1 + root)
    g_hi = (1 + root) / (2 * h * lam)
    gamma = jnp.maximum(1, g_lo)
    ok = (s >= 0) & (g_hi >= gamma)
    return jnp.where(ok, gamma * ls + info / lam, jnp.inf)

  out = _grid_min(objective, 1e-7, 0.5, 2048, dtype)
  return jnp.where(info[..., 0] == 0, ls[..., 0], out)


def ecmi_kl_test_error(train_error: ArrayLike, cmi: ArrayLike) -> jax.Array:
  r"""Binary-KL e-CMI bound on the test error (Hellstrom & Durisi 2022).

  .. math::
    \mathrm{kl}\Big(L_S \,\Big\|\, \frac{L_S + \mathbb{E} L_D}{2}\Big) \le \bar I
    \;\Longrightarrow\; \mathbb{E} L_D \le 2\,\mathrm{kl}^{-1}_{+}(L_S, \bar I) - L_S.

  Args:
    train_error: training error(s) ``L_S`` in [0, 1].
    cmi: average e-CMI ``I_bar`` in nats, broadcast.

  Returns:
    Bound(s) on the expected test error (can exceed 1 when vacuous; above 1 the value is
    ``2 - L_S`` once ``kl^{-1}_+`` saturates at 1, so it is monotone in ``L_S`` only where it
    is informative, below 1).
  """
  train_error = _checked("train_error", train_error, "probability")
  cmi = _checked("cmi", cmi, "nonnegative")
  _check_broadcast(("train_error", "cmi"), train_error, cmi)
  return _ecmi_kl_test_error(train_error, cmi)


@jax.jit
def _ecmi_kl_test_error(train_error, cmi):
  dtype = jnp.result_type(train_error, cmi, float)
  ls = jnp.asarray(train_error, dtype)
  return 2 * _kl_inverse_upper(ls, jnp.asarray(cmi, dtype)) - ls


def ldcmi_fast_rate_gap(train_error: ArrayLike, mi: ArrayLike) -> jax.Array:
  r"""Fast-rate single-loss MI bound on the gap (Wang & Mao 2023), optimised over (C1, C2).

  .. math::
    \mathrm{gap} \le \min_{C_1, C_2 > 0}\; C_1 L_S + \frac{I_{SL}}{C_2}
    \quad\text{s.t.}\quad e^{2 C_2} + e^{-2 C_2 (1 + C_1)} \le 2.

  Feasibility needs ``C2 < log(2)/2`` and ``C1 >= C1_min(C2) = -log(2 - e^{2 C2}) / (2 C2) - 1``;
  the optimum takes ``C1 = C1_min(C2)``, leaving a 1-D search over ``C2`` (log grid + local
  refinement; every grid point is feasible). With ``L_S = 0`` the infimum is
  ``2 I_SL / log 2`` (``C2 -> log(2)/2``); with ``I_SL = 0`` it is 0.

  Args:
    train_error: training error(s) ``L_S`` in [0, 1].
    mi: ``I_SL`` in nats, broadcast.

  Returns:
    Bound(s) on the expected gap (test minus training error).
  """
  train_error = _checked("train_error", train_error, "probability")
  mi = _checked("mi", mi, "nonnegative")
  _check_broadcast(("train_error", "mi"), train_error, mi)
  return _ldcmi_fast_rate_gap(train_error, mi)


@jax.jit
def _ldcmi_fast_rate_gap(train_error, mi):
  dtype = jnp.result_type(train_error, mi, float)
  ls, info = _broadcast_pair(train_error, mi, dtype)
  c2_max = _LOG2 / 2

  def objective(c2):
    c2 = _batched(c2, ls)
    c1 = jnp.maximum(0, -jnp.log1p(-jnp.expm1(2 * c2)) / (2 * c2) - 1)
    slope = jnp.where(ls > 0, c1 * jnp.where(ls > 0, ls, 1), 0)
    return slope + info / c2

  out = _grid_min(objective, 1e-7, c2_max, 2048, dtype)
  out = jnp.minimum(out, jnp.where(ls[..., 0] == 0, info[..., 0] / c2_max, jnp.inf))
  return jnp.where(info[..., 0] == 0, 0, out)


# ----------------------------------------------------------------------------------------------
# Results.


class MeasuredGap(NamedTuple):
  """Measured errors of a supersample experiment (loss units).

  Attributes:
    train_error: mean training loss over all ``k1 k2`` runs.
    test_error: mean ghost (held-out half of the supersample) loss.
    gap: ``test_error - train_error``.
    per_supersample_train: ``(k1,)`` mean training loss per supersample.
    per_supersample_test: ``(k1,)`` mean ghost loss per supersample.
  """
  train_error: float
  test_error: float
  gap: float
  per_supersample_train: np.ndarray
  per_supersample_test: np.ndarray

  to_dict = _results.namedtuple_to_dict
  from_dict = classmethod(_results.from_dict)


@dataclasses.dataclass(frozen=True)
class BoundResult(_results.ResultMixin):
  """One generalization bound evaluated on a supersample experiment.

  Attributes:
    name: which bound (:class:`BoundName`; a plain string value such as ``"fcmi"`` is coerced).
    value: bound on the expected gap ``E[L_D] - E[L_S]`` (loss units).
    test_error: bound on the expected test error = measured training error + ``value``.
    train_error: the measured training error used.
    per_supersample: ``(k1,)`` gap bounds conditional on each supersample (for the
      unconditional loss-difference bounds: their conditional, looser versions).
    source: paper, theorem/equation and how the constant was checked.
    units: ``"error"`` (loss units; the informations inside are in nats).
    applicable: False when an assumption of the bound fails (e.g. nonzero training error for an
      interpolating bound, or too few masks for the full-vector plug-in estimate); the
      value is still reported but is not a guarantee.
    note: why not applicable, or other caveats.
    interval: bootstrap ``(low, high)`` for ``value`` over resampled supersamples, or None
      (a departure from the papers).
    test_error_interval: the same for ``test_error``.
  """
  name: BoundName
  value: float
  test_error: float
  train_error: float
  per_supersample: np.ndarray
  source: str
  units: str = "error"
  applicable: bool = True
  note: str = ""
  interval: tuple[float, float] | None = None
  test_error_interval: tuple[float, float] | None = None

  def __post_init__(self):
    object.__setattr__(self, "name", _bound_name(self.name))


def _bound_name(name: BoundName | str) -> BoundName:
  try:
    return BoundName(name)
  except ValueError:
    raise KeyError(f"unknown bound name {name!r}; expected one of "
                   f"{[b.value for b in BoundName]}") from None


@dataclasses.dataclass(frozen=True)
class BoundsReport(_results.ResultMixin):
  """All bounds of :func:`cmi_bounds` beside the measured errors.

  Attributes:
    measured: the measured training/ghost errors and gap.
    bounds: one :class:`BoundResult` per bound, in a fixed order.
    estimator: the MI estimator used.
    k1, k2, n: experiment sizes.
  """
  measured: MeasuredGap
  bounds: tuple[BoundResult, ...]
  estimator: MIEstimator
  k1: int
  k2: int
  n: int

  def __getitem__(self, name: BoundName | str) -> BoundResult:
    """The bound called ``name``.

    Args:
      name: a :class:`BoundName`, or its string value (``"fcmi"``, ...) for compatibility.

    Returns:
      The :class:`BoundResult` of that bound.

    Raises:
      KeyError: ``name`` is not a bound name, or that bound is not in this report (e.g. the
        f-CMI bounds without predictions).
    """
    key = _bound_name(name)
    for b in self.bounds:
      if b.name == key:
        return b
    raise KeyError(name)

  def __contains__(self, name: object) -> bool:
    return any(b.name == name for b in self.bounds)

  @property
  def names(self) -> tuple[BoundName, ...]:
    """The :class:`BoundName` of each bound in this report, in order (a tuple)."""
    return tuple(b.name for b in self.bounds)

  def table(self) -> _results.Table:
    """The bounds as a table.

    Returns:
      A :class:`gbounds.Table` with columns ``(bound, gap bound, test-error bound, source)``,
      one row per bound in order (the name as a :class:`BoundName`); NaN where not applicable.
    """
    rows = []
    for b in self.bounds:
      gap, test = (b.value, b.test_error) if b.applicable else (math.nan, math.nan)
      rows.append((b.name, float(gap), float(test), b.source))
    return _results.Table(("bound", "gap bound", "test-error bound", "source"), tuple(rows),
                          title=f"CMI bounds (k1 = {self.k1}, k2 = {self.k2}, n = {self.n})")


# ----------------------------------------------------------------------------------------------
# Input handling.


def _check_masks(masks) -> np.ndarray:
  check_rank("masks", masks, 3)
  masks = np.asarray(masks)
  check_binary("masks", masks)
  if masks.shape[1] < 2:
    fail("masks", "at least 2 masks per supersample (k2 >= 2 along axis 1)",
         f"shape {masks.shape}")
  if masks.shape[0] < 1 or masks.shape[2] < 1:
    fail("masks", "k1 >= 1 supersamples and n >= 1 pairs", f"shape {masks.shape}")
  return masks.astype(np.int64)


def _check_pairs(name, arr, masks, rank):
  if np.ndim(arr) not in rank:
    fail(name, f"an array of rank {' or '.join(map(str, rank))} shaped (k1, k2, n, 2, ...)",
         f"shape {np.shape(arr)}")
  shape = np.shape(arr)
  if shape[3] != 2:
    fail(name, "a pair axis (axis 3) of size 2", f"shape {shape}")
  if shape[2] != masks.shape[2]:
    fail(name, f"n = {masks.shape[2]} pairs along axis 2 as in masks", f"shape {shape}")
  if shape[:2] != masks.shape[:2]:
    fail(name, f"(k1, k2) = {masks.shape[:2]} on axes 0-1 as in masks", f"shape {shape}")


def _check_losses(losses, masks) -> np.ndarray:
  _check_pairs("losses", losses, masks, (4,))
  losses = np.asarray(losses, dtype=np.float64)
  check_finite("losses", losses)
  check_in_unit_interval("losses", losses)
  return losses


def _check_predictions(predictions, masks) -> np.ndarray:
  _check_pairs("predictions", predictions, masks, (4, 5))
  predictions = np.asarray(predictions)
  if predictions.ndim == 5:
    check_finite("predictions", predictions)
    return np.argmax(predictions, axis=-1)
  if predictions.dtype.kind not in "iub":
    if not np.all(np.isfinite(predictions)) or np.any(predictions != np.round(predictions)):
      fail("predictions", "integer class labels (rank 4) or scores (rank 5)",
           f"non-integer values of dtype {predictions.dtype}")
  return predictions.astype(np.int64)


def _train_ghost(masks, losses):
  u = masks[..., None]
  train = np.take_along_axis(losses, u, axis=-1)[..., 0]
  ghost = np.take_along_axis(losses, 1 - u, axis=-1)[..., 0]
  return train, ghost


def measured_gap(masks: ArrayLike, losses: ArrayLike) -> MeasuredGap:
  r"""Training error, ghost (test) error and gap of a supersample experiment.

  ``train = mean_{runs, i} L~_{i, U_i}``, ``test = mean_{runs, i} L~_{i, 1 - U_i}``,
  ``gap = test - train`` (loss units).

  Args:
    masks: ``(k1, k2, n)`` in {0, 1}.
    losses: ``(k1, k2, n, 2)`` in [0, 1].

  Returns:
    A :class:`MeasuredGap`.
  """
  masks = _check_masks(masks)
  losses = _check_losses(losses, masks)
  train, ghost = _train_ghost(masks, losses)
  tr = train.mean(axis=(1, 2))
  te = ghost.mean(axis=(1, 2))
  return MeasuredGap(float(tr.mean()), float(te.mean()), float(te.mean() - tr.mean()), tr, te)


def _dense_codes(values: np.ndarray) -> tuple[np.ndarray, int]:
  """Per-pair integer codes ``0..m-1`` of discrete values.

  Args:
    values: ``(k1, k2, n, d)``; equal rows (over the trailing ``d``) get equal codes within a
      pair ``i`` across all supersamples and masks.

  Returns:
    ``(codes (k1, k2, n), m)`` with ``m`` the largest number of distinct values of any pair.
  """
  k1, k2, n, d = values.shape
  _, ids = np.unique(values.reshape(-1), return_inverse=True)
  ids = ids.reshape(values.shape).astype(np.int64)
  base = int(ids.max()) + 1
  key = np.zeros((k1, k2, n), np.int64)
  for j in range(d):
    key = key * base + ids[..., j]
  per_pair = np.moveaxis(key, 2, 0).reshape(n, k1 * k2)
  order = np.argsort(per_pair, axis=1, kind="stable")
  sorted_keys = np.take_along_axis(per_pair, order, axis=1)
  ranks_sorted = np.concatenate(
      [np.zeros((n, 1), np.int64), np.cumsum(np.diff(sorted_keys, axis=1) != 0, axis=1)], axis=1)
  ranks = np.empty_like(ranks_sorted)
  np.put_along_axis(ranks, order, ranks_sorted, axis=1)
  codes = np.moveaxis(ranks.reshape(n, k1, k2), 0, 2)
  return codes, int(ranks.max()) + 1


def _pair_counts(masks: np.ndarray, values: np.ndarray) -> np.ndarray:
  """Contingency tables of (value_i, U_i) per supersample and pair: ``(k1, n, m, 2)``."""
  k1, k2, n = masks.shape
  if values.ndim == 3:
    values = values[..., None]
  codes, m = _dense_codes(values)
  ss = np.arange(k1)[:, None, None]
  pair = np.arange(n)[None, None, :]
  idx = ((ss * n + pair) * m + codes) * 2 + masks
  counts = np.bincount(idx.reshape(-1), minlength=k1 * n * m * 2)
  return counts.reshape(k1, n, m, 2).astype(np.float64)


def samplewise_mi(masks: ArrayLike, values: ArrayLike, *, pooled: bool = False,
                  estimator: MIEstimator | str = MIEstimator.PLUGIN,
                  clip: bool = True) -> np.ndarray:
  r"""Per-pair plug-in MI ``I(V_i; U_i)`` (nats) between a discrete variable and the mask bit.

  Conditional (``pooled=False``): ``I^{z~}(V_i; U_i)`` from the ``k2`` masks of each supersample,
  shape ``(k1, n)``. Unconditional (``pooled=True``): ``I(V_i; U_i)`` from all ``k1 k2`` runs,
  shape ``(n,)``.

  Args:
    masks: ``(k1, k2, n)`` in {0, 1}.
    values: ``(k1, k2, n)`` or ``(k1, k2, n, d)`` discrete values per pair (e.g. the pair of
      predicted labels ``(k1, k2, n, 2)``; rows compared for equality).
    pooled: pool the supersamples (unconditional MI).
    estimator: :class:`MIEstimator` (plug-in or Miller-Madow).
    clip: clip at 0.

  Returns:
    MI estimates in nats.
  """
  masks = _check_masks(masks)
  values = np.asarray(values)
  if values.shape[:3] != masks.shape:
    fail("values", f"leading shape {masks.shape} as masks", f"shape {values.shape}")
  estimator = as_enum("estimator", estimator, MIEstimator)
  counts = _pair_counts(masks, values)
  if pooled:
    counts = counts.sum(0)
  return _mi_from_counts_np(counts, estimator, clip)


def _full_vector_mi(masks, predictions, estimator, clip) -> np.ndarray:
  """``I^{z~}(F; U)`` per supersample with F all 2n predictions and U all n mask bits."""
  k1, k2, n = masks.shape
  out = np.empty(k1)
  for s in range(k1):
    _, f = np.unique(predictions[s].reshape(k2, -1), axis=0, return_inverse=True)
    _, u = np.unique(masks[s], axis=0, return_inverse=True)
    table = np.zeros((int(f.max()) + 1, int(u.max()) + 1))
    np.add.at(table, (f.reshape(-1), u.reshape(-1)), 1.0)
    out[s] = float(_mi_from_counts_np(table, estimator, clip))
  return out


# ----------------------------------------------------------------------------------------------
# Statistics shared by all bounds; each bound is a function of supersample weights.


@dataclasses.dataclass(frozen=True)
class _Stats:
  k1: int
  k2: int
  n: int
  estimator: MIEstimator
  clip: bool
  train_ss: np.ndarray  # (k1,)
  binary_losses: bool
  zero_train: bool
  counts: dict[str, np.ndarray]  # name -> (k1, n, m, 2)
  mi_cond: dict[str, np.ndarray]  # name -> (k1, n) conditional MI
  mi_full: np.ndarray | None  # (k1,)

  def mi_weighted(self, name: str, weights: np.ndarray) -> np.ndarray:
    """MI from counts pooled with integer multiplicities ``weights (R, k1)`` -> ``(R, n)``."""
    c = self.counts[name]

    def chunk(w):
      pooled = np.tensordot(w, c, axes=(1, 0))
      return np.asarray(mutual_information_from_counts(pooled, estimator=self.estimator,
                                                       clip=self.clip))

    # 128 weightings at a time (memory). The last chunk is deliberately not padded to 128: XLA
    # reduces a batch of another shape in another order, which moved bootstrap quantiles by an
    # ulp; unpadded chunks keep every number as it was (one extra compilation at most).
    return np.concatenate([chunk(weights[a:b])
                           for a, b in _batching.chunk_bounds(weights.shape[0], 128)], axis=0)


def _make_stats(masks, losses, predictions, estimator, clip, *, need_f=True,
                need_full=False) -> _Stats:
  k1, k2, n = masks.shape
  train, _ = _train_ghost(masks, losses)
  counts = {
      "pair_loss": _pair_counts(masks, losses),
      "delta_loss": _pair_counts(masks, losses[..., 1] - losses[..., 0]),
      "loss0": _pair_counts(masks, losses[..., 0]),
      "loss1": _pair_counts(masks, losses[..., 1]),
  }
  if predictions is not None and need_f:
    counts["pred"] = _pair_counts(masks, predictions)
  mi_cond = {k: _mi_from_counts_np(v, estimator, clip) for k, v in counts.items()}
  mi_full = None
  if predictions is not None and need_full:
    mi_full = _full_vector_mi(masks, predictions, estimator, clip)
  return _Stats(k1, k2, n, estimator, clip, train.mean(axis=(1, 2)),
                bool(np.all((losses == 0) | (losses == 1))), bool(np.all(train == 0)),
                counts, mi_cond, mi_full)


def _padded(fn, *args):
  """Calls a jitted elementwise formula on 1-D inputs padded to a power-of-two length >= 8.

  Not a chunked loop (everything is one call): the bucket lets repeated calls with different
  numbers of bootstrap resamples reuse one compilation. The padding itself is
  :func:`gbounds._src.batching.pad_rows` (repeat the first row); the formulas are elementwise,
  so the padded entries never affect the ones returned.
  """
  size = args[0].shape[0]
  bucket = max(8, 1 << (size - 1).bit_length())
  padded = _batching.pad_rows(tuple(np.asarray(a) for a in args), bucket)
  return np.asarray(fn(*padded))[:size]


def _normalise(weights):
  return weights / weights.sum(axis=1, keepdims=True)


def _gap_fn(name: BoundName) -> Callable[[_Stats, np.ndarray], tuple[np.ndarray, np.ndarray]]:
  """Returns ``f(stats, weights (R, k1)) -> (gap bounds (R,), test-error bounds (R,))``."""

  def train_of(st, w):
    return np.clip(_normalise(w) @ st.train_ss, 0.0, 1.0)  # a mean of errors, up to rounding

  def from_gap(st, w, gap):
    tr = train_of(st, w)
    return gap, tr + gap

  def from_test(st, w, test):
    tr = train_of(st, w)
    return test - tr, test

  def cond_mean(st, key, w):
    return _normalise(w) @ st.mi_cond[key].mean(axis=1)

  fns: dict[BoundName, Callable] = {
      BoundName.FCMI: lambda st, w: from_gap(
          st, w, _normalise(w) @ _sqrt_bound_np(st.mi_cond["pred"])),
      BoundName.FCMI_FULL: lambda st, w: from_gap(
          st, w, _normalise(w) @ np.sqrt(2 * np.maximum(st.mi_full, 0) / st.n)),
      BoundName.ECMI_SQRT: lambda st, w: from_gap(
          st, w, _normalise(w) @ _sqrt_bound_np(st.mi_cond["pair_loss"])),
      BoundName.ECMI_LINEAR: lambda st, w: from_test(st, w, _padded(
          _ecmi_linear_test_error, train_of(st, w), cond_mean(st, "pair_loss", w))),
      BoundName.ECMI_KL: lambda st, w: from_test(st, w, _padded(
          _ecmi_kl_test_error, train_of(st, w), cond_mean(st, "pair_loss", w))),
      BoundName.ECMI_INTERPOLATING: lambda st, w: from_test(
          st, w, cond_mean(st, "pair_loss", w) / _LOG2),
      BoundName.LDCMI_SQRT: lambda st, w: from_gap(
          st, w, _sqrt_bound_np(st.mi_weighted("delta_loss", w))),
      BoundName.LDCMI_SINGLE_LOSS: lambda st, w: from_gap(
          st, w, 2 * _sqrt_bound_np(st.mi_weighted("loss0", w))),
      BoundName.LDCMI_INTERPOLATING: lambda st, w: from_test(
          st, w, st.mi_weighted("delta_loss", w).mean(axis=1) / _LOG2),
      BoundName.LDCMI_FAST_RATE: lambda st, w: from_gap(st, w, _padded(
          _ldcmi_fast_rate_gap, train_of(st, w),
          0.5 * (st.mi_weighted("loss0", w) + st.mi_weighted("loss1", w)).mean(axis=1))),
  }
  return fns[name]


def _applicability(name: BoundName, st: _Stats) -> tuple[bool, str]:
  if name in (BoundName.ECMI_INTERPOLATING, BoundName.LDCMI_INTERPOLATING):
    if not st.binary_losses:
      return False, "needs {0, 1} losses"
    if not st.zero_train:
      return False, "needs zero training loss in every run"
  if name == BoundName.FCMI_FULL:
    cells = 2.0 ** st.n
    if st.k2 < 4 * cells:
      return False, (f"plug-in I(F; U) over {st.k2} masks of {cells:.3g} possible values of U is "
                     "biased (capped at log k2); needs k2 >= 4 * 2^n")
  return True, ""


def _evaluate(name: BoundName, st: _Stats, *, bootstrap: int, confidence: float,
              seed: int) -> BoundResult:
  fn = _gap_fn(name)
  # One evaluation for all weightings (one compilation of the jitted formulas): the point
  # estimate (all supersamples), each supersample alone, then the bootstrap resamples.
  weights = [np.ones((1, st.k1)), np.eye(st.k1)]
  if bootstrap > 0:
    rng = np.random.default_rng(seed)
    weights.append(rng.multinomial(st.k1, np.full(st.k1, 1.0 / st.k1),
                                   size=bootstrap).astype(np.float64))
  gaps, tests = fn(st, np.concatenate(weights))
  gap, test = gaps[:1], tests[:1]
  per_ss = gaps[1:1 + st.k1]
  applicable, note = _applicability(name, st)
  if not (np.isfinite(gap[0]) and np.isfinite(test[0])):  # never a guarantee from NaN/inf
    applicable, note = False, (note + "; " if note else "") + "non-finite value"
  interval: tuple[float, float] | None = None
  test_interval: tuple[float, float] | None = None
  if bootstrap > 0:
    g_b, t_b = gaps[1 + st.k1:], tests[1 + st.k1:]
    alpha = (1 - confidence) / 2
    q = [alpha, 1 - alpha]
    g_lo, g_hi = np.quantile(g_b, q)
    t_lo, t_hi = np.quantile(t_b, q)
    interval = (float(g_lo), float(g_hi))
    test_interval = (float(t_lo), float(t_hi))
  return BoundResult(
      name=name, value=float(gap[0]), test_error=float(test[0]),
      train_error=float(st.train_ss.mean()), per_supersample=np.asarray(per_ss),
      source=_SOURCES[name], applicable=applicable, note=note, interval=interval,
      test_error_interval=test_interval)


def _common(masks, losses, estimator, bootstrap, confidence):
  masks = _check_masks(masks)
  losses = _check_losses(losses, masks)
  estimator = as_enum("estimator", estimator, MIEstimator)
  if isinstance(bootstrap, bool) or np.ndim(bootstrap) != 0:
    fail("bootstrap", "a non-negative integer number of resamples", repr(bootstrap))
  check_nonnegative_int("bootstrap", bootstrap)
  if isinstance(confidence, bool) or np.ndim(confidence) != 0:
    fail("confidence", "a level in the open interval (0, 1)", repr(confidence))
  check_open_unit_interval("confidence", confidence)
  return masks, losses, estimator


def fcmi_bound(masks: ArrayLike, predictions: ArrayLike, losses: ArrayLike, *,
               full_vector: bool = False,
               estimator: MIEstimator | str = MIEstimator.PLUGIN, clip: bool = True,
               bootstrap: int = 0, confidence: float = 0.95, seed: int = 0) -> BoundResult:
  r"""f-CMI bound of Harutyunyan et al. (2021), arXiv 2110.01584.

  Sample-wise form (the one their experiments compute):

  .. math::
    |\mathrm{gap}| \le \frac{1}{n}\sum_{i=1}^{n}
        \mathbb{E}_{\tilde Z}\sqrt{2\, I^{\tilde Z}(F_i; U_i)},

  with ``F_i`` the pair of predicted labels on ``(Z~_{i,0}, Z~_{i,1})`` and the MI estimated by
  plug-in over the ``k2`` masks of each supersample. Full-vector form (``full_vector=True``):
  ``|gap| <= E sqrt(2 I^{z~}(F; U) / n)`` with ``F`` all ``2n`` predictions. Its plug-in
  estimate is over ``2^n x K^{2n}`` cells and is capped at ``log k2``: it is meaningful only
  for tiny ``n`` (flagged not applicable unless ``k2 >= 4 * 2^n``).

  Args:
    masks: ``(k1, k2, n)`` in {0, 1}.
    predictions: ``(k1, k2, n, 2)`` class labels or ``(k1, k2, n, 2, K)`` scores.
    losses: ``(k1, k2, n, 2)`` in [0, 1] (for the training error of the test-error bound).
    full_vector: evaluate the full-vector instead of the sample-wise form.
    estimator: :class:`MIEstimator` (plug-in = the papers; Miller-Madow = a departure).
    clip: clip MI estimates at 0.
    bootstrap: number of bootstrap resamples of the supersamples for a percentile interval
      (0: none). A departure from the papers; with small ``k1`` the interval is crude.
    confidence: level of the bootstrap interval.
    seed: seed of the bootstrap resampling.

  Returns:
    A :class:`BoundResult` (loss units).
  """
  masks, losses, estimator = _common(masks, losses, estimator, bootstrap, confidence)
  predictions = _check_predictions(predictions, masks)
  st = _make_stats(masks, losses, predictions, estimator, clip, need_f=not full_vector,
                   need_full=full_vector)
  name = BoundName.FCMI_FULL if full_vector else BoundName.FCMI
  return _evaluate(name, st, bootstrap=int(bootstrap),
                   confidence=confidence, seed=seed)


def ecmi_bound(masks: ArrayLike, losses: ArrayLike, *, form: EcmiForm | str = EcmiForm.SQRT,
               estimator: MIEstimator | str = MIEstimator.PLUGIN, clip: bool = True,
               bootstrap: int = 0, confidence: float = 0.95, seed: int = 0) -> BoundResult:
  r"""Evaluated-CMI (e-CMI) bounds of Hellstrom & Durisi (2022), NeurIPS.

  With ``I^{z~}_i = I^{z~}(L~_i; U_i)`` (pair of losses vs mask bit, per supersample) and
  ``I_bar = (1/n) sum_i E_z~ I^{z~}_i``:

  * SQRT: ``|gap| <= (1/n) sum_i E_z~ sqrt(2 I^{z~}_i)``;
  * LINEAR: ``E L_D <= min gamma L_S + I_bar / lambda`` s.t.
    ``lambda (gamma - 1) >= (e^lambda - 1 - lambda)(1 + gamma^2)``, ``gamma >= 1``
    (:func:`ecmi_linear_test_error`);
  * KL: ``E L_D <= 2 kl^{-1}_+(L_S, I_bar) - L_S`` (:func:`ecmi_kl_test_error`);
  * INTERPOLATING: ``E L_D <= I_bar / log 2`` ({0, 1} losses, zero training loss).

  Per-supersample values apply each formula to that supersample's ``L_S`` and ``I^{z~}``.

  Args:
    masks: ``(k1, k2, n)`` in {0, 1}.
    losses: ``(k1, k2, n, 2)`` in [0, 1].
    form: which bound (:class:`EcmiForm`).
    estimator: :class:`MIEstimator` (plug-in = the papers; Miller-Madow = a departure).
    clip: clip MI estimates at 0.
    bootstrap: number of bootstrap resamples of the supersamples for a percentile interval
      (0: none). A departure from the papers; with small ``k1`` the interval is crude.
    confidence: level of the bootstrap interval.
    seed: seed of the bootstrap resampling.

  Returns:
    A :class:`BoundResult` (loss units).
  """
  masks, losses, estimator = _common(masks, losses, estimator, bootstrap, confidence)
  form = as_enum("form", form, EcmiForm)
  st = _make_stats(masks, losses, None, estimator, clip)
  name = {EcmiForm.SQRT: BoundName.ECMI_SQRT, EcmiForm.LINEAR: BoundName.ECMI_LINEAR,
          EcmiForm.KL: BoundName.ECMI_KL,
          EcmiForm.INTERPOLATING: BoundName.ECMI_INTERPOLATING}[form]
  return _evaluate(name, st, bootstrap=int(bootstrap), confidence=confidence, seed=seed)


# duplicates: ecmi_bound and ldcmi_bound document the same shared arguments (masks, losses,
# estimator, bootstrap ...) because each is a public entry point; the computation is shared
# (_common, _make_stats, _evaluate).
def ldcmi_bound(masks: ArrayLike, losses: ArrayLike, *, form: LdcmiForm | str = LdcmiForm.SQRT,
                estimator: MIEstimator | str = MIEstimator.PLUGIN, clip: bool = True,
                bootstrap: int = 0, confidence: float = 0.95, seed: int = 0) -> BoundResult:
  r"""Loss-difference and single-loss MI bounds of Wang & Mao (2023), ICML, arXiv 2302.02432.

  With unconditional MIs estimated by plug-in over all ``k1 k2`` runs (as in their code):

  * SQRT: ``|gap| <= (1/n) sum_i sqrt(2 I(DL_i; U_i))``, ``DL_i = L~_{i,1} - L~_{i,0}``;
  * SINGLE_LOSS: ``|gap| <= (2/n) sum_i sqrt(2 I(L~_{i,0}; U_i))``;
  * INTERPOLATING: ``E L_D = (1/n) sum_i I(DL_i; U_i) / log 2`` ({0, 1} losses, zero training
    loss; an equality, so the estimate may fall on either side of the measured error);
  * FAST_RATE: ``gap <= min C1 L_S + I_SL / C2`` s.t. ``e^{2C2} + e^{-2C2(1+C1)} <= 2``, with
    ``I_SL = (1/n) sum_i [I(L~_{i,0}; U_i) + I(L~_{i,1}; U_i)] / 2``
    (:func:`ldcmi_fast_rate_gap`).

  Per-supersample values use the conditional MIs ``I^{z~}(. ; U_i)`` (valid, looser).

  Args:
    masks: ``(k1, k2, n)`` in {0, 1}.
    losses: ``(k1, k2, n, 2)`` in [0, 1].
    form: which bound (:class:`LdcmiForm`).
    estimator: :class:`MIEstimator` (plug-in = the papers; Miller-Madow = a departure).
    clip: clip MI estimates at 0.
    bootstrap: number of bootstrap resamples of the supersamples for a percentile interval
      (0: none). A departure from the papers; with small ``k1`` the interval is crude.
    confidence: level of the bootstrap interval.
    seed: seed of the bootstrap resampling.

  Returns:
    A :class:`BoundResult` (loss units).
  """
  masks, losses, estimator = _common(masks, losses, estimator, bootstrap, confidence)
  form = as_enum("form", form, LdcmiForm)
  st = _make_stats(masks, losses, None, estimator, clip)
  name = {LdcmiForm.SQRT: BoundName.LDCMI_SQRT, LdcmiForm.SINGLE_LOSS: BoundName.LDCMI_SINGLE_LOSS,
          LdcmiForm.INTERPOLATING: BoundName.LDCMI_INTERPOLATING,
          LdcmiForm.FAST_RATE: BoundName.LDCMI_FAST_RATE}[form]
  return _evaluate(name, st, bootstrap=int(bootstrap), confidence=confidence, seed=seed)


_ALL = tuple(BoundName)  # the order of cmi_bounds' report
_FCMI_NAMES = (BoundName.FCMI, BoundName.FCMI_FULL)


def _losses_from(labels_or_losses, predictions, masks):
  arr = np.asarray(labels_or_losses)
  if arr.ndim == 4:
    return arr
  if arr.ndim == 3:
    if predictions is None:
      fail("labels_or_losses", "losses (k1, k2, n, 2) when predictions is None",
           f"shape {arr.shape}")
    k1, _, n = masks.shape
    if arr.shape != (k1, n, 2):
      fail("labels_or_losses", f"labels of shape (k1, n, 2) = {(k1, n, 2)}", f"shape {arr.shape}")
    check_nonnegative_int("labels_or_losses", arr)
    return (predictions != arr[:, None]).astype(np.float64)
  fail("labels_or_losses", "labels (k1, n, 2) or losses (k1, k2, n, 2)", f"shape {arr.shape}")


def cmi_bounds(masks: ArrayLike, predictions: ArrayLike | None, labels_or_losses: ArrayLike, *,
               full_vector: bool | None = None,
               estimator: MIEstimator | str = MIEstimator.PLUGIN, clip: bool = True,
               bootstrap: int = 0, confidence: float = 0.95, seed: int = 0) -> BoundsReport:
  r"""Every CMI bound of this module on one supersample experiment, beside the measured gap.

  Bounds (see :func:`fcmi_bound`, :func:`ecmi_bound`, :func:`ldcmi_bound`): ``fcmi``,
  ``fcmi_full``, ``ecmi_sqrt``, ``ecmi_linear``, ``ecmi_kl``, ``ecmi_interpolating``,
  ``ldcmi_sqrt``, ``ldcmi_single_loss``, ``ldcmi_interpolating``, ``ldcmi_fast_rate``. The
  f-CMI ones need ``predictions``; each test-error bound is the measured training error plus
  the gap bound.

  Args:
    masks: ``(k1, k2, n)`` in {0, 1}.
    predictions: ``(k1, k2, n, 2)`` labels, ``(k1, k2, n, 2, K)`` scores, or None (no f-CMI).
    labels_or_losses: true labels of the supersample pairs ``(k1, n, 2)`` (0-1 loss of the
      predictions), or losses ``(k1, k2, n, 2)`` in [0, 1].
    full_vector: also evaluate the full-vector f-CMI (default: only when ``n <= 12``).
    estimator: :class:`MIEstimator` (plug-in = the papers; Miller-Madow = a departure).
    clip: clip MI estimates at 0.
    bootstrap: number of bootstrap resamples of the supersamples for a percentile interval
      (0: none). A departure from the papers; with small ``k1`` the interval is crude.
    confidence: level of the bootstrap interval.
    seed: seed of the bootstrap resampling.

  Returns:
    A :class:`BoundsReport`; ``report.table()`` gives rows
    ``(name, bound on gap, bound on test error, source)``.
  """
  masks = _check_masks(masks)
  if predictions is not None:
    predictions = _check_predictions(predictions, masks)
  losses = _losses_from(labels_or_losses, predictions, masks)
  masks, losses, estimator = _common(masks, losses, estimator, bootstrap, confidence)
  k1, k2, n = masks.shape
  if full_vector is None:
    full_vector = bool(n <= 12)  # n is an int (bool() only tells pyright: shape entries are Any)
  st = _make_stats(masks, losses, predictions, estimator, clip,
                   need_full=predictions is not None and full_vector)
  names = [nm for nm in _ALL
           if not (nm in _FCMI_NAMES and predictions is None)
           and not (nm == BoundName.FCMI_FULL and not full_vector)]
  bounds = tuple(_evaluate(nm, st, bootstrap=int(bootstrap), confidence=confidence,
                           seed=seed) for nm in names)
  train, ghost = _train_ghost(masks, losses)
  tr, te = train.mean(axis=(1, 2)), ghost.mean(axis=(1, 2))
  measured = MeasuredGap(float(tr.mean()), float(te.mean()), float(te.mean() - tr.mean()), tr, te)
  return BoundsReport(measured, bounds, estimator, k1, k2, n)
