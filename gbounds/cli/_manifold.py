"""``gbounds manifold``: MFTMA manifold geometry of class manifolds, and the permuted-label
layer-rewinding experiment (Stephenson et al., ICLR 2021).

* ``gbounds manifold geometry --input X.npy``: ``X`` of shape ``(P, M, N)`` (or an ``.npz``
  with ``features`` ``(n, N)`` and ``labels`` ``(n,)``, grouped into ``--points`` per class);
  writes ``geometry.json`` (aggregates and per-manifold values).
* ``gbounds manifold permuted-labels``: trains the small CNN on partly permuted labels, measures
  per-layer, per-epoch geometry of unpermuted / permuted / restored manifolds and rewinds layers;
  writes ``result.json``, ``geometry.csv``, ``rewinding.csv``, ``geometry.png``,
  ``rewinding.png``. ``--quick`` is a one-minute smoke run.

The analysis runs in float64: the command (the application) enables 64-bit JAX types locally,
``with jax.enable_x64(True)`` around the library calls; the library itself never reads or sets
``jax_enable_x64``.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

import gbounds.geometry as _geo
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
  p = sub.add_parser("manifold", help="MFTMA manifold geometry and layer rewinding",
                     description=__doc__)
  msub = p.add_subparsers(dest="manifold_command", metavar="SUBCOMMAND")
  msub.required = True

  g = msub.add_parser("geometry", help="capacity, radius, dimension of class manifolds")
  g.add_argument("--input", required=True, help=".npy (P, M, N) or .npz with features, labels")
  g.add_argument("--points", type=int, default=50, help="points per class for .npz input")
  g.add_argument("--kappa", type=float, default=0.0)
  g.add_argument("--n-t", type=int, default=300)
  g.add_argument("--max-features", type=int, default=5000)
  g.add_argument("--center-rank", type=int, default=None, help="default: chosen automatically")
  g.add_argument("--seed", type=int, default=0)
  g.add_argument("--out", default="runs/manifold", help="output directory")
  g.set_defaults(func=_geometry)

  e = msub.add_parser("permuted-labels", help="per-layer geometry and layer rewinding")
  e.add_argument("--dataset", choices=("mnist", "fashion_mnist"))
  e.add_argument("--n-train", type=int)
  e.add_argument("--n-test", type=int)
  e.add_argument("--permute-fraction", type=float)
  e.add_argument("--epochs", type=int)
  e.add_argument("--checkpoint-epochs", type=int, nargs="+")
  e.add_argument("--rewind-epoch", type=int)
  e.add_argument("--learning-rate", type=float)
  e.add_argument("--batch-size", type=int)
  e.add_argument("--n-per-manifold", type=int)
  e.add_argument("--n-t", type=int)
  e.add_argument("--seed", type=int)
  e.add_argument("--quick", action="store_true", help="tiny smoke-test configuration")
  e.add_argument("--data-dir", help="data directory (default $GBOUNDS_DATA_DIR)")
  e.add_argument("--out", default="runs/permuted_labels", help="output directory")
  e.set_defaults(func=_permuted)


_QUICK = dict(n_train=1000, n_test=500, epochs=4, checkpoint_epochs=(0, 1, 4), rewind_epoch=1,
              n_per_manifold=15, n_t=40, center_rank=0)
_FIELDS = ("dataset", "n_train", "n_test", "permute_fraction", "epochs", "checkpoint_epochs",
           "rewind_epoch", "learning_rate", "batch_size", "n_per_manifold", "n_t", "seed")


# API argument -> CLI flag, to name the flag when the library refuses a value.
_GEOMETRY_FLAGS = {"manifolds": "--input", "features": "--input", "labels": "--input",
                   "classes": "--input", "n_per_class": "--points", "kappa": "--kappa",
                   "n_t": "--n-t", "max_features": "--max-features",
                   "center_rank": "--center-rank", "key": "--seed"}
_PERMUTED_FLAGS = {"dataset": "--dataset", "n_train": "--n-train", "n_test": "--n-test",
                   "permute_fraction": "--permute-fraction", "epochs": "--epochs",
                   "checkpoint_epochs": "--checkpoint-epochs", "rewind_epoch": "--rewind-epoch",
                   "learning_rate": "--learning-rate", "batch_size": "--batch-size",
                   "n_per_manifold": "--n-per-manifold", "n_t": "--n-t", "seed": "--seed",
                   "kappa": "--kappa", "center_rank": "--center-rank"}


def _as_flag_error(err: _errors.InvalidInputError, flags: dict[str, str],
                   default: str) -> _errors.InvalidInputError:
  """Re-labels a library error ``"<argument>: ..."`` with the CLI flag that set it."""
  msg = str(err)
  name = msg.split(":", 1)[0].strip()
  flag = flags.get(name, default)
  return _errors.InvalidInputError(f"{flag}: {msg}" if not msg.startswith(flag) else msg)


def _check_int(flag: str, value, minimum: int) -> None:
  if value is not None and value < minimum:
    _errors.fail(flag, f"an integer >= {minimum}", value)


def _check_geometry_flags(args) -> None:
  """All flag checks of ``manifold geometry`` (before any file is read or written)."""
  import math
  import os
  _check_int("--points", args.points, 2)
  _check_int("--n-t", args.n_t, 1)
  _check_int("--max-features", args.max_features, 1)
  _check_int("--center-rank", args.center_rank, 0)
  if not math.isfinite(args.kappa) or args.kappa < 0:
    _errors.fail("--kappa", "a finite margin >= 0", args.kappa)
  if not os.path.isfile(args.input):
    _errors.fail("--input", "an existing .npy or .npz file", repr(args.input))


def _geometry(args) -> int:
  import jax
  _check_geometry_flags(args)
  out = _common.output_dir(args.out)
  with jax.enable_x64(True):
    _manifold = _geo
    path = args.input
    try:
      data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
      _errors.fail("--input", "a readable .npy or .npz file", f"{path} ({err})")
    labelled = isinstance(data, np.lib.npyio.NpzFile)
    if labelled:
      with data:  # read both arrays and close the file (also when the check fails)
        if "features" not in data or "labels" not in data:
          _errors.fail("--input", "an .npz with arrays 'features' and 'labels'",
                       list(data.keys()))
        features, labels = data["features"], data["labels"]
    try:
      if labelled:
        x = _manifold.class_manifolds(features, labels, n_per_class=args.points, key=args.seed)
      else:
        x = data
      g = _manifold.manifold_geometry(
          x, key=args.seed, kappa=args.kappa, n_t=args.n_t,
          max_features=args.max_features, center_rank=args.center_rank, dtype=np.float64)
    except _errors.InvalidInputError as err:
      raise _as_flag_error(err, _GEOMETRY_FLAGS, "--input") from None
    payload = {k: np.asarray(v).tolist() for k, v in g._asdict().items()}
    payload["shape"] = list(np.shape(x))
    _common.atomic_write_json(out / "geometry.json", payload)
  print(f"capacity {float(g.capacity):.4f}  radius {float(g.radius):.4f}  "
        f"dimension {float(g.dimension):.3f}  centre correlation "
        f"{float(g.center_correlation):.4f}  K {g.center_rank}")
  return 0


def _csv(rows, header) -> str:
  buf = io.StringIO()
  buf.write(",".join(header) + "\n")
  for r in rows:
    buf.write(",".join(str(v) if not isinstance(v, tuple) else "+".join(v) for v in r) + "\n")
  return buf.getvalue()


def _check_permuted_flags(args) -> None:
  """Flag checks of ``manifold permuted-labels`` that the recipe does not make itself."""
  import math
  import os
  for flag, name, minimum in (("--n-train", "n_train", 1), ("--n-test", "n_test", 1),
                              ("--epochs", "epochs", 1), ("--batch-size", "batch_size", 1),
                              ("--n-per-manifold", "n_per_manifold", 2), ("--n-t", "n_t", 1),
                              ("--rewind-epoch", "rewind_epoch", 0), ("--seed", "seed", 0)):
    _check_int(flag, getattr(args, name), minimum)
  for name, flag in (("learning_rate", "--learning-rate"),
                     ("permute_fraction", "--permute-fraction")):
    v = getattr(args, name)
    if v is not None and not math.isfinite(v):
      _errors.fail(flag, "a finite number", v)
  if args.data_dir is not None and not os.path.isdir(args.data_dir):
    _errors.fail("--data-dir", "an existing directory", repr(args.data_dir))


def _records_csv(records) -> str:
  """CSV of a list of NamedTuple records (header: the record type's fields)."""
  records = list(records)
  return _csv(records, type(records[0])._fields if records else ())


def _write_figures(res, out) -> None:
  """geometry.png and rewinding.png, drawn by the gbounds.viz figure functions (no pyplot)."""
  import gbounds.viz as _viz
  grid, rewinding = _viz.plot_layer_geometry_grid, _viz.plot_rewinding
  fig, axes = _io.new_figure(figsize=(12, 9), nrows=3, ncols=3, sharex=True, sharey="row")
  grid(axes, res)
  fig.tight_layout()
  _io.atomic_write_figure(out / "geometry.png", fig, dpi=110)
  fig, ax = _io.new_figure(figsize=(6, 4))
  rewinding(ax, res)
  fig.tight_layout()
  _io.atomic_write_figure(out / "rewinding.png", fig, dpi=110)


def _permuted(args) -> int:
  import jax
  _rewind = _geo
  _check_permuted_flags(args)
  fields: dict[str, Any] = dict(_QUICK) if args.quick else {}
  for name in _FIELDS:
    v = getattr(args, name, None)
    if v is not None:
      fields[name] = tuple(v) if isinstance(v, list) else v
  try:
    config = _rewind.PermutedLabelConfig(**fields)
  except _errors.InvalidInputError as err:
    raise _as_flag_error(err, _PERMUTED_FLAGS, "--quick") from None
  bad = [e for e in (args.checkpoint_epochs or ()) if not 0 <= e <= config.epochs]
  if bad:
    _errors.fail("--checkpoint-epochs", f"epochs in [0, {config.epochs}]", bad)
  if config.batch_size > config.n_train:
    _errors.fail("--batch-size", f"at most --n-train = {config.n_train}", config.batch_size)
  out = _common.output_dir(args.out)
  bar = _progress.TqdmCallback("epochs", unit="epoch")
  try:
    # The command computes the geometry in float64, as it did when the library read the x64 flag.
    with jax.enable_x64(True):
      res = _rewind.permuted_label_experiment(config, data_dir=args.data_dir, callback=bar,
                                              dtype=np.float64)
  finally:
    bar.close()
  _common.atomic_write_json(out / "result.json", res.to_dict())
  _common.atomic_write_text(out / "geometry.csv", _records_csv(res.geometry))
  _common.atomic_write_text(out / "rewinding.csv", _records_csv(res.rewinding))
  _common.atomic_write_text(out / "history.csv", _records_csv(res.history))
  _write_figures(res, out)
  print(rewinding_table(res))
  return 0


def rewinding_table(res) -> str:
  """Plain-text tables: accuracies per epoch and after rewinding.

  Args:
    res: a :class:`gbounds.geometry.PermutedLabelResult`.

  Returns:
    The text.
  """
  lines = [f"{'epoch':>5} {'train clean':>11} {'perm. fit':>9} {'test':>6}"]
  for h in res.history:
    lines.append(f"{h.epoch:5d} {h.train_clean_accuracy:11.3f} {h.train_permuted_fit:9.3f} "
                 f"{h.test_accuracy:6.3f}")
  lines.append(f"rewind to epoch {res.config.rewind_epoch}:")
  lines.append(f"{'which':>6} {'L':>2} {'test':>6} {'perm. fit':>9} {'train clean':>11}  layers")
  for r in res.rewinding:
    lines.append(f"{r.direction:>6} {r.n_layers:2d} {r.test_accuracy:6.3f} "
                 f"{r.train_permuted_fit:9.3f} {r.train_clean_accuracy:11.3f}  "
                 f"{','.join(r.layers) or '-'}")
  return "\n".join(lines)

