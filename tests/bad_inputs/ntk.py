"""Bad inputs to the NTK engine (gbounds.ntk): empirical NTK, Jacobians, linearize and the
Jacobian-vector products."""

from __future__ import annotations

import jax
import numpy as np

import gbounds
from gbounds._src import errors as _errors
from tests.bad_inputs import Case

_E = _errors.InvalidInputError
_X = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
_MODEL = gbounds.models.MLP((4,), 2)
_APPLY = lambda p, x: _MODEL.apply({"params": p}, x)  # noqa: E731
_P = _MODEL.init(jax.random.key(0), _X[:1])["params"]


def _nan_params():
  def one(a):
    a = np.array(a)
    a.flat[0] = np.nan
    return a
  return jax.tree_util.tree_map(one, _P)


def _ntk(**kw):
  return gbounds.ntk.empirical_ntk_fn(_APPLY, **kw)


CASES = [
    # ---- NaN / inf
    Case("ntk/params_nan", "nan", lambda: _ntk()(_X, None, _nan_params()), _E,
         r"params: expected finite values.*\['dense0'\]"),
    Case("ntk/x1_inf", "nan", lambda: _ntk()(np.where(_X > 1, np.inf, _X), None, _P), _E,
         r"x1: expected finite values"),
    Case("ntk/x2_nan", "nan", lambda: _ntk()(_X, np.full((2, 3), np.nan), _P), _E,
         r"x2: expected finite values"),
    Case("ntk/jacobian_params_nan", "nan", lambda: gbounds.ntk.jacobian_fn(_APPLY)(_nan_params(), _X),
         _E, r"params: expected finite values"),
    Case("ntk/linearize_params0_nan", "nan", lambda: gbounds.ntk.linearize(_APPLY, _nan_params()),
         _E, r"params0: expected finite values"),
    Case("ntk/vjp_cotangent_nan", "nan",
         lambda: gbounds.ntk.vector_jacobian_product(_APPLY, _P, _X, np.full((5, 2), np.nan)), _E,
         r"cotangent: expected finite values"),
    # ---- shapes and ranks
    Case("ntk/x1_wrong_features", "shapes", lambda: _ntk()(_X[:, :2], None, _P), _E,
         r"x1: expected inputs the model accepts with these params, got shape \(5, 2\)"),
    Case("ntk/x2_other_example_shape", "shapes", lambda: _ntk()(_X, _X[:, :2], _P), _E,
         r"x2: expected examples of shape \(3,\)"),
    Case("ntk/x1_single_example_rank1", "ranks", lambda: _ntk()(_X[0], None, _P), _E,
         r"x1: expected a batch of inputs with a leading example axis"),
    Case("ntk/x1_empty", "empty", lambda: _ntk()(_X[:0], None, _P), _E,
         r"x1: expected a non-empty array"),
    Case("ntk/x1_strings", "dtypes", lambda: _ntk()(np.array([["a", "b", "c"]]), None, _P), _E,
         r"x1: expected a numeric array"),
    Case("ntk/jacobian_wrong_features", "shapes",
         lambda: gbounds.ntk.jacobian_fn(_APPLY)(_P, np.zeros((4, 7), np.float32)), _E,
         r"x: expected inputs the model accepts.*shape \(4, 7\)"),
    Case("ntk/linearize_params_other_tree", "shapes",
         lambda: gbounds.ntk.linearize(_APPLY, _P)({"head": _P["head"]}, _X), _E,
         r"params: expected a pytree with the structure of params0"),
    Case("ntk/jvp_tangent_other_tree", "shapes",
         lambda: gbounds.ntk.jacobian_vector_product(_APPLY, _P, _X, {"w": np.ones(3)}), _E,
         r"tangent: expected a pytree with the structure of params"),
    Case("ntk/vjp_cotangent_wrong_size", "shapes",
         lambda: gbounds.ntk.vector_jacobian_product(_APPLY, _P, _X, np.ones(7)), _E,
         r"cotangent: expected shape \(5, 2\) or \(10,\)"),
    Case("ntk/apply_fn_scalar_output", "shapes",
         lambda: gbounds.ntk.empirical_ntk_fn(lambda p, x: _APPLY(p, x).sum())(_X, None, _P), _E,
         r"apply_fn: expected outputs of shape \(batch, k\)"),
    # ---- chunk sizes and options
    Case("ntk/chunk_size_zero", "sizes", lambda: _ntk(chunk_size=0), _E,
         r"chunk_size: expected a positive integer or None, got 0"),
    Case("ntk/chunk_size_fractional", "sizes", lambda: _ntk(chunk_size=2.5), _E,
         r"chunk_size: expected a positive integer"),
    Case("ntk/chunk_size_bool", "dtypes", lambda: _ntk(chunk_size=True), _E,
         r"chunk_size: expected a positive integer"),
    Case("ntk/jacobian_chunk_size_negative", "sizes",
         lambda: gbounds.ntk.jacobian_fn(_APPLY, chunk_size=-4), _E,
         r"chunk_size: expected a positive integer"),
    Case("ntk/unknown_implementation", "options", lambda: _ntk(implementation="autodiff"), _E,
         r"implementation: expected one of \{jacobian_contraction, ntk_vector_products, auto\}"),
    Case("ntk/unknown_output", "options", lambda: _ntk(output="diagonal"), _E,
         r"output: expected one of \{full, trace\}"),
    Case("ntk/apply_fn_not_callable", "options",
         lambda: gbounds.ntk.empirical_ntk_fn(_MODEL), _E, r"apply_fn: expected a function"),
]
