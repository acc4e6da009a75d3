"""Tests for the information in the weights (exact, diagonal and K-FAC Fisher forms)."""

import json

import jax
import jax.flatten_util  # noqa: F401 (jax.flatten_util.ravel_pytree below)
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

import gbounds
from gbounds.info import _weight_info as wi
from tests import model_twins

F64 = jnp.float64


def _tiny_mlp(dtype=F64):
  x = jax.random.normal(jax.random.key(1), (7, 5), dtype)
  mf = gbounds.as_model_fn(gbounds.models.MLP(hidden=(4,), out=3, param_dtype=dtype), example_input=x,
                           key=0)
  return mf, x


def _brute_fisher(apply_fn, params, x, y=None, empirical=False):
  """Independent numpy Fisher: sum_i J_i^T H_i J_i from a dense Jacobian."""
  flat, unravel = jax.flatten_util.ravel_pytree(params)
  jac = np.asarray(jax.jacrev(lambda w: apply_fn(unravel(w), x))(flat))  # (n, k, d)
  p = np.asarray(jax.nn.softmax(apply_fn(params, x), -1))
  total = 0
  for i in range(x.shape[0]):
    if empirical:
      g = p[i] - np.eye(p.shape[1])[y[i]]
      h = np.outer(g, g)
    else:
      h = np.diag(p[i]) - np.outer(p[i], p[i])
    total = total + jac[i].T @ h @ jac[i]
  return total


def _brute_kl(h, w, beta, lam):
  """The Gaussian-Lagrangian KL in its log-det / inverse form (numpy)."""
  k = h.shape[0]
  m = h + beta / lam ** 2 * np.eye(k)
  return (0.5 * np.linalg.slogdet(m)[1] + k / 2 * np.log(lam ** 2 / beta) - k / 2
          + (w @ w + beta * np.trace(np.linalg.inv(m))) / (2 * lam ** 2))


@pytest.mark.x64  # builds a float64 network or kernel
@pytest.mark.parametrize("empirical", [False, True])
def test_fisher_matrix_matches_brute_force(empirical):
  mf, x = _tiny_mlp()
  y = np.array([0, 1, 2, 0, 1, 2, 0])
  kind = "empirical" if empirical else "true"
  got = wi.fisher_matrix(mf.apply_fn, mf.params, x, y, fisher=kind, chunk_size=3)
  np.testing.assert_allclose(got, _brute_fisher(mf.apply_fn, mf.params, x, y, empirical),
                             rtol=1e-10, atol=1e-12)
  mean = wi.fisher_matrix(mf.apply_fn, mf.params, x, y, fisher=kind, scaling="mean")
  np.testing.assert_allclose(mean * x.shape[0], got, rtol=1e-10, atol=1e-12)


@pytest.mark.x64  # builds a float64 network or kernel
def test_exact_form_matches_logdet_formula():
  mf, x = _tiny_mlp()
  beta, lam = 0.7, 0.3
  r = wi.information_in_weights(mf.apply_fn, mf.params, x, beta=beta, prior_scale=lam,
                                form="exact")
  h = _brute_fisher(mf.apply_fn, mf.params, x)
  w = np.asarray(jax.flatten_util.ravel_pytree(mf.params)[0])
  np.testing.assert_allclose(r.total, _brute_kl(h, w, beta, lam), rtol=1e-9)
  np.testing.assert_allclose(r.fisher_trace, np.trace(h), rtol=1e-10)
  np.testing.assert_allclose(r.total, r.log_det + r.trace_term + r.norm_term, rtol=1e-12)
  assert r.num_params == w.size


def _diag_model():
  """logits = [x . w, 0] on one-hot inputs: each example touches one weight -> diagonal Fisher."""
  def apply_fn(p, x):
    z = x @ p["w"]
    return jnp.stack([z, jnp.zeros_like(z)], axis=-1)
  x = jnp.asarray(np.eye(4)[[0, 1, 2, 3, 0, 2]], F64)
  return apply_fn, {"w": jnp.array([0.3, -1.0, 0.5, 2.0], F64)}, x


