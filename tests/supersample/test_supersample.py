"""Tests of the supersample harness (gbounds.supersample._supersample).

References are independent computations: the foundation's ``train_many`` plus hand-written
gathers for the SGD harness, an uninterrupted run for resume, a single-process run for the
process split, an unsharded run (in a subprocess with 4 forced CPU devices) for sharding, and
``gradient_descent_mse`` on a separately computed training kernel for the linearized mode.
"""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import textwrap
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gbounds
from gbounds._src import io as _io
from gbounds._src.errors import CorruptFileError, StoreLockedError
from gbounds.supersample import _supersample as ss
from tests.bad_inputs.supersample import make_results_dir, write_chunk

N_POOL, N, K1, K2 = 60, 6, 2, 3
CFG = gbounds.train.TrainConfig(learning_rate=0.2, steps=6, batch_size=4, seed=3)
MODEL = gbounds.models.MLP(hidden=(5,), out=2)


def _data(n=N_POOL, d=4, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d)).astype(np.float32)
  y = (x[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(np.int32)
  return x, y


@pytest.fixture(scope="module")
def data():
  x, y = _data()
  xt, yt = _data(20, seed=1)
  return x, y, xt, yt


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("reference")


@pytest.fixture(scope="module")
def reference(data, reference_dir):
  x, y, xt, yt = data
  return ss.run_supersample(MODEL, x, y, xt, yt, n=N, k1=K1, k2=K2, train=CFG, seed=7,
                            chunk_size=2, strategy="vmap", results_dir=reference_dir)


def _same(a, b):
  for field in ("supersample_ids", "supersample_idx", "masks", "labels", "predictions",
                "losses", "test_error", "final_loss"):
    x, y = getattr(a, field), getattr(b, field)
    assert x.dtype == y.dtype and np.array_equal(x, y), field


# ----------------------------------------------------------------------------- design


def test_design_shapes_and_randomness():
  d = ss.draw_supersamples(50, n=10, k1=3, k2=4, seed=1)
  assert d.supersample_idx.shape == (3, 10, 2) and d.masks.shape == (3, 4, 10)
  for a in range(3):
    assert len(np.unique(d.supersample_idx[a])) == 20           # 2n distinct rows
  assert set(np.unique(d.masks)) <= {0, 1}
  again = ss.draw_supersamples(50, n=10, k1=5, k2=4, seed=1)     # more supersamples: prefix same
  np.testing.assert_array_equal(again.supersample_idx[:3], d.supersample_idx)
  np.testing.assert_array_equal(again.masks[:3], d.masks)
  other = ss.draw_supersamples(50, n=10, k1=3, k2=4, seed=2)
  assert not np.array_equal(other.supersample_idx, d.supersample_idx)


def test_mask_frequency_is_one_half():
  d = ss.draw_supersamples(1000, n=100, k1=20, k2=50, seed=0)
  # 100k Bernoulli(1/2) draws: the mean is within 5 standard errors (0.0016) of 1/2.
  assert abs(d.masks.mean() - 0.5) < 5 * 0.5 / np.sqrt(d.masks.size)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=31, k1=1, k2=2), "n: expected at most half the pool"),
    (dict(n=5, k1=1, k2=1), "k2: expected at least 2"),
    (dict(n=0, k1=1, k2=2), "n: expected a positive integer"),
    (dict(n=5, k1=0, k2=2), "k1: expected a positive integer"),
])
def test_design_bad_input(kwargs, match):
  with pytest.raises(gbounds.InvalidInputError, match=match):
    ss.draw_supersamples(60, **kwargs)


def test_check_masks():
  good = np.zeros((2, 3, 4), np.int32)
  assert ss.check_masks("masks", good, n=4).shape == (2, 3, 4)
  with pytest.raises(gbounds.InvalidInputError, match="binary values"):
    ss.check_masks("masks", good + 2)
  with pytest.raises(gbounds.InvalidInputError, match="at least 2 masks"):
    ss.check_masks("masks", good[:, :1])
  with pytest.raises(gbounds.InvalidInputError, match="rank 3"):
    ss.check_masks("masks", good[0])
  with pytest.raises(gbounds.InvalidInputError, match="5 pairs"):
    ss.check_masks("masks", good, n=5)


