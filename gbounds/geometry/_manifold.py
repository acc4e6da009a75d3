"""Geometry of class manifolds by replica mean-field theory (MFTMA), in JAX.

A *manifold* is the point cloud of one class at one layer: ``M`` examples in ``N`` features.
For ``P`` manifolds the analysis measures how easily they can be separated by a linear readout
with margin ``kappa`` (the manifold capacity ``alpha_M``), and the radius ``R_M`` and dimension
``D_M`` of their *anchor points*, following

* Chung, Lee, Sompolinsky, "Classification and geometry of general perceptual manifolds",
  Phys. Rev. X 8, 031003 (2018) (PRX), Sec. III and eqs. 16-17, 28-29;
* Cohen, Chung, Lee, Sompolinsky, "Separability and geometry of object manifolds in deep neural
  networks", Nat. Commun. 11, 746 (2020) (centre correlations, low-rank centre subspace);
* Stephenson et al., "On the geometry of generalization and memorization in deep neural
  networks", ICLR 2021 (the per-layer use of the analysis).

Pipeline (:func:`manifold_geometry`):

1. wide layers (``N > max_features``) are randomly projected to ``max_features`` dims;
2. the global mean over all ``P * M`` points is subtracted; the class centres ``c_p`` are
   formed and their *centre correlation* ``rho = mean_{p != q} |cos(c_p - c_bar, c_q - c_bar)|``;
3. a low-rank subspace ``V`` (``K`` orthonormal columns) shared by the centres is found by
   minimising the residual squared correlations of the centres on the Stiefel manifold
   (Riemannian gradient descent with Armijo steps and QR retraction, seeded restarts,
   ``K = 1, 2, ...`` greedily) and projected out of all points;
4. each manifold is centred and scaled by its centre's norm, written in an ``M``-dim orthonormal
   basis of its span, and a constant coordinate 1 is appended: ``S in R^{(D+1) x M}``, ``D = M``;
5. for ``n_t`` Gaussian ``t ~ N(0, I_{D+1})`` the anchor point ``s~(t)`` solves the QP

   .. math::
      v^*(t) = \\arg\\min_v \\tfrac12 \\|v\\|^2 - t^\\top v \\quad \\text{s.t.}\\quad
      S^\\top v \\le -\\kappa,

   solved in its dual, a nonnegative QP over ``alpha in R^M``:

   .. math::
      \\alpha^* = \\arg\\min_{\\alpha \\ge 0} \\tfrac12 \\alpha^\\top G \\alpha
      - \\alpha^\\top (S^\\top t + \\kappa 1), \\qquad G = S^\\top S,

   with ``v* = t - S alpha*`` and ``s~ = S alpha* / sum(alpha*)``. When the best-aligned point
   already satisfies the margin (``max_j s_j . t + kappa < 0``) then ``alpha* = 0`` and the
   anchor is that point. ``G`` is singular when a manifold's points span fewer dimensions than
   there are points (always possible after centring, with duplicated points, or points in a
   low-dimensional subspace); ``alpha*`` is then not unique but ``v*`` and ``s~`` are (the last
   row of ``S`` is ones, so ``sum(alpha*) = (S alpha*)_{D+1}``), and the solver handles the
   singular blocks (:class:`DualSolver`). Every anchor QP must meet a KKT tolerance, else
   :class:`gbounds._src.errors.ConvergenceError` names the manifold and sample;
6. capacity (PRX eqs. 16-17), radius (eq. 28) and dimension (eq. 29, see
   :class:`DimensionFormula`):

   .. math::
      \\alpha_M^{-1} = \\big\\langle [t\\cdot \\tilde s + \\kappa]_+^2 / \\|\\tilde s\\|^2
      \\big\\rangle_t,\\quad
      R_M = \\sqrt{\\big\\langle \\|(\\tilde s - \\langle\\tilde s\\rangle_t)_{1:D} /
      \\tilde s_{D+1}\\|^2\\big\\rangle_t},\\quad
      D_M = D\\,\\big\\langle \\cos\\angle(t_{1:D}, \\tilde s_{1:D})\\big\\rangle_t^2 .

   Across manifolds the capacity is averaged harmonically, radius and dimension arithmetically.
   For ``kappa = 0`` and large ``D``: ``alpha_M ~= (1 + R_M^{-2}) / D_M``.

The geometric quantities are dimensionless (no nats here). The bases in steps 3-4 are the
sign-fixed singular vectors of the data, so results do not depend on the order of the points in
a manifold (for the same ``key``), nor on the order of the manifolds when ``t`` is given.
"""

from __future__ import annotations

import enum
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from gbounds._src import errors as _errors
from gbounds._src import numerics as _numerics
from gbounds._src import results as _results


class DualSolver(enum.IntEnum):
  """Solver for the per-sample dual nonnegative QP (all run batched under ``vmap``).

  * ``FISTA``: accelerated projected gradient (step ``1 / lambda_max(G)``) with O'Donoghue-
    Candes gradient restarts, stopped when the KKT residual falls below ``tol`` or after
    ``n_iter`` steps. Linear convergence whose rate depends on the conditioning of ``G``.
  * ``FISTA_ACTIVE_SET`` (default): rounds of 10 FISTA steps, each followed by up to
    ``active_set_steps`` primal active-set (Lawson-Hanson type) steps from the FISTA point: on
    the current free set ``F`` the face problem ``G_FF alpha_F = b_F`` is solved by proximal
    refinement (exact for a non-singular block; the solution nearest the current point for a
    singular one: points in a subspace, duplicated points, ``M > D + 1``), then a ratio-test
    step keeps ``alpha >= 0``, and the most negative gradient coordinate enters the free set.
    The objective never rises, no non-finite candidate is ever accepted, and round-off accuracy
    is reached as soon as the support is identified. On the full-rank reference setting it is
    5-6x faster than FISTA to 1e-10; on rank-deficient manifolds FISTA alone converges
    sublinearly and rarely reaches the tolerance. Pick ``FISTA`` only to study the first-order
    method alone.

  Either way the returned solution must meet ``max_residual`` (see :func:`solve_anchor_qp`),
  else :class:`gbounds._src.errors.ConvergenceError` is raised; there is no silent fallback.
  """
  FISTA = 0
  FISTA_ACTIVE_SET = 1


class DimensionFormula(enum.IntEnum):
  """Which anchor-dimension formula :func:`manifold_geometry` reports as ``dimension``.

  * ``MEAN_COSINE`` (default): ``D_M = D <cos angle(t_{1:D}, s~_{1:D})>_t^2``, the form of the
    public MFTMA code (schung039/neural_manifolds_replicaMFT), which gives the published
    reference values (random data: 36.17).
  * ``MEAN_SQUARED_PROJECTION``: ``D_M = <(t_{1:D} . s^_{1:D})^2>_t`` with ``s^`` the unit
    vector along ``s~_{1:D}``, PRX 2018 eq. 29.
  """
  MEAN_COSINE = 0
  MEAN_SQUARED_PROJECTION = 1


