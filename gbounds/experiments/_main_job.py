"""The README's main job: the strongest end-to-end analysis the package offers.

Trains a small MLP on MNIST 4-vs-9 (the 1,991 fours and nines of the MNIST test split in the
data directory; scikit-learn's bundled digits 4-vs-9 when MNIST is absent), then

1. the empirical NTK at initialisation: its spectrum (top eigenvalues, effective rank,
   condition number);
2. the linearized network's closed-form prediction of the trained network's test error
   (same learning rate and number of full-batch GD steps, MSE) beside the measured one;
3. the front door, :func:`gbounds.analysis.analyze`, on a small MLP trained with Adam on 400 fours and
   nines (saved as an Orbax checkpoint in ``out/checkpoint``): sample information of every
   training example (linearized at the trained weights), f-CMI / e-CMI / ld-CMI bounds from a
   3 x 10 supersample run, PAC-Bayes certificates, and the bound table beside the measured gap.

Everything is written to ``out/``: ``ntk_analysis.json``, the analysis report (``report.json``,
CSV tables, PNG figures, the self-contained ``report.html``), resumable stage files.

The closed-form linearized predictions are computed in float64 when the caller enables it:
:func:`ntk_analysis` and :func:`run_main_job` take ``precision``, a context-manager factory
entered around that algebra only (``gbounds main`` passes ``lambda: jax.enable_x64(True)``);
this module never reads or sets ``jax_enable_x64`` itself.
"""

from __future__ import annotations

import contextlib
import pathlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import gbounds.analysis as _analysis
import gbounds.data as _data
import gbounds.models as _models
import gbounds.ntk as _ntk
import gbounds.train as _train
from gbounds._src import errors as _errors
from gbounds._src import io as _io


def _load_binary(data_dir=None):
  try:
    x, y = _data.load_mnist("test", data_dir=data_dir)
    name = "MNIST test split, 4 vs 9"
  except _errors.DataNotFoundError:
    x, y = _data.load_digits()
    name = "scikit-learn digits, 4 vs 9 (MNIST not found)"
  x, y = _data.binary_task(x, y, 4, 9)
  return x, y, name


