"""The researcher's front door: everything gbounds knows about one trained model, in one report.

:func:`analyze` takes a trained Flax Linen model (in process, or an Orbax checkpoint plus the
module's import path and constructor arguments: :func:`load_module`, :func:`load_checkpoint`),
its data (:func:`analysis_data`) and its training recipe (a :class:`gbounds.train.TrainConfig`), and
computes

1. the measured training error, test error and gap of the model (0-1 loss);
2. the sample information of every training example (Harutyunyan et al., ICLR 2021), of the
   network linearized around its TRAINED weights (:func:`gbounds.info.sample_information` with
   ``Expansion.TRAINED``; gradient flow to convergence on the summed MSE with ridge
   ``si_ridge``), ranked, with the functional SI on held-out points;
3. the f-CMI / e-CMI / loss-difference CMI bounds (:func:`gbounds.bounds.cmi_bounds`) from a
   supersample experiment (:func:`gbounds.supersample.run_supersample`) that retrains the recipe ``k1 x k2``
   times on supersamples of the pool at the model's training-set size, or from an existing
   results directory;
4. PAC-Bayes certificates (:func:`gbounds.bounds.pac_bayes_certificate`) of a Gaussian posterior
   around the trained weights with the prior at the initialisation.

``budget`` multiplies the cost of step 3: ``k1``, ``k2`` and the number of training steps are
each scaled by ``budget ** (1/3)`` (rounded; ``k1 >= 1``, ``k2 >= 2``, ``steps >= 1``), so
``budget = 0.5`` costs about half. With ``out_dir`` every finished stage is written atomically
and a rerun with the same inputs resumes: finished stages are loaded, the supersample run
resumes from its last finished chunk.

Caveat on what is compared: the CMI bounds bound the EXPECTED gap of the training algorithm at
this training-set size (averaged over training sets and runs; the supersample runs' mean gap is
the measured counterpart), while the PAC-Bayes certificates bound, with probability
``1 - delta - delta_mc``, the test error of the stochastic network ``N(w, s^2 I)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import json
import math
import os
import pathlib
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gbounds.data import _datasets as _data
from gbounds._src import errors as _errors
from gbounds._src import io as _io
from gbounds.analysis import _report as rp
from gbounds.train._train import TrainConfig


# ----------------------------------------------------------------------------- inputs


class AnalysisData(NamedTuple):
  """Training set, test set and the pool the supersamples are drawn from.

  Attributes:
    x_train, y_train: the ``n`` examples the model was trained on.
    x_test, y_test: held-out examples (measured test error, F-SI, stochastic test error).
    x_pool, y_pool: every example of the task except the test set (the supersamples'
      population; it contains the training set).
    description: where the data came from.
  """
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  x_pool: np.ndarray
  y_pool: np.ndarray
  description: str


def _check_dataset_name(name: str) -> str:
  key = str(name).strip().lower().replace("-", "_")
  if key not in _data.DATASETS:
    _errors.fail("dataset", f"one of {list(_data.DATASETS)}", repr(name))
  return key


def analysis_data(dataset: str = "mnist", *, classes: Sequence[int] | None = (4, 9),
                  n_train: int = 500, n_test: int = 500, split: str = "test", seed: int = 0,
                  data_dir: str | os.PathLike | None = None) -> AnalysisData:
  """Loads ``dataset`` (one of :data:`gbounds.data.DATASETS`), keeps ``classes`` (relabelled
  0..k-1; None keeps all), shuffles with ``seed`` and splits it.

  The last ``n_test`` examples of the shuffled task are the test set, the first ``n_train`` the
  training set; the pool is everything but the test set. Train a model on ``x_train`` to
  analyse it. (The offline data directory holds only MNIST's test split, hence ``split``.)
  """
  key = _check_dataset_name(dataset)
  for name, v in (("n_train", n_train), ("n_test", n_test)):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 2:
      _errors.fail(name, "an integer >= 2", repr(v))
  if classes is not None:
    try:
      raw = list(classes)
      classes = tuple(int(c) for c in raw)
    except (TypeError, ValueError, OverflowError):
      _errors.fail("classes", "a sequence of integer class labels", repr(classes))
    if any(c != r for c, r in zip(classes, raw)):
      _errors.fail("classes", "integer class labels", repr(raw))
    if len(classes) < 2:
      _errors.fail("classes", "at least two classes (a one-class task has nothing to bound)",
                   list(classes))
    if len(set(classes)) != len(classes):
      _errors.fail("classes", "distinct classes (a repeated class would silently make a "
                   "smaller task)", list(classes))
  x, y = _data.load_dataset(key, split, data_dir=data_dir)
  if classes is not None:
    present = set(np.unique(np.asarray(y)).tolist())
    missing = [c for c in classes if c not in present]
    if missing:
      _errors.fail("classes", f"classes present in {key} ({split} split): "
                   f"{sorted(present)}", f"{list(classes)} ({missing} absent)")
    keep = np.isin(y, classes)
    # Relabel in the order given: classes[j] -> j (for two classes: negative 0, positive 1).
    lookup = {c: j for j, c in enumerate(classes)}
    x, y = x[keep], np.asarray([lookup[int(v)] for v in np.asarray(y)[keep]], np.int32)
  if n_train + n_test > len(y):
    _errors.fail("n_train + n_test", f"at most the {len(y)} examples of the task",
                 n_train + n_test)
  perm = np.random.default_rng([int(seed), 777]).permutation(len(y))
  x, y = x[perm], y[perm]
  cut = len(y) - n_test
  for part, labels in (("training set", y[:n_train]), ("test set", y[cut:])):
    if len(np.unique(labels)) < 2:
      _errors.fail("classes", f"at least two classes in the {part}",
                   f"only class {np.unique(labels).tolist()} among its {len(labels)} examples "
                   "(use more examples or classes that both occur)")
  desc = f"{key} ({split} split)" + (f", classes {list(classes)}" if classes is not None else "")
  return AnalysisData(x[:n_train], y[:n_train], x[cut:], y[cut:], x[:cut], y[:cut],
                      f"{desc}: {n_train} train, {n_test} test, pool {cut}")


def default_data(*, n_train: int = 500, n_test: int = 500, seed: int = 0,
                 data_dir: str | os.PathLike | None = None) -> AnalysisData:
  """MNIST 4-vs-9 from the data directory, or scikit-learn's digits 4-vs-9 without MNIST."""
  try:
    return analysis_data("mnist", n_train=n_train, n_test=n_test, seed=seed, data_dir=data_dir)
  except _errors.DataNotFoundError:
    avail = int(np.sum(np.isin(_data.load_digits()[1], (4, 9))))
    nt = min(n_test, avail // 3)
    return analysis_data("digits", n_train=min(n_train, avail - nt), n_test=nt, seed=seed)


def load_module(path: str, kwargs: dict | None = None):
  """Instantiates a Flax Linen module from ``"package.module:Class"`` (or ``package.module.Class``)
  with constructor ``kwargs``.

  The module is IMPORTED, which executes its top-level code: name only modules you trust. A
  module in the current working directory is found (the directory is put on ``sys.path`` for
  the import only, as ``python -m`` would), as are installed packages.
  """
  from flax import linen as nn
  if not isinstance(path, str) or not path.strip():
    _errors.fail("module", "an import path 'package.module:Class'", repr(path))
  mod_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
  if not mod_name or not attr:
    _errors.fail("module", "an import path 'package.module:Class'", repr(path))
  cwd = os.getcwd()
  added = cwd not in sys.path and "" not in sys.path
  if added:
    sys.path.insert(0, cwd)
  try:
    mod = importlib.import_module(mod_name)
  except ImportError as e:
    _errors.fail("module", "an importable module path 'package.module:Class' (installed, or a "
                 f"file in the current directory {cwd})", f"{path!r} ({type(e).__name__}: {e})")
  finally:
    if added:
      with contextlib.suppress(ValueError):
        sys.path.remove(cwd)
  if not hasattr(mod, attr):
    _errors.fail("module", f"a class defined in {mod_name}", f"{path!r} (no attribute {attr!r})")
  cls = getattr(mod, attr)
  if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
    _errors.fail("module", "a flax.linen.Module class", f"{path!r} ({type(cls).__name__})")
  if kwargs is not None and not isinstance(kwargs, dict):
    _errors.fail("module_kwargs", "a JSON object of constructor arguments",
                 type(kwargs).__name__)
  kwargs = dict(kwargs or {})
  try:
    return cls(**kwargs)
  except TypeError as e:
    _errors.fail("module_kwargs", f"constructor arguments of {attr}", f"{kwargs} ({e})")


def save_checkpoint(path: str | os.PathLike, params: Any, *, init_params: Any = None) -> None:
  """Saves trained ``params`` (and the ``init_params`` training started from, the PAC-Bayes
  prior's centre) as an Orbax checkpoint directory ``{"params": ..., "init_params": ...}``.

  Orbax writes to a temporary directory and renames it when complete; an existing ``path`` is
  never overwritten (an error is raised instead).
  """
  import orbax.checkpoint as ocp
  path = pathlib.Path(path).absolute()
  if path.exists():
    _errors.fail("path", "a checkpoint directory that does not exist yet", str(path))
  tree = {"params": params}
  if init_params is not None:
    tree["init_params"] = init_params
  ck = ocp.StandardCheckpointer()
  ck.save(path, tree)
  ck.wait_until_finished()


def _shapes(tree) -> dict[str, tuple]:
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(k): tuple(np.shape(v)) for k, v in flat}


def load_checkpoint(path: str | os.PathLike, module: Any, example_input: Any
                    ) -> tuple[Any, Any]:
  """Restores ``(params, init_params or None)`` from an Orbax checkpoint written by
  :func:`save_checkpoint` (or holding a bare parameter tree), checked against ``module``.

  Raises :class:`gbounds.InvalidInputError` naming the first mismatching parameter when the
  checkpoint does not match the module's parameters (names and shapes).
  """
  path = pathlib.Path(path).absolute()
  if not path.is_dir():
    _errors.fail("checkpoint", "an Orbax checkpoint directory", f"{path} (not a directory)")
  import orbax.checkpoint as ocp
  try:
    tree = ocp.StandardCheckpointer().restore(path)
  except Exception as e:  # orbax raises many types for unreadable directories
    _errors.fail("checkpoint", "a readable Orbax checkpoint directory",
                 f"{path} ({type(e).__name__}: {str(e)[:200]})")
  tree = jax.tree_util.tree_map(np.asarray, tree)
  if isinstance(tree, dict) and "params" in tree and set(tree) <= {"params", "init_params"}:
    params, init = tree["params"], tree.get("init_params")
  else:
    params, init = tree, None
  expected = jax.eval_shape(lambda: module.init(jax.random.key(0),
                                                jnp.asarray(example_input[:1]))["params"])
  want, got = _shapes(expected), _shapes(params)
  for name in sorted(set(want) | set(got)):
    if want.get(name) != got.get(name):
      _errors.fail("checkpoint", f"parameters of {type(module).__name__} "
                   f"({len(want)} arrays; {name} of shape {want.get(name, 'absent')})",
                   f"{path} with {name} of shape {got.get(name, 'absent')}")
  if init is not None and _shapes(init) != want:
    _errors.fail("checkpoint", "init_params with the shapes of params", str(path))
  to_tree = lambda t: jax.tree_util.tree_map(  # noqa: E731
      lambda e, v: jnp.asarray(v, e.dtype), expected, t)
  return to_tree(params), (None if init is None else to_tree(init))


def check_output_dir(path: str | os.PathLike) -> pathlib.Path:
  """Creates ``path`` if needed and checks that it is writable (before any work is done)."""
  p = pathlib.Path(path)
  try:
    p.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=p):
      pass
  except OSError as e:
    _errors.fail("out_dir", "a writable directory", f"{p} ({e.strerror or e})")
  return p


