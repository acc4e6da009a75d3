"""Tests of gbounds.bounds.certify and its pieces against independent computations.

* the Gaussian KL pieces against a per-parameter sum of the univariate formula and against
  :func:`gbounds.bounds.gaussian_kl`;
* the bounded cross-entropy against its definition in numpy;
* the reported certificate recomputed from the reported fields with a plain-Python bisection
  inverse of the binary kl;
* the prior never sees the bound part (changing only bound-part examples leaves the prior mean
  bit-identical; changing a prior-part example moves it: the planted case that catches a swap);
* coverage on a synthetic distribution with a known (large-sample) risk, with a planted wrong
  "certificate" (the Monte Carlo training error) that the coverage criterion rejects.
"""

from __future__ import annotations

import json
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import gbounds
import gbounds.models as gm
import gbounds.train as gt
from gbounds.bounds import (
    CertifyConfig,
    PosteriorCertificate,
    PriorKind,
    bounded_cross_entropy,
    certify,
    gaussian_kl,
    gaussian_kl_isotropic,
)
from gbounds.bounds._certify import _host_stats, _kl_terms, _optimal_log_prior_scale
from tests.bounds.kl_reference import kl_inv as _kl_inv

X64 = bool(jax.config.jax_enable_x64)


# ----------------------------------------------------------------------------- references


def _pac_bayes_kl(e: float, kl: float, n: int, delta: float, log_g: float) -> float:
  return _kl_inv(e, (kl + math.log(2 * math.sqrt(n) / delta) + log_g) / n)


def _gauss_kl_direct(mean, scale, prior_mean, s: float) -> float:
  """sum_j KL(N(m_j, v_j) || N(p_j, s^2)), each from the univariate formula, float64."""
  total = 0.0
  for m, v, p in zip(jax.tree_util.tree_leaves(mean), jax.tree_util.tree_leaves(scale),
                     jax.tree_util.tree_leaves(prior_mean)):
    m = np.asarray(m, np.float64)
    sd = np.broadcast_to(np.asarray(v, np.float64), m.shape).ravel()
    m = m.ravel()
    p = np.asarray(p, np.float64).ravel()
    for mj, sj, pj in zip(m, sd, p):
      total += math.log(s / sj) + (sj ** 2 + (mj - pj) ** 2) / (2 * s ** 2) - 0.5
  return total


def _rtol():
  return 1e-9 if X64 else 2e-5


# ----------------------------------------------------------------------------- KL pieces


def _random_posterior(seed=0, shapes=((3, 4), (4,), (4, 2))):
  rng = np.random.default_rng(seed)
  mean = {f"w{i}": rng.standard_normal(s) for i, s in enumerate(shapes)}
  prior = {f"w{i}": rng.standard_normal(s) * 0.5 for i, s in enumerate(shapes)}
  scale = {f"w{i}": np.exp(rng.uniform(-3, 0, s)) for i, s in enumerate(shapes)}
  return mean, scale, prior


@pytest.mark.parametrize("s", [0.01, 0.3, 1.0, 4.0])
def test_gaussian_kl_isotropic_is_the_per_parameter_sum(s):
  mean, scale, prior = _random_posterior()
  stats = _host_stats(mean, scale, prior)
  got = gaussian_kl_isotropic(stats, s)
  assert got == pytest.approx(_gauss_kl_direct(mean, scale, prior, s), rel=1e-12)
  assert stats[3] == 12 + 4 + 8


@pytest.mark.x64
@pytest.mark.parametrize("s", [0.05, 0.7, 2.0])
def test_gaussian_kl_isotropic_matches_gaussian_kl(s):
  mean, scale, prior = _random_posterior(1)
  f64 = jnp.float64
  want = float(gaussian_kl(jax.tree_util.tree_map(lambda a: jnp.asarray(a, f64), mean),
                           jax.tree_util.tree_map(lambda a: jnp.asarray(a, f64), prior),
                           jax.tree_util.tree_map(lambda a: jnp.asarray(a ** 2, f64), scale),
                           jnp.asarray(s ** 2, f64)))
  assert gaussian_kl_isotropic(_host_stats(mean, scale, prior), s) == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("s", [0.05, 0.7, 2.0])
