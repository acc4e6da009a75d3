"""Supersample design, the resumable store, trained and linearized runners."""

from gbounds.supersample._supersample import SupersampleDesign as SupersampleDesign
from gbounds.supersample._supersample import SupersampleResult as SupersampleResult
from gbounds.supersample._supersample import TargetEncoding as TargetEncoding
from gbounds.supersample._supersample import draw_supersamples as draw_supersamples
from gbounds.supersample._supersample import load_supersample_results as load_supersample_results
from gbounds.supersample._supersample import model_mesh as model_mesh
from gbounds.supersample._supersample import run_linearized_supersample as run_linearized_supersample
from gbounds.supersample._supersample import run_supersample as run_supersample

__all__ = [
    "SupersampleDesign",
    "SupersampleResult",
    "TargetEncoding",
    "draw_supersamples",
    "load_supersample_results",
    "model_mesh",
    "run_linearized_supersample",
    "run_supersample",
]
