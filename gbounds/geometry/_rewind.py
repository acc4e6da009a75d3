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
:func:`layer_features` records full layer outputs with Flax's ``capture_intermediates``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from gbounds.data import _datasets as _data
from gbounds._src import errors as _errors
from gbounds.geometry import _manifold as _manifold
from gbounds.models import _networks as _models
from gbounds.train._train import _check_real

MANIFOLD_KINDS = ("unpermuted", "permuted", "restored")


@dataclasses.dataclass(frozen=True)
class PermutedLabelConfig:
  """Recipe of the permuted-label experiment (defaults: 17 minutes measured on 2 heavily shared
  CPU cores, load ~16; the geometry at 7 checkpoints x 5 layers x 3 kinds dominates).

  Attributes:
    dataset: ``"mnist"`` (t10k split, see the module docstring) or ``"fashion_mnist"``.
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
  dataset: str = "mnist"
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
    if not isinstance(self.dataset, str) or self.dataset not in ("mnist", "fashion_mnist"):
      _errors.fail("dataset", "'mnist' or 'fashion_mnist'", repr(self.dataset))
    _check_real("permute_fraction", self.permute_fraction, "a fraction in [0, 1]",
                lambda v: 0 <= v <= 1)
    for name in ("n_train", "n_test", "epochs", "batch_size", "n_per_manifold", "n_t"):
      _errors.check_int(name, getattr(self, name), 1, what="a positive integer")
    if self.n_per_manifold < 2:
      _errors.fail("n_per_manifold", "at least 2 points per manifold", self.n_per_manifold)
    _errors.check_int("rewind_epoch", self.rewind_epoch, 0)
    _errors.check_int("seed", self.seed, None)
    _check_real("learning_rate", self.learning_rate, "a positive finite number", lambda v: v > 0)
    if not 0 <= self.rewind_epoch <= self.epochs:
      _errors.fail("rewind_epoch", f"an epoch in [0, {self.epochs}]", self.rewind_epoch)
    _check_real("kappa", self.kappa, "a margin kappa >= 0", lambda v: v >= 0)
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
  """MFTMA of one set of manifolds at one layer and epoch."""
  epoch: int
  layer: str
  kind: str
  capacity: float
  radius: float
  dimension: float
  center_correlation: float
  center_rank: int


class EpochRecord(NamedTuple):
  """Accuracies at a checkpoint: clean training examples (true labels), permuted training
  examples (fraction predicted as their *permuted* label: memorization), test (true labels)."""
  epoch: int
  train_clean_accuracy: float
  train_permuted_fit: float
  test_accuracy: float


class RewindRecord(NamedTuple):
  """Accuracies after resetting ``layers`` of the final network to ``rewind_epoch``."""
  direction: str  # "last" or "first"
  n_layers: int
  layers: tuple[str, ...]
  test_accuracy: float
  train_permuted_fit: float
  train_clean_accuracy: float


@dataclasses.dataclass(frozen=True)
class PermutedLabelResult:
  """Output of :func:`permuted_label_experiment`."""
  config: PermutedLabelConfig
  analysed_layers: tuple[str, ...]
  parameter_layers: tuple[str, ...]
  history: tuple[EpochRecord, ...]
  geometry: tuple[GeometryRecord, ...]
  rewinding: tuple[RewindRecord, ...]
  fraction_changed: float

  def to_dict(self) -> dict:
    return dict(
        config=dataclasses.asdict(self.config), analysed_layers=list(self.analysed_layers),
        parameter_layers=list(self.parameter_layers),
        history=[r._asdict() for r in self.history],
        geometry=[r._asdict() for r in self.geometry],
        rewinding=[dict(r._asdict(), layers=list(r.layers)) for r in self.rewinding],
        fraction_changed=self.fraction_changed)


# ----------------------------------------------------------------------------- pieces


def permute_labels(y: np.ndarray, *, fraction: float, seed: int = 0):
  """Permutes the labels of ``round(fraction * n)`` random examples among themselves.

  Returns:
    ``(y_permuted, permuted_mask)``: the new labels and which examples were selected.
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


