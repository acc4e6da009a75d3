"""Linearization: Jacobians, the empirical NTK, closed-form gradient-descent dynamics.

Public API (import from ``gbounds.ntk``; ``_empirical`` and ``_dynamics`` are private):

* Engine (:mod:`_empirical`): :func:`empirical_ntk_fn`, :func:`jacobian_fn`, :func:`linearize`,
  :func:`jacobian_vector_product`, :func:`vector_jacobian_product`, :func:`cast_tree`, the enums
  :class:`NtkImplementation`, :class:`NtkOutput`, the ``AUTO`` choice's cost model
  :func:`choose_implementation` (returns :class:`NtkCost`) and :func:`free_memory_bytes`, and the model checks other layers reuse:
  :func:`check_apply_fn` (refuses non-callables and raw Flax modules) and :func:`output_shape`
  (``(batch, k)`` by abstract evaluation, with the engine's error messages).
* Dynamics (:mod:`_dynamics`): :func:`gradient_descent_mse`, :func:`gd_coefficients`,
  :func:`phi`, :func:`phi_host` (the float64 host twin of ``phi``), :func:`linearized_weights`,
  :func:`train_linearized_explicit`, the argument checks :func:`check_dynamics_args` and
  :func:`check_step_size`, the enum :class:`Time`, and the results :class:`LinearizedPredictions`
  and :class:`ExplicitResult`.
* Several devices (:mod:`_sharded`): :func:`sharded_ntk_fn` and :func:`sharded_jacobian_fn`
  (the engine's kernel and Jacobian with their rows sharded over a ``jax.sharding.Mesh``),
  :func:`map_row_bands` (the one row-band builder, also used by ``gbounds.info``),
  :func:`row_mesh`, :func:`row_sharding` and :func:`is_row_sharded`.
* :class:`Eigh` is THE eigendecomposition type of ``gbounds._src.numerics`` (re-exported here).
"""

from gbounds.ntk._dynamics import Eigh as Eigh
from gbounds.ntk._dynamics import ExplicitResult as ExplicitResult
from gbounds.ntk._dynamics import LinearizedPredictions as LinearizedPredictions
from gbounds.ntk._dynamics import Time as Time
from gbounds.ntk._dynamics import check_dynamics_args as check_dynamics_args
from gbounds.ntk._dynamics import check_step_size as check_step_size
from gbounds.ntk._dynamics import gd_coefficients as gd_coefficients
from gbounds.ntk._dynamics import gradient_descent_mse as gradient_descent_mse
from gbounds.ntk._dynamics import linearized_weights as linearized_weights
from gbounds.ntk._dynamics import phi as phi
from gbounds.ntk._dynamics import phi_host as phi_host
from gbounds.ntk._dynamics import train_linearized_explicit as train_linearized_explicit
from gbounds.ntk._empirical import NtkCost as NtkCost
from gbounds.ntk._empirical import NtkImplementation as NtkImplementation
from gbounds.ntk._empirical import NtkOutput as NtkOutput
from gbounds.ntk._empirical import cast_tree as cast_tree
from gbounds.ntk._empirical import check_apply_fn as check_apply_fn
from gbounds.ntk._empirical import choose_implementation as choose_implementation
from gbounds.ntk._empirical import empirical_ntk_fn as empirical_ntk_fn
from gbounds.ntk._empirical import free_memory_bytes as free_memory_bytes
from gbounds.ntk._empirical import jacobian_fn as jacobian_fn
from gbounds.ntk._empirical import jacobian_vector_product as jacobian_vector_product
from gbounds.ntk._empirical import linearize as linearize
from gbounds.ntk._empirical import output_shape as output_shape
from gbounds.ntk._empirical import vector_jacobian_product as vector_jacobian_product
from gbounds.ntk._sharded import is_row_sharded as is_row_sharded
from gbounds.ntk._sharded import map_row_bands as map_row_bands
from gbounds.ntk._sharded import row_mesh as row_mesh
from gbounds.ntk._sharded import row_sharding as row_sharding
from gbounds.ntk._sharded import sharded_jacobian_fn as sharded_jacobian_fn
from gbounds.ntk._sharded import sharded_ntk_fn as sharded_ntk_fn

__all__ = [
    "NtkCost",
    "NtkImplementation",
    "NtkOutput",
    "cast_tree",
    "check_apply_fn",
    "choose_implementation",
    "empirical_ntk_fn",
    "free_memory_bytes",
    "jacobian_fn",
    "jacobian_vector_product",
    "linearize",
    "output_shape",
    "vector_jacobian_product",
    "Eigh",
    "ExplicitResult",
    "LinearizedPredictions",
    "Time",
    "check_dynamics_args",
    "check_step_size",
    "gd_coefficients",
    "gradient_descent_mse",
    "linearized_weights",
    "phi",
    "phi_host",
    "train_linearized_explicit",
    "is_row_sharded",
    "map_row_bands",
    "row_mesh",
    "row_sharding",
    "sharded_jacobian_fn",
    "sharded_ntk_fn",
]
