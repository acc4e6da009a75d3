"""Supersample experiments: many trainings on random halves of supersamples, resumable.

The conditional-mutual-information bounds (Steinke & Zakynthinou, 2020; Harutyunyan et al.,
NeurIPS 2021, sec. 2-3; Hellstrom & Durisi, 2022; Wang & Mao, 2023) are estimated from a
*supersample experiment*:

1. draw ``k1`` supersamples ``Z~`` of ``2n`` examples from a pool, arranged in ``n`` pairs;
2. for each supersample draw ``k2`` masks ``U ~ Bernoulli(1/2)^n`` and train one model on
   ``S = Z~_U`` (example ``U_i`` of pair ``i``; the other one is the *ghost*);
3. record every model's predictions on all ``2n`` supersample examples, its per-pair 0-1 losses
   and its error on a separate test set.

:func:`run_supersample` does this with the foundation's trainer (the per-model program of
:func:`gbounds.train_many`, compiled once per run): the ``k1 * k2`` models are trained in
chunks (``vmap`` or a sequential ``lax.map`` per :class:`gbounds.MapStrategy`); each
finished chunk is written atomically (``.npz`` + ``.json`` with the resolved configuration and
package versions) to a results directory, and a killed run resumes where it stopped, with no
lost or duplicated work. Model ``j = a * k2 + b``
(supersample ``a``, mask ``b``) initialises from ``fold_in(key(init_seed), j)`` and draws its
mini-batches from ``fold_in(key(train.seed), j)``, so its run does not depend on the chunking,
on resuming or on how the supersamples are split over processes.

:func:`run_linearized_supersample` replaces SGD by the closed-form gradient-descent dynamics of
the linearized network (Lee et al., 2019; :func:`gbounds.gd_coefficients`): one empirical NTK of
the ``2n`` supersample and test points per supersample, then a batched solve over the masks.

Layout conventions (as in the public f-CMI code): pair ``i`` of supersample ``a`` is pool rows
``supersample_idx[a, i, 0]`` and ``supersample_idx[a, i, 1]``; a model's training example of
pair ``i`` is column ``masks[a, b, i]``.
"""

from __future__ import annotations

import dataclasses
import enum
import glob
import hashlib
import json
import os
import pathlib
import platform
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from gbounds import _errors
from gbounds import _io
from gbounds._dynamics import Time, gd_coefficients
from gbounds._ntk import NtkOutput, empirical_ntk_fn
from gbounds._train import MapStrategy, TrainConfig, _resolve_strategy, _train_one

_MODEL_AXIS = "models"
_FORMAT_VERSION = 1


class SupersampleDesign(NamedTuple):
  """The random design of a supersample experiment (no training involved).

  Attributes:
    supersample_idx: ``(k1, n, 2)`` int pool indices; pair ``i`` of supersample ``a``.
    masks: ``(k1, k2, n)`` int in {0, 1}; model ``(a, b)`` trains on
      ``supersample_idx[a, i, masks[a, b, i]]``.
  """
  supersample_idx: np.ndarray
  masks: np.ndarray


