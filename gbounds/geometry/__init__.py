"""Manifold geometry (MFTMA) and layer rewinding.

* :func:`manifold_geometry`, :func:`anchor_geometry`, :func:`solve_anchor_qp`,
  :func:`class_manifolds`: the replica mean-field theory of manifold capacity, radius and
  dimension (Chung, Lee, Sompolinsky, PRX 2018; Cohen et al., Nat. Commun. 2020).
* :func:`permuted_label_experiment`, :func:`layer_features`, :func:`rewind_layers`,
  :func:`permute_labels`: where memorization lives, per layer (Stephenson et al., ICLR 2021).

Figures of the experiment: :mod:`gbounds.viz` (``plot_layer_geometry_grid``, ``plot_rewinding``).
"""

from gbounds.geometry._manifold import AnchorSolution as AnchorSolution
from gbounds.geometry._manifold import DimensionFormula as DimensionFormula
from gbounds.geometry._manifold import DualSolver as DualSolver
from gbounds.geometry._manifold import ManifoldGeometry as ManifoldGeometry
from gbounds.geometry._manifold import anchor_geometry as anchor_geometry
from gbounds.geometry._manifold import class_manifolds as class_manifolds
from gbounds.geometry._manifold import manifold_geometry as manifold_geometry
from gbounds.geometry._manifold import solve_anchor_qp as solve_anchor_qp
from gbounds.geometry._rewind import MANIFOLD_KINDS as MANIFOLD_KINDS
from gbounds.geometry._rewind import EpochRecord as EpochRecord
from gbounds.geometry._rewind import GeometryRecord as GeometryRecord
from gbounds.geometry._rewind import ImageDataset as ImageDataset
from gbounds.geometry._rewind import ManifoldKind as ManifoldKind
from gbounds.geometry._rewind import PermutedLabelConfig as PermutedLabelConfig
from gbounds.geometry._rewind import PermutedLabelResult as PermutedLabelResult
from gbounds.geometry._rewind import RewindDirection as RewindDirection
from gbounds.geometry._rewind import RewindRecord as RewindRecord
from gbounds.geometry._rewind import layer_features as layer_features
from gbounds.geometry._rewind import parameter_layers as parameter_layers
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
    "MANIFOLD_KINDS",
    "EpochRecord",
    "GeometryRecord",
    "ImageDataset",
    "ManifoldKind",
    "PermutedLabelConfig",
    "PermutedLabelResult",
    "RewindDirection",
    "RewindRecord",
    "layer_features",
    "parameter_layers",
    "permute_labels",
    "permuted_label_experiment",
    "rewind_layers",
]
