"""Colored MNIST and Shuffled MNIST: the two controlled memorization settings of Bansal et al.

Bansal, Pruthi and Belinkov, "Measures of Information Reflect Memorization Patterns", NeurIPS 2022,
Sec. 4-5 and Table 2. For each setting value several MLPs (3 hidden layers of 256 ReLU units on
14 x 14 inputs) are trained to fit their training set; the mean neuron entropy and the mean
neuron-neuron KSG MI of the pre-activations of the three hidden layers (768 neurons) are computed
on held-out *unlabelled* inputs from the training distribution; and the models are ranked by
validation accuracy and by each measure (Kendall tau).

* Colored MNIST (heuristic memorization): label ``digit < 5`` with 25% of labels flipped; the
  digit is drawn in the red or the green channel (input ``14 x 14 x 2``), the colour equal to the
  (noisy) label except flipped with probability ``e``. Small ``e`` makes colour a shortcut: lower
  validation accuracy (validation colours are independent of the label), lower entropy, higher MI.
* Shuffled MNIST (example-level memorization): 10 classes; a fraction ``beta`` of the training
  labels is redrawn uniformly at random. Larger ``beta``: lower validation accuracy (clean
  validation labels), higher entropy, lower MI.

Data: the MNIST **test** split (10,000 images; the only MNIST split in the offline data
directory), shuffled with a fixed seed and split in half: models train on examples from the first
5,000; validation accuracy and the measures use disjoint parts of the other 5,000. Images are
downsampled from 28 x 28 to 14 x 14 by 2 x 2 average pooling.

Orientation for Kendall tau: a measure is scored so that larger should mean better validation
accuracy: ``+entropy`` and ``-MI`` for Colored MNIST, ``-entropy`` and ``+MI`` for Shuffled MNIST
(the paper's expected directions); tau = 1 means the measure ranks the settings exactly as the
labelled metric does.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt

import gbounds.data as _data
import gbounds.info as _info
import gbounds.models as _models
import gbounds.train as _train
from gbounds._src import errors as _errors
from gbounds._src import progress as _progress
from gbounds._src import results as _results
from gbounds.data import colored_mnist, colorize, shuffled_labels


class Setting(enum.Enum):
  """The two controlled settings.

  COLORED: heuristic memorization (colour shortcut); parameter ``e``, colour-flip probability.
  SHUFFLED: example-level memorization; parameter ``beta``, fraction of redrawn labels.
  """
  COLORED = "colored"
  SHUFFLED = "shuffled"


COLORED_LEVELS = (0.0, 0.125, 0.25, 0.375, 0.5)
SHUFFLED_LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)
PAPER_KENDALL_TAU = {"colored": {"entropy": 1.00, "mi": 1.00},
                     "shuffled": {"entropy": 1.00, "mi": 0.88}}


@dataclasses.dataclass(frozen=True)
class SettingsConfig(_results.ResultMixin):
  """Sizes of a reproduction run (defaults: the small CPU run, a few minutes).

  Attributes:
    seeds: models per setting level (different data draws, label noise, init).
    n_train: training examples per model (from the first half of the MNIST test split).
    n_val: labelled validation examples (second half) for the validation accuracy.
    n_measure: unlabelled held-out inputs (second half, disjoint from validation) for the measures.
    epochs: training epochs (Adam, mini-batches of ``batch_size``), enough to fit the training
      labels, noise included.
    batch_size: mini-batch size.
    learning_rate: Adam step size.
    hidden: MLP hidden widths (the paper: 3 x 256).
    bins: histogram bins (global binning) for the entropy.
    k: KSG neighbour order.
    mi_neurons: neurons subsampled (seeded, per model) for the pairwise MI, out of 768.
    label_noise: Colored MNIST label-flip probability (the paper: 0.25).
    seed: base seed.
  """
  # duplicates: a config's field list, the same shape as other configs' (e.g.
  # analysis.AnalysisConfig); different fields and defaults, not shared logic
  seeds: int = 3
  n_train: int = 2000
  n_val: int = 2000
  n_measure: int = 1000
  epochs: int = 60
  batch_size: int = 100
  learning_rate: float = 1e-3
  hidden: tuple[int, ...] = (256, 256, 256)
  bins: int = 100
  k: int = 3
  mi_neurons: int = 48
  label_noise: float = 0.25
  seed: int = 0

  def __post_init__(self):
    for name in ("seeds", "n_train", "n_val", "n_measure", "epochs", "batch_size", "bins", "k",
                 "mi_neurons"):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        _errors.fail(name, "a positive integer", repr(v))
    if self.n_train > 5000 or self.n_val + self.n_measure > 5000:
      _errors.fail("n_train / n_val + n_measure", "at most 5000 each (halves of the MNIST test "
                   "split)", (self.n_train, self.n_val + self.n_measure))
    _errors.check_real("label_noise", self.label_noise, "a probability in [0, 1]", lambda v: 0 <= v <= 1)
    _errors.check_real("learning_rate", self.learning_rate, "a positive finite number", lambda v: v > 0)
    _errors.check_int("seed", self.seed, None)
    try:
      hidden = tuple(self.hidden)
    except TypeError:
      hidden = None
    if not hidden or any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1
                         for w in hidden):
      _errors.fail("hidden", "a non-empty sequence of positive layer widths", repr(self.hidden))
    # checked here, before any training, as activation_information checks them after it
    if self.mi_neurons < 2:
      _errors.fail("mi_neurons", "an integer >= 2 (pairs of neurons)", self.mi_neurons)
    if self.bins < 2:
      _errors.fail("bins", "an integer >= 2", self.bins)
    if self.k > self.n_measure - 1:
      _errors.fail("k", f"at most n_measure - 1 = {self.n_measure - 1}", self.k)


class ModelRecord(NamedTuple):
  """One trained model: its setting level and seed, accuracies and the two measures (nats)."""
  # duplicates: the field list + to_dict/from_dict shape of every result NamedTuple;
  # different fields, not shared logic
  setting: str
  level: float
  seed: int
  train_accuracy: float
  val_accuracy: float
  mean_entropy: float
  mean_mi: float

  to_dict = _results.namedtuple_to_dict
  from_dict = classmethod(_results.from_dict)


class SettingsResult(NamedTuple):
  """All models of one setting, the per-level means and the model-selection Kendall taus.

  Attributes:
    setting: ``"colored"`` or ``"shuffled"``.
    records: one :class:`ModelRecord` per model.
    levels: the setting levels (``e`` or ``beta``).
    level_means: ``{field: per-level mean}`` for ``val_accuracy``, ``train_accuracy``,
      ``mean_entropy``, ``mean_mi``.
    tau_entropy, tau_mi: Kendall tau between validation accuracy and the oriented measure over
      the per-level means (5 points, as a ranking of the settings).
    tau_entropy_models, tau_mi_models: the same over all individual models.
    entropies, mi_values: per-level arrays of per-neuron entropies and pairwise MI values of the
      first seed's model (for box plots).
    tau_entropy_interval, tau_mi_interval: 95% percentile-bootstrap intervals of ``tau_entropy``
      and ``tau_mi`` (:func:`level_tau_interval`: the seeds of each level resampled); NaN with
      one seed per level.
    tau_entropy_sd, tau_mi_sd: the bootstrap standard deviations (the taus' standard errors).
  """
  setting: str
  records: tuple[ModelRecord, ...]
  levels: tuple[float, ...]
  level_means: dict
  tau_entropy: float
  tau_mi: float
  tau_entropy_models: float
  tau_mi_models: float
  entropies: tuple[np.ndarray, ...]
  mi_values: tuple[np.ndarray, ...]
  tau_entropy_interval: tuple[float, float] = (math.nan, math.nan)
  tau_mi_interval: tuple[float, float] = (math.nan, math.nan)
  tau_entropy_sd: float = math.nan
  tau_mi_sd: float = math.nan

  to_dict = _results.namedtuple_to_dict
  from_dict = classmethod(_results.from_dict)


# ----------------------------------------------------------------------------- data


def _downsample(x: np.ndarray) -> np.ndarray:
  """(N, 28, 28, 1) -> (N, 14, 14) by 2 x 2 average pooling."""
  n = x.shape[0]
  return x[..., 0].reshape(n, 14, 2, 14, 2).mean(axis=(2, 4)).astype(np.float32)


def _mnist_halves(data_dir, seed: int):
  x, y = _data.load_mnist("test", data_dir=data_dir)
  perm = np.random.default_rng(10_000 + seed).permutation(len(y))
  x, y = _downsample(x[perm]), y[perm]
  return (x[:5000], y[:5000]), (x[5000:], y[5000:])


# ----------------------------------------------------------------------------- experiment


def _kendall(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
  from scipy.stats import kendalltau
  # scipy's stubs omit the fields of kendalltau's result
  tau = kendalltau(np.asarray(a), np.asarray(b)).statistic  # pyright: ignore[reportAttributeAccessIssue]
  return float(tau) if np.isfinite(tau) else float("nan")


def level_tau_interval(records: Sequence[ModelRecord], measure: str, sign: float,
                       levels: Sequence[float], *, level: float = 0.95,
                       num_bootstrap: int = 2000, seed: int = 0) -> tuple[float, float, float]:
  """Percentile-bootstrap interval of the level-ranking Kendall tau.

  The tau of :func:`run_setting` ranks the levels by their mean validation accuracy and by
  their mean ``sign * measure``; its sampling noise comes from the seeds behind each mean. Each
  draw resamples, within every level, that level's models with replacement (as many as it
  has), recomputes both level means and the tau. (Bansal et al. report one tau per cell, over
  10 seeds per level, without an interval.)

  Args:
    records: the models (:class:`ModelRecord`), several per level.
    measure: ``"mean_entropy"`` or ``"mean_mi"``.
    sign: orientation of the measure (+1 or -1), as in :func:`run_setting`.
    levels: the setting levels, in order.
    level: confidence level.
    num_bootstrap: bootstrap draws.
    seed: seed of the draws (``numpy.random.default_rng``).

  Returns:
    ``(low, high, sd)``: the interval and the bootstrap standard deviation; NaNs when some level
    has fewer than two models.
  """
  if measure not in ("mean_entropy", "mean_mi"):
    _errors.fail("measure", "one of {mean_entropy, mean_mi}", repr(measure))
  _errors.check_int("num_bootstrap", num_bootstrap, 1)
  _errors.check_real("level", level, "a number in (0, 1)", lambda v: 0 < v < 1)
  acc = [np.asarray([r.val_accuracy for r in records if r.level == lv]) for lv in levels]
  val = [np.asarray([sign * getattr(r, measure) for r in records if r.level == lv])
         for lv in levels]
  if min(len(a) for a in acc) < 2:
    return math.nan, math.nan, math.nan
  rng = np.random.default_rng(seed)
  taus = np.empty(num_bootstrap)
  for b in range(num_bootstrap):
    picks = [rng.integers(0, len(a), len(a)) for a in acc]
    taus[b] = _kendall([a[i].mean() for a, i in zip(acc, picks)],
                       [v[i].mean() for v, i in zip(val, picks)])
  taus = taus[np.isfinite(taus)]
  if taus.size == 0:
    return math.nan, math.nan, math.nan
  lo, hi = np.quantile(taus, [(1 - level) / 2, (1 + level) / 2])
  return float(lo), float(hi), float(np.std(taus, ddof=1)) if taus.size > 1 else math.nan


def run_setting(setting: Setting | str, *, config: SettingsConfig = SettingsConfig(),
                levels: Sequence[float] | None = None, data_dir=None,
                log: Callable[[str], None] | None = None,
                callback: _progress.ProgressCallback | None = None) -> SettingsResult:
  """Trains ``len(levels) * config.seeds`` MLPs for one setting and computes the measures.

  Args:
    setting: :class:`Setting`.
    config: run sizes (:class:`SettingsConfig`).
    levels: setting levels (default :data:`COLORED_LEVELS` / :data:`SHUFFLED_LEVELS`).
    data_dir: the data directory with ``mnist/`` (default: ``$GBOUNDS_DATA_DIR``).
    log: receives short status lines (was ``progress``; progress is ``callback``).
    callback: ``callback(done, total)``: one unit for the training of all models, then one per
      model's measures (``total = 1 + len(levels) * config.seeds``).

  Returns:
    :class:`SettingsResult`.
  """
  setting = _errors.as_enum("setting", setting, Setting)
  if not isinstance(config, SettingsConfig):
    _errors.fail("config", "a gbounds.experiments.SettingsConfig", type(config).__name__)
  colored = setting is Setting.COLORED
  if levels is not None:
    try:
      arr = np.asarray(levels, dtype=float)
    except (TypeError, ValueError):
      arr = None
    if (arr is None or arr.ndim != 1 or arr.size < 1 or not np.all(np.isfinite(arr))
        or np.any(arr < 0) or np.any(arr > 1)):
      _errors.fail("levels", f"a non-empty list of {'e' if colored else 'beta'} values in "
                   "[0, 1]", repr(levels))
  levels = tuple(float(v) for v in (levels if levels is not None else
                                    (COLORED_LEVELS if colored else SHUFFLED_LEVELS)))
  say = log or (lambda msg: None)
  (xa, ya), (xb, yb) = _mnist_halves(data_dir, config.seed)
  xv_grey, yv_digit = xb[:config.n_val], yb[:config.n_val]
  xm_grey, ym_digit = xb[config.n_val:config.n_val + config.n_measure], \
      yb[config.n_val:config.n_val + config.n_measure]

  xs, ys, xvs, yvs, xms, meta = [], [], [], [], [], []
  for li, level in enumerate(levels):
    for s in range(config.seeds):
      rs = config.seed * 1000 + li * 100 + s
      rng = np.random.default_rng(rs)
      idx = rng.choice(len(ya), size=config.n_train, replace=False)
      if colored:
        x, y = colored_mnist(xa[idx], ya[idx], e=level, label_noise=config.label_noise, seed=rs)
        # validation: clean labels, colour independent of the label; measures: training
        # distribution (same e and label noise), labels unused
        yv = (yv_digit < 5).astype(np.int32)
        xv = colorize(xv_grey, np.random.default_rng(rs + 1).integers(0, 2, len(yv)))
        xm, _ = colored_mnist(xm_grey, ym_digit, e=level, label_noise=config.label_noise,
                              seed=rs + 2)
      else:
        x, y = xa[idx], shuffled_labels(ya[idx], beta=level, seed=rs)
        xv, yv, xm = xv_grey, yv_digit, xm_grey
      xs.append(x)
      ys.append(y)
      xvs.append(xv)
      yvs.append(yv)
      xms.append(xm)
      meta.append((level, s, rs))

  m = len(meta)
  out = 2 if colored else 10
  model = _models.MLP(hidden=tuple(config.hidden), out=out)
  pool_x = np.concatenate(xs)
  pool_y = np.concatenate(ys)
  train_idx = np.arange(m * config.n_train).reshape(m, config.n_train)
  keys = jax.vmap(jax.random.key)(jnp.asarray([r for _, _, r in meta]))
  params0 = _train.init_many(model, jnp.asarray(xs[0][:1]), keys)
  steps = _train.steps_for_epochs(config.epochs, config.n_train, config.batch_size)
  tconf = _train.TrainConfig(optimizer=_train.Optimizer.ADAM, learning_rate=config.learning_rate,
                             steps=steps, batch_size=config.batch_size, seed=config.seed)
  def apply_fn(p, x) -> jax.Array:
    # flax types apply() as maybe (output, variables); without mutable= it is the output
    return model.apply({"params": p}, x)  # pyright: ignore[reportReturnType]

  say(f"{setting.value}: training {m} MLPs for {steps} steps")
  trained = _train.train_many(apply_fn, params0, pool_x, pool_y, train_idx, tconf).params
  _progress.notify(callback, 1, 1 + m)

  records, ents, mis = [], {}, {}
  for j, (level, s, rs) in enumerate(meta):
    say(f"{setting.value}: measures for level {level}, seed {s}")
    p = jax.tree_util.tree_map(lambda a: a[j], trained)
    tr_acc = float(_train.accuracy(apply_fn(p, jnp.asarray(xs[j])), jnp.asarray(ys[j])))
    va_acc = float(_train.accuracy(apply_fn(p, jnp.asarray(xvs[j])), jnp.asarray(yvs[j])))
    acts = _models.stack_activations(_models.capture_activations(model, p, xms[j]))
    info = _info.activation_information(
        acts, bins=config.bins, k=config.k, mi_neurons=config.mi_neurons, seed=rs)
    records.append(ModelRecord(setting.value, level, s, tr_acc, va_acc,
                               float(info.mean_entropy), float(info.mean_mi)))
    if s == 0:
      ents[level] = np.asarray(info.entropies)
      mis[level] = np.asarray(info.mi.values)
    _progress.notify(callback, 2 + j, 1 + m)

  fields = ("train_accuracy", "val_accuracy", "mean_entropy", "mean_mi")
  means = {f: [float(np.mean([getattr(r, f) for r in records if r.level == lv])) for lv in levels]
           for f in fields}
  sign_h, sign_i = (1.0, -1.0) if colored else (-1.0, 1.0)
  tau_h = _kendall(means["val_accuracy"], sign_h * np.asarray(means["mean_entropy"]))
  tau_i = _kendall(means["val_accuracy"], sign_i * np.asarray(means["mean_mi"]))
  va = [r.val_accuracy for r in records]
  tau_hm = _kendall(va, [sign_h * r.mean_entropy for r in records])
  tau_im = _kendall(va, [sign_i * r.mean_mi for r in records])
  lo_h, hi_h, sd_h = level_tau_interval(records, "mean_entropy", sign_h, levels,
                                        seed=config.seed)
  lo_i, hi_i, sd_i = level_tau_interval(records, "mean_mi", sign_i, levels, seed=config.seed)
  return SettingsResult(setting.value, tuple(records), levels, means, tau_h, tau_i, tau_hm,
                        tau_im, tuple(ents[lv] for lv in levels), tuple(mis[lv] for lv in levels),
                        (lo_h, hi_h), (lo_i, hi_i), sd_h, sd_i)


class MemorizationReproduction(NamedTuple):
  """Both settings and the model-selection table (:func:`model_selection_table`)."""
  colored: SettingsResult
  shuffled: SettingsResult
  config: SettingsConfig

  to_dict = _results.namedtuple_to_dict
  from_dict = classmethod(_results.from_dict)

  def table(self) -> _results.Table:
    """Kendall tau per setting and measure beside the paper's Table 2.

    Returns:
      :class:`gbounds.Table` with columns ``setting, measure, tau (levels), 95% low, 95% high,
      tau (models), paper`` (the interval: :func:`level_tau_interval`).
    """
    rows = []
    for res in (self.colored, self.shuffled):
      for meas, t, (lo, hi), tm in (
          ("entropy", res.tau_entropy, res.tau_entropy_interval, res.tau_entropy_models),
          ("mi", res.tau_mi, res.tau_mi_interval, res.tau_mi_models)):
        rows.append((res.setting, meas, t, lo, hi, tm, PAPER_KENDALL_TAU[res.setting][meas]))
    return _results.Table(("setting", "measure", "tau (levels)", "95% low", "95% high",
                           "tau (models)", "paper"),
                          tuple(rows), "Model selection by activation information "
                          "(Bansal et al., NeurIPS 2022, Table 2)")


def reproduce_activation_information(*, config: SettingsConfig = SettingsConfig(), data_dir=None,
                                     log: Callable[[str], None] | None = None,
                                     callback: _progress.ProgressCallback | None = None,
                                     ) -> MemorizationReproduction:
  """Runs Colored MNIST and Shuffled MNIST (Bansal et al., NeurIPS 2022, Table 2).

  Default sizes (:class:`SettingsConfig`): 5 levels x 3 seeds per setting, 2,000 training
  examples per model, 60 epochs, measures on 1,000 held-out inputs (entropy over all 768 neurons,
  MI over 48 subsampled neurons = 1,128 pairs): a few minutes on a laptop CPU.

  Args:
    config: run sizes.
    data_dir: the data directory with ``mnist/``.
    log: receives short status lines.
    callback: ``callback(done, total)`` over both settings (training, then each model's
      measures).

  Returns:
    :class:`MemorizationReproduction`.
  """
  return MemorizationReproduction(
      run_setting(Setting.COLORED, config=config, data_dir=data_dir, log=log,
                  callback=None if callback is None else
                  (lambda done, total: callback(done, 2 * total))),
      run_setting(Setting.SHUFFLED, config=config, data_dir=data_dir, log=log,
                  callback=None if callback is None else
                  (lambda done, total: callback(total + done, 2 * total))),
      config)


def model_selection_table(result: MemorizationReproduction) -> str:
  """A plain-text table: per-level means and Kendall tau vs. the paper's Table 2.

  Args:
    result: both settings.

  Returns:
    The text.
  """
  lines = []
  for res in (result.colored, result.shuffled):
    name = "e" if res.setting == "colored" else "beta"
    lines.append(f"{res.setting} MNIST")
    lines.append(f"  {name:>6} {'train acc':>9} {'val acc':>8} {'mean H':>8} {'mean MI':>8}")
    for i, lv in enumerate(res.levels):
      lm = res.level_means
      lines.append(f"  {lv:6.3f} {lm['train_accuracy'][i]:9.3f} {lm['val_accuracy'][i]:8.3f} "
                   f"{lm['mean_entropy'][i]:8.4f} {lm['mean_mi'][i]:8.4f}")
  lines.append("")
  lines.append(f"{'setting':>9} {'measure':>8} {'tau (levels)':>12} {'tau (models)':>12} "
               f"{'paper':>6}")
  for res in (result.colored, result.shuffled):
    for meas, t, tm in (("entropy", res.tau_entropy, res.tau_entropy_models),
                        ("mi", res.tau_mi, res.tau_mi_models)):
      lines.append(f"{res.setting:>9} {meas:>8} {t:12.2f} {tm:12.2f} "
                   f"{PAPER_KENDALL_TAU[res.setting][meas]:6.2f}")
  return "\n".join(lines)


def result_to_json(result: MemorizationReproduction) -> dict:
  """A JSON-ready summary (no per-neuron arrays; :meth:`MemorizationReproduction.to_dict` has
  them all).

  Args:
    result: both settings.

  Returns:
    The dict.
  """
  def one(res: SettingsResult) -> dict:
    return {"setting": res.setting, "levels": list(res.levels), "level_means": res.level_means,
            "tau_entropy": res.tau_entropy, "tau_mi": res.tau_mi,
            "tau_entropy_models": res.tau_entropy_models, "tau_mi_models": res.tau_mi_models,
            "tau_entropy_interval": list(res.tau_entropy_interval),
            "tau_mi_interval": list(res.tau_mi_interval),
            "tau_entropy_sd": res.tau_entropy_sd, "tau_mi_sd": res.tau_mi_sd,
            "paper_tau": PAPER_KENDALL_TAU[res.setting],
            "records": [r._asdict() for r in res.records]}
  return {"colored": one(result.colored), "shuffled": one(result.shuffled),
          "config": dataclasses.asdict(result.config),
          "data": "MNIST test split (10,000), halves: train pool / held-out"}
