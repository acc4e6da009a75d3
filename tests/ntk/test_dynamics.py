"""Closed-form linearized GD dynamics against explicit training of the linearized network."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import gbounds


@pytest.fixture(scope="module")
def problem():
  x = jax.random.normal(jax.random.key(1), (10, 4), jnp.float64)
  xt = jax.random.normal(jax.random.key(2), (3, 4), jnp.float64)
  m = gbounds.as_model_fn(gbounds.models.MLP((12,), 2, activation="tanh", param_dtype=jnp.float64),
                          example_input=x, key=0)
  params = gbounds.ntk.cast_tree(m.params, jnp.float64)
  jac = gbounds.ntk.jacobian_fn(m.apply_fn)
  j, jt = jac(params, x), jac(params, xt)
  y = jax.nn.one_hot(jnp.arange(10) % 2, 2, dtype=jnp.float64)
  return dict(apply=m.apply_fn, params=params, x=x, xt=xt, j=j, jt=jt, y=y,
              f0=m.apply_fn(params, x), f0t=m.apply_fn(params, xt))


def _rel(a, b):
  a, b = np.ravel(a), np.ravel(b)
  return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


@pytest.mark.x64
@pytest.mark.parametrize("time,t", [("discrete", 40), ("continuous", 2.5)])
@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_closed_form_equals_explicit_gd(problem, time, t, lam):
  p = problem
  cf = gbounds.ntk.gradient_descent_mse(p["j"] @ p["j"].T, p["y"], p["f0"], learning_rate=0.02, t=t,
                                    weight_decay=lam, time=time,
                                    theta_test_train=p["jt"] @ p["j"].T, f0_test=p["f0t"])
  ex = gbounds.ntk.train_linearized_explicit(p["apply"], p["params"], p["x"], p["y"],
                                         learning_rate=0.02, t=t, weight_decay=lam, time=time,
                                         x_test=p["xt"])
  w = gbounds.ntk.linearized_weights(p["apply"], p["params"], p["x"], cf.coefficients)
  assert _rel(cf.train, ex.train) < 1e-8
  assert _rel(cf.test, ex.test) < 1e-8
  w0 = ravel_pytree(p["params"])[0]
  assert _rel(ravel_pytree(w)[0] - w0, ravel_pytree(ex.params)[0] - w0) < 1e-8


@pytest.mark.x64
@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_infinite_time_equals_regularised_least_squares(problem, lam):
  """t = inf: w* - w0 = argmin ||J d + r0||^2 + lam ||d||^2 (minimum-norm for lam = 0)."""
  p = problem
  r0 = (p["f0"] - p["y"]).reshape(-1)
  j = p["j"]
  if lam == 0:
    d = -np.linalg.pinv(np.asarray(j)) @ np.asarray(r0)
  else:
    d = -np.linalg.solve(j.T @ j + lam * np.eye(j.shape[1]), j.T @ r0)
  eta = 1.0 / (np.linalg.eigvalsh(np.asarray(j @ j.T))[-1] + lam)  # a convergent step
  for time in gbounds.ntk.Time:
    cf = gbounds.ntk.gradient_descent_mse(j @ j.T, p["y"], p["f0"], learning_rate=eta, t=np.inf,
                                      weight_decay=lam, time=time,
                                      theta_test_train=p["jt"] @ j.T, f0_test=p["f0t"])
    assert _rel(j.T @ cf.coefficients, d) < 1e-8
    assert _rel(cf.test.reshape(-1), (p["f0t"].reshape(-1) + p["jt"] @ d)) < 1e-8


@pytest.mark.x64
def test_singular_kernel_is_fine():
  """Duplicated inputs make Theta singular; phi_t never inverts it."""
  j = np.random.default_rng(0).normal(size=(3, 8))
  j = np.concatenate([j, j[:1]])  # rank 3, 4 rows
  theta = jnp.asarray(j @ j.T)
  r0 = jnp.asarray(np.random.default_rng(1).normal(size=4))
  for t in (7, np.inf):
    a = gbounds.ntk.gd_coefficients(theta, r0, learning_rate=0.01, t=t)
    assert np.all(np.isfinite(a))
  # explicit GD in weight space for 7 steps
  d = np.zeros(8)
  for _ in range(7):
    d = d - 0.01 * j.T @ (j @ d + np.asarray(r0))
  a = gbounds.ntk.gd_coefficients(theta, r0, learning_rate=0.01, t=7)
  np.testing.assert_allclose(j.T @ np.asarray(a), d, rtol=1e-10)


@pytest.mark.x64
def test_phi_limits_jit_and_vmap():
  mu = jnp.array([0.0, 1e-12, 0.5, 2.0], jnp.float64)
  f = jax.jit(lambda m, t: gbounds.ntk.phi(m, learning_rate=0.1, t=t, time="continuous"))
  out = f(mu, 3.0)
  np.testing.assert_allclose(out[0], 0.3)
  np.testing.assert_allclose(out[1], 0.3, rtol=1e-9)
  np.testing.assert_allclose(out[2:], (1 - np.exp(-0.3 * mu[2:])) / mu[2:], rtol=1e-13)
  disc = gbounds.ntk.phi(mu, learning_rate=0.1, t=5, time="discrete")
  np.testing.assert_allclose(disc[2:], (1 - (1 - 0.1 * mu[2:]) ** 5) / mu[2:], rtol=1e-13)
  np.testing.assert_allclose(disc[0], 0.5)
  batched = jax.vmap(lambda t: gbounds.ntk.phi(mu, learning_rate=0.1, t=t))(jnp.array([1.0, 2.0]))
  np.testing.assert_allclose(batched[1, 2:], (1 - (1 - 0.1 * mu[2:]) ** 2) / mu[2:], rtol=1e-13)
  # oscillating regime eta mu in (1, 2): exact power
  np.testing.assert_allclose(gbounds.ntk.phi(jnp.array([15.0]), learning_rate=0.1, t=3),
                             (1 - (1 - 1.5) ** 3) / 15.0, rtol=1e-13)


class TestBadInput:
  theta = np.eye(4)
  y = np.zeros(4)

  @pytest.mark.parametrize("kw,name", [
      (dict(learning_rate=-0.1, t=1.0), "learning_rate"),
      (dict(learning_rate=0.1, t=-1.0), "t"),
      (dict(learning_rate=0.1, t=1.0, weight_decay=-1.0), "weight_decay"),
  ])
  def test_domains(self, kw, name):
    with pytest.raises(gbounds.InvalidInputError, match=name):
      gbounds.ntk.gradient_descent_mse(self.theta, self.y, self.y, **kw)

  def test_shape_mismatch(self):
    with pytest.raises(gbounds.InvalidInputError, match="theta_train"):
      gbounds.ntk.gradient_descent_mse(np.eye(3), self.y, self.y, learning_rate=0.1, t=1.0)
    with pytest.raises(gbounds.InvalidInputError, match="f0_train"):
      gbounds.ntk.gradient_descent_mse(self.theta, self.y, np.zeros(3), learning_rate=0.1, t=1.0)

  def test_nan(self):
    y = self.y.copy()
    y[0] = np.nan
    with pytest.raises(gbounds.InvalidInputError, match="y_train"):
      gbounds.ntk.gradient_descent_mse(self.theta, y, self.y, learning_rate=0.1, t=1.0)

  def test_unknown_time(self):
    with pytest.raises(gbounds.InvalidInputError, match="time"):
      gbounds.ntk.gradient_descent_mse(self.theta, self.y, self.y, learning_rate=0.1, t=1.0,
                                   time="stochastic")


@pytest.mark.x64  # the threshold eta = 2 / lambda_max is checked exactly (1e-9 slack): float64
@pytest.mark.parametrize("t", [5, np.inf])
def test_divergent_step_is_rejected(t):
  """eta >= 2 / lambda_max(Theta + lambda I) diverges in discrete time; gradient flow does not."""
  rng = np.random.default_rng(0)
  j = rng.normal(size=(6, 9))
  theta = j @ j.T
  lam = 0.5
  top = np.linalg.eigvalsh(theta)[-1] + lam  # independent of the code under test
  y, f0 = rng.normal(size=6), np.zeros(6)
  for eta in (2.0 / top, 2.5 / top):
    with pytest.raises(gbounds.InvalidInputError, match="learning_rate"):
      gbounds.ntk.gradient_descent_mse(theta, y, f0, learning_rate=eta, t=t, weight_decay=lam,
                                   time="discrete")
    with pytest.raises(gbounds.InvalidInputError, match="learning_rate"):
      gbounds.ntk.gd_coefficients(theta, f0 - y, learning_rate=eta, t=t, weight_decay=lam)
  # just below the threshold, and any step in continuous time, are accepted
  gbounds.ntk.gd_coefficients(theta, f0 - y, learning_rate=1.99 / top, t=t, weight_decay=lam)
  gbounds.ntk.gradient_descent_mse(theta, y, f0, learning_rate=10.0 / top, t=t, weight_decay=lam,
                               time="continuous")


@pytest.mark.x64
def test_phi_host_equals_phi():
  mu = np.array([0.0, 1e-12, 0.5, 2.0, 15.0])
  for time, t in (("discrete", 7), ("continuous", 3.0), ("discrete", np.inf)):
    ref = np.asarray(gbounds.ntk.phi(jnp.asarray(mu), learning_rate=0.1, t=t, time=time))
    got = gbounds.ntk.phi_host(mu, learning_rate=0.1, t=t, time=time)
    np.testing.assert_allclose(got, ref, rtol=1e-13, atol=0)


def test_eigh_is_the_numerics_type_and_results_round_trip():
  import json

  from gbounds._src import numerics
  assert gbounds.ntk.Eigh is numerics.Eigh
  rng = np.random.default_rng(3)
  j = rng.normal(size=(6, 9)).astype(np.float32)
  y = rng.normal(size=(3, 2)).astype(np.float32)
  f0 = rng.normal(size=(3, 2)).astype(np.float32)
  theta = j @ j.T
  pred = gbounds.ntk.gradient_descent_mse(theta, y, f0, learning_rate=0.01, t=5.0,
                                          theta_test_train=theta[:4], f0_test=f0[:2])
  back = gbounds.ntk.LinearizedPredictions.from_dict(json.loads(json.dumps(pred.to_dict())))
  for a, b in zip(pred, back):
    np.testing.assert_array_equal(np.asarray(a, np.float64), b)
  # a precomputed eigendecomposition gives the same coefficients
  e = numerics.eigh(theta + 0.1 * np.eye(6, dtype=np.float32))
  r0 = (f0 - y).ravel()
  np.testing.assert_allclose(
      gbounds.ntk.gd_coefficients(theta, r0, learning_rate=0.01, t=5, weight_decay=0.1, eigh=e),
      gbounds.ntk.gd_coefficients(theta, r0, learning_rate=0.01, t=5, weight_decay=0.1),
      rtol=1e-6, atol=1e-7)


@pytest.mark.x64
def test_explicit_result_round_trips(problem):
  import json
  p = problem
  r = gbounds.ntk.train_linearized_explicit(p["apply"], p["params"], p["x"], p["y"],
                                            learning_rate=0.02, t=3, x_test=p["xt"])
  back = gbounds.ntk.ExplicitResult.from_dict(json.loads(json.dumps(r.to_dict())))
  assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(r)
  for a, b in zip(jax.tree_util.tree_leaves(r), jax.tree_util.tree_leaves(back)):
    np.testing.assert_array_equal(a, b)
