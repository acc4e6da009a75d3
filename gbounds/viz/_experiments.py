"""Figures of the paper reproductions (:mod:`gbounds.experiments`) and of the command line.

Every function draws on the matplotlib ``Axes`` it is given (first argument) and returns it;
none creates a figure through pyplot or calls ``matplotlib.use``. Make a figure without pyplot
with ``gbounds._src.io.new_figure`` (or ``matplotlib.figure.Figure().subplots()``), draw, and
write it with ``gbounds._src.io.atomic_write_figure``.

The arguments are duck-typed on the result types of :mod:`gbounds.experiments` (this layer sits
below it and imports nothing from it): the fields each function reads are listed in its
docstring.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["image_grid_shape", "plot_activation_distributions", "plot_fcmi_table",
           "plot_fsi_histogram", "plot_image_grid", "plot_limit", "plot_summarisation", "plot_weight_information"]


def plot_fsi_histogram(ax: Any, fsi: Any, flipped: Any, *, auroc: float | None = None) -> Any:
  """Histogram of ``log10`` F-SI, clean against mislabeled training examples (densities).

  Args:
    ax: the matplotlib ``Axes`` to draw on.
    fsi: ``(n,)`` functional sample information per training example (nats), e.g.
      ``MislabeledDetection.fsi``.
    flipped: ``(n,)`` booleans, which labels were flipped (``MislabeledDetection.flipped``).
    auroc: shown in the title when given.

  Returns:
    ``ax``.
  """
  fsi = np.asarray(fsi)
  flipped = np.asarray(flipped, bool)
  v = np.log10(np.maximum(fsi, 1e-300))
  bins = np.linspace(v.min(), v.max(), 40)
  ax.hist(v[~flipped], bins=bins, alpha=0.6, label="clean", density=True)
  ax.hist(v[flipped], bins=bins, alpha=0.6, label="mislabeled", density=True)
  ax.set_xlabel("log10 F-SI (nats)")
  ax.set_ylabel("density")
  if auroc is not None:
    ax.set_title(f"AUROC {auroc:.3f}")
  ax.legend()
  return ax


def plot_summarisation(ax: Any, fractions: Any, test_error: Mapping[str, Any]) -> Any:
  """Test error against the fraction of the training set removed, one line per strategy.

  Args:
    ax: the matplotlib ``Axes`` to draw on.
    fractions: ``(f,)`` removed fractions (``Summarisation.fractions``).
    test_error: ``{strategy: (f,) errors}`` (``Summarisation.test_error``).

  Returns:
    ``ax``.
  """
  for name, errs in test_error.items():
    ax.plot(fractions, errs, marker="o", label=str(name).replace("_", " "))
  ax.set_xlabel("fraction of training set removed")
  ax.set_ylabel("test error")
  ax.legend(fontsize=8)
  return ax


def plot_image_grid(axes: Any, images: Any, scores: Any, *, count: int = 25, labels: Any = None,
                    most: bool = True) -> Any:
  """The ``count`` highest (``most``) or lowest scored images, one per axes, with their scores.

  Args:
    axes: an array (any shape) of at least ``count`` matplotlib ``Axes``, filled in row-major
      order; the unused ones are switched off.
    images: ``(n, h, w)`` or ``(n, h, w, 1)`` images.
    scores: ``(n,)`` scores (e.g. F-SI).
    count: images shown.
    labels: optional ``(n,)`` labels shown beside the score.
    most: the highest scores (else the lowest).

  Returns:
    ``axes``.
  """
  s = np.asarray(scores)
  order = np.argsort(-s if most else s, kind="mergesort")[:count]
  flat = np.ravel(axes)
  for ax in flat:
    ax.axis("off")
  for ax, i in zip(flat, order):
    img = np.asarray(images[i])
    ax.imshow(img.reshape(img.shape[0], img.shape[1]) if img.ndim == 3 else img, cmap="gray")
    lab = "" if labels is None else f"y={np.asarray(labels)[i]} "
    ax.set_title(f"{lab}{s[i]:.2g}", fontsize=7)
  return axes


def image_grid_shape(count: int) -> tuple[int, int]:
  """``(rows, cols)`` of the near-square grid :func:`plot_image_grid` is drawn on.

  Args:
    count: images in the grid.

  Returns:
    ``(rows, cols)`` with ``cols = ceil(sqrt(count))``.
  """
  cols = int(np.ceil(np.sqrt(count)))
  return int(np.ceil(count / cols)), cols


def plot_fcmi_table(ax: Any, rows: Sequence[Any], *,
                    published: Mapping[int, tuple[float, float]] | None = None) -> Any:
  """The f-CMI bound (with its std over supersamples), measured gap and test error against
  ``n`` (log x axis), optionally with the published (bound, gap) pairs dashed/dotted.

  Args:
    ax: the matplotlib ``Axes`` to draw on.
    rows: ``FcmiRow``-like records with ``n``, ``fcmi_bound``, ``fcmi_bound_std``, ``gap`` and
      ``test_error``.
    published: ``{n: (bound, gap)}``.

  Returns:
    ``ax``.
  """
  ns = [r.n for r in rows]
  ax.errorbar(ns, [r.fcmi_bound for r in rows], yerr=[r.fcmi_bound_std for r in rows],
              marker="o", label="f-CMI bound", capsize=3)
  ax.plot(ns, [r.gap for r in rows], marker="s", label="measured gap")
  ax.plot(ns, [r.test_error for r in rows], marker="^", label="test error")
  if published:
    pn = sorted(published)
    ax.plot(pn, [published[k][0] for k in pn], "k--", marker="o", mfc="none", lw=0.8,
            label="published bound")
    ax.plot(pn, [published[k][1] for k in pn], "k:", marker="s", mfc="none", lw=0.8,
            label="published gap")
  ax.set_xscale("log")
  ax.set_xlabel("n (training examples)")
  ax.set_ylabel("0-1 error")
  ax.legend(fontsize=7)
  return ax


def plot_activation_distributions(axes: Any, results: Sequence[Any]) -> Any:
  """Box plots of per-neuron entropy (left) and pairwise KSG MI (right) per setting level.

  Args:
    axes: a ``(len(results), 2)`` array of matplotlib ``Axes``.
    results: ``SettingsResult``-like records with ``setting``, ``levels``, ``entropies`` and
      ``mi_values``.

  Returns:
    ``axes``.
  """
  axes = np.asarray(axes, dtype=object).reshape(len(results), 2)
  for row, res in zip(axes, results):
    setting = getattr(res.setting, "value", res.setting)
    name = "e" if setting == "colored" else "beta"
    labels = [f"{lv:g}" for lv in res.levels]
    row[0].boxplot(list(res.entropies), showfliers=False)
    row[0].set_xticks(range(1, len(labels) + 1), labels)
    row[0].set_title(f"{setting} MNIST: neuron entropy (nats)")
    row[0].set_xlabel(name)
    row[1].boxplot(list(res.mi_values), showfliers=False)
    row[1].set_xticks(range(1, len(labels) + 1), labels)
    row[1].set_title(f"{setting} MNIST: neuron-pair KSG MI (nats)")
    row[1].set_xlabel(name)
  return axes


def plot_weight_information(ax: Any, rows: Iterable[Mapping[str, Any]], *,
                            noise_rates: Sequence[float], forms: Sequence[str]) -> Any:
  """Information in the weights against ``beta`` (log-log), one line per (noise rate, form).

  Args:
    ax: the matplotlib ``Axes`` to draw on.
    rows: dicts with ``noise_rate``, ``form``, ``beta`` and ``information_nats``.
    noise_rates: the noise rates to draw.
    forms: the Fisher forms to draw.

  Returns:
    ``ax``.
  """
  rows = list(rows)
  for rate in noise_rates:
    for form in forms:
      pts = [(r["beta"], r["information_nats"]) for r in rows
             if r["noise_rate"] == rate and r["form"] == form]
      if pts:
        ax.plot(*zip(*pts), marker="o", label=f"noise {rate:.0%}, {form}")
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel("beta")
  ax.set_ylabel("information in the weights (nats)")
  ax.legend(fontsize=7)
  return ax


def plot_limit(axes: Any, rows: Iterable[Mapping[str, Any]], *, methods: Sequence[str]) -> Any:
  """Test accuracy (left) and training accuracy on the noisy labels (right) against the
  label-noise rate, one line per method.

  Args:
    axes: two matplotlib ``Axes``.
    rows: dicts with ``method``, ``noise_rate``, ``test_accuracy`` and ``train_accuracy_noisy``.
    methods: the methods to draw.

  Returns:
    ``axes``.
  """
  rows = list(rows)
  left, right = np.ravel(axes)[:2]
  for m in methods:
    pts = [r for r in rows if r["method"] == m]
    left.plot([r["noise_rate"] for r in pts], [r["test_accuracy"] for r in pts], "o-", label=m)
    right.plot([r["noise_rate"] for r in pts], [r["train_accuracy_noisy"] for r in pts], "o-",
               label=m)
  left.set_title("test accuracy")
  right.set_title("train accuracy on noisy labels")
  for ax in (left, right):
    ax.set_xlabel("label-noise rate")
    ax.legend()
  return axes
