"""The optax trainer: many-at-once equals one-at-a-time, strategies agree, seeds reproduce."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gbounds


@pytest.fixture(scope="module")
def setup():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(60, 6)).astype(np.float32)
  y = (x[:, 0] + 0.3 * rng.normal(size=60) > 0).astype(np.int32)
  model = gbounds.models.MLP((16,), 2)
  params = gbounds.train.init_many(model, x[:1], jax.random.split(jax.random.key(0), 3))
  idx = np.stack([rng.choice(60, 30, replace=False) for _ in range(3)])
  apply = lambda p, xx: model.apply({"params": p}, xx)  # noqa: E731
  return x, y, params, idx, apply


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("batch", [None, 8])
def test_many_equals_one_at_a_time_and_strategies_agree(setup, loss, batch):
  x, y, params, idx, apply = setup
  cfg = gbounds.train.TrainConfig(loss=loss, optimizer="momentum", learning_rate=0.05, steps=25,
                            batch_size=batch, seed=4)
  out_v = gbounds.train.train_many(apply, params, x, y, idx, cfg, strategy="vmap")
  out_s = gbounds.train.train_many(apply, params, x, y, idx, cfg, strategy="sequential", chunk_size=2)
  for a, b in zip(jax.tree_util.tree_leaves(out_v.params), jax.tree_util.tree_leaves(out_s.params)):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
  # model 0 trained alone (train() uses model id 0's batch order)
  p0 = jax.tree_util.tree_map(lambda a: a[0], params)
  single = gbounds.train.train(apply, p0, x[idx[0]], y[idx[0]], cfg)
  for a, b in zip(jax.tree_util.tree_leaves(single.params),
                  jax.tree_util.tree_leaves(out_v.params)):
    np.testing.assert_allclose(a, b[0], rtol=2e-5, atol=2e-6)


def test_full_batch_gd_matches_hand_written_loop(setup):
  x, y, params, idx, apply = setup
  cfg = gbounds.train.TrainConfig(loss="mse", optimizer="sgd", learning_rate=0.1, steps=10,
                            weight_decay=0.01)
  p = jax.tree_util.tree_map(lambda a: a[1], params)
  out = gbounds.train.train_many(apply, params, x, y, idx, cfg, strategy="vmap")
  xs, ys = x[idx[1]], jax.nn.one_hot(y[idx[1]], 2)

  def loss(q):
    l2 = sum(jnp.sum(v ** 2) for v in jax.tree_util.tree_leaves(q))
    return 0.5 * jnp.mean(jnp.sum((apply(q, xs) - ys) ** 2, -1)) + 0.005 * l2
  for _ in range(10):
    g = jax.grad(loss)(p)
    p = jax.tree_util.tree_map(lambda a, b: a - 0.1 * b, p, g)
  for a, b in zip(jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(out.params)):
    np.testing.assert_allclose(a, b[1], rtol=1e-5, atol=1e-6)


def test_model_ids_make_runs_chunking_independent(setup):
  x, y, params, idx, apply = setup
  cfg = gbounds.train.TrainConfig(learning_rate=0.05, steps=10, batch_size=8, seed=1)
  full = gbounds.train.train_many(apply, params, x, y, idx, cfg, strategy="vmap")
  last = jax.tree_util.tree_map(lambda a: a[2:], params)
  part = gbounds.train.train_many(apply, last, x, y, idx[2:], cfg, strategy="vmap", model_ids=[2])
  for a, b in zip(jax.tree_util.tree_leaves(full.params), jax.tree_util.tree_leaves(part.params)):
    np.testing.assert_allclose(a[2:], b, rtol=1e-5, atol=1e-7)  # float32, other batch width


def test_training_fits_and_predict_many(setup):
  x, y, params, idx, apply = setup
  cfg = gbounds.train.TrainConfig(optimizer="adam", learning_rate=0.01, steps=300)
  out = gbounds.train.train_many(apply, params, x, y, idx, cfg)
  preds = gbounds.train.predict_many(apply, out.params, x)
  assert preds.shape == (3, 60, 2)
  train_acc = [float(gbounds.train.accuracy(preds[j][idx[j]], y[idx[j]])) for j in range(3)]
  assert min(train_acc) >= 0.9
  ref = optax.softmax_cross_entropy_with_integer_labels(preds[0][idx[0]], y[idx[0]]).mean()
  np.testing.assert_allclose(out.final_loss[0], ref, rtol=1e-5)


def test_steps_for_epochs():
  assert gbounds.train.steps_for_epochs(3, 100, 32) == 9
  assert gbounds.train.steps_for_epochs(3, 100, None) == 3


class TestBadInput:
  def test_config(self):
    with pytest.raises(gbounds.InvalidInputError, match="learning_rate"):
      gbounds.train.TrainConfig(learning_rate=-1)
    with pytest.raises(gbounds.InvalidInputError, match="optimizer"):
      gbounds.train.TrainConfig(optimizer="lbfgs")
    with pytest.raises(gbounds.InvalidInputError, match="batch_size"):
      gbounds.train.TrainConfig(batch_size=0)

  def test_data(self, setup):
    x, y, params, idx, apply = setup
    cfg = gbounds.train.TrainConfig(steps=1)
    with pytest.raises(gbounds.InvalidInputError, match="train_idx"):
      gbounds.train.train_many(apply, params, x, y, idx + 100, cfg)
    with pytest.raises(gbounds.InvalidInputError, match="x and y"):
      gbounds.train.train_many(apply, params, x, y[:10], idx, cfg)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(gbounds.InvalidInputError, match="x: expected finite"):
      gbounds.train.train_many(apply, params, bad, y, idx, cfg)
    with pytest.raises(gbounds.InvalidInputError, match="params"):
      gbounds.train.train_many(apply, params, x, y, idx[:2], cfg)
