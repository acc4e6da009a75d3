"""Figures of generalization bounds (:mod:`gbounds.bounds` results): the CMI bounds of a report,
and the prior-std curve and posterior stds of an optimised PAC-Bayes certificate.

Duck-typed on the result objects (``viz`` and ``bounds`` are peers in the layer order, so this
module does not import :mod:`gbounds.bounds`): any object with the attributes used below works.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from gbounds._src import errors as _errors

__all__ = ["plot_bounds_report", "plot_posterior_scales", "plot_prior_scale_curve"]


def plot_bounds_report(ax: Any, report: Any, *, test_error: bool = False,
                       only_applicable: bool = True) -> Any:
  """Horizontal bars of every bound of a CMI report beside the measured value.

  Args:
    ax: a matplotlib ``Axes`` to draw on (e.g. from ``gbounds._src.io.new_figure``).
    report: a :class:`gbounds.bounds.BoundsReport` (``bounds`` with ``name``, ``value``,
      ``test_error``, ``applicable`` and optional ``interval``/``test_error_interval``;
      ``measured`` with ``gap`` and ``test_error``).
    test_error: draw the bounds on the test error instead of the bounds on the gap.
    only_applicable: leave out bounds that are not applicable (no guarantee).

  Returns:
    ``ax``, with one bar per bound (its bootstrap interval as an error bar when present) and a
    vertical line at the measured gap (or test error).
  """
  rows = [b for b in report.bounds if b.applicable or not only_applicable]
  rows = [b for b in rows if math.isfinite(b.test_error if test_error else b.value)]
  names = [str(getattr(b.name, "value", b.name)) for b in rows]
  values = [float(b.test_error if test_error else b.value) for b in rows]
  lo, hi = [], []
  for b, v in zip(rows, values):
    iv = b.test_error_interval if test_error else b.interval
    lo.append(v - iv[0] if iv is not None else 0.0)
    hi.append(iv[1] - v if iv is not None else 0.0)
  pos = list(range(len(rows)))
  ax.barh(pos, values, xerr=[lo, hi] if any(lo) or any(hi) else None, color="tab:blue",
          alpha=0.8)
  ax.set_yticks(pos)
  ax.set_yticklabels(names)
  ax.invert_yaxis()
  measured = float(report.measured.test_error if test_error else report.measured.gap)
  ax.axvline(measured, color="k", linestyle="--",
             label=f"measured {'test error' if test_error else 'gap'} ({measured:.3g})")
  ax.set_xlabel("bound on the test error" if test_error else "bound on the gap (loss units)")
  ax.legend(loc="lower right")
  return ax


def _positive_finite(name: str, values: Sequence[float]) -> np.ndarray:
  arr = np.asarray(values, np.float64)
  if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
    _errors.fail(name, "positive finite values", f"{arr.tolist()[:8]}")
  return arr


def plot_prior_scale_curve(ax: Any, certificate: Any) -> Any:
  """The certificate and ``KL(Q || P_s)`` against the prior std ``s`` of the grid.

  Each grid point is evaluated at the final posterior ``Q`` with the same Monte Carlo bound and
  the same ``ln G`` union cost (:func:`gbounds.bounds.certify`), so the curve shows what the
  choice of ``s`` cost: the selected ``s`` minimises the KL (closed form).

  Args:
    ax: the matplotlib ``Axes`` to draw on. The KL is drawn on a twin axis (``ax.twinx()``, log
      scale, nats); the bound on ``ax`` itself (0-1 error).
    certificate: a :class:`gbounds.bounds.PosteriorCertificate` (reads ``curve``, a sequence of
      points with ``prior_scale``, ``kl`` and ``bound``; ``prior_scale`` and ``certificate``,
      the selected std and its bound).

  Returns:
    ``ax``, with the bound against ``s`` (log x), the KL on the twin axis and the selected ``s``
    marked by a dotted vertical line and a point.

  Raises:
    gbounds.InvalidInputError: naming ``certificate.curve`` or ``certificate.prior_scale``
      when the curve is empty, its stds are not positive and finite, or its values are NaN.
  """
  curve = list(getattr(certificate, "curve", None) or ())
  if not curve:
    _errors.fail("certificate.curve", "a non-empty sequence of prior-scale points",
                 repr(getattr(certificate, "curve", None)))
  s = _positive_finite("certificate.curve prior_scale", [p.prior_scale for p in curve])
  bound = np.asarray([p.bound for p in curve], np.float64)
  kl = np.asarray([p.kl for p in curve], np.float64)
  if np.any(np.isnan(bound)) or np.any(np.isnan(kl)) or np.any(kl < 0):
    _errors.fail("certificate.curve", "bounds and non-negative KLs that are not NaN",
                 f"bounds {bound.tolist()[:4]}..., KLs {kl.tolist()[:4]}...")
  (sel,) = _positive_finite("certificate.prior_scale", [certificate.prior_scale])
  order = np.argsort(s)
  ax.plot(s[order], bound[order], "o-", ms=3, color="tab:blue", label="certificate (kl bound)")
  ax.plot([sel], [float(certificate.certificate)], "*", ms=12, color="tab:red",
          label=f"selected s = {sel:.3g}: {float(certificate.certificate):.3f}")
  ax.axvline(sel, color="k", ls=":", lw=1)
  ax.set_xscale("log")
  ax.set_xlabel("prior std s")
  ax.set_ylabel("bound on the Gibbs test error (0-1)")
  ax.set_ylim(0, 1.02)
  kl_ax = ax.twinx()
  kl_ax.plot(s[order], np.maximum(kl[order], 1e-12), "s--", ms=2.5, color="tab:orange",
             label="KL(Q || P_s)")
  kl_ax.set_yscale("log")
  kl_ax.set_ylabel("KL (nats)", color="tab:orange")
  lines = ax.get_lines()[:2] + kl_ax.get_lines()[:1]
  ax.legend(lines, [ln.get_label() for ln in lines], fontsize=7, loc="lower left")
  return ax


def plot_posterior_scales(ax: Any, certificate: Any) -> Any:
  """Posterior std per parameter array: a box from its stored quantiles, the prior std a line.

  The box spans the 25-75 % quantiles with the median marked, the whiskers the 5-95 %
  quantiles (no individual points: only the quantiles are stored).

  Args:
    ax: the matplotlib ``Axes`` to draw on (log y).
    certificate: a :class:`gbounds.bounds.PosteriorCertificate` (reads ``scales``, a sequence
      of :class:`gbounds.bounds.ScaleSummary` with ``name``, ``size`` and ``quantiles`` (5, 25,
      50, 75 and 95 %), and ``prior_scale``).

  Returns:
    ``ax``, one box per parameter array in the order of ``scales`` and a dashed horizontal line
    at the prior std.

  Raises:
    gbounds.InvalidInputError: naming ``certificate.scales`` (empty, or quantiles that are not
      five positive finite non-decreasing values) or ``certificate.prior_scale``.
  """
  scales = list(getattr(certificate, "scales", None) or ())
  if not scales:
    _errors.fail("certificate.scales", "a non-empty sequence of ScaleSummary",
                 repr(getattr(certificate, "scales", None)))
  stats = []
  for sc in scales:
    q = np.asarray(sc.quantiles, np.float64)
    if (q.shape != (5,) or not np.all(np.isfinite(q)) or np.any(q <= 0)
        or np.any(np.diff(q) < 0)):
      _errors.fail("certificate.scales", "five positive finite non-decreasing quantiles per "
                   "array (5, 25, 50, 75, 95 %)", f"{sc.name}: {q.tolist()}")
    stats.append({"whislo": q[0], "q1": q[1], "med": q[2], "q3": q[3], "whishi": q[4],
                  "fliers": [], "label": f"{sc.name}\n({int(sc.size)})"})
  (prior,) = _positive_finite("certificate.prior_scale", [certificate.prior_scale])
  ax.bxp(stats, showfliers=False, widths=0.6)
  ax.axhline(prior, color="tab:red", ls="--", lw=1, label=f"prior std {prior:.3g}")
  ax.set_yscale("log")
  # At least a factor 1.5 of room on either side, so that stds that barely moved from their
  # start show as flat boxes rather than as a magnified sliver with unreadable ticks.
  every = np.concatenate([[prior], *[np.asarray(sc.quantiles, np.float64) for sc in scales]])
  ax.set_ylim(every.min() / 1.5, every.max() * 1.5)
  ax.set_ylabel("posterior std")
  ax.tick_params(axis="x", labelsize=7, labelrotation=30)
  ax.legend(fontsize=7)
  return ax
