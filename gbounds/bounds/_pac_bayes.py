"""PAC-Bayes certificates for a trained network, for comparison with the CMI bounds.

A PAC-Bayes bound holds with probability ``1 - delta`` over the draw of the ``n`` training
examples, simultaneously for every posterior ``Q``, given a prior ``P`` chosen before seeing
them. It bounds the test error ``e_D(Q) = E_{w ~ Q} P_{(x,y) ~ D}[h_w(x) != y]`` of the
*stochastic* classifier through its training error ``e_S(Q)`` and ``KL(Q || P)`` (nats).
With ``B = KL(Q || P) + ln(2 sqrt(n) / delta)``:

* McAllester (1999; Maurer's constant): ``e_D <= e_S + sqrt(B / (2n))`` (may exceed 1);
* PAC-Bayes-kl (Seeger 2002; Maurer 2004): ``kl(e_S || e_D) <= B / n``, so
  ``e_D <= kl^{-1}(e_S, B / n)`` (:func:`gbounds.bounds.kl_inverse_upper`);
* Catoni (2007, Thm. 1.2.6), for a fixed ``C > 0``:
  ``e_D <= (1 - exp(-C e_S - (KL + ln(1/delta)) / n)) / (1 - exp(-C))``; minimised over a
  grid of ``C`` values at the union-bound cost ``ln |grid|`` added to ``ln(1/delta)``.

Certificates on a network (Dziugaite & Roy, UAI 2017, sec. 3-4): the posterior is the Gaussian
``Q = N(w_trained, s^2 I)``, the prior ``P = N(w_init, s^2 I)`` is centred at the random
initialisation (independent of the data), so ``KL(Q || P) = ||w_trained - w_init||^2 / (2 s^2)``.
The scale ``s`` is chosen on a grid of ``G`` values after seeing the data, so each bound pays
``ln G`` in its confidence term (a union bound over the priors of the grid). ``e_S(Q)`` has no
closed form; it is estimated from ``m`` weight draws, ``e_hat``, and bounded by a second
kl-inverse, ``e_S(Q) <= kl^{-1}(e_hat, ln(2 / delta') / m)`` with probability ``1 - delta'``
over the draws (Langford & Caruana 2002, as in Dziugaite & Roy). The certificates then hold
with probability ``1 - delta - delta'``. The scale is selected on a separate, smaller set of
draws, so the final estimate is not biased by the selection.

References:
  McAllester, "PAC-Bayesian model averaging", COLT 1999.
  Maurer, "A note on the PAC Bayesian theorem", arXiv cs/0411099, 2004.
  Catoni, "PAC-Bayesian supervised classification", IMS Lecture Notes 56, 2007.
  Dziugaite & Roy, "Computing nonvacuous generalization bounds for deep (stochastic) neural
  networks with many more parameters than training data", UAI 2017 (arXiv 1703.11008).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax import nnx
from jax.typing import ArrayLike

import gbounds.models
from gbounds._src import batching as _batching
from gbounds._src import errors as _errors
from gbounds._src import progress as _progress
from gbounds._src import results as _results
from gbounds.bounds._kl import _check_broadcast, _checked, _kl_inverse_upper

# Catoni's C grid: 1/8 ... 64 in factors of 2 (the cost ln 10 = 2.3 nats is paid in the bound).
CATONI_GRID: tuple[float, ...] = tuple(2.0 ** k for k in range(-3, 7))
# Posterior/prior scales s (weight-space std) tried by default.
SIGMA_GRID: tuple[float, ...] = tuple(float(v) for v in np.geomspace(1e-3, 1.0, 13))


def _dtype(*xs):
  dtype = jnp.result_type(*xs)
  if not jnp.issubdtype(dtype, jnp.floating):
    dtype = jnp.result_type(float)
  return dtype


def pac_bayes_confidence(kl: ArrayLike, n: ArrayLike, delta: ArrayLike,
                         log_grid_size: ArrayLike = 0.0) -> jax.Array:
  r"""The complexity term ``B = KL + ln(2 sqrt(n) / delta) + ln G`` in nats.

  ``ln(2 sqrt(n) / delta)`` is Maurer's (2004) constant of the PAC-Bayes-kl bound; ``ln G`` pays
  for a union bound over ``G`` priors. Broadcasts elementwise; jit/vmap-safe (checks at run time).

  Args:
    kl: ``KL(Q || P)`` in nats, ``>= 0``.
    n: number of training examples (integers ``>= 1``).
    delta: confidence parameter in (0, 1).
    log_grid_size: ``ln G`` for a union bound over ``G`` priors (0: a single prior).

  Returns:
    ``B`` in nats, with the broadcast shape of the inputs.
  """
  kl = _checked("kl", kl, "budget")
  n = _checked("n", n, "count")
  delta = _checked("delta", delta, "open_unit")
  log_grid_size = _checked("log_grid_size", log_grid_size, "nonnegative")
  _check_broadcast(("kl", "n", "delta", "log_grid_size"), kl, n, delta, log_grid_size)
  return _pac_bayes_confidence(kl, n, delta, log_grid_size)


@jax.jit
def _pac_bayes_confidence(kl, n, delta, log_grid_size):
  dtype = _dtype(kl, delta, float(0))
  n = jnp.asarray(n, dtype)
  return (jnp.asarray(kl, dtype) + jnp.log(2 * jnp.sqrt(n) / jnp.asarray(delta, dtype))
          + jnp.asarray(log_grid_size, dtype))


# The domain of each argument of the PAC-Bayes bounds (see gbounds.bounds._kl._checked).
_BOUND_DOMAINS = {"empirical_error": "probability", "kl": "budget", "n": "count",
                  "delta": "open_unit", "c": "positive", "log_grid_size": "nonnegative"}


def _checked_bound_inputs(**named):
  """Checks each argument in its domain and that all broadcast together; returns them."""
  out = {name: _checked(name, value, _BOUND_DOMAINS[name]) for name, value in named.items()}
  _check_broadcast(tuple(out), *out.values())
  return out


def mcallester_bound(empirical_error: ArrayLike, kl: ArrayLike, n: ArrayLike, delta: ArrayLike,
                     log_grid_size: ArrayLike = 0.0) -> jax.Array:
  r"""McAllester's PAC-Bayes bound (with Maurer's ``ln(2 sqrt n / delta)``).

  .. math::
    e_D(Q) \le e_S(Q) + \sqrt{\frac{\mathrm{KL}(Q\|P) + \ln(2\sqrt{n}/\delta) + \ln G}{2n}}.

  Not clipped: a value above 1 is returned as is (a vacuous certificate).

  Args:
    empirical_error: ``e_S(Q)`` in [0, 1].
    kl: ``KL(Q || P)`` in nats.
    n: number of training examples.
    delta: confidence in (0, 1).
    log_grid_size: union-bound cost ``ln G`` (nats).

  Returns:
    The bound on ``e_D(Q)`` (broadcast shape of the inputs).
  """
  return _mcallester_bound(**_checked_bound_inputs(
      empirical_error=empirical_error, kl=kl, n=n, delta=delta, log_grid_size=log_grid_size))


@jax.jit
def _mcallester_bound(empirical_error, kl, n, delta, log_grid_size):
  b = _pac_bayes_confidence(kl, n, delta, log_grid_size)
  e = jnp.asarray(empirical_error, b.dtype)
  return e + jnp.sqrt(b / (2 * jnp.asarray(n, b.dtype)))


# duplicates: catoni_bound documents and checks the same (empirical error, KL, n, delta) arguments
# as mcallester_bound; the checks are shared (_checked_bound_inputs), the formulas differ.
def pac_bayes_kl_bound(empirical_error: ArrayLike, kl: ArrayLike, n: ArrayLike,
                       delta: ArrayLike, log_grid_size: ArrayLike = 0.0) -> jax.Array:
  r"""The PAC-Bayes-kl bound (Seeger 2002; Maurer 2004), inverted exactly.

  .. math::
    e_D(Q) \le \mathrm{kl}^{-1}\Big(e_S(Q),\;
      \frac{\mathrm{KL}(Q\|P) + \ln(2\sqrt{n}/\delta) + \ln G}{n}\Big),

  with :func:`gbounds.bounds.kl_inverse_upper`. Always in [0, 1].

  Args:
    empirical_error: ``e_S(Q)`` in [0, 1].
    kl: ``KL(Q || P)`` in nats.
    n: number of training examples.
    delta: confidence in (0, 1).
    log_grid_size: union-bound cost ``ln G`` (nats).

  Returns:
    The bound on ``e_D(Q)`` (broadcast shape of the inputs), holding with probability
    ``>= 1 - delta`` over the sample.
  """
  return _pac_bayes_kl_bound(**_checked_bound_inputs(
      empirical_error=empirical_error, kl=kl, n=n, delta=delta, log_grid_size=log_grid_size))


@jax.jit
def _pac_bayes_kl_bound(empirical_error, kl, n, delta, log_grid_size):
  b = _pac_bayes_confidence(kl, n, delta, log_grid_size)
  e = jnp.asarray(empirical_error, b.dtype)
  return _kl_inverse_upper(e, b / jnp.asarray(n, b.dtype))


def catoni_bound(empirical_error: ArrayLike, kl: ArrayLike, n: ArrayLike, delta: ArrayLike,
                 c: ArrayLike, log_grid_size: ArrayLike = 0.0) -> jax.Array:
  r"""Catoni's bound (2007, Thm. 1.2.6) for a fixed ``C > 0``.

  .. math::
    e_D(Q) \le \frac{1 - \exp\big(-C e_S(Q) - (\mathrm{KL}(Q\|P) + \ln(1/\delta) + \ln G)/n\big)}
                    {1 - \exp(-C)}.

  For a grid of ``C`` values, evaluate each with ``log_grid_size = ln |grid|`` (plus any other
  union-bound cost) and take the minimum. Always in [0, 1 / (1 - e^{-C})].

  Args:
    empirical_error: ``e_S(Q)`` in [0, 1].
    kl: ``KL(Q || P)`` in nats.
    n: number of training examples.
    delta: confidence in (0, 1).
    c: Catoni's ``C > 0``.
    log_grid_size: union-bound cost ``ln G`` (nats).

  Returns:
    The bound on ``e_D(Q)`` (broadcast shape of the inputs).
  """
  return _catoni_bound(**_checked_bound_inputs(
      empirical_error=empirical_error, kl=kl, n=n, delta=delta, c=c, log_grid_size=log_grid_size))


@jax.jit
def _catoni_bound(empirical_error, kl, n, delta, c, log_grid_size):
  dtype = _dtype(empirical_error, kl, c, float(0))
  e, kl, c = (jnp.asarray(v, dtype) for v in (empirical_error, kl, c))
  n = jnp.asarray(n, dtype)
  b = kl - jnp.log(jnp.asarray(delta, dtype)) + jnp.asarray(log_grid_size, dtype)
  return -jnp.expm1(-c * e - b / n) / -jnp.expm1(-c)


def mc_error_upper_bound(mc_error: ArrayLike, num_samples: ArrayLike,
                         delta: ArrayLike) -> jax.Array:
  r"""Upper confidence bound on ``e_S(Q)`` from ``m`` Monte Carlo weight draws.

  .. math::
    e_S(Q) \le \mathrm{kl}^{-1}\big(\hat e_m, \ln(2/\delta') / m\big)

  with probability ``1 - delta'`` over the draws (Langford & Caruana 2002; Dziugaite & Roy 2017,
  sec. 3). ``mc_error`` is the mean, over the draws, of each draw's training error.

  Args:
    mc_error: ``e_hat_m`` in [0, 1].
    num_samples: number ``m >= 1`` of weight draws.
    delta: ``delta'`` in (0, 1).

  Returns:
    The upper confidence bound on ``e_S(Q)`` (broadcast shape of the inputs).
  """
  mc_error = _checked("mc_error", mc_error, "probability")
  num_samples = _checked("num_samples", num_samples, "count")
  delta = _checked("delta", delta, "open_unit")
  _check_broadcast(("mc_error", "num_samples", "delta"), mc_error, num_samples, delta)
  return _mc_error_upper_bound(mc_error, num_samples, delta)


@jax.jit
def _mc_error_upper_bound(mc_error, num_samples, delta):
  dtype = _dtype(mc_error, float(0))
  m = jnp.asarray(num_samples, dtype)
  return _kl_inverse_upper(jnp.asarray(mc_error, dtype),
                          jnp.log(2 / jnp.asarray(delta, dtype)) / m)


def gaussian_kl(mean_q: Any, mean_p: Any, var_q: ArrayLike, var_p: ArrayLike) -> jax.Array:
  r"""``KL(N(mu_q, var_q I) || N(mu_p, var_p I))`` in nats, over parameter pytrees.

  .. math::
    \mathrm{KL} = \frac12 \sum_j \Big[\frac{v_q}{v_p} + \frac{(\mu_{q,j} - \mu_{p,j})^2}{v_p}
      - 1 + \ln\frac{v_p}{v_q}\Big].

  ``var_q`` and ``var_p`` are scalars (isotropic) or pytrees of the parameters' structure
  (diagonal covariances). Non-finite means and variances that are not finite and positive are
  rejected (eagerly, or at run time under a JAX transformation).

  Args:
    mean_q: posterior mean, a pytree of arrays.
    mean_p: prior mean, a pytree of the structure and leaf shapes of ``mean_q``.
    var_q: posterior variance(s) (> 0), a scalar or a pytree matching the means.
    var_p: prior variance(s) (> 0), a scalar or a pytree matching the means.

  Returns:
    The KL divergence in nats (a scalar array).
  """
  lq = jax.tree_util.tree_leaves(mean_q)
  lp = jax.tree_util.tree_leaves(mean_p)
  if jax.tree_util.tree_structure(mean_q) != jax.tree_util.tree_structure(mean_p):
    _errors.fail("mean_p", "a pytree with the structure of mean_q",
                 jax.tree_util.tree_structure(mean_p))

  def leaves(v, like):
    if jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(v)) and np.ndim(v) == 0:
      return [v] * len(like)
    return jax.tree_util.tree_leaves(v)

  vqs, vps = leaves(var_q, lq), leaves(var_p, lq)
  if len(vqs) != len(lq) or len(vps) != len(lq):
    _errors.fail("var_q" if len(vqs) != len(lq) else "var_p",
                 f"a scalar or a pytree of {len(lq)} leaves matching mean_q",
                 f"{len(vqs) if len(vqs) != len(lq) else len(vps)} leaves")
  total = 0.0
  for j, (a, b, vq, vp) in enumerate(zip(lq, lp, vqs, vps)):
    if np.shape(a) != np.shape(b):
      _errors.fail("mean_p", f"leaf {j} of shape {np.shape(a)} as in mean_q",
                   f"shape {np.shape(b)}")
    a = _checked("mean_q", a, "finite")
    b = _checked("mean_p", b, "finite")
    vq = _checked("var_q", vq, "positive")
    vp = _checked("var_p", vp, "positive")
    a, b = jnp.asarray(a), jnp.asarray(b)
    for name, v in (("var_q", vq), ("var_p", vp)):
      try:
        np.broadcast_shapes(np.shape(v), np.shape(a))
      except ValueError:
        _errors.fail(name, f"a variance broadcastable to leaf {j} of shape {np.shape(a)}",
                     f"shape {np.shape(v)}")
    vq = jnp.broadcast_to(jnp.asarray(vq, a.dtype), a.shape)
    vp = jnp.broadcast_to(jnp.asarray(vp, a.dtype), a.shape)
    total = total + 0.5 * jnp.sum(vq / vp + (a - b) ** 2 / vp - 1 + jnp.log(vp / vq))
  return jnp.asarray(total)


# ----------------------------------------------------------------------------- certificates


class CertificateName(enum.StrEnum):
  """The three certificates of :class:`PacBayesCertificate` (its field names).

  Attributes:
    MCALLESTER: McAllester's bound with Maurer's constant (:func:`mcallester_bound`).
    PAC_BAYES_KL: the PAC-Bayes-kl bound (:func:`pac_bayes_kl_bound`).
    CATONI: Catoni's bound, ``C`` on a grid (:func:`catoni_bound`).
  """
  MCALLESTER = "mcallester"
  PAC_BAYES_KL = "pac_bayes_kl"
  CATONI = "catoni"


_CERTIFICATE_SOURCES: dict[CertificateName, str] = {
    CertificateName.MCALLESTER: ("McAllester 1999 / Maurer 2004: e_S + sqrt((KL + "
                                 "ln(2 sqrt n / delta) + ln G) / 2n)"),
    CertificateName.PAC_BAYES_KL: ("Seeger 2002 / Maurer 2004: kl^-1(e_S, (KL + "
                                   "ln(2 sqrt n / delta) + ln G) / n)"),
    CertificateName.CATONI: "Catoni 2007 Thm 1.2.6, C on a grid (union bound)",
}


@dataclasses.dataclass(frozen=True)
class SigmaSelection(_results.ResultMixin):
  """One scale of the grid, as evaluated for the selection.

  Attributes:
    sigma: posterior and prior std ``s``.
    kl: ``||w - w0||^2 / (2 s^2)`` (nats).
    selection_error: the stochastic classifier's training error on the selection draws.
    selection_bound: the PAC-Bayes-kl bound with ``selection_error`` plugged in (used to
      choose ``s``; not itself a certificate).
  """
  sigma: float
  kl: float
  selection_error: float
  selection_bound: float


@dataclasses.dataclass(frozen=True)
class PacBayesCertificate(_results.ResultMixin):
  """PAC-Bayes certificates of a Gaussian posterior around the trained weights.

  All errors are 0-1 errors; ``kl`` and the confidence terms are in nats. Each certificate
  holds with probability at least ``1 - delta - delta_mc``.

  Attributes:
    n: training examples.
    num_params: number of weights ``d``.
    sigma: the selected std ``s`` of ``Q = N(w, s^2 I)`` and ``P = N(w0, s^2 I)``.
    distance_sq: ``||w - w0||^2``.
    kl: ``KL(Q || P)`` (nats).
    grid_size: ``G`` scales tried (``ln G`` is paid in every bound).
    delta, delta_mc: confidence of the PAC-Bayes bound and of the Monte Carlo bound.
    mc_samples: weight draws behind ``mc_error``.
    mc_error: Monte Carlo estimate of the stochastic training error ``e_S(Q)``.
    empirical_error_bound: ``kl^{-1}(mc_error, ln(2/delta_mc)/m) >= e_S(Q)``.
    deterministic_train_error: training error of ``w`` itself.
    stochastic_test_error: Monte Carlo test error of ``Q`` (NaN without a test set).
    mcallester, pac_bayes_kl, catoni: the certificates on ``e_D(Q)``.
    catoni_c: the ``C`` that attains ``catoni``.
    selection: the grid, as evaluated.
  """
  n: int
  num_params: int
  sigma: float
  distance_sq: float
  kl: float
  grid_size: int
  delta: float
  delta_mc: float
  mc_samples: int
  mc_error: float
  empirical_error_bound: float
  deterministic_train_error: float
  stochastic_test_error: float
  mcallester: float
  pac_bayes_kl: float
  catoni: float
  catoni_c: float
  selection: tuple[SigmaSelection, ...]

  @property
  def best(self) -> float:
    """The tightest of the three certificates (a bound on ``e_D(Q)``, a float)."""
    return min(self.mcallester, self.pac_bayes_kl, self.catoni)

  def vacuous(self, name: CertificateName | str) -> bool:
    """Whether a certificate says nothing about a 0-1 error.

    Args:
      name: a :class:`CertificateName` (or its string value, e.g. ``"mcallester"``).

    Returns:
      True when that certificate is at least 1.
    """
    return getattr(self, CertificateName(name).value) >= 1.0

  def rows(self) -> list[dict[str, Any]]:
    """One dict per certificate.

    Returns:
      ``[{"name": CertificateName, "test_error_bound", "gap_bound", "vacuous", "source"}]``:
      the bound on the test error, the implied gap bound (bound minus the Monte Carlo
      training error of Q), whether it is vacuous, and its source.
    """
    return [{"name": k, "test_error_bound": float(getattr(self, k.value)),
             "gap_bound": float(getattr(self, k.value)) - self.mc_error,
             "vacuous": self.vacuous(k), "source": src}
            for k, src in _CERTIFICATE_SOURCES.items()]

  def table(self) -> _results.Table:
    """The certificates as a table.

    Returns:
      A :class:`gbounds.Table` with columns ``(certificate, test-error bound, gap bound,
      vacuous, source)``, one row per :class:`CertificateName`.
    """
    cols = ("certificate", "test-error bound", "gap bound", "vacuous", "source")
    rows = tuple((r["name"], r["test_error_bound"], r["gap_bound"], r["vacuous"], r["source"])
                 for r in self.rows())
    return _results.Table(cols, rows, title=(
        f"PAC-Bayes certificates of N(w, {self.sigma:.3g}^2 I) (n = {self.n}, "
        f"probability >= {1 - self.delta - self.delta_mc:.3g})"))

  def to_dict(self) -> dict[str, Any]:
    """This result as a JSON-ready dict, plus ``"rows"`` (:meth:`rows`, ignored by
    :meth:`from_dict`).

    Returns:
      The fields (``selection`` as a list of dicts) and ``rows``.
    """
    d = _results.to_dict(self)
    d["rows"] = _results.encode(self.rows())
    return d


def _flat(params) -> jax.Array:
  return jnp.concatenate([jnp.ravel(v) for v in jax.tree_util.tree_leaves(params)])


@functools.lru_cache(maxsize=64)
def _stochastic_error_fn(apply_fn: Callable, batch: int) -> Callable:
  """The compiled ``(params, x, y, sigma, keys (m,)) -> (m,)`` 0-1 errors of the draws
  ``w + sigma eps`` on ``(x, y)``.

  Cached on the static pieces (the model function and the ``lax.map`` batch size), so repeated
  certificates with the same ``apply_fn`` reuse one program per shape; weights, data and the
  scale are arguments, never closed-over constants.
  """

  def one(params, x, y, sigma, key):
    leaves, treedef = jax.tree_util.tree_flatten(params)
    ks = jax.random.split(key, len(leaves))
    noisy = [w + sigma.astype(w.dtype) * jax.random.normal(k, w.shape, w.dtype)
             for w, k in zip(leaves, ks)]
    p = jax.tree_util.tree_unflatten(treedef, noisy)
    logits = apply_fn(p, x)
    # A draw whose logits are not finite has no prediction: counted as an error (conservative).
    wrong = (jnp.argmax(logits, axis=-1) != y) | ~jnp.all(jnp.isfinite(logits), axis=-1)
    return jnp.mean(wrong)

  @jax.jit
  def errors(params, x, y, sigma, keys):
    return jax.lax.map(lambda k: one(params, x, y, sigma, k), keys, batch_size=batch)

  return errors


def _mc_errors(fn, params, x, y, sigma, key, m, dtype, batch, callback=None):
  """``m`` draws' 0-1 errors, ``4 * batch`` keys per call of the compiled ``fn`` (the last call
  padded by :func:`gbounds._src.batching.chunked_map`, padding dropped)."""
  size = batch * 4
  # Fewer draws than one call takes are padded up to it too: every call has one shape.
  keys = _batching.pad_rows(jax.random.split(key, m), max(size, m))
  s = jnp.asarray(sigma, dtype)
  tick = None if callback is None else (lambda done, _: callback(min(done, m), m))
  out = _batching.chunked_map(lambda ks: np.asarray(fn(params, x, y, s, ks)), keys,
                              chunk_size=size, callback=tick,
                              concat=lambda outs: np.concatenate(outs))
  return out[:m]


def _model(model: Any, params: Any) -> tuple[Callable, Any]:
  """``(apply_fn, params)`` from a model argument (see :func:`pac_bayes_certificate`)."""
  if isinstance(model, gbounds.models.ModelFn):
    return model.apply_fn, (model.params if params is None else params)
  if isinstance(model, (nn.Module, nnx.Module)):
    if isinstance(model, nn.Module) and params is None:
      _errors.fail("params", "the trained weights of the Linen module", None)
    mf = gbounds.models.as_model_fn(model, params=params)
    return mf.apply_fn, mf.params
  if not callable(model):
    _errors.fail("model", "a Linen module (with params), an NNX module, a "
                 "gbounds.models.ModelFn, or a callable apply_fn(params, x) -> logits",
                 type(model).__name__)
  if params is None:
    _errors.fail("params", "the trained weights for apply_fn(params, x)", None)
  return model, params


def _checked_inputs(model: Any, params: Any, init_params: Any, x_train: Any, y_train: Any,
                    x_test: Any, y_test: Any
                    ) -> tuple[Callable, Any, np.ndarray, np.ndarray, np.ndarray | None,
                               np.ndarray | None, int]:
  """The checks every certificate makes on its model, weights and data.

  Returns ``(apply_fn, params, x_train, y_train, x_test, y_test, num_classes)`` (data as numpy
  arrays) or raises :class:`gbounds.InvalidInputError` naming the argument: data empty,
  non-finite or of mismatched lengths or example shapes; ``init_params`` not shaped like
  ``params``; non-finite weights (NaN weights would give KL = nan and a plausible error rate, the
  argmax of NaN logits being class 0); a model that does not give ``(batch, K)`` logits on
  ``x_train``; labels outside ``[0, K)``.
  """
  apply_fn, params = _model(model, params)
  x_train = np.asarray(x_train)
  y_train = np.asarray(y_train)
  _errors.check_nonempty("x_train", x_train)
  _errors.check_rank("y_train", y_train, 1)
  _errors.check_same_leading(("x_train", "y_train"), x_train, y_train)
  _errors.check_finite("x_train", x_train)
  if (x_test is None) != (y_test is None):
    _errors.fail("x_test and y_test", "both given or both None",
                 "only " + ("x_test" if y_test is None else "y_test"))
  if x_test is not None:
    x_test, y_test = np.asarray(x_test), np.asarray(y_test)
    _errors.check_nonempty("x_test", x_test)
    _errors.check_rank("y_test", y_test, 1)
    _errors.check_same_leading(("x_test", "y_test"), x_test, y_test)
    _errors.check_finite("x_test", x_test)
    if np.shape(x_test)[1:] != np.shape(x_train)[1:]:
      _errors.fail("x_test", f"examples of shape {np.shape(x_train)[1:]} as in x_train",
                   f"shape {np.shape(x_test)[1:]}")
  if jax.tree_util.tree_structure(params) != jax.tree_util.tree_structure(init_params):
    _errors.fail("init_params", "a pytree with the structure of params",
                 jax.tree_util.tree_structure(init_params))
  for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(init_params)):
    if np.shape(a) != np.shape(b):
      _errors.fail("init_params", "leaves with the shapes of params", f"{np.shape(b)} vs "
                   f"{np.shape(a)}")
  if not jax.tree_util.tree_leaves(params):
    _errors.fail("params", "a pytree with at least one array", "an empty pytree")
  # No certificate from non-finite quantities: NaN/inf weights would give KL = nan and a
  # plausible-looking error rate (argmax of NaN logits is class 0).
  _errors.check_finite_tree("params", params)
  _errors.check_finite_tree("init_params", init_params)
  # Labels against the model's outputs (an out-of-range label is never predicted: error 1.0).
  try:
    out = jax.eval_shape(apply_fn, params, jnp.asarray(x_train[:1]))
  except Exception as e:  # noqa: BLE001 -- any model/input mismatch, reported with its message
    _errors.fail("apply_fn", f"a model that accepts inputs of shape {np.shape(x_train)[1:]}",
                 f"{type(e).__name__}: {str(e)[:200]}")
  if not hasattr(out, "shape") or len(out.shape) != 2 or out.shape[0] != 1:
    _errors.fail("apply_fn", "logits of shape (batch, K)",
                 f"{getattr(out, 'shape', type(out).__name__)} for a batch of 1")
  num_classes = int(out.shape[-1])
  _errors.check_labels("y_train", y_train, num_classes)
  if y_test is not None:
    _errors.check_labels("y_test", y_test, num_classes)
  return apply_fn, params, x_train, y_train, x_test, y_test, num_classes


def pac_bayes_certificate(model: Any, /, params: Any, init_params: Any, x_train: ArrayLike,
                          y_train: ArrayLike, *, x_test: ArrayLike | None = None,
                          y_test: ArrayLike | None = None,
                          sigmas: Sequence[float] | np.ndarray = SIGMA_GRID, delta: float = 0.025,
                          delta_mc: float = 0.01, mc_samples: int = 200,
                          selection_samples: int = 10,
                          catoni_grid: Sequence[float] | np.ndarray = CATONI_GRID,
                          batch_size: int = 4, seed: int = 0,
                          callback: _progress.ProgressCallback | None = None
                          ) -> PacBayesCertificate:
  """McAllester, PAC-Bayes-kl and Catoni certificates of ``Q = N(params, s^2 I)``.

  The prior is ``P = N(init_params, s^2 I)``; ``init_params`` must not depend on the training
  data (the network's random initialisation, as in Dziugaite & Roy 2017). For each ``s`` in
  ``sigmas`` the stochastic training error is estimated on ``selection_samples`` draws and
  the ``s`` with the smallest PAC-Bayes-kl value is kept; its training error is then
  re-estimated on ``mc_samples`` fresh draws and bounded by a kl-inverse at confidence
  ``delta_mc``. Every certificate includes the union-bound cost ``ln len(sigmas)`` (Catoni also
  ``ln len(catoni_grid)``) and holds with probability ``>= 1 - delta - delta_mc``.

  Dziugaite & Roy (2017), sec. 3-4; the bounds are :func:`mcallester_bound`,
  :func:`pac_bayes_kl_bound` and :func:`catoni_bound` with ``KL(Q || P) = ||w - w0||^2 / (2 s^2)``
  and ``e_S(Q)`` replaced by :func:`mc_error_upper_bound` (nats inside, 0-1 errors out).

  Args:
    model: the network, in any form :func:`gbounds.models.as_model_fn` takes: a Linen module
      (with ``params``), an NNX module (``params=None`` takes its current ``nnx.Param`` state),
      a :class:`gbounds.models.ModelFn` (``params=None`` takes its ``params``), or a plain
      ``apply_fn(params, x) -> (batch, K)`` logits callable (with ``params``). Positional only.
      Compiled once per ``(apply_fn, batch_size)``: pass the same callable to reuse it.
    params: trained weights (posterior mean), or None where ``model`` carries them.
    init_params: prior mean, the same pytree structure as the (resolved) ``params``.
    x_train, y_train: the ``n`` training examples the network was trained on (int labels).
    x_test, y_test: optional test set for the stochastic classifier's test error.
    sigmas: grid of scales ``s``.
    delta, delta_mc: confidence parameters.
    mc_samples: fresh weight draws for the final Monte Carlo bound.
    selection_samples: draws per grid point for the selection.
    catoni_grid: values of Catoni's ``C``.
    batch_size: weight draws evaluated at once (memory).
    seed: seed of the draws.
    callback: ``callback(done, total)`` in weight draws.

  Returns:
    :class:`PacBayesCertificate`.

  Raises:
    gbounds.InvalidInputError: before any draw, naming the argument, when ``params``,
      ``init_params``, ``x_train`` or ``x_test`` hold NaN/inf, the model's logits on
      ``x_train`` are not finite, a label lies outside the model's ``K`` outputs, the two
      trees differ, or a setting is out of its domain. (A weight draw whose logits are not
      finite is counted as a misclassification, which can only loosen the certificates.)
  """
  apply_fn, params, x_train, y_train, x_test, y_test, _ = _checked_inputs(
      model, params, init_params, x_train, y_train, x_test, y_test)
  sigmas = np.asarray(sigmas, np.float64)
  _errors.check_nonempty("sigmas", sigmas)
  _errors.check_rank("sigmas", sigmas, 1)
  _errors.check_positive("sigmas", sigmas)
  _errors.check_open_unit_interval("delta", delta)
  _errors.check_open_unit_interval("delta_mc", delta_mc)
  if float(delta) + float(delta_mc) >= 1:
    _errors.fail("delta + delta_mc", "a total failure probability below 1",
                 float(delta) + float(delta_mc))
  for name, v in (("mc_samples", mc_samples), ("selection_samples", selection_samples),
                  ("batch_size", batch_size)):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer, float, np.floating)) or (
        not math.isfinite(v) or int(v) != v or v < 1):
      _errors.fail(name, "a positive integer", repr(v))
  mc_samples, selection_samples, batch_size = (int(mc_samples), int(selection_samples),
                                               int(batch_size))
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
    _errors.fail("seed", "an integer >= 0", repr(seed))
  if callback is not None and not callable(callback):
    _errors.fail("callback", "a callable callback(done, total) or None", type(callback).__name__)
  catoni_grid = np.asarray(catoni_grid, np.float64)
  _errors.check_nonempty("catoni_grid", catoni_grid)
  _errors.check_rank("catoni_grid", catoni_grid, 1)
  _errors.check_positive("catoni_grid", catoni_grid)
  # Labels are arrays (len() below; a scalar fails here as before), never a bare Python number.
  y_train = y_train.astype(np.int64)  # pyright: ignore[reportAttributeAccessIssue]
  if y_test is not None:
    y_test = y_test.astype(np.int64)  # pyright: ignore[reportAttributeAccessIssue]
  n = len(y_train)
  w = _flat(params)
  dtype = w.dtype
  dist_sq = float(sum(np.sum((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
                      for a, b in zip(jax.tree_util.tree_leaves(params),
                                      jax.tree_util.tree_leaves(init_params))))
  if not math.isfinite(dist_sq):
    _errors.fail("params", "weights at a finite distance from init_params",
                 f"||params - init_params||^2 = {dist_sq}")
  num_params = int(w.size)
  log_g = math.log(len(sigmas))
  xj, yj = jnp.asarray(x_train), jnp.asarray(y_train)
  logits = apply_fn(params, xj)
  if not bool(jnp.all(jnp.isfinite(logits))):
    _errors.fail("params", "a model whose outputs on x_train are finite",
                 "non-finite logits")
  det = float(jnp.mean(jnp.argmax(logits, axis=-1) != yj))
  fn = _stochastic_error_fn(apply_fn, batch_size)
  key = jax.random.key(seed)
  total = len(sigmas) * selection_samples + mc_samples * (1 if x_test is None else 2)
  done = [0]

  def tick(k):
    done[0] += k
    _progress.notify(callback, done[0], total)

  selection = []
  for j, s in enumerate(sigmas):
    errs = _mc_errors(fn, params, xj, yj, s, jax.random.fold_in(key, j), selection_samples, dtype,
                      batch_size)
    tick(selection_samples)
    kl = float(dist_sq / (2 * s * s))
    e = float(np.mean(errs))
    b = float(pac_bayes_kl_bound(np.float64(e), np.float64(kl), n, np.float64(delta), log_g))
    selection.append(SigmaSelection(float(s), kl, e, b))
  best = min(selection, key=lambda r: (r.selection_bound, -r.sigma))
  sigma = best.sigma
  kl = best.kl
  final_key = jax.random.fold_in(key, 10_000)
  errs = _mc_errors(fn, params, xj, yj, sigma, final_key, mc_samples, dtype, batch_size)
  tick(mc_samples)
  mc_error = float(np.mean(errs))
  e_ub = float(mc_error_upper_bound(np.float64(mc_error), mc_samples, np.float64(delta_mc)))
  test_err = math.nan
  if x_test is not None:
    test_err = float(np.mean(_mc_errors(fn, params, jnp.asarray(x_test), jnp.asarray(y_test),
                                        sigma, jax.random.fold_in(key, 20_000), mc_samples,
                                        dtype, batch_size)))
    tick(mc_samples)
  f64 = np.float64
  mca = float(mcallester_bound(f64(e_ub), f64(kl), n, f64(delta), log_g))
  pbkl = float(pac_bayes_kl_bound(f64(e_ub), f64(kl), n, f64(delta), log_g))
  cat_all = np.asarray(catoni_bound(f64(e_ub), f64(kl), n, f64(delta), catoni_grid,
                                    log_g + math.log(len(catoni_grid))))
  j = int(np.argmin(cat_all))
  for name, v in (("mcallester", mca), ("pac_bayes_kl", pbkl), ("catoni", cat_all[j])):
    if not math.isfinite(v):  # cannot happen on validated inputs; never report it as a bound
      raise ArithmeticError(f"pac_bayes_certificate: the {name} certificate is {v} "
                            f"(kl {kl}, empirical bound {e_ub}); please report this.")
  return PacBayesCertificate(
      n=n, num_params=num_params, sigma=sigma, distance_sq=dist_sq, kl=kl,
      grid_size=len(sigmas), delta=float(delta), delta_mc=float(delta_mc),
      mc_samples=int(mc_samples), mc_error=mc_error, empirical_error_bound=e_ub,
      deterministic_train_error=det, stochastic_test_error=test_err, mcallester=mca,
      pac_bayes_kl=pbkl, catoni=float(cat_all[j]), catoni_c=float(catoni_grid[j]),
      selection=tuple(selection))


__all__ = [
    "CATONI_GRID", "SIGMA_GRID", "CertificateName", "PacBayesCertificate", "SigmaSelection",
    "catoni_bound",
    "gaussian_kl", "mc_error_upper_bound", "mcallester_bound", "pac_bayes_certificate",
    "pac_bayes_confidence", "pac_bayes_kl_bound",
]
