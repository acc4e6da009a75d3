"""``gbounds sample-info``: per-example (functional) sample information on MNIST 4-vs-9.

Experiments (``--experiment``):

* ``info`` (default): SI and F-SI of every training example of a linearized one-hidden-layer
  MLP, written as ``sample_info.json`` / ``sample_info.csv``, with an image grid of the most
  informative examples (``most_informative.png``);
* ``mislabeled``: inject label noise, rank by F-SI, report AUROC and precision at the noise rate
  (``mislabeled.json``, ``fsi_histogram.png``);
* ``summarisation``: remove the most / least informative / random fractions (and iteratively
  5% at a time), retrain, test error (``summarisation.json``, ``summarisation.png``);
* ``reproduce``: linearized vs retrained leave-one-out correlation (paper, Table 1) and
  mislabeled AUROC (``reproduction.json``).

``info`` computes the sample information in float64: this command (the application) enables
64-bit JAX types locally (``with jax.enable_x64(True)``) around that call only.
"""

from __future__ import annotations

import math

from gbounds._src import errors as _errors
from gbounds.cli import _common as _c
from gbounds.cli._common import int_or_inf


# duplicates: every CLI module has this register(sub) entry point with the same docstring (the
# dispatcher's interface); the commands and flags differ, not shared logic
def register(sub) -> None:
  """Adds this module's subcommands to the ``gbounds`` parser.

  Args:
    sub: the ``add_subparsers`` action of the ``gbounds`` parser.

  Returns:
    None.
  """
  p = sub.add_parser("sample-info", help="sample-wise (functional) information of training "
                     "examples, linearized network (Harutyunyan et al. 2021)")
  p.add_argument("--experiment", default="info",
                 choices=("info", "mislabeled", "summarisation", "reproduce"))
  p.add_argument("--n", type=int, default=500, help="training examples (MNIST 4-vs-9)")
  p.add_argument("--heldout", type=int, default=500, help="held-out examples for F-SI / test")
  p.add_argument("--width", type=int, default=256, help="hidden units of the MLP")
  p.add_argument("--steps", type=int_or_inf, default=1000,
                 help="full-batch GD steps, or 'inf' (the converged solution; 'info' and "
                 "'mislabeled' only)")
  p.add_argument("--lr-fraction", type=float, default=0.5,
                 help="step size as a fraction of 1 / lambda_max(NTK) (SUM loss); below 2 in "
                 "discrete time (gradient descent diverges beyond)")
  p.add_argument("--weight-decay", type=float, default=0.0, help="lambda (SUM loss, about w0)")
  p.add_argument("--time", default="discrete", choices=("discrete", "continuous"))
  p.add_argument("--noise-rate", type=float, default=0.1, help="label noise (mislabeled, info)")
  p.add_argument("--sigma", type=float, default=1.0, help="weight-noise std of SI")
  p.add_argument("--fsi-sigma", type=float, default=1.0, help="prediction-noise std of F-SI")
  p.add_argument("--retrained", type=int, default=100, help="leave-one-out networks (reproduce)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--data-dir", default=None, help="data directory (else $GBOUNDS_DATA_DIR)")
  p.add_argument("--out", default="runs/sample_info", help="output directory")
  p.set_defaults(func=_run)


# MNIST 4-vs-9 in the test split: 982 fours + 1,009 nines
_POOL = 1991


def check_args(args) -> None:
  """Every option in range, before any data is loaded or a model trained (errors name the
  flag).

  Args:
    args: the parsed ``gbounds sample-info`` arguments.

  Returns:
    None.
  """
  _c.check_int("--n", args.n, 2, _POOL - 1)
  _c.check_int("--heldout", args.heldout, 1, _POOL - 2)
  if args.n + args.heldout > _POOL:
    _errors.fail("--n + --heldout", f"at most the {_POOL} fours and nines of MNIST's test split",
                 args.n + args.heldout)
  _c.check_int("--width", args.width, 1)
  if args.steps != math.inf:
    _c.check_int("--steps", args.steps, 1)
  elif args.experiment not in ("info", "mislabeled"):
    _errors.fail("--steps", f"a finite number of steps for --experiment {args.experiment} (it "
                 "retrains networks)", "inf")
  if args.time == "discrete":
    _c.check_float("--lr-fraction", args.lr_fraction, low=0, high=2, low_open=True,
                   high_open=True)
  else:
    _c.check_float("--lr-fraction", args.lr_fraction, low=0, low_open=True)
  _c.check_float("--weight-decay", args.weight_decay, low=0)
  _c.check_float("--noise-rate", args.noise_rate, low=0, high=1)
  _c.check_float("--sigma", args.sigma, low=0, low_open=True)
  _c.check_float("--fsi-sigma", args.fsi_sigma, low=0, low_open=True)
  if args.experiment == "reproduce":
    _c.check_int("--retrained", args.retrained, 1, args.n)


def _write_figure(path, draw, *, figsize=(5, 3.2), nrows=1, ncols=1, suptitle=None) -> None:
  """A figure drawn by ``draw(axes)`` on a pyplot-free figure, written atomically (dpi 120)."""
  from gbounds._src import io as _io
  fig, axes = _io.new_figure(figsize=figsize, nrows=nrows, ncols=ncols)
  draw(axes)
  if suptitle:
    fig.suptitle(suptitle, fontsize=9)
  fig.tight_layout()
  _io.atomic_write_figure(path, fig, dpi=120)