@pytest.mark.x64  # builds a float64 network or kernel
def test_diagonal_equals_exact_for_diagonal_fisher():
  apply_fn, params, x = _diag_model()
  h = _brute_fisher(apply_fn, params, x)
  assert np.allclose(h, np.diag(np.diag(h)))
  for beta in (0.1, 1.0, 5.0):
    ex = wi.information_in_weights(apply_fn, params, x, beta=beta, prior_scale=1.5, form="exact")
    dg = wi.information_in_weights(apply_fn, params, x, beta=beta, prior_scale=1.5,
                                   form="diagonal")
    np.testing.assert_allclose(dg.total, ex.total, rtol=1e-10)
    np.testing.assert_allclose(dg.total, _brute_kl(h, np.asarray(params["w"]), beta, 1.5),
                               rtol=1e-10)


@pytest.mark.x64  # builds a float64 network or kernel
def test_kfac_equals_exact_for_single_dense_layer():
  """A single Dense layer with zero kernel: H_i is the same for all examples -> F = A (x) G."""
  x = jax.random.normal(jax.random.key(3), (9, 4), F64)
  model = gbounds.models.MLP(hidden=(), out=3, param_dtype=F64)
  params = {"head": {"kernel": jnp.zeros((4, 3), F64), "bias": jnp.array([0.3, -0.2, 0.5], F64)}}
  apply_fn = lambda p, xx: model.apply({"params": p}, xx)  # noqa: E731
  kf = wi.kfac_factors(apply_fn, params, x)
  a, g = kf[("head",)]
  # Kronecker check against the exact block (kernel rows then bias row, row-major).
  h = _brute_fisher(apply_fn, params, x)
  # ravel order is bias (3) then kernel (12); reorder to [kernel; bias] row-major.
  order = np.r_[np.arange(3, 15), np.arange(0, 3)]
  np.testing.assert_allclose(np.kron(a, g), h[np.ix_(order, order)], rtol=1e-10, atol=1e-13)
  for beta in (0.2, 2.0):
    ex = wi.information_in_weights(apply_fn, params, x, beta=beta, prior_scale=2.0, form="exact")
    kfac = wi.information_in_weights(apply_fn, params, x, beta=beta, prior_scale=2.0,
                                     form="kfac", chunk_size=4)
    np.testing.assert_allclose(kfac.total, ex.total, rtol=1e-10)


@pytest.mark.x64  # builds a float64 network or kernel
def test_kfac_close_on_mlp_and_layers_sum():
  mf, x = _tiny_mlp()
  ex = wi.information_in_weights(mf.apply_fn, mf.params, x, beta=1.0, prior_scale=0.5,
                                 form="exact")
  for form in ("kfac", "diagonal"):
    r = wi.information_in_weights(mf.apply_fn, mf.params, x, beta=1.0, prior_scale=0.5, form=form)
    np.testing.assert_allclose(sum(r.per_layer.values()), r.total, rtol=1e-10)
    assert abs(float(r.total) - float(ex.total)) < 0.1 * float(ex.total)
    assert set(r.per_layer) == {"dense0", "head"}


@pytest.mark.x64  # builds a float64 network or kernel
def test_monotone_in_beta_and_limits():
  mf, x = _tiny_mlp()
  vals = [float(wi.information_in_weights(mf.apply_fn, mf.params, x, beta=b, prior_scale=0.5,
                                          form=f).total)
          for f in ("exact", "diagonal") for b in (0.01, 0.1, 1.0, 10.0, 100.0)]
  for f in range(2):
    seq = vals[5 * f:5 * f + 5]
    assert all(a >= b for a, b in zip(seq, seq[1:]))
  # beta -> infinity: only the norm term remains.
  sq = sum(float(jnp.sum(v ** 2)) for v in jax.tree_util.tree_leaves(mf.params))
  big = wi.information_in_weights(mf.apply_fn, mf.params, x, beta=1e12, prior_scale=0.5)
  np.testing.assert_allclose(big.total, sq / (2 * 0.25), rtol=1e-8)


