"""Shared numerics: one symmetric eigendecomposition with an explicit backend policy, matrix
functions through it, and safe logarithms.

Eigendecomposition backend policy (:class:`EighBackend`):

* ``AUTO`` (the default) uses **XLA** (``jnp.linalg.eigh``) on every backend for a single
  ``(n, n)`` matrix, and **host LAPACK** (``numpy.linalg.eigh`` through a ``jax.pure_callback``)
  for a *batched* ``(..., n, n)`` input on the CPU backend. On CPU, XLA's batched ``eigh`` inside
  ``jit``-compiled loops deadlocked intermittently on a 2-core machine (all XLA worker threads
  idle, the result never ready; jaxlib 0.10.2), twice in the test suite; LAPACK's
  divide-and-conquer is at least as accurate. A single decomposition has shown no such failure,
  and keeping XLA there keeps every figure computed before this module existed unchanged. On GPU
  and TPU the XLA kernel is the fast path.
* ``HOST`` and ``XLA`` force one backend. A caller whose decomposition runs under ``vmap`` or in a
  compiled loop on CPU (where ``AUTO`` sees one unbatched matrix at trace time but XLA batches
  it) passes ``HOST`` explicitly, as the SGD steady-state sample information does.

Both backends work under ``jit`` and ``vmap`` and keep the input's dtype (float32 or float64).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gbounds._src import errors as _errors

__all__ = ["Eigh", "EighBackend", "eigh", "matrix_function", "matrix_function_times", "safe_log",
           "xlogy"]


class EighBackend(enum.Enum):
  """Where :func:`eigh` runs (see the module docstring for the policy)."""
  AUTO = "auto"
  HOST = "host"
  XLA = "xla"


class Eigh(NamedTuple):
  """``A = vectors @ diag(values) @ vectors.T`` (values ascending)."""
  values: jax.Array
  vectors: jax.Array


def _as_bytes(z: np.ndarray, dtype: np.dtype) -> np.ndarray:
  return np.ascontiguousarray(np.asarray(z).astype(dtype)).view(np.uint8).reshape(
      np.shape(z) + (dtype.itemsize,))


def _host_eigh_bytes(a, dtype):
  w, v = np.linalg.eigh(np.asarray(a, dtype))
  return _as_bytes(w, dtype), _as_bytes(v, dtype)


@jax.custom_jvp
def _host_eigh(a: jax.Array) -> tuple[jax.Array, jax.Array]:
  # Results cross the callback boundary as raw bytes and are bit-cast back: JAX re-canonicalises
  # callback outputs in the callback's own thread, where a caller's ``jax.enable_x64(True)``
  # context is not in effect, which would turn float64 results into float32.
  dtype = np.dtype(a.dtype)
  b = dtype.itemsize
  shapes = (jax.ShapeDtypeStruct(a.shape[:-1] + (b,), jnp.uint8),
            jax.ShapeDtypeStruct(a.shape + (b,), jnp.uint8))
  w8, v8 = jax.pure_callback(functools.partial(_host_eigh_bytes, dtype=dtype), shapes, a,
                             vmap_method="expand_dims")
  return jax.lax.bitcast_convert_type(w8, a.dtype), jax.lax.bitcast_convert_type(v8, a.dtype)


@_host_eigh.defjvp
def _host_eigh_jvp(primals, tangents):
  # First-order perturbation of a symmetric eigendecomposition (as jnp.linalg.eigh's rule):
  # with dA' = V^T sym(dA) V, dw = diag(dA') and dV = V (F o dA'), F_ij = 1 / (w_j - w_i) for
  # i != j and 0 on the diagonal (distinct eigenvalues assumed, as everywhere).
  (a,), (da,) = primals, tangents
  w, v = _host_eigh(a)
  da = 0.5 * (da + jnp.swapaxes(da, -1, -2))
  vt = jnp.swapaxes(v, -1, -2)
  dap = vt @ da @ v
  diff = w[..., None, :] - w[..., :, None]
  eye = jnp.eye(w.shape[-1], dtype=bool)
  f = jnp.where(eye, jnp.zeros((), w.dtype), 1.0 / jnp.where(eye, jnp.ones((), w.dtype), diff))
  dw = jnp.diagonal(dap, axis1=-2, axis2=-1)
  dv = v @ (f * dap)
  return (w, v), (dw, dv)


def _on_cpu(a) -> bool:
  try:
    devices = a.devices()  # concrete arrays
    return all(d.platform == "cpu" for d in devices)
  except Exception:  # tracers: the default backend decides
    return jax.default_backend() == "cpu"


def eigh(a: jax.typing.ArrayLike, *, backend: EighBackend = EighBackend.AUTO) -> Eigh:
  """Symmetric eigendecomposition ``A = V diag(w) V^T``, batched over leading axes (backend per
  the policy of the module docstring).

  Args:
    a: ``(..., n, n)`` symmetric real matrix (only its symmetric part is meaningful).
    backend: an :class:`EighBackend`; ``AUTO`` follows the policy of the module docstring.

  Returns:
    :class:`Eigh` with ``values`` ``(..., n)`` ascending and orthonormal ``vectors``
    ``(..., n, n)``, in the dtype of ``a``.
  """
  a = jnp.asarray(a)
  if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
    _errors.fail("a", "a (..., n, n) square matrix", f"shape {a.shape}")
  if not jnp.issubdtype(a.dtype, jnp.floating):
    a = a.astype(jnp.result_type(float))  # integer/bool input: the default float dtype
  backend = _errors.as_enum("backend", backend, EighBackend)
  if backend == EighBackend.AUTO:
    backend = EighBackend.HOST if (a.ndim > 2 and _on_cpu(a)) else EighBackend.XLA
  if backend == EighBackend.HOST:
    return Eigh(*_host_eigh(a))
  w, v = jnp.linalg.eigh(a)
  return Eigh(w, v)


def matrix_function(e: Eigh, f: Callable[[jax.Array], jax.Array]) -> jax.Array:
  """``f(A) = V diag(f(w)) V^T`` from an eigendecomposition of ``A``.

  Args:
    e: the :class:`Eigh` of ``A``.
    f: elementwise function of the eigenvalues.

  Returns:
    The ``(n, n)`` matrix ``f(A)``.
  """
  return (e.vectors * f(e.values)[..., None, :]) @ jnp.swapaxes(e.vectors, -1, -2)


def matrix_function_times(e: Eigh, f: Callable[[jax.Array], jax.Array],
                          v: jax.typing.ArrayLike) -> jax.Array:
  """``f(A) @ v = V (f(w) * (V^T v))`` without forming ``f(A)``.

  Args:
    e: the :class:`Eigh` of ``A`` (``n x n``).
    f: elementwise function of the eigenvalues.
    v: ``(..., n)`` (one vector per decomposition) or ``(..., n, m)`` right-hand side, with the
      batch axes of ``e``.

  Returns:
    ``f(A) @ v``, with the shape of ``v``.
  """
  v = jnp.asarray(v)
  fw = f(e.values)
  if v.ndim == e.values.ndim:  # one vector per decomposition
    proj = (jnp.swapaxes(e.vectors, -1, -2) @ v[..., None])[..., 0]
    return (e.vectors @ (proj * fw)[..., None])[..., 0]
  proj = jnp.swapaxes(e.vectors, -1, -2) @ v
  return e.vectors @ (proj * fw[..., :, None])


def safe_log(x: jax.typing.ArrayLike, *, floor: float | None = None) -> jax.Array:
  """``log(max(x, floor))``; ``floor`` defaults to the dtype's smallest normal number.

  Args:
    x: non-negative array.
    floor: smallest value passed to ``log``.

  Returns:
    ``log(x)`` with zeros mapped to ``log(floor)`` instead of ``-inf``.
  """
  x = jnp.asarray(x)
  dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.result_type(float)
  x = x.astype(dtype)
  lo = jnp.finfo(dtype).tiny if floor is None else floor
  return jnp.log(jnp.maximum(x, jnp.asarray(lo, dtype)))


def xlogy(x: jax.typing.ArrayLike, y: jax.typing.ArrayLike) -> jax.Array:
  """``x * log(y)`` with ``0 * log(0) = 0``.

  Args:
    x: array.
    y: array broadcastable with ``x``.

  Returns:
    ``x log y``, zero where ``x == 0``.
  """
  return jax.scipy.special.xlogy(x, y)