class AnchorSolution(NamedTuple):
  """Solution of the anchor QP for one or more ``t`` (leading axes as in ``t``).

  Attributes:
    alpha: dual variables ``alpha* >= 0``, ``(..., M)``.
    v: primal solution ``v* = t - S alpha*``, ``(..., D+1)``.
    anchor: anchor point ``s~``, ``(..., D+1)``; the best-aligned point when ``alpha* = 0``.
    kkt_residual: ``max_j |min(alpha_j, g_j)|`` with ``g = -(S^T v + kappa)`` the dual gradient;
      zero exactly at the optimum (primal feasibility, dual feasibility, complementarity);
      recomputed from the returned ``alpha``, any non-finite term counting as ``+inf``.
    separated: whether ``t`` was already separated (``max_j s_j . t + kappa < 0``).
  """
  # duplicates: the field list + to_dict/from_dict shape of every result NamedTuple (also
  # ManifoldGeometry below, gbounds.bounds results); different fields, not shared logic
  alpha: jax.Array
  v: jax.Array
  anchor: jax.Array
  kkt_residual: jax.Array
  separated: jax.Array

  to_dict = _results.namedtuple_to_dict
  from_dict = classmethod(_results.from_dict)


class ManifoldGeometry(NamedTuple):
  """Result of :func:`manifold_geometry` (dimensionless quantities).

  Attributes:
    capacity: harmonic mean over manifolds of ``alpha_M`` (``1 / mean(1 / alpha_M)``).
    radius: mean anchor radius ``R_M``.
    dimension: mean anchor dimension ``D_M`` (formula: :class:`DimensionFormula`).
    center_correlation: ``mean_{p != q} |cos(c_p, c_q)|`` of the mean-subtracted class centres,
      before the low-rank subspace is removed.
    residual_correlation: the same after removing the ``center_rank``-dim centre subspace.
    center_rank: dimension ``K`` of the removed centre subspace (0: none removed).
    capacity_per_manifold: ``alpha_M`` per manifold, ``(P,)``.
    radius_per_manifold: ``R_M`` per manifold, ``(P,)``.
    dimension_per_manifold: ``D_M`` per manifold, ``(P,)``.
    max_kkt_residual: the largest dual KKT residual over all samples and manifolds.
  """
  capacity: jax.Array
  radius: jax.Array
  dimension: jax.Array
  center_correlation: jax.Array
  residual_correlation: jax.Array
  center_rank: int
  capacity_per_manifold: jax.Array
  radius_per_manifold: jax.Array
  dimension_per_manifold: jax.Array
  max_kkt_residual: jax.Array

  to_dict = _results.namedtuple_to_dict
  from_dict = classmethod(_results.from_dict)


# ----------------------------------------------------------------------------- dual NNQP


def _kkt_residual(alpha, grad):
  """``max_j |min(alpha_j, g_j)|``, with any non-finite term counted as ``+inf``.

  The guard is elementwise, before the reduction: XLA's CPU min/max may drop NaN operands, so a
  plain ``max`` could report a finite (or ``-inf``) residual for a NaN candidate.
  """
  r = jnp.abs(jnp.minimum(alpha, grad))
  r = jnp.where(jnp.isfinite(r) & jnp.isfinite(alpha) & jnp.isfinite(grad), r, jnp.inf)
  return jnp.max(r, axis=-1)


# Relative Tikhonov shift of the free-block solve, in units of lambda_max(G) * sqrt(eps).
_PROX_SHIFT = 1.0
# Proximal (iterated Tikhonov) refinement steps per active-set candidate.
_PROX_STEPS = 4


def _nnqp_single(gram, b, lip, *, n_iter: int, tol, active_set_steps: int, chunk: int = 10):
  """min_{alpha >= 0} 1/2 alpha^T G alpha - b^T alpha for one right-hand side ``b``.

  Rounds of ``chunk`` FISTA steps (gradient restarts), each followed (if
  ``active_set_steps > 0``) by up to ``active_set_steps`` primal active-set steps started from
  the FISTA point restricted to the free set of a projected-gradient step; stops at KKT residual
  ``<= tol`` or after ``n_iter`` FISTA steps.

  Active-set step (Lawson-Hanson type, feasible and monotone): on the free set ``F`` the face
  problem ``G_FF alpha_F = b_F`` may be singular (points in a subspace of dimension < M,
  duplicated points, M > D + 1), so it is solved by proximal-point (iterated Tikhonov)
  refinement from the current ``alpha``:
  ``alpha_F <- alpha_F + (G_FF + mu I)^{-1} (b_F - G_FF alpha_F)``, ``mu = sqrt(eps) lambda_max``
  (one Cholesky factorisation of an SPD matrix, ``_PROX_STEPS`` solves). For a consistent
  system this converges to the face solution nearest the current point (the component along
  ``null(G_FF)`` is left unchanged) at rate ``mu / (lambda + mu)`` per eigen-direction; a
  non-singular block is solved to round-off. If that solution ``z`` is ``>= 0`` the step moves
  to it and frees the coordinate with the most negative gradient; otherwise it moves towards
  ``z`` until the first coordinate reaches 0 and fixes it. A step is taken only when it is
  finite and does not raise the objective; the round's result replaces the FISTA point only
  when it is finite and its objective is no higher. Residuals count non-finite terms as inf.
  """
  dtype = b.dtype
  step = 1.0 / lip
  m = b.shape[0]
  eye = jnp.eye(m, dtype=dtype)
  mu = _PROX_SHIFT * float(np.sqrt(np.finfo(dtype).eps)) * lip

  def grad(a):
    return gram @ a - b

  def fista_step(_, carry):
    alpha, y, theta = carry
    alpha_new = jnp.maximum(y - step * grad(y), 0.0)
    restart = jnp.dot(y - alpha_new, alpha_new - alpha) > 0
    theta_new = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * theta ** 2))
    y_new = alpha_new + ((theta - 1.0) / theta_new) * (alpha_new - alpha)
    y_new = jnp.where(restart, alpha_new, y_new)
    theta_new = jnp.where(restart, jnp.ones_like(theta), theta_new)
    return alpha_new, y_new, theta_new

  def objective(a):
    return 0.5 * a @ (gram @ a) - b @ a

  def face_solve(alpha, free):
    # Minimiser of the objective on the face {alpha_j = 0 for j not in free} nearest to alpha:
    # proximal-point refinement with G_FF + mu I (identity outside the face), SPD.
    a_mat = gram * jnp.outer(free, free) + eye * (mu * free + (1.0 - free))[None, :]
    chol = jnp.linalg.cholesky(a_mat)

    def refine(_, a):
      return a + jax.scipy.linalg.cho_solve((chol, True), -grad(a) * free) * free

    return jax.lax.fori_loop(0, _PROX_STEPS, refine, alpha * free)

  def as_cond(state):
    k, _, _, res, ok = state
    return (k < active_set_steps) & (res > tol) & ok

  def as_body(state):
    # One primal active-set (Lawson-Hanson type) step: alpha stays feasible and the objective
    # never rises. If the face solution z is feasible, move there and free the most negative
    # gradient coordinate; otherwise step towards z until the first coordinate hits 0 and fix it.
    k, alpha, free, _, _ = state
    z = face_solve(alpha, free)
    neg = (free > 0) & (z < 0)
    ratio = jnp.where(neg, alpha / jnp.where(neg, alpha - z, 1.0), jnp.inf)
    theta = jnp.clip(jnp.min(ratio), 0.0, 1.0)
    blocking = jnp.argmin(ratio)
    stepped = jnp.maximum(alpha + theta * (z - alpha), 0.0) * free
    stepped = stepped.at[blocking].set(0.0)
    feasible = ~jnp.any(neg)
    z = jnp.maximum(z, 0.0) * free
    g_z = grad(z)
    enter = jnp.argmin(jnp.where(free > 0, jnp.inf, g_z))
    free_z = jnp.where(g_z[enter] < 0, free.at[enter].set(1.0), free)
    new_alpha = jnp.where(feasible, z, stepped)
    new_free = jnp.where(feasible, free_z, free * (stepped > 0).astype(dtype))
    ok = jnp.all(jnp.isfinite(new_alpha)) & (objective(new_alpha) <= objective(alpha))
    new_alpha = jnp.where(ok, new_alpha, alpha)
    new_free = jnp.where(ok, new_free, free)
    return k + 1, new_alpha, new_free, _kkt_residual(new_alpha, grad(new_alpha)), ok

  def cond(state):
    it, _, res = state
    return (it < n_iter) & (res > tol)

  def body(state):
    it, (alpha, y, theta), _ = state
    alpha, y, theta = jax.lax.fori_loop(0, chunk, fista_step, (alpha, y, theta))
    res = _kkt_residual(alpha, grad(alpha))
    if active_set_steps:
      free0 = ((alpha - step * grad(alpha)) > 0).astype(dtype)
      _, alpha_as, _, res_as, _ = jax.lax.while_loop(
          as_cond, as_body, (0, alpha * free0, free0, res, res > tol))
      # The active-set iterate never has a higher objective than alpha * free0; take it when
      # it is finite and no worse than the FISTA point (the next round restarts from it).
      jumped = (jnp.all(jnp.isfinite(alpha_as)) & jnp.isfinite(res_as)
                & (objective(alpha_as) <= objective(alpha)))
      alpha = jnp.where(jumped, alpha_as, alpha)
      y = jnp.where(jumped, alpha_as, y)
      theta = jnp.where(jumped, jnp.ones_like(theta), theta)
      res = jnp.where(jumped, res_as, res)
    return it + chunk, (alpha, y, theta), res

  alpha0 = jnp.zeros_like(b)
  carry0 = (alpha0, alpha0, jnp.ones((), dtype))
  _, (alpha, _, _), _ = jax.lax.while_loop(
      cond, body, (0, carry0, _kkt_residual(alpha0, grad(alpha0))))
  # The reported residual is recomputed from the returned alpha, never taken from loop state.
  return alpha, _kkt_residual(alpha, grad(alpha))


