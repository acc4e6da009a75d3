"""Shared numerics (gbounds._src.numerics) against numpy/scipy, in float32 and float64, under jit
and vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from gbounds._src import numerics
from gbounds._src.errors import InvalidInputError
from gbounds._src.numerics import EighBackend

BACKENDS = [EighBackend.AUTO, EighBackend.HOST, EighBackend.XLA]
DTYPES = [np.float32, pytest.param(np.float64, marks=pytest.mark.x64)]


def _tol(dtype):
  return 1e-4 if np.dtype(dtype) == np.float32 else 1e-10


def _random_symmetric(rng, n, dtype):
  a = rng.standard_normal((n, n))
  return ((a + a.T) / 2).astype(dtype)


def _ill_conditioned(rng, n, cond, dtype):
  """``Q diag(w) Q^T`` with eigenvalues log-spaced over ``[1/cond, 1]``."""
  q, _ = np.linalg.qr(rng.standard_normal((n, n)))
  w = np.logspace(-np.log10(cond), 0, n)
  return ((q * w) @ q.T).astype(dtype), w


def _check_decomposition(a, e, dtype):
  """Values ascending and equal to numpy's, vectors orthonormal, V diag(w) V^T == a."""
  a64 = np.asarray(a, np.float64)
  w, v = np.asarray(e.values), np.asarray(e.vectors)
  assert e.values.dtype == dtype and e.vectors.dtype == dtype
  scale = np.max(np.abs(np.linalg.eigvalsh(a64)))
  np.testing.assert_allclose(w, np.linalg.eigvalsh(a64), atol=_tol(dtype) * scale * 10)
  assert np.all(np.diff(w, axis=-1) >= -_tol(dtype) * scale)
  v64 = v.astype(np.float64)
  eye = np.broadcast_to(np.eye(a.shape[-1]), v.shape)
  np.testing.assert_allclose(np.swapaxes(v64, -1, -2) @ v64, eye, atol=_tol(dtype) * 10)
  recon = (v64 * w.astype(np.float64)[..., None, :]) @ np.swapaxes(v64, -1, -2)
  np.testing.assert_allclose(recon, a64, atol=_tol(dtype) * scale * 10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_eigh_matches_numpy_on_random_symmetric(backend, dtype):
  a = _random_symmetric(np.random.default_rng(0), 12, dtype)
  _check_decomposition(a, numerics.eigh(a, backend=backend), dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_eigh_under_jit(backend, dtype):
  a = _random_symmetric(np.random.default_rng(1), 9, dtype)
  e = jax.jit(lambda x: numerics.eigh(x, backend=backend))(a)
  _check_decomposition(a, e, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_eigh_under_vmap_and_batched(backend, dtype):
  rng = np.random.default_rng(2)
  a = np.stack([_random_symmetric(rng, 7, dtype) for _ in range(5)])
  e_vmap = jax.vmap(lambda x: numerics.eigh(x, backend=backend))(a)
  _check_decomposition(a, e_vmap, dtype)
  e_jit_vmap = jax.jit(jax.vmap(lambda x: numerics.eigh(x, backend=backend)))(a)
  _check_decomposition(a, e_jit_vmap, dtype)
  e_batched = numerics.eigh(a, backend=backend)  # leading axes without vmap
  _check_decomposition(a, e_batched, dtype)
  np.testing.assert_allclose(np.asarray(e_batched.values), np.asarray(e_vmap.values),
                             atol=_tol(dtype) * 10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_eigh_ill_conditioned_float64(backend):
  """cond = 1e10: the small eigenvalues are still resolved to float64 precision relative to the
  largest (||A|| = 1)."""
  if not jax.config.jax_enable_x64:
    pytest.skip("needs float64 (GBOUNDS_TEST_X64=0)")
  a, w_true = _ill_conditioned(np.random.default_rng(3), 20, 1e10, np.float64)
  e = numerics.eigh(a, backend=backend)
  _check_decomposition(a, e, np.float64)
  np.testing.assert_allclose(np.asarray(e.values), w_true, atol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_eigh_ill_conditioned_float32(backend):
  """cond = 1e6 in float32: eigenvalues within float32 resolution of ||A||, decomposition exact to
  float32 precision."""
  a, w_true = _ill_conditioned(np.random.default_rng(4), 20, 1e6, np.float32)
  e = jax.jit(lambda x: numerics.eigh(x, backend=backend))(a)
  _check_decomposition(a, e, np.float32)
  np.testing.assert_allclose(np.asarray(e.values), w_true, atol=1e-5)


@pytest.mark.x64
def test_host_and_xla_backends_agree():
  a, _ = _ill_conditioned(np.random.default_rng(5), 15, 1e6, np.float64)
  h = numerics.eigh(a, backend=EighBackend.HOST)
  x = numerics.eigh(a, backend=EighBackend.XLA)
  np.testing.assert_allclose(np.asarray(h.values), np.asarray(x.values), atol=1e-12)
  # Eigenvectors agree up to sign (the spectrum is simple).
  hv, xv = np.asarray(h.vectors), np.asarray(x.vectors)
  signs = np.sign(np.sum(hv * xv, axis=0))
  np.testing.assert_allclose(hv, xv * signs, atol=1e-8)


def test_host_eigh_keeps_float64_inside_enable_x64_context():
  """The host callback returns float64 even when x64 is only enabled by a context manager."""
  a = _random_symmetric(np.random.default_rng(6), 6, np.float64)
  with jax.enable_x64(True):
    e = jax.jit(lambda x: numerics.eigh(x, backend=EighBackend.HOST))(jnp.asarray(a, jnp.float64))
    assert e.values.dtype == jnp.float64 and e.vectors.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(e.values), np.linalg.eigvalsh(a), atol=1e-12)


def test_eigh_backend_accepts_values_and_rejects_unknown():
  a = np.eye(3, dtype=np.float32)
  np.testing.assert_allclose(np.asarray(numerics.eigh(a, backend="host").values), np.ones(3))
  with pytest.raises(ValueError):
    numerics.eigh(a, backend="gpu-magic")


def _integer_eigh_check(backend):
  a = np.array([[2, 1], [1, 3]], np.int32)
  e = numerics.eigh(a, backend=backend)
  assert jnp.issubdtype(e.values.dtype, jnp.floating)
  np.testing.assert_allclose(np.asarray(e.values), np.linalg.eigvalsh(a.astype(float)), rtol=1e-6)
  v = np.asarray(e.vectors, np.float64)
  np.testing.assert_allclose(v.T @ v, np.eye(2), atol=1e-6)


def test_eigh_integer_input_xla():
  _integer_eigh_check(EighBackend.XLA)


@pytest.mark.parametrize("backend", [EighBackend.HOST, EighBackend.AUTO])
def test_eigh_integer_input_host(backend):
  _integer_eigh_check(backend)


def _eigh_loss(backend):
  """A smooth scalar of the decomposition: sum of w^2 plus a sign-invariant vector term."""
  def loss(a):
    e = numerics.eigh(a, backend=backend)
    return jnp.sum(e.values ** 2) + jnp.sum(e.vectors[:, -1] ** 4)
  return loss


def test_eigh_xla_is_differentiable():
  """d/dA sum(w^2) = 2 A for symmetric A (an independent closed form)."""
  a = _random_symmetric(np.random.default_rng(11), 5, np.float32)
  g = jax.grad(lambda x: jnp.sum(numerics.eigh(x, backend=EighBackend.XLA).values ** 2))(a)
  np.testing.assert_allclose(np.asarray(g), 2 * a, rtol=1e-4, atol=1e-4)


def test_eigh_host_is_differentiable():
  a = _random_symmetric(np.random.default_rng(11), 5, np.float32)
  g = jax.grad(_eigh_loss(EighBackend.HOST))(a)
  g_ref = jax.grad(_eigh_loss(EighBackend.XLA))(a)
  np.testing.assert_allclose(np.asarray(g), np.asarray(g_ref), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matrix_function_matches_scipy(dtype):
  rng = np.random.default_rng(7)
  b = rng.standard_normal((8, 8))
  a = (b @ b.T + 0.5 * np.eye(8)).astype(dtype)  # SPD
  e = numerics.eigh(a)
  a64 = np.asarray(a, np.float64)
  tol = 1e-3 if np.dtype(dtype) == np.float32 else 1e-10
  np.testing.assert_allclose(np.asarray(numerics.matrix_function(e, jnp.sqrt)),
                             scipy.linalg.sqrtm(a64).real, rtol=tol, atol=tol)
  np.testing.assert_allclose(np.asarray(numerics.matrix_function(e, jnp.exp)),
                             scipy.linalg.expm(a64), rtol=tol)
  np.testing.assert_allclose(np.asarray(numerics.matrix_function(e, jnp.log)),
                             scipy.linalg.logm(a64).real, rtol=tol, atol=tol)
  np.testing.assert_allclose(np.asarray(numerics.matrix_function(e, lambda w: 1 / w)),
                             np.linalg.inv(a64), rtol=tol, atol=tol)
  assert numerics.matrix_function(e, jnp.exp).dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_matrix_function_times_matches_explicit(dtype):
  rng = np.random.default_rng(8)
  a = _random_symmetric(rng, 10, dtype)
  w, v = np.linalg.eigh(np.asarray(a, np.float64))
  f = lambda x: jnp.tanh(x) + 2.0  # noqa: E731
  f_a = (v * np.asarray(f(w))) @ v.T
  e = numerics.eigh(a)
  tol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-10
  vec = rng.standard_normal(10).astype(dtype)
  mat = rng.standard_normal((10, 3)).astype(dtype)
  out_vec = numerics.matrix_function_times(e, f, vec)
  out_mat = numerics.matrix_function_times(e, f, mat)
  assert out_vec.shape == (10,) and out_mat.shape == (10, 3)
  np.testing.assert_allclose(np.asarray(out_vec), f_a @ vec.astype(np.float64), atol=tol)
  np.testing.assert_allclose(np.asarray(out_mat), f_a @ mat.astype(np.float64), atol=tol)
  np.testing.assert_allclose(np.asarray(numerics.matrix_function(e, f)), f_a, atol=tol)


def test_matrix_functions_under_jit_and_vmap():
  rng = np.random.default_rng(9)
  a = np.stack([_random_symmetric(rng, 6, np.float32) for _ in range(4)])
  rhs = rng.standard_normal((4, 6)).astype(np.float32)

  def apply(x, r):
    e = numerics.eigh(x)
    return numerics.matrix_function(e, jnp.exp), numerics.matrix_function_times(e, jnp.exp, r)

  fa, fr = jax.jit(jax.vmap(apply))(a, rhs)
  for i in range(4):
    ref = scipy.linalg.expm(a[i].astype(np.float64))
    np.testing.assert_allclose(np.asarray(fa[i]), ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(fr[i]), ref @ rhs[i], rtol=1e-4, atol=1e-4)


def test_matrix_function_times_batched_matrix_rhs_without_vmap():
  """Leading batch axes: values ``(b, n)`` and a right-hand side ``(b, n, m)``."""
  rng = np.random.default_rng(10)
  a = np.stack([_random_symmetric(rng, 5, np.float32) for _ in range(3)])
  e = numerics.eigh(a)
  mat = rng.standard_normal((3, 5, 2)).astype(np.float32)
  out = np.asarray(numerics.matrix_function_times(e, jnp.exp, mat))
  for i in range(3):
    ref = scipy.linalg.expm(a[i].astype(np.float64))
    np.testing.assert_allclose(out[i], ref @ mat[i], rtol=1e-4, atol=1e-4)


def test_matrix_function_times_batched_vector_rhs_without_vmap():
  rng = np.random.default_rng(10)
  a = np.stack([_random_symmetric(rng, 5, np.float32) for _ in range(3)])
  e = numerics.eigh(a)
  vec = rng.standard_normal((3, 5)).astype(np.float32)
  out = np.asarray(numerics.matrix_function_times(e, jnp.exp, vec))
  for i in range(3):
    ref = scipy.linalg.expm(a[i].astype(np.float64))
    np.testing.assert_allclose(out[i], ref @ vec[i], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_safe_log(dtype):
  x = np.array([0.0, 1e-30, 0.5, 1.0, 3.0], dtype)
  out = numerics.safe_log(x)
  assert out.dtype == dtype
  tiny = np.finfo(dtype).tiny
  np.testing.assert_allclose(np.asarray(out), np.log(np.maximum(x.astype(np.float64), tiny)),
                             rtol=1e-6)
  assert np.all(np.isfinite(np.asarray(out)))
  floored = numerics.safe_log(x, floor=1e-3)
  np.testing.assert_allclose(np.asarray(floored), np.log(np.maximum(x.astype(np.float64), 1e-3)),
                             rtol=1e-6)
  np.testing.assert_allclose(np.asarray(jax.jit(numerics.safe_log)(x)), np.asarray(out))
  np.testing.assert_allclose(np.asarray(jax.vmap(numerics.safe_log)(x)), np.asarray(out))


def test_safe_log_integer_input_gives_default_float():
  out = numerics.safe_log(np.array([0, 1, 4], np.int32))
  assert jnp.issubdtype(out.dtype, jnp.floating)
  np.testing.assert_allclose(np.asarray(out)[1:], np.log([1.0, 4.0]), rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_xlogy_matches_scipy(dtype):
  x = np.array([0.0, 0.0, 1.0, 2.5, 0.3], dtype)
  y = np.array([0.0, 2.0, 1.0, 0.7, 4.0], dtype)
  ref = scipy.special.xlogy(x.astype(np.float64), y.astype(np.float64))
  tol = 1e-6 if np.dtype(dtype) == np.float32 else 1e-14
  np.testing.assert_allclose(np.asarray(numerics.xlogy(x, y)), ref, rtol=tol, atol=tol)
  np.testing.assert_allclose(np.asarray(jax.jit(numerics.xlogy)(x, y)), ref, rtol=tol, atol=tol)
  np.testing.assert_allclose(np.asarray(jax.vmap(numerics.xlogy)(x, y)), ref, rtol=tol, atol=tol)
  assert float(numerics.xlogy(x, y)[0]) == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(2, 3), (3,)])
def test_eigh_refuses_non_square_input(backend, shape):
  with pytest.raises(InvalidInputError, match=r"\ba\b"):
    numerics.eigh(np.ones(shape, np.float32), backend=backend)


@pytest.mark.x64
@pytest.mark.parametrize("backend", BACKENDS)
def test_eigh_jvp_matches_the_expm_frechet_derivative(backend):
  """d/dt exp(A + tE) at t = 0 through eigh (values and vectors) equals scipy's Frechet
  derivative of expm, an independent computation."""
  rng = np.random.default_rng(12)
  a = _random_symmetric(rng, 6, np.float64)
  e = _random_symmetric(rng, 6, np.float64)
  f = lambda x: numerics.matrix_function(numerics.eigh(x, backend=backend), jnp.exp)  # noqa: E731
  value, tangent = jax.jvp(f, (jnp.asarray(a),), (jnp.asarray(e),))
  np.testing.assert_allclose(np.asarray(value), scipy.linalg.expm(a), rtol=1e-10)
  ref = scipy.linalg.expm_frechet(a, e, compute_expm=False)
  np.testing.assert_allclose(np.asarray(tangent), ref, rtol=1e-8, atol=1e-10)


def test_eigh_host_gradients_under_jit_and_vmap_match_xla():
  rng = np.random.default_rng(13)
  a = np.stack([_random_symmetric(rng, 5, np.float32) for _ in range(3)])
  g_host = jax.jit(jax.vmap(jax.grad(_eigh_loss(EighBackend.HOST))))(a)
  g_xla = jax.vmap(jax.grad(_eigh_loss(EighBackend.XLA)))(a)
  np.testing.assert_allclose(np.asarray(g_host), np.asarray(g_xla), rtol=1e-3, atol=1e-4)


def test_auto_policy_on_cpu_single_matrix_xla_batched_host():
  """The documented AUTO policy: one matrix goes to XLA, a batch (on CPU) to host LAPACK."""
  if jax.default_backend() != "cpu":
    pytest.skip("the policy's CPU branch")
  rng = np.random.default_rng(21)
  a = np.stack([_random_symmetric(rng, 6, np.float32) for _ in range(3)])
  auto1 = numerics.eigh(a[0])
  xla1 = numerics.eigh(a[0], backend=EighBackend.XLA)
  np.testing.assert_array_equal(np.asarray(auto1.values), np.asarray(xla1.values))
  np.testing.assert_array_equal(np.asarray(auto1.vectors), np.asarray(xla1.vectors))
  auto3 = numerics.eigh(a)
  host3 = numerics.eigh(a, backend=EighBackend.HOST)
  np.testing.assert_array_equal(np.asarray(auto3.values), np.asarray(host3.values))
  np.testing.assert_array_equal(np.asarray(auto3.vectors), np.asarray(host3.vectors))
  w_ref = np.linalg.eigh(a.astype(np.float64))[0]
  np.testing.assert_allclose(np.asarray(auto3.values), w_ref, rtol=1e-4, atol=1e-4)
