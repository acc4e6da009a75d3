"""Tests for the LIMIT trainer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gbounds
from gbounds.train import _limit as _limit

F64 = jnp.float64


def _setup(dtype=F64):
  x = jax.random.normal(jax.random.key(1), (40, 6), dtype)
  y = np.asarray(jax.random.randint(jax.random.key(2), (40,), 0, 3), np.int32)
  m = gbounds.models.MLP(hidden=(8,), out=3, param_dtype=dtype)
  return (x, y, gbounds.as_model_fn(m, example_input=x, key=0),
          gbounds.as_model_fn(m, example_input=x, key=5))


def _maxdiff(a, b):
  return max(float(jnp.max(jnp.abs(u - v)))
             for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


@pytest.mark.x64
@pytest.mark.parametrize("opt,batch", [("sgd", 16), ("adam", 16), ("momentum", None)])
def test_true_gradient_reduces_to_cross_entropy_training(opt, batch):
  x, y, mf, qf = _setup()
  tc = gbounds.train.TrainConfig(loss="cross_entropy", optimizer=opt, learning_rate=0.05, steps=25,
                           batch_size=batch, weight_decay=1e-3, seed=3)
  ref = gbounds.train.train(mf.apply_fn, mf.params, x, y, tc).params
  lc = _limit.LimitConfig(optimizer=opt, learning_rate=0.05, steps=25, batch_size=batch,
                          weight_decay=1e-3, seed=3, gradient_source="true_labels", noise="none")
  out = _limit.train_limit(mf.apply_fn, mf.params, qf.apply_fn, qf.params, x, y, lc).params
  assert _maxdiff(ref, out) < 1e-12
  assert _maxdiff(ref, mf.params) > 1e-3  # it did move


@pytest.mark.x64
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
  x, y, mf, qf = _setup(jnp.float32)
  cfg = _limit.LimitConfig(steps=5, warm_up_steps=5, batch_size=8)
  r = _limit.train_limit(mf.apply_fn, mf.params, qf.apply_fn, qf.params, x, y, cfg)
  assert _maxdiff(r.params, mf.params) == 0.0
  assert _maxdiff(r.aux_params, qf.params) > 0.0


def test_bad_input():
  x, y, mf, qf = _setup(jnp.float32)
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


@pytest.mark.x64
def test_sum_step_is_the_authors_convention():
  """ClassifierStep.SUM: J^T (g_hat + xi) without 1/b (the authors' gradient replacement); with
  true labels and SGD it equals cross-entropy training on the *summed* loss."""
  x, y, mf, qf = _setup()
  xi = 0.1 * jax.random.normal(jax.random.key(8), (40, 3), F64)
  cfg = _limit.LimitConfig(beta=0.3, classifier_step="sum", weight_decay=0.01)
  grads, _, _ = _limit.limit_gradients(mf.apply_fn, qf.apply_fn, mf.params, qf.params, x,
                                       jnp.asarray(y), xi, cfg)
  pf = jax.nn.softmax(mf.apply_fn(mf.params, x))
  ghat = pf - jax.nn.softmax(qf.apply_fn(qf.params, x))
  want = jax.grad(lambda p: jnp.sum(mf.apply_fn(p, x) * (ghat + xi))
                  + 0.005 * sum(jnp.sum(w ** 2) for w in jax.tree_util.tree_leaves(p)))(mf.params)
  assert _maxdiff(grads, want) < 1e-13
  # SGD on the summed cross-entropy, written out by hand (full batch, no noise)
  lc = _limit.LimitConfig(optimizer="sgd", learning_rate=0.01, steps=5, batch_size=None,
                          gradient_source="true_labels", noise="none", classifier_step="sum")
  out = _limit.train_limit(mf.apply_fn, mf.params, qf.apply_fn, qf.params, x, y, lc).params
  p = mf.params
  for _ in range(5):
    g = jax.grad(lambda w: -jnp.sum(jax.nn.log_softmax(mf.apply_fn(w, x))
                                    * jax.nn.one_hot(y, 3, dtype=F64)))(p)
    p = jax.tree_util.tree_map(lambda a, b: a - 0.01 * b, p, g)
  assert _maxdiff(out, p) < 1e-12


@pytest.mark.parametrize("dtype", [jnp.float32, pytest.param(F64, marks=pytest.mark.x64)])
@pytest.mark.parametrize("noise,lam,want_std",
                         [("gaussian", 2.0, 0.5), ("laplace", 4.0, 2 ** 0.5 / 4)])
def test_authors_lambda_noise_parameterisation(noise, lam, want_std, dtype):
  """AUTHORS_LAMBDA: Gaussian std 1/sqrt(2 lamb), Laplace scale 1/lamb (std sqrt(2)/lamb)."""
  cfg = _limit.LimitConfig(noise=noise, noise_scale=lam, noise_parameterisation="authors_lambda")
  xi = _limit._sample_noise(cfg, jax.random.key(0), (200_000,), dtype)
  np.testing.assert_allclose(float(jnp.std(xi)), want_std, rtol=0.01)
  if noise == "laplace":  # Laplace(0, b): E|xi| = b
    np.testing.assert_allclose(float(jnp.mean(jnp.abs(xi))), 1 / lam, rtol=0.01)
  plain = _limit.LimitConfig(noise=noise, noise_scale=0.3)
  assert _limit.noise_scale_of(plain) == 0.3


def test_labels_outside_the_model_outputs_raise():
  x, y, mf, qf = _setup(jnp.float32)
  for bad in (np.where(y == 0, 3, y), np.where(y == 0, -1, y)):
    with pytest.raises(gbounds.InvalidInputError, match=r"y: expected class labels in \[0, 3\)"):
      _limit.train_limit(mf.apply_fn, mf.params, qf.apply_fn, qf.params, x, bad,
                         _limit.LimitConfig(steps=1))
  with pytest.raises(gbounds.InvalidInputError, match="y"):
    _limit.train_limit(mf.apply_fn, mf.params, qf.apply_fn, qf.params, x, y + 0.5,
                       _limit.LimitConfig(steps=1))


def test_train_limit_compiles_once_and_result_round_trips():
  import json
  x, y, mf, qf = _setup(jnp.float32)
  traces = []

  def apply(p, xx):
    traces.append(1)  # runs only while tracing
    return mf.apply_fn(p, xx)
  lc = _limit.LimitConfig(steps=3, batch_size=8, seed=1)
  r1 = gbounds.train.train_limit(apply, mf.params, qf.apply_fn, qf.params, x, y, lc)
  n = len(traces)
  fn = gbounds.train.train_limit_fn(apply, qf.apply_fn, lc)
  r2 = fn(mf.params, qf.params, x, jnp.asarray(y))
  assert len(traces) == n  # the same compiled program (the checks trace with eval_shape only)
  for a, b in zip(jax.tree_util.tree_leaves(r1), jax.tree_util.tree_leaves(r2)):
    np.testing.assert_array_equal(a, b)
  fn(mf.params, qf.params, x[:20], jnp.asarray(y[:20]))  # new shapes: traced again
  assert len(traces) > n
  back = gbounds.train.LimitResult.from_dict(json.loads(json.dumps(r1.to_dict())))
  for a, b in zip(jax.tree_util.tree_leaves(r1), jax.tree_util.tree_leaves(back)):
    np.testing.assert_array_equal(np.asarray(a, np.float64), b)