def test_run_bad_input(data):
  x, y, xt, yt = data
  with pytest.raises(gbounds.InvalidInputError, match="y_pool: expected integer"):
    ss.run_supersample(MODEL, x, y.astype(np.float32), n=N, k1=1, k2=2, train=CFG)
  with pytest.raises(gbounds.InvalidInputError, match="x_test/y_test"):
    ss.run_supersample(MODEL, x, y, xt, n=N, k1=1, k2=2, train=CFG)
  with pytest.raises(gbounds.InvalidInputError, match="k2"):
    ss.run_supersample(MODEL, x, y, n=N, k1=1, k2=1, train=CFG)
  with pytest.raises(gbounds.InvalidInputError, match="half the pool"):
    ss.run_supersample(MODEL, x, y, n=N_POOL, k1=1, k2=2, train=CFG)
  with pytest.raises(gbounds.InvalidInputError, match="process_index"):
    ss.run_supersample(MODEL, x, y, n=N, k1=1, k2=2, train=CFG, process_index=2,
                       process_count=2)
  bad = x.copy()
  bad[0, 0] = np.nan
  with pytest.raises(gbounds.InvalidInputError, match="x_pool: expected finite"):
    ss.run_supersample(MODEL, bad, y, n=N, k1=1, k2=2, train=CFG)


# ----------------------------------------------------------------------------- SGD harness


def test_harness_matches_train_many_and_manual_gathers(data, reference):
  x, y, xt, yt = data
  r = reference
  design = ss.draw_supersamples(N_POOL, n=N, k1=K1, k2=K2, seed=7)
  np.testing.assert_array_equal(r.supersample_idx, design.supersample_idx)
  np.testing.assert_array_equal(r.masks, design.masks)
  ids = np.arange(K1 * K2)
  a, b = ids // K2, ids % K2
  train_idx = np.array([[design.supersample_idx[a[j], i, design.masks[a[j], b[j], i]]
                         for i in range(N)] for j in ids])
  keys = [jax.random.fold_in(jax.random.key(7), int(j)) for j in ids]
  params = jax.tree_util.tree_map(
      lambda *v: jnp.stack(v), *[MODEL.init(k, x[:1])["params"] for k in keys])
  apply_fn = lambda p, xx: MODEL.apply({"params": p}, xx)  # noqa: E731
  out = gbounds.train.train_many(apply_fn, params, x, y, train_idx, CFG, strategy="vmap",
                           model_ids=ids)
  for j in ids:
    pj = jax.tree_util.tree_map(lambda v: v[j], out.params)
    for i in range(N):
      for c in range(2):
        row = design.supersample_idx[a[j], i, c]
        logits = np.asarray(apply_fn(pj, x[row:row + 1]))[0]
        np.testing.assert_allclose(r.predictions[a[j], b[j], i, c], logits, rtol=1e-5, atol=1e-6)
        assert r.labels[a[j], i, c] == y[row]
        assert r.losses[a[j], b[j], i, c] == float(np.argmax(logits) != y[row])
    err = np.mean(np.argmax(np.asarray(apply_fn(pj, xt)), -1) != yt)
    np.testing.assert_allclose(r.test_error[a[j], b[j]], err, atol=1e-6)
    np.testing.assert_allclose(r.final_loss[a[j], b[j]], out.final_loss[j], rtol=1e-5)
  # Training / ghost split and the summary statistics.
  tr = np.array([[[r.losses[i, j, p, r.masks[i, j, p]] for p in range(N)] for j in range(K2)]
                 for i in range(K1)])
  gh = np.array([[[r.losses[i, j, p, 1 - r.masks[i, j, p]] for p in range(N)]
                  for j in range(K2)] for i in range(K1)])
  np.testing.assert_array_equal(r.train_losses, tr)
  np.testing.assert_array_equal(r.ghost_losses, gh)
  assert r.gap == pytest.approx(gh.mean() - tr.mean())
  assert r.mean_test_error == pytest.approx(r.test_error.mean())


class _Crash(Exception):
  pass


