"""Tests for the kernel route of the exact information in the weights (the ``(n m) x (n m)`` Gram
instead of the ``d x d`` Fisher)."""

import functools

import jax
import jax.flatten_util  # noqa: F401 (jax.flatten_util.ravel_pytree below)
import jax.numpy as jnp
import numpy as np
import pytest

import gbounds
from gbounds.info import _weight_info as wi
from tests import model_twins

F64 = jnp.float64
F32 = jnp.float32
FIELDS = ("total", "log_det", "trace_term", "fisher_trace")


@functools.cache  # one apply_fn per shape: the jitted chunk functions are reused
def _mlp(n=9, inputs=6, hidden=(8, 5), out=3, dtype=F64, seed=1):
  x = jax.random.normal(jax.random.key(seed), (n, inputs), dtype)
  mf = gbounds.as_model_fn(gbounds.models.MLP(hidden=hidden, out=out, param_dtype=dtype),
                           example_input=x, key=0)
  return mf, x


def _info(mf, x, route, **kw):
  kw = dict(dict(beta=0.7, prior_scale=0.5, form="exact"), **kw)
  return wi.information_in_weights(mf.apply_fn, mf.params, x, exact_route=route, **kw)


def _assert_same(a, b, rtol):
  for f in FIELDS:
    np.testing.assert_allclose(float(getattr(b, f)), float(getattr(a, f)), rtol=rtol, err_msg=f)
  assert a.per_layer.keys() == b.per_layer.keys()
  for name in a.per_layer:
    np.testing.assert_allclose(float(b.per_layer[name]), float(a.per_layer[name]), rtol=rtol,
                               err_msg=name)


def _ntk_gram(mf, x):
  """Independent Gram: U Theta U^T with Theta from the NTK engine and the TRUE output-Fisher
  rows sqrt(p_a) (e_a - p) written out in numpy."""
  theta = np.asarray(gbounds.ntk.empirical_ntk_fn(mf.apply_fn)(x, None, mf.params))  # (n k, n k)
  p = np.asarray(jax.nn.softmax(mf.apply_fn(mf.params, x), -1))
  n, k = p.shape
  u = np.zeros((n * k, n * k))
  for i in range(n):
    u[i * k:(i + 1) * k, i * k:(i + 1) * k] = np.sqrt(p[i])[:, None] * (np.eye(k) - p[i][None])
  return u @ theta @ u.T, theta


@pytest.mark.x64  # builds a float64 network or kernel
def test_gram_is_u_theta_u_and_shares_the_fisher_spectrum():
  mf, x = _mlp()
  gram = np.asarray(wi.fisher_gram(mf.apply_fn, mf.params, x, chunk_size=3))
  want, theta = _ntk_gram(mf, x)
  np.testing.assert_allclose(gram, want, rtol=1e-10, atol=1e-12)
  h = np.asarray(wi.fisher_matrix(mf.apply_fn, mf.params, x))
  eg = np.sort(np.linalg.eigvalsh(gram))[::-1]
  eh = np.sort(np.linalg.eigvalsh(h))[::-1]
  r = gram.shape[0]
  assert r < h.shape[0]
  np.testing.assert_allclose(eg, eh[:r], rtol=1e-8, atol=1e-10 * eh[0])
  np.testing.assert_allclose(eh[r:], 0, atol=1e-10 * eh[0])  # the rest of H's spectrum is zero
  # planted: the plain NTK (no output Fisher) does not share the spectrum
  assert not np.allclose(np.sort(np.linalg.eigvalsh(theta))[::-1], eh[:r], rtol=1e-3)
  mean = np.asarray(wi.fisher_gram(mf.apply_fn, mf.params, x, scaling="mean"))
  np.testing.assert_allclose(mean * x.shape[0], gram, rtol=1e-10, atol=1e-12)


@pytest.mark.x64  # builds a float64 network or kernel
@pytest.mark.parametrize("fisher,scaling", [("true", "sum"), ("empirical", "mean"),
                                            ("sampled", "sum"), ("true", "mean")])
def test_kernel_route_equals_dense_route(fisher, scaling):
  mf, x = _mlp()
  y = np.arange(x.shape[0]) % 3
  kw = dict(fisher=fisher, scaling=scaling, key=jax.random.key(3), num_samples=2, chunk_size=3)
  dense = _info(mf, x, "dense", y=y, **kw)
  for route in ("kernel", "auto"):  # auto: kernel for the total, mixed for the layers
    _assert_same(dense, _info(mf, x, route, y=y, **kw), rtol=1e-6)
  # planted: another beta moves every field by far more than the tolerance
  other = _info(mf, x, "kernel", y=y, **dict(kw, beta=0.5))
  assert abs(float(other.log_det) / float(dense.log_det) - 1) > 1e-3


def test_float32_kernel_route_equals_dense_route():
  mf, x = _mlp(dtype=F32)
  dense = _info(mf, x, "dense", chunk_size=3)
  kern = _info(mf, x, "kernel", chunk_size=3)
  assert kern.total.dtype == jnp.float32
  _assert_same(dense, kern, rtol=2e-4)


