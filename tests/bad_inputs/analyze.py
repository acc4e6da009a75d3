"""Bad inputs to the front door: gbounds.analyze, analysis_data, AnalysisConfig, load_module,
and the ``gbounds analyze`` / ``pac-bayes`` / ``reproduce`` command lines.

A CLI case calls ``gbounds.cli.main(argv)`` through ``tests.bad_inputs.run_cli``: exit status 2
raises :class:`CliExit2` carrying the one-line message, which must name the flag. Any other
outcome (status 0, a traceback, more than one line) fails the case. Every CLI case fails during
the option checks, before any model is trained.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

import gbounds
from gbounds._src.errors import InvalidInputError
from gbounds.analysis import _analyze as an
from tests.bad_inputs import Case, CliExit2
from tests.bad_inputs import run_cli as _cli

E = InvalidInputError


@functools.lru_cache(maxsize=1)
def _tmp() -> pathlib.Path:
  d = tempfile.TemporaryDirectory(prefix="gbounds_bad_analyze_")
  _tmp.keep = d  # cleaned up when the interpreter exits
  root = pathlib.Path(d.name)
  (root / "ck").mkdir()  # a directory: the option checks fail before it is read
  (root / "list.json").write_text("[1, 2]")
  (root / "wrong_type.json").write_text(json.dumps({"steps": "many"}))
  (root / "unknown_key.json").write_text(json.dumps({"stepz": 3}))
  return root


def _cmd(command: str, *extra: str):
  def call():
    root = _tmp()
    return _cli(command, "--checkpoint", str(root / "ck"), "--module", "gbounds.models:MLP",
                "--module-kwargs", '{"hidden": [4]}', "--dataset", "digits", "--n-train", "20",
                "--n-test", "20", "--out", str(root / "out"), "--no-progress",
                *extra)
  return call


def _recipe(name: str):
  return lambda: _cmd("pac-bayes", "--recipe", str(_tmp() / name))()


@functools.lru_cache(maxsize=1)
def _setup():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(60, 8)).astype(np.float32), np.arange(60) % 2  # synthetic data
  data = an.AnalysisData(x[:20], y[:20], x[40:], y[40:], x[:40], y[:40], "synthetic")
  model = gbounds.models.MLP((4,), 2)
  params = model.init(jax.random.key(0), jnp.asarray(data.x_train[:1]))["params"]
  return data, model, params


def _analyze(data=None, params=None, init_params=None, **config):
  def call():
    d, model, p = _setup()
    d = d if data is None else data(d)
    return an.analyze(model, d, gbounds.train.TrainConfig(steps=1), params=p if params is None
                      else params(p), init_params=None if init_params is None
                      else init_params(p),
                      config=an.AnalysisConfig(k1=1, k2=2, mc_samples=2, **config),
                      progress=False)
  return call


def _nan_leaf(p):
  return jax.tree_util.tree_map(lambda v: v.at[(0,) * v.ndim].set(jnp.nan), p)


CASES = [
    # --- analyze (Python API) ------------------------------------------------------------------
    Case("analyze/nan_params", "nan", _analyze(params=_nan_leaf), E,
         r"^params: expected finite values"),
    Case("analyze/nan_init_params", "nan", _analyze(init_params=_nan_leaf), E,
         r"^init_params: expected finite values"),
    Case("analyze/inf_x_train", "nan",
         _analyze(data=lambda d: d._replace(x_train=np.where(d.x_train > 0, np.inf, 0.0))), E,
         r"^data.x_train: expected finite"),
    Case("analyze/labels_outside_outputs", "labels",
         _analyze(data=lambda d: d._replace(y_train=np.where(d.y_train == 1, 2, 0))), E,
         r"^data.y_train: expected class labels in \[0, 2\)"),
    Case("analyze/one_class_task", "classes",
         _analyze(data=lambda d: d._replace(y_train=np.zeros_like(d.y_train),
                                            y_pool=np.zeros_like(d.y_pool))), E,
         r"^data.y_train: expected labels of at least two classes"),
    Case("analyze/empty_test_split", "empty",
         _analyze(data=lambda d: d._replace(x_test=d.x_test[:0], y_test=d.y_test[:0])), E,
         r"^data.x_test: expected a non-empty"),
    Case("analyze/length_mismatch", "shapes",
         _analyze(data=lambda d: d._replace(y_train=d.y_train[:-1])), E,
         r"data.x_train and data.y_train: expected the same size"),
    Case("analysis_data/absent_class", "classes",
         lambda: an.analysis_data("digits", classes=(4, 11), n_train=20, n_test=20), E,
         r"^classes: expected classes present .*\[11\] absent"),
    Case("analysis_data/repeated_class", "classes",
         lambda: an.analysis_data("digits", classes=(4, 4), n_train=20, n_test=20), E,
         r"^classes: expected distinct classes"),
    Case("analysis_data/single_class", "classes",
         lambda: an.analysis_data("digits", classes=(4,), n_train=20, n_test=20), E,
         r"^classes: expected at least two classes"),
    Case("analysis_data/n_train_one", "sizes",
         lambda: an.analysis_data("digits", n_train=1, n_test=20), E,
         r"^n_train: expected an integer >= 2"),
    Case("analysis_data/too_many_examples", "sizes",
         lambda: an.analysis_data("digits", n_train=300, n_test=300), E,
         r"^n_train \+ n_test: expected at most"),
    Case("analysis_config/k2_one", "counts", lambda: an.AnalysisConfig(k2=1), E, r"^k2: expected"),
    Case("analysis_config/delta_one", "confidences", lambda: an.AnalysisConfig(delta=1.0), E,
         r"^delta: expected values in the open interval"),
    Case("analysis_config/budget_nan", "nan", lambda: an.AnalysisConfig(budget=float("nan")),
         E, r"^budget: expected a positive"),
    Case("analysis_config/supersample_n_zero", "sizes",
         lambda: an.AnalysisConfig(supersample_n=0), E, r"^supersample_n: expected"),
    Case("analysis_config/sigmas_negative", "sizes",
         lambda: an.AnalysisConfig(sigmas=(0.1, -1.0)), E, r"^sigmas: expected"),
    Case("analyze/learnt_prior_split_leaves_a_part_empty", "sizes",
         _analyze(prior="learnt", prior_fraction=0.01), E,
         r"^prior_fraction: expected a split of the 20 training examples leaving both parts"),
    Case("analysis_config/pac_bayes_method_unknown", "options",
         lambda: an.AnalysisConfig(pac_bayes_method="gaussian"), E,
         r"^pac_bayes_method: expected one of \{optimised, isotropic\}"),
    Case("analysis_config/prior_unknown", "options", lambda: an.AnalysisConfig(prior="init"), E,
         r"^prior: expected one of \{auto, learnt, data_free\}"),
    Case("analysis_config/objective_unknown", "options",
         lambda: an.AnalysisConfig(objective="catoni"), E, r"^objective: expected one of"),
    Case("analysis_config/prior_fraction_one", "probabilities",
         lambda: an.AnalysisConfig(prior_fraction=1.0), E,
         r"^prior_fraction: expected a number in \(0, 1\)"),
    Case("analysis_config/certificate_epochs_zero", "counts",
         lambda: an.AnalysisConfig(certificate_epochs=0), E, r"^certificate_epochs: expected"),
    Case("analysis_config/finetune_epochs_negative", "counts",
         lambda: an.AnalysisConfig(finetune_epochs=-1), E, r"^finetune_epochs: expected"),
    Case("analysis_config/mc_draws_zero", "counts", lambda: an.AnalysisConfig(mc_draws=0), E,
         r"^mc_draws: expected"),
    Case("analysis_config/test_draws_float", "counts", lambda: an.AnalysisConfig(test_draws=2.5),
         E, r"^test_draws: expected"),
    Case("prior_choice/learnt_split_empty", "sizes",
         lambda: an.prior_choice("learnt", 10, 0.01), E,
         r"^prior_fraction: expected a split of the 10 training examples"),
    Case("load_module/unknown_module", "options",
         lambda: an.load_module("no_such_module_xyz:Net"), E, r"^module: expected an importable"),
    Case("load_module/kwargs_not_object", "options",
         lambda: an.load_module("gbounds.models:MLP", [16]), E, r"^module_kwargs: expected"),
    # --- CLI -----------------------------------------------------------------------------------
    Case("cli/recipe_json_list", "cli", _recipe("list.json"), CliExit2,
         r"error: --recipe: expected a JSON object"),
    Case("cli/recipe_wrong_type", "cli", _recipe("wrong_type.json"), CliExit2,
         r"error: --recipe .*key 'steps': expected an integer"),
    Case("cli/recipe_unknown_key", "cli", _recipe("unknown_key.json"), CliExit2,
         r"error: --recipe: expected keys among .*unknown key\(s\) \['stepz'\]"),
    Case("cli/recipe_missing_file", "cli", _recipe("absent.json"), CliExit2,
         r"error: --recipe: expected a readable JSON file"),
    Case("cli/module_kwargs_not_json", "cli", _cmd("pac-bayes", "--module-kwargs", "{hidden"),
         CliExit2, r"error: --module-kwargs: expected a JSON object"),
    Case("cli/module_kwargs_list", "cli", _cmd("analyze", "--module-kwargs", "[4]"),
         CliExit2, r"error: --module-kwargs: expected a JSON object"),
    Case("cli/classes_absent", "cli", _cmd("analyze", "--classes", "4", "11"), CliExit2,
         r"error: --classes: expected classes present"),
    Case("cli/classes_repeated", "cli", _cmd("analyze", "--classes", "4", "4"), CliExit2,
         r"error: --classes: expected distinct classes"),
    Case("cli/delta_above_one", "cli", _cmd("pac-bayes", "--delta", "1.5"), CliExit2,
         r"error: --delta: expected values in the open interval"),
    Case("cli/k2_one", "cli", _cmd("analyze", "--k2", "1"), CliExit2, r"error: --k2:"),
    Case("cli/learning_rate_negative", "cli", _cmd("analyze", "--learning-rate", "-1"),
         CliExit2, r"error: --learning-rate: expected a positive"),
    Case("cli/steps_and_epochs", "cli", _cmd("pac-bayes", "--epochs", "2", "--steps", "1"),
         CliExit2, r"error: --epochs: expected either --steps or --epochs"),
    Case("cli/steps_not_integer", "cli", _cmd("analyze", "--steps", "inf"), CliExit2,
         r"--steps: invalid int value"),
    Case("cli/checkpoint_missing", "cli",
         lambda: _cmd("pac-bayes", "--checkpoint", str(_tmp() / "nope"))(), CliExit2,
         r"error: --checkpoint: expected an Orbax checkpoint directory"),
    Case("cli/n_train_one", "cli", _cmd("analyze", "--n-train", "1"), CliExit2,
         r"error: --n-train: expected an integer >= 2"),
    Case("cli/pac_bayes_method_unknown", "cli",
         _cmd("analyze", "--pac-bayes-method", "gaussian"), CliExit2,
         r"argument --pac-bayes-method: invalid choice: 'gaussian'"),
    Case("cli/prior_unknown", "cli", _cmd("pac-bayes", "--prior", "init"), CliExit2,
         r"argument --prior: invalid choice: 'init'"),
    Case("cli/objective_unknown", "cli", _cmd("pac-bayes", "--objective", "catoni"), CliExit2,
         r"argument --objective: invalid choice: 'catoni'"),
    Case("cli/prior_fraction_one", "cli", _cmd("pac-bayes", "--prior-fraction", "1"), CliExit2,
         r"error: --prior-fraction: expected a number in \(0, 1\), got 1.0"),
    Case("cli/prior_fraction_nan", "cli", _cmd("analyze", "--prior-fraction", "nan"), CliExit2,
         r"error: --prior-fraction: expected a number in \(0, 1\), got nan"),
    Case("cli/prior_fraction_word", "cli", _cmd("analyze", "--prior-fraction", "half"),
         CliExit2, r"argument --prior-fraction: invalid float value: 'half'"),
    Case("cli/certificate_epochs_zero", "cli", _cmd("pac-bayes", "--certificate-epochs", "0"),
         CliExit2, r"error: --certificate-epochs: expected an integer >= 1"),
    Case("cli/mc_draws_zero", "cli", _cmd("pac-bayes", "--mc-draws", "0"), CliExit2,
         r"error: --mc-draws: expected an integer >= 1"),
    Case("cli/mc_samples_zero", "cli", _cmd("analyze", "--mc-samples", "0"), CliExit2,
         r"error: --mc-samples: expected an integer >= 1"),
    Case("cli/mc_samples_zero_isotropic", "cli",
         _cmd("pac-bayes", "--pac-bayes-method", "isotropic", "--mc-samples", "0"), CliExit2,
         r"error: --mc-samples: expected an integer >= 1"),
    Case("cli/mc_draws_and_mc_samples", "cli",
         _cmd("pac-bayes", "--mc-draws", "10", "--mc-samples", "10"), CliExit2,
         r"error: --mc-samples: expected either --mc-draws or --mc-samples"),
    Case("cli/prior_with_isotropic", "cli",
         _cmd("analyze", "--pac-bayes-method", "isotropic", "--prior", "learnt"), CliExit2,
         r"error: --prior: expected a setting of the optimised certificate"),
    Case("cli/objective_with_isotropic", "cli",
         _cmd("pac-bayes", "--pac-bayes-method", "isotropic", "--objective", "kl"), CliExit2,
         r"error: --objective: expected a setting of the optimised certificate"),
    Case("cli/learnt_prior_split_empty", "cli",
         _cmd("pac-bayes", "--prior", "learnt", "--prior-fraction", "0.01"), CliExit2,
         r"error: --prior-fraction: expected a split of the 20 training examples"),
    Case("cli/set_unknown_key", "cli",
         lambda: _cli("reproduce", "wang_mao_synthetic", "--set", "nope=1"), CliExit2,
         r"error: --set: expected keys of wang_mao_synthetic .*\['nope'\]"),
    Case("cli/set_wrong_type", "cli",
         lambda: _cli("reproduce", "wang_mao_synthetic", "--set", "k1=abc"), CliExit2,
         r"error: --set k1: expected an integer"),
    Case("cli/set_not_key_value", "cli",
         lambda: _cli("reproduce", "wang_mao_synthetic", "--set", "k1"), CliExit2,
         r"error: --set: expected KEY=VALUE"),
    Case("cli/reproduce_unknown_target", "cli",
         lambda: _cli("reproduce", "no_such_target"), CliExit2,
         r"error: name: expected one of"),
]

assert all(dataclasses.is_dataclass(c) for c in CASES)
