"""``gbounds analyze``, ``gbounds pac-bayes`` and ``gbounds reproduce``: the front door.

``analyze`` loads a trained Flax Linen model from an Orbax checkpoint (``--checkpoint``) with its
module (``--module package.module:Class``, ``--module-kwargs JSON``), loads the data
(``--dataset``, one of ``gbounds.DATASETS``) and the training recipe (``--recipe JSON`` with
``gbounds.TrainConfig`` fields, or flags), and writes the report (JSON, CSV, PNG, HTML) to
``--out``. ``pac-bayes`` computes only the PAC-Bayes certificates. ``reproduce`` runs one of the
registered reproductions (``--list`` shows them).
"""

from __future__ import annotations

import json
import pathlib
import sys

from gbounds import _errors
from gbounds.cli import _common


def _model_args(p) -> None:
  p.add_argument("--checkpoint", required=True,
                 help="Orbax checkpoint directory ({'params', 'init_params'} or bare params)")
  p.add_argument("--module", required=True,
                 help="import path of the Linen module class, e.g. gbounds._models:MLP")
  p.add_argument("--module-kwargs", default="{}", help="constructor arguments as JSON")
  p.add_argument("--dataset", default="mnist", help="one of gbounds.DATASETS")
  p.add_argument("--classes", type=int, nargs="+", default=[4, 9],
                 help="classes kept and relabelled 0..k-1 (default: 4 9)")
  p.add_argument("--all-classes", action="store_true", help="keep every class")
  p.add_argument("--split", default="test", help="dataset split (default test)")
  p.add_argument("--n-train", type=int, default=500)
  p.add_argument("--n-test", type=int, default=500)
  p.add_argument("--data-seed", type=int, default=0, help="seed of the train/test split")
  p.add_argument("--data-dir", help="data directory (default $GBOUNDS_DATA_DIR)")
  p.add_argument("--recipe", help="JSON file with gbounds.TrainConfig fields")
  p.add_argument("--loss", choices=("cross_entropy", "mse"))
  p.add_argument("--optimizer", choices=("sgd", "momentum", "adam"))
  p.add_argument("--learning-rate", type=float)
  p.add_argument("--steps", type=int)
  p.add_argument("--epochs", type=int, help="alternative to --steps")
  p.add_argument("--batch-size", type=int)
  p.add_argument("--weight-decay", type=float)
  p.add_argument("--train-seed", type=int)
  p.add_argument("--seed", type=int, default=0, help="seed of the analysis")
  p.add_argument("--out", default="runs/analyze", help="output directory")
  p.add_argument("--no-progress", action="store_true")


def register(sub) -> None:
  p = sub.add_parser("analyze", help="analyse a trained model: sample information, CMI and "
                     "PAC-Bayes bounds, one report", description=__doc__)
  _model_args(p)
  p.add_argument("--budget", type=float, default=1.0,
                 help="cost multiplier of the supersample run (k1, k2, steps x budget^(1/3))")
  p.add_argument("--k1", type=int, default=4)
  p.add_argument("--k2", type=int, default=12)
  p.add_argument("--results-dir", help="existing (or resumable) supersample results directory")
  p.add_argument("--skip", nargs="+", default=[], choices=("sample_info", "cmi", "pac_bayes"))
  p.add_argument("--mc-samples", type=int, default=200)
  p.set_defaults(func=_run_analyze)

  q = sub.add_parser("pac-bayes", help="PAC-Bayes certificates of a trained model")
  _model_args(q)
  q.add_argument("--mc-samples", type=int, default=200)
  q.add_argument("--delta", type=float, default=0.025)
  q.add_argument("--delta-mc", type=float, default=0.01)
  q.set_defaults(func=_run_pac_bayes)

  r = sub.add_parser("reproduce", help="reproduce a published table or figure")
  r.add_argument("name", nargs="?", help="target (see --list)")
  r.add_argument("--list", action="store_true", help="list every target")
  r.add_argument("--full", action="store_true", help="paper-sized configuration (GPU)")
  r.add_argument("--set", nargs="+", default=[], metavar="KEY=JSON",
                 help="override configuration keys, e.g. --set epochs=5")
  r.add_argument("--data-dir", help="data directory (default $GBOUNDS_DATA_DIR)")
  r.add_argument("--out", help="output directory (default runs/reproduce/NAME)")
  r.set_defaults(func=_run_reproduce)