def _default_tolerances(dtype, tol, max_residual):
  f64 = jnp.dtype(dtype) == jnp.float64
  if tol is None:
    tol = 1e-10 if f64 else 1e-5
  if max_residual is None:
    max_residual = 1e-7 if f64 else 1e-3
  return float(tol), float(max(max_residual, tol))


def _check_converged(residual, max_residual, where: str) -> None:
  """Raises :class:`ConvergenceError` if any KKT residual is non-finite or above the bound.

  ``residual``: concrete array of per-sample residuals (leading axes as ``where`` describes).
  """
  r = np.asarray(residual, dtype=np.float64)
  bad = ~(r <= max_residual)  # NaN counts as a failure
  if np.any(bad):
    idx = np.unravel_index(int(np.argmax(np.where(np.isfinite(r), r, np.inf))), r.shape)
    raise _errors.ConvergenceError(
        f"anchor QP did not converge: KKT residual {r[idx]:.3e} > max_residual "
        f"{max_residual:.1e} at {where} {tuple(int(i) for i in idx)} ({int(bad.sum())} of "
        f"{r.size} samples); no fallback value is returned. Raise n_iter or active_set_steps, "
        f"use float64, or loosen max_residual.")


def _check_converged_traced(x, residual, max_residual, where: str):
  """jit/vmap-safe form of :func:`_check_converged` (a host callback; JAX wraps the error)."""
  def _raise(r):
    _check_converged(r, max_residual, where)

  jax.debug.callback(_raise, residual)
  return x


def _check_qp_inputs(s, t, kappa) -> None:
  """Eager value checks of the anchor-QP inputs (only when they are concrete)."""
  if _errors.is_concrete(s):
    _errors.check_finite("s", s)
  if _errors.is_concrete(t):
    _errors.check_finite("t", t)
  if _errors.is_concrete(kappa):
    k = np.asarray(kappa)
    if k.ndim != 0 or not np.isfinite(k) or k < 0:
      _errors.fail("kappa", "a finite scalar margin kappa >= 0", k if k.ndim == 0 else
                   f"shape {k.shape}")


def _float_dtype(*dtypes) -> np.dtype:
  """The computation dtype of real inputs: the widest floating dtype among ``dtypes``, at
  least float32 (integer inputs count as float32), as JAX can represent it.

  This is ``jnp.result_type(*dtypes, jnp.float32)`` under JAX's standard promotion, written
  out so that it also holds under ``jax_numpy_dtype_promotion="strict"``.
  """
  floats = [jnp.dtype(d) for d in dtypes if jnp.issubdtype(d, jnp.floating)]
  widest = max([jnp.dtype(jnp.float32), *floats], key=lambda d: d.itemsize)
  return jax.dtypes.canonicalize_dtype(widest)


def _as_count(name: str, value, minimum: int) -> int:
  if isinstance(value, bool):
    _errors.fail(name, f"an integer >= {minimum}", repr(value))
  _errors.check_nonnegative_int(name, value, minimum=minimum)
  if np.ndim(value) != 0:
    _errors.fail(name, f"an integer >= {minimum}", f"shape {np.shape(value)}")
  return int(value)


def _as_tolerance(name: str, value):
  if value is None:
    return None
  v = np.asarray(value)
  if v.ndim != 0 or v.dtype.kind not in "fiu" or not np.isfinite(v) or v <= 0:
    _errors.fail(name, "a positive finite number (or None for the default)", repr(value))
  return float(v)