# ----------------------------------------------------------------------------- configuration


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
  """What :func:`analyze` computes, and how much it spends.

  Attributes:
    budget: cost multiplier of the supersample run (``k1``, ``k2``, steps each times
      ``budget ** (1/3)``).
    k1, k2: supersamples and masks per supersample at ``budget = 1``.
    supersample_n: pairs per supersample (default: the training-set size, capped at half the
      pool).
    sample_info, cmi, pac_bayes: which stages run.
    si_ridge: ridge ``lambda`` of the linearized summed-MSE training (SI stage).
    si_heldout: test points for the functional SI.
    si_sigma: weight-noise std of the smooth SI (nats scale with ``1 / sigma^2``).
    delta, delta_mc, mc_samples, sigmas: PAC-Bayes settings
      (:func:`gbounds.bounds.pac_bayes_certificate`).
    ntk_chunk_size: examples per Jacobian chunk.
    seed: seed of the supersample design, initialisations and Monte Carlo draws.
  """
  budget: float = 1.0
  k1: int = 4
  k2: int = 12
  supersample_n: int | None = None
  sample_info: bool = True
  cmi: bool = True
  pac_bayes: bool = True
  si_ridge: float = 1.0
  si_heldout: int = 200
  si_sigma: float = 1.0
  delta: float = 0.025
  delta_mc: float = 0.01
  mc_samples: int = 200
  sigmas: tuple[float, ...] | None = None
  ntk_chunk_size: int = 128
  seed: int = 0

  def __post_init__(self):
    for name in ("budget", "si_ridge", "si_sigma"):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        _errors.fail(name, "a positive number", repr(v))
      _errors.check_positive(name, v)
    for name in ("k1", "k2", "si_heldout", "mc_samples", "ntk_chunk_size", "seed",
                 "supersample_n"):
      v = getattr(self, name)
      if name == "supersample_n" and v is None:
        continue
      minimum = {"k2": 2, "seed": 0, "supersample_n": 1}.get(name, 1)
      if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        what = ("at least 2 masks per supersample (an integer >= 2)" if name == "k2"
                else f"an integer >= {minimum}")
        _errors.fail(name, what, repr(v))
    for name in ("sample_info", "cmi", "pac_bayes"):
      if not isinstance(getattr(self, name), bool):
        _errors.fail(name, "True or False", repr(getattr(self, name)))
    for name in ("delta", "delta_mc"):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        _errors.fail(name, "a confidence in the open interval (0, 1)", repr(v))
      _errors.check_open_unit_interval(name, v)
    if self.delta + self.delta_mc >= 1:
      _errors.fail("delta + delta_mc", "a total failure probability below 1",
                   self.delta + self.delta_mc)
    if self.sigmas is not None:
      try:
        sig = np.asarray(self.sigmas, np.float64)
      except (TypeError, ValueError):
        _errors.fail("sigmas", "a sequence of positive scales", repr(self.sigmas))
      _errors.check_rank("sigmas", sig, 1)
      _errors.check_nonempty("sigmas", sig)
      _errors.check_positive("sigmas", sig)

  def scaled(self, steps: int) -> tuple[int, int, int]:
    """``(k1, k2, steps)`` at this budget."""
    f = float(self.budget) ** (1.0 / 3.0)
    return (max(1, round(self.k1 * f)), max(2, round(self.k2 * f)), max(1, round(steps * f)))


