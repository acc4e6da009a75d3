"""The model adapter (as_model_fn, ModelFn.init_fn, nnx_model_fn) and layer_groups."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import gbounds
import gbounds.models as gm
from tests import model_twins


def _leaves(tree):
  return jax.tree_util.tree_leaves(tree)


def _same_structure(a, b):
  assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
  for u, v in zip(_leaves(a), _leaves(b)):
    assert u.shape == v.shape and u.dtype == v.dtype


@pytest.mark.parametrize("make", [model_twins.cnn_twins, model_twins.mlp_twins])
def test_adapter_twins_same_function(make):
  t = make()
  lin = gm.as_model_fn(t.linen, params=t.linen_params)
  nx = gm.as_model_fn(t.nnx)
  np.testing.assert_allclose(np.asarray(lin.apply_fn(lin.params, t.x)),
                             np.asarray(nx.apply_fn(nx.params, t.x)), rtol=1e-5, atol=1e-6)
  assert lin.init_fn is None  # params only: no example input to initialise from
  assert nx.init_fn is not None


def test_modelfn_two_field_construction_and_pass_through():
  t = model_twins.mlp_twins()
  mf = gm.ModelFn(lambda p, x: t.linen.apply({"params": p}, x), t.linen_params)
  assert mf.init_fn is None
  assert gm.as_model_fn(mf) is mf
  other = jax.tree_util.tree_map(jnp.zeros_like, t.linen_params)
  replaced = gm.as_model_fn(mf, params=other)
  assert replaced.apply_fn is mf.apply_fn and replaced.params is other


def test_linen_init_fn_reproduces_params():
  t = model_twins.cnn_twins()
  mf = gm.as_model_fn(t.linen, example_input=t.x[:1], key=3)
  again = mf.init_fn(jax.random.key(3))
  for u, v in zip(_leaves(mf.params), _leaves(again)):
    np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
  other = mf.init_fn(jax.random.key(4))
  _same_structure(mf.params, other)
  assert not np.array_equal(np.asarray(_leaves(mf.params)[-1]), np.asarray(_leaves(other)[-1]))


@pytest.mark.parametrize("make", [model_twins.cnn_twins, model_twins.mlp_twins])
def test_nnx_init_fn_structure_keys_and_jit_vmap(make):
  t = make()
  mf = gm.as_model_fn(t.nnx)
  a, b = mf.init_fn(jax.random.key(1)), mf.init_fn(jax.random.key(2))
  _same_structure(mf.params, a)
  _same_structure(mf.params, b)
  kernels = [(u, v) for u, v in zip(_leaves(a), _leaves(b)) if u.ndim >= 2]
  assert kernels and all(not np.array_equal(np.asarray(u), np.asarray(v)) for u, v in kernels)
  # apply_fn runs on fresh params; init_fn traces under jit and vmap
  assert mf.apply_fn(a, t.x).shape == (t.x.shape[0], model_twins.OUT)
  c = jax.jit(mf.init_fn)(jax.random.key(1))
  for u, v in zip(_leaves(a), _leaves(c)):
    np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-6, atol=1e-7)
  many = jax.vmap(mf.init_fn)(jax.random.split(jax.random.key(0), 3))
  assert all(leaf.shape[0] == 3 for leaf in _leaves(many))


def test_nnx_init_fn_equals_constructor_initialisation():
  mf = gm.as_model_fn(gm.NnxMLP(16, (12, 6), 3, rngs=nnx.Rngs(0)))
  own = gm.NnxMLP(16, (12, 6), 3, rngs=nnx.Rngs(7))
  fresh = mf.init_fn(jax.random.key(7))
  for u, v in zip(_leaves(nnx.state(own, nnx.Param)), _leaves(fresh)):
    np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_nnx_and_linen_init_same_family():
  """Both APIs draw kernels lecun_normal (variance 1/fan_in) and zero biases."""
  lin = gm.as_model_fn(gm.MLP(hidden=(256,), out=256),
                       example_input=jnp.zeros((1, 256), jnp.float32))
  nx_module = gm.NnxMLP(256, (256,), 256, rngs=nnx.Rngs(0))
  nx = gm.as_model_fn(nx_module)
  for mf, model in ((lin, None), (nx, nx_module)):
    p = mf.init_fn(jax.random.key(11))
    groups = gm.layer_groups(model, p)
    assert [g.name for g in groups] == ["dense0", "head"]
    for g in groups:
      arrays = gm.group_arrays(p, g)
      k = np.asarray(arrays["kernel"], np.float64)
      assert abs(k.var() * k.shape[0] - 1.0) < 0.05, (g.name, k.var() * k.shape[0])
      assert abs(k.mean()) < 0.01
      np.testing.assert_array_equal(np.asarray(arrays["bias"]), 0.0)


def test_nnx_module_without_fresh_has_no_init_fn():
  class Net(nnx.Module):
    def __init__(self, rngs):
      self.lin = nnx.Linear(4, 2, rngs=rngs)

    def __call__(self, x):
      return self.lin(x)

  mf = gm.as_model_fn(Net(nnx.Rngs(0)))
  assert mf.init_fn is None
  with pytest.raises(gbounds.InvalidInputError, match=r"model: .*init_fn"):
    gm.require_init_fn(mf)
  made = gm.nnx_model_fn(Net, key=5)
  fresh = gm.require_init_fn(made)(jax.random.key(5))
  for u, v in zip(_leaves(made.params), _leaves(fresh)):
    np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
  assert made.apply_fn(made.params, jnp.ones((3, 4), jnp.float32)).shape == (3, 2)


def test_adapter_refusals():
  with pytest.raises(gbounds.InvalidInputError, match=r"model: .*ModelFn"):
    gm.as_model_fn(lambda p, x: x)
  with pytest.raises(gbounds.InvalidInputError, match=r"example_input: "):
    gm.as_model_fn(gm.MLP((3,), 2))
  with pytest.raises(gbounds.InvalidInputError, match=r"make: "):
    gm.nnx_model_fn(3)
  with pytest.raises(gbounds.InvalidInputError, match=r"make: "):
    gm.nnx_model_fn(lambda rngs: 3)


@pytest.mark.parametrize("make", [model_twins.cnn_twins, model_twins.mlp_twins])
def test_layer_groups_correspond_across_twins(make):
  t = make()
  lin = gm.layer_groups(t.linen, t.linen_params)
  nx = gm.layer_groups(t.nnx)
  assert [g.name for g in lin] == [g.name for g in nx]
  assert [g.leaves for g in lin] == [g.leaves for g in nx] and lin[0].leaves == ("bias", "kernel")
  assert lin[-1].name == "head" and lin[0].name in ("conv0", "dense0")
  state = nnx.state(t.nnx, nnx.Param)
  for a, b in zip(lin, nx):
    pa, pb = gm.group_arrays(t.linen_params, a), gm.group_arrays(state, b)
    for leaf in a.leaves:
      np.testing.assert_array_equal(np.asarray(pa[leaf]), np.asarray(pb[leaf]))
  # through a ModelFn (Linen: dict order) and the variables dict
  assert gm.layer_groups(gm.as_model_fn(t.linen, params=t.linen_params)) == lin
  assert gm.layer_groups(None, {"params": t.linen_params}) == lin
  sub = gm.group_params(t.linen_params, lin[0])
  assert set(sub) == set(lin[0].leaves)


def test_layer_groups_refusals():
  with pytest.raises(gbounds.InvalidInputError, match=r"params: "):
    gm.layer_groups(gm.MLP((3,), 2))
  with pytest.raises(gbounds.InvalidInputError, match=r"model: "):
    gm.layer_groups(3, {})
  with pytest.raises(gbounds.InvalidInputError, match=r"params: "):
    gm.layer_groups(None, [1, 2])


def test_activation_enum_and_names_agree():
  x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 6)), jnp.float32)
  for act in gm.Activation:
    a = gm.as_model_fn(gm.MLP((5,), 2, activation=act), example_input=x, key=0)
    b = gm.as_model_fn(gm.MLP((5,), 2, activation=act.value), example_input=x, key=0)
    np.testing.assert_array_equal(np.asarray(a.apply_fn(a.params, x)),
                                  np.asarray(b.apply_fn(b.params, x)))
  assert gm.MLP().activation == "relu"
  with pytest.raises(gbounds.InvalidInputError, match=r"activation: "):
    gm.MLP((3,), 2, activation="swish")
