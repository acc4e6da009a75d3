"""f-CMI experiments: the MNIST 4-vs-9 protocol of Harutyunyan et al. (2021) and Wang & Mao's
synthetic study, on top of the supersample harness (:mod:`gbounds.supersample`) and the bound
functions (:func:`gbounds.bounds.cmi_bounds`).

Published protocol (Harutyunyan et al., NeurIPS 2021, arXiv 2110.01584, sec. 4 and the public
code hrayrhar/f-CMI): MNIST 4 vs 9, a 4-stage CNN with BatchNorm, Adam (lr 1e-3, batch 128),
200 epochs, ``n`` in {75, 250, 1000, 4000}, ``k1 x k2 = 5 x 30``; the sample-wise f-CMI bound
``(1/n) sum_i E_z~ sqrt(2 I^{z~}(F_i; U_i))`` (nats inside the root, error units outside).

Departures here, all stated in the resolved configuration:

* the pool is the MNIST *test* split (1,991 fours and nines; the published pool is the 60k
  training split): :func:`cpu_scale_protocol` holds out ``test_size`` of them as the separate test
  set and draws the supersamples from the rest, so ``n <= (1991 - test_size) / 2``;
* the CNN has no BatchNorm (:data:`gbounds.models.FCMI_STAGES`; see :class:`gbounds.models.CNN`);
* at CPU scale the network is an MLP (the paper's CNN trains at ~0.5 s per step per model on
  this 2-core machine), with fewer masks (``k2``) and supersamples (``k1``);
* an epoch is ``max(1, n // batch)`` steps (the last partial batch is dropped), so at ``n = 250``
  an epoch is one step of 128 examples.

:func:`full_scale_protocol` is the paper's configuration (CNN, 200 epochs, 5 x 30, the MNIST
training split) and runs unchanged on a GPU.
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
from gbounds.supersample import SupersampleResult, run_linearized_supersample, run_supersample
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
    chunk_size: models per compiled call and per results file.
    seed: seed of designs, initialisations and batch orders.
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
  200 epochs, ``n`` in {75, 250, 1000, 4000}, ``k1 x k2 = 5 x 30``, pool = MNIST training
  split (test set: 2,000 held-out fours and nines). Meant for a GPU (vmap over chunks of 30).

  Args:
    **overrides: fields of :class:`FcmiProtocol` (unknown ones are refused).

  Returns:
    :class:`FcmiProtocol`.
  """
  base = dict(ns=(75, 250, 1000, 4000), k1=5, k2=30, epochs=200,
              architecture=FcmiArchitecture.FCMI_CNN, split="train", test_size=2000,
              strategy=MapStrategy.AUTO, chunk_size=30)
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
    seconds: wall time of the run (0 when everything was loaded from disk).
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

  to_dict = _results.namedtuple_to_dict
  from_dict = classmethod(_results.from_dict)


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
    return _results.Table(FcmiRow._fields, tuple(tuple(r) for r in self.rows),
                          "f-CMI supersample experiment")

  def format(self) -> str:
    """A fixed-width text table.

    Returns:
      One header line and one line per ``n``.
    """
    head = (f"{'n':>6} {'f-CMI bound':>12} {'(std)':>8} {'eCMI-kl test':>13} {'LD-CMI':>8} "
            f"{'train err':>10} {'gap':>8} {'test err':>9} {'models':>7} {'s':>7}")
    lines = [head]
    for r in self.rows:
      lines.append(f"{r.n:>6d} {r.fcmi_bound:>12.4f} {r.fcmi_bound_std:>8.4f} "
                   f"{r.ecmi_kl_test_bound:>13.4f} {r.ldcmi_bound:>8.4f} {r.train_error:>10.4f} "
                   f"{r.gap:>8.4f} {r.test_error:>9.4f} {r.trainings:>7d} {r.seconds:>7.1f}")
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


