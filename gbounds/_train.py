"""Seeded optax training of one or many models at once.

Every trainer here is a pure function of ``(params, data, indices, key, config)``; training
``m`` models at once maps that function over a leading model axis, with ``jax.vmap`` or a
sequential ``jax.lax.map`` (:class:`MapStrategy`). Each model trains on its own index set
``train_idx[j]`` into a shared pool ``(x, y)``, so all models have the same shapes (the
supersample experiments' masks become index arrays).

Losses are MEANS over the (mini)batch: MSE ``1/(2b) sum_i ||f(x_i) - y_i||^2`` against one-hot
targets (or given float targets), and softmax cross-entropy against integer labels. SGD
mini-batches are drawn without replacement within each epoch (a fresh permutation per epoch,
the last partial batch dropped); ``batch_size=None`` is full-batch GD.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gbounds import _errors


class Loss(enum.IntEnum):
  MSE = 1
  CROSS_ENTROPY = 2


class Optimizer(enum.IntEnum):
  SGD = 1
  MOMENTUM = 2
  ADAM = 3


class MapStrategy(enum.IntEnum):
  """How many models are trained at once.

  Attributes:
    AUTO: ``VMAP`` except for convolutional models on CPU, where XLA's batched convolutions
      are slower than a sequential map (measured in ``benchmarks/bench_train.py``).
    VMAP: one vectorised program for all models of a chunk.
    SEQUENTIAL: ``jax.lax.map`` over models, one compiled program.
  """
  AUTO = 0
  VMAP = 1
  SEQUENTIAL = 2


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """A training recipe.

  Attributes:
    loss: :class:`Loss`.
    optimizer: :class:`Optimizer`.
    learning_rate: step size.
    steps: number of optimizer steps.
    batch_size: mini-batch size, or None for full-batch gradient descent.
    weight_decay: L2 coefficient added to the loss as ``wd/2 ||w||^2`` (0: none).
    momentum: for ``MOMENTUM``.
    seed: base seed of the mini-batch order (model ``j`` folds in ``j``).
  """
  loss: Loss = Loss.CROSS_ENTROPY
  optimizer: Optimizer = Optimizer.SGD
  learning_rate: float = 0.1
  steps: int = 500
  batch_size: int | None = None
  weight_decay: float = 0.0
  momentum: float = 0.9
  seed: int = 0

  def __post_init__(self):
    object.__setattr__(self, "loss", _errors.as_enum("loss", self.loss, Loss))
    object.__setattr__(self, "optimizer", _errors.as_enum("optimizer", self.optimizer, Optimizer))
    _errors.check_positive("learning_rate", self.learning_rate)
    if int(self.steps) != self.steps or self.steps < 0:
      _errors.fail("steps", "a non-negative integer", self.steps)
    if self.batch_size is not None and (int(self.batch_size) != self.batch_size
                                        or self.batch_size < 1):
      _errors.fail("batch_size", "a positive integer or None", self.batch_size)
    _errors.check_positive("weight_decay", self.weight_decay, strict=False)


def steps_for_epochs(epochs: int, n: int, batch_size: int | None) -> int:
  """Number of steps that make ``epochs`` passes over ``n`` examples."""
  per_epoch = 1 if batch_size is None else max(1, n // batch_size)
  return int(epochs * per_epoch)


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
  if config.optimizer == Optimizer.SGD:
    return optax.sgd(config.learning_rate)
  if config.optimizer == Optimizer.MOMENTUM:
    return optax.sgd(config.learning_rate, momentum=config.momentum)
  return optax.adam(config.learning_rate)


def loss_fn(config_loss: Loss, logits: jax.Array, y: jax.Array) -> jax.Array:
  """Mean loss of a batch; ``y`` int labels (one-hot for MSE) or float targets (MSE)."""
  if config_loss == Loss.CROSS_ENTROPY:
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))
  if jnp.issubdtype(y.dtype, jnp.integer):
    y = jax.nn.one_hot(y, logits.shape[-1], dtype=logits.dtype)
  y = y.reshape(logits.shape)
  return 0.5 * jnp.mean(jnp.sum((logits - y) ** 2, axis=-1))


class TrainResult(NamedTuple):
  """Trained parameters (leading model axis for :func:`train_many`) and the final loss."""
  params: Any
  final_loss: jax.Array


def _train_one(apply_fn, config: TrainConfig, params, x, y, idx, key):
  opt = make_optimizer(config)
  n_tr = idx.shape[0]
  b = n_tr if config.batch_size is None else min(config.batch_size, n_tr)
  per_epoch = max(1, n_tr // b)

  def objective(p, bi):
    logits = apply_fn(p, x[bi])
    val = loss_fn(config.loss, logits, y[bi])
    if config.weight_decay:
      sq = sum(jnp.sum(leaf ** 2) for leaf in jax.tree_util.tree_leaves(p))
      val = val + 0.5 * config.weight_decay * sq
    return val

  def step(s, carry):
    p, state = carry
    if config.batch_size is None:
      bi = idx
    else:
      perm = jax.random.permutation(jax.random.fold_in(key, s // per_epoch), n_tr)
      bi = idx[jax.lax.dynamic_slice_in_dim(perm, (s % per_epoch) * b, b)]
    grads = jax.grad(objective)(p, bi)
    updates, state = opt.update(grads, state, p)
    return optax.apply_updates(p, updates), state

  params, _ = jax.lax.fori_loop(0, config.steps, step, (params, opt.init(params)))
  return params, objective(params, idx)


def _resolve_strategy(strategy: MapStrategy, params: Any) -> MapStrategy:
  if strategy != MapStrategy.AUTO:
    return strategy
  has_conv = any(np.ndim(leaf) >= 5 for leaf in jax.tree_util.tree_leaves(params))  # (m, kh, kw, ci, co)
  if has_conv and jax.default_backend() == "cpu":
    return MapStrategy.SEQUENTIAL
  return MapStrategy.VMAP


def train(apply_fn: Callable, params: Any, x: jax.Array, y: jax.Array, config: TrainConfig
          ) -> TrainResult:
  """Trains one model on all of ``(x, y)``."""
  _check_data(x, y)
  fn = jax.jit(lambda p, xx, yy, idx, key: _train_one(apply_fn, config, p, xx, yy, idx, key))
  key = jax.random.fold_in(jax.random.key(config.seed), 0)  # = model 0 of train_many
  p, loss = fn(params, jnp.asarray(x), jnp.asarray(y), jnp.arange(len(y)), key)
  return TrainResult(p, loss)


def _check_data(x, y):
  _errors.check_nonempty("x", x)
  _errors.check_same_leading(("x", "y"), x, y)
  _errors.check_finite("x", x)
  _errors.check_finite("y", y)


def train_many(apply_fn: Callable, params: Any, x: jax.Array, y: jax.Array,
               train_idx: jax.Array, config: TrainConfig, *,
               strategy: MapStrategy | str = MapStrategy.AUTO,
               chunk_size: int | None = None, model_ids: jax.Array | None = None,
               callback: Callable[[int, int], None] | None = None) -> TrainResult:
  """Trains ``m`` models at once, model ``j`` on ``(x[train_idx[j]], y[train_idx[j]])``.

  Args:
    apply_fn: ``apply_fn(params, x) -> (batch, k)``.
    params: initial parameters with a leading model axis ``m``.
    x, y: the shared pool of inputs and labels/targets.
    train_idx: ``(m, n_train)`` int indices into the pool.
    config: the :class:`TrainConfig`.
    strategy: :class:`MapStrategy`.
    chunk_size: train at most this many models per compiled call (bounds memory).
    model_ids: ``(m,)`` ints folded into ``config.seed`` for each model's batch order
      (default ``arange(m)``): the same id gives the same run whatever the chunking.
    callback: called as ``callback(done, m)`` after each chunk (progress bars).

  Returns:
    :class:`TrainResult` with a leading model axis.
  """
  _check_data(x, y)
  train_idx = np.asarray(train_idx)
  _errors.check_rank("train_idx", train_idx, 2)
  if train_idx.size and (train_idx.min() < 0 or train_idx.max() >= len(y)):
    _errors.fail("train_idx", f"indices in [0, {len(y)})", f"[{train_idx.min()}, {train_idx.max()}]")
  m = train_idx.shape[0]
  leading = {np.shape(leaf)[0] for leaf in jax.tree_util.tree_leaves(params)}
  if leading != {m}:
    _errors.fail("params", f"a leading model axis of size {m} (train_idx rows)", sorted(leading))
  strategy = _resolve_strategy(_errors.as_enum("strategy", strategy, MapStrategy), params)
  ids = np.arange(m) if model_ids is None else np.asarray(model_ids)
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(config.seed), i))(jnp.asarray(ids))
  one = lambda p, idx, key: _train_one(apply_fn, config, p, xj, yj, idx, key)  # noqa: E731
  xj, yj = jnp.asarray(x), jnp.asarray(y)
  if strategy == MapStrategy.VMAP:
    run = jax.jit(jax.vmap(one))
  else:
    run = jax.jit(lambda p, idx, key: jax.lax.map(lambda a: one(*a), (p, idx, key)))
  cs = m if chunk_size is None else int(chunk_size)
  outs, losses = [], []
  for s in range(0, m, cs):
    sl = slice(s, min(s + cs, m))
    p_chunk = jax.tree_util.tree_map(lambda a: a[sl], params)
    p_out, l_out = run(p_chunk, jnp.asarray(train_idx[sl]), keys[sl])
    outs.append(p_out)
    losses.append(l_out)
    if callback is not None:
      callback(sl.stop, m)
  params_out = jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *outs)
  return TrainResult(params_out, jnp.concatenate(losses))


def init_many(model: Any, example_input: jax.Array, keys: jax.Array) -> Any:
  """Initialises a Linen module once per key: parameters with a leading model axis."""
  return jax.vmap(lambda k: model.init(k, example_input)["params"])(keys)


def predict_many(apply_fn: Callable, params: Any, x: jax.Array, *,
                 strategy: MapStrategy | str = MapStrategy.AUTO) -> jax.Array:
  """Outputs of every model on ``x``: ``(m, n, k)``."""
  strategy = _resolve_strategy(_errors.as_enum("strategy", strategy, MapStrategy), params)
  if strategy == MapStrategy.VMAP:
    return jax.jit(jax.vmap(apply_fn, in_axes=(0, None)))(params, x)
  return jax.jit(lambda p: jax.lax.map(lambda q: apply_fn(q, x), p))(params)


def accuracy(logits: jax.Array, y: jax.Array) -> jax.Array:
  """Fraction of rows whose argmax equals the integer label."""
  return jnp.mean(jnp.argmax(logits, axis=-1) == y)
