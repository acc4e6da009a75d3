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
  xs, ys = x[idx[1]], jax.nn.one_hot(y[idx[1]], 2, dtype=jnp.float32)

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


def _compiles(fn):
  """Number of XLA compilations ``fn()`` triggers (from ``jax.log_compiles``)."""
  import logging

  class Count(logging.Handler):
    def __init__(self):
      super().__init__()
      self.n = 0

    def emit(self, record):
      self.n += record.getMessage().startswith("Compiling ")
  h = Count()
  log = logging.getLogger("jax")
  old = log.level
  log.addHandler(h)
  log.setLevel(logging.WARNING)
  try:
    with jax.log_compiles():
      fn()
  finally:
    log.removeHandler(h)
    log.setLevel(old)
  return h.n


class TestCompileOnce:
  """A loop of calls on the same shapes compiles (and traces) once; new shapes do compile, so the
  counters can fail."""

  def test_train_fn_traces_once(self, setup):
    x, y, params, idx, _ = setup
    model = gbounds.models.MLP((16,), 2)
    traces = []

    def apply(p, xx):
      traces.append(1)  # Python side effect: runs only while tracing
      return model.apply({"params": p}, xx)
    cfg = gbounds.train.TrainConfig(steps=3)
    p0 = jax.tree_util.tree_map(lambda a: a[0], params)
    first = gbounds.train.train_fn(apply, cfg)(p0, x, y)
    n = len(traces)
    assert n > 0
    again = gbounds.train.train_fn(apply, cfg)(p0, x, y)  # a new factory call: same program
    assert len(traces) == n
    np.testing.assert_array_equal(first.final_loss, again.final_loss)
    gbounds.train.train_fn(apply, cfg)(p0, x[:20], y[:20])  # new shapes: traced again
    assert len(traces) > n

  @pytest.mark.parametrize("strategy", ["vmap", "sequential"])
  def test_train_many_and_predict_many_compile_once(self, setup, strategy):
    x, y, params, idx, apply = setup
    cfg = gbounds.train.TrainConfig(steps=3, batch_size=8, seed=2)

    def run(xx=x, yy=y):
      gbounds.train.train_many(apply, params, xx, yy, idx % len(yy), cfg, strategy=strategy)
      gbounds.train.predict_many(apply, params, xx, strategy=strategy)
    run()
    assert _compiles(run) == 0
    assert _compiles(lambda: run(x[:40], y[:40])) > 0

  def test_train_compiles_once(self, setup):
    x, y, params, _, apply = setup
    cfg = gbounds.train.TrainConfig(steps=3)
    p0 = jax.tree_util.tree_map(lambda a: a[0], params)
    run = lambda: gbounds.train.train(apply, p0, x, y, cfg)  # noqa: E731
    run()
    assert _compiles(run) == 0
    assert _compiles(lambda: gbounds.train.train(apply, p0, x[:30], y[:30], cfg)) > 0

  def test_train_many_fn_equals_train_many(self, setup):
    x, y, params, idx, apply = setup
    cfg = gbounds.train.TrainConfig(steps=5, batch_size=8, seed=3)
    ids = np.array([4, 0, 7])
    want = gbounds.train.train_many(apply, params, x, y, idx, cfg, strategy="vmap", model_ids=ids)
    fn = gbounds.train.train_many_fn(apply, cfg, strategy="vmap")
    got = fn(params, jnp.asarray(x), jnp.asarray(y), jnp.asarray(idx), jnp.asarray(ids))
    for a, b in zip(jax.tree_util.tree_leaves(want), jax.tree_util.tree_leaves(got)):
      np.testing.assert_array_equal(a, b)

  def test_predict_fn(self, setup):
    x, _, params, _, apply = setup
    p0 = jax.tree_util.tree_map(lambda a: a[0], params)
    assert gbounds.train.predict_fn(apply) is gbounds.train.predict_fn(apply)
    np.testing.assert_allclose(gbounds.train.predict_fn(apply)(p0, x), apply(p0, x),
                               rtol=1e-6, atol=1e-6)
    many = gbounds.train.predict_many_fn(apply, strategy="sequential")(params, x)
    np.testing.assert_allclose(many[0], apply(p0, x), rtol=1e-6, atol=1e-6)


def test_resolve_strategy(setup):
  _, _, params, _, _ = setup
  assert gbounds.train.resolve_strategy("auto", params) == gbounds.train.MapStrategy.VMAP
  assert gbounds.train.resolve_strategy("sequential", params) == \
      gbounds.train.MapStrategy.SEQUENTIAL


def test_train_result_round_trip(setup):
  import json
  x, y, params, _, apply = setup
  p0 = jax.tree_util.tree_map(lambda a: a[0], params)
  r = gbounds.train.train(apply, p0, x, y, gbounds.train.TrainConfig(steps=2))
  back = gbounds.train.TrainResult.from_dict(json.loads(json.dumps(r.to_dict())))
  assert jax.tree_util.tree_structure(back.params) == jax.tree_util.tree_structure(r.params)
  for a, b in zip(jax.tree_util.tree_leaves(r), jax.tree_util.tree_leaves(back)):
    np.testing.assert_array_equal(np.asarray(a, np.float64), b)


def test_train_config_is_hashable_and_frozen():
  a = gbounds.train.TrainConfig(steps=3, learning_rate=0.1)
  assert hash(a) == hash(gbounds.train.TrainConfig(steps=3, learning_rate=0.1))
  import dataclasses
  with pytest.raises(dataclasses.FrozenInstanceError):
    a.steps = 4  # type: ignore[misc]


def test_nnx_and_linen_twins_train_to_the_same_numbers():
  from tests import model_twins
  tw = model_twins.mlp_twins(n=12)
  cfg = gbounds.train.TrainConfig(optimizer="momentum", learning_rate=0.05, steps=8, batch_size=4,
                                  seed=2)
  lin = gbounds.as_model_fn(tw.linen, params=tw.linen_params)
  nx = gbounds.as_model_fn(tw.nnx)
  r_lin = gbounds.train.train(lin.apply_fn, lin.params, tw.x, tw.y, cfg)
  r_nnx = gbounds.train.train(nx.apply_fn, nx.params, tw.x, tw.y, cfg)
  np.testing.assert_allclose(r_nnx.final_loss, r_lin.final_loss, rtol=1e-5)
  np.testing.assert_allclose(nx.apply_fn(r_nnx.params, tw.x), lin.apply_fn(r_lin.params, tw.x),
                             rtol=1e-5, atol=1e-5)
  keys = jax.random.split(jax.random.key(0), 2)
  many_lin = gbounds.train.init_many(tw.linen, tw.x[:1], keys)
  want = tw.linen.init(keys[1], tw.x[:1])["params"]
  for a, b in zip(jax.tree_util.tree_leaves(many_lin), jax.tree_util.tree_leaves(want)):
    np.testing.assert_array_equal(a[1], b)
  many_nnx = gbounds.train.init_many(tw.nnx, tw.x[:1], keys)
  assert jax.tree_util.tree_structure(many_nnx) == jax.tree_util.tree_structure(nx.params)
  preds = gbounds.train.predict_many(nx.apply_fn, many_nnx, tw.x)
  assert preds.shape == (2, 12, model_twins.OUT)