@pytest.mark.x64  # builds a float64 network or kernel
def test_information_from_spectrum_jit_vmap():
  eig = jnp.array([[0.0, 1.0, 3.0], [2.0, 2.0, 0.5]], F64)
  f = jax.jit(jax.vmap(lambda e: wi.information_from_spectrum(e, 2.0, beta=0.5, prior_scale=1.2)))
  h = [np.diag(np.asarray(e)) for e in eig]
  w = np.array([1.0, 1.0, 0.0])
  np.testing.assert_allclose(f(eig), [_brute_kl(hh, w, 0.5, 1.2) for hh in h], rtol=1e-10)


@pytest.mark.x64  # builds a float64 network or kernel
def test_sampled_fisher_is_unbiased():
  mf, x = _tiny_mlp()
  true = wi.fisher_diagonal(mf.apply_fn, mf.params, x)
  samp = wi.fisher_diagonal(mf.apply_fn, mf.params, x, fisher="sampled",
                            key=jax.random.key(0), num_samples=4000)
  t, s = (jax.flatten_util.ravel_pytree(v)[0] for v in (true, samp))
  assert float(jnp.linalg.norm(s - t) / jnp.linalg.norm(t)) < 0.1
  tr = wi.fisher_trace(mf.apply_fn, mf.params, x)
  np.testing.assert_allclose(tr, jnp.sum(t), rtol=1e-12)


@pytest.mark.x64  # builds a float64 network or kernel
def test_float32_matches_float64():
  mf, x = _tiny_mlp()
  p32 = gbounds.ntk.cast_tree(mf.params, jnp.float32)
  r = wi.information_in_weights(mf.apply_fn, p32, x.astype(jnp.float32), beta=1.0,
                                prior_scale=0.5, form="kfac")
  r64 = wi.information_in_weights(mf.apply_fn, mf.params, x, beta=1.0, prior_scale=0.5,
                                  form="kfac")
  assert r.total.dtype == jnp.float32
  np.testing.assert_allclose(r.total, r64.total, rtol=1e-4)


@pytest.mark.x64  # builds a float64 network or kernel
def test_bad_input():
  mf, x = _tiny_mlp()
  with pytest.raises(gbounds.InvalidInputError, match="beta"):
    wi.information_in_weights(mf.apply_fn, mf.params, x, beta=0.0, prior_scale=1.0)
  with pytest.raises(gbounds.InvalidInputError, match="beta"):
    wi.information_in_weights(mf.apply_fn, mf.params, x, beta=-1.0, prior_scale=1.0)
  with pytest.raises(gbounds.InvalidInputError, match="prior_scale"):
    wi.information_in_weights(mf.apply_fn, mf.params, x, beta=1.0, prior_scale=0.0)
  with pytest.raises(gbounds.InvalidInputError, match="y"):
    wi.information_in_weights(mf.apply_fn, mf.params, x, beta=1.0, prior_scale=1.0,
                              fisher="empirical")
  with pytest.raises(gbounds.InvalidInputError, match="key"):
    wi.fisher_diagonal(mf.apply_fn, mf.params, x, fisher="sampled")
  with pytest.raises(gbounds.InvalidInputError, match="form"):
    wi.information_in_weights(mf.apply_fn, mf.params, x, beta=1.0, prior_scale=1.0, form="full")


# ----------------------------------------------------------------------------- K-FAC against an
# independent dense Kronecker computation (hand-written forward pass, np.kron, numpy eigvalsh)


class _TwoLayer(nn.Module):
  """A bias-free hidden Dense (optionally applied twice: a shared layer) and a head with bias."""
  shared: bool = False

  @nn.compact
  def __call__(self, x):
    d = nn.Dense(5, use_bias=False, param_dtype=F64, name="hidden")
    h = jnp.tanh(d(x))
    if self.shared:
      h = jnp.tanh(d(h))
    return nn.Dense(3, param_dtype=F64, name="head")(h)


