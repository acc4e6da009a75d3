"""Tests for gbounds.experiments._certificates (issue 13's comparison, at a reduced size)."""

import math

import pytest

from gbounds import InvalidInputError
from gbounds.bounds import PriorKind
from gbounds.experiments import _certificates as ec
from gbounds.experiments import _registry as rr

SMALL = {"n_train": 400, "n_test": 300, "hidden": (32,), "train_epochs": 3,
         "certify": {"epochs": 2, "finetune_epochs": 1, "mc_draws": 300, "test_draws": 100,
                     "mc_chunk": 16}}


@pytest.mark.slow
def test_small_tasks_resume_from_disk(data_root, tmp_path, monkeypatch):
  study = ec.reproduce_certificates(("mnist10", "fashion_binary_data_free"), data_dir=data_root,
                                    out_dir=tmp_path, **SMALL)
  a, b = study.results
  assert a.certificate.prior is PriorKind.LEARNT and a.certificate.n_bound == 200
  assert b.certificate.prior is PriorKind.DATA_FREE and b.certificate.n_bound == 400
  for r in study.results:
    c = r.certificate
    assert c.mc_error <= c.mc_error_bound <= c.certificate <= 1
    assert math.isfinite(c.gibbs_test_error) and r.meets_goal == (c.certificate <= r.goal)
  assert (tmp_path / "mnist10.json").exists()
  # A rerun with the same configuration reads the saved tasks instead of recomputing them.
  def boom(*a, **k):
    raise AssertionError("recomputed a finished task")
  monkeypatch.setattr(ec, "run_task", boom)
  again = ec.reproduce_certificates(("mnist10", "fashion_binary_data_free"), data_dir=data_root,
                                    out_dir=tmp_path, **SMALL)
  assert again.results[0].certificate == a.certificate
  # A different configuration is not taken from disk.
  with pytest.raises(AssertionError, match="recomputed"):
    ec.reproduce_certificates(("mnist10",), data_dir=data_root, out_dir=tmp_path,
                              **{**SMALL, "train_epochs": 4})
  assert "meets goal" in study.table().to_text() or "above goal" in study.table().to_text()


@pytest.mark.slow
def test_registry_target_prints_goals(data_root, tmp_path):
  res = rr.reproduce("pac_bayes_certificates", data_dir=data_root, out_dir=tmp_path,
                     tasks=["fashion_binary"], **SMALL)
  rows = {r.quantity: r for r in res.rows}
  cert = rows["fashion_binary: certificate"]
  assert 0 < cert.ours <= 1 and cert.published == 0.178 and "PBB" in cert.source
  assert cert.verdict in ("agree", "disagree")
  goal = rows["fashion_binary: prior, n_bound, goal"].ours
  assert goal.startswith("learnt, ") and goal.endswith("<= 0.18"), goal


def test_bad_task_names():
  with pytest.raises(InvalidInputError, match="tasks"):
    ec.reproduce_certificates(("cifar",))
  with pytest.raises(InvalidInputError, match="task"):
    ec.run_task("cifar")