def solve_anchor_qp(s: ArrayLike, t: ArrayLike, *, kappa: ArrayLike = 0.0,
                    solver: DualSolver | str = DualSolver.FISTA_ACTIVE_SET,
                    n_iter: int = 2000, tol: float | None = None,
                    active_set_steps: int = 3, max_residual: float | None = None,
                    check: bool = True) -> AnchorSolution:
  """Anchor points of one manifold: the QP of PRX 2018 Sec. III solved in its dual.

  Primal, for each sample ``t``: ``min_v 1/2 ||v||^2 - t.v`` s.t. ``S^T v <= -kappa``.
  Dual: ``min_{alpha >= 0} 1/2 ||S alpha - t||^2 - kappa sum(alpha)`` (for ``kappa = 0`` a
  nonnegative least-squares problem), i.e. ``G = S^T S``, ``b = S^T t + kappa``; then
  ``v = t - S alpha`` and the anchor is ``s~ = S alpha / sum(alpha)``. Batched over the leading
  axes of ``t`` (``vmap``; ``G`` is shared, so the solver runs on matrix products).

  ``G`` may be singular (points in a subspace of dimension < M, duplicated points, M > D + 1):
  then ``alpha*`` is not unique, but ``v*`` is, and so is the anchor when ``S`` has a row of
  ones (as in the analysis: ``sum(alpha) = (S alpha)_{D+1}``). The active-set step handles the
  singular free blocks (see ``_nnqp_single``). The anchor falls back to the best-aligned point
  only when ``alpha* = 0`` exactly (that point is then the anchor, PRX Sec. III); a non-finite
  ``alpha`` gives a non-finite anchor and an infinite residual, never a fallback.

  Args:
    s: manifold points as columns, ``(D+1, M)`` (last row the constant 1 in the analysis, but
      any matrix is accepted).
    t: samples, ``(D+1,)`` or ``(..., D+1)``.
    kappa: margin ``kappa >= 0`` (a scalar).
    solver: :class:`DualSolver`.
    n_iter: maximum first-order iterations (``>= 1``).
    tol: KKT tolerance that stops the iterations (default ``1e-10`` in float64, ``1e-5`` in
      float32).
    active_set_steps: active-set refinement steps (``FISTA_ACTIVE_SET`` only).
    max_residual: largest KKT residual accepted for a returned solution (default ``1e-7`` in
      float64, ``1e-3`` in float32, never below ``tol``); a larger or non-finite residual raises
      :class:`gbounds._src.errors.ConvergenceError` naming the sample.
    check: apply ``max_residual`` (eagerly on concrete inputs; under ``jit``/``vmap`` as a host
      callback, whose error JAX wraps). ``False`` returns the solution with its residual as is.

  Returns:
    :class:`AnchorSolution`. Works under ``jax.jit`` (``solver``, ``n_iter``,
    ``active_set_steps`` static) and ``jax.vmap``.

  Raises:
    InvalidInputError: wrong ranks or shapes, non-finite ``s`` or ``t``, ``kappa < 0``, unknown
      ``solver``, non-positive counts or tolerances.
    ConvergenceError: a KKT residual above ``max_residual`` (or non-finite).
  """
  solver = _errors.as_enum("solver", solver, DualSolver)
  n_iter = _as_count("n_iter", n_iter, 1)
  active_set_steps = _as_count("active_set_steps", active_set_steps, 0)
  tol = _as_tolerance("tol", tol)
  max_residual = _as_tolerance("max_residual", max_residual)
  s = jnp.asarray(s)
  t = jnp.asarray(t)
  if not jnp.issubdtype(s.dtype, jnp.number) or jnp.issubdtype(s.dtype, jnp.complexfloating):
    _errors.fail("s", "a real-valued array", f"dtype {s.dtype}")
  if not jnp.issubdtype(t.dtype, jnp.number) or jnp.issubdtype(t.dtype, jnp.complexfloating):
    _errors.fail("t", "a real-valued array", f"dtype {t.dtype}")
  dtype = _float_dtype(s.dtype, t.dtype)
  s, t = s.astype(dtype), t.astype(dtype)
  if s.ndim != 2 or s.shape[0] < 1 or s.shape[1] < 1:
    _errors.fail("s", "a non-empty array of rank 2 (D+1, M)", f"shape {s.shape}")
  if t.ndim < 1 or t.shape[-1] != s.shape[0]:
    _errors.fail("t", f"an array with last axis {s.shape[0]} (rows of s)", f"shape {t.shape}")
  if np.ndim(kappa) != 0:
    _errors.fail("kappa", "a scalar margin kappa >= 0", f"shape {np.shape(kappa)}")
  _check_qp_inputs(s, t, kappa)
  tol, max_residual = _default_tolerances(dtype, tol, max_residual)
  steps = active_set_steps if solver == DualSolver.FISTA_ACTIVE_SET else 0
  sol = _solve_anchor_qp(s, t, jnp.asarray(kappa, dtype), n_iter=n_iter, tol=tol,
                         active_set_steps=int(steps))
  if check:
    if _errors.is_concrete(sol.kkt_residual):
      _check_converged(sol.kkt_residual, max_residual, "sample index")
    else:
      sol = _check_converged_traced(sol, sol.kkt_residual, max_residual, "sample index")
  return sol


@functools.partial(jax.jit, static_argnames=("n_iter", "tol", "active_set_steps"))
def _solve_anchor_qp(s, t, kappa, *, n_iter, tol, active_set_steps):
  dtype = s.dtype
  gram = s.T @ s
  lip = jnp.maximum(_numerics.eigh(gram).values[-1], jnp.finfo(dtype).tiny)

  batch_shape = t.shape[:-1]
  tf = t.reshape((-1, t.shape[-1]))
  proj = tf @ s  # (n, M): s_j . t
  b = proj + kappa

  def one(bi):
    return _nnqp_single(gram, bi, lip, n_iter=n_iter, tol=tol, active_set_steps=active_set_steps)

  alpha, _ = jax.vmap(one)(b)
  best = jnp.argmax(proj, axis=-1)
  separated = jnp.max(proj, axis=-1) + kappa < 0
  alpha = jnp.where(separated[:, None], 0.0, alpha)
  # Residual of the returned alpha (exactly 0 for a separated sample: alpha = 0, g = -b > 0).
  res = _kkt_residual(alpha, alpha @ gram - b)
  total = jnp.sum(alpha, axis=-1)
  weighted = alpha @ s.T
  # Best-aligned point only for alpha = 0 exactly; NaN in alpha propagates (total is NaN).
  zero = total == 0
  anchor = jnp.where(zero[:, None], s.T[best], weighted / jnp.where(zero, 1.0, total)[:, None])
  v = tf - weighted
  m = s.shape[1]
  return AnchorSolution(alpha.reshape(batch_shape + (m,)), v.reshape(t.shape),
                        anchor.reshape(t.shape), res.reshape(batch_shape),
                        separated.reshape(batch_shape))


# ----------------------------------------------------------------------------- geometry


def _sign_fix(coords):
  """Flips each column so that the sum of its cubes is >= 0 (order-invariant convention)."""
  sgn = jnp.sign(jnp.sum(coords ** 3, axis=0))
  return coords * jnp.where(sgn == 0, 1.0, sgn)[None, :]


def _gram_coordinates(y):
  """Coordinates of the rows of ``y`` (n, N) in the basis of its principal axes, from the
  eigendecomposition of the Gram matrix ``y y^T = U diag(lam) U^T``: ``coords = U lam^{1/2}``
  (n, n), axes by decreasing ``lam``, signs fixed by :func:`_sign_fix`. Same inner products as
  ``y`` (``coords coords^T = y y^T``); much faster than a batched SVD of a wide ``y`` on CPU.

  Returns ``(coords, lam, u)``.
  """
  lam, u = _numerics.eigh(y @ y.T)
  lam, u = lam[::-1], u[:, ::-1]
  coords = u * jnp.sqrt(jnp.maximum(lam, 0.0))[None, :]
  sgn = jnp.sign(jnp.sum(coords ** 3, axis=0))
  sgn = jnp.where(sgn == 0, 1.0, sgn).astype(coords.dtype)[None, :]
  return coords * sgn, lam, u * sgn


