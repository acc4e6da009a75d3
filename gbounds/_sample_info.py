"""Sample-wise information of a linearized network: exact leave-one-out for all n examples at once.

Harutyunyan, Achille, Paolini, Majumder, Ravichandran, Bhotika & Soatto, "Estimating
informativeness of samples with smooth unique information", ICLR 2021 (arXiv 2101.06640).

Conventions (see ``gbounds._dynamics``). The loss is a SUM over the ``n`` examples with weight
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

Leave-one-out algorithms (:class:`LooMethod`):

* ``DOWNDATE`` (``t = inf``, ``A`` nonsingular): with ``B = A^{-1}``,
  ``c_i = B[:, R] (B_RR)^{-1} a_R`` (block inverse downdate), ``O((nk)^2 k)`` for all ``n``.
* ``LANCZOS`` (any ``t``): in the eigenbasis ``A = V diag(mu) V^T``, removing example ``i`` is
  the projection ``P_i = I - Z_i Z_i^T`` with ``Z_i = V[R_i, :]^T``, and
  ``V^T embed(phi_t(A_KK) r0_K) = phi_t(P_i diag(mu) P_i) P_i V^T r0``. One Lanczos step
  costs ``O(nk)`` per left-out example (a diagonal scaling and two rank-``k`` projections),
  so ``m`` steps for all ``n`` examples cost ``O(m n^2 k)`` after one ``O((nk)^3)``
  eigendecomposition. Two passes (no Krylov basis is stored); the number of steps doubles
  until two Krylov orders agree to ``rtol`` (checked, not assumed).
* ``EIGH``: a fresh eigendecomposition of every masked kernel, ``O(n (nk)^3)``: the per-example
  approach of the public code, kept as a reference and a baseline.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import functools
import io
import json
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from gbounds import _errors
from gbounds import _io
from gbounds._dynamics import Time, check_dynamics_args, phi
from gbounds._ntk import empirical_ntk_fn, jacobian_fn


class LooMethod(enum.IntEnum):
  """How the leave-one-out coefficients are computed (see the module docstring).

  Attributes:
    AUTO: ``DOWNDATE`` at ``t = inf`` when ``A`` is nonsingular, else ``LANCZOS``.
    DOWNDATE: exact block inverse downdate; ``t = inf`` only.
    LANCZOS: batched Lanczos in the eigenbasis of ``A``, any ``t``; all ``n`` in
      ``O((nk)^3 + m n^2 k)``.
    EIGH: one eigendecomposition per left-out example, ``O(n (nk)^3)``; reference/baseline.
  """
  AUTO = 0
  DOWNDATE = 1
  LANCZOS = 2
  EIGH = 3


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
    krylov_steps: Lanczos steps used (0 for other methods).
    krylov_error: the largest relative change between the last two Krylov orders (0 otherwise).
  """
  coefficients: jax.Array
  loo_coefficients: jax.Array
  krylov_steps: int
  krylov_error: jax.Array


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
  return indices


def _check_kernel(theta, residual0, num_outputs):
  _errors.check_rank("theta", theta, 2)
  _errors.check_rank("residual0", residual0, 1)
  nk = np.shape(residual0)[0]
  if np.shape(theta) != (nk, nk):
    _errors.fail("theta", f"shape ({nk}, {nk}) to match residual0", np.shape(theta))
  if int(num_outputs) != num_outputs or num_outputs < 1 or nk % num_outputs:
    _errors.fail("num_outputs", f"a positive divisor of len(residual0) = {nk}", num_outputs)
  n = nk // int(num_outputs)
  if n < 2:
    _errors.fail("training set", "at least 2 examples for leave-one-out", n)
  for name, v in (("theta", theta), ("residual0", residual0)):
    if _concrete(v):
      _errors.check_finite(name, v)
  return n


# ----------------------------------------------------------------------------- LOO algorithms


def _host_eigh_bytes(a, dtype):
  w, v = np.linalg.eigh(np.asarray(a, dtype))
  as_bytes = lambda z: np.ascontiguousarray(z.astype(dtype)).view(np.uint8).reshape(  # noqa: E731
      z.shape + (dtype.itemsize,))
  return as_bytes(w), as_bytes(v)


