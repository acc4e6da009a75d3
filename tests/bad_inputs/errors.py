"""Bad inputs to the shared checkers themselves (gbounds._src.errors)."""

import numpy as np

from gbounds._src import errors as _errors
from tests.bad_inputs import Case

CASES = [
    Case("errors/delta_zero", "probabilities",
         lambda: _errors.check_open_unit_interval("delta", 0.0), _errors.InvalidInputError,
         r"delta: expected values in the open interval"),
    Case("errors/labels_out_of_range", "labels",
         lambda: _errors.check_labels("y", np.array([0, 1, 2]), 2), _errors.InvalidInputError,
         r"y: expected class labels in \[0, 2\)"),
    Case("errors/nan_params", "nan",
         lambda: _errors.check_finite_tree("params", {"w": np.array([1.0, np.nan])}),
         _errors.InvalidInputError, r"params: .*\['w'\]"),
]
