"""Small helpers shared by the benchmark scripts (user code: the public API and the standard
library only)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import pathlib
import platform
import resource
import statistics
import sys
import tempfile
import time

import numpy as np


def _default(o):
  if isinstance(o, np.ndarray):
    return o.tolist()
  if isinstance(o, (np.integer,)):
    return int(o)
  if isinstance(o, (np.floating,)):
    return float(o)
  if isinstance(o, (pathlib.PurePath,)):
    return str(o)
  if hasattr(o, "__array__"):
    return np.asarray(o).tolist()
  raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path: str | os.PathLike, obj) -> pathlib.Path:
  """Writes ``obj`` as indented JSON atomically (a temporary file in the same directory, then
  ``os.replace``); numpy values become plain numbers and lists.

  Args:
    path: the target file (its directory is created).
    obj: JSON-able data (numpy arrays allowed).

  Returns:
    The path written.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  text = json.dumps(obj, indent=2, default=_default)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "w") as f:
      f.write(text)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
  return path


def versions() -> dict[str, str]:
  """Versions of Python, gbounds and the numeric stack, for result files.

  Returns:
    ``{"python": ..., "gbounds": ..., "jax": ..., ...}`` (``"absent"`` when not installed).
  """
  out = {"python": platform.python_version()}
  for name in ("gbounds", "jax", "jaxlib", "flax", "optax", "numpy"):
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      out[name] = "absent"
  return out


def matmul_gflops(size: int = 2048, reps: int = 5) -> float:
  """The machine's in-run float32 matmul rate, for reading a benchmark's figures as a fraction of
  the hardware limit measured on the same machine in the same minute.

  Args:
    size: the side of the square product ``a @ a`` (2 size^3 flops).
    reps: timed repetitions after one warm-up call; the median is used.

  Returns:
    GFLOP/s of a jitted float32 ``size x size`` matmul on the default JAX device.
  """
  import jax
  import jax.numpy as jnp
  a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
  mm = jax.jit(lambda u: u @ u)
  _, seconds = timed_median(lambda: mm(a), reps)
  return 2 * size ** 3 / seconds / 1e9


def timed_median(fn, repeats: int) -> tuple[float, float]:
  """Times ``fn()`` (waiting for its JAX results) once as a warm-up, then ``repeats`` times.

  Args:
    fn: a function of no arguments; its result is passed to ``jax.block_until_ready``.
    repeats: timed calls after the warm-up.

  Returns:
    ``(first_s, median_s)``: the warm-up call's seconds (compilation included) and the median
    of the timed calls.
  """
  import jax
  t = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - t
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t)
  return first, statistics.median(times)


def peak_rss_gib() -> float:
  """Peak resident memory of this process (``ru_maxrss``), in GiB.

  Returns:
    The high-water mark of this process's resident set since it started.
  """
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
  return peak / (2 ** 30 if sys.platform == "darwin" else 2 ** 20)