def summarize(result: SupersampleResult, *, seconds: float = 0.0) -> FcmiRow:
  """Bounds and measured errors of one supersample run (via :func:`gbounds.bounds.cmi_bounds`).

  Args:
    result: a :class:`gbounds.supersample.SupersampleResult`.
    seconds: wall time to record.

  Returns:
    :class:`FcmiRow`.
  """
  report = cmi_bounds(result.masks, result.predictions, result.labels, full_vector=False)
  f = report["fcmi"]
  k1, k2, n = result.masks.shape
  return FcmiRow(
      n=int(n), fcmi_bound=float(f.value), fcmi_bound_std=float(np.std(f.per_supersample)),
      ecmi_kl_test_bound=float(report["ecmi_kl"].test_error),
      ldcmi_bound=float(report["ldcmi_sqrt"].value), train_error=result.train_error,
      ghost_error=result.ghost_error, gap=result.gap, test_error=result.mean_test_error,
      trainings=int(k1 * k2), seconds=float(seconds))


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
                        batch_size=b, steps=steps_for_epochs(protocol.epochs, n, b),
                        seed=protocol.seed)
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
      "versions": _provenance.versions(),
      "units": "0-1 error; mutual informations inside the bounds in nats"})
  cols = FcmiRow._fields
  lines = [",".join(cols)] + [",".join(repr(v) if isinstance(v, float) else str(v) for v in r)
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

  The field ``table`` is the :class:`FcmiTable`; :meth:`comparison` is the ``gbounds.Table``.
  """
  table: FcmiTable
  published: dict[int, tuple[float, float]]

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
    return cls(FcmiTable.from_dict(data["table"]),
               {int(n): (float(b), float(g)) for n, (b, g) in data["published"].items()})

  def comparison(self) -> _results.Table:
    """Ours beside the published bound and gap per ``n``.

    Returns:
      :class:`gbounds.Table` (NaN where nothing is published for that ``n``).
    """
    rows = []
    for r in self.table.rows:
      pb, pg = self.published.get(r.n, (math.nan, math.nan))
      rows.append((r.n, r.fcmi_bound, pb, r.gap, pg, r.test_error))
    return _results.Table(("n", "bound (ours)", "bound (published)", "gap (ours)",
                           "gap (published)", "test error (ours)"), tuple(rows),
                          "f-CMI, MNIST 4 vs 9 (Harutyunyan et al., NeurIPS 2021)")

  def format(self) -> str:
    """A fixed-width text table of :meth:`comparison`.

    Returns:
      One header line and one line per ``n``.
    """
    lines = [f"{'n':>6} {'bound (ours)':>13} {'bound (pub.)':>13} {'gap (ours)':>11} "
             f"{'gap (pub.)':>11} {'test err (ours)':>16}"]
    for r in self.table.rows:
      pb, pg = self.published.get(r.n, (math.nan, math.nan))
      lines.append(f"{r.n:>6d} {r.fcmi_bound:>13.4f} {pb:>13.4f} {r.gap:>11.4f} {pg:>11.4f} "
                   f"{r.test_error:>16.4f}")
    return "\n".join(lines)


def reproduce_fcmi(*, data_dir: str | os.PathLike | None = None,
                   out_dir: str | os.PathLike | None = None, scale: str = "cpu",
                   progress: _progress.ProgressCallback | None = None,
                   **overrides) -> FcmiReproduction:
  """Reproduces the MNIST 4-vs-9 f-CMI experiment of Harutyunyan et al. (2021).

  Args:
    data_dir: data directory.
    out_dir: results directory (resumable; ``table.json``, ``table.csv``, ``fcmi.png``).
    scale: ``"cpu"`` (:func:`cpu_scale_protocol`), ``"full"`` (:func:`full_scale_protocol`) or
      ``"small"`` (:func:`small_protocol`).
    progress: ``progress(done, total)`` in trainings.
    **overrides: fields of :class:`FcmiProtocol`.

  Returns:
    :class:`FcmiReproduction`: our rows and the published (bound, gap) per ``n``.
  """
  makers = {"cpu": cpu_scale_protocol, "full": full_scale_protocol, "small": small_protocol}
  if scale not in makers:
    _errors.fail("scale", f"one of {sorted(makers)}", repr(scale))
  protocol = makers[scale](**overrides)
  table = run_fcmi_protocol(protocol, data_dir=data_dir, out_dir=out_dir, progress=progress)
  if out_dir is not None:
    write_fcmi_figure(table, pathlib.Path(out_dir) / "fcmi.png", published=PUBLISHED_FCMI)
  return FcmiReproduction(table, dict(PUBLISHED_FCMI))


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