def test_kl_terms_in_program_match_host(s):
  mean, scale, prior = _random_posterior(2)
  dt = jnp.float64 if X64 else jnp.float32
  conv = lambda t: jax.tree_util.tree_map(lambda a: jnp.asarray(a, dt), t)  # noqa: E731
  log_scale = jax.tree_util.tree_map(np.log, scale)
  got = float(jax.jit(_kl_terms)(conv(mean), conv(log_scale), conv(prior),
                                 jnp.asarray(math.log(s), dt)))
  want = _gauss_kl_direct(mean, scale, prior, s)
  assert got == pytest.approx(want, rel=1e-10 if X64 else 1e-4)


def test_kl_terms_with_one_scale_per_array():
  # LAYER granularity: one log-std scalar per array, broadcast.
  mean, _, prior = _random_posterior(3)
  dt = jnp.float64 if X64 else jnp.float32
  layer = {k: 0.1 * (i + 1) for i, k in enumerate(mean)}
  got = float(_kl_terms(jax.tree_util.tree_map(lambda a: jnp.asarray(a, dt), mean),
                        {k: jnp.asarray(math.log(v), dt) for k, v in layer.items()},
                        jax.tree_util.tree_map(lambda a: jnp.asarray(a, dt), prior),
                        jnp.asarray(math.log(0.5), dt)))
  assert got == pytest.approx(_gauss_kl_direct(mean, layer, prior, 0.5), rel=1e-10 if X64 else 1e-4)


def test_kl_is_minimised_at_s2_equal_a_plus_b_over_d():
  mean, scale, prior = _random_posterior(4)
  stats = _host_stats(mean, scale, prior)
  a, b, _, d = stats
  s_star = math.sqrt((a + b) / d)
  grid = np.exp(np.linspace(math.log(s_star) - 2, math.log(s_star) + 2, 4001))
  kls = [gaussian_kl_isotropic(stats, float(s)) for s in grid]
  s_grid = float(grid[int(np.argmin(kls))])
  assert s_grid == pytest.approx(s_star, rel=2e-3)
  assert gaussian_kl_isotropic(stats, s_star) <= min(kls) + 1e-12
  # certify's in-program value of that std.
  dt = jnp.float64 if X64 else jnp.float32
  theta = {"mean": jax.tree_util.tree_map(lambda x: jnp.asarray(x, dt), mean),
           "log_scale": jax.tree_util.tree_map(lambda x: jnp.asarray(np.log(x), dt), scale)}
  got = float(jnp.exp(_optimal_log_prior_scale(
      theta, jax.tree_util.tree_map(lambda x: jnp.asarray(x, dt), prior))))
  assert got == pytest.approx(s_star, rel=1e-5)


# ----------------------------------------------------------------------------- surrogate loss


def test_bounded_cross_entropy():
  rng = np.random.default_rng(0)
  dt = jnp.float64 if X64 else jnp.float32
  logits = rng.standard_normal((200, 5)) * 6
  logits[:5] = [[30, -30, 0, 0, 0]] * 5  # p_y tiny for y != 0
  y = rng.integers(0, 5, 200)
  y[:5] = 1
  p_min = 1e-3
  got = np.asarray(bounded_cross_entropy(jnp.asarray(logits, dt), jnp.asarray(y, jnp.int32), p_min))
  z = logits - logits.max(axis=1, keepdims=True)
  p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
  py = p[np.arange(200), y]
  want = np.where(py > p_min, -np.log(np.maximum(py, 1e-300)) / math.log(1 / p_min), 1.0)
  assert np.all((got >= 0) & (got <= 1))
  np.testing.assert_allclose(got, want, rtol=1e-10 if X64 else 1e-4, atol=1e-12 if X64 else 1e-6)
  assert np.all(got[:5] == 1.0) and np.sum(py < p_min) >= 5
  assert np.sum((py > p_min) & (py < 0.5)) > 20  # the unclipped branch is exercised