def parameter_layers(params: Any) -> tuple[str, ...]:
  """Top-level parameter groups of a :class:`gbounds.models.CNN`/:class:`gbounds.models.MLP`, input to
  output (``conv0, conv1, ..., dense0, ..., head``)."""
  order = {"conv": 0, "dense": 1, "head": 2}

  def key(name):
    stem = name.rstrip("0123456789")
    return order.get(stem, 3), int(name[len(stem):] or 0), name

  return tuple(sorted(params.keys(), key=key))


def rewind_layers(params: Any, early_params: Any, layers: Sequence[str]) -> Any:
  """``params`` with the top-level groups ``layers`` replaced by those of ``early_params``.

  ``early_params`` (an earlier checkpoint of the same network) must hold each rewound group with
  the same leaves and shapes as ``params``, and finite values; otherwise
  :class:`gbounds.InvalidInputError` names the first mismatching leaf.
  """
  for name, tree in (("params", params), ("early_params", early_params)):
    if not isinstance(tree, Mapping):
      _errors.fail(name, "a parameter dict keyed by layer name", type(tree).__name__)
  if isinstance(layers, str) or not all(isinstance(n, str) for n in layers):
    _errors.fail("layers", "a sequence of layer names", repr(layers))
  unknown = [n for n in layers if n not in params]
  if unknown:
    _errors.fail("layers", f"names among {sorted(params.keys())}", unknown)
  missing = [n for n in layers if n not in early_params]
  if missing:
    _errors.fail("early_params", f"a checkpoint of the same architecture holding layers "
                 f"{list(layers)}", f"no {missing[0]!r} (layers {sorted(early_params.keys())})")
  for n in layers:
    _check_same_architecture(n, params[n], early_params[n])
  _errors.check_finite_tree("early_params", {n: early_params[n] for n in layers})
  out = dict(params)
  for n in layers:
    out[n] = early_params[n]
  return out


def _check_same_architecture(layer: str, now: Any, early: Any) -> None:
  """Same leaf paths and shapes in ``early`` as in ``now`` (the first difference is named)."""
  want = {jax.tree_util.keystr(k): np.shape(v)
          for k, v in jax.tree_util.tree_flatten_with_path(now)[0]}
  got = {jax.tree_util.keystr(k): np.shape(v)
         for k, v in jax.tree_util.tree_flatten_with_path(early)[0]}
  for key in sorted(set(want) | set(got)):
    if want.get(key) != got.get(key):
      _errors.fail("early_params", "a checkpoint of the same architecture as params",
                   f"[{layer!r}]{key} of shape {got.get(key, 'absent')} (params: "
                   f"{want.get(key, 'absent')})")


def layer_features(model: nn.Module, params: Any, x: jax.typing.ArrayLike, *,
                   activation: Callable[[jax.Array], jax.Array] | None = jax.nn.relu,
                   include_input: bool = True, chunk_size: int = 512) -> dict[str, np.ndarray]:
  """Full (unpooled) outputs of every ``nn.Conv``/``nn.Dense`` layer, flattened per example.

  Hidden layers are passed through ``activation`` (post-activation features, default ReLU as in
  :class:`gbounds.models.CNN`); the output layer (``head``) is returned as logits.

  Returns:
    ``{"input": (n, H*W*C), "conv0": (n, ...), ..., "head": (n, k)}`` numpy arrays.
  """
  _errors.check_int("chunk_size", chunk_size, 1, what="a positive integer")
  if np.ndim(x) < 2 or np.shape(x)[0] == 0:
    _errors.fail("x", "a non-empty batch of inputs (rank >= 2)", f"shape {np.shape(x)}")
  _errors.check_finite("x", x)
  _errors.check_finite_tree("params", params)
  x = jnp.asarray(x)

  @jax.jit
  def run(p, xb):
    _, state = model.apply(
        {"params": p}, xb, mutable=["intermediates"],
        capture_intermediates=lambda mdl, name: (isinstance(mdl, (nn.Conv, nn.Dense))
                                                 and name == "__call__"))
    inter = state["intermediates"]
    return {k: v["__call__"][0] for k, v in inter.items() if "__call__" in v}

  pieces: dict[str, list] = {}
  for start in range(0, x.shape[0], chunk_size):
    for k, v in run(params, x[start:start + chunk_size]).items():
      pieces.setdefault(k, []).append(np.asarray(v).reshape(v.shape[0], -1))
  feats = {k: np.concatenate(v) for k, v in pieces.items()}
  out = {"input": np.asarray(x).reshape(x.shape[0], -1)} if include_input else {}
  for name in parameter_layers(feats):
    f = feats[name]
    out[name] = f if (name == "head" or activation is None) else np.asarray(activation(f))
  return out