def test_resume_after_crash_equals_uninterrupted(data, reference, tmp_path):
  x, y, xt, yt = data
  calls = []

  def crash_after_first_chunk(done, total):
    calls.append(done)
    if len(calls) == 1:
      raise _Crash

  kw = dict(n=N, k1=K1, k2=K2, train=CFG, seed=7, strategy="vmap", results_dir=tmp_path)
  with pytest.raises(_Crash):
    ss.run_supersample(MODEL, x, y, xt, yt, callback=crash_after_first_chunk, chunk_size=2,
                       **kw)
  first = sorted(tmp_path.glob("chunk_*.json"))
  assert len(first) == 1 and json.loads(first[0].read_text())["model_ids"] == [0, 1]
  assert list(tmp_path.glob("*.lock")) == []          # released on the exception

  # Resume with another chunk size (the "model 3 twice"); someone deletes the lock
  # after the first chunk: the run stops before writing anything more.
  def delete_lock(done, total):
    progress.append(done)
    if done == 5:
      (tmp_path / "writer_0_of_1.lock").unlink()

  progress = []
  with pytest.raises(StoreLockedError, match="expected this run to hold its lock file"):
    ss.run_supersample(MODEL, x, y, xt, yt, callback=delete_lock, chunk_size=3, **kw)
  assert progress == [2, 5]                          # from the 2 finished models, then 3 more
  progress = []
  resumed = ss.run_supersample(MODEL, x, y, xt, yt, callback=lambda d, t: progress.append(d),
                               chunk_size=3, **kw)
  assert progress == [5, 6]
  _same(resumed, reference)                          # bit-identical: chunk size does not matter
  markers = [json.loads(f.read_text()) for f in sorted(tmp_path.glob("chunk_*.json"))]
  assert [m["model_ids"] for m in markers] == [[0, 1], [2, 3, 4], [5]]
  assert [m["chunk_width"] for m in markers] == [2, 3, 3]
  loaded = ss.load_supersample_results(tmp_path)
  _same(loaded, reference)
  meta = json.loads((tmp_path / "config.json").read_text())
  assert meta["config"]["n"] == N and meta["versions"]["jax"] == jax.__version__
  # A finished run is not retrained, whatever its chunk size.
  again = []
  ss.run_supersample(MODEL, x, y, xt, yt, callback=lambda d, t: again.append(d), chunk_size=1,
                     **kw)
  assert again == [K1 * K2]
  assert list(tmp_path.glob("*.lock")) == [] and _io.temporaries(tmp_path) == []
  # A different configuration refuses the directory.
  with pytest.raises(gbounds.InvalidInputError, match="different configuration"):
    ss.run_supersample(MODEL, x, y, xt, yt, **{**kw, "seed": 8})


def _dead_pid() -> int:
  proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True)
  return int(proc.stdout)


def test_store_repairs_what_crashes_and_damage_leave(data, reference, reference_dir, tmp_path):
  x, y, xt, yt = data
  d = tmp_path / "run"
  shutil.copytree(reference_dir, d)
  # Left by killed writers: a stale lock of this host, temporaries, an npz without marker.
  (d / "writer_0_of_1.lock").write_text(json.dumps(
      {"pid": _dead_pid(), "host": socket.gethostname(), "time": "then", "token": "old"}))
  for name in (".chunk_0000000-0000001.npz.abcd1234.tmp", ".config.json.x1y2z3w4.tmp",
               ".design.npz.qwertyui.tmp.npz"):
    (d / name).write_bytes(b"half a file")
  (d / "chunk_0000009-0000009.npz").write_bytes(b"PK never finished")
  # Damage: a truncated chunk, a chunk marker that is not JSON, model 4 stored twice with
  # different values, masks that are not binary, a config.json that is not JSON.
  trunc = d / "chunk_0000000-0000001.npz"
  trunc.write_bytes(trunc.read_bytes()[:200])
  (d / "chunk_0000002-0000003.json").write_text("{")
  digest = json.loads((d / "config.json").read_text())["config_digest"]
  z = _io.read_npz(d / "chunk_0000004-0000005.npz")
  twin = write_chunk(d, [4], {k: z[k][:1] + (k == "predictions") for k in
                              ("predictions", "losses", "test_error", "final_loss")},
                     digest, name="chunk_0000004-0000004")
  z = _io.read_npz(d / "design.npz")
  np.savez(d / "design.npz", **{**z, "masks": z["masks"] * 2})
  (d / "config.json").write_text("{")

  with pytest.raises(ss.CorruptResultsError, match=r"config\.json: expected a complete JSON"):
    ss.load_supersample_results(d)
  progress = []
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    r = ss.run_supersample(MODEL, x, y, xt, yt, n=N, k1=K1, k2=K2, train=CFG, seed=7,
                           chunk_size=2, strategy="vmap", results_dir=d,
                           callback=lambda done, t: progress.append(done))
  messages = [str(w.message) for w in caught]
  assert all(w.category is ss.SupersampleStoreWarning for w in caught), messages
  for named in ("config.json", "design.npz", str(trunc), "chunk_0000002-0000003.json",
                str(twin)):
    assert any(named in m for m in messages), (named, messages)
  assert progress == [2, 4, 6]             # all six models recomputed (three damaged chunks)
  _same(r, reference)
  _same(ss.load_supersample_results(d), reference)
  for moved in ("config.json", "design.npz", "chunk_0000000-0000001.npz",
                "chunk_0000002-0000003.json", "chunk_0000004-0000004.npz",
                "chunk_0000004-0000005.npz"):
    assert (d / f"{moved}.corrupt").exists(), moved
  assert _io.temporaries(d) == [] and list(d.glob("*.lock")) == []
  assert not (d / "chunk_0000009-0000009.npz").exists()


