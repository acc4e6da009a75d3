"""Differentiable PAC-Bayes training objectives and the held-out (test-set) bound.

With ``e`` the empirical risk of the stochastic predictor ``Q`` under a loss in [0, 1], ``n``
examples, confidence ``delta`` and ``G`` priors in a union bound, let

.. math::
  C = \\frac{\\mathrm{KL}(Q\\|P) + \\ln(2\\sqrt n/\\delta) + \\ln G}{n}.

All four objectives below are upper bounds on the risk ``e_D(Q)`` that hold *on the same event*
as the PAC-Bayes-kl bound ``kl(e || e_D) <= C`` (Seeger 2002, Maurer 2004): each follows from it
by a deterministic relaxation, so they hold simultaneously and the kl form is the tightest.

* ``classic`` (McAllester 1999 with Maurer's constant, Pinsker): ``e + sqrt(C / 2)``;
* ``quad`` (Perez-Ortiz et al., JMLR 2021, eq. 8; from ``kl(e||p) >= (p - e)^2 / (2p)``):
  ``(sqrt(e + C/2) + sqrt(C/2))^2``;
* ``lambda`` (Thiemann et al., ALT 2017, Thm 3), for every ``lambda`` in (0, 2):
  ``e / (1 - lambda/2) + C / (lambda (1 - lambda/2))``; its minimiser is
  ``lambda* = 2 / (sqrt(2 e / C + 1) + 1)``;
* ``kl``: ``kl^{-1}(e, C)`` (:func:`gbounds.bounds.kl_inverse_upper`), differentiated
  implicitly: with ``p = kl^{-1}(q, c)``, ``dp/dc = p (1 - p) / (p - q)`` and
  ``dp/dq = p (1 - p) ln(p (1 - q) / (q (1 - p))) / (p - q)``.

The held-out bound on a fixed classifier with ``k`` errors on ``m`` examples it never saw is the
binomial tail inversion (Langford, JMLR 2005, Thm 3.3):
``sup{p : P[Binom(m, p) <= k] >= delta}``, the Clopper-Pearson upper limit, which equals
the ``1 - delta`` quantile of ``Beta(k + 1, m - k)``.

References:
  Perez-Ortiz, Rivasplata, Shawe-Taylor, Szepesvari, "Tighter risk certificates for neural
  networks", JMLR 22(227), 2021.
  Thiemann, Igel, Wintenberger, Seldin, "A strongly quasiconvex PAC-Bayesian bound", ALT 2017.
  Langford, "Tutorial on practical prediction theory for classification", JMLR 6, 2005.
"""

from __future__ import annotations

import enum
import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special
from jax.typing import ArrayLike

from gbounds._src import errors as _errors
from gbounds.bounds._kl import _kl_inverse_upper


class Objective(enum.StrEnum):
  """The differentiable PAC-Bayes objectives (see the module docstring).

  Attributes:
    CLASSIC: ``e + sqrt(C/2)`` (McAllester / Maurer).
    QUAD: ``(sqrt(e + C/2) + sqrt(C/2))^2`` (Perez-Ortiz et al. 2021).
    LAMBDA: ``e/(1 - l/2) + C/(l (1 - l/2))`` at the optimal ``l`` (Thiemann et al. 2017).
    KL: ``kl^{-1}(e, C)`` (Seeger 2002; Maurer 2004).
  """
  CLASSIC = "classic"
  QUAD = "quad"
  LAMBDA = "lambda"
  KL = "kl"


@jax.custom_jvp
def kl_inverse_smooth(q: jax.Array, c: jax.Array) -> jax.Array:
  """``kl^{-1}(q, c)`` with the implicit-function derivatives (module docstring); unchecked,
  for use inside objectives (``q`` in [0, 1], ``c >= 0``)."""
  return _kl_inverse_upper(q, c)


@kl_inverse_smooth.defjvp
def _kl_inverse_smooth_jvp(primals, tangents):
  q, c = primals
  dq, dc = tangents
  p = kl_inverse_smooth(q, c)
  tiny = jnp.finfo(p.dtype).tiny
  gap = jnp.maximum(p - q, jnp.sqrt(jnp.finfo(p.dtype).eps) * jnp.maximum(p, tiny))
  pq = p * (1 - p)
  qc = jnp.clip(q, tiny, 1 - jnp.finfo(p.dtype).eps)
  pc = jnp.clip(p, tiny, 1 - jnp.finfo(p.dtype).eps)
  d_dq = pq * (jnp.log(pc) + jnp.log1p(-qc) - jnp.log(qc) - jnp.log1p(-pc)) / gap
  d_dc = pq / gap
  return p, d_dq * dq + d_dc * dc


def complexity(kl: ArrayLike, n: ArrayLike, delta: ArrayLike, log_grid_size: ArrayLike
               ) -> jax.Array:
  """``C = (KL + ln(2 sqrt(n) / delta) + ln G) / n`` (unchecked, differentiable in ``kl``).

  Args:
    kl: ``KL(Q || P)`` in nats.
    n: examples behind the empirical risk.
    delta: confidence.
    log_grid_size: ``ln G`` of the union bound over priors.

  Returns:
    ``C``, in the dtype of ``kl``.
  """
  kl = jnp.asarray(kl)
  dt = kl.dtype
  n = jnp.asarray(n, dt)
  return (kl + jnp.log(2 * jnp.sqrt(n) / jnp.asarray(delta, dt))
          + jnp.asarray(log_grid_size, dt)) / n


