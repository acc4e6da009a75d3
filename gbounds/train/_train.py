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
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gbounds.models as _models
from gbounds._src import errors as _errors
from gbounds._src import results as _results
from gbounds.ntk import check_apply_fn, output_shape


class Loss(enum.IntEnum):
  """The training loss (a mean over the mini-batch, see the module docstring).

  Attributes:
    MSE: ``1/(2b) sum_i ||f(x_i) - y_i||^2`` against one-hot labels or float targets.
    CROSS_ENTROPY: softmax cross-entropy against integer labels.
  """
  MSE = 1
  CROSS_ENTROPY = 2


class Optimizer(enum.IntEnum):
  """The optax optimizer (:func:`make_optimizer`).

  Attributes:
    SGD: ``optax.sgd(learning_rate)``.
    MOMENTUM: ``optax.sgd(learning_rate, momentum=momentum)`` (heavy ball).
    ADAM: ``optax.adam(learning_rate)`` with optax's defaults.
  """
  SGD = 1
  MOMENTUM = 2
  ADAM = 3


class MapStrategy(enum.IntEnum):
  """How many models are trained at once.

  Attributes:
    AUTO: ``VMAP`` except for convolutional models on CPU, where XLA's batched convolutions
      are slower than a sequential map (measured in ``benchmarks/bench_harness.py``).
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
    _errors.check_real("learning_rate", self.learning_rate, "a positive finite number", lambda v: v > 0)
    _errors.check_int("steps", self.steps, 1)
    if self.batch_size is not None:
      _errors.check_int("batch_size", self.batch_size, 1, what="a positive integer or None")
    _errors.check_real("weight_decay", self.weight_decay, "a non-negative finite number",
                lambda v: v >= 0)
    _errors.check_real("momentum", self.momentum, "a number in [0, 1)", lambda v: 0 <= v < 1)
    _errors.check_int("seed", self.seed, None)




def steps_for_epochs(epochs: int, n: int, batch_size: int | None) -> int:
  """Number of optimizer steps that make ``epochs`` passes over ``n`` examples.

  Args:
    epochs: passes over the data (>= 1).
    n: number of training examples (>= 1).
    batch_size: mini-batch size, or None for full batch.

  Returns:
    ``epochs * max(1, n // batch_size)`` (``epochs`` for full batch): the last partial batch
    of an epoch is dropped, as the trainer does.
  """
  _errors.check_int("epochs", epochs, 1)
  _errors.check_int("n", n, 1)
  if batch_size is not None:
    _errors.check_int("batch_size", batch_size, 1, what="a positive integer or None")
  per_epoch = 1 if batch_size is None else max(1, n // batch_size)
  return int(epochs * per_epoch)


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
  """The optax transformation of ``config.optimizer``.

  Args:
    config: the :class:`TrainConfig` (``optimizer``, ``learning_rate``, ``momentum``).

  Returns:
    An ``optax.GradientTransformation`` (see :class:`Optimizer`).
  """
  if config.optimizer == Optimizer.SGD:
    return optax.sgd(config.learning_rate)
  if config.optimizer == Optimizer.MOMENTUM:
    return optax.sgd(config.learning_rate, momentum=config.momentum)
  return optax.adam(config.learning_rate)


def loss_fn(config_loss: Loss, logits: jax.Array, y: jax.Array) -> jax.Array:
  """Mean loss of a batch (the training objective without weight decay).

  Args:
    config_loss: the :class:`Loss`.
    logits: model outputs ``(b, k)``.
    y: integer labels ``(b,)`` (one-hot encoded for MSE) or, for MSE, float targets with ``k``
      values per example.

  Returns:
    The scalar mean loss: ``mean_i CE(logits_i, y_i)`` or ``mean_i 1/2 ||logits_i - y_i||^2``.
  """
  if config_loss == Loss.CROSS_ENTROPY:
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))
  if jnp.issubdtype(y.dtype, jnp.integer):
    y = jax.nn.one_hot(y, logits.shape[-1], dtype=logits.dtype)
  y = y.reshape(logits.shape)
  return 0.5 * jnp.mean(jnp.sum((logits - y) ** 2, axis=-1))


class TrainResult(NamedTuple):
  """Trained parameters and the final loss.

  Attributes:
    params: the trained parameter pytree (with a leading model axis for :func:`train_many`).
    final_loss: the training objective (mean loss plus weight decay) on each model's whole
      training set after the last step: a scalar for :func:`train`, ``(m,)`` for
      :func:`train_many`.
  """
  params: Any
  final_loss: jax.Array | np.ndarray  # numpy after from_dict

  # duplicates: thin to_dict/from_dict wrappers over gbounds._src.results (see ntk._dynamics); the
  # decoding of parameter pytrees is type specific.
  def to_dict(self) -> dict[str, Any]:
    """JSON-ready dict: ``params`` as a nested dict of lists, ``final_loss`` a number or list.

    Returns:
      ``{"params": ..., "final_loss": ...}``.
    """
    return _results.to_dict(self)

  @classmethod
  def from_dict(cls, data: dict[str, Any]) -> TrainResult:
    """Rebuilds a :class:`TrainResult` from :meth:`to_dict` output.

    Args:
      data: the dict.

    Returns:
      The result, parameter leaves and ``final_loss`` as numpy arrays (parameter pytrees of
      nested mappings round-trip; the float dtype is that of JSON numbers, float64).
    """
    return cls(_tree_from_json(data["params"]), np.asarray(data["final_loss"]))


def _tree_from_json(tree: Any) -> Any:
  """A parameter pytree of nested mappings from its JSON form: every non-mapping a numpy array.

  Args:
    tree: nested dicts whose leaves are (nested lists of) numbers, as ``to_dict`` writes them.

  Returns:
    The same nesting with numpy-array leaves.
  """
  if isinstance(tree, dict):
    return {k: _tree_from_json(v) for k, v in tree.items()}
  return np.asarray(tree)


def _optax_promotion():
  """Standard dtype promotion for the optax update only (scoped, not global): optax's Adam raises
  a Python-float decay to an int32 step count, which strict promotion refuses. The default
  promotion is "standard", so this changes no number."""
  return jax.numpy_dtype_promotion("standard")


def _train_one(apply_fn, config: TrainConfig, params, x, y, idx, key):
  """One model's training run: ``config.steps`` optimizer steps from ``params`` on the examples
  ``idx`` of the pool ``(x, y)``, mini-batch order from ``key``. Returns (params, final loss)."""
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
    with _optax_promotion():
      updates, state = opt.update(grads, state, p)
    return optax.apply_updates(p, updates), state

  params, _ = jax.lax.fori_loop(0, config.steps, step, (params, opt.init(params)))
  return params, objective(params, idx)


def resolve_strategy(strategy: MapStrategy | str, params: Any) -> MapStrategy:
  """The concrete :class:`MapStrategy` that ``AUTO`` stands for with these parameters.

  Args:
    strategy: a :class:`MapStrategy` (or its name).
    params: parameters with a leading model axis (a leaf of rank >= 5 marks a convolution).

  Returns:
    ``strategy`` itself unless it is ``AUTO``; then ``SEQUENTIAL`` for convolutional models on
    the CPU backend and ``VMAP`` otherwise.
  """
  strategy = _errors.as_enum("strategy", strategy, MapStrategy)
  if strategy != MapStrategy.AUTO:
    return strategy
  has_conv = any(np.ndim(leaf) >= 5 for leaf in jax.tree_util.tree_leaves(params))  # (m, kh, kw, ci, co)
  if has_conv and jax.default_backend() == "cpu":
    return MapStrategy.SEQUENTIAL
  return MapStrategy.VMAP



def _cached(factory):
  """``functools.lru_cache`` over the static pieces, falling back to an uncached build when one
  of them is unhashable (e.g. a config holding an array)."""
  cached = functools.lru_cache(maxsize=64)(factory)

  @functools.wraps(factory)
  def get(*args):
    try:
      hash(args)
    except TypeError:
      return factory(*args)
    return cached(*args)
  get.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
  get.cache_info = cached.cache_info  # type: ignore[attr-defined]
  return get


@_cached
def _train_program(apply_fn, config: TrainConfig):
  def run(p, x, y, key):
    return _train_one(apply_fn, config, p, x, y, jnp.arange(y.shape[0]), key)
  return jax.jit(run)


@_cached
def _train_many_program(apply_fn, config: TrainConfig, strategy: MapStrategy):
  def one(p, x, y, idx, key):
    return _train_one(apply_fn, config, p, x, y, idx, key)

  def keys_of(ids):
    return jax.vmap(lambda i: jax.random.fold_in(jax.random.key(config.seed), i))(ids)

  if strategy == MapStrategy.VMAP:
    return jax.jit(lambda p, x, y, idx, ids: jax.vmap(one, in_axes=(0, None, None, 0, 0))(
        p, x, y, idx, keys_of(ids)))
  return jax.jit(lambda p, x, y, idx, ids: jax.lax.map(
      lambda a: one(a[0], x, y, a[1], a[2]), (p, idx, keys_of(ids))))


@_cached
def _predict_program(apply_fn):
  return jax.jit(apply_fn)


@_cached
def _predict_many_program(apply_fn, strategy: MapStrategy):
  if strategy == MapStrategy.VMAP:
    return jax.jit(jax.vmap(apply_fn, in_axes=(0, None)))
  return jax.jit(lambda p, x: jax.lax.map(lambda q: apply_fn(q, x), p))


def _check_factory_args(apply_fn: Any, config: Any) -> None:
  check_apply_fn(apply_fn)
  _check_config(config)


def train_fn(apply_fn: Callable, config: TrainConfig
             ) -> Callable[[Any, jax.Array, jax.Array], TrainResult]:
  """Compile-once trainer of one model: the program behind :func:`train`.

  The returned function is cached on ``(apply_fn, config)`` (identity of ``apply_fn``, value of
  the frozen ``config``): calling :func:`train_fn` again, or :func:`train`, with the same
  pieces reuses the same ``jax.jit`` program, which compiles once per input shape.

  Args:
    apply_fn: ``apply_fn(params, x) -> (batch, k)``.
    config: the :class:`TrainConfig`.

  Returns:
    ``fn(params, x, y) -> TrainResult``: ``config.steps`` optimizer steps on all of ``(x, y)``
    with model id 0's batch order (``fold_in(key(config.seed), 0)``). No argument checks are
    made inside (use :func:`train` for the checked entry point).
  """
  _check_factory_args(apply_fn, config)
  program = _train_program(apply_fn, config)

  def fn(params, x, y):
    key = jax.random.fold_in(jax.random.key(config.seed), 0)  # = model 0 of train_many
    p, loss = program(params, x, y, key)
    return TrainResult(p, loss)
  return fn


def train_many_fn(apply_fn: Callable, config: TrainConfig, *,
                  strategy: MapStrategy | str = MapStrategy.AUTO
                  ) -> Callable[[Any, jax.Array, jax.Array, jax.Array, jax.Array], TrainResult]:
  """Compile-once trainer of many models: the per-chunk program behind :func:`train_many`.

  Cached on ``(apply_fn, config, strategy)``; ``AUTO`` is resolved per call from the
  parameters (:func:`resolve_strategy`) and each resolved strategy has one program, compiled
  once per input shape. Inputs may be sharded over a mesh (``jax.device_put`` with a
  ``NamedSharding`` over the model axis): the program follows the input shardings.

  Args:
    apply_fn: ``apply_fn(params, x) -> (batch, k)``.
    config: the :class:`TrainConfig`.
    strategy: :class:`MapStrategy`.

  Returns:
    ``fn(params, x, y, train_idx, model_ids) -> TrainResult``: ``params`` with a leading model
    axis ``m``, the shared pool ``(x, y)``, ``train_idx`` ``(m, n_train)`` int indices into it
    and ``model_ids`` ``(m,)`` ints; model ``j`` trains on ``train_idx[j]`` with batch order
    ``fold_in(key(config.seed), model_ids[j])``, so a model's result does not depend on which
    chunk it is trained in. Unchecked (use :func:`train_many` for the checked entry point).
  """
  _check_factory_args(apply_fn, config)
  strategy = _errors.as_enum("strategy", strategy, MapStrategy)

  def fn(params, x, y, train_idx, model_ids):
    program = _train_many_program(apply_fn, config, resolve_strategy(strategy, params))
    p, loss = program(params, x, y, train_idx, model_ids)
    return TrainResult(p, loss)
  return fn


def predict_fn(apply_fn: Callable) -> Callable[[Any, jax.Array], jax.Array]:
  """Compile-once predictions of one model: ``jax.jit(apply_fn)``, cached on ``apply_fn``.

  Args:
    apply_fn: ``apply_fn(params, x) -> (batch, k)``.

  Returns:
    ``fn(params, x) -> (n, k)``.
  """
  check_apply_fn(apply_fn)
  return _predict_program(apply_fn)


def predict_many_fn(apply_fn: Callable, *, strategy: MapStrategy | str = MapStrategy.AUTO
                    ) -> Callable[[Any, jax.Array], jax.Array]:
  """Compile-once predictions of many models on shared inputs: the program behind
  :func:`predict_many`, cached on ``(apply_fn, strategy)``.

  Args:
    apply_fn: ``apply_fn(params, x) -> (batch, k)``.
    strategy: :class:`MapStrategy`; ``AUTO`` is resolved per call from the parameters.

  Returns:
    ``fn(params, x) -> (m, n, k)`` for ``params`` with a leading model axis ``m``.
  """
  check_apply_fn(apply_fn)
  strategy = _errors.as_enum("strategy", strategy, MapStrategy)

  def fn(params, x):
    return _predict_many_program(apply_fn, resolve_strategy(strategy, params))(params, x)
  return fn


def train(apply_fn: Callable, params: Any, x: jax.typing.ArrayLike, y: jax.typing.ArrayLike,
          config: TrainConfig
          ) -> TrainResult:
  """Trains one model on all of ``(x, y)`` (the checked front of :func:`train_fn`).

  Checked before anything is compiled (:class:`gbounds.InvalidInputError` naming the argument):
  ``x`` non-empty, numeric and finite, ``y`` of the same length, ``params`` finite, the model
  applicable to ``x`` with outputs ``(batch, k)``, and ``y`` integer labels in ``[0, k)`` (or,
  for the MSE loss, float targets with ``k`` values per example). A ``batch_size`` above the
  number of examples is clamped to it (full-batch steps). Repeated calls with the same
  ``apply_fn``, ``config`` and shapes reuse one compiled program.

  Args:
    apply_fn: ``apply_fn(params, x) -> (batch, k)``.
    params: initial parameters.
    x: inputs ``(n, ...)``.
    y: integer labels ``(n,)`` or, for the MSE loss, float targets ``(n, k)``.
    config: the :class:`TrainConfig`.

  Returns:
    :class:`TrainResult` (``final_loss`` a scalar). Model id 0's batch order, so that it equals
    model 0 of :func:`train_many`.
  """
  _check_config(config)
  _check_data(x, y)
  _check_model_and_labels(apply_fn, params, x, y, config, model_axis=False)
  return train_fn(apply_fn, config)(params, jnp.asarray(x), jnp.asarray(y))


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


def train_many(apply_fn: Callable, params: Any, x: jax.typing.ArrayLike, y: jax.typing.ArrayLike,
               train_idx: jax.typing.ArrayLike, config: TrainConfig, *,
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
  n_pool = np.shape(y)[0]  # len(y): _check_data made y an array with a leading example axis
  if train_idx.size and (train_idx.min() < 0 or train_idx.max() >= n_pool):
    _errors.fail("train_idx", f"indices in [0, {n_pool})", f"[{train_idx.min()}, {train_idx.max()}]")
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
  run = train_many_fn(apply_fn, config, strategy=strategy)
  ids = jnp.asarray(np.arange(m) if model_ids is None else np.asarray(model_ids))
  xj, yj = jnp.asarray(x), jnp.asarray(y)
  cs = m if chunk_size is None else int(chunk_size)
  outs, losses = [], []
  for s in range(0, m, cs):
    sl = slice(s, min(s + cs, m))
    p_chunk = jax.tree_util.tree_map(lambda a: a[sl], params)
    out = run(p_chunk, xj, yj, jnp.asarray(train_idx[sl]), ids[sl])
    outs.append(out.params)
    losses.append(out.final_loss)
    if callback is not None:
      callback(sl.stop, m)
  params_out = jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *outs)
  return TrainResult(params_out, jnp.concatenate(losses))


def init_many(model: Any, example_input: jax.Array, keys: jax.Array) -> Any:
  """Fresh parameters once per key: parameters with a leading model axis.

  Args:
    model: a Linen module, an NNX module with a ``fresh(rngs)`` method, or a
      :class:`gbounds.models.ModelFn` with an ``init_fn`` (normalised by
      :func:`gbounds.models.as_model_fn`).
    example_input: an input batch (initialises a Linen module).
    keys: ``(m,)`` ``jax.random`` keys.

  Returns:
    The ``m`` parameter pytrees stacked on a leading axis (Linen: ``model.init(key,
    example_input)["params"]`` for each key).

  Raises:
    gbounds.InvalidInputError: the model cannot draw fresh parameters.
  """
  # params=() skips the adapter's own initialisation: only init_fn is used here.
  mf = _models.as_model_fn(model, params=(), example_input=example_input)
  return jax.vmap(_models.require_init_fn(mf))(keys)


def predict_many(apply_fn: Callable, params: Any, x: jax.Array, *,
                 strategy: MapStrategy | str = MapStrategy.AUTO) -> jax.Array:
  """Outputs of every model on the shared inputs ``x`` (through :func:`predict_many_fn`).

  Args:
    apply_fn: ``apply_fn(params, x) -> (batch, k)``.
    params: parameters with a leading model axis ``m``.
    x: inputs ``(n, ...)``.
    strategy: :class:`MapStrategy`.

  Returns:
    ``(m, n, k)``.
  """
  return predict_many_fn(apply_fn, strategy=strategy)(params, jnp.asarray(x))


def accuracy(logits: jax.typing.ArrayLike, y: jax.typing.ArrayLike) -> jax.Array:
  """Fraction of rows whose argmax equals the integer label.

  Args:
    logits: ``(n, k)`` model outputs.
    y: ``(n,)`` integer labels.

  Returns:
    ``mean_i [argmax_c logits_ic == y_i]``, a scalar.
  """
  pred = jnp.argmax(logits, axis=-1)
  return jnp.mean(pred == jnp.asarray(y).astype(pred.dtype))
