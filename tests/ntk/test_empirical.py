"""Tests of the NTK engine against brute-force Jacobians (float64, so marked ``x64``) and across
implementations; ``test_float32_engine`` runs with x64 off too."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import gbounds
from gbounds.ntk import _empirical as _ntk

IMPLS = list(gbounds.ntk.NtkImplementation)


def _mlp(x, dtype=jnp.float64, k=2):
  m = gbounds.as_model_fn(gbounds.models.MLP((16, 8), k, activation="tanh", param_dtype=dtype),
                          example_input=x, key=0)
  return m.apply_fn, gbounds.ntk.cast_tree(m.params, dtype)


def _cnn(x, dtype=jnp.float64):
  stages = (gbounds.models.ConvStage(4, 3, 2, 1), gbounds.models.ConvStage(6, 3, 2, 0))
  m = gbounds.as_model_fn(gbounds.models.CNN(stages, (8,), 3, param_dtype=dtype), example_input=x, key=1)
  return m.apply_fn, gbounds.ntk.cast_tree(m.params, dtype)


def _brute_jacobian(apply_fn, params, x):
  """Row by row with jax.grad: an implementation independent of the engine's vmap(jacrev)."""
  flat, unravel = jax.flatten_util.ravel_pytree(params)
  k = apply_fn(params, x[:1]).shape[-1]
  grad = jax.jit(jax.grad(lambda w, xi, c: apply_fn(unravel(w), xi)[0, c]))
  return jnp.stack([grad(flat, x[i:i + 1], c) for i in range(x.shape[0]) for c in range(k)])


@pytest.fixture(params=["mlp", "cnn"])
def net(request):
  if request.param == "mlp":
    x = jax.random.normal(jax.random.key(0), (7, 5), jnp.float64)
    x2 = jax.random.normal(jax.random.key(1), (4, 5), jnp.float64)
    return (*_mlp(x), x, x2)
  x = jax.random.normal(jax.random.key(0), (6, 8, 8, 2), jnp.float64)
  x2 = jax.random.normal(jax.random.key(1), (3, 8, 8, 2), jnp.float64)
  return (*_cnn(x), x, x2)


@pytest.mark.x64
@pytest.mark.parametrize("impl", IMPLS)
def test_kernel_equals_brute_force_jjt(net, impl):
  apply_fn, params, x, x2 = net
  j1 = _brute_jacobian(apply_fn, params, x)
  j2 = _brute_jacobian(apply_fn, params, x2)
  ntk = gbounds.ntk.empirical_ntk_fn(apply_fn, implementation=impl)
  np.testing.assert_allclose(ntk(x, None, params), j1 @ j1.T, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(ntk(x, x2, params), j1 @ j2.T, rtol=1e-12, atol=1e-12)


@pytest.mark.x64
def test_implementations_agree_and_trace(net):
  apply_fn, params, x, x2 = net
  kernels = {}
  for impl in IMPLS:
    for out in gbounds.ntk.NtkOutput:
      kernels[impl, out] = gbounds.ntk.empirical_ntk_fn(apply_fn, implementation=impl, output=out)(
          x, x2, params)
  a = kernels[IMPLS[0], gbounds.ntk.NtkOutput.FULL]
  b = kernels[IMPLS[1], gbounds.ntk.NtkOutput.FULL]
  assert float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(a))) < 1e-10
  k = apply_fn(params, x[:1]).shape[-1]
  trace_ref = np.einsum("akbk->ab", np.asarray(a).reshape(x.shape[0], k, x2.shape[0], k)) / k
  for impl in IMPLS:
    np.testing.assert_allclose(kernels[impl, gbounds.ntk.NtkOutput.TRACE], trace_ref, rtol=1e-10)


@pytest.mark.x64
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("chunk", [1, 4])
def test_chunked_equals_unchunked(net, impl, chunk):
  apply_fn, params, x, x2 = net
  full = gbounds.ntk.empirical_ntk_fn(apply_fn, implementation=impl)
  chunked = gbounds.ntk.empirical_ntk_fn(apply_fn, implementation=impl, chunk_size=chunk)
  np.testing.assert_allclose(chunked(x, None, params), full(x, None, params), rtol=1e-12)
  np.testing.assert_allclose(chunked(x, x2, params), full(x, x2, params), rtol=1e-12)