# ----------------------------------------------------------------------------- end to end

N = 400
MODEL = gm.MLP((16,), 2)
TRAIN = gt.TrainConfig(learning_rate=0.2, steps=60)
SMALL = dict(epochs=2, finetune_epochs=1, mc_draws=500, mc_chunk=16, test_draws=100,
             batch_size=50)


def _data(seed: int, n: int = N, noise: float = 0.1):
  """2-D Gaussian classes at (+-1, +-1)/... with labels flipped at rate ``noise``."""
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 2, n)
  x = rng.standard_normal((n, 2)) + np.where(y[:, None] == 1, 1.0, -1.0)
  flip = rng.random(n) < noise
  y = np.where(flip, 1 - y, y)
  return x.astype(np.float32), y.astype(np.int32)


def _apply(p, x):
  return MODEL.apply({"params": p}, x)


@pytest.fixture(scope="module")
def setup():
  x, y = _data(0)
  xt, yt = _data(1, 300)
  init = MODEL.init(jax.random.key(0), jnp.asarray(x[:1]))["params"]
  params = gt.train(_apply, init, x, y, TRAIN).params
  return x, y, xt, yt, init, params


@pytest.fixture(scope="module")
def learnt(setup):
  x, y, xt, yt, init, params = setup
  return certify(MODEL, params, init, x, y, train_config=TRAIN, config=CertifyConfig(**SMALL),
                 x_test=xt, y_test=yt, return_posterior=True)


@pytest.fixture(scope="module")
def data_free(setup):
  x, y, xt, yt, init, params = setup
  return certify(MODEL, params, init, x, y,
                 config=CertifyConfig(prior="data_free", **SMALL), return_posterior=True)


def _check_certificate(r: PosteriorCertificate, post, n_prior: int):
  assert r.n == N and r.n_prior == n_prior and r.n_bound == N - n_prior
  log_g = math.log(r.grid_size)
  assert r.union_cost_nats == pytest.approx(log_g, rel=1e-12)
  # KL from the returned posterior, per parameter, at the reported prior std.
  kl = _gauss_kl_direct(post.mean, post.scale, post.prior_mean, r.prior_scale)
  assert r.kl == pytest.approx(max(kl, 0.0), rel=1e-6, abs=1e-6)
  assert post.prior_scale == r.prior_scale
  # The selected std minimises the KL over the grid (recomputed here) and the curve.
  grid = [pt.prior_scale for pt in r.curve]
  assert len(grid) == r.grid_size
  kls = [_gauss_kl_direct(post.mean, post.scale, post.prior_mean, s) for s in grid]
  assert grid[int(np.argmin(kls))] == r.prior_scale
  best = min(r.curve, key=lambda pt: pt.bound)
  assert best.bound == pytest.approx(r.certificate, rel=1e-12)
  assert min(pt.kl for pt in r.curve) == pytest.approx(r.kl, rel=1e-12, abs=1e-12)
  # The certificate recomputed from the reported fields.
  e_ub = _kl_inv(r.mc_error, math.log(2 / r.delta_mc) / r.mc_draws)
  assert r.mc_error_bound == pytest.approx(e_ub, rel=_rtol(), abs=1e-12)
  cert = _pac_bayes_kl(e_ub, r.kl, r.n_bound, r.delta, log_g)
  assert r.certificate == pytest.approx(cert, rel=_rtol() * 10)
  assert r.mc_cost == pytest.approx(cert - _pac_bayes_kl(r.mc_error, r.kl, r.n_bound, r.delta,
                                                         log_g), abs=1e-9 if X64 else 1e-5)
  assert r.union_cost == pytest.approx(cert - _pac_bayes_kl(e_ub, r.kl, r.n_bound, r.delta, 0.0),
                                       abs=1e-9 if X64 else 1e-5)
  assert r.mc_cost > 0 and (r.union_cost > 0 or r.grid_size == 1)
  # Relaxations on the same event are looser.
  c = (r.kl + math.log(2 * math.sqrt(r.n_bound) / r.delta) + log_g) / r.n_bound
  assert r.classic == pytest.approx(e_ub + math.sqrt(c / 2), rel=_rtol() * 10)
  for v in (r.classic, r.quad, r.lambda_bound):
    assert v >= r.certificate - 1e-7
  assert 0 <= r.mc_error <= 1 and r.mc_error < r.certificate <= 1
  # Round trip through JSON.
  back = PosteriorCertificate.from_dict(json.loads(json.dumps(r.to_dict())))
  assert json.dumps(back.to_dict(), sort_keys=True) == json.dumps(r.to_dict(), sort_keys=True)
  assert back.certificate == r.certificate and back.curve == r.curve and back.prior == r.prior


