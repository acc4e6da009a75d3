"""Shared checkers (gbounds._src.errors): the jit-safe check and the edge cases of the checkers
(the bad-input cases themselves are in tests/bad_inputs/errors.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gbounds._src import errors as _errors
from gbounds._src import numerics
from gbounds._src.errors import InvalidInputError


def test_error_types():
  assert issubclass(InvalidInputError, ValueError)
  assert issubclass(_errors.CorruptFileError, ValueError)
  assert issubclass(_errors.DataNotFoundError, FileNotFoundError)
  assert issubclass(_errors.StoreLockedError, RuntimeError)
  assert issubclass(_errors.ConvergenceError, ArithmeticError)
  for t in (InvalidInputError, _errors.CorruptFileError, _errors.DataNotFoundError,
            _errors.StoreLockedError, _errors.ConvergenceError, _errors.ChecksumError):
    assert issubclass(t, _errors.GBoundsError)


def test_fail_message_format():
  with pytest.raises(InvalidInputError) as info:
    _errors.fail("x", "a positive value", -1)
  assert str(info.value) == "x: expected a positive value, got -1 instead."


def test_error_if_eager_passes_through():
  x = np.arange(3.0)
  assert _errors.error_if(x, np.array([False, False, False]), "x: bad") is x


def test_error_if_under_jit_raises_at_run_time():
  @jax.jit
  def f(x):
    x = _errors.error_if(x, jnp.any(x < 0), "x: expected non-negative values")
    return jnp.sqrt(x)

  np.testing.assert_allclose(np.asarray(f(jnp.asarray([4.0, 9.0]))), [2.0, 3.0])
  with pytest.raises(jax.errors.JaxRuntimeError, match="x: expected non-negative values"):
    jax.block_until_ready(f(jnp.asarray([4.0, -1.0])))


def test_is_concrete():
  assert _errors.is_concrete(np.ones(2), 3.0, {"a": jnp.ones(2)})
  seen = []
  jax.jit(lambda x: seen.append(_errors.is_concrete(x)) or x)(jnp.ones(2))
  assert seen == [False]


def test_check_int_returns_int():
  assert _errors.check_int("n", np.int64(3)) == 3 and type(_errors.check_int("n", 3.0)) is int
  assert _errors.check_int("n", 5, minimum=5, maximum=5) == 5


@pytest.mark.parametrize("value", [0.5, 1, np.float32(2.0), np.int64(7)])
def test_check_real_accepts(value):
  _errors.check_real("eta", value, "a positive value", lambda v: v > 0)


def test_as_enum_accepts_member_name_and_value():
  assert _errors.as_enum("b", numerics.EighBackend.HOST, numerics.EighBackend) \
      is numerics.EighBackend.HOST
  assert _errors.as_enum("b", "Host", numerics.EighBackend) is numerics.EighBackend.HOST
  assert _errors.as_enum("b", "xla", numerics.EighBackend) is numerics.EighBackend.XLA


def test_check_labels_accepts_whole_floats():
  _errors.check_labels("y", np.array([0.0, 1.0]), 2)


def test_check_same_leading_with_a_scalar_names_the_argument():
  with pytest.raises(InvalidInputError, match="x and y"):
    _errors.check_same_leading(("x", "y"), np.float32(1.0), np.ones(3))


def test_eigh_unknown_backend_names_the_argument():
  with pytest.raises(InvalidInputError, match="backend"):
    numerics.eigh(np.eye(2, dtype=np.float32), backend="gpu")


_INTERVAL_CHECKERS = [_errors.check_open_unit_interval, _errors.check_probability,
                      _errors.check_in_unit_interval]


@pytest.mark.parametrize("check", _INTERVAL_CHECKERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("value", ["abc", [0.5, "x"], "0.5"], ids=["word", "mixed", "numeric_str"])
def test_interval_checkers_refuse_strings_naming_the_argument(check, value):
  with pytest.raises(InvalidInputError, match="delta"):
    check("delta", value)


@pytest.mark.parametrize("value", ["abc", None], ids=["str", "none"])
def test_check_positive_refuses_non_numbers_naming_the_argument(value):
  with pytest.raises(InvalidInputError, match="sigma"):
    _errors.check_positive("sigma", value)
