"""``gbounds analyze``, ``gbounds pac-bayes`` and ``gbounds reproduce``: the front door.

``analyze`` loads a trained Flax Linen model from an Orbax checkpoint (``--checkpoint``) with its
module (``--module package.module:Class``, ``--module-kwargs JSON``), loads the data
(``--dataset``, one of ``gbounds.data.DATASETS``) and the training recipe (``--recipe JSON`` with
``gbounds.train.TrainConfig`` fields, or flags), and writes the report (JSON, CSV, PNG, HTML) to
``--out``. ``pac-bayes`` computes only the PAC-Bayes certificate. ``reproduce`` runs one of the
registered reproductions (``--list`` shows them).

The PAC-Bayes certificate of both commands is, by default, that of an optimised Gaussian
posterior (``gbounds.bounds.certify``) with a prior learnt by the recipe on part of the training
set when each part holds at least 100 examples (``--prior auto``), else a data-free prior; the
report states which, and why. ``--prior {auto,learnt,data_free}``, ``--objective``,
``--prior-fraction``, ``--certificate-epochs`` and ``--mc-draws`` (Monte Carlo weight draws;
``--mc-samples`` is its earlier name) set it; ``--pac-bayes-method isotropic`` gives the
earlier certificates of ``N(w, s^2 I)`` around the trained weights (``--mc-draws`` then sets
their Monte Carlo draws).

``--module`` IMPORTS the named Python module, which executes its top-level code: name only code
you trust. A module file in the current directory is found (``mymodels:Net`` for
``./mymodels.py``).

Every option is checked before anything is loaded or trained; a user error exits with status 2
and one line ``gbounds <command>: error: <flag>: expected <what>, got <what> instead.``
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import json
import math
import pathlib
import sys
from typing import Any

import jax

import gbounds.analysis as _analysis
import gbounds.data as _data
import gbounds.experiments as _experiments
import gbounds.train as _train
from gbounds._src import errors as _errors
from gbounds._src import progress as _progress
from gbounds.cli import _common

_TRAIN_FLAGS = {"loss": "--loss", "optimizer": "--optimizer", "learning_rate": "--learning-rate",
                "steps": "--steps", "batch_size": "--batch-size",
                "weight_decay": "--weight-decay", "seed": "--train-seed"}
_CONFIG_FLAGS = {"budget": "--budget", "k1": "--k1", "k2": "--k2", "mc_samples": "--mc-samples",
                 "delta": "--delta", "delta_mc": "--delta-mc", "seed": "--seed",
                 "delta + delta_mc": "--delta + --delta-mc",
                 "pac_bayes_method": "--pac-bayes-method", "prior": "--prior",
                 "objective": "--objective", "prior_fraction": "--prior-fraction",
                 "certificate_epochs": "--certificate-epochs", "mc_draws": "--mc-draws"}
# The optimised certificate's flags: (flag, argparse dest, AnalysisConfig field).
_CERTIFY_FLAGS = (("--prior", "prior", "prior"), ("--objective", "objective", "objective"),
                  ("--prior-fraction", "prior_fraction", "prior_fraction"),
                  ("--certificate-epochs", "certificate_epochs", "certificate_epochs"))


def _model_args(p) -> None:
  p.add_argument("--checkpoint", required=True,
                 help="Orbax checkpoint directory ({'params', 'init_params'} or bare params)")
  p.add_argument("--module", required=True,
                 help="import path of the Linen module class, e.g. gbounds.models:MLP or "
                 "mymodels:Net for ./mymodels.py. The module is IMPORTED, which runs its code: "
                 "name only modules you trust")
  p.add_argument("--module-kwargs", default="{}", help="constructor arguments as a JSON object")
  p.add_argument("--dataset", default="mnist", help="one of gbounds.data.DATASETS")
  p.add_argument("--classes", type=int, nargs="+", default=[4, 9],
                 help="two or more distinct classes present in the dataset, kept and relabelled "
                 "0..k-1 in the order given (default: 4 9)")
  p.add_argument("--all-classes", action="store_true", help="keep every class")
  p.add_argument("--split", default="test", help="dataset split (default test)")
  p.add_argument("--n-train", type=int, default=500, help="training examples (>= 2)")
  p.add_argument("--n-test", type=int, default=500, help="test examples (>= 2)")
  p.add_argument("--data-seed", type=int, default=0, help="seed of the train/test split")
  p.add_argument("--data-dir", help="data directory (default $GBOUNDS_DATA_DIR)")
  p.add_argument("--recipe", help="JSON file holding an object of gbounds.train.TrainConfig fields "
                 "(loss, optimizer, learning_rate, steps, batch_size, weight_decay, momentum, "
                 "seed) or epochs; flags override it")
  p.add_argument("--loss", choices=("cross_entropy", "mse"))
  p.add_argument("--optimizer", choices=("sgd", "momentum", "adam"))
  p.add_argument("--learning-rate", type=float)
  p.add_argument("--steps", type=int, help="optimizer steps (a positive integer)")
  p.add_argument("--epochs", type=int, help="alternative to --steps")
  p.add_argument("--batch-size", type=int)
  p.add_argument("--weight-decay", type=float)
  p.add_argument("--train-seed", type=int)
  p.add_argument("--seed", type=int, default=0, help="seed of the analysis")
  p.add_argument("--out", default="runs/analyze", help="output directory")
  p.add_argument("--no-progress", action="store_true")
  g = p.add_argument_group("PAC-Bayes certificate")
  g.add_argument("--pac-bayes-method", choices=("optimised", "isotropic"), default="optimised",
                 help="optimised: an optimised Gaussian posterior with a learnt or data-free "
                 "prior (gbounds.bounds.certify; default); isotropic: N(w, s^2 I) around the "
                 "trained weights, prior N(w0, s^2 I) (earlier versions' certificates)")
  g.add_argument("--prior", choices=("auto", "learnt", "data_free"),
                 help="prior of the optimised certificate: learnt (trained by the recipe on "
                 "--prior-fraction of the training set; the bound uses the rest), data_free "
                 "(the initialisation), or auto (default: learnt when each part holds at "
                 "least 100 examples)")
  g.add_argument("--objective", choices=("classic", "quad", "lambda", "kl"),
                 help="PAC-Bayes objective the posterior minimises (default quad)")
  g.add_argument("--prior-fraction", type=float,
                 help="share of the training set that trains a learnt prior, in (0, 1) "
                 "(default 0.5)")
  g.add_argument("--certificate-epochs", type=int,
                 help="epochs of the posterior optimisation (default 20)")
  g.add_argument("--mc-draws", type=int,
                 help="Monte Carlo weight draws behind the certificate's bound on the Gibbs "
                 "training error (default 10000; 200 with --pac-bayes-method isotropic)")
  g.add_argument("--mc-samples", type=int,
                 help="the earlier name of --mc-draws (the same setting)")


# duplicates: every CLI module has this register(sub) entry point with the same docstring (the
# dispatcher's interface); the commands and flags differ, not shared logic
def register(sub) -> None:
  """Adds this module's subcommands to the ``gbounds`` parser.

  Args:
    sub: the ``add_subparsers`` action of the ``gbounds`` parser.

  Returns:
    None.
  """
  p = sub.add_parser("analyze", help="analyse a trained model: sample information, CMI and "
                     "PAC-Bayes bounds, one report", description=__doc__)
  _model_args(p)
  p.add_argument("--budget", type=float, default=1.0,
                 help="cost multiplier of the supersample run (k1, k2, steps x budget^(1/3))")
  p.add_argument("--k1", type=int, default=4)
  p.add_argument("--k2", type=int, default=12)
  p.add_argument("--results-dir", help="existing (or resumable) supersample results directory")
  p.add_argument("--skip", nargs="+", default=[], choices=("sample_info", "cmi", "pac_bayes"))
  p.set_defaults(func=_run_analyze)

  q = sub.add_parser("pac-bayes", help="PAC-Bayes certificates of a trained model",
                     description=__doc__)
  _model_args(q)
  q.add_argument("--delta", type=float, default=0.025)
  q.add_argument("--delta-mc", type=float, default=0.01)
  q.set_defaults(func=_run_pac_bayes)

  r = sub.add_parser("reproduce", help="reproduce a published table or figure")
  r.add_argument("name", nargs="?", help="target (see --list)")
  r.add_argument("--list", action="store_true", help="list every target")
  r.add_argument("--all", action="store_true",
                 help="run every target, one after another, each into OUT/NAME (OUT: --out, "
                 "default runs/reproduce); a target whose directory already holds a finished "
                 "run with the same resolved configuration is read back, not rerun")
  r.add_argument("--summary", action="store_true",
                 help="print one line per published number: target, quantity, published, ours, "
                 "verdict. Without a name or --all it only reads the finished results under "
                 "OUT/NAME (nothing runs)")
  r.add_argument("--full", action="store_true", help="paper-sized configuration (GPU)")
  r.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                 help="override configuration keys of the target (VALUE is JSON, e.g. "
                 "--set epochs=5 hidden=[64]; inf and nan are accepted for numbers; a "
                 "value that is not JSON is taken as a string). Unknown keys are refused")
  r.add_argument("--data-dir", help="data directory (default $GBOUNDS_DATA_DIR)")
  r.add_argument("--out", help="output directory (default runs/reproduce/NAME); with --all or "
                 "--summary the directory holding one folder per target (default "
                 "runs/reproduce)")
  r.set_defaults(func=_run_reproduce)


# ----------------------------------------------------------------------------- errors


def _one_line(func):
  """Every gbounds error of a command leaves as one line (newlines of nested messages folded)."""

  @functools.wraps(func)
  def wrapper(args):
    try:
      return func(args)
    except _errors.GBoundsError as e:
      msg = " ".join(str(e).split())
      if msg == str(e):
        raise
      try:
        new = type(e)(msg)
      except TypeError:
        new = _errors.InvalidInputError(msg)
      raise new from e

  return wrapper


def _rename(e: _errors.InvalidInputError, names: dict[str, str], default: str | None = None):
  """The same error with its leading argument name replaced by the CLI flag that set it."""
  msg = str(e)
  head, sep, rest = msg.partition(": ")
  if sep and head in names:
    return _errors.InvalidInputError(f"{names[head]}: {rest}")
  if default is not None:
    return _errors.InvalidInputError(f"{default}: {msg}")
  return e


# ----------------------------------------------------------------------------- option checks


def _json_object(flag: str, text: str) -> dict:
  try:
    value = json.loads(text)
  except json.JSONDecodeError as e:
    _errors.fail(flag, "a JSON object such as '{\"hidden\": [16]}'", f"{text!r} ({e.msg})")
  if not isinstance(value, dict):
    _errors.fail(flag, "a JSON object such as '{\"hidden\": [16]}'",
                 f"a JSON {type(value).__name__} {text!r}")
  return value


def _recipe(args, n_train: int):
  """The TrainConfig from --recipe and the training flags; every mistake names its flag."""
  TrainConfig, steps_for_epochs = _train.TrainConfig, _train.steps_for_epochs  # noqa: N806
  fields: dict[str, Any] = {}
  source: dict[str, str] = {}
  if args.recipe:
    path = pathlib.Path(args.recipe)
    try:
      fields = json.loads(path.read_text())
    except OSError as e:
      _errors.fail("--recipe", "a readable JSON file", f"{path} ({e.strerror or e})")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
      _errors.fail("--recipe", "a JSON file holding an object of TrainConfig fields",
                   f"{path} (not JSON: {e})")
    if not isinstance(fields, dict):
      _errors.fail("--recipe", "a JSON object of TrainConfig fields",
                   f"a JSON {type(fields).__name__} in {path}")
    known = [f.name for f in dataclasses.fields(TrainConfig)] + ["epochs"]
    unknown = sorted(set(fields) - set(known))
    if unknown:
      _errors.fail("--recipe", f"keys among {known}", f"unknown key(s) {unknown} in {path}")
    source = {k: f"--recipe {path}: key {k!r}" for k in fields}
  for name in ("loss", "optimizer", "learning_rate", "steps", "batch_size", "weight_decay"):
    v = getattr(args, name, None)
    if v is not None:
      fields[name] = v
      source[name] = _TRAIN_FLAGS[name]
  if args.train_seed is not None:
    fields["seed"] = args.train_seed
    source["seed"] = "--train-seed"
  if args.epochs is not None:
    if args.steps is not None:
      _errors.fail("--epochs", "either --steps or --epochs", "both")
    fields["epochs"] = args.epochs
    source["epochs"] = "--epochs"
    fields.pop("steps", None)
  epochs = fields.pop("epochs", None)
  try:
    if epochs is not None:
      if isinstance(epochs, bool) or not isinstance(epochs, int):
        _errors.fail("epochs", "an integer >= 1", repr(epochs))
      fields["steps"] = steps_for_epochs(epochs, n_train, fields.get("batch_size"))
      source["steps"] = source.get("epochs", "--epochs")
    return TrainConfig(**fields)
  except _errors.InvalidInputError as e:
    raise _rename(e, {**source, "n": "--n-train"}, default="--recipe") from None


def _check_common(args) -> None:
  """Checks every option of analyze/pac-bayes that needs no file, data or model."""
  an = _analysis
  _json_object("--module-kwargs", args.module_kwargs)
  if not isinstance(args.module, str) or ":" not in args.module and "." not in args.module:
    _errors.fail("--module", "an import path 'package.module:Class'", repr(args.module))
  key = str(args.dataset).strip().lower().replace("-", "_")
  if key not in _data.DATASETS:
    _errors.fail("--dataset", f"one of {list(_data.DATASETS)}", repr(args.dataset))
  for flag, v in (("--n-train", args.n_train), ("--n-test", args.n_test)):
    if v < 2:
      _errors.fail(flag, "an integer >= 2", v)
  if not args.all_classes:
    if len(args.classes) < 2:
      _errors.fail("--classes", "at least two classes (or --all-classes)", args.classes)
    if len(set(args.classes)) != len(args.classes):
      _errors.fail("--classes", "distinct classes", args.classes)
  ck = pathlib.Path(args.checkpoint)
  if not ck.is_dir():
    _errors.fail("--checkpoint", "an Orbax checkpoint directory",
                 f"{ck} ({'not a directory' if ck.exists() else 'does not exist'})")
  _recipe(args, args.n_train)  # recipe values, before anything is loaded or trained
  try:
    an.check_output_dir(args.out)
  except _errors.InvalidInputError as e:
    raise _rename(e, {"out_dir": "--out"}) from None


def _config(args, **kwargs):
  an = _analysis
  draws_flag = "--mc-samples" if getattr(args, "mc_samples", None) is not None else "--mc-draws"
  try:
    return an.AnalysisConfig(**kwargs)
  except _errors.InvalidInputError as e:
    raise _rename(e, {**_CONFIG_FLAGS, "mc_draws": draws_flag, "mc_samples": draws_flag}) from None


def _certificate_kwargs(args) -> dict:
  """AnalysisConfig fields of the PAC-Bayes flags (checked: each names its flag)."""
  kwargs: dict[str, Any] = {"pac_bayes_method": args.pac_bayes_method}
  if args.mc_draws is not None and args.mc_samples is not None:
    _errors.fail("--mc-samples", "either --mc-draws or --mc-samples (its earlier name)", "both")
  draws = args.mc_draws if args.mc_draws is not None else args.mc_samples
  isotropic = args.pac_bayes_method == "isotropic"
  if draws is not None:
    kwargs["mc_samples" if isotropic else "mc_draws"] = draws
  for flag, dest, field in _CERTIFY_FLAGS:
    value = getattr(args, dest)
    if value is None:
      continue
    if isotropic:
      _errors.fail(flag, "a setting of the optimised certificate (--pac-bayes-method "
                   "optimised)", "--pac-bayes-method isotropic")
    kwargs[field] = value
  return kwargs


def _check_prior_split(args, cfg) -> None:
  """The learnt prior's split of the --n-train examples (before anything is loaded)."""
  if not cfg.pac_bayes or cfg.pac_bayes_method != "optimised":
    return
  try:
    cfg.certify_config(args.n_train)  # gbounds.analysis.prior_choice on the split
  except _errors.InvalidInputError as e:
    raise _rename(e, {"prior_fraction": "--prior-fraction"}) from None


