"""The researcher's front door: everything gbounds knows about one trained model, in one report.

:func:`analyze` takes a trained model (a Flax Linen module with its parameters, e.g. from an
Orbax checkpoint plus the module's import path and constructor arguments: :func:`load_module`,
:func:`load_checkpoint`; an NNX module; or a :class:`gbounds.models.ModelFn`),
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
4. a PAC-Bayes certificate. By default (``pac_bayes_method="optimised"``) that of an optimised
   Gaussian posterior (:func:`gbounds.bounds.certify`; Dziugaite & Roy, UAI 2017; Perez-Ortiz
   et al., JMLR 2021) with a LEARNT prior when the data allow (:func:`prior_choice`: the
   recipe trains the prior mean on a random ``prior_fraction`` of the training set, each part
   holding at least :data:`MIN_PART_EXAMPLES` examples; the bound uses the other part), else a
   DATA_FREE prior at the initialisation; the report states the choice and why, the
   certificate, its relaxations, the held-out bound, the Monte Carlo term and what each choice
   cost. ``pac_bayes_method="isotropic"`` gives the earlier certificates
   (:func:`gbounds.bounds.pac_bayes_certificate`) of ``N(w, s^2 I)`` around the trained weights
   with the prior ``N(w0, s^2 I)`` at the initialisation.

The steps are a pipeline of stages (``_STAGES``): each stage is a function of one context (the
adapted model, data, recipe and configuration) to its result, ``run(ctx) -> value``, with an
optional cache key and JSON encoding; one runner times, logs, caches and reports progress
(``callback(done, total)`` over stages) for all of them.

``budget`` multiplies the cost of step 3: ``k1``, ``k2`` and the number of training steps are
each scaled by ``budget ** (1/3)`` (rounded; ``k1 >= 1``, ``k2 >= 2``, ``steps >= 1``), so
``budget = 0.5`` costs about half. With ``out_dir`` every finished stage is written atomically
and a rerun with the same inputs resumes: finished stages are loaded, the supersample run
resumes from its last finished chunk.

Caveat on what is compared: the CMI bounds bound the EXPECTED gap of the training algorithm at
this training-set size (averaged over training sets and runs; the supersample runs' mean gap is
the measured counterpart), while the PAC-Bayes certificates bound, with probability
``1 - delta - delta_mc``, the test error of the stochastic network (the optimised posterior
``Q``, or ``N(w, s^2 I)`` with the isotropic method).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import importlib
import json
import math
import os
import pathlib
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import gbounds.data as _data
import gbounds.viz as _viz
from gbounds._src import batching as _batching
from gbounds._src import errors as _errors
from gbounds._src import io as _io
from gbounds._src import progress as _progress
from gbounds._src import results as _results
from gbounds.analysis import _report as rp
from gbounds.bounds import (
  SIGMA_GRID,
  BoundName,
  BoundsReport,
  CertifyConfig,
  Objective,
  PacBayesCertificate,
  PosteriorCertificate,
  PriorKind,
  certify,
  cmi_bounds,
  pac_bayes_certificate,
)
from gbounds.info import sample_information
from gbounds.models import ModelFn, as_model_fn
from gbounds.supersample import load_supersample_results, run_supersample
from gbounds.train import TrainConfig

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

  to_dict = _results.namedtuple_to_dict
  from_dict = classmethod(_results.from_dict)


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

  Args:
    dataset: a name of :data:`gbounds.data.DATASETS`.
    classes: the classes kept, relabelled ``classes[j] -> j`` (None: all).
    n_train: training-set size (at least 2).
    n_test: test-set size (at least 2).
    split: the split of the dataset to load.
    seed: seed of the shuffle.
    data_dir: where the dataset files are (default: :func:`gbounds.data.data_dir`).

  Returns:
    :class:`AnalysisData`.
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
  """MNIST 4-vs-9 from the data directory, or scikit-learn's digits 4-vs-9 without MNIST.

  Args:
    n_train: training-set size.
    n_test: test-set size (capped at a third of the digits task without MNIST).
    seed: seed of the shuffle.
    data_dir: where the dataset files are.

  Returns:
    :class:`AnalysisData` (see :func:`analysis_data`).
  """
  try:
    return analysis_data("mnist", n_train=n_train, n_test=n_test, seed=seed, data_dir=data_dir)
  except _errors.DataNotFoundError:
    avail = int(np.sum(np.isin(_data.load_digits()[1], (4, 9))))
    nt = min(n_test, avail // 3)
    return analysis_data("digits", n_train=min(n_train, avail - nt), n_test=nt, seed=seed)


def load_module(path: str, kwargs: dict | None = None):
  """Instantiates a Flax Linen module from ``"package.module:Class"`` (or ``package.module.Class``)
  with constructor ``kwargs``.

  gbounds' own networks are named by their public path, ``"gbounds.models:MLP"`` or
  ``"gbounds.models:CNN"``. Paths of earlier versions that name the private module
  (``"gbounds.models._networks:MLP"``) still work (they name the same class), but are not a
  stable interface: use the public path.

  The module is IMPORTED, which executes its top-level code: name only modules you trust. A
  module in the current working directory is found (the directory is put on ``sys.path`` for
  the import only, as ``python -m`` would), as are installed packages.

  Args:
    path: ``"package.module:Class"`` of a ``flax.linen.Module`` subclass.
    kwargs: constructor arguments (a JSON object).

  Returns:
    The module instance.
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

  Args:
    path: the checkpoint directory to create.
    params: the trained parameters.
    init_params: the parameters training started from (optional).

  Returns:
    None.
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

  Args:
    path: the checkpoint directory.
    module: the Linen module the parameters belong to.
    example_input: a batch of inputs (only its shape and dtype are used).

  Returns:
    ``(params, init_params)``, ``init_params`` None when the checkpoint has none.
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
  """Creates ``path`` if needed and checks that it is writable (before any work is done).

  The one output-directory check of gbounds (the CLI uses it too).

  Args:
    path: the output directory.

  Returns:
    ``path`` as a ``pathlib.Path``.

  Raises:
    InvalidInputError: naming ``out_dir``, when the directory cannot be created or written.
  """
  p = pathlib.Path(path)
  try:
    p.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=p):
      pass
  except OSError as e:
    _errors.fail("out_dir", "a writable directory", f"{p} ({e.strerror or e})")
  return p


# ----------------------------------------------------------------------------- configuration


class PacBayesMethod(enum.StrEnum):
  """Which PAC-Bayes certificate the analysis computes.

  Attributes:
    OPTIMISED: an optimised Gaussian posterior with a learnt (or data-free) prior
      (:func:`gbounds.bounds.certify`; Perez-Ortiz et al., JMLR 2021). The default: far tighter
      when it applies.
    ISOTROPIC: ``Q = N(w, s^2 I)`` around the trained weights, ``P = N(w0, s^2 I)``, ``s`` on a
      grid (:func:`gbounds.bounds.pac_bayes_certificate`); the certificates of earlier versions.
  """
  OPTIMISED = "optimised"
  ISOTROPIC = "isotropic"