def test_certify_learnt_prior_consistent(learnt, setup):
  r, post = learnt
  _check_certificate(r, post, n_prior=200)
  assert r.prior is PriorKind.LEARNT
  assert 0 <= r.prior_bound_error <= 1 and r.heldout_bound > r.prior_bound_error
  assert np.isfinite(r.gibbs_test_error) and np.isfinite(r.trained_test_error)
  assert r.certificate < 0.6  # informative on this easy problem (Bayes risk ~0.17)
  assert len(r.history) == SMALL["epochs"] + SMALL["finetune_epochs"]


def test_certify_data_free_prior_consistent(data_free, setup):
  r, post = data_free
  _check_certificate(r, post, n_prior=0)
  assert math.isnan(r.heldout_bound) and math.isnan(r.gibbs_test_error)
  init = setup[4]
  for a, b in zip(jax.tree_util.tree_leaves(post.prior_mean), jax.tree_util.tree_leaves(init)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_certify_planted_wrong_certificate_is_caught(learnt):
  # The consistency check rejects a certificate that forgot ln G (or used n instead of n_bound).
  r, post = learnt
  wrong = dict(r.to_dict())
  e_ub = _kl_inv(r.mc_error, math.log(2 / r.delta_mc) / r.mc_draws)
  for cert in (_pac_bayes_kl(e_ub, r.kl, r.n_bound, r.delta, 0.0),
               _pac_bayes_kl(e_ub, r.kl, r.n, r.delta, math.log(r.grid_size))):
    wrong["certificate"] = cert
    with pytest.raises(AssertionError):
      _check_certificate(PosteriorCertificate.from_dict(wrong), post, n_prior=200)


def _nnx_run(setup, **over):
  x, y, _, _, init, params = setup
  net = gm.NnxMLP(2, (16,), 2, rngs=nnx.Rngs(0))
  gm.linen_params_to_nnx(net, params)
  ref = gm.NnxMLP(2, (16,), 2, rngs=nnx.Rngs(1))
  gm.linen_params_to_nnx(ref, init)
  init_state = gm.as_model_fn(ref).params
  return certify(net, None, init_state, x, y, train_config=TRAIN,
                 config=CertifyConfig(**{**SMALL, **over}), return_posterior=True)


def test_certify_nnx_module_single_prior_scale(setup):
  # With one prior std (ln s not learnt).
  r, post = _nnx_run(setup, prior_scale_grid=(0.03,))
  _check_certificate(r, post, n_prior=200)
  assert r.union_cost_nats == 0.0 and r.prior_scale == 0.03
  # The same network and split as the Linen run: the same prior network, same held-out bound.
  lin, _ = certify(MODEL, setup[5], setup[4], setup[0], setup[1], train_config=TRAIN,
                   config=CertifyConfig(**SMALL, prior_scale_grid=(0.03,)), return_posterior=True)
  assert r.prior_bound_error == lin.prior_bound_error
  assert r.heldout_bound == lin.heldout_bound
  assert r.certificate == pytest.approx(lin.certificate, abs=0.05)


def test_certify_nnx_module(setup, learnt):
  r, post = _nnx_run(setup)
  _check_certificate(r, post, n_prior=200)
  assert r.prior_bound_error == learnt[0].prior_bound_error
  assert r.certificate == pytest.approx(learnt[0].certificate, abs=0.05)


def test_certify_plain_apply_fn_with_tuple_params(setup):
  x, y = setup[0], setup[1]

  def linear(p, xx):
    return xx @ p[0] + p[1][None]

  w0 = (jnp.zeros((2, 2), jnp.float32), jnp.zeros((2,), jnp.float32))
  w = (jnp.asarray([[-1.0, 1.0], [-1.0, 1.0]], jnp.float32), jnp.zeros((2,), jnp.float32))
  r, post = certify(linear, w, w0, x, y, config=CertifyConfig(prior="data_free", **SMALL),
                    return_posterior=True)
  _check_certificate(r, post, n_prior=0)


def test_certify_plain_apply_fn_with_dict_params(setup):
  x, y = setup[0], setup[1]

  def linear(p, xx):
    return xx @ p["w"] + p["b"][None]

  w0 = {"w": jnp.zeros((2, 2), jnp.float32), "b": jnp.zeros((2,), jnp.float32)}
  w = {"w": jnp.asarray([[-1.0, 1.0], [-1.0, 1.0]], jnp.float32), "b": w0["b"]}
  r, post = certify(linear, w, w0, x, y, config=CertifyConfig(prior="data_free", **SMALL),
                    return_posterior=True)
  _check_certificate(r, post, n_prior=0)
  assert r.certificate < 0.5


# ----------------------------------------------------------------------------- prior isolation


def _split(n: int, config: CertifyConfig):
  perm = np.random.default_rng(config.seed).permutation(n)
  k = int(round(config.prior_fraction * n))
  return np.sort(perm[:k]), np.sort(perm[k:])


def test_prior_never_sees_the_bound_part(setup, learnt):
  x, y, _, _, init, params = setup
  cfg = CertifyConfig(**SMALL)
  prior_idx, bound_idx = _split(N, cfg)
  base_r, base = learnt

  def prior_mean(xx, yy):
    r, post = certify(MODEL, params, init, xx, yy, train_config=TRAIN, config=cfg,
                      return_posterior=True)
    return r, [np.asarray(a) for a in jax.tree_util.tree_leaves(post.prior_mean)]

  base_pm = [np.asarray(a) for a in jax.tree_util.tree_leaves(base.prior_mean)]
  # Change every bound-part example (inputs and labels).
  x2, y2 = x.copy(), y.copy()
  x2[bound_idx] = np.random.default_rng(7).standard_normal((len(bound_idx), 2)).astype(np.float32)
  y2[bound_idx] = 1 - y2[bound_idx]
  r2, pm2 = prior_mean(x2, y2)
  for a, b in zip(base_pm, pm2):
    np.testing.assert_array_equal(a, b)
  # ... while the bound part does matter to the certificate (the data reached it).
  assert r2.prior_bound_error != base_r.prior_bound_error
  # Planted: change a single prior-part example: the prior mean moves (so a swapped split, or
  # a prior trained on everything, would fail the equality above).
  x3 = x.copy()
  x3[prior_idx[0]] += 3.0
  _, pm3 = prior_mean(x3, y)
  assert any(not np.array_equal(a, b) for a, b in zip(base_pm, pm3))


# ----------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("kwargs,name", [
    ({"prior": "posterior"}, "prior"),
    ({"objective": "mcallester"}, "objective"),
    ({"granularity": "neuron"}, "granularity"),
    ({"optimizer": "sgd"}, "optimizer"),
    ({"posterior_init": "zero"}, "posterior_init"),
    ({"prior_fraction": 0.0}, "prior_fraction"),
    ({"prior_fraction": 1.0}, "prior_fraction"),
    ({"delta": 0.5, "delta_mc": 0.5}, r"delta \+ delta_mc"),
    ({"delta": 0.0}, "delta"),
    ({"epochs": -1}, "epochs"),
    ({"finetune_epochs": -1}, "finetune_epochs"),
    ({"mc_draws": 0}, "mc_draws"),
    ({"init_scale": 0.0}, "init_scale"),
    ({"prior_scale_grid": ()}, "prior_scale_grid"),
    ({"prior_scale_grid": (0.1, -1.0)}, "prior_scale_grid"),
    ({"min_prob": 1.0}, "min_prob"),
    ({"momentum": 1.0}, "momentum"),
])
def test_config_bad_inputs(kwargs, name):
  with pytest.raises(gbounds.InvalidInputError, match=f"^{name}"):
    CertifyConfig(**kwargs)


