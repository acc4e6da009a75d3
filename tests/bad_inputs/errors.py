"""Bad inputs to the shared checkers and infrastructure themselves (gbounds._src)."""

import enum
import math

import numpy as np

from gbounds._src import batching as _batching
from gbounds._src import errors as _errors
from gbounds._src import results as _results
from tests.bad_inputs import Case

E = _errors.InvalidInputError


class _Color(enum.Enum):
  RED = "red"
  BLUE = "blue"


def _positive(name, value):
  return lambda: _errors.check_real(name, value, "a positive step size", lambda v: v > 0)


CASES = [
    Case("errors/delta_zero", "probabilities",
         lambda: _errors.check_open_unit_interval("delta", 0.0), E,
         r"delta: expected values in the open interval"),
    Case("errors/labels_out_of_range", "labels",
         lambda: _errors.check_labels("y", np.array([0, 1, 2]), 2), E,
         r"y: expected class labels in \[0, 2\)"),
    Case("errors/nan_params", "nan",
         lambda: _errors.check_finite_tree("params", {"w": np.array([1.0, np.nan])}),
         E, r"params: .*\['w'\]"),
    # check_real: a finite real scalar, never a bool or a string, for which the predicate holds
    Case("errors/check_real_bool", "dtypes", _positive("eta", True), E,
         r"eta: expected a positive step size, got True instead"),
    Case("errors/check_real_numpy_bool", "dtypes", _positive("eta", np.bool_(True)), E, r"eta:"),
    Case("errors/check_real_string", "dtypes", _positive("eta", "0.1"), E,
         r"eta: expected a positive step size, got '0.1'"),
    Case("errors/check_real_none", "dtypes", _positive("eta", None), E, r"eta: .*got None"),
    Case("errors/check_real_nan", "nan", _positive("eta", math.nan), E, r"eta: .*got nan"),
    Case("errors/check_real_inf", "nan", _positive("eta", np.float32(np.inf)), E, r"eta: .*inf"),
    Case("errors/check_real_predicate", "sizes", _positive("eta", -0.5), E,
         r"eta: .*got -0\.5 instead"),
    Case("errors/check_real_array", "shapes", _positive("eta", np.array([0.1, 0.2])), E, r"eta:"),
    # check_int
    Case("errors/check_int_bool", "counts", lambda: _errors.check_int("steps", True), E,
         r"steps: expected an integer, got True"),
    Case("errors/check_int_fraction", "counts", lambda: _errors.check_int("steps", 2.5), E,
         r"steps: expected an integer"),
    Case("errors/check_int_whole_float_refused", "counts",
         lambda: _errors.check_int("steps", 3.0, whole_floats=False), E, r"steps: .*got 3\.0"),
    Case("errors/check_int_below", "counts", lambda: _errors.check_int("n", 0, minimum=1), E,
         r"n: expected an integer >= 1, got 0"),
    Case("errors/check_int_above", "counts",
         lambda: _errors.check_int("k", 11, minimum=1, maximum=10), E,
         r"k: expected an integer in \[1, 10\], got 11"),
    Case("errors/check_int_nan", "nan", lambda: _errors.check_int("n", math.nan), E, r"n:"),
    Case("errors/check_int_string", "counts", lambda: _errors.check_int("n", "3"), E,
         r"n: .*got '3'"),
    # other shared checkers
    Case("errors/check_rank", "ranks", lambda: _errors.check_rank("x", np.ones(3), 2), E,
         r"x: expected an array of rank 2, got rank 1"),
    Case("errors/check_rank_choices", "ranks",
         lambda: _errors.check_rank("x", np.ones((1, 1, 1)), (1, 2)), E,
         r"x: expected an array of rank 1 or 2"),
    Case("errors/check_nonempty", "empty", lambda: _errors.check_nonempty("x", np.ones((0, 3))),
         E, r"x: expected a non-empty array"),
    Case("errors/check_nonempty_scalar", "empty",
         lambda: _errors.check_nonempty("x", np.float64(1.0)), E, r"x: expected a non-empty"),
    Case("errors/check_finite_inf", "nan",
         lambda: _errors.check_finite("kernel", np.array([1.0, np.inf])), E,
         r"kernel: expected finite values .*1 non-finite"),
    Case("errors/check_same_leading", "shapes",
         lambda: _errors.check_same_leading(("x", "y"), np.ones((3, 2)), np.ones(4)), E,
         r"x and y: expected the same size along axis 0, got x=3, y=4"),
    Case("errors/check_positive_zero", "sizes", lambda: _errors.check_positive("sigma", 0.0), E,
         r"sigma: expected a positive value"),
    Case("errors/check_positive_nan", "nan", lambda: _errors.check_positive("sigma", np.nan), E,
         r"sigma: expected a positive value"),
    Case("errors/check_nonnegative_negative", "sizes",
         lambda: _errors.check_positive("weight_decay", -1e-3, strict=False), E,
         r"weight_decay: expected a non-negative value"),
    Case("errors/check_in_unit_interval", "probabilities",
         lambda: _errors.check_in_unit_interval("p", np.array([0.5, 1.5])), E,
         r"p: expected values in \[0, 1\]"),
    Case("errors/check_probability_nan", "probabilities",
         lambda: _errors.check_probability("error", np.array([np.nan])), E,
         r"error: expected probabilities in \[0, 1\]"),
    Case("errors/check_open_unit_interval_one", "confidences",
         lambda: _errors.check_open_unit_interval("delta", 1.0), E, r"delta: .*\(0, 1\)"),
    Case("errors/check_open_unit_interval_empty", "confidences",
         lambda: _errors.check_open_unit_interval("delta", np.array([])), E,
         r"delta: .*an empty array"),
    Case("errors/check_binary", "labels",
         lambda: _errors.check_binary("mask", np.array([0, 1, 2])), E,
         r"mask: expected binary values in \{0, 1\}"),
    Case("errors/check_nonnegative_int_fraction", "counts",
         lambda: _errors.check_nonnegative_int("counts", np.array([1.0, 2.5])), E,
         r"counts: expected integers >= 0"),
    Case("errors/check_nonnegative_int_negative", "counts",
         lambda: _errors.check_nonnegative_int("counts", np.array([1, -2])), E,
         r"counts: expected integers >= 0"),
    Case("errors/check_labels_float", "labels",
         lambda: _errors.check_labels("y", np.array([0.0, 0.5]), 2), E,
         r"y: expected integer class labels"),
    Case("errors/as_enum_unknown", "options",
         lambda: _errors.as_enum("color", "green", _Color), E,
         r"color: expected one of \{red, blue\}, got 'green'"),
    Case("errors/as_enum_wrong_type", "options",
         lambda: _errors.as_enum("color", 3, _Color), E, r"color: expected one of"),
    Case("errors/error_if", "nan",
         lambda: _errors.error_if(np.ones(2), np.array([False, True]), "x: expected no NaN"), E,
         r"x: expected no NaN"),
    # batching
    Case("batching/chunk_size_zero", "sizes", lambda: _batching.chunk_bounds(10, 0), E,
         r"chunk_size: expected an integer >= 1, got 0"),
    Case("batching/chunk_size_fraction", "sizes", lambda: _batching.chunk_bounds(10, 2.5), E,
         r"chunk_size: expected an integer"),
    Case("batching/chunk_size_bool", "sizes", lambda: _batching.chunk_bounds(10, True), E,
         r"chunk_size:"),
    Case("batching/chunked_map_no_arrays", "empty",
         lambda: _batching.chunked_map(lambda: 0, chunk_size=2), E,
         r"arrays: expected at least one array"),
    # results
    Case("results/table_ragged_row", "shapes",
         lambda: _results.Table(columns=("a", "b"), rows=[(1, 2), (3,)]), ValueError,
         r"Table row 1 has 1 values for 2 columns"),
    Case("results/from_dict_missing_field", "files",
         lambda: _results.Table.from_dict({"rows": []}), KeyError, r"missing fields \['columns'\]"),
    Case("results/encode_unknown_type", "dtypes", lambda: _results.encode(object()), TypeError,
         r"cannot encode a object"),
]