@pytest.mark.x64
def test_float32_kernel_close_to_float64():
  x = jax.random.normal(jax.random.key(0), (5, 5), jnp.float64)
  apply64, p64 = _mlp(x)
  apply32, _ = _mlp(x.astype(jnp.float32), jnp.float32)
  p32 = gbounds.ntk.cast_tree(p64, jnp.float32)
  k64 = gbounds.ntk.empirical_ntk_fn(apply64)(x, None, p64)
  k32 = gbounds.ntk.empirical_ntk_fn(apply32)(x.astype(jnp.float32), None, p32)
  assert k32.dtype == jnp.float32 and k64.dtype == jnp.float64
  np.testing.assert_allclose(k32, k64, rtol=1e-4, atol=1e-5)


@pytest.mark.x64
def test_jacobian_fn_matches_brute_force(net):
  apply_fn, params, x, _ = net
  np.testing.assert_allclose(gbounds.ntk.jacobian_fn(apply_fn, chunk_size=4)(params, x),
                             _brute_jacobian(apply_fn, params, x), rtol=1e-12, atol=1e-14)


@pytest.mark.x64
def test_linearize_at_w0_and_jvp_elsewhere(net):
  apply_fn, params, x, _ = net
  f_lin = gbounds.ntk.linearize(apply_fn, params)
  np.testing.assert_allclose(f_lin(params, x), apply_fn(params, x), rtol=1e-14)
  leaves, tree = jax.tree_util.tree_flatten(params)
  keys = jax.random.split(jax.random.key(3), len(leaves))
  delta = jax.tree_util.tree_unflatten(
      tree, [1e-2 * jax.random.normal(k, l.shape, l.dtype) for k, l in zip(keys, leaves)])
  moved = jax.tree_util.tree_map(lambda a, b: a + b, params, delta)
  jac = _brute_jacobian(apply_fn, params, x)
  flat_delta = jax.flatten_util.ravel_pytree(delta)[0]
  expected = apply_fn(params, x).reshape(-1) + jac @ flat_delta
  np.testing.assert_allclose(jax.jit(f_lin)(moved, x).reshape(-1), expected, rtol=1e-12)
  # the jvp form is linear in the displacement: f_lin(w0 + 2d) - f0 = 2 (f_lin(w0 + d) - f0)
  moved2 = jax.tree_util.tree_map(lambda a, b: a + 2 * b, params, delta)
  f0 = apply_fn(params, x)
  np.testing.assert_allclose(f_lin(moved2, x) - f0, 2 * (f_lin(moved, x) - f0), rtol=1e-10)


@pytest.mark.x64
def test_vjp_and_jvp_products(net):
  apply_fn, params, x, _ = net
  jac = _brute_jacobian(apply_fn, params, x)
  a = jax.random.normal(jax.random.key(5), (jac.shape[0],), jnp.float64)
  out = gbounds.ntk.vector_jacobian_product(apply_fn, params, x, a)
  np.testing.assert_allclose(jax.flatten_util.ravel_pytree(out)[0], jac.T @ a, rtol=1e-12)
  v = jax.random.normal(jax.random.key(6), (jac.shape[1],), jnp.float64)
  unravel = jax.flatten_util.ravel_pytree(params)[1]
  np.testing.assert_allclose(
      gbounds.ntk.jacobian_vector_product(apply_fn, params, x, unravel(v)).reshape(-1), jac @ v,
      rtol=1e-12)


@pytest.mark.x64
@pytest.mark.parametrize("family", ["mlp", "cnn"])
def test_linen_and_nnx_give_the_same_kernel(family):
  if family == "mlp":
    x = jax.random.normal(jax.random.key(0), (5, 4, 4, 1), jnp.float64)
    linen = gbounds.models.MLP((12, 6), 2, param_dtype=jnp.float64)
    twin = gbounds.models.NnxMLP(16, (12, 6), 2, param_dtype=jnp.float64, rngs=nnx.Rngs(3))
  else:
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 1), jnp.float64)
    stages = (gbounds.models.ConvStage(3, 3, 2, 1), gbounds.models.ConvStage(4, 3, 1, 0))
    linen = gbounds.models.CNN(stages, (5,), 2, param_dtype=jnp.float64)
    twin = gbounds.models.NnxCNN((8, 8, 1), stages, (5,), 2, param_dtype=jnp.float64, rngs=nnx.Rngs(3))
  m = gbounds.as_model_fn(linen, example_input=x, key=0)
  gbounds.models.linen_params_to_nnx(twin, m.params)
  n = gbounds.as_model_fn(twin)
  k_linen = gbounds.ntk.empirical_ntk_fn(m.apply_fn)(x, None, m.params)
  k_nnx = gbounds.ntk.empirical_ntk_fn(n.apply_fn)(x, None, n.params)
  np.testing.assert_allclose(k_nnx, k_linen, rtol=1e-12)
  # and through the other implementation
  k_nnx_nvp = gbounds.ntk.empirical_ntk_fn(n.apply_fn, implementation="ntk_vector_products")(
      x, None, n.params)
  np.testing.assert_allclose(k_nnx_nvp, k_linen, rtol=1e-10)


