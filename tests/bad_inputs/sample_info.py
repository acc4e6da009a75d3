"""Bad inputs to leave-one-out, sample information and the linearized dynamics."""

import functools

import numpy as np

from gbounds._src import errors as _errors
from gbounds.info import _sample_info as si
from gbounds.ntk import _dynamics as _dynamics
from tests.bad_inputs import Case

_E = _errors.InvalidInputError


@functools.lru_cache(maxsize=1)
def _kernel():
  rng = np.random.default_rng(0)
  j = rng.normal(size=(6, 9))
  theta = j @ j.T
  r0 = rng.normal(size=6)
  eta = 0.5 / np.linalg.eigvalsh(theta)[-1]
  return theta, r0, eta


def _loo(**overrides):
  theta, r0, eta = _kernel()
  kw = dict(learning_rate=eta, t=20)
  kw.update(overrides)
  th = kw.pop("theta", theta)
  r = kw.pop("residual0", r0)
  return si.leave_one_out(th, r, **kw)


def _from_kernels(**overrides):
  theta, r0, eta = _kernel()
  kw = dict(learning_rate=eta, t=20)
  kw.update(overrides)
  return si.sample_information_from_kernels(theta, r0, **kw)


def _nan_theta():
  theta = _kernel()[0].copy()
  theta[1, 2] = theta[2, 1] = np.nan
  return theta


def _asym_theta():
  theta = _kernel()[0].copy()
  theta[0, 1] += 1.0
  return theta


def _indefinite_theta():
  theta = _kernel()[0].copy()
  return theta - 2.0 * np.linalg.eigvalsh(theta)[-1] * np.eye(6)


def _divergent():
  theta, r0, _ = _kernel()
  return 2.5 / np.linalg.eigvalsh(theta)[-1]


