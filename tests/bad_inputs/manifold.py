"""Bad inputs to the MFTMA manifold geometry (gbounds/geometry/_manifold.py) and ``gbounds manifold``.

Every case fails in validation, before any compilation or training. (A QP that does not converge
raises ConvergenceError; that needs a compiled solve, so it is tested in tests/geometry/test_manifold.py.)
"""

import os
import tempfile

import numpy as np

import gbounds
from gbounds._src import errors as _errors
from tests.bad_inputs import Case

_RNG = np.random.default_rng(0)
_X = _RNG.standard_normal((3, 5, 12)) + 3.0 * _RNG.standard_normal((3, 1, 12))
_S = np.concatenate([_RNG.standard_normal((4, 6)), np.ones((1, 6))])
_T = _RNG.standard_normal((7, 5))
_E = _errors.InvalidInputError


def _with(x, idx, value):
  x = np.array(x, dtype=float)
  x[idx] = value
  return x


def _geometry(**kw):
  kw.setdefault("key", 0)
  return gbounds.geometry.manifold_geometry(kw.pop("x", _X), **kw)


def _same_centres():
  x = np.array(_X)
  x[1] = x[0]  # two identical manifolds: with P = 2 both centres sit at the global mean
  return gbounds.geometry.manifold_geometry(x[:2], key=0)


def _cli(*argv):
  from gbounds.cli import build_parser
  args = build_parser().parse_args(["manifold", *argv])
  return args.func(args)


def _cli_npy(array, *argv):
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "x.npy")
    np.save(path, array)
    return _cli("geometry", "--input", path, "--out", os.path.join(d, "out"), *argv)


def _cli_npz(*argv, **arrays):
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "x.npz")
    np.savez(path, **arrays)
    return _cli("geometry", "--input", path, "--out", os.path.join(d, "out"), *argv)


_FEATS = _RNG.standard_normal((20, 6))
_LABELS = np.repeat([0, 1], 10)

