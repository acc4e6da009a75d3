"""Chaos tests of the supersample results store (gbounds.supersample._supersample, gbounds._src.io).

A tiny supersample experiment (an MLP 5-8-3, 8 steps, one model per chunk) runs in a child
process that is killed with SIGKILL at random moments and resumed each time. Three kinds of
moment: inside a random write (the child replaces ``gbounds._src.io._write_all`` by a version that
writes half the bytes, announces it and sleeps, so the parent kills it mid-write), a random
delay into start-up (compilation, lock, scan of the directory), and a random delay once the
first chunk write began (writes slowed to 0.1 s so kills land in training and writes). The reference is an
uninterrupted run of the same script into another directory: the resumed directory must hold
bit-identical arrays (``np.array_equal`` on every array ``load_supersample_results`` returns and
on the design), no temporary file, no lock and no orphan chunk. While a child holds the lock, a
second writer in this process is refused with ``StoreLockedError`` naming the child's pid and
the lock file; a chunk corrupted before the last resume is named on stderr, quarantined and
recomputed.

The children share a persistent JAX compilation cache (filled by the reference run), so each
costs an interpreter start and no compilation: the same compiled program as the reference.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from gbounds._src import io as _io
from gbounds._src.errors import StoreLockedError
from gbounds.supersample import _supersample as ss

ROOT = pathlib.Path(__file__).resolve().parents[2]

# The experiment, shared by the child script and the in-process second writer.
_SETUP = textwrap.dedent("""
    import numpy as np
    import gbounds
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    y = x[:, :3].argmax(1).astype(np.int32)
    MODEL = gbounds.models.MLP(hidden=(8,), out=3)
    ARGS = (MODEL, x[:48], y[:48], x[48:], y[48:])
    KW = dict(n=6, train=gbounds.train.TrainConfig(learning_rate=0.3, steps=8, batch_size=4, seed=2),
              seed=5, chunk_size=1, strategy="vmap")