def _load(args):
  an = _analysis
  out = an.check_output_dir(args.out)
  kwargs = _json_object("--module-kwargs", args.module_kwargs)
  try:
    module = an.load_module(args.module, kwargs)
    data = an.analysis_data(args.dataset, classes=None if args.all_classes else args.classes,
                            n_train=args.n_train, n_test=args.n_test, split=args.split,
                            seed=args.data_seed, data_dir=args.data_dir)
  except _errors.InvalidInputError as e:
    raise _rename(e, {"module": "--module", "module_kwargs": "--module-kwargs",
                      "classes": "--classes", "dataset": "--dataset", "n_train": "--n-train",
                      "n_test": "--n-test", "split": "--split",
                      "n_train + n_test": "--n-train + --n-test"}) from None
  try:
    params, init = an.load_checkpoint(args.checkpoint, module, data.x_train)
  except _errors.InvalidInputError as e:
    raise _rename(e, {"checkpoint": "--checkpoint"}) from None
  return an, out, module, data, params, init


def _analyze_errors(e: _errors.InvalidInputError):
  return _rename(e, {"params": "--checkpoint", "init_params": "--checkpoint",
                     "results_dir": "--results-dir", "out_dir": "--out",
                     "prior_fraction": "--prior-fraction",
                     **{f"data.y_{p}": "--classes" for p in ("train", "test", "pool")},
                     **{f"data.x_{p}": "--dataset" for p in ("train", "test", "pool")}})