def _hand_kfac_information(p, x, *, shared, beta, lam, mean=False, sharing="reduce"):
  """Per-layer K-FAC information from factors built by hand (1 appended to the input only for
  the head, which has a bias; J_z: Jacobian of the logits w.r.t. a call's pre-activation).
  Shared hidden layer, "expand": A = mean over examples and calls of a a^T, G = sum over examples
  and calls of J_z^T H_i J_z; "reduce": per example the mean input and the summed J_z."""
  w1 = p["hidden"]["kernel"]
  w2, b2 = p["head"]["kernel"], p["head"]["bias"]

  def forward(xi, pert):  # one example; pert = pre-activation offsets of each call
    z = [xi @ w1 + pert[0]]
    acts = [xi]
    h = jnp.tanh(z[0])
    if shared:
      acts.append(h)
      h = jnp.tanh(h @ w1 + pert[1])
    acts.append(h)
    return h @ w2 + b2 + pert[-1], acts

  calls = 2 if shared else 1
  n = x.shape[0]
  zeros = [jnp.zeros(5, F64)] * calls + [jnp.zeros(3, F64)]
  logits, acts = jax.vmap(lambda xi: forward(xi, zeros))(x)
  jac = jax.vmap(jax.jacrev(lambda pt, xi: forward(xi, pt)[0]), in_axes=(None, 0))(zeros, x)
  acts = [np.asarray(a) for a in acts]
  jac = [np.asarray(j) for j in jac]  # each (n, 3, width)
  a_hid, g_hid, a_head, g_head = 0, 0, 0, 0
  for i in range(n):
    q = np.asarray(jax.nn.softmax(logits[i]))
    h_i = np.diag(q) - np.outer(q, q)
    if sharing == "expand":
      for t in range(calls):
        a_hid = a_hid + np.outer(acts[t][i], acts[t][i]) / (n * calls)
        g_hid = g_hid + jac[t][i].T @ h_i @ jac[t][i]
    else:
      a = sum(acts[t][i] for t in range(calls)) / calls
      js = sum(jac[t][i] for t in range(calls))
      a_hid = a_hid + np.outer(a, a) / n
      g_hid = g_hid + js.T @ h_i @ js
    a1 = np.r_[acts[-1][i], 1.0]
    a_head = a_head + np.outer(a1, a1) / n
    g_head = g_head + jac[-1][i].T @ h_i @ jac[-1][i]
  scale = 1.0 / n if mean else 1.0
  out = {}
  for name, a, g, leaves in (("hidden", a_hid, g_hid * scale, [w1]),
                             ("head", a_head, g_head * scale, [w2, b2])):
    block = np.kron(a, g)
    assert block.shape[0] == sum(np.size(v) for v in leaves)  # one eigenvalue per weight
    u = lam ** 2 / beta * np.clip(np.linalg.eigvalsh(block), 0, None)
    norm = sum(float(np.sum(np.asarray(v) ** 2)) for v in leaves) / (2 * lam ** 2)
    out[name] = float(np.sum(0.5 * np.log1p(u) - 0.5 * u / (1 + u))) + norm
  return out


@pytest.mark.parametrize("shared,sharing", [(False, "reduce"), (True, "reduce"),
                                            pytest.param(True, "expand", marks=pytest.mark.slow)])
