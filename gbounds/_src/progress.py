"""One progress convention: ``callback(done, total)``, and a tqdm bar that consumes it."""

from __future__ import annotations

from typing import Protocol

__all__ = ["ProgressCallback", "TqdmCallback", "notify"]


class ProgressCallback(Protocol):
  """Called as ``callback(done, total)`` after each finished unit of work."""

  def __call__(self, done: int, total: int) -> None: ...


def notify(callback: ProgressCallback | None, done: int, total: int) -> None:
  """Calls ``callback(done, total)`` when a callback was given.

  Args:
    callback: a :class:`ProgressCallback` or ``None``.
    done: units finished so far.
    total: units in all.
  """
  if callback is not None:
    callback(done, total)


class TqdmCallback:
  """A :class:`ProgressCallback` that drives a tqdm bar on stderr (silent without tqdm).

  Args:
    desc: bar label.
    unit: unit name.
    enabled: ``False`` makes every call a no-op.
  """

  def __init__(self, desc: str = "", unit: str = "it", *, enabled: bool = True):
    self.desc, self.unit, self.enabled, self.bar = desc, unit, enabled, None

  def __call__(self, done: int, total: int) -> None:
    if not self.enabled:
      return
    if self.bar is None:
      try:
        from tqdm.auto import tqdm
      except ImportError:  # pragma: no cover - tqdm is a test dependency
        self.enabled = False
        return
      self.bar = tqdm(total=total, desc=self.desc, unit=self.unit, leave=False)
    self.bar.total = total
    self.bar.n = done
    self.bar.refresh()
    if done >= total:
      self.close()

  def close(self) -> None:
    """Closes the bar (idempotent)."""
    if self.bar is not None:
      self.bar.close()
      self.bar = None