def _analyze_and_report(args, cfg_kwargs: dict, results_dir=None):
  """Loads the model and data, runs :func:`gbounds.analysis.analyze` with ``cfg_kwargs``,
  writes the report to ``--out`` and prints the analysis; returns the report's files (the
  common body of ``analyze`` and ``pac-bayes``)."""
  an, out, module, data, params, init = _load(args)
  recipe = _recipe(args, len(data.y_train))
  cfg = _config(args, **cfg_kwargs)
  try:
    a = an.analyze(module, data, recipe, params=params, init_params=init, config=cfg,
                   out_dir=out, results_dir=results_dir, progress=not args.no_progress,
                   log=lambda s: print(s, file=sys.stderr))
  except _errors.InvalidInputError as e:
    raise _analyze_errors(e) from None
  files = an.write_analysis_report(a, out, data=data)
  print(a.format())
  return files


@_one_line
def _run_analyze(args) -> int:
  _check_common(args)
  cfg_kwargs = {"budget": args.budget, "k1": args.k1, "k2": args.k2, "seed": args.seed,
                "sample_info": "sample_info" not in args.skip, "cmi": "cmi" not in args.skip,
                "pac_bayes": "pac_bayes" not in args.skip, **_certificate_kwargs(args)}
  _check_prior_split(args, _config(args, **cfg_kwargs))
  if args.results_dir is not None:
    rd = pathlib.Path(args.results_dir)
    if rd.exists() and not rd.is_dir():
      _errors.fail("--results-dir", "a directory", f"{rd} (a file)")
  files = _analyze_and_report(args, cfg_kwargs, results_dir=args.results_dir)
  print(f"report: {files.html} (+ report.json, {len(files.csv)} CSV, {len(files.png)} PNG)")
  return 0


