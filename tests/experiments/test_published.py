"""Tests for the published tables and the verdict logic (gbounds.experiments._published)."""

import math

import pytest

from gbounds import InvalidInputError
from gbounds.experiments import _published as pp
from gbounds.experiments import _registry as rr


def _pub(value, tolerance=0.02, confirmed=True):
  return pp.Published("q", value, "a paper, Table 1", "table", "their config", tolerance,
                      "by hand", confirmed)


@pytest.mark.parametrize("ours, se, expected, threshold", [
    (0.50, math.nan, pp.AGREE, 0.02),      # equal
    (0.519, math.nan, pp.AGREE, 0.02),     # inside the tolerance
    (0.481, math.nan, pp.AGREE, 0.02),     # inside, below
    (0.521, math.nan, pp.DISAGREE, 0.02),  # just outside
    (0.45, math.nan, pp.DISAGREE, 0.02),   # outside, below
    (0.55, 0.03, pp.AGREE, 0.06),          # outside the tolerance, inside 2 SE
    (0.57, 0.03, pp.DISAGREE, 0.06),       # outside 2 SE too
    (0.55, 0.005, pp.DISAGREE, 0.02),      # a small SE does not narrow the tolerance
])
def test_numeric_verdicts_by_hand(ours, se, expected, threshold):
  v = pp.verdict(_pub(0.50), ours, ours_se=se)
  assert v.verdict == expected
  assert v.threshold == pytest.approx(threshold)
  # The rule written out independently: |ours - published| <= max(tol, 2 SE).
  allowance = max(0.02, 2 * se if math.isfinite(se) else 0.0)
  assert (abs(ours - 0.50) <= allowance) == (expected == pp.AGREE)


def test_edge_of_the_tolerance_agrees():
  """A Kendall tau one step (0.2) from the published 1.0 is inside the 0.2 tolerance, although
  1.0 - 0.8 rounds to 0.19999999999999996 and 0.2 + 1.0 - 1.2 to 0.2000000000000001."""
  assert pp.verdict(_pub(1.0, 0.2), 0.8).verdict == pp.AGREE
  assert pp.verdict(_pub(1.2, 0.2), 1.0 + 2 ** -50).verdict == pp.AGREE
  assert pp.verdict(_pub(1.0, 0.2), 0.8 - 1e-6).verdict == pp.DISAGREE


def test_se_widening_is_reported():
  assert "2 SE" in pp.verdict(_pub(0.5), 0.55, ours_se=0.03).reason
  assert "2 SE" not in pp.verdict(_pub(0.5), 0.51, ours_se=0.001).reason


def test_boolean_claims():
  assert pp.verdict(_pub(True, math.nan), True).verdict == pp.AGREE
  assert pp.verdict(_pub(True, math.nan), False).verdict == pp.DISAGREE
  assert pp.verdict(_pub(False, math.nan), False).verdict == pp.AGREE
  # A number is not a yes/no answer (1 == True in Python: must not count as agreement).
  assert pp.verdict(_pub(True, math.nan), 1).verdict == pp.NOT_COMPARABLE
  assert pp.verdict(_pub(True, math.nan), "0.9 / 0.1").verdict == pp.NOT_COMPARABLE


def test_not_comparable_and_unconfirmed():
  v = pp.verdict(_pub("the network memorizes"), 0.99)
  assert v.verdict == pp.NOT_COMPARABLE and "qualitative" in v.reason
  v = pp.verdict(_pub(0.5), 0.5, differs="width = 128 (paper: 1024)")
  assert v.verdict == pp.NOT_COMPARABLE and "width = 128" in v.reason
  assert pp.verdict(_pub(0.5), math.nan).verdict == pp.NOT_COMPARABLE
  assert pp.verdict(_pub(0.5), "0.5 / 0.4").verdict == pp.NOT_COMPARABLE
  assert pp.verdict(_pub(0.5), True).verdict == pp.NOT_COMPARABLE
  # An unconfirmed number is never used, even when ours equals it.
  assert pp.verdict(_pub(0.5, confirmed=False), 0.5).verdict == pp.UNCONFIRMED
  with pytest.raises(InvalidInputError, match="published"):
    pp.verdict({"value": 0.5}, 0.5)  # type: ignore[arg-type]


