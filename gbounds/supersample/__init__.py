"""Supersample design, the resumable store, trained and linearized runners."""

from gbounds.supersample._supersample import CorruptResultsError as CorruptResultsError
from gbounds.supersample._supersample import SupersampleDesign as SupersampleDesign
from gbounds.supersample._supersample import SupersampleResult as SupersampleResult
from gbounds.supersample._supersample import SupersampleStoreWarning as SupersampleStoreWarning
from gbounds.supersample._supersample import TargetEncoding as TargetEncoding
from gbounds.supersample._supersample import check_masks as check_masks
from gbounds.supersample._supersample import draw_supersamples as draw_supersamples
from gbounds.supersample._supersample import load_supersample_results as load_supersample_results
from gbounds.supersample._supersample import model_mesh as model_mesh
from gbounds.supersample._supersample import (
    run_linearized_supersample as run_linearized_supersample,
)
from gbounds.supersample._supersample import run_supersample as run_supersample

__all__ = [
    "CorruptResultsError",
    "SupersampleDesign",
    "SupersampleResult",
    "SupersampleStoreWarning",
    "TargetEncoding",
    "check_masks",
    "draw_supersamples",
    "load_supersample_results",
    "model_mesh",
    "run_linearized_supersample",
    "run_supersample",
]