@_one_line
def _run_pac_bayes(args) -> int:
  _check_common(args)
  cfg_kwargs = {"sample_info": False, "cmi": False, "pac_bayes": True, "seed": args.seed,
                "delta": args.delta, "delta_mc": args.delta_mc, **_certificate_kwargs(args)}
  _check_prior_split(args, _config(args, **cfg_kwargs))
  files = _analyze_and_report(args, cfg_kwargs)
  print(f"report: {files.html}")
  return 0


# ----------------------------------------------------------------------------- reproduce

def _reproduce_keys(name: str) -> dict[str, Any] | None:
  """``{key: default}`` a target accepts in ``--set`` (None: cannot tell, nothing is refused);
  read from the registry (:func:`gbounds.experiments.target_keys`)."""
  try:
    return _experiments.target_keys(name)
  except Exception:  # noqa: BLE001 -- an entry point moved: fall back to no key check
    return None


def _parse_value(text: str) -> Any:
  word = text.strip().lower()
  if word in ("inf", "+inf", "infinity"):
    return math.inf
  if word in ("-inf", "-infinity"):
    return -math.inf
  if word == "nan":
    return math.nan
  try:
    return json.loads(text)
  except json.JSONDecodeError:
    return text


def _check_set_value(key: str, value: Any, default: Any) -> None:
  if default is _experiments.NO_DEFAULT or default is None or callable(default) and not isinstance(
      default, enum.Enum):
    return
  number = isinstance(value, (int, float)) and not isinstance(value, bool)
  if isinstance(default, bool):
    ok, what = isinstance(value, bool), "true or false"
  elif isinstance(default, enum.Enum):
    ok, what = isinstance(value, (str, int)) and not isinstance(value, bool), (
        f"one of {[m.name.lower() for m in type(default)]}")
  elif isinstance(default, int):
    ok, what = isinstance(value, int) and not isinstance(value, bool), (
        f"an integer (default {default})")
  elif isinstance(default, float):
    ok, what = number and not math.isnan(value), f"a number (default {default})"
  elif isinstance(default, str):
    ok, what = isinstance(value, str), f"a string (default {default!r})"
  elif isinstance(default, (tuple, list)):
    ok, what = isinstance(value, list), f"a JSON list (default {json.dumps(list(default))})"
  else:
    return
  if not ok:
    _errors.fail(f"--set {key}", what, repr(value))


