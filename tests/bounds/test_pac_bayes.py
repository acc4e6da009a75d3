"""Tests for gbounds.bounds._pac_bayes against hand computations in Python floats (math module)."""

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gbounds
from gbounds import InvalidInputError
from gbounds.bounds import _pac_bayes as pb


def _kl(q, p):
  out = 0.0
  for a, b in ((q, p), (1 - q, 1 - p)):
    if a == 0:
      continue
    if b == 0:
      return math.inf
    out += a * math.log(a / b)
  return out


def _kl_inv_bisect(q, c, steps=200):
  """sup{p in [q, 1] : kl(q || p) <= c} by plain float64 bisection."""
  if _kl(q, 1.0) <= c:
    return 1.0
  lo, hi = q, 1.0
  for _ in range(steps):
    mid = 0.5 * (lo + hi)
    if mid in (lo, hi):
      break
    if _kl(q, mid) <= c:
      lo = mid
    else:
      hi = mid
  return lo


def _conf(kl, n, delta, log_g=0.0):
  return kl + math.log(2 * math.sqrt(n) / delta) + log_g


CASES = [  # (empirical error, KL, n, delta, ln G), edges included
    (0.0, 0.0, 1000, 0.05, 0.0), (0.0, 50.0, 1000, 0.05, math.log(13)),
    (1.0, 10.0, 100, 0.05, 0.0), (0.03, 5000.0, 55000, 0.025, math.log(13)),
    (0.2, 1e-9, 10**6, 0.5, 0.0), (0.5, 1e5, 10, 0.01, 0.0), (0.999, 3.0, 30, 0.1, 1.0),
    (1e-6, 0.1, 10**7, 0.05, 0.0),
]


@pytest.mark.x64  # float64 inputs or references to 1e-9 or tighter
@pytest.mark.parametrize("e,kl,n,delta,log_g", CASES)
def test_pac_bayes_kl_matches_bisection_float64(e, kl, n, delta, log_g):
  got = float(pb.pac_bayes_kl_bound(np.float64(e), np.float64(kl), n, np.float64(delta), log_g))
  want = _kl_inv_bisect(e, _conf(kl, n, delta, log_g) / n)
  assert got == pytest.approx(want, abs=1e-12, rel=1e-12)
  assert e <= got <= 1.0


@pytest.mark.x64  # float64 inputs or references to 1e-9 or tighter
def test_kl_inverse_edges():
  # q = 0 -> 1 - exp(-c); c = inf -> 1. (This test used a negative KL to reach c = 0; a
  # negative KL is not a divergence and is now refused; c = 0 is covered in test_kl.py.)
  with pytest.raises(InvalidInputError, match=r"^kl: expected"):
    pb.pac_bayes_kl_bound(0.3, -math.log(2 * math.sqrt(4) / 0.5), 4, 0.5)
  c = _conf(2.0, 100, 0.05) / 100
  assert float(pb.pac_bayes_kl_bound(0.0, 2.0, 100, 0.05)) == pytest.approx(-math.expm1(-c),
                                                                           rel=1e-13)
  assert float(pb.pac_bayes_kl_bound(0.1, math.inf, 100, 0.05)) == 1.0


@pytest.mark.x64  # float64 inputs or references to 1e-9 or tighter
@pytest.mark.parametrize("e,kl,n,delta,log_g", CASES)
def test_mcallester_matches_hand(e, kl, n, delta, log_g):
  want = e + math.sqrt(_conf(kl, n, delta, log_g) / (2 * n))
  got = float(pb.mcallester_bound(np.float64(e), np.float64(kl), n, np.float64(delta), log_g))
  assert got == pytest.approx(want, rel=1e-13)


def test_mcallester_is_not_clipped():
  got = float(pb.mcallester_bound(0.5, 1e5, 10, 0.01))
  assert got > 1.0  # vacuous, reported as is


@pytest.mark.x64  # float64 inputs or references to 1e-9 or tighter
@pytest.mark.parametrize("e,kl,n,delta,log_g", CASES)
def test_catoni_matches_hand(e, kl, n, delta, log_g):
  cs = np.asarray([0.125, 1.0, 3.0, 64.0])
  got = np.asarray(pb.catoni_bound(np.float64(e), np.float64(kl), n, np.float64(delta), cs, log_g))
  for c, g in zip(cs.tolist(), got.tolist()):
    want = (1 - math.exp(-c * e - (kl + math.log(1 / delta) + log_g) / n)) / (1 - math.exp(-c))
    assert g == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_pac_bayes_kl_is_tighter_than_mcallester():
  e = np.linspace(0.0, 0.6, 13)
  kl = np.full_like(e, 40.0)
  a = np.asarray(pb.pac_bayes_kl_bound(e, kl, 2000, 0.05))
  b = np.asarray(pb.mcallester_bound(e, kl, 2000, 0.05))
  assert np.all(a <= b + 1e-12)