class PriorChoice(enum.StrEnum):
  """The prior of the optimised certificate.

  Attributes:
    AUTO: ``LEARNT`` when both parts of the split hold at least :data:`MIN_PART_EXAMPLES`
      examples, else ``DATA_FREE`` (:func:`prior_choice`).
    LEARNT: :attr:`gbounds.bounds.PriorKind.LEARNT` (any split leaving both parts non-empty).
    DATA_FREE: :attr:`gbounds.bounds.PriorKind.DATA_FREE`.
  """
  AUTO = "auto"
  LEARNT = "learnt"
  DATA_FREE = "data_free"


# Fewest examples in each part of a learnt prior's split for AUTO to choose it: with fewer, the
# prior's training set is too small to help and the bound's n_b too small to certify much
# (the bound's complexity term scales as 1 / n_b).
MIN_PART_EXAMPLES = 100


def _split_sizes(n: int, prior_fraction: float) -> tuple[int, int]:
  """``(n_prior, n_bound)`` as :func:`gbounds.bounds.certify` splits ``n`` examples."""
  n_prior = int(round(prior_fraction * n))
  return n_prior, n - n_prior


def prior_choice(choice: PriorChoice | str, n: int, prior_fraction: float
                 ) -> tuple[PriorKind, str]:
  """The prior of the optimised certificate, and the reason, for ``n`` training examples.

  ``AUTO`` chooses ``LEARNT`` when the split of ``n`` at ``prior_fraction`` leaves at least
  :data:`MIN_PART_EXAMPLES` examples in each part (the prior's training part and the bound's
  part), else ``DATA_FREE``. An explicit ``LEARNT`` needs both parts non-empty.

  Args:
    choice: a :class:`PriorChoice` (or its value).
    n: training examples.
    prior_fraction: share of them that trains a learnt prior, in (0, 1).

  Returns:
    ``(kind, reason)``: the :class:`gbounds.bounds.PriorKind` and a sentence for the report.

  Raises:
    gbounds.InvalidInputError: naming ``prior_fraction`` when an explicit ``LEARNT`` split
      leaves a part empty.
  """
  choice = _errors.as_enum("prior", choice, PriorChoice)
  _errors.check_int("n", n, 1)
  _errors.check_real("prior_fraction", prior_fraction, "a number in (0, 1)",
                     lambda v: 0 < v < 1)
  n_prior, n_bound = _split_sizes(n, prior_fraction)
  split = (f"{n_prior} of the {n} training examples train the prior (the recipe), the bound "
           f"uses the other {n_bound}")
  if choice is PriorChoice.DATA_FREE:
    return PriorKind.DATA_FREE, ("data-free prior at the initialisation (asked for); the bound "
                                 f"uses all {n} training examples")
  if choice is PriorChoice.LEARNT:
    if n_prior < 1 or n_bound < 1:
      _errors.fail("prior_fraction", f"a split of the {n} training examples leaving both parts "
                   "non-empty for the learnt prior", f"{prior_fraction} ({n_prior} / {n_bound})")
    return PriorKind.LEARNT, f"learnt prior (asked for): {split}"
  if min(n_prior, n_bound) >= MIN_PART_EXAMPLES:
    return PriorKind.LEARNT, (f"learnt prior (the default when each part of the split holds "
                              f"at least {MIN_PART_EXAMPLES} examples): {split}")
  return PriorKind.DATA_FREE, (
      f"data-free prior at the initialisation: a learnt prior needs at least "
      f"{MIN_PART_EXAMPLES} examples in each part, and a prior_fraction of {prior_fraction} "
      f"splits the {n} training examples {n_prior} / {n_bound}; the bound uses all {n}")