@pytest.mark.x64  # builds a float64 network or kernel
def test_kfac_matches_dense_kronecker_computation(shared, sharing):
  x = jax.random.normal(jax.random.key(5), (6, 5), F64)
  model = _TwoLayer(shared=shared)
  params = model.init(jax.random.key(2), x)["params"]
  want = _hand_kfac_information(params, x, shared=shared, beta=0.5, lam=0.8, sharing=sharing)
  apply_fn = lambda p, xx: model.apply({"params": p}, xx)  # noqa: E731
  got = wi.information_in_weights(apply_fn, params, x, beta=0.5, prior_scale=0.8, form="kfac",
                                  chunk_size=4, sharing=sharing)
  assert set(got.per_layer) == {"hidden", "head"}
  for name in want:
    np.testing.assert_allclose(got.per_layer[name], want[name], rtol=1e-9)
  np.testing.assert_allclose(got.total, sum(want.values()), rtol=1e-9)
  np.testing.assert_allclose(sum(got.per_layer.values()), got.total, rtol=1e-12)
  # Variables dict {"params": ...} with model.apply: same numbers, each layer counted once.
  nested = wi.information_in_weights(model.apply, {"params": params}, x, beta=0.5,
                                     prior_scale=0.8, form="kfac", sharing=sharing)
  np.testing.assert_allclose(nested.total, got.total, rtol=1e-12)
  assert set(nested.per_layer) == {"params/hidden", "params/head"}
  np.testing.assert_allclose(sum(nested.per_layer.values()), nested.total, rtol=1e-12)
  if shared:
    return
  a, g = wi.kfac_factors(apply_fn, params, x)[("hidden",)]
  assert a.shape == (5, 5) and g.shape == (5, 5)  # bias-free: no constant input appended
  # MEAN scaling (the paper's convention) equals SUM with beta * n.
  mean = wi.information_in_weights(apply_fn, params, x, beta=0.5, prior_scale=0.8, form="kfac",
                                   scaling="mean", sharing=sharing)
  want_mean = _hand_kfac_information(params, x, shared=shared, beta=0.5, lam=0.8, mean=True,
                                     sharing=sharing)
  np.testing.assert_allclose(mean.total, sum(want_mean.values()), rtol=1e-9)
  sum_big_beta = wi.information_in_weights(apply_fn, params, x, beta=0.5 * x.shape[0],
                                           prior_scale=0.8, form="kfac", sharing=sharing)
  np.testing.assert_allclose(mean.total, sum_big_beta.total, rtol=1e-10)


class _TokenDense(nn.Module):
  """A Dense on (batch, 2, 4) inputs (not K-FAC'd: falls back to the diagonal), then a head."""

  @nn.compact
  def __call__(self, x):
    h = jnp.tanh(nn.Dense(3, param_dtype=F64, name="tokens")(x.reshape(x.shape[0], 2, 4)))
    return nn.Dense(3, param_dtype=F64, name="head")(h.reshape(h.shape[0], -1))


@pytest.mark.x64  # builds a float64 network or kernel
def test_kfac_mixes_with_diagonal_for_non_dense_parameters():
  """A free scale parameter outside any Dense layer, and a Dense on 3-D inputs: diagonal form
  for them, K-FAC for the rest; per_layer still sums to the total."""
  x = jax.random.normal(jax.random.key(6), (6, 8), F64)
  tok = _TokenDense()
  tp = tok.init(jax.random.key(3), x)["params"]
  f = lambda p, xx: tok.apply({"params": p}, xx)  # noqa: E731
  kf = wi.information_in_weights(f, tp, x, beta=1.0, prior_scale=1.0, form="kfac")
  dg = wi.information_in_weights(f, tp, x, beta=1.0, prior_scale=1.0, form="diagonal")
  np.testing.assert_allclose(kf.per_layer["tokens"], dg.per_layer["tokens"], rtol=1e-12)
  assert abs(float(kf.per_layer["head"]) - float(dg.per_layer["head"])) > 1e-6  # K-FAC'd
  np.testing.assert_allclose(sum(kf.per_layer.values()), kf.total, rtol=1e-12)
  x = x[:, :5]
  model = _TwoLayer()
  params = {"net": model.init(jax.random.key(2), x)["params"], "temp": jnp.array([1.3], F64)}
  apply_fn = lambda p, xx: p["temp"][None, :] * model.apply({"params": p["net"]}, xx)  # noqa: E731
  got = wi.information_in_weights(apply_fn, params, x, beta=1.0, prior_scale=1.0, form="kfac")
  diag = wi.information_in_weights(apply_fn, params, x, beta=1.0, prior_scale=1.0,
                                   form="diagonal")
  assert set(got.per_layer) == {"net/hidden", "net/head", "temp"}
  np.testing.assert_allclose(got.per_layer["temp"], diag.per_layer["temp"], rtol=1e-12)
  np.testing.assert_allclose(sum(got.per_layer.values()), got.total, rtol=1e-12)


