"""The scoped hook through which :func:`gbounds.models.intercept_layers` reaches NNX layers.

An ``apply_fn`` made by :func:`gbounds.models.as_model_fn` from an NNX module calls the merged
(per-call) module through :func:`call_nnx`; while a hook is active (inside
``intercept_layers``), the hook runs the call instead. Nothing global is modified: the hook
stack is a context variable, restored when the ``with`` block exits.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any

_NNX_HOOKS: contextvars.ContextVar[tuple] = contextvars.ContextVar("gbounds_nnx_hooks",
                                                                   default=())


def call_nnx(module: Any, x: Any) -> Any:
  """Calls ``module(x)``, through the innermost active hook if there is one.

  Args:
    module: the (per-call, merged) NNX module.
    x: its input batch.

  Returns:
    The module's output.
  """
  hooks = _NNX_HOOKS.get()
  if not hooks:
    return module(x)
  return hooks[-1](module, x)


@contextlib.contextmanager
def nnx_hook(hook: Callable[[Any, Any], Any]) -> Iterator[None]:
  """Makes ``hook(module, x)`` run the NNX calls of :func:`call_nnx` inside the block.

  Args:
    hook: ``hook(module, x) -> output``.

  Returns:
    A context manager (the hook is removed on exit).
  """
  token = _NNX_HOOKS.set((*_NNX_HOOKS.get(), hook))
  try:
    yield
  finally:
    _NNX_HOOKS.reset(token)