# ----------------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True)
class SampleInfoRanking:
  """Sample information of every training example (nats), most informative first.

  Attributes:
    order: training indices sorted by decreasing ``si``.
    si: ``(n,)`` smooth SI ``||w - w_-i||^2 / (2 sigma^2)`` per training index.
    fsi: ``(n,)`` functional SI on held-out points, per training index.
    labels: ``(n,)`` training labels.
    settings: the linearization settings.
  """
  order: np.ndarray
  si: np.ndarray
  fsi: np.ndarray
  labels: np.ndarray
  settings: dict


class BoundRow(NamedTuple):
  """One row of the bound table (0-1 error units).

  Attributes:
    name: the bound.
    family: ``"CMI (expected)"`` or ``"PAC-Bayes (w.p. 1-delta)"``.
    gap_bound: bound on the gap.
    test_error_bound: bound on the test error.
    measured_gap: the gap it bounds (supersample mean gap; for PAC-Bayes, the stochastic
      network's Monte Carlo test error minus its Monte Carlo training error).
    measured_test_error: the test error it bounds.
    valid: the row is a guarantee: applicable (CMI) or non-vacuous (PAC-Bayes: bound < 1),
      and its bound values are finite. False rows are reported but certify nothing.
    source: paper and formula.
    reason: why ``valid`` is False ("" when valid).
  """
  name: str
  family: str
  gap_bound: float
  test_error_bound: float
  measured_gap: float
  measured_test_error: float
  valid: bool
  source: str
  reason: str = ""


