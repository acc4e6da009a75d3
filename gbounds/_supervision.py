"""Supervision complexity (Harutyunyan, Rawat, Menon, Kim & Kumar, ICLR 2023, arXiv 2301.12245).

A kernel machine :math:`f(x) = \\sum_i \\alpha_i k(x_i, x)` that fits targets :math:`Y \\in R^n`
on the training inputs with Gram matrix :math:`K` has :math:`\\alpha = K^{-1} Y` and RKHS norm

.. math:: \\|f\\|_{\\mathcal H} = \\sqrt{Y^\\top K^{-1} Y} = \\sqrt{\\sum_j (v_j^\\top Y)^2 / \\mu_j},

with :math:`(\\mu_j, v_j)` the eigenpairs of :math:`K`. The paper calls this the *supervision
complexity* of the targets with respect to the kernel: targets aligned with the top eigenvectors
of :math:`K` are cheap, targets that need the small-eigenvalue directions are expensive. With
:math:`K` the student's empirical NTK it compares one-hot labels with a teacher's soft labels;
the *adjusted* complexity :math:`\\tfrac1n \\sqrt{Y^\\top K^{-1} Y}\\sqrt{\\mathrm{tr} K}` is the
quantity that enters the Rademacher bound below (and is invariant to rescaling :math:`K`).

For ``k`` output columns (one kernel machine per class sharing :math:`K`) the complexity is the
Frobenius form :math:`\\sqrt{\\sum_c Y_c^\\top K^{-1} Y_c} = \\sqrt{\\mathrm{tr}(Y^\\top K^{-1} Y)}`.
With a ridge :math:`r > 0` the kernel ridge predictor has RKHS norm
:math:`\\sqrt{Y^\\top (K + rI)^{-1} K (K + rI)^{-1} Y} \\le \\sqrt{Y^\\top (K + rI)^{-1} Y}`; the latter
(the regularised complexity) is reported, and is an upper bound usable in the bound.

The margin bound (the kernel-class Rademacher bound the paper builds on: Bartlett & Mendelson,
2002; Mohri, Rostamizadeh & Talwalkar, 2018, Thm. 5.8 (binary) and Thm. 9.2 (multi-class), with
:math:`\\hat{\\mathfrak R}_S \\le \\Lambda\\sqrt{\\mathrm{tr} K}/n` for norm-:math:`\\Lambda` balls): with
probability at least :math:`1-\\delta` over the ``n`` training examples, for a fixed margin
:math:`\\gamma > 0`,

.. math:: P(\\rho_f(X, Y) \\le 0) \\le \\frac1n\\sum_i 1[\\rho_f(x_i, y_i) \\le \\gamma]
          + \\frac{c_k}{\\gamma n}\\,\\Lambda\\,\\sqrt{\\mathrm{tr} K} + 3\\sqrt{\\frac{\\ln(2/\\delta)}{2n}},

:math:`c_2 = 2` for binary (targets in one column, :math:`\\rho = y f(x)` with :math:`y = \\pm1`),
:math:`c_k = 4k` for ``k`` classes (:math:`\\rho_f = f_y - \\max_{y' \\ne y} f_{y'}`), and
:math:`\\Lambda` the supervision complexity (binary) or its largest per-class value (``k``
classes). In distillation the student's error is at most the teacher's error plus the
student-teacher disagreement, and the disagreement is bounded by the margin bound with the
teacher's labels (the paper's interplay of teacher accuracy, student margin with respect to the
teacher, and complexity of the teacher's targets). Caveat: :math:`\\Lambda` is computed from the data;
a union bound over a grid of norms would add a lower-order term that is omitted here.

Verification status: the definition :math:`\\sqrt{Y^\\top K^{-1} Y}` with :math:`K` the student's NTK
Gram matrix is the one in the issue and in the paper's abstract ("alignment between
teacher-provided supervision and the student's neural tangent kernel"). The paper's body (its
theorem and constants) could not be retrieved from the stored copies available when this module
was written, so the bound above is the textbook margin bound it instantiates, with its constants
stated; the paper's exact constants are [unverified].
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gbounds import _errors


class SupervisionComplexity(NamedTuple):
  """Supervision complexity of targets under a kernel.

  Attributes:
    complexity: :math:`\\sqrt{\\mathrm{tr}(Y^\\top (K + rI)^{-1} Y)}` (the RKHS norm, unitless).
    per_output: :math:`\\sqrt{Y_c^\\top (K + rI)^{-1} Y_c}` for each target column ``c``.
    adjusted: :math:`\\mathrm{complexity} \\cdot \\sqrt{\\mathrm{tr} K} / n`.
    kernel_trace: :math:`\\mathrm{tr} K`.
  """
  complexity: jax.Array
  per_output: jax.Array
  adjusted: jax.Array
  kernel_trace: jax.Array


class KernelMarginBound(NamedTuple):
  """Terms of the margin bound on the 0-1 error (probabilities in [0, 1]; ``bound`` may exceed 1).

  Attributes:
    bound: sum of the terms below (plus ``teacher_error`` when given).
    empirical_margin_loss: :math:`\\frac1n \\sum_i 1[\\rho_f(x_i, y_i) \\le \\gamma]`.
    complexity_term: :math:`c_k \\Lambda \\sqrt{\\mathrm{tr}K} / (\\gamma n)`.
    confidence_term: :math:`3\\sqrt{\\ln(2/\\delta)/(2n)}`.
    teacher_error: the teacher's error added in front (0 when not given).
    norm: :math:`\\Lambda`.
  """
  bound: jax.Array
  empirical_margin_loss: jax.Array
  complexity_term: jax.Array
  confidence_term: jax.Array
  teacher_error: jax.Array
  norm: jax.Array


def _prepare(kernel, targets, ridge, check_singular=True, rtol=None):
  k = kernel if isinstance(kernel, jax.core.Tracer) else jnp.asarray(kernel)
  _errors.check_rank("kernel", k, 2)
  if k.shape[0] != k.shape[1]:
    _errors.fail("kernel", "a square Gram matrix", f"shape {k.shape}")
  y = targets if isinstance(targets, jax.core.Tracer) else jnp.asarray(targets)
  _errors.check_rank("targets", y, (1, 2))
  m = k.shape[0]
  if y.shape[0] != m:
    if y.ndim == 2 and y.shape[0] * y.shape[1] == m:  # FULL NTK (n k, n k): flatten sample-major
      y = y.reshape(m)
    else:
      _errors.fail("targets", f"{m} rows (one per kernel row), or (n, k) with n k = {m}",
                   f"shape {y.shape}")
  if not isinstance(ridge, jax.core.Tracer):
    _errors.check_positive("ridge", ridge, strict=False)
  if not isinstance(k, jax.core.Tracer):
    _errors.check_finite("kernel", k)
  if not isinstance(y, jax.core.Tracer):
    _errors.check_finite("targets", y)
  y2 = y if y.ndim == 2 else y[:, None]
  if jnp.issubdtype(y2.dtype, jnp.integer) or y2.dtype == jnp.bool_:
    y2 = y2.astype(k.dtype)
  dtype = jnp.result_type(k.dtype, y2.dtype)
  k = k.astype(dtype)
  y2 = y2.astype(dtype)
  mu, v = jnp.linalg.eigh(0.5 * (k + k.T) + ridge * jnp.eye(m, dtype=dtype))
  if check_singular and not isinstance(mu, jax.core.Tracer) and not isinstance(
      ridge, jax.core.Tracer) and ridge == 0:
    tol = (m * float(jnp.finfo(dtype).eps) * 10) if rtol is None else rtol
    top = float(jnp.max(jnp.abs(mu)))
    low = float(jnp.min(mu))
    if low <= tol * max(top, np.finfo(float).tiny):
      _errors.fail("kernel", "a positive definite matrix (or pass ridge > 0)",
                   f"smallest eigenvalue {low:.3g} vs largest {top:.3g}")
  return k, y2, mu, v


def _quad(mu, v, y2):
  proj = v.T @ y2  # (m, c): coordinates of the targets in the kernel's eigenbasis
  return jnp.sum(proj ** 2 / mu[:, None], axis=0)


def supervision_complexity(kernel: jax.typing.ArrayLike, targets: jax.typing.ArrayLike, *,
                           ridge: float = 0.0, rtol: float | None = None) -> SupervisionComplexity:
  """Supervision complexity :math:`\\sqrt{Y^\\top (K + rI)^{-1} Y}` of ``targets`` under ``kernel``.

  Harutyunyan et al. (2023), Sec. 3: the RKHS norm of the kernel machine that interpolates the
  targets, evaluated through the eigendecomposition :math:`K + rI = V \\mathrm{diag}(\\mu) V^\\top`
  as :math:`\\sum_j (v_j^\\top Y)^2/\\mu_j` (the targets' energy along each kernel eigenvector,
  weighted by the inverse eigenvalue).

  Args:
    kernel: ``(m, m)`` symmetric positive semi-definite Gram matrix (e.g. the student's empirical
      NTK, ``NtkOutput.TRACE`` for one kernel shared by all classes, or ``FULL``).
    targets: ``(m,)`` or ``(m, c)`` targets (one column per class), or ``(n, k)`` with ``n k = m``
      for a FULL ``(n k, n k)`` kernel (flattened sample-major).
    ridge: :math:`r \\ge 0` added to the diagonal.
    rtol: with ``ridge == 0``, a kernel whose smallest eigenvalue is at most ``rtol`` times the
      largest is rejected as singular (default ``10 m eps``). Checked eagerly (not under jit).

  Returns:
    :class:`SupervisionComplexity`.

  Raises:
    InvalidInputError: wrong shapes, negative ridge, or a singular kernel without a ridge.
  """
  k, y2, mu, v = _prepare(kernel, targets, ridge, rtol=rtol)
  q = _quad(mu, v, y2)
  tr = jnp.trace(k)
  comp = jnp.sqrt(jnp.sum(q))
  return SupervisionComplexity(complexity=comp, per_output=jnp.sqrt(q),
                               adjusted=comp * jnp.sqrt(tr) / k.shape[0], kernel_trace=tr)


def _margins(scores, labels):
  if scores.shape[1] == 1:  # binary: labels +-1 (or {0, 1} mapped to +-1)
    s = 2.0 * labels - 1.0 if jnp.issubdtype(labels.dtype, jnp.integer) else labels
    return s * scores[:, 0]
  lab = labels.astype(jnp.int32)
  own = jnp.take_along_axis(scores, lab[:, None], axis=1)[:, 0]
  others = jnp.where(jax.nn.one_hot(lab, scores.shape[1], dtype=bool), -jnp.inf, scores)
  return own - jnp.max(others, axis=1)


def kernel_margin_bound(kernel: jax.typing.ArrayLike, targets: jax.typing.ArrayLike,
                        labels: jax.typing.ArrayLike, *, margin: float, delta: float = 0.05,
                        ridge: float = 0.0, teacher_error: float | None = None,
                        rtol: float | None = None) -> KernelMarginBound:
  """Margin bound on the 0-1 error of the kernel (ridge) predictor trained on ``targets``.

  .. math:: \\mathrm{err}(f) \\le [\\mathrm{err}_{teacher}] + \\frac1n\\sum_i 1[\\rho_f(x_i, y_i) \\le \\gamma]
            + \\frac{c_k}{\\gamma n} \\Lambda \\sqrt{\\mathrm{tr} K} + 3\\sqrt{\\frac{\\ln(2/\\delta)}{2n}}

  with :math:`f(X) = K (K + rI)^{-1} Y` on the training inputs, :math:`\\Lambda` the supervision
  complexity of ``targets`` (largest per-class value for ``k >= 2`` columns), :math:`c = 2` for
  one column and :math:`4k` for ``k`` columns (see the module docstring for the sources). Pass the
  teacher's predicted labels as ``labels`` and its (held-out) error as ``teacher_error`` for the
  distillation form.

  Args:
    kernel: ``(n, n)`` Gram matrix of the training inputs.
    targets: ``(n,)`` (binary scores, sign = class) or ``(n, k)`` targets the predictor is fit to.
    labels: ``(n,)`` labels the margin is measured against: ints in ``0..k-1`` (``{0, 1}`` or
      ``+-1`` for one column).
    margin: :math:`\\gamma > 0`.
    delta: confidence level in (0, 1).
    ridge: :math:`r \\ge 0`.
    teacher_error: optional error of the teacher, added in front.

  Returns:
    :class:`KernelMarginBound`.
  """
  _errors.check_positive("margin", margin)
  if not (0 < delta < 1):
    _errors.fail("delta", "a value in (0, 1)", delta)
  k, y2, mu, v = _prepare(kernel, targets, ridge, rtol=rtol)
  n = k.shape[0]
  lab = jnp.asarray(labels)
  _errors.check_rank("labels", lab, 1)
  if lab.shape[0] != n:
    _errors.fail("labels", f"{n} labels (one per kernel row)", f"shape {lab.shape}")
  alpha = v @ ((v.T @ y2) / mu[:, None])  # (K + rI)^{-1} Y
  scores = k @ alpha
  rho = _margins(scores, lab)
  emp = jnp.mean((rho <= margin).astype(k.dtype))
  q = _quad(mu, v, y2)
  lam = jnp.sqrt(jnp.max(q))
  c = 2.0 if y2.shape[1] == 1 else 4.0 * y2.shape[1]
  comp = c * lam * jnp.sqrt(jnp.trace(k)) / (margin * n)
  conf = 3.0 * math.sqrt(math.log(2.0 / delta) / (2.0 * n))
  te = jnp.asarray(0.0 if teacher_error is None else teacher_error, k.dtype)
  if teacher_error is not None:
    _errors.check_in_unit_interval("teacher_error", teacher_error)
  return KernelMarginBound(bound=te + emp + comp + conf, empirical_margin_loss=emp,
                           complexity_term=comp, confidence_term=jnp.asarray(conf, k.dtype),
                           teacher_error=te, norm=lam)
