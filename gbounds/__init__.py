"""gbounds: how much a trained network memorized, and how large its generalization gap can be.

The root is the front door: :func:`analyze` with its config and result types, the model adapter,
the error types, and the concept subpackages (see the module map in README.md)::

    models, data          model families, the adapter, activation capture; datasets
    train, ntk            training and prediction; linearization and closed-form dynamics
    info, bounds, geometry   sample/activation/weight information; CMI and PAC-Bayes bounds; MFTMA
    supersample           supersample design, resumable store, runners
    analysis              the analyze pipeline, checkpoints, reports
    viz                   figures (each takes a matplotlib Axes)
    experiments           paper reproductions (imported on first use)
"""

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from gbounds import analysis as analysis
from gbounds import bounds as bounds
from gbounds import data as data
from gbounds import geometry as geometry
from gbounds import info as info
from gbounds import models as models
from gbounds import ntk as ntk
from gbounds import supersample as supersample
from gbounds import train as train
from gbounds._src.errors import ChecksumError as ChecksumError
from gbounds._src.errors import ConvergenceError as ConvergenceError
from gbounds._src.errors import CorruptFileError as CorruptFileError
from gbounds._src.errors import DataNotFoundError as DataNotFoundError
from gbounds._src.errors import GBoundsError as GBoundsError
from gbounds._src.errors import InvalidInputError as InvalidInputError
from gbounds._src.errors import StoreLockedError as StoreLockedError
from gbounds._src.progress import ProgressCallback as ProgressCallback
from gbounds._src.provenance import package_version as _package_version
from gbounds._src.results import Table as Table
from gbounds.analysis import Analysis as Analysis
from gbounds.analysis import AnalysisConfig as AnalysisConfig
from gbounds.analysis import analyze as analyze
from gbounds.models import ModelFn as ModelFn
from gbounds.models import as_model_fn as as_model_fn

__version__: str = _package_version()

if _TYPE_CHECKING:  # for type checkers; at run time __getattr__ imports them on first use
  from gbounds import experiments as experiments
  from gbounds import viz as viz

_LAZY = ("experiments", "viz", "cli")


def __getattr__(name: str) -> _Any:
  """Imports the heavier subpackages (experiments, viz, cli) on first access."""
  if name in _LAZY:
    return _importlib.import_module(f"gbounds.{name}")
  raise AttributeError(f"module 'gbounds' has no attribute {name!r}")


__all__ = [
    "Analysis",
    "AnalysisConfig",
    "ChecksumError",
    "ConvergenceError",
    "CorruptFileError",
    "DataNotFoundError",
    "GBoundsError",
    "InvalidInputError",
    "ModelFn",
    "ProgressCallback",
    "StoreLockedError",
    "Table",
    "analysis",
    "analyze",
    "as_model_fn",
    "bounds",
    "data",
    "experiments",
    "geometry",
    "info",
    "models",
    "ntk",
    "supersample",
    "train",
    "viz",
    "__version__",
]
