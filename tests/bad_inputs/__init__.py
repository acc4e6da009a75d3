"""Bad-input cases, one module per family; collected by ``tests/test_bad_inputs.py``.

Each module defines ``CASES``: a list of :class:`tests.bad_inputs.Case`. A case is a call that
must fail: ``call()`` raises ``exc`` (or a subclass) whose message matches ``match`` (a regular
expression that names the offending argument, searched case-insensitively). A case whose call
returns anything fails the test.

Families (use these names): "shapes", "ranks", "dtypes", "nan" (NaN/inf in data, params or
kernels), "empty", "labels" (out-of-range labels), "classes", "probabilities", "confidences"
(delta), "counts", "sizes", "options" (unknown options or enum values), "files" (corrupt or
truncated files), "checkpoints" (wrong-architecture checkpoints), "concurrency", "cli".
"""


from __future__ import annotations

import contextlib
import dataclasses
import io
from collections.abc import Callable
from typing import Any

FAMILIES = ("shapes", "ranks", "dtypes", "nan", "empty", "labels", "classes", "probabilities",
            "confidences", "counts", "sizes", "options", "files", "checkpoints", "concurrency",
            "cli")


@dataclasses.dataclass(frozen=True)
class Case:
  id: str                         # unique, e.g. "kl/binary_kl_p_above_one"
  family: str                     # e.g. "probabilities", "shapes", "nan", "cli", "files"
  call: Callable[[], Any]         # the bad call; must raise
  exc: type[BaseException] | tuple[type[BaseException], ...]
  match: str                      # regex the message must contain (names the argument)


class CliExit2(Exception):
  """The command exited with status 2; the message is its stderr (exactly one line)."""


def run_cli(*argv: str) -> int:
  """Runs ``gbounds.cli.main(argv)`` in process with stderr captured.

  Exit status 2 raises :class:`CliExit2` carrying the stderr text, which must be one line (an
  ``AssertionError`` otherwise); any other status is returned, so a bad input that the command
  accepts fails its case.
  """
  from gbounds.cli import main

  err = io.StringIO()
  with contextlib.redirect_stderr(err):
    rc = main(list(argv))
  text = err.getvalue().strip()
  if rc == 2:
    if "\n" in text:
      raise AssertionError(f"more than one line on stderr: {text!r}")
    raise CliExit2(text)
  return rc