def _recipe(args, n_train: int):
  from gbounds._train import TrainConfig, steps_for_epochs
  fields = {}
  if args.recipe:
    path = pathlib.Path(args.recipe)
    try:
      fields = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
      _errors.fail("--recipe", "a readable JSON file", f"{path} ({e})")
    if not isinstance(fields, dict):
      _errors.fail("--recipe", "a JSON object", type(fields).__name__)
  for name in ("loss", "optimizer", "learning_rate", "steps", "batch_size", "weight_decay"):
    v = getattr(args, name, None)
    if v is not None:
      fields[name] = v
  if args.train_seed is not None:
    fields["seed"] = args.train_seed
  epochs = fields.pop("epochs", None) if args.epochs is None else args.epochs
  if epochs is not None:
    fields["steps"] = steps_for_epochs(int(epochs), n_train, fields.get("batch_size"))
  try:
    return TrainConfig(**fields)
  except TypeError as e:
    _errors.fail("--recipe", "gbounds.TrainConfig fields", f"{sorted(fields)} ({e})")


def _load(args):
  from gbounds import _analyze as an
  out = an.check_output_dir(args.out)  # fail before any work
  kwargs = json.loads(args.module_kwargs) if args.module_kwargs else {}
  if not isinstance(kwargs, dict):
    _errors.fail("--module-kwargs", "a JSON object", args.module_kwargs)
  module = an.load_module(args.module, kwargs)
  data = an.analysis_data(args.dataset, classes=None if args.all_classes else args.classes,
                          n_train=args.n_train, n_test=args.n_test, split=args.split,
                          seed=args.data_seed, data_dir=args.data_dir)
  params, init = an.load_checkpoint(args.checkpoint, module, data.x_train)
  return an, out, module, data, params, init


def _run_analyze(args) -> int:
  try:
    kwargs = json.loads(args.module_kwargs)
  except json.JSONDecodeError as e:
    _errors.fail("--module-kwargs", "a JSON object", f"{args.module_kwargs!r} ({e})")
  del kwargs
  an, out, module, data, params, init = _load(args)
  recipe = _recipe(args, len(data.y_train))
  cfg = an.AnalysisConfig(budget=args.budget, k1=args.k1, k2=args.k2, seed=args.seed,
                          sample_info="sample_info" not in args.skip,
                          cmi="cmi" not in args.skip, pac_bayes="pac_bayes" not in args.skip,
                          mc_samples=args.mc_samples)
  a = an.analyze(module, data, recipe, params=params, init_params=init, config=cfg,
                 out_dir=out, results_dir=args.results_dir, progress=not args.no_progress,
                 log=lambda s: print(s, file=sys.stderr))
  files = an.write_analysis_report(a, out, data=data)
  print(a.format())
  print(f"report: {files.html} (+ report.json, {len(files.csv)} CSV, {len(files.png)} PNG)")
  return 0


def _run_pac_bayes(args) -> int:
  an, out, module, data, params, init = _load(args)
  recipe = _recipe(args, len(data.y_train))
  cfg = an.AnalysisConfig(sample_info=False, cmi=False, pac_bayes=True, seed=args.seed,
                          mc_samples=args.mc_samples, delta=args.delta, delta_mc=args.delta_mc)
  a = an.analyze(module, data, recipe, params=params, init_params=init, config=cfg,
                 out_dir=out, progress=not args.no_progress,
                 log=lambda s: print(s, file=sys.stderr))
  files = an.write_analysis_report(a, out, data=data)
  print(a.format())
  print(f"report: {files.html}")
  return 0


def _run_reproduce(args) -> int:
  from gbounds import _report as rp
  from gbounds import _reproduce as rr
  if args.list or not args.name:
    rows = rr.list_targets()
    for t in rows:
      status = "available" if t["available"] else f"unavailable: {t['reason']}"
      print(f"{t['name']:<26} {t['title']}\n{'':<26} {t['paper']}; {status}; CPU default "
            f"{json.dumps(t['cpu'])} ({t['cpu_minutes']}); --full {json.dumps(t['full'])}")
    return 0
  overrides = {}
  for item in args.set:
    k, sep, v = item.partition("=")
    if not sep:
      _errors.fail("--set", "KEY=JSON", repr(item))
    try:
      overrides[k] = json.loads(v)
    except json.JSONDecodeError:
      overrides[k] = v
  out = _common.output_dir(args.out or f"runs/reproduce/{args.name}")
  bar = _common.progress(total=None, desc=args.name, unit="step")
  last = [0]

  def progress(done, total):
    if bar is not None:
      if bar.total != total:
        bar.total = total
      bar.update(done - last[0])
    last[0] = done

  try:
    res = rr.reproduce(args.name, full=args.full, data_dir=args.data_dir, out_dir=out,
                       progress=progress, **overrides)
  finally:
    if bar is not None:
      bar.close()
  files = rp.write_report(res.report(), out)
  if res.text:
    print(res.text)
  print(res.format())
  print(f"{res.seconds:.1f} s; report: {files.html}")
  return 0
