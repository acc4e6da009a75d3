"""Linearization: Jacobians, the empirical NTK, closed-form gradient-descent dynamics."""

from gbounds.ntk._empirical import NtkImplementation as NtkImplementation
from gbounds.ntk._empirical import NtkOutput as NtkOutput
from gbounds.ntk._empirical import cast_tree as cast_tree
from gbounds.ntk._empirical import empirical_ntk_fn as empirical_ntk_fn
from gbounds.ntk._empirical import jacobian_fn as jacobian_fn
from gbounds.ntk._empirical import jacobian_vector_product as jacobian_vector_product
from gbounds.ntk._empirical import linearize as linearize
from gbounds.ntk._empirical import vector_jacobian_product as vector_jacobian_product
from gbounds.ntk._dynamics import Eigh as Eigh
from gbounds.ntk._dynamics import ExplicitResult as ExplicitResult
from gbounds.ntk._dynamics import LinearizedPredictions as LinearizedPredictions
from gbounds.ntk._dynamics import Time as Time
from gbounds.ntk._dynamics import gd_coefficients as gd_coefficients
from gbounds.ntk._dynamics import gradient_descent_mse as gradient_descent_mse
from gbounds.ntk._dynamics import linearized_weights as linearized_weights
from gbounds.ntk._dynamics import phi as phi
from gbounds.ntk._dynamics import train_linearized_explicit as train_linearized_explicit

__all__ = [
    "NtkImplementation",
    "NtkOutput",
    "cast_tree",
    "empirical_ntk_fn",
    "jacobian_fn",
    "jacobian_vector_product",
    "linearize",
    "vector_jacobian_product",
    "Eigh",
    "ExplicitResult",
    "LinearizedPredictions",
    "Time",
    "gd_coefficients",
    "gradient_descent_mse",
    "linearized_weights",
    "phi",
    "train_linearized_explicit",
]
