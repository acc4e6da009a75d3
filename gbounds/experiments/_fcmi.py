"""f-CMI experiments: the MNIST 4-vs-9 protocol of Harutyunyan et al. (2021) and Wang & Mao's
synthetic study, on top of the supersample harness (:mod:`gbounds.supersample`) and the bound
functions (:func:`gbounds.bounds.cmi_bounds`).

Published protocol (Harutyunyan et al., NeurIPS 2021, arXiv 2110.01584, sec. 4 and the public
code hrayrhar/f-CMI: experiment ``fcmi-mnist-4vs9-CNN`` of its ``fcmi_scripts``, the defaults
of its ``fcmi_train_classifier`` and its ``binary-mnist-4layer-CNN`` config): MNIST 4 vs 9, a
4-stage CNN with BatchNorm, Adam (lr 1e-3, no weight decay, batch 128, a PyTorch loader that
keeps the last partial batch), 200 epochs, the final epoch's model, ``n`` in
{75, 250, 1000, 4000}, ``k1 x k2 = 5 x 30`` (5 supersample seeds, 30 mask seeds); the
sample-wise f-CMI bound ``(1/n) sum_i E_z~ sqrt(2 I^{z~}(F_i; U_i))`` (nats inside the root,
error units outside).

Protocols:

* :func:`paper_cnn_protocol`: the paper's network, optimiser, batch size and epochs (an epoch
  is ``ceil(n / 128)`` steps, as the paper's loader makes), ``n`` in {75, 250}, with the
  ``k1 x k2`` that fit about 35 minutes of 2 CPU cores;
* :func:`fashion_protocol`: the extension to ``n`` in {1000, 4000} on Fashion-MNIST sneaker vs
  ankle boot (the MNIST test split here is too small), same recipe;
* :func:`cpu_scale_protocol`: the MLP 512-512 stand-in (~10 minutes);
* :func:`full_scale_protocol`: the published configuration for a GPU.

Departures, all stated in the resolved configuration:

* the MNIST pool is the *test* split (1,991 fours and nines; the published pool is the 60k
  training split): the protocol holds out ``test_size`` of them as the separate test set and
  draws the supersamples from the rest, so ``n <= (1991 - test_size) / 2``;
* the CNN has no BatchNorm (:data:`gbounds.models.FCMI_STAGES`; see :class:`gbounds.models.CNN`);
* every step draws a full batch of ``min(batch_size, n)`` examples (with ``keep_last_batch`` the
  number of steps per epoch is the paper's ``ceil(n / batch_size)``; without it
  ``max(1, n // batch_size)``, the trainer's rule);
* at CPU scale fewer masks (``k2``) and supersamples (``k1``). The plug-in MI of ``k2`` masks is
  biased both ways: upward, by about ``(cells - 1) / (2 k2)`` nats, for pairs whose ``F_i`` does
  not depend on ``U_i``; downward for pairs whose ``F_i`` follows ``U_i`` (the plug-in entropy
  of ``U_i`` over few masks falls short of ``log 2``; with 2 masks it is 0 half the time). So
  a smaller ``k2`` can move the bound either way; :func:`bound_vs_masks` measures it by
  subsampling the masks (on MNIST 4 vs 9 at ``n = 75`` the bound grows with ``k2``).

Every row reports the mean over the ``k1`` supersamples and its standard error
``sd / sqrt(k1)`` (``sd`` with ``ddof = 1``) for the bound, the gap and the test error.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import pathlib
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from gbounds._src import errors as _errors
from gbounds._src import io as _io
from gbounds._src import progress as _progress
from gbounds._src import provenance as _provenance
from gbounds._src import results as _results
from gbounds.bounds import cmi_bounds
from gbounds.data import DATASETS, binary_task, load_dataset
from gbounds.models import CNN, FCMI_STAGES, MLP
from gbounds.supersample import (
  SupersampleResult,
  load_supersample_results,
  run_linearized_supersample,
  run_supersample,
)
from gbounds.train import MapStrategy, Optimizer, TrainConfig, steps_for_epochs
from gbounds.viz import plot_fcmi_table

# Harutyunyan et al. (2021), MNIST 4 vs 9, standard variant, k1 x k2 = 5 x 30 [code]:
# n -> (f-CMI bound, measured gap).
PUBLISHED_FCMI: dict[int, tuple[float, float]] = {
    75: (0.2427, 0.0892), 250: (0.1073, 0.0363), 1000: (0.0467, 0.0155), 4000: (0.0257, 0.0081),
}


class FcmiArchitecture(enum.IntEnum):
  """Network of the protocol.

  Attributes:
    MLP: :class:`gbounds.models.MLP` with ``hidden`` widths (the CPU-scale stand-in).
    FCMI_CNN: :class:`gbounds.models.CNN` with the paper's stages (:data:`gbounds.models.FCMI_STAGES`,
      no BatchNorm) and a 128-unit dense layer.
  """
  MLP = 1
  FCMI_CNN = 2


class FcmiTraining(enum.IntEnum):
  """SGD: optax training of every model; LINEARIZED: closed-form GD of the linearized network
  (gradient flow to convergence on the summed MSE to one-hot targets, weight decay ``ridge``)."""
  SGD = 1
  LINEARIZED = 2


@dataclasses.dataclass(frozen=True)
class FcmiProtocol:
  """A supersample experiment on a binary image task, one run per ``n``.

  Attributes:
    ns: numbers of pairs ``n`` (training-set sizes).
    k1: supersamples per ``n``.
    k2: masks per supersample.
    epochs: passes over the ``n`` training examples.
    architecture: :class:`FcmiArchitecture`.
    hidden: MLP hidden widths.
    optimizer, learning_rate, batch_size: the optax recipe (Adam, 1e-3, 128 in the paper).
    dataset, split, classes: the pool (``gbounds.data.load_dataset(dataset, split)``, two classes
      relabelled 0/1).
    test_size: examples held out from the pool as the separate test set.
    training: :class:`FcmiTraining`.
    ridge: weight decay of the linearized mode.
    strategy: :class:`gbounds.train.MapStrategy`.
    chunk_size: models per compiled call and per results file (the unit a rerun resumes
      from).
    seed: seed of designs, initialisations and batch orders.
    keep_last_batch: an epoch is ``ceil(n / batch_size)`` steps (the paper's PyTorch loader,
      ``drop_last=False``) instead of ``max(1, n // batch_size)``; every step draws a full
      batch of ``min(batch_size, n)`` examples either way.
  """
  ns: tuple[int, ...] = (75, 250)
  k1: int = 5
  k2: int = 20
  epochs: int = 200
  architecture: FcmiArchitecture = FcmiArchitecture.MLP
  hidden: tuple[int, ...] = (512, 512)
  optimizer: Optimizer = Optimizer.ADAM
  learning_rate: float = 1e-3
  batch_size: int = 128
  dataset: str = "mnist"
  split: str = "test"
  classes: tuple[int, int] = (4, 9)
  test_size: int = 491
  training: FcmiTraining = FcmiTraining.SGD
  ridge: float = 1e-3
  strategy: MapStrategy = MapStrategy.AUTO
  chunk_size: int | None = 50
  seed: int = 0
  keep_last_batch: bool = False

  def __post_init__(self):
    set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
    set_("architecture", _errors.as_enum("architecture", self.architecture, FcmiArchitecture))
    set_("optimizer", _errors.as_enum("optimizer", self.optimizer, Optimizer))
    set_("training", _errors.as_enum("training", self.training, FcmiTraining))
    set_("strategy", _errors.as_enum("strategy", self.strategy, MapStrategy))
    set_("ns", _int_tuple("ns", self.ns, 1, "positive numbers of pairs"))
    set_("hidden", _int_tuple("hidden", self.hidden, 1, "positive hidden widths", empty=True))
    set_("classes", _int_tuple("classes", self.classes, 0, "two class labels"))
    if not self.ns:
      _errors.fail("ns", "positive numbers of pairs", self.ns)
    for name in ("k1", "epochs", "batch_size", "test_size"):
      _errors.check_int(name, getattr(self, name), 1, what="a positive integer")
    _errors.check_int("k2", self.k2, 2, what="at least 2 masks per supersample")
    if len(self.classes) != 2 or self.classes[0] == self.classes[1]:
      _errors.fail("classes", "two distinct class labels", self.classes)
    _errors.check_real("learning_rate", self.learning_rate, "a positive finite number", lambda v: v > 0)
    _errors.check_real("ridge", self.ridge, "a non-negative finite number", lambda v: v >= 0)
    if self.chunk_size is not None:
      _errors.check_int("chunk_size", self.chunk_size, 1, what="a positive integer or None")
    _errors.check_int("seed", self.seed, None)
    if not isinstance(self.dataset, str) or self.dataset.strip().lower().replace(
        "-", "_") not in DATASETS:
      _errors.fail("dataset", f"one of {list(DATASETS)}", repr(self.dataset))
    if self.split not in ("train", "test"):
      _errors.fail("split", "'train' or 'test'", repr(self.split))
    if not isinstance(self.keep_last_batch, (bool, np.bool_)):
      _errors.fail("keep_last_batch", "a bool", repr(self.keep_last_batch))
    set_("keep_last_batch", bool(self.keep_last_batch))

  def to_json(self) -> dict:
    """The fields as JSON values (enums by lower-case name); :meth:`from_json` inverts it.

    Returns:
      A JSON-ready dict of every field.
    """
    obj = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
    obj = {k: v.name.lower() if isinstance(v, enum.Enum) else v for k, v in obj.items()}
    return json.loads(json.dumps(obj, default=_io._default))

  def to_dict(self) -> dict:
    """Same as :meth:`to_json` (the result convention's name).

    Returns:
      A JSON-ready dict of every field.
    """
    return self.to_json()

  @classmethod
  def from_dict(cls, obj: dict) -> FcmiProtocol:
    """Same as :meth:`from_json`.

    Args:
      obj: a dict of fields.

    Returns:
      The protocol.
    """
    return cls.from_json(obj)

  @classmethod
  def from_json(cls, obj: dict) -> FcmiProtocol:
    """Rebuilds a protocol from :meth:`to_json` output (unknown keys are refused).

    Args:
      obj: a dict of fields (enums by name or value).

    Returns:
      The protocol, every field checked.
    """
    if not isinstance(obj, dict):
      _errors.fail("config", "a JSON object of FcmiProtocol fields", type(obj).__name__)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(obj) - known)
    if unknown:
      _errors.fail("config", f"keys among {sorted(known)}", unknown)
    return cls(**obj)


def _int_tuple(name: str, value: Any, minimum: int, expected: str, *, empty: bool = False
               ) -> tuple[int, ...]:
  """A scalar or sequence of integers (whole floats accepted) each at least ``minimum``."""
  try:
    arr = np.atleast_1d(np.asarray(value))
  except (TypeError, ValueError):
    arr = None
  ok = (arr is not None and arr.ndim == 1 and (arr.size > 0 or empty)
        and (arr.dtype.kind in "iu" or (arr.dtype.kind == "f" and np.all(np.isfinite(arr))
                                        and np.all(arr == np.round(arr))))
        and (arr.size == 0 or arr.min() >= minimum))
  if arr is None or not ok:
    _errors.fail(name, expected, repr(value))
  return tuple(int(v) for v in arr)


def _check_overrides(overrides: dict) -> None:
  """Unknown protocol fields fail with the list of valid ones (not a TypeError)."""
  known = {f.name for f in dataclasses.fields(FcmiProtocol)}
  unknown = sorted(set(overrides) - known)
  if unknown:
    _errors.fail("config", f"fields of FcmiProtocol among {sorted(known)}", unknown)


# hrayrhar/f-CMI, experiment ``fcmi-mnist-4vs9-CNN`` (its fcmi_scripts, the defaults of its
# fcmi_train_classifier, its binary-mnist-4layer-CNN config): the recipe
# the paper-CNN protocols copy. ``k1 x k2`` there is 5 x 30.
PAPER_RECIPE: dict[str, Any] = dict(
    architecture=FcmiArchitecture.FCMI_CNN, optimizer=Optimizer.ADAM, learning_rate=1e-3,
    batch_size=128, epochs=200, keep_last_batch=True)


def cpu_scale_protocol(**overrides) -> FcmiProtocol:
  """The MNIST 4-vs-9 protocol at CPU scale: MLP 512-512, Adam 1e-3, batch 128, 200 epochs,
  ``n`` in {75, 250}, ``k1 x k2 = 5 x 20`` (about 10 minutes on 2 CPU cores).

  Args:
    **overrides: fields of :class:`FcmiProtocol` (unknown ones are refused).

  Returns:
    :class:`FcmiProtocol`.
  """
  _check_overrides(overrides)
  return FcmiProtocol(**overrides)


def full_scale_protocol(**overrides) -> FcmiProtocol:
  """The published configuration: the f-CMI CNN (without BatchNorm), Adam 1e-3, batch 128,
  200 epochs of ``ceil(n / 128)`` steps (:data:`PAPER_RECIPE`), ``n`` in {75, 250, 1000,
  4000}, ``k1 x k2 = 5 x 30``, pool = MNIST training split (test set: 2,000 held-out fours and
  nines; that split is not in the offline data directory, it is fetched where absent). Meant
  for a GPU (vmap over chunks of 30).

  Args:
    **overrides: fields of :class:`FcmiProtocol` (unknown ones are refused).

  Returns:
    :class:`FcmiProtocol`.
  """
  base = dict(PAPER_RECIPE, ns=(75, 250, 1000, 4000), k1=5, k2=30, split="train",
              test_size=2000, strategy=MapStrategy.AUTO, chunk_size=30)
  _check_overrides(overrides)
  return FcmiProtocol(**{**base, **overrides})


def small_protocol(**overrides) -> FcmiProtocol:
  """A small run for the README's main job (< 3 minutes on 2 CPU cores): MLP 256, 100 epochs,
  ``n`` in {75, 250}, ``k1 x k2 = 2 x 10``.

  Args:
    **overrides: fields of :class:`FcmiProtocol` (unknown ones are refused).

  Returns:
    :class:`FcmiProtocol`.
  """
  base = dict(ns=(75, 250), k1=2, k2=10, epochs=100, hidden=(256,), chunk_size=None)
  _check_overrides(overrides)
  return FcmiProtocol(**{**base, **overrides})


def paper_cnn_protocol(**overrides) -> FcmiProtocol:
  """The paper's network and recipe on this machine's MNIST 4-vs-9 pool, at CPU scale.

  The f-CMI CNN (:data:`gbounds.models.FCMI_STAGES` + dense 128, no BatchNorm), Adam lr 1e-3,
  batch 128, 200 epochs of ``ceil(n / 128)`` steps (200 steps at ``n = 75``, 400 at
  ``n = 250``), ``n`` in {75, 250}, pool = MNIST test split (491 held out as the test set),
  ``k1 x k2 = 3 x 8`` (the paper: 5 x 30), models trained one after another in one program
  (``SEQUENTIAL``: faster than ``VMAP`` for this CNN on CPU, measured), one supersample per
  results chunk. Measured on a shared 2-core machine: 70-140 ms per step at ``n = 75`` and
  260-315 ms at ``n = 250``, i.e. about 15-30 s and 100-125 s per model, so roughly 10 minutes
  for ``n = 75`` and 45 minutes for ``n = 250`` with the cores to itself.

  Args:
    **overrides: fields of :class:`FcmiProtocol` (unknown ones are refused).

  Returns:
    :class:`FcmiProtocol`.
  """
  base = dict(PAPER_RECIPE, ns=(75, 250), k1=3, k2=8, dataset="mnist", split="test",
              classes=(4, 9), test_size=491, strategy=MapStrategy.SEQUENTIAL, chunk_size=8)
  _check_overrides(overrides)
  return FcmiProtocol(**{**base, **overrides})


def fashion_protocol(**overrides) -> FcmiProtocol:
  """The extension to ``n`` in {1000, 4000}: the paper's CNN and recipe on Fashion-MNIST
  sneaker (7) vs ankle boot (9), a pair of similar-looking classes like MNIST's 4 vs 9.

  Pool: the Fashion-MNIST training split's 12,000 sneakers and ankle boots, 2,000 held out as the
  test set (so ``n <= 5000``); ``k1 x k2 = 5 x 30`` as published. Meant for a GPU (on 2 CPU
  cores one model at ``n = 4000``, 6,400 steps, takes tens of minutes).

  Args:
    **overrides: fields of :class:`FcmiProtocol` (unknown ones are refused).

  Returns:
    :class:`FcmiProtocol`.
  """
  base = dict(PAPER_RECIPE, ns=(1000, 4000), k1=5, k2=30, dataset="fashion_mnist",
              split="train", classes=(7, 9), test_size=2000, strategy=MapStrategy.AUTO,
              chunk_size=30)
  _check_overrides(overrides)
  return FcmiProtocol(**{**base, **overrides})


def training_steps(protocol: FcmiProtocol, n: int) -> int:
  """Optimizer steps of one model at ``n`` training examples.

  Args:
    protocol: :class:`FcmiProtocol` (``epochs``, ``batch_size``, ``keep_last_batch``).
    n: training-set size.

  Returns:
    ``epochs * ceil(n / b)`` with ``keep_last_batch``, else ``epochs * max(1, n // b)``
    (:func:`gbounds.train.steps_for_epochs`), ``b = min(batch_size, n)``.
  """
  _errors.check_int("n", n, 1)
  b = min(protocol.batch_size, n)
  if protocol.keep_last_batch:
    return int(protocol.epochs * -(-n // b))
  return steps_for_epochs(protocol.epochs, n, b)


# scale name -> protocol maker (reproduce_fcmi, benchmarks/repro_fcmi.py).
PROTOCOLS: dict[str, Any] = {
    "small": small_protocol, "cpu": cpu_scale_protocol, "paper_cnn": paper_cnn_protocol,
    "fashion": fashion_protocol, "full": full_scale_protocol}


class FcmiRow(NamedTuple):
  """One ``n`` of an f-CMI experiment (error units; mutual informations in nats inside).

  Attributes:
    n: pairs per supersample (training-set size).
    fcmi_bound: sample-wise f-CMI bound on the gap (mean over supersamples).
    fcmi_bound_std: its standard deviation over the ``k1`` supersamples.
    ecmi_kl_test_bound: binary-KL e-CMI bound on the test error (Hellstrom & Durisi).
    ldcmi_bound: loss-difference square-root bound on the gap (Wang & Mao).
    train_error: mean training 0-1 error.
    ghost_error: mean 0-1 error on the ghost halves of the supersamples.
    gap: ``ghost_error - train_error`` (the gap the bounds bound).
    test_error: mean 0-1 error on the separate test set.
    trainings: models trained (``k1 * k2``).
    seconds: wall time of this call for that ``n`` (training plus reading finished chunks; the
      training time of an earlier, interrupted call is not included).
    k1, k2: supersamples and masks per supersample.
    fcmi_bound_se, gap_se, test_error_se: standard errors of the means over the ``k1``
      supersamples, ``sd / sqrt(k1)`` with ``sd`` the sample standard deviation (``ddof = 1``;
      None for ``k1 = 1`` and in rows written before they were recorded).
    fcmi_bound_per_supersample, gap_per_supersample, test_error_per_supersample: the
      per-supersample values behind the means (each a mean over the ``k2`` masks).
  """
  # duplicates: the field list + to_dict/from_dict shape of every result NamedTuple;
  # different fields, not shared logic
  n: int
  fcmi_bound: float
  fcmi_bound_std: float
  ecmi_kl_test_bound: float
  ldcmi_bound: float
  train_error: float
  ghost_error: float
  gap: float
  test_error: float
  trainings: int
  seconds: float
  k1: int = 0
  k2: int = 0
  fcmi_bound_se: float | None = None
  gap_se: float | None = None
  test_error_se: float | None = None
  fcmi_bound_per_supersample: tuple[float, ...] = ()
  gap_per_supersample: tuple[float, ...] = ()
  test_error_per_supersample: tuple[float, ...] = ()

  to_dict = _results.namedtuple_to_dict
  from_dict = classmethod(_results.from_dict)


_SCALAR_FIELDS = tuple(f for f in FcmiRow._fields if not f.endswith("_per_supersample"))


class FcmiTable(NamedTuple):
  """Rows per ``n`` and the resolved protocol (:meth:`FcmiProtocol.to_json`)."""
  rows: tuple[FcmiRow, ...]
  protocol: dict

  to_dict = _results.namedtuple_to_dict
  from_dict = classmethod(_results.from_dict)

  def table(self) -> _results.Table:
    """The rows as a table.

    Returns:
      :class:`gbounds.Table` with the :class:`FcmiRow` fields as columns.
    """
    return _results.Table(_SCALAR_FIELDS,
                          tuple(tuple(getattr(r, f) for f in _SCALAR_FIELDS) for r in self.rows),
                          "f-CMI supersample experiment")

  def format(self) -> str:
    """A fixed-width text table.

    Returns:
      One header line and one line per ``n``.
    """
    head = (f"{'n':>6} {'f-CMI bound':>12} {'(SE)':>8} {'eCMI-kl test':>13} {'LD-CMI':>8} "
            f"{'train err':>10} {'gap':>8} {'(SE)':>8} {'test err':>9} {'(SE)':>8} "
            f"{'k1 x k2':>8} {'s':>7}")
    lines = [head]
    for r in self.rows:
      lines.append(f"{r.n:>6d} {r.fcmi_bound:>12.4f} {_num(r.fcmi_bound_se):>8.4f} "
                   f"{r.ecmi_kl_test_bound:>13.4f} {r.ldcmi_bound:>8.4f} {r.train_error:>10.4f} "
                   f"{r.gap:>8.4f} {_num(r.gap_se):>8.4f} {r.test_error:>9.4f} "
                   f"{_num(r.test_error_se):>8.4f} "
                   f"{f'{r.k1}x{r.k2}':>8} {r.seconds:>7.1f}")
    return "\n".join(lines)


def binary_pool(protocol: FcmiProtocol, data_dir: str | os.PathLike | None = None):
  """The protocol's data: the two classes, shuffled with ``protocol.seed``, the last
  ``test_size`` examples held out.

  Args:
    protocol: :class:`FcmiProtocol` (``dataset``, ``split``, ``classes``, ``test_size``, ``seed``).
    data_dir: the data directory (default ``$GBOUNDS_DATA_DIR``).

  Returns:
    ``(x_pool, y_pool, x_test, y_test)``, labels 0/1.
  """
  x, y = load_dataset(protocol.dataset, protocol.split, data_dir=data_dir)
  x, y = binary_task(x, y, *protocol.classes)
  if protocol.test_size >= len(y):
    _errors.fail("test_size", f"fewer than the {len(y)} examples of the task", protocol.test_size)
  perm = np.random.default_rng([protocol.seed, 12345]).permutation(len(y))
  x, y = x[perm], y[perm]
  cut = len(y) - protocol.test_size
  return x[:cut], y[:cut], x[cut:], y[cut:]


def _model(protocol: FcmiProtocol):
  if protocol.architecture == FcmiArchitecture.FCMI_CNN:
    return CNN(stages=FCMI_STAGES, dense=(128,), out=2)
  return MLP(hidden=protocol.hidden, out=2)


def _standard_error(values: np.ndarray) -> float | None:
  """``sd / sqrt(k)`` of ``k`` values, ``sd`` with ``ddof = 1`` (None for ``k < 2``)."""
  v = np.asarray(values, np.float64)
  return float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else None


def _num(v: float | None) -> float:
  return math.nan if v is None else float(v)


def summarize(result: SupersampleResult, *, seconds: float = 0.0) -> FcmiRow:
  """Bounds and measured errors of one supersample run (via :func:`gbounds.bounds.cmi_bounds`),
  with per-supersample values and their standard errors.

  The gap of supersample ``a`` is ``(1/(k2 n)) sum_{b, i} (L~_{i, 1 - U_i} - L~_{i, U_i})``
  (ghost minus training 0-1 loss, model ``(a, b)``); its test error the mean over its ``k2``
  models; its bound the sample-wise f-CMI bound ``(1/n) sum_i sqrt(2 I^{z~_a}(F_i; U_i))``
  (Harutyunyan et al., 2021). Means over supersamples carry ``SE = sd / sqrt(k1)``
  (``ddof = 1``).

  Args:
    result: a :class:`gbounds.supersample.SupersampleResult`.
    seconds: wall time to record.

  Returns:
    :class:`FcmiRow`.
  """
  report = cmi_bounds(result.masks, result.predictions, result.labels, full_vector=False)
  f = report["fcmi"]
  k1, k2, n = result.masks.shape
  bound_a = np.asarray(f.per_supersample, np.float64)
  gap_a = np.mean(result.ghost_losses.astype(np.float64)
                  - result.train_losses.astype(np.float64), axis=(1, 2))
  test_a = np.mean(np.asarray(result.test_error, np.float64), axis=1)
  return FcmiRow(
      n=int(n), fcmi_bound=float(f.value), fcmi_bound_std=float(np.std(bound_a)),
      ecmi_kl_test_bound=float(report["ecmi_kl"].test_error),
      ldcmi_bound=float(report["ldcmi_sqrt"].value), train_error=result.train_error,
      ghost_error=result.ghost_error, gap=result.gap, test_error=result.mean_test_error,
      trainings=int(k1 * k2), seconds=float(seconds), k1=int(k1), k2=int(k2),
      fcmi_bound_se=_standard_error(bound_a), gap_se=_standard_error(gap_a),
      test_error_se=_standard_error(test_a),
      fcmi_bound_per_supersample=tuple(float(v) for v in bound_a),
      gap_per_supersample=tuple(float(v) for v in gap_a),
      test_error_per_supersample=tuple(float(v) for v in test_a))


def bound_vs_masks(result: SupersampleResult, k2s: Sequence[int], *, draws: int = 20,
                   seed: int = 0) -> dict[int, tuple[float, float]]:
  """The f-CMI bound estimated from subsets of ``k2' <= k2`` masks: how the plug-in estimate
  moves with the number of masks (its bias, upward for pairs whose predictions ignore the mask
  and downward for pairs whose predictions follow it, changes with ``k2'``).

  For each ``k2'``, ``draws`` random subsets of ``k2'`` of the ``k2`` models of every
  supersample are drawn (``numpy.random.default_rng(seed)``) and the sample-wise f-CMI bound
  of :func:`gbounds.bounds.cmi_bounds` is averaged over them.

  Args:
    result: a :class:`gbounds.supersample.SupersampleResult`.
    k2s: subset sizes, each in ``[2, k2]``.
    draws: random subsets per size (``k2' = k2`` uses all masks once).
    seed: seed of the subsets.

  Returns:
    ``{k2': (mean bound over the draws, its standard deviation over the draws)}``.
  """
  k1, k2, n = result.masks.shape
  sizes = _int_tuple("k2s", k2s, 2, f"mask counts in [2, {k2}]")
  if max(sizes) > k2:
    _errors.fail("k2s", f"mask counts in [2, {k2}]", sizes)
  _errors.check_int("draws", draws, 1)
  rng = np.random.default_rng(seed)
  out = {}
  for m in sizes:
    vals = []
    for _ in range(1 if m == k2 else draws):
      pick = np.stack([rng.permutation(k2)[:m] for _ in range(k1)])        # (k1, m)
      masks = np.take_along_axis(result.masks, pick[:, :, None], axis=1)
      preds = np.take_along_axis(result.predictions, pick[:, :, None, None, None], axis=1)
      vals.append(float(cmi_bounds(masks, preds, result.labels, full_vector=False)["fcmi"].value))
    out[m] = (float(np.mean(vals)), float(np.std(vals)))
  return out


def run_fcmi_protocol(protocol: FcmiProtocol, *, data_dir: str | os.PathLike | None = None,
                      out_dir: str | os.PathLike | None = None,
                      progress: _progress.ProgressCallback | None = None,
                      data: tuple | None = None) -> FcmiTable:
  """Runs (or resumes, from ``out_dir``) the protocol for every ``n``; returns the table.

  Args:
    protocol: :class:`FcmiProtocol`.
    data_dir: the data directory (default ``$GBOUNDS_DATA_DIR``).
    out_dir: results: ``n<NNNN>/`` chunk directories (resumable), ``table.json``, ``table.csv``.
    progress: ``progress(done, total)`` in trainings over all ``n``.
    data: ``(x_pool, y_pool, x_test, y_test)`` instead of loading ``protocol.dataset``.

  Returns:
    :class:`FcmiTable`, one :class:`FcmiRow` per ``n``.
  """
  x_pool, y_pool, x_test, y_test = data if data is not None else binary_pool(protocol, data_dir)
  for n in protocol.ns:
    if 2 * n > len(y_pool):
      _errors.fail("ns", f"n <= {len(y_pool) // 2} (half the pool of {len(y_pool)})", n)
  model = _model(protocol)
  per_n = protocol.k1 * protocol.k2
  total = per_n * len(protocol.ns)
  rows = []
  out = None if out_dir is None else pathlib.Path(out_dir)
  for j, n in enumerate(protocol.ns):
    cb = None if progress is None else (lambda done, total, j=j, grand=total: progress(j * per_n + done, grand))
    t0 = time.perf_counter()
    if protocol.training == FcmiTraining.LINEARIZED:
      result = run_linearized_supersample(
          model, x_pool, y_pool, x_test, y_test, n=n, k1=protocol.k1, k2=protocol.k2,
          seed=protocol.seed, weight_decay=protocol.ridge, callback=cb)
    else:
      b = min(protocol.batch_size, n)
      cfg = TrainConfig(optimizer=protocol.optimizer, learning_rate=protocol.learning_rate,
                        batch_size=b, steps=training_steps(protocol, n), seed=protocol.seed)
      result = run_supersample(
          model, x_pool, y_pool, x_test, y_test, n=n, k1=protocol.k1, k2=protocol.k2,
          train=cfg, seed=protocol.seed, strategy=protocol.strategy,
          chunk_size=protocol.chunk_size,
          results_dir=None if out is None else out / f"n{n:05d}", callback=cb)
    rows.append(summarize(result, seconds=time.perf_counter() - t0))
  table = FcmiTable(tuple(rows), protocol.to_json())
  if out is not None:
    write_table(table, out)
  return table


def provenance(table: FcmiTable) -> dict[str, Any]:
  """Where and how a table was produced: package versions, machine, seeds, steps per model,
  wall time per ``n``.

  Args:
    table: the table.

  Returns:
    A JSON-able dict (``versions``, ``platform``, ``cpu_count``, ``jax_backend``,
    ``jax_devices``, ``written_utc``, ``seeds``, ``steps_per_model``, ``seconds_per_n``).
  """
  import platform

  import jax

  proto = FcmiProtocol.from_json(table.protocol)
  return {
      "versions": _provenance.versions(), "platform": platform.platform(),
      "python": platform.python_version(), "cpu_count": os.cpu_count(),
      "jax_backend": jax.default_backend(), "jax_devices": [str(d) for d in jax.devices()],
      "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
      "seeds": {"design": proto.seed, "init": proto.seed, "batch_order": proto.seed,
                "pool_split": [proto.seed, 12345]},
      "steps_per_model": {str(r.n): training_steps(proto, r.n) for r in table.rows},
      "seconds_per_n": {str(r.n): r.seconds for r in table.rows}}


def write_table(table: FcmiTable, out_dir: str | os.PathLike) -> None:
  """Writes ``table.json`` and ``table.csv`` atomically.

  Args:
    table: the table.
    out_dir: the directory.

  Returns:
    None.
  """
  out = pathlib.Path(out_dir)
  _io.atomic_write_json(out / "table.json", {
      "rows": [r._asdict() for r in table.rows], "protocol": table.protocol,
      "provenance": provenance(table),
      "units": "0-1 error; mutual informations inside the bounds in nats",
      "standard_errors": "sd / sqrt(k1) over the k1 supersamples, sd with ddof = 1"})
  cols = _SCALAR_FIELDS
  lines = [",".join(cols)] + [",".join(repr(v) if isinstance(v, float) else str(v)
                                       for v in (getattr(r, c) for c in cols))
                              for r in table.rows]
  _io.atomic_write_text(out / "table.csv", "\n".join(lines) + "\n")


def write_fcmi_figure(table: FcmiTable, path: str | os.PathLike, *,
                      published: dict[int, tuple[float, float]] | None = None) -> None:
  """PNG of the f-CMI bound, gap and test error against ``n`` (log x axis), written atomically
  (drawn by ``gbounds.viz.plot_fcmi_table``; no pyplot, no global matplotlib state).

  Args:
    table: the table.
    path: the ``.png`` file.
    published: ``{n: (bound, gap)}`` drawn beside ours.

  Returns:
    None.
  """
  fig, ax = _io.new_figure(figsize=(5, 3.5))
  plot_fcmi_table(ax, table.rows, published=published)
  fig.tight_layout()
  _io.atomic_write_figure(path, fig, dpi=120)


class FcmiReproduction(NamedTuple):
  """Our table beside the published numbers (``published[n] = (bound, gap)``).

  The field ``table`` is the :class:`FcmiTable`; :meth:`comparison` is the ``gbounds.Table``;
  ``bound_vs_masks[n]`` is :func:`bound_vs_masks` of that ``n`` (``{k2': (mean, sd)}``, empty
  unless asked for).
  """
  table: FcmiTable
  published: dict[int, tuple[float, float]]
  bound_vs_masks: dict[int, dict[int, tuple[float, float]]] = {}

  # duplicates: a from_dict classmethod that converts its fields back, the same shape as
  # the other results' (Reproduction, SupersampleDesign, FcmiReproduction); different
  # conversions, not shared logic
  to_dict = _results.namedtuple_to_dict

  @classmethod
  def from_dict(cls, data: dict) -> FcmiReproduction:
    """Rebuilds the reproduction from :meth:`to_dict` output (``published`` keys back to int).

    Args:
      data: a dict as :meth:`to_dict` returns it.

    Returns:
      The :class:`FcmiReproduction`.
    """
    curves = {int(n): {int(k): (float(m), float(sd)) for k, (m, sd) in c.items()}
              for n, c in data.get("bound_vs_masks", {}).items()}
    return cls(FcmiTable.from_dict(data["table"]),
               {int(n): (float(b), float(g)) for n, (b, g) in data["published"].items()},
               curves)

  def comparison(self) -> _results.Table:
    """Ours (mean and SE over the supersamples) beside the published bound and gap per ``n``,
    with ``z = (ours - published) / SE`` and :func:`agreement`'s strict test (within 2 SE of
    ours; ``gbounds reproduce`` gives the verdict against the published tolerance, which also
    counts the paper's own spread).

    Returns:
      :class:`gbounds.Table` (NaN where nothing is published for that ``n``).
    """
    rows = []
    for r in self.table.rows:
      pb, pg = self.published.get(r.n, (math.nan, math.nan))
      bse, gse = _num(r.fcmi_bound_se), _num(r.gap_se)
      rows.append((r.n, r.fcmi_bound, bse, pb, _z(r.fcmi_bound, bse, pb),
                   agreement(r.fcmi_bound, bse, pb), r.gap, gse, pg, _z(r.gap, gse, pg),
                   agreement(r.gap, gse, pg), r.test_error, _num(r.test_error_se), r.k1, r.k2))
    return _results.Table(("n", "bound (ours)", "bound SE", "bound (published)", "bound z",
                           "bound within 2 SE", "gap (ours)", "gap SE", "gap (published)", "gap z",
                           "gap within 2 SE", "test error (ours)", "test error SE", "k1", "k2"),
                          tuple(rows), "f-CMI, MNIST 4 vs 9 (Harutyunyan et al., NeurIPS 2021)")

  def format(self) -> str:
    """A fixed-width text table of :meth:`comparison`.

    Returns:
      One header line and one line per ``n``.
    """
    lines = [f"{'n':>6} {'bound':>8} {'(SE)':>7} {'pub.':>7} {'z':>6} {'within 2 SE':>13} "
             f"{'gap':>8} {'(SE)':>7} {'pub.':>7} {'z':>6} {'within 2 SE':>13} {'test err':>9} "
             f"{'(SE)':>7} {'k1xk2':>6}"]
    for row in self.comparison().rows:
      (n, b, bse, pb, bz, bv, g, gse, pg, gz, gv, t, tse, k1, k2) = row
      lines.append(f"{n:>6d} {b:>8.4f} {bse:>7.4f} {pb:>7.4f} {bz:>6.1f} {bv:>13} {g:>8.4f} "
                   f"{gse:>7.4f} {pg:>7.4f} {gz:>6.1f} {gv:>13} {t:>9.4f} {tse:>7.4f} "
                   f"{f'{k1}x{k2}':>6}")
    return "\n".join(lines)


def _z(ours: float, se: float, published: float) -> float:
  if not (math.isfinite(published) and math.isfinite(se) and se > 0):
    return math.nan
  return (ours - published) / se


def agreement(ours: float, se: float | None, published: float, *, z: float = 2.0) -> str:
  """Verdict on one number against its published value, given our standard error.

  ``"agrees"`` when ``|ours - published| <= z * SE``, else ``"above"`` or ``"below"``;
  ``"no SE"`` without a finite positive SE and ``"unpublished"`` without a published value.
  (The published value's own sampling error, unknown here, is not counted: the test is strict.)

  Args:
    ours: our mean over the supersamples.
    se: its standard error (None or NaN if unknown).
    published: the published value (NaN if none).
    z: tolerance in standard errors.

  Returns:
    The verdict string.
  """
  if not math.isfinite(published):
    return "unpublished"
  if se is None or not (math.isfinite(se) and se > 0):
    return "no SE"
  if abs(ours - published) <= z * se:
    return "agrees"
  return "above" if ours > published else "below"


def reproduce_fcmi(*, data_dir: str | os.PathLike | None = None,
                   out_dir: str | os.PathLike | None = None, scale: str = "cpu",
                   progress: _progress.ProgressCallback | None = None,
                   k2_curve: Sequence[int] = (), **overrides) -> FcmiReproduction:
  """Reproduces the MNIST 4-vs-9 f-CMI experiment of Harutyunyan et al. (2021).

  Args:
    data_dir: data directory.
    out_dir: results directory (resumable; ``table.json``, ``table.csv``, ``fcmi.png``).
    scale: a key of :data:`PROTOCOLS`: ``"paper_cnn"`` (:func:`paper_cnn_protocol`, the
      paper's CNN and recipe at CPU scale), ``"fashion"`` (:func:`fashion_protocol`), ``"cpu"``
      (:func:`cpu_scale_protocol`, MLP), ``"full"`` (:func:`full_scale_protocol`, GPU) or
      ``"small"`` (:func:`small_protocol`).
    progress: ``progress(done, total)`` in trainings.
    k2_curve: mask counts ``k2' <= k2`` at which to re-estimate the bound from subsets of the
      masks (:func:`bound_vs_masks`, 20 subsets each; needs ``out_dir``); sizes above a run's
      ``k2`` are skipped.
    **overrides: fields of :class:`FcmiProtocol`.

  Returns:
    :class:`FcmiReproduction`: our rows, the published (bound, gap) per ``n`` (none for a
    task other than MNIST 4 vs 9) and the bound against the number of masks.
  """
  if scale not in PROTOCOLS:
    _errors.fail("scale", f"one of {sorted(PROTOCOLS)}", repr(scale))
  protocol = PROTOCOLS[scale](**overrides)
  if len(k2_curve) and out_dir is None:
    _errors.fail("out_dir", "a results directory (k2_curve reads the trained models back)", None)
  # The published numbers are MNIST 4 vs 9; another task is compared with nothing.
  mnist49 = protocol.dataset == "mnist" and sorted(protocol.classes) == [4, 9]
  published = dict(PUBLISHED_FCMI) if mnist49 else {}
  table = run_fcmi_protocol(protocol, data_dir=data_dir, out_dir=out_dir, progress=progress)
  if out_dir is not None:
    write_fcmi_figure(table, pathlib.Path(out_dir) / "fcmi.png", published=published or None)
  curves = {}
  for r in table.rows if len(k2_curve) else ():
    result = load_supersample_results(pathlib.Path(str(out_dir)) / f"n{r.n:05d}")
    curves[r.n] = bound_vs_masks(result, [k for k in k2_curve if k <= r.k2])
  return FcmiReproduction(table, published, curves)


def small_fcmi_experiment(data_dir: str | os.PathLike | None = None,
                          out_dir: str | os.PathLike | None = None, *,
                          progress: _progress.ProgressCallback | None = None,
                          **overrides) -> FcmiTable:
  """The README's small f-CMI run (:func:`small_protocol`; < 3 minutes on 2 CPU cores).

  Args:
    data_dir: the data directory.
    out_dir: results directory (resumable).
    progress: ``progress(done, total)`` in trainings.
    **overrides: fields of :class:`FcmiProtocol`.

  Returns:
    :class:`FcmiTable` with one row per ``n``: f-CMI, e-CMI (binary KL, on the test error) and
    loss-difference bounds, training error, gap and test error. Also written to ``out_dir``
    (``table.json``, ``table.csv``, ``fcmi.png``) when given.
  """
  table = run_fcmi_protocol(small_protocol(**overrides), data_dir=data_dir, out_dir=out_dir,
                            progress=progress)
  if out_dir is not None:
    write_fcmi_figure(table, pathlib.Path(out_dir) / "fcmi.png")
  return table


# ----------------------------------------------------------------------------- Wang & Mao


class SyntheticRow(NamedTuple):
  """One ``n`` of the synthetic study: the measured gap and every bound on it (error units)."""
  n: int
  gap: float
  train_error: float
  bounds: dict[str, float]

  to_dict = _results.namedtuple_to_dict
  from_dict = classmethod(_results.from_dict)


def make_classification_study(*, ns: Sequence[int] = (5, 10, 20), k1: int = 10, k2: int = 30,
                              steps: int = 500, learning_rate: float = 0.01,
                              n_features: int = 5, pool_size: int = 1000, seed: int = 0,
                              strategy: MapStrategy | str = MapStrategy.VMAP
                              ) -> tuple[SyntheticRow, ...]:
  """Wang & Mao's (ICML 2023) synthetic setting at small sizes.

  scikit-learn ``make_classification`` (``n_features`` informative features, 2 classes, one
  cluster per class, ``random_state=seed``) as the pool; a linear softmax model
  (:class:`gbounds.models.MLP` with no hidden layer) trained by full-batch gradient descent on the
  mean cross-entropy for ``steps`` steps (departure: no early stop at 99% training accuracy).
  Every bound of :func:`gbounds.bounds.cmi_bounds` is evaluated on the gap of the 0-1 loss.

  Args:
    ns: numbers of pairs ``n``.
    k1: supersamples per ``n``.
    k2: masks per supersample.
    steps: full-batch GD steps.
    learning_rate: GD step size.
    n_features: informative features of the pool.
    pool_size: examples in the pool.
    seed: seed of the pool, designs and initialisations.
    strategy: :class:`gbounds.train.MapStrategy` over the trained models.

  Returns:
    One :class:`SyntheticRow` per ``n``; ``bounds`` maps bound names to gap bounds (only the
    applicable ones).
  """
  from sklearn.datasets import make_classification

  x, y = make_classification(n_samples=pool_size, n_features=n_features,
                             n_informative=n_features, n_redundant=0, n_repeated=0,
                             n_classes=2, n_clusters_per_class=1, random_state=seed)
  x, y = np.asarray(x, np.float32), np.asarray(y, np.int32)
  model = MLP(hidden=(), out=2)
  cfg = TrainConfig(learning_rate=learning_rate, steps=steps, batch_size=None, seed=seed)
  rows = []
  for n in ns:
    r = run_supersample(model, x, y, n=n, k1=k1, k2=k2, train=cfg, seed=seed,
                        strategy=strategy)
    report = cmi_bounds(r.masks, r.predictions, r.labels)
    bounds: dict[str, float] = {b.name: float(b.value) for b in report.bounds if b.applicable}
    rows.append(SyntheticRow(int(n), float(report.measured.gap),
                             float(report.measured.train_error), bounds))
  return tuple(rows)


def result_summary_dict(table: FcmiTable) -> dict[str, Any]:
  """JSON-able ``{"rows": [...], "protocol": {...}}``.

  Args:
    table: the table.

  Returns:
    The dict.
  """
  return {"rows": [r._asdict() for r in table.rows], "protocol": table.protocol}
