"""Figures of generalization bounds (:mod:`gbounds.bounds` results).

Duck-typed on the result objects (``viz`` and ``bounds`` are peers in the layer order, so this
module does not import :mod:`gbounds.bounds`): any object with the attributes used below works.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["plot_bounds_report"]


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
