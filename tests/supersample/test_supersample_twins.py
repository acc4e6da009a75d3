"""NNX-vs-Linen twin tests of the supersample runners (tests/model_twins.py).

Every supersample model is a fresh initialisation, so the NNX side is the NNX CNN's
``ModelFn`` whose ``init_fn`` draws the Linen twin's initialisation (same key, same weights)
and converts it to the NNX parameter state: the runners then see two different apply
functions on identical weights and must give the same numbers. A bare NNX module (its own
``init_fn``) is also run end to end.
"""

import jax
import numpy as np
import pytest

import gbounds
from gbounds.supersample import run_linearized_supersample, run_supersample
from tests.model_twins import cnn_twins, fresh_nnx

CFG = gbounds.train.TrainConfig(learning_rate=0.1, steps=3, batch_size=4, seed=1)


def linen_to_nnx_fn(t):
  """A pure function: Linen twin parameters -> the NNX twin's parameter state."""
  linen_leaves, _ = jax.tree_util.tree_flatten(t.linen_params)
  # Which Linen leaf lands in which NNX leaf: fill Linen leaf i with the value i, convert.
  probe = jax.tree_util.tree_unflatten(
      jax.tree_util.tree_structure(t.linen_params),
      [np.full(np.shape(v), i, np.asarray(v).dtype) for i, v in enumerate(linen_leaves)])
  probe_state = gbounds.models.linen_params_to_nnx(fresh_nnx(t), probe)
  nnx_leaves, treedef = jax.tree_util.tree_flatten(probe_state)
  perm = [int(np.asarray(v).reshape(-1)[0]) for v in nnx_leaves]

  def convert(linen_params):
    leaves = jax.tree_util.tree_leaves(linen_params)
    return jax.tree_util.tree_unflatten(treedef, [leaves[j] for j in perm])
  return convert


def nnx_twin_model_fn(t):
  """The NNX twin as a ModelFn whose init_fn gives the Linen twin's initialisation."""
  convert = linen_to_nnx_fn(t)
  mf = gbounds.models.as_model_fn(fresh_nnx(t))
  return mf._replace(init_fn=lambda key: convert(t.linen.init(key, t.x[:1])["params"]))


@pytest.fixture(scope="module")
def twins():
  return cnn_twins(n=24)


def test_init_fn_of_the_nnx_side_is_the_linen_initialisation(twins):
  mf = nnx_twin_model_fn(twins)
  key = jax.random.key(5)
  a = mf.apply_fn(mf.init_fn(key), twins.x)
  b = twins.linen.apply({"params": twins.linen.init(key, twins.x[:1])["params"]}, twins.x)
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_run_supersample_nnx_twin_gives_the_linen_numbers(twins):
  x, y = np.asarray(twins.x), np.asarray(twins.y)
  kw = dict(n=4, k1=1, k2=2, train=CFG, seed=0, strategy="sequential")
  a = run_supersample(twins.linen, x[:16], y[:16], x[16:], y[16:], **kw)
  b = run_supersample(nnx_twin_model_fn(twins), x[:16], y[:16], x[16:], y[16:], **kw)
  np.testing.assert_array_equal(a.masks, b.masks)
  np.testing.assert_allclose(b.predictions, a.predictions, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(b.final_loss, a.final_loss, rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(b.losses, a.losses)
  np.testing.assert_array_equal(b.test_error, a.test_error)


def test_run_linearized_supersample_nnx_twin_gives_the_linen_numbers(twins):
  x, y = np.asarray(twins.x), np.asarray(twins.y)
  kw = dict(n=4, k1=1, k2=2, seed=0, weight_decay=0.1)
  a = run_linearized_supersample(twins.linen, x[:16], y[:16], x[16:], y[16:], **kw)
  b = run_linearized_supersample(nnx_twin_model_fn(twins), x[:16], y[:16], x[16:], y[16:], **kw)
  np.testing.assert_allclose(b.predictions, a.predictions, rtol=1e-3, atol=1e-4)
  np.testing.assert_array_equal(b.losses, a.losses)


def test_run_supersample_takes_a_bare_nnx_module(twins):
  x, y = np.asarray(twins.x), np.asarray(twins.y)
  r = run_supersample(fresh_nnx(twins), x[:16], y[:16], n=4, k1=1, k2=2, train=CFG,
                      strategy="sequential")
  assert r.predictions.shape == (1, 2, 4, 2, 3) and np.isfinite(r.predictions).all()