@pytest.mark.x64  # builds a float64 network or kernel
def test_per_layer_routes_and_layer_grams(monkeypatch):
  """n m = 27: dense0 (56 parameters) and dense1 (45) take their Grams, head (18) its block."""
  mf, x = _mlp()
  calls = {}
  real = wi._kernel_grams

  def spy(*args):
    calls["gram_parts"], calls["fisher_parts"] = args[9], args[10]
    return real(*args)

  monkeypatch.setattr(wi, "_kernel_grams", spy)
  auto = _info(mf, x, "auto", chunk_size=3)
  assert (calls["gram_parts"], calls["fisher_parts"]) == ((0, 1), (2,))
  forced = _info(mf, x, "kernel", chunk_size=3)
  assert (calls["gram_parts"], calls["fisher_parts"]) == ((0, 1, 2), ())
  # each layer's value against its exact diagonal block of the brute d x d Fisher
  h = np.asarray(wi.fisher_matrix(mf.apply_fn, mf.params, x))
  flat = np.asarray(jax.flatten_util.ravel_pytree(mf.params)[0])
  offset = 0
  c = 0.5 ** 2 / 0.7
  for name, leaves in [("dense0", 2), ("dense1", 2), ("head", 2)]:
    sub = jax.tree_util.tree_leaves(mf.params[name])
    size = sum(v.size for v in sub)
    assert len(sub) == leaves
    blk = h[offset:offset + size, offset:offset + size]
    u = c * np.clip(np.linalg.eigvalsh(blk), 0, None)
    w = flat[offset:offset + size]
    want = w @ w / (2 * 0.5 ** 2) + np.sum(0.5 * np.log1p(u) - 0.5 * u / (1 + u))
    for r in (auto, forced):
      np.testing.assert_allclose(float(r.per_layer[name]), want, rtol=1e-8)
    offset += size


@pytest.mark.x64  # builds a float64 network or kernel
def test_auto_route_follows_the_cost_model(monkeypatch):
  """AUTO takes the kernel when n m < d, the d x d Fisher otherwise."""
  seen = []
  real_kernel, real_dense = wi._exact_by_kernel, wi.fisher_matrix
  monkeypatch.setattr(wi, "_exact_by_kernel",
                      lambda *a, **k: seen.append("kernel") or real_kernel(*a, **k))
  monkeypatch.setattr(wi, "fisher_matrix", lambda *a, **k: seen.append("dense") or real_dense(*a, **k))
  mf, x = _mlp(n=9)  # d = 119, n m = 27 (TRUE), 9 (EMPIRICAL)
  _info(mf, x, "auto")
  _info(mf, x, "auto", fisher="empirical", y=np.zeros(9, np.int32))
  mf, x = _mlp(n=45)  # n m = 135 > 119
  _info(mf, x, "auto")
  _info(mf, x, "auto", fisher="empirical", y=np.zeros(45, np.int32))  # 45 < 119
  assert seen == ["kernel", "kernel", "dense", "kernel"]


@pytest.mark.x64  # builds a float64 network or kernel
def test_chunking_and_row_cache_do_not_change_the_result(monkeypatch):
  mf, x = _mlp()
  ref = _info(mf, x, "kernel", chunk_size=None)  # one chunk, rows cached
  monkeypatch.setattr(wi, "_KERNEL_CACHE_BYTES", 0)  # recompute every column chunk
  monkeypatch.setattr(wi, "_KERNEL_CHUNK_BYTES", 3 * 3 * 119 * 8)  # chunk_size None -> 3
  assert wi._kernel_chunk_size(9, 3, 119, 8, None) == 3
  _assert_same(ref, _info(mf, x, "kernel", chunk_size=None), rtol=1e-10)
  _assert_same(ref, _info(mf, x, "kernel", chunk_size=4), rtol=1e-10)  # uneven last chunk
  gram = wi.fisher_gram(mf.apply_fn, mf.params, x, chunk_size=3)
  np.testing.assert_allclose(gram, gram.T, rtol=0, atol=0)  # both triangles written


@pytest.mark.x64  # builds a float64 network or kernel
def test_single_layer_model_reuses_the_total():
  mf, x = _mlp(hidden=(), inputs=30)  # one Dense layer, d = 93 > n m = 27
  r = _info(mf, x, "kernel")
  (name,) = r.per_layer
  np.testing.assert_allclose(r.per_layer[name], r.total, rtol=1e-12)
  _assert_same(_info(mf, x, "dense"), r, rtol=1e-6)


def test_segments():
  assert wi._segments([5, 0, 1, 2, 7, 6]) == ((0, 3), (5, 8))
  assert wi._segments([4]) == ((4, 5),)


def test_bad_route():
  mf, x = _mlp(dtype=F32)
  with pytest.raises(gbounds.InvalidInputError, match="exact_route"):
    _info(mf, x, "sideways")


@pytest.mark.slow
@pytest.mark.x64  # builds a float64 network or kernel
def test_kernel_route_equals_dense_route_on_a_larger_mlp():
  mf, x = _mlp(n=60, inputs=40, hidden=(32, 16), out=10, seed=2)  # d = 1994, n m = 600
  dense = _info(mf, x, "dense", chunk_size=16)
  kern = _info(mf, x, "auto", chunk_size=16)
  _assert_same(dense, kern, rtol=1e-6)


@pytest.mark.parametrize("twins", ["mlp", pytest.param("cnn", marks=pytest.mark.slow)])
def test_kernel_route_on_nnx_and_conv_models(twins):
  """An NNX module (its own weights, nnx.State paths) and a Linen CNN: routes agree (float32)."""
  t = (model_twins.mlp_twins if twins == "mlp" else model_twins.cnn_twins)(n=6)
  kw = dict(beta=0.5, prior_scale=0.3, form="exact", chunk_size=4)
  model, params = (t.nnx, None) if twins == "mlp" else (t.linen, t.linen_params)
  dense = wi.information_in_weights(model, params, t.x, exact_route="dense", **kw)
  kern = wi.information_in_weights(model, params, t.x, exact_route="kernel", **kw)
  _assert_same(dense, kern, rtol=2e-4)
