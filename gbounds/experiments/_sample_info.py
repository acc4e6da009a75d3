"""Experiments with sample information: retraining ground truth, mislabeled-example detection,
data summarisation and the reproduction of Harutyunyan et al. (ICLR 2021), Table 1.

Real networks are retrained with the engine's trainer (:func:`gbounds.train.train_many`, full-batch
GD on the MEAN loss). To train exactly the SUM-loss recipe of :func:`gbounds.info.sample_information`
(``eta`` per summed gradient, weight decay ``lambda/2 ||w - w0||^2``) on ``b`` examples, the
network is reparametrised as ``w = w0 + delta`` (``delta`` starts at 0, so the engine's decay
on ``delta`` is centred at ``w0``) and trained with ``learning_rate = eta b`` and
``weight_decay = lambda / b``: the mean-loss step ``eta b (grad_sum / b + (lambda/b) delta)``
equals the sum-loss step.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import time as _time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
from flax import linen as nn
from flax import nnx
from jax.flatten_util import ravel_pytree

from gbounds._src import errors as _errors
from gbounds._src import io as _io
from gbounds._src import progress as _progress
from gbounds._src import provenance as _provenance
from gbounds._src import results as _results
from gbounds.data import binary_task, inject_label_noise, load_mnist
from gbounds.info import LooConvention, SampleInformation, loo_weight_change, sample_information
from gbounds.models import MLP, ModelFn, as_model_fn
from gbounds.ntk import empirical_ntk_fn
from gbounds.train import Loss, Optimizer, TrainConfig, predict_many, train_many

# Table 1 of Harutyunyan et al. (ICLR 2021): Pearson r between linearized and retrained
# leave-one-out change, MLP (1024 ReLU units), n = 1000 MNIST 4-vs-9, 1000 retrained networks.
PUBLISHED_TABLE1_MLP = {"weights_lambda0": 0.987, "weights_lambda1e3": 0.977,
                        "predictions_lambda0": 0.993, "predictions_lambda1e3": 0.993}


def pearson(a: Any, b: Any) -> float:
  """Pearson correlation coefficient of two arrays (flattened; numpy, float64).

  Args:
    a, b: arrays of the same size.

  Returns:
    ``sum(a' b') / sqrt(sum(a'^2) sum(b'^2))`` with ``a' = a - mean(a)``; NaN when either is
    constant.
  """
  a = np.asarray(a, np.float64).ravel()
  b = np.asarray(b, np.float64).ravel()
  a = a - a.mean()
  b = b - b.mean()
  den = np.sqrt(np.sum(a * a) * np.sum(b * b))
  return float(np.sum(a * b) / den) if den > 0 else float("nan")


def auroc(scores: Any, positives: Any) -> float:
  """Area under the ROC curve of ``scores`` for the boolean ``positives``.

  Args:
    scores: ``(n,)`` scores, higher meaning "more likely positive".
    positives: ``(n,)`` booleans; both classes must occur.

  Returns:
    The Mann-Whitney ``U / (n_pos n_neg)`` (ties counted one half), in ``[0, 1]``.
  """
  s = np.asarray(scores, np.float64)
  p = np.asarray(positives, bool)
  n_pos, n_neg = int(p.sum()), int((~p).sum())
  if n_pos == 0 or n_neg == 0:
    _errors.fail("positives", "both positive and negative examples", f"{n_pos} and {n_neg}")
  order = np.argsort(s, kind="mergesort")
  ranks = np.empty(len(s))
  sorted_s = s[order]
  # average ranks over ties
  i = 0
  while i < len(s):
    j = i
    while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
      j += 1
    ranks[order[i:j + 1]] = 0.5 * (i + j) + 1
    i = j + 1
  u = ranks[p].sum() - n_pos * (n_pos + 1) / 2
  return float(u / (n_pos * n_neg))


def precision_at(scores: Any, positives: Any, count: int) -> float:
  """Fraction of positives among the ``count`` highest scores.

  Args:
    scores: ``(n,)`` scores.
    positives: ``(n,)`` booleans.
    count: how many of the highest scores to look at (ties broken by index).

  Returns:
    The precision at ``count``.
  """
  top = np.argsort(-np.asarray(scores), kind="mergesort")[:count]
  return float(np.mean(np.asarray(positives, bool)[top]))


# ----------------------------------------------------------------------------- retraining


def _shifted(apply_fn, params0):
  def apply_delta(delta, x):
    return apply_fn(jax.tree_util.tree_map(jnp.add, params0, delta), x)
  return apply_delta


def _sum_recipe(n_train: int, learning_rate: float, steps: int, weight_decay: float
                ) -> TrainConfig:
  return TrainConfig(loss=Loss.MSE, optimizer=Optimizer.SGD,
                     learning_rate=float(learning_rate) * n_train, steps=int(steps),
                     batch_size=None, weight_decay=float(weight_decay) / n_train)


@dataclasses.dataclass(frozen=True)
class RetrainedLoo(_results.ResultMixin):
  """Leave-one-out changes of the actually retrained network.

  Attributes:
    indices: ``(s,)`` examples left out.
    weight_change: ``(s, d)`` flattened ``w_S - w_{S-i}``.
    heldout_prediction_change: ``(s, m, k)`` ``f_S(x_j) - f_{S-i}(x_j)`` (or None).
    seconds: wall-clock time of the retraining.
  """
  indices: np.ndarray
  weight_change: np.ndarray
  heldout_prediction_change: np.ndarray | None
  seconds: float


def _model_fn(model: Any, params: Any, x: Any) -> tuple[Callable, Any]:
  """``(apply_fn, params)`` of a plain ``apply_fn`` (with ``params``), a ModelFn, or a Linen
  (with ``params``) or NNX module (:func:`gbounds.models.as_model_fn`)."""
  if callable(model) and not isinstance(model, (ModelFn, nn.Module, nnx.Module)):
    if params is None:
      _errors.fail("params0", "the parameters of the apply function", None)
    return model, params
  m = as_model_fn(model, params=params, example_input=jnp.asarray(np.asarray(x)[:1]))
  return m.apply_fn, m.params


def retrain_leave_one_out(apply_fn: Any, params0: Any, x: Any, y: Any,
                          indices: Sequence[int] | np.ndarray,
                          *, learning_rate: float, steps: int, weight_decay: float = 0.0,
                          x_heldout: Any = None, chunk_size: int = 16,
                          progress: bool = True,
                          callback: _progress.ProgressCallback | None = None) -> RetrainedLoo:
  """Trains the real network on ``S`` and on ``S - {i}`` for each ``i`` in ``indices``.

  Full-batch GD for ``steps`` steps from ``params0`` on the SUM loss
  ``1/2 sum ||f(x) - y||^2 + lambda/2 ||w - w0||^2`` with step ``learning_rate`` (the
  recipe the linearized closed forms describe), many models at once.

  Args:
    apply_fn: the network: ``apply_fn(params, x)``, a :class:`gbounds.models.ModelFn`, a Linen
      module (with ``params0``) or an NNX module (its own weights unless ``params0`` is given);
      normalised by :func:`gbounds.models.as_model_fn`.
    params0: the initial weights (None: the module's own).
    x, y: training inputs and float targets ``(n, k)`` (or ``(n,)`` with ``k = 1``).
    indices: the examples to leave out (one retrained network each).
    learning_rate, steps, weight_decay: the SUM-loss recipe.
    x_heldout: inputs on which to report prediction changes.
    chunk_size: networks trained per compiled call.
    progress: show a tqdm bar (a :class:`gbounds._src.progress.TqdmCallback`) when no
      ``callback`` is given.
    callback: ``callback(done, total)`` in retrained leave-one-out networks.

  Returns:
    :class:`RetrainedLoo`: the flattened weight changes ``w_S - w_{S-i}`` and, with
    ``x_heldout``, the held-out prediction changes.
  """
  apply_fn, params0 = _model_fn(apply_fn, params0, x)
  x = np.asarray(x)
  n = len(x)
  idx = np.asarray(indices)
  if idx.ndim != 1 or idx.size == 0 or idx.min() < 0 or idx.max() >= n:
    _errors.fail("indices", f"a non-empty list of example indices in [0, {n})", indices)
  k = int(jax.eval_shape(apply_fn, params0, jnp.asarray(x[:1])).shape[-1])
  yy = np.asarray(y, np.float32).reshape(n, k)
  _errors.check_finite("y", yy)
  shifted = _shifted(apply_fn, params0)
  zeros = jax.tree_util.tree_map(jnp.zeros_like, params0)
  batch = lambda m: jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (m, *a.shape)), zeros)  # noqa: E731
  t0 = _time.perf_counter()
  full = train_many(shifted, batch(1), x, yy, np.arange(n)[None],
                    _sum_recipe(n, learning_rate, steps, weight_decay), strategy="vmap")
  loo_idx = np.stack([np.delete(np.arange(n), i) for i in idx])
  bar = None
  if callback is None and progress:
    bar = callback = _progress.TqdmCallback("retraining leave-one-out networks")
  loo = train_many(shifted, batch(len(idx)), x, yy, loo_idx,
                   _sum_recipe(n - 1, learning_rate, steps, weight_decay), strategy="vmap",
                   chunk_size=chunk_size, callback=callback)
  if bar is not None:
    bar.close()
  flat = jax.vmap(lambda p: ravel_pytree(p)[0])
  dw = np.asarray(flat(full.params))[0][None, :] - np.asarray(flat(loo.params))
  dv = None
  if x_heldout is not None:
    pf = predict_many(shifted, full.params, jnp.asarray(x_heldout), strategy="vmap")
    pl = predict_many(shifted, loo.params, jnp.asarray(x_heldout), strategy="vmap")
    dv = np.asarray(pf) - np.asarray(pl)
  return RetrainedLoo(idx, dw, dv, _time.perf_counter() - t0)


@dataclasses.dataclass(frozen=True)
class LooCorrelation(_results.ResultMixin):
  """Pearson r between linearized and retrained leave-one-out changes (paper, Table 1).

  Attributes:
    weights: r of ``||w - w_-i||^2`` across the retrained examples.
    predictions: r of the held-out prediction change ``mean_j ||f(x_j) - f_-i(x_j)||^2``.
    weights_elementwise: r of all coordinates of ``w - w_-i`` (all examples pooled).
    num_retrained: number of leave-one-out networks.
  """
  weights: float
  predictions: float
  weights_elementwise: float
  num_retrained: int


def loo_correlation(info: SampleInformation, retrained: RetrainedLoo, apply_fn: Callable,
                    params: Any, x_train: Any) -> LooCorrelation:
  """Compares :func:`~gbounds.info.sample_information` with :func:`retrain_leave_one_out`.

  Args:
    info: the linearized leave-one-out result (its ``indices`` must cover the retrained ones).
    retrained: the retrained networks' changes.
    apply_fn, params: the network and the weights it was linearized at.
    x_train: the training inputs of ``info``.

  Returns:
    :class:`LooCorrelation` (Pearson r of the squared weight changes, of the held-out prediction
    changes, and of all weight-change coordinates).
  """
  pos = {int(i): j for j, i in enumerate(info.indices)}
  missing = [int(i) for i in retrained.indices if int(i) not in pos]
  if missing:
    _errors.fail("retrained.indices", "examples covered by info.indices", missing[:5])
  if info.loo_coefficients is None:
    _errors.fail("info", "a SampleInformation with its loo_coefficients (not a summary)",
                 "loo_coefficients=None")
  rows = np.array([pos[int(i)] for i in retrained.indices])
  c = info.loo_coefficients[rows]
  dw_lin = np.asarray(jax.vmap(lambda p: ravel_pytree(p)[0])(
      loo_weight_change(apply_fn, params, x_train, jnp.asarray(c))))
  r_w = pearson(np.sum(dw_lin ** 2, 1), np.sum(retrained.weight_change ** 2, 1))
  r_el = pearson(dw_lin, retrained.weight_change)
  r_p = float("nan")
  if retrained.heldout_prediction_change is not None and info.heldout_prediction_change is not None:
    lin = np.mean(np.sum(info.heldout_prediction_change[rows] ** 2, -1), -1)
    real = np.mean(np.sum(retrained.heldout_prediction_change ** 2, -1), -1)
    r_p = pearson(lin, real)
  return LooCorrelation(r_w, r_p, r_el, int(len(retrained.indices)))


# ----------------------------------------------------------------------------- data


def mnist_4_vs_9(n_train: int, n_heldout: int, *, seed: int = 0, data_dir=None):
  """Disjoint random draws from the MNIST 4-vs-9 test split.

  Args:
    n_train: training examples.
    n_heldout: held-out examples (disjoint from the training ones).
    seed: seed of the permutation.
    data_dir: the data directory (default ``$GBOUNDS_DATA_DIR``).

  Returns:
    ``(x, y, x_heldout, y_heldout)``, labels 0 (digit 4) / 1 (digit 9).
  """
  x, y = binary_task(*load_mnist("test", data_dir=data_dir), 4, 9)
  if n_train + n_heldout > len(y):
    _errors.fail("n_train + n_heldout", f"at most {len(y)} (MNIST 4-vs-9 test split)",
                 n_train + n_heldout)
  perm = np.random.default_rng(seed).permutation(len(y))
  tr, ho = perm[:n_train], perm[n_train:n_train + n_heldout]
  return x[tr], y[tr], x[ho], y[ho]


def mlp_at_init(width: int, seed: int, x: Any) -> tuple[Callable, Any]:
  """The one-hidden-layer ReLU MLP of these experiments (``width`` units, one output) at init.

  Args:
    width: hidden units.
    seed: initialisation seed (``jax.random.key(seed)``).
    x: example inputs (the first row fixes the input shape).

  Returns:
    ``(apply_fn, params)`` with ``apply_fn(params, x)`` the network's ``(n, 1)`` output.
  """
  model = MLP(hidden=(int(width),), out=1)
  params = model.init(jax.random.key(seed), jnp.asarray(x[:1]))["params"]
  return (lambda p, xx: model.apply({"params": p}, xx)), params


def stable_learning_rate(apply_fn: Callable, params: Any, x: Any, fraction: float,
                         weight_decay: float) -> float:
  """A gradient-descent step size well inside stability for the SUM loss.

  Args:
    apply_fn, params: the network and its weights.
    x: the training inputs.
    fraction: the step as a fraction of ``1 / lambda_max``.
    weight_decay: ``lambda``.

  Returns:
    ``fraction / (lambda_max(Theta) + lambda)`` with ``Theta`` the empirical NTK on ``x``
    (top eigenvalue in float64 on the host).
  """
  theta = empirical_ntk_fn(apply_fn, chunk_size=128)(jnp.asarray(x), None, params)
  top = float(np.linalg.eigvalsh(np.asarray(theta, np.float64))[-1])
  return fraction / (top + weight_decay)


def _linearized_info(apply_fn, params, x, y, **kw) -> SampleInformation:
  """:func:`sample_information` in the precision of ``params`` (float32 here).

  The kernels are float32 (as in the public code); the leave-one-out algebra runs in float64
  on the host regardless (no global or local ``jax_enable_x64`` switch is touched).
  """
  extra = {}
  if kw.get("x_heldout") is not None:
    extra["x_heldout"] = np.asarray(kw.pop("x_heldout"), np.float32)
  return sample_information(apply_fn, params, np.asarray(x, np.float32),
                            np.asarray(y, np.float32), **kw, **extra)


# ----------------------------------------------------------------------------- mislabeled


@dataclasses.dataclass(frozen=True)
class MislabeledDetection(_results.ResultMixin):
  """F-SI ranking of injected label noise.

  Attributes:
    auroc: AUROC of F-SI for "is mislabeled".
    precision_at_noise_rate: precision among the ``round(rate n)`` highest F-SI.
    fsi: ``(n,)`` F-SI per training example (nats).
    flipped: ``(n,)`` which labels were flipped.
    settings: the run's parameters.
  """
  auroc: float
  precision_at_noise_rate: float
  fsi: np.ndarray
  flipped: np.ndarray
  settings: dict


def mislabeled_detection(*, n_train: int = 1000, n_heldout: int = 500, noise_rate: float = 0.1,
                         width: int = 256, steps: int = 1000, lr_fraction: float = 0.5,
                         weight_decay: float = 0.0, seed: int = 0,
                         data_dir=None) -> MislabeledDetection:
  """Injects label noise into MNIST 4-vs-9 and ranks training examples by F-SI.

  One-hidden-layer ReLU MLP (``width`` units, one output, targets 0/1), linearized at
  initialisation, ``steps`` full-batch GD steps of size ``lr_fraction / lambda_max(Theta)``
  (SUM loss), F-SI with ``sigma = 1`` on ``n_heldout`` clean held-out examples.

  Args:
    n_train, n_heldout: training and held-out examples (:func:`mnist_4_vs_9`).
    noise_rate: fraction of training labels flipped (:func:`gbounds.data.inject_label_noise`).
    width: hidden units.
    steps: GD steps.
    lr_fraction: step size as a fraction of ``1 / lambda_max(Theta)``.
    weight_decay: ``lambda`` of the SUM-loss recipe.
    seed: seed of data, noise and initialisation.
    data_dir: the data directory.

  Returns:
    :class:`MislabeledDetection`: AUROC and precision of F-SI for "is mislabeled".
  """
  x, y, xh, _ = mnist_4_vs_9(n_train, n_heldout, seed=seed, data_dir=data_dir)
  noisy = inject_label_noise(y, rate=noise_rate, num_classes=2, seed=seed)
  apply_fn, params = mlp_at_init(width, seed, x)
  eta = stable_learning_rate(apply_fn, params, x, lr_fraction, weight_decay)
  info = _linearized_info(apply_fn, params, x, noisy.labels, learning_rate=eta, t=steps,
                          weight_decay=weight_decay, x_heldout=xh)
  fsi = info.fsi
  assert fsi is not None  # x_heldout was given, so F-SI was computed
  count = int(round(noise_rate * n_train))
  return MislabeledDetection(
      auroc(fsi, noisy.flipped), precision_at(fsi, noisy.flipped, count), fsi,
      noisy.flipped, dict(n_train=n_train, n_heldout=n_heldout, noise_rate=noise_rate,
                          width=width, steps=steps, learning_rate=eta, weight_decay=weight_decay,
                          seed=seed))


# ----------------------------------------------------------------------------- summarisation


@dataclasses.dataclass(frozen=True)
class Summarisation(_results.ResultMixin):
  """Test error after removing a fraction of the training set by informativeness.

  Attributes:
    fractions: ``(f,)`` removed fractions.
    test_error: mapping ``strategy -> (f,)`` errors; strategies ``most``, ``least``,
      ``random``, ``most_iterative``, ``least_iterative`` (the last two remove 5% at a time,
      recomputing F-SI on what remains).
    settings: the run's parameters.
  """
  fractions: np.ndarray
  test_error: dict[str, np.ndarray]
  settings: dict


def data_summarisation(*, n_train: int = 500, n_heldout: int = 500,
                       fractions: Sequence[float] = (0.0, 0.1, 0.2, 0.4, 0.6, 0.8),
                       width: int = 256, steps: int = 500, lr_fraction: float = 0.5,
                       iterative: bool = True, iterative_step: float = 0.05, seed: int = 0,
                       data_dir=None, progress: bool = True,
                       callback: _progress.ProgressCallback | None = None) -> Summarisation:
  """Removes the most / least informative (F-SI) or random examples, retrains, tests.

  The network (one-hidden-layer ReLU MLP, outputs 0/1 thresholded at 1/2) is retrained by
  full-batch GD on the remaining examples (SUM loss, same step ``eta`` for all subsets); test
  error on ``n_heldout`` held-out examples (which also serve as the F-SI set).

  Args:
    n_train, n_heldout: training and held-out examples (:func:`mnist_4_vs_9`).
    fractions: fractions of the training set removed.
    width: hidden units.
    steps: GD steps.
    lr_fraction: step size as a fraction of ``1 / lambda_max(Theta)``.
    iterative: also remove ``iterative_step`` at a time, recomputing F-SI in between.
    iterative_step: the fraction removed per iterative round.
    seed: seed of data and initialisation (``seed + 1``: the random removal order).
    data_dir: the data directory.
    progress: show a tqdm bar when no ``callback`` is given.
    callback: ``callback(done, total)`` in retrained networks.

  Returns:
    :class:`Summarisation`: test error per strategy and removed fraction.
  """
  x, y, xh, yh = mnist_4_vs_9(n_train, n_heldout, seed=seed, data_dir=data_dir)
  apply_fn, params = mlp_at_init(width, seed, x)
  eta = stable_learning_rate(apply_fn, params, x, lr_fraction, 0.0)

  def fsi_of(keep) -> np.ndarray:
    fsi = _linearized_info(apply_fn, params, x[keep], y[keep], learning_rate=eta, t=steps,
                           x_heldout=xh).fsi
    assert fsi is not None  # x_heldout was given, so F-SI was computed
    return fsi

  fsi = fsi_of(np.arange(n_train))
  order_most = np.argsort(-fsi, kind="mergesort")
  rng = np.random.default_rng(seed + 1)
  rand = rng.permutation(n_train)
  fr = np.asarray(fractions, float)
  subsets: dict[str, list[np.ndarray]] = {"most": [], "least": [], "random": []}
  for f in fr:
    r = int(round(f * n_train))
    subsets["most"].append(np.sort(order_most[r:]))
    subsets["least"].append(np.sort(order_most[::-1][r:]))
    subsets["random"].append(np.sort(rand[r:]))
  if iterative:
    for name, sign in (("most_iterative", -1.0), ("least_iterative", 1.0)):
      keep = np.arange(n_train)
      sets = []
      for f in fr:
        target = n_train - int(round(f * n_train))
        while len(keep) > target:
          r = min(len(keep) - target, max(1, int(round(iterative_step * n_train))))
          scores = fsi_of(keep)
          drop = np.argsort(sign * scores, kind="mergesort")[:r]
          keep = np.delete(keep, drop)
        sets.append(keep.copy())
      subsets[name] = sets
  shifted = _shifted(apply_fn, params)
  errors = {}
  items = [(name, j) for name in subsets for j in range(len(fr))]
  bar = None
  if callback is None and progress:
    bar = callback = _progress.TqdmCallback("retraining on summaries")
  zeros = jax.tree_util.tree_map(lambda a: jnp.zeros((1, *a.shape), a.dtype), params)
  for name in subsets:
    errs = []
    for j in range(len(fr)):
      keep = subsets[name][j]
      res = train_many(shifted, zeros, x, y.astype(np.float32)[:, None], keep[None],
                       _sum_recipe(len(keep), eta, steps, 0.0), strategy="vmap")
      pred = np.asarray(predict_many(shifted, res.params, jnp.asarray(xh), strategy="vmap"))[0, :, 0]
      errs.append(float(np.mean((pred > 0.5) != (yh == 1))))
      _progress.notify(callback, len(errors) * len(fr) + j + 1, len(items))
    errors[name] = np.asarray(errs)
  if bar is not None:
    bar.close()
  return Summarisation(fr, errors, dict(n_train=n_train, n_heldout=n_heldout, width=width,
                                        steps=steps, learning_rate=eta, seed=seed,
                                        iterative_step=iterative_step))


# ----------------------------------------------------------------------------- reproduction


@dataclasses.dataclass(frozen=True)
class SampleInfoReproduction(_results.ResultMixin):
  """Our numbers next to the published ones (Harutyunyan et al., ICLR 2021).

  Attributes:
    ours: ``{"weights_lambda0": r, "predictions_lambda0": r, ..., "mislabeled_auroc": a,
      "mislabeled_precision": p}``.
    published: Table 1 (MLP column); the paper gives the mislabeled experiment as a figure only.
    settings: n, width, steps, step size, number of retrained networks, seconds.
  """
  ours: dict[str, float]
  published: dict[str, float]
  settings: dict

  def save_json(self, path) -> None:
    """Writes :meth:`to_dict` as JSON, atomically.

    Args:
      path: the ``.json`` file.

    Returns:
      None.
    """
    _io.atomic_write_json(path, self.to_dict())

  def table(self) -> _results.Table:
    """Ours beside the published value per quantity.

    Returns:
      :class:`gbounds.Table` with columns ``quantity, ours, published`` (NaN: not published).
    """
    return _results.Table(("quantity", "ours", "published"),
                          tuple((k, v, self.published.get(k, float("nan")))
                                for k, v in self.ours.items()),
                          "Linearized vs retrained leave-one-out (Harutyunyan et al., ICLR 2021)")


def reproduce_sample_info(*, n_train: int = 100, n_heldout: int = 200, width: int = 128,
                          steps: int = 500, lr_fraction: float = 0.5, num_retrained: int = 100,
                          weight_decays: Sequence[float] = (0.0,), mislabeled_n: int = 300,
                          seed: int = 0, data_dir=None, progress: bool = True,
                          log: Callable[[str], None] | None = None) -> SampleInfoReproduction:
  """Table 1 (MLP) of Harutyunyan et al. (ICLR 2021) at CPU scale, plus mislabeled detection.

  MNIST 4-vs-9 (test split), a one-hidden-layer ReLU MLP with ``width`` units and one output
  (targets 0/1), full-batch GD for ``steps`` steps of size ``lr_fraction / lambda_max(Theta)``
  on the SUM loss. ``num_retrained`` examples are left out and the network actually retrained
  for each; Pearson r between the linearized and retrained ``||w - w_-i||^2`` ("weights") and
  held-out ``mean ||f - f_-i||^2`` ("predictions"). Paper: n = 1000, width 1024, 2000 epochs,
  1000 retrained networks: r = 0.987 (weights) and 0.993 (predictions) at lambda = 0.

  The linearized side is :func:`sample_information` with the default method (exact
  leave-one-out: Lanczos with full reorthogonalisation, each row verified, float64 algebra on
  float32 kernels). Before issue #11 it went through plain batched Lanczos, whose F-SI was off
  by up to 729x on some examples; the figures measured then (defaults, 495 s on 2 shared CPU
  cores: r = 0.937 weights, 0.954 predictions, mislabeled AUROC 0.914 at n = 300) predate the
  fix. With the exact method the defaults give r = 0.937 (weights), 0.972 (predictions) and
  mislabeled AUROC 0.953 (precision at the noise rate 0.63), in 40 s (linearized leave-one-out
  for all n: 1.4 s) on 2 CPU cores with ``OPENBLAS_NUM_THREADS=1``.

  Args:
    n_train, n_heldout: training and held-out examples (:func:`mnist_4_vs_9`).
    width: hidden units.
    steps: GD steps.
    lr_fraction: step size as a fraction of ``1 / lambda_max(Theta + lambda I)``.
    num_retrained: examples left out and retrained for.
    weight_decays: the ``lambda`` values (one correlation each).
    mislabeled_n: training examples of the mislabeled-detection run (0: skip it).
    seed: seed of data, initialisation and the left-out examples.
    data_dir: the data directory.
    progress: show tqdm bars while retraining.
    log: receives one status line per finished part.

  Returns:
    :class:`SampleInfoReproduction`.
  """
  say = log or (lambda s: None)
  t_start = _time.perf_counter()
  x, y, xh, _ = mnist_4_vs_9(n_train, n_heldout, seed=seed, data_dir=data_dir)
  apply_fn, params = mlp_at_init(width, seed, x)
  ours: dict[str, float] = {}
  settings: dict[str, Any] = dict(n_train=n_train, n_heldout=n_heldout, width=width, steps=steps,
                                  num_retrained=num_retrained, seed=seed,
                                  lr_fraction=lr_fraction)
  left_out = np.random.default_rng(seed + 7).choice(n_train, size=min(num_retrained, n_train),
                                                    replace=False)
  for lam in weight_decays:
    eta = stable_learning_rate(apply_fn, params, x, lr_fraction, lam)
    t0 = _time.perf_counter()
    info = _linearized_info(apply_fn, params, x, y, learning_rate=eta, t=steps,
                            weight_decay=lam, x_heldout=xh)
    t_lin = _time.perf_counter() - t0
    retrained = retrain_leave_one_out(apply_fn, params, x, y.astype(np.float32), left_out,
                                      learning_rate=eta, steps=steps, weight_decay=lam,
                                      x_heldout=xh, progress=progress)
    corr = loo_correlation(info, retrained, apply_fn, params, x)
    tag = "lambda0" if lam == 0 else f"lambda{lam:g}"
    ours[f"weights_{tag}"] = corr.weights
    ours[f"predictions_{tag}"] = corr.predictions
    ours[f"weights_elementwise_{tag}"] = corr.weights_elementwise
    settings[f"learning_rate_sum_{tag}"] = eta
    settings[f"learning_rate_mean_equivalent_{tag}"] = eta * n_train
    settings[f"seconds_linearized_all_n_{tag}"] = t_lin
    settings[f"seconds_retraining_{tag}"] = retrained.seconds
    say(f"lambda={lam:g}: r(weights)={corr.weights:.4f} r(predictions)={corr.predictions:.4f} "
        f"linearized all n: {t_lin:.1f}s, retraining {len(left_out) + 1} nets: "
        f"{retrained.seconds:.1f}s")
  if mislabeled_n:
    mis = mislabeled_detection(n_train=mislabeled_n, n_heldout=n_heldout, width=width,
                               steps=steps, lr_fraction=lr_fraction, seed=seed,
                               data_dir=data_dir)
    ours["mislabeled_auroc"] = mis.auroc
    ours["mislabeled_precision_at_noise_rate"] = mis.precision_at_noise_rate
    settings["mislabeled_n"] = mislabeled_n
    say(f"mislabeled detection (n={mislabeled_n}, 10% noise): AUROC={mis.auroc:.4f} "
        f"precision@10%={mis.precision_at_noise_rate:.4f}")
  settings["seconds_total"] = _time.perf_counter() - t_start
  return SampleInfoReproduction(ours, dict(PUBLISHED_TABLE1_MLP), settings)


# ----------------------------------------------------------------------------- paper configuration

# Input normalisation of the public code of Harutyunyan et al. (awslabs/aws-cv-unique-information,
# nnlib MNIST: ToTensor then Normalize(0.456, 0.224)).
PAPER_MNIST_MEAN = 0.456
PAPER_MNIST_STD = 0.224


@dataclasses.dataclass(frozen=True)
class PearsonInterval(_results.ResultMixin):
  """Pearson r with two confidence intervals.

  Attributes:
    r: the sample Pearson r.
    count: number of pairs.
    level: the confidence level.
    fisher_low, fisher_high: ``tanh(atanh(r) -+ z_{(1+level)/2} / sqrt(count - 3))`` (NaN for
      ``count <= 3``).
    bootstrap_low, bootstrap_high: percentile bootstrap over the pairs (NaN without draws).
    num_bootstrap: bootstrap resamples.
  """
  r: float
  count: int
  level: float
  fisher_low: float
  fisher_high: float
  bootstrap_low: float
  bootstrap_high: float
  num_bootstrap: int


def pearson_ci(a: Any, b: Any, *, level: float = 0.95, num_bootstrap: int = 2000,
               seed: int = 0) -> PearsonInterval:
  """Pearson r of paired values with a Fisher z-transform and a percentile bootstrap interval.

  Fisher: ``z = atanh(r)`` is about normal with standard error ``1 / sqrt(s - 3)`` (Fisher,
  1915), so ``tanh(z -+ q / sqrt(s - 3))`` with ``q`` the ``(1 + level) / 2`` normal quantile.
  Bootstrap: ``num_bootstrap`` resamples of the ``s`` pairs with replacement (indices
  ``np.random.default_rng(seed).integers(0, s, (num_bootstrap, s))``), the ``(1 - level) / 2``
  and ``(1 + level) / 2`` quantiles of the resampled r (constant resamples dropped).

  Args:
    a, b: ``(s,)`` paired values, ``s >= 2``.
    level: confidence level in (0, 1).
    num_bootstrap: bootstrap resamples (0: no bootstrap interval).
    seed: seed of the resamples.

  Returns:
    :class:`PearsonInterval`.
  """
  a = np.asarray(a, np.float64).ravel()
  b = np.asarray(b, np.float64).ravel()
  if a.shape != b.shape or a.size < 2:
    _errors.fail("a, b", "paired arrays of equal size >= 2", f"sizes {a.size} and {b.size}")
  _errors.check_open_unit_interval("level", level)
  if int(num_bootstrap) < 0:
    _errors.fail("num_bootstrap", "a count >= 0", num_bootstrap)
  s = a.size
  r = pearson(a, b)
  q = float(scipy.stats.norm.ppf(0.5 + level / 2))
  lo = hi = float("nan")
  if s > 3 and np.isfinite(r):
    z, se = float(np.arctanh(np.clip(r, -1 + 1e-16, 1 - 1e-16))), 1.0 / np.sqrt(s - 3)
    lo, hi = float(np.tanh(z - q * se)), float(np.tanh(z + q * se))
  blo = bhi = float("nan")
  if num_bootstrap:
    idx = np.random.default_rng(seed).integers(0, s, (int(num_bootstrap), s))
    aa, bb = a[idx], b[idx]
    aa = aa - aa.mean(1, keepdims=True)
    bb = bb - bb.mean(1, keepdims=True)
    den = np.sqrt(np.sum(aa * aa, 1) * np.sum(bb * bb, 1))
    ok = den > 0
    rs = np.clip(np.sum(aa * bb, 1)[ok] / den[ok], -1.0, 1.0)
    if rs.size:
      blo, bhi = (float(v) for v in np.quantile(rs, [0.5 - level / 2, 0.5 + level / 2]))
  return PearsonInterval(float(r), int(s), float(level), lo, hi, blo, bhi, int(num_bootstrap))


def torch_default_init(params: Any, seed: int) -> Any:
  """Redraws every ``Dense`` layer as PyTorch's ``nn.Linear`` default initialises it.

  ``kernel`` and ``bias`` uniform in ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]`` with ``fan_in`` the
  kernel's first dimension (``kaiming_uniform(a=sqrt(5))`` and the bias rule of ``nn.Linear``),
  the initialisation of the MLP in the public code of Harutyunyan et al. (ICLR 2021).

  Args:
    params: a Linen parameter dict of layers, each with ``kernel`` ``(fan_in, fan_out)`` and
      ``bias`` (e.g. :func:`mlp_at_init`'s).
    seed: seed of the draws (``jax.random.key(seed)``, split per layer in sorted name order).

  Returns:
    A parameter dict of the same structure and dtypes.
  """
  names = sorted(params)
  if not names or any(set(params[k]) != {"kernel", "bias"} for k in names):
    _errors.fail("params", "a dict of Dense layers with 'kernel' and 'bias'", list(params))
  keys = jax.random.split(jax.random.key(seed), 2 * len(names))
  out = {}
  for j, name in enumerate(names):
    kernel, bias = params[name]["kernel"], params[name]["bias"]
    bound = 1.0 / np.sqrt(kernel.shape[0])
    out[name] = {
        "kernel": jax.random.uniform(keys[2 * j], kernel.shape, kernel.dtype, -bound, bound),
        "bias": jax.random.uniform(keys[2 * j + 1], bias.shape, bias.dtype, -bound, bound)}
  return out


def _mlp_layers(params: Any) -> tuple[Any, Any, Any, Any]:
  ok = isinstance(params, Mapping) and set(params) == {"dense0", "head"}
  if not ok or set(params["dense0"]) != {"kernel", "bias"} or params["head"]["kernel"].shape[1] != 1:
    _errors.fail("params", "the parameters of a one-hidden-layer MLP with one output "
                 "(layers 'dense0' and 'head', as mlp_at_init)", None)
  return (params["dense0"]["kernel"], params["dense0"]["bias"], params["head"]["kernel"],
          params["head"]["bias"])


def _input_basis(x_flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """``(Z, V)`` with ``x = Z V^T`` exactly up to round-off: ``V`` the right singular vectors of
  nonzero singular value (numpy's rank tolerance), ``Z = x V`` (float64)."""
  _, s, vt = np.linalg.svd(x_flat, full_matrices=False)
  tol = s.max() * max(x_flat.shape) * np.finfo(np.float64).eps
  v = vt[s > tol].T
  return x_flat @ v, v


def _mlp_gd(z, h0, w2_0, b2_0, y, slot_mask, masks, a_slot, a_loo, c, steps: int, matmul_dtype):
  """``steps`` GD steps of a reference network (``slot_mask``, step ``a_slot``) and of ``B``
  masked networks (``masks``, step ``a_loo``) in the input basis ``Z``.

  Update ``-(a grad_data_sum + c (w - w0))``; first-layer state ``D`` (``W1 = W1_0 + V D``).
  The masked networks carry ``E_b = D_b - D_slot``, so the two large products of each are taken
  of the DIFFERENCE (``Z D_b = Z D_slot + Z E_b``, ``Z^T G_b = Z^T G_slot + Z^T (G_b - G_slot)``)
  and their ``matmul_dtype`` rounding is relative to that difference; the reference's rounding
  is common to all. Everything else runs in the dtype of ``h0``.
  """
  md, dt = matmul_dtype, h0.dtype
  zm = z.astype(md)

  def prod(a, b, spec):
    return jnp.einsum(spec, a.astype(md), b.astype(md), preferred_element_type=md).astype(dt)

  def body(_, s):
    (d, db1, dw2, db2), (e, lb1, lw2, lb2) = s
    h = h0 + prod(zm, d, "nr,rw->nw") + db1[None]
    act = jax.nn.relu(h)
    w2 = w2_0 + dw2
    res = slot_mask[:, None] * (act @ w2 + (b2_0 + db2)[None] - y)    # (n, 1)
    g = (res @ w2.T) * (h > 0).astype(dt)                             # (n, w)
    gd = prod(zm, g, "nr,nw->rw")
    hb = h[None] + prod(zm, e, "nr,brw->bnw") + (lb1 - db1[None])[:, None, :]  # (B, n, w)
    actb = jax.nn.relu(hb)
    w2b = w2_0[None] + lw2                                            # (B, w, 1)
    resb = masks[..., None] * (actb @ w2b + (b2_0[None] + lb2)[:, None, :] - y[None])
    gb = (resb @ jnp.swapaxes(w2b, 1, 2)) * (hb > 0).astype(dt)
    gdiff = prod(zm, gb - g[None], "nr,bnw->brw")                     # Z^T (G_b - G_full)
    full = (d - a_slot * gd - c * d, db1 - a_slot * g.sum(0) - c * db1,
            dw2 - a_slot * (act.T @ res) - c * dw2, db2 - a_slot * res.sum(0) - c * db2)
    loo = (e - a_loo * gdiff - (a_loo - a_slot) * gd[None] - c * e,
           lb1 - a_loo * gb.sum(1) - c * lb1,
           lw2 - a_loo * jnp.einsum("bnw,bnk->bwk", actb, resb) - c * lw2,
           lb2 - a_loo * resb.sum(1) - c * lb2)
    return full, loo

  nb, r, w = masks.shape[0], z.shape[1], h0.shape[1]
  s0 = ((jnp.zeros((r, w), dt), jnp.zeros(w, dt), jnp.zeros(w2_0.shape, dt),
         jnp.zeros(b2_0.shape, dt)),
        (jnp.zeros((nb, r, w), dt), jnp.zeros((nb, w), dt), jnp.zeros((nb, *w2_0.shape), dt),
         jnp.zeros((nb, *b2_0.shape), dt)))
  return jax.lax.fori_loop(0, steps, body, s0)


_mlp_gd_jit = jax.jit(_mlp_gd, static_argnames=("steps", "matmul_dtype"))


@dataclasses.dataclass(frozen=True)
class _MlpTrainer:
  """The fixed pieces of :func:`retrain_mlp_leave_one_out`."""
  params0: Any
  z: Any
  v: np.ndarray
  h0: Any
  y: Any
  eta: float
  lam: float
  steps: int
  convention: LooConvention
  matmul_dtype: Any
  x_heldout: np.ndarray | None
  cache: dict = dataclasses.field(default_factory=dict)

  def _params(self, d, db1, dw2, db2) -> dict:
    w1, b1, w2, b2 = (np.asarray(a, np.float64) for a in _mlp_layers(self.params0))
    return {"dense0": {"kernel": w1 + self.v @ np.asarray(d, np.float64),
                       "bias": b1 + np.asarray(db1, np.float64)},
            "head": {"kernel": w2 + np.asarray(dw2, np.float64),
                     "bias": b2 + np.asarray(db2, np.float64)}}

  def _heldout(self, p) -> np.ndarray | None:
    if self.x_heldout is None:
      return None
    hh = np.maximum(self.x_heldout @ p["dense0"]["kernel"] + p["dense0"]["bias"], 0)
    return hh @ p["head"]["kernel"] + p["head"]["bias"]

  def _run(self, slot: int | None, left_out: Sequence[int]):
    """Trains the reference network (all examples, or all but ``slot``) and, as differences
    from it, the networks without each of ``left_out``; parameters of all (float64)."""
    n = self.y.shape[0]
    a_loo = self.eta * n / (n - 1) if self.convention == LooConvention.MEAN else self.eta
    slot_mask = np.ones(n, self.h0.dtype)
    if slot is not None:
      slot_mask[slot] = 0
    masks = np.ones((len(left_out), n), self.h0.dtype)
    masks[np.arange(len(left_out)), np.asarray(left_out, int)] = 0
    _, _, w2, b2 = _mlp_layers(self.params0)
    ref, loo = _mlp_gd_jit(self.z, self.h0, w2, b2, self.y, jnp.asarray(slot_mask),
                           jnp.asarray(masks), self.eta if slot is None else a_loo, a_loo,
                           self.eta * self.lam, steps=self.steps, matmul_dtype=self.matmul_dtype)
    ref = tuple(np.asarray(a, np.float64) for a in ref)
    loo = tuple(np.asarray(a, np.float64) for a in loo)
    return ref, [(ref[0] + loo[0][b], loo[1][b], loo[2][b], loo[3][b])
                 for b in range(len(left_out))], loo[0]

  def full(self) -> tuple[dict, np.ndarray | None]:
    """The network trained on all examples (float64 parameters) and its held-out outputs
    (computed once per trainer)."""
    if "full" not in self.cache:
      ref, _, _ = self._run(None, [])
      p = self._params(*ref)
      self.cache["full"] = (p, self._heldout(p))
    return self.cache["full"]

  def train(self, left_out: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """``(w_S - w_{S-i}, f_S(x_h) - f_{S-i}(x_h))`` (flat float64) per ``i`` in ``left_out``.

    With products less precise than the state, the full network is the reference of the
    chunk and the first-layer change comes straight from the carried difference; otherwise
    the first left-out network is the reference (no network trained twice) and the changes
    are differences of float64 parameters.
    """
    lo = [int(i) for i in left_out]
    if jnp.dtype(self.matmul_dtype).itemsize < jnp.dtype(self.h0.dtype).itemsize:
      ref, nets, e = self._run(None, lo)
      p_full = self._params(*ref)
      f_full = self._heldout(p_full)
      diffs = []
      for b, net in enumerate(nets):
        p_loo = self._params(*net)
        p_diff = jax.tree_util.tree_map(np.subtract, p_full, p_loo)
        p_diff["dense0"]["kernel"] = -(self.v @ e[b])  # no cancellation
        diffs.append((p_diff, self._heldout(p_loo)))
    else:
      p_full, f_full = self.full()
      ref, nets, _ = self._run(lo[0], lo[1:])
      diffs = []
      for net in (ref, *nets):
        p_loo = self._params(*net)
        diffs.append((jax.tree_util.tree_map(np.subtract, p_full, p_loo), self._heldout(p_loo)))
    return [(np.asarray(ravel_pytree(p)[0]), None if f_full is None or f is None else f_full - f)
            for p, f in diffs]


def _mlp_trainer(params0, x, y, *, learning_rate, steps, weight_decay, convention, matmul_dtype,
                 x_heldout) -> _MlpTrainer:
  _mlp_layers(params0)
  _errors.check_positive("learning_rate", learning_rate)
  _errors.check_positive("weight_decay", weight_decay, strict=False)
  if int(steps) < 1:
    _errors.fail("steps", "a positive number of GD steps", steps)
  conv = _errors.as_enum("convention", convention, LooConvention)
  xf = np.asarray(x, np.float64).reshape(len(x), -1)
  n = len(xf)
  yy = np.asarray(y, np.float64).reshape(n, 1)
  _errors.check_finite("y", yy)
  w1, b1, _, _ = _mlp_layers(params0)
  dt = jnp.asarray(w1).dtype
  z, v = _input_basis(xf)
  h0 = xf @ np.asarray(w1, np.float64) + np.asarray(b1, np.float64)
  xh = None if x_heldout is None else np.asarray(x_heldout, np.float64).reshape(
      len(x_heldout), -1)
  return _MlpTrainer(params0, jnp.asarray(z, dt), v, jnp.asarray(h0, dt), jnp.asarray(yy, dt),
                     float(learning_rate), float(weight_decay), int(steps), conv,
                     jnp.dtype(matmul_dtype), xh)


def retrain_mlp_leave_one_out(params0: Any, x: Any, y: Any, indices: Sequence[int] | np.ndarray,
                              *, learning_rate: float, steps: int, weight_decay: float = 0.0,
                              convention: LooConvention | str = LooConvention.SUM,
                              x_heldout: Any = None, matmul_dtype: Any = None,
                              chunk_size: int = 8, progress: bool = True,
                              callback: _progress.ProgressCallback | None = None) -> RetrainedLoo:
  """Exact full-batch GD retraining of a one-hidden-layer ReLU MLP without each of ``indices``.

  The same networks as :func:`retrain_leave_one_out` (SUM loss ``1/2 sum_j ||f(x_j) - y_j||^2
  + lambda/2 ||w - w0||^2``, step ``eta``), computed faster: the first layer's change
  ``W1 - W1_0`` stays in the row space of the training inputs (its gradient is ``X^T G`` and
  the decay is centred at ``W1_0``), so with ``X = Z V^T`` (``V``: right singular vectors of
  nonzero singular value, ``r <= min(n, p)`` columns) training runs on ``D`` with
  ``W1 = W1_0 + V D`` and ``X W1 = X W1_0 + Z D``; at ``r = 520`` of ``p = 784`` MNIST pixels
  (n = 1000) this is a third fewer flops. Networks are trained in chunks: one reference network
  and the others as their first-layer DIFFERENCE from it, so the large products of those are
  taken of the difference. The state stays in the dtype of ``params0`` (float64 under x64).
  Use float64 products: at the paper's setting (one example, 200 steps, SUM recipe;
  ``benchmarks/repro_sample_info.py --precision-check``) float32 products here put a 5.1%
  relative error on the vector ``w - w_-i`` (2.4% on the held-out prediction change), more
  than float32 training of the network itself (:func:`retrain_leave_one_out`: 1.7% and 0.6%).

  Args:
    params0: :func:`mlp_at_init`-style parameters (``dense0``, ``head`` with one output).
    x, y: training inputs ``(n, ...)`` and float targets ``(n,)`` or ``(n, 1)``.
    indices: the examples left out, one network each.
    learning_rate, weight_decay: ``eta`` and ``lambda`` of the SUM recipe on all ``n``.
    steps: GD steps.
    convention: :class:`gbounds.info.LooConvention`: ``SUM`` keeps ``eta``, ``lambda`` for the
      ``n - 1`` runs; ``MEAN`` keeps the mean-loss recipe (the public code): ``eta n/(n-1)``,
      ``lambda (n-1)/n`` (same ``eta lambda``).
    x_heldout: inputs on which to report prediction changes.
    matmul_dtype: dtype of the large products (None: that of ``params0``).
    chunk_size: leave-one-out networks trained per compiled call (float64 products: the first
      is the chunk's reference and the full network is trained once; lower-precision
      products: the full network is each chunk's reference).
    progress: show a tqdm bar when no ``callback`` is given.
    callback: ``callback(done, total)`` in retrained leave-one-out networks.

  Returns:
    :class:`RetrainedLoo` with flat ``w_S - w_{S-i}`` in :func:`ravel_pytree` order of
    ``params0`` (float64) and held-out prediction changes.
  """
  n = len(np.asarray(x))
  idx = np.asarray(indices)
  if idx.ndim != 1 or idx.size == 0 or idx.min() < 0 or idx.max() >= n:
    _errors.fail("indices", f"a non-empty list of example indices in [0, {n})", indices)
  md = jnp.asarray(_mlp_layers(params0)[0]).dtype if matmul_dtype is None else matmul_dtype
  tr = _mlp_trainer(params0, x, y, learning_rate=learning_rate, steps=steps,
                    weight_decay=weight_decay, convention=convention, matmul_dtype=md,
                    x_heldout=x_heldout)
  _errors.check_nonnegative_int("chunk_size", chunk_size, minimum=1)
  t0 = _time.perf_counter()
  bar = None
  if callback is None and progress:
    bar = callback = _progress.TqdmCallback("retraining leave-one-out networks")
  dws, dfs = [], []
  for j in range(0, len(idx), chunk_size):
    for dw, df in tr.train([int(i) for i in idx[j:j + chunk_size]]):
      dws.append(dw)
      if df is not None:
        dfs.append(df)
    _progress.notify(callback, min(j + chunk_size, len(idx)), len(idx))
  if bar is not None:
    bar.close()
  return RetrainedLoo(idx, np.stack(dws), np.stack(dfs) if dfs else None,
                      _time.perf_counter() - t0)


@dataclasses.dataclass(frozen=True)
class PaperLooCorrelation(_results.ResultMixin):
  """Linearized vs retrained leave-one-out change at the paper's configuration.

  Attributes:
    weights: Pearson r of ``||w - w_-i||^2`` over the retrained subset, with intervals.
    predictions: Pearson r of the held-out ``mean_j ||f(x_j) - f_-i(x_j)||^2``, with intervals.
    weights_elementwise: r of all coordinates of ``w - w_-i`` pooled over the subset.
    subset: ``(s,)`` the retrained examples (a prefix of one random permutation of all n:
      itself a uniform random subset whatever ``s``).
    linearized_weights, retrained_weights: ``(s,)`` the squared weight changes.
    linearized_predictions, retrained_predictions: ``(s,)`` the held-out prediction changes.
    num_requested: the subset size asked for (``s < num_requested`` when the time budget ended
      the run first; rerunning resumes).
    published: the paper's r (Table 1, MLP column) for this weight decay.
    settings: configuration, seeds, times and versions.
  """
  weights: PearsonInterval
  predictions: PearsonInterval
  weights_elementwise: float
  subset: np.ndarray
  linearized_weights: np.ndarray
  retrained_weights: np.ndarray
  linearized_predictions: np.ndarray
  retrained_predictions: np.ndarray
  num_requested: int
  published: dict[str, float]
  settings: dict

  def table(self) -> _results.Table:
    """Ours (with both 95% intervals) beside the published r.

    Returns:
      :class:`gbounds.Table` with columns ``quantity, ours, fisher_low, fisher_high,
      bootstrap_low, bootstrap_high, retrained, published``.
    """
    rows = tuple((name, ci.r, ci.fisher_low, ci.fisher_high, ci.bootstrap_low, ci.bootstrap_high,
                  ci.count, self.published[name])
                 for name, ci in (("weights", self.weights), ("predictions", self.predictions)))
    return _results.Table(("quantity", "ours", "fisher_low", "fisher_high", "bootstrap_low",
                           "bootstrap_high", "retrained", "published"), rows,
                          "Linearized vs retrained leave-one-out, Pearson r (Harutyunyan et al., "
                          "ICLR 2021, Table 1, MLP)")


def _paper_data(n_train, n_heldout, seed, data_dir):
  x, y, xh, _ = mnist_4_vs_9(n_train, n_heldout, seed=seed, data_dir=data_dir)
  norm = lambda a: (np.asarray(a, np.float64) - PAPER_MNIST_MEAN) / PAPER_MNIST_STD  # noqa: E731
  return norm(x), np.asarray(y, np.float64), norm(xh)


def _paper_linearized(path, apply_fn, params, x, y, xh, *, eta, lam, steps, say
                      ) -> dict[str, np.ndarray]:
  if path.exists():
    return _io.read_npz(path)
  t0 = _time.perf_counter()
  info = sample_information(apply_fn, params, x, y, learning_rate=eta, t=steps, weight_decay=lam,
                            x_heldout=xh, convention=LooConvention.MEAN, ntk_chunk_size=50)
  assert info.heldout_prediction_change is not None and info.loo_coefficients is not None
  out = dict(weight_change_sq=np.asarray(info.weight_change_sq, np.float64),
             prediction_change=np.mean(np.sum(np.asarray(info.heldout_prediction_change,
                                                         np.float64) ** 2, -1), -1),
             loo_coefficients=np.asarray(info.loo_coefficients, np.float64),
             seconds=np.asarray(_time.perf_counter() - t0, np.float64))
  _io.atomic_write_npz(path, **out)
  say(f"linearized leave-one-out for all {len(y)} examples: {float(out['seconds']):.1f} s")
  return out


def reproduce_sample_info_paper(out_dir, *, n_train: int = 1000, n_heldout: int = 500,
                                width: int = 1024, steps: int = 2000, learning_rate: float = 1e-3,
                                l2_coef: float = 0.0, num_retrained: int = 100,
                                chunk_size: int = 4, matmul_dtype: str = "float64",
                                seed: int = 0, subset_seed: int = 1,
                                time_budget_s: float | None = None, num_bootstrap: int = 2000,
                                data_dir=None,
                                log: Callable[[str], None] | None = None) -> PaperLooCorrelation:
  """Table 1 (MLP column) of Harutyunyan et al. (ICLR 2021) at the paper's configuration.

  The paper and its public code (awslabs/aws-cv-unique-information): MNIST 4-vs-9, ``n = 1000``,
  pixels normalised as ``(x - 0.456) / 0.224``, one hidden layer of 1024 ReLU units with
  PyTorch's default initialisation (:func:`torch_default_init`), one output on 0/1 targets,
  full-batch SGD (no momentum) for 2000 epochs at ``lr = 1e-3`` on the MEAN loss
  ``1/2 mean ||f - y||^2 + l2_coef/2 ||w - w0||^2`` (``l2_coef`` 0 or 1, Table 1's
  ``lambda = n l2_coef``); each leave-one-out network is retrained with the same recipe on the
  other ``n - 1`` (:class:`gbounds.info.LooConvention` ``MEAN``). (The public ground-truth
  script trains 2001 epochs against ``t = 2000`` for the linearization; both use 2000 here.)
  Pearson r across examples of ``||w - w_-i||^2`` and of the held-out
  ``mean_j ||f(x_j) - f_-i(x_j)||^2`` (the paper: 1000 validation examples; here ``n_heldout``
  from the MNIST test split, disjoint from the training set).

  The linearized side is :func:`gbounds.info.sample_information` for all ``n`` (float64
  kernels). The retrained side is :func:`retrain_mlp_leave_one_out` (exact float64 GD) on a
  subset: the first ``num_retrained`` of a random permutation of the ``n`` examples
  (``subset_seed``); intervals are over that subset (:func:`pearson_ci`: Fisher z and
  percentile bootstrap). Resumable: the linearized result, each finished chunk of retrained
  networks (one ``.npz`` per example) and the result are written atomically under
  ``out_dir``; a rerun with the same configuration skips what is done, and
  ``time_budget_s`` stops before a chunk that would not finish in time (the result then
  covers the finished prefix, itself a uniform random subset). Needs ``jax_enable_x64``.

  Args:
    out_dir: directory of the run's files (``config.json``, ``linearized.npz``, ``loo/``,
      ``result.json``, ``per_example.csv``).
    n_train, n_heldout: training and held-out examples (:func:`mnist_4_vs_9`, ``seed``).
    width: hidden units.
    steps: full-batch GD steps.
    learning_rate: MEAN-loss step (the SUM-loss ``eta = learning_rate / n``).
    l2_coef: MEAN-loss weight decay toward ``w0`` (the SUM-loss ``lambda = n l2_coef``).
    num_retrained: leave-one-out networks asked for.
    chunk_size: leave-one-out networks trained together (beside one full network).
    matmul_dtype: ``float64`` (default) or ``float32`` for the retraining's large products
      (float32 is off by a few percent, see :func:`retrain_mlp_leave_one_out`).
    seed: seed of the data draw and the initialisation.
    subset_seed: seed of the permutation whose prefix is retrained.
    time_budget_s: stop starting new chunks after this many seconds of this call (None: no
      limit).
    num_bootstrap: bootstrap resamples of the intervals.
    data_dir: the data directory.
    log: receives one status line per finished part.

  Returns:
    :class:`PaperLooCorrelation`.
  """
  say = log or (lambda s: None)
  t_start = _time.perf_counter()
  if not jax.config.read("jax_enable_x64"):
    _errors.fail("jax_enable_x64", "enabled (the paper run keeps float64 state)", False)
  _errors.check_positive("learning_rate", learning_rate)
  _errors.check_positive("l2_coef", l2_coef, strict=False)
  _errors.check_nonnegative_int("num_retrained", num_retrained, minimum=2)
  _errors.check_nonnegative_int("chunk_size", chunk_size, minimum=1)
  if num_retrained > n_train:
    _errors.fail("num_retrained", f"at most n_train = {n_train}", num_retrained)
  out = pathlib.Path(out_dir)
  config = dict(n_train=int(n_train), n_heldout=int(n_heldout), width=int(width),
                steps=int(steps), learning_rate=float(learning_rate), l2_coef=float(l2_coef),
                seed=int(seed), subset_seed=int(subset_seed), matmul_dtype=str(matmul_dtype),
                preprocessing=f"(x - {PAPER_MNIST_MEAN}) / {PAPER_MNIST_STD}",
                init="torch_default", convention="MEAN", loss="MSE on 0/1 targets")
  cfg_path = out / "config.json"
  if cfg_path.exists():
    old = _io.read_json(cfg_path)
    if old != config:
      _errors.fail("out_dir", f"a directory of a run with the same configuration ({cfg_path})",
                   {k: (old.get(k), v) for k, v in config.items() if old.get(k) != v})
  else:
    _io.atomic_write_json(cfg_path, config)
  x, y, xh = _paper_data(n_train, n_heldout, seed, data_dir)
  apply_fn, p32 = mlp_at_init(width, seed, x.astype(np.float32))
  params = torch_default_init(jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), p32),
                              seed)
  eta, lam = learning_rate / n_train, l2_coef * n_train
  lin = _paper_linearized(out / "linearized.npz", apply_fn, params, x, y, xh, eta=eta, lam=lam,
                          steps=steps, say=say)
  order = np.random.default_rng(subset_seed).permutation(n_train)[:num_retrained]
  loo_dir = out / "loo"
  done = lambda i: (loo_dir / f"{int(i):05d}.npz").exists()  # noqa: E731
  todo = [int(i) for i in order if not done(i)]
  if todo:
    tr = _mlp_trainer(params, x, y, learning_rate=eta, steps=steps, weight_decay=lam,
                      convention=LooConvention.MEAN, matmul_dtype=jnp.dtype(matmul_dtype),
                      x_heldout=xh)
    full_path = out / "full.npz"
    if full_path.exists():
      g = _io.read_npz(full_path)
      tr.cache["full"] = ({"dense0": {"kernel": g["kernel0"], "bias": g["bias0"]},
                           "head": {"kernel": g["kernel1"], "bias": g["bias1"]}}, g["heldout"])
    elif jnp.dtype(matmul_dtype) == jnp.float64:
      t0 = _time.perf_counter()
      pf, ff = tr.full()
      _io.atomic_write_npz(full_path, kernel0=pf["dense0"]["kernel"], bias0=pf["dense0"]["bias"],
                           kernel1=pf["head"]["kernel"], bias1=pf["head"]["bias"], heldout=ff,
                           seconds=np.float64(_time.perf_counter() - t0))
      say(f"full-data network: {_time.perf_counter() - t0:.0f} s")
    last = 0.0
    for j in range(0, len(todo), chunk_size):
      elapsed = _time.perf_counter() - t_start
      if time_budget_s is not None and elapsed + last > time_budget_s:
        say(f"time budget: stopping with {len(todo) - j} of {num_retrained} left")
        break
      chunk = todo[j:j + chunk_size]
      t0 = _time.perf_counter()
      res = tr.train(chunk)
      last = _time.perf_counter() - t0
      for i, (dw, df) in zip(chunk, res):
        assert df is not None  # x_heldout was given
        _io.atomic_write_npz(loo_dir / f"{i:05d}.npz", weight_change=dw.astype(np.float32),
                             weight_change_sq=np.float64(dw @ dw),
                             prediction_change=np.float64(np.mean(df ** 2)),
                             seconds=np.float64(last / len(chunk)))
      say(f"retrained {len(chunk)} leave-one-out networks in {last:.0f} s "
          f"({sum(done(i) for i in order)}/{num_retrained} done)")
  subset = np.asarray([int(i) for i in order if done(i)])
  if len(subset) < 2:
    _errors.fail("time_budget_s", "enough time to retrain at least two networks",
                 time_budget_s)
  files = [_io.read_npz(loo_dir / f"{i:05d}.npz") for i in subset]
  real_w = np.asarray([float(f["weight_change_sq"]) for f in files])
  real_p = np.asarray([float(f["prediction_change"]) for f in files])
  lin_w, lin_p = lin["weight_change_sq"][subset], lin["prediction_change"][subset]
  # pooled coordinates of w - w_-i: linearized rows J^T c_i, one VJP each
  sums = np.zeros(5)
  for i, f in zip(subset, files):
    row = loo_weight_change(apply_fn, params, jnp.asarray(x),
                            jnp.asarray(lin["loo_coefficients"][i:i + 1]))
    a = np.asarray(ravel_pytree(jax.tree_util.tree_map(lambda t: t[0], row))[0], np.float64)
    b = np.asarray(f["weight_change"], np.float64)
    sums += [a.sum(), b.sum(), a @ a, b @ b, a @ b]
  m = len(subset) * len(a)
  cov = sums[4] - sums[0] * sums[1] / m
  r_el = float(cov / np.sqrt((sums[2] - sums[0] ** 2 / m) * (sums[3] - sums[1] ** 2 / m)))
  tag = "lambda0" if l2_coef == 0 else ("lambda1e3" if l2_coef * n_train == 1000 else None)
  published = ({"weights": PUBLISHED_TABLE1_MLP[f"weights_{tag}"],
                "predictions": PUBLISHED_TABLE1_MLP[f"predictions_{tag}"]} if tag else
               {"weights": float("nan"), "predictions": float("nan")})
  secs = [float(f["seconds"]) for f in files]
  settings = dict(config, eta_sum=eta, lambda_sum=lam, num_retrained=len(subset),
                  seconds_linearized_all_n=float(lin["seconds"]),
                  seconds_per_retraining_mean=float(np.mean(secs)),
                  seconds_retraining_total=float(np.sum(secs)),
                  seconds_this_call=_time.perf_counter() - t_start,
                  interval_level=0.95, num_bootstrap=int(num_bootstrap), bootstrap_seed=0,
                  data_fingerprint=_provenance.array_fingerprint(x, y, xh),
                  versions=_provenance.versions(), cpu_count=os.cpu_count())
  result = PaperLooCorrelation(
      pearson_ci(lin_w, real_w, num_bootstrap=num_bootstrap),
      pearson_ci(lin_p, real_p, num_bootstrap=num_bootstrap), r_el, subset, lin_w, real_w,
      lin_p, real_p, int(num_retrained), published, settings)
  _io.atomic_write_json(out / "result.json", result.to_dict())
  lines = ["index,linearized_weight_change_sq,retrained_weight_change_sq,"
           "linearized_prediction_change,retrained_prediction_change,seconds"]
  lines += [f"{int(i)},{float(a)!r},{float(b)!r},{float(c)!r},{float(d)!r},{float(s)!r}"
            for i, a, b, c, d, s in zip(subset, lin_w, real_w, lin_p, real_p, secs)]
  _io.atomic_write_text(out / "per_example.csv", "\n".join(lines) + "\n")
  say(f"r(weights) = {result.weights.r:.4f} [{result.weights.fisher_low:.4f}, "
      f"{result.weights.fisher_high:.4f}], r(predictions) = {result.predictions.r:.4f} "
      f"[{result.predictions.fisher_low:.4f}, {result.predictions.fisher_high:.4f}] "
      f"over {len(subset)} retrained (published {published['weights']}, "
      f"{published['predictions']})")
  return result


__all__ = [
    "LooCorrelation", "MislabeledDetection", "PUBLISHED_TABLE1_MLP", "RetrainedLoo",
    "PAPER_MNIST_MEAN", "PAPER_MNIST_STD", "PaperLooCorrelation", "PearsonInterval",
    "SampleInfoReproduction", "Summarisation", "auroc", "data_summarisation", "loo_correlation",
    "mislabeled_detection", "mlp_at_init", "mnist_4_vs_9", "pearson", "pearson_ci",
    "precision_at", "reproduce_sample_info", "reproduce_sample_info_paper",
    "retrain_leave_one_out", "retrain_mlp_leave_one_out", "stable_learning_rate",
    "torch_default_init",
]
