"""Supersample experiments: many trainings on random halves of supersamples, resumable.

The conditional-mutual-information bounds (Steinke & Zakynthinou, 2020; Harutyunyan et al.,
NeurIPS 2021, sec. 2-3; Hellstrom & Durisi, 2022; Wang & Mao, 2023) are estimated from a
*supersample experiment*:

1. draw ``k1`` supersamples ``Z~`` of ``2n`` examples from a pool, arranged in ``n`` pairs;
2. for each supersample draw ``k2`` masks ``U ~ Bernoulli(1/2)^n`` and train one model on
   ``S = Z~_U`` (example ``U_i`` of pair ``i``; the other one is the *ghost*);
3. record every model's predictions on all ``2n`` supersample examples, its per-pair 0-1 losses
   and its error on a separate test set.

:func:`run_supersample` does this with the foundation's trainer (the compile-once program of
:func:`gbounds.train.train_many_fn`): the ``k1 * k2`` models are trained in
chunks (``vmap`` or a sequential ``lax.map`` per :class:`gbounds.train.MapStrategy`); each
finished chunk is written atomically (``.npz`` + ``.json`` with the resolved configuration and
package versions) to a results directory, and a killed run resumes where it stopped, with no
lost or duplicated work. Model ``j = a * k2 + b``
(supersample ``a``, mask ``b``) initialises from ``fold_in(key(init_seed), j)`` and draws its
mini-batches from ``fold_in(key(train.seed), j)``, so its run does not depend on the chunking,
on resuming or on how the supersamples are split over processes.

The results directory is guarded against crashes and concurrent writers: a lock file per
writer names its holder (a second writer of the same supersamples is refused with
:class:`gbounds.StoreLockedError`; a lock of a killed run on this host is taken over), a
resumed run removes the temporary files of interrupted writes, every chunk is checked
(SHA-256, arrays, shapes) before use, and a corrupt chunk is moved to ``<file>.corrupt`` with a
:class:`SupersampleStoreWarning` naming it and its models are recomputed. Chunks written with
different chunk sizes merge. See :func:`run_supersample`.

:func:`run_linearized_supersample` replaces SGD by the closed-form gradient-descent dynamics of
the linearized network (Lee et al., 2019; :func:`gbounds.ntk.gd_coefficients`): one empirical NTK of
the ``2n`` supersample and test points per supersample, then a batched solve over the masks.

Layout conventions (as in the public f-CMI code): pair ``i`` of supersample ``a`` is pool rows
``supersample_idx[a, i, 0]`` and ``supersample_idx[a, i, 1]``; a model's training example of
pair ``i`` is column ``masks[a, b, i]``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import functools
import hashlib
import json
import logging
import os
import pathlib
import re
import socket
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from gbounds._src import batching as _batching
from gbounds._src import errors as _errors
from gbounds._src import io as _io
from gbounds._src import progress as _progress
from gbounds._src import provenance as _provenance
from gbounds._src import results as _results
from gbounds.models import ModelFn, as_model_fn
from gbounds.ntk import NtkOutput, Time, empirical_ntk_fn, gd_coefficients
from gbounds.train import MapStrategy, TrainConfig, resolve_strategy, train_many_fn

_MODEL_AXIS = "models"
_FORMAT_VERSION = 1
_log = logging.getLogger(__name__)


class SupersampleDesign(NamedTuple):
  """The random design of a supersample experiment (no training involved).

  Attributes:
    supersample_idx: ``(k1, n, 2)`` int pool indices; pair ``i`` of supersample ``a``.
    masks: ``(k1, k2, n)`` int in {0, 1}; model ``(a, b)`` trains on
      ``supersample_idx[a, i, masks[a, b, i]]``.
  """
  supersample_idx: np.ndarray
  masks: np.ndarray

  # duplicates: a from_dict classmethod that converts its fields back, the same shape as
  # the other results' (Reproduction, SupersampleDesign, FcmiReproduction); different
  # conversions, not shared logic
  to_dict = _results.namedtuple_to_dict

  @classmethod
  def from_dict(cls, data: dict) -> SupersampleDesign:
    """Rebuilds a design from :meth:`to_dict` output (int64 indices, int32 masks).

    Args:
      data: a dict as :meth:`to_dict` returns it.

    Returns:
      The :class:`SupersampleDesign`.
    """
    r = _results.from_dict(cls, data)
    return cls(r.supersample_idx.astype(np.int64), r.masks.astype(np.int32))


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

  to_dict = _results.namedtuple_to_dict

  @classmethod
  def from_dict(cls, data: dict) -> SupersampleResult:
    """Rebuilds a result from :meth:`to_dict` output (JSON keeps no dtypes: the fields whose
    dtype the runners fix get it back, so derived errors are the same to the bit).

    Args:
      data: a dict as :meth:`to_dict` returns it.

    Returns:
      The :class:`SupersampleResult`.
    """
    r = _results.from_dict(cls, data)
    return r._replace(
        supersample_ids=r.supersample_ids.astype(np.int64),
        supersample_idx=r.supersample_idx.astype(np.int64), masks=r.masks.astype(np.int32),
        losses=r.losses.astype(np.float32), test_error=r.test_error.astype(np.float32),
        final_loss=r.final_loss.astype(np.float32))

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

  Args:
    pool_size: number of pool rows ``N`` (``2n <= N``).
    n: pairs per supersample.
    k1: number of supersamples.
    k2: masks per supersample (at least 2).
    seed: a non-negative integer.

  Returns:
    :class:`SupersampleDesign`.
  """
  pool_size, n, k1, k2 = (_check_int(name, v, minimum=1) for name, v in (
      ("pool_size", pool_size), ("n", n), ("k1", k1), ("k2", k2)))
  seed = _check_int("seed", seed, minimum=0)
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
  """Validates a ``(k1, k2, n)`` mask array in {0, 1} with ``k2 >= 2``.

  Args:
    name: the argument name shown in errors.
    masks: the array.
    n: the required number of pairs (optional).

  Returns:
    ``masks`` as int32.
  """
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

  Args:
    devices: the devices (default: ``jax.devices()``).

  Returns:
    A ``jax.sharding.Mesh`` for :func:`run_supersample`'s ``mesh``.
  """
  auto = (jax.sharding.AxisType.Auto,)
  if devices is None:
    return jax.make_mesh((jax.device_count(),), (_MODEL_AXIS,), axis_types=auto)
  devices = list(devices)
  return jax.sharding.Mesh(np.asarray(devices), (_MODEL_AXIS,), axis_types=auto)


# The versions recorded in result files; the old name is kept until gbounds.experiments no
# longer imports it (use gbounds._src.provenance.versions()).
package_versions = _provenance.versions


def _fingerprint(*arrays) -> str:
  h = hashlib.sha256()
  for a in arrays:
    a = np.ascontiguousarray(np.asarray(a))
    h.update(str((a.shape, a.dtype.str)).encode())
    h.update(a.tobytes())
  return h.hexdigest()[:16]


def _qualname(f) -> str:
  name = getattr(f, "__qualname__", type(f).__name__)
  return f"{getattr(f, '__module__', '?')}.{name}"


def _describe(model) -> str:
  """A run-independent description of the model (no memory addresses).

  A Linen module: its ``repr`` (as in earlier versions, so their results directories resume);
  an NNX module: its class and parameter shapes; a ModelFn: its functions' names; an ``init``
  function (with ``apply_fn``): its name.
  """
  from flax import linen as nn
  from flax import nnx
  if isinstance(model, nn.Module):
    return repr(model)
  if isinstance(model, nnx.Module):
    _, state = nnx.split(model, nnx.Param)
    shapes = [tuple(np.shape(v)) for v in jax.tree_util.tree_leaves(state)]
    return f"{_qualname(type(model))}(param shapes {shapes})"
  if isinstance(model, ModelFn):
    init = model.init_fn
    return (f"ModelFn({_qualname(model.apply_fn)}"
            f"{'' if init is None else ', ' + _qualname(init)})")
  return _qualname(model)


def _jsonable(v):
  return json.loads(json.dumps(v, default=_io._default))


def _local_supersamples(k1: int, process_index: int, process_count: int) -> np.ndarray:
  process_count = _check_int("process_count", process_count, minimum=1)
  ok = isinstance(process_index, (int, np.integer)) and not isinstance(process_index, bool)
  if not ok or not 0 <= process_index < process_count:
    _errors.fail("process_index", f"an integer in [0, {process_count})", repr(process_index))
  return np.arange(int(process_index), k1, process_count)


# ----------------------------------------------------------------------------- results dir


class SupersampleStoreWarning(UserWarning):
  """A results directory needed repair: a corrupt or conflicting chunk was moved aside."""


class CorruptResultsError(_errors.CorruptFileError, _errors.InvalidInputError):
  """A file of a results directory is corrupt (the message names it).

  It is also an :class:`gbounds.InvalidInputError`, like the error for an unfinished directory,
  so a caller that resumes unfinished runs also resumes damaged ones: :func:`run_supersample`
  on the directory moves the damaged file aside and recomputes its models.
  """


_CHUNK_RE = re.compile(r"^chunk_(\d+)(?:-(\d+))?\.(npz|json)$")
_LOCK_RE = re.compile(r"^writer_(\d+)_of_(\d+)\.lock$")
_LOCK_TEMP_AGE_S = 60.0       # lock temporaries younger than this may belong to a live writer
_CHUNK_KEYS = ("model_ids", "predictions", "losses", "test_error", "final_loss")


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except OSError:            # PermissionError: alive, owned by another user
    return True
  return True


def _holder(info: dict | None) -> str:
  if not isinstance(info, dict):
    return "an unknown writer (the lock file is unreadable)"
  return (f"pid {info.get('pid')} on host {info.get('host')!r}, started "
          f"{info.get('time')}")


def _read_lock(path: pathlib.Path) -> tuple[str | None, dict | None]:
  """(raw text, parsed dict or None); text None when the lock is gone."""
  try:
    text = path.read_text(encoding="utf-8")
  except FileNotFoundError:
    return None, None
  except OSError:
    return "", None
  try:
    info = json.loads(text)
  except ValueError:
    return text, None
  return text, info if isinstance(info, dict) else None


def _is_stale(info: dict | None) -> bool:
  """A lock is stale when its writer ran on this host and its process no longer exists."""
  if not isinstance(info, dict) or info.get("host") != socket.gethostname():
    return False
  pid = info.get("pid")
  return isinstance(pid, int) and pid > 0 and not _pid_alive(pid)


def _quarantine(path: pathlib.Path) -> pathlib.Path | None:
  """Renames ``path`` to ``<path>.corrupt`` (``.corrupt.1``, ... if taken); None if absent."""
  if not path.exists():
    return None
  target = path.with_name(path.name + ".corrupt")
  i = 0
  while target.exists():
    i += 1
    target = path.with_name(f"{path.name}.corrupt.{i}")
  os.replace(path, target)
  return target


class _WriterLock:
  """The lock of one writer of a results directory: ``writer_<i>_of_<p>.lock``.

  Process ``i`` of ``p`` writes supersamples ``a`` with ``a % p == i``. Its lock file is created
  atomically together with its content, a JSON object naming the holder (pid, host, start time,
  a random token): the content is written to a temporary file that is then hard-linked to the
  lock's name, which like ``open(O_CREAT | O_EXCL)`` fails when the lock exists (where the file
  system has no hard links, ``O_CREAT | O_EXCL`` itself is used). After taking its own lock a
  writer looks at the other writers' locks and refuses to run when one of them covers a
  supersample it covers (e.g. ``writer_0_of_1`` and ``writer_1_of_2``).

  A lock is *stale* when its holder ran on this host and its pid no longer exists (a killed
  run); a stale lock is taken over: moved aside by an atomic rename, then checked to still be
  the stale lock that was judged (else put back). A lock held on another host cannot be judged
  and is never taken over: the error names the holder and the file to delete if that run is
  dead. The holder checks its token before each chunk it writes and releases the lock when it
  returns or raises.
  """

  def __init__(self, directory: pathlib.Path, process_index: int, process_count: int, k1: int):
    self.directory = directory
    self.index, self.count, self.k1 = process_index, process_count, k1
    self.path = directory / f"writer_{process_index}_of_{process_count}.lock"
    self.token = uuid.uuid4().hex
    self.others_live = False
    self.held = False

  def _refuse(self, path: pathlib.Path, info: dict | None) -> None:
    raise _errors.StoreLockedError(
        f"results_dir: expected a directory no other run is writing, got {self.directory} "
        f"locked by {_holder(info)} (lock file {path}) instead. Wait for that run to finish; "
        f"if it is no longer running, delete {path}.")

  def _create(self, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{self.path.name}.", suffix=".tmp")
    try:
      with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
      try:
        os.link(tmp, self.path)
      except (FileExistsError, FileNotFoundError):
        raise
      except OSError:  # no hard links here: exclusive create (empty for a moment)
        fd2 = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd2, "w", encoding="utf-8") as f:
          f.write(text)
    finally:
      with contextlib.suppress(OSError):
        os.unlink(tmp)

  def _take_over(self, path: pathlib.Path, judged: str) -> None:
    grave = path.with_name(f".{path.name}.stale{os.getpid()}x{uuid.uuid4().hex[:6]}.tmp")
    try:
      os.rename(path, grave)
    except FileNotFoundError:
      return
    try:
      if grave.read_text(encoding="utf-8") != judged:   # a fresh lock arrived: put it back
        with contextlib.suppress(OSError):
          os.link(grave, path)
    finally:
      with contextlib.suppress(OSError):
        os.unlink(grave)
    _log.info("took over the stale lock %s (%s)", path, judged.strip())

  def _overlaps(self, index: int, count: int) -> bool:
    mine = set(range(self.index, self.k1, self.count))
    return bool(mine.intersection(range(index, self.k1, max(count, 1))))

  def acquire(self) -> None:
    text = json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(),
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "token": self.token, "process_index": self.index, "process_count": self.count,
        "argv": sys.argv[:4]}) + "\n"
    for _ in range(20):
      try:
        self._create(text)
        break
      except FileNotFoundError:       # our temporary was removed by a starting writer: retry
        continue
      except FileExistsError:
        raw, info = _read_lock(self.path)
        if raw is None:
          continue
        if _is_stale(info):
          self._take_over(self.path, raw)
          continue
        self._refuse(self.path, info)
    else:  # pragma: no cover (a lock that keeps appearing and vanishing)
      self._refuse(self.path, _read_lock(self.path)[1])
    self.held = True
    try:
      for other in sorted(self.directory.glob("writer_*_of_*.lock")):
        m = _LOCK_RE.match(other.name)
        if other == self.path or m is None:
          continue
        raw, info = _read_lock(other)
        if raw is None:
          continue
        if _is_stale(info):
          if self._overlaps(int(m.group(1)), int(m.group(2))):
            self._take_over(other, raw)
          continue
        if self._overlaps(int(m.group(1)), int(m.group(2))):
          self._refuse(other, info)
        self.others_live = True
    except BaseException:
      self.release()
      raise

  def verify(self) -> None:
    """Raises StoreLockedError when this writer no longer holds its lock."""
    _, info = _read_lock(self.path)
    if not isinstance(info, dict) or info.get("token") != self.token:
      raise _errors.StoreLockedError(
          f"results_dir: expected this run to hold its lock file {self.path}, got "
          f"{'no lock file' if info is None else 'a lock of ' + _holder(info)} instead (it "
          f"was deleted or taken over); nothing more is written. Make sure one run writes the "
          f"directory, then resume.")

  def release(self) -> None:
    if not self.held:
      return
    self.held = False
    _, info = _read_lock(self.path)
    if isinstance(info, dict) and info.get("token") == self.token:
      with contextlib.suppress(OSError):
        os.unlink(self.path)


def _chunk_first_id(name: str) -> int | None:
  m = _CHUNK_RE.match(name)
  return None if m is None else int(m.group(1))


class _ChunkProblem(Exception):
  pass


def _validate_chunk(npz: pathlib.Path, arrays: dict, ids: list[int], *, n: int, k2: int,
                    labels: np.ndarray, num_outputs: int | None) -> None:
  """Raises CorruptFileError naming ``npz`` unless it holds the arrays of models ``ids``."""
  def bad(expected, got):
    raise _errors.CorruptFileError(f"{npz}: expected {expected}, got {got} instead.")

  missing = [k for k in _CHUNK_KEYS if k not in arrays]
  if missing:
    bad(f"the arrays {', '.join(_CHUNK_KEYS)}", f"no {', '.join(missing)}")
  m = len(ids)
  mid = arrays["model_ids"]
  if mid.dtype.kind not in "iu" or mid.shape != (m,) or not np.array_equal(mid, ids):
    bad(f"model_ids {ids[:4]}{'...' if m > 4 else ''} (as its .json lists)",
        f"{mid.dtype} {mid.shape} {mid.tolist()[:4]}")
  p = arrays["predictions"]
  if p.dtype.kind != "f" or p.ndim != 4 or p.shape[:3] != (m, n, 2):
    bad(f"predictions of shape ({m}, {n}, 2, K), floating", f"{p.dtype} {p.shape}")
  if num_outputs is not None and p.shape[3] != num_outputs:
    bad(f"predictions with K = {num_outputs} outputs", f"K = {p.shape[3]}")
  for key, shape in (("losses", (m, n, 2)), ("test_error", (m,)), ("final_loss", (m,))):
    v = arrays[key]
    if v.dtype.kind != "f" or v.shape != shape:
      bad(f"{key} of shape {shape}, floating", f"{v.dtype} {v.shape}")
  want = (p.argmax(-1) != labels[np.asarray(ids) // k2]).astype(arrays["losses"].dtype)
  if not np.array_equal(arrays["losses"], want):
    bad("losses equal to argmax(predictions) != labels", "other values")


class _ResultsDir:
  """A results directory: ``config.json``, ``design.npz``, chunk files and writer locks.

  Every file is written atomically (:mod:`gbounds._src.io`). A chunk is the pair
  ``chunk_<first>-<last>.npz`` (arrays of its models, keyed by ``model_ids``) and its
  ``.json`` marker (model ids, configuration digest, SHA-256 of the npz), written in that order:
  a chunk counts only when its marker exists, and is then checked end to end (checksum, arrays,
  shapes, losses against the design's labels) before its models are used.

  As a writer (``open``, under the lock) it repairs what interrupted or damaged runs leave:
  temporary files and npz files without a marker are removed; a corrupt chunk or ``design.npz``
  or ``config.json`` is renamed to ``<file>.corrupt`` with a :class:`SupersampleStoreWarning`
  naming it, and its models are recomputed. As a reader (``chunks(repair=False)`` and
  ``read_design``, no lock, nothing changed on disk) it raises :class:`CorruptResultsError`
  naming the damaged file instead.
  """

  def __init__(self, path, config: dict, *, k1: int, k2: int, n: int, process_index: int = 0,
               process_count: int = 1):
    self.path = pathlib.Path(path)
    self.config = config
    self.digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    self.k1, self.k2, self.n = k1, k2, n
    self.index, self.count = process_index, process_count
    self.lock: _WriterLock | None = None

  def mine(self, model_id: int) -> bool:
    return (int(model_id) // self.k2) % self.count == self.index

  # -- writer ------------------------------------------------------------------------------

  def open(self, design: SupersampleDesign, labels: np.ndarray) -> None:
    """Takes the lock, removes leftovers, checks or writes config.json and design.npz."""
    if self.path.exists() and not self.path.is_dir():
      _errors.fail("results_dir", "a directory (or a path to create one at)",
                   f"{self.path} (a file)")
    try:
      self.path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
      _errors.fail("results_dir", "a writable directory", f"{self.path} ({e})")
    self.lock = _WriterLock(self.path, self.index, self.count, self.k1)
    self.lock.acquire()
    try:
      self._clean()
      self._open_config_and_design(design, labels)
    except BaseException:
      self.close()
      raise

  def close(self) -> None:
    if self.lock is not None:
      self.lock.release()

  def _warn(self, message: str) -> None:
    warnings.warn(message, SupersampleStoreWarning, stacklevel=4)

  def _clean(self) -> None:
    assert self.lock is not None  # open() took it
    sole = not self.lock.others_live
    removed = []
    now = time.time()
    for tmp, target in _io.temporaries(self.path):
      first = _chunk_first_id(target)
      if _LOCK_RE.match(target):
        ok = now - tmp.stat().st_mtime > _LOCK_TEMP_AGE_S
      elif first is not None:
        ok = sole or self.mine(first)
      else:
        ok = sole
      if ok:
        with contextlib.suppress(FileNotFoundError):
          tmp.unlink()
          removed.append(tmp.name)
    for npz in sorted(self.path.glob("chunk_*.npz")):
      first = _chunk_first_id(npz.name)
      if (first is not None and not npz.with_suffix(".json").exists()
          and (sole or self.mine(first))):
        with contextlib.suppress(FileNotFoundError):
          npz.unlink()
          removed.append(npz.name)
    if removed:
      _log.info("%s: removed %d files left by an interrupted writer: %s", self.path,
                len(removed), ", ".join(removed))

  def _config_meta(self, design_fp: str) -> dict:
    return {"config": self.config, "config_digest": self.digest, "design_fingerprint": design_fp,
            "versions": package_versions()}

  def _open_config_and_design(self, design: SupersampleDesign, labels: np.ndarray) -> None:
    cfg_file, design_file = self.path / "config.json", self.path / "design.npz"
    design_fp = _fingerprint(design.supersample_idx, design.masks, labels)
    write_cfg = not cfg_file.exists()
    if not write_cfg:
      try:
        old = _io.read_json(cfg_file)
        if not isinstance(old, dict) or not isinstance(old.get("config_digest"), str):
          raise _errors.CorruptFileError(
              f"{cfg_file}: expected an object with a config_digest, got "
              f"{type(old).__name__} without one instead.")
      except _errors.CorruptFileError as e:
        moved = _quarantine(cfg_file)
        self._warn(f"{e} Moved it to {moved}; writing a new one.")
        write_cfg = True
      else:
        if old["config_digest"] != self.digest:
          _errors.fail("results_dir", "a directory of a run with the same configuration (or a "
                       "new directory)", f"{self.path} holding a run with a different "
                       f"configuration (see {cfg_file})")
    if design_file.exists():
      try:
        z = _io.read_npz(design_file)
        if (set(z) != {"supersample_idx", "masks", "labels"}
            or _fingerprint(z["supersample_idx"], z["masks"], z["labels"]) != design_fp):
          raise _errors.CorruptFileError(
              f"{design_file}: expected the design of this configuration, got other arrays "
              f"instead.")
      except _errors.CorruptFileError as e:
        moved = _quarantine(design_file)
        self._warn(f"{e} Moved it to {moved}; writing it again (the design is a function of "
                   f"the configuration).")
    if not design_file.exists():
      _io.atomic_write_npz(design_file, supersample_idx=design.supersample_idx,
                           masks=design.masks, labels=labels)
    if write_cfg:
      _io.atomic_write_json(cfg_file, self._config_meta(design_fp))

  def write(self, ids: np.ndarray, arrays: dict, extra: dict) -> None:
    assert self.lock is not None  # written only after open()
    self.lock.verify()
    stem = self.path / f"chunk_{int(ids[0]):07d}-{int(ids[-1]):07d}"
    sha = _io.atomic_write_npz(stem.with_suffix(".npz"), model_ids=ids, **arrays)
    _io.atomic_write_json(stem.with_suffix(".json"), {
        "model_ids": [int(i) for i in ids], "config_digest": self.digest, "npz_sha256": sha,
        "config": self.config, "versions": package_versions(), **extra})

  # -- reading (both roles) ------------------------------------------------------------------

  def chunks(self, wanted: set[int], labels: np.ndarray, *, num_outputs: int | None,
             repair: bool) -> dict[int, dict]:
    """Model id -> its arrays, for every finished model in ``wanted``.

    A chunk of another configuration is an error (a mixed directory). A corrupt chunk is
    quarantined with a warning (``repair``) or raises :class:`CorruptResultsError`. A model
    stored in two chunks is used once when both hold the same arrays; different arrays are
    an error naming both files (as a reader) or move both chunks aside (as a writer).
    """
    out: dict[int, dict] = {}
    source: dict[int, pathlib.Path] = {}
    for js in sorted(self.path.glob("chunk_*.json")):
      if _CHUNK_RE.match(js.name) is None:
        continue
      npz = js.with_suffix(".npz")
      try:
        meta = _io.read_json(js)
        ids = meta.get("model_ids") if isinstance(meta, dict) else None
        if (not isinstance(ids, list) or not ids
            or not all(isinstance(i, int) and 0 <= i < self.k1 * self.k2 for i in ids)
            or len(set(ids)) != len(ids)):
          raise _errors.CorruptFileError(
              f"{js}: expected a chunk marker listing model ids in [0, {self.k1 * self.k2}), "
              f"got {str(meta)[:80]} instead.")
        if meta.get("config_digest") != self.digest:
          _errors.fail("results_dir", "chunks of one configuration",
                       f"{js} (config digest {meta.get('config_digest')}, not {self.digest} "
                       f"of config.json: a different run wrote it; move it elsewhere)")
        if not wanted.intersection(ids):
          continue
        arrays = _io.read_npz(npz, sha256=meta.get("npz_sha256"))
        _validate_chunk(npz, arrays, ids, n=self.n, k2=self.k2, labels=labels,
                        num_outputs=num_outputs)
      except _errors.CorruptFileError as e:
        self._corrupt_chunk(js, npz, str(e), repair=repair)
        continue
      if num_outputs is None:
        num_outputs = int(arrays["predictions"].shape[3])
      rows = {int(i): {k: arrays[k][r] for k in _CHUNK_KEYS[1:]} for r, i in enumerate(ids)}
      clash = [i for i in rows if i in out and not all(
          np.array_equal(out[i][k], rows[i][k], equal_nan=True) for k in _CHUNK_KEYS[1:])]
      if clash:
        msg = (f"results_dir: expected each model stored once, got model {clash[0]} in both "
               f"{source[clash[0]]} and {npz} with different values instead.")
        if not repair:
          raise CorruptResultsError(msg + f" Delete one of the two chunks (its .npz and .json)"
                                    f", or run run_supersample on {self.path} to move both "
                                    f"aside and recompute their models.")
        # Which copy is right cannot be told: both chunks go aside, their models are redone.
        earlier = source[clash[0]]
        for f in (earlier, earlier.with_suffix(".json"), npz, js):
          _quarantine(f)
        for i in [i for i, src in source.items() if src == earlier]:
          del out[i], source[i]
        self._warn(msg + " Moved both chunks aside (to <file>.corrupt); their models are "
                   "recomputed.")
        continue
      for i, row in rows.items():
        if i in wanted and i not in out:
          out[i], source[i] = row, npz
    return out

  def _corrupt_chunk(self, js: pathlib.Path, npz: pathlib.Path, reason: str, *,
                     repair: bool) -> None:
    if not repair:
      raise CorruptResultsError(f"{reason} The chunk is unusable; run run_supersample on "
                                f"{self.path} to move it aside and recompute its models.")
    assert self.lock is not None  # repair only as the writer, after open()
    first = _chunk_first_id(js.name)
    if first is not None and not self.mine(first) and self.lock.others_live:
      return  # another live writer's chunk: leave it to that writer
    moved_npz, moved_js = _quarantine(npz), _quarantine(js)
    self._warn(f"results_dir: corrupt chunk {npz}: {reason} Moved it to "
               f"{moved_npz or '(no npz)'} and {moved_js}; its models are recomputed.")

  def read_design(self, meta: dict) -> tuple[SupersampleDesign, np.ndarray]:
    """design.npz, checked against the design the configuration implies (reader role)."""
    f = self.path / "design.npz"
    try:
      z = _io.read_npz(f)
      if set(z) != {"supersample_idx", "masks", "labels"}:
        raise _errors.CorruptFileError(
            f"{f}: expected the arrays supersample_idx, masks, labels, got {sorted(z)} instead.")
      cfg = self.config
      ref = draw_supersamples(cfg["pool"]["size"], n=cfg["n"], k1=cfg["k1"], k2=cfg["k2"],
                              seed=cfg["seed"])
      fp = meta.get("design_fingerprint")
      lab = z["labels"]
      if (not np.array_equal(z["supersample_idx"], ref.supersample_idx)
          or not np.array_equal(z["masks"], ref.masks) or lab.dtype.kind not in "iu"
          or lab.shape != (self.k1, self.n, 2)
          or (fp is not None and _fingerprint(z["supersample_idx"], z["masks"], lab) != fp)):
        raise _errors.CorruptFileError(
            f"{f}: expected the design of the configuration in config.json (binary masks of "
            f"shape {(self.k1, self.k2, self.n)}, labels {(self.k1, self.n, 2)}), got arrays "
            f"that differ from it instead.")
    except _errors.CorruptFileError as e:
      raise CorruptResultsError(f"{e} Run run_supersample on {self.path} to rewrite it.") from None
    return SupersampleDesign(z["supersample_idx"], z["masks"]), lab


def _assemble(per_model: dict[int, dict], local: np.ndarray, k2: int, design: SupersampleDesign,
              labels: np.ndarray, config: dict) -> SupersampleResult:
  def stack(key):
    return np.stack([np.stack([per_model[a * k2 + b][key] for b in range(k2)]) for a in local])
  return SupersampleResult(
      supersample_ids=local, supersample_idx=design.supersample_idx[local],
      masks=design.masks[local], labels=labels[local], predictions=stack("predictions"),
      losses=stack("losses"), test_error=stack("test_error"), final_loss=stack("final_loss"),
      config=config)


# ----------------------------------------------------------------------------- validation


def _check_int(name: str, value: Any, *, minimum: int) -> int:
  """An integer (int, numpy integer or whole float) ``>= minimum``; returns it as ``int``."""
  what = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum)
  return _errors.check_int(name, value, minimum, what=what)


def _check_pool(x_pool, y_pool, x_test, y_test):
  for name, x in (("x_pool", x_pool), ("x_test", x_test)):
    if x is None:
      continue
    if np.asarray(x).dtype.kind not in "biuf":
      _errors.fail(name, "a numeric array", f"dtype {np.asarray(x).dtype}")
    _errors.check_rank(name, x, tuple(range(1, 9)))
    _errors.check_nonempty(name, x)
    _errors.check_finite(name, x)
  _errors.check_same_leading(("x_pool", "y_pool"), x_pool, y_pool)
  _errors.check_rank("y_pool", y_pool, 1)
  if not np.issubdtype(np.asarray(y_pool).dtype, np.integer):
    _errors.fail("y_pool", "integer class labels", np.asarray(y_pool).dtype)
  if (x_test is None) != (y_test is None):
    _errors.fail("x_test/y_test", "both or neither", "only one")
  if x_test is not None:
    _errors.check_rank("y_test", y_test, 1)
    if not np.issubdtype(np.asarray(y_test).dtype, np.integer):
      _errors.fail("y_test", "integer class labels", np.asarray(y_test).dtype)
    _errors.check_same_leading(("x_test", "y_test"), x_test, y_test)
    if np.shape(x_test)[1:] != np.shape(x_pool)[1:]:
      _errors.fail("x_test", f"examples of shape {np.shape(x_pool)[1:]}", np.shape(x_test)[1:])


def _model_fns(model, apply_fn, example) -> tuple[Callable, Callable]:
  """``(init_fn(key) -> params, apply_fn(params, x) -> (b, K))`` of any accepted model.

  ``model`` is a Linen module, an NNX module or a :class:`gbounds.models.ModelFn` with an
  ``init_fn`` (normalised by :func:`gbounds.models.as_model_fn` on ``example``); or, with
  ``apply_fn`` given, a function ``init(key, example_input) -> params``.
  """
  if apply_fn is None:
    from flax import linen as nn
    from flax import nnx
    if not isinstance(model, (nn.Module, nnx.Module, ModelFn)):
      _errors.fail("model", "a Flax Linen module, an NNX module, a gbounds.models.ModelFn "
                   "with an init_fn, or an init function with apply_fn", type(model).__name__)
    mf = as_model_fn(model, example_input=example)
    init = mf.init_fn
    if init is None:
      _errors.fail("model", "a model that can draw fresh parameters (a ModelFn with an init_fn; "
                   "every supersample model is a fresh initialisation)",
                   f"{type(model).__name__} without init_fn")
    return init, mf.apply_fn
  if not callable(model):
    _errors.fail("model", "a callable init(key, example_input) -> params (apply_fn is given)",
                 type(model).__name__)
  if not callable(apply_fn):
    _errors.fail("apply_fn", "a callable apply_fn(params, x) -> (batch, K)",
                 type(apply_fn).__name__)
  return functools.partial(_init_on, model, example), apply_fn


def _init_on(init, example, key):
  return init(key, example)


def _num_outputs(init, apply_fn, example: np.ndarray) -> int:
  """K of ``apply_fn(params, x) -> (batch, K)`` by abstract evaluation (no computation)."""
  try:
    shapes = jax.eval_shape(init, jax.random.key(0))
    out = jax.eval_shape(apply_fn, shapes, example)
  except _errors.GBoundsError:
    raise
  except Exception as e:  # the user's model does not run on these inputs
    raise _errors.InvalidInputError(
        f"model: expected a model that initialises and applies to examples of shape "
        f"{example.shape[1:]}, got {type(e).__name__}: {str(e).splitlines()[0][:200]} "
        f"instead.") from e
  shape = getattr(out, "shape", None)
  if shape is None or len(shape) != 2 or shape[0] != example.shape[0] or shape[1] < 2:
    _errors.fail("model", "outputs of shape (batch, K) with K >= 2 classes",
                 f"{shape if shape is not None else type(out).__name__}")
  return int(shape[1])


def _check_labels_fit(num_outputs: int, y_pool, y_test) -> None:
  _errors.check_labels("y_pool", y_pool, num_outputs)
  if y_test is not None:
    _errors.check_labels("y_test", y_test, num_outputs)


# ----------------------------------------------------------------------------- SGD harness


@functools.lru_cache(maxsize=32)
def _predict_fn(apply_fn, strategy: MapStrategy):
  """``(params (m, ...), x (m, b, ...)) -> (m, b, K)`` with each model on its own inputs."""
  if strategy == MapStrategy.VMAP:
    return jax.jit(jax.vmap(apply_fn))
  return jax.jit(lambda p, x: jax.lax.map(lambda a: apply_fn(*a), (p, x)))


@functools.lru_cache(maxsize=32)
def _test_error_fn(apply_fn, strategy: MapStrategy):
  def err(p, x, y):
    return jnp.mean(jnp.argmax(apply_fn(p, x), axis=-1).astype(y.dtype) != y)
  if strategy == MapStrategy.VMAP:
    return jax.jit(jax.vmap(err, in_axes=(0, None, None)))
  return jax.jit(lambda p, x, y: jax.lax.map(lambda q: err(q, x, y), p))


@functools.lru_cache(maxsize=32)
def _init_many_fn(init):
  """``(seed, ids (m,)) -> (params (m, ...), finite (m,))``: model ``j`` from
  ``init(fold_in(key(seed), j))``, compiled once per ``init``."""
  def init_many(seed, ids):
    params = jax.vmap(lambda i: init(jax.random.fold_in(jax.random.key(seed), i)))(ids)
    finite = jnp.stack([jnp.all(jnp.isfinite(leaf), axis=tuple(range(1, leaf.ndim)))
                        for leaf in jax.tree_util.tree_leaves(params)]).all(0)
    return params, finite
  return jax.jit(init_many, static_argnums=0)


def run_supersample(model: Any, x_pool: Any, y_pool: Any, x_test: Any = None,
                    y_test: Any = None, *, n: int, k1: int, k2: int, train: TrainConfig,
                    seed: int = 0, init_seed: int | None = None,
                    apply_fn: Callable | None = None,
                    strategy: MapStrategy | str = MapStrategy.AUTO,
                    chunk_size: int | None = None, results_dir: str | os.PathLike | None = None,
                    mesh: jax.sharding.Mesh | None = None, process_index: int = 0,
                    process_count: int = 1,
                    callback: _progress.ProgressCallback | None = None) -> SupersampleResult:
  """Runs (or resumes) a supersample experiment with SGD-trained models.

  Model ``j = a * k2 + b`` (supersample ``a``, mask ``b``) initialises from
  ``fold_in(key(init_seed), j)`` and draws its mini-batches from ``fold_in(key(train.seed),
  j)``: what is stored for it depends only on the configuration and ``j``, not on the chunk
  size, the strategy, the process split or how often the run was interrupted. (On CPU this
  holds bit for bit, which the tests check; accelerators may round batched kernels of
  different widths differently in the last bits. Each chunk's ``.json`` records its width.)

  With ``results_dir``, the run writes each finished chunk there and resumes from what is
  there. The directory is safe against crashes and concurrent use:

  * a lock file ``writer_<process_index>_of_<process_count>.lock`` naming its holder (pid,
    host, start time) is created atomically before anything is written and removed when the
    run returns or raises; a second writer of the same supersamples gets
    :class:`gbounds.StoreLockedError` naming the holder and the lock file. A lock left by a
    killed run on this host (its pid no longer exists) is taken over; one from another host
    is never (the message says which file to delete if that run is dead);
  * temporary files of interrupted writes and chunk files without their ``.json`` marker are
    removed when the run resumes;
  * every chunk is checked (SHA-256, arrays, shapes, losses) before its models are used; a
    corrupt chunk is moved to ``<file>.corrupt`` with a :class:`SupersampleStoreWarning`
    naming it, and its models are recomputed;
  * runs with different chunk sizes, strategies or process splits write chunks that merge:
    a model is trained only when no finished chunk holds it. A model found in two chunks is
    used once when both hold the same arrays; with different arrays both chunks are moved
    aside (with a warning naming them) and their models recomputed.

  Args:
    model: the network, re-initialised for every model: a Flax Linen module, a Flax NNX
      module, or a :class:`gbounds.models.ModelFn` with an ``init_fn`` (all normalised by
      :func:`gbounds.models.as_model_fn`; model ``j`` starts from ``init_fn(key_j)``); or, with
      ``apply_fn`` given, a callable ``init(key, example_input) -> params``.
    x_pool, y_pool: the pool the supersamples are drawn from: finite inputs ``(N, ...)`` and
      int labels ``(N,)`` in ``[0, K)``, ``K`` the model's number of outputs.
    x_test, y_test: a separate test set for the test error (optional; same checks).
    n: pairs per supersample (``2n <= N``).
    k1: number of supersamples.
    k2: masks (trained models) per supersample, ``>= 2``.
    train: the :class:`gbounds.train.TrainConfig`; each model trains on its ``n`` examples.
    seed: seed of the design (:func:`draw_supersamples`), a non-negative integer.
    init_seed: seed of the initialisations (default ``seed``); model ``j`` uses
      ``fold_in(key(init_seed), j)``.
    apply_fn: ``apply_fn(params, x) -> (batch, K)`` when ``model`` is an ``init`` function
      (the calling form of earlier versions; a ModelFn carries both).
    strategy: :class:`gbounds.train.MapStrategy` for training and prediction (``VMAP`` is used when
      ``mesh`` is given).
    chunk_size: models trained per compiled call and per file (default: all of a process's).
      Every call has this width (a shorter last chunk is padded with repeats of its last model,
      whose copies are dropped), so one program is compiled per run.
    results_dir: write every finished chunk here and resume from what is there (see above).
    mesh: shard the model axis of every chunk over this 1-D mesh (:func:`model_mesh`); chunks
      are padded with repeats of their last model to a multiple of the mesh size.
    process_index, process_count: this process runs supersamples ``a`` with
      ``a % process_count == process_index`` (multi-host runs share ``results_dir``; each
      process holds its own lock).
    callback: ``callback(done, total)`` after each chunk, in models of this process.

  Returns:
    :class:`SupersampleResult` over this process's supersamples.

  Raises:
    InvalidInputError: an argument is invalid (non-finite inputs, labels outside the model's
      outputs, a model whose initial parameters are not finite, bad sizes, a directory of a
      different configuration, ...); the message names it.
    StoreLockedError: another live run writes these supersamples of ``results_dir``.
  """
  x_pool = np.asarray(x_pool)
  y_pool = np.asarray(y_pool)
  _check_pool(x_pool, y_pool, x_test, y_test)
  if not isinstance(train, TrainConfig):
    _errors.fail("train", "a gbounds.train.TrainConfig", type(train).__name__)
  seed = _check_int("seed", seed, minimum=0)
  n, k1, k2 = (_check_int(k, v, minimum=1) for k, v in (("n", n), ("k1", k1), ("k2", k2)))
  design = draw_supersamples(len(y_pool), n=n, k1=k1, k2=k2, seed=seed)
  strategy = _errors.as_enum("strategy", strategy, MapStrategy)
  if mesh is not None:
    if not isinstance(mesh, jax.sharding.Mesh) or _MODEL_AXIS not in mesh.axis_names:
      _errors.fail("mesh", f"a jax.sharding.Mesh with the axis {_MODEL_AXIS!r} "
                   "(gbounds.supersample.model_mesh())", repr(getattr(mesh, "axis_names", mesh)))
    strategy = MapStrategy.VMAP
  if chunk_size is not None:
    chunk_size = _check_int("chunk_size", chunk_size, minimum=1)
  init_seed = seed if init_seed is None else _check_int("init_seed", init_seed, minimum=0)
  if callback is not None and not callable(callback):
    _errors.fail("callback", "a callable callback(done, total) or None", type(callback).__name__)
  example = x_pool[:1]
  init, apply_fn = _model_fns(model, apply_fn, example)
  local = _local_supersamples(k1, process_index, process_count)
  num_outputs = _num_outputs(init, apply_fn, example)
  _check_labels_fit(num_outputs, y_pool, y_test)
  ids_all = np.asarray([a * k2 + b for a in local for b in range(k2)], np.int64)
  if len(ids_all) == 0:
    _errors.fail("process_index", f"a process with supersamples (k1 = {k1} < process_count = "
                 f"{process_count})", process_index)
  labels = y_pool[design.supersample_idx]
  has_test = x_test is not None
  config = _jsonable({
      "mode": "sgd", "n": n, "k1": k1, "k2": k2, "seed": seed, "init_seed": init_seed,
      "model": _describe(model), "train": dataclasses.asdict(train),
      "pool": {"size": len(y_pool), "fingerprint": _fingerprint(x_pool, y_pool)},
      "test": ({"size": len(y_test), "fingerprint": _fingerprint(x_test, y_test)}
               if has_test else None),
      "format_version": _FORMAT_VERSION})
  store = None
  if results_dir is not None:
    store = _ResultsDir(results_dir, config, k1=k1, k2=k2, n=n,
                        process_index=int(process_index), process_count=int(process_count))
    store.open(design, labels)
  try:
    per_model = ({} if store is None else
                 store.chunks(set(ids_all.tolist()), labels, num_outputs=num_outputs,
                              repair=True))
    _train_chunks(per_model, store, ids_all, chunk_size, init, apply_fn, train, strategy,
                  mesh, init_seed, x_pool, y_pool, x_test, y_test, design, labels, n, k2,
                  callback)
  finally:
    if store is not None:
      store.close()
  bad = sum(not np.isfinite(per_model[int(i)]["final_loss"]) for i in ids_all)
  if bad:
    warnings.warn(f"run_supersample: {bad} of {len(ids_all)} models ended training with a "
                  f"non-finite loss (diverged; their predictions are not meaningful): lower "
                  f"train.learning_rate.", RuntimeWarning, stacklevel=2)
  return _assemble(per_model, local, k2, design, labels, config)


def _train_chunks(per_model, store, ids_all, chunk_size, init, apply_fn, train, strategy, mesh,
                  init_seed, x_pool, y_pool, x_test, y_test, design, labels, n, k2, callback):
  """Trains every model of ``ids_all`` not in ``per_model``, chunk by chunk (in place)."""
  todo = np.asarray([i for i in ids_all if int(i) not in per_model], np.int64)
  has_test = x_test is not None
  total = len(ids_all)
  done_count = total - len(todo)
  if done_count:
    _progress.notify(callback, done_count, total)
  if not len(todo):
    return
  # One width for every call of a run (one compilation), whatever is left to do: a shorter
  # chunk is padded (gbounds._src.batching.pad_rows: repeats of its first model, dropped), and
  # to a multiple of the mesh size.
  cs = len(ids_all) if chunk_size is None else min(int(chunk_size), len(ids_all))
  width = cs if mesh is None else -(-cs // mesh.size) * mesh.size
  init_fn = _init_many_fn(init)
  # jax.device_put, not jnp.asarray: the latter compiles a small program per new shape.
  xj, yj = jax.device_put(x_pool), jax.device_put(y_pool)
  if has_test:
    xt, yt = jax.device_put(np.asarray(x_test)), jax.device_put(np.asarray(y_test))
  resolved = predict = test_err = train_fn = None
  for start, stop in _batching.chunk_bounds(len(todo), cs):
    ids = todo[start:stop]
    m = len(ids)
    run_ids = _batching.pad_rows(ids, width)
    a_of, b_of = run_ids // k2, run_ids % k2
    ids_j = jax.device_put(run_ids)
    params, finite = init_fn(init_seed, ids_j)
    finite = np.asarray(finite)
    if not finite.all():
      r = int(np.flatnonzero(~finite)[0])
      _errors.check_finite_tree(f"model (initial parameters of model {int(run_ids[r])})",
                                jax.tree_util.tree_map(lambda v: np.asarray(v[r]), params))
    ss = design.supersample_idx[a_of]                                   # (m, n, 2)
    train_idx = np.take_along_axis(ss, design.masks[a_of, b_of][..., None], axis=-1)[..., 0]
    x_ss = jax.device_put(x_pool[ss.reshape(len(run_ids), 2 * n)])      # (m, 2n, ...)
    if mesh is not None:
      shard = NamedSharding(mesh, P(_MODEL_AXIS))
      params = jax.device_put(params, shard)
      x_ss = jax.device_put(x_ss, shard)
    if resolved is None:
      resolved = resolve_strategy(strategy, params)
      predict = _predict_fn(apply_fn, resolved)
      train_fn = train_many_fn(apply_fn, train, strategy=resolved)
      test_err = _test_error_fn(apply_fn, resolved) if has_test else None
    assert train_fn is not None and predict is not None  # set on the first chunk
    idx_j = jax.device_put(train_idx)
    if mesh is not None:
      idx_j, ids_j = jax.device_put(idx_j, shard), jax.device_put(ids_j, shard)
    out_params, out_loss = train_fn(params, xj, yj, idx_j, ids_j)
    preds = np.asarray(predict(out_params, x_ss))[:m]                   # (m, 2n, K)
    preds = preds.reshape(m, n, 2, preds.shape[-1])
    losses = (preds.argmax(-1) != labels[a_of[:m]]).astype(np.float32)
    terr = (np.asarray(test_err(out_params, xt, yt))[:m] if test_err is not None  # has_test
            else np.full(m, np.nan))
    arrays = {"predictions": preds, "losses": losses,
              "test_error": terr.astype(np.float32),
              "final_loss": np.asarray(out_loss)[:m].astype(np.float32)}
    if store is not None:
      store.write(ids, arrays, {"strategy": resolved.name.lower(), "chunk_width": int(width),
                                "devices": 1 if mesh is None else mesh.size})
    for r, i in enumerate(ids):
      per_model[int(i)] = {k: v[r] for k, v in arrays.items()}
    done_count += m
    _progress.notify(callback, done_count, total)


def load_supersample_results(results_dir: str | os.PathLike) -> SupersampleResult:
  """Assembles a finished run (all processes' chunks) from its results directory.

  Reads only (no lock, no repair): every chunk is checked (SHA-256, arrays, shapes, losses
  against the design) and ``design.npz`` against the design the configuration implies.
  Chunks of different sizes merge; a model stored twice with the same arrays is used once.

  Args:
    results_dir: a directory written by :func:`run_supersample`.

  Returns:
    :class:`SupersampleResult` over all ``k1`` supersamples.

  Raises:
    InvalidInputError: ``results_dir`` is not a results directory, or models are missing (the
      message says whether a writer still holds a lock there).
    CorruptResultsError: a file is corrupt, or a model is stored twice with different arrays;
      the message names the file(s). (It is also an ``InvalidInputError``; running
      :func:`run_supersample` on the directory repairs it.)
  """
  path = pathlib.Path(results_dir)
  cfg_file = path / "config.json"
  if not path.is_dir() or not cfg_file.exists():
    _errors.fail("results_dir", "a directory written by run_supersample",
                 f"{path} ({'no config.json' if path.is_dir() else 'not a directory'})")
  try:
    meta = _io.read_json(cfg_file)
    if (not isinstance(meta, dict) or not isinstance(meta.get("config"), dict)
        or not all(k in meta["config"] for k in ("k1", "k2", "n", "seed", "pool"))):
      raise _errors.CorruptFileError(
          f"{cfg_file}: expected an object with the run's config, got "
          f"{str(meta)[:80]} instead.")
  except _errors.CorruptFileError as e:
    raise CorruptResultsError(f"{e} Run run_supersample on {path} to write it again.") from None
  config = meta["config"]
  k1, k2, n = config["k1"], config["k2"], config["n"]
  store = _ResultsDir(path, config, k1=k1, k2=k2, n=n)
  if meta.get("config_digest") not in (None, store.digest):
    raise CorruptResultsError(f"{cfg_file}: expected a config_digest matching its config, got "
                              f"{meta.get('config_digest')} instead (edited by hand?).")
  design, labels = store.read_design(meta)
  per_model = store.chunks(set(range(k1 * k2)), labels, num_outputs=None, repair=False)
  missing = [i for i in range(k1 * k2) if i not in per_model]
  if missing:
    locks = sorted(p.name for p in path.glob("writer_*_of_*.lock"))
    _errors.fail("results_dir", f"all {k1 * k2} models finished",
                 f"{len(missing)} missing (first: model {missing[0]})" +
                 (f"; a run may still be writing it (lock files: {', '.join(locks)})"
                  if locks else "; run run_supersample on it to finish the run"))
  return _assemble(per_model, np.arange(k1), k2, design, labels, config)


# ----------------------------------------------------------------------------- linearized


def _check_discrete_step(theta_ss, masks, *, n: int, kk: int, learning_rate: float,
                         weight_decay: float, a: int) -> None:
  """Rejects ``eta * lambda_max(Theta_TT + lambda I) >= 2`` (divergent GD) for any mask.

  ``Theta_TT`` of a mask is a principal submatrix of the supersample kernel ``Theta_SS``, so
  ``lambda_max(Theta_TT) <= lambda_max(Theta_SS)`` (Cauchy interlacing): one eigenvalue of
  ``Theta_SS`` clears every mask at once; only when it does not are the masks' own kernels
  checked. (The closed form inside ``jit`` cannot raise; this runs on the host.)
  """
  th = np.asarray(theta_ss, np.float64)
  th = 0.5 * (th + th.T)
  if learning_rate * (np.linalg.eigvalsh(th)[-1] + weight_decay) < 2:
    return
  for b, mask in enumerate(np.asarray(masks)):
    rows = 2 * np.arange(n) + mask
    cols = (rows[:, None] * kk + np.arange(kk)[None, :]).reshape(-1)
    lam = float(np.linalg.eigvalsh(th[np.ix_(cols, cols)])[-1]) + weight_decay
    if learning_rate * lam >= 2:
      _errors.fail("learning_rate", f"a step below 2 / lambda_max = {2 / lam:.6g} for "
                   f"convergent discrete-time gradient descent (lambda_max of Theta_TT + "
                   f"weight_decay I = {lam:.6g} for mask {b} of supersample {a}; larger steps "
                   f"diverge)", learning_rate)


@functools.lru_cache(maxsize=32)
def _init_one_fn(init):
  """``(seed, a) -> params`` from ``init(fold_in(key(seed), a))``, compiled once per ``init``."""
  return jax.jit(lambda seed, a: init(jax.random.fold_in(jax.random.key(seed), a)),
                 static_argnums=0)


@functools.lru_cache(maxsize=32)
def _solve_masks_fn(n: int, learning_rate: Any, t: Any, weight_decay: Any, time: Time,
                    mask_batch_size: int):
  """The closed-form predictions of a batch of masks, compiled once per setting.

  Returns ``solve_masks(theta_all_ss, f0_all, r0_ss, masks, kk) -> (k2, N_all, K)``.
  """
  def solve(theta_all_ss, f0_all, r0_ss, mask, kk):
    # theta_all_ss: (N_all K, 2n K); r0_ss: (2n K,); mask: (n,) -> predictions (N_all, K).
    rows = 2 * jnp.arange(n, dtype=mask.dtype) + mask                         # (n,)
    cols = (rows[:, None] * kk + jnp.arange(kk, dtype=rows.dtype)[None, :]).reshape(-1)  # (n K,)
    theta_tt = theta_all_ss[cols][:, cols]
    a_t = gd_coefficients(theta_tt, r0_ss[cols], learning_rate=learning_rate, t=t,
                          weight_decay=weight_decay, time=time)
    return (f0_all.reshape(-1) + theta_all_ss[:, cols] @ a_t).reshape(f0_all.shape)

  return jax.jit(
      lambda th, f0, r0, masks, kk: jax.lax.map(
          lambda mk: solve(th, f0, r0, mk, kk), masks, batch_size=mask_batch_size),
      static_argnums=(4,))


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
                               callback: _progress.ProgressCallback | None = None
                               ) -> SupersampleResult:
  """Supersample experiment of the linearized network, in closed form (no SGD).

  For supersample ``a`` with initial weights ``w0_a`` (``fold_in(key(init_seed), a)``, shared by
  its masks), one empirical NTK ``Theta(X_all, X~)`` between all ``2n`` supersample and test
  points and the ``2n`` supersample points is computed. Mask ``U`` trains on rows
  ``T = {2i + U_i}``; gradient descent on the summed MSE
  ``1/2 ||f_lin(w, X_T) - Y_T||^2 + lambda/2 ||w - w0||^2`` gives (see
  :func:`gbounds.ntk.gd_coefficients`)

  .. math::
     f_t(x) = f_0(x) + \\Theta(x, X_T)\\, a_t, \\qquad
     a_t = -\\varphi_t(\\Theta_{TT} + \\lambda I)\\,(f_0(X_T) - Y_T),

  computed for a batch of masks at once (one ``eigh`` of the ``nK x nK`` sub-kernel per mask).

  Args:
    model, x_pool, y_pool, x_test, y_test, n, k1, k2, seed, init_seed, apply_fn: as in
      :func:`run_supersample`.
    learning_rate, t, weight_decay, time: the dynamics (:func:`gbounds.ntk.gd_coefficients`);
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
  seed = _check_int("seed", seed, minimum=0)
  n, k1, k2 = (_check_int(k, v, minimum=1) for k, v in (("n", n), ("k1", k1), ("k2", k2)))
  design = draw_supersamples(len(y_pool), n=n, k1=k1, k2=k2, seed=seed)
  targets = _errors.as_enum("targets", targets, TargetEncoding)
  time = _errors.as_enum("time", time, Time)
  _errors.check_positive("learning_rate", learning_rate)
  _errors.check_positive("weight_decay", weight_decay, strict=False)
  if not isinstance(t, (int, float, np.integer, np.floating)) or np.isnan(t) or t < 0:
    _errors.fail("t", "a non-negative time (inf allowed)", repr(t))
  mask_batch_size = _check_int("mask_batch_size", mask_batch_size, minimum=1)
  if ntk_chunk_size is not None:
    ntk_chunk_size = _check_int("ntk_chunk_size", ntk_chunk_size, minimum=1)
  init_seed = seed if init_seed is None else _check_int("init_seed", init_seed, minimum=0)
  if callback is not None and not callable(callback):
    _errors.fail("callback", "a callable callback(done, total) or None", type(callback).__name__)
  init, apply_fn = _model_fns(model, apply_fn, x_pool[:1])
  _check_labels_fit(_num_outputs(init, apply_fn, x_pool[:1]), y_pool, y_test)
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
  solve_masks = _solve_masks_fn(n, learning_rate, t, weight_decay, time, mask_batch_size)
  init_fn = _init_one_fn(init)
  preds_all, losses_all, terr_all = [], [], []
  for a in range(k1):
    params0 = init_fn(init_seed, a)
    _errors.check_finite_tree(f"model (initial parameters of supersample {a})", params0)
    x_ss = x_pool[design.supersample_idx[a].reshape(-1)]                      # (2n, ...)
    x_all = np.concatenate([x_ss, x_test]) if has_test else x_ss
    if param_dtype is not None:
      params0 = jax.tree_util.tree_map(lambda v: v.astype(param_dtype), params0)
      x_ss, x_all = x_ss.astype(param_dtype), x_all.astype(param_dtype)
    x_ss, x_all = jax.device_put(x_ss), jax.device_put(x_all)
    theta = ntk_fn(x_all, x_ss, params0)                                      # (N_all K, 2nK)
    f0 = apply_fn(params0, x_all)                                             # (N_all, K)
    kk = int(f0.shape[-1])
    if time == Time.DISCRETE:
      _check_discrete_step(theta[:2 * n * kk], design.masks[a], n=n, kk=kk,
                           learning_rate=learning_rate, weight_decay=weight_decay, a=a)
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
    _progress.notify(callback, (a + 1) * k2, k1 * k2)
  return SupersampleResult(
      supersample_ids=np.arange(k1), supersample_idx=design.supersample_idx, masks=design.masks,
      labels=labels, predictions=np.stack(preds_all), losses=np.stack(losses_all),
      test_error=np.stack(terr_all).astype(np.float32),
      final_loss=np.full((k1, k2), np.nan, np.float32), config=config)
