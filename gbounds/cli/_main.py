"""``gbounds main``: the README's end-to-end job (filled in as the engine lands)."""

from __future__ import annotations


def register(sub) -> None:
  """Adds this module's subcommands to the ``gbounds`` parser.

  Args:
    sub: the ``add_subparsers`` action of the ``gbounds`` parser.

  Returns:
    None.
  """
  p = sub.add_parser("main", help="run the default end-to-end analysis on MNIST 4-vs-9")
  p.add_argument("--out", default="runs/main", help="output directory")
  p.set_defaults(func=_run)


def _run(args) -> int:
  import jax

  import gbounds.experiments as _experiments
  # The application enables float64 for the linearized closed form only (the library never
  # reads or sets jax_enable_x64; it enters this context around that algebra).
  return _experiments.run_main_job(out=args.out, precision=lambda: jax.enable_x64(True))