@dataclasses.dataclass(frozen=True)
class Analysis:
  """Everything :func:`analyze` computed (see its docstring). Errors are 0-1 errors."""
  data: str
  model: str
  recipe: dict
  n_train: int
  n_test: int
  num_params: int
  train_error: float
  test_error: float
  gap: float
  sample_info: SampleInfoRanking | None
  cmi: Any  # gbounds.bounds.BoundsReport | None
  supersample: dict | None
  pac_bayes: Any  # gbounds.bounds.PacBayesCertificate | None
  config: dict
  seconds: dict
  notes: tuple[str, ...]

  def bound_rows(self) -> list[BoundRow]:
    """One row per bound; ``valid`` is False, with a ``reason``, for every row that certifies
    nothing (not applicable, vacuous, or a non-finite value)."""
    rows = []

    def row(name, family, gap, test, m_gap, m_test, ok, why, source):
      gap, test = float(gap), float(test)
      if not (math.isfinite(gap) and math.isfinite(test)):
        ok, why = False, "; ".join(s for s in (why, "non-finite bound value") if s)
      rows.append(BoundRow(name, family, gap, test, float(m_gap), float(m_test), bool(ok),
                           source, "" if ok else (why or "not certified")))

    if self.cmi is not None:
      ss = self.supersample
      for b in self.cmi.bounds:
        row(b.name, "CMI (expected)", b.value, b.test_error, ss["gap"], ss["ghost_error"],
            b.applicable, "" if b.applicable else f"not applicable: {b.note}", b.source)
    if self.pac_bayes is not None:
      pb = self.pac_bayes
      for r in pb.rows():
        row(r["name"], "PAC-Bayes (w.p. 1-delta)", r["gap_bound"], r["test_error_bound"],
            pb.stochastic_test_error - pb.mc_error, pb.stochastic_test_error,
            not r["vacuous"], "vacuous (bound >= 1)" if r["vacuous"] else "", r["source"])
    return rows

  def bound_table(self) -> rp.Table:
    rows = tuple((r.name, r.family, r.gap_bound, r.measured_gap, r.test_error_bound,
                  r.measured_test_error, r.valid,
                  r.valid and r.gap_bound >= r.measured_gap, r.reason)
                 for r in self.bound_rows())
    return rp.Table("bounds", "Generalization bounds beside the measured errors",
                    ("bound", "family", "gap bound", "measured gap", "test-error bound",
                     "measured test error", "valid", "valid and above gap", "why not valid"),
                    rows,
                    note=("CMI bounds: expected gap of the training algorithm at this n, measured "
                          "by the supersample runs (mutual informations in nats inside). "
                          "PAC-Bayes: test error of the stochastic network N(w, s^2 I), "
                          "probability >= 1 - delta - delta_mc. Not applicable / vacuous rows "
                          "are reported but are no guarantee."))

  def summary_table(self) -> rp.Table:
    rows = [("trained model", self.train_error, self.test_error, self.gap)]
    if self.supersample is not None:
      s = self.supersample
      rows.append((f"supersample runs ({s['k1']} x {s['k2']}, n = {s['n']})", s["train_error"],
                   s["ghost_error"], s["gap"]))
    if self.pac_bayes is not None:
      p = self.pac_bayes
      rows.append((f"stochastic network N(w, {p.sigma:.3g}^2 I)", p.mc_error,
                   p.stochastic_test_error, p.stochastic_test_error - p.mc_error))
    return rp.Table("measured", "Measured errors", ("model", "train error", "test error", "gap"),
                    tuple(rows))

  def format(self) -> str:
    return rp.tables_text([self.summary_table(), self.bound_table()])

  def to_dict(self) -> dict:
    d = {k: getattr(self, k) for k in ("data", "model", "recipe", "n_train", "n_test",
                                        "num_params", "train_error", "test_error", "gap",
                                        "supersample", "config", "seconds", "notes")}
    d["bounds"] = [r._asdict() for r in self.bound_rows()]
    if self.sample_info is not None:
      s = self.sample_info
      d["sample_information"] = {"order": s.order, "si": s.si, "fsi": s.fsi,
                                 "labels": s.labels, "settings": s.settings,
                                 "units": "nats"}
    if self.cmi is not None:
      m = self.cmi.measured
      d["cmi"] = {"k1": self.cmi.k1, "k2": self.cmi.k2, "n": self.cmi.n,
                  "estimator": self.cmi.estimator,
                  "measured": {"train_error": m.train_error, "test_error": m.test_error,
                               "gap": m.gap},
                  "bounds": [dict(dataclasses.asdict(b)) for b in self.cmi.bounds]}
    if self.pac_bayes is not None:
      d["pac_bayes"] = self.pac_bayes.to_dict()
    return json.loads(json.dumps(d, default=_io._default))


# ----------------------------------------------------------------------------- stages


def _digest(*parts) -> str:
  h = hashlib.sha256()
  for p in parts:
    if isinstance(p, (np.ndarray, jax.Array)):
      a = np.ascontiguousarray(np.asarray(p))
      h.update(str((a.shape, a.dtype.str)).encode())
      h.update(a.tobytes())
    else:
      h.update(json.dumps(p, sort_keys=True, default=_io._default).encode())
  return h.hexdigest()[:16]


def _tree_digest(tree) -> str:
  return _digest(*[np.asarray(v) for v in jax.tree_util.tree_leaves(tree)])


def _cached(out: pathlib.Path | None, name: str, key: str):
  if out is None:
    return None
  f = out / "stages" / f"{name}.json"
  if not f.exists():
    return None
  try:
    d = json.loads(f.read_text())
  except (OSError, json.JSONDecodeError):
    return None
  return d["value"] if d.get("key") == key else None


def _store(out: pathlib.Path | None, name: str, key: str, value) -> None:
  if out is not None:
    _io.atomic_write_json(out / "stages" / f"{name}.json", {"key": key, "value": value})


class _Bar:
  """A tqdm bar fed with ``(done, total)`` callbacks (or nothing when disabled)."""

  def __init__(self, enabled: bool, desc: str, total: int, unit: str):
    self.bar = None
    if enabled:
      try:
        from tqdm.auto import tqdm
        self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False)
      except ImportError:  # pragma: no cover
        self.bar = None
    self.last = 0

  def __call__(self, done, total=None):
    if self.bar is not None:
      if total is not None and self.bar.total != total:
        self.bar.total = total
      self.bar.update(done - self.last)
    self.last = done

  def close(self):
    if self.bar is not None:
      self.bar.close()


