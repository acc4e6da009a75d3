"""Closed-form gradient-descent dynamics of the linearized network, and an explicit trainer.

Conventions (Harutyunyan et al., ICLR 2021, sec. 3; Lee et al., NeurIPS 2019, sec. 2.2). The
loss is a SUM over the ``n`` examples with a weight decay centred at the initialisation:

.. math::
   L(w) = \\tfrac12 \\lVert f_{lin}(w, X) - Y \\rVert^2 + \\tfrac{\\lambda}{2}\\lVert w - w_0\\rVert^2.

With ``Theta = J J^T`` (``nk x nk``), ``A = Theta + lambda I`` and ``r0 = f0(X) - Y``, gradient
descent with step ``eta`` keeps ``w_t - w_0 = J^T a_t`` in the row space of ``J`` with

.. math::
   a_t = -\\varphi_t(A)\\, r_0, \\qquad
   \\varphi_t(\\mu) = \\frac{1 - (1 - \\eta\\mu)^t}{\\mu}\\ \\text{(t discrete steps)}, \\quad
   \\frac{1 - e^{-\\eta t \\mu}}{\\mu}\\ \\text{(continuous time)}, \\quad \\varphi_t(0) = \\eta t,

so that ``f_t(x) = f0(x) + Theta(x, X) a_t`` and ``w_t = w0 + J^T a_t``. ``phi_t`` is evaluated
through ``eigh(A)`` with ``expm1``/``log1p`` and never inverts ``A``: a singular kernel with
``lambda = 0`` is fine. At ``t = inf`` eigenvalues below ``rcond * max`` are treated as zero
(their directions carry no gradient, so they change neither weights nor predictions).

neural-tangents' ``gradient_descent_mse`` uses the MEAN loss ``1/(2N) ||f - Y||^2`` with
``N = Y.size``: its learning rate ``eta_nt`` equals ``eta = eta_nt / N`` here.

Stability: discrete-time GD on this loss converges iff ``eta * lambda_max(A) < 2``. Larger
steps diverge (``|1 - eta mu|^t`` grows), so the closed forms here reject them (eagerly, when
the kernel is concrete) with an error naming ``learning_rate``; at ``t = inf`` they would
otherwise report the converged solution that divergent GD never reaches.
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple

import jax
import jax.core  # explicit: jax/__init__ imports it, then `del`s the name (hidden from pyright)
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from gbounds._src import errors as _errors
from gbounds._src import numerics as _numerics
from gbounds._src import results as _results
from gbounds._src.numerics import Eigh
from gbounds.ntk._empirical import linearize


class Time(enum.IntEnum):
  """DISCRETE: ``t`` gradient steps of size ``eta``; CONTINUOUS: gradient flow for time ``t``."""
  DISCRETE = 1
  CONTINUOUS = 2


def check_dynamics_args(*, learning_rate: Any, t: Any, weight_decay: Any) -> None:
  """Validates the dynamics hyperparameters (eagerly; tracers are skipped).

  Args:
    learning_rate: ``eta > 0``.
    t: steps or time, ``>= 0`` (``inf`` allowed).
    weight_decay: ``lambda >= 0``.

  Returns:
    None.

  Raises:
    gbounds.InvalidInputError: naming the offending argument.
  """
  if not isinstance(learning_rate, jax.core.Tracer):
    _errors.check_positive("learning_rate", learning_rate)
  if not isinstance(t, jax.core.Tracer):
    tv = np.asarray(t, dtype=float)
    if np.any(np.isnan(tv)) or np.any(tv < 0):
      _errors.fail("t", "a non-negative time or step count (inf allowed)", t)
  if not isinstance(weight_decay, jax.core.Tracer):
    _errors.check_positive("weight_decay", weight_decay, strict=False)


def check_step_size(learning_rate: Any, lambda_max: Any, *, time: Any = Time.DISCRETE,
                    what: str = "Theta + weight_decay I") -> None:
  """Rejects a divergent discrete-time step, ``eta * lambda_max >= 2`` (eager; no-op on tracers).

  Args:
    learning_rate: ``eta``.
    lambda_max: the largest eigenvalue of the matrix GD iterates with (``Theta + lambda I``).
    time: continuous time (gradient flow) never diverges and is not checked.
    what: how the message names that matrix.

  Returns:
    None.

  Raises:
    gbounds.InvalidInputError: naming ``learning_rate`` when ``eta * lambda_max >= 2``.
  """
  time = _errors.as_enum("time", time, Time)
  if time != Time.DISCRETE or not _errors.is_concrete(learning_rate, lambda_max):
    return
  eta = float(np.asarray(learning_rate, dtype=float))
  top = float(np.asarray(lambda_max, dtype=float))
  # (a relative slack of 1e-9 absorbs the round-off of a computed lambda_max)
  if np.isfinite(top) and top > 0 and eta * top >= 2.0 * (1.0 - 1e-9):
    _errors.fail("learning_rate", f"a step below 2 / lambda_max = {2.0 / top:.6g} for convergent "
                 f"discrete-time gradient descent (lambda_max of {what} = {top:.6g}; larger "
                 "steps diverge)", learning_rate)


def _phi_positive(xp: Any, mu, eta, t, time: Time):
  """``phi_t(mu)`` at finite ``t`` for eigenvalues ``mu > 0``, in ``xp`` (numpy or jax.numpy).

  Continuous time: ``(1 - e^{-eta t mu}) / mu``. Discrete time: ``(1 - (1 - eta mu)^t) / mu``,
  through ``expm1``/``log1p`` while ``1 - eta mu > 0`` (no cancellation for small ``eta mu``)
  and the exact signed power otherwise.
  """
  if time == Time.CONTINUOUS:
    return -xp.expm1(-eta * t * mu) / mu
  base = 1.0 - eta * mu
  stable = -xp.expm1(t * xp.log1p(-xp.minimum(eta * mu, 1.0 - 1e-300))) / mu
  direct = (1.0 - xp.sign(base) ** t * xp.abs(base) ** t) / mu
  return xp.where(base > 0, stable, direct)


def phi_host(mu: Any, *, learning_rate: float, t: float, time: Time | str = Time.DISCRETE,
             rcond: float | None = None) -> np.ndarray:
  """:func:`phi` in numpy float64 on the host (for the float64 kernel algebra of float32 runs).

  Same definition and conventions as :func:`phi` (eigenvalues along the last axis).

  Args:
    mu: eigenvalues (negative round-off clipped to 0).
    learning_rate: ``eta``.
    t: steps (discrete) or time (continuous), ``inf`` allowed.
    time: :class:`Time`.
    rcond: relative cutoff below which eigenvalues count as zero at ``t = inf`` (default
      ``10 * n * eps(float64)``).

  Returns:
    ``phi_t(mu)`` as a float64 numpy array of the shape of ``mu``.
  """
  time = _errors.as_enum("time", time, Time)
  mu = np.maximum(np.asarray(mu, np.float64), 0.0)
  eta = float(learning_rate)
  t = float(t)
  if rcond is None:
    rcond = float(np.finfo(np.float64).eps) * mu.shape[-1] * 10
  safe = np.where(mu > 0, mu, 1.0)
  if np.isinf(t):
    cutoff = rcond * np.max(mu, axis=-1, keepdims=True) if mu.size else 0.0
    return np.where(mu > cutoff, 1.0 / safe, 0.0)
  with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
    finite = _phi_positive(np, safe, eta, t, time)
  return np.where(mu > 0, finite, eta * t)


def phi(mu: jax.Array, *, learning_rate, t, time: Time | str = Time.DISCRETE,
        rcond: float | None = None) -> jax.Array:
  """The spectral function ``phi_t(mu)`` above, elementwise, for eigenvalues ``mu >= 0``.

  Negative round-off eigenvalues are clipped to 0. At ``t = inf``, ``phi = 1/mu`` for
  ``mu > rcond * max(mu)`` and 0 otherwise (pseudo-inverse). Discrete time with
  ``eta mu >= 1`` uses the exact power ``(1 - eta mu)^t`` (which may diverge, as GD does).

  Args:
    mu: eigenvalues (eigenvalues along the last axis); jit- and vmap-safe.
    learning_rate: ``eta``.
    t: steps (discrete) or time (continuous), ``inf`` allowed.
    time: :class:`Time`.
    rcond: relative cutoff below which eigenvalues count as zero at ``t = inf`` (default
      ``10 * n * eps`` of ``mu``'s dtype).

  Returns:
    ``phi_t(mu)`` in ``mu``'s dtype, of its shape.
  """
  time = _errors.as_enum("time", time, Time)
  mu = jnp.maximum(jnp.asarray(mu), 0.0)
  dtype = mu.dtype
  eta = jnp.asarray(learning_rate, dtype)
  t = jnp.asarray(t, dtype)
  if rcond is None:
    rcond = float(jnp.finfo(dtype).eps) * mu.shape[-1] * 10
  safe = jnp.where(mu > 0, mu, 1.0)
  finite = jnp.where(mu > 0, _phi_positive(jnp, safe, eta, t, time), eta * t)
  cutoff = rcond * jnp.max(mu, axis=-1, keepdims=True)
  infinite = jnp.where(mu > cutoff, 1.0 / safe, 0.0)
  return jnp.where(jnp.isinf(t), infinite, finite)


def _eigh_of(theta, weight_decay) -> Eigh:
  """``eigh(Theta + lambda I)`` through THE eigendecomposition, ``gbounds._src.numerics.eigh``."""
  theta = jnp.asarray(theta)
  a = theta + jnp.asarray(weight_decay, theta.dtype) * jnp.eye(theta.shape[0], dtype=theta.dtype)
  return _numerics.eigh(a)


def gd_coefficients(theta: jax.Array, residual0: jax.Array, *, learning_rate, t,
                    weight_decay=0.0, time: Time | str = Time.DISCRETE,
                    eigh: Eigh | None = None) -> jax.Array:
  """The dual coefficients ``a_t = -phi_t(Theta + lambda I) r0`` (see module docstring).

  Args:
    theta: the ``(nk, nk)`` training kernel.
    residual0: ``f0(X) - Y`` flattened sample-major, ``(nk,)``, or ``(nk, m)`` for several
      right-hand sides.
    learning_rate: step size ``eta > 0`` (discrete time: ``eta * lambda_max < 2``).
    t: steps (discrete) or time (continuous), ``>= 0``, ``inf`` allowed.
    weight_decay: ``lambda >= 0``, centred at the initial weights.
    time: :class:`Time`.
    eigh: a precomputed :class:`Eigh` of ``theta + weight_decay I`` (from
      ``gbounds._src.numerics.eigh``); ``theta`` is then not used.

  Returns:
    ``a_t`` with the shape of ``residual0``.
  """
  time = _errors.as_enum("time", time, Time)
  check_dynamics_args(learning_rate=learning_rate, t=t, weight_decay=weight_decay)
  _errors.check_rank("residual0", residual0, (1, 2))
  nk = int(np.shape(residual0)[0])
  if eigh is None:
    _errors.check_rank("theta", theta, 2)
    if np.shape(theta) != (nk, nk):
      _errors.fail("theta", f"shape ({nk}, {nk}) to match residual0", np.shape(theta))
    if _errors.is_concrete(theta):
      _errors.check_finite("theta", theta)
    eigh = _eigh_of(theta, weight_decay)
  elif np.shape(eigh.vectors) != (nk, nk):
    _errors.fail("eigh", f"vectors of shape ({nk}, {nk}) to match residual0",
                 np.shape(eigh.vectors))
  if _errors.is_concrete(residual0):
    _errors.check_finite("residual0", residual0)
  if _errors.is_concrete(eigh.values):
    check_step_size(learning_rate, np.max(np.asarray(eigh.values)), time=time)
  residual0 = jnp.asarray(residual0)
  return -_numerics.matrix_function_times(
      eigh, lambda w: phi(w, learning_rate=learning_rate, t=t, time=time), residual0)


class LinearizedPredictions(NamedTuple):
  """Predictions of the linearized network after training.

  Attributes:
    train: ``f_t(X)``, shape of ``f0_train``.
    test: ``f_t(X_test)`` or None.
    coefficients: ``a_t``, ``(nk,)``; the weights are ``w0 + J^T a_t``.
  """
  train: jax.Array | np.ndarray
  test: jax.Array | np.ndarray | None
  coefficients: jax.Array | np.ndarray

  to_dict = _results.namedtuple_to_dict
  from_dict = classmethod(_results.from_dict)


def gradient_descent_mse(theta_train: jax.Array, y_train: jax.Array, f0_train: jax.Array, *,
                         learning_rate, t, weight_decay=0.0, time: Time | str = Time.CONTINUOUS,
                         theta_test_train: jax.Array | None = None,
                         f0_test: jax.Array | None = None) -> LinearizedPredictions:
  """Closed-form predictions of the linearized network trained by GD on the summed MSE.

  Args:
    theta_train: ``(nk, nk)`` kernel of the training inputs (sample-major).
    y_train: targets, ``(n, k)`` or ``(nk,)``.
    f0_train: the network's outputs at initialisation, same shape as ``y_train``.
    learning_rate: step size ``eta > 0`` for the SUMMED loss (``eta_nt / N`` for neural-tangents);
      in discrete time ``eta * lambda_max(Theta + lambda I) < 2`` (else GD diverges: rejected).
    t: number of steps (discrete) or time (continuous), ``>= 0``, ``inf`` allowed.
    weight_decay: ``lambda >= 0``, centred at the initial weights.
    time: :class:`Time`.
    theta_test_train: ``(mk, nk)`` kernel between test and training inputs.
    f0_test: test outputs at initialisation, ``(m, k)`` or ``(mk,)``.

  Returns:
    :class:`LinearizedPredictions`.
  """
  time = _errors.as_enum("time", time, Time)
  check_dynamics_args(learning_rate=learning_rate, t=t, weight_decay=weight_decay)
  _errors.check_rank("theta_train", theta_train, 2)
  if np.shape(y_train) != np.shape(f0_train):
    _errors.fail("f0_train", f"the shape of y_train {np.shape(y_train)}", np.shape(f0_train))
  nk = int(np.size(y_train))
  if np.shape(theta_train) != (nk, nk):
    _errors.fail("theta_train", f"shape ({nk}, {nk}) to match y_train", np.shape(theta_train))
  for name, v in (("theta_train", theta_train), ("y_train", y_train), ("f0_train", f0_train)):
    if not isinstance(v, jax.core.Tracer):
      _errors.check_finite(name, v)
  r0 = jnp.ravel(f0_train) - jnp.ravel(y_train)
  eigh = _eigh_of(theta_train, weight_decay)
  if _errors.is_concrete(eigh.values):
    check_step_size(learning_rate, np.max(np.asarray(eigh.values)), time=time)
  a = gd_coefficients(theta_train, r0, learning_rate=learning_rate, t=t,
                      weight_decay=weight_decay, time=time, eigh=eigh)
  # Training predictions in the eigenbasis: Theta a = -V [(mu - lambda) phi_t(mu)] V^T r0.
  # (Theta @ a would cancel catastrophically late in training, losing ~cond(Theta) in float32.)
  def gain(w):
    mu = jnp.maximum(w, 0.0)
    return -jnp.maximum(mu - jnp.asarray(weight_decay, w.dtype), 0.0) * phi(
        w, learning_rate=learning_rate, t=t, time=time)
  train = jnp.reshape(jnp.ravel(f0_train) + _numerics.matrix_function_times(eigh, gain, r0),
                      np.shape(f0_train))
  test = None
  if theta_test_train is not None:
    if f0_test is None:
      _errors.fail("f0_test", "the initial test outputs when theta_test_train is given", None)
    if np.shape(theta_test_train) != (np.size(f0_test), nk):
      _errors.fail("theta_test_train", f"shape ({np.size(f0_test)}, {nk})",
                   np.shape(theta_test_train))
    test = jnp.reshape(jnp.ravel(f0_test) + theta_test_train @ a, np.shape(f0_test))
  return LinearizedPredictions(train, test, a)


def linearized_weights(apply_fn, params0: Any, x_train: jax.Array, coefficients: jax.Array) -> Any:
  """The linearized network's weights ``w_t = w0 + J(X)^T a_t`` (one VJP, no Jacobian stored).

  Args:
    apply_fn: ``apply_fn(params, x) -> (batch, k)``.
    params0: the initial weights ``w0``.
    x_train: the training inputs ``X``.
    coefficients: ``a_t``, ``(n k,)`` (e.g. :attr:`LinearizedPredictions.coefficients`).

  Returns:
    ``w_t``, a pytree with the structure of ``params0``.
  """
  y, vjp = jax.vjp(lambda p: apply_fn(p, x_train), params0)
  (delta,) = vjp(jnp.reshape(coefficients, y.shape).astype(y.dtype))
  return jax.tree_util.tree_map(lambda a, b: a + b, params0, delta)


class ExplicitResult(NamedTuple):
  """The linearized network trained explicitly.

  Attributes:
    params: the trained weights (a pytree of the structure of ``params0``).
    train: ``f_lin(w_t, X)``.
    test: ``f_lin(w_t, X_test)`` or None.
  """
  params: Any
  train: jax.Array | np.ndarray  # numpy after from_dict
  test: jax.Array | np.ndarray | None

  # duplicates: result types that are NamedTuples cannot inherit gbounds._src.results.ResultMixin,
  # so each declares the two-line to_dict/from_dict wrappers (with the type-specific decoding of
  # parameter pytrees and dtypes).
  def to_dict(self) -> dict[str, Any]:
    """JSON-ready dict (``params`` as a nested dict of lists).

    Returns:
      ``{"params": ..., "train": ..., "test": ...}``.
    """
    return _results.to_dict(self)

  @classmethod
  def from_dict(cls, data: dict[str, Any]) -> ExplicitResult:
    """Rebuilds an :class:`ExplicitResult` from :meth:`to_dict` output.

    Args:
      data: the dict.

    Returns:
      The result with numpy-array leaves (parameter pytrees of nested mappings round-trip).
    """
    def tree(t):
      return {k: tree(v) for k, v in t.items()} if isinstance(t, dict) else np.asarray(t)
    test = data.get("test")
    return cls(tree(data["params"]), np.asarray(data["train"]),
               None if test is None else np.asarray(test))


def train_linearized_explicit(apply_fn, params0: Any, x_train: jax.Array, y_train: jax.Array, *,
                              learning_rate: float, t: float, weight_decay: float = 0.0,
                              time: Time | str = Time.DISCRETE, x_test: jax.Array | None = None,
                              rk4_steps_per_unit: int = 200) -> ExplicitResult:
  """Trains the linearized network explicitly: the reference the closed forms are tested against.

  Discrete time runs ``t`` GD steps ``w <- w - eta grad L(w)`` on the summed loss above.
  Continuous time integrates ``dw/ds = -eta grad L(w)`` for ``s in [0, t]`` with classical RK4
  (``ceil(t * rk4_steps_per_unit)`` steps; local error ``O(h^5)``).

  Args:
    apply_fn: ``apply_fn(params, x) -> (batch, k)``, linearized around ``params0``.
    params0: the initial weights ``w0``.
    x_train: training inputs ``X``.
    y_train: targets, ``(n, k)`` or ``(n k,)``.
    learning_rate: ``eta``.
    t: an integer number of steps (discrete) or a finite time (continuous).
    weight_decay: ``lambda >= 0``, centred at ``w0``.
    time: :class:`Time`.
    x_test: optional test inputs.
    rk4_steps_per_unit: RK4 steps per unit of continuous time.

  Returns:
    :class:`ExplicitResult`.
  """
  time = _errors.as_enum("time", time, Time)
  check_dynamics_args(learning_rate=learning_rate, t=t, weight_decay=weight_decay)
  if not np.isfinite(t):
    _errors.fail("t", "a finite time for explicit training", t)
  f_lin = linearize(apply_fn, params0)
  flat0, unravel = ravel_pytree(params0)
  y = jnp.asarray(y_train).reshape(-1)

  def loss(wf):
    r = f_lin(unravel(wf), x_train).reshape(-1) - y
    return 0.5 * jnp.sum(r * r) + 0.5 * weight_decay * jnp.sum((wf - flat0) ** 2)

  grad = jax.grad(loss)

  if time == Time.DISCRETE:
    steps = int(t)
    if steps != t:
      _errors.fail("t", "an integer number of steps for discrete time", t)
    w = jax.lax.fori_loop(0, steps, lambda _, w: w - learning_rate * grad(w), flat0)
  else:
    n_steps = max(1, int(np.ceil(t * rk4_steps_per_unit)))
    h = t / n_steps
    rhs = lambda w: -learning_rate * grad(w)  # noqa: E731

    def rk4(_, w):
      k1 = rhs(w)
      k2 = rhs(w + 0.5 * h * k1)
      k3 = rhs(w + 0.5 * h * k2)
      k4 = rhs(w + h * k3)
      return w + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)

    w = jax.lax.fori_loop(0, n_steps, rk4, flat0)
  params = unravel(w)
  train = f_lin(params, x_train)
  test = None if x_test is None else f_lin(params, x_test)
  return ExplicitResult(params, train, test)
