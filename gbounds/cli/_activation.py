"""``gbounds activation-info``: activation entropy and neuron MI on Colored / Shuffled MNIST.

Runs :func:`gbounds.experiments.reproduce_activation_information` (Bansal et al., NeurIPS 2022, Table 2) and
writes ``activation_info.json`` (per-model records, per-level means, Kendall taus),
``models.csv``, ``table.txt`` and, with matplotlib, ``activation_info.png`` (box plots of
per-neuron entropy and pairwise MI per setting level) to ``--out``.

Every option is checked before any model is trained; a bad value exits with status 2 and one
line naming the flag.
"""

from __future__ import annotations

import io
import os

import gbounds.experiments as _experiments
from gbounds._src import errors as _errors
from gbounds._src import io as _io
from gbounds._src import progress as _progress
from gbounds.cli import _common


def register(sub) -> None:
  """Adds this module's subcommands to the ``gbounds`` parser.

  Args:
    sub: the ``add_subparsers`` action of the ``gbounds`` parser.

  Returns:
    None.
  """
  p = sub.add_parser(
      "activation-info",
      help="label-free memorization measures (neuron entropy, neuron MI) on Colored/Shuffled MNIST")
  p.add_argument("--out", default="runs/activation_info", help="output directory")
  p.add_argument("--data-dir", default=None, help="data directory with mnist/ "
                 "(default: $GBOUNDS_DATA_DIR)")
  p.add_argument("--settings", default="colored,shuffled",
                 help="comma-separated subset of {colored, shuffled}")
  p.add_argument("--seeds", type=int, default=3, help="models per setting level")
  p.add_argument("--n-train", type=int, default=2000, help="training examples per model")
  p.add_argument("--n-val", type=int, default=2000, help="labelled validation examples")
  p.add_argument("--n-measure", type=int, default=1000, help="unlabelled inputs for the measures")
  p.add_argument("--epochs", type=int, default=60)
  p.add_argument("--bins", type=int, default=100)
  p.add_argument("--k", type=int, default=3,
                 help="KSG neighbour order, 1 <= k < --n-measure (ties in the activations "
                 "are broken with tiny seeded noise; see gbounds.info.ksg_mutual_information)")
  p.add_argument("--mi-neurons", type=int, default=48,
                 help="neurons subsampled for the MI (>= 2; at most all 768 are used)")
  p.add_argument("--seed", type=int, default=0)
  p.set_defaults(func=_run)


_HALF = 5000   # each half of the MNIST test split (training pool / held-out inputs)


def _check_flags(args) -> list:
  """Validates every option (the message names the flag) before anything is trained.

  Returns the requested settings as :class:`gbounds.experiments.Setting` members.
  """
  ms = _experiments

  def integer(flag, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (
        hi is not None and value > hi):
      what = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi}]"
      _errors.fail(flag, what, repr(value))

  names = [s.strip() for s in args.settings.split(",")]
  if not any(names) or not all(names):
    _errors.fail("--settings", "a comma-separated subset of {colored, shuffled}, e.g. "
                 "'colored,shuffled'", repr(args.settings))
  settings = [_errors.as_enum("--settings", n, ms.Setting) for n in names]
  if len(set(settings)) != len(settings):
    _errors.fail("--settings", "each setting at most once", repr(args.settings))
  integer("--seeds", args.seeds, 1)
  integer("--n-train", args.n_train, 1, _HALF)
  integer("--n-val", args.n_val, 1, _HALF - 2)
  integer("--n-measure", args.n_measure, 2, _HALF - args.n_val)
  integer("--epochs", args.epochs, 1)
  integer("--bins", args.bins, 2, 1 << 20)
  integer("--k", args.k, 1, args.n_measure - 1)
  integer("--mi-neurons", args.mi_neurons, 2)
  integer("--seed", args.seed, 0, 2 ** 32 - 1)
  if args.data_dir is not None and not os.path.isdir(args.data_dir):
    _errors.fail("--data-dir", "an existing directory with mnist/ in it (or leave it out to use "
                 "$GBOUNDS_DATA_DIR)", repr(args.data_dir))
  return settings


def _run(args) -> int:
  ms = _experiments

  settings = _check_flags(args)
  config = ms.SettingsConfig(seeds=args.seeds, n_train=args.n_train, n_val=args.n_val,
                             n_measure=args.n_measure, epochs=args.epochs, bins=args.bins,
                             k=args.k, mi_neurons=args.mi_neurons, seed=args.seed)
  out = _common.output_dir(args.out)
  bar = _progress.TqdmCallback("activation-info")
  per_setting = 1 + 5 * config.seeds  # training, then each model's measures (5 levels)
  total = len(settings) * per_setting
  results = {}
  try:
    for i, s in enumerate(settings):
      results[s.value] = ms.run_setting(
          s, config=config, data_dir=args.data_dir,
          callback=lambda done, total, i=i, grand=total: bar(i * per_setting + done, grand))
  finally:
    bar.close()
  summary = {"config": config.to_dict(),
             "data": "MNIST test split (10,000), halves: train pool / held-out"}
  csv = io.StringIO()
  csv.write("setting,level,seed,train_accuracy,val_accuracy,mean_entropy,mean_mi\n")
  for name, res in results.items():
    summary[name] = {"levels": list(res.levels), "level_means": res.level_means,
                     "tau_entropy": res.tau_entropy, "tau_mi": res.tau_mi,
                     "tau_entropy_models": res.tau_entropy_models,
                     "tau_mi_models": res.tau_mi_models,
                     "paper_tau": ms.PAPER_KENDALL_TAU[name],
                     "records": [r._asdict() for r in res.records]}
    for r in res.records:
      csv.write(",".join(str(v) for v in r) + "\n")
  _common.atomic_write_json(out / "activation_info.json", summary)
  _common.atomic_write_text(out / "models.csv", csv.getvalue())
  if len(results) == 2:
    table = ms.model_selection_table(
        ms.MemorizationReproduction(results["colored"], results["shuffled"], config))
    _common.atomic_write_text(out / "table.txt", table + "\n")
    print(table)
  else:
    for name, res in results.items():
      print(f"{name}: tau(entropy) = {res.tau_entropy:.2f}, tau(MI) = {res.tau_mi:.2f}")
  _figure(results, out)
  return 0


def _figure(results, out) -> None:
  """Box plots of the first seed's per-neuron entropies and MI values (no pyplot)."""
  try:
    import matplotlib  # noqa: F401 -- optional: no figure without it
  except ImportError:  # pragma: no cover
    return
  import gbounds.viz as _viz
  res = list(results.values())
  fig, axes = _io.new_figure(figsize=(10, 3.2 * len(res)), nrows=len(res), ncols=2,
                             squeeze=False)
  _viz.plot_activation_distributions(axes, res)
  fig.tight_layout()
  _io.atomic_write_figure(out / "activation_info.png", fig, dpi=100)