@pytest.mark.x64
def test_ntk_under_jit_of_apply():
  x = jax.random.normal(jax.random.key(0), (4, 5), jnp.float64)
  apply_fn, params = _mlp(x)
  ref = gbounds.ntk.empirical_ntk_fn(apply_fn)(x, None, params)
  jitted = gbounds.ntk.empirical_ntk_fn(jax.jit(apply_fn))(x, None, params)
  np.testing.assert_allclose(jitted, ref, rtol=1e-12)


@pytest.mark.x64
class TestBadInput:
  x = np.random.default_rng(0).normal(size=(4, 5))

  def test_unknown_implementation(self):
    apply_fn, _ = _mlp(jnp.asarray(self.x))
    with pytest.raises(gbounds.InvalidInputError, match="implementation"):
      gbounds.ntk.empirical_ntk_fn(apply_fn, implementation="structured_derivatives")

  def test_unknown_output(self):
    apply_fn, _ = _mlp(jnp.asarray(self.x))
    with pytest.raises(gbounds.InvalidInputError, match="output"):
      gbounds.ntk.empirical_ntk_fn(apply_fn, output="diagonal")

  def test_bad_chunk(self):
    apply_fn, _ = _mlp(jnp.asarray(self.x))
    with pytest.raises(gbounds.InvalidInputError, match="chunk_size"):
      gbounds.ntk.empirical_ntk_fn(apply_fn, chunk_size=0)

  def test_nan_input(self):
    apply_fn, params = _mlp(jnp.asarray(self.x))
    bad = self.x.copy()
    bad[1, 2] = np.nan
    with pytest.raises(gbounds.InvalidInputError, match="x1: expected finite"):
      gbounds.ntk.empirical_ntk_fn(apply_fn)(bad, None, params)

  def test_empty_input(self):
    apply_fn, params = _mlp(jnp.asarray(self.x))
    with pytest.raises(gbounds.InvalidInputError, match="x1: expected a non-empty"):
      gbounds.ntk.empirical_ntk_fn(apply_fn)(self.x[:0], None, params)

  def test_mismatched_shapes(self):
    apply_fn, params = _mlp(jnp.asarray(self.x))
    with pytest.raises(gbounds.InvalidInputError, match="x2"):
      gbounds.ntk.empirical_ntk_fn(apply_fn)(self.x, self.x[:, :3], params)


@pytest.mark.x64
def test_cast_tree_leaves_ints_alone():
  tree = {"w": jnp.ones(3, jnp.float32), "i": jnp.arange(3)}
  out = _ntk.cast_tree(tree, jnp.float64)
  assert out["w"].dtype == jnp.float64 and out["i"].dtype == tree["i"].dtype


@pytest.mark.x64
def test_checks_are_eager_only_and_change_no_number():
  """Under jit (tracers) the value checks are skipped and the results equal the eager ones;
  eagerly, a NaN parameter is refused instead of giving a NaN kernel."""
  x = jax.random.normal(jax.random.key(3), (4, 5), jnp.float64)
  apply_fn, params = _mlp(x)
  f_lin = gbounds.ntk.linearize(apply_fn, params)
  tangent = jax.tree_util.tree_map(jnp.ones_like, params)
  eager = gbounds.ntk.jacobian_vector_product(apply_fn, params, x, tangent)
  jitted = jax.jit(lambda p, t: gbounds.ntk.jacobian_vector_product(apply_fn, p, x, t))(params,
                                                                                  tangent)
  np.testing.assert_array_equal(eager, jitted)
  np.testing.assert_allclose(jax.jit(f_lin)(params, x), apply_fn(params, x), rtol=1e-14)
  cot = jnp.ones((4, 2), jnp.float64)
  vj = jax.jit(lambda p: gbounds.ntk.vector_jacobian_product(apply_fn, p, x, cot))(params)
  j = _brute_jacobian(apply_fn, params, x)
  np.testing.assert_allclose(jax.flatten_util.ravel_pytree(vj)[0], j.T @ cot.reshape(-1),
                             rtol=1e-12)
  bad = jax.tree_util.tree_map(lambda a: a.at[(0,) * a.ndim].set(jnp.nan), params)
  with pytest.raises(gbounds.InvalidInputError, match=r"params: expected finite"):
    gbounds.ntk.empirical_ntk_fn(apply_fn)(x, None, bad)
  with pytest.raises(gbounds.InvalidInputError, match=r"apply_fn: .*as_model_fn"):
    gbounds.ntk.empirical_ntk_fn(gbounds.models.MLP((3,), 2))


