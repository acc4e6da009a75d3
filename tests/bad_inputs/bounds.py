"""Bad inputs to the bound and kl helpers (gbounds.bounds._kl, _cmi, _pac_bayes) and to
pac_bayes_certificate: each is refused with a message naming the argument, none returns a
number. Two cases run the helpers under ``jax.jit``/``jax.vmap`` (the check runs at execution
time; under jit JAX re-raises it as a runtime error that carries the same message)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

import gbounds as gb
from gbounds._src.errors import InvalidInputError
from tests.bad_inputs import Case

E = InvalidInputError
NAN = float("nan")


def _masks(k1=2, k2=4, n=3, seed=0):
  return np.random.default_rng(seed).integers(0, 2, (k1, k2, n))


def _losses(k1=2, k2=4, n=3, seed=1):
  return np.random.default_rng(seed).integers(0, 2, (k1, k2, n, 2)).astype(float)


def _with(fn, **over):
  """A call of ``fn`` on valid (masks, losses) with keyword overrides."""
  kw = {"masks": _masks(), "losses": _losses()}
  kw.update(over)
  return lambda: fn(kw.pop("masks"), kw.pop("losses"), **kw)


@functools.lru_cache(maxsize=1)
def _tiny_model():
  rng = np.random.default_rng(0)
  params = {"w": jnp.asarray(rng.normal(size=(3, 2))), "b": jnp.zeros(2)}
  init = {"w": jnp.asarray(rng.normal(size=(3, 2))), "b": jnp.zeros(2)}
  x = rng.normal(size=(8, 3))
  y = np.array([0, 1] * 4)
  return (lambda p, v: v @ p["w"] + p["b"][None, :]), params, init, x, y


def _cert(**over):
  def call():
    apply_fn, params, init, x, y = _tiny_model()
    kw = dict(apply_fn=apply_fn, params=params, init_params=init, x_train=x, y_train=y,
              sigmas=(0.1,), mc_samples=2, selection_samples=1)
    kw.update({k: (v() if callable(v) and k not in ("apply_fn",) else v) for k, v in over.items()})
    return gb.bounds.pac_bayes_certificate(kw.pop("apply_fn"), kw.pop("params"), kw.pop("init_params"),
                                    kw.pop("x_train"), kw.pop("y_train"), **kw)
  return call


def _nan_params():
  _, params, _, _, _ = _tiny_model()
  return {"w": params["w"].at[0, 0].set(jnp.nan), "b": params["b"]}


def _inf_init():
  _, _, init, _, _ = _tiny_model()
  return {"w": init["w"], "b": init["b"].at[1].set(jnp.inf)}


_JAX_ERR = (InvalidInputError, jax.errors.JaxRuntimeError)

CASES = [
    # --- confidences (delta) ------------------------------------------------------------------
    Case("bounds/pac_bayes_kl_delta_zero", "confidences",
         lambda: gb.bounds.pac_bayes_kl_bound(0.1, 5.0, 100, 0.0), E, r"^delta: expected"),
    Case("bounds/pac_bayes_kl_delta_one", "confidences",
         lambda: gb.bounds.pac_bayes_kl_bound(0.1, 5.0, 100, 1.0), E, r"^delta: expected"),
    Case("bounds/mcallester_delta_negative", "confidences",
         lambda: gb.bounds.mcallester_bound(0.1, 5.0, 100, -1.0), E, r"^delta: expected"),
    Case("bounds/catoni_delta_nan", "confidences",
         lambda: gb.bounds.catoni_bound(0.1, 5.0, 100, NAN, 2.0), E, r"^delta: expected"),
    Case("bounds/mc_error_delta_one", "confidences",
         lambda: gb.bounds.mc_error_upper_bound(0.1, 100, 1.0), E, r"^delta: expected"),
    Case("bounds/pac_bayes_confidence_delta_array", "confidences",
         lambda: gb.bounds.pac_bayes_confidence(1.0, 10, np.array([0.05, 0.0])), E,
         r"^delta: expected .*1 of 2 entries"),
    Case("bounds/cmi_bounds_confidence_one", "confidences",
         lambda: gb.bounds.cmi_bounds(_masks(), None, _losses(), confidence=1.0), E, r"^confidence"),
    Case("bounds/certificate_delta_mc_zero", "confidences", _cert(delta_mc=0.0), E,
         r"^delta_mc: expected"),
    # --- probabilities / error rates -----------------------------------------------------------
    Case("bounds/binary_kl_q_negative", "probabilities",
         lambda: gb.bounds.binary_kl(-0.1, 0.5), E, r"^q: expected probabilities in \[0, 1\]"),
    Case("bounds/binary_kl_p_above_one", "probabilities",
         lambda: gb.bounds.binary_kl(0.2, 1.5), E, r"^p: expected probabilities"),
    Case("bounds/kl_inverse_upper_q_two", "probabilities",
         lambda: gb.bounds.kl_inverse_upper(2.0, 0.1), E, r"^q: expected probabilities"),
    Case("bounds/kl_inverse_lower_q_negative", "probabilities",
         lambda: gb.bounds.kl_inverse_lower(-1.0, 0.1), E, r"^q: expected probabilities"),
    Case("bounds/pac_bayes_kl_error_above_one", "probabilities",
         lambda: gb.bounds.pac_bayes_kl_bound(1.2, 5.0, 100, 0.05), E, r"^empirical_error: expected"),
    Case("bounds/mcallester_error_negative", "probabilities",
         lambda: gb.bounds.mcallester_bound(-0.01, 5.0, 100, 0.05), E, r"^empirical_error: expected"),
    Case("bounds/mc_error_above_one", "probabilities",
         lambda: gb.bounds.mc_error_upper_bound(1.01, 100, 0.05), E, r"^mc_error: expected"),
    Case("bounds/ecmi_kl_train_error_above_one", "probabilities",
         lambda: gb.bounds.ecmi_kl_test_error(1.5, 0.1), E, r"^train_error: expected"),
    Case("bounds/ecmi_linear_train_error_negative", "probabilities",
         lambda: gb.bounds.ecmi_linear_test_error(-0.2, 0.1), E, r"^train_error: expected"),
    Case("bounds/ldcmi_fast_rate_train_error_two", "probabilities",
         lambda: gb.bounds.ldcmi_fast_rate_gap(2.0, 0.1), E, r"^train_error: expected"),
    Case("bounds/ecmi_bound_losses_above_one", "probabilities",
         _with(gb.bounds.ecmi_bound, losses=2 * _losses()), E, r"^losses: expected values in"),
    # --- NaN / inf -----------------------------------------------------------------------------
    Case("bounds/binary_kl_p_nan", "nan", lambda: gb.bounds.binary_kl(0.2, NAN), E, r"^p: expected"),
    Case("bounds/kl_inverse_upper_c_nan", "nan",
         lambda: gb.bounds.kl_inverse_upper(0.2, NAN), E, r"^c: expected values >= 0"),
    Case("bounds/pac_bayes_kl_kl_nan", "nan",
         lambda: gb.bounds.pac_bayes_kl_bound(0.1, NAN, 100, 0.05), E, r"^kl: expected"),
    Case("bounds/sqrt_bound_mi_nan", "nan",
         lambda: gb.bounds.sqrt_bound(np.array([0.1, NAN])), E, r"^mi: expected finite"),
    Case("bounds/ecmi_kl_cmi_inf", "nan",
         lambda: gb.bounds.ecmi_kl_test_error(0.1, np.inf), E, r"^cmi: expected finite"),
    Case("bounds/gaussian_kl_mean_nan", "nan",
         lambda: gb.bounds.gaussian_kl({"w": np.array([NAN, 1.0])}, {"w": np.zeros(2)}, 0.1, 0.1), E,
         r"^mean_q: expected finite"),
    Case("bounds/plugin_mi_x_nan", "nan",
         lambda: gb.bounds.plugin_mutual_information(np.array([0.0, NAN, 1.0]), np.array([0, 1, 1])),
         E, r"^x: expected finite"),
    Case("bounds/masks_nan", "nan",
         _with(gb.bounds.measured_gap, masks=np.where(_masks() == 1, NAN, 0.0)), E, r"^masks"),
    Case("bounds/certificate_nan_params", "nan", _cert(params=_nan_params), E,
         r"^params: expected finite .*\['w'\]"),
    Case("bounds/certificate_inf_init_params", "nan", _cert(init_params=_inf_init), E,
         r"^init_params: expected finite .*\['b'\]"),
    Case("bounds/certificate_inf_x_train", "nan",
         _cert(x_train=lambda: np.where(np.eye(8, 3) > 0, np.inf, 0.0)), E,
         r"^x_train: expected finite"),
    # --- counts and sizes ----------------------------------------------------------------------
    Case("bounds/mi_counts_negative", "counts",
         lambda: gb.bounds.mutual_information_from_counts(np.array([[3.0, -1.0], [2.0, 4.0]])), E,
         r"^counts: expected finite integer counts >= 0"),
    Case("bounds/mi_counts_fractional", "counts",
         lambda: gb.bounds.mutual_information_from_counts(np.array([[3.0, 0.5], [2.0, 4.0]])), E,
         r"^counts: expected finite integer counts"),
    Case("bounds/pac_bayes_kl_n_zero", "counts",
         lambda: gb.bounds.pac_bayes_kl_bound(0.1, 5.0, 0, 0.05), E, r"^n: expected integers >= 1"),
    Case("bounds/mcallester_n_fractional", "counts",
         lambda: gb.bounds.mcallester_bound(0.1, 5.0, 10.5, 0.05), E, r"^n: expected integers >= 1"),
    Case("bounds/mc_error_num_samples_negative", "counts",
         lambda: gb.bounds.mc_error_upper_bound(0.1, -3, 0.05), E, r"^num_samples: expected"),
    Case("bounds/cmi_bounds_bootstrap_negative", "counts",
         lambda: gb.bounds.cmi_bounds(_masks(), None, _losses(), bootstrap=-1), E, r"^bootstrap"),
    Case("bounds/ecmi_bound_bootstrap_fractional", "counts",
         _with(gb.bounds.ecmi_bound, bootstrap=2.5), E, r"^bootstrap"),
    Case("bounds/certificate_mc_samples_zero", "counts", _cert(mc_samples=0), E,
         r"^mc_samples: expected a positive integer"),
    Case("bounds/kl_inverse_upper_c_negative", "sizes",
         lambda: gb.bounds.kl_inverse_upper(0.3, -1.0), E, r"^c: expected values >= 0"),
    Case("bounds/ecmi_linear_cmi_negative", "sizes",
         lambda: gb.bounds.ecmi_linear_test_error(0.1, -0.1), E, r"^cmi: expected finite values >= 0"),
    Case("bounds/pac_bayes_kl_negative_kl", "sizes",
         lambda: gb.bounds.pac_bayes_kl_bound(0.1, -2.0, 100, 0.05), E, r"^kl: expected"),
    Case("bounds/catoni_c_zero", "sizes",
         lambda: gb.bounds.catoni_bound(0.1, 5.0, 100, 0.05, 0.0), E, r"^c: expected finite values > 0"),
    Case("bounds/gaussian_kl_var_zero", "sizes",
         lambda: gb.bounds.gaussian_kl({"w": np.ones(2)}, {"w": np.zeros(2)}, 0.0, 0.1), E,
         r"^var_q: expected finite values > 0"),
    Case("bounds/certificate_sigmas_negative", "sizes", _cert(sigmas=(0.1, -0.2)), E,
         r"^sigmas"),
    # --- shapes and ranks ----------------------------------------------------------------------
    Case("bounds/binary_kl_shapes", "shapes",
         lambda: gb.bounds.binary_kl(np.full(2, 0.1), np.full(3, 0.2)), E,
         r"^p: expected a shape that broadcasts against q"),
    Case("bounds/pac_bayes_kl_shapes", "shapes",
         lambda: gb.bounds.pac_bayes_kl_bound(np.full(2, 0.1), np.ones(3), 100, 0.05), E,
         r"^kl: expected a shape that broadcasts"),
    Case("bounds/plugin_mi_shapes", "shapes",
         lambda: gb.bounds.plugin_mutual_information(np.arange(5), np.arange(4)), E,
         r"^y: expected a shape that broadcasts against x"),
    Case("bounds/fcmi_predictions_wrong_n", "shapes",
         lambda: gb.bounds.fcmi_bound(_masks(), np.zeros((2, 4, 5, 2), int), _losses()), E,
         r"^predictions: expected n = 3"),
    Case("bounds/gaussian_kl_leaf_shapes", "shapes",
         lambda: gb.bounds.gaussian_kl({"w": np.ones(2)}, {"w": np.zeros(3)}, 0.1, 0.1), E,
         r"^mean_p: expected leaf 0 of shape"),
    Case("bounds/gaussian_kl_variance_shape", "shapes",
         lambda: gb.bounds.gaussian_kl({"w": np.ones(2)}, {"w": np.zeros(2)}, {"w": np.ones(3)}, 0.1),
         E, r"^var_q: expected a variance broadcastable"),
    Case("bounds/certificate_seed_string", "dtypes", _cert(seed="zero"), E, r"^seed: expected"),
    Case("bounds/certificate_model_not_a_model", "dtypes", _cert(apply_fn=42), E,
         r"^model: expected a Linen module"),
    Case("bounds/certificate_apply_fn_without_params", "empty", _cert(params=None), E,
         r"^params: expected the trained weights"),
    Case("bounds/certificate_x_test_without_y_test", "shapes",
         lambda: _cert(x_test=np.zeros((2, 3)))(), E, r"x_test and y_test: expected both"),
    Case("bounds/mi_counts_rank_one", "ranks",
         lambda: gb.bounds.mutual_information_from_counts(np.array([1.0, 2.0])), E,
         r"^counts: expected a contingency table"),
    Case("bounds/sqrt_bound_scalar", "ranks", lambda: gb.bounds.sqrt_bound(0.3), E, r"^mi: expected"),
    Case("bounds/masks_rank_two", "ranks",
         lambda: gb.bounds.measured_gap(np.zeros((4, 3), int), _losses()), E, r"^masks: expected"),
    Case("bounds/masks_not_binary", "labels",
         _with(gb.bounds.ldcmi_bound, masks=2 * _masks()), E, r"^masks: expected binary"),
    Case("bounds/certificate_labels_outside_outputs", "labels",
         _cert(y_train=lambda: np.array([0, 1, 2, 0, 1, 2, 0, 1])), E,
         r"^y_train: expected class labels in \[0, 2\)"),
    Case("bounds/certificate_y_test_outside_outputs", "labels",
         _cert(x_test=lambda: np.zeros((2, 3)), y_test=lambda: np.array([0, 5])), E,
         r"^y_test: expected class labels in \[0, 2\)"),
    Case("bounds/certificate_empty_x_train", "empty",
         _cert(x_train=lambda: np.zeros((0, 3)), y_train=lambda: np.zeros(0, int)), E,
         r"^x_train: expected a non-empty"),
    Case("bounds/certificate_empty_catoni_grid", "empty", _cert(catoni_grid=()), E,
         r"^catoni_grid: expected a non-empty"),
    # --- dtypes and options --------------------------------------------------------------------
    Case("bounds/binary_kl_string", "dtypes",
         lambda: gb.bounds.binary_kl("0.1", 0.5), E, r"^q: expected a real numeric array"),
    Case("bounds/mcallester_complex_kl", "dtypes",
         lambda: gb.bounds.mcallester_bound(0.1, 1 + 2j, 100, 0.05), E, r"^kl: expected a real"),
    Case("bounds/ecmi_form_unknown", "options",
         _with(gb.bounds.ecmi_bound, form="cubic"), E, r"^form: expected one of"),
    Case("bounds/cmi_estimator_unknown", "options",
         lambda: gb.bounds.cmi_bounds(_masks(), None, _losses(), estimator="bogus"), E,
         r"^estimator: expected one of"),
    # --- traced: the checks survive jit and vmap ---------------------------------------------
    Case("bounds/jit_mcallester_delta_two", "confidences",
         lambda: np.asarray(jax.jit(gb.bounds.mcallester_bound)(0.1, 5.0, 100, jnp.asarray(2.0))),
         _JAX_ERR, r"delta: expected values in the open interval \(0, 1\)"),
    Case("bounds/vmap_binary_kl_q_out_of_range", "probabilities",
         lambda: np.asarray(jax.vmap(gb.bounds.binary_kl)(jnp.asarray([0.1, 1.5]),
                                                   jnp.asarray([0.2, 0.2]))),
         _JAX_ERR, r"q: expected probabilities in \[0, 1\]"),
    Case("bounds/jit_mi_counts_negative", "counts",
         lambda: np.asarray(jax.jit(gb.bounds.mutual_information_from_counts)(-jnp.ones((2, 2)))),
         _JAX_ERR, r"counts: expected finite integer counts"),
]