class SupersampleResult(NamedTuple):
  """Everything a supersample experiment records (arrays over the supersamples it ran).

  Attributes:
    supersample_ids: ``(k1_local,)`` which of the ``k1`` supersamples these rows are.
    supersample_idx: ``(k1_local, n, 2)`` pool indices of the pairs.
    masks: ``(k1_local, k2, n)`` in {0, 1}.
    labels: ``(k1_local, n, 2)`` int labels of the pairs.
    predictions: ``(k1_local, k2, n, 2, K)`` model outputs (logits, or linearized outputs) on
      both examples of every pair.
    losses: ``(k1_local, k2, n, 2)`` 0-1 losses (argmax != label) on both examples of every pair.
    test_error: ``(k1_local, k2)`` 0-1 error on the separate test set (NaN without one).
    final_loss: ``(k1_local, k2)`` final training objective (NaN in linearized mode).
    config: the resolved configuration (a JSON-able dict).
  """
  supersample_ids: np.ndarray
  supersample_idx: np.ndarray
  masks: np.ndarray
  labels: np.ndarray
  predictions: np.ndarray
  losses: np.ndarray
  test_error: np.ndarray
  final_loss: np.ndarray
  config: dict

  @property
  def train_losses(self) -> np.ndarray:
    """``(k1, k2, n)`` loss on each pair's training example, ``L~_{i, U_i}``."""
    return np.take_along_axis(self.losses, self.masks[..., None], axis=-1)[..., 0]

  @property
  def ghost_losses(self) -> np.ndarray:
    """``(k1, k2, n)`` loss on each pair's ghost example, ``L~_{i, 1 - U_i}``."""
    return np.take_along_axis(self.losses, 1 - self.masks[..., None], axis=-1)[..., 0]

  @property
  def train_error(self) -> float:
    """Mean training 0-1 error over models and pairs."""
    return float(np.mean(self.train_losses))

  @property
  def ghost_error(self) -> float:
    """Mean 0-1 error on the ghost examples (the f-CMI code's 'test error')."""
    return float(np.mean(self.ghost_losses))

  @property
  def gap(self) -> float:
    """Measured generalization gap: ghost error minus training error (mean over models)."""
    return self.ghost_error - self.train_error

  @property
  def mean_test_error(self) -> float:
    """Mean 0-1 error on the separate test set."""
    return float(np.mean(self.test_error))


def draw_supersamples(pool_size: int, *, n: int, k1: int, k2: int, seed: int = 0
                      ) -> SupersampleDesign:
  """Draws ``k1`` supersamples of ``2n`` distinct pool rows and ``k2`` masks for each.

  Each supersample is a uniform draw without replacement from the pool (different supersamples
  may share rows, as independent draws from a finite pool do); masks are i.i.d. Bernoulli(1/2).
  Both come from ``numpy.random.default_rng(seed)``, supersample ``a`` from its own stream
  ``default_rng([seed, a])``, so the design of supersample ``a`` does not depend on ``k1``.
  """
  for name, v in (("pool_size", pool_size), ("n", n), ("k1", k1), ("k2", k2)):
    if int(v) != v or v < 1:
      _errors.fail(name, "a positive integer", v)
  if k2 < 2:
    _errors.fail("k2", "at least 2 masks per supersample (MI needs several runs)", k2)
  if 2 * n > pool_size:
    _errors.fail("n", f"at most half the pool ({pool_size // 2} for a pool of {pool_size})", n)
  idx = np.empty((k1, n, 2), np.int64)
  masks = np.empty((k1, k2, n), np.int32)
  for a in range(k1):
    rng = np.random.default_rng([int(seed), a])
    idx[a] = rng.choice(pool_size, size=2 * n, replace=False).reshape(n, 2)
    masks[a] = rng.integers(0, 2, size=(k2, n), dtype=np.int32)
  return SupersampleDesign(idx, masks)


def check_masks(name: str, masks: Any, *, n: int | None = None) -> np.ndarray:
  """Validates a ``(k1, k2, n)`` mask array in {0, 1} with ``k2 >= 2``."""
  masks = np.asarray(masks)
  _errors.check_rank(name, masks, 3)
  _errors.check_binary(name, masks)
  if masks.shape[1] < 2:
    _errors.fail(f"{name}.shape[1] (k2)", "at least 2 masks per supersample", masks.shape[1])
  if n is not None and masks.shape[2] != n:
    _errors.fail(f"{name}.shape[2] (n)", f"{n} pairs", masks.shape[2])
  return masks.astype(np.int32)


def model_mesh(devices: Any = None) -> jax.sharding.Mesh:
  """A 1-D mesh over ``devices`` (default: all devices) with the axis ``"models"``.

  The axis is of type ``Auto``: the compiler propagates the model-axis sharding of the
  parameters through the (unchanged) training program; models never communicate.
  """
  auto = (jax.sharding.AxisType.Auto,)
  if devices is None:
    return jax.make_mesh((jax.device_count(),), (_MODEL_AXIS,), axis_types=auto)
  devices = list(devices)
  return jax.sharding.Mesh(np.asarray(devices), (_MODEL_AXIS,), axis_types=auto)