def ntk_analysis(*, n_train: int = 400, n_test: int = 800, width: int = 256, steps: int = 300,
                 step_fraction: float = 1.0, seed: int = 0, data_dir=None,
                 dtype: jnp.dtype = jnp.float64,
                 precision: Callable[[], ContextManager] = contextlib.nullcontext) -> dict:
  """Trains an MLP with full-batch GD on the mean MSE and compares it with its linearization.

  The learning rate is ``step_fraction * n / lambda_max(Theta)`` (``eta lambda_max = 1`` for the
  summed loss at the default), inside the linearized dynamics' stable range ``(0, 2)``.

  Args:
    n_train, n_test: training and test examples (MNIST 4 vs 9; digits when MNIST is absent).
    width: hidden units of the one-hidden-layer MLP.
    steps: full-batch GD steps.
    step_fraction: the step as a fraction of ``n / lambda_max(Theta)``.
    seed: seed of the split, initialisation and training.
    data_dir: the data directory.
    dtype: dtype of the closed-form kernel algebra (:func:`gbounds.ntk.gradient_descent_mse`).
    precision: a context-manager factory entered around that algebra only (float64 needs
      ``lambda: jax.enable_x64(True)`` from the caller; the default changes nothing, and float64
      then falls back to float32).

  Returns:
    A JSON-ready dict: NTK spectrum summary, trained and linearized train/test errors, agreement
    of test predictions, output RMSE, timings and backend.
  """
  x, y, name = _load_binary(data_dir)
  rng = np.random.default_rng(seed)
  perm = rng.permutation(len(y))
  n_train = min(n_train, len(y) // 2)
  n_test = min(n_test, len(y) - n_train)
  tr, te = perm[:n_train], perm[n_train:n_train + n_test]
  xtr, ytr, xte, yte = x[tr], y[tr], x[te], y[te]
  model = _models.MLP((width,), 2)
  m = _models.as_model_fn(model, example_input=xtr[:1], key=seed)
  t0 = time.perf_counter()
  ntk = _ntk.empirical_ntk_fn(m.apply_fn, chunk_size=256)
  theta = ntk(xtr, None, m.params)
  theta_te = ntk(xte, xtr, m.params)
  t_ntk = time.perf_counter() - t0
  eig = np.sort(np.linalg.eigvalsh(np.asarray(theta, np.float64)))[::-1]
  learning_rate = float(step_fraction * n_train / eig[0])

  cfg = _train.TrainConfig(loss=_train.Loss.MSE, optimizer=_train.Optimizer.SGD,
                           learning_rate=learning_rate, steps=steps, seed=seed)
  t0 = time.perf_counter()
  trained = _train.train(m.apply_fn, m.params, xtr, ytr, cfg)
  logits_te = m.apply_fn(trained.params, xte)
  logits_tr = m.apply_fn(trained.params, xtr)
  t_train = time.perf_counter() - t0

  eig_pos = np.clip(eig, 0, None)
  eff_rank = float(eig_pos.sum() ** 2 / np.sum(eig_pos ** 2))
  # Mean-loss GD with step lr equals summed-loss GD with step lr / n (see _dynamics).
  yoh = _data.one_hot(ytr, 2)
  f0_tr, f0_te = m.apply_fn(m.params, xtr), m.apply_fn(m.params, xte)
  with precision():  # the caller's precision context (gbounds main: float64); never set here
    lin = _ntk.gradient_descent_mse(
        jnp.asarray(theta, dtype), jnp.asarray(yoh, dtype),
        jnp.asarray(f0_tr, dtype), learning_rate=learning_rate / n_train, t=steps,
        time="discrete", theta_test_train=jnp.asarray(theta_te, dtype),
        f0_test=jnp.asarray(f0_te, dtype))
    lin = _ntk.LinearizedPredictions(*(np.asarray(v) for v in lin))
  err = lambda logits, yy: float(np.mean(np.argmax(np.asarray(logits), -1) != yy))  # noqa: E731
  return {
      "data": name, "n_train": int(n_train), "n_test": int(n_test),
      "model": f"MLP 1 x {width} ReLU, {_models.count_params(m.params)} parameters",
      "training": (f"full-batch GD on mean MSE, lr {learning_rate:.4g} (= {step_fraction} n / "
                   f"lambda_max), {steps} steps, seed {seed}"),
      "ntk_top_eigenvalues": eig[:10].tolist(),
      "ntk_trace": float(eig.sum()), "ntk_effective_rank": eff_rank,
      "ntk_condition_number": float(eig[0] / max(eig[-1], 1e-300)),
      "trained_train_error": err(logits_tr, ytr), "trained_test_error": err(logits_te, yte),
      "linearized_train_error": err(lin.train, ytr), "linearized_test_error": err(lin.test, yte),
      "prediction_agreement_test": float(np.mean(np.argmax(np.asarray(lin.test), -1)
                                                 == np.argmax(np.asarray(logits_te), -1))),
      "output_rmse_test": float(np.sqrt(np.mean((np.asarray(lin.test) - np.asarray(logits_te)) ** 2))),
      "seconds_training": t_train, "seconds_ntk": t_ntk,
      "backend": jax.default_backend(),
  }


def _print_ntk(r: dict) -> None:
  print(f"== NTK analysis: {r['data']} (n_train {r['n_train']}, n_test {r['n_test']})")
  print(f"   model: {r['model']}; {r['training']}")
  top = ", ".join(f"{v:.4g}" for v in r["ntk_top_eigenvalues"][:6])
  print(f"   NTK spectrum at init: top eigenvalues {top}; trace {r['ntk_trace']:.4g}; "
        f"effective rank {r['ntk_effective_rank']:.2f}; condition number "
        f"{r['ntk_condition_number']:.3g}")
  print(f"   {'':24s}{'train error':>12s}{'test error':>12s}")
  print(f"   {'trained network':24s}{r['trained_train_error']:12.4f}{r['trained_test_error']:12.4f}")
  print(f"   {'linearized (closed form)':24s}{r['linearized_train_error']:12.4f}"
        f"{r['linearized_test_error']:12.4f}")
  print(f"   agreement of test predictions: {r['prediction_agreement_test']:.4f}; output RMSE "
        f"{r['output_rmse_test']:.4f}")


def _ntk_section(r: dict):
  rows = (("trained network", r["trained_train_error"], r["trained_test_error"]),
          ("linearized (closed form)", r["linearized_train_error"], r["linearized_test_error"]))
  return _analysis.ReportSection(
      "NTK analysis",
      (f"{r['data']} (n_train {r['n_train']}, n_test {r['n_test']}); model: {r['model']}; "
       f"{r['training']}.",
       "NTK spectrum at init: top eigenvalues " + ", ".join(
           f"{v:.4g}" for v in r["ntk_top_eigenvalues"][:6])
       + f"; effective rank {r['ntk_effective_rank']:.2f}; condition number "
       f"{r['ntk_condition_number']:.3g}.",
       f"Agreement of test predictions {r['prediction_agreement_test']:.4f}; output RMSE "
       f"{r['output_rmse_test']:.4f}."),
      (_analysis.ReportTable("ntk_errors", "Trained network vs its linearization",
                     ("model", "train error", "test error"), rows),))


# The front-door analysis of the main job: small enough for < 5 minutes on 2 CPU cores.
MAIN_N_TRAIN = 400
MAIN_N_TEST = 500
MAIN_WIDTH = 128
MAIN_RECIPE: dict[str, Any] = dict(optimizer="adam", learning_rate=1e-3, batch_size=64, steps=200,
                                   seed=0)


def front_door(out: pathlib.Path, *, data_dir=None, progress: bool = True):
  """Trains the default MLP, checkpoints it and runs :func:`gbounds.analysis.analyze`.

  Args:
    out: the output directory (``out/checkpoint`` is reused when present).
    data_dir: the data directory.
    progress: show progress bars.

  Returns:
    ``(analysis, data)``: the :class:`gbounds.analysis.Analysis` and its
    :class:`gbounds.analysis.AnalysisData`.
  """
  _analyze = _analysis
  data = _analyze.default_data(n_train=MAIN_N_TRAIN, n_test=MAIN_N_TEST, data_dir=data_dir)
  model = _models.MLP((MAIN_WIDTH,), 2)
  recipe = _train.TrainConfig(**MAIN_RECIPE)
  ck = out / "checkpoint"
  if ck.exists():  # resume: the model trained by an earlier run
    params, init = _analyze.load_checkpoint(ck, model, data.x_train)
  else:
    m = _models.as_model_fn(model, example_input=data.x_train[:1], key=0)
    params = _train.train(m.apply_fn, m.params, data.x_train, data.y_train, recipe).params
    init = m.params
    _analyze.save_checkpoint(ck, params, init_params=init)
  cfg = _analyze.AnalysisConfig(k1=3, k2=10, mc_samples=200, seed=0)
  a = _analyze.analyze(model, data, recipe, params=params, init_params=init, config=cfg,
                       out_dir=out, progress=progress,
                       log=lambda s: print(f"   {s}", flush=True))
  return a, data


def run_main_job(out: str | pathlib.Path = "runs/main", data_dir=None, *,
                 precision: Callable[[], ContextManager] = contextlib.nullcontext) -> int:
  """Runs the main job (module docstring), printing a summary and writing ``out/``.

  Args:
    out: the output directory (created if needed).
    data_dir: the data directory.
    precision: context-manager factory around the float64 closed form (:func:`ntk_analysis`).

  Returns:
    0 (the process exit status).
  """
  _analyze = _analysis
  out = _analyze.check_output_dir(out)
  t0 = time.perf_counter()
  r = ntk_analysis(data_dir=data_dir, precision=precision)
  _io.atomic_write_json(out / "ntk_analysis.json", r)
  _print_ntk(r)
  print("== gbounds analyze: sample information, CMI bounds and PAC-Bayes certificates", flush=True)
  a, data = front_door(out, data_dir=data_dir)
  files = _analyze.write_analysis_report(a, out, data=data, extra_sections=(_ntk_section(r),),
                                         extra_payload={"ntk_analysis": r})
  print(f"   data: {a.data}; model: MLP 1 x {MAIN_WIDTH}, {a.num_params} parameters")
  for n in a.notes:
    print(f"   note: {n}")
  print(a.format())
  ok = [row for row in a.bound_rows() if row.valid]
  above = sum(row.gap_bound >= row.measured_gap for row in ok)
  print(f"{above} of {len(ok)} valid bounds lie above the gap they bound; trained model's gap "
        f"{a.gap:.4f}.")
  if a.sample_info is not None:
    top = ", ".join(f"#{int(i)} ({a.sample_info.si[i]:.3g})" for i in a.sample_info.order[:5])
    print(f"most informative training examples (SI, nats): {top}")
  print(f"report: {files.html}; total {time.perf_counter() - t0:.0f} s")
  return 0