def _check_data_arrays(data: AnalysisData) -> None:
  """Shapes, finiteness and non-degeneracy of the data (before any work)."""
  x_shape = None
  for part in ("train", "test", "pool"):
    x, y = getattr(data, f"x_{part}"), getattr(data, f"y_{part}")
    _errors.check_nonempty(f"data.x_{part}", x)
    _errors.check_rank(f"data.y_{part}", y, 1)
    _errors.check_same_leading((f"data.x_{part}", f"data.y_{part}"), x, y)
    _errors.check_finite(f"data.x_{part}", x)
    if x_shape is None:
      x_shape = np.shape(x)[1:]
    elif np.shape(x)[1:] != x_shape:
      _errors.fail(f"data.x_{part}", f"examples of shape {x_shape} as in data.x_train",
                   f"shape {np.shape(x)[1:]}")
  for part in ("train", "pool"):
    y = np.asarray(getattr(data, f"y_{part}"))
    if len(np.unique(y)) < 2:
      _errors.fail(f"data.y_{part}", "labels of at least two classes (a one-class task makes "
                   "every bound trivially 0)", f"only class {np.unique(y).tolist()}")
  if len(data.y_pool) < 2:
    _errors.fail("data.x_pool", "at least 2 examples to draw supersample pairs from",
                 len(data.y_pool))


def _check_labels_against_model(apply_fn, params, data: AnalysisData) -> int:
  out = jax.eval_shape(apply_fn, params, jnp.asarray(data.x_train[:1]))
  if not hasattr(out, "shape") or len(out.shape) != 2:
    _errors.fail("model", "a classifier with outputs (batch, K)",
                 f"outputs {getattr(out, 'shape', type(out).__name__)}")
  k = int(out.shape[-1])
  if k < 2:
    _errors.fail("model", "a classifier with at least 2 outputs", f"{k} output")
  for part in ("train", "test", "pool"):
    _errors.check_labels(f"data.y_{part}", getattr(data, f"y_{part}"), k)
  return k


def _err(apply_fn, params, x, y, batch=1024) -> float:
  wrong = 0
  for s in range(0, len(y), batch):
    logits = apply_fn(params, jnp.asarray(x[s:s + batch]))
    if not bool(jnp.all(jnp.isfinite(logits))):
      _errors.fail("params", "a model whose outputs are finite on the data",
                   "non-finite logits (NaN or inf)")
    wrong += int(jnp.sum(jnp.argmax(logits, -1) != jnp.asarray(y[s:s + batch])))
  return wrong / len(y)


def _sample_info_stage(apply_fn, params, init_params, data: AnalysisData, cfg: AnalysisConfig
                       ) -> SampleInfoRanking:
  from gbounds.info._sample_info import sample_information
  m = min(cfg.si_heldout, len(data.y_test))
  si = sample_information(
      apply_fn, init_params, jnp.asarray(data.x_train), np.asarray(data.y_train),
      learning_rate=1.0, t=math.inf, weight_decay=cfg.si_ridge, time="continuous",
      x_heldout=jnp.asarray(data.x_test[:m]), sigma=cfg.si_sigma, expansion="trained",
      trained_params=params, method="auto", ntk_chunk_size=cfg.ntk_chunk_size)
  n = len(data.y_train)
  vals = np.zeros(n)
  fvals = np.zeros(n)
  vals[np.asarray(si.indices)] = np.asarray(si.si, np.float64)
  fvals[np.asarray(si.indices)] = np.asarray(si.fsi, np.float64)
  settings = dataclasses.asdict(si.settings)
  settings["note"] = ("network linearized at the trained weights; linearized training from the "
                      "initial weights by gradient flow to convergence on the summed MSE to "
                      "one-hot targets with ridge lambda (weight_decay)")
  return SampleInfoRanking(np.argsort(-vals, kind="stable"), vals, fvals,
                           np.asarray(data.y_train), settings)


def _ranking_from_json(d) -> SampleInfoRanking:
  return SampleInfoRanking(np.asarray(d["order"]), np.asarray(d["si"]), np.asarray(d["fsi"]),
                           np.asarray(d["labels"]), d["settings"])


def _certificate_from_json(d):
  from gbounds.bounds._pac_bayes import PacBayesCertificate, SigmaSelection
  d = dict(d)
  d.pop("rows", None)
  d["selection"] = tuple(SigmaSelection(**s) for s in d["selection"])
  return PacBayesCertificate(**d)


