"""Reproductions for the weight-information family (reduced CPU sizes; sizes are arguments).

* :func:`reproduce_limit` -- Harutyunyan et al. (ICML 2020), MNIST with uniform label noise:
  test accuracy of plain cross-entropy against LIMIT, and the training accuracy on the noisy labels
  (memorization) beside it. Default sizes: the MNIST *test* split (the only MNIST split shipped
  here) split 5,000 / 5,000 into train / test, an MLP 784-256-256-10 for the classifier and the
  same architecture for the auxiliary network, Adam 1e-3, batch 128, 30 epochs. The paper uses
  the full 60k training split, a CNN and longer training; the comparison, not the absolute
  numbers, is what is reproduced. Noise: :func:`gbounds.data.inject_label_noise` flips exactly the
  given fraction of labels, each to a different class chosen uniformly.
* :func:`reproduce_supervision_complexity` -- Harutyunyan et al. (ICLR 2023): the supervision
  complexity of one-hot labels against a teacher's soft labels under a student's empirical NTK.
  Teacher: MLP 784-512-512-10 trained on 4,000 examples disjoint from the student's; student: an
  MLP 784-128-10 at initialisation; its trace-NTK Gram matrix on 500 examples (+ a small ridge,
  1e-3 of the mean diagonal, for float32 safety).
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

import gbounds.bounds as _bounds
import gbounds.data as _data
import gbounds.models as _models
import gbounds.ntk as _ntk
import gbounds.train as _train
from gbounds._src import errors as _errors
from gbounds._src import progress as _progress
from gbounds._src import results as _results


class LimitMethod(enum.IntEnum):
  """Training methods compared in :func:`reproduce_limit`."""
  CROSS_ENTROPY = 1
  LIMIT_G = 2
  LIMIT_L = 3


@dataclasses.dataclass(frozen=True)
class LimitRow(_results.ResultMixin):
  """One (noise rate, method) cell; accuracies are fractions in [0, 1].

  Attributes:
    noise_rate: fraction of flipped training labels.
    method: the :class:`LimitMethod` name in lower case.
    test_accuracy: on clean held-out labels.
    train_accuracy_noisy: on the (noisy) training labels -- memorization.
    train_accuracy_clean: on the clean labels of the training inputs.
    memorized_fraction: fraction of flipped training examples predicted as their noisy label.
    seconds: wall-clock training time.
  """
  noise_rate: float
  method: str
  test_accuracy: float
  train_accuracy_noisy: float
  train_accuracy_clean: float
  memorized_fraction: float
  seconds: float


_LIMIT_COLUMNS = ("noise_rate", "method", "test_accuracy", "train_accuracy_noisy",
                  "train_accuracy_clean", "memorized_fraction", "seconds")


@dataclasses.dataclass(frozen=True)
class LimitReproduction(_results.ResultMixin):
  """Result of :func:`reproduce_limit`.

  Attributes:
    rows: one :class:`LimitRow` per (noise rate, method).
    settings: the run's sizes and recipe.
  """
  rows: tuple[LimitRow, ...]
  settings: dict

  def table(self) -> _results.Table:
    """The rows as a table.

    Returns:
      :class:`gbounds.Table` with the :class:`LimitRow` fields as columns.
    """
    return _results.Table(_LIMIT_COLUMNS,
                          tuple(tuple(getattr(r, c) for c in _LIMIT_COLUMNS) for r in self.rows),
                          "Cross-entropy vs LIMIT under label noise (Harutyunyan et al., ICML 2020)")

  def markdown(self) -> str:
    """Markdown table of the rows (percentages and 3 decimals).

    Returns:
      The table as Markdown text.
    """
    out = ["| noise | method | test acc | train acc (noisy labels) | train acc (clean) "
           "| flipped memorized | s |", "|---|---|---|---|---|---|---|"]
    for r in self.rows:
      out.append(f"| {r.noise_rate:.0%} | {r.method} | {r.test_accuracy:.3f} | "
                 f"{r.train_accuracy_noisy:.3f} | {r.train_accuracy_clean:.3f} | "
                 f"{r.memorized_fraction:.3f} | {r.seconds:.0f} |")
    return "\n".join(out)


def _flat(x):
  """Inputs flattened to ``(n, features)`` float32."""
  return np.asarray(x, np.float32).reshape(len(x), -1)


def reproduce_limit(*, data_dir=None, dataset: str = "mnist",
                    noise_rates: Sequence[float] = (0.0, 0.2, 0.4, 0.6),
                    methods: Sequence[LimitMethod | str] = (LimitMethod.CROSS_ENTROPY,
                                                            LimitMethod.LIMIT_G),
                    n_train: int = 5000, n_test: int = 5000, hidden: Sequence[int] = (256, 256),
                    epochs: int = 30, batch_size: int = 128, learning_rate: float = 1e-3,
                    beta: float = 1.0, noise_scale: float = 0.1, seed: int = 0,
                    callback: _progress.ProgressCallback | None = None,
                    classifier_step: _train.ClassifierStep | str = _train.ClassifierStep.MEAN,
                    noise_parameterisation: _train.NoiseParameterisation | str = (
                        _train.NoiseParameterisation.SCALE)) -> LimitReproduction:
  """LIMIT against cross-entropy under uniform label noise (see the module docstring).

  Args:
    data_dir: data directory (default ``$GBOUNDS_DATA_DIR``).
    dataset: ``"mnist"`` (test split, split in two) or ``"fashion_mnist"`` (train / test splits).
    noise_rates: fractions of flipped training labels.
    methods: :class:`LimitMethod` members (or names).
    n_train, n_test: sizes.
    hidden: hidden widths of the classifier (and of the auxiliary network).
    epochs, batch_size, learning_rate: Adam training for both methods (and the auxiliary net).
    beta: LIMIT's predicted-gradient norm penalty.
    noise_scale: Gaussian std (LIMIT_G) or Laplace scale (LIMIT_L) of the gradient noise.
    seed: seed of the split, the label noise, the initialisations and the batch order.
    callback: ``callback(done, total)`` in finished (noise rate, method) runs.
    classifier_step: :class:`gbounds.train.ClassifierStep` of the LIMIT runs (default MEAN, the
      classifier step divided by the batch size; SUM is the authors' code).
    noise_parameterisation: :class:`gbounds.train.NoiseParameterisation` (default SCALE:
      ``noise_scale`` is the std / Laplace scale; AUTHORS_LAMBDA: it is the authors' ``lamb``).

  Returns:
    :class:`LimitReproduction`.
  """
  methods = [_errors.as_enum("methods", m, LimitMethod) for m in methods]
  if not methods:
    _errors.fail("methods", "at least one method", "an empty sequence")
  if not len(noise_rates):
    _errors.fail("noise_rates", "at least one rate", "an empty sequence")
  for r in noise_rates:
    _errors.check_in_unit_interval("noise_rates", r)
  for name, v in (("n_train", n_train), ("n_test", n_test), ("epochs", epochs),
                  ("batch_size", batch_size)):
    _errors.check_nonnegative_int(name, v, minimum=1)
  for w in hidden:
    _errors.check_nonnegative_int("hidden", w, minimum=1)
  _errors.check_positive("learning_rate", learning_rate)
  _errors.check_positive("beta", beta)
  _errors.check_positive("noise_scale", noise_scale, strict=False)
  classifier_step = _errors.as_enum("classifier_step", classifier_step, _train.ClassifierStep)
  noise_parameterisation = _errors.as_enum("noise_parameterisation", noise_parameterisation,
                                           _train.NoiseParameterisation)
  if not isinstance(dataset, str):
    _errors.fail("dataset", "'mnist' or 'fashion_mnist'", repr(dataset))
  key = dataset.strip().lower().replace("-", "_")
  if key == "mnist":
    x, y = _data.load_mnist("test", data_dir=data_dir)
    if n_train + n_test > len(y):
      _errors.fail("n_train + n_test", f"at most {len(y)}", n_train + n_test)
    xtr, ytr, xte, yte = _data.train_test_split(x, y, test_fraction=n_test / len(y), seed=seed)
    xtr, ytr = xtr[:n_train], ytr[:n_train]
  elif key == "fashion_mnist":
    xtr, ytr = _data.subsample(*_data.load_fashion_mnist("train", data_dir=data_dir), n_train,
                               seed=seed)
    xte, yte = _data.subsample(*_data.load_fashion_mnist("test", data_dir=data_dir), n_test,
                               seed=seed)
  else:
    _errors.fail("dataset", "'mnist' or 'fashion_mnist'", repr(dataset))
  xtr, xte = jnp.asarray(_flat(xtr)), jnp.asarray(_flat(xte))
  model = _models.MLP(hidden=tuple(hidden), out=10)
  clf = _models.as_model_fn(model, example_input=xtr[:2], key=seed)
  aux = _models.as_model_fn(model, example_input=xtr[:2], key=seed + 1000)
  steps = _train.steps_for_epochs(epochs, len(ytr), batch_size)
  acc = jax.jit(lambda p, xx, yy: jnp.mean(jnp.argmax(clf.apply_fn(p, xx), -1).astype(yy.dtype) == yy))
  rows = []
  for rate in noise_rates:
    noisy = _data.inject_label_noise(ytr, rate=float(rate), num_classes=10, seed=seed)
    for method in methods:
      t0 = time.perf_counter()
      if method == LimitMethod.CROSS_ENTROPY:
        cfg = _train.TrainConfig(loss=_train.Loss.CROSS_ENTROPY, optimizer=_train.Optimizer.ADAM,
                                 learning_rate=learning_rate, steps=steps, batch_size=batch_size,
                                 seed=seed)
        params = _train.train(clf.apply_fn, clf.params, xtr, noisy.labels, cfg).params
      else:
        lim = _train.LimitConfig(
            optimizer=_train.Optimizer.ADAM, learning_rate=learning_rate, steps=steps,
            batch_size=batch_size, seed=seed, aux_learning_rate=learning_rate, beta=beta,
            noise=(_train.LimitNoise.GAUSSIAN if method == LimitMethod.LIMIT_G
                   else _train.LimitNoise.LAPLACE),
            aux_loss=_train.AuxLoss.L2 if method == LimitMethod.LIMIT_G else _train.AuxLoss.L1,
            noise_scale=noise_scale, classifier_step=classifier_step,
            noise_parameterisation=noise_parameterisation)
        params = _train.train_limit(clf.apply_fn, clf.params, aux.apply_fn, aux.params, xtr,
                                    noisy.labels, lim).params
      jax.block_until_ready(params)
      secs = time.perf_counter() - t0
      pred = np.asarray(jnp.argmax(clf.apply_fn(params, xtr), -1))
      flipped = noisy.flipped
      row = LimitRow(
          noise_rate=float(rate), method=method.name.lower(),
          test_accuracy=float(acc(params, xte, jnp.asarray(yte))),
          train_accuracy_noisy=float(np.mean(pred == noisy.labels)),
          train_accuracy_clean=float(np.mean(pred == noisy.clean)),
          memorized_fraction=float(np.mean(pred[flipped] == noisy.labels[flipped]))
          if flipped.any() else float("nan"),
          seconds=secs)
      rows.append(row)
      _progress.notify(callback, len(rows), len(noise_rates) * len(methods))
  settings = dict(dataset=key, n_train=int(n_train), n_test=int(n_test), hidden=list(hidden),
                  epochs=int(epochs), steps=int(steps), batch_size=int(batch_size),
                  learning_rate=learning_rate, beta=beta, noise_scale=noise_scale, seed=seed,
                  optimizer="adam", classifier_step=classifier_step.name.lower(),
                  noise_parameterisation=noise_parameterisation.name.lower())
  return LimitReproduction(rows=tuple(rows), settings=settings)


# ----------------------------------------------------------------------------- supervision complexity


@dataclasses.dataclass(frozen=True)
class SupervisionRow(_results.ResultMixin):
  """Complexity of one kind of targets under the student's NTK.

  Attributes:
    targets: name (``one_hot``, ``teacher_T=1``, ...).
    complexity: :math:`\\sqrt{\\mathrm{tr}(Y^\\top (K + rI)^{-1} Y)}`.
    adjusted: ``complexity * sqrt(tr K) / n``.
    normalized: ``complexity / ||Y||_F`` (scale-free: how well the targets align with the
      kernel's top eigenvectors).
    target_accuracy: accuracy of ``argmax`` of the targets against the true labels.
    bound: the 10-class margin bound (margin ``margin``, delta 0.05) of the kernel predictor fit to
      the targets, against the true labels.
  """
  targets: str
  complexity: float
  adjusted: float
  normalized: float
  target_accuracy: float
  bound: float


_SUPERVISION_COLUMNS = ("targets", "complexity", "adjusted", "normalized", "target_accuracy",
                        "bound")


@dataclasses.dataclass(frozen=True)
class SupervisionReproduction(_results.ResultMixin):
  """Result of :func:`reproduce_supervision_complexity`.

  Attributes:
    rows: one :class:`SupervisionRow` per kind of targets.
    settings: the run's sizes, ridge and teacher accuracy.
  """
  rows: tuple[SupervisionRow, ...]
  settings: dict

  def table(self) -> _results.Table:
    """The rows as a table.

    Returns:
      :class:`gbounds.Table` with the :class:`SupervisionRow` fields as columns.
    """
    return _results.Table(
        _SUPERVISION_COLUMNS,
        tuple(tuple(getattr(r, c) for c in _SUPERVISION_COLUMNS) for r in self.rows),
        "Supervision complexity under the student's NTK (Harutyunyan et al., ICLR 2023)")

  def markdown(self) -> str:
    """Markdown table of the rows.

    Returns:
      The table as Markdown text.
    """
    out = ["| targets | complexity | adjusted | complexity / ||Y||_F | target acc | margin bound |",
           "|---|---|---|---|---|---|"]
    for r in self.rows:
      out.append(f"| {r.targets} | {r.complexity:.2f} | {r.adjusted:.3f} | {r.normalized:.4f} | "
                 f"{r.target_accuracy:.3f} | {r.bound:.2f} |")
    return "\n".join(out)


def reproduce_supervision_complexity(*, data_dir=None, n_student: int = 500,
                                     n_teacher: int = 4000,
                                     teacher_hidden: Sequence[int] = (512, 512),
                                     student_hidden: Sequence[int] = (128,),
                                     teacher_epochs: int = 20,
                                     temperatures: Sequence[float] = (1.0, 4.0),
                                     ridge_fraction: float = 1e-3, margin: float = 0.5,
                                     chunk_size: int = 50, seed: int = 0
                                     ) -> SupervisionReproduction:
  """One-hot labels against a teacher's soft labels: supervision complexity under the student NTK.

  Harutyunyan et al. (2023) argue that the teacher's predictions are easier for the student to
  fit (lower supervision complexity) than the one-hot labels. Rows: one-hot labels, the teacher's
  softmax at each temperature, and (as a reference point) one-hot labels with 50% of them
  replaced by uniformly random other classes.

  Args:
    data_dir: data directory (MNIST test split).
    n_student: examples on which the student's NTK Gram matrix is computed.
    n_teacher: disjoint examples the teacher is trained on (cross-entropy, Adam 1e-3, batch 128).
    teacher_hidden, student_hidden: MLP widths.
    teacher_epochs: teacher training epochs.
    temperatures: softmax temperatures of the teacher's soft labels.
    ridge_fraction: ridge as a fraction of the kernel's mean diagonal.
    margin: margin of the reported bound.
    chunk_size: NTK chunk size.
    seed: seed.

  Returns:
    :class:`SupervisionReproduction`.
  """
  for name, v in (("n_student", n_student), ("n_teacher", n_teacher),
                  ("teacher_epochs", teacher_epochs), ("chunk_size", chunk_size)):
    _errors.check_nonnegative_int(name, v, minimum=1)
  for name, widths in (("teacher_hidden", teacher_hidden), ("student_hidden", student_hidden)):
    for w in widths:
      _errors.check_nonnegative_int(name, w, minimum=1)
  if not len(temperatures):
    _errors.fail("temperatures", "at least one temperature", "an empty sequence")
  for t in temperatures:
    _errors.check_positive("temperatures", t)
  _errors.check_positive("ridge_fraction", ridge_fraction, strict=False)
  _errors.check_positive("margin", margin)
  x, y = _data.load_mnist("test", data_dir=data_dir)
  if n_student + n_teacher > len(y):
    _errors.fail("n_student + n_teacher", f"at most {len(y)}", n_student + n_teacher)
  perm = np.random.default_rng(seed).permutation(len(y))
  s_idx, t_idx = perm[:n_student], perm[n_student:n_student + n_teacher]
  xs, ys = jnp.asarray(_flat(x[s_idx])), y[s_idx]
  xt, yt = jnp.asarray(_flat(x[t_idx])), y[t_idx]
  teacher = _models.as_model_fn(_models.MLP(hidden=tuple(teacher_hidden), out=10),
                                example_input=xt[:2], key=seed)
  cfg = _train.TrainConfig(loss=_train.Loss.CROSS_ENTROPY, optimizer=_train.Optimizer.ADAM,
                           learning_rate=1e-3, batch_size=128, seed=seed,
                           steps=_train.steps_for_epochs(teacher_epochs, n_teacher, 128))
  tparams = _train.train(teacher.apply_fn, teacher.params, xt, yt, cfg).params
  tlogits = teacher.apply_fn(tparams, xs)
  student = _models.as_model_fn(_models.MLP(hidden=tuple(student_hidden), out=10),
                                example_input=xs[:2], key=seed + 1)
  ntk = _ntk.empirical_ntk_fn(student.apply_fn, output=_ntk.NtkOutput.TRACE, chunk_size=chunk_size)
  kernel = ntk(xs, None, student.params)
  ridge = float(ridge_fraction * jnp.mean(jnp.diag(kernel)))
  targets = {"one_hot": _data.one_hot(ys, 10)}
  for t in temperatures:
    targets[f"teacher_T={t:g}"] = np.asarray(jax.nn.softmax(tlogits / t, axis=-1))
  noisy = _data.inject_label_noise(ys, rate=0.5, num_classes=10, seed=seed)
  targets["one_hot_50%_noise"] = _data.one_hot(noisy.labels, 10)
  rows = []
  for name, tg in targets.items():
    tg = jnp.asarray(tg, kernel.dtype)
    c = _bounds.supervision_complexity(kernel, tg, ridge=ridge)
    b = _bounds.kernel_margin_bound(kernel, tg, ys, margin=margin, ridge=ridge)
    rows.append(SupervisionRow(
        targets=name, complexity=float(c.complexity), adjusted=float(c.adjusted),
        normalized=float(c.complexity / jnp.linalg.norm(tg)),
        target_accuracy=float(np.mean(np.argmax(np.asarray(tg), -1) == ys)),
        bound=float(b.bound)))
  teacher_test = float(np.mean(np.argmax(np.asarray(tlogits), -1) == ys))
  settings = dict(n_student=int(n_student), n_teacher=int(n_teacher),
                  teacher_hidden=list(teacher_hidden), student_hidden=list(student_hidden),
                  teacher_epochs=int(teacher_epochs), ridge=ridge, margin=margin, seed=seed,
                  kernel="student empirical NTK at initialisation, trace over the 10 outputs",
                  teacher_accuracy_on_student_set=teacher_test)
  return SupervisionReproduction(rows=tuple(rows), settings=settings)