def _manifold_coordinates(y):
  """``y``: (M, N) centred, scaled points -> (M, M) coordinates in a canonical basis.

  Axes whose Gram eigenvalue is at round-off level (``lam <= M eps lam_max``: points in a
  subspace of dimension < M, duplicated points; always the last axis, as the points are
  centred) get exactly zero coordinates instead of ``sqrt(round-off)`` noise of order 1e-8.
  """
  coords, lam, _ = _gram_coordinates(y)
  m = y.shape[0]
  keep = lam > m * jnp.finfo(y.dtype).eps * jnp.max(lam)
  return coords * keep.astype(coords.dtype)[None, :]


def _anchor_geometry(s, t, kappa, *, formula, n_iter, tol, active_set_steps):
  """Core of :func:`anchor_geometry` without checks; also returns the per-sample residuals."""
  sol = _solve_anchor_qp(s, t, kappa, n_iter=n_iter, tol=tol, active_set_steps=active_set_steps)
  anc = sol.anchor
  d = s.shape[0] - 1
  margin = jnp.maximum(jnp.sum(t * anc, axis=-1) + kappa, 0.0)
  norm2 = jnp.sum(anc ** 2, axis=-1)
  field = jnp.where(norm2 > 0, margin ** 2 / jnp.where(norm2 > 0, norm2, 1.0), 0.0)
  capacity = 1.0 / jnp.mean(field)
  dev = (anc - jnp.mean(anc, axis=0, keepdims=True))[:, :d] / anc[:, d:]
  radius = jnp.sqrt(jnp.mean(jnp.sum(dev ** 2, axis=-1)))
  t_d, s_d = t[:, :d], anc[:, :d]
  t_hat = t_d / jnp.linalg.norm(t_d, axis=-1, keepdims=True)
  s_norm = jnp.linalg.norm(s_d, axis=-1, keepdims=True)
  s_hat = s_d / jnp.where(s_norm > 0, s_norm, 1.0)
  if formula == DimensionFormula.MEAN_COSINE:
    dimension = d * jnp.mean(jnp.sum(t_hat * s_hat, axis=-1)) ** 2
  else:
    dimension = jnp.mean(jnp.sum(t_d * s_hat, axis=-1) ** 2)
  return capacity, radius, dimension, sol.kkt_residual


def anchor_geometry(s: ArrayLike, t: ArrayLike, *, kappa: ArrayLike = 0.0,
                    dimension_formula: DimensionFormula | str = DimensionFormula.MEAN_COSINE,
                    solver: DualSolver | str = DualSolver.FISTA_ACTIVE_SET, n_iter: int = 2000,
                    tol: float | None = None, active_set_steps: int = 3,
                    max_residual: float | None = None):
  """Capacity, radius and dimension of ONE manifold ``S`` (``(D+1, M)``, last row ones) from
  samples ``t`` (``(n_t, D+1)``): PRX 2018 eqs. 16-17, 28 and 29 (see the module docstring).

  The anchors come from :func:`solve_anchor_qp` (same ``solver``, ``n_iter``, ``tol``,
  ``active_set_steps``, ``max_residual``); rank-deficient ``S`` (``M > D + 1``, points in a
  subspace, duplicated points) is handled exactly. Works under ``jit`` (the convergence check
  then runs as a host callback).

  .. math::
     \\alpha_M^{-1} = \\big\\langle [t\\cdot \\tilde s + \\kappa]_+^2 / \\|\\tilde s\\|^2
     \\big\\rangle_t,\\quad
     R_M = \\sqrt{\\big\\langle \\|(\\tilde s - \\langle\\tilde s\\rangle_t)_{1:D} /
     \\tilde s_{D+1}\\|^2\\big\\rangle_t}

  and ``D_M`` by ``dimension_formula`` (Chung, Lee, Sompolinsky, PRX 8, 031003, 2018).

  Args:
    s: the manifold's points as columns, ``(D+1, M)``, last row all ones, finite.
    t: Gaussian samples ``(n_t, D+1)``, finite.
    kappa: margin ``kappa >= 0`` (a scalar).
    dimension_formula: :class:`DimensionFormula`.
    solver, n_iter, tol, active_set_steps, max_residual: see :func:`solve_anchor_qp`.

  Returns:
    ``(capacity, radius, dimension, max_kkt_residual)`` as scalars (dimensionless).

  Raises:
    InvalidInputError: ``s`` not ``(D+1, M)`` with ``D >= 1`` and last row all ones, ``t`` not
      ``(n_t, D+1)`` with ``n_t >= 1``, non-finite values, ``kappa < 0``, unknown options.
    ConvergenceError: an anchor QP above ``max_residual`` (the sample is named).
  """
  formula = _errors.as_enum("dimension_formula", dimension_formula, DimensionFormula)
  solver = _errors.as_enum("solver", solver, DualSolver)
  n_iter = _as_count("n_iter", n_iter, 1)
  active_set_steps = _as_count("active_set_steps", active_set_steps, 0)
  tol = _as_tolerance("tol", tol)
  max_residual = _as_tolerance("max_residual", max_residual)
  s = jnp.asarray(s)
  if not jnp.issubdtype(s.dtype, jnp.number) or jnp.issubdtype(s.dtype, jnp.complexfloating):
    _errors.fail("s", "a real-valued array", f"dtype {s.dtype}")
  s = s.astype(_float_dtype(s.dtype))
  if s.ndim != 2 or s.shape[0] < 2 or s.shape[1] < 1:
    _errors.fail("s", "an array of shape (D+1, M) with D >= 1, M >= 1", f"shape {s.shape}")
  t = jnp.asarray(t)
  if not jnp.issubdtype(t.dtype, jnp.number) or jnp.issubdtype(t.dtype, jnp.complexfloating):
    _errors.fail("t", "a real-valued array", f"dtype {t.dtype}")
  t = t.astype(s.dtype)
  if t.ndim != 2 or t.shape[0] < 1 or t.shape[1] != s.shape[0]:
    _errors.fail("t", f"samples of shape (n_t >= 1, D+1={s.shape[0]})", f"shape {t.shape}")
  if np.ndim(kappa) != 0:
    _errors.fail("kappa", "a scalar margin kappa >= 0", f"shape {np.shape(kappa)}")
  _check_qp_inputs(s, t, kappa)
  if _errors.is_concrete(s):
    last = np.asarray(s)[-1]
    if not np.all(last == 1):
      _errors.fail("s", "a last row of ones (the constant coordinate of the analysis)",
                   f"last row in [{last.min()}, {last.max()}]")
  tol, max_residual = _default_tolerances(s.dtype, tol, max_residual)
  steps = active_set_steps if solver == DualSolver.FISTA_ACTIVE_SET else 0
  cap, rad, dim, res = _anchor_geometry(s, t, jnp.asarray(kappa, s.dtype), formula=formula,
                                        n_iter=n_iter, tol=tol, active_set_steps=int(steps))
  if _errors.is_concrete(res):
    _check_converged(res, max_residual, "sample index")
  else:
    res = _check_converged_traced(res, res, max_residual, "sample index")
  return cap, rad, dim, jnp.max(res)