def test_cleanup_spares_files_of_other_live_writers(data, reference, reference_dir, tmp_path):
  x, y, xt, yt = data
  d = tmp_path / "run"
  shutil.copytree(reference_dir, d)
  # Process 1 of 2 (supersample 1: models 3-5) is writing right now.
  (d / "writer_1_of_2.lock").write_text(json.dumps(
      {"pid": os.getpid(), "host": socket.gethostname(), "time": "now", "token": "p1"}))
  ours, theirs, shared = (d / ".chunk_0000000-0000001.npz.aaaaaaaa.tmp",
                          d / ".chunk_0000003-0000004.npz.bbbbbbbb.tmp",
                          d / ".config.json.cccccccc.tmp")
  for f in (ours, theirs, shared):
    f.write_bytes(b"partial")
  done = []
  r = ss.run_supersample(MODEL, x, y, xt, yt, n=N, k1=K1, k2=K2, train=CFG, seed=7,
                         chunk_size=2, strategy="vmap", results_dir=d, process_index=0,
                         process_count=2, callback=lambda a, t: done.append(a))
  assert done == [K2]
  np.testing.assert_array_equal(r.predictions, reference.predictions[:1])
  assert not ours.exists() and theirs.exists() and shared.exists()
  assert (d / "writer_1_of_2.lock").exists() and not (d / "writer_0_of_2.lock").exists()
  # The whole-directory writer overlaps process 1: refused, naming its lock.
  with pytest.raises(StoreLockedError, match="writer_1_of_2.lock"):
    ss.run_supersample(MODEL, x, y, xt, yt, n=N, k1=K1, k2=K2, train=CFG, seed=7,
                       results_dir=d)


def test_load_hand_built_directory_merges_chunks(tmp_path):
  models = make_results_dir(tmp_path, k1=3, k2=2, n=4, chunk=4, checksums=False)
  digest = json.loads((tmp_path / "config.json").read_text())["config_digest"]
  # An identical second copy of models 1 and 2 in a chunk of another size is harmless.
  write_chunk(tmp_path, [1, 2], {k: np.stack([models[i][k] for i in (1, 2)])
                                 for k in models[0]}, digest)
  r = ss.load_supersample_results(tmp_path)
  design = ss.draw_supersamples(20, n=4, k1=3, k2=2, seed=0)
  np.testing.assert_array_equal(r.masks, design.masks)
  for j, m in models.items():
    a, b = divmod(j, 2)
    for key, v in m.items():
      np.testing.assert_array_equal(getattr(r, key)[a, b], v)
  # Losses are checked against the design's labels.
  z = dict(np.load(tmp_path / "chunk_0000000-0000003.npz"))
  z["losses"][0, 0, 0] = 1 - z["losses"][0, 0, 0]
  np.savez(tmp_path / "chunk_0000000-0000003.npz", **z)
  with pytest.raises(ss.CorruptResultsError, match=r"chunk_0000000-0000003\.npz: expected "
                     r"losses equal to argmax"):
    ss.load_supersample_results(tmp_path)


