"""Where memorization lives: per-layer manifold geometry and layer rewinding on permuted labels.

The experiment of Stephenson et al., "On the geometry of generalization and memorization in
deep neural networks", ICLR 2021 (Secs. 3-5), at CPU size:

1. a small CNN (:class:`gbounds.models.CNN`) is trained with Adam on a subset of MNIST (the ``t10k``
   split, the only MNIST split shipped offline: the first ``n_train`` images train, the last
   ``n_test`` test) or Fashion-MNIST, after the labels of a fraction ``permute_fraction`` of the
   training examples are randomly *permuted among themselves* (the class marginals are kept;
   the few that draw their own label back still count as permuted);
2. at checkpoint epochs, for each layer (the input pixels and the post-ReLU output of every conv
   and hidden dense layer, flattened) :func:`gbounds.geometry.manifold_geometry` measures three sets of
   class manifolds of ``n_per_manifold`` training examples each:

   * ``unpermuted``: examples with their true labels, grouped by label;
   * ``permuted``: permuted examples grouped by the (random) label they were trained on;
   * ``restored``: the same permuted examples grouped by their true label;

3. layer rewinding: the last ``L`` layers (and, for contrast, the first ``L``) of the final
   network are reset to their values at ``rewind_epoch``, and the test accuracy (true labels)
   and the fit of the permuted training labels are reported for each ``L``.

Memorization shows as a drop of the permuted manifolds' radius and dimension (a rise of their
capacity) in the deeper layers late in training; rewinding the last layers brings the test
accuracy back, rewinding the first layers does not (the paper's qualitative findings).

Activations: :func:`gbounds.models.capture_activations` pools conv outputs over space (what the
activation-information measures need); the manifold analysis needs the whole feature map, so
:func:`layer_features` records full layer outputs through :func:`gbounds.models.intercept_layers`
(one path for Linen, NNX and a ModelFn of either), named as :func:`gbounds.models.layer_groups`
names them, so that a Linen model and its NNX twin give the same names (``conv0``, ...,
``dense0``, ..., ``head``).

Models: every entry point takes a Linen module (with ``params=``), an NNX module, or (where no
layer has to be observed) a :class:`gbounds.models.ModelFn`, normalised by
:func:`gbounds.models.as_model_fn`.

Figures: :mod:`gbounds.viz` (``plot_layer_geometry_grid``, ``plot_rewinding``).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn
from flax import nnx

import gbounds.data as _data
import gbounds.models as _models
from gbounds._src import batching as _batching
from gbounds._src import errors as _errors
from gbounds._src import progress as _progress
from gbounds._src import results as _results
from gbounds.geometry import _manifold as _manifold


class ManifoldKind(enum.StrEnum):
  """The three sets of class manifolds measured at each layer (Stephenson et al. 2021, Sec. 4).

  * ``UNPERMUTED``: clean training examples, grouped by their (true) label.
  * ``PERMUTED``: permuted training examples, grouped by the random label they were trained on.
  * ``RESTORED``: the same permuted examples, grouped by their true label.
  """
  UNPERMUTED = "unpermuted"
  PERMUTED = "permuted"
  RESTORED = "restored"


MANIFOLD_KINDS = tuple(ManifoldKind)


class RewindDirection(enum.StrEnum):
  """Which layers are reset to the early checkpoint: the ``LAST`` ``L`` or the ``FIRST`` ``L``."""
  LAST = "last"
  FIRST = "first"


class ImageDataset(enum.StrEnum):
  """Datasets of the permuted-label experiment (28x28 grey-level images, 10 classes).

  * ``MNIST``: the ``t10k`` split (the only MNIST split shipped offline).
  * ``FASHION_MNIST``: Fashion-MNIST, training examples from its train split, test examples
    from its test split.
  """
  MNIST = "mnist"
  FASHION_MNIST = "fashion_mnist"


@dataclasses.dataclass(frozen=True)
class PermutedLabelConfig(_results.ResultMixin):
  """Recipe of the permuted-label experiment (defaults: 17 minutes measured on 2 heavily shared
  CPU cores, load ~16; the geometry at 7 checkpoints x 5 layers x 3 kinds dominates).

  Attributes:
    dataset: an :class:`ImageDataset` (or its value, ``"mnist"`` / ``"fashion_mnist"``).
    n_train, n_test: training and test examples.
    permute_fraction: fraction of training labels permuted, in [0, 1].
    epochs: training epochs (Adam, softmax cross-entropy, mini-batches of ``batch_size``).
    learning_rate, batch_size: Adam step size and mini-batch size.
    checkpoint_epochs: epochs (0 = initialisation) at which geometry is measured; ``epochs`` and
      ``rewind_epoch`` are always added and epochs above ``epochs`` are dropped (so the default
      list serves shorter runs; the CLI refuses explicit out-of-range epochs).
    rewind_epoch: the early checkpoint the rewound layers are reset to.
    n_per_manifold: points per class manifold ``M``.
    n_t: Gaussian samples per manifold.
    kappa: margin of the manifold analysis.
    center_rank: passed to :func:`gbounds.geometry.manifold_geometry` (``None``: chosen automatically).
    seed: seed of data subset, permutation, initialisation, batches and the analysis.
  """
  dataset: ImageDataset = ImageDataset.MNIST
  n_train: int = 3000
  n_test: int = 2000
  permute_fraction: float = 0.4
  epochs: int = 40
  learning_rate: float = 1e-3
  batch_size: int = 100
  checkpoint_epochs: tuple[int, ...] = (0, 1, 2, 5, 10, 20, 40)
  rewind_epoch: int = 2
  n_per_manifold: int = 40
  n_t: int = 100
  kappa: float = 0.0
  center_rank: int | None = None
  seed: int = 0

  def __post_init__(self):
    object.__setattr__(self, "dataset",
                       _errors.as_enum("dataset", self.dataset, ImageDataset))
    _errors.check_real("permute_fraction", self.permute_fraction, "a fraction in [0, 1]",
                       lambda v: 0 <= v <= 1)
    for name in ("n_train", "n_test", "epochs", "batch_size", "n_per_manifold", "n_t"):
      _errors.check_int(name, getattr(self, name), 1, what="a positive integer")
    if self.n_per_manifold < 2:
      _errors.fail("n_per_manifold", "at least 2 points per manifold", self.n_per_manifold)
    _errors.check_int("rewind_epoch", self.rewind_epoch, 0)
    _errors.check_int("seed", self.seed, None)
    _errors.check_real("learning_rate", self.learning_rate, "a positive finite number",
                       lambda v: v > 0)
    if not 0 <= self.rewind_epoch <= self.epochs:
      _errors.fail("rewind_epoch", f"an epoch in [0, {self.epochs}]", self.rewind_epoch)
    _errors.check_real("kappa", self.kappa, "a margin kappa >= 0", lambda v: v >= 0)
    if self.center_rank is not None:
      _errors.check_int("center_rank", self.center_rank, 0, what="an integer >= 0 or None")
    try:
      given = [e for e in self.checkpoint_epochs]
    except TypeError:
      given = None
    if given is None or any(isinstance(e, bool) or not isinstance(e, (int, np.integer))
                            for e in given):
      _errors.fail("checkpoint_epochs", "a sequence of integer epochs",
                   repr(self.checkpoint_epochs))
    if any(e < 0 for e in given):
      _errors.fail("checkpoint_epochs", "epochs >= 0", repr(tuple(self.checkpoint_epochs)))
    eps = sorted({int(e) for e in given if 0 <= e <= self.epochs}
                 | {self.epochs, self.rewind_epoch})
    object.__setattr__(self, "checkpoint_epochs", tuple(eps))


class GeometryRecord(NamedTuple):
  """MFTMA of one set of manifolds at one layer and epoch (:class:`ManifoldGeometry` fields).

  Attributes:
    epoch: the checkpoint epoch (0 = initialisation).
    layer: the layer name (``"input"``, ``"conv0"``, ...).
    kind: the :class:`ManifoldKind`.
    capacity, radius, dimension, center_correlation, center_rank: as in
      :class:`gbounds.geometry.ManifoldGeometry`.
  """
  # duplicates: the field list + to_dict/from_dict shape of every result NamedTuple (EpochRecord
  # below, experiments records, models.LayerInfo); different fields, not shared logic
  epoch: int
  layer: str
  kind: ManifoldKind
  capacity: float
  radius: float
  dimension: float
  center_correlation: float
  center_rank: int

  to_dict = _results.namedtuple_to_dict
  from_dict = classmethod(_results.from_dict)


class EpochRecord(NamedTuple):
  """Accuracies at a checkpoint.

  Attributes:
    epoch: the checkpoint epoch.
    train_clean_accuracy: clean training examples, against their true labels.
    train_permuted_fit: permuted training examples, fraction predicted as their *permuted*
      label (memorization).
    test_accuracy: test examples, true labels.
  """
  epoch: int
  train_clean_accuracy: float
  train_permuted_fit: float
  test_accuracy: float

  to_dict = _results.namedtuple_to_dict
  from_dict = classmethod(_results.from_dict)


class RewindRecord(NamedTuple):
  """Accuracies after resetting ``layers`` of the final network to ``rewind_epoch``.

  Attributes:
    direction: the :class:`RewindDirection`.
    n_layers: ``L``, how many layers were reset.
    layers: their names.
    test_accuracy, train_permuted_fit, train_clean_accuracy: as in :class:`EpochRecord`.
  """
  direction: RewindDirection
  n_layers: int
  layers: tuple[str, ...]
  test_accuracy: float
  train_permuted_fit: float
  train_clean_accuracy: float

  to_dict = _results.namedtuple_to_dict
  from_dict = classmethod(_results.from_dict)


@dataclasses.dataclass(frozen=True)
class PermutedLabelResult(_results.ResultMixin):
  """Output of :func:`permuted_label_experiment`.

  Attributes:
    config: the :class:`PermutedLabelConfig` that ran.
    analysed_layers: layers whose manifolds were measured (wider than ``n_per_manifold``).
    parameter_layers: the parameterised layers, input to output (the rewinding order).
    history: one :class:`EpochRecord` per checkpoint.
    geometry: one :class:`GeometryRecord` per (checkpoint, layer, kind).
    rewinding: one :class:`RewindRecord` per (direction, ``L``).
    fraction_changed: fraction of the permuted examples whose label actually changed.
  """
  config: PermutedLabelConfig
  analysed_layers: tuple[str, ...]
  parameter_layers: tuple[str, ...]
  history: tuple[EpochRecord, ...]
  geometry: tuple[GeometryRecord, ...]
  rewinding: tuple[RewindRecord, ...]
  fraction_changed: float

  def table(self) -> _results.Table:
    """The rewinding results, one row per (direction, ``L``).

    Returns:
      A :class:`gbounds.Table` with columns direction, L, test accuracy, permuted fit, clean
      training accuracy and the rewound layers (``+``-joined).
    """
    return _results.Table(
        ("direction", "L", "test_accuracy", "train_permuted_fit", "train_clean_accuracy",
         "layers"),
        tuple((r.direction, r.n_layers, r.test_accuracy, r.train_permuted_fit,
               r.train_clean_accuracy, "+".join(r.layers)) for r in self.rewinding),
        title=f"rewind to epoch {self.config.rewind_epoch}")

  def history_table(self) -> _results.Table:
    """The accuracies at each checkpoint.

    Returns:
      A :class:`gbounds.Table` with the fields of :class:`EpochRecord` as columns.
    """
    return _results.Table(EpochRecord._fields, self.history, title="accuracy by epoch")

  def geometry_table(self) -> _results.Table:
    """The manifold geometry at each (checkpoint, layer, kind).

    Returns:
      A :class:`gbounds.Table` with the fields of :class:`GeometryRecord` as columns.
    """
    return _results.Table(GeometryRecord._fields, self.geometry, title="MFTMA by layer")


# ----------------------------------------------------------------------------- pieces


def permute_labels(y: np.ndarray, *, fraction: float, seed: int = 0):
  """Permutes the labels of ``round(fraction * n)`` random examples among themselves.

  The selected examples' labels are shuffled by a random permutation, so the class marginals
  are kept (Stephenson et al. 2021, Sec. 3); an example that draws its own label back still
  counts as permuted.

  Args:
    y: ``(n,)`` integer labels.
    fraction: fraction of examples selected, in ``[0, 1]``.
    seed: numpy seed of the selection and the permutation.

  Returns:
    ``(y_permuted, permuted_mask)``: the new int32 labels and which examples were selected.
  """
  y = np.asarray(y)
  _errors.check_rank("y", y, 1)
  _errors.check_probability("fraction", fraction)
  rng = np.random.default_rng(seed)
  idx = rng.choice(y.size, size=int(round(fraction * y.size)), replace=False)
  out = y.copy()
  out[idx] = y[rng.permutation(idx)]
  mask = np.zeros(y.size, bool)
  mask[idx] = True
  return out.astype(np.int32), mask


def parameter_layers(params: Any, *, model: Any = None) -> tuple[str, ...]:
  """The parameterised layers, input to output: the names :func:`rewind_layers` takes.

  Args:
    params: a Linen ``"params"`` dict of a :class:`gbounds.models.CNN` / ``MLP`` (top-level
      groups ``conv*``, ``dense*``, ``head``, ordered conv, dense, head, then by index), or an
      NNX ``nnx.State``.
    model: the NNX module the state belongs to (names and order then come from
      :func:`gbounds.models.layer_groups`: the twins' names ``conv0``, ..., ``head``).

  Returns:
    The layer names, input to output.
  """
  return tuple(_layer_paths(params, model))


def _layer_paths(params: Any, model: Any = None) -> dict[str, tuple]:
  """``{layer name: key path of its parameters in params}``, input to output."""
  if isinstance(model, nnx.Module) or isinstance(params, nnx.State):
    return {g.name: tuple(g.path)
            for g in _models.layer_groups(model if isinstance(model, nnx.Module) else None,
                                          params)}
  order = {"conv": 0, "dense": 1, "head": 2}

  def key(name):
    stem = name.rstrip("0123456789")
    return order.get(stem, 3), int(name[len(stem):] or 0), name

  return {name: (name,) for name in sorted(params.keys(), key=key)}


def _subtree(tree: Any, path: tuple) -> Any:
  for k in path:
    tree = tree[k]
  return tree


def _has_path(tree: Any, path: tuple) -> bool:
  try:
    _subtree(tree, path)
  except (KeyError, IndexError, TypeError):
    return False
  return True


def _key_of(entry: Any) -> Any:
  for attr in ("key", "idx", "name"):
    if hasattr(entry, attr):
      return getattr(entry, attr)
  return entry


def rewind_layers(params: Any, early_params: Any, layers: Sequence[str], *,
                  model: Any = None) -> Any:
  """``params`` with the layers ``layers`` replaced by those of ``early_params``.

  Layer rewinding of Stephenson et al. (2021, Sec. 5): resetting the last layers of a network
  trained on partly permuted labels to an early checkpoint removes the memorization.

  Args:
    params: the final parameters: a Linen ``"params"`` dict (layers are its top-level groups)
      or an NNX ``nnx.State`` (layers as :func:`gbounds.models.layer_groups` names them).
    early_params: an earlier checkpoint of the same network, same form as ``params``; it must
      hold each rewound layer with the same leaves and shapes, and finite values.
    layers: the layer names to reset (see :func:`parameter_layers`).
    model: the NNX module (optional; gives the twin names ``conv0``, ``dense0``, ``head`` for an
      ``nnx.State``), a Linen module or a :class:`gbounds.models.ModelFn` (ignored: the
      parameters carry the names).

  Returns:
    A new parameter pytree of the structure of ``params``.

  Raises:
    InvalidInputError: unknown layer names, a checkpoint missing a layer or of another
      architecture (the first mismatching leaf is named), non-finite rewound values.
  """
  for name, tree in (("params", params), ("early_params", early_params)):
    if not isinstance(tree, Mapping):
      _errors.fail(name, "a parameter dict keyed by layer name", type(tree).__name__)
  if isinstance(layers, str) or not all(isinstance(n, str) for n in layers):
    _errors.fail("layers", "a sequence of layer names", repr(layers))
  paths = _layer_paths(params, model)
  unknown = [n for n in layers if n not in paths]
  if unknown:
    _errors.fail("layers", f"names among {sorted(paths)}", unknown)
  missing = [n for n in layers if not _has_path(early_params, paths[n])]
  if missing:
    _errors.fail("early_params", f"a checkpoint of the same architecture holding layers "
                 f"{list(layers)}", f"no {missing[0]!r} (layers "
                 f"{sorted(_layer_paths(early_params, model))})")
  for n in layers:
    _check_same_architecture(paths[n], _subtree(params, paths[n]),
                             _subtree(early_params, paths[n]))
  _errors.check_finite_tree("early_params", {n: _subtree(early_params, paths[n]) for n in layers})
  if not isinstance(params, nnx.State) and all(len(paths[n]) == 1 for n in layers):
    out = dict(params)
    for n in layers:
      out[n] = early_params[n]
    return out
  rewound = [paths[n] for n in layers]
  early_leaves = {tuple(_key_of(e) for e in kp): v
                  for kp, v in jax.tree_util.tree_flatten_with_path(early_params)[0]}
  flat, treedef = jax.tree_util.tree_flatten_with_path(params)
  leaves = []
  for kp, v in flat:
    k = tuple(_key_of(e) for e in kp)
    leaves.append(early_leaves[k] if any(k[:len(p)] == p for p in rewound) else v)
  return jax.tree_util.tree_unflatten(treedef, leaves)


def _check_same_architecture(path: tuple, now: Any, early: Any) -> None:
  """Same leaf paths and shapes in ``early`` as in ``now`` (the first difference is named)."""
  where = "".join(f"[{k!r}]" for k in path)
  want = {jax.tree_util.keystr(k): np.shape(v)
          for k, v in jax.tree_util.tree_flatten_with_path(now)[0]}
  got = {jax.tree_util.keystr(k): np.shape(v)
         for k, v in jax.tree_util.tree_flatten_with_path(early)[0]}
  for key in sorted(set(want) | set(got)):
    if want.get(key) != got.get(key):
      _errors.fail("early_params", "a checkpoint of the same architecture as params",
                   f"{where}{key} of shape {got.get(key, 'absent')} (params: "
                   f"{want.get(key, 'absent')})")


def _cached(factory: Callable, *static: Any) -> Callable:
  """``factory(*static)`` through its ``lru_cache`` (one compilation per static key); built
  afresh when a static piece is unhashable."""
  try:
    return factory(*static)
  except TypeError:
    return factory.__wrapped__(*static)


@functools.lru_cache(maxsize=16)
def _features_fn(apply_fn: Callable) -> Callable:
  """Jitted ``(params, x) -> {layer name: raw output}``: the first output of every dense/conv
  layer call, in call (forward) order, through :func:`gbounds.models.intercept_layers` (cached
  per ``apply_fn``, so repeated calls at each checkpoint compile once)."""

  names: list[str] = []  # call order, recorded while tracing (jit returns dicts key-sorted)

  @jax.jit
  def traced(p, xb):
    outs = {}

    def record(next_fun, args, kwargs, call):
      y = next_fun(*args, **kwargs)
      outs.setdefault(call.name, y)
      return y

    with _models.intercept_layers(record):
      apply_fn(p, xb)
    names[:] = list(outs)
    return tuple(outs.values())

  def run(p, xb):
    values = traced(p, xb)
    return dict(zip(names, values))

  return run


@functools.lru_cache(maxsize=16)
def _linen_features_fn(model: nn.Module) -> Callable:
  """:func:`_features_fn` of a Linen module, cached per (hashable) module."""
  return _features_fn.__wrapped__(_models.as_model_fn(model, params={}).apply_fn)


def layer_features(model: Any, params: Any = None, x: jax.typing.ArrayLike | None = None, *,
                   activation: Callable[[np.ndarray], jax.typing.ArrayLike] | None = jax.nn.relu,
                   include_input: bool = True, chunk_size: int = 512,
                   callback: _progress.ProgressCallback | None = None) -> dict[str, np.ndarray]:
  """Full (unpooled) outputs of every conv / dense layer, flattened per example.

  Hidden layers are passed through ``activation`` (post-activation features, default ReLU as in
  :class:`gbounds.models.CNN`); the output layer (``head``) is returned as logits. These are the
  per-layer representations whose class manifolds Stephenson et al. (ICLR 2021) measure.

  Args:
    model: a Linen module (with ``params``), an NNX module (``params`` optional: its own
      weights) or a :class:`gbounds.models.ModelFn` of either (its layers are seen through
      :func:`gbounds.models.intercept_layers`).
    params: Linen: the ``"params"`` collection; NNX: an ``nnx.State`` of ``nnx.Param`` or
      ``None``; ModelFn: replaces its parameters when given.
    x: inputs ``(n, ...)`` as the model takes them, finite, ``n >= 1``.
    activation: elementwise function applied to hidden layers (``None``: raw outputs).
    include_input: whether to include the flattened inputs as ``"input"``.
    chunk_size: examples per forward pass (the last chunk is padded to the same shape, so the
      forward pass compiles once).
    callback: optional ``callback(done, total)`` after each chunk.

  Returns:
    ``{"input": (n, H*W*C), "conv0": (n, ...), ..., "head": (n, k)}`` numpy arrays, in call
    (forward) order (names of :func:`gbounds.models.layer_groups`, the same for a Linen model
    and its NNX twin).

  Raises:
    InvalidInputError: a model of another type, a Linen module without ``params``, an empty or
      rank < 2 ``x``, non-finite ``x`` or ``params``, a bad ``chunk_size``.
  """
  _errors.check_int("chunk_size", chunk_size, 1, what="a positive integer")
  if x is None or np.ndim(x) < 2 or np.shape(x)[0] == 0:
    _errors.fail("x", "a non-empty batch of inputs (rank >= 2)",
                 f"shape {() if x is None else np.shape(x)}")
  _errors.check_finite("x", x)
  if isinstance(model, nn.Module):
    if params is None:
      _errors.fail("params", "the Linen module's parameters", None)
    run = _cached(_linen_features_fn, model)
  elif isinstance(model, (nnx.Module, _models.ModelFn)):
    mf = _models.as_model_fn(model, params=params)
    run, params = _cached(_features_fn, mf.apply_fn), mf.params
  else:
    _errors.fail("model", "a flax.linen.Module (with params), a flax.nnx.Module or a "
                 "gbounds.models.ModelFn", type(model).__name__)
  _errors.check_finite_tree("params", params)
  x = jnp.asarray(x)
  feats = _batching.chunked_map(
      lambda xb: {k: v.reshape(v.shape[0], -1) for k, v in run(params, xb).items()}, x,
      chunk_size=chunk_size, callback=callback)
  feats = {k: np.asarray(v) for k, v in feats.items()}
  out = {"input": np.asarray(x).reshape(x.shape[0], -1)} if include_input else {}
  for name, f in feats.items():
    out[name] = f if (name == "head" or activation is None) else np.asarray(activation(f))
  return out


def _load(config: PermutedLabelConfig, data_dir):
  if config.dataset == ImageDataset.MNIST:
    x, y = _data.load_mnist("test", data_dir=data_dir)
    if config.n_train + config.n_test > len(y):
      _errors.fail("n_train + n_test", f"at most {len(y)} (MNIST t10k)",
                   config.n_train + config.n_test)
    rng = np.random.default_rng(config.seed)
    idx = rng.permutation(len(y))
    tr, te = idx[:config.n_train], idx[len(y) - config.n_test:]
    return x[tr], y[tr], x[te], y[te]
  xtr, ytr = _data.load_fashion_mnist("train", data_dir=data_dir)
  xte, yte = _data.load_fashion_mnist("test", data_dir=data_dir)
  rng = np.random.default_rng(config.seed)
  tr = rng.choice(len(ytr), config.n_train, replace=False)
  te = rng.choice(len(yte), config.n_test, replace=False)
  return xtr[tr], ytr[tr], xte[te], yte[te]


def _accuracy(predict, params, x, y):
  """Fraction of ``x`` whose arg-max prediction is ``y`` (chunks of 1000 examples)."""
  if not len(y):
    return float("nan")
  pred = _batching.chunked_map(lambda xb: predict(params, xb), x, chunk_size=1000)
  return float(np.mean(np.asarray(pred) == y))


def _select(labels, mask, m, rng):
  """Indices (10, m): m examples of each class among ``mask`` (raises if a class is short)."""
  out = []
  for c in range(10):
    idx = np.flatnonzero(mask & (labels == c))
    if idx.size < m:
      _errors.fail("n_per_manifold", f"at most {idx.size} (examples of class {c} available)", m)
    out.append(rng.choice(idx, m, replace=False))
  return np.stack(out)


# ----------------------------------------------------------------------------- experiment


def _train_step_fn(apply_fn: Callable, learning_rate: float) -> tuple[Any, Callable, Callable]:
  """``(optimizer, step, predict)`` for one model: Adam on the softmax cross-entropy, each
  jitted once for the whole experiment."""
  opt = optax.adam(learning_rate)

  @jax.jit
  def step(p, s, xb, yb):
    def loss(p_):
      return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(apply_fn(p_, xb), yb))
    g = jax.grad(loss)(p)
    with jax.numpy_dtype_promotion("standard"):  # optax's Adam mixes its int32 count and floats
      upd, s = opt.update(g, s, p)
    return optax.apply_updates(p, upd), s

  @jax.jit
  def predict(p, x):
    return jnp.argmax(apply_fn(p, x), -1)

  return opt, step, predict


def _as_experiment_model(model: Any, params: Any, x1: np.ndarray, key: jax.Array):
  """``(module, ModelFn)`` of the experiment's model (default ``CNN(out=10)``), checked to map
  one image to 10 logits."""
  if model is None:
    model = _models.CNN(out=10)
  if not isinstance(model, (nn.Module, nnx.Module, _models.ModelFn)):
    _errors.fail("model", "a flax.linen.Module, a flax.nnx.Module or a gbounds.models.ModelFn",
                 type(model).__name__)
  try:
    mf = _models.as_model_fn(model, params=params, example_input=jnp.asarray(x1), key=key)
    out_shape = jax.eval_shape(mf.apply_fn, mf.params, jnp.asarray(x1)).shape
  except (TypeError, ValueError, IndexError) as e:
    _errors.fail("model", "a model that accepts the images (N, 28, 28, 1)",
                 f"{type(model).__name__} ({type(e).__name__}: {str(e)[:200]})")
  if tuple(out_shape) != (1, 10):
    _errors.fail("model", "a model with 10 outputs (one per class)",
                 f"{type(model).__name__} with outputs of shape {tuple(out_shape)} for one image")
  return model, mf


def permuted_label_experiment(config: PermutedLabelConfig = PermutedLabelConfig(), *,
                              data_dir: str | os.PathLike | None = None,
                              model: Any = None, params: Any = None, dtype: Any = None,
                              callback: _progress.ProgressCallback | None = None,
                              progress: bool = False) -> PermutedLabelResult:
  """Trains on partly permuted labels; per-layer, per-epoch MFTMA; layer rewinding.

  Stephenson et al., "On the geometry of generalization and memorization in deep neural
  networks", ICLR 2021, Secs. 3-5, at CPU size (see the module docstring): at each checkpoint
  and layer the capacity ``alpha_M``, radius ``R_M`` and dimension ``D_M`` of
  :func:`gbounds.geometry.manifold_geometry` (Chung, Lee, Sompolinsky, PRX 2018, eqs. 16-17,
  28-29; centre correlations of Cohen et al. 2020) for the three :class:`ManifoldKind` sets;
  then the accuracies after resetting the last / first ``L`` layers to ``rewind_epoch``.

  Args:
    config: :class:`PermutedLabelConfig`.
    data_dir: data directory (see :func:`gbounds.data.data_dir`).
    model: a Linen module (initialised from ``config.seed`` unless ``params`` is given), an
      NNX module (its own weights unless ``params``) or a :class:`gbounds.models.ModelFn` of
      either, with dense/conv layers and 10 outputs (default: ``gbounds.models.CNN(out=10)``,
      3 conv stages 16-32-32 channels and a 128-unit dense layer). Layers are observed through
      :func:`gbounds.models.intercept_layers` and rewound by :func:`parameter_layers` names.
    params: initial parameters (Linen ``"params"`` collection, NNX ``nnx.State``).
    dtype: dtype of the manifold analysis, float32 or float64 (``None``: the dtype of the layer
      features, i.e. the model's, float32 for the default CNN). Float64 needs JAX's 64-bit
      types enabled by the caller (``jax.enable_x64``); the CLI runs it in float64.
    callback: optional ``callback(done, total)`` after each epoch (``total = epochs + 1``,
      epoch 0 being the initialisation).
    progress: ``True`` shows a tqdm bar of the epochs (when no ``callback`` is given).

  Returns:
    :class:`PermutedLabelResult`.

  Raises:
    InvalidInputError: a bad ``config``, ``model`` (not a model of the above forms, not accepting
      ``(N, 28, 28, 1)`` images, not 10 outputs), too few examples of a class for a manifold,
      a ``dtype`` other than float32/float64 or float64 without 64-bit types.
    DataNotFoundError: the dataset is not in ``data_dir``.
  """
  if not isinstance(config, PermutedLabelConfig):
    _errors.fail("config", "a gbounds.geometry.PermutedLabelConfig", type(config).__name__)
  xtr, ytr, xte, yte = _load(config, data_dir)
  y_noisy, perm_mask = permute_labels(ytr, fraction=config.permute_fraction, seed=config.seed)
  key = jax.random.key(config.seed)
  module, mf = _as_experiment_model(model, params, xtr[:1], key)
  params = mf.params
  # A Linen module is cached by itself, anything else by the ModelFn's apply_fn: the layer
  # features compile once for all checkpoints.
  observed = module if isinstance(module, nn.Module) else mf
  opt, step, predict = _train_step_fn(mf.apply_fn, config.learning_rate)
  opt_state = opt.init(params)

  rng = np.random.default_rng(config.seed + 1)
  clean = ~perm_mask
  m = config.n_per_manifold
  sets = {ManifoldKind.UNPERMUTED: _select(ytr, clean, m, rng),
          ManifoldKind.PERMUTED: _select(y_noisy, perm_mask, m, rng),
          ManifoldKind.RESTORED: _select(ytr, perm_mask, m, rng)}
  all_idx = np.unique(np.concatenate([s.ravel() for s in sets.values()]))
  pos = {int(i): k for k, i in enumerate(all_idx)}

  history, geometry, checkpoints = [], [], {}
  analysed: tuple[str, ...] = ()
  xtr_j, ynoisy_j = jnp.asarray(xtr), jnp.asarray(y_noisy)
  n, b = len(ytr), min(config.batch_size, len(ytr))
  epochs = range(config.epochs + 1)
  if progress and callback is None:
    callback = _progress.TqdmCallback("epochs", "epoch")
  for epoch in epochs:
    if epoch > 0:
      order = rng.permutation(n)
      for i in range(n // b):
        bi = order[i * b:(i + 1) * b]
        params, opt_state = step(params, opt_state, xtr_j[bi], ynoisy_j[bi])
    if epoch in config.checkpoint_epochs:
      checkpoints[epoch] = params
      history.append(EpochRecord(
          epoch, _accuracy(predict, params, xtr[clean], ytr[clean]),
          _accuracy(predict, params, xtr[perm_mask], y_noisy[perm_mask]),
          _accuracy(predict, params, xte, yte)))
      feats = layer_features(observed, params, xtr[all_idx])
      analysed = tuple(k for k, f in feats.items() if f.shape[1] > m)
      for layer in analysed:
        f = feats[layer]
        for kind, sel in sets.items():
          xm = f[np.vectorize(pos.get)(sel)]
          g = _manifold.manifold_geometry(
              xm, key=jax.random.fold_in(key, epoch), n_t=config.n_t, kappa=config.kappa,
              center_rank=config.center_rank, n_subspace_steps=100, dtype=dtype)
          geometry.append(GeometryRecord(epoch, layer, kind, float(g.capacity),
                                         float(g.radius), float(g.dimension),
                                         float(g.center_correlation), int(g.center_rank)))
    _progress.notify(callback, epoch + 1, config.epochs + 1)

  layers = parameter_layers(params, model=module)
  early = checkpoints[config.rewind_epoch]
  rewinding = []
  for direction in RewindDirection:
    for k in range(0, len(layers) + 1):
      if direction == RewindDirection.FIRST and k == 0:
        continue
      chosen = layers[len(layers) - k:] if direction == RewindDirection.LAST else layers[:k]
      p = rewind_layers(params, early, chosen, model=module)
      rewinding.append(RewindRecord(
          direction, k, tuple(chosen), _accuracy(predict, p, xte, yte),
          _accuracy(predict, p, xtr[perm_mask], y_noisy[perm_mask]),
          _accuracy(predict, p, xtr[clean], ytr[clean])))
  return PermutedLabelResult(config, analysed, layers, tuple(history), tuple(geometry),
                             tuple(rewinding), float(np.mean(y_noisy[perm_mask] != ytr[perm_mask]))
                             if perm_mask.any() else 0.0)