def _overrides(args) -> dict:
  overrides = {}
  for item in args.set:
    k, sep, v = item.partition("=")
    k = k.strip()
    if not sep or not k:
      _errors.fail("--set", "KEY=VALUE (VALUE in JSON, e.g. epochs=5)", repr(item))
    overrides[k] = _parse_value(v)
  if not overrides:
    return overrides
  keys = _reproduce_keys(args.name)
  if keys is not None:
    unknown = sorted(set(overrides) - set(keys))
    if unknown:
      _errors.fail("--set", f"keys of {args.name} among {sorted(keys)}",
                   f"unknown key(s) {unknown}")
    for k, v in overrides.items():
      _check_set_value(k, v, keys[k])
  return overrides


_SUMMARY_COLUMNS = ("target", "quantity", "published", "ours", "verdict")


def _summary_rows(res) -> list[tuple[Any, ...]]:
  """One row per published number of a reproduction: target, quantity, published, ours,
  verdict."""
  return [(res.name, r.quantity, r.published, r.ours, r.verdict) for r in res.rows if r.verdict]


def _print_summary(rows: list[tuple[Any, ...]], missing: list[tuple[str, str]]) -> None:
  table = _analysis.ReportTable("summary", "Published numbers beside ours", _SUMMARY_COLUMNS,
                                tuple(rows))
  print(_analysis.format_table(table))
  for name, why in missing:
    print(f"{name}: {why}")
  counts = {v: sum(1 for r in rows if r[-1] == v) for v in _experiments.VERDICTS}
  print("; ".join(f"{n} {v}" for v, n in counts.items()))


