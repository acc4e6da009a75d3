"""Bad inputs to the supersample harness and its results store (gbounds.supersample._supersample).

Families: concurrency (a second writer, a lock from another host or an overlapping process
split), files (corrupt, truncated or inconsistent results directories), labels (also masks
``U`` that are not binary), nan, sizes, options, shapes, ranks, dtypes, empty. Every case fails before any training step (a results
directory is built by hand with numpy, see :func:`make_results_dir`).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import pathlib
import shutil
import socket
import tempfile

import jax.numpy as jnp
import numpy as np

import gbounds
from gbounds._src import errors as _errors
from gbounds.supersample import _supersample as ss
from tests.bad_inputs import Case

_TMP = tempfile.mkdtemp(prefix="gbounds_bad_supersample_")
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
_count = [0]


def _fresh() -> pathlib.Path:
  _count[0] += 1
  p = pathlib.Path(_TMP) / f"d{_count[0]:03d}"
  p.mkdir()
  return p


def make_results_dir(path: pathlib.Path, *, k1: int = 2, k2: int = 2, n: int = 3,
                     num_outputs: int = 3, pool_size: int = 20, seed: int = 0,
                     chunk: int = 2, checksums: bool = True) -> dict[int, dict]:
  """Writes a finished results directory by hand (numpy only); returns model id -> arrays.

  The layout is the one :func:`gbounds.supersample.run_supersample` writes: ``config.json`` (config and its
  digest, SHA-256 of the sorted-key JSON, first 16 hex digits), ``design.npz`` (the design of
  :func:`gbounds.supersample.draw_supersamples` and labels) and chunk pairs ``chunk_<first>-<last>.npz`` +
  ``.json`` (model ids, digest and, with ``checksums``, the npz's SHA-256).
  """
  rng = np.random.default_rng(seed + 100)
  config = {"mode": "sgd", "n": n, "k1": k1, "k2": k2, "seed": seed,
            "pool": {"size": pool_size, "fingerprint": "hand-built"}, "format_version": 1}
  digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
  design = ss.draw_supersamples(pool_size, n=n, k1=k1, k2=k2, seed=seed)
  labels = rng.integers(0, num_outputs, size=(k1, n, 2)).astype(np.int32)
  np.savez(path / "design.npz", supersample_idx=design.supersample_idx, masks=design.masks,
           labels=labels)
  (path / "config.json").write_text(json.dumps({"config": config, "config_digest": digest}))
  models = {}
  for j in range(k1 * k2):
    p = rng.normal(size=(n, 2, num_outputs)).astype(np.float32)
    models[j] = {"predictions": p,
                 "losses": (p.argmax(-1) != labels[j // k2]).astype(np.float32),
                 "test_error": np.float32(rng.uniform()), "final_loss": np.float32(rng.uniform())}
  for s in range(0, k1 * k2, chunk):
    ids = list(range(s, min(s + chunk, k1 * k2)))
    write_chunk(path, ids, {k: np.stack([models[i][k] for i in ids]) for k in models[0]},
                digest, checksums=checksums)
  return models


def write_chunk(path: pathlib.Path, ids: list[int], arrays: dict, digest: str, *,
                checksums: bool = True, name: str | None = None) -> pathlib.Path:
  stem = path / (name or f"chunk_{ids[0]:07d}-{ids[-1]:07d}")
  np.savez(stem.with_suffix(".npz"), model_ids=np.asarray(ids, np.int64), **arrays)
  meta = {"model_ids": ids, "config_digest": digest}
  if checksums:
    meta["npz_sha256"] = hashlib.sha256(stem.with_suffix(".npz").read_bytes()).hexdigest()
  stem.with_suffix(".json").write_text(json.dumps(meta))
  return stem.with_suffix(".npz")


def _digest(path: pathlib.Path) -> str:
  return json.loads((path / "config.json").read_text())["config_digest"]


def _load_after(damage, checksums=True):
  path = _fresh()
  make_results_dir(path, checksums=checksums)
  damage(path)
  return ss.load_supersample_results(path)


def _truncate(path):
  f = path / "chunk_0000002-0000003.npz"
  f.write_bytes(f.read_bytes()[:100])


def _not_zip(path):
  (path / "chunk_0000000-0000001.npz").write_bytes(b"garbage" * 50)


def _wrong_arrays(path):
  z = dict(np.load(path / "chunk_0000000-0000001.npz"))
  del z["losses"]
  ids = [int(i) for i in z.pop("model_ids")]
  write_chunk(path, ids, z, _digest(path))


def _wrong_shape(path):
  z = dict(np.load(path / "chunk_0000000-0000001.npz"))
  ids = [int(i) for i in z.pop("model_ids")]
  z["predictions"] = z["predictions"][:, :2]        # 2 pairs instead of n = 3
  z["losses"] = z["losses"][:, :2]
  write_chunk(path, ids, z, _digest(path))


def _marker_not_json(path):
  (path / "chunk_0000002-0000003.json").write_text('{"model_ids": [2, 3], "conf')


def _marker_without_npz(path):
  (path / "chunk_0000002-0000003.npz").unlink()


def _nonbinary_masks(path):
  z = dict(np.load(path / "design.npz"))
  z["masks"] = z["masks"] * 2
  np.savez(path / "design.npz", **z)


def _config_not_json(path):
  (path / "config.json").write_text("{not json")


def _conflicting_duplicate(path):
  z = dict(np.load(path / "chunk_0000002-0000003.npz"))
  ids = [int(i) for i in z.pop("model_ids")]
  z["predictions"] = z["predictions"] + 1.0
  write_chunk(path, ids, z, _digest(path), name="chunk_0000002-0000004")


def _other_run_chunk(path):
  z = dict(np.load(path / "chunk_0000002-0000003.npz"))
  ids = [int(i) for i in z.pop("model_ids")]
  write_chunk(path, ids, z, "0123456789abcdef", name="chunk_0000002-0000009")


# ----------------------------------------------------------------------------- run inputs

_rng = np.random.default_rng(0)
_X = _rng.normal(size=(20, 3)).astype(np.float32)
_Y = (_X[:, 0] > 0).astype(np.int32)
_MODEL = gbounds.models.MLP(hidden=(3,), out=2)
_CFG = gbounds.train.TrainConfig(learning_rate=0.1, steps=1, batch_size=2)


def _run(x=_X, y=_Y, xt=None, yt=None, model=_MODEL, **kw):
  args = dict(n=4, k1=1, k2=2, train=_CFG)
  args.update(kw)
  return ss.run_supersample(model, x, y, xt, yt, **args)


def _lin(x=_X, y=_Y, xt=None, yt=None, model=_MODEL, **kw):
  args = dict(n=4, k1=1, k2=2)
  args.update(kw)
  return ss.run_linearized_supersample(model, x, y, xt, yt, **args)


def _with(x, idx, value):
  x = np.array(x)
  x[idx] = value
  return x


def _locked(info: dict, name: str = "writer_0_of_1.lock", **kw):
  path = _fresh()
  (path / name).write_text(json.dumps(info))
  return _run(results_dir=path, **kw)


_HERE = {"pid": os.getpid(), "host": socket.gethostname(), "time": "2026-12-02T00:00:00+00:00",
         "token": "someone-else"}


def _nan_init(key, x):
  return {"w": jnp.full((x.shape[-1], 2), jnp.nan, x.dtype)}


def _linear_apply(p, x):
  return x @ p["w"]


def _apply_rank1(p, x):
  return (x @ p["w"])[:, 0]


def _zero_init(key, x):
  return {"w": jnp.zeros((x.shape[-1], 2), x.dtype)}


def _results_dir_is_file():
  f = _fresh() / "file.txt"
  f.write_text("x")
  return _run(results_dir=f)


E, C, L = _errors.InvalidInputError, ss.CorruptResultsError, _errors.StoreLockedError

CASES = [
    # concurrency
    Case("supersample/second_writer_refused", "concurrency", lambda: _locked(_HERE), L,
         rf"results_dir: .*locked by pid {os.getpid()} .*writer_0_of_1\.lock"),
    Case("supersample/lock_of_other_host_refused", "concurrency",
         lambda: _locked({**_HERE, "host": "elsewhere.example", "pid": 1}), L,
         r"results_dir: .*'elsewhere\.example'.*delete .*writer_0_of_1\.lock"),
    Case("supersample/overlapping_process_split_refused", "concurrency",
         lambda: _locked(_HERE, name="writer_1_of_2.lock", k1=2), L,
         r"results_dir: .*writer_1_of_2\.lock"),
    # files
    Case("supersample/chunk_truncated", "files", lambda: _load_after(_truncate), C,
         r"chunk_0000002-0000003\.npz: expected the recorded SHA-256"),
    Case("supersample/chunk_not_a_zip", "files", lambda: _load_after(_not_zip, False), C,
         r"chunk_0000000-0000001\.npz: expected a \.npz \(zip\) archive, got a file that is not"),
    Case("supersample/chunk_truncated_without_checksum", "files",
         lambda: _load_after(_truncate, False), C,
         r"chunk_0000002-0000003\.npz: expected a complete \.npz archive of arrays"),
    Case("supersample/chunk_checksum_mismatch", "files", lambda: _load_after(_not_zip), C,
         r"chunk_0000000-0000001\.npz: expected the recorded SHA-256"),
    Case("supersample/chunk_wrong_arrays", "files", lambda: _load_after(_wrong_arrays), C,
         r"chunk_0000000-0000001\.npz: expected the arrays .*got no losses"),
    Case("supersample/chunk_wrong_shape", "files", lambda: _load_after(_wrong_shape), C,
         r"chunk_0000000-0000001\.npz: expected predictions of shape \(2, 3, 2, K\)"),
    Case("supersample/chunk_marker_not_json", "files", lambda: _load_after(_marker_not_json),
         C, r"chunk_0000002-0000003\.json: expected a complete JSON document"),
    Case("supersample/chunk_marker_without_npz", "files",
         lambda: _load_after(_marker_without_npz), C,
         r"chunk_0000002-0000003\.npz: expected an existing \.npz file"),
    Case("supersample/design_masks_not_binary", "files", lambda: _load_after(_nonbinary_masks),
         C, r"design\.npz: expected the design of the configuration"),
    Case("supersample/config_not_json", "files", lambda: _load_after(_config_not_json), C,
         r"config\.json: expected a complete JSON document"),
    Case("supersample/model_stored_twice_differently", "files",
         lambda: _load_after(_conflicting_duplicate), C,
         r"model 2 in both .*chunk_0000002-0000003\.npz and .*chunk_0000002-0000004\.npz"),
    Case("supersample/chunk_of_another_run", "files", lambda: _load_after(_other_run_chunk), E,
         r"results_dir: expected chunks of one configuration, got .*chunk_0000002-0000009"),
    Case("supersample/load_not_a_results_dir", "files",
         lambda: ss.load_supersample_results(_fresh()), E,
         r"results_dir: expected a directory written by run_supersample"),
    Case("supersample/results_dir_is_a_file", "files", _results_dir_is_file, E,
         r"results_dir: expected a directory"),
    # masks U (binary selectors of the training example of each pair): family "labels"
    Case("supersample/check_masks_not_binary", "labels",
         lambda: ss.check_masks("masks", np.full((1, 2, 3), 2)), E, r"masks: expected binary"),
    # nan / inf
    Case("supersample/x_pool_nan", "nan", lambda: _run(x=_with(_X, (0, 0), np.nan)), E,
         r"x_pool: expected finite"),
    Case("supersample/x_test_inf", "nan", lambda: _run(xt=_with(_X[:5], (1, 1), np.inf),
                                                       yt=_Y[:5]), E,
         r"x_test: expected finite"),
    Case("supersample/initial_params_nan", "nan",
         lambda: _run(model=_nan_init, apply_fn=_linear_apply), E,
         r"model \(initial parameters of model 0\): expected finite .*\['w'\]"),
    Case("supersample/linearized_initial_params_nan", "nan",
         lambda: _lin(model=_nan_init, apply_fn=_linear_apply), E,
         r"model \(initial parameters of supersample 0\): expected finite"),
    Case("supersample/linearized_x_pool_inf", "nan",
         lambda: _lin(x=_with(_X, (3, 2), -np.inf)), E, r"x_pool: expected finite"),
    # labels
    Case("supersample/y_pool_beyond_outputs", "labels", lambda: _run(y=_with(_Y, 0, 2)), E,
         r"y_pool: expected class labels in \[0, 2\) \(the model has 2 outputs\)"),
    Case("supersample/y_pool_negative", "labels", lambda: _run(y=_with(_Y, 3, -1)), E,
         r"y_pool: expected class labels in \[0, 2\)"),
    Case("supersample/y_test_beyond_outputs", "labels",
         lambda: _run(xt=_X[:5], yt=np.array([0, 1, 5, 0, 1], np.int32)), E,
         r"y_test: expected class labels in \[0, 2\)"),
    Case("supersample/y_pool_float", "labels", lambda: _run(y=_Y.astype(np.float32)), E,
         r"y_pool: expected integer class labels"),
    Case("supersample/linearized_y_beyond_outputs", "labels",
         lambda: _lin(y=_with(_Y, 0, 7)), E, r"y_pool: expected class labels in \[0, 2\)"),
    # sizes
    Case("supersample/chunk_size_zero", "sizes", lambda: _run(chunk_size=0), E,
         r"chunk_size: expected a positive integer"),
    Case("supersample/chunk_size_bool", "sizes", lambda: _run(chunk_size=True), E,
         r"chunk_size: expected a positive integer"),
    Case("supersample/n_above_half_pool", "sizes", lambda: _run(n=11), E,
         r"n: expected at most half the pool"),
    Case("supersample/k2_one", "sizes", lambda: _run(k2=1), E, r"k2: expected at least 2"),
    Case("supersample/k1_fractional", "sizes", lambda: _run(k1=1.5), E,
         r"k1: expected a positive integer"),
    Case("supersample/seed_negative", "sizes", lambda: _run(seed=-1), E,
         r"seed: expected a non-negative integer"),
    Case("supersample/process_index_out_of_range", "sizes",
         lambda: _run(process_index=2, process_count=2), E, r"process_index: expected"),
    Case("supersample/process_without_supersamples", "sizes",
         lambda: _run(process_index=1, process_count=2), E, r"process_index: expected a process"),
    Case("supersample/linearized_mask_batch_zero", "sizes", lambda: _lin(mask_batch_size=0), E,
         r"mask_batch_size: expected a positive integer"),
    # options
    Case("supersample/unknown_strategy", "options", lambda: _run(strategy="parallel"), E,
         r"strategy: expected one of"),
    Case("supersample/unknown_keyword", "options", lambda: _run(chunksize=2), TypeError,
         r"chunksize"),
    Case("supersample/linearized_unknown_targets", "options", lambda: _lin(targets="soft"), E,
         r"targets: expected one of"),
    Case("supersample/train_not_a_config", "options", lambda: _run(train={"steps": 3}), E,
         r"train: expected a gbounds\.train\.TrainConfig"),
    Case("supersample/mesh_not_a_mesh", "options", lambda: _run(mesh="cpu"), E,
         r"mesh: expected a jax\.sharding\.Mesh"),
    Case("supersample/callback_not_callable", "options", lambda: _run(callback=3), E,
         r"callback: expected a callable"),
    Case("supersample/model_not_a_module", "options", lambda: _run(model="mlp"), E,
         r"model: expected a Flax Linen module"),
    # shapes, dtypes, empty
    Case("supersample/x_test_feature_shape", "shapes",
         lambda: _run(xt=np.zeros((4, 5), np.float32), yt=np.zeros(4, np.int32)), E,
         r"x_test: expected examples of shape \(3,\)"),
    Case("supersample/y_pool_rank_two", "ranks", lambda: _run(y=_Y[:, None]), E,
         r"y_pool: expected an array of rank 1"),
    Case("supersample/pool_lengths_differ", "shapes", lambda: _run(y=_Y[:-1]), E,
         r"x_pool and y_pool: expected the same size"),
    Case("supersample/model_output_rank_one", "shapes",
         lambda: _run(model=_zero_init, apply_fn=_apply_rank1), E,
         r"model: expected outputs of shape \(batch, K\)"),
    Case("supersample/model_wrong_input_width", "shapes",
         lambda: _run(model=lambda k, x: {"w": jnp.zeros((7, 2))}, apply_fn=_linear_apply), E,
         r"model: expected a model that initialises and applies to examples of shape \(3,\)"),
    Case("supersample/x_pool_strings", "dtypes",
         lambda: _run(x=np.array([["a"] * 3] * 20)), E, r"x_pool: expected a numeric array"),
    Case("supersample/x_pool_empty", "empty",
         lambda: _run(x=np.zeros((0, 3), np.float32), y=np.zeros(0, np.int32)), E,
         r"x_pool: expected a non-empty array"),
]