_NNX_NAMES = {"dense0": "layers/0", "dense1": "layers/1", "head": "head"}


@pytest.mark.parametrize("fisher", ["true", "empirical"])
def test_nnx_and_linen_twins_give_the_same_kfac_factors(fisher):
  """The MLP twins: the Linen module with params and its NNX twin (nnx.Linear layers) give the
  same K-FAC factors per layer (Linen ``dense<i>`` is NNX ``layers/<i>``)."""
  t = model_twins.mlp_twins(n=10)
  lin = wi.kfac_factors(t.linen, t.linen_params, t.x, t.y, fisher=fisher, chunk_size=4)
  nx = wi.kfac_factors(t.nnx, x=t.x, y=t.y, fisher=fisher, chunk_size=4)
  assert set(lin) == {("dense0",), ("dense1",), ("head",)}
  assert set(nx) == {("layers", "0"), ("layers", "1"), ("head",)}
  for (name,), (a, g) in lin.items():
    a2, g2 = nx[tuple(_NNX_NAMES[name].split("/"))]
    np.testing.assert_allclose(a2, a, rtol=1e-5, atol=1e-6 * float(jnp.max(jnp.abs(a))))
    np.testing.assert_allclose(g2, g, rtol=1e-5, atol=1e-6 * float(jnp.max(jnp.abs(g))))


@pytest.mark.parametrize("form", ["kfac", "diagonal", "exact"])
def test_nnx_and_linen_twins_give_the_same_information(form):
  """Linen module + params, NNX twin, and a ModelFn: the same information in the weights."""
  t = model_twins.mlp_twins(n=10)
  kw = dict(beta=0.5, prior_scale=0.3, form=form, chunk_size=4)
  lin = wi.information_in_weights(t.linen, t.linen_params, t.x, **kw)
  nx = wi.information_in_weights(t.nnx, x=t.x, **kw)
  mf = wi.information_in_weights(gbounds.as_model_fn(t.linen, params=t.linen_params), x=t.x,
                                 **kw)
  for other, names in ((nx, _NNX_NAMES), (mf, {k: k for k in _NNX_NAMES})):
    np.testing.assert_allclose(other.total, lin.total, rtol=1e-5)
    np.testing.assert_allclose(other.fisher_trace, lin.fisher_trace, rtol=1e-5)
    assert other.num_params == lin.num_params
    assert set(other.per_layer) == set(names.values())
    for name, value in lin.per_layer.items():
      np.testing.assert_allclose(other.per_layer[names[name]], value, rtol=1e-5)


@pytest.mark.x64  # builds a float64 network or kernel
def test_weight_information_to_dict_round_trip():
  mf, x = _tiny_mlp()
  r = wi.information_in_weights(mf.apply_fn, mf.params, x, beta=1.0, prior_scale=0.5,
                                form="kfac")
  again = wi.WeightInformation.from_dict(json.loads(json.dumps(r.to_dict())))
  assert again.num_params == r.num_params and set(again.per_layer) == set(r.per_layer)
  for f in ("total", "log_det", "trace_term", "norm_term", "fisher_trace"):
    np.testing.assert_array_equal(getattr(again, f), np.asarray(getattr(r, f)))
  for k, v in r.per_layer.items():
    np.testing.assert_array_equal(again.per_layer[k], np.asarray(v))
  table = r.table()
  assert isinstance(table, gbounds.Table) and table.columns == ("layer", "information_nats")
  assert table.rows[-1] == ("total", float(r.total))
  assert [row[0] for row in table.rows[:-1]] == list(r.per_layer)