def _print_reasons(res) -> None:
  """The reasons behind the verdicts that are not a plain number-to-number check."""
  seen = []
  for r in res.rows:
    if r.verdict in (_experiments.NOT_COMPARABLE, _experiments.UNCONFIRMED) and r.reason:
      line = f"{r.verdict}: {r.reason}"
      if line not in seen:
        seen.append(line)
  for line in seen:
    print(line)


def _finished(out: pathlib.Path, name: str, resolved: dict):
  """The reproduction already written to ``out`` with the same resolved configuration, or
  None."""
  res = _experiments.load_reproduction(out)
  if res is None or res.name != name:
    return None
  same = json.dumps(res.resolved_config, sort_keys=True) == json.dumps(resolved, sort_keys=True)
  return res if same else None


def _run_one(args, name: str, out: pathlib.Path, overrides: dict):
  bar = _progress.TqdmCallback(name, unit="step")
  # the application's choice: 64-bit types for the targets that need them, for this call only
  precision = (jax.enable_x64(True) if _experiments.TARGETS[name].float64
               else contextlib.nullcontext())
  try:
    with precision:
      res = _experiments.reproduce(name, full=args.full, data_dir=args.data_dir, out_dir=out,
                                   progress=bar, **overrides)
  finally:
    bar.close()
  files = _analysis.write_report(res.report(), out)
  return res, files


