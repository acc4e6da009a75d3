"""Figures of the analyze report: bounds beside measured errors, sample information, PAC-Bayes.

Every function draws on a matplotlib ``Axes`` it is given (build one without pyplot with
``gbounds._src.io.new_figure``) and returns it; nothing here selects a backend or changes any
global matplotlib setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["plot_bound_bars", "plot_example_images", "plot_pac_bayes_selection",
           "plot_sample_information_by_class", "plot_sample_information_by_rank"]


def plot_bound_bars(ax: Any, rows: Sequence[Any], *, test_error: float,
                    supersample_test_error: float | None = None,
                    stochastic_test_error: float | None = None) -> Any:
  """Horizontal bars of test-error bounds, with the measured test errors as vertical lines.

  Args:
    ax: the matplotlib ``Axes`` to draw on.
    rows: bound rows with attributes ``name``, ``family`` (starting with ``"CMI"`` for the
      CMI bounds) and ``test_error_bound`` (e.g. :class:`gbounds.analysis.BoundRow`).
    test_error: measured test error of the trained model (dashed black line).
    supersample_test_error: mean ghost error of the supersample runs (dotted blue line).
    stochastic_test_error: Monte Carlo test error of the PAC-Bayes posterior (dotted orange).

  Returns:
    ``ax``.
  """
  names = [f"{r.name} ({'CMI' if r.family.startswith('CMI') else 'PAC-Bayes'})" for r in rows]
  colors = ["tab:blue" if r.family.startswith("CMI") else "tab:orange" for r in rows]
  ax.barh(range(len(rows)), [r.test_error_bound for r in rows], color=colors)
  ax.set_yticks(range(len(rows)), names, fontsize=8)
  ax.axvline(test_error, color="k", ls="--", lw=1, label="test error (trained model)")
  if supersample_test_error is not None:
    ax.axvline(supersample_test_error, color="tab:blue", ls=":", lw=1.2,
               label="test error (supersample runs)")
  if stochastic_test_error is not None:
    ax.axvline(stochastic_test_error, color="tab:orange", ls=":", lw=1.2,
               label="test error (stochastic network)")
  ax.set_xlabel("bound on the test error (0-1)")
  ax.set_xlim(0, max([1.0] + [r.test_error_bound for r in rows]) * 1.02)
  ax.invert_yaxis()
  ax.legend(fontsize=7, loc="lower right")
  return ax


def plot_sample_information_by_rank(ax: Any, si: Any) -> Any:
  """Sample information against its rank, both axes logarithmic.

  Args:
    ax: the matplotlib ``Axes``.
    si: ``(n,)`` sample information (nats), sorted in decreasing order.

  Returns:
    ``ax``.
  """
  vals = np.asarray(si)
  ax.plot(np.arange(1, len(vals) + 1), np.maximum(vals, 1e-300), lw=1.2)
  ax.set_yscale("log")
  ax.set_xscale("log")
  ax.set_xlabel("rank")
  ax.set_ylabel("sample information (nats)")
  ax.set_title("SI by rank", fontsize=9)
  return ax


def plot_sample_information_by_class(ax: Any, si: Any, labels: Any) -> Any:
  """Histograms of ``log10`` sample information, one per class.

  Args:
    ax: the matplotlib ``Axes``.
    si: ``(n,)`` sample information (nats).
    labels: ``(n,)`` class labels.

  Returns:
    ``ax``.
  """
  si, labels = np.asarray(si), np.asarray(labels)
  for c in np.unique(labels):
    ax.hist(np.log10(np.maximum(si[labels == c], 1e-30)), bins=30, alpha=0.6,
            label=f"class {c}")
  ax.set_xlabel("log10 SI (nats)")
  ax.set_title("distribution per class", fontsize=9)
  ax.legend(fontsize=7)
  return ax


def plot_example_images(axes: Sequence[Any], images: Sequence[Any],
                        titles: Sequence[str]) -> Sequence[Any]:
  """Shows one image per ``Axes`` (grey scale for one channel), with a small title.

  Args:
    axes: matplotlib ``Axes``, one per image (extra axes are left alone).
    images: ``(h, w, 1)`` or ``(h, w, 3)`` images.
    titles: one title per image.

  Returns:
    ``axes``.
  """
  for ax, img, title in zip(axes, images, titles):
    img = np.asarray(img)
    ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray")
    ax.set_title(title, fontsize=6)
    ax.axis("off")
  return axes


def plot_pac_bayes_selection(ax: Any, selection: Sequence[Any], sigma: float) -> Any:
  """The PAC-Bayes-kl selection bound and the stochastic training error against the scale.

  Args:
    ax: the matplotlib ``Axes``.
    selection: grid points with attributes ``sigma``, ``selection_bound`` and
      ``selection_error`` (:class:`gbounds.bounds.SigmaSelection`).
    sigma: the selected scale (dotted vertical line).

  Returns:
    ``ax``.
  """
  ax.plot([s.sigma for s in selection], [s.selection_bound for s in selection], "o-",
          label="PAC-Bayes-kl (selection draws)")
  ax.plot([s.sigma for s in selection], [s.selection_error for s in selection], "s-",
          label="stochastic training error")
  ax.axvline(sigma, color="k", ls=":", lw=1, label="selected s")
  ax.set_xscale("log")
  ax.set_xlabel("posterior/prior std s")
  ax.set_ylabel("0-1 error")
  ax.legend(fontsize=7)
  return ax