def _bad_call(setup, **over):
  x, y, _, _, init, params = setup
  args = dict(model=MODEL, params=params, init_params=init, x_train=x, y_train=y,
              train_config=TRAIN, config=CertifyConfig(**SMALL))
  args.update(over)
  model = args.pop("model")
  certify(model, **args)


def test_certify_bad_inputs(setup):
  x, y, xt, yt, init, params = setup
  cases = []
  xn = x.copy()
  xn[3, 1] = np.nan
  cases.append(({"x_train": xn}, "x_train"))
  cases.append(({"y_train": np.where(np.arange(N) == 5, 2, y)}, "y_train"))
  cases.append(({"y_train": np.where(np.arange(N) == 5, -1, y)}, "y_train"))
  cases.append(({"y_train": y[:-1]}, "x_train"))  # mismatched lengths name both
  cases.append(({"train_config": None}, "train_config"))
  bad_init = jax.tree_util.tree_map(lambda a: a, init)
  bad_init = {**bad_init, "head": {**bad_init["head"], "bias": jnp.zeros((3,), jnp.float32)}}
  cases.append(({"init_params": bad_init}, "init_params"))
  cases.append(({"init_params": {"head": init["head"]}}, "init_params"))
  cases.append(({"config": "quad"}, "config"))
  cases.append(({"x_test": xt}, "x_test and y_test"))
  cases.append(({"x_test": xt, "y_test": yt + 2}, "y_test"))
  cases.append(({"config": CertifyConfig(prior_fraction=0.001, **SMALL)},
                r"config\.prior_fraction"))
  cases.append(({"model": 3}, "model"))
  for over, name in cases:
    with pytest.raises(gbounds.InvalidInputError, match=f"^{name}"):
      _bad_call(setup, **over)


