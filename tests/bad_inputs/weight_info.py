"""Bad inputs to the weight-information family: information in the weights (exact / diagonal /
K-FAC), the Lagrangian posterior and closed form, LIMIT, supervision complexity and its margin
bound, activation capture, the reproductions' arguments, and the ``gbounds weight-info`` /
``limit`` / ``supervision-complexity`` command lines.

Every case fails during the argument checks, before any training or Fisher computation. A CLI
case exits with status 2 and one line that names the flag (raised here as :class:`CliExit2`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

import gbounds
from gbounds._src.errors import InvalidInputError
from gbounds.bounds import _supervision as sc
from gbounds.experiments import _weight_info as exp
from gbounds.info import _weight_info as wi
from gbounds.models import _capture as _capture
from gbounds.train import _limit as _limit
from tests.bad_inputs import Case, CliExit2, run_cli

E = InvalidInputError


@functools.lru_cache(maxsize=1)
def _mlp():
  x = jax.random.normal(jax.random.key(1), (6, 4), jnp.float32)
  model = gbounds.models.MLP(hidden=(3,), out=3)
  mf = gbounds.as_model_fn(model, example_input=x, key=0)
  return model, mf, x


def _nan_params():
  _, mf, _ = _mlp()
  return jax.tree_util.tree_map(lambda v: v.at[(0,) * v.ndim].set(jnp.nan), mf.params)


def _iw(**kw):
  def call():
    _, mf, x = _mlp()
    args = dict(model=mf.apply_fn, params=mf.params, x=x, beta=1.0, prior_scale=1.0)
    args.update(kw)
    return wi.information_in_weights(**args)
  return call


def _limit_call(**kw):
  def call():
    _, mf, x = _mlp()
    args = dict(apply_fn=mf.apply_fn, params=mf.params, aux_apply_fn=mf.apply_fn,
                aux_params=mf.params, x=x, y=np.array([0, 1, 2, 0, 1, 2]),
                config=_limit.LimitConfig(steps=1, batch_size=2))
    args.update(kw)
    return _limit.train_limit(**args)
  return call


def _kernel(n=5):
  a = np.random.default_rng(0).normal(size=(n, n + 2))
  return a @ a.T


def _kernel_with_nan():
  k = _kernel()
  k[1, 2] = k[2, 1] = np.nan
  return k


def _cli(*argv: str):
  return lambda: run_cli(*argv)


CASES = [
    # --- information in the weights
    Case("weight_info/nan_params", "nan", lambda: _iw(params=_nan_params())(), E,
         r"params: expected finite"),
    Case("weight_info/nan_inputs", "nan", lambda: _iw(x=_mlp()[2].at[0, 0].set(jnp.inf))(), E,
         r"x: expected finite"),
    Case("weight_info/beta_zero", "options", _iw(beta=0.0), E, r"beta: expected a positive"),
    Case("weight_info/beta_nan", "nan", _iw(beta=float("nan")), E, r"beta: expected a positive"),
    Case("weight_info/beta_vector", "shapes", _iw(beta=np.array([1.0, 2.0])), E, r"beta: expected"),
    Case("weight_info/prior_scale_negative", "options", _iw(prior_scale=-1.0), E,
         r"prior_scale: expected a positive"),
    Case("weight_info/unknown_form", "options", _iw(form="full"), E, r"form: expected one of"),
    Case("weight_info/unknown_fisher", "options", _iw(fisher="hessian"), E,
         r"fisher: expected one of"),
    Case("weight_info/unknown_scaling", "options", _iw(scaling="median"), E,
         r"scaling: expected one of"),
    Case("weight_info/unknown_sharing", "options", _iw(form="kfac", sharing="average"), E,
         r"sharing: expected one of"),
    Case("weight_info/empirical_without_labels", "labels", _iw(fisher="empirical"), E,
         r"y: expected integer labels"),
    Case("weight_info/labels_outside_outputs", "labels",
         _iw(fisher="empirical", y=np.array([0, 1, 2, 3, 0, 1])), E,
         r"y: expected class labels in \[0, 3\)"),
    Case("weight_info/labels_wrong_length", "shapes", _iw(fisher="empirical", y=np.zeros(4, int)),
         E, r"x and y: expected the same size"),
    Case("weight_info/sampled_without_key", "options", _iw(fisher="sampled"), E,
         r"key: expected a PRNG key"),
    Case("weight_info/num_samples_zero", "counts", _iw(fisher="sampled", key=jax.random.key(0),
                                                      num_samples=0), E, r"num_samples: expected"),
    Case("weight_info/chunk_size_float", "sizes", _iw(chunk_size=2.5), E,
         r"chunk_size: expected a positive integer"),
    Case("weight_info/empty_inputs", "empty", lambda: _iw(x=_mlp()[2][:0])(), E,
         r"x: expected a non-empty"),
    Case("weight_info/scalar_logits", "shapes", _iw(model=lambda p, x: jnp.sum(x, axis=1)), E,
         r"model: expected logits of shape \(batch, k\)"),
    Case("weight_info/kfac_without_dense", "options",
         lambda: wi.information_in_weights(lambda p, x: x @ p["w"],
                                           {"w": jnp.ones((4, 3), jnp.float32)},
                                           _mlp()[2], beta=1.0, prior_scale=1.0, form="kfac"),
         E, r"form: expected a model with flax.linen.Dense"),
    Case("weight_info/spectrum_nan", "nan",
         lambda: wi.information_from_spectrum(jnp.array([1.0, jnp.nan]), 1.0, beta=1.0,
                                              prior_scale=1.0), E, r"eigenvalues: expected finite"),
    Case("weight_info/spectrum_not_psd", "options",
         lambda: wi.information_from_spectrum(jnp.array([1.0, -0.5]), 1.0, beta=1.0,
                                              prior_scale=1.0), E,
         r"eigenvalues: expected the spectrum of a positive semi-definite"),
    Case("weight_info/posterior_not_psd", "options",
         lambda: wi.information_lagrangian_posterior(np.diag([1.0, -1.0]), beta=1.0,
                                                     prior_scale=1.0), E,
         r"curvature: expected a positive semi-definite"),
    Case("weight_info/posterior_not_square", "shapes",
         lambda: wi.information_lagrangian_posterior(np.ones((2, 3)), beta=1.0, prior_scale=1.0),
         E, r"curvature: expected a non-empty square"),
    # --- supervision complexity
    Case("supervision/kernel_nan", "nan",
         lambda: sc.supervision_complexity(_kernel_with_nan(), np.ones(5), ridge=0.1), E,
         r"kernel: expected finite"),
    Case("supervision/kernel_not_psd", "options",
         lambda: sc.supervision_complexity(-_kernel(), np.ones(5), ridge=0.1), E,
         r"kernel: expected a positive semi-definite"),
    Case("supervision/kernel_asymmetric", "options",
         lambda: sc.supervision_complexity(_kernel() + np.triu(np.ones((5, 5)), 1), np.ones(5),
                                           ridge=0.1), E, r"kernel: expected a symmetric"),
    Case("supervision/ridge_nan", "nan",
         lambda: sc.supervision_complexity(_kernel(), np.ones(5), ridge=float("nan")), E,
         r"ridge: expected a non-negative"),
    Case("supervision/targets_inf", "nan",
         lambda: sc.supervision_complexity(_kernel(), np.array([1, 2, np.inf, 0, 1.0])), E,
         r"targets: expected finite"),
    Case("supervision/binary_labels_minus_one_and_zero", "labels",
         lambda: sc.kernel_margin_bound(_kernel(), np.ones(5), np.array([-1, 0, 1, 1, 0]),
                                        margin=0.5), E, r"labels: expected binary labels"),
    Case("supervision/binary_labels_two", "labels",
         lambda: sc.kernel_margin_bound(_kernel(), np.ones(5), np.array([0, 1, 2, 1, 0]),
                                        margin=0.5), E, r"labels: expected binary labels"),
    Case("supervision/multiclass_label_out_of_range", "labels",
         lambda: sc.kernel_margin_bound(_kernel(), np.eye(3)[[0, 1, 2, 0, 1]],
                                        np.array([0, 1, 2, 3, 1]), margin=0.5), E,
         r"labels: expected class labels in \[0, 3\)"),
    Case("supervision/delta_one", "confidences",
         lambda: sc.kernel_margin_bound(_kernel(), np.ones(5), np.ones(5), margin=0.5, delta=1.0),
         E, r"delta: expected values in the open interval"),
    Case("supervision/teacher_error_above_one", "probabilities",
         lambda: sc.kernel_margin_bound(_kernel(), np.ones(5), np.ones(5), margin=0.5,
                                        teacher_error=1.5), E, r"teacher_error: expected"),
    # --- LIMIT
    Case("limit/labels_outside_outputs", "labels",
         _limit_call(y=np.array([0, 1, 2, 3, 0, 1])), E, r"y: expected class labels in \[0, 3\)"),
    Case("limit/negative_labels", "labels", _limit_call(y=np.array([0, -1, 2, 0, 1, 2])), E,
         r"y: expected class labels in \[0, 3\)"),
    Case("limit/nan_params", "nan", lambda: _limit_call(params=_nan_params())(), E,
         r"params: expected finite"),
    Case("limit/config_not_a_config", "options", _limit_call(config={"steps": 1}), E,
         r"config: expected a gbounds.train.LimitConfig"),
    Case("limit/unknown_classifier_step", "options",
         lambda: _limit.LimitConfig(classifier_step="median"), E,
         r"classifier_step: expected one of"),
    Case("limit/authors_lambda_zero", "options",
         lambda: _limit.LimitConfig(noise_scale=0.0, noise_parameterisation="authors_lambda"), E,
         r"noise_scale: expected a positive"),
    Case("limit/gradients_noise_shape", "shapes",
         lambda: _limit.limit_gradients(_mlp()[1].apply_fn, _mlp()[1].apply_fn, _mlp()[1].params,
                                        _mlp()[1].params, _mlp()[2], jnp.zeros(6, jnp.int32),
                                        jnp.zeros((6, 2)), _limit.LimitConfig()), E,
         r"noise and y: expected shapes \(6, 3\)"),
    Case("limit/steps_float", "counts", lambda: _limit.LimitConfig(steps=2.5), E,
         r"steps: expected an integer"),
    # --- activation capture
    Case("capture/nan_inputs", "nan",
         lambda: _capture.capture_activations(_mlp()[0], _mlp()[1].params,
                                              _mlp()[2].at[0, 0].set(jnp.nan)), E,
         r"x: expected finite"),
    Case("capture/nan_params", "nan",
         lambda: _capture.capture_activations(_mlp()[0], _nan_params(), _mlp()[2]), E,
         r"params: expected finite"),
    Case("capture/chunk_size_bool", "sizes",
         lambda: _capture.capture_activations(_mlp()[0], _mlp()[1].params, _mlp()[2],
                                              chunk_size=True), E, r"chunk_size: expected"),
    Case("capture/unknown_layer", "options",
         lambda: _capture.capture_activations(_mlp()[0], _mlp()[1].params, _mlp()[2],
                                              layers=["dense7"]), E, r"layers: expected names"),
    # --- reproductions (checked before any data is loaded)
    Case("experiments/limit_batch_size_zero", "sizes",
         lambda: exp.reproduce_limit(batch_size=0), E, r"batch_size: expected integers >= 1"),
    Case("experiments/supervision_temperature_zero", "options",
         lambda: exp.reproduce_supervision_complexity(temperatures=(0.0,)), E,
         r"temperatures: expected a positive"),
    # --- command lines (checked before any data is loaded or a model trained)
    Case("cli/weight_info_unknown_form", "cli", _cli("weight-info", "--forms", "diagonal,full"),
         CliExit2, r"--forms: expected a comma-separated subset"),
    Case("cli/weight_info_exact_too_large", "cli",
         _cli("weight-info", "--hidden", "64", "--forms", "exact"), CliExit2,
         r"--forms: expected no 'exact'"),
    Case("cli/weight_info_beta_zero", "cli", _cli("weight-info", "--betas", "1,0"), CliExit2,
         r"--betas: expected a positive"),
    Case("cli/weight_info_noise_rate_one", "cli", _cli("weight-info", "--noise-rates", "1.0"),
         CliExit2, r"--noise-rates: expected label-noise rates in \[0, 1\)"),
    Case("cli/weight_info_betas_not_numbers", "cli", _cli("weight-info", "--betas", "a,b"),
         CliExit2, r"--betas"),
    Case("cli/limit_unknown_method", "cli", _cli("limit", "--methods", "limit_x"), CliExit2,
         r"--methods: expected a comma-separated subset"),
    Case("cli/limit_too_many_examples", "cli", _cli("limit", "--n-train", "9000"), CliExit2,
         r"--n-train \+ --n-test: expected at most"),
    Case("cli/limit_learning_rate_nan", "cli", _cli("limit", "--learning-rate", "nan"),
         CliExit2, r"--learning-rate: expected a positive"),
    Case("cli/supervision_margin_zero", "cli", _cli("supervision-complexity", "--margin", "0"),
         CliExit2, r"--margin: expected a positive"),
    Case("cli/supervision_negative_ridge", "cli",
         _cli("supervision-complexity", "--ridge-fraction=-1e-3"), CliExit2,
         r"--ridge-fraction: expected a non-negative"),
]
