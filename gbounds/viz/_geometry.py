"""Figures of the permuted-label experiment (:func:`gbounds.geometry.permuted_label_experiment`).

Every function draws on the matplotlib ``Axes`` it is given (first argument) and returns it;
none creates a figure through pyplot or calls ``matplotlib.use``. Make a figure without pyplot
with ``gbounds._src.io.new_figure``, draw, and write it with
``gbounds._src.io.atomic_write_figure``::

    fig, axes = new_figure(nrows=3, ncols=3, figsize=(12, 9), sharex=True, sharey="row")
    plot_layer_geometry_grid(axes, result)
    fig, ax = new_figure(figsize=(6, 4))
    plot_rewinding(ax, result)

The arguments are duck-typed on :class:`gbounds.geometry.PermutedLabelResult` (``viz`` sits
beside ``geometry`` in the layering and imports nothing from it): the fields each function reads
are listed in its docstring.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["GEOMETRY_QUANTITIES", "plot_layer_geometry", "plot_layer_geometry_grid",
           "plot_rewinding"]

# The rows of :func:`plot_layer_geometry_grid`: fields of a ``GeometryRecord``.
GEOMETRY_QUANTITIES = ("capacity", "radius", "dimension")


def _kinds(result: Any) -> list[Any]:
  """The manifold kinds present, in the order of the records (unpermuted, permuted, restored)."""
  return list(dict.fromkeys(r.kind for r in result.geometry))


def plot_layer_geometry(ax: Any, result: Any, *, quantity: str, kind: Any) -> Any:
  """One MFTMA quantity of one set of manifolds against the layer, one line per checkpoint.

  Lines are coloured by epoch (viridis, early dark to late light) and labelled ``epoch e``;
  the x ticks are the analysed layers, input to output.

  Args:
    ax: the matplotlib ``Axes`` to draw on.
    result: a ``PermutedLabelResult``; reads ``config.checkpoint_epochs``, ``analysed_layers``
      and ``geometry`` (records with ``epoch``, ``layer``, ``kind`` and ``quantity``).
    quantity: a ``GeometryRecord`` field: ``"capacity"``, ``"radius"`` or ``"dimension"``.
    kind: the manifold kind (a ``gbounds.geometry.ManifoldKind`` or its value).

  Returns:
    ``ax``.
  """
  from matplotlib import colormaps

  epochs = result.config.checkpoint_epochs
  layers = result.analysed_layers
  cmap = colormaps["viridis"]
  rows = {(r.epoch, r.layer, r.kind): r for r in result.geometry}
  for e_i, e in enumerate(epochs):
    ys = [getattr(rows[(e, layer, kind)], quantity) for layer in layers]
    ax.plot(range(len(layers)), ys, "o-", color=cmap(e_i / max(1, len(epochs) - 1)),
            label=f"epoch {e}")
  ax.set_xticks(range(len(layers)), layers, rotation=30)
  return ax


def plot_layer_geometry_grid(axes: Any, result: Any) -> Any:
  """Capacity, radius and dimension (rows) of each manifold kind (columns) by layer.

  Each panel is :func:`plot_layer_geometry`; column titles are the kinds, row labels the
  quantities, and the top-left panel carries the epoch legend.

  Args:
    axes: a ``(3, n_kinds)`` array of matplotlib ``Axes`` (``n_kinds = 3`` for the experiment),
      e.g. from ``new_figure(nrows=3, ncols=3, sharex=True, sharey="row")``.
    result: a ``PermutedLabelResult`` (fields as in :func:`plot_layer_geometry`).

  Returns:
    ``axes``.
  """
  axes = np.asarray(axes, dtype=object)
  for i, quantity in enumerate(GEOMETRY_QUANTITIES):
    for j, kind in enumerate(_kinds(result)):
      ax = axes[i, j]
      plot_layer_geometry(ax, result, quantity=quantity, kind=kind)
      if i == 0:
        ax.set_title(str(kind))
      if j == 0:
        ax.set_ylabel(quantity)
  axes[0, 0].legend(fontsize=7)
  return axes


def plot_rewinding(ax: Any, result: Any) -> Any:
  """Test accuracy and permuted-label fit against the number ``L`` of rewound layers.

  One style per direction (rewinding the last ``L`` layers, then the first ``L``); the ``L = 0``
  record (nothing rewound) starts both lines.

  Args:
    ax: the matplotlib ``Axes`` to draw on.
    result: a ``PermutedLabelResult``; reads ``config.rewind_epoch`` and ``rewinding``
      (records with ``direction``, ``n_layers``, ``test_accuracy``, ``train_permuted_fit``).

  Returns:
    ``ax``.
  """
  directions = list(dict.fromkeys(r.direction for r in result.rewinding))
  for direction, style in zip(directions, ("o-", "s--", "^:", "d-.")):
    recs = [r for r in result.rewinding if r.direction == direction or r.n_layers == 0]
    ks = [r.n_layers for r in recs]
    ax.plot(ks, [r.test_accuracy for r in recs], style, label=f"test acc, rewind {direction} L")
    ax.plot(ks, [r.train_permuted_fit for r in recs], style, alpha=0.5,
            label=f"permuted-label fit, rewind {direction} L")
  ax.set_xlabel(f"L (layers reset to epoch {result.config.rewind_epoch})")
  ax.set_ylabel("accuracy")
  ax.legend(fontsize=7)
  return ax