@pytest.mark.x64  # float64 inputs or references to 1e-9 or tighter
def test_mc_error_upper_bound():
  for e, m, d in ((0.0, 100, 0.01), (0.25, 1000, 0.05), (0.9, 7, 0.2)):
    want = _kl_inv_bisect(e, math.log(2 / d) / m)
    got = float(pb.mc_error_upper_bound(np.float64(e), m, np.float64(d)))
    assert got == pytest.approx(want, abs=1e-12)


@pytest.mark.x64  # float64 inputs or references to 1e-9 or tighter
def test_jit_and_vmap():
  e = jnp.asarray([0.0, 0.1, 0.4], jnp.float64)
  kl = jnp.asarray([1.0, 30.0, 300.0], jnp.float64)
  for fn in (pb.mcallester_bound, pb.pac_bayes_kl_bound):
    direct = np.asarray(fn(e, kl, 500, 0.05))
    vm = np.asarray(jax.vmap(lambda a, b, f=fn: f(a, b, 500, 0.05))(e, kl))
    jt = np.asarray(jax.jit(lambda a, b, f=fn: f(a, b, 500, 0.05))(e, kl))
    want = [(_kl_inv_bisect(a, _conf(b, 500, 0.05) / 500) if fn is pb.pac_bayes_kl_bound
             else a + math.sqrt(_conf(b, 500, 0.05) / 1000)) for a, b in zip(e.tolist(),
                                                                          kl.tolist())]
    np.testing.assert_allclose(direct, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(vm, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(jt, want, rtol=1e-12, atol=1e-14)
  cat = jax.vmap(lambda c: pb.catoni_bound(0.1, 20.0, 500, 0.05, c))(jnp.asarray([0.5, 2.0]))
  want = [(1 - math.exp(-c * 0.1 - (20 + math.log(20)) / 500)) / (1 - math.exp(-c))
          for c in (0.5, 2.0)]
  np.testing.assert_allclose(np.asarray(cat), want, rtol=1e-12)


def test_float32_follows_inputs():
  got = pb.pac_bayes_kl_bound(jnp.float32(0.1), jnp.float32(20.0), 500, jnp.float32(0.05))
  assert got.dtype == jnp.float32
  assert float(got) == pytest.approx(_kl_inv_bisect(0.1, _conf(20, 500, 0.05) / 500), rel=1e-5)


# ----------------------------------------------------------------------------- Gaussian KL


@pytest.mark.x64  # float64 inputs or references to 1e-9 or tighter
def test_gaussian_kl_closed_form_vs_monte_carlo():
  rng = np.random.default_rng(0)
  mq = {"a": rng.normal(size=(3, 2)), "b": rng.normal(size=(4,))}
  mp = {"a": rng.normal(size=(3, 2)), "b": rng.normal(size=(4,))}
  vq, vp = 0.3, 0.8
  got = float(pb.gaussian_kl(mq, mp, vq, vp))
  # Monte Carlo: E_q[log q(w) - log p(w)] over 200k draws.
  muq = np.concatenate([mq["a"].ravel(), mq["b"]])
  mup = np.concatenate([mp["a"].ravel(), mp["b"]])
  w = muq + math.sqrt(vq) * rng.normal(size=(200_000, muq.size))
  logq = -0.5 * np.sum((w - muq) ** 2, 1) / vq - 0.5 * muq.size * math.log(2 * math.pi * vq)
  logp = -0.5 * np.sum((w - mup) ** 2, 1) / vp - 0.5 * muq.size * math.log(2 * math.pi * vp)
  diff = logq - logp
  mc, se = diff.mean(), diff.std() / math.sqrt(diff.size)
  assert abs(got - mc) < 5 * se
  # Exact isotropic closed form written out by hand.
  d = muq.size
  hand = 0.5 * (d * vq / vp + np.sum((muq - mup) ** 2) / vp - d + d * math.log(vp / vq))
  assert got == pytest.approx(hand, rel=1e-12)


@pytest.mark.x64  # float64 inputs or references to 1e-9 or tighter
def test_gaussian_kl_diagonal_pytree_variances_and_jit():
  mq = {"w": jnp.asarray([1.0, 2.0]), "b": jnp.asarray([0.5])}
  mp = {"w": jnp.asarray([0.0, 1.0]), "b": jnp.asarray([0.0])}
  vq = {"w": jnp.asarray([0.1, 0.2]), "b": jnp.asarray([0.3])}
  vp = {"w": jnp.asarray([1.0, 0.5]), "b": jnp.asarray([0.3])}
  hand = 0.0
  for a, b, s, t in ((1, 0, .1, 1), (2, 1, .2, .5), (.5, 0, .3, .3)):
    hand += 0.5 * (s / t + (a - b) ** 2 / t - 1 + math.log(t / s))
  assert float(pb.gaussian_kl(mq, mp, vq, vp)) == pytest.approx(hand, rel=1e-12)
  assert float(jax.jit(pb.gaussian_kl)(mq, mp, vq, vp)) == pytest.approx(hand, rel=1e-12)


def test_gaussian_kl_structure_mismatch():
  with pytest.raises(InvalidInputError, match="mean_p"):
    pb.gaussian_kl({"a": jnp.zeros(2)}, {"b": jnp.zeros(2)}, 1.0, 1.0)


# ----------------------------------------------------------------------------- certificates


def _toy():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(60, 3))
  w_true = np.array([[1.0, -1.0], [0.5, 0.2], [-0.3, 0.8]])
  y = np.argmax(x @ w_true, axis=1).astype(np.int32)
  params = {"w": jnp.asarray(w_true * 3.0)}
  init = {"w": jnp.asarray(rng.normal(size=(3, 2)) * 0.1)}
  apply_fn = lambda p, xx: xx @ p["w"]  # noqa: E731
  return apply_fn, params, init, x, y


@pytest.mark.x64  # float64 inputs or references to 1e-9 or tighter
def test_certificate_consistent_with_hand_formulas():
  apply_fn, params, init, x, y = _toy()
  sig = (0.05, 0.3, 1.0, 3.0)
  c = pb.pac_bayes_certificate(apply_fn, params, init, x, y, x_test=x, y_test=y, sigmas=sig,
                               mc_samples=64, selection_samples=16, seed=3)
  dist = float(np.sum((np.asarray(params["w"]) - np.asarray(init["w"])) ** 2))
  assert c.distance_sq == pytest.approx(dist, rel=1e-12)
  assert c.kl == pytest.approx(dist / (2 * c.sigma ** 2), rel=1e-12)
  assert c.grid_size == 4 and c.n == 60 and c.num_params == 6
  log_g = math.log(4)
  assert c.empirical_error_bound == pytest.approx(
      _kl_inv_bisect(c.mc_error, math.log(2 / c.delta_mc) / 64), abs=1e-9)
  assert c.empirical_error_bound >= c.mc_error
  assert c.pac_bayes_kl == pytest.approx(
      _kl_inv_bisect(c.empirical_error_bound, _conf(c.kl, 60, c.delta, log_g) / 60), abs=1e-9)
  assert c.mcallester == pytest.approx(
      c.empirical_error_bound + math.sqrt(_conf(c.kl, 60, c.delta, log_g) / 120), rel=1e-9)
  lg = log_g + math.log(len(pb.CATONI_GRID))
  cat = min((1 - math.exp(-k * c.empirical_error_bound - (c.kl + math.log(1 / c.delta) + lg) / 60))
            / (1 - math.exp(-k)) for k in pb.CATONI_GRID)
  assert c.catoni == pytest.approx(cat, rel=1e-9)
  # The selected scale minimises the selection bound over the grid.
  assert c.sigma == min(c.selection, key=lambda s: s.selection_bound).sigma
  assert c.deterministic_train_error == 0.0
  assert 0.0 <= c.stochastic_test_error <= 1.0
  rows = {r["name"]: r for r in c.rows()}
  assert rows["pac_bayes_kl"]["test_error_bound"] <= 1.0


def test_vacuous_mcallester_is_reported_not_clipped():
  apply_fn, params, init, x, y = _toy()
  c = pb.pac_bayes_certificate(apply_fn, params, init, x, y, sigmas=(0.05,), mc_samples=8,
                               selection_samples=2)
  assert c.mcallester > 1.0 and c.vacuous("mcallester")
  rows = {r["name"]: r for r in c.rows()}
  assert rows["mcallester"]["vacuous"] and rows["mcallester"]["test_error_bound"] > 1.0
  assert c.pac_bayes_kl <= 1.0


def test_certificate_reproducible_and_bad_input():
  apply_fn, params, init, x, y = _toy()
  a = pb.pac_bayes_certificate(apply_fn, params, init, x, y, sigmas=(0.5,), mc_samples=16,
                               selection_samples=4, seed=0)
  b = pb.pac_bayes_certificate(apply_fn, params, init, x, y, sigmas=(0.5,), mc_samples=16,
                               selection_samples=4, seed=0)
  assert a.mc_error == b.mc_error
  with pytest.raises(InvalidInputError, match="init_params"):
    pb.pac_bayes_certificate(apply_fn, params, {"w": jnp.zeros((2, 2))}, x, y)
  with pytest.raises(InvalidInputError, match="delta"):
    pb.pac_bayes_certificate(apply_fn, params, init, x, y, delta=1.5)
  with pytest.raises(InvalidInputError, match="sigmas"):
    pb.pac_bayes_certificate(apply_fn, params, init, x, y, sigmas=(0.0,))


def _linear_model(seed=0):
  rng = np.random.default_rng(seed)
  params = {"w": jnp.asarray(rng.normal(size=(4, 3))), "b": jnp.zeros(3)}
  init = {"w": jnp.asarray(rng.normal(size=(4, 3))), "b": jnp.zeros(3)}
  x = rng.normal(size=(30, 4))
  y = np.argmax(x @ np.asarray(params["w"]), -1)
  return (lambda p, v: v @ p["w"] + p["b"][None, :]), params, init, x, y


def test_certificate_refuses_nan_weights_before_any_draw():
  # The issue: NaN weights gave KL = nan and a "valid" certificate of about 0.97.
  apply_fn, params, init, x, y = _linear_model()
  calls = []
  bad = {"w": params["w"].at[1, 2].set(jnp.nan), "b": params["b"]}
  with pytest.raises(InvalidInputError, match=r"^params: expected finite .*\['w'\]"):
    pb.pac_bayes_certificate(apply_fn, bad, init, x, y, mc_samples=4,
                             callback=lambda d, t: calls.append(d))
  with pytest.raises(InvalidInputError, match=r"^init_params: expected finite"):
    pb.pac_bayes_certificate(apply_fn, params, {"w": init["w"], "b": init["b"] + jnp.inf}, x, y,
                             mc_samples=4, callback=lambda d, t: calls.append(d))
  with pytest.raises(InvalidInputError, match=r"^x_train: expected finite"):
    pb.pac_bayes_certificate(apply_fn, params, init, np.where(x > 1, np.nan, x), y,
                             mc_samples=4, callback=lambda d, t: calls.append(d))
  assert calls == []  # refused before any Monte Carlo work


def test_certificate_refuses_labels_outside_the_model_outputs():
  apply_fn, params, init, x, y = _linear_model()
  with pytest.raises(InvalidInputError, match=r"^y_train: expected class labels in \[0, 3\)"):
    pb.pac_bayes_certificate(apply_fn, params, init, x, np.where(y == 0, 3, y), mc_samples=4)
  with pytest.raises(InvalidInputError, match=r"^y_test: expected class labels in \[0, 3\)"):
    pb.pac_bayes_certificate(apply_fn, params, init, x, y, x_test=x[:5], y_test=-np.ones(5, int),
                             mc_samples=4)


@pytest.mark.x64  # float64 inputs or references to 1e-9 or tighter
def test_draws_with_non_finite_outputs_count_as_errors():
  # A weight draw whose logits are NaN has no prediction; counting it as correct (argmax of NaN
  # is class 0, the label of a third of the examples) would lower the certificate.
  apply_fn, params, _, x, y = _linear_model()
  nan_fn = lambda p, v: apply_fn(p, v) + jnp.sqrt(-1.0 - jnp.abs(p["b"][0]))  # noqa: E731
  fn = pb._stochastic_error_fn(nan_fn, 2)
  errs = pb._mc_errors(fn, params, jnp.asarray(x), jnp.asarray(y), 0.1, jax.random.key(0), 4,
                       jnp.float64, 2)
  assert np.mean(y == 0) > 0  # the old code would have scored those as correct
  np.testing.assert_array_equal(errs, np.ones(4))


def test_certificate_compiles_once_across_calls():
  # The Monte Carlo error function is built once per (apply_fn, batch_size): a second
  # certificate with the same model traces apply_fn only for the eager checks, never again
  # inside the compiled draw loop.
  apply_fn, params, init, x, y = _toy()
  traces = []

  def counted(p, v):
    traces.append(isinstance(v, jax.core.Tracer))
    return apply_fn(p, v)

  kw = dict(sigmas=(0.1, 0.5), mc_samples=8, selection_samples=4, batch_size=2, seed=1)
  a = pb.pac_bayes_certificate(counted, params, init, x, y, **kw)
  first = len(traces)
  b = pb.pac_bayes_certificate(counted, params, init, x, y, **kw)
  second = traces[first:]
  # First call: traced for the output-shape check and for the compiled draw loop, plus one
  # eager call (the deterministic error). Second call: only the eager call; nothing retraces.
  assert traces[:first].count(True) >= 2 and traces[:first].count(False) == 1
  assert second == [False], second
  assert json.dumps(a.to_dict()) == json.dumps(b.to_dict())


def test_certificate_round_trips_and_tables():
  apply_fn, params, init, x, y = _toy()
  c = pb.pac_bayes_certificate(apply_fn, params, init, x, y, sigmas=(0.1, 0.5), mc_samples=8,
                               selection_samples=4)
  d = json.loads(json.dumps(c.to_dict()))
  back = pb.PacBayesCertificate.from_dict(d)
  assert json.dumps(back.to_dict()) == json.dumps(c.to_dict())  # NaN test error: not ==
  assert dataclasses.replace(back, stochastic_test_error=0.0) == dataclasses.replace(
      c, stochastic_test_error=0.0)
  assert all(isinstance(s, pb.SigmaSelection) for s in back.selection)
  assert [r["name"] for r in d["rows"]] == ["mcallester", "pac_bayes_kl", "catoni"]
  s = c.selection[0]
  assert pb.SigmaSelection.from_dict(json.loads(json.dumps(s.to_dict()))) == s
  t = c.table()
  assert isinstance(t, gbounds.Table)
  assert t.column("certificate") == list(pb.CertificateName)
  assert t.column("test-error bound") == [c.mcallester, c.pac_bayes_kl, c.catoni]
  assert c.vacuous(pb.CertificateName.MCALLESTER) == c.vacuous("mcallester")


def test_certificate_accepts_every_model_form_alike():
  # Linen module with params, its NNX twin, a ModelFn and a plain apply_fn give the same
  # certificate. A scale far below the weights' size leaves every draw's predictions as the
  # deterministic network's, so the Monte Carlo errors agree whatever the leaf order of the
  # parameter trees.
  import gbounds.models as gm
  from tests.model_twins import cnn_twins

  t = cnn_twins()
  x, y = np.asarray(t.x), np.asarray(t.y)
  linen_init = jax.tree_util.tree_map(lambda a: 0.5 * a, t.linen_params)
  nnx_params = gm.as_model_fn(t.nnx).params
  nnx_init = jax.tree_util.tree_map(lambda a: 0.5 * a, nnx_params)
  kw = dict(sigmas=(1e-6,), mc_samples=4, selection_samples=2, batch_size=1)
  lin = pb.pac_bayes_certificate(t.linen, t.linen_params, linen_init, x, y, **kw)
  nx = pb.pac_bayes_certificate(t.nnx, None, nnx_init, x, y, **kw)
  mf = gm.as_model_fn(t.linen, params=t.linen_params)
  via_fn = pb.pac_bayes_certificate(mf, None, linen_init, x, y, **kw)
  plain = pb.pac_bayes_certificate(mf.apply_fn, t.linen_params, linen_init, x, y, **kw)
  for other in (nx, via_fn, plain):
    assert other.num_params == lin.num_params
    assert other.distance_sq == pytest.approx(lin.distance_sq, rel=1e-5)
    for f in ("mc_error", "deterministic_train_error", "mcallester", "pac_bayes_kl", "catoni"):
      assert getattr(other, f) == pytest.approx(getattr(lin, f), rel=1e-5, abs=1e-7), f
  with pytest.raises(InvalidInputError, match="^params"):
    pb.pac_bayes_certificate(t.linen, None, linen_init, x, y, **kw)
