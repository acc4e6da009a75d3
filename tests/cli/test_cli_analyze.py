"""``gbounds analyze`` / ``gbounds pac-bayes``: the PAC-Bayes flags map onto AnalysisConfig.

The optimised certificate is the default; ``--prior``, ``--objective``, ``--prior-fraction``,
``--certificate-epochs`` and ``--mc-draws`` set it; ``--mc-samples`` (the earlier flag) is the
same setting as ``--mc-draws`` for either method; ``--pac-bayes-method isotropic`` gives the
earlier certificates. Flag parsing is checked in the default tier; whole runs (a trained model, a
checkpoint, a report) are in the slow tier. Bad values are cases of tests/bad_inputs/analyze.py.
"""

import json

import pytest

import gbounds
from gbounds import InvalidInputError
from gbounds.analysis import _analyze as an
from gbounds.cli import _analyze as cli_analyze
from gbounds.cli import build_parser
from gbounds.cli import main as cli_main

_BASE = ["--checkpoint", "ck", "--module", "gbounds.models:MLP"]


def _kwargs(command, *flags):
  args = build_parser().parse_args([command, *_BASE, *flags])
  return cli_analyze._certificate_kwargs(args)


@pytest.mark.parametrize("command", ["analyze", "pac-bayes"])
def test_flags_map_onto_the_analysis_config(command):
  assert _kwargs(command) == {"pac_bayes_method": "optimised"}
  assert _kwargs(command, "--prior", "learnt", "--objective", "kl", "--prior-fraction", "0.3",
                 "--certificate-epochs", "4", "--mc-draws", "500") == {
      "pac_bayes_method": "optimised", "prior": "learnt", "objective": "kl",
      "prior_fraction": 0.3, "certificate_epochs": 4, "mc_draws": 500}
  # The earlier flag: Monte Carlo draws of whichever certificate runs.
  assert _kwargs(command, "--mc-samples", "7") == {"pac_bayes_method": "optimised",
                                                    "mc_draws": 7}
  for flag in ("--mc-samples", "--mc-draws"):
    assert _kwargs(command, "--pac-bayes-method", "isotropic", flag, "9") == {
        "pac_bayes_method": "isotropic", "mc_samples": 9}
  assert _kwargs(command, "--pac-bayes-method", "isotropic") == {
      "pac_bayes_method": "isotropic"}
  # Every combination is a valid AnalysisConfig (the flags name fields that exist).
  for flags in (("--prior", "data_free", "--mc-samples", "3"),
                ("--pac-bayes-method", "isotropic", "--mc-draws", "3")):
    an.AnalysisConfig(**_kwargs(command, *flags))


def test_settings_of_the_other_method_are_refused():
  for flag, value in (("--prior", "learnt"), ("--objective", "quad"),
                      ("--prior-fraction", "0.5"), ("--certificate-epochs", "3")):
    with pytest.raises(InvalidInputError, match=rf"^{flag}: expected a setting of the optimised"):
      _kwargs("analyze", "--pac-bayes-method", "isotropic", flag, value)
  with pytest.raises(InvalidInputError, match=r"^--mc-samples: expected either --mc-draws"):
    _kwargs("pac-bayes", "--mc-draws", "3", "--mc-samples", "3")


def test_help_describes_the_certificate_flags(capsys):
  for command in ("analyze", "pac-bayes"):
    with pytest.raises(SystemExit) as e:
      build_parser().parse_args([command, "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--pac-bayes-method", "--prior", "--objective", "--prior-fraction",
                 "--certificate-epochs", "--mc-draws", "--mc-samples"):
      assert flag in text, (command, flag)
    assert "at least 100 examples" in text


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  data = an.analysis_data("digits", n_train=60, n_test=60, seed=1)
  model = gbounds.models.MLP((16,), 2)
  m = gbounds.as_model_fn(model, example_input=data.x_train[:1], key=0)
  recipe = gbounds.train.TrainConfig(optimizer="adam", learning_rate=1e-2, batch_size=30,
                                     steps=40)
  trained = gbounds.train.train(m.apply_fn, m.params, data.x_train, data.y_train, recipe).params
  ck = tmp_path_factory.mktemp("cli") / "ck"
  an.save_checkpoint(ck, trained, init_params=m.params)
  return ck


def _run(command, ck, out, *flags):
  return cli_main([command, "--checkpoint", str(ck), "--module", "gbounds.models:MLP",
                   "--module-kwargs", '{"hidden": [16]}', "--dataset", "digits", "--n-train",
                   "60", "--n-test", "60", "--data-seed", "1", "--optimizer", "adam",
                   "--learning-rate", "0.01", "--batch-size", "30", "--steps", "40", "--out",
                   str(out), "--no-progress", *flags])


@pytest.mark.slow
def test_cli_pac_bayes_optimised_with_a_learnt_prior(checkpoint, tmp_path, capsys):
  out = tmp_path / "pb"
  rc = _run("pac-bayes", checkpoint, out, "--prior", "learnt", "--objective", "kl",
            "--prior-fraction", "0.4", "--certificate-epochs", "1", "--mc-draws", "200")
  assert rc == 0
  printed = capsys.readouterr().out
  payload = json.loads((out / "report.json").read_text())
  p = payload["pac_bayes"]
  assert (p["prior"], p["objective"], p["n_prior"], p["n_bound"], p["mc_draws"]) == (
      "learnt", "kl", 24, 36, 200)
  assert len(p["history"]) == 1 + gbounds.bounds.CertifyConfig().finetune_epochs
  assert "PAC-Bayes prior: learnt prior (asked for): 24 of the 60 training examples" in printed
  assert f"PAC-Bayes certificate {p['certificate']:.4f}" in printed
  assert f"held-out bound of the prior network {p['heldout_bound']:.4f}" in printed
  assert f"Monte Carlo term {p['mc_error_bound'] - p['mc_error']:.4f}" in printed
  assert {"pac_bayes_prior_scale.png", "pac_bayes_posterior_scales.png"} <= {
      f.name for f in out.iterdir()}


@pytest.mark.slow
def test_cli_analyze_isotropic_gives_the_earlier_certificates(checkpoint, tmp_path, capsys):
  out = tmp_path / "an"
  rc = _run("analyze", checkpoint, out, "--skip", "sample_info", "cmi",
            "--pac-bayes-method", "isotropic", "--mc-samples", "4")
  assert rc == 0
  printed = capsys.readouterr().out
  p = json.loads((out / "report.json").read_text())["pac_bayes"]
  assert p["mc_samples"] == 4 and "pac_bayes_kl" in p and "curve" not in p
  assert "mcallester" in printed and "catoni" in printed
  assert (out / "pac_bayes.png").exists()
