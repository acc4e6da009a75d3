"""Figures: every plotting function takes a matplotlib ``Axes`` (or a sequence of them) as its first
argument and draws on it; nothing here calls ``matplotlib.use`` or imports pyplot, so a Jupyter
user's backend is left alone. Outside a notebook, ``fig = matplotlib.figure.Figure();
ax = fig.subplots()`` gives an Axes without selecting a backend, and ``fig.savefig(path)`` writes it.
"""

from gbounds.viz._analysis import plot_bound_bars as plot_bound_bars
from gbounds.viz._analysis import plot_example_images as plot_example_images
from gbounds.viz._analysis import plot_pac_bayes_selection as plot_pac_bayes_selection
from gbounds.viz._analysis import (
    plot_sample_information_by_class as plot_sample_information_by_class,
)
from gbounds.viz._analysis import plot_sample_information_by_rank as plot_sample_information_by_rank
from gbounds.viz._bounds import plot_bounds_report as plot_bounds_report
from gbounds.viz._bounds import plot_posterior_scales as plot_posterior_scales
from gbounds.viz._bounds import plot_prior_scale_curve as plot_prior_scale_curve
from gbounds.viz._experiments import image_grid_shape as image_grid_shape
from gbounds.viz._experiments import plot_activation_distributions as plot_activation_distributions
from gbounds.viz._experiments import plot_fcmi_table as plot_fcmi_table
from gbounds.viz._experiments import plot_fsi_histogram as plot_fsi_histogram
from gbounds.viz._experiments import plot_image_grid as plot_image_grid
from gbounds.viz._experiments import plot_limit as plot_limit
from gbounds.viz._experiments import plot_summarisation as plot_summarisation
from gbounds.viz._experiments import plot_weight_information as plot_weight_information
from gbounds.viz._geometry import GEOMETRY_QUANTITIES as GEOMETRY_QUANTITIES
from gbounds.viz._geometry import plot_layer_geometry as plot_layer_geometry
from gbounds.viz._geometry import plot_layer_geometry_grid as plot_layer_geometry_grid
from gbounds.viz._geometry import plot_rewinding as plot_rewinding

__all__ = [
    "GEOMETRY_QUANTITIES",
    "image_grid_shape",
    "plot_activation_distributions",
    "plot_bound_bars",
    "plot_bounds_report",
    "plot_example_images",
    "plot_fcmi_table",
    "plot_fsi_histogram",
    "plot_image_grid",
    "plot_layer_geometry",
    "plot_layer_geometry_grid",
    "plot_limit",
    "plot_pac_bayes_selection",
    "plot_posterior_scales",
    "plot_prior_scale_curve",
    "plot_rewinding",
    "plot_sample_information_by_class",
    "plot_sample_information_by_rank",
    "plot_summarisation",
    "plot_weight_information",
]
