"""The NNX/Linen twins of tests/model_twins.py compute the same function."""

import jax
import numpy as np
import pytest

from tests import model_twins


@pytest.mark.parametrize("make", [model_twins.cnn_twins, model_twins.mlp_twins])
def test_twins_agree(make):
  t = make()
  a = t.linen.apply({"params": t.linen_params}, t.x)
  b = t.nnx(t.x)
  assert a.shape == (t.x.shape[0], model_twins.OUT)
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
  c = model_twins.fresh_nnx(t)(t.x)
  np.testing.assert_allclose(np.asarray(b), np.asarray(c), rtol=0, atol=0)
  assert t.y.dtype == np.int32 and t.x.dtype == np.float32


def test_twins_deterministic():
  a, b = model_twins.cnn_twins(), model_twins.cnn_twins()
  np.testing.assert_array_equal(np.asarray(a.x), np.asarray(b.x))
  leaves = jax.tree_util.tree_leaves
  for p, q in zip(leaves(a.linen_params), leaves(b.linen_params)):
    np.testing.assert_array_equal(np.asarray(p), np.asarray(q))