# ----------------------------------------------------------------------------- coverage

COV_N = 120
COV_NOISE = 0.2
COV_MODEL = gm.MLP((32,), 2)
COV_TRAIN = gt.TrainConfig(optimizer="adam", learning_rate=0.02, steps=400)
COV_CFG = dict(epochs=2, finetune_epochs=1, mc_draws=2000, mc_chunk=16, test_draws=1,
               batch_size=60, learning_rate=1e-3)


def _cov_apply(p, x):
  return COV_MODEL.apply({"params": p}, x)


@jax.jit
def _gibbs_errors(mean, scale, x, y, key):
  """0-1 errors of Q on the points ``x``, one fresh weight draw per point."""

  def one(xi, yi, k):
    leaves, tdef = jax.tree_util.tree_flatten(mean)
    ks = jax.random.split(k, len(leaves))
    w = jax.tree_util.tree_unflatten(
        tdef, [mu + s * jax.random.normal(kk, mu.shape, mu.dtype)
               for mu, s, kk in zip(leaves, jax.tree_util.tree_leaves(scale), ks)])
    logits = COV_MODEL.apply({"params": w}, xi[None])
    return (jnp.argmax(logits[0]).astype(jnp.int32) != yi).astype(jnp.float32)

  return jax.vmap(one)(x, y, jax.random.split(key, x.shape[0]))


