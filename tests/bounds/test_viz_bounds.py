"""The bounds figures draw on a given Axes without touching matplotlib's global state: the CMI
report's bars, and the optimised PAC-Bayes certificate's prior-std curve and posterior stds
(checked against the numbers they were given; bad certificates refused, naming the field)."""

import numpy as np
import pytest

from gbounds import InvalidInputError
from gbounds._src import io as _io
from gbounds.bounds import cmi_bounds
from gbounds.viz import plot_posterior_scales, plot_prior_scale_curve
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


# ----------------------------------------------------------------- optimised certificate figures


def _cert(**changes):
  """A duck-typed certificate: the fields the figures read, from the real result types."""
  from types import SimpleNamespace

  from gbounds.bounds import PriorScalePoint, ScaleSummary
  grid = [0.001, 0.01, 0.1, 1.0]
  kls = [900.0, 4.0, 0.5, 30.0]
  curve = tuple(PriorScalePoint(s, k, min(1.0, 0.1 + k / 100)) for s, k in zip(grid, kls))
  scales = (ScaleSummary("Dense_0/kernel", 64, (0.01, 0.02, 0.03, 0.05, 0.08), 0.2),
            ScaleSummary("Dense_0/bias", 8, (0.05, 0.06, 0.07, 0.08, 0.09), 0.1),
            ScaleSummary("Dense_1/kernel", 16, (0.02, 0.02, 0.04, 0.09, 0.3), 0.05))
  fields = dict(curve=curve, scales=scales, prior_scale=0.1, certificate=curve[2].bound)
  fields.update(changes)
  return SimpleNamespace(**fields)


def test_plot_prior_scale_curve_draws_bound_kl_and_the_selected_std():
  c = _cert()
  fig, ax = _io.new_figure()
  assert plot_prior_scale_curve(ax, c) is ax
  assert ax.get_xscale() == "log"
  bound_line = ax.get_lines()[0]
  np.testing.assert_allclose(bound_line.get_xdata(), [p.prior_scale for p in c.curve])
  np.testing.assert_allclose(bound_line.get_ydata(), [p.bound for p in c.curve])
  star = ax.get_lines()[1]
  assert list(star.get_xdata()) == [0.1] and list(star.get_ydata()) == [c.certificate]
  vline = ax.get_lines()[2]
  assert list(vline.get_xdata()) == [0.1, 0.1]  # the selected std, marked
  (twin,) = [a for a in fig.axes if a is not ax]
  assert twin.get_yscale() == "log"
  np.testing.assert_allclose(twin.get_lines()[0].get_ydata(), [p.kl for p in c.curve])
  assert _io.figure_png(fig)[:4] == b"\x89PNG"


def test_plot_prior_scale_curve_sorts_the_grid():
  c = _cert()
  shuffled = _cert(curve=tuple(c.curve[i] for i in (2, 0, 3, 1)))
  _, ax = _io.new_figure()
  plot_prior_scale_curve(ax, shuffled)
  assert list(ax.get_lines()[0].get_xdata()) == [0.001, 0.01, 0.1, 1.0]


def test_plot_posterior_scales_draws_one_box_per_array_from_its_quantiles():
  c = _cert()
  fig, ax = _io.new_figure()
  assert plot_posterior_scales(ax, c) is ax
  assert ax.get_yscale() == "log"
  labels = [t.get_text() for t in ax.get_xticklabels()]
  assert labels == [f"{s.name}\n({s.size})" for s in c.scales]
  ys = [tuple(np.round(ln.get_ydata(), 12)) for ln in ax.get_lines()]
  for sc in c.scales:
    q5, q25, q50, q75, q95 = sc.quantiles
    assert (q50, q50) in ys  # median
    assert (q5, q5) in ys and (q95, q95) in ys  # whisker caps
    assert any(set(y) == {q25, q75} for y in ys)  # the box from q25 to q75
  prior = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
  assert len(prior) == 1 and set(prior[0].get_ydata()) == {0.1}
  assert _io.figure_png(fig)[:4] == b"\x89PNG"


@pytest.mark.parametrize("plot,changes,match", [
    (plot_prior_scale_curve, dict(curve=()), r"^certificate.curve: expected a non-empty"),
    (plot_prior_scale_curve, dict(curve=None), r"^certificate.curve: expected a non-empty"),
    (plot_prior_scale_curve, dict(prior_scale=0.0), r"^certificate.prior_scale: expected"),
    (plot_prior_scale_curve, dict(prior_scale=float("nan")),
     r"^certificate.prior_scale: expected"),
    (plot_posterior_scales, dict(scales=()), r"^certificate.scales: expected a non-empty"),
    (plot_posterior_scales, dict(prior_scale=-1.0), r"^certificate.prior_scale: expected"),
])
def test_certificate_figures_refuse_bad_certificates(plot, changes, match):
  _, ax = _io.new_figure()
  with pytest.raises(InvalidInputError, match=match):
    plot(ax, _cert(**changes))


def test_certificate_figures_refuse_bad_points_and_quantiles():
  from gbounds.bounds import PriorScalePoint, ScaleSummary
  c = _cert()
  bad_curves = [c.curve[:1] + (PriorScalePoint(-0.1, 1.0, 0.5),),
                c.curve[:1] + (PriorScalePoint(0.1, float("nan"), 0.5),),
                c.curve[:1] + (PriorScalePoint(0.1, 1.0, float("nan")),),
                c.curve[:1] + (PriorScalePoint(0.1, -1.0, 0.5),)]
  for curve in bad_curves:
    _, ax = _io.new_figure()
    with pytest.raises(InvalidInputError, match=r"^certificate.curve"):
      plot_prior_scale_curve(ax, _cert(curve=curve))
  bad_quantiles = [(0.1, 0.2, 0.3, 0.4), (0.3, 0.2, 0.3, 0.4, 0.5), (0.0, 0.1, 0.2, 0.3, 0.4),
                   (0.1, 0.2, float("inf"), 0.3, 0.4)]
  for q in bad_quantiles:
    _, ax = _io.new_figure()
    with pytest.raises(InvalidInputError, match=r"^certificate.scales: .*Dense_9"):
      plot_posterior_scales(ax, _cert(scales=(ScaleSummary("Dense_9", 3, q, 0.0),)))
