"""Tests for gbounds.experiments._memorization (data construction; a reduced reproduction is slow)."""

import itertools
import json
import math

import numpy as np
import pytest

import gbounds
from gbounds import InvalidInputError
from gbounds.experiments import _memorization as ms


def test_colorize_puts_digit_in_one_channel():
  img = np.random.default_rng(0).random((4, 14, 14)).astype(np.float32)
  colors = np.array([0, 1, 1, 0])
  out = ms.colorize(img, colors)
  assert out.shape == (4, 14, 14, 2)
  for i, c in enumerate(colors):
    np.testing.assert_array_equal(out[i, ..., c], img[i])
    np.testing.assert_array_equal(out[i, ..., 1 - c], 0)


def test_colored_mnist_rates():
  n = 20000
  rng = np.random.default_rng(1)
  digits = rng.integers(0, 10, n)
  img = rng.random((n, 14, 14)).astype(np.float32)
  for e in (0.0, 0.25, 0.5):
    x, y = ms.colored_mnist(img, digits, e=e, label_noise=0.25, seed=2)
    color = (x[..., 1].sum(axis=(1, 2)) > 0).astype(int)
    assert abs(np.mean(y != (digits < 5)) - 0.25) < 0.015      # label noise
    assert abs(np.mean(color != y) - e) < 0.015                # colour flips
  with pytest.raises(InvalidInputError, match="e:"):
    ms.colored_mnist(img, digits, e=1.5)


def test_shuffled_labels_fraction():
  digits = np.random.default_rng(3).integers(0, 10, 10000)
  for beta in (0.0, 0.5, 1.0):
    y = ms.shuffled_labels(digits, beta=beta, seed=4)
    # a redrawn label keeps its value with probability 1/10
    assert abs(np.mean(y != digits) - 0.9 * beta) < 0.02
  np.testing.assert_array_equal(ms.shuffled_labels(digits, beta=0.3, seed=5),
                                ms.shuffled_labels(digits, beta=0.3, seed=5))


def test_downsample_is_2x2_average():
  x = np.random.default_rng(6).random((2, 28, 28, 1)).astype(np.float32)
  d = ms._downsample(x)
  np.testing.assert_allclose(d[1, 3, 5], x[1, 6:8, 10:12, 0].mean(), rtol=1e-6)


def test_config_validation():
  with pytest.raises(InvalidInputError, match="seeds"):
    ms.SettingsConfig(seeds=0)
  with pytest.raises(InvalidInputError, match="5000"):
    ms.SettingsConfig(n_train=6000)


def test_kendall_matches_scipy_definition():
  assert ms._kendall([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
  assert ms._kendall([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


@pytest.mark.slow
def test_reduced_reproduction_directions(data_root, tmp_path):
  """Reduced run: the entropy effect of label shuffling, and a sane table."""
  cfg = ms.SettingsConfig(seeds=1, n_train=500, n_val=500, n_measure=300, epochs=20,
                          mi_neurons=12)
  res = ms.run_setting("shuffled", config=cfg, levels=(0.0, 1.0), data_dir=data_root)
  lm = res.level_means
  assert lm["val_accuracy"][0] > lm["val_accuracy"][1] + 0.3
  assert lm["mean_entropy"][1] > lm["mean_entropy"][0]    # example-level memorization: higher H
  assert len(res.records) == 2 and res.entropies[0].shape == (768,)
  assert res.mi_values[0].shape == (66,)
  from gbounds.cli import main
  rc = main(["activation-info", "--out", str(tmp_path), "--data-dir", data_root, "--settings",
             "colored", "--seeds", "1", "--n-train", "300", "--n-val", "300", "--n-measure",
             "200", "--epochs", "5", "--mi-neurons", "6"])
  assert rc == 0
  summary = json.loads((tmp_path / "activation_info.json").read_text())
  assert len(summary["colored"]["records"]) == 5
  assert (tmp_path / "models.csv").exists() and (tmp_path / "activation_info.png").exists()


def test_settings_config_and_levels_checked_before_training():
  with pytest.raises(InvalidInputError, match=r"hidden"):
    ms.SettingsConfig(hidden=(256, 0))
  with pytest.raises(InvalidInputError, match=r"learning_rate"):
    ms.SettingsConfig(learning_rate=float("inf"))
  with pytest.raises(InvalidInputError, match=r"k: expected at most n_measure - 1"):
    ms.SettingsConfig(n_measure=3, k=3)
  with pytest.raises(InvalidInputError, match=r"levels: expected a non-empty list of e"):
    ms.run_setting("colored", levels=(0.0, 1.5), data_dir="/nonexistent")


def _records(values):
  """ModelRecords from ``{level: [(val_accuracy, mean_entropy), ...]}``."""
  return [ms.ModelRecord("colored", lv, s, 1.0, acc, h, 0.0)
          for lv, rows in values.items() for s, (acc, h) in enumerate(rows)]


def test_level_tau_interval_degenerate_and_brute_force():
  levels = (0.0, 0.5, 1.0)
  # Identical seeds within each level: every draw gives the same tau, the interval collapses.
  same = _records({0.0: [(0.9, 1.0)] * 3, 0.5: [(0.8, 2.0)] * 3, 1.0: [(0.7, 3.0)] * 3})
  lo, hi, sd = ms.level_tau_interval(same, "mean_entropy", -1.0, levels, num_bootstrap=50)
  assert lo == hi == 1.0 and sd == 0.0
  # Two seeds per level: the bootstrap distribution over the 2^2 x 2^2 x 2^2 resamples by brute
  # force (each level's mean takes 3 values with weights 1/4, 1/2, 1/4).
  recs = _records({0.0: [(0.9, 1.0), (0.7, 1.5)], 0.5: [(0.8, 1.2), (0.85, 2.0)],
                   1.0: [(0.6, 3.0), (0.75, 1.1)]})
  acc = {lv: [r.val_accuracy for r in recs if r.level == lv] for lv in levels}
  ent = {lv: [-r.mean_entropy for r in recs if r.level == lv] for lv in levels}
  taus, weights = [], []
  for picks in itertools.product(*[list(itertools.product(range(2), repeat=2))] * 3):
    a = [np.mean([acc[lv][i] for i in p]) for lv, p in zip(levels, picks)]
    h = [np.mean([ent[lv][i] for i in p]) for lv, p in zip(levels, picks)]
    taus.append(ms._kendall(a, h))
    weights.append(1.0)
  taus, weights = np.asarray(taus), np.asarray(weights) / len(weights)
  lo, hi, sd = ms.level_tau_interval(recs, "mean_entropy", -1.0, levels, num_bootstrap=20000)
  exact_sd = math.sqrt(np.sum(weights * (taus - np.sum(weights * taus)) ** 2))
  assert abs(sd - exact_sd) < 0.02, (sd, exact_sd)
  vals = np.unique(taus)
  cdf = np.asarray([weights[taus <= v].sum() for v in vals])
  assert np.min(np.abs(cdf - 0.025)) > 0.01 and np.min(np.abs(cdf - 0.975)) > 0.01  # no tie
  assert lo == vals[np.argmax(cdf >= 0.025)] and hi == vals[np.argmax(cdf >= 0.975)]
  # One seed per level: no interval.
  one = _records({0.0: [(0.9, 1.0)], 0.5: [(0.8, 2.0)], 1.0: [(0.7, 3.0)]})
  assert all(math.isnan(v) for v in ms.level_tau_interval(one, "mean_entropy", -1.0, levels))
  with pytest.raises(gbounds.InvalidInputError, match="measure"):
    ms.level_tau_interval(same, "entropy", -1.0, levels)