def _gibbs_risk(post, m: int, seed: int) -> float:
  """0-1 risk of Q on ``m`` fresh points, one fresh weight draw per point (MC sd <= 0.5/sqrt m)."""
  x, y = _data(10_000 + seed, m, COV_NOISE)
  errs = _gibbs_errors(post.mean, post.scale, jnp.asarray(x), jnp.asarray(y), jax.random.key(seed))
  return float(jnp.mean(errs))


@pytest.mark.slow
def test_coverage_on_a_known_distribution():
  runs = 40
  fresh = 200_000
  rows = {PriorKind.LEARNT: [], PriorKind.DATA_FREE: []}
  t0 = time.perf_counter()
  for seed in range(runs):
    x, y = _data(seed, COV_N, COV_NOISE)
    init = COV_MODEL.init(jax.random.key(seed), jnp.asarray(x[:1]))["params"]
    params = gt.train(_cov_apply, init, x, y, COV_TRAIN).params
    for kind in rows:
      cfg = CertifyConfig(prior=kind, seed=seed, **COV_CFG)
      r, post = certify(COV_MODEL, params, init, x, y, train_config=COV_TRAIN, config=cfg,
                        return_posterior=True)
      risk = _gibbs_risk(post, fresh, seed)
      rows[kind].append((r.certificate, r.mc_error, risk, r.trained_train_error))
  elapsed = time.perf_counter() - t0
  need = 1 - 0.025 - 0.01
  se = math.sqrt(0.25 / fresh)
  report = {}
  for kind, vals in rows.items():
    a = np.asarray(vals)
    covered = np.mean(a[:, 0] >= a[:, 2] - 3 * se)
    planted = np.mean(a[:, 1] >= a[:, 2] - 3 * se)
    report[str(kind)] = dict(coverage=float(covered), planted_coverage=float(planted),
                             mean_cert=float(a[:, 0].mean()), mean_risk=float(a[:, 2].mean()),
                             mean_mc_error=float(a[:, 1].mean()),
                             mean_train_error=float(a[:, 3].mean()))
    assert covered >= need, report
  print("coverage", json.dumps(report), f"{elapsed:.0f}s")
  # The learnt-prior certificates are informative (not trivially above the risk); the data-free
  # ones are near-vacuous on this small, noisy problem.
  assert report[str(PriorKind.LEARNT)]["mean_cert"] < 0.9, report
  # Planted: the Monte Carlo training error of Q as a "certificate" fails the criterion where
  # the network overfits (both priors: Q is fitted to the very examples it is scored on).
  for kind in rows:
    assert report[str(kind)]["planted_coverage"] < need, report


def test_certify_refuses_fewer_than_8_bound_examples():
  """Maurer's ln(2 sqrt(n) / delta) needs n >= 8: refused before any training."""
  def f(p, x):
    return x @ p["w"]
  w = {"w": np.zeros((2, 2), np.float32)}
  x, y = np.ones((12, 2), np.float32), np.zeros(12, np.int32)
  with pytest.raises(gbounds.InvalidInputError, match="x_train.*at least 8"):
    certify(f, w, w, x[:7], y[:7], config=CertifyConfig(prior="data_free"))
  with pytest.raises(gbounds.InvalidInputError, match="x_train.*at least 8"):  # 12 - 6 = 6 behind the bound
    certify(f, w, w, x, y, train_config=gbounds.train.TrainConfig(steps=1),
            config=CertifyConfig(prior="learnt", prior_fraction=0.5))


def test_certify_layer_granularity_one_std_per_array(setup):
  """LAYER scales: one posterior std per parameter array (every quantile of an array equal),
  and the certificate still recomputes from its fields and the returned posterior."""
  x, y, xt, yt, init, params = setup
  r, post = certify(MODEL, params, init, x, y, train_config=TRAIN,
                    config=CertifyConfig(**SMALL, granularity="layer"), return_posterior=True)
  _check_certificate(r, post, n_prior=200)
  for leaf in jax.tree_util.tree_leaves(post.scale):
    assert np.ndim(leaf) == 0
  for s in r.scales:
    assert max(s.quantiles) == pytest.approx(min(s.quantiles), rel=1e-12)
