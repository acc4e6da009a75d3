"""The bounds figure draws on a given Axes without touching matplotlib's global state."""

import numpy as np

from gbounds._src import io as _io
from gbounds.bounds import cmi_bounds
from gbounds.viz._bounds import plot_bounds_report


def test_plot_bounds_report_draws_one_bar_per_applicable_bound():
  rng = np.random.default_rng(0)
  masks = rng.integers(0, 2, (3, 6, 5))
  pred = rng.integers(0, 2, (3, 6, 5, 2))
  labels = rng.integers(0, 2, (3, 5, 2))
  rep = cmi_bounds(masks, pred, labels, bootstrap=4)
  fig, ax = _io.new_figure()
  assert plot_bounds_report(ax, rep) is ax
  shown = [b for b in rep.bounds if b.applicable and np.isfinite(b.value)]
  assert len(ax.patches) == len(shown)
  assert [t.get_text() for t in ax.get_yticklabels()] == [b.name.value for b in shown]
  fig2, ax2 = _io.new_figure()
  plot_bounds_report(ax2, rep, test_error=True, only_applicable=False)
  assert len(ax2.patches) == sum(np.isfinite(b.test_error) for b in rep.bounds)
  assert _io.figure_png(fig)[:4] == b"\x89PNG"
