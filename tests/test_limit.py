"""Tests for the LIMIT trainer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gbounds
from gbounds import _limit

F64 = jnp.float64


def _setup(dtype=F64):
  x = jax.random.normal(jax.random.key(1), (40, 6), dtype)
  y = np.asarray(jax.random.randint(jax.random.key(2), (40,), 0, 3), np.int32)
  m = gbounds.MLP(hidden=(8,), out=3, param_dtype=dtype)
  return (x, y, gbounds.as_model_fn(m, example_input=x, key=0),
          gbounds.as_model_fn(m, example_input=x, key=5))


def _maxdiff(a, b):
  return max(float(jnp.max(jnp.abs(u - v)))
             for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


@pytest.mark.parametrize("opt,batch", [("sgd", 16), ("adam", 16), ("momentum", None)])
def test_true_gradient_reduces_to_cross_entropy_training(opt, batch):
  x, y, mf, qf = _setup()
  tc = gbounds.TrainConfig(loss="cross_entropy", optimizer=opt, learning_rate=0.05, steps=25,
                           batch_size=batch, weight_decay=1e-3, seed=3)
  ref = gbounds.train(mf.apply_fn, mf.params, x, y, tc).params
  lc = _limit.LimitConfig(optimizer=opt, learning_rate=0.05, steps=25, batch_size=batch,
                          weight_decay=1e-3, seed=3, gradient_source="true_labels", noise="none")
  out = _limit.train_limit(mf.apply_fn, mf.params, qf.apply_fn, qf.params, x, y, lc).params
  assert _maxdiff(ref, out) < 1e-12
  assert _maxdiff(ref, mf.params) > 1e-3  # it did move


def test_step_gradients_against_autodiff():
  """Classifier step = J^T (g_hat + xi) / b; aux gradient = grad of the stated objective."""
  x, y, mf, qf = _setup()
  xi = 0.1 * jax.random.normal(jax.random.key(7), (40, 3), F64)
  for loss in ("l2", "l1"):
    cfg = _limit.LimitConfig(beta=0.3, aux_loss=loss)
    grads, qgrads, qloss = jax.jit(
        lambda p, q, n: _limit.limit_gradients(mf.apply_fn, qf.apply_fn, p, q, x, jnp.asarray(y),
                                               n, cfg))(mf.params, qf.params, xi)
    pf = jax.nn.softmax(mf.apply_fn(mf.params, x))
    ghat = pf - jax.nn.softmax(qf.apply_fn(qf.params, x))
    # classifier: gradient of sum_i <f(x_i), ghat_i + xi_i> / b with ghat frozen
    want = jax.grad(lambda p: jnp.sum(mf.apply_fn(p, x) * (ghat + xi)) / 40)(mf.params)
    assert _maxdiff(grads, want) < 1e-13

    def obj(q):
      gh = pf - jax.nn.softmax(qf.apply_fn(q, x))
      d = gh - (pf - jax.nn.one_hot(y, 3, dtype=F64))
      fit = (d ** 2).sum(-1) if loss == "l2" else jnp.abs(d).sum(-1)
      return fit.mean() + 0.3 * (gh ** 2).sum(-1).mean()
    assert _maxdiff(qgrads, jax.grad(obj)(qf.params)) < 1e-13
    np.testing.assert_allclose(qloss, obj(qf.params), rtol=1e-12)


@pytest.mark.parametrize("noise", ["gaussian", "laplace"])
def test_noise_runs_and_is_seeded(noise):
  x, y, mf, qf = _setup(jnp.float32)
  cfg = _limit.LimitConfig(steps=10, batch_size=8, noise=noise, noise_scale=0.5, seed=1)
  a = _limit.train_limit(mf.apply_fn, mf.params, qf.apply_fn, qf.params, x, y, cfg)
  b = _limit.train_limit(mf.apply_fn, mf.params, qf.apply_fn, qf.params, x, y, cfg)
  assert _maxdiff(a.params, b.params) == 0.0
  assert np.isfinite(float(a.aux_loss))


def test_warm_up_freezes_classifier():
  x, y, mf, qf = _setup()
  cfg = _limit.LimitConfig(steps=5, warm_up_steps=5, batch_size=8)
  r = _limit.train_limit(mf.apply_fn, mf.params, qf.apply_fn, qf.params, x, y, cfg)
  assert _maxdiff(r.params, mf.params) == 0.0
  assert _maxdiff(r.aux_params, qf.params) > 0.0


def test_bad_input():
  x, y, mf, qf = _setup()
  with pytest.raises(gbounds.InvalidInputError, match="beta"):
    _limit.LimitConfig(beta=0.0)
  with pytest.raises(gbounds.InvalidInputError, match="beta"):
    _limit.LimitConfig(beta=-1.0)
  with pytest.raises(gbounds.InvalidInputError, match="noise"):
    _limit.LimitConfig(noise="uniform")
  with pytest.raises(gbounds.InvalidInputError, match="y"):
    _limit.train_limit(mf.apply_fn, mf.params, qf.apply_fn, qf.params, x, y[:10],
                       _limit.LimitConfig())
  with pytest.raises(gbounds.InvalidInputError, match="y"):
    _limit.train_limit(mf.apply_fn, mf.params, qf.apply_fn, qf.params, x, y + 5,
                       _limit.LimitConfig())