@dataclasses.dataclass(frozen=True)
class AnalysisConfig(_results.ResultMixin):
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
    delta, delta_mc: confidences of the PAC-Bayes certificates (either method).
    pac_bayes_method: :class:`PacBayesMethod` (``"optimised"``, the default, or
      ``"isotropic"``).
    mc_samples, sigmas: settings of the ``ISOTROPIC`` method
      (:func:`gbounds.bounds.pac_bayes_certificate`'s ``mc_samples`` and ``sigmas``).
    prior: :class:`PriorChoice` of the ``OPTIMISED`` method (default ``"auto"``).
    objective, prior_fraction, certificate_epochs, finetune_epochs, mc_draws, test_draws:
      settings of the ``OPTIMISED`` method (:class:`gbounds.bounds.CertifyConfig`'s
      ``objective``, ``prior_fraction``, ``epochs``, ``finetune_epochs``, ``mc_draws`` and
      ``test_draws``; its other settings keep their defaults, ``delta``, ``delta_mc`` and
      ``seed`` are this config's). Call :func:`gbounds.bounds.certify` for full control.
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
  pac_bayes_method: PacBayesMethod = PacBayesMethod.OPTIMISED
  prior: PriorChoice = PriorChoice.AUTO
  objective: Objective = CertifyConfig.objective
  prior_fraction: float = CertifyConfig.prior_fraction
  certificate_epochs: int = CertifyConfig.epochs
  finetune_epochs: int = CertifyConfig.finetune_epochs
  mc_draws: int = CertifyConfig.mc_draws
  test_draws: int = CertifyConfig.test_draws

  def __post_init__(self):
    for name, cls in (("pac_bayes_method", PacBayesMethod), ("prior", PriorChoice),
                      ("objective", Objective)):
      object.__setattr__(self, name, _errors.as_enum(name, getattr(self, name), cls))
    _errors.check_real("prior_fraction", self.prior_fraction, "a number in (0, 1)",
                       lambda v: 0 < v < 1)
    for name in ("certificate_epochs", "mc_draws", "test_draws"):
      _errors.check_int(name, getattr(self, name), 1)
    _errors.check_int("finetune_epochs", self.finetune_epochs, 0)
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

  def certify_config(self, n: int) -> CertifyConfig:
    """The :class:`gbounds.bounds.CertifyConfig` of the optimised certificate for ``n``
    training examples (the prior from :func:`prior_choice`).

    Args:
      n: training examples.

    Returns:
      The config: this config's prior choice, objective, prior fraction, epochs, draws,
      ``delta``, ``delta_mc`` and ``seed``; :class:`gbounds.bounds.CertifyConfig`'s defaults
      otherwise.
    """
    kind, _ = prior_choice(self.prior, n, self.prior_fraction)
    return CertifyConfig(prior=kind, prior_fraction=float(self.prior_fraction),
                         objective=self.objective, epochs=int(self.certificate_epochs),
                         finetune_epochs=int(self.finetune_epochs),
                         mc_draws=int(self.mc_draws), test_draws=int(self.test_draws),
                         delta=float(self.delta), delta_mc=float(self.delta_mc),
                         seed=int(self.seed))

  def scaled(self, steps: int) -> tuple[int, int, int]:
    """``(k1, k2, steps)`` at this budget.

    Args:
      steps: the recipe's training steps.

    Returns:
      ``(k1, k2, steps)``, each times ``budget ** (1/3)``, rounded (``k1 >= 1``, ``k2 >= 2``,
      ``steps >= 1``).
    """
    f = float(self.budget) ** (1.0 / 3.0)
    return (max(1, round(self.k1 * f)), max(2, round(self.k2 * f)), max(1, round(steps * f)))


# ----------------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True)
class SampleInfoRanking(_results.ResultMixin):
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

  def table(self) -> _results.Table:
    """Every training example, ranked by decreasing SI.

    Returns:
      A :class:`gbounds.Table` with columns rank, index, label, SI, F-SI (nats).
    """
    return _results.Table(
        ("rank", "index", "label", "SI", "F-SI"),
        tuple((r, int(i), int(self.labels[i]), float(self.si[i]), float(self.fsi[i]))
              for r, i in enumerate(self.order)),
        "All training examples, ranked (nats)")


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

  to_dict = _results.namedtuple_to_dict
  from_dict = classmethod(_results.from_dict)


def _certificate_from_dict(d: Mapping[str, Any]) -> PacBayesCertificate | PosteriorCertificate:
  """Either certificate from its ``to_dict`` (told apart by the optimised one's ``curve``)."""
  d = dict(d)
  if "curve" in d and "certificate" in d:
    return PosteriorCertificate.from_dict(d)
  d.pop("rows", None)  # derived (PacBayesCertificate.rows()), written for readers of the JSON
  return PacBayesCertificate.from_dict(d)


# (name, attribute of PosteriorCertificate, source) of the optimised certificate's bound rows.
_OPTIMISED_ROWS = (
    ("pac_bayes_kl", "certificate",
     "kl^-1(MC bound, (KL + ln(2 sqrt(n_b)/delta) + ln G)/n_b) of the optimised posterior "
     "(Seeger 2002; Maurer 2004; Perez-Ortiz et al. JMLR 2021)"),
    ("pac_bayes_classic", "classic", "MC bound + sqrt(C/2) (McAllester 1999; Maurer 2004)"),
    ("pac_bayes_quad", "quad", "(sqrt(MC bound + C/2) + sqrt(C/2))^2 (Perez-Ortiz et al. 2021, "
     "eq. 8)"),
    ("pac_bayes_lambda", "lambda_bound", "lambda bound at the optimal lambda (Thiemann et al. "
     "ALT 2017, Thm 3)"),
)


@dataclasses.dataclass(frozen=True)
class Analysis:
  """Everything :func:`analyze` computed (see its docstring). Errors are 0-1 errors.

  Attributes:
    data: description of the data.
    model: description of the model.
    recipe: the training recipe (a JSON-able dict of the :class:`gbounds.train.TrainConfig`).
    n_train, n_test: sizes of the training and test sets.
    num_params: number of weights.
    train_error, test_error, gap: measured errors of the trained model.
    sample_info: :class:`SampleInfoRanking` (None when the stage did not run).
    cmi: the :class:`gbounds.bounds.BoundsReport` of the supersample run (or None).
    supersample: summary of the supersample run (sizes, errors, directory) or None.
    pac_bayes: the :class:`gbounds.bounds.PosteriorCertificate` (optimised method), the
      :class:`gbounds.bounds.PacBayesCertificate` (isotropic method), or None.
    config: the :class:`AnalysisConfig` as a dict.
    seconds: wall-clock seconds per stage.
    notes: remarks (e.g. a reduced supersample size).
  """
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
  cmi: BoundsReport | None
  supersample: dict | None
  pac_bayes: PosteriorCertificate | PacBayesCertificate | None
  config: dict
  seconds: dict
  notes: tuple[str, ...]

  def bound_rows(self) -> list[BoundRow]:
    """One row per bound; ``valid`` is False, with a ``reason``, for every row that certifies
    nothing (not applicable, vacuous, or a non-finite value).

    Returns:
      The :class:`BoundRow` s, CMI bounds first, then the PAC-Bayes certificates.
    """
    rows = []

    def row(name, family, gap, test, m_gap, m_test, ok, why, source):
      gap, test = float(gap), float(test)
      if not (math.isfinite(gap) and math.isfinite(test)):
        ok, why = False, "; ".join(s for s in (why, "non-finite bound value") if s)
      rows.append(BoundRow(name, family, gap, test, float(m_gap), float(m_test), bool(ok),
                           source, "" if ok else (why or "not certified")))

    if self.cmi is not None:
      ss = self.supersample
      assert ss is not None  # the CMI stage's bounds come with its supersample run
      for b in self.cmi.bounds:
        row(b.name, "CMI (expected)", b.value, b.test_error, ss["gap"], ss["ghost_error"],
            b.applicable, "" if b.applicable else f"not applicable: {b.note}", b.source)
    if isinstance(self.pac_bayes, PosteriorCertificate):
      pc = self.pac_bayes
      for name, attr, source in _OPTIMISED_ROWS:
        test = float(getattr(pc, attr))
        row(name, "PAC-Bayes (w.p. 1-delta)", test - pc.mc_error, test,
            pc.gibbs_test_error - pc.mc_error, pc.gibbs_test_error, test < 1,
            "vacuous (bound >= 1)" if test >= 1 else "", source)
    elif self.pac_bayes is not None:
      pb = self.pac_bayes
      for r in pb.rows():
        row(r["name"], "PAC-Bayes (w.p. 1-delta)", r["gap_bound"], r["test_error_bound"],
            pb.stochastic_test_error - pb.mc_error, pb.stochastic_test_error,
            not r["vacuous"], "vacuous (bound >= 1)" if r["vacuous"] else "", r["source"])
    return rows

  def bound_table(self) -> _results.Table:
    """The bounds beside the errors they bound.

    Returns:
      A :class:`gbounds.Table`, one row per :class:`BoundRow`.
    """
    rows = tuple((r.name, r.family, r.gap_bound, r.measured_gap, r.test_error_bound,
                  r.measured_test_error, r.valid,
                  r.valid and r.gap_bound >= r.measured_gap, r.reason)
                 for r in self.bound_rows())
    return _results.Table(("bound", "family", "gap bound", "measured gap", "test-error bound",
                           "measured test error", "valid", "valid and above gap",
                           "why not valid"), rows,
                          "Generalization bounds beside the measured errors")

  def table(self) -> _results.Table:
    """The bound table (:meth:`bound_table`).

    Returns:
      A :class:`gbounds.Table`.
    """
    return self.bound_table()

  def summary_table(self) -> _results.Table:
    """Measured errors: the trained model, the supersample runs, the stochastic network.

    Returns:
      A :class:`gbounds.Table` with columns model, train error, test error, gap.
    """
    rows = [("trained model", self.train_error, self.test_error, self.gap)]
    if self.supersample is not None:
      s = self.supersample
      rows.append((f"supersample runs ({s['k1']} x {s['k2']}, n = {s['n']})", s["train_error"],
                   s["ghost_error"], s["gap"]))
    if isinstance(self.pac_bayes, PosteriorCertificate):
      p = self.pac_bayes
      rows.append((f"optimised posterior Q ({p.prior} prior; train error on the {p.n_bound} "
                   "bound examples)", p.mc_error, p.gibbs_test_error,
                   p.gibbs_test_error - p.mc_error))
    elif self.pac_bayes is not None:
      p = self.pac_bayes
      rows.append((f"stochastic network N(w, {p.sigma:.3g}^2 I)", p.mc_error,
                   p.stochastic_test_error, p.stochastic_test_error - p.mc_error))
    return _results.Table(("model", "train error", "test error", "gap"), tuple(rows),
                          "Measured errors")

  def format(self) -> str:
    """The measured errors and the bound table as fixed-width text; with the optimised
    PAC-Bayes certificate, also its table (certificate, held-out bound, Monte Carlo term, what
    each choice cost) and the prior choice.

    Returns:
      The text.
    """
    tables = [rp.ReportTable.of("measured", self.summary_table()),
              rp.ReportTable.of("bounds", self.bound_table())]
    text = ""
    if isinstance(self.pac_bayes, PosteriorCertificate):
      tables.append(rp.ReportTable.of("pac_bayes_certificate", self.pac_bayes.table()))
      text = "\n\n" + _certificate_text(self.pac_bayes, self.config)
    return rp.tables_text(tables) + text

  def to_dict(self) -> dict:
    """Every field as JSON-ready values, plus the derived ``bounds`` rows and a
    ``sample_information`` block (with units) for readers of ``report.json``.

    Returns:
      A dict that :meth:`from_dict` turns back into this analysis.
    """
    d = _results.to_dict(self)
    d["bounds"] = [r.to_dict() for r in self.bound_rows()]
    if self.sample_info is not None:
      d["sample_information"] = {**d["sample_info"], "units": "nats"}
    return json.loads(json.dumps(d, default=_io._default))

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> Analysis:
    """Rebuilds an analysis from :meth:`to_dict` output.

    Args:
      d: a dict as :meth:`to_dict` returns it (e.g. ``report.json`` read back).

    Returns:
      The :class:`Analysis`.
    """
    kw = {f.name: d[f.name] for f in dataclasses.fields(cls)}
    for k in ("n_train", "n_test", "num_params"):
      kw[k] = int(kw[k])
    for k in ("train_error", "test_error", "gap"):
      kw[k] = float(kw[k])
    kw["notes"] = tuple(kw["notes"])
    if kw["sample_info"] is not None:
      kw["sample_info"] = SampleInfoRanking.from_dict(kw["sample_info"])
    if kw["cmi"] is not None:
      kw["cmi"] = BoundsReport.from_dict(kw["cmi"])
    if kw["pac_bayes"] is not None:
      kw["pac_bayes"] = _certificate_from_dict(kw["pac_bayes"])
    return cls(**kw)


def _prior_reason(cert: PosteriorCertificate, config: Mapping[str, Any]) -> str:
  """Why the certificate has its prior (:func:`prior_choice` on the analysis' config)."""
  try:
    kind, reason = prior_choice(config.get("prior", PriorChoice.AUTO), cert.n,
                                config.get("prior_fraction", CertifyConfig.prior_fraction))
  except _errors.InvalidInputError:
    kind = None
  if kind is not cert.prior:  # a config that did not make this certificate
    reason = (f"{cert.prior} prior: {cert.n_prior} examples train the prior, the bound uses "
              f"{cert.n_bound}")
  return reason


def _certificate_text(cert: PosteriorCertificate, config: Mapping[str, Any]) -> str:
  """The optimised certificate in sentences: prior choice, certificate, held-out bound, MC."""
  held = ("no held-out bound (data-free prior)" if not math.isfinite(cert.heldout_bound)
          else f"held-out bound of the prior network {cert.heldout_bound:.4f} (its error "
               f"{cert.prior_bound_error:.4f} on the {cert.n_bound} bound examples, probability "
               f">= {1 - cert.delta:.3g})")
  return (f"PAC-Bayes prior: {_prior_reason(cert, config)}.\n"
          f"PAC-Bayes certificate {cert.certificate:.4f} on the Gibbs test error of the "
          f"optimised posterior ({cert.objective} objective; KL {cert.kl:.4g} nats at prior std "
          f"{cert.prior_scale:.3g}; probability >= {1 - cert.delta - cert.delta_mc:.3g}); "
          f"{held}; Monte Carlo term {cert.mc_error_bound - cert.mc_error:.4f} (Gibbs error "
          f"{cert.mc_error:.4f} on {cert.mc_draws} draws bounded by {cert.mc_error_bound:.4f}; "
          f"it costs the certificate {cert.mc_cost:.4f}).")


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
  for start, stop in _batching.chunk_bounds(len(y), batch):
    logits = apply_fn(params, jnp.asarray(x[start:stop]))
    if not bool(jnp.all(jnp.isfinite(logits))):
      _errors.fail("params", "a model whose outputs are finite on the data",
                   "non-finite logits (NaN or inf)")
    labels = jnp.asarray(y[start:stop])
    wrong += int(jnp.sum(jnp.argmax(logits, -1).astype(labels.dtype) != labels))
  return wrong / len(y)


def _describe_model(model: Any) -> str:
  """A run-independent description: a Linen module's repr, else its class or function name."""
  from flax import linen as nn
  if isinstance(model, nn.Module):
    return repr(model)
  if isinstance(model, ModelFn):
    f = model.apply_fn
    return f"ModelFn({getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', type(f).__name__)})"
  return type(model).__name__


@dataclasses.dataclass(frozen=True)
class _Context:
  """What every stage of :func:`analyze` reads (built once, after all checks)."""
  model: Any                    # as the caller passed it (the supersample runner adapts it)
  apply_fn: Callable
  params: Any
  init_params: Any
  data: AnalysisData
  recipe: TrainConfig
  config: AnalysisConfig
  out: pathlib.Path | None
  results_dir: pathlib.Path | None
  key_base: tuple
  progress: bool
  notes: list                   # stages append remarks here


class _Stage(NamedTuple):
  """One stage of the pipeline: ``run(ctx) -> value``, all stages with that one signature.

  ``key(ctx)`` (None: never cached) is the digest under which the value is stored in
  ``out_dir/stages/<name>.json``; ``encode``/``decode`` map the value to and from JSON;
  ``summary(value, seconds)`` is the log line.
  """
  name: str
  enabled: Callable[[AnalysisConfig], bool]
  run: Callable[[_Context], Any]
  summary: Callable[[Any, float], str]
  key: Callable[[_Context], str] | None = None
  encode: Callable[[Any], Any] | None = None
  decode: Callable[[Any], Any] | None = None


class _Measured(NamedTuple):
  train_error: float
  test_error: float


def _measured_stage(ctx: _Context) -> _Measured:
  d = ctx.data
  return _Measured(_err(ctx.apply_fn, ctx.params, d.x_train, d.y_train),
                   _err(ctx.apply_fn, ctx.params, d.x_test, d.y_test))


def _sample_info_stage(ctx: _Context) -> SampleInfoRanking:
  data, cfg = ctx.data, ctx.config
  bar = _progress.TqdmCallback("sample information (NTK + leave-one-out)", "stage",
                               enabled=ctx.progress)
  m = min(cfg.si_heldout, len(data.y_test))
  si = sample_information(
      ctx.apply_fn, ctx.init_params, jnp.asarray(data.x_train),
      np.asarray(data.y_train),
      learning_rate=1.0, t=math.inf, weight_decay=cfg.si_ridge, time="continuous",
      x_heldout=jnp.asarray(data.x_test[:m]), sigma=cfg.si_sigma, expansion="trained",
      trained_params=ctx.params, method="auto", ntk_chunk_size=cfg.ntk_chunk_size)
  bar(1, 1)
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


def _ranking_to_json(r: SampleInfoRanking) -> dict:
  return {"order": r.order, "si": r.si, "fsi": r.fsi, "labels": r.labels,
          "settings": r.settings}


def _ranking_from_json(d) -> SampleInfoRanking:
  return SampleInfoRanking(np.asarray(d["order"]), np.asarray(d["si"]), np.asarray(d["fsi"]),
                           np.asarray(d["labels"]), d["settings"])


class _CmiOutcome(NamedTuple):
  report: BoundsReport
  supersample: dict


def _cmi_stage(ctx: _Context) -> _CmiOutcome:
  data, config, recipe = ctx.data, ctx.config, ctx.recipe
  n = len(data.y_train)
  k1, k2, steps = config.scaled(recipe.steps)
  n_ss = config.supersample_n or n
  if 2 * n_ss > len(data.y_pool):
    ctx.notes.append(f"supersample n reduced from {n_ss} to {len(data.y_pool) // 2} (half the "
                     f"pool of {len(data.y_pool)})")
    n_ss = len(data.y_pool) // 2
  scaled = dataclasses.replace(recipe, steps=steps)
  rdir = (ctx.results_dir if ctx.results_dir is not None
          else (None if ctx.out is None else ctx.out / "supersample"))
  result = None
  if rdir is not None and (rdir / "config.json").exists():
    try:
      result = load_supersample_results(rdir)
    except _errors.InvalidInputError:
      result = None  # partial: resumed below (the same configuration is checked there)
  if result is None:
    bar = _progress.TqdmCallback(f"supersample trainings ({k1} x {k2})", "model",
                                 enabled=ctx.progress)
    try:
      result = run_supersample(ctx.model, data.x_pool, data.y_pool, data.x_test, data.y_test,
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
  return _CmiOutcome(cmi, supersample)


def _sigmas(config: AnalysisConfig) -> tuple[float, ...]:
  return tuple(config.sigmas or SIGMA_GRID)


def _pac_bayes_stage(ctx: _Context) -> PosteriorCertificate | PacBayesCertificate:
  if ctx.config.pac_bayes_method is PacBayesMethod.ISOTROPIC:
    return _isotropic_stage(ctx)
  data = ctx.data
  bar = _progress.TqdmCallback("PAC-Bayes certificate (optimised posterior)", "unit",
                               enabled=ctx.progress)
  try:
    cert = certify(ctx.apply_fn, ctx.params, ctx.init_params, data.x_train, data.y_train,
                   train_config=ctx.recipe, config=ctx.config.certify_config(len(data.y_train)),
                   x_test=data.x_test, y_test=data.y_test, callback=bar)
  finally:
    bar.close()
  assert isinstance(cert, PosteriorCertificate)  # return_posterior=False
  return cert


def _isotropic_stage(ctx: _Context) -> PacBayesCertificate:
  data, config = ctx.data, ctx.config
  bar = _progress.TqdmCallback("PAC-Bayes Monte Carlo", "draw", enabled=ctx.progress)
  try:
    return pac_bayes_certificate(ctx.apply_fn, ctx.params, ctx.init_params, data.x_train,
                                 data.y_train, x_test=data.x_test, y_test=data.y_test,
                                 sigmas=_sigmas(config), delta=config.delta,
                                 delta_mc=config.delta_mc, mc_samples=config.mc_samples,
                                 seed=config.seed, callback=bar)
  finally:
    bar.close()


def _pac_bayes_summary(c: PosteriorCertificate | PacBayesCertificate, s: float) -> str:
  if isinstance(c, PosteriorCertificate):
    held = f"{c.heldout_bound:.4f}" if math.isfinite(c.heldout_bound) else "none (data-free)"
    return (f"PAC-Bayes ({c.prior} prior, {c.objective} objective): KL {c.kl:.4g} nats, "
            f"certificate {c.certificate:.4f}, held-out bound {held}, Monte Carlo term "
            f"{c.mc_error_bound - c.mc_error:.4f} ({s:.1f} s)")
  return (f"PAC-Bayes (isotropic): sigma {c.sigma:.3g}, KL {c.kl:.4g} nats, PAC-Bayes-kl "
          f"certificate {c.pac_bayes_kl:.4f} ({s:.1f} s)")


def _pac_bayes_key(c: _Context) -> str:
  cfg = c.config
  if cfg.pac_bayes_method is PacBayesMethod.ISOTROPIC:  # the key of earlier versions
    return _digest(list(c.key_base), "pb", cfg.delta, cfg.delta_mc, cfg.mc_samples,
                   _sigmas(cfg), cfg.seed)
  return _digest(list(c.key_base), "pb-optimised",
                 dataclasses.asdict(cfg.certify_config(len(c.data.y_train))))


# The pipeline, in order. Every stage is a function of the context alone; the runner in
# :func:`analyze` handles caching (stages with a key), timing, logging and progress.
_STAGES = (
    _Stage("measured", lambda c: True, _measured_stage,
           lambda m, s: (f"measured: train error {m.train_error:.4f}, test error "
                         f"{m.test_error:.4f}, gap {m.test_error - m.train_error:.4f}")),
    _Stage("sample_info", lambda c: c.sample_info, _sample_info_stage,
           lambda r, s: (f"sample information: top example {int(r.order[0])} with SI "
                         f"{r.si[r.order[0]]:.4g} nats ({s:.1f} s)"),
           key=lambda c: _digest(list(c.key_base), "si", c.config.si_ridge,
                                 c.config.si_heldout, c.config.si_sigma),
           encode=_ranking_to_json, decode=_ranking_from_json),
    _Stage("cmi", lambda c: c.cmi, _cmi_stage,
           lambda o, s: (f"supersample: {o.supersample['k1']} x {o.supersample['k2']} runs at "
                         f"n = {o.supersample['n']}, gap {o.supersample['gap']:.4f}, f-CMI "
                         f"bound {o.report[BoundName.FCMI].value:.4f} ({s:.1f} s)")),
    _Stage("pac_bayes", lambda c: c.pac_bayes, _pac_bayes_stage, _pac_bayes_summary,
           key=_pac_bayes_key, encode=lambda cert: cert.to_dict(),
           decode=_certificate_from_dict),
)


def _run_stages(ctx: _Context, log: Callable[[str], None],
                callback: _progress.ProgressCallback | None) -> tuple[dict, dict]:
  """Runs the enabled stages in order: ``({name: value}, {name: seconds})``."""
  stages = [st for st in _STAGES if st.enabled(ctx.config)]
  values, seconds = {}, {}
  for i, st in enumerate(stages):
    t0 = time.perf_counter()
    key = None if st.key is None else st.key(ctx)
    cached = None if key is None else _cached(ctx.out, st.name, key)
    if cached is not None:
      assert st.decode is not None  # a stage with a key has encode and decode
      value = st.decode(cached)
    else:
      value = st.run(ctx)
      if key is not None:
        assert st.encode is not None  # a stage with a key has encode and decode
        _store(ctx.out, st.name, key, st.encode(value))
    seconds[st.name] = time.perf_counter() - t0
    values[st.name] = value
    log(st.summary(value, seconds[st.name]))
    _progress.notify(callback, i + 1, len(stages))
  return values, seconds


def _adapt(model: Any, params: Any, example: Any) -> tuple[ModelFn, Callable | None]:
  """``(ModelFn, init_fn or None)`` of a Linen module with params, an NNX module or a ModelFn."""
  from flax import linen as nn
  if isinstance(model, nn.Module) and params is None:
    _errors.fail("params", "the trained parameters of the Linen module", None)
  try:
    mf = as_model_fn(model, params=params, example_input=example)
  except _errors.InvalidInputError:
    _errors.fail("model", "a flax.linen.Module (with params=), a flax.nnx.Module or a "
                 "gbounds.models.ModelFn", type(model).__name__)
  return mf, mf.init_fn


def analyze(model: Any, data: AnalysisData, recipe: TrainConfig, *, params: Any = None,
            init_params: Any = None, config: AnalysisConfig = AnalysisConfig(),
            out_dir: str | os.PathLike | None = None,
            results_dir: str | os.PathLike | None = None, progress: bool = True,
            callback: _progress.ProgressCallback | None = None,
            log: Callable[[str], None] | None = None) -> Analysis:
  """Analyses a trained model: measured errors, sample information, CMI bounds and PAC-Bayes
  certificates (see the module docstring for what each is and where it comes from).

  The work is a pipeline of stages (measured errors, sample information, CMI bounds,
  PAC-Bayes), each a function of one context (model, data, recipe, configuration) to its
  result; with ``out_dir`` a finished stage is stored and loaded on a rerun with the same inputs.

  Args:
    model: the trained model: a ``flax.linen.Module`` (e.g. from :func:`load_module`) with
      ``params``, a ``flax.nnx.Module`` (its own weights), or a
      :class:`gbounds.models.ModelFn` (normalised by :func:`gbounds.models.as_model_fn`).
      The supersample stage retrains fresh initialisations of it, so it needs a Linen or NNX
      module, or a ModelFn with an ``init_fn``.
    data: :class:`AnalysisData`; the model was trained on ``data.x_train``.
    recipe: the :class:`gbounds.train.TrainConfig` the model was trained with (the supersample
      runs retrain it, with steps scaled by the budget; a learnt PAC-Bayes prior is trained
      with it on its part of the training set).
    params: the trained parameters of a Linen module (None for NNX modules and ModelFns).
    init_params: the parameters training started from (the data-free PAC-Bayes prior's centre,
      the start of a learnt prior's training and of the linearized training). None: a fresh
      initialisation from ``config.seed`` (data-independent, so still a valid prior, but
      looser).
    config: :class:`AnalysisConfig`.
    out_dir: write each finished stage here (atomically) and resume from it; the supersample
      chunks go to ``out_dir/supersample`` unless ``results_dir`` is given.
    results_dir: the supersample results directory (an existing finished or partial run of the
      same configuration is loaded or resumed).
    progress: show a tqdm bar per stage (:class:`gbounds._src.progress.TqdmCallback`).
    callback: ``callback(done, total)`` after each finished stage.
    log: called with one line per stage (default: nothing).

  Returns:
    :class:`Analysis`.
  """
  if not isinstance(recipe, TrainConfig):
    _errors.fail("recipe", "a gbounds.train.TrainConfig", type(recipe).__name__)
  if not isinstance(config, AnalysisConfig):
    _errors.fail("config", "a gbounds.analysis.AnalysisConfig", type(config).__name__)
  if not isinstance(data, AnalysisData):
    _errors.fail("data", "a gbounds.analysis.AnalysisData (see gbounds.analysis.analysis_data)",
                 type(data).__name__)
  if callback is not None and not callable(callback):
    _errors.fail("callback", "a callable callback(done, total) or None", type(callback).__name__)
  _check_data_arrays(data)
  example = jnp.asarray(data.x_train[:1])
  mf, init_fn = _adapt(model, params, example)
  apply_fn, params = mf.apply_fn, mf.params
  name = type(model).__name__
  def refuse_data(e):
    _errors.fail("data", f"inputs that {name} accepts",
                 f"examples of shape {np.shape(data.x_train)[1:]} ({type(e).__name__}: "
                 f"{str(e)[:200]})")

  try:
    expected = None if init_fn is None else jax.eval_shape(init_fn, jax.random.key(0))
  except Exception as e:  # noqa: BLE001 -- the model cannot take these inputs; no deep trace
    refuse_data(e)
  if expected is not None and _shapes(expected) != _shapes(params):
    _errors.fail("params", f"parameters of {name} on inputs of shape "
                 f"{np.shape(data.x_train)[1:]}", "a different parameter tree")
  try:
    jax.eval_shape(apply_fn, params, example)
  except Exception as e:  # noqa: BLE001
    refuse_data(e)
  notes = []
  if init_params is None:
    if init_fn is None:
      _errors.fail("init_params", "the parameters training started from (this ModelFn has no "
                   "init_fn to draw a fresh initialisation)", None)
    init_params = init_fn(jax.random.fold_in(jax.random.key(config.seed), 999_999))
    notes.append("init_params not given: the PAC-Bayes prior and the linearized training start "
                 f"from a fresh initialisation (seed {config.seed}), not the training run's.")
  elif _shapes(init_params) != _shapes(params):
    _errors.fail("init_params", "a tree with the shapes of params", "a different tree")
  if config.cmi and init_fn is None:
    _errors.fail("model", "a model the supersample stage can re-initialise (a Linen or NNX "
                 "module, or a ModelFn with an init_fn), or config.cmi=False",
                 "a ModelFn without init_fn")
  # No bound from non-finite quantities: NaN/inf weights are refused before any stage runs.
  _errors.check_finite_tree("params", params)
  _errors.check_finite_tree("init_params", init_params)
  _check_labels_against_model(apply_fn, params, data)
  if config.pac_bayes and config.pac_bayes_method is PacBayesMethod.OPTIMISED:
    config.certify_config(len(data.y_train))  # the prior's split, checked before any work
  out = None if out_dir is None else check_output_dir(out_dir)
  if results_dir is not None:
    check_output_dir(results_dir)
  description = _describe_model(model)
  key_base = (_tree_digest(params), _tree_digest(init_params),
              _digest(data.x_train, data.y_train, data.x_test, data.y_test),
              dataclasses.asdict(recipe), description)
  ctx = _Context(model=model,
                 apply_fn=apply_fn, params=params, init_params=init_params, data=data,
                 recipe=recipe, config=config, out=out,
                 results_dir=None if results_dir is None else pathlib.Path(results_dir),
                 key_base=key_base, progress=progress, notes=notes)
  values, seconds = _run_stages(ctx, log or (lambda s: None), callback)
  m = values["measured"]
  cmi = values.get("cmi")
  cfg_dict = config.to_dict()
  return Analysis(data=data.description, model=description,
                  recipe=json.loads(json.dumps(dataclasses.asdict(recipe),
                                               default=_io._default)),
                  n_train=len(data.y_train), n_test=len(data.y_test),
                  num_params=int(sum(np.size(v) for v in jax.tree_util.tree_leaves(params))),
                  train_error=m.train_error, test_error=m.test_error,
                  gap=m.test_error - m.train_error, sample_info=values.get("sample_info"),
                  cmi=None if cmi is None else cmi.report,
                  supersample=None if cmi is None else cmi.supersample,
                  pac_bayes=values.get("pac_bayes"), config=cfg_dict, seconds=seconds,
                  notes=tuple(notes))


# ----------------------------------------------------------------------------- report


def _bounds_figure(a: Analysis) -> rp.ReportFigure:
  rows = [r for r in a.bound_rows() if r.valid and math.isfinite(r.test_error_bound)]
  fig, ax = _io.new_figure(figsize=(7, 0.32 * max(len(rows), 3) + 1.2))
  _viz.plot_bound_bars(
      ax, rows, test_error=a.test_error,
      supersample_test_error=None if a.supersample is None else a.supersample["ghost_error"],
      stochastic_test_error=(None if a.pac_bayes is None
                             else a.pac_bayes.gibbs_test_error
                             if isinstance(a.pac_bayes, PosteriorCertificate)
                             else a.pac_bayes.stochastic_test_error))
  fig.tight_layout()
  return rp.ReportFigure.of("bounds", "Test-error bounds", fig,
                            "Valid (applicable, non-vacuous) bounds on the test error; "
                            "dashed/dotted lines: the measured test errors they bound.")


def _si_figures(a: Analysis, data: AnalysisData | None) -> list[rp.ReportFigure]:
  s = a.sample_info
  assert s is not None  # drawn only when the sample-information stage ran
  figs = []
  fig, axs = _io.new_figure(figsize=(9, 3.2), nrows=1, ncols=2)
  _viz.plot_sample_information_by_rank(axs[0], s.si[s.order])
  _viz.plot_sample_information_by_class(axs[1], s.si, s.labels)
  fig.tight_layout()
  figs.append(rp.ReportFigure.of(
      "sample_information", "Sample information of the training set", fig,
      "Smooth SI ||w - w_-i||^2 / (2 sigma^2) of the network linearized at the trained weights "
      "(nats)."))
  if data is not None and np.ndim(data.x_train) == 4 and np.shape(data.x_train)[-1] in (1, 3):
    top = s.order[:16]
    fig, axs = _io.new_figure(figsize=(9, 2.7), nrows=2, ncols=8)
    _viz.plot_example_images(
        list(axs.ravel()), [data.x_train[i] for i in top],
        [f"#{int(i)} y={int(s.labels[i])}\n{s.si[i]:.3g}" for i in top])
    fig.tight_layout()
    figs.append(rp.ReportFigure.of(
        "top_examples", "Most informative training examples", fig,
        "The 16 training examples with the largest SI (index, label, SI in nats)."))
  return figs


def _certificate_figures(cert: PosteriorCertificate) -> tuple[rp.ReportFigure, ...]:
  fig, ax = _io.new_figure(figsize=(6, 3.6))
  _viz.plot_prior_scale_curve(ax, cert)
  fig.tight_layout()
  curve = rp.ReportFigure.of(
      "pac_bayes_prior_scale", "Certificate against the prior std", fig,
      f"The certificate (same Monte Carlo bound, ln {cert.grid_size} nats of union bound) and "
      "KL(Q || N(mu_P, s^2 I)) at every prior std s of the grid, for the final posterior Q; "
      "the star marks the selected s (minimum KL).")
  fig, ax = _io.new_figure(figsize=(max(4.5, 0.9 * len(cert.scales) + 2.5), 3.6))
  _viz.plot_posterior_scales(ax, cert)
  fig.tight_layout()
  scales = rp.ReportFigure.of(
      "pac_bayes_posterior_scales", "Posterior std per parameter array", fig,
      "Box: 25-75 % quantiles of the posterior std of each parameter array (median marked; "
      "whiskers 5-95 %; number of weights in brackets); dashed line: the prior std.")
  return curve, scales


def _certificate_section(a: Analysis, cert: PosteriorCertificate) -> rp.ReportSection:
  paras = (_certificate_text(cert, a.config),
           f"Q = N(mu, diag(sigma^2)) optimised from the {cert.posterior_init} weights "
           f"({cert.granularity} scales, {len(cert.history)} epochs, {cert.objective} objective "
           f"of the bounded cross-entropy) against P = N(mu_P, s^2 I); {cert.num_params} "
           f"weights; {cert.n_prior} examples trained the prior, {cert.n_bound} are behind the "
           f"bound. Seconds: prior {cert.prior_seconds:.1f}, optimisation "
           f"{cert.optimise_seconds:.1f}, Monte Carlo {cert.mc_seconds:.1f}.")
  tables = (
      rp.ReportTable.of("pac_bayes_certificate", cert.table()),
      rp.ReportTable("pac_bayes_prior_scale", "Certificate at each prior std of the grid",
                     ("prior std", "KL (nats)", "certificate"),
                     tuple((p.prior_scale, p.kl, p.bound) for p in cert.curve)),
      rp.ReportTable("pac_bayes_posterior_scales", "Posterior std per parameter array",
                     ("array", "weights", "std q05", "std q25", "std q50", "std q75", "std q95",
                      "rms shift from the prior mean"),
                     tuple((sc.name, sc.size, *sc.quantiles, sc.mean_shift)
                           for sc in cert.scales)))
  return rp.ReportSection("PAC-Bayes certificate (optimised posterior)", paras, tables,
                          _certificate_figures(cert))


def _pac_bayes_figure(a: Analysis) -> rp.ReportFigure:
  assert isinstance(a.pac_bayes, PacBayesCertificate)  # drawn for the isotropic method
  fig, ax = _io.new_figure(figsize=(5.5, 3.3))
  _viz.plot_pac_bayes_selection(ax, a.pac_bayes.selection, a.pac_bayes.sigma)
  fig.tight_layout()
  return rp.ReportFigure.of("pac_bayes", "PAC-Bayes scale selection", fig,
                            "Bound and stochastic training error against the scale s of "
                            "Q = N(w, s^2 I), P = N(w0, s^2 I).")


_BOUNDS_NOTE = ("CMI bounds: expected gap of the training algorithm at this n, measured by the "
                "supersample runs (mutual informations in nats inside). PAC-Bayes: test error "
                "of the stochastic network (the optimised posterior Q, or N(w, s^2 I) with the "
                "isotropic method), probability >= 1 - delta - delta_mc; its gap is measured "
                "against the Monte Carlo training error (on the bound part with a learnt "
                "prior). Not applicable / vacuous rows are reported but are no guarantee.")


def analysis_report(a: Analysis, *, data: AnalysisData | None = None,
                    extra_sections: Sequence[rp.ReportSection] = (),
                    title: str = "gbounds analysis") -> rp.Report:
  """The report of an analysis: tables, figures and ``a.to_dict()`` as the payload.

  Args:
    a: the :class:`Analysis`.
    data: its data (for the figure of the most informative training images).
    extra_sections: :class:`ReportSection` s placed first.
    title: the page title.

  Returns:
    The :class:`Report` (write it with :func:`write_report`).
  """
  secs = list(extra_sections)
  paras = (f"Data: {a.data}.", f"Model: {a.model} ({a.num_params} parameters).",
           f"Recipe: {json.dumps(a.recipe)}.", *a.notes)
  secs.append(rp.ReportSection("Summary", paras,
                                (rp.ReportTable.of("measured", a.summary_table()),
                                 rp.ReportTable.of("bounds", a.bound_table(),
                                                   note=_BOUNDS_NOTE)),
                         (_bounds_figure(a),) if a.bound_rows() else ()))
  if a.sample_info is not None:
    s = a.sample_info
    top = tuple((int(i), int(s.labels[i]), float(s.si[i]), float(s.fsi[i]))
                for i in s.order[:20])
    secs.append(rp.ReportSection(
        "Sample information", (f"Settings: {json.dumps(s.settings, default=_io._default)}",),
        (rp.ReportTable("sample_information_top", "Most informative training examples (nats)",
                        ("index", "label", "SI", "F-SI"), top),
         rp.ReportTable.of("sample_information_all", s.table())),
        tuple(_si_figures(a, data))))
  if isinstance(a.pac_bayes, PosteriorCertificate):
    secs.append(_certificate_section(a, a.pac_bayes))
  elif a.pac_bayes is not None:
    p = a.pac_bayes
    secs.append(rp.ReportSection(
        "PAC-Bayes certificates",
        (f"Q = N(w, s^2 I), P = N(w0, s^2 I), s = {p.sigma:.4g} chosen on a grid of "
         f"{p.grid_size} (union bound ln {p.grid_size}); ||w - w0||^2 = {p.distance_sq:.4g}, "
         f"KL = {p.kl:.4g} nats; stochastic training error {p.mc_error:.4f} on {p.mc_samples} "
         f"draws, bounded by {p.empirical_error_bound:.4f} (delta' = {p.delta_mc}); "
         f"delta = {p.delta}.",),
        (rp.ReportTable("pac_bayes_certificates", "Certificates on the stochastic test error",
                  ("certificate", "bound", "vacuous", "source"),
                  tuple((r["name"], r["test_error_bound"], r["vacuous"], r["source"])
                        for r in p.rows())),
         rp.ReportTable("pac_bayes_grid", "Scale grid", ("s", "KL (nats)", "selection error",
                                                   "selection bound"),
                  tuple((s.sigma, s.kl, s.selection_error, s.selection_bound)
                        for s in p.selection))),
        (_pac_bayes_figure(a),)))
  if a.cmi is not None:
    secs.append(rp.ReportSection(
        "CMI bounds (all)", (f"Supersample run: {json.dumps(a.supersample)}.",),
        (rp.ReportTable("cmi_bounds", "Every CMI bound of gbounds.bounds.cmi_bounds",
                  ("bound", "gap bound", "test-error bound", "applicable", "note", "source"),
                  tuple((b.name, float(b.value), float(b.test_error), bool(b.applicable),
                         b.note, b.source) for b in a.cmi.bounds)),)))
  secs.append(rp.ReportSection("Timing (s)", (), (rp.ReportTable(
      "timing", "Seconds per stage", ("stage", "seconds"),
      tuple((k, float(v)) for k, v in a.seconds.items())),)))
  return rp.Report(title, a.to_dict(), tuple(secs))


def write_analysis_report(a: Analysis, out_dir: str | os.PathLike, *,
                          data: AnalysisData | None = None,
                          extra_sections: Sequence[rp.ReportSection] = (),
                          extra_payload: dict | None = None) -> rp.ReportFiles:
  """Writes ``report.json``, CSV tables, PNG figures and ``report.html`` to ``out_dir``.

  Args:
    a: the :class:`Analysis`.
    out_dir: the output directory (checked with :func:`check_output_dir`).
    data: its data (for the figure of the most informative training images).
    extra_sections: :class:`ReportSection` s placed first.
    extra_payload: merged into ``report.json`` (the analysis' keys win).

  Returns:
    :class:`ReportFiles` naming every file written.
  """
  report = analysis_report(a, data=data, extra_sections=extra_sections)
  if extra_payload:
    report = dataclasses.replace(report, payload={**extra_payload, **report.payload})
  return rp.write_report(report, check_output_dir(out_dir))


__all__ = [
    "MIN_PART_EXAMPLES", "Analysis", "AnalysisConfig", "AnalysisData", "BoundRow",
    "PacBayesMethod", "PriorChoice", "SampleInfoRanking", "analysis_data", "analysis_report",
    "analyze", "check_output_dir", "default_data", "load_checkpoint", "load_module",
    "prior_choice", "save_checkpoint", "write_analysis_report",
]