def analyze(model: Any, data: AnalysisData, recipe: TrainConfig, *, params: Any,
            init_params: Any = None, config: AnalysisConfig = AnalysisConfig(),
            out_dir: str | os.PathLike | None = None,
            results_dir: str | os.PathLike | None = None, progress: bool = True,
            log: Callable[[str], None] | None = None) -> Analysis:
  """Analyses a trained Linen model: measured errors, sample information, CMI bounds and
  PAC-Bayes certificates (see the module docstring for what each is).

  Args:
    model: the ``flax.linen.Module`` (e.g. from :func:`load_module`).
    data: :class:`AnalysisData`; the model was trained on ``data.x_train``.
    recipe: the :class:`gbounds.train.TrainConfig` the model was trained with (the supersample runs
      retrain it, with steps scaled by the budget).
    params: the trained parameters.
    init_params: the parameters training started from (the PAC-Bayes prior's centre and the
      start of the linearized training). None: a fresh initialisation from ``config.seed``
      (data-independent, so still a valid prior, but looser).
    config: :class:`AnalysisConfig`.
    out_dir: write each finished stage here (atomically) and resume from it; the supersample
      chunks go to ``out_dir/supersample`` unless ``results_dir`` is given.
    results_dir: the supersample results directory (an existing finished or partial run of the
      same configuration is loaded or resumed).
    progress: show tqdm progress bars.
    log: called with one line per stage (default: nothing).

  Returns:
    :class:`Analysis`.
  """
  from flax import linen as nn
  if not isinstance(model, nn.Module):
    _errors.fail("model", "a flax.linen.Module", type(model).__name__)
  if not isinstance(recipe, TrainConfig):
    _errors.fail("recipe", "a gbounds.train.TrainConfig", type(recipe).__name__)
  if not isinstance(config, AnalysisConfig):
    _errors.fail("config", "a gbounds.AnalysisConfig", type(config).__name__)
  if not isinstance(data, AnalysisData):
    _errors.fail("data", "a gbounds.analysis.AnalysisData (see gbounds.analysis.analysis_data)",
                 type(data).__name__)
  _check_data_arrays(data)
  apply_fn = lambda p, x: model.apply({"params": p}, x)  # noqa: E731
  try:
    expected = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                                 jnp.asarray(data.x_train[:1]))["params"])
  except Exception as e:  # noqa: BLE001 -- the model cannot take these inputs; no deep trace
    _errors.fail("data", f"inputs that {type(model).__name__} accepts",
                 f"examples of shape {np.shape(data.x_train)[1:]} ({type(e).__name__}: "
                 f"{str(e)[:200]})")
  if _shapes(expected) != _shapes(params):
    _errors.fail("params", f"parameters of {type(model).__name__} on inputs of shape "
                 f"{np.shape(data.x_train)[1:]}", "a different parameter tree")
  notes = []
  if init_params is None:
    init_params = model.init(jax.random.fold_in(jax.random.key(config.seed), 999_999),
                             jnp.asarray(data.x_train[:1]))["params"]
    notes.append("init_params not given: the PAC-Bayes prior and the linearized training start "
                 f"from a fresh initialisation (seed {config.seed}), not the training run's.")
  elif _shapes(init_params) != _shapes(params):
    _errors.fail("init_params", "a tree with the shapes of params", "a different tree")
  # No bound from non-finite quantities: NaN/inf weights are refused before any stage runs.
  _errors.check_finite_tree("params", params)
  _errors.check_finite_tree("init_params", init_params)
  _check_labels_against_model(apply_fn, params, data)
  out = None if out_dir is None else check_output_dir(out_dir)
  if results_dir is not None:
    check_output_dir(results_dir)
  log = log or (lambda s: None)
  key_base = [_tree_digest(params), _tree_digest(init_params),
              _digest(data.x_train, data.y_train, data.x_test, data.y_test),
              dataclasses.asdict(recipe), repr(model)]
  seconds = {}
  n, n_test = len(data.y_train), len(data.y_test)
  num_params = int(sum(np.size(v) for v in jax.tree_util.tree_leaves(params)))

  t0 = time.perf_counter()
  train_error = _err(apply_fn, params, data.x_train, data.y_train)
  test_error = _err(apply_fn, params, data.x_test, data.y_test)
  seconds["measured"] = time.perf_counter() - t0
  log(f"measured: train error {train_error:.4f}, test error {test_error:.4f}, gap "
      f"{test_error - train_error:.4f}")

  # 2. Sample information.
  ranking = None
  if config.sample_info:
    t0 = time.perf_counter()
    k = _digest(key_base, "si", config.si_ridge, config.si_heldout, config.si_sigma)
    cached = _cached(out, "sample_info", k)
    if cached is not None:
      ranking = _ranking_from_json(cached)
    else:
      bar = _Bar(progress, "sample information (NTK + leave-one-out)", 1, "stage")
      ranking = _sample_info_stage(apply_fn, params, init_params, data, config)
      bar(1)
      bar.close()
      _store(out, "sample_info", k, {"order": ranking.order, "si": ranking.si,
                                     "fsi": ranking.fsi, "labels": ranking.labels,
                                     "settings": ranking.settings})
    seconds["sample_info"] = time.perf_counter() - t0
    log(f"sample information: top example {int(ranking.order[0])} with SI "
        f"{ranking.si[ranking.order[0]]:.4g} nats ({seconds['sample_info']:.1f} s)")

  # 3. CMI bounds from a supersample experiment.
  cmi = supersample = None
  if config.cmi:
    from gbounds.bounds._cmi import cmi_bounds
    from gbounds.supersample._supersample import load_supersample_results, run_supersample
    t0 = time.perf_counter()
    k1, k2, steps = config.scaled(recipe.steps)
    n_ss = config.supersample_n or n
    if 2 * n_ss > len(data.y_pool):
      notes.append(f"supersample n reduced from {n_ss} to {len(data.y_pool) // 2} (half the "
                   f"pool of {len(data.y_pool)})")
      n_ss = len(data.y_pool) // 2
    scaled = dataclasses.replace(recipe, steps=steps)
    rdir = (pathlib.Path(results_dir) if results_dir is not None
            else (None if out is None else out / "supersample"))
    result = None
    if rdir is not None and (rdir / "config.json").exists():
      try:
        result = load_supersample_results(rdir)
        log(f"supersample: loaded a finished run from {rdir}")
      except _errors.InvalidInputError:
        result = None  # partial: resumed below (the same configuration is checked there)
    if result is None:
      bar = _Bar(progress, f"supersample trainings ({k1} x {k2})", k1 * k2, "model")
      try:
        result = run_supersample(model, data.x_pool, data.y_pool, data.x_test, data.y_test,
                                 n=n_ss, k1=k1, k2=k2, train=scaled, seed=config.seed,
                                 results_dir=rdir, chunk_size=max(k2, 8), callback=bar)
      finally:
        bar.close()
    rk1, rk2, rn = result.masks.shape
    cmi = cmi_bounds(result.masks, result.predictions, result.labels, full_vector=False)
    supersample = {"k1": int(rk1), "k2": int(rk2), "n": int(rn),
                   "steps": int(result.config.get("train", {}).get("steps", steps)),
                   "train_error": result.train_error, "ghost_error": result.ghost_error,
                   "gap": result.gap, "test_error": result.mean_test_error,
                   "results_dir": None if rdir is None else str(rdir)}
    seconds["cmi"] = time.perf_counter() - t0
    log(f"supersample: {rk1} x {rk2} runs at n = {rn}, gap {result.gap:.4f}, f-CMI bound "
        f"{cmi['fcmi'].value:.4f} ({seconds['cmi']:.1f} s)")

  # 4. PAC-Bayes.
  cert = None
  if config.pac_bayes:
    from gbounds.bounds._pac_bayes import SIGMA_GRID, pac_bayes_certificate
    t0 = time.perf_counter()
    sig = tuple(config.sigmas or SIGMA_GRID)
    k = _digest(key_base, "pb", config.delta, config.delta_mc, config.mc_samples, sig,
                config.seed)
    cached = _cached(out, "pac_bayes", k)
    if cached is not None:
      cert = _certificate_from_json(cached)
    else:
      bar = _Bar(progress, "PAC-Bayes Monte Carlo", 1, "draw")
      try:
        cert = pac_bayes_certificate(apply_fn, params, init_params, data.x_train, data.y_train,
                                     x_test=data.x_test, y_test=data.y_test, sigmas=sig,
                                     delta=config.delta, delta_mc=config.delta_mc,
                                     mc_samples=config.mc_samples, seed=config.seed,
                                     callback=bar)
      finally:
        bar.close()
      _store(out, "pac_bayes", k, cert.to_dict())
    seconds["pac_bayes"] = time.perf_counter() - t0
    log(f"PAC-Bayes: sigma {cert.sigma:.3g}, KL {cert.kl:.4g} nats, PAC-Bayes-kl certificate "
        f"{cert.pac_bayes_kl:.4f} ({seconds['pac_bayes']:.1f} s)")

  cfg_dict = dataclasses.asdict(config)
  return Analysis(data=data.description, model=repr(model),
                  recipe=json.loads(json.dumps(dataclasses.asdict(recipe),
                                               default=_io._default)),
                  n_train=n, n_test=n_test, num_params=num_params, train_error=train_error,
                  test_error=test_error, gap=test_error - train_error, sample_info=ranking,
                  cmi=cmi, supersample=supersample, pac_bayes=cert, config=cfg_dict,
                  seconds=seconds, notes=tuple(notes))