def test_float32_engine():
  """float32 end to end (no float64 anywhere): chunked kernels and Jacobians equal unchunked ones
  and the kernel is J J^T to float32 round-off."""
  x = jax.random.normal(jax.random.key(0), (7, 5), jnp.float32)
  apply_fn, params = _mlp(x, jnp.float32)
  j = gbounds.ntk.jacobian_fn(apply_fn)(params, x)
  assert j.dtype == jnp.float32
  np.testing.assert_allclose(gbounds.ntk.jacobian_fn(apply_fn, chunk_size=3)(params, x), j,
                             rtol=1e-6, atol=1e-7)
  for impl in IMPLS:
    k = gbounds.ntk.empirical_ntk_fn(apply_fn, implementation=impl, chunk_size=3)(x, None, params)
    assert k.dtype == jnp.float32
    np.testing.assert_allclose(k, j @ j.T, rtol=1e-4, atol=1e-5)


@pytest.mark.x64
@pytest.mark.parametrize("cache_chunks", [0, 1, 2, None])
def test_jacobian_cache_changes_no_entry(net, cache_chunks):
  """Every cache size (none, some of the column chunks, all) gives the brute-force kernel: a
  cached Jacobian reused for the wrong chunk, or a block written at the wrong offset, fails."""
  apply_fn, params, x, x2 = net
  k = apply_fn(params, x[:1]).shape[-1]
  d = sum(int(np.size(a)) for a in jax.tree_util.tree_leaves(params))
  chunk_bytes = 2 * k * d * 8  # chunk_size 2, float64
  ntk = gbounds.ntk.empirical_ntk_fn(
      apply_fn, chunk_size=2,
      cache_bytes=None if cache_chunks is None else cache_chunks * chunk_bytes)
  j1 = _brute_jacobian(apply_fn, params, x)
  j2 = _brute_jacobian(apply_fn, params, x2)
  np.testing.assert_allclose(ntk(x, None, params), j1 @ j1.T, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(ntk(x, x2, params), j1 @ j2.T, rtol=1e-12, atol=1e-12)


def test_auto_prefers_contraction_for_convolutions_and_vector_products_without_memory(
    monkeypatch):
  """A convolution reuses each weight at every position (forward flops >> parameters): the cost
  model picks Jacobian contraction; when a chunk's Jacobian cannot fit in memory it picks
  NTK-vector products whatever the flops."""
  x = jax.random.normal(jax.random.key(0), (16, 16, 16, 3), jnp.float32)
  m = gbounds.as_model_fn(gbounds.models.CNN((gbounds.models.ConvStage(16, 3, 1, 1),), (), 2),
                          example_input=x, key=0)
  cost = _ntk.choose_implementation(m.apply_fn, m.params, x, chunk_size=8)
  d = sum(int(np.size(a)) for a in jax.tree_util.tree_leaves(m.params))
  assert cost.params == d and cost.forward_flops > 10 * d
  assert cost.implementation == gbounds.ntk.NtkImplementation.JACOBIAN_CONTRACTION
  assert cost.jacobian_chunk_bytes == 8 * 2 * d * 4
  monkeypatch.setattr(_ntk, "free_memory_bytes", lambda device=None: 1000)
  cost = _ntk.choose_implementation(m.apply_fn, m.params, x, chunk_size=8)
  assert cost.implementation == gbounds.ntk.NtkImplementation.NTK_VECTOR_PRODUCTS


def test_free_memory_and_cache_bytes_checked():
  assert _ntk.free_memory_bytes() > 0
  with pytest.raises(gbounds.InvalidInputError, match="cache_bytes"):
    gbounds.ntk.empirical_ntk_fn(lambda p, x: x, cache_bytes=-1)