def test_atomic_writes_leave_no_temporaries_and_reads_name_the_file(tmp_path):
  sha = _io.atomic_write_npz(tmp_path / "a.npz", x=np.arange(3))
  assert sha == _io.sha256_file(tmp_path / "a.npz")
  np.testing.assert_array_equal(_io.read_npz(tmp_path / "a.npz", sha256=sha)["x"], np.arange(3))
  _io.atomic_write_json(tmp_path / "b.json", {"k": np.float32(1.5)})
  assert _io.read_json(tmp_path / "b.json") == {"k": 1.5}
  assert _io.temporaries(tmp_path) == []
  assert _io.temporary_target(".chunk_0000001-0000002.npz.k2_9ab3c.tmp") == \
      "chunk_0000001-0000002.npz"
  assert _io.temporary_target("chunk_0000001-0000002.npz") is None

  def boom(f, data):
    f.write(data[:3])
    raise OSError("disk full")

  orig = _io._write_all
  _io._write_all = boom
  try:
    with pytest.raises(OSError, match="disk full"):
      _io.atomic_write_text(tmp_path / "c.txt", "hello")
  finally:
    _io._write_all = orig
  assert not (tmp_path / "c.txt").exists() and _io.temporaries(tmp_path) == []
  (tmp_path / "d.npz").write_bytes(b"")
  with pytest.raises(CorruptFileError, match=r"d\.npz: expected a \.npz \(zip\) archive, got an empty"):
    _io.read_npz(tmp_path / "d.npz")


@pytest.mark.slow
def test_process_split_assembles_to_single_process_run(data, reference, tmp_path):
  x, y, xt, yt = data
  kw = dict(n=N, k1=K1, k2=K2, train=CFG, seed=7, chunk_size=2, strategy="vmap",
            results_dir=tmp_path)
  r1 = ss.run_supersample(MODEL, x, y, xt, yt, process_index=1, process_count=2, **kw)
  np.testing.assert_array_equal(r1.supersample_ids, [1])
  np.testing.assert_array_equal(r1.predictions, reference.predictions[1:])
  with pytest.raises(gbounds.InvalidInputError, match="missing"):
    ss.load_supersample_results(tmp_path)
  ss.run_supersample(MODEL, x, y, xt, yt, process_index=0, process_count=2, **kw)
  both = ss.load_supersample_results(tmp_path)
  np.testing.assert_array_equal(both.predictions, reference.predictions)
  np.testing.assert_array_equal(both.test_error, reference.test_error)


@pytest.mark.slow
def test_custom_init_and_apply_fn_resume(data, reference, tmp_path):
  x, y, xt, yt = data

  def init(key, example):
    return MODEL.init(key, example)["params"]

  def apply_fn(p, xx):
    return MODEL.apply({"params": p}, xx)

  kw = dict(n=N, k1=K1, k2=K2, train=CFG, seed=7, strategy="vmap", apply_fn=apply_fn,
            results_dir=tmp_path)
  r = ss.run_supersample(init, x, y, xt, yt, **kw)
  np.testing.assert_allclose(r.predictions, reference.predictions, rtol=1e-6, atol=1e-7)
  done = []
  ss.run_supersample(init, x, y, xt, yt, callback=lambda d, t: done.append(d), **kw)
  assert done == [K1 * K2]                          # the description is run-independent


@pytest.mark.slow
def test_sequential_strategy_agrees_with_vmap(data, reference):
  x, y, xt, yt = data
  seq = ss.run_supersample(MODEL, x, y, xt, yt, n=N, k1=K1, k2=K2, train=CFG, seed=7,
                           strategy="sequential")
  np.testing.assert_allclose(seq.predictions, reference.predictions, rtol=1e-4, atol=1e-5)


_SHARDED_SCRIPT = textwrap.dedent("""
    import numpy as np, jax, gbounds
    from gbounds.supersample import _supersample as ss
    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    cfg = gbounds.train.TrainConfig(learning_rate=0.2, steps=6, batch_size=4, seed=3)
    model = gbounds.models.MLP(hidden=(5,), out=2)
    kw = dict(n=6, k1=2, k2=3, train=cfg, seed=7, chunk_size=6, strategy="vmap")
    plain = ss.run_supersample(model, x, y, x[:20], y[:20], **kw)
    sharded = ss.run_supersample(model, x, y, x[:20], y[:20], mesh=ss.model_mesh(), **kw)
    np.testing.assert_allclose(sharded.predictions, plain.predictions, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(sharded.losses, plain.losses)
    np.testing.assert_array_equal(sharded.test_error, plain.test_error)
    print("SHARDED_OK", np.abs(sharded.predictions - plain.predictions).max())
""")