def _run_all(args) -> int:
  """``--all`` (run what is not finished) and ``--summary`` (from the results written)."""
  rr = _experiments
  if args.set:
    _errors.fail("--set", "a target name (the keys differ between targets), not --all or "
                 "--summary alone", "--set with several targets")
  root = pathlib.Path(args.out or "runs/reproduce")
  names = [args.name] if args.name else list(rr.TARGETS)
  rows, missing, failed = [], [], 0
  for name in names:
    out = root / name
    ok, why = rr.TARGETS[name].available()
    if not ok:
      missing.append((name, f"unavailable ({why})"))
      continue
    resolved = rr.resolved_config(name, full=args.full)
    res = _finished(out, name, resolved)
    if res is None and not args.all:
      old = rr.load_reproduction(out)
      missing.append((name, f"not run ({out}/report.json missing)" if old is None else
                      f"finished with another configuration ({out}); shown as it is"))
      res = old
    elif res is None:
      print(f"== {name}: running into {out}")
      try:
        res, files = _run_one(args, name, _common.output_dir(out), {})
      except _errors.GBoundsError as e:
        failed += 1
        missing.append((name, f"failed: {' '.join(str(e).split())}"))
        continue
      print(res.format())
      print(f"{res.seconds:.1f} s; report: {files.html}")
    elif args.all:
      print(f"== {name}: finished with the same configuration in {out} "
            f"({res.provenance.get('date_utc', 'date unknown')}); not rerun")
    if res is not None:
      rows += _summary_rows(res)
  if args.summary or args.all:
    _print_summary(rows, missing)
  return 1 if failed else 0


@_one_line
def _run_reproduce(args) -> int:
  rr = _experiments
  if args.list or (not args.name and not args.all and not args.summary):
    if args.set:
      _errors.fail("--set", "a target name before --set (see --list)", "none")
    rows = rr.list_targets()
    for t in rows:
      status = "available" if t["available"] else f"unavailable: {t['reason']}"
      print(f"{t['name']:<26} {t['title']}\n{'':<26} {t['paper']}; {status}; CPU default "
            f"{json.dumps(t['cpu'])} ({t['cpu_minutes']}); --full {json.dumps(t['full'])}")
    return 0
  if args.name is not None and args.name not in rr.TARGETS:
    _errors.fail("name", f"one of {sorted(rr.TARGETS)} (see gbounds reproduce --list)",
                 repr(args.name))
  if args.all and args.name:
    _errors.fail("--all", "no target name (--all runs every target)", repr(args.name))
  if args.all or not args.name:
    return _run_all(args)
  overrides = _overrides(args)
  out = _common.output_dir(args.out or f"runs/reproduce/{args.name}")
  res, files = _run_one(args, args.name, out, overrides)
  if res.text:
    print(res.text)
  print(res.format())
  _print_reasons(res)
  if args.summary:
    _print_summary(_summary_rows(res), [])
  print(f"{res.seconds:.1f} s; report: {files.html}")
  return 0