# ----------------------------------------------------------------------------- report


def _bounds_figure(a: Analysis) -> rp.Figure:
  plt = rp.pyplot()
  rows = [r for r in a.bound_rows() if r.valid and math.isfinite(r.test_error_bound)]
  fig, ax = plt.subplots(figsize=(7, 0.32 * max(len(rows), 3) + 1.2))
  names = [f"{r.name} ({'CMI' if r.family.startswith('CMI') else 'PAC-Bayes'})" for r in rows]
  colors = ["tab:blue" if r.family.startswith("CMI") else "tab:orange" for r in rows]
  ax.barh(range(len(rows)), [r.test_error_bound for r in rows], color=colors)
  ax.set_yticks(range(len(rows)), names, fontsize=8)
  ax.axvline(a.test_error, color="k", ls="--", lw=1, label="test error (trained model)")
  if a.supersample is not None:
    ax.axvline(a.supersample["ghost_error"], color="tab:blue", ls=":", lw=1.2,
               label="test error (supersample runs)")
  if a.pac_bayes is not None:
    ax.axvline(a.pac_bayes.stochastic_test_error, color="tab:orange", ls=":", lw=1.2,
               label="test error (stochastic network)")
  ax.set_xlabel("bound on the test error (0-1)")
  ax.set_xlim(0, max([1.0] + [r.test_error_bound for r in rows]) * 1.02)
  ax.invert_yaxis()
  ax.legend(fontsize=7, loc="lower right")
  fig.tight_layout()
  return rp.Figure("bounds", "Test-error bounds", rp.figure_png(fig),
                   "Valid (applicable, non-vacuous) bounds on the test error; dashed/dotted lines:"
                   " the measured test errors they bound.")


def _si_figures(a: Analysis, data: AnalysisData | None) -> list[rp.Figure]:
  plt = rp.pyplot()
  s = a.sample_info
  figs = []
  fig, axs = plt.subplots(1, 2, figsize=(9, 3.2))
  vals = s.si[s.order]
  axs[0].plot(np.arange(1, len(vals) + 1), np.maximum(vals, 1e-300), lw=1.2)
  axs[0].set_yscale("log")
  axs[0].set_xscale("log")
  axs[0].set_xlabel("rank")
  axs[0].set_ylabel("sample information (nats)")
  axs[0].set_title("SI by rank", fontsize=9)
  for c in np.unique(s.labels):
    axs[1].hist(np.log10(np.maximum(s.si[s.labels == c], 1e-30)), bins=30, alpha=0.6,
                label=f"class {c}")
  axs[1].set_xlabel("log10 SI (nats)")
  axs[1].set_title("distribution per class", fontsize=9)
  axs[1].legend(fontsize=7)
  fig.tight_layout()
  figs.append(rp.Figure("sample_information", "Sample information of the training set",
                        rp.figure_png(fig), "Smooth SI ||w - w_-i||^2 / (2 sigma^2) of the network "
                        "linearized at the trained weights (nats)."))
  if data is not None and np.ndim(data.x_train) == 4 and np.shape(data.x_train)[-1] in (1, 3):
    top = s.order[:16]
    fig, axs = plt.subplots(2, 8, figsize=(9, 2.7))
    for ax, i in zip(axs.ravel(), top):
      img = np.asarray(data.x_train[i])
      ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray")
      ax.set_title(f"#{int(i)} y={int(s.labels[i])}\n{s.si[i]:.3g}", fontsize=6)
      ax.axis("off")
    fig.tight_layout()
    figs.append(rp.Figure("top_examples", "Most informative training examples",
                          rp.figure_png(fig), "The 16 training examples with the largest SI "
                          "(index, label, SI in nats)."))
  return figs