def _image_grid(path, images, scores, *, labels, most: bool = True, count: int = 25) -> None:
  """The most (or least) informative images with their F-SI (formerly plot_image_grid)."""
  import gbounds.viz as _viz
  rows, cols = _viz.image_grid_shape(min(count, len(scores)))
  _write_figure(path, lambda axes: _viz.plot_image_grid(axes, images, scores, count=count,
                                                        labels=labels, most=most),
                figsize=(1.4 * cols, 1.6 * rows), nrows=rows, ncols=cols,
                suptitle=f"{'most' if most else 'least'} informative (F-SI)")


def _run(args) -> int:
  import numpy as np

  import gbounds.experiments as ex
  import gbounds.viz as _viz
  from gbounds.cli._common import atomic_write_json, output_dir

  check_args(args)
  out = output_dir(args.out)
  steps = args.steps
  if args.experiment == "info":
    import jax
    import jax.numpy as jnp

    import gbounds.data as _data
    import gbounds.info as _info
    import gbounds.ntk as _ntk
    x, y, xh, _ = ex.mnist_4_vs_9(args.n, args.heldout, seed=args.seed, data_dir=args.data_dir)
    noisy = _data.inject_label_noise(y, rate=args.noise_rate, num_classes=2, seed=args.seed)
    apply_fn, params = ex.mlp_at_init(args.width, args.seed, x)
    eta = ex.stable_learning_rate(apply_fn, params, x, args.lr_fraction, args.weight_decay)
    with jax.enable_x64(True):  # the application's choice: float64 for this call only
      info = _info.sample_information(
          apply_fn, _ntk.cast_tree(params, jnp.float64), np.asarray(x, np.float64),
          noisy.labels.astype(np.float64), learning_rate=eta, t=steps,
          weight_decay=args.weight_decay, time=args.time, x_heldout=np.asarray(xh, np.float64),
          sigma=args.sigma, fsi_sigma=args.fsi_sigma)
    assert info.fsi is not None  # x_heldout was given, so F-SI was computed
    info.save_json(out / "sample_info.json")
    info.save_csv(out / "sample_info.csv")
    _image_grid(out / "most_informative.png", x, info.fsi, labels=noisy.labels)
    _image_grid(out / "least_informative.png", x, info.fsi, labels=noisy.labels, most=False)
    summary = {"n": args.n, "learning_rate": eta, "mean_fsi": float(np.mean(info.fsi)),
               "mean_si": float(np.mean(info.si)),
               "auroc_flipped": (ex.auroc(info.fsi, noisy.flipped)
                                 if 0 < noisy.flipped.sum() < len(y) else None),
               "krylov_steps": info.settings.krylov_steps}
    atomic_write_json(out / "summary.json", summary)
    print(f"F-SI of {args.n} examples written to {out}/sample_info.csv "
          f"(mean F-SI {summary['mean_fsi']:.4g} nats)")
    return 0
  if args.experiment == "mislabeled":
    res = ex.mislabeled_detection(n_train=args.n, n_heldout=args.heldout,
                                  noise_rate=args.noise_rate, width=args.width, steps=steps,
                                  lr_fraction=args.lr_fraction, weight_decay=args.weight_decay,
                                  seed=args.seed, data_dir=args.data_dir)
    atomic_write_json(out / "mislabeled.json", {
        "auroc": res.auroc, "precision_at_noise_rate": res.precision_at_noise_rate,
        "settings": res.settings, "fsi": res.fsi, "flipped": res.flipped.astype(int)})
    _write_figure(out / "fsi_histogram.png",
                  lambda ax: _viz.plot_fsi_histogram(ax, res.fsi, res.flipped, auroc=res.auroc))
    print(f"mislabeled detection: AUROC {res.auroc:.4f}, precision at "
          f"{args.noise_rate:.0%} {res.precision_at_noise_rate:.4f}")
    return 0
  if args.experiment == "summarisation":
    res = ex.data_summarisation(n_train=args.n, n_heldout=args.heldout, width=args.width,
                                steps=steps, lr_fraction=args.lr_fraction, seed=args.seed,
                                data_dir=args.data_dir)
    atomic_write_json(out / "summarisation.json", {
        "fractions": res.fractions, "test_error": res.test_error, "settings": res.settings})
    _write_figure(out / "summarisation.png",
                  lambda ax: _viz.plot_summarisation(ax, res.fractions, res.test_error))
    for name, errs in res.test_error.items():
      print(f"{name:>16}: " + " ".join(f"{e:.3f}" for e in errs))
    return 0
  res = ex.reproduce_sample_info(n_train=args.n, n_heldout=args.heldout, width=args.width,
                                 steps=steps, lr_fraction=args.lr_fraction,
                                 num_retrained=args.retrained, mislabeled_n=args.n,
                                 seed=args.seed, data_dir=args.data_dir, log=print)
  res.save_json(out / "reproduction.json")
  return 0