def package_versions() -> dict:
  out = {"python": platform.python_version()}
  for mod in ("jax", "jaxlib", "flax", "optax", "numpy"):
    try:
      out[mod] = __import__(mod).__version__
    except Exception:  # pragma: no cover
      out[mod] = None
  from gbounds import __version__
  out["gbounds"] = __version__
  return out


def _fingerprint(*arrays) -> str:
  h = hashlib.sha256()
  for a in arrays:
    a = np.ascontiguousarray(np.asarray(a))
    h.update(str((a.shape, a.dtype.str)).encode())
    h.update(a.tobytes())
  return h.hexdigest()[:16]


def _describe(model) -> str:
  """A run-independent description of the model (no memory addresses)."""
  if callable(model) and not hasattr(model, "init"):
    name = getattr(model, "__qualname__", type(model).__name__)
    return f"{getattr(model, '__module__', '?')}.{name}"
  return repr(model)


def _jsonable(v):
  return json.loads(json.dumps(v, default=_io._default))


def _local_supersamples(k1: int, process_index: int, process_count: int) -> np.ndarray:
  if int(process_count) != process_count or process_count < 1:
    _errors.fail("process_count", "a positive integer", process_count)
  if int(process_index) != process_index or not 0 <= process_index < process_count:
    _errors.fail("process_index", f"an integer in [0, {process_count})", process_index)
  return np.arange(process_index, k1, process_count)


# ----------------------------------------------------------------------------- results dir


class _Store:
  """Chunk files in a results directory: ``chunk_<first id>.npz`` then its ``.json`` marker.

  A chunk counts as done only when its JSON exists; the JSON is written after the npz, both
  atomically, so a crash leaves either a finished chunk or nothing that counts.
  """

  def __init__(self, path, config: dict):
    self.path = pathlib.Path(path)
    self.path.mkdir(parents=True, exist_ok=True)
    self.config = config
    self.digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    cfg_file = self.path / "config.json"
    if cfg_file.exists():
      old = json.loads(cfg_file.read_text())
      if old.get("config_digest") != self.digest:
        _errors.fail("results_dir", "a directory of a run with the same configuration (or a new "
                     "directory)", f"{self.path} holding a run with a different configuration")
    else:
      _io.atomic_write_json(cfg_file, {"config": config, "config_digest": self.digest,
                                       "versions": package_versions()})

  def done(self) -> dict[int, pathlib.Path]:
    """Model id -> npz file of every finished chunk."""
    out = {}
    for js in sorted(glob.glob(str(self.path / "chunk_*.json"))):
      meta = json.loads(pathlib.Path(js).read_text())
      if meta.get("config_digest") != self.digest:
        _errors.fail("results_dir", "chunks of the same configuration", f"{js} (different run)")
      npz = pathlib.Path(js).with_suffix(".npz")
      for i in meta["model_ids"]:
        if i in out:
          _errors.fail("results_dir", "each model in one chunk", f"model {i} twice")
        out[int(i)] = npz
    return out

  def write(self, ids: np.ndarray, arrays: dict, extra: dict) -> None:
    stem = self.path / f"chunk_{int(ids[0]):07d}"
    _io.atomic_write_npz(stem.with_suffix(".npz"), model_ids=ids, **arrays)
    _io.atomic_write_json(stem.with_suffix(".json"), {
        "model_ids": [int(i) for i in ids], "config_digest": self.digest,
        "config": self.config, "versions": package_versions(), **extra})


def _assemble(per_model: dict[int, dict], local: np.ndarray, k2: int, design: SupersampleDesign,
              labels: np.ndarray, config: dict) -> SupersampleResult:
  def stack(key):
    return np.stack([np.stack([per_model[a * k2 + b][key] for b in range(k2)]) for a in local])
  return SupersampleResult(
      supersample_ids=local, supersample_idx=design.supersample_idx[local],
      masks=design.masks[local], labels=labels[local], predictions=stack("predictions"),
      losses=stack("losses"), test_error=stack("test_error"), final_loss=stack("final_loss"),
      config=config)