@pytest.mark.slow
def test_sharded_over_four_cpu_devices_equals_unsharded():
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
         "JAX_PLATFORMS": "cpu"}
  root = pathlib.Path(__file__).resolve().parents[2]
  proc = subprocess.run([sys.executable, "-c", _SHARDED_SCRIPT], env=env, cwd=root,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "SHARDED_OK" in proc.stdout


# ----------------------------------------------------------------------------- linearized


@pytest.mark.x64  # a float64 network against a float64 closed form
@pytest.mark.parametrize("t, time", [
    (np.inf, "continuous"), pytest.param(7.0, "discrete", marks=pytest.mark.slow)])
def test_linearized_matches_per_mask_closed_form(t, time):
  x, y = _data(30, d=3)
  xt, yt = _data(8, d=3, seed=2)
  model = gbounds.models.MLP(hidden=(6,), out=2, param_dtype=jnp.float64)
  x64, xt64 = x.astype(np.float64), xt.astype(np.float64)
  lr = 0.02                                         # below 2 / lambda_max (about 0.046)
  r = ss.run_linearized_supersample(model, x64, y, xt64, yt, n=5, k1=1, k2=3, seed=4,
                                    learning_rate=lr, t=t, time=time, weight_decay=1e-3,
                                    mask_batch_size=2)
  design = ss.draw_supersamples(30, n=5, k1=1, k2=3, seed=4)
  apply_fn = lambda p, xx: model.apply({"params": p}, xx)  # noqa: E731
  ntk = gbounds.ntk.empirical_ntk_fn(apply_fn)
  for a in range(1):
    p0 = model.init(jax.random.fold_in(jax.random.key(4), a), x64[:1])["params"]
    xs = x64[design.supersample_idx[a].reshape(-1)]
    for b in range(3):
      rows = design.supersample_idx[a, np.arange(5), design.masks[a, b]]
      xtr = x64[rows]
      ytr = np.eye(2)[y[rows]]
      ref = gbounds.ntk.gradient_descent_mse(
          ntk(xtr, None, p0), ytr, apply_fn(p0, xtr), learning_rate=lr, t=t, time=time,
          weight_decay=1e-3, theta_test_train=ntk(np.concatenate([xs, xt64]), xtr, p0),
          f0_test=apply_fn(p0, np.concatenate([xs, xt64])))
      np.testing.assert_allclose(r.predictions[a, b].reshape(10, 2), ref.test[:10],
                                 rtol=1e-7, atol=1e-8)
      err = np.mean(np.argmax(np.asarray(ref.test[10:]), -1) != yt)
      assert r.test_error[a, b] == pytest.approx(err)
  if np.isinf(t):
    assert r.train_error < 0.21                     # (almost) interpolates with tiny ridge
  else:
    # A step GD diverges with on some mask's kernel is refused, as the single-mask closed form
    # (gradient_descent_mse, above) refuses it; 0.05 > 2 / lambda_max here.
    with pytest.raises(gbounds.InvalidInputError, match="learning_rate: expected a step below"):
      ss.run_linearized_supersample(model, x64, y, n=5, k1=1, k2=3, seed=4, learning_rate=0.05,
                                    t=t, time=time, weight_decay=1e-3)
    with pytest.raises(gbounds.InvalidInputError, match="learning_rate: expected a step below"):
      gbounds.ntk.gradient_descent_mse(ntk(xtr, None, p0), ytr, apply_fn(p0, xtr), learning_rate=0.05,
                                   t=t, time=time, weight_decay=1e-3)


@pytest.mark.slow
def test_linearized_many_masks_is_consistent_with_losses():
  x, y = _data(40, d=3)
  r = ss.run_linearized_supersample(gbounds.models.MLP(hidden=(4,), out=2), x, y, n=8, k1=1, k2=200,
                                    weight_decay=1e-2)
  assert r.predictions.shape == (1, 200, 8, 2, 2)
  np.testing.assert_array_equal(r.losses, (r.predictions.argmax(-1) != r.labels[:, None]))
  assert np.all(np.isnan(r.test_error))


def test_design_and_result_round_trip_through_json(reference):
  d = ss.draw_supersamples(20, n=3, k1=2, k2=2, seed=1)
  back = ss.SupersampleDesign.from_dict(json.loads(json.dumps(d.to_dict())))
  for a, b in zip(back, d):
    np.testing.assert_array_equal(a, b)
    assert a.dtype == b.dtype
  r = json.loads(json.dumps(reference.to_dict()))
  back = ss.SupersampleResult.from_dict(r)
  assert back.config == reference.config
  for name in ss.SupersampleResult._fields[:-1]:
    np.testing.assert_array_equal(getattr(back, name), getattr(reference, name))
  assert back.losses.dtype == reference.losses.dtype
  assert back.gap == reference.gap and back.train_error == reference.train_error