def _mean_abs_offdiag_cos(x):
  norms = jnp.linalg.norm(x, axis=1)
  c = (x @ x.T) / jnp.outer(norms, norms)
  p = x.shape[0]
  return (jnp.sum(jnp.abs(c)) - jnp.sum(jnp.abs(jnp.diag(c)))) / (p * (p - 1))


def _subspace_cost(v, x, mask):
  """Residual squared correlations of the centres ``x`` (P, r) after removing span(v * mask)."""
  c = x @ (v * mask[None, :])
  gram = x @ x.T
  c0 = jnp.diag(gram) - jnp.sum(c ** 2, axis=1)
  return 0.5 * jnp.sum((gram - c @ c.T) ** 2 / jnp.outer(c0, c0))


def _qr_retract(a):
  q, r = jnp.linalg.qr(a)
  d = jnp.sign(jnp.diag(r))
  return q * jnp.where(d == 0, 1.0, d)[None, :]


def _optimise_subspace(x, v0, mask, n_steps: int):
  """Riemannian gradient descent on the Stiefel manifold with Armijo steps, QR retraction."""
  vg = jax.value_and_grad(_subspace_cost)

  def step(_, carry):
    v, eta = carry
    f, g = vg(v, x, mask)
    rg = g - v @ (0.5 * (v.T @ g + g.T @ v))
    gn2 = jnp.sum(rg ** 2)

    def bt_cond(state):
      eta_, k = state
      fn = _subspace_cost(_qr_retract(v - eta_ * rg), x, mask)
      return (fn > f - 1e-4 * eta_ * gn2) & (k < 40)

    eta, _ = jax.lax.while_loop(bt_cond, lambda s_: (0.5 * s_[0], s_[1] + 1), (eta, 0))
    v_new = _qr_retract(v - eta * rg)
    ok = _subspace_cost(v_new, x, mask) <= f
    return jnp.where(ok, v_new, v), 2.0 * eta

  v, _ = jax.lax.fori_loop(0, n_steps, step, (v0, jnp.asarray(1.0, x.dtype)))
  return v


@functools.partial(jax.jit, static_argnames=("n_restarts", "n_steps"))
def _subspace_round(x, v_prev, key, k, *, n_restarts: int, n_steps: int):
  """One greedy round: rank ``k`` from the rank ``k - 1`` solution (first ``k - 1`` columns of
  ``v_prev``), with ``n_restarts`` random new directions; keeps the most stable solution (the
  largest smallest fraction of a centre's norm left after the projection)."""
  r, width = v_prev.shape
  cols = jnp.arange(width)
  v0 = jax.random.normal(key, (n_restarts, r, width), x.dtype)
  v0 = jnp.where((cols < k - 1)[None, None, :], v_prev[None], v0)
  v0 = jax.vmap(_qr_retract)(v0)
  mask = (cols < k).astype(x.dtype)
  vs = jax.vmap(_optimise_subspace, in_axes=(None, 0, None, None))(x, v0, mask, n_steps)
  vm = vs * mask[None, None, :]
  resid = x[None] - jnp.einsum("pr,nrk,nsk->nps", x, vm, vm)
  stability = jnp.min(jnp.linalg.norm(resid, axis=-1) / jnp.linalg.norm(x, axis=-1)[None, :],
                      axis=-1)
  v = vs[jnp.argmax(stability)]
  x0 = x - (x @ (v * mask[None, :])) @ (v * mask[None, :]).T
  return v, _mean_abs_offdiag_cos(x0)


class _CenterSubspace(NamedTuple):
  basis: np.ndarray  # (N, K) orthonormal, in feature space
  correlation: jax.Array
  residual: jax.Array | np.ndarray
  rank: int


@functools.partial(jax.jit, static_argnames=("n_features", "n_t"))
def _prepare(x, key_proj, key_t, *, n_features: int, n_t: int):
  """Random projection, global centring, class centres and their canonical coordinates."""
  p, m, n = x.shape
  if n_features < n:
    w = jax.random.normal(key_proj, (n, n_features), x.dtype) / float(np.sqrt(n_features))
    x = jnp.einsum("pmn,nk->pmk", x, w)
  x = x - jnp.mean(x, axis=(0, 1), keepdims=True)
  centers = jnp.mean(x, axis=1)
  xb = centers - jnp.mean(centers, axis=0, keepdims=True)
  r = min(p - 1, xb.shape[1])
  coords, lam, u = _gram_coordinates(xb)
  coords, lam, u = coords[:, :r], lam[:r], u[:, :r]
  # Orthonormal basis of the centres' span in feature space: xb^T u lam^{-1/2} (null axes -> 0).
  ok = lam > jnp.finfo(x.dtype).eps * p * jnp.max(lam)
  basis = (xb.T @ u) * jnp.where(ok, 1.0 / jnp.sqrt(jnp.where(ok, lam, 1.0)), 0.0)[None, :]
  sv = jnp.sqrt(jnp.maximum(lam, 0.0))
  t = jax.random.normal(key_t, (p, n_t, m + 1), x.dtype)
  return x, coords, basis, sv, _mean_abs_offdiag_cos(coords), t


def _center_subspace(coords, basis, sv, rho0, *, key, center_rank, n_restarts,
                     n_steps) -> _CenterSubspace:
  """Low-rank structure shared by the class centres (Cohen et al. 2020, Methods).

  ``coords``: (P, r) centred centres in the orthonormal ``basis`` (N, r) of their span.
  """
  r = coords.shape[1]
  if center_rank == 0:
    return _CenterSubspace(np.zeros((basis.shape[0], 0), basis.dtype), rho0, rho0, 0)
  if center_rank is None:
    sv = np.asarray(sv)
    frac = np.cumsum(sv ** 2) / np.sum(sv ** 2)
    max_k = min(int(np.argmax(np.where(frac < 0.95, frac, 0.0))) + 11, r - 1)
  else:
    max_k = min(int(center_rank), r - 1)
  if max_k < 1:  # removing the whole span of the centres would leave nothing to normalise by
    return _CenterSubspace(np.zeros((basis.shape[0], 0), basis.dtype), rho0, rho0, 0)
  keys = jax.random.split(key, max_k)
  residuals, solutions = [], []
  v_prev = np.zeros((r, 0), coords.dtype)
  for k in range(1, max_k + 1):
    if v_prev.shape[1] < k:  # widths 8, 16, 32, ...: few compilations
      width = min(r, max(8, 2 * v_prev.shape[1]))
      v_prev = np.pad(v_prev, ((0, 0), (0, width - v_prev.shape[1])))
    v_new, resid = _subspace_round(coords, v_prev, keys[k - 1], k, n_restarts=n_restarts,
                                   n_steps=n_steps)
    v_prev = np.asarray(v_new)
    residuals.append(float(resid))
    solutions.append(v_prev[:, :k])
    if (center_rank is None and k > 4 and residuals[-1] > residuals[-2] > residuals[-3]
        > residuals[-4]):
      break
  k_best = int(np.nanargmin(residuals)) + 1 if center_rank is None else len(solutions)
  return _CenterSubspace(np.asarray(basis) @ solutions[k_best - 1], rho0,
                         np.asarray(residuals[k_best - 1], coords.dtype), k_best)