def _load_models(files: dict[int, pathlib.Path], wanted) -> dict[int, dict]:
  out, cache = {}, {}
  for i in wanted:
    f = files[i]
    if f not in cache:
      with np.load(f) as z:
        cache[f] = {k: z[k] for k in z.files}
    z = cache[f]
    row = int(np.flatnonzero(z["model_ids"] == i)[0])
    out[i] = {k: v[row] for k, v in z.items() if k != "model_ids"}
  return out


# ----------------------------------------------------------------------------- SGD harness


def _check_pool(x_pool, y_pool, x_test, y_test):
  _errors.check_nonempty("x_pool", x_pool)
  _errors.check_same_leading(("x_pool", "y_pool"), x_pool, y_pool)
  _errors.check_rank("y_pool", y_pool, 1)
  if not np.issubdtype(np.asarray(y_pool).dtype, np.integer):
    _errors.fail("y_pool", "integer class labels", np.asarray(y_pool).dtype)
  if (x_test is None) != (y_test is None):
    _errors.fail("x_test/y_test", "both or neither", "only one")
  if x_test is not None:
    _errors.check_same_leading(("x_test", "y_test"), x_test, y_test)
    if np.shape(x_test)[1:] != np.shape(x_pool)[1:]:
      _errors.fail("x_test", f"examples of shape {np.shape(x_pool)[1:]}", np.shape(x_test)[1:])


def _predict_fn(apply_fn, strategy: MapStrategy):
  """``(params (m, ...), x (m, b, ...)) -> (m, b, K)`` with each model on its own inputs."""
  if strategy == MapStrategy.VMAP:
    return jax.jit(jax.vmap(apply_fn))
  return jax.jit(lambda p, x: jax.lax.map(lambda a: apply_fn(*a), (p, x)))


def _train_fn(apply_fn, config: TrainConfig, strategy: MapStrategy):
  """The per-chunk program of :func:`gbounds.train_many`, compiled once per run.

  ``train_many`` builds (and compiles) a fresh program on every call; the harness calls it
  chunk by chunk, so it keeps one compiled program instead. Same per-model function
  (``_train_one``) and the same batch-order keys ``fold_in(key(config.seed), model_id)``, so the
  results equal ``train_many(..., model_ids=ids)`` (checked in the tests).
  """
  def one(p, x, y, idx, key):
    return _train_one(apply_fn, config, p, x, y, idx, key)

  def keys_of(ids):
    return jax.vmap(lambda i: jax.random.fold_in(jax.random.key(config.seed), i))(ids)

  if strategy == MapStrategy.VMAP:
    return jax.jit(lambda p, x, y, idx, ids: jax.vmap(one, in_axes=(0, None, None, 0, 0))(
        p, x, y, idx, keys_of(ids)))
  return jax.jit(lambda p, x, y, idx, ids: jax.lax.map(
      lambda a: one(a[0], x, y, a[1], a[2]), (p, idx, keys_of(ids))))


def _test_error_fn(apply_fn, strategy: MapStrategy):
  def err(p, x, y):
    return jnp.mean(jnp.argmax(apply_fn(p, x), axis=-1) != y)
  if strategy == MapStrategy.VMAP:
    return jax.jit(jax.vmap(err, in_axes=(0, None, None)))
  return jax.jit(lambda p, x, y: jax.lax.map(lambda q: err(q, x, y), p))


