"""``gbounds weight-info``, ``gbounds limit``, ``gbounds supervision-complexity``.

Each command reads its flags, calls the public API, shows progress, and writes JSON and CSV (and
a PNG figure) to ``--out`` atomically.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math

import gbounds.experiments as _experiments
import gbounds.viz as _viz
from gbounds._src import errors as _errors
from gbounds._src import io as _io
from gbounds._src import progress as _progress
from gbounds.cli import _common


# duplicates: float_list and int_list are two one-line argparse types (argparse names each in
# its message), same shape, not shared logic
def float_list(s: str) -> list[float]:
  """argparse ``type``: comma-separated numbers.

  Args:
    s: the command-line word.

  Returns:
    The numbers.
  """
  return [float(v) for v in s.split(",") if v.strip()]


def int_list(s: str) -> list[int]:
  """argparse ``type``: comma-separated integers.

  Args:
    s: the command-line word.

  Returns:
    The integers.
  """
  return [int(v) for v in s.split(",") if v.strip()]


_floats, _ints = float_list, int_list  # argparse names the type in its message ("invalid
# float_list value")

_MNIST_TEST_SIZE = 10_000
_EXACT_MAX_PARAMS = 20_000  # the exact form holds a d x d Fisher: 20,000^2 float64 = 3.2 GB


def _check_int(flag: str, value, minimum: int = 1, maximum: int | None = None) -> None:
  if value < minimum or (maximum is not None and value > maximum):
    rng = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    _errors.fail(flag, f"an integer {rng}", value)


def _check_float(flag: str, value, *, strict: bool = True) -> None:
  if not math.isfinite(value) or value < 0 or (strict and value == 0):
    _errors.fail(flag, "a positive finite number" if strict else "a non-negative finite number",
                 value)


def _check_list(flag: str, values, check) -> None:
  if not values:
    _errors.fail(flag, "a non-empty comma-separated list", "an empty list")
  for v in values:
    check(flag, v)


def _check_rate(flag: str, value) -> None:
  if not (math.isfinite(value) and 0 <= value < 1):
    _errors.fail(flag, "label-noise rates in [0, 1)", value)


def _check_widths(flag: str, widths, *, allow_empty: bool = True) -> None:
  if not widths and not allow_empty:
    _errors.fail(flag, "at least one hidden width", "an empty list")
  for w in widths:
    _check_int(flag, w)


def _choices(flag: str, text: str, valid: tuple[str, ...]) -> list[str]:
  items = [t.strip().lower().replace("-", "_") for t in text.split(",") if t.strip()]
  if not items:
    _errors.fail(flag, f"a comma-separated subset of {{{', '.join(valid)}}}", "an empty list")
  bad = [t for t in items if t not in valid]
  if bad:
    _errors.fail(flag, f"a comma-separated subset of {{{', '.join(valid)}}}", f"{bad}")
  if len(set(items)) != len(items):
    _errors.fail(flag, "each entry once", text)
  return items


def _mlp_params(widths, d_in=784, d_out=10) -> int:
  total, prev = 0, d_in
  for w in (*widths, d_out):
    total += prev * w + w
    prev = w
  return total


# duplicates: every CLI module has this register(sub) entry point with the same docstring (the
# dispatcher's interface); the commands and flags differ, not shared logic
def register(sub) -> None:
  """Adds this module's subcommands to the ``gbounds`` parser.

  Args:
    sub: the ``add_subparsers`` action of the ``gbounds`` parser.

  Returns:
    None.
  """
  p = sub.add_parser("weight-info", help="information in the weights of an MLP trained on MNIST "
                     "(Achille et al. 2019): diagonal / K-FAC / exact Fisher forms")
  p.add_argument("--data-dir", default=None)
  p.add_argument("--n", type=int, default=1000, help="training examples (MNIST test split)")
  p.add_argument("--hidden", type=_ints, default=[64], help="comma-separated hidden widths")
  p.add_argument("--epochs", type=int, default=20)
  p.add_argument("--noise-rates", type=_floats, default=[0.0, 0.5],
                 help="comma-separated label-noise rates (one model each)")
  p.add_argument("--betas", type=_floats, default=[0.1, 1.0, 10.0])
  p.add_argument("--prior-scale", type=float, default=1.0, help="prior std lambda")
  p.add_argument("--forms", default="diagonal,kfac", help="comma-separated: exact,diagonal,kfac")
  p.add_argument("--fisher", default="true", choices=["true", "sampled", "empirical"])
  p.add_argument("--scaling", default="sum", choices=["sum", "mean"])
  p.add_argument("--chunk-size", type=int, default=100)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="runs/weight_info")
  p.set_defaults(func=_weight_info)

  p = sub.add_parser("limit", help="LIMIT vs cross-entropy under label noise "
                     "(Harutyunyan et al. 2020)")
  p.add_argument("--data-dir", default=None)
  p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist"])
  p.add_argument("--noise-rates", type=_floats, default=[0.0, 0.2, 0.4, 0.6])
  p.add_argument("--methods", default="cross_entropy,limit_g",
                 help="comma-separated: cross_entropy,limit_g,limit_l")
  p.add_argument("--n-train", type=int, default=5000)
  p.add_argument("--n-test", type=int, default=5000)
  p.add_argument("--hidden", type=_ints, default=[256, 256])
  p.add_argument("--epochs", type=int, default=30)
  p.add_argument("--batch-size", type=int, default=128)
  p.add_argument("--learning-rate", type=float, default=1e-3)
  p.add_argument("--beta", type=float, default=1.0)
  p.add_argument("--noise-scale", type=float, default=0.1,
                 help="noise std (gaussian) or Laplace scale; the authors' lamb with "
                 "--noise-parameterisation authors_lambda")
  p.add_argument("--classifier-step", default="mean", choices=["mean", "sum"],
                 help="mean: step / batch size (default); sum: the authors' code (no 1/b)")
  p.add_argument("--noise-parameterisation", default="scale", choices=["scale", "authors_lambda"],
                 help="what --noise-scale means (see gbounds.train.NoiseParameterisation)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="runs/limit")
  p.set_defaults(func=_limit)

  p = sub.add_parser("supervision-complexity", help="one-hot vs teacher soft labels under the "
                     "student NTK (Harutyunyan et al. 2023)")
  p.add_argument("--data-dir", default=None)
  p.add_argument("--n-student", type=int, default=500)
  p.add_argument("--n-teacher", type=int, default=4000)
  p.add_argument("--teacher-hidden", type=_ints, default=[512, 512])
  p.add_argument("--student-hidden", type=_ints, default=[128])
  p.add_argument("--teacher-epochs", type=int, default=20)
  p.add_argument("--temperatures", type=_floats, default=[1.0, 4.0])
  p.add_argument("--ridge-fraction", type=float, default=1e-3)
  p.add_argument("--margin", type=float, default=0.5)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="runs/supervision_complexity")
  p.set_defaults(func=_supervision)


def _write_csv(path, rows: list[dict]) -> None:
  buf = io.StringIO()
  w = csv.DictWriter(buf, fieldnames=list(rows[0]))
  w.writeheader()
  w.writerows(rows)
  _common.atomic_write_text(path, buf.getvalue())


def _write_figure(path, draw, *, figsize, ncols: int = 1) -> None:
  """A figure drawn by ``draw(axes)`` on a pyplot-free figure, written atomically (PNG)."""
  try:
    import matplotlib  # noqa: F401 -- optional: no figure without it
  except ImportError:  # pragma: no cover
    return
  fig, axes = _io.new_figure(figsize=figsize, ncols=ncols)
  draw(axes)
  _io.atomic_write_figure(path, fig, dpi=120, bbox_inches="tight")


def _check_weight_info_args(args) -> list[str]:
  """All ``weight-info`` option checks, before any data is loaded or a model trained."""
  _check_int("--n", args.n, 2, _MNIST_TEST_SIZE)
  _check_widths("--hidden", args.hidden)
  _check_int("--epochs", args.epochs, 0)
  _check_list("--noise-rates", args.noise_rates, _check_rate)
  _check_list("--betas", args.betas, _check_float)
  _check_float("--prior-scale", args.prior_scale)
  _check_int("--chunk-size", args.chunk_size)
  forms = _choices("--forms", args.forms, ("exact", "diagonal", "kfac"))
  d = _mlp_params(args.hidden)
  if "exact" in forms and d > _EXACT_MAX_PARAMS:
    _errors.fail("--forms", f"no 'exact' for models above {_EXACT_MAX_PARAMS:,} parameters "
                 "(its d x d Fisher; use diagonal or kfac, or smaller --hidden)",
                 f"exact with {d:,} parameters")
  return forms


def _weight_info(args) -> int:
  import jax
  import jax.numpy as jnp
  import numpy as np

  import gbounds.data
  import gbounds.info
  import gbounds.models
  import gbounds.train

  forms = _check_weight_info_args(args)
  out = _common.output_dir(args.out)
  x, y = gbounds.data.load_mnist("test", data_dir=args.data_dir)
  x, y = gbounds.data.subsample(x, y, args.n, seed=args.seed)
  x = jnp.asarray(np.asarray(x, np.float32).reshape(len(y), -1))
  model = gbounds.models.MLP(hidden=tuple(args.hidden), out=10)
  mf = gbounds.models.as_model_fn(model, example_input=x[:2], key=args.seed)
  cfg = gbounds.train.TrainConfig(optimizer=gbounds.train.Optimizer.ADAM, learning_rate=1e-3,
                                  batch_size=100, seed=args.seed,
                                  steps=gbounds.train.steps_for_epochs(args.epochs, len(y), 100))
  rows = []
  jobs = [(r, f, b) for r in args.noise_rates for f in forms for b in args.betas]
  bar = _progress.TqdmCallback("weight-info")
  trained = {}
  for rate, form, beta in jobs:
    if rate not in trained:
      noisy = gbounds.data.inject_label_noise(y, rate=rate, num_classes=10, seed=args.seed)
      params = gbounds.train.train(mf.apply_fn, mf.params, x, noisy.labels, cfg).params
      trained[rate] = (params, noisy.labels,
                       float(gbounds.train.accuracy(mf.apply_fn(params, x), noisy.labels)))
    params, labels, acc = trained[rate]
    r = gbounds.info.information_in_weights(
        mf.apply_fn, params, x, labels, beta=beta, prior_scale=args.prior_scale, form=form,
        fisher=args.fisher, scaling=args.scaling, chunk_size=args.chunk_size,
        key=jax.random.key(args.seed))
    row = dict(noise_rate=rate, form=form, beta=beta, prior_scale=args.prior_scale,
               fisher=args.fisher, scaling=args.scaling, train_accuracy_noisy=acc,
               information_nats=float(r.total), log_det=float(r.log_det),
               trace_term=float(r.trace_term), norm_term=float(r.norm_term),
               fisher_trace=float(r.fisher_trace), num_params=r.num_params)
    row.update({f"layer_{k}": float(v) for k, v in r.per_layer.items()})
    rows.append(row)
    bar(len(rows), len(jobs))
  bar.close()
  _common.atomic_write_json(out / "weight_info.json",
                            dict(settings=vars_json(args), rows=rows))
  _write_csv(out / "weight_info.csv", rows)
  _write_figure(out / "weight_info.png",
                lambda ax: _viz.plot_weight_information(ax, rows, noise_rates=args.noise_rates,
                                                        forms=forms), figsize=(5, 3.5))
  for r in rows:
    print(f"noise {r['noise_rate']:.0%} {r['form']:>8} beta={r['beta']:<6g} "
          f"I={r['information_nats']:.4g} nats  tr F={r['fisher_trace']:.4g}")
  return 0


def vars_json(args) -> dict:
  """The parsed arguments as a JSON-ready dict (the handler left out).

  Args:
    args: parsed arguments.

  Returns:
    ``{name: value}``.
  """
  return {k: v for k, v in vars(args).items() if k != "func"}


def _check_limit_args(args) -> list[str]:
  """All ``limit`` option checks, before any data is loaded or a model trained."""
  _check_list("--noise-rates", args.noise_rates, _check_rate)
  methods = _choices("--methods", args.methods, ("cross_entropy", "limit_g", "limit_l"))
  _check_int("--n-train", args.n_train)
  _check_int("--n-test", args.n_test)
  if args.dataset == "mnist" and args.n_train + args.n_test > _MNIST_TEST_SIZE:
    _errors.fail("--n-train + --n-test", f"at most {_MNIST_TEST_SIZE:,} for mnist (its test split "
                 "is split in two)", args.n_train + args.n_test)
  _check_widths("--hidden", args.hidden)
  _check_int("--epochs", args.epochs)
  _check_int("--batch-size", args.batch_size)
  _check_float("--learning-rate", args.learning_rate)
  _check_float("--beta", args.beta)
  strict = args.noise_parameterisation == "authors_lambda"
  _check_float("--noise-scale", args.noise_scale, strict=strict)
  return methods


def _limit(args) -> int:
  exp = _experiments

  methods = _check_limit_args(args)
  out = _common.output_dir(args.out)
  bar = _progress.TqdmCallback("limit")
  res = exp.reproduce_limit(
      data_dir=args.data_dir, dataset=args.dataset, noise_rates=args.noise_rates, methods=methods,
      n_train=args.n_train, n_test=args.n_test, hidden=args.hidden, epochs=args.epochs,
      batch_size=args.batch_size, learning_rate=args.learning_rate, beta=args.beta,
      noise_scale=args.noise_scale, seed=args.seed, classifier_step=args.classifier_step,
      noise_parameterisation=args.noise_parameterisation,
      callback=bar)
  bar.close()
  rows = [dataclasses.asdict(r) for r in res.rows]
  _common.atomic_write_json(out / "limit.json", dict(settings=res.settings, rows=rows))
  _write_csv(out / "limit.csv", rows)
  _common.atomic_write_text(out / "limit.md", res.markdown() + "\n")
  _write_figure(out / "limit.png", lambda axes: _viz.plot_limit(axes, rows, methods=methods),
                figsize=(9, 3.5), ncols=2)
  print(res.markdown())
  return 0


def _check_supervision_args(args) -> None:
  """All ``supervision-complexity`` option checks, before any data is loaded or a model trained."""
  _check_int("--n-student", args.n_student, 2)
  _check_int("--n-teacher", args.n_teacher)
  if args.n_student + args.n_teacher > _MNIST_TEST_SIZE:
    _errors.fail("--n-student + --n-teacher", f"at most {_MNIST_TEST_SIZE:,} (disjoint parts of "
                 "the MNIST test split)", args.n_student + args.n_teacher)
  _check_widths("--teacher-hidden", args.teacher_hidden)
  _check_widths("--student-hidden", args.student_hidden)
  _check_int("--teacher-epochs", args.teacher_epochs)
  _check_list("--temperatures", args.temperatures, _check_float)
  _check_float("--ridge-fraction", args.ridge_fraction, strict=False)
  _check_float("--margin", args.margin)


def _supervision(args) -> int:
  exp = _experiments

  _check_supervision_args(args)
  out = _common.output_dir(args.out)
  res = exp.reproduce_supervision_complexity(
      data_dir=args.data_dir, n_student=args.n_student, n_teacher=args.n_teacher,
      teacher_hidden=args.teacher_hidden, student_hidden=args.student_hidden,
      teacher_epochs=args.teacher_epochs, temperatures=args.temperatures,
      ridge_fraction=args.ridge_fraction, margin=args.margin, seed=args.seed)
  rows = [dataclasses.asdict(r) for r in res.rows]
  _common.atomic_write_json(out / "supervision_complexity.json",
                            dict(settings=res.settings, rows=rows))
  _write_csv(out / "supervision_complexity.csv", rows)
  _common.atomic_write_text(out / "supervision_complexity.md", res.markdown() + "\n")
  print(res.markdown())
  return 0