""")

_CHILD = _SETUP + textwrap.dedent("""
    import pathlib, sys, time
    from gbounds._src import io as _io
    from gbounds.supersample import _supersample as ss
    out, signals = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    slow, block_at = float(sys.argv[3]), int(sys.argv[4])
    k1, k2 = int(sys.argv[5]), int(sys.argv[6])
    writes = [0]

    def slow_write(f, data):
      writes[0] += 1
      f.write(data[:len(data) // 2])
      f.flush()
      (signals / f"write{writes[0]:03d}").touch()      # half written: a kill lands mid-write
      time.sleep(600 if writes[0] == block_at else slow)
      f.write(data[len(data) // 2:])

    if slow > 0 or block_at > 0:
      _io._write_all = slow_write
    (signals / "started").touch()
    ss.run_supersample(*ARGS, k1=k1, k2=k2, results_dir=out, **KW)
    print("CHILD_DONE", flush=True)
""")


class _Chaos:
  """Starts children on one results directory and kills them."""

  def __init__(self, tmp: pathlib.Path, k1: int, k2: int):
    self.tmp, self.k1, self.k2 = tmp, k1, k2
    self.script = tmp / "child.py"
    self.script.write_text(_CHILD)
    self.env = {**os.environ, "JAX_PLATFORMS": "cpu",
                "JAX_COMPILATION_CACHE_DIR": str(tmp / "jax_cache"),
                "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    self.env.pop("JAX_ENABLE_X64", None)
    self.attempt = 0
    self.procs: list[subprocess.Popen] = []

  def start(self, out: pathlib.Path, *, slow: float = 0.0, block_at: int = 0):
    self.attempt += 1
    sig = self.tmp / f"signals{self.attempt:03d}"
    sig.mkdir()
    proc = subprocess.Popen(
        [sys.executable, str(self.script), str(out), str(sig), str(slow), str(block_at),
         str(self.k1), str(self.k2)], cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    self.procs.append(proc)
    return proc, sig

  def close(self) -> None:
    for proc in self.procs:
      if proc.returncode is None:
        if proc.poll() is None:
          proc.kill()
        proc.communicate(timeout=60)

  def finish(self, out: pathlib.Path) -> str:
    proc, _ = self.start(out)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "CHILD_DONE" in stdout, stderr[-3000:]
    return stderr

  @staticmethod
  def wait_for(proc, path: pathlib.Path, timeout: float = 120.0) -> bool:
    """True once ``path`` exists; False if the child exited first."""
    t0 = time.monotonic()
    while not path.exists():
      if proc.poll() is not None:
        return False
      assert time.monotonic() - t0 < timeout, f"child never reached {path.name}"
      time.sleep(0.005)
    return True

  @staticmethod
  def kill(proc) -> bool:
    """SIGKILL and reap (a zombie's pid would still look alive); True if it was running."""
    running = proc.poll() is None
    if running:
      os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    return running


def _assert_same_store(run: pathlib.Path, ref: pathlib.Path, k1: int, k2: int) -> None:
  a, b = ss.load_supersample_results(run), ss.load_supersample_results(ref)
  for field in ("supersample_ids", "supersample_idx", "masks", "labels", "predictions",
                "losses", "test_error", "final_loss"):
    x, y = getattr(a, field), getattr(b, field)
    assert x.dtype == y.dtype and np.array_equal(x, y), field
  da, db = _io.read_npz(run / "design.npz"), _io.read_npz(ref / "design.npz")
  assert da.keys() == db.keys() and all(np.array_equal(da[k], db[k]) for k in da)
  # Every model in exactly one chunk; nothing left over by the killed writers.
  ids = sorted(i for js in run.glob("chunk_*.json") for i in json.loads(js.read_text())["model_ids"])
  assert ids == list(range(k1 * k2))
  assert _io.temporaries(run) == []
  assert list(run.glob("*.lock")) == []
  assert all(p.with_suffix(".json").exists() for p in run.glob("chunk_*.npz"))


def _second_writer_is_refused(out: pathlib.Path, child_pid: int, k1: int, k2: int) -> None:
  ns: dict = {}
  exec(_SETUP, ns)  # noqa: S102 (the experiment's own setup code, above)
  before = sorted(p.name for p in out.iterdir())
  with pytest.raises(StoreLockedError) as info:
    ss.run_supersample(*ns["ARGS"], k1=k1, k2=k2, results_dir=out, **ns["KW"])
  msg = str(info.value)
  assert f"pid {child_pid} " in msg and str(out / "writer_0_of_1.lock") in msg, msg
  assert sorted(p.name for p in out.iterdir()) == before   # the refused writer touched nothing


def _corrupt(run: pathlib.Path, how: str) -> pathlib.Path:
  npz = [p for p in sorted(run.glob("chunk_*.npz")) if p.with_suffix(".json").exists()][0]
  if how == "truncate":
    data = npz.read_bytes()
    npz.write_bytes(data[:len(data) // 3])
  else:
    npz.write_bytes(b"this is not a zip archive\n" * 20)
  return npz


@pytest.fixture
def chaos_factory(tmp_path):
  made = []

  def make(k1, k2):
    made.append(_Chaos(tmp_path, k1, k2))
    return made[-1]

  yield make
  for c in made:
    c.close()


def test_three_kills_second_writer_and_corrupt_chunk(tmp_path, chaos_factory):
  k1, k2 = 3, 2
  chaos = chaos_factory(k1, k2)
  ref, run = tmp_path / "reference", tmp_path / "run"
  chaos.finish(ref)                          # uninterrupted; fills the compilation cache
  rng = np.random.default_rng(11)

  # 1. Killed inside write 4 (the .json marker of the first chunk; writes 1-2 are
  #    design.npz and config.json), after a second writer was refused.
  proc, sig = chaos.start(run, block_at=4)
  assert chaos.wait_for(proc, sig / "write004")
  _second_writer_is_refused(run, proc.pid, k1, k2)
  chaos.kill(proc)
  assert [t for _, t in _io.temporaries(run)] == ["chunk_0000000-0000000.json"]
  assert (run / "writer_0_of_1.lock").exists()          # stale now; taken over below
  # 2. Killed at a random moment after its first write began, writes slowed down.
  proc, sig = chaos.start(run, slow=0.1)
  if chaos.wait_for(proc, sig / "write001"):
    time.sleep(rng.uniform(0.0, 1.0))
  chaos.kill(proc)
  # 3. Killed inside the third write of the resumed run (a chunk's npz).
  proc, sig = chaos.start(run, block_at=3)
  blocked = chaos.wait_for(proc, sig / "write003")
  chaos.kill(proc)
  if blocked:
    assert any(t.endswith(".npz") for _, t in _io.temporaries(run))
  # A finished chunk goes bad on disk; the last resume names it, moves it aside, recomputes.
  bad = _corrupt(run, "truncate")
  stderr = chaos.finish(run)
  assert "SupersampleStoreWarning" in stderr and str(bad) in stderr, stderr[-3000:]
  assert pathlib.Path(str(bad) + ".corrupt").exists()
  _assert_same_store(run, ref, k1, k2)


@pytest.mark.slow
def test_twenty_random_kills_resume_bit_identical(tmp_path, chaos_factory):
  k1, k2 = 12, 4
  chaos = chaos_factory(k1, k2)
  ref, run = tmp_path / "reference", tmp_path / "run"
  chaos.finish(ref)
  rng = np.random.default_rng(2026)
  mid_write = killed = 0
  for i in range(20):
    if i % 2 == 0:        # inside a random write of this attempt
      k = int(rng.integers(1, 7))
      proc, sig = chaos.start(run, block_at=k)
      landed = chaos.wait_for(proc, sig / f"write{k:03d}")
      if i == 4 and landed:
        _second_writer_is_refused(run, proc.pid, k1, k2)
    elif i % 4 == 1:      # at a random moment of start-up (imports done; compile, scan, ...)
      proc, sig = chaos.start(run, slow=0.1)
      if chaos.wait_for(proc, sig / "started"):
        time.sleep(rng.uniform(0.0, 2.0))
    else:                 # at a random moment once writing began, writes slowed down
      proc, sig = chaos.start(run, slow=0.1)
      if chaos.wait_for(proc, sig / "write001"):
        time.sleep(rng.uniform(0.0, 1.0))
    killed += chaos.kill(proc)
    mid_write += bool(_io.temporaries(run))
  left = k1 * k2 - sum(len(json.loads(js.read_text())["model_ids"])
                       for js in run.glob("chunk_*.json"))
  print(f"chaos: {killed} of 20 runs killed, {mid_write} inside a write; {left} of "
        f"{k1 * k2} models left for the last resume")
  assert killed >= 15 and mid_write >= 8 and left < k1 * k2, (killed, mid_write, left)
  bad = _corrupt(run, "garbage")
  stderr = chaos.finish(run)
  assert str(bad) in stderr and pathlib.Path(str(bad) + ".corrupt").exists(), stderr[-3000:]
  _assert_same_store(run, ref, k1, k2)
