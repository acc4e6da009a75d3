"""``gbounds main``: the README's end-to-end job (filled in as the engine lands)."""

from __future__ import annotations


def register(sub) -> None:
  p = sub.add_parser("main", help="run the default end-to-end analysis on MNIST 4-vs-9")
  p.add_argument("--out", default="runs/main", help="output directory")
  p.set_defaults(func=_run)


def _run(args) -> int:
  from gbounds.experiments import _main_job as _main_job
  return _main_job.run(out=args.out)