def run_supersample(model: Any, x_pool: Any, y_pool: Any, x_test: Any = None,
                    y_test: Any = None, *, n: int, k1: int, k2: int, train: TrainConfig,
                    seed: int = 0, init_seed: int | None = None,
                    apply_fn: Callable | None = None,
                    strategy: MapStrategy | str = MapStrategy.AUTO,
                    chunk_size: int | None = None, results_dir: str | os.PathLike | None = None,
                    mesh: jax.sharding.Mesh | None = None, process_index: int = 0,
                    process_count: int = 1,
                    callback: Callable[[int, int], None] | None = None) -> SupersampleResult:
  """Runs (or resumes) a supersample experiment with SGD-trained models.

  Args:
    model: a Flax Linen module (initialised once per model with ``model.init``); or, with
      ``apply_fn`` given, a callable ``init(key, example_input) -> params``.
    x_pool, y_pool: the pool the supersamples are drawn from; ``y_pool`` int labels ``(N,)``.
    x_test, y_test: a separate test set for the test error (optional).
    n: pairs per supersample (``2n <= N``).
    k1: number of supersamples.
    k2: masks (trained models) per supersample, ``>= 2``.
    train: the :class:`gbounds.TrainConfig`; each model trains on its ``n`` examples.
    seed: seed of the design (:func:`draw_supersamples`).
    init_seed: seed of the initialisations (default ``seed``); model ``j`` uses
      ``fold_in(key(init_seed), j)``.
    apply_fn: ``apply_fn(params, x) -> (batch, K)`` when ``model`` is not a Linen module.
    strategy: :class:`gbounds.MapStrategy` for training and prediction (``VMAP`` is used when
      ``mesh`` is given).
    chunk_size: models trained per compiled call and per file (default: all of a process's).
    results_dir: write every finished chunk here and resume from what is there.
    mesh: shard the model axis of every chunk over this 1-D mesh (:func:`model_mesh`); chunks
      are padded with repeats of their last model to a multiple of the mesh size.
    process_index, process_count: this process runs supersamples ``a`` with
      ``a % process_count == process_index`` (multi-host runs share ``results_dir``).
    callback: ``callback(done, total)`` after each chunk, in models of this process.

  Returns:
    :class:`SupersampleResult` over this process's supersamples.
  """
  x_pool = np.asarray(x_pool)
  y_pool = np.asarray(y_pool)
  _check_pool(x_pool, y_pool, x_test, y_test)
  _errors.check_finite("x_pool", x_pool)
  if not isinstance(train, TrainConfig):
    _errors.fail("train", "a gbounds.TrainConfig", type(train).__name__)
  design = draw_supersamples(len(y_pool), n=n, k1=k1, k2=k2, seed=seed)
  strategy = _errors.as_enum("strategy", strategy, MapStrategy)
  if mesh is not None:
    strategy = MapStrategy.VMAP
  if chunk_size is not None and (int(chunk_size) != chunk_size or chunk_size < 1):
    _errors.fail("chunk_size", "a positive integer or None", chunk_size)
  init_seed = seed if init_seed is None else int(init_seed)
  if apply_fn is None:
    init = lambda key, x: model.init(key, x)["params"]  # noqa: E731
    apply_fn = lambda p, x: model.apply({"params": p}, x)  # noqa: E731
  else:
    init = model
  local = _local_supersamples(k1, process_index, process_count)
  ids_all = np.asarray([a * k2 + b for a in local for b in range(k2)], np.int64)
  labels = y_pool[design.supersample_idx]
  has_test = x_test is not None
  config = _jsonable({
      "mode": "sgd", "n": n, "k1": k1, "k2": k2, "seed": seed, "init_seed": init_seed,
      "model": _describe(model), "train": dataclasses.asdict(train),
      "pool": {"size": len(y_pool), "fingerprint": _fingerprint(x_pool, y_pool)},
      "test": ({"size": len(y_test), "fingerprint": _fingerprint(x_test, y_test)}
               if has_test else None),
      "format_version": _FORMAT_VERSION})
  store = None if results_dir is None else _Store(results_dir, config)
  if store is not None and not (store.path / "design.npz").exists():
    _io.atomic_write_npz(store.path / "design.npz", supersample_idx=design.supersample_idx,
                         masks=design.masks, labels=labels)
  files = {} if store is None else store.done()
  todo = np.asarray([i for i in ids_all if i not in files], np.int64)
  per_model: dict[int, dict] = _load_models(files, [i for i in ids_all if i in files])

  example = jax.device_put(x_pool[:1])
  init_fn = jax.jit(jax.vmap(
      lambda i: init(jax.random.fold_in(jax.random.key(init_seed), i), example)))
  # jax.device_put, not jnp.asarray: the latter compiles a small program per new shape.
  xj, yj = jax.device_put(x_pool), jax.device_put(y_pool)
  if has_test:
    xt, yt = jax.device_put(np.asarray(x_test)), jax.device_put(np.asarray(y_test))
  cs = len(todo) if chunk_size is None else int(chunk_size)
  resolved = None
  predict = test_err = None
  total = len(ids_all)
  done_count = total - len(todo)
  if callback is not None and done_count:
    callback(done_count, total)
  for s in range(0, len(todo), max(cs, 1)):
    ids = todo[s:s + cs]
    m = len(ids)
    # Pad with repeats of the last model: every chunk of this run then has one shape (one
    # compilation), and a multiple of the mesh size when sharded. Padded rows are dropped.
    width = cs if len(todo) > cs else m
    if mesh is not None:
      width = -(-width // mesh.size) * mesh.size
    run_ids = np.concatenate([ids, np.repeat(ids[-1:], width - m)])
    a_of, b_of = run_ids // k2, run_ids % k2
    ids_j = jax.device_put(run_ids)
    params = init_fn(ids_j)
    ss = design.supersample_idx[a_of]                                   # (m, n, 2)
    train_idx = np.take_along_axis(ss, design.masks[a_of, b_of][..., None], axis=-1)[..., 0]
    x_ss = jax.device_put(x_pool[ss.reshape(len(run_ids), 2 * n)])      # (m, 2n, ...)
    if mesh is not None:
      shard = NamedSharding(mesh, P(_MODEL_AXIS))
      params = jax.device_put(params, shard)
      x_ss = jax.device_put(x_ss, shard)
    if resolved is None:
      resolved = _resolve_strategy(strategy, params)
      predict = _predict_fn(apply_fn, resolved)
      train_fn = _train_fn(apply_fn, train, resolved)
      test_err = _test_error_fn(apply_fn, resolved) if has_test else None
    idx_j = jax.device_put(train_idx)
    if mesh is not None:
      idx_j, ids_j = jax.device_put(idx_j, shard), jax.device_put(ids_j, shard)
    out_params, out_loss = train_fn(params, xj, yj, idx_j, ids_j)
    preds = np.asarray(predict(out_params, x_ss))[:m]                   # (m, 2n, K)
    preds = preds.reshape(m, n, 2, preds.shape[-1])
    losses = (preds.argmax(-1) != labels[a_of[:m]]).astype(np.float32)
    terr = (np.asarray(test_err(out_params, xt, yt))[:m] if has_test
            else np.full(m, np.nan))
    arrays = {"predictions": preds, "losses": losses,
              "test_error": terr.astype(np.float32),
              "final_loss": np.asarray(out_loss)[:m].astype(np.float32)}
    if store is not None:
      store.write(ids, arrays, {"strategy": resolved.name.lower(),
                                "devices": 1 if mesh is None else mesh.size})
    for r, i in enumerate(ids):
      per_model[int(i)] = {k: v[r] for k, v in arrays.items()}
    done_count += m
    if callback is not None:
      callback(done_count, total)
  return _assemble(per_model, local, k2, design, labels, config)


def load_supersample_results(results_dir: str | os.PathLike) -> SupersampleResult:
  """Assembles a finished run (all processes' chunks) from its results directory."""
  path = pathlib.Path(results_dir)
  cfg_file = path / "config.json"
  if not cfg_file.exists():
    _errors.fail("results_dir", "a directory written by run_supersample", f"{path} (no config)")
  config = json.loads(cfg_file.read_text())["config"]
  store = _Store(path, config)
  files = store.done()
  k1, k2, n = config["k1"], config["k2"], config["n"]
  missing = [i for i in range(k1 * k2) if i not in files]
  if missing:
    _errors.fail("results_dir", f"all {k1 * k2} models finished", f"{len(missing)} missing")
  with np.load(path / "design.npz") as z:
    design = SupersampleDesign(z["supersample_idx"], z["masks"])
    labels = z["labels"]
  if design.masks.shape != (k1, k2, n):  # pragma: no cover
    _errors.fail("design.npz", f"masks of shape {(k1, k2, n)}", design.masks.shape)
  return _assemble(_load_models(files, range(k1 * k2)), np.arange(k1), k2, design, labels,
                   config)


# ----------------------------------------------------------------------------- linearized


class TargetEncoding(enum.IntEnum):
  """Regression targets of the linearized network's MSE training.

  Attributes:
    ONE_HOT: ``e_y`` (the usual choice; ``K`` outputs).
    CENTERED: ``e_y - 1/K`` (zero-mean targets).
  """
  ONE_HOT = 1
  CENTERED = 2


def run_linearized_supersample(model: Any, x_pool: Any, y_pool: Any, x_test: Any = None,
                               y_test: Any = None, *, n: int, k1: int, k2: int,
                               learning_rate: float = 1.0, t: float = float("inf"),
                               weight_decay: float = 0.0,
                               time: Time | str = Time.CONTINUOUS, seed: int = 0,
                               init_seed: int | None = None, apply_fn: Callable | None = None,
                               targets: TargetEncoding | str = TargetEncoding.ONE_HOT,
                               param_dtype: Any = None, ntk_chunk_size: int | None = None,
                               mask_batch_size: int = 64,
                               callback: Callable[[int, int], None] | None = None
                               ) -> SupersampleResult:
  """Supersample experiment of the linearized network, in closed form (no SGD).

  For supersample ``a`` with initial weights ``w0_a`` (``fold_in(key(init_seed), a)``, shared by
  its masks), one empirical NTK ``Theta(X_all, X~)`` between all ``2n`` supersample and test
  points and the ``2n`` supersample points is computed. Mask ``U`` trains on rows
  ``T = {2i + U_i}``; gradient descent on the summed MSE
  ``1/2 ||f_lin(w, X_T) - Y_T||^2 + lambda/2 ||w - w0||^2`` gives (see :mod:`gbounds._dynamics`)

  .. math::
     f_t(x) = f_0(x) + \\Theta(x, X_T)\\, a_t, \\qquad
     a_t = -\\varphi_t(\\Theta_{TT} + \\lambda I)\\,(f_0(X_T) - Y_T),

  computed for a batch of masks at once (one ``eigh`` of the ``nK x nK`` sub-kernel per mask).

  Args:
    model, x_pool, y_pool, x_test, y_test, n, k1, k2, seed, init_seed, apply_fn: as in
      :func:`run_supersample`.
    learning_rate, t, weight_decay, time: the dynamics (:func:`gbounds.gd_coefficients`);
      default: gradient flow to convergence (``t = inf``, the minimum-norm interpolant).
    targets: :class:`TargetEncoding`.
    param_dtype: cast the initial parameters and inputs to this dtype (e.g. ``jnp.float64``
      under ``jax_enable_x64``); default: the model's.
    ntk_chunk_size: examples per side in the NTK computation (memory).
    mask_batch_size: masks solved at once.
    callback: ``callback(done, total)`` after each supersample, in models.

  Returns:
    :class:`SupersampleResult` (``final_loss`` is NaN).
  """
  x_pool = np.asarray(x_pool)
  y_pool = np.asarray(y_pool)
  _check_pool(x_pool, y_pool, x_test, y_test)
  design = draw_supersamples(len(y_pool), n=n, k1=k1, k2=k2, seed=seed)
  targets = _errors.as_enum("targets", targets, TargetEncoding)
  time = _errors.as_enum("time", time, Time)
  _errors.check_positive("learning_rate", learning_rate)
  _errors.check_positive("weight_decay", weight_decay, strict=False)
  if np.isnan(t) or t < 0:
    _errors.fail("t", "a non-negative time (inf allowed)", t)
  if int(mask_batch_size) != mask_batch_size or mask_batch_size < 1:
    _errors.fail("mask_batch_size", "a positive integer", mask_batch_size)
  init_seed = seed if init_seed is None else int(init_seed)
  if apply_fn is None:
    init = lambda key, x: model.init(key, x)["params"]  # noqa: E731
    apply_fn = lambda p, x: model.apply({"params": p}, x)  # noqa: E731
  else:
    init = model
  labels = y_pool[design.supersample_idx]
  has_test = x_test is not None
  n_test = len(y_test) if has_test else 0
  config = _jsonable({
      "mode": "linearized", "n": n, "k1": k1, "k2": k2, "seed": seed, "init_seed": init_seed,
      "model": _describe(model), "learning_rate": learning_rate, "t": str(t),
      "weight_decay": weight_decay, "time": time, "targets": targets,
      "param_dtype": None if param_dtype is None else np.dtype(param_dtype).name,
      "pool": {"size": len(y_pool), "fingerprint": _fingerprint(x_pool, y_pool)},
      "test": ({"size": n_test, "fingerprint": _fingerprint(x_test, y_test)}
               if has_test else None),
      "versions": package_versions(), "format_version": _FORMAT_VERSION})
  ntk_fn = empirical_ntk_fn(apply_fn, output=NtkOutput.FULL, chunk_size=ntk_chunk_size)

  def solve(theta_all_ss, f0_all, r0_ss, mask, kk):
    # theta_all_ss: (N_all K, 2n K); r0_ss: (2n K,); mask: (n,) -> predictions (N_all, K).
    rows = 2 * jnp.arange(n) + mask                                           # (n,)
    cols = (rows[:, None] * kk + jnp.arange(kk)[None, :]).reshape(-1)        # (n K,)
    theta_tt = theta_all_ss[cols][:, cols]
    a_t = gd_coefficients(theta_tt, r0_ss[cols], learning_rate=learning_rate, t=t,
                          weight_decay=weight_decay, time=time)
    return (f0_all.reshape(-1) + theta_all_ss[:, cols] @ a_t).reshape(f0_all.shape)

  solve_masks = jax.jit(
      lambda th, f0, r0, masks, kk: jax.lax.map(
          lambda mk: solve(th, f0, r0, mk, kk), masks, batch_size=mask_batch_size),
      static_argnums=(4,))

  example = jax.device_put(x_pool[:1])
  init_fn = jax.jit(lambda a: init(jax.random.fold_in(jax.random.key(init_seed), a), example))
  preds_all, losses_all, terr_all = [], [], []
  for a in range(k1):
    params0 = init_fn(a)
    x_ss = x_pool[design.supersample_idx[a].reshape(-1)]                      # (2n, ...)
    x_all = np.concatenate([x_ss, x_test]) if has_test else x_ss
    if param_dtype is not None:
      params0 = jax.tree_util.tree_map(lambda v: v.astype(param_dtype), params0)
      x_ss, x_all = x_ss.astype(param_dtype), x_all.astype(param_dtype)
    x_ss, x_all = jax.device_put(x_ss), jax.device_put(x_all)
    theta = ntk_fn(x_all, x_ss, params0)                                      # (N_all K, 2nK)
    f0 = apply_fn(params0, x_all)                                             # (N_all, K)
    kk = int(f0.shape[-1])
    y_ss = jax.nn.one_hot(labels[a].reshape(-1), kk, dtype=f0.dtype)
    if targets == TargetEncoding.CENTERED:
      y_ss = y_ss - 1.0 / kk
    r0 = (f0[:2 * n] - y_ss).reshape(-1)
    preds = np.asarray(solve_masks(theta, f0, r0, jax.device_put(design.masks[a]), kk))
    p_ss = preds[:, :2 * n].reshape(k2, n, 2, kk)
    preds_all.append(p_ss)
    losses_all.append((p_ss.argmax(-1) != labels[a][None]).astype(np.float32))
    if has_test:
      terr_all.append(np.mean(preds[:, 2 * n:].argmax(-1) != np.asarray(y_test)[None], axis=1))
    else:
      terr_all.append(np.full(k2, np.nan))
    if callback is not None:
      callback((a + 1) * k2, k1 * k2)
  return SupersampleResult(
      supersample_ids=np.arange(k1), supersample_idx=design.supersample_idx, masks=design.masks,
      labels=labels, predictions=np.stack(preds_all), losses=np.stack(losses_all),
      test_error=np.stack(terr_all).astype(np.float32),
      final_loss=np.full((k1, k2), np.nan, np.float32), config=config)