def _per_manifold(xm, proj_basis, t, kappa, *, formula, n_iter, tol, active_set_steps):
  """``xm``: (M, N) globally centred points of one manifold; ``t``: (n_t, M+1).

  Returns ``(capacity, radius, dimension, residuals (n_t,), centre norm, point scale)``.
  """
  xm = xm - (xm @ proj_basis) @ proj_basis.T
  center = jnp.mean(xm, axis=0)
  cnorm = jnp.linalg.norm(center)
  scale = jnp.max(jnp.linalg.norm(xm, axis=1))
  y = (xm - center[None, :]) / jnp.where(cnorm > 0, cnorm, 1.0)
  coords = _manifold_coordinates(y)  # (M, M): point j -> coords[j]
  s = jnp.concatenate([coords.T, jnp.ones((1, coords.shape[0]), coords.dtype)], axis=0)
  cap, rad, dim, res = _anchor_geometry(s, t, kappa, formula=formula, n_iter=n_iter, tol=tol,
                                        active_set_steps=active_set_steps)
  return cap, rad, dim, res, cnorm, scale


@functools.partial(jax.jit, static_argnames=("formula", "n_iter", "tol", "active_set_steps"))
def _all_manifolds(x, basis, t, kappa, *, formula, n_iter, tol, active_set_steps):
  one = functools.partial(_per_manifold, formula=formula, n_iter=n_iter, tol=tol,
                          active_set_steps=active_set_steps)
  return jax.vmap(one, in_axes=(0, None, 0, None))(x, basis, t, kappa)


def _check_centres(x: np.ndarray) -> None:
  """Each manifold is normalised by its centre's norm: a centre at the global mean is refused."""
  xf = x.astype(np.float64)
  centres = xf.mean(axis=1) - xf.mean(axis=(0, 1))
  cnorm = np.linalg.norm(centres, axis=1)
  scale = max(float(np.max(np.abs(xf - xf.mean(axis=(0, 1))))), np.finfo(np.float64).tiny)
  bad = cnorm <= np.sqrt(np.finfo(np.float64).eps) * scale
  if np.any(bad):
    i = int(np.argmax(bad))
    _errors.fail("manifolds", "class centres away from the global mean (each manifold is "
                 "normalised by its centre's norm)",
                 f"manifold {i} with centre norm {cnorm[i]:.3g} (points up to {scale:.3g})")


def manifold_geometry(manifolds: ArrayLike, *, key: jax.Array | int, kappa: float = 0.0,
                      n_t: int = 300, t: ArrayLike | None = None,
                      max_features: int | None = 5000, center_rank: int | None = None,
                      n_restarts: int = 5, n_subspace_steps: int = 200,
                      dimension_formula: DimensionFormula | str = DimensionFormula.MEAN_COSINE,
                      solver: DualSolver | str = DualSolver.FISTA_ACTIVE_SET,
                      n_iter: int = 2000, tol: float | None = None,
                      active_set_steps: int = 3, max_residual: float | None = None,
                      dtype=None) -> ManifoldGeometry:
  """Manifold capacity, radius, dimension and centre correlation (MFTMA) of ``P`` manifolds.

  See the module docstring for the full pipeline and formulas (PRX 2018 eqs. 16-17, 28-29;
  Cohen et al. 2020 for the centre correlations). ``kappa = 0`` and ``n_t = 300`` are the
  defaults of Stephenson et al. (2021). Rank-deficient manifolds (points in a subspace of
  dimension < M - 1, duplicated points, more points than features after the centre subspace is
  removed) are solved exactly; every anchor QP must meet ``max_residual`` or the call raises.

  Args:
    manifolds: ``(P, M, N)``: ``P >= 2`` manifolds of ``M >= 2`` points in ``N`` features,
      ``M < N`` (after the random projection), finite.
    key: PRNG key (or int seed) for the projection, the restarts and the samples ``t``.
    kappa: margin, ``kappa >= 0`` (a negative margin raises ``InvalidInputError``).
    n_t: Gaussian samples per manifold (an integer ``>= 1``).
    t: optional explicit samples ``(P, n_t, M + 1)`` (then ``n_t`` is ignored).
    max_features: wider inputs are projected to this many features by a Gaussian matrix with
      variance ``1 / max_features`` (``None``: never project).
    center_rank: dimension of the centre subspace to remove: ``None`` chooses it (the smallest
      residual correlation over ``K = 1..K_max``, stopping after three rises; ``K_max`` = the
      number of components under 95% of the centres' variance + 11, at most ``P - 2``), ``0``
      removes nothing.
    n_restarts: seeded random restarts per ``K`` (the most stable solution is kept).
    n_subspace_steps: Riemannian gradient steps per restart.
    dimension_formula: :class:`DimensionFormula`.
    solver, n_iter, tol, active_set_steps, max_residual: see :func:`solve_anchor_qp`.
    dtype: computation dtype, float32 or float64 (default: the input's floating dtype as JAX
      represents it, i.e. float32 when 64-bit types are disabled; integer input: float32).
      Float64 is recommended and needs 64-bit JAX types enabled by the caller (e.g.
      ``with jax.enable_x64(True):``); requesting it without them raises ``InvalidInputError``.

  Returns:
    :class:`ManifoldGeometry`.

  Raises:
    InvalidInputError: not ``(P, M, N)``, fewer than 2 manifolds or points, ``M >= N``,
      non-finite values, ``kappa < 0``, non-positive counts, unknown options, a class centre at
      the global mean (nothing to normalise by).
    ConvergenceError: an anchor QP whose KKT residual exceeds ``max_residual`` or is not finite
      (the manifold and sample are named), or a non-finite result.
  """
  x = np.asarray(manifolds)
  if x.dtype.kind not in "fiu" or x.dtype.kind == "b":
    _errors.fail("manifolds", "a real-valued numeric array", f"dtype {x.dtype}")
  _errors.check_rank("manifolds", x, 3)
  p, m, n = x.shape
  if p < 2:
    _errors.fail("manifolds", "at least 2 manifolds (axis 0)", f"{p}")
  if m < 2:
    _errors.fail("manifolds", "at least 2 points per manifold (axis 1)", f"{m}")
  _errors.check_finite("manifolds", x)
  if np.ndim(kappa) != 0 or not np.isfinite(kappa) or kappa < 0:
    _errors.fail("kappa", "a margin kappa >= 0", kappa)
  _check_centres(x)
  n_t = _as_count("n_t", n_t, 1)
  if max_features is not None:
    max_features = _as_count("max_features", max_features, 1)
  if center_rank is not None:
    center_rank = _as_count("center_rank", center_rank, 0)
  n_restarts = _as_count("n_restarts", n_restarts, 1)
  n_subspace_steps = _as_count("n_subspace_steps", n_subspace_steps, 0)
  n_iter = _as_count("n_iter", n_iter, 1)
  active_set_steps = _as_count("active_set_steps", active_set_steps, 0)
  tol = _as_tolerance("tol", tol)
  max_residual = _as_tolerance("max_residual", max_residual)
  n_eff = n if (max_features is None or n <= max_features) else int(max_features)
  if m >= n_eff:
    _errors.fail("manifolds", f"fewer points per manifold than features (M < N = {n_eff})",
                 f"M = {m}; use fewer points per manifold")
  formula = _errors.as_enum("dimension_formula", dimension_formula, DimensionFormula)
  solver = _errors.as_enum("solver", solver, DualSolver)
  if t is not None:
    if np.ndim(t) != 3 or np.shape(t)[0] != p or np.shape(t)[1] < 1 or np.shape(t)[2] != m + 1:
      _errors.fail("t", f"samples of shape (P={p}, n_t >= 1, M+1={m + 1})",
                   f"shape {np.shape(t)}")
    _errors.check_finite("t", t)
  if dtype is None:
    # The input's floating dtype as JAX represents it (float64 data is computed in float32
    # when 64-bit types are disabled); integer data in float32.
    dtype = jax.dtypes.canonicalize_dtype(x.dtype) if x.dtype.kind == "f" else np.float32
  try:
    dtype = jnp.dtype(dtype)
  except TypeError:
    _errors.fail("dtype", "float32 or float64", repr(dtype))
  if dtype not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
    _errors.fail("dtype", "float32 or float64", repr(dtype))
  if jax.dtypes.canonicalize_dtype(dtype) != dtype:
    _errors.fail("dtype", "float32, or float64 where JAX has 64-bit types enabled",
                 "float64 while 64-bit JAX types are disabled")
  if isinstance(key, jax.Array):
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape != (2,):
      _errors.fail("key", "a PRNG key or an int seed", f"an array of shape {key.shape}")
  elif isinstance(key, (int, np.integer)) and not isinstance(key, bool):
    key = jax.random.key(int(key))
  else:
    _errors.fail("key", "a PRNG key or an int seed", repr(key))
  k_proj, k_sub, k_t = jax.random.split(key, 3)
  xj, coords, basis, sv, rho0, t_default = _prepare(
      jnp.asarray(x, dtype), k_proj, k_t, n_features=n_eff, n_t=n_t)
  sub = _center_subspace(coords, basis, sv, rho0, key=k_sub, center_rank=center_rank,
                         n_restarts=n_restarts, n_steps=n_subspace_steps)
  if t is None:
    t = t_default
  else:
    t = jnp.asarray(t, dtype)
  tol, max_residual = _default_tolerances(dtype, tol, max_residual)
  steps = active_set_steps if solver == DualSolver.FISTA_ACTIVE_SET else 0
  cap, rad, dim, res, cnorm, scale = _all_manifolds(
      xj, jnp.asarray(sub.basis, dtype), t, jnp.asarray(kappa, dtype), formula=formula,
      n_iter=n_iter, tol=tol, active_set_steps=int(steps))
  cnorm, scale = np.asarray(cnorm), np.asarray(scale)
  tiny = np.sqrt(np.finfo(dtype).eps) * np.maximum(scale, np.finfo(dtype).tiny)
  if np.any(cnorm <= tiny):
    i = int(np.argmin(cnorm / np.maximum(scale, np.finfo(dtype).tiny)))
    _errors.fail("manifolds", "class centres away from the global mean (each manifold is "
                 "normalised by its centre's norm)",
                 f"manifold {i} with centre norm {cnorm[i]:.3g} (points up to {scale[i]:.3g})")
  _check_converged(res, max_residual, "(manifold, sample)")
  cap, rad, dim = np.asarray(cap), np.asarray(rad), np.asarray(dim)
  for name, v in (("capacity", cap), ("radius", rad), ("dimension", dim)):
    if not np.all(np.isfinite(v)):
      i = int(np.argmax(~np.isfinite(v)))
      raise _errors.ConvergenceError(
          f"manifold geometry: {name} of manifold {i} is {v[i]} (non-finite); no value is "
          "returned.")
  return ManifoldGeometry(
      capacity=jnp.asarray(1.0 / np.mean(1.0 / cap), dtype), radius=jnp.asarray(np.mean(rad)),
      dimension=jnp.asarray(np.mean(dim)),
      center_correlation=jnp.asarray(sub.correlation),
      residual_correlation=jnp.asarray(sub.residual), center_rank=sub.rank,
      capacity_per_manifold=jnp.asarray(cap), radius_per_manifold=jnp.asarray(rad),
      dimension_per_manifold=jnp.asarray(dim), max_kkt_residual=jnp.asarray(np.max(res)))


