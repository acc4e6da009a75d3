"""intercept_layers: the same layer calls, inputs and output gradients for Linen and NNX twins."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gbounds.models as gm
from tests import model_twins


def _forward(mf, pert, params, x):
  inputs, calls = {}, []

  def tap(next_fun, args, kwargs, call):
    calls.append(call)
    inputs[call.name] = args[0]
    out = next_fun(*args, **kwargs)
    return out + pert[call.name] if call.name in pert else out

  with gm.intercept_layers(tap):
    y = mf.apply_fn(params, x)
  return y, (inputs, calls)


def _kfac_like(mf, x, widths):
  """Per layer input and d(sum of logits)/d(dense layer output), under jit."""
  pert = {n: jnp.zeros((x.shape[0], w), x.dtype) for n, w in widths.items()}

  @jax.jit
  def run(pe, p, xx):
    y, vjp, aux = jax.vjp(lambda q: _forward(mf, q, p, xx), pe, has_aux=True)
    return y, vjp(jnp.ones_like(y))[0], aux[0]

  return run(pert, mf.params, x)


@pytest.mark.parametrize("make", [model_twins.cnn_twins, model_twins.mlp_twins])
def test_intercept_twins_same_inputs_and_gradients(make):
  t = make()
  lin = gm.as_model_fn(t.linen, params=t.linen_params)
  nx = gm.as_model_fn(t.nnx)
  if make is model_twins.cnn_twins:
    widths = {"dense0": model_twins.CNN_DENSE[0], "head": model_twins.OUT}
  else:
    widths = {"dense0": model_twins.MLP_HIDDEN[0], "dense1": model_twins.MLP_HIDDEN[1],
              "head": model_twins.OUT}
  ya, ga, ia = _kfac_like(lin, t.x, widths)
  yb, gb, ib = _kfac_like(nx, t.x, widths)
  np.testing.assert_allclose(np.asarray(ya), np.asarray(yb), rtol=1e-5, atol=1e-6)
  assert list(ia) == list(ib) and set(ga) == set(gb)
  for n in ia:
    np.testing.assert_allclose(np.asarray(ia[n]), np.asarray(ib[n]), rtol=1e-5, atol=1e-6)
  for n in ga:
    np.testing.assert_allclose(np.asarray(ga[n]), np.asarray(gb[n]), rtol=1e-5, atol=1e-6)
    assert np.any(np.asarray(ga[n]) != 0)


@pytest.mark.parametrize("make", [model_twins.cnn_twins, model_twins.mlp_twins])
def test_layer_calls_match_layer_groups(make):
  t = make()
  for mf, model in ((gm.as_model_fn(t.linen, params=t.linen_params), t.linen),
                    (gm.as_model_fn(t.nnx), t.nnx)):
    _, (_, calls) = _forward(mf, {}, mf.params, t.x)
    groups = gm.layer_groups(model, None if model is t.nnx else t.linen_params)
    assert [(c.name, c.path) for c in calls] == [(g.name, g.path) for g in groups]
    assert all(c.use_bias for c in calls)
    kinds = [c.kind for c in calls]
    assert kinds[-1] is gm.LayerKind.DENSE
    assert (gm.LayerKind.CONV in kinds) == (make is model_twins.cnn_twins)


def test_intercept_leaves_module_untouched_and_nests():
  t = model_twins.mlp_twins()
  nx = gm.as_model_fn(t.nnx)
  order = []

  def outer(next_fun, args, kwargs, call):
    order.append(("outer", call.name))
    return next_fun(*args, **kwargs)

  def inner(next_fun, args, kwargs, call):
    order.append(("inner", call.name))
    return 2.0 * next_fun(*args, **kwargs)

  with gm.intercept_layers(outer), gm.intercept_layers(inner):
    y = nx.apply_fn(nx.params, t.x)
  assert order[:2] == [("inner", "dense0"), ("outer", "dense0")]
  assert type(t.nnx.head).__name__ == "Linear"
  assert not np.allclose(np.asarray(y), np.asarray(nx.apply_fn(nx.params, t.x)))
  # outside the block the calls are plain again
  np.testing.assert_allclose(np.asarray(nx.apply_fn(nx.params, t.x)), np.asarray(t.nnx(t.x)),
                             rtol=1e-6, atol=1e-6)
