"""Tests for gbounds.models._capture: Linen/NNX twins agree, match a hand-written forward pass,
chunking."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import gbounds
from gbounds.models._capture import available_layers, capture_activations, stack_activations


def _to_nnx(twin, params):
  # Older versions of gbounds.models.linen_params_to_nnx assigned ``.value`` (deprecated in flax
  # 0.12); the filter stays so that these tests check the capture code whatever flax warns.
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="'.value' (access|setter) is now deprecated",
                            category=DeprecationWarning)
    return gbounds.models.linen_params_to_nnx(twin, params)


def _mlp(dtype=jnp.float32):
  x = jax.random.normal(jax.random.key(1), (23, 14, 14), dtype)
  model = gbounds.models.MLP(hidden=(16, 8), out=3, param_dtype=dtype)
  params = model.init(jax.random.key(0), x)["params"]
  return model, params, x


def _manual_mlp(params, x):
  """Independent forward pass: pre-activations z_l = h_{l-1} W_l + b_l, h_l = relu(z_l)."""
  h = np.asarray(x, np.float64).reshape(x.shape[0], -1)
  out = {}
  for name in ("dense0", "dense1", "head"):
    z = h @ np.asarray(params[name]["kernel"], np.float64) + np.asarray(params[name]["bias"])
    out[name] = z
    h = np.maximum(z, 0)
  return out


@pytest.mark.parametrize("dtype", [jnp.float32, pytest.param(jnp.float64, marks=pytest.mark.x64)])
def test_linen_mlp_matches_manual_forward(dtype):
  model, params, x = _mlp(dtype)
  acts = capture_activations(model, params, x, layers=["dense0", "dense1", "head"])
  ref = _manual_mlp(params, x)
  tol = 1e-5 if dtype == jnp.float32 else 1e-12
  for name in ref:
    assert acts[name].dtype == dtype
    np.testing.assert_allclose(acts[name], ref[name], rtol=tol, atol=tol)


def test_default_layers_exclude_logits_and_accept_variables_dict():
  model, params, x = _mlp()
  acts = capture_activations(model, {"params": params}, x)
  assert list(acts) == ["dense0", "dense1"]
  infos = available_layers(model, params, x)
  assert [i.name for i in infos] == ["dense0", "dense1", "head"]
  assert [i.width for i in infos] == [16, 8, 3]
  assert [i.is_output for i in infos] == [False, False, True]
  assert stack_activations(acts).shape == (23, 24)


def test_nnx_twin_mlp_gives_same_activations():
  model, params, x = _mlp()
  twin = gbounds.models.NnxMLP(196, (16, 8), 3, rngs=nnx.Rngs(5))
  state = _to_nnx(twin, params)
  a = capture_activations(model, params, x)
  b = capture_activations(twin, state, x)
  c = capture_activations(twin, None, x)  # the module's own (now copied) weights
  assert list(a) == list(b) == ["dense0", "dense1"]
  for k in a:
    np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(a[k], c[k], rtol=1e-6, atol=1e-6)
  # flax's temporary instrumentation of the classes is undone
  assert not hasattr(nnx.Linear.__call__, "_does_capturing")


def test_cnn_twins_pool_conv_stages():
  x = jax.random.normal(jax.random.key(2), (9, 28, 28, 1), jnp.float32)
  model = gbounds.models.CNN(dense=(12,), out=2)
  params = model.init(jax.random.key(0), x)["params"]
  twin = gbounds.models.NnxCNN((28, 28, 1), dense=(12,), out=2, rngs=nnx.Rngs(0))
  state = _to_nnx(twin, params)
  a = capture_activations(model, params, x)
  b = capture_activations(twin, state, x)
  assert list(a) == ["conv0", "conv1", "conv2", "dense0"]
  assert list(a) == list(b)
  for k in a:
    np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-5)
  # conv0 = global average over H, W of the pre-activation conv output (independent lax conv)
  p = params["conv0"]
  z = jax.lax.conv_general_dilated(x, p["kernel"], (2, 2), [(1, 1), (1, 1)],
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  z = z + p["bias"][None, None, None, :]
  np.testing.assert_allclose(a["conv0"], jnp.mean(z, axis=(1, 2)), rtol=1e-5, atol=1e-5)
  post = capture_activations(model, params, x, layers=["conv0"], activation=jax.nn.relu)
  np.testing.assert_allclose(post["conv0"], jnp.mean(jax.nn.relu(z), axis=(1, 2)),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunk_size", [1, 5, 23, 100])
def test_chunked_equals_unchunked(chunk_size):
  model, params, x = _mlp()
  full = capture_activations(model, params, x, chunk_size=1024)
  chunked = capture_activations(model, params, x, chunk_size=chunk_size)
  for k in full:
    assert chunked[k].shape == full[k].shape
    np.testing.assert_allclose(chunked[k], full[k], rtol=1e-6, atol=1e-6)


def test_generic_nnx_module_path_names_and_output_detection():
  class Net(nnx.Module):
    def __init__(self):
      self.enc = nnx.Linear(3, 4, rngs=nnx.Rngs(0))
      self.blocks = nnx.List([nnx.Linear(4, 4, rngs=nnx.Rngs(1))])
      self.out = nnx.Linear(4, 2, rngs=nnx.Rngs(2))

    def __call__(self, x):
      h = self.blocks[0](jnp.tanh(self.enc(x)))
      return self.out(h), h  # neither output is returned alone: fall back to the last layer

  net = Net()
  x = jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3)  # the layers' dtype
  infos = available_layers(net, None, x)
  names = {i.name for i in infos}
  assert names == {"enc", "blocks/0", "out"}
  acts = capture_activations(net, None, x, layers=["enc", "blocks/0"])
  enc = np.asarray(x) @ np.asarray(net.enc.kernel[...]) + np.asarray(net.enc.bias[...])
  np.testing.assert_allclose(acts["enc"], enc, rtol=1e-6)
  np.testing.assert_allclose(
      acts["blocks/0"],
      np.tanh(enc) @ np.asarray(net.blocks[0].kernel[...]) + np.asarray(net.blocks[0].bias[...]),
      rtol=1e-5)


def test_layer_called_twice_gets_numbered_names():
  class Twice(nnx.Module):
    def __init__(self):
      self.lin = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
      self.head = nnx.Linear(2, 1, rngs=nnx.Rngs(0))

    def __call__(self, x):
      return self.head(self.lin(self.lin(x)))

  net = Twice()
  x = jnp.ones((3, 2), jnp.float32)
  acts = capture_activations(net, None, x)
  assert list(acts) == ["lin", "lin@1"]
  kernel, bias = np.asarray(net.lin.kernel[...]), np.asarray(net.lin.bias[...])
  first = np.asarray(x) @ kernel + bias
  np.testing.assert_allclose(acts["lin"], first, rtol=1e-6)
  np.testing.assert_allclose(acts["lin@1"], first @ kernel + bias, rtol=1e-6)


def test_bad_input():
  model, params, x = _mlp()
  with pytest.raises(gbounds.InvalidInputError, match=r"dense0.*dense1.*head.*nope"):
    capture_activations(model, params, x, layers=["dense0", "nope"])
  with pytest.raises(gbounds.InvalidInputError, match="chunk_size"):
    capture_activations(model, params, x, chunk_size=0)
  with pytest.raises(gbounds.InvalidInputError, match="x:"):
    capture_activations(model, params, jnp.ones((5,)))
  with pytest.raises(gbounds.InvalidInputError, match="model:"):
    capture_activations(object(), params, x)
  with pytest.raises(gbounds.InvalidInputError, match="params"):
    capture_activations(model, None, x)
  with pytest.raises(gbounds.InvalidInputError, match=r"x: expected finite"):
    capture_activations(model, params, x.at[0, 0, 0].set(jnp.nan))
  bad = jax.tree_util.tree_map(lambda v: v.at[(0,) * v.ndim].set(jnp.inf), params)
  with pytest.raises(gbounds.InvalidInputError, match=r"params: expected finite.*dense0"):
    available_layers(model, bad, x)
  with pytest.raises(gbounds.InvalidInputError, match="chunk_size"):
    capture_activations(model, params, x, chunk_size=True)
  with pytest.raises(gbounds.InvalidInputError, match="layers: expected each layer name once"):
    capture_activations(model, params, x, layers=["dense0", "dense0"])
  with pytest.raises(gbounds.InvalidInputError, match="activations: expected the same batch"):
    stack_activations({"a": jnp.ones((3, 2)), "b": jnp.ones((4, 2))})


@pytest.mark.parametrize("make", ["cnn_twins", "mlp_twins"])
def test_every_model_form_gives_same_capture(make):
  """Linen+params, NNX module, and ModelFn of either: same layers, order and activations."""
  from tests import model_twins
  t = getattr(model_twins, make)()
  forms = [(t.linen, t.linen_params), (t.nnx, None),
           (gbounds.models.as_model_fn(t.linen, params=t.linen_params), None),
           (gbounds.models.as_model_fn(t.nnx), None)]
  infos = [available_layers(m, p, t.x) for m, p in forms]
  assert all(i == infos[0] for i in infos[1:])
  assert infos[0][-1].name == "head" and infos[0][-1].is_output
  caps = [capture_activations(m, p, t.x, chunk_size=5) for m, p in forms]
  every = [capture_activations(m, p, t.x, layers=[i.name for i in infos[0]]) for m, p in forms]
  for got in (caps, every):
    assert all(list(c) == list(got[0]) for c in got)
    for c in got[1:]:
      for k in c:
        np.testing.assert_allclose(np.asarray(c[k]), np.asarray(got[0][k]), rtol=1e-5, atol=1e-6)


def test_model_fn_capture_with_replaced_params():
  from tests import model_twins
  t = model_twins.mlp_twins()
  mf = gbounds.models.as_model_fn(t.linen, params=t.linen_params)
  zero = jax.tree_util.tree_map(jnp.zeros_like, t.linen_params)
  acts = capture_activations(mf, zero, t.x, layers=["dense0"])
  np.testing.assert_array_equal(np.asarray(acts["dense0"]), 0.0)
  with pytest.raises(gbounds.InvalidInputError, match=r"model: .*ModelFn"):
    capture_activations(lambda p, x: x, None, t.x)


def test_compiled_once_per_model_and_selection():
  from gbounds.models import _capture
  from tests import model_twins
  t = model_twins.cnn_twins()
  for model, params in ((t.linen, t.linen_params), (t.nnx, None)):
    capture_activations(model, params, t.x, chunk_size=5)
    before = _capture._run_fn_cached.cache_info()
    again = capture_activations(model, params, t.x, chunk_size=5)
    after = _capture._run_fn_cached.cache_info()
    assert after.hits == before.hits + 1 and after.misses == before.misses
    assert all(v.shape[0] == t.x.shape[0] for v in again.values())
