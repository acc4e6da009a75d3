"""``gbounds fcmi``: run an f-CMI supersample experiment and report bounds against n.

The protocol comes from a JSON config file (the fields of :class:`gbounds.experiments.FcmiProtocol`), a
preset (``--scale``: small, cpu, paper_cnn (the paper's CNN and recipe), fashion, full), and flags that override either. Outputs in ``--out``:
``n<NNNNN>/`` chunk directories (a rerun resumes), ``table.json``, ``table.csv``, ``fcmi.png``.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import gbounds.experiments as _experiments
from gbounds._src import errors as _errors
from gbounds._src import progress as _progress
from gbounds.cli import _common

_PRESETS = tuple(_experiments.FCMI_PROTOCOLS)


# duplicates: every CLI module has this register(sub) entry point with the same docstring (the
# dispatcher's interface); the commands and flags differ, not shared logic
def register(sub) -> None:
  """Adds this module's subcommands to the ``gbounds`` parser.

  Args:
    sub: the ``add_subparsers`` action of the ``gbounds`` parser.

  Returns:
    None.
  """
  p = sub.add_parser("fcmi", help="f-CMI bounds from a supersample experiment (MNIST 4-vs-9)",
                     description=__doc__)
  p.add_argument("--config", help="JSON file with an object of FcmiProtocol fields (unknown "
                 "keys are refused)")
  p.add_argument("--scale", choices=_PRESETS, default="small",
                 help="preset the config and flags override (default: small)")
  p.add_argument("--ns", type=int, nargs="+", help="numbers of pairs n")
  p.add_argument("--k1", type=int, help="supersamples per n")
  p.add_argument("--k2", type=int, help="masks per supersample")
  p.add_argument("--epochs", type=int)
  p.add_argument("--architecture", choices=("mlp", "fcmi_cnn"))
  p.add_argument("--hidden", type=int, nargs="+", help="MLP hidden widths")
  p.add_argument("--learning-rate", type=float)
  p.add_argument("--batch-size", type=int)
  p.add_argument("--dataset", choices=("mnist", "fashion_mnist"))
  p.add_argument("--split", choices=("train", "test"))
  p.add_argument("--classes", type=int, nargs=2)
  p.add_argument("--test-size", type=int)
  p.add_argument("--training", choices=("sgd", "linearized"))
  p.add_argument("--strategy", choices=("auto", "vmap", "sequential"))
  p.add_argument("--chunk-size", type=int)
  p.add_argument("--seed", type=int)
  p.add_argument("--data-dir", help="data directory (default $GBOUNDS_DATA_DIR)")
  p.add_argument("--published", action="store_true",
                 help="print and plot the published MNIST 4-vs-9 numbers beside ours")
  p.add_argument("--out", default="runs/fcmi", help="output directory")
  p.set_defaults(func=_run)


_FLAG_FIELDS = ("ns", "k1", "k2", "epochs", "architecture", "hidden", "learning_rate",
                "batch_size", "dataset", "split", "classes", "test_size", "training", "strategy",
                "chunk_size", "seed")


def protocol_from_args(args):
  """The :class:`gbounds.experiments.FcmiProtocol` of a parsed command line (checked: a config file that
  is not a JSON object, unknown keys, values of the wrong type or range raise
  :class:`gbounds.InvalidInputError` naming the key or flag).

  Args:
    args: the parsed ``gbounds fcmi`` arguments.

  Returns:
    The :class:`gbounds.experiments.FcmiProtocol`.
  """
  fe = _experiments
  fields = {}
  if args.config:
    path = pathlib.Path(args.config)
    try:
      obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
      _errors.fail("--config", "a readable JSON file", f"{path} ({e})")
    if not isinstance(obj, dict):
      _errors.fail("--config", "a JSON object of FcmiProtocol fields",
                   f"a JSON {type(obj).__name__} in {path}")
    known = {f.name for f in dataclasses.fields(fe.FcmiProtocol)}
    unknown = sorted(set(obj) - known)
    if unknown:
      _errors.fail("--config", f"FcmiProtocol fields among {sorted(known)}",
                   f"unknown key(s) {unknown} in {path}")
    fields.update(obj)
  for name in _FLAG_FIELDS:
    v = getattr(args, name, None)
    if v is not None:
      fields[name] = v
  return fe.FCMI_PROTOCOLS[args.scale](**fields)


def _run(args) -> int:
  fe = _experiments
  protocol = protocol_from_args(args)
  # the data and every size are checked before anything is written or trained
  data = fe.binary_pool(protocol, args.data_dir)
  pool = len(data[1])
  for n in protocol.ns:
    if 2 * n > pool:
      _errors.fail("--ns", f"n <= {pool // 2} (half the pool of {pool} examples)", n)
  out = _common.output_dir(args.out)
  _common.atomic_write_json(out / "protocol.json", protocol.to_json())
  bar = _progress.TqdmCallback("trainings", unit="model")
  try:
    table = fe.run_fcmi_protocol(protocol, data_dir=args.data_dir, out_dir=out,
                                 progress=bar, data=data)
  finally:
    bar.close()
  published = fe.PUBLISHED_FCMI if args.published else None
  fe.write_fcmi_figure(table, out / "fcmi.png", published=published)
  if published:
    print(fe.FcmiReproduction(table, dict(published)).format())
  else:
    print(table.format())
  print(f"written: {out / 'table.json'}, {out / 'table.csv'}, {out / 'fcmi.png'}")
  return 0