def test_every_target_has_a_published_table():
  assert set(pp.PUBLISHED) == set(rr.TARGETS)
  for name, table in pp.PUBLISHED.items():
    assert table.target == name and table.rows and table.paper
    quantities = [p.quantity for p in table.rows]
    assert len(set(quantities)) == len(quantities), name
    for p in table.rows:
      assert p.source and p.how_read and p.paper_config, (name, p.quantity)
      if isinstance(p.value, bool) or isinstance(p.value, str):
        continue
      # A number carries a positive tolerance and the reason it was set so.
      assert math.isfinite(p.value), (name, p.quantity)
      assert p.tolerance > 0 and p.tolerance_why, (name, p.quantity)


@pytest.mark.parametrize("name", sorted(rr.TARGETS))
def test_published_quantities_are_rows_of_the_runner(name):
  """Every published quantity is a row the runner produces under the paper-sized preset
  (the row plan of the registry; the slow test checks the plan against real runs)."""
  planned = set(rr.planned_quantities(name, rr.resolved_config(name, full=True)))
  published = {p.quantity for p in pp.PUBLISHED[name].rows}
  assert published <= planned, sorted(published - planned)


def _get(name, quantity):
  p = pp.published_table(name).get(quantity)
  assert p is not None, (name, quantity)
  return p


def test_numbers_from_the_notes():
  """Spot checks against the notes (cmi_bounds.md [code]; memorization_diagnostics.md)."""
  assert _get("fcmi_mnist_4v9", "n=75: f-CMI bound").value == 0.2427
  assert _get("fcmi_mnist_4v9", "n=4000: measured gap").value == 0.0081
  assert _get("activation_information",
              "shuffled MNIST: Kendall tau, mean mi vs val. accuracy").value == 0.88
  assert pp.published_table("fcmi_mnist_4v9").get("n=500: f-CMI bound") is None
  # Untagged in the notes and not confirmed here: shown, left out of verdicts.
  assert not _get("sample_info_correlation", "weights_lambda0").confirmed


def test_configuration_checks():
  fcmi = pp.published_table("fcmi_mnist_4v9")
  full = rr.resolved_config("fcmi_mnist_4v9", full=True)
  assert fcmi.differs(full) == ""
  cpu = rr.resolved_config("fcmi_mnist_4v9", scale="cpu")
  why = fcmi.differs(cpu)
  assert "architecture = 'mlp'" in why and "k2 = 20" in why
  # The CPU preset: the paper's CNN with fewer masks. The bound's plug-in estimate depends on
  # k2, the gap (an average over every run) does not.
  paper_cnn = rr.resolved_config("fcmi_mnist_4v9")
  assert paper_cnn["architecture"] == "fcmi_cnn" and paper_cnn["k2"] == 8
  assert fcmi.differs(paper_cnn, "n=75: f-CMI bound").startswith("k2 = 8 (paper: 30")
  assert fcmi.differs(paper_cnn, "n=75: measured gap") == ""
  assert "k2 = 8" in fcmi.differs(paper_cnn)
  si = pp.published_table("sample_info_correlation")
  assert si.differs(rr.resolved_config("sample_info_correlation", full=True)) == ""
  assert "width" in si.differs(rr.resolved_config("sample_info_correlation"))


def test_markdown_lists_every_number():
  md = pp.published_markdown()
  n_rows = sum(len(t.rows) for t in pp.PUBLISHED.values())
  assert len(md.splitlines()) == n_rows + 2
  assert "(unconfirmed)" in md and "0.2427" in md
  with pytest.raises(InvalidInputError, match="name"):
    pp.published_table("nope")