def class_manifolds(features: ArrayLike, labels: ArrayLike, *, n_per_class: int,
                    classes: ArrayLike | None = None, key: jax.Array | int = 0) -> np.ndarray:
  """Groups examples into class manifolds for :func:`manifold_geometry`.

  Args:
    features: ``(n, ...)`` activations (flattened to ``(n, N)``), finite.
    labels: ``(n,)`` integer class (or group) labels.
    n_per_class: points per manifold ``M >= 2``; each class must have at least this many
      examples.
    classes: which labels form manifolds (default: all present, sorted); at least 2, distinct,
      each present in ``labels``.
    key: seed of the random choice of examples within a class.

  Returns:
    ``(P, M, N)`` numpy array.

  Raises:
    InvalidInputError: mismatched lengths, non-finite features, fewer than 2 classes, repeated
      or absent classes, ``n_per_class < 2`` or more than a class has.
  """
  f = np.asarray(features)
  if f.ndim < 2:
    _errors.fail("features", "an array of rank >= 2 (n, N, ...)", f"shape {f.shape}")
  f = f.reshape((f.shape[0], -1))
  _errors.check_finite("features", f)
  y = np.asarray(labels)
  _errors.check_rank("labels", y, 1)
  _errors.check_same_leading(("features", "labels"), f, y)
  n_per_class = _as_count("n_per_class", n_per_class, 2)
  if classes is None:
    cls = np.unique(y)
  else:
    cls = np.asarray(classes).reshape(-1)
    if len(np.unique(cls)) != len(cls):
      _errors.fail("classes", "distinct class labels", f"{cls.tolist()} (repeated)")
    absent = [c for c in cls.tolist() if not np.any(y == c)]
    if absent:
      _errors.fail("classes", "labels present in `labels`",
                   f"{absent} absent (present: {np.unique(y).tolist()[:20]})")
  if len(cls) < 2:
    _errors.fail("classes", "at least 2 classes (manifolds)", f"{len(cls)} ({cls.tolist()})")
  members = [np.flatnonzero(y == c) for c in cls]
  for c, idx in zip(cls, members):
    if idx.size < n_per_class:
      _errors.fail("n_per_class", f"at most the {idx.size} examples of class {c}",
                   n_per_class)
  if isinstance(key, jax.Array):
    k = key
  elif isinstance(key, (int, np.integer)) and not isinstance(key, bool):
    k = jax.random.key(int(key))
  else:
    _errors.fail("key", "a PRNG key or an int seed", repr(key))
  seed = int(jax.random.randint(k, (), 0, 2 ** 31 - 1))
  rng = np.random.default_rng(seed)
  return np.stack([f[rng.choice(idx, n_per_class, replace=False)] for idx in members])