def _pac_bayes_figure(a: Analysis) -> rp.Figure:
  plt = rp.pyplot()
  sel = a.pac_bayes.selection
  fig, ax = plt.subplots(figsize=(5.5, 3.3))
  ax.plot([s.sigma for s in sel], [s.selection_bound for s in sel], "o-",
          label="PAC-Bayes-kl (selection draws)")
  ax.plot([s.sigma for s in sel], [s.selection_error for s in sel], "s-",
          label="stochastic training error")
  ax.axvline(a.pac_bayes.sigma, color="k", ls=":", lw=1, label="selected s")
  ax.set_xscale("log")
  ax.set_xlabel("posterior/prior std s")
  ax.set_ylabel("0-1 error")
  ax.legend(fontsize=7)
  fig.tight_layout()
  return rp.Figure("pac_bayes", "PAC-Bayes scale selection", rp.figure_png(fig),
                   "Bound and stochastic training error against the scale s of "
                   "Q = N(w, s^2 I), P = N(w0, s^2 I).")


def analysis_report(a: Analysis, *, data: AnalysisData | None = None,
                    extra_sections: Sequence[rp.Section] = (),
                    title: str = "gbounds analysis") -> rp.Report:
  """The :class:`gbounds.analysis._report.Report` of an analysis (``extra_sections`` go first)."""
  secs = list(extra_sections)
  paras = (f"Data: {a.data}.", f"Model: {a.model} ({a.num_params} parameters).",
           f"Recipe: {json.dumps(a.recipe)}.", *a.notes)
  secs.append(rp.Section("Summary", paras, (a.summary_table(), a.bound_table()),
                         (_bounds_figure(a),) if a.bound_rows() else ()))
  if a.sample_info is not None:
    s = a.sample_info
    top = tuple((int(i), int(s.labels[i]), float(s.si[i]), float(s.fsi[i]))
                for i in s.order[:20])
    secs.append(rp.Section(
        "Sample information", (f"Settings: {json.dumps(s.settings, default=_io._default)}",),
        (rp.Table("sample_information_top", "Most informative training examples (nats)",
                  ("index", "label", "SI", "F-SI"), top),
         rp.Table("sample_information_all", "All training examples, ranked (nats)",
                  ("rank", "index", "label", "SI", "F-SI"),
                  tuple((r, int(i), int(s.labels[i]), float(s.si[i]), float(s.fsi[i]))
                        for r, i in enumerate(s.order)))),
        tuple(_si_figures(a, data))))
  if a.pac_bayes is not None:
    p = a.pac_bayes
    secs.append(rp.Section(
        "PAC-Bayes certificates",
        (f"Q = N(w, s^2 I), P = N(w0, s^2 I), s = {p.sigma:.4g} chosen on a grid of "
         f"{p.grid_size} (union bound ln {p.grid_size}); ||w - w0||^2 = {p.distance_sq:.4g}, "
         f"KL = {p.kl:.4g} nats; stochastic training error {p.mc_error:.4f} on {p.mc_samples} "
         f"draws, bounded by {p.empirical_error_bound:.4f} (delta' = {p.delta_mc}); "
         f"delta = {p.delta}.",),
        (rp.Table("pac_bayes_certificates", "Certificates on the stochastic test error",
                  ("certificate", "bound", "vacuous", "source"),
                  tuple((r["name"], r["test_error_bound"], r["vacuous"], r["source"])
                        for r in p.rows())),
         rp.Table("pac_bayes_grid", "Scale grid", ("s", "KL (nats)", "selection error",
                                                   "selection bound"),
                  tuple((s.sigma, s.kl, s.selection_error, s.selection_bound)
                        for s in p.selection))),
        (_pac_bayes_figure(a),)))
  if a.cmi is not None:
    secs.append(rp.Section(
        "CMI bounds (all)", (f"Supersample run: {json.dumps(a.supersample)}.",),
        (rp.Table("cmi_bounds", "Every CMI bound of gbounds.bounds.cmi_bounds",
                  ("bound", "gap bound", "test-error bound", "applicable", "note", "source"),
                  tuple((b.name, float(b.value), float(b.test_error), bool(b.applicable),
                         b.note, b.source) for b in a.cmi.bounds)),)))
  secs.append(rp.Section("Timing (s)", (), (rp.Table(
      "timing", "Seconds per stage", ("stage", "seconds"),
      tuple((k, float(v)) for k, v in a.seconds.items())),)))
  return rp.Report(title, a.to_dict(), tuple(secs))


def write_analysis_report(a: Analysis, out_dir: str | os.PathLike, *,
                          data: AnalysisData | None = None,
                          extra_sections: Sequence[rp.Section] = (),
                          extra_payload: dict | None = None) -> rp.ReportFiles:
  """Writes ``report.json``, CSV tables, PNG figures and ``report.html`` to ``out_dir``."""
  report = analysis_report(a, data=data, extra_sections=extra_sections)
  if extra_payload:
    report = dataclasses.replace(report, payload={**extra_payload, **report.payload})
  return rp.write_report(report, check_output_dir(out_dir))


__all__ = [
    "Analysis", "AnalysisConfig", "AnalysisData", "BoundRow", "SampleInfoRanking",
    "analysis_data", "analysis_report", "analyze", "check_output_dir", "default_data",
    "load_checkpoint", "load_module", "save_checkpoint", "write_analysis_report",
]
