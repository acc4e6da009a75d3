"""Sample-wise information of a linearized network: exact leave-one-out for all n examples at once.

Harutyunyan, Achille, Paolini, Majumder, Ravichandran, Bhotika & Soatto, "Estimating
informativeness of samples with smooth unique information", ICLR 2021 (arXiv 2101.06640).

Conventions (those of :func:`gbounds.ntk.gd_coefficients`). The loss is a SUM over the ``n`` examples with weight
decay centred at the starting weights ``w0``,
``L(w) = 1/2 sum_i ||f_lin(w, x_i) - y_i||^2 + lambda/2 ||w - w0||^2``, outputs ``k >= 1``, rows
sample-major (row ``i k + c`` is example ``i``, output ``c``). With ``Theta = J J^T``,
``A = Theta + lambda I`` and ``r0 = f_lin(w0, X) - Y``, ``t`` steps of GD of size ``eta`` give

.. math::
   w_t = w_0 + J^\\top a, \\qquad a = -\\varphi_t(A)\\, r_0,

and training without example ``i`` (rows ``R_i``, the rest ``K``) gives
``a^{(-i)} = -phi_t(A_KK) r0_K``. Everything below is a function of the leave-one-out
coefficient difference ``c_i = a - embed(a^{(-i)})`` (zero-filled on ``R_i``):

.. math::
   w - w_{-i} = J^\\top c_i, \\quad \\lVert w - w_{-i}\\rVert^2 = c_i^\\top \\Theta c_i, \\quad
   f_w(x) - f_{w_{-i}}(x) = \\Theta(x, X)\\, c_i.

Sample information (nats):

* smooth SI with isotropic noise ``Sigma = sigma^2 I`` (Def. 3.1):
  ``SI_i = ||w - w_-i||^2 / (2 sigma^2)``;
* functional SI on ``m`` held-out points (Def. 4.1, noise ``sigma_f^2 I`` on predictions):
  ``F-SI_i = 1/(2 sigma_f^2 m) sum_j ||f_w(x_j) - f_{w_-i}(x_j)||^2``;
* SI with the SGD steady-state covariance (Prop. 5.1):
  ``SI_i = 1/2 (w - w_-i)^T Sigma^+ (w - w_-i)`` with ``H Sigma + Sigma H = (eta n^2 / b) Lambda``,
  ``H = J^T J + lambda I``, ``Lambda`` the covariance of the per-example gradients
  ``g_i = J_i^T (f_t(x_i) - y_i)`` at the end of training and ``b`` the batch size. (With the
  SUM loss an SGD step uses ``(n/b) sum_{batch} grad l_i``, whose covariance is
  ``(n^2/b) Lambda``.) Solved in a ``d'``-dimensional subspace: exactly when ``d`` is small,
  else after a seeded random orthonormal projection of the Jacobian (a normalised count
  sketch: each parameter is hashed to one of ``d'`` buckets with a random sign).

Leave-one-out algorithms (:class:`LooMethod`). All run on the host in numpy float64
(LAPACK/BLAS) whatever the dtype of the kernel, and return results in the kernel's dtype
(float32 kernels: float64 algebra, float32 results). Each returns the exact answer to its
tolerance or raises; none returns an unverified number.

* ``DOWNDATE`` (``t = inf``, ``A`` nonsingular): with ``B = A^{-1}``,
  ``c_i = B[:, R] (B_RR)^{-1} a_R`` (block inverse downdate), ``O((nk)^3)`` for all ``n``;
  each row's backward error ``||A_KK x + r_K|| / (||A|| ||x|| + ||r_K||)`` is checked (one
  matrix product for all rows) and rows above ``1e3 eps nk`` are recomputed by ``EIGH``.
* ``LANCZOS`` (any ``t``): in the eigenbasis ``A = V diag(mu) V^T``, removing example ``i`` is
  the projection ``P_i = I - Z_i Z_i^T`` with ``Z_i = V[R_i, :]^T``, and
  ``V^T embed(phi_t(A_KK) r0_K) = phi_t(P_i diag(mu) P_i) P_i V^T r0``. Each left-out
  example runs its own Lanczos recurrence (batched over examples), with FULL
  reorthogonalisation (classical Gram-Schmidt, twice) against all its previous vectors:
  without it (the implementation before issue #11) the recurrence loses orthogonality on the
  ill-conditioned NTKs of real networks, drifts with the rounding order of the batch, and
  two Krylov orders agree while both are wrong (errors up to 1e4 on an MLP's NTK on MNIST,
  with a reported error of 5e-14). Every few steps the order-``m`` approximation is compared
  with the previous checkpoint's, in the Euclidean and the ``Theta`` norm relative to
  ``c_i``; a row is kept when both are below ``rtol``, and recomputed by ``EIGH`` if it has
  not converged by ``krylov_steps``. Cost about ``O(n m^2 nk)`` after one ``O((nk)^3)``
  eigendecomposition (``m`` about 60-160 on MNIST NTKs at ``t = 2000``). At ``t = inf`` on a
  singular ``A`` (a pseudo-inverse) it uses ``EIGH``.
* ``EIGH``: a fresh eigendecomposition of every reduced kernel ``A_KK``, ``O(n (nk)^3)``: the
  per-example approach of the public code; the reference and the fallback.
* ``AUTO``: ``t = inf``: ``DOWNDATE`` if ``mu_min(A) > 1e3 eps nk mu_max(A)``, else ``EIGH``
  (singular kernels at ``lambda = 0``: minimum-norm least squares); finite ``t``:
  ``LANCZOS``. Tested against one eigendecomposition per left-out set on the NTKs of an MLP
  and a CNN on MNIST 4-vs-9 (``n`` = 250 and 1,000; ``t`` finite and infinite; ``lambda`` 0
  and > 0; float32 and float64) and against minimum-norm retraining on singular kernels.

Learning-rate convention of the leave-one-out runs (:class:`LooConvention`): ``SUM`` (default)
keeps the summed-loss ``eta`` and ``lambda`` for the runs on ``n - 1`` examples; ``MEAN``
keeps the mean-loss recipe, as the public code does: ``eta n/(n-1)`` and ``lambda (n-1)/n``.

Step sizes: discrete-time GD diverges for ``eta lambda_max(A) >= 2``; such a
``learning_rate`` is rejected (also at ``t = inf``, where the closed form would report the
converged solution divergent GD never reaches).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.core  # explicit: jax/__init__ imports it, then `del`s the name (hidden from pyright)
import jax.numpy as jnp
import numpy as np
import scipy.linalg
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh

from gbounds._src import batching as _batching
from gbounds._src import errors as _errors
from gbounds._src import io as _io
from gbounds._src import numerics as _numerics
from gbounds._src import results as _results
from gbounds.info import _model
from gbounds.ntk import (
  Time,
  check_dynamics_args,
  check_step_size,
  empirical_ntk_fn,
  jacobian_fn,
  phi_host,
  row_sharding,
  sharded_ntk_fn,
)


class LooMethod(enum.IntEnum):
  """How the leave-one-out coefficients are computed (see the module docstring).

  Every method returns the exact leave-one-out answer (to its stated tolerance) or raises;
  the iterative one checks its convergence per example and falls back to ``EIGH`` for any
  example that does not meet ``rtol`` (``LeaveOneOut.exact_fallbacks`` counts them).

  Attributes:
    AUTO: ``t = inf``: ``DOWNDATE`` when ``A`` is safely nonsingular, else ``EIGH`` (a
      singular kernel at ``lambda = 0``: minimum-norm least squares). Finite ``t``:
      ``LANCZOS``. Tested on the NTKs of real networks (MLP and CNN on MNIST).
    DOWNDATE: exact block inverse downdate, ``O((nk)^3)`` for all ``n``; ``t = inf`` and a
      nonsingular ``A`` only (raises otherwise); every row is verified by its residual.
    LANCZOS: batched Lanczos with full reorthogonalisation in the eigenbasis of ``A``, any
      ``t``; about ``O(n m^2 nk)`` for all ``n`` after one eigendecomposition. At ``t = inf``
      on a singular ``A`` (a pseudo-inverse, which no Krylov method resolves) it uses
      ``EIGH``.
    EIGH: one eigendecomposition per left-out example, ``O(n (nk)^3)``: the public code's
      approach; the reference.
  """
  AUTO = 0
  DOWNDATE = 1
  LANCZOS = 2
  EIGH = 3


class LooConvention(enum.IntEnum):
  """Which recipe the ``n`` leave-one-out runs on ``n - 1`` examples keep fixed.

  Attributes:
    SUM: the SUMMED-loss step ``eta`` and weight decay ``lambda`` (the default, and this
      module's convention throughout): each run is GD on ``1/2 sum_{j != i} ||f - y_j||^2 +
      lambda/2 ||w - w0||^2`` with step ``eta``.
    MEAN: the MEAN-loss recipe ``(lr, lambda_mean)`` with ``eta = lr / n`` and
      ``lambda = n lambda_mean`` on all ``n`` examples, as in the public code of
      Harutyunyan et al. (it retrains each left-out set with the same ``lr`` on the mean over
      ``n - 1`` examples): the runs use ``eta' = eta n / (n - 1)`` and
      ``lambda' = lambda (n - 1) / n``. The full-data run is the same under both.
  """
  SUM = 1
  MEAN = 2


class Expansion(enum.IntEnum):
  """Where the network is linearized.

  Attributes:
    INITIAL: at the starting weights ``params`` (the paper; for a pretrained feature extractor
      pass the pretrained weights as ``params``: fine-tuning starts there).
    TRAINED: at given trained weights ``w*`` (``trained_params``), while training of the
      linearized model ``f(w*) + J(w*)(w - w*)`` still starts from ``params``.
  """
  INITIAL = 1
  TRAINED = 2


class LeaveOneOut(NamedTuple):
  """Leave-one-out coefficients of the linearized network.

  Attributes:
    coefficients: ``a``, ``(nk,)``: ``w_t = w0 + J^T a``.
    loo_coefficients: ``C``, ``(len(indices), nk)``; row ``j`` is ``c_i = a - embed(a^(-i))``
      for ``i = indices[j]``, so that ``w - w_-i = J^T c_i``.
    krylov_steps: the largest Lanczos order used (0 when no row used Lanczos).
    krylov_error: the largest estimated relative error of a Lanczos row that was kept
      (every kept row met ``rtol``; 0 when no row used Lanczos).
    method: the method that was run (``AUTO`` resolved; under ``jit`` the requested one).
    exact_fallbacks: rows recomputed by ``EIGH`` because the requested method could not
      certify them (Lanczos not converged, a downdate residual too large, or ``t = inf`` on a
      singular kernel).
  """
  coefficients: jax.Array | np.ndarray  # numpy after from_dict
  loo_coefficients: jax.Array | np.ndarray
  krylov_steps: int
  krylov_error: jax.Array | np.ndarray
  method: LooMethod = LooMethod.AUTO
  exact_fallbacks: int = 0

  # duplicates: thin to_dict/from_dict wrappers over gbounds._src.results (see ntk._dynamics).
  def to_dict(self) -> dict[str, Any]:
    """This result as a JSON-ready dict (``method`` as its enum value).

    Returns:
      ``{field: value}`` with arrays as nested lists (``gbounds._src.results``).
    """
    return _results.to_dict(self)

  @classmethod
  def from_dict(cls, data: dict[str, Any]) -> LeaveOneOut:
    """Rebuilds the result from :meth:`to_dict` output.

    Args:
      data: the dict.

    Returns:
      A :class:`LeaveOneOut` of numpy arrays (``method`` a :class:`LooMethod`).
    """
    return cls(np.asarray(data["coefficients"]), np.asarray(data["loo_coefficients"]),
               int(data["krylov_steps"]), np.asarray(data["krylov_error"]),
               LooMethod(data.get("method", LooMethod.AUTO)),
               int(data.get("exact_fallbacks", 0)))


# ----------------------------------------------------------------------------- validation


def _concrete(x) -> bool:
  return not isinstance(x, jax.core.Tracer)


def _check_indices(indices, n: int) -> np.ndarray | jax.Array:
  if indices is None:
    return np.arange(n)
  if _concrete(indices):
    idx = np.asarray(indices)
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
      _errors.fail("indices", "a non-empty 1-d array of integer example indices",
                   f"shape {idx.shape}, dtype {idx.dtype}")
    if idx.min() < 0 or idx.max() >= n:
      _errors.fail("indices", f"example indices in [0, {n})", f"[{idx.min()}, {idx.max()}]")
    return idx
  if np.ndim(indices) != 1 or not jnp.issubdtype(indices.dtype, jnp.integer):
    _errors.fail("indices", "a 1-d array of integer example indices",
                 f"shape {np.shape(indices)}, dtype {indices.dtype}")
  return indices


def _check_kernel(theta, residual0, num_outputs):
  _errors.check_rank("theta", theta, 2)
  _errors.check_rank("residual0", residual0, 1)
  for name, v in (("theta", theta), ("residual0", residual0)):
    kind = np.dtype(v.dtype).kind if hasattr(v, "dtype") else np.asarray(v).dtype.kind
    if kind not in "fiu":
      _errors.fail(name, "a real-valued (floating or integer) array",
                   f"dtype {getattr(v, 'dtype', np.asarray(v).dtype)}")
  nk = np.shape(residual0)[0]
  if np.shape(theta) != (nk, nk):
    _errors.fail("theta", f"shape ({nk}, {nk}) to match residual0", np.shape(theta))
  if (isinstance(num_outputs, bool) or not isinstance(num_outputs, (int, np.integer))
      or num_outputs < 1 or nk % num_outputs):
    _errors.fail("num_outputs", f"a positive integer divisor of len(residual0) = {nk}",
                 repr(num_outputs))
  n = nk // int(num_outputs)
  if n < 2:
    _errors.fail("theta", "a kernel of at least 2 examples for leave-one-out", f"{n} example(s)")
  for name, v in (("theta", theta), ("residual0", residual0)):
    if _concrete(v):
      _errors.check_finite(name, v)
  if _concrete(theta):
    th = np.asarray(theta, np.float64)
    scale = max(float(np.max(np.abs(th))), 1e-300)
    asym = float(np.max(np.abs(th - th.T))) / scale
    if asym > _symmetry_tol(theta):
      _errors.fail("theta", "a symmetric kernel", f"max |theta - theta^T| / max |theta| = "
                   f"{asym:.3g}")
  return n


def _input_eps(x) -> float:
  dt = np.dtype(x.dtype) if hasattr(x, "dtype") else np.asarray(x).dtype
  return float(np.finfo(dt).eps) if dt.kind == "f" else float(np.finfo(np.float64).eps)


def _symmetry_tol(theta) -> float:
  return 1e3 * _input_eps(theta)


def _check_rtol(rtol) -> None:
  r = np.asarray(rtol, dtype=float) if not isinstance(rtol, (str, bytes)) else np.nan
  if np.ndim(r) != 0 or not np.isfinite(r) or not 0 < r < 1:
    _errors.fail("rtol", "a relative tolerance in (0, 1)", repr(rtol))


def _check_positive_int_or_none(name: str, value) -> None:
  if value is None:
    return
  if (isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating))
      or not np.isfinite(value) or int(value) != value or value < 1):
    _errors.fail(name, "a positive integer or None", repr(value))


def _check_steps(t, time) -> None:
  """Discrete time counts whole steps."""
  if time == Time.DISCRETE and _concrete(t):
    tv = float(np.asarray(t, dtype=float))
    if np.isfinite(tv) and tv != np.round(tv):
      _errors.fail("t", "a whole number of gradient steps (time='discrete'), or inf", t)


# ----------------------------------------------------------------------------- host callbacks


def _as_bytes(z: np.ndarray, dtype: np.dtype) -> np.ndarray:
  """``z`` in ``dtype`` as raw bytes (``(..., itemsize)`` uint8), for a ``pure_callback``.

  Callback outputs cross as bytes and are bit-cast back (as in ``gbounds._src.numerics.eigh``):
  JAX re-canonicalises callback outputs in the callback's own thread, where a caller's
  ``jax.enable_x64(True)`` context is not in effect.
  """
  return np.ascontiguousarray(np.asarray(z).astype(dtype)).view(np.uint8).reshape(
      np.shape(z) + (dtype.itemsize,))


# ----------------------------------------------------------------------------- LOO algorithms
#
# All leave-one-out algebra runs on the host in numpy float64 (LAPACK/BLAS), whatever the
# precision of the kernel: a float32 kernel gets the float64 algebra and float32 results.

_MEMORY_BUDGET = 256 * 2 ** 20  # bytes of work arrays per chunk of left-out examples


class _HostLoo(NamedTuple):
  a: np.ndarray           # (nk,) full-data coefficients
  c: np.ndarray           # (s, nk) leave-one-out differences
  steps: int
  error: float
  method: LooMethod
  fallbacks: int


class _Problem(NamedTuple):
  theta: np.ndarray       # (nk, nk) symmetrised, float64
  r0: np.ndarray          # (nk,)
  k: int
  n: int
  mu_theta: np.ndarray    # eigenvalues of Theta
  vectors: np.ndarray     # its eigenvectors (also those of A and A')
  rho: np.ndarray         # V^T r0
  a_v: np.ndarray         # full-data coefficients in the eigenbasis
  eta_loo: float          # step of the leave-one-out runs (convention)
  lam_loo: float          # weight decay of the leave-one-out runs
  t: float
  time: Time


def _rows_of(i, k):
  return np.arange(i * k, (i + 1) * k)


def _loo_eigh(p: _Problem, idx: np.ndarray, chunk: int) -> np.ndarray:
  """One eigendecomposition of the reduced ``A'_KK`` per left-out example (the reference)."""
  nk, k = p.theta.shape[0], p.k
  m = nk - k
  a = p.vectors @ p.a_v
  out = np.empty((len(idx), nk))
  amat = p.theta + p.lam_loo * np.eye(nk)
  per = max(1, min(chunk, _MEMORY_BUDGET // max(1, 24 * m * m)))
  for start, stop in _batching.chunk_bounds(len(idx), per):
    sub = idx[start:stop]
    keep = np.stack([np.delete(np.arange(nk), _rows_of(int(i), k)) for i in sub])  # (B, m)
    akk = amat[keep[:, :, None], keep[:, None, :]]
    # Pure numpy float64 on host data (the deliberate host LOO algebra), not a JAX op: LAPACK
    # directly, which is what gbounds._src.numerics.eigh would call on the CPU anyway.
    mu, v = np.linalg.eigh(akk)
    ph = phi_host(mu, learning_rate=p.eta_loo, t=p.t, time=p.time)
    rk = p.r0[keep]
    a_loo = -np.einsum("bij,bj->bi", v, ph * np.einsum("bji,bj->bi", v, rk))
    c = np.broadcast_to(a, (len(sub), nk)).copy()
    np.put_along_axis(c, keep, np.take_along_axis(c, keep, axis=1) - a_loo, axis=1)
    out[start:start + len(sub)] = c
  return out


def _loo_downdate(p: _Problem, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """``t = inf``, ``A'`` nonsingular: ``(A'_KK)^{-1} = B_KK - B_KR (B_RR)^{-1} B_RK``.

  (``B = A'^{-1}``.)

  Returns the rows and a per-row backward error ``||A'_KK x + r_K|| / (||A'|| ||x|| + ||r||)``
  of the left-out solutions ``x`` (a certificate, computed with one matrix product).
  """
  nk, k, n = p.theta.shape[0], p.k, p.n
  mu = p.mu_theta + p.lam_loo
  v = p.vectors
  bmat = (v / mu[None, :]) @ v.T
  bmat = 0.5 * (bmat + bmat.T)
  a = v @ p.a_v
  a_loo_full = -(bmat @ p.r0)  # the full-data solution with weight decay lam'
  b3 = bmat.reshape(nk, n, k)[:, idx, :]  # (nk, s, k)
  brr = bmat.reshape(n, k, n, k)[idx, :, idx, :]  # (s, k, k)
  a_r = a_loo_full.reshape(n, k)[idx]
  sol = np.linalg.solve(brr, a_r[..., None])[..., 0]
  # a^(-i) (embedded) = a'_full - B[:, R] (B_RR)^{-1} a'_R, zero on R up to round-off.
  a_loo = a_loo_full[None, :] - np.einsum("xsk,sk->sx", b3, sol)
  for j, i in enumerate(idx):
    a_loo[j, _rows_of(int(i), k)] = 0.0
  amat_norm = float(np.max(mu))
  res = a_loo @ p.theta + p.lam_loo * a_loo + p.r0[None, :]
  for j, i in enumerate(idx):
    res[j, _rows_of(int(i), k)] = 0.0
  rk_norm = np.sqrt(np.maximum(np.sum(p.r0 ** 2) - np.sum(p.r0.reshape(n, k)[idx] ** 2, 1), 0.0))
  backward = np.linalg.norm(res, axis=1) / np.maximum(
      amat_norm * np.linalg.norm(a_loo, axis=1) + rk_norm, 1e-300)
  return a[None, :] - a_loo, backward


def _lanczos_rows(p: _Problem, idx: np.ndarray, *, max_steps: int, rtol: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Batched Lanczos with full reorthogonalisation for ``u_i = phi(P_i D P_i) P_i rho``.

  In the eigenbasis ``A' = V diag(mu') V^T`` leaving out rows ``R_i`` is the projection
  ``P_i = I - Z_i Z_i^T``, ``Z_i = V[R_i, :]^T``, and ``c_i = a_v + u_i`` (eigenbasis). Each
  row's Lanczos basis is reorthogonalised twice against all its previous vectors (classical
  Gram-Schmidt, twice), so the Krylov approximation is that of exact arithmetic. At
  checkpoints the approximation of order ``m`` is compared with the previous checkpoint's;
  the difference, relative to ``||c_i||`` and in the ``Theta`` norm relative to
  ``||c_i||_Theta`` (both computed in the small space), must be below ``rtol``. A breakdown
  (``beta = 0``) means the Krylov space is invariant and the answer exact.

  Returns:
    ``(u, error, converged, steps)``, ``u`` of shape ``(s, nk)`` in the eigenbasis.
  """
  nk, k = p.theta.shape[0], p.k
  s = len(idx)
  mu = p.mu_theta + p.lam_loo
  mu_th = p.mu_theta
  zs_all = p.vectors.reshape(p.n, k, nk)[idx].transpose(0, 2, 1)  # (s, nk, k)
  m_max = max(1, min(max_steps, nk - k))
  checkpoints = sorted({8, 16, 24, 32, *range(48, m_max + 1, 16), m_max})
  th_a = mu_th * p.a_v
  a2 = float(p.a_v @ p.a_v)
  ath = float(p.a_v @ th_a)
  scale = float(np.max(np.abs(mu))) if mu.size else 1.0
  u = np.zeros((s, nk))
  err = np.full(s, np.inf)
  conv = np.zeros(s, bool)
  steps = np.zeros(s, int)

  def proj(z, x):
    return x - np.einsum("bnk,bk->bn", z, np.einsum("bnk,bn->bk", z, x))

  rows = np.arange(s)
  zs = zs_all
  r = proj(zs, np.broadcast_to(p.rho, (s, nk)))
  beta0 = np.linalg.norm(r, axis=1)
  zero = beta0 <= 0
  conv[zero], err[zero] = True, 0.0
  live = ~zero
  rows, zs, r, beta0 = rows[live], zs[live], r[live], beta0[live]
  cap = min(m_max + 1, 64)
  q = np.zeros((len(rows), cap, nk))
  q[:, 0] = r / beta0[:, None] if len(rows) else r
  alphas = np.zeros((len(rows), m_max))
  betas = np.zeros((len(rows), m_max))
  h_a = np.zeros((len(rows), m_max + 1))
  h_ta = np.zeros((len(rows), m_max + 1))
  h_a[:, 0] = q[:, 0] @ p.a_v
  h_ta[:, 0] = q[:, 0] @ th_a
  y_prev = np.zeros((len(rows), 0))
  err_prev = np.full(len(rows), np.inf)
  for j in range(m_max):
    if len(rows) == 0:
      break
    if j + 1 >= cap:  # grow the basis storage
      new_cap = min(m_max + 1, 2 * cap)
      q = np.concatenate([q, np.zeros((len(rows), new_cap - cap, nk))], axis=1)
      cap = new_cap
    qj = q[:, j]
    w = proj(zs, mu[None, :] * qj)
    al = np.sum(qj * w, axis=1)
    w -= al[:, None] * qj
    if j > 0:
      w -= betas[:, j - 1, None] * q[:, j - 1]
    basis = q[:, :j + 1]
    for _ in range(2):
      w -= np.einsum("bmn,bm->bn", basis, np.einsum("bmn,bn->bm", basis, w))
    w = proj(zs, w)
    b = np.linalg.norm(w, axis=1)
    alphas[:, j], betas[:, j] = al, b
    broke = b <= 1e-13 * scale
    q[:, j + 1] = np.where(broke[:, None], 0.0, w / np.where(broke, 1.0, b)[:, None])
    h_a[:, j + 1] = q[:, j + 1] @ p.a_v
    h_ta[:, j + 1] = q[:, j + 1] @ th_a
    m = j + 1
    at_check = m in checkpoints
    if not (at_check or broke.any()):
      continue
    y_now = np.zeros((len(rows), m))
    finished = np.zeros(len(rows), bool)
    for pos in range(len(rows)):
      if not (at_check or broke[pos]):
        continue
      if m == 1:
        theta_r, svec = alphas[pos, :1], np.ones((1, 1))
      else:
        theta_r, svec = scipy.linalg.eigh_tridiagonal(alphas[pos, :m], betas[pos, :m - 1])
      ph = phi_host(theta_r + 0.0, learning_rate=p.eta_loo, t=p.t, time=p.time)
      y = beta0[pos] * (svec @ (ph * svec[0]))
      y_now[pos] = y
      if broke[pos]:
        finished[pos], e_rel = True, 0.0
      elif y_prev.shape[1] == 0 or not np.any(y_prev[pos]):
        e_rel = np.inf
      else:
        e = y.copy()
        e[:y_prev.shape[1]] -= y_prev[pos]
        tri = (np.diag(alphas[pos, :m]) + np.diag(betas[pos, :m - 1], 1)
               + np.diag(betas[pos, :m - 1], -1) - p.lam_loo * np.eye(m))  # Q^T Theta Q
        c2 = a2 + 2 * h_a[pos, :m] @ y + y @ y
        cth = ath + 2 * h_ta[pos, :m] @ y + y @ (tri @ y)
        e2 = float(e @ e)
        eth = max(float(e @ (tri @ e)), 0.0)
        e_rel = max(np.sqrt(e2 / max(c2, 1e-300)), np.sqrt(eth / max(cth, 1e-300)))
        finished[pos] = e_rel <= rtol
      err_prev[pos] = e_rel
    if m == m_max:
      finished[:] = True  # converged or not: decided below
    if at_check:
      y_prev = y_now
    if finished.any():
      for pos in np.flatnonzero(finished):
        row = rows[pos]
        ok = bool(broke[pos]) or err_prev[pos] <= rtol
        conv[row], err[row], steps[row] = ok, err_prev[pos], m
        if ok:
          u[row] = y_now[pos] @ q[pos, :m]
      keep = ~finished
      rows, zs, q, beta0 = rows[keep], zs[keep], q[keep], beta0[keep]
      alphas, betas, h_a, h_ta = alphas[keep], betas[keep], h_a[keep], h_ta[keep]
      y_prev, err_prev = y_prev[keep], err_prev[keep]
  return u, err, conv, steps


def _spectral_problem(theta, r0, *, k, eta, t, lam, time, convention) -> _Problem:
  th = np.asarray(theta, np.float64)
  th = 0.5 * (th + th.T)
  r = np.asarray(r0, np.float64)
  nk = th.shape[0]
  n = nk // k
  # Pure numpy float64 on host data (the deliberate host LOO algebra), not a JAX op.
  mu_theta, vectors = np.linalg.eigh(th)
  top = float(np.max(np.abs(mu_theta)))
  if mu_theta[0] < -np.sqrt(_input_eps(theta)) * top:
    _errors.fail("theta", "a positive semi-definite kernel", f"smallest eigenvalue "
                 f"{mu_theta[0]:.3g} (largest {mu_theta[-1]:.3g})")
  mu_theta = np.maximum(mu_theta, 0.0)
  if convention == LooConvention.MEAN:
    eta_loo, lam_loo = eta * n / (n - 1), lam * (n - 1) / n
  else:
    eta_loo, lam_loo = eta, lam
  check_step_size(eta, mu_theta[-1] + lam, time=time)
  check_step_size(eta_loo, mu_theta[-1] + lam_loo, time=time,
                  what="Theta + weight_decay' I of the leave-one-out runs (convention MEAN: "
                       "learning_rate n/(n-1), weight_decay (n-1)/n)")
  rho = vectors.T @ r
  a_v = -phi_host(mu_theta + lam, learning_rate=eta, t=t, time=time) * rho
  return _Problem(th, r, k, n, mu_theta, vectors, rho, a_v, eta_loo, lam_loo, t, time)


def _is_singular(p: _Problem) -> bool:
  """``A'`` too close to singular for an inverse (the AUTO rule of ``DOWNDATE``)."""
  mu = p.mu_theta + p.lam_loo
  nk = mu.shape[0]
  return not mu[0] > 1e3 * np.finfo(np.float64).eps * nk * mu[-1]


def _loo_host(theta, r0, idx, *, k: int, eta: float, t: float, lam: float, time: Time,
              method: LooMethod, convention: LooConvention, rtol: float,
              max_steps: int | None, chunk: int) -> _HostLoo:
  """Leave-one-out in numpy float64 (see :func:`leave_one_out`)."""
  eta, t, lam = float(eta), float(t), float(lam)
  p = _spectral_problem(theta, r0, k=k, eta=eta, t=t, lam=lam, time=time, convention=convention)
  idx = np.asarray(idx, np.int64)
  nk = p.theta.shape[0]
  a = p.vectors @ p.a_v
  t_inf = np.isinf(t)
  singular = _is_singular(p)
  if method == LooMethod.AUTO:
    method = (LooMethod.EIGH if singular else LooMethod.DOWNDATE) if t_inf else LooMethod.LANCZOS
  if method == LooMethod.DOWNDATE:
    if not t_inf:
      _errors.fail("method", "LANCZOS, EIGH or AUTO for finite t (DOWNDATE needs t = inf)",
                   "DOWNDATE")
    if singular:
      mu = p.mu_theta + p.lam_loo
      _errors.fail("method", "a nonsingular A = Theta + weight_decay I for DOWNDATE (use "
                   "method AUTO or EIGH: minimum-norm least squares)",
                   f"DOWNDATE with eigenvalues of A in [{mu[0]:.3g}, {mu[-1]:.3g}]")
    c, backward = _loo_downdate(p, idx)
    bad = np.flatnonzero(~(backward <= 1e3 * np.finfo(np.float64).eps * nk))
    if bad.size:
      c[bad] = _loo_eigh(p, idx[bad], chunk)
    return _HostLoo(a, c, 0, 0.0, method, int(bad.size))
  if method == LooMethod.EIGH or (t_inf and singular):
    return _HostLoo(a, _loo_eigh(p, idx, chunk), 0, 0.0, method,
                    0 if method == LooMethod.EIGH else len(idx))
  # LANCZOS
  if max_steps is None:
    max_steps = max(256, nk // 3)
  c = np.empty((len(idx), nk))
  errs, steps_used, fallback = [], [0], []
  per_row = 8 * nk * (min(max_steps, nk) + 8)
  per = max(1, min(chunk, _MEMORY_BUDGET // per_row))
  for start, stop in _batching.chunk_bounds(len(idx), per):
    sub = idx[start:stop]
    u, err, conv, steps = _lanczos_rows(p, sub, max_steps=max_steps, rtol=rtol)
    c[start:start + len(sub)] = (p.a_v[None, :] + u) @ p.vectors.T
    errs.extend(err[conv].tolist())
    steps_used.append(int(steps.max()))
    fallback.extend((start + np.flatnonzero(~conv)).tolist())
  if fallback:
    fb = np.asarray(fallback)
    c[fb] = _loo_eigh(p, idx[fb], chunk)
  return _HostLoo(a, c, max(steps_used), max(errs, default=0.0), method, len(fallback))


def _out_dtype(theta):
  dt = theta.dtype if hasattr(theta, "dtype") else np.asarray(theta).dtype
  if jnp.issubdtype(dt, jnp.floating):
    return jnp.dtype(dt)
  return jnp.dtype(jnp.asarray(0.0).dtype)


def leave_one_out(theta: jax.Array, residual0: jax.Array, *, num_outputs: int = 1,
                  learning_rate, t, weight_decay=0.0, time: Time | str = Time.DISCRETE,
                  method: LooMethod | str = LooMethod.AUTO, indices=None,
                  krylov_steps: int | None = None, rtol: float = 1e-11,
                  chunk_size: int | None = None,
                  convention: LooConvention | str = LooConvention.SUM) -> LeaveOneOut:
  """Exact leave-one-out coefficients of the linearized network for many examples at once.

  ``a = -phi_t(A) r0`` and, for each ``i`` in ``indices``, ``c_i = a - embed(a^(-i))`` with
  ``a^(-i) = -phi'_t(A'_KK) r0_K``, where ``A' = Theta + lambda' I`` and ``phi'`` uses step
  ``eta'`` (``convention``: ``SUM`` keeps ``eta' = eta``, ``lambda' = lambda``; ``MEAN``
  keeps the mean-loss recipe, ``eta' = eta n/(n-1)``, ``lambda' = lambda (n-1)/n``). The
  module docstring gives the formulas and algorithms.

  Precision: the kernel algebra always runs in float64 on the host (LAPACK), whatever the
  dtype of ``theta``; results come back in the dtype of ``theta`` (float32 in, float32 out).
  Works under ``jit`` (through a host callback; then ``t`` may be traced only for
  ``LANCZOS`` and ``EIGH``, and errors surface when the computation runs).

  Args:
    theta: ``(nk, nk)`` training NTK, sample-major, symmetric positive semi-definite.
    residual0: ``(nk,)``: ``f_lin(w0, X) - Y`` flattened.
    num_outputs: ``k``.
    learning_rate: ``eta > 0`` for the SUMMED loss; in discrete time
      ``eta lambda_max(Theta + lambda I) < 2`` (larger steps diverge and are rejected).
    t: steps (discrete, a whole number) or time (continuous), ``inf`` allowed.
    weight_decay: ``lambda >= 0``, centred at ``w0``.
    time: :class:`~gbounds.ntk.Time`.
    method: :class:`LooMethod`.
    indices: examples to leave out (default all ``n``).
    krylov_steps: the largest Lanczos order (default ``max(256, nk/3)``); rows that have not
      converged by then are recomputed exactly (``EIGH``).
    rtol: Lanczos tolerance on the estimated relative error of each row ``c_i`` (in the
      Euclidean and the ``Theta`` norm).
    chunk_size: left-out examples processed at once (bounds memory; default 512; the results
      do not depend on it).
    convention: :class:`LooConvention`, the learning-rate convention of the leave-one-out
      runs (default ``SUM``).

  Returns:
    :class:`LeaveOneOut`.

  Raises:
    InvalidInputError: bad shapes or values (naming the argument), a divergent
      ``learning_rate``, ``DOWNDATE`` at finite ``t`` or on a singular kernel.
  """
  time = _errors.as_enum("time", time, Time)
  method = _errors.as_enum("method", method, LooMethod)
  convention = _errors.as_enum("convention", convention, LooConvention)
  check_dynamics_args(learning_rate=learning_rate, t=t, weight_decay=weight_decay)
  _check_steps(t, time)
  n = _check_kernel(theta, residual0, num_outputs)
  k = int(num_outputs)
  idx = _check_indices(indices, n)
  _check_positive_int_or_none("krylov_steps", krylov_steps)
  _check_positive_int_or_none("chunk_size", chunk_size)
  _check_rtol(rtol)
  chunk = 512 if chunk_size is None else int(chunk_size)
  max_steps = None if krylov_steps is None else int(krylov_steps)
  if not _concrete(t) and method in (LooMethod.AUTO, LooMethod.DOWNDATE):
    _errors.fail("t", "a concrete (non-traced) time for methods AUTO and DOWNDATE", "a tracer")
  dtype = _out_dtype(theta)
  loo_host = functools.partial(_loo_host, k=k, time=time, method=method, convention=convention,
                               rtol=float(rtol), max_steps=max_steps, chunk=chunk)
  if _errors.is_concrete(theta, residual0, idx, learning_rate, t, weight_decay):
    res = loo_host(np.asarray(theta), np.asarray(residual0), np.asarray(idx),
                   eta=learning_rate, t=t, lam=weight_decay)
    return LeaveOneOut(jnp.asarray(res.a, dtype), jnp.asarray(res.c, dtype), int(res.steps),
                       jnp.asarray(res.error, dtype), res.method, int(res.fallbacks))

  nk = n * k
  s = int(np.shape(idx)[0])
  b = dtype.itemsize

  def host(th, r, ix, eta, tt, lam):
    res = loo_host(np.asarray(th), np.asarray(r), np.asarray(ix), eta=eta, t=tt, lam=lam)
    return (_as_bytes(res.a, dtype), _as_bytes(res.c, dtype), np.int32(res.steps),
            _as_bytes(np.asarray(res.error), dtype), np.int32(res.fallbacks))

  shapes = (jax.ShapeDtypeStruct((nk, b), jnp.uint8), jax.ShapeDtypeStruct((s, nk, b), jnp.uint8),
            jax.ShapeDtypeStruct((), jnp.int32), jax.ShapeDtypeStruct((b,), jnp.uint8),
            jax.ShapeDtypeStruct((), jnp.int32))
  a8, c8, steps, e8, fb = jax.pure_callback(
      host, shapes, jnp.asarray(theta), jnp.asarray(residual0), jnp.asarray(idx),
      learning_rate, t, weight_decay, vmap_method="sequential")
  cast = lambda z: jax.lax.bitcast_convert_type(z, dtype)  # noqa: E731
  return LeaveOneOut(cast(a8), cast(c8), steps, cast(e8), method, fb)



# ----------------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True)
class SampleInfoSettings(_results.ResultMixin):
  """The settings a :class:`SampleInformation` was computed with.

  The choices are stored as the lower-case names of their enums (``time``: :class:`Time`,
  ``method``/``method_used``: :class:`LooMethod`, ``expansion``: :class:`Expansion`,
  ``convention``: :class:`LooConvention`), as in the JSON files this class has always written.

  Attributes:
    n: number of training examples.
    num_outputs: ``k``.
    learning_rate: ``eta`` (summed loss).
    t: steps or time (``inf`` allowed).
    weight_decay: ``lambda``.
    time: the :class:`Time` name.
    sigma: weight-noise std of ``si``.
    fsi_sigma: prediction-noise std of ``fsi``.
    num_heldout: ``m`` (0 without a held-out set).
    method: the requested :class:`LooMethod` name.
    expansion: the :class:`Expansion` name.
    sgd_batch_size: ``b`` of ``si_sgd``, or None.
    projection_dim: ``d'`` of ``si_sgd``, or None.
    projection_seed: seed of the projection.
    krylov_steps: the largest Lanczos order used.
    krylov_error: the largest kept Lanczos error estimate.
    convention: the :class:`LooConvention` name.
    method_used: the :class:`LooMethod` actually run (``AUTO`` resolved).
    exact_fallbacks: rows recomputed by ``EIGH``.
    dtype: the dtype of the results (``""`` in files written before it was recorded).
  """
  n: int
  num_outputs: int
  learning_rate: float
  t: float
  weight_decay: float
  time: str
  sigma: float
  fsi_sigma: float
  num_heldout: int
  method: str
  expansion: str
  sgd_batch_size: int | None
  projection_dim: int | None
  projection_seed: int
  krylov_steps: int
  krylov_error: float
  convention: str = "sum"
  method_used: str = ""
  exact_fallbacks: int = 0
  dtype: str = ""


_ARRAY_FIELDS = ("weight_change_sq", "si", "fsi", "si_sgd", "self_prediction_change",
                 "heldout_prediction_change", "loo_coefficients", "coefficients")


@dataclasses.dataclass(frozen=True)
class SampleInformation(_results.ResultMixin):
  """Per-example leave-one-out changes and sample information (nats) of a linearized network.

  Attributes:
    indices: ``(s,)`` the examples left out (rows of every per-example array).
    weight_change_sq: ``||w - w_-i||^2``.
    si: smooth SI with ``Sigma = sigma^2 I``: ``weight_change_sq / (2 sigma^2)`` (nats).
    fsi: functional SI on the held-out set (nats), or None without a held-out set.
    si_sgd: SI with the SGD steady-state covariance (nats), or None.
    self_prediction_change: ``(s, k)``: ``f_w(x_i) - f_{w_-i}(x_i)``.
    heldout_prediction_change: ``(s, m, k)``: ``f_w(x_j) - f_{w_-i}(x_j)``, or None.
    loo_coefficients: ``(s, nk)``: ``c_i`` with ``w - w_-i = J^T c_i`` (see
      :func:`loo_weight_change`); None only when loaded from a JSON file written without
      them (``save_json(full=False)``, the default, and every file written before).
    coefficients: ``(nk,)``: ``a`` with ``w_t = w0 + J^T a``; None as ``loo_coefficients``.
    settings: :class:`SampleInfoSettings`.
  """
  indices: np.ndarray
  weight_change_sq: np.ndarray
  si: np.ndarray
  fsi: np.ndarray | None
  si_sgd: np.ndarray | None
  self_prediction_change: np.ndarray
  heldout_prediction_change: np.ndarray | None
  loo_coefficients: np.ndarray | None
  coefficients: np.ndarray | None
  settings: SampleInfoSettings

  def _columns(self) -> dict[str, np.ndarray]:
    cols = {"index": self.indices, "weight_change_sq": self.weight_change_sq, "si": self.si}
    if self.fsi is not None:
      cols["fsi"] = self.fsi
    if self.si_sgd is not None:
      cols["si_sgd"] = self.si_sgd
    for c in range(self.self_prediction_change.shape[1]):
      cols[f"self_prediction_change_{c}"] = self.self_prediction_change[:, c]
    return cols

  def table(self) -> _results.Table:
    """The per-example columns, one row per left-out example.

    Returns:
      A :class:`gbounds.Table` with columns ``index``, ``weight_change_sq``, ``si``, then
      ``fsi`` and ``si_sgd`` when computed, then ``self_prediction_change_<c>`` for each output.
    """
    cols = self._columns()
    rows = zip(*(np.asarray(v).tolist() for v in cols.values()))
    return _results.Table(tuple(cols), tuple(rows), title="sample information (nats)")

  @classmethod
  def from_dict(cls, data: dict[str, Any]) -> SampleInformation:
    """Rebuilds a result from :meth:`to_dict` output or from a :meth:`save_json` file's dict.

    Also reads the per-example-columns format (``{"settings", "examples"}``) of
    ``save_json(full=False)`` and of every file written before ``to_dict`` covered all fields;
    the arrays it does not hold (``loo_coefficients``, ``coefficients``,
    ``heldout_prediction_change``) are then None. Arrays come back in ``settings.dtype``.

    Args:
      data: the dict.

    Returns:
      A :class:`SampleInformation`.
    """
    settings = SampleInfoSettings.from_dict(data["settings"])
    if "indices" not in data:  # the per-example-columns format
      ex = data["examples"]
      k = settings.num_outputs
      self_change = np.stack([np.asarray(ex[f"self_prediction_change_{c}"], np.float64)
                              for c in range(k)], axis=1)
      data = {"indices": ex["index"], "weight_change_sq": ex["weight_change_sq"], "si": ex["si"],
              "fsi": ex.get("fsi"), "si_sgd": ex.get("si_sgd"),
              "self_prediction_change": self_change, "heldout_prediction_change": None,
              "loo_coefficients": None, "coefficients": None, "settings": settings.to_dict()}
    res = _results.from_dict(cls, data)
    dtype = np.dtype(settings.dtype) if settings.dtype else np.dtype(np.float64)
    cast = {f: np.asarray(getattr(res, f), dtype) for f in _ARRAY_FIELDS
            if getattr(res, f) is not None}
    return dataclasses.replace(res, indices=np.asarray(res.indices, np.int64), **cast)

  def save_json(self, path: str | os.PathLike, *, full: bool = False) -> None:
    """Writes the result as JSON (atomically); :meth:`load_json` reads it back.

    Args:
      path: the file.
      full: False (default): settings and the per-example columns of :meth:`table` only, the
        format this method has always written (small: ``O(s k)`` numbers). True: also every
        array field (:meth:`to_dict`, including the ``(s, nk)`` ``loo_coefficients``), so that
        :meth:`load_json` returns an equal result.

    Returns:
      None.
    """
    columns = {k: np.asarray(v).tolist() for k, v in self._columns().items()}
    if full:
      _io.atomic_write_json(path, {**self.to_dict(), "examples": columns})
    else:
      _io.atomic_write_json(path, {"settings": self.settings.to_dict(), "examples": columns})

  def to_csv(self) -> str:
    """The :meth:`table` as CSV text.

    Returns:
      Header and one row per left-out example.
    """
    return self.table().to_csv()

  def save_csv(self, path: str | os.PathLike) -> None:
    """Writes one row per left-out example as CSV (atomically).

    Args:
      path: the file.

    Returns:
      None.
    """
    _io.atomic_write_text(path, self.to_csv())

  @classmethod
  def load_json(cls, path: str | os.PathLike) -> SampleInformation:
    """Reads a file written by :meth:`save_json` (any version).

    Args:
      path: the file.

    Returns:
      A :class:`SampleInformation` (see :meth:`from_dict` for files without the arrays).
    """
    return cls.from_dict(_io.read_json(path))


# ----------------------------------------------------------------------------- SGD covariance


def sgd_steady_state_si(delta_w: jax.Array, jacobian: jax.Array, residual: jax.Array, *,
                        num_outputs: int, learning_rate, batch_size: int, weight_decay=0.0,
                        rcond: float | None = None) -> jax.Array:
  """SI with the SGD steady-state covariance, ``1/2 Dw^T Sigma^+ Dw`` (nats), Prop. 5.1.

  ``H Sigma + Sigma H = (eta n^2 / b) Lambda`` with ``H = J^T J + lambda I`` and ``Lambda``
  the covariance over examples of ``g_i = J_i^T r_i`` (SUM-loss convention); solved in the
  eigenbasis of ``H``: ``Sigma~_ab = (eta n^2/b) Lambda~_ab / (h_a + h_b)``; ``Sigma^+`` is its
  pseudo-inverse (eigenvalues below ``rcond * max`` dropped).

  Args:
    delta_w: ``(s, d)`` weight changes ``w - w_-i`` (in the same, possibly projected,
      coordinates as ``jacobian``).
    jacobian: ``(nk, d)`` (projected) Jacobian.
    residual: ``(nk,)``: ``f_t(X) - Y`` at the end of training.
    num_outputs: ``k``.
    learning_rate: ``eta`` (summed loss).
    batch_size: the SGD batch size ``b``.
    weight_decay: ``lambda``.
    rcond: relative cutoff of the pseudo-inverse (default ``10 d eps``).

  Returns:
    ``(s,)`` SI values in nats.
  """
  return _sgd_si(jnp.asarray(delta_w), jnp.asarray(jacobian), jnp.asarray(residual),
                 learning_rate, weight_decay, num_outputs=int(num_outputs),
                 batch_size=int(batch_size), rcond=rcond)


@functools.partial(jax.jit, static_argnames=("num_outputs", "batch_size", "rcond"))
def _sgd_si(delta_w, jacobian, residual, learning_rate, weight_decay, *, num_outputs, batch_size,
            rcond):
  nk, d = jacobian.shape
  k = num_outputs
  n = nk // k
  g = jnp.einsum("nkd,nk->nd", jacobian.reshape(n, k, d), residual.reshape(n, k))
  gc = g - jnp.mean(g, axis=0, keepdims=True)
  lam = gc.T @ gc / n
  h = jacobian.T @ jacobian + weight_decay * jnp.eye(d, dtype=jacobian.dtype)
  # HOST explicitly (host LAPACK, as before): callers may vmap this jitted function on CPU.
  hv, u = _numerics.eigh(0.5 * (h + h.T), backend=_numerics.EighBackend.HOST)
  hv = jnp.maximum(hv, 0.0)
  lam_t = u.T @ lam @ u
  denom = hv[:, None] + hv[None, :]
  hcut = (jnp.finfo(hv.dtype).eps * d * 10) * jnp.max(hv)
  sig_t = jnp.where(denom > 2 * hcut, learning_rate * n * n / batch_size * lam_t
                    / jnp.where(denom > 0, denom, 1.0), 0.0)
  sv, sw = _numerics.eigh(0.5 * (sig_t + sig_t.T), backend=_numerics.EighBackend.HOST)  # as above
  cut = (jnp.finfo(sv.dtype).eps * d * 10 if rcond is None else rcond) * jnp.max(sv)
  inv = jnp.where(sv > cut, 1.0 / jnp.where(sv > cut, sv, 1.0), 0.0)
  z = (delta_w @ u) @ sw
  return 0.5 * jnp.sum(z * z * inv[None, :], axis=1)


def projected_jacobian_fn(apply_fn: Callable, *, projection_dim: int | None, seed: int = 0,
                          chunk_size: int | None = None):
  """Returns ``jac(params, x) -> (n k, d')``: the Jacobian in a random orthonormal subspace.

  ``J P^T`` with ``P`` a normalised count sketch (parameter ``p`` goes to bucket ``h(p)`` with
  sign ``s(p)``, rows scaled to unit norm; every bucket non-empty), so ``P P^T = I`` exactly and
  ``P (J^T J + lambda I) P^T = (JP^T)^T (JP^T) + lambda I``. ``projection_dim=None``: ``P = I``.

  Args:
    apply_fn: ``apply_fn(params, x) -> (batch, k)``.
    projection_dim: ``d'`` (None, or ``>= d``: no projection).
    seed: seed of the sketch (hash and signs).
    chunk_size: examples differentiated at once (None: all).

  Returns:
    ``jac(params, x) -> (n k, d')``.
  """
  jac = jacobian_fn(apply_fn, chunk_size=chunk_size)

  def projected(params, x):
    flat, _ = ravel_pytree(params)
    d = flat.shape[0]
    if projection_dim is None or projection_dim >= d:
      return jac(params, x)
    rng = np.random.default_rng(seed)
    # Balanced hashing (a random permutation of 0..d'-1 repeated): no bucket is empty, so no
    # row of P is zero and P P^T = I holds exactly (independent hashing left empty rows).
    buckets = rng.permutation(np.arange(d) % projection_dim)
    signs = rng.choice(np.array([-1.0, 1.0]), size=d)
    counts = np.bincount(buckets, minlength=projection_dim).astype(float)
    scale = signs / np.sqrt(np.maximum(counts[buckets], 1.0))
    b = jnp.asarray(buckets)
    sc = jnp.asarray(scale, flat.dtype)
    return jnp.concatenate([_sketch(jac(params, x[s:e]), sc, b, int(projection_dim))
                            for s, e in _batching.chunk_bounds(len(x), chunk_size)], axis=0)

  return projected


@functools.partial(jax.jit, static_argnames=("num_segments",))
def _sketch(jc, scale, buckets, num_segments):
  """``J P^T`` of the count sketch: column ``p`` of ``J``, times ``scale[p]``, summed into
  bucket ``buckets[p]`` (compiled once per shape, not once per call)."""
  return jax.ops.segment_sum((jc * scale[None, :]).T, buckets, num_segments=num_segments).T


# ----------------------------------------------------------------------------- main entry points


def _per_example_quantities(c, theta, idx, k, theta_val_train):
  """``||w - w_-i||^2 = c_i^T Theta c_i``, ``Theta c_i`` at ``i`` and held-out changes (numpy)."""
  s = c.shape[0]
  n = theta.shape[0] // k
  c_theta = c @ theta  # (s, nk): row j is Theta c_i (train prediction change)
  dw_sq = np.maximum(np.sum(c_theta * c, axis=1), 0.0)
  self_change = c_theta.reshape(s, n, k)[np.arange(s), idx, :]
  val = None
  if theta_val_train is not None:
    val = (c @ theta_val_train.T).reshape(s, -1, k)
  return dw_sq, self_change, val


def sample_information_from_kernels(
    theta: jax.Array, residual0: jax.Array, *, num_outputs: int = 1, learning_rate, t,
    weight_decay=0.0, time: Time | str = Time.DISCRETE,
    theta_heldout_train: jax.Array | None = None,
    sigma: float = 1.0, fsi_sigma: float = 1.0, jacobian: jax.Array | None = None,
    sgd_batch_size: int | None = None, method: LooMethod | str = LooMethod.AUTO, indices=None,
    krylov_steps: int | None = None, rtol: float = 1e-11, chunk_size: int | None = None,
    convention: LooConvention | str = LooConvention.SUM,
    _meta: dict | None = None) -> SampleInformation:
  """Sample information from precomputed kernels (see :func:`sample_information`).

  The leave-one-out algebra and the per-example quantities run in float64 on the host; the
  results have the dtype of ``theta`` (float32 kernels: float32 results). Not jittable
  (returns numpy arrays).

  Args:
    theta: ``(nk, nk)`` training NTK.
    residual0: ``(nk,)``: ``f_lin(w0, X) - Y``.
    theta_heldout_train: ``(mk, nk)`` kernel between held-out and training inputs (F-SI).
    jacobian: ``(nk, d')`` (projected) Jacobian, needed for ``si_sgd``.
    sgd_batch_size: ``b``; computes ``si_sgd`` when given (with ``jacobian``).
    num_outputs, learning_rate, t, weight_decay, time, method, indices, krylov_steps, rtol,
      chunk_size, convention: as in :func:`leave_one_out`.
    sigma, fsi_sigma: as in :func:`sample_information`.

  Returns:
    :class:`SampleInformation` (numpy arrays in the dtype of ``theta``).
  """
  time = _errors.as_enum("time", time, Time)
  method_e = _errors.as_enum("method", method, LooMethod)
  convention = _errors.as_enum("convention", convention, LooConvention)
  _errors.check_positive("sigma", sigma)
  _errors.check_positive("fsi_sigma", fsi_sigma)
  check_dynamics_args(learning_rate=learning_rate, t=t, weight_decay=weight_decay)
  _check_steps(t, time)
  n = _check_kernel(theta, residual0, num_outputs)
  k = int(num_outputs)
  nk = n * k
  if not _errors.is_concrete(theta, residual0, theta_heldout_train, jacobian, learning_rate, t,
                             weight_decay, indices):
    _errors.fail("theta", "concrete arrays (sample_information_from_kernels is not jittable; "
                 "jit leave_one_out instead)", "a tracer")
  if theta_heldout_train is not None:
    _errors.check_rank("theta_heldout_train", theta_heldout_train, 2)
    if np.shape(theta_heldout_train)[1] != nk or np.shape(theta_heldout_train)[0] % k:
      _errors.fail("theta_heldout_train", f"shape (m * {k}, {nk})", np.shape(theta_heldout_train))
    if np.shape(theta_heldout_train)[0] == 0:
      _errors.fail("theta_heldout_train", "at least one held-out example", "shape "
                   f"{np.shape(theta_heldout_train)}")
    _errors.check_finite("theta_heldout_train", theta_heldout_train)
  if sgd_batch_size is not None:
    _check_positive_int_or_none("sgd_batch_size", sgd_batch_size)
    if jacobian is None or np.ndim(jacobian) != 2 or np.shape(jacobian)[0] != nk:
      _errors.fail("jacobian", f"an ({nk}, d) Jacobian to compute the SGD steady-state SI",
                   None if jacobian is None else np.shape(jacobian))
    _errors.check_finite("jacobian", jacobian)
  idx = _check_indices(indices, n)
  _check_positive_int_or_none("krylov_steps", krylov_steps)
  _check_positive_int_or_none("chunk_size", chunk_size)
  _check_rtol(rtol)
  dtype = np.dtype(_out_dtype(theta))
  loo = _loo_host(np.asarray(theta), np.asarray(residual0), np.asarray(idx), k=k,
                  eta=learning_rate, t=t, lam=weight_decay, time=time, method=method_e,
                  convention=convention, rtol=float(rtol),
                  max_steps=None if krylov_steps is None else int(krylov_steps),
                  chunk=512 if chunk_size is None else int(chunk_size))
  theta64 = np.asarray(theta, np.float64)
  tv = None if theta_heldout_train is None else np.asarray(theta_heldout_train, np.float64)
  dw_sq, self_change, val = _per_example_quantities(loo.c, theta64, np.asarray(idx), k, tv)
  fsi = None
  if val is not None:
    m = val.shape[1]
    fsi = (np.sum(val * val, axis=(1, 2)) / (2.0 * fsi_sigma ** 2 * m)).astype(dtype)
  si_sgd = None
  if sgd_batch_size is not None:
    jac = jnp.asarray(jacobian, dtype)
    residual = jnp.asarray(np.asarray(residual0, np.float64) + theta64 @ loo.a, dtype)
    dwp = jnp.asarray(loo.c, dtype) @ jac
    si_sgd = np.asarray(sgd_steady_state_si(dwp, jac, residual, num_outputs=k,
                                            learning_rate=learning_rate,
                                            batch_size=int(sgd_batch_size),
                                            weight_decay=weight_decay))
  meta = dict(_meta or {})
  settings = SampleInfoSettings(
      n=n, num_outputs=k, learning_rate=float(learning_rate), t=float(t),
      weight_decay=float(weight_decay), time=time.name.lower(), sigma=float(sigma),
      fsi_sigma=float(fsi_sigma), num_heldout=0 if val is None else int(val.shape[1]),
      method=method_e.name.lower(), expansion=meta.get("expansion", "initial"),
      sgd_batch_size=None if sgd_batch_size is None else int(sgd_batch_size),
      projection_dim=meta.get("projection_dim"),
      projection_seed=int(meta.get("projection_seed", 0)),
      krylov_steps=int(loo.steps), krylov_error=float(loo.error),
      convention=convention.name.lower(), method_used=loo.method.name.lower(),
      exact_fallbacks=int(loo.fallbacks), dtype=dtype.name)
  return SampleInformation(
      indices=np.asarray(idx), weight_change_sq=dw_sq.astype(dtype),
      si=(dw_sq / (2.0 * sigma ** 2)).astype(dtype), fsi=fsi,
      si_sgd=si_sgd, self_prediction_change=self_change.astype(dtype),
      heldout_prediction_change=None if val is None else val.astype(dtype),
      loo_coefficients=loo.c.astype(dtype), coefficients=loo.a.astype(dtype),
      settings=settings)


def _targets(y, n: int, k: int, dtype) -> jax.Array:
  y = np.asarray(y)
  if y.shape[0] != n:
    _errors.fail("y_train", f"{n} targets (one per training input)", f"shape {y.shape}")
  if np.issubdtype(y.dtype, np.integer) and y.ndim == 1 and k > 1:
    if y.min() < 0 or y.max() >= k:
      _errors.fail("y_train", f"integer labels in [0, {k})", f"[{y.min()}, {y.max()}]")
    y = np.eye(k)[y]
  y = y.reshape(n, -1)
  if y.shape[1] != k:
    _errors.fail("y_train", f"targets of shape ({n}, {k}) to match the network's outputs",
                 f"shape {np.shape(y)}")
  _errors.check_finite("y_train", y)
  return jnp.asarray(y, dtype)


@functools.lru_cache(maxsize=8)
def _cached_ntk_fn(apply_fn, chunk_size):
  """One NTK function (and its compiled kernels) per network, reused across calls."""
  return empirical_ntk_fn(apply_fn, chunk_size=chunk_size)


def sample_information(model: Any, params: Any = None,
                       x_train: jax.typing.ArrayLike | None = None,
                       y_train: jax.typing.ArrayLike | None = None,
                       *, learning_rate, t, weight_decay=0.0, time: Time | str = Time.DISCRETE,
                       x_heldout: jax.typing.ArrayLike | None = None, sigma: float = 1.0,
                       fsi_sigma: float = 1.0, expansion: Expansion | str = Expansion.INITIAL,
                       trained_params: Any = None, sgd_batch_size: int | None = None,
                       projection_dim: int | None = None, projection_seed: int = 0,
                       method: LooMethod | str = LooMethod.AUTO, indices=None,
                       krylov_steps: int | None = None, rtol: float = 1e-11,
                       chunk_size: int | None = None,
                       ntk_chunk_size: int | None = 256,
                       convention: LooConvention | str = LooConvention.SUM,
                       mesh: Mesh | None = None) -> SampleInformation:
  """Smooth sample information of every training example, without retraining anything.

  For each example ``i`` (or each of ``indices``): the change of the linearized network's weights
  and predictions when ``i`` is left out of training, ``w - w_-i = J^T c_i`` and
  ``f_w(x) - f_{w_-i}(x) = Theta(x, X) c_i`` (exact, see the module docstring), and from them
  (nats; Harutyunyan et al., ICLR 2021, Def. 3.1, Def. 4.1, Prop. 5.1):

  * ``si = ||w - w_-i||^2 / (2 sigma^2)``;
  * ``fsi = 1/(2 fsi_sigma^2 m) sum_j ||f_w(x_j) - f_{w_-i}(x_j)||^2`` on ``x_heldout``;
  * ``si_sgd = 1/2 (w - w_-i)^T Sigma_SGD^+ (w - w_-i)`` when ``sgd_batch_size`` is given.

  Precision: the kernels are computed in the precision of ``params`` and ``x_train``; the
  leave-one-out algebra always runs in float64 on the host and the results come back in the
  kernels' dtype (float32 parameters give float32 results computed with float64 algebra;
  only the kernel entries themselves carry float32 rounding).

  Args:
    model: the network, ``f(params, x) -> (batch, k)``: an ``apply_fn(params, x)`` callable, a
      :class:`gbounds.models.ModelFn`, a Linen module (with ``params``) or an NNX module
      (normalised by :func:`gbounds.models.as_model_fn`).
    params: the starting weights ``w0`` of (linearized) training, also the decay centre
      (optional for a ``ModelFn`` or an NNX module: their own weights; for NNX an
      ``nnx.State`` of ``nnx.Param``).
    x_train: ``(n, ...)`` training inputs, ``n >= 2``.
    y_train: ``(n, k)`` float targets; ``(n,)`` float targets when ``k = 1``; or ``(n,)`` int
      labels (one-hot encoded when ``k > 1``). MSE loss.
    learning_rate: ``eta`` for the SUMMED loss (``eta_mean / n`` for a mean-loss recipe).
    t: number of steps (``DISCRETE``) or time (``CONTINUOUS``); ``inf`` allowed.
    weight_decay: ``lambda >= 0`` (``n * lambda_mean`` for a mean-loss recipe).
    time: :class:`~gbounds.ntk.Time`.
    x_heldout: ``(m, ...)`` held-out inputs for F-SI (same example shape as ``x_train``).
    sigma: isotropic weight-noise std for ``si`` (> 0).
    fsi_sigma: prediction-noise std for ``fsi`` (> 0, the paper uses 1).
    expansion: :class:`Expansion`; ``TRAINED`` linearizes at ``trained_params``.
    trained_params: the trained weights for ``Expansion.TRAINED``.
    sgd_batch_size: batch size ``b`` of the SGD steady-state covariance (None: skip).
    projection_dim: dimension ``d'`` of the random parameter subspace for ``si_sgd`` (None:
      all parameters, allowed up to ``d = 4096``).
    projection_seed: seed of that projection.
    method, indices, krylov_steps, rtol, chunk_size: see :func:`leave_one_out`.
    ntk_chunk_size: examples per Jacobian chunk when computing kernels.
    convention: :class:`LooConvention`: the learning-rate convention of the leave-one-out
      runs (default ``SUM``: the summed-loss ``learning_rate`` and ``weight_decay`` kept;
      ``MEAN``: the mean-loss recipe kept, ``eta n/(n-1)`` and ``lambda (n-1)/n``).
    mesh: a ``jax.sharding.Mesh``: the kernels are computed with their rows sharded over its
      devices (:func:`gbounds.ntk.sharded_ntk_fn`; ``n k`` must divide evenly over them, and a
      held-out kernel whose ``m k`` rows do not is computed on one device). None (the
      default): one device. The leave-one-out algebra runs on the host either way.

  Returns:
    :class:`SampleInformation`.
  """
  apply_fn, params, _ = _model.as_model(model, params, name="model")
  if x_train is None or y_train is None:
    _errors.fail("x_train" if x_train is None else "y_train", "training inputs and targets",
                 None)
  expansion = _errors.as_enum("expansion", expansion, Expansion)
  # option checks before any kernel is computed
  time = _errors.as_enum("time", time, Time)
  method = _errors.as_enum("method", method, LooMethod)
  convention = _errors.as_enum("convention", convention, LooConvention)
  _check_steps(t, time)
  _check_positive_int_or_none("krylov_steps", krylov_steps)
  _check_positive_int_or_none("chunk_size", chunk_size)
  _check_rtol(rtol)
  _errors.check_positive("sigma", sigma)
  _errors.check_positive("fsi_sigma", fsi_sigma)
  _errors.check_nonempty("x_train", x_train)
  n = int(np.shape(x_train)[0])
  if n < 2:
    _errors.fail("x_train", "at least 2 training examples for leave-one-out", n)
  _errors.check_finite("x_train", x_train)
  if x_heldout is not None:
    _errors.check_nonempty("x_heldout", x_heldout)
    if np.shape(x_heldout)[1:] != np.shape(x_train)[1:]:
      _errors.fail("x_heldout", f"examples of shape {np.shape(x_train)[1:]} (as x_train)",
                   f"{np.shape(x_heldout)[1:]}")
    _errors.check_finite("x_heldout", x_heldout)
  if expansion == Expansion.TRAINED and trained_params is None:
    _errors.fail("trained_params", "the trained weights for expansion=TRAINED", None)
  if projection_dim is not None and (int(projection_dim) != projection_dim or projection_dim < 1):
    _errors.fail("projection_dim", "a positive integer or None", projection_dim)
  check_dynamics_args(learning_rate=learning_rate, t=t, weight_decay=weight_decay)

  w_exp = params if expansion == Expansion.INITIAL else trained_params
  x_train = jnp.asarray(x_train)
  f_exp = apply_fn(w_exp, x_train)
  k = int(f_exp.shape[-1])
  dtype = f_exp.dtype
  y = _targets(y_train, n, k, dtype)
  if expansion == Expansion.INITIAL:
    f_start = f_exp
  else:
    delta = jax.tree_util.tree_map(lambda a, b: a - b, params, w_exp)
    f_start = f_exp + jax.jvp(lambda p: apply_fn(p, x_train), (w_exp,), (delta,))[1]
  r0 = jnp.ravel(f_start - y)
  ntk = _cached_ntk_fn(apply_fn, ntk_chunk_size)
  heldout_fn = ntk
  if mesh is None:
    theta = ntk(x_train, None, w_exp)
  else:
    sharded = sharded_ntk_fn(apply_fn, mesh=mesh, chunk_size=ntk_chunk_size)
    theta = sharded(x_train, None, w_exp)
    if x_heldout is not None and (np.shape(x_heldout)[0] * k) % row_sharding(mesh).num_devices == 0:
      heldout_fn = sharded
  theta_v = None if x_heldout is None else heldout_fn(jnp.asarray(x_heldout), x_train, w_exp)
  jac = None
  if sgd_batch_size is not None:
    d = sum(int(np.size(p)) for p in jax.tree_util.tree_leaves(w_exp))
    if projection_dim is None and d > 4096:
      _errors.fail("projection_dim", f"a subspace dimension (the network has d = {d} > 4096 "
                   "parameters; the SGD covariance costs O(d^3))", None)
    jac = projected_jacobian_fn(apply_fn, projection_dim=projection_dim, seed=projection_seed,
                                chunk_size=ntk_chunk_size)(w_exp, x_train)
  meta = {"expansion": expansion.name.lower(), "projection_dim": projection_dim,
          "projection_seed": projection_seed}
  return sample_information_from_kernels(
      theta, r0, num_outputs=k, learning_rate=learning_rate, t=t, weight_decay=weight_decay,
      time=time, theta_heldout_train=theta_v, sigma=sigma, fsi_sigma=fsi_sigma, jacobian=jac,
      sgd_batch_size=sgd_batch_size, method=method, indices=indices, krylov_steps=krylov_steps,
      rtol=rtol, chunk_size=chunk_size, convention=convention, _meta=meta)


def loo_weight_change(model: Any, params: Any, x_train: jax.Array,
                      loo_coefficients: jax.Array) -> Any:
  """``w - w_-i = J(X)^T c_i`` as a parameter pytree with a leading axis (one VJP per row).

  Args:
    model: the network, as in :func:`sample_information` (a callable, ``ModelFn``, Linen
      module with ``params`` or NNX module).
    params: the expansion point (``params``, or ``trained_params`` for ``Expansion.TRAINED``);
      None for a ``ModelFn`` or an NNX module's own weights.
    x_train: ``(n, ...)`` training inputs.
    loo_coefficients: ``(s, nk)`` rows ``c_i`` (``SampleInformation.loo_coefficients``).

  Returns:
    A pytree shaped like ``params`` whose leaves have a leading axis of length ``s``: row ``j``
    is ``w - w_-i`` for the ``j``-th left-out example.
  """
  apply_fn, params, _ = _model.as_model(model, params, name="model")
  c = jnp.asarray(loo_coefficients)
  _errors.check_rank("loo_coefficients", c, 2)
  x_train = jnp.asarray(x_train)
  y, vjp = jax.vjp(lambda p: apply_fn(p, x_train), params)
  if c.shape[1] != y.size:
    _errors.fail("loo_coefficients", f"rows of length n k = {y.size}", f"shape {c.shape}")
  return jax.lax.map(lambda ci: vjp(ci.reshape(y.shape).astype(y.dtype))[0], c)


__all__ = [
    "Expansion", "LeaveOneOut", "LooConvention", "LooMethod", "SampleInfoSettings",
    "SampleInformation",
    "leave_one_out", "loo_weight_change", "projected_jacobian_fn", "sample_information",
    "sample_information_from_kernels", "sgd_steady_state_si",
]