def _eigh(a: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Symmetric eigendecomposition (batched over leading axes) by LAPACK on the host.

  A ``pure_callback`` instead of ``jnp.linalg.eigh``: on a 2-core CPU the batched XLA eigh
  inside these loops deadlocked intermittently (all XLA worker threads idle, the result never
  ready; jaxlib 0.10.2), twice in the test suite. Works under ``jit`` and ``vmap``. The results
  cross the callback boundary as raw bytes (``uint8``) and are bit-cast back: JAX re-canonicalises
  callback outputs in the callback's own thread, where a ``with jax.enable_x64(True)`` block of
  the caller is not in effect, which would turn float64 results into float32 and fail.
  """
  dtype = np.dtype(a.dtype)
  b = dtype.itemsize
  shapes = (jax.ShapeDtypeStruct(a.shape[:-1] + (b,), jnp.uint8),
            jax.ShapeDtypeStruct(a.shape + (b,), jnp.uint8))
  w8, v8 = jax.pure_callback(functools.partial(_host_eigh_bytes, dtype=dtype), shapes, a,
                             vmap_method="expand_dims")
  return jax.lax.bitcast_convert_type(w8, a.dtype), jax.lax.bitcast_convert_type(v8, a.dtype)


@functools.partial(jax.jit, static_argnames=("k",))
def _downdate(values, vectors, a, idx, k):
  """``c_i = B[:, R] (B_RR)^{-1} a_R`` with ``B = A^{-1}``."""
  nk = a.shape[0]
  n = nk // k
  b = (vectors / values[None, :]) @ vectors.T
  b = 0.5 * (b + b.T)
  b3 = b.reshape(nk, n, k)[:, idx, :]  # (nk, s, k): columns R_i
  brr = b.reshape(n, k, n, k)[idx, :, idx, :]  # (s, k, k)
  a_r = a.reshape(n, k)[idx]  # (s, k)
  s = jnp.linalg.solve(brr, a_r[..., None])[..., 0]
  return jnp.einsum("xsk,sk->sx", b3, s)


def _masked_eigh_one(amat, r0, mask, *, learning_rate, t, time):
  am = amat * mask[:, None] * mask[None, :]
  mu, v = _eigh(am)
  p = phi(mu, learning_rate=learning_rate, t=t, time=time)
  return -(v @ (p * (v.T @ (mask * r0))))


@functools.partial(jax.jit, static_argnames=("k", "time", "chunk"))
def _eigh_loo(amat, r0, a, idx, k, *, learning_rate, t, time, chunk):
  nk = a.shape[0]
  n = nk // k
  masks = 1.0 - jax.nn.one_hot(idx, n, dtype=amat.dtype)  # (s, n)
  masks = jnp.repeat(masks, k, axis=1)  # (s, nk)
  one = functools.partial(_masked_eigh_one, learning_rate=learning_rate, t=t, time=time)
  a_loo = jax.lax.map(lambda m: one(amat, r0, m), masks, batch_size=chunk)
  return a[None, :] - a_loo


def _lanczos_loo(mu, zs, rho, *, steps, learning_rate, t, time):
  """Batched Lanczos for ``u_i = phi_t(P_i D P_i) P_i rho`` in the eigenbasis.

  Args:
    mu: ``(N,)`` eigenvalues of ``A`` (``D = diag(mu)``).
    zs: ``(B, N, k)``: ``Z_i = V[R_i, :]^T``, orthonormal columns.
    rho: ``(N,)`` = ``V^T r0``.
    steps: Krylov order ``m`` (static).

  Returns:
    ``(u, u_lower, beta0)``: the order-``m`` and order-``m - m//4`` approximations, ``(B, N)``.
  """
  dtype = mu.dtype
  nb = zs.shape[0]

  def proj(x):
    return x - jnp.einsum("bnk,bk->bn", zs, jnp.einsum("bnk,bn->bk", zs, x))

  def op(x):
    return proj(mu[None, :] * proj(x))

  r = proj(jnp.broadcast_to(rho, (nb, rho.shape[0])))
  beta0 = jnp.linalg.norm(r, axis=1)
  q0 = r / jnp.where(beta0 > 0, beta0, 1.0)[:, None]
  scale = jnp.max(jnp.abs(mu))
  tol = 100 * jnp.finfo(dtype).eps * scale

  def step(q, q_prev, b_prev):
    w = op(q)
    alpha = jnp.sum(q * w, axis=1)
    w = w - alpha[:, None] * q - b_prev[:, None] * q_prev
    b = jnp.linalg.norm(w, axis=1)
    alive = b > tol
    b = jnp.where(alive, b, 0.0)
    q_next = jnp.where(alive[:, None], w / jnp.where(alive, b, 1.0)[:, None], 0.0)
    return alpha, b, q_next

  # Pass 1: the tridiagonal matrix.
  def body1(j, carry):
    q, q_prev, b_prev, alphas, betas = carry
    alpha, b, q_next = step(q, q_prev, b_prev)
    return q_next, q, b, alphas.at[j].set(alpha), betas.at[j].set(b)

  zeros_b = jnp.zeros((nb,), dtype)
  init = (q0, jnp.zeros_like(q0), zeros_b, jnp.zeros((steps, nb), dtype),
          jnp.zeros((steps, nb), dtype))
  _, _, _, alphas, betas = jax.lax.fori_loop(0, steps, body1, init)

  def krylov_weights(order):
    al = alphas[:order].T  # (B, order)
    be = betas[:order - 1].T
    tri = (jax.vmap(jnp.diag)(al) + jax.vmap(lambda x: jnp.diag(x, 1))(be)
           + jax.vmap(lambda x: jnp.diag(x, -1))(be))
    theta, s = _eigh(tri)
    p = phi(theta, learning_rate=learning_rate, t=t, time=time)
    y = jnp.einsum("bij,bj->bi", s, p * s[:, 0, :])  # phi(T) e1
    return jnp.pad(y, ((0, 0), (0, steps - order)))

  lower = max(1, steps - steps // 4)
  y_m = krylov_weights(steps)
  y_l = krylov_weights(lower)

  # Pass 2: regenerate the Lanczos vectors and accumulate Q y.
  def body2(j, carry):
    q, q_prev, b_prev, u, ul = carry
    u = u + y_m[:, j, None] * q
    ul = ul + y_l[:, j, None] * q
    _, b, q_next = step(q, q_prev, b_prev)
    return q_next, q, b, u, ul

  init2 = (q0, jnp.zeros_like(q0), zeros_b, jnp.zeros_like(q0), jnp.zeros_like(q0))
  _, _, _, u, ul = jax.lax.fori_loop(0, steps, body2, init2)
  return u * beta0[:, None], ul * beta0[:, None]


@functools.partial(jax.jit, static_argnames=("k", "steps", "time"))
def _lanczos_chunk(mu, vectors, rho, a_v, idx, *, k, steps, learning_rate, t, time):
  n = vectors.shape[0] // k
  zs = vectors.reshape(n, k, -1)[idx].transpose(0, 2, 1)  # (B, N, k)
  u, ul = _lanczos_loo(mu, zs, rho, steps=steps, learning_rate=learning_rate, t=t, time=time)
  c_v = a_v[None, :] + u  # a - a_loo, with a_loo = -u in the eigenbasis
  err_num = jnp.linalg.norm(u - ul, axis=1)
  err_den = jnp.linalg.norm(u, axis=1) + jnp.linalg.norm(a_v)
  err = jnp.max(err_num / jnp.where(err_den > 0, err_den, 1.0))
  return c_v @ vectors.T, err


@functools.partial(jax.jit, static_argnames=("time",))
def _spectral(theta, r0, weight_decay, learning_rate, t, *, time):
  nk = theta.shape[0]
  amat = 0.5 * (theta + theta.T) + weight_decay * jnp.eye(nk, dtype=theta.dtype)
  mu, vectors = _eigh(amat)
  rho = vectors.T @ r0
  a_v = -phi(mu, learning_rate=learning_rate, t=t, time=time) * rho
  return amat, mu, vectors, rho, a_v, vectors @ a_v


def leave_one_out(theta: jax.Array, residual0: jax.Array, *, num_outputs: int = 1,
                  learning_rate, t, weight_decay=0.0, time: Time | str = Time.DISCRETE,
                  method: LooMethod | str = LooMethod.AUTO, indices=None,
                  krylov_steps: int | None = None, rtol: float = 1e-11,
                  chunk_size: int | None = None) -> LeaveOneOut:
  """Exact leave-one-out coefficients of the linearized network for many examples at once.

  ``a = -phi_t(A) r0`` and, for each ``i`` in ``indices``, ``c_i = a - embed(a^(-i))`` with
  ``a^(-i) = -phi_t(A_KK) r0_K`` (the module docstring gives the formulas and algorithms).

  Args:
    theta: ``(nk, nk)`` training NTK, sample-major.
    residual0: ``(nk,)``: ``f_lin(w0, X) - Y`` flattened.
    num_outputs: ``k``.
    learning_rate: ``eta > 0`` for the SUMMED loss.
    t: steps (discrete) or time (continuous), ``inf`` allowed.
    weight_decay: ``lambda >= 0``, centred at ``w0``.
    time: :class:`~gbounds.Time`.
    method: :class:`LooMethod`.
    indices: examples to leave out (default all ``n``).
    krylov_steps: fixed Lanczos order (default: adaptive from 64, doubling until two orders
      agree to ``rtol``; under ``jit`` the default is the exact order ``nk``).
    rtol: Krylov convergence tolerance (relative to ``||a|| + ||a^(-i)||``).
    chunk_size: left-out examples processed at once (bounds memory; default 512).

  Returns:
    :class:`LeaveOneOut`.
  """
  time = _errors.as_enum("time", time, Time)
  method = _errors.as_enum("method", method, LooMethod)
  check_dynamics_args(learning_rate=learning_rate, t=t, weight_decay=weight_decay)
  n = _check_kernel(theta, residual0, num_outputs)
  k = int(num_outputs)
  idx = _check_indices(indices, n)
  if krylov_steps is not None and (int(krylov_steps) != krylov_steps or krylov_steps < 1):
    _errors.fail("krylov_steps", "a positive integer or None", krylov_steps)
  chunk = 512 if chunk_size is None else int(chunk_size)
  if chunk < 1:
    _errors.fail("chunk_size", "a positive integer or None", chunk_size)
  if not _concrete(t) and method in (LooMethod.AUTO, LooMethod.DOWNDATE):
    _errors.fail("t", "a concrete (non-traced) time for methods AUTO and DOWNDATE", "a tracer")
  t_inf = _concrete(t) and bool(np.isinf(np.asarray(t, dtype=float)))

  theta = jnp.asarray(theta)
  dtype = theta.dtype
  r0 = jnp.asarray(residual0, dtype)
  nk = n * k
  amat, mu, vectors, rho, a_v, a = _spectral(theta, r0, weight_decay, learning_rate, t, time=time)

  if method == LooMethod.AUTO:
    method = LooMethod.LANCZOS
    if t_inf and _concrete(mu):
      mu_np = np.asarray(mu)
      if mu_np[0] > 1e3 * np.finfo(mu_np.dtype).eps * nk * mu_np[-1]:
        method = LooMethod.DOWNDATE
  if method == LooMethod.DOWNDATE:
    if not t_inf:
      _errors.fail("method", "LANCZOS or EIGH for finite t (DOWNDATE needs t = inf)", "DOWNDATE")
    if _concrete(mu) and not np.asarray(mu)[0] > 0:
      _errors.fail("method", "a nonsingular A = Theta + lambda I for DOWNDATE (use lambda > 0 "
                   "or method LANCZOS)", f"smallest eigenvalue {float(mu[0]):.3g}")
    c = _downdate(mu, vectors, a, jnp.asarray(idx), k)
    return LeaveOneOut(a, c, 0, jnp.zeros((), dtype))
  if method == LooMethod.EIGH:
    c = _eigh_loo(amat, r0, a, jnp.asarray(idx), k, learning_rate=learning_rate, t=t,
                  time=time, chunk=min(chunk, 64))
    return LeaveOneOut(a, c, 0, jnp.zeros((), dtype))

  # LANCZOS
  idx_all = idx
  s = int(np.shape(idx_all)[0])
  adaptive = krylov_steps is None and _concrete(theta) and _concrete(residual0)
  steps = int(krylov_steps) if krylov_steps is not None else (min(64, 2 * nk) if adaptive else 2 * nk)
  while True:
    parts, errs = [], []
    for start in range(0, s, chunk):
      sub = jnp.asarray(idx_all[start:start + chunk])
      c, err = _lanczos_chunk(mu, vectors, rho, a_v, sub, k=k, steps=steps,
                              learning_rate=learning_rate, t=t, time=time)
      parts.append(c)
      errs.append(err)
    err = jnp.max(jnp.stack(errs))
    if not adaptive or float(err) <= rtol or steps >= 2 * nk:
      break
    steps = min(2 * steps, 2 * nk)
  c = parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=0)
  return LeaveOneOut(a, c, steps, err)


# ----------------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True)
class SampleInfoSettings:
  """The settings a :class:`SampleInformation` was computed with."""
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


@dataclasses.dataclass(frozen=True)
class SampleInformation:
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
      :func:`loo_weight_change`).
    coefficients: ``(nk,)``: ``a`` with ``w_t = w0 + J^T a``.
    settings: :class:`SampleInfoSettings`.
  """
  indices: np.ndarray
  weight_change_sq: np.ndarray
  si: np.ndarray
  fsi: np.ndarray | None
  si_sgd: np.ndarray | None
  self_prediction_change: np.ndarray
  heldout_prediction_change: np.ndarray | None
  loo_coefficients: np.ndarray
  coefficients: np.ndarray
  settings: SampleInfoSettings

  def table(self) -> dict[str, np.ndarray]:
    """The per-example columns (one value per left-out example)."""
    cols = {"index": self.indices, "weight_change_sq": self.weight_change_sq, "si": self.si}
    if self.fsi is not None:
      cols["fsi"] = self.fsi
    if self.si_sgd is not None:
      cols["si_sgd"] = self.si_sgd
    for c in range(self.self_prediction_change.shape[1]):
      cols[f"self_prediction_change_{c}"] = self.self_prediction_change[:, c]
    return cols

  def to_dict(self) -> dict[str, Any]:
    return {"settings": dataclasses.asdict(self.settings),
            "examples": {k: np.asarray(v).tolist() for k, v in self.table().items()}}

  def save_json(self, path: str | os.PathLike) -> None:
    """Writes settings and per-example columns as JSON (atomically)."""
    _io.atomic_write_json(path, self.to_dict())

  def to_csv(self) -> str:
    cols = self.table()
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(list(cols))
    for row in zip(*(np.asarray(v).tolist() for v in cols.values())):
      w.writerow(row)
    return buf.getvalue()

  def save_csv(self, path: str | os.PathLike) -> None:
    """Writes one row per left-out example as CSV (atomically)."""
    _io.atomic_write_text(path, self.to_csv())

  @staticmethod
  def load_json(path: str | os.PathLike) -> dict[str, Any]:
    with open(path) as f:
      return json.load(f)


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
    num_outputs, learning_rate, batch_size, weight_decay: as above.
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
  hv, u = _eigh(0.5 * (h + h.T))
  hv = jnp.maximum(hv, 0.0)
  lam_t = u.T @ lam @ u
  denom = hv[:, None] + hv[None, :]
  hcut = (jnp.finfo(hv.dtype).eps * d * 10) * jnp.max(hv)
  sig_t = jnp.where(denom > 2 * hcut, learning_rate * n * n / batch_size * lam_t
                    / jnp.where(denom > 0, denom, 1.0), 0.0)
  sv, sw = _eigh(0.5 * (sig_t + sig_t.T))
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

    @jax.jit
    def sketch(jc):
      return jax.ops.segment_sum((jc * sc[None, :]).T, b, num_segments=projection_dim).T

    xs = [x] if chunk_size is None else [x[i:i + chunk_size] for i in range(0, len(x), chunk_size)]
    return jnp.concatenate([sketch(jac(params, xc)) for xc in xs], axis=0)

  return projected


# ----------------------------------------------------------------------------- main entry points


@functools.partial(jax.jit, static_argnums=(3,))
def _per_example_quantities(c, theta, idx, k, theta_val_train):
  s = c.shape[0]
  n = theta.shape[0] // k
  c_theta = c @ theta  # (s, nk): row j is Theta c_i (train prediction change)
  dw_sq = jnp.maximum(jnp.sum(c_theta * c, axis=1), 0.0)
  self_change = c_theta.reshape(s, n, k)[jnp.arange(s), idx, :]
  val = None
  if theta_val_train is not None:
    val = (c @ theta_val_train.T).reshape(s, -1, k)
  return dw_sq, self_change, val


def sample_information_from_kernels(
    theta: jax.Array, residual0: jax.Array, *, num_outputs: int = 1, learning_rate, t,
    weight_decay=0.0, time: Time | str = Time.DISCRETE, theta_heldout_train: jax.Array | None = None,
    sigma: float = 1.0, fsi_sigma: float = 1.0, jacobian: jax.Array | None = None,
    sgd_batch_size: int | None = None, method: LooMethod | str = LooMethod.AUTO, indices=None,
    krylov_steps: int | None = None, rtol: float = 1e-11, chunk_size: int | None = None,
    _meta: dict | None = None) -> SampleInformation:
  """Sample information from precomputed kernels (see :func:`sample_information`).

  Args:
    theta: ``(nk, nk)`` training NTK.
    residual0: ``(nk,)``: ``f_lin(w0, X) - Y``.
    theta_heldout_train: ``(mk, nk)`` kernel between held-out and training inputs (F-SI).
    jacobian: ``(nk, d')`` (projected) Jacobian, needed for ``si_sgd``.
    sgd_batch_size: ``b``; computes ``si_sgd`` when given (with ``jacobian``).
    Other arguments: as in :func:`leave_one_out`.
  """
  time = _errors.as_enum("time", time, Time)
  method_e = _errors.as_enum("method", method, LooMethod)
  _errors.check_positive("sigma", sigma)
  _errors.check_positive("fsi_sigma", fsi_sigma)
  nk = int(np.shape(residual0)[0]) if np.ndim(residual0) == 1 else -1
  if theta_heldout_train is not None:
    _errors.check_rank("theta_heldout_train", theta_heldout_train, 2)
    if np.shape(theta_heldout_train)[1] != nk or np.shape(theta_heldout_train)[0] % num_outputs:
      _errors.fail("theta_heldout_train", f"shape (m * {num_outputs}, {nk})",
                   np.shape(theta_heldout_train))
  if sgd_batch_size is not None:
    if int(sgd_batch_size) != sgd_batch_size or sgd_batch_size < 1:
      _errors.fail("sgd_batch_size", "a positive integer or None", sgd_batch_size)
    if jacobian is None or np.ndim(jacobian) != 2 or np.shape(jacobian)[0] != nk:
      _errors.fail("jacobian", f"an ({nk}, d) Jacobian to compute the SGD steady-state SI",
                   None if jacobian is None else np.shape(jacobian))
  loo = leave_one_out(theta, residual0, num_outputs=num_outputs, learning_rate=learning_rate,
                      t=t, weight_decay=weight_decay, time=time, method=method_e,
                      indices=indices, krylov_steps=krylov_steps, rtol=rtol,
                      chunk_size=chunk_size)
  n = nk // num_outputs
  idx = _check_indices(indices, n)
  theta = jnp.asarray(theta)
  tv = None if theta_heldout_train is None else jnp.asarray(theta_heldout_train, theta.dtype)
  dw_sq, self_change, val = _per_example_quantities(
      loo.loo_coefficients, theta, jnp.asarray(idx), int(num_outputs), tv)
  fsi = None
  if val is not None:
    m = val.shape[1]
    fsi = np.asarray(jnp.sum(val * val, axis=(1, 2)) / (2.0 * fsi_sigma ** 2 * m))
  si_sgd = None
  if sgd_batch_size is not None:
    jac = jnp.asarray(jacobian, theta.dtype)
    residual = jnp.asarray(residual0, theta.dtype) + theta @ loo.coefficients
    dwp = loo.loo_coefficients @ jac
    si_sgd = np.asarray(sgd_steady_state_si(dwp, jac, residual, num_outputs=num_outputs,
                                            learning_rate=learning_rate,
                                            batch_size=int(sgd_batch_size),
                                            weight_decay=weight_decay))
  meta = dict(_meta or {})
  settings = SampleInfoSettings(
      n=n, num_outputs=int(num_outputs), learning_rate=float(learning_rate), t=float(t),
      weight_decay=float(weight_decay), time=time.name.lower(), sigma=float(sigma),
      fsi_sigma=float(fsi_sigma), num_heldout=0 if val is None else int(val.shape[1]),
      method=method_e.name.lower(), expansion=meta.get("expansion", "initial"),
      sgd_batch_size=None if sgd_batch_size is None else int(sgd_batch_size),
      projection_dim=meta.get("projection_dim"), projection_seed=int(meta.get("projection_seed", 0)),
      krylov_steps=int(loo.krylov_steps), krylov_error=float(loo.krylov_error))
  dw_sq = np.asarray(dw_sq)
  return SampleInformation(
      indices=np.asarray(idx), weight_change_sq=dw_sq, si=dw_sq / (2.0 * sigma ** 2), fsi=fsi,
      si_sgd=si_sgd, self_prediction_change=np.asarray(self_change),
      heldout_prediction_change=None if val is None else np.asarray(val),
      loo_coefficients=np.asarray(loo.loo_coefficients), coefficients=np.asarray(loo.coefficients),
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


def sample_information(apply_fn: Callable, params: Any, x_train: jax.Array, y_train: jax.Array,
                       *, learning_rate, t, weight_decay=0.0, time: Time | str = Time.DISCRETE,
                       x_heldout: jax.Array | None = None, sigma: float = 1.0,
                       fsi_sigma: float = 1.0, expansion: Expansion | str = Expansion.INITIAL,
                       trained_params: Any = None, sgd_batch_size: int | None = None,
                       projection_dim: int | None = None, projection_seed: int = 0,
                       method: LooMethod | str = LooMethod.AUTO, indices=None,
                       krylov_steps: int | None = None, rtol: float = 1e-11,
                       chunk_size: int | None = None,
                       ntk_chunk_size: int | None = 256) -> SampleInformation:
  """Smooth sample information of every training example, without retraining anything.

  For each example ``i`` (or each of ``indices``): the change of the linearized network's weights
  and predictions when ``i`` is left out of training, ``w - w_-i = J^T c_i`` and
  ``f_w(x) - f_{w_-i}(x) = Theta(x, X) c_i`` (exact, see the module docstring), and from them
  (nats; Harutyunyan et al., ICLR 2021, Def. 3.1, Def. 4.1, Prop. 5.1):

  * ``si = ||w - w_-i||^2 / (2 sigma^2)``;
  * ``fsi = 1/(2 fsi_sigma^2 m) sum_j ||f_w(x_j) - f_{w_-i}(x_j)||^2`` on ``x_heldout``;
  * ``si_sgd = 1/2 (w - w_-i)^T Sigma_SGD^+ (w - w_-i)`` when ``sgd_batch_size`` is given.

  Precision follows ``params`` and ``x_train`` (pass float64 ones under x64 for the exact
  kernel algebra).

  Args:
    apply_fn: ``apply_fn(params, x) -> (batch, k)``.
    params: the starting weights ``w0`` of (linearized) training, also the decay centre.
    x_train: ``(n, ...)`` training inputs, ``n >= 2``.
    y_train: ``(n, k)`` float targets; ``(n,)`` float targets when ``k = 1``; or ``(n,)`` int
      labels (one-hot encoded when ``k > 1``). MSE loss.
    learning_rate: ``eta`` for the SUMMED loss (``eta_mean / n`` for a mean-loss recipe).
    t: number of steps (``DISCRETE``) or time (``CONTINUOUS``); ``inf`` allowed.
    weight_decay: ``lambda >= 0`` (``n * lambda_mean`` for a mean-loss recipe).
    time: :class:`~gbounds.Time`.
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

  Returns:
    :class:`SampleInformation`.
  """
  expansion = _errors.as_enum("expansion", expansion, Expansion)
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
  theta = ntk(x_train, None, w_exp)
  theta_v = None if x_heldout is None else ntk(jnp.asarray(x_heldout), x_train, w_exp)
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
      rtol=rtol, chunk_size=chunk_size, _meta=meta)


def loo_weight_change(apply_fn: Callable, params: Any, x_train: jax.Array,
                      loo_coefficients: jax.Array) -> Any:
  """``w - w_-i = J(X)^T c_i`` as a parameter pytree with a leading axis (one VJP per row).

  Args:
    apply_fn: the network.
    params: the expansion point (``params``, or ``trained_params`` for ``Expansion.TRAINED``).
    x_train: ``(n, ...)`` training inputs.
    loo_coefficients: ``(s, nk)`` rows ``c_i`` (``SampleInformation.loo_coefficients``).
  """
  c = jnp.asarray(loo_coefficients)
  _errors.check_rank("loo_coefficients", c, 2)
  x_train = jnp.asarray(x_train)
  y, vjp = jax.vjp(lambda p: apply_fn(p, x_train), params)
  if c.shape[1] != y.size:
    _errors.fail("loo_coefficients", f"rows of length n k = {y.size}", f"shape {c.shape}")
  return jax.lax.map(lambda ci: vjp(ci.reshape(y.shape).astype(y.dtype))[0], c)


__all__ = [
    "Expansion", "LeaveOneOut", "LooMethod", "SampleInfoSettings", "SampleInformation",
    "leave_one_out", "loo_weight_change", "projected_jacobian_fn", "sample_information",
    "sample_information_from_kernels", "sgd_steady_state_si",
]
