"""Manifold geometry (MFTMA) and layer rewinding."""

from gbounds.geometry._manifold import AnchorSolution as AnchorSolution
from gbounds.geometry._manifold import DimensionFormula as DimensionFormula
from gbounds.geometry._manifold import DualSolver as DualSolver
from gbounds.geometry._manifold import ManifoldGeometry as ManifoldGeometry
from gbounds.geometry._manifold import anchor_geometry as anchor_geometry
from gbounds.geometry._manifold import class_manifolds as class_manifolds
from gbounds.geometry._manifold import manifold_geometry as manifold_geometry
from gbounds.geometry._manifold import solve_anchor_qp as solve_anchor_qp
from gbounds.geometry._rewind import PermutedLabelConfig as PermutedLabelConfig
from gbounds.geometry._rewind import PermutedLabelResult as PermutedLabelResult
from gbounds.geometry._rewind import layer_features as layer_features
from gbounds.geometry._rewind import permute_labels as permute_labels
from gbounds.geometry._rewind import permuted_label_experiment as permuted_label_experiment
from gbounds.geometry._rewind import rewind_layers as rewind_layers

__all__ = [
    "AnchorSolution",
    "DimensionFormula",
    "DualSolver",
    "ManifoldGeometry",
    "anchor_geometry",
    "class_manifolds",
    "manifold_geometry",
    "solve_anchor_qp",
    "PermutedLabelConfig",
    "PermutedLabelResult",
    "layer_features",
    "permute_labels",
    "permuted_label_experiment",
    "rewind_layers",
]