def _load(config: PermutedLabelConfig, data_dir):
  if config.dataset == "mnist":
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


def _accuracy(apply, params, x, y):
  pred = np.concatenate([np.asarray(jnp.argmax(apply(params, x[i:i + 1000]), -1))
                         for i in range(0, len(x), 1000)])
  return float(np.mean(pred == y)) if len(y) else float("nan")


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


def permuted_label_experiment(config: PermutedLabelConfig = PermutedLabelConfig(), *,
                              data_dir: str | os.PathLike | None = None,
                              model: nn.Module | None = None,
                              progress: Callable | None = None) -> PermutedLabelResult:
  """Trains on partly permuted labels; per-layer, per-epoch MFTMA; layer rewinding.

  Args:
    config: :class:`PermutedLabelConfig`.
    data_dir: data directory (see :func:`gbounds.data.data_dir`).
    model: a Linen model with ``conv*``/``dense*``/``head`` layers and 10 outputs (default:
      ``gbounds.models.CNN(out=10)``, 3 conv stages 16-32-32 channels and a 128-unit dense layer).
    progress: optional ``tqdm``-like wrapper for the epoch loop.

  Returns:
    :class:`PermutedLabelResult`. The manifold analysis runs in float64 when
    ``jax_enable_x64`` is on, else in float32.
  """
  xtr, ytr, xte, yte = _load(config, data_dir)
  y_noisy, perm_mask = permute_labels(ytr, fraction=config.permute_fraction, seed=config.seed)
  if not isinstance(config, PermutedLabelConfig):
    _errors.fail("config", "a gbounds.geometry.PermutedLabelConfig", type(config).__name__)
  if model is not None and not isinstance(model, nn.Module):
    _errors.fail("model", "a flax.linen.Module", type(model).__name__)
  model = _models.CNN(out=10) if model is None else model
  key = jax.random.key(config.seed)
  try:
    out_shape = jax.eval_shape(lambda: model.init_with_output(key, jnp.asarray(xtr[:1]))[0]).shape
  except (TypeError, ValueError, IndexError) as e:
    _errors.fail("model", "a Linen model that accepts the images (N, 28, 28, 1)",
                 f"{type(model).__name__} ({type(e).__name__}: {str(e)[:200]})")
  if tuple(out_shape) != (1, 10):
    _errors.fail("model", "a model with 10 outputs (one per class)",
                 f"{type(model).__name__} with outputs of shape {tuple(out_shape)} for one image")
  params = model.init(key, jnp.asarray(xtr[:1]))["params"]
  opt = optax.adam(config.learning_rate)
  opt_state = opt.init(params)

  def apply(p, x):
    return model.apply({"params": p}, x)

  @jax.jit
  def step(p, s, xb, yb):
    def loss(p_):
      return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(apply(p_, xb), yb))
    g = jax.grad(loss)(p)
    upd, s = opt.update(g, s, p)
    return optax.apply_updates(p, upd), s

  apply_jit = jax.jit(apply)
  rng = np.random.default_rng(config.seed + 1)
  clean = ~perm_mask
  m = config.n_per_manifold
  sets = {"unpermuted": (_select(ytr, clean, m, rng), ytr),
          "permuted": (_select(y_noisy, perm_mask, m, rng), y_noisy),
          "restored": (_select(ytr, perm_mask, m, rng), ytr)}
  all_idx = np.unique(np.concatenate([s[0].ravel() for s in sets.values()]))
  pos = {int(i): k for k, i in enumerate(all_idx)}
  dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32

  history, geometry, checkpoints = [], [], {}
  analysed: tuple[str, ...] = ()
  xtr_j, ynoisy_j = jnp.asarray(xtr), jnp.asarray(y_noisy)
  n, b = len(ytr), min(config.batch_size, len(ytr))
  epochs = range(config.epochs + 1)
  for epoch in (progress(epochs, desc="epochs") if progress else epochs):
    if epoch > 0:
      order = rng.permutation(n)
      for i in range(n // b):
        bi = order[i * b:(i + 1) * b]
        params, opt_state = step(params, opt_state, xtr_j[bi], ynoisy_j[bi])
    if epoch not in config.checkpoint_epochs:
      continue
    checkpoints[epoch] = params
    history.append(EpochRecord(
        epoch, _accuracy(apply_jit, params, xtr[clean], ytr[clean]),
        _accuracy(apply_jit, params, xtr[perm_mask], y_noisy[perm_mask]),
        _accuracy(apply_jit, params, xte, yte)))
    feats = layer_features(model, params, xtr[all_idx])
    analysed = tuple(k for k, f in feats.items() if f.shape[1] > m)
    for layer in analysed:
      f = feats[layer]
      for kind, (sel, _) in sets.items():
        xm = f[np.vectorize(pos.get)(sel)]
        g = _manifold.manifold_geometry(
            xm, key=jax.random.fold_in(key, epoch), n_t=config.n_t, kappa=config.kappa,
            center_rank=config.center_rank, n_subspace_steps=100, dtype=dtype)
        geometry.append(GeometryRecord(epoch, layer, kind, float(g.capacity), float(g.radius),
                                       float(g.dimension), float(g.center_correlation),
                                       int(g.center_rank)))

  layers = parameter_layers(params)
  early = checkpoints[config.rewind_epoch]
  rewinding = []
  for direction in ("last", "first"):
    for k in range(0, len(layers) + 1):
      if direction == "first" and k == 0:
        continue
      chosen = layers[len(layers) - k:] if direction == "last" else layers[:k]
      p = rewind_layers(params, early, chosen)
      rewinding.append(RewindRecord(
          direction, k, tuple(chosen), _accuracy(apply_jit, p, xte, yte),
          _accuracy(apply_jit, p, xtr[perm_mask], y_noisy[perm_mask]),
          _accuracy(apply_jit, p, xtr[clean], ytr[clean])))
  return PermutedLabelResult(config, analysed, layers, tuple(history), tuple(geometry),
                             tuple(rewinding), float(np.mean(y_noisy[perm_mask] != ytr[perm_mask]))
                             if perm_mask.any() else 0.0)


# ----------------------------------------------------------------------------- figures


def plot_geometry(result: PermutedLabelResult):
  """Capacity / radius / dimension (rows) of the three manifold kinds (columns) by layer, one
  line per checkpoint epoch. Returns a matplotlib Figure."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  epochs = result.config.checkpoint_epochs
  layers = result.analysed_layers
  fig, axes = plt.subplots(3, 3, figsize=(12, 9), sharex=True, sharey="row")
  cmap = plt.get_cmap("viridis")
  rows = {(r.epoch, r.layer, r.kind): r for r in result.geometry}
  for i, q in enumerate(("capacity", "radius", "dimension")):
    for j, kind in enumerate(MANIFOLD_KINDS):
      ax = axes[i, j]
      for e_i, e in enumerate(epochs):
        ys = [getattr(rows[(e, layer, kind)], q) for layer in layers]
        ax.plot(range(len(layers)), ys, "o-", color=cmap(e_i / max(1, len(epochs) - 1)),
                label=f"epoch {e}")
      if i == 0:
        ax.set_title(kind)
      if j == 0:
        ax.set_ylabel(q)
      ax.set_xticks(range(len(layers)), layers, rotation=30)
  axes[0, 0].legend(fontsize=7)
  fig.suptitle(f"MFTMA per layer, {result.config.dataset}, "
               f"{result.config.permute_fraction:.0%} labels permuted")
  fig.tight_layout()
  return fig


def plot_rewinding(result: PermutedLabelResult):
  """Test accuracy and permuted-label fit against the number of rewound layers."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6, 4))
  for direction, style in (("last", "o-"), ("first", "s--")):
    recs = [r for r in result.rewinding if r.direction == direction or r.n_layers == 0]
    ks = [r.n_layers for r in recs]
    ax.plot(ks, [r.test_accuracy for r in recs], style, label=f"test acc, rewind {direction} L")
    ax.plot(ks, [r.train_permuted_fit for r in recs], style, alpha=0.5,
            label=f"permuted-label fit, rewind {direction} L")
  ax.set_xlabel(f"L (layers reset to epoch {result.config.rewind_epoch})")
  ax.set_ylabel("accuracy")
  ax.legend(fontsize=7)
  fig.tight_layout()
  return fig
