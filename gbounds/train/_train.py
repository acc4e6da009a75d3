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

from gbounds._src import errors as _errors


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
    _check_real("learning_rate", self.learning_rate, "a positive finite number", lambda v: v > 0)
    _errors.check_int("steps", self.steps, 1)
    if self.batch_size is not None:
      _errors.check_int("batch_size", self.batch_size, 1, what="a positive integer or None")
    _check_real("weight_decay", self.weight_decay, "a non-negative finite number",
                lambda v: v >= 0)
    _check_real("momentum", self.momentum, "a number in [0, 1)", lambda v: 0 <= v < 1)
    _errors.check_int("seed", self.seed, None)


_check_real = _errors.check_real  # kept for callers inside gbounds.train


def steps_for_epochs(epochs: int, n: int, batch_size: int | None) -> int:
  """Number of steps that make ``epochs`` passes over ``n`` examples."""
  _errors.check_int("epochs", epochs, 1)
  _errors.check_int("n", n, 1)
  if batch_size is not None:
    _errors.check_int("batch_size", batch_size, 1, what="a positive integer or None")
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
  """Trains one model on all of ``(x, y)``.

  Checked before anything is compiled (:class:`gbounds.InvalidInputError` naming the argument):
  ``x`` non-empty, numeric and finite, ``y`` of the same length, ``params`` finite, the model
  applicable to ``x`` with outputs ``(batch, k)``, and ``y`` integer labels in ``[0, k)`` (or,
  for the MSE loss, float targets with ``k`` values per example). A ``batch_size`` above the
  number of examples is clamped to it (full-batch steps).
  """
  _check_config(config)
  _check_data(x, y)
  _check_model_and_labels(apply_fn, params, x, y, config, model_axis=False)
  fn = jax.jit(lambda p, xx, yy, idx, key: _train_one(apply_fn, config, p, xx, yy, idx, key))
  key = jax.random.fold_in(jax.random.key(config.seed), 0)  # = model 0 of train_many
  p, loss = fn(params, jnp.asarray(x), jnp.asarray(y), jnp.arange(len(y)), key)
  return TrainResult(p, loss)


def _check_config(config: Any) -> None:
  if not isinstance(config, TrainConfig):
    _errors.fail("config", "a gbounds.train.TrainConfig", type(config).__name__)


def _check_data(x, y):
  if np.ndim(x) < 1:
    _errors.fail("x", "an array with a leading example axis", f"shape {np.shape(x)}")
  _errors.check_nonempty("x", x)
  if np.ndim(y) < 1:
    _errors.fail("y", "an array with a leading example axis", f"shape {np.shape(y)}")
  _errors.check_same_leading(("x", "y"), x, y)
  for name, a in (("x", x), ("y", y)):
    kind = np.asarray(a).dtype.kind if not isinstance(a, jax.Array) else a.dtype.kind
    if kind not in "biuf":
      _errors.fail(name, "a numeric array", f"dtype {np.asarray(a).dtype}")
  _errors.check_finite("x", x)
  _errors.check_finite("y", y)


def _check_model_and_labels(apply_fn, params, x, y, config: TrainConfig, *, model_axis: bool,
                            used: np.ndarray | None = None) -> int:
  """Finite ``params``; ``apply_fn(params, x)`` of shape ``(batch, k)``; ``y`` (rows ``used``)
  valid labels or targets for ``k`` outputs and ``config.loss``. Returns ``k``."""
  from gbounds.ntk import check_apply_fn, output_shape
  check_apply_fn(apply_fn)
  _errors.check_finite_tree("params", params)
  p_spec = jax.tree_util.tree_map(
      lambda a: jax.ShapeDtypeStruct(np.shape(a)[1:] if model_axis else np.shape(a),
                                     jnp.asarray(a).dtype if not hasattr(a, "dtype") else a.dtype),
      params)
  x_dtype = jax.dtypes.canonicalize_dtype(x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype)
  x_spec = jax.ShapeDtypeStruct(np.shape(x), x_dtype)
  k = int(output_shape(apply_fn, p_spec, x_spec, "x", shown=np.shape(x))[1])
  y_arr = np.asarray(y)
  if used is not None:
    y_arr = y_arr[used]
  if config.loss == Loss.CROSS_ENTROPY or y_arr.dtype.kind in "iu":
    if y_arr.dtype.kind not in "iu":
      _errors.fail("y", "integer class labels for the cross-entropy loss", f"dtype {y_arr.dtype}")
    _errors.check_rank("y", y_arr, 1)
    _errors.check_labels("y", y_arr, k)
  elif int(np.prod(y_arr.shape[1:], dtype=np.int64)) != k:
    _errors.fail("y", f"integer labels or float targets with {k} values per example (the model "
                 f"has {k} outputs)", f"shape {y_arr.shape}")
  return k


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
  _check_config(config)
  _check_data(x, y)
  train_idx = np.asarray(train_idx)
  _errors.check_rank("train_idx", train_idx, 2)
  if train_idx.dtype.kind not in "iu":
    _errors.fail("train_idx", "integer indices into the pool", f"dtype {train_idx.dtype}")
  if 0 in train_idx.shape:
    _errors.fail("train_idx", "at least one model and one training example",
                 f"shape {train_idx.shape}")
  if train_idx.size and (train_idx.min() < 0 or train_idx.max() >= len(y)):
    _errors.fail("train_idx", f"indices in [0, {len(y)})", f"[{train_idx.min()}, {train_idx.max()}]")
  m = train_idx.shape[0]
  leading = {np.shape(leaf)[0] if np.ndim(leaf) else None
             for leaf in jax.tree_util.tree_leaves(params)}
  if leading != {m}:
    _errors.fail("params", f"a leading model axis of size {m} (train_idx rows)",
                 sorted(leading, key=str))
  if chunk_size is not None:
    _errors.check_int("chunk_size", chunk_size, 1, what="a positive integer or None")
  if model_ids is not None and np.shape(model_ids) != (m,):
    _errors.fail("model_ids", f"an array of shape ({m},) (one id per model)",
                 f"shape {np.shape(model_ids)}")
  if model_ids is not None and np.asarray(model_ids).dtype.kind not in "iu":
    _errors.fail("model_ids", "integer ids", f"dtype {np.asarray(model_ids).dtype}")
  _check_model_and_labels(apply_fn, params, x, y, config, model_axis=True,
                          used=np.unique(train_idx))
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