CASES = [
    Case("sample_info/theta_rank1", "ranks", lambda: _loo(theta=np.ones(6)), _E, r"theta"),
    Case("sample_info/theta_shape_mismatch", "shapes", lambda: _loo(theta=np.eye(5)), _E,
         r"theta: expected shape \(6, 6\)"),
    Case("sample_info/residual0_rank2", "ranks", lambda: _loo(residual0=np.zeros((6, 1))), _E,
         r"residual0"),
    Case("sample_info/theta_nan", "nan", lambda: _loo(theta=_nan_theta()), _E,
         r"theta: expected finite"),
    Case("sample_info/residual0_inf", "nan",
         lambda: _loo(residual0=np.r_[np.inf, np.zeros(5)]), _E, r"residual0: expected finite"),
    Case("sample_info/theta_complex", "dtypes",
         lambda: _loo(theta=_kernel()[0].astype(complex)), _E, r"theta: expected a real"),
    Case("sample_info/theta_not_symmetric", "shapes", lambda: _loo(theta=_asym_theta()), _E,
         r"theta: expected a symmetric"),
    Case("sample_info/theta_not_psd", "sizes", lambda: _loo(theta=_indefinite_theta()), _E,
         r"theta: expected a positive semi-definite"),
    Case("sample_info/num_outputs_not_divisor", "sizes", lambda: _loo(num_outputs=4), _E,
         r"num_outputs"),
    Case("sample_info/one_example", "empty",
         lambda: si.leave_one_out(np.eye(1), np.zeros(1), learning_rate=0.1, t=5), _E,
         r"theta: expected a kernel of at least 2 examples"),
    Case("sample_info/indices_out_of_range", "sizes", lambda: _loo(indices=[0, 6]), _E,
         r"indices"),
    Case("sample_info/indices_float", "dtypes", lambda: _loo(indices=[0.5, 1.0]), _E,
         r"indices"),
    Case("sample_info/indices_empty", "empty", lambda: _loo(indices=[]), _E, r"indices"),
    Case("sample_info/t_negative", "sizes", lambda: _loo(t=-1), _E, r"\bt: expected"),
    Case("sample_info/t_nan", "nan", lambda: _loo(t=float("nan")), _E, r"\bt: expected"),
    Case("sample_info/t_fractional_steps", "counts", lambda: _loo(t=2.5), _E,
         r"\bt: expected a whole number"),
    Case("sample_info/weight_decay_negative", "sizes", lambda: _loo(weight_decay=-0.1), _E,
         r"weight_decay"),
    Case("sample_info/learning_rate_zero", "sizes", lambda: _loo(learning_rate=0.0), _E,
         r"learning_rate"),
    Case("sample_info/learning_rate_divergent", "sizes",
         lambda: _loo(learning_rate=_divergent()), _E, r"learning_rate: expected a step below"),
    Case("sample_info/learning_rate_divergent_t_inf", "sizes",
         lambda: _loo(learning_rate=_divergent(), t=np.inf), _E, r"learning_rate"),
    Case("sample_info/method_unknown", "options", lambda: _loo(method="cholesky"), _E,
         r"method: expected one of"),
    Case("sample_info/convention_unknown", "options", lambda: _loo(convention="median"), _E,
         r"convention: expected one of"),
    Case("sample_info/time_unknown", "options", lambda: _loo(time="stochastic"), _E,
         r"time: expected one of"),
    Case("sample_info/downdate_finite_t", "options", lambda: _loo(method="downdate"), _E,
         r"method: expected"),
    Case("sample_info/downdate_singular", "options",
         lambda: _loo(theta=np.ones((6, 6)), method="downdate", t=np.inf), _E,
         r"method: expected a nonsingular"),
    Case("sample_info/chunk_size_zero", "counts", lambda: _loo(chunk_size=0), _E, r"chunk_size"),
    Case("sample_info/krylov_steps_fractional", "counts", lambda: _loo(krylov_steps=2.5), _E,
         r"krylov_steps"),
    Case("sample_info/rtol_out_of_range", "probabilities", lambda: _loo(rtol=1.5), _E, r"rtol"),
    Case("sample_info/sigma_negative", "sizes", lambda: _from_kernels(sigma=-1.0), _E,
         r"sigma"),
    Case("sample_info/heldout_kernel_nan", "nan",
         lambda: _from_kernels(theta_heldout_train=np.full((2, 6), np.nan)), _E,
         r"theta_heldout_train: expected finite"),
    Case("sample_info/heldout_kernel_shape", "shapes",
         lambda: _from_kernels(theta_heldout_train=np.zeros((2, 5))), _E,
         r"theta_heldout_train"),
    Case("sample_info/sgd_without_jacobian", "options", lambda: _from_kernels(sgd_batch_size=2),
         _E, r"jacobian"),
    Case("sample_info/loo_weight_change_rank", "ranks",
         lambda: si.loo_weight_change(lambda p, x: x @ p, np.zeros((3, 1)), np.zeros((6, 3)),
                                      np.zeros(6)), _E, r"loo_coefficients"),
    Case("dynamics/gd_divergent_step", "sizes",
         lambda: _dynamics.gradient_descent_mse(_kernel()[0], np.zeros(6), _kernel()[1],
                                                learning_rate=_divergent(), t=np.inf,
                                                time="discrete"), _E, r"learning_rate"),
    Case("dynamics/gd_coefficients_shape", "shapes",
         lambda: _dynamics.gd_coefficients(np.eye(5), np.zeros(6), learning_rate=0.1, t=3), _E,
         r"theta: expected shape"),
    Case("dynamics/gd_coefficients_nan_residual", "nan",
         lambda: _dynamics.gd_coefficients(np.eye(2), np.array([np.nan, 0.0]),
                                           learning_rate=0.1, t=3), _E, r"residual0"),
]


def _tiny_model_call(**overrides):
  x = np.linspace(-1, 1, 8).reshape(4, 2)
  y = np.array([0.0, 1.0, 0.0, 1.0])
  kw = dict(learning_rate=0.01, t=5)
  kw.update(overrides)
  return si.sample_information(lambda p, xx: xx @ p, np.ones((2, 1)), x, y, **kw)


CASES += [
    Case("sample_info/sample_information_convention_unknown", "options",
         lambda: _tiny_model_call(convention="average"), _E, r"convention: expected one of"),
    Case("sample_info/sample_information_x_train_nan", "nan",
         lambda: si.sample_information(
             lambda p, xx: xx @ p, np.ones((2, 1)), np.full((4, 2), np.nan), np.zeros(4),
             learning_rate=0.01, t=5), _E, r"x_train: expected finite"),
    Case("sample_info/sample_information_divergent_step", "sizes",
         lambda: _tiny_model_call(learning_rate=100.0), _E, r"learning_rate"),
]
