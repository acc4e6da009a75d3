"""Registry of the published tables and figures gbounds reproduces (``gbounds reproduce``).

Each :class:`Target` names a paper's table or figure, a CPU-sized default configuration (each
meant to finish in under 30 minutes on 2 CPU cores) and a ``full`` paper-sized configuration for
a GPU, and a runner that returns our numbers beside the published ones as a
:class:`Reproduction`. Targets hold the experiment functions themselves (a registry of callables,
no module strings); ``requires`` names the optional third-party modules a target needs, so a
target whose optional dependency is missing is listed as unavailable instead of breaking the
listing.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import json
import math
import os
import pathlib
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

import gbounds.analysis as _analysis
import gbounds.bounds as _bounds
import gbounds.data as _data
import gbounds.geometry as _geometry
import gbounds.models as _models
import gbounds.train as _train
from gbounds._src import errors as _errors
from gbounds._src import io as _io
from gbounds._src import provenance as _provenance
from gbounds._src import results as _results
from gbounds.experiments import (
  _certificates,
  _fcmi,
  _memorization,
  _published,
  _sample_info,
  _weight_info,
)


class Comparison(NamedTuple):
  """One reproduced quantity: ours beside the published value, its tolerance and the verdict.

  Attributes:
    quantity: what is compared (the key of the target's published table).
    ours: our value (a number, a boolean answer or text).
    published: the published value (NaN when nothing is published; text for a qualitative
      claim).
    tolerance: the allowance used, ``max(tolerance, 2 SE)`` (NaN when nothing was compared).
    verdict: ``agree``, ``disagree``, ``not comparable``, ``unconfirmed`` or "" (nothing
      published).
    source: where the published value comes from (paper, table or figure, how it was read).
    ours_se: our run's standard error of ``ours`` (NaN when the run supplies none).
    reason: why the verdict (the difference against the allowance, or why not comparable).
  """
  quantity: str
  ours: Any
  published: Any
  tolerance: float = math.nan
  verdict: str = ""
  source: str = ""
  ours_se: float = math.nan
  reason: str = ""

  to_dict = _results.namedtuple_to_dict
  from_dict = classmethod(_results.from_dict)


# What a target's runner returns: ``(rows, payload, figures, text)``.
RunnerResult = tuple[Sequence[Comparison], dict[str, Any], tuple[_analysis.ReportFigure, ...], str]

COLUMNS = ("quantity", "ours", "published", "tolerance", "verdict", "source")


def compare(name: str, rows: Sequence[Comparison],
            resolved_config: dict[str, Any]) -> tuple[Comparison, ...]:
  """Puts the published value, tolerance and verdict of target ``name`` beside our rows.

  Each row whose quantity has a record in :data:`gbounds.experiments.PUBLISHED` gets that
  record's value, source and :func:`gbounds.experiments.verdict` (with our standard error and
  the target's configuration check on ``resolved_config``); the other rows keep their own
  ``published`` value and get no verdict.

  Args:
    name: a target name.
    rows: our :class:`Comparison` rows (``ours`` and ``ours_se`` are used).
    resolved_config: the configuration the run resolved to (see :func:`resolved_config`).

  Returns:
    The rows with ``published, tolerance, verdict, source, reason`` filled in.
  """
  table = _published.published_table(name)
  out = []
  for r in rows:
    pub = table.get(r.quantity)
    if pub is None:
      out.append(r._replace(tolerance=math.nan, verdict="", source="", reason=""))
      continue
    v = _published.verdict(pub, r.ours, ours_se=r.ours_se,
                           differs=table.differs(resolved_config, r.quantity))
    tol = v.threshold if math.isfinite(v.threshold) else pub.tolerance
    out.append(r._replace(published=pub.value, tolerance=tol, verdict=v.verdict,
                          source=f"{pub.source}; {pub.how_read}", reason=v.reason))
  return tuple(out)


@dataclasses.dataclass(frozen=True)
class Reproduction:
  """Result of one target: the comparison rows, the raw result as JSON and any figures.

  Attributes:
    name: the target's registry key.
    title: the paper's table or figure and the citation.
    config: the configuration the runner got.
    rows: ours beside the published value, one :class:`Comparison` per quantity.
    payload: the runner's raw result as JSON values.
    figures: report figures (PNG bytes; not part of :meth:`to_dict`).
    text: preformatted text the runner printed (a table of its own).
    seconds: wall time.
    resolved_config: every configuration key the run used, defaults included (JSON values).
    provenance: versions of Python, gbounds and the numeric stack, seeds, date, run time and
      the host's CPU count (see :func:`provenance`).
  """
  name: str
  title: str
  config: dict
  rows: tuple[Comparison, ...]
  payload: dict
  figures: tuple[_analysis.ReportFigure, ...] = ()
  text: str = ""
  seconds: float = 0.0
  resolved_config: dict = dataclasses.field(default_factory=dict)
  provenance: dict = dataclasses.field(default_factory=dict)

  def to_dict(self) -> dict:
    """The result as JSON values (figures left out: they are PNG bytes).

    Returns:
      ``{"name", "title", "config", "rows", "payload", "text", "seconds", "resolved_config",
      "provenance"}``.
    """
    return {"name": self.name, "title": self.title, "config": _results.encode(self.config),
            "rows": [r.to_dict() for r in self.rows], "payload": _results.encode(self.payload),
            "text": self.text, "seconds": float(self.seconds),
            "resolved_config": _results.encode(self.resolved_config),
            "provenance": _results.encode(self.provenance)}

  @classmethod
  def from_dict(cls, data: dict) -> Reproduction:
    """Rebuilds a reproduction from :meth:`to_dict` output (without figures), or from the
    ``report.json`` that ``gbounds reproduce`` writes (``"result"`` for ``"payload"``); older
    files without tolerance, verdict or provenance load with those left empty.

    Args:
      data: a dict as :meth:`to_dict` returns it.

    Returns:
      The :class:`Reproduction`.
    """
    payload = data["payload"] if "payload" in data else data.get("result", {})
    return cls(data["name"], data["title"], dict(data["config"]),
               tuple(Comparison.from_dict(r) for r in data["rows"]), dict(payload),
               (), data.get("text", ""), float(data.get("seconds", 0.0)),
               dict(data.get("resolved_config") or {}), dict(data.get("provenance") or {}))

  def with_published(self) -> Reproduction:
    """The same result with the published values and verdicts of the current published table
    (:data:`gbounds.experiments.PUBLISHED`), our numbers untouched.

    Returns:
      A new :class:`Reproduction`.
    """
    if self.name not in _published.PUBLISHED:
      return self
    return dataclasses.replace(self, rows=compare(self.name, self.rows,
                                                  self.resolved_config or self.config))

  def table(self) -> _results.Table:
    """Ours beside the published value per quantity, with tolerance, verdict and source.

    Returns:
      :class:`gbounds.Table` with columns ``quantity, ours, published, tolerance, verdict,
      source``.
    """
    return _results.Table(COLUMNS, self._cells(), self.title)

  def _cells(self) -> tuple[tuple[Any, ...], ...]:
    return tuple((r.quantity, r.ours, r.published, r.tolerance, r.verdict, r.source)
                 for r in self.rows)

  def _report_table(self) -> _analysis.ReportTable:
    return _analysis.ReportTable(self.name, self.title, COLUMNS, self._cells())

  def _provenance_table(self) -> _analysis.ReportTable:
    flat = {**{f"version.{k}": v for k, v in self.provenance.get("versions", {}).items()},
            **{k: v for k, v in self.provenance.items() if k not in ("versions", "seeds")},
            **{f"seed.{k}": v for k, v in self.provenance.get("seeds", {}).items()},
            **{f"config.{k}": v for k, v in self.resolved_config.items()}}
    rows = tuple((k, v if isinstance(v, (str, int, float, bool)) else json.dumps(v))
                 for k, v in flat.items())
    return _analysis.ReportTable("provenance", f"Provenance of {self.name}", ("key", "value"),
                                 rows)

  def format(self) -> str:
    """The comparison as aligned text; the source column holds ``[k]`` and the sources are
    listed under the table.

    Returns:
      The text.
    """
    sources: list[str] = []
    rows = []
    for c in self._cells():
      src = c[-1]
      if src and src not in sources:
        sources.append(src)
      rows.append((*c[:-1], f"[{sources.index(src) + 1}]" if src else ""))
    text = _analysis.format_table(_analysis.ReportTable(self.name, self.title, COLUMNS,
                                                        tuple(rows)))
    return "\n".join([text, *(f"[{i}] {s}" for i, s in enumerate(sources, 1))])

  def report(self) -> _analysis.Report:
    """The report written by ``gbounds reproduce`` (JSON, CSV, HTML): ``NAME.csv`` holds the
    comparison, ``provenance.csv`` the provenance and resolved configuration as key, value.

    Returns:
      The report.
    """
    sec = _analysis.ReportSection(
        self.title, (f"Configuration: {self.config}", f"{self.seconds:.1f} s"),
        (self._report_table(), self._provenance_table()), self.figures, self.text)
    return _analysis.Report(f"gbounds reproduce {self.name}",
                     {"name": self.name, "title": self.title, "config": self.config,
                      "rows": [r.to_dict() for r in self.rows], "result": self.payload,
                      "seconds": self.seconds, "resolved_config": self.resolved_config,
                      "provenance": self.provenance}, (sec,))


@dataclasses.dataclass(frozen=True)
class Target:
  """A reproducible table or figure.

  Attributes:
    name: registry key.
    title: the paper's table/figure.
    paper: citation.
    requires: optional third-party modules (``"sklearn"``, ``"scipy"``) that must import for it
      to run.
    cpu: CPU-sized configuration (keyword arguments of the runner).
    full: paper-sized configuration (GPU).
    runner: ``runner(config, *, data_dir, out_dir, progress) -> (rows, payload, figures, text)``.
    cpu_minutes: measured (or estimated, stated) minutes of the CPU default on 2 cores.
    accepts: ``accepts() -> {key: default}`` of the configuration keys the runner understands;
      ``None``: not checked.
    resolve: ``resolve(config) -> {key: value}``, the whole configuration the runner will use
      (defaults filled in), computed without running; ``None``: the preset and overrides over
      the defaults of ``accepts``.
    quantities: ``quantities(resolved_config) -> names``, the quantities of the rows the runner
      produces for that configuration whatever its results (rows named after a result, such as
      the tightest bound's name, are left out).
    float64: the runner needs 64-bit JAX types, which the caller enables around
      :func:`reproduce` (``with jax.enable_x64(True):``; ``gbounds reproduce`` does); the
      library never switches them itself.
  """
  name: str
  title: str
  paper: str
  requires: tuple[str, ...]
  cpu: dict
  full: dict
  runner: Callable[..., RunnerResult]
  cpu_minutes: str = ""
  accepts: Callable[[], dict[str, Any]] | None = None
  resolve: Callable[[dict[str, Any]], dict[str, Any]] | None = None
  quantities: Callable[[dict[str, Any]], tuple[str, ...]] | None = None
  float64: bool = False

  def available(self) -> tuple[bool, str]:
    """Whether every required third-party module imports.

    Returns:
      ``(True, "")``, or ``(False, reason)``.
    """
    for mod in self.requires:
      try:
        if importlib.util.find_spec(mod) is None:
          return False, f"module {mod} not found"
        importlib.import_module(mod)
      except ImportError as e:
        return False, f"module {mod} does not import ({e})"
    return True, ""


def _f(v) -> float:
  try:
    return float(v)
  except (TypeError, ValueError):
    return math.nan


NO_DEFAULT = inspect.Parameter.empty  # a key without a default in target_keys


def _params_of(obj: Callable, *, drop: tuple[str, ...] = ()) -> Callable[[], dict[str, Any]]:
  """``{keyword parameter: default}`` of a function (a dataclass: its fields)."""
  def accepts() -> dict[str, Any]:
    if dataclasses.is_dataclass(obj):
      out = {f.name: (f.default if f.default is not dataclasses.MISSING else NO_DEFAULT)
             for f in dataclasses.fields(obj)}
    else:
      out = {n: p.default for n, p in inspect.signature(obj).parameters.items()
             if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    return {k: v for k, v in out.items() if k not in drop}
  return accepts


def _fcmi_keys() -> dict[str, Any]:
  return {"scale": "cpu", **_params_of(_fcmi.FcmiProtocol)()}


def _fcmi_resolve(config: dict[str, Any]) -> dict[str, Any]:
  cfg = dict(config)
  scale = cfg.pop("scale", "cpu")
  if scale not in _fcmi.PROTOCOLS:
    _errors.fail("scale", f"one of {sorted(_fcmi.PROTOCOLS)}", repr(scale))
  return {"scale": scale, **_fcmi.PROTOCOLS[scale](**cfg).to_json()}


_PAC_BAYES_RUN_KEYS = {"split": "test", "n_train": 4000, "n_test": 2000, "hidden": [600],
                       "epochs": 20, "learning_rate": 0.1}


def _pac_bayes_keys() -> dict[str, Any]:
  return {**_PAC_BAYES_RUN_KEYS, **_params_of(
      _bounds.pac_bayes_certificate,
      drop=("apply_fn", "params", "init_params", "x_train", "y_train", "x_test", "y_test",
            "callback"))()}


def _type_name(v) -> str:
  if isinstance(v, bool):
    return "a boolean"
  if isinstance(v, int):
    return "an integer"
  if isinstance(v, float):
    return "a number"
  if isinstance(v, (list, tuple)):
    return "a list"
  if isinstance(v, str):
    return "a string"
  return type(v).__name__


def _same_kind(value, preset) -> bool:
  """``value`` is of the kind of ``preset`` (ints for ints, numbers for floats, lists for
  lists, strings for strings, booleans for booleans); other presets are not checked."""
  num = (int, float, np.integer, np.floating)
  if isinstance(preset, bool):
    return isinstance(value, bool)
  if isinstance(preset, (int, np.integer)):
    return (isinstance(value, (int, np.integer)) and not isinstance(value, bool)) or (
        isinstance(value, (float, np.floating)) and math.isfinite(value)
        and value == int(value))
  if isinstance(preset, (float, np.floating)):
    return isinstance(value, num) and not isinstance(value, bool)
  if isinstance(preset, (list, tuple)):
    return isinstance(value, (list, tuple))
  if isinstance(preset, str):
    return isinstance(value, str)
  return True


def check_overrides(name: str, overrides: dict) -> None:
  """Checks configuration ``overrides`` of target ``name`` before anything runs.

  Unknown keys (not understood by the target's runner) and values of another kind than the
  preset's (an integer where the preset has an integer, a list for a list, ...) raise
  :class:`gbounds.InvalidInputError` naming the key; the command line's ``--set KEY=VALUE``
  goes through here.

  Args:
    name: a target name.
    overrides: configuration keys and values.

  Returns:
    None.
  """
  if not isinstance(name, str) or name not in TARGETS:
    _errors.fail("name", f"one of {sorted(TARGETS)}", repr(name))
  if not isinstance(overrides, dict):
    _errors.fail("overrides", "a dict of configuration keys", type(overrides).__name__)
  t = TARGETS[name]
  if t.accepts is not None:
    try:
      known = t.accepts()
    except (ImportError, AttributeError):  # an unavailable target is reported by reproduce
      known = None
    known = None if known is None else set(known)
    if known is not None:
      unknown = sorted(k for k in overrides if k not in known)
      if unknown:
        _errors.fail("overrides", f"configuration keys of {name} among {sorted(known)}",
                     f"unknown key(s) {unknown}")
  presets = {**t.full, **t.cpu}
  for key, value in overrides.items():
    if key in presets and not _same_kind(value, presets[key]):
      _errors.fail(key, f"{_type_name(presets[key])} (as the preset's {presets[key]!r})",
                   repr(value))


# ----------------------------------------------------------------------------- row plans


def _fcmi_quantities(cfg: dict[str, Any]) -> tuple[str, ...]:
  return tuple(f"n={n}: {q}" for n in cfg["ns"]
               for q in ("f-CMI bound", "measured gap", "test error"))


def _lambda_tag(lam: float) -> str:
  """The key suffix of a weight decay in :func:`gbounds.experiments.reproduce_sample_info`."""
  return "lambda0" if lam == 0 else f"lambda{lam:g}"


def _sample_info_quantities(cfg: dict[str, Any]) -> tuple[str, ...]:
  out = [f"{kind}_{_lambda_tag(lam)}" for lam in cfg["weight_decays"]
         for kind in ("weights", "predictions", "weights_elementwise")]
  if cfg.get("mislabeled_n"):
    out += ["mislabeled_auroc", "mislabeled_precision_at_noise_rate"]
  return tuple(out)


def _pac_bayes_quantities(cfg: dict[str, Any]) -> tuple[str, ...]:
  del cfg
  return ("test error (deterministic network)", "stochastic test error",
          "PAC-Bayes-kl certificate", "McAllester certificate", "Catoni certificate",
          "KL(Q||P) (nats)")


def _certificates_quantities(cfg: dict[str, Any]) -> tuple[str, ...]:
  return tuple(f"{task}: {q}" for task in cfg["tasks"]
               for q in ("certificate", "prior, n_bound, goal",
                         "held-out bound of the prior network", "KL(Q||P) (nats)",
                         "test error, trained network / Gibbs", "seconds, training / certificate"))


def _synthetic_quantities(cfg: dict[str, Any]) -> tuple[str, ...]:
  return tuple(f"n={n}: {q}" for n in cfg["ns"]
               for q in ("measured gap", "tightest bound is a loss-difference (ld-CMI) bound",
                         "every bound >= gap"))


def _limit_method_name(m: Any) -> str:
  return _weight_info.LimitMethod[m.upper()].name.lower() if isinstance(m, str) else \
      _weight_info.LimitMethod(m).name.lower()


def _limit_quantities(cfg: dict[str, Any]) -> tuple[str, ...]:
  methods = [_limit_method_name(m) for m in cfg["methods"]]
  out = [f"noise {r:.0%} {m}: test acc / flipped memorized" for r in cfg["noise_rates"]
         for m in methods]
  if "cross_entropy" in methods and "limit_g" in methods:
    out += [f"noise {r:.0%}: {q}" for r in sorted(cfg["noise_rates"])
            for q in ("LIMIT test accuracy >= CE", "LIMIT memorizes fewer flipped labels than CE")]
  return tuple(out)


def _supervision_quantities(cfg: dict[str, Any]) -> tuple[str, ...]:
  names = ["one_hot", *(f"teacher_T={t:g}" for t in cfg["temperatures"]), "one_hot_50%_noise"]
  return (*(f"{t}: complexity / ||Y||_F" for t in names),
          "teacher labels: lower normalized complexity than one-hot",
          "one-hot: lower normalized complexity than 50% noisy labels")


def _permuted_quantities(cfg: dict[str, Any]) -> tuple[str, ...]:
  del cfg
  return ("final: permuted-label fit (memorization)", "final: test accuracy",
          "rewinding the last layers restores test accuracy more than the first")


def _activation_quantities(cfg: dict[str, Any]) -> tuple[str, ...]:
  del cfg
  return tuple(f"{s} MNIST: Kendall tau, mean {m} vs val. accuracy"
               for s in ("colored", "shuffled") for m in ("entropy", "mi"))


def planned_quantities(name: str, resolved: dict[str, Any]) -> tuple[str, ...]:
  """The quantities target ``name`` produces rows for under the resolved configuration
  (without running it; rows named after a result are left out).

  Args:
    name: a target name.
    resolved: its resolved configuration (:func:`resolved_config`).

  Returns:
    The quantity names, in the runner's order.
  """
  if not isinstance(name, str) or name not in TARGETS:
    _errors.fail("name", f"one of {sorted(TARGETS)}", repr(name))
  t = TARGETS[name]
  return () if t.quantities is None else tuple(t.quantities(dict(resolved)))


# ----------------------------------------------------------------------------- runners


def target_keys(name: str) -> dict[str, Any] | None:
  """The configuration keys target ``name`` accepts, with their defaults.

  Args:
    name: a target name (see :func:`list_targets`).

  Returns:
    ``{key: default}`` (``NO_DEFAULT`` where the runner has none), or None when the target does
    not say (nothing is refused then).
  """
  if not isinstance(name, str) or name not in TARGETS:
    _errors.fail("name", f"one of {sorted(TARGETS)}", repr(name))
  t = TARGETS[name]
  if t.accepts is None:
    return None
  try:
    return dict(t.accepts())
  except (ImportError, AttributeError):
    return None


def _run_fcmi(config, *, data_dir, out_dir, progress):
  fe = _fcmi
  cfg = dict(config)
  scale = cfg.pop("scale", "cpu")
  rep = fe.reproduce_fcmi(data_dir=data_dir, out_dir=out_dir, scale=scale, progress=progress,
                          **cfg)
  rows = []
  for r in rep.table.rows:  # SE: sd over the k1 supersamples / sqrt(k1) (NaN for k1 = 1)
    rows += [Comparison(f"n={r.n}: f-CMI bound", r.fcmi_bound, math.nan,
                        ours_se=_f(r.fcmi_bound_se)),
             Comparison(f"n={r.n}: measured gap", r.gap, math.nan, ours_se=_f(r.gap_se)),
             Comparison(f"n={r.n}: test error", r.test_error, math.nan,
                        ours_se=_f(r.test_error_se))]
  figs = ()
  if out_dir is not None and (pathlib.Path(out_dir) / "fcmi.png").exists():
    figs = (_analysis.ReportFigure("fcmi_plot", "f-CMI bound, gap and test error against n",
                      (pathlib.Path(out_dir) / "fcmi.png").read_bytes(),
                      "Dashed/dotted: published (Harutyunyan et al. 2021, standard variant)."),)
  return rows, {"rows": [r._asdict() for r in rep.table.rows],
                "protocol": rep.table.protocol}, figs, rep.format()


def _run_synthetic(config, *, data_dir, out_dir, progress):
  res = _fcmi.make_classification_study(**config)
  rows = []
  for r in res:
    tight = min(r.bounds.items(), key=lambda kv: kv[1]) if r.bounds else ("none", math.nan)
    valid = all(v >= r.gap - 1e-12 for v in r.bounds.values())
    rows += [Comparison(f"n={r.n}: measured gap", r.gap, math.nan),
             Comparison(f"n={r.n}: tightest bound ({tight[0]})", tight[1], math.nan),
             Comparison(f"n={r.n}: tightest bound is a loss-difference (ld-CMI) bound",
                        str(tight[0]).startswith("ldcmi"), math.nan),
             Comparison(f"n={r.n}: every bound >= gap", valid, math.nan)]
  return rows, {"rows": [r._asdict() for r in res]}, (), ""


def _run_limit(config, *, data_dir, out_dir, progress):
  res = _weight_info.reproduce_limit(data_dir=data_dir, **config)
  rows = [Comparison(f"noise {r.noise_rate:.0%} {r.method}: test acc / flipped memorized",
                     f"{r.test_accuracy:.3f} / {_f(r.memorized_fraction):.3f}", math.nan)
          for r in res.rows]
  by = {(r.noise_rate, r.method): r for r in res.rows}
  for rate in sorted({r.noise_rate for r in res.rows}):
    ce, lim = by.get((rate, "cross_entropy")), by.get((rate, "limit_g"))
    if ce is None or lim is None:
      continue
    rows += [Comparison(f"noise {rate:.0%}: LIMIT test accuracy >= CE",
                        bool(lim.test_accuracy >= ce.test_accuracy), math.nan),
             Comparison(f"noise {rate:.0%}: LIMIT memorizes fewer flipped labels than CE",
                        bool(_f(lim.memorized_fraction) < _f(ce.memorized_fraction)), math.nan)]
  return rows, {"rows": [dataclasses.asdict(r) for r in res.rows],
                "settings": res.settings}, (), res.markdown()


def _run_supervision(config, *, data_dir, out_dir, progress):
  res = _weight_info.reproduce_supervision_complexity(data_dir=data_dir, **config)
  rows = [Comparison(f"{r.targets}: complexity / ||Y||_F", r.normalized, math.nan)
          for r in res.rows]
  norm = {r.targets: r.normalized for r in res.rows}
  teachers = [v for k, v in norm.items() if k.startswith("teacher")]
  if "one_hot" in norm and teachers:
    rows.append(Comparison("teacher labels: lower normalized complexity than one-hot",
                           bool(max(teachers) < norm["one_hot"]), math.nan))
  noisy = [v for k, v in norm.items() if "noise" in k]
  if "one_hot" in norm and noisy:
    rows.append(Comparison("one-hot: lower normalized complexity than 50% noisy labels",
                           bool(norm["one_hot"] < min(noisy)), math.nan))
  return rows, {"rows": [dataclasses.asdict(r) for r in res.rows],
                "settings": res.settings}, (), res.markdown()


def _permuted_figures(res) -> list:
  """The geometry and rewinding figures, drawn by ``gbounds.viz.plot_layer_geometry_grid`` and
  ``gbounds.viz.plot_rewinding`` (no pyplot, no global matplotlib state)."""
  import gbounds.viz as _viz
  figs = []
  draw_geometry = _viz.plot_layer_geometry_grid
  draw_rewinding = _viz.plot_rewinding
  try:
    if draw_geometry is not None:
      fig, axes = _io.new_figure(figsize=(12, 9), nrows=3, ncols=3, sharex=True, sharey="row")
      draw_geometry(axes, res)
      fig.tight_layout()
      figs.append(_analysis.ReportFigure("permuted_geometry", "Permuted labels: geometry",
                            _io.figure_png(fig)))
    if draw_rewinding is not None:
      fig, ax = _io.new_figure(figsize=(6, 4))
      draw_rewinding(ax, res)
      fig.tight_layout()
      figs.append(_analysis.ReportFigure("permuted_rewinding", "Permuted labels: rewinding",
                            _io.figure_png(fig)))
  except Exception:  # noqa: BLE001 -- a figure is optional; the numbers are the result
    pass
  return figs


def _run_permuted(config, *, data_dir, out_dir, progress):
  cfg = _geometry.PermutedLabelConfig(**config)
  res = _geometry.permuted_label_experiment(cfg, data_dir=data_dir)
  rows = []
  last = res.history[-1]
  rows.append(Comparison("final: permuted-label fit (memorization)", last.train_permuted_fit,
                         math.nan))
  rows.append(Comparison("final: test accuracy", last.test_accuracy, math.nan))
  for r in res.rewinding:
    rows.append(Comparison(f"rewind {r.direction} {r.n_layers} layer(s): test acc / permuted fit",
                           f"{r.test_accuracy:.3f} / {r.train_permuted_fit:.3f}", math.nan))
  best = {d: max((r.test_accuracy for r in res.rewinding if r.direction == d), default=math.nan)
          for d in ("first", "last")}
  rows.append(Comparison("rewinding the last layers restores test accuracy more than the first",
                         bool(best["last"] > best["first"]), math.nan))
  return rows, res.to_dict(), tuple(_permuted_figures(res)), ""


def _run_sample_info(config, *, data_dir, out_dir, progress):
  cfg = dict(config)
  cfg.setdefault("progress", False)
  res = _sample_info.reproduce_sample_info(data_dir=data_dir, **cfg)
  n = min(int(res.settings.get("num_retrained", 0) or 0), int(res.settings.get("n_train", 0) or 0))
  rows = [Comparison(k, v, math.nan, ours_se=_pearson_se(v, n) if k.startswith(
      ("weights_lambda", "predictions_lambda")) else math.nan) for k, v in res.ours.items()]
  return rows, res.to_dict(), (), ""


def _sample_info_paper_keys() -> dict[str, Any]:
  return _params_of(_sample_info.reproduce_sample_info_paper,
                    drop=("out_dir", "data_dir", "log"))()


def _sample_info_paper_quantities(cfg: dict[str, Any]) -> tuple[str, ...]:
  tag = _lambda_tag(cfg["l2_coef"] * cfg["n_train"])
  return tuple(f"{kind}_{tag}{what}" for kind in ("weights", "predictions")
               for what in ("", ": Fisher 95% interval", ": bootstrap 95% interval")) + (
                   "retrained leave-one-out networks (random subset)",)


def _run_sample_info_paper(config, *, data_dir, out_dir, progress):
  del progress  # the run logs one line per finished chunk instead
  cfg = dict(config)
  with tempfile.TemporaryDirectory() as tmp:
    res = _sample_info.reproduce_sample_info_paper(out_dir if out_dir is not None else tmp,
                                                   data_dir=data_dir, **cfg)
  tag = _lambda_tag(float(res.settings.get("l2_coef", cfg.get("l2_coef", 0.0)))
                    * int(res.settings.get("n_train", cfg.get("n_train", 1000))))
  rows = []
  for kind, ci in (("weights", res.weights), ("predictions", res.predictions)):
    rows += [Comparison(f"{kind}_{tag}", ci.r, math.nan, ours_se=_pearson_se(ci.r, ci.count)),
             Comparison(f"{kind}_{tag}: Fisher 95% interval",
                        f"[{ci.fisher_low:.3f}, {ci.fisher_high:.3f}]", math.nan),
             Comparison(f"{kind}_{tag}: bootstrap 95% interval",
                        f"[{ci.bootstrap_low:.3f}, {ci.bootstrap_high:.3f}]", math.nan)]
  rows.append(Comparison("retrained leave-one-out networks (random subset)",
                         f"{res.weights.count} of {res.num_requested} asked", math.nan))
  return rows, res.to_dict(), (), res.table().to_text()


def _pearson_se(r: float, n: int) -> float:
  """Approximate standard error of a Pearson ``r`` over ``n`` pairs, ``(1 - r^2) / sqrt(n - 3)``
  (the delta method through Fisher's z, whose SE is ``1 / sqrt(n - 3)``)."""
  r = _f(r)
  return (1 - r * r) / math.sqrt(n - 3) if n > 3 and math.isfinite(r) else math.nan


def _run_pac_bayes(config, *, data_dir, out_dir, progress):
  cfg = dict(config)
  for key in ("delta", "delta_mc"):  # checked again by the certificate, but only after training
    if key in cfg:
      _errors.check_open_unit_interval(key, cfg[key])
  for key, lo in (("mc_samples", 1), ("selection_samples", 1), ("batch_size", 1), ("epochs", 1),
                  ("n_train", 1), ("n_test", 1)):
    if key in cfg:
      _errors.check_int(key, cfg[key], lo, what=f"an integer >= {lo}")
  x, y = _data.load_mnist(cfg.pop("split", "test"), data_dir=data_dir)
  y = (y >= 5).astype(np.int32)  # binary MNIST of Dziugaite & Roy: digits 0-4 vs 5-9
  n_train, n_test = cfg.pop("n_train"), cfg.pop("n_test")
  if n_train + n_test > len(y):
    _errors.fail("n_train + n_test", f"at most the {len(y)} examples of the split",
                 n_train + n_test)
  xtr, ytr, xte, yte = _data.train_test_split(x, y, test_fraction=n_test / len(y), seed=0)
  xtr, ytr = xtr[:n_train], ytr[:n_train]
  hidden = tuple(cfg.pop("hidden"))
  epochs = cfg.pop("epochs")
  m = _models.as_model_fn(_models.MLP(hidden, 2), example_input=xtr[:1], key=0)
  tc = _train.TrainConfig(optimizer=_train.Optimizer.SGD, learning_rate=cfg.pop("learning_rate"),
                          batch_size=100, steps=_train.steps_for_epochs(epochs, n_train, 100))
  trained = _train.train(m.apply_fn, m.params, xtr, ytr, tc).params
  cert = _bounds.pac_bayes_certificate(m.apply_fn, trained, m.params, xtr, ytr, x_test=xte,
                                          y_test=yte, callback=progress, **cfg)
  err = float(np.mean(np.asarray(jax.numpy.argmax(m.apply_fn(trained, xte), -1))
                      != np.asarray(yte)))
  rows = [Comparison("test error (deterministic network)", err, math.nan,
                     ours_se=math.sqrt(err * (1 - err) / len(yte))),
          Comparison("stochastic test error", cert.stochastic_test_error, math.nan),
          Comparison("PAC-Bayes-kl certificate", cert.pac_bayes_kl, math.nan),
          Comparison("McAllester certificate", cert.mcallester, math.nan),
          Comparison("Catoni certificate", cert.catoni, math.nan),
          Comparison("KL(Q||P) (nats)", cert.kl, math.nan)]
  return rows, cert.to_dict(), (), ""


def _run_certificates(config, *, data_dir, out_dir, progress):
  cfg = dict(config)
  sub = None if out_dir is None else pathlib.Path(out_dir) / "certificates"
  study = _certificates.reproduce_certificates(data_dir=data_dir, out_dir=sub, callback=progress,
                                               **cfg)
  rows = []
  for r in study.results:
    c = r.certificate
    rows += [
        Comparison(f"{r.task}: certificate", c.certificate, math.nan),
        Comparison(f"{r.task}: prior, n_bound, goal", f"{c.prior}, {c.n_bound}, <= {r.goal:g}",
                   math.nan),
        Comparison(f"{r.task}: held-out bound of the prior network", c.heldout_bound, math.nan),
        Comparison(f"{r.task}: Monte Carlo term ({c.mc_draws} draws)",
                   c.mc_error_bound - c.mc_error, math.nan),
        Comparison(f"{r.task}: KL(Q||P) (nats)", c.kl, math.nan),
        Comparison(f"{r.task}: test error, trained network / Gibbs",
                   f"{c.trained_test_error:.4f} / {c.gibbs_test_error:.4f}", math.nan),
        Comparison(f"{r.task}: seconds, training / certificate",
                   f"{r.train_seconds:.0f} / {r.certify_seconds:.0f}", math.nan)]
  return rows, study.to_dict(), (), study.table().to_text()


def _run_activation(config, *, data_dir, out_dir, progress):
  ms = _memorization
  res = ms.reproduce_activation_information(config=ms.SettingsConfig(**config),
                                            data_dir=data_dir, callback=progress)
  rows = []
  for r in (res.colored, res.shuffled):
    for meas, tau, (lo, hi), sd in (
        ("entropy", r.tau_entropy, r.tau_entropy_interval, r.tau_entropy_sd),
        ("mi", r.tau_mi, r.tau_mi_interval, r.tau_mi_sd)):
      name = f"{r.setting} MNIST: Kendall tau, mean {meas} vs val. accuracy"
      paper = ms.PAPER_KENDALL_TAU[r.setting][meas]
      rows += [Comparison(name, tau, math.nan, ours_se=_f(sd)),
               Comparison(f"{name}: bootstrap 95% interval (seeds resampled per level)",
                          f"[{_f(lo):.2f}, {_f(hi):.2f}]", math.nan),
               Comparison(f"{name}: paper's {paper:.2f} inside our interval",
                          # (the taus are ratios of counts: 1 may come back as 1 - 1e-16)
                          bool(_f(lo) - 1e-9 <= paper <= _f(hi) + 1e-9)
                          if math.isfinite(_f(lo)) else "no interval (one seed per level)",
                          math.nan)]
  return rows, ms.result_to_json(res), (), ms.model_selection_table(res)


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("fcmi_mnist_4v9", "f-CMI bound vs n, MNIST 4 vs 9 (Table/Fig. 1)",
           "Harutyunyan et al., NeurIPS 2021", (),
           {"scale": "paper_cnn"}, {"scale": "full"}, _run_fcmi,
           "~90 min (the paper's CNN and recipe, k1 x k2 = 3 x 8, n 75/250; scale=cpu: an MLP "
           "512-512, 5 x 20, ~10 min; see gbounds.experiments.reproduce_fcmi)",
           _fcmi_keys, _fcmi_resolve, _fcmi_quantities),
    Target("sample_info_correlation",
           "Linearized vs retrained leave-one-out change, Pearson r (Table 1, MLP column)",
           "Harutyunyan et al., ICLR 2021", (), {},
           {"n_train": 1000, "width": 1024, "steps": 2000, "num_retrained": 1000,
            "weight_decays": [0.0, 1000.0], "mislabeled_n": 1000}, _run_sample_info,
           "~1 min (see gbounds.experiments.reproduce_sample_info)",
           _params_of(_sample_info.reproduce_sample_info, drop=("data_dir", "log")),
           quantities=_sample_info_quantities),
    Target("sample_info_paper",
           "Linearized vs retrained leave-one-out change at the paper's configuration (Table 1, "
           "MLP, lambda = 0): width 1024, n = 1000, 2000 steps, a random retrained subset",
           "Harutyunyan et al., ICLR 2021", (),
           {"num_retrained": 100, "chunk_size": 1},
           {"num_retrained": 1000, "chunk_size": 4}, _run_sample_info_paper,
           "~160 min (about 90 s per retrained network on 2 cores; resumable, time_budget_s "
           "stops it early)",
           _sample_info_paper_keys, quantities=_sample_info_paper_quantities, float64=True),
    Target("pac_bayes_binary_mnist",
           "PAC-Bayes certificate of an MLP on binary MNIST (Table 1, T-600)",
           "Dziugaite & Roy, UAI 2017", (),
           {"n_train": 4000, "n_test": 2000, "hidden": [600], "epochs": 20,
            "learning_rate": 0.1, "mc_samples": 200},
           {"split": "train", "n_train": 55000, "n_test": 5000, "hidden": [600], "epochs": 20,
            "learning_rate": 0.1, "mc_samples": 1000}, _run_pac_bayes, "~3 min",
           _pac_bayes_keys, quantities=_pac_bayes_quantities),
    Target("pac_bayes_certificates",
           "Optimised PAC-Bayes certificates of trained MLPs, learnt and data-free priors",
           "Perez-Ortiz et al., JMLR 2021; Dziugaite & Roy, UAI 2017", (),
           {"tasks": list(_certificates.TASKS)},
           {"tasks": list(_certificates.TASKS), "certify": {"mc_draws": 150_000}},
           _run_certificates,
           "~10 min (three tasks; see gbounds.experiments.reproduce_certificates)",
           _params_of(_certificates.reproduce_certificates, drop=("data_dir", "out_dir",
                                                                  "callback")),
           quantities=_certificates_quantities),
    Target("wang_mao_synthetic", "CMI bounds on make_classification (Fig. 1)",
           "Wang & Mao, ICML 2023",
           ("sklearn",),
           {"ns": [5, 10, 20], "k1": 10, "k2": 30},
           {"ns": [5, 10, 20, 30, 50], "k1": 50, "k2": 100}, _run_synthetic, "~2 min",
           _params_of(_fcmi.make_classification_study), quantities=_synthetic_quantities),
    Target("limit_label_noise", "Test accuracy and memorization under label noise, CE vs LIMIT",
           "Harutyunyan et al., ICML 2020",
           (), {"epochs": 10},
           {"dataset": "fashion_mnist", "n_train": 60000, "n_test": 10000, "epochs": 200},
           _run_limit, "see gbounds.experiments.reproduce_limit",
           _params_of(_weight_info.reproduce_limit, drop=("data_dir", "callback")),
           quantities=_limit_quantities),
    Target("supervision_complexity", "Supervision complexity of one-hot vs teacher labels",
           "Harutyunyan et al., ICLR 2023",
           (), {},
           {"n_student": 2000, "teacher_epochs": 50}, _run_supervision,
           "see gbounds.experiments.reproduce_supervision_complexity",
           _params_of(_weight_info.reproduce_supervision_complexity, drop=("data_dir",)),
           quantities=_supervision_quantities),
    Target("permuted_label_geometry",
           "Manifold geometry and layer rewinding under permuted labels (Figs. 2-5)",
           "Stephenson et al., ICLR 2021", (), {},
           {"n_train": 10000, "epochs": 100, "n_per_manifold": 50, "n_t": 300},
           _run_permuted, "5-10 min (PermutedLabelConfig defaults)",
           _params_of(_geometry.PermutedLabelConfig), quantities=_permuted_quantities),
    Target("activation_information",
           "Activation entropy / neuron MI on Colored and Shuffled MNIST (Table 2)",
           "Bansal et al., NeurIPS 2022",
           ("scipy",), {"seeds": 10},
           {"seeds": 10, "n_train": 5000, "epochs": 100, "mi_neurons": 768}, _run_activation,
           "~5 min (10 seeds per level, as the paper; 279 s measured; see "
           "gbounds.experiments.reproduce_activation_information)",
           _params_of(_memorization.SettingsConfig), quantities=_activation_quantities),
)}


def list_targets() -> list[dict]:
  """Every target with its availability.

  Returns:
    One dict per target: ``name, title, paper, available, reason, cpu, full, cpu_minutes``.
  """
  out = []
  for t in TARGETS.values():
    ok, why = t.available()
    out.append({"name": t.name, "title": t.title, "paper": t.paper, "available": ok,
                "reason": why, "cpu": t.cpu, "full": t.full, "cpu_minutes": t.cpu_minutes})
  return out


def resolved_config(name: str, *, full: bool = False, **overrides) -> dict[str, Any]:
  """The whole configuration target ``name`` runs with (defaults filled in), as JSON values,
  computed without running it; two runs with equal resolved configurations compute the same.

  Args:
    name: a target name.
    full: the paper-sized preset.
    **overrides: configuration keys replacing the preset's (checked as by :func:`reproduce`).

  Returns:
    ``{key: value}`` (JSON values).
  """
  if not isinstance(name, str) or name not in TARGETS:
    _errors.fail("name", f"one of {sorted(TARGETS)}", repr(name))
  check_overrides(name, overrides)
  t = TARGETS[name]
  config = {**(t.full if full else t.cpu), **overrides}
  if t.resolve is not None:
    return _results.encode(t.resolve(dict(config)))
  defaults = {}
  if t.accepts is not None:
    try:
      defaults = {k: v for k, v in t.accepts().items()
                  if v is not NO_DEFAULT and not callable(v)}
    except (ImportError, AttributeError):
      defaults = {}
  return _results.encode({**defaults, **config})


def _seeds(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in config.items():
    if isinstance(v, dict):
      out.update(_seeds(v, f"{prefix}{k}."))
    elif "seed" in k.lower():
      out[prefix + k] = v
  return out


def provenance(resolved: dict[str, Any], *, started: float, seconds: float) -> dict[str, Any]:
  """What a reproduction ran on: versions, seeds, date, run time, host.

  Args:
    resolved: the resolved configuration (its ``*seed*`` keys are the seeds).
    started: start time (seconds since the epoch).
    seconds: wall time of the run.

  Returns:
    ``{"versions": {python, gbounds, jax, jaxlib, flax, optax, numpy}, "seeds": {...},
    "date_utc", "seconds", "cpu_count", "platform"}``.
  """
  return {"versions": _provenance.versions(), "seeds": _seeds(resolved),
          "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
          "seconds": float(seconds), "cpu_count": os.cpu_count() or 0,
          "platform": platform.platform()}


def reproduce(name: str, *, full: bool = False, data_dir: str | os.PathLike | None = None,
              out_dir: str | os.PathLike | None = None,
              progress: Callable[[int, int], None] | None = None,
              **overrides) -> Reproduction:
  """Runs target ``name`` (CPU default, or the paper-sized config with ``full=True``) and puts
  the published numbers, tolerances and verdicts beside ours (:func:`compare`).

  Args:
    name: a key of :data:`TARGETS` (see :func:`list_targets`).
    full: the paper-sized configuration (meant for a GPU).
    data_dir: the data directory.
    out_dir: where the runner may keep resumable intermediate results and figures.
    progress: ``progress(done, total)`` for runners that report it.
    **overrides: configuration keys replacing the preset's (checked by
      :func:`check_overrides` before anything runs: unknown keys and values of the wrong kind
      raise :class:`gbounds.InvalidInputError`).

  Returns:
    :class:`Reproduction` with our numbers beside the published ones, the resolved
    configuration and the provenance.
  """
  if not isinstance(name, str) or name not in TARGETS:
    _errors.fail("name", f"one of {sorted(TARGETS)}", repr(name))
  t = TARGETS[name]
  ok, why = t.available()
  if not ok:
    raise _errors.GBoundsError(f"reproduce {name}: not available in this installation ({why}).")
  check_overrides(name, overrides)
  if t.float64 and jax.dtypes.canonicalize_dtype(np.float64) != np.float64:
    _errors.fail("jax_enable_x64", f"64-bit JAX types enabled around reproduce({name!r}) "
                 "(with jax.enable_x64(True): ...)", "disabled")
  config = {**(t.full if full else t.cpu), **overrides}
  resolved = resolved_config(name, full=full, **overrides)
  started = time.time()
  t0 = time.perf_counter()
  rows, payload, figs, text = t.runner(dict(config), data_dir=data_dir, out_dir=out_dir,
                                       progress=progress)
  seconds = time.perf_counter() - t0
  return Reproduction(name, f"{t.title} -- {t.paper}", config,
                      compare(name, rows, resolved), payload, tuple(figs), text, seconds,
                      resolved, provenance(resolved, started=started, seconds=seconds))


def load_reproduction(out_dir: str | os.PathLike) -> Reproduction | None:
  """A finished reproduction read back from ``out_dir/report.json`` (written by
  ``gbounds reproduce``), with the current published values and verdicts.

  Args:
    out_dir: the target's output directory.

  Returns:
    :class:`Reproduction`, or None when there is no readable ``report.json`` there.
  """
  path = pathlib.Path(out_dir) / "report.json"
  try:
    data = json.loads(path.read_text())
    return Reproduction.from_dict(data).with_published()
  except (OSError, ValueError, KeyError, TypeError):
    return None


__all__ = ["COLUMNS", "NO_DEFAULT", "TARGETS", "Comparison", "Reproduction", "Target",
           "check_overrides", "compare", "list_targets", "load_reproduction", "planned_quantities",
           "provenance",
           "reproduce", "resolved_config", "target_keys"]