CASES = [
    # manifold_geometry
    Case("manifold/geometry_rank2", "ranks", lambda: _geometry(x=_X[0]), _E,
         r"manifolds: expected an array of rank 3"),
    Case("manifold/geometry_one_manifold", "sizes", lambda: _geometry(x=_X[:1]), _E,
         r"manifolds: expected at least 2 manifolds"),
    Case("manifold/geometry_no_points", "empty", lambda: _geometry(x=_X[:, :0]), _E,
         r"manifolds: expected at least 2 points"),
    Case("manifold/geometry_t_empty", "empty", lambda: _geometry(t=np.zeros((3, 0, 6))), _E,
         r"t: expected samples of shape"),
    Case("manifold/geometry_one_point", "sizes", lambda: _geometry(x=_X[:, :1]), _E,
         r"manifolds: expected at least 2 points"),
    Case("manifold/geometry_m_ge_n", "shapes",
         lambda: _geometry(x=_RNG.standard_normal((3, 12, 12))), _E,
         r"manifolds: expected fewer points per manifold than features"),
    Case("manifold/geometry_nan", "nan", lambda: _geometry(x=_with(_X, (1, 2, 3), np.nan)), _E,
         r"manifolds: expected finite"),
    Case("manifold/geometry_inf", "nan", lambda: _geometry(x=_with(_X, (0, 0, 0), np.inf)), _E,
         r"manifolds: expected finite"),
    Case("manifold/geometry_string_data", "dtypes",
         lambda: _geometry(x=np.full((3, 5, 12), "a")), _E, r"manifolds: expected a real"),
    Case("manifold/geometry_centre_at_mean", "sizes", _same_centres, _E,
         r"manifolds: expected class centres away from the global mean"),
    Case("manifold/geometry_kappa_negative", "options", lambda: _geometry(kappa=-0.1), _E,
         r"kappa: expected a margin kappa >= 0"),
    Case("manifold/geometry_kappa_nan", "nan", lambda: _geometry(kappa=float("nan")), _E,
         r"kappa: expected"),
    Case("manifold/geometry_n_t_zero", "counts", lambda: _geometry(n_t=0), _E,
         r"n_t: expected integers >= 1"),
    Case("manifold/geometry_n_t_fraction", "counts", lambda: _geometry(n_t=2.5), _E,
         r"n_t: expected integers >= 1"),
    Case("manifold/geometry_t_shape", "shapes", lambda: _geometry(t=np.zeros((3, 4, 7))), _E,
         r"t: expected samples of shape"),
    Case("manifold/geometry_t_nan", "nan",
         lambda: _geometry(t=_with(np.zeros((3, 4, 6)), (0, 0, 0), np.nan)), _E,
         r"t: expected finite"),
    Case("manifold/geometry_unknown_solver", "options", lambda: _geometry(solver="newton"), _E,
         r"solver: expected one of"),
    Case("manifold/geometry_unknown_formula", "options",
         lambda: _geometry(dimension_formula="prx"), _E, r"dimension_formula: expected one of"),
    Case("manifold/geometry_center_rank_negative", "counts", lambda: _geometry(center_rank=-1),
         _E, r"center_rank: expected integers >= 0"),
    Case("manifold/geometry_max_features_zero", "counts", lambda: _geometry(max_features=0),
         _E, r"max_features: expected integers >= 1"),
    Case("manifold/geometry_tol_negative", "options", lambda: _geometry(tol=-1e-9), _E,
         r"tol: expected a positive finite number"),
    Case("manifold/geometry_bad_key", "options", lambda: _geometry(key="seed"), _E,
         r"key: expected a PRNG key or an int seed"),
    Case("manifold/geometry_int_dtype", "dtypes", lambda: _geometry(dtype=np.int32), _E,
         r"dtype: expected float32 or float64"),
    # solve_anchor_qp / anchor_geometry
    Case("manifold/qp_s_rank1", "ranks", lambda: gbounds.geometry.solve_anchor_qp(np.ones(5), _T), _E,
         r"s: expected a non-empty array of rank 2"),
    Case("manifold/qp_t_last_axis", "shapes",
         lambda: gbounds.geometry.solve_anchor_qp(_S, np.ones((3, 4))), _E, r"t: expected an array with"),
    Case("manifold/qp_s_nan", "nan",
         lambda: gbounds.geometry.solve_anchor_qp(_with(_S, (0, 0), np.nan), _T), _E,
         r"s: expected finite"),
    Case("manifold/qp_kappa_negative", "options",
         lambda: gbounds.geometry.solve_anchor_qp(_S, _T, kappa=-1.0), _E, r"kappa: expected"),
    Case("manifold/qp_kappa_vector", "shapes",
         lambda: gbounds.geometry.solve_anchor_qp(_S, _T, kappa=np.zeros(6)), _E, r"kappa: expected a"),
    Case("manifold/qp_n_iter_zero", "counts",
         lambda: gbounds.geometry.solve_anchor_qp(_S, _T, n_iter=0), _E, r"n_iter: expected integers"),
    Case("manifold/qp_active_set_steps_negative", "counts",
         lambda: gbounds.geometry.solve_anchor_qp(_S, _T, active_set_steps=-1), _E,
         r"active_set_steps: expected integers"),
    Case("manifold/qp_max_residual_zero", "options",
         lambda: gbounds.geometry.solve_anchor_qp(_S, _T, max_residual=0.0), _E,
         r"max_residual: expected a positive"),
    Case("manifold/anchor_geometry_no_ones_row", "options",
         lambda: gbounds.geometry.anchor_geometry(_S[:-1] + 2.0, _T[:, :-1]), _E,
         r"s: expected a last row of ones"),
    Case("manifold/anchor_geometry_t_rank1", "ranks",
         lambda: gbounds.geometry.anchor_geometry(_S, _T[0]), _E, r"t: expected samples of shape"),
    # class_manifolds
    Case("manifold/classes_repeated", "classes",
         lambda: gbounds.geometry.class_manifolds(_FEATS, _LABELS, n_per_class=3, classes=[1, 1]), _E,
         r"classes: expected distinct"),
    Case("manifold/classes_absent", "classes",
         lambda: gbounds.geometry.class_manifolds(_FEATS, _LABELS, n_per_class=3, classes=[0, 7]), _E,
         r"classes: expected labels present"),
    Case("manifold/classes_single", "classes",
         lambda: gbounds.geometry.class_manifolds(_FEATS, np.zeros(20, int), n_per_class=3), _E,
         r"classes: expected at least 2 classes"),
    Case("manifold/n_per_class_one", "counts",
         lambda: gbounds.geometry.class_manifolds(_FEATS, _LABELS, n_per_class=1), _E,
         r"n_per_class: expected integers >= 2"),
    Case("manifold/n_per_class_too_many", "sizes",
         lambda: gbounds.geometry.class_manifolds(_FEATS, _LABELS, n_per_class=11), _E,
         r"n_per_class: expected at most"),
    Case("manifold/features_labels_lengths", "shapes",
         lambda: gbounds.geometry.class_manifolds(_FEATS, _LABELS[:-1], n_per_class=3), _E,
         r"features and labels"),
    Case("manifold/features_nan", "nan",
         lambda: gbounds.geometry.class_manifolds(_with(_FEATS, (0, 0), np.nan), _LABELS,
                                         n_per_class=3), _E, r"features: expected finite"),
    # CLI: gbounds manifold ...
    Case("manifold/cli_geometry_kappa", "cli", lambda: _cli_npy(_X, "--kappa", "-1"), _E,
         r"^--kappa: expected"),
    Case("manifold/cli_geometry_n_t", "cli", lambda: _cli_npy(_X, "--n-t", "0"), _E,
         r"^--n-t: expected"),
    Case("manifold/cli_geometry_missing_input", "cli",
         lambda: _cli("geometry", "--input", "/nonexistent/x.npy"), _E, r"^--input: expected"),
    Case("manifold/cli_geometry_input_rank", "cli", lambda: _cli_npy(_X[0]), _E,
         r"^--input: manifolds: expected an array of rank 3"),
    Case("manifold/cli_geometry_input_nan", "cli", lambda: _cli_npy(_with(_X, (0, 1, 2), np.nan)),
         _E, r"^--input: manifolds: expected finite"),
    Case("manifold/cli_geometry_points", "cli",
         lambda: _cli_npz("--points", "1", features=_FEATS, labels=_LABELS), _E,
         r"^--points: expected"),
    Case("manifold/cli_geometry_npz_keys", "cli", lambda: _cli_npz(x=_FEATS), _E,
         r"^--input: expected an .npz with arrays"),
    Case("manifold/cli_permuted_n_per_manifold", "cli",
         lambda: _cli("permuted-labels", "--quick", "--n-per-manifold", "1"), _E,
         r"^--n-per-manifold: expected"),
    Case("manifold/cli_permuted_fraction", "cli",
         lambda: _cli("permuted-labels", "--quick", "--permute-fraction", "1.5"), _E,
         r"^--permute-fraction: "),
    Case("manifold/cli_permuted_checkpoints", "cli",
         lambda: _cli("permuted-labels", "--quick", "--checkpoint-epochs", "0", "99"), _E,
         r"^--checkpoint-epochs: expected epochs in \[0, 4\]"),
    Case("manifold/cli_permuted_rewind", "cli",
         lambda: _cli("permuted-labels", "--quick", "--rewind-epoch", "9"), _E,
         r"^--rewind-epoch: "),
    Case("manifold/cli_permuted_data_dir", "cli",
         lambda: _cli("permuted-labels", "--quick", "--data-dir", "/nonexistent"), _E,
         r"^--data-dir: expected an existing directory"),
]