def optimal_lambda(risk: ArrayLike, c: ArrayLike) -> jax.Array:
  """Thiemann et al.'s minimiser ``2 / (sqrt(2 e / C + 1) + 1)`` of the lambda objective.

  Args:
    risk: empirical risk ``e`` in [0, 1].
    c: the complexity ``C > 0``.

  Returns:
    ``lambda*`` in (0, 1].
  """
  risk, c = jnp.asarray(risk), jnp.asarray(c)
  return 2.0 / (jnp.sqrt(2.0 * risk / c + 1.0) + 1.0)


def objective_value(objective: Objective | str, risk: jax.Array, kl: jax.Array, n: ArrayLike,
                    delta: ArrayLike, log_grid_size: ArrayLike = 0.0) -> jax.Array:
  """A PAC-Bayes objective (an upper bound on the risk, module docstring), differentiable.

  Args:
    objective: an :class:`Objective`.
    risk: empirical risk ``e`` of the stochastic predictor, in [0, 1].
    kl: ``KL(Q || P)`` in nats.
    n: examples behind ``risk``.
    delta: confidence in (0, 1).
    log_grid_size: ``ln G`` for a union bound over ``G`` priors.

  Returns:
    The objective, a scalar in the dtype of ``risk`` (``lambda`` uses the optimal ``lambda``,
    not differentiated through, as in Thiemann et al.'s alternating minimisation).
  """
  objective = _errors.as_enum("objective", objective, Objective)
  risk = jnp.asarray(risk)
  c = complexity(jnp.asarray(kl, risk.dtype), n, delta, log_grid_size)
  if objective is Objective.CLASSIC:
    return risk + jnp.sqrt(c / 2)
  if objective is Objective.QUAD:
    return (jnp.sqrt(risk + c / 2) + jnp.sqrt(c / 2)) ** 2
  if objective is Objective.LAMBDA:
    lam = jax.lax.stop_gradient(optimal_lambda(risk, c))
    return risk / (1 - lam / 2) + c / (lam * (1 - lam / 2))
  return kl_inverse_smooth(jnp.clip(risk, 0.0, 1.0), c)


def heldout_bound(errors: int, m: int, delta: float) -> float:
  """The binomial tail inversion: an upper bound on a fixed classifier's error.

  ``sup{p : P[Binom(m, p) <= errors] >= delta}`` (Langford 2005, Thm 3.3), the Clopper-Pearson
  upper limit ``Beta(errors + 1, m - errors)`` quantile ``1 - delta`` (1 when ``errors = m``).
  Valid with probability ``>= 1 - delta`` over ``m`` examples drawn independently of the
  classifier.

  Args:
    errors: misclassified examples, an integer in ``[0, m]``.
    m: held-out examples, ``>= 1``.
    delta: confidence in (0, 1).

  Returns:
    The bound, a float in (0, 1].

  Raises:
    gbounds.InvalidInputError: naming the argument, when one is out of its domain.
  """
  _errors.check_int("m", m, 1)
  _errors.check_int("errors", errors, 0, int(m))
  _errors.check_open_unit_interval("delta", delta)
  k, m = int(errors), int(m)
  if k >= m:
    return 1.0
  return float(scipy.special.betaincinv(k + 1, m - k, 1.0 - float(delta)))


def mc_term(mc_error: float, units: int, delta_mc: float) -> float:
  """The Monte Carlo upper bound ``kl^{-1}(e_hat, ln(2/delta') / N)`` on the Gibbs error.

  ``e_hat`` is the mean of ``N`` independent losses in [0, 1] whose common mean is the Gibbs
  training error (each a fresh weight draw on examples drawn uniformly with replacement), so
  Hoeffding's (1963, Thm 1) Chernoff bound ``P[e_hat <= mu - t] <= exp(-N kl(mu - t || mu))``
  applies; ``ln(2/delta')`` is the two-sided constant of Langford & Caruana (2002) used by
  Dziugaite & Roy (2017), kept for comparability (``ln(1/delta')`` would also be valid).

  Args:
    mc_error: ``e_hat`` in [0, 1].
    units: ``N >= 1`` independent draws.
    delta_mc: ``delta'`` in (0, 1).

  Returns:
    The upper bound on the Gibbs training error (a float).
  """
  _errors.check_probability("mc_error", mc_error)
  _errors.check_int("units", units, 1)
  _errors.check_open_unit_interval("delta_mc", delta_mc)
  q = np.float64(mc_error)
  return float(_kl_inverse_upper(q, np.float64(math.log(2.0 / delta_mc) / units)))


__all__ = ["Objective", "complexity", "heldout_bound", "kl_inverse_smooth", "mc_term",
           "objective_value", "optimal_lambda"]
