"""Tight PAC-Bayes certificates for a trained network: an optimised Gaussian posterior.

Dziugaite & Roy (UAI 2017) optimise a diagonal Gaussian posterior ``Q = N(mu, diag(sigma^2))``
from the SGD weights by minimising a differentiable PAC-Bayes bound of a surrogate loss, with a
data-free prior ``P = N(w0, s^2 I)`` at the random initialisation; Perez-Ortiz et al. (JMLR 2021)
learn the prior mean on part of the training data and certify on the rest. :func:`certify` does
both:

1. **Prior.** ``LEARNT``: the training set is split at random (``prior_fraction``); the user's
   recipe (a :class:`gbounds.train.TrainConfig`) trains the network from ``init_params`` on the
   prior part only; the bound uses only the other part and its size ``n_b`` (not the full ``n``).
   ``DATA_FREE``: the prior mean is ``init_params`` and the bound uses all ``n`` examples.
   The prior std ``s`` lies on a grid of ``G`` values; every bound pays ``ln G``.
2. **Posterior.** Mean and log-std (one per parameter, or one per parameter array) start from the
   prior mean (or the trained weights) and minimise an :class:`Objective` of the bounded
   cross-entropy ``min(-ln p_y, ln(1/p_min)) / ln(1/p_min)`` on the bound part, one
   reparametrised weight draw per mini-batch, jointly with ``ln s`` (Adam).
3. **Certificate.** ``s`` is set to the grid value that minimises ``KL(Q || P_s)`` (closed form);
   the Gibbs 0-1 error on the bound part is estimated from ``N`` fresh, independent draws, each
   evaluated on ``mc_chunk`` examples drawn uniformly with replacement (an unbiased unit in
   [0, 1]), and bounded by ``kl^{-1}(e_hat, ln(2/delta')/N)`` (:func:`mc_term`); the certificate is
   ``kl^{-1}(that, (KL + ln(2 sqrt(n_b)/delta) + ln G) / n_b)``, valid with probability
   ``>= 1 - delta - delta'``. The classic, quad and lambda forms follow from the same event and
   are reported beside it. With a learnt prior, the prior network's own error on the bound part
   gives the held-out bound (:func:`heldout_bound`) at confidence ``delta``.

With ``A = sum sigma^2``, ``B = ||mu - mu_P||^2``, ``L = sum ln sigma^2`` over ``d`` weights:
``KL(Q || N(mu_P, s^2 I)) = (A / s^2 + B / s^2 - d + d ln s^2 - L) / 2``.

References:
  Dziugaite & Roy, "Computing nonvacuous generalization bounds for deep (stochastic) neural
  networks with many more parameters than training data", UAI 2017.
  Perez-Ortiz, Rivasplata, Shawe-Taylor, Szepesvari, "Tighter risk certificates for neural
  networks", JMLR 22(227), 2021.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gbounds.train
from gbounds._src import batching as _batching
from gbounds._src import errors as _errors
from gbounds._src import progress as _progress
from gbounds._src import results as _results
from gbounds.bounds import _pac_bayes
from gbounds.bounds._kl import _kl_inverse_upper
from gbounds.bounds._objectives import (
    Objective,
    complexity,
    heldout_bound,
    mc_term,
    objective_value,
    optimal_lambda,
)

# Prior std grid: 10^(-4 + j/12), j = 0..48 (ratio 1.21; ln 49 = 3.9 nats of union bound).
PRIOR_SCALE_GRID: tuple[float, ...] = tuple(float(10.0 ** (-4 + j / 12)) for j in range(49))


class PriorKind(enum.StrEnum):
  """Where the prior mean comes from.

  Attributes:
    LEARNT: trained by the user's recipe on a random part of the training set; the bound uses
      the rest (Perez-Ortiz et al. 2021, with ``n`` the size of the bound part).
    DATA_FREE: the initialisation ``init_params`` (Dziugaite & Roy 2017); the bound uses all.
  """
  LEARNT = "learnt"
  DATA_FREE = "data_free"


class ScaleGranularity(enum.StrEnum):
  """How many posterior std parameters.

  Attributes:
    PARAMETER: one per weight (diagonal Gaussian).
    LAYER: one per parameter array (each kernel and bias), cheaper and coarser.
  """
  PARAMETER = "parameter"
  LAYER = "layer"


class PosteriorInit(enum.StrEnum):
  """Where the posterior mean starts.

  Attributes:
    PRIOR: at the prior mean (Perez-Ortiz et al.; the default with a learnt prior).
    TRAINED: at the user's trained weights (Dziugaite & Roy; the default with a data-free prior).
  """
  PRIOR = "prior"
  TRAINED = "trained"


class PosteriorOptimizer(enum.StrEnum):
  """The optimiser of the posterior's mean and log-std.

  Attributes:
    MOMENTUM: SGD with momentum (Perez-Ortiz et al. 2021 use 0.95): weights whose gradient is
      small stay near the prior mean, so the KL grows only where the data ask for it.
    ADAM: Adam (every weight moves by about the step size, which costs KL on large networks).
  """
  MOMENTUM = "momentum"
  ADAM = "adam"


@dataclasses.dataclass(frozen=True)
class CertifyConfig:
  """Settings of :func:`certify`.

  Attributes:
    prior: :class:`PriorKind`.
    prior_fraction: share of the training set that trains a ``LEARNT`` prior, in (0, 1).
    objective: the :class:`Objective` minimised.
    granularity: :class:`ScaleGranularity` of the posterior std.
    posterior_init: :class:`PosteriorInit`, or None for the prior's default.
    init_scale: initial posterior std and prior std ``s``; None: 0.005 with a learnt prior
      (the posterior stays near a good prior, so little noise costs little accuracy), 0.03
      data-free (the prior at the initialisation must be wide enough to pay for
      ``||w - w0||^2 / (2 s^2)``).
    prior_scale_grid: the grid of prior stds (``ln len`` paid in every bound).
    epochs: passes over the bound part in the posterior optimisation, ``ln s`` learnt jointly
      (when the grid has more than one value).
    finetune_epochs: further passes with ``s`` fixed at its grid value (the posterior adapts
      to the rounded prior; with ``d`` weights, a prior std off by a ratio ``r`` costs about
      ``d (r - 1)^2`` nats, so rounding without them is expensive on large networks).
    batch_size: examples per step (one weight draw each).
    optimizer: :class:`PosteriorOptimizer`.
    learning_rate: its step size (the mean, log-std and ``ln s``).
    momentum: momentum of ``MOMENTUM``.
    min_prob: ``p_min`` of the bounded cross-entropy; None: 1e-4 with a learnt prior
      (Perez-Ortiz et al.), 0.1 data-free (closer to the 0-1 loss: at 1e-4 a two-class chance
      predictor already scores only 0.075, which makes staying at the prior attractive).
    delta: confidence of the PAC-Bayes bound (and of the held-out bound).
    delta_mc: confidence of the Monte Carlo bound.
    mc_draws: ``N`` fresh weight draws behind the final certificate.
    mc_chunk: examples per draw (drawn uniformly with replacement).
    mc_batch: draws evaluated at once (memory).
    test_draws: draws for the Gibbs test error (each on ``mc_chunk`` test examples).
    seed: seed of the split, the draws and the mini-batch order.
    tried_configurations: how many certificate configurations (settings of this class, prior
      fractions, training recipes of the prior...) were tried on the same bound data before this
      one was kept; each bound pays ``ln`` of it (a union bound over the tries; 1: none).
  """
  prior: PriorKind = PriorKind.LEARNT
  prior_fraction: float = 0.5
  objective: Objective = Objective.QUAD
  granularity: ScaleGranularity = ScaleGranularity.PARAMETER
  posterior_init: PosteriorInit | None = None
  init_scale: float | None = None
  prior_scale_grid: tuple[float, ...] = PRIOR_SCALE_GRID
  epochs: int = 20
  finetune_epochs: int = 5
  batch_size: int = 250
  optimizer: PosteriorOptimizer = PosteriorOptimizer.MOMENTUM
  learning_rate: float = 5e-3
  momentum: float = 0.95
  min_prob: float | None = None
  delta: float = 0.025
  delta_mc: float = 0.01
  mc_draws: int = 10_000
  mc_chunk: int = 64
  mc_batch: int = 8
  test_draws: int = 2_000
  seed: int = 0
  tried_configurations: int = 1

  def __post_init__(self):
    for name, cls in (("prior", PriorKind), ("objective", Objective),
                      ("granularity", ScaleGranularity), ("optimizer", PosteriorOptimizer)):
      object.__setattr__(self, name, _errors.as_enum(name, getattr(self, name), cls))
    if self.posterior_init is not None:
      object.__setattr__(self, "posterior_init",
                         _errors.as_enum("posterior_init", self.posterior_init, PosteriorInit))
    _errors.check_real("prior_fraction", self.prior_fraction, "a number in (0, 1)",
                       lambda v: 0 < v < 1)
    if self.init_scale is not None:
      _errors.check_real("init_scale", self.init_scale, "a positive finite number or None",
                         lambda v: v > 0)
    grid = np.asarray(self.prior_scale_grid, np.float64)
    if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid <= 0):
      _errors.fail("prior_scale_grid", "a non-empty sequence of positive finite stds",
                   repr(self.prior_scale_grid))
    object.__setattr__(self, "prior_scale_grid", tuple(float(v) for v in grid))
    for name in ("epochs", "batch_size", "mc_draws", "mc_chunk", "mc_batch", "test_draws"):
      _errors.check_int(name, getattr(self, name), 1)
    _errors.check_real("learning_rate", self.learning_rate, "a positive finite number",
                       lambda v: v > 0)
    _errors.check_real("momentum", self.momentum, "a number in [0, 1)", lambda v: 0 <= v < 1)
    _errors.check_int("finetune_epochs", self.finetune_epochs, 0)
    if self.min_prob is not None:
      _errors.check_real("min_prob", self.min_prob, "a number in (0, 1) or None",
                         lambda v: 0 < v < 1)
    _errors.check_open_unit_interval("delta", self.delta)
    _errors.check_open_unit_interval("delta_mc", self.delta_mc)
    if self.delta + self.delta_mc >= 1:
      _errors.fail("delta + delta_mc", "a total failure probability below 1",
                   self.delta + self.delta_mc)
    _errors.check_int("seed", self.seed, 0)
    _errors.check_int("tried_configurations", self.tried_configurations, 1)

  @property
  def resolved_init_scale(self) -> float:
    """``init_scale``, or the prior kind's default."""
    if self.init_scale is not None:
      return float(self.init_scale)
    return 0.005 if self.prior is PriorKind.LEARNT else 0.03

  @property
  def resolved_min_prob(self) -> float:
    """``min_prob``, or the prior kind's default."""
    if self.min_prob is not None:
      return float(self.min_prob)
    return 1e-4 if self.prior is PriorKind.LEARNT else 0.1

  @property
  def resolved_posterior_init(self) -> PosteriorInit:
    """The posterior start: ``posterior_init``, or the prior kind's default."""
    if self.posterior_init is not None:
      return self.posterior_init
    return PosteriorInit.PRIOR if self.prior is PriorKind.LEARNT else PosteriorInit.TRAINED


class GaussianPosterior(NamedTuple):
  """The optimised posterior and the selected prior.

  Attributes:
    mean: posterior mean, a pytree like the model's parameters.
    scale: posterior std, a pytree of the same structure (arrays of the parameters' shapes,
      or scalars with ``LAYER`` granularity).
    prior_mean: prior mean, a pytree like ``mean``.
    prior_scale: the selected prior std ``s``.
  """
  mean: Any
  scale: Any
  prior_mean: Any
  prior_scale: float


@dataclasses.dataclass(frozen=True)
class ScaleSummary(_results.ResultMixin):
  """The posterior std of one parameter array.

  Attributes:
    name: the array's path in the parameter tree.
    size: its number of weights.
    quantiles: the 5, 25, 50, 75 and 95 % quantiles of its posterior std.
    mean_shift: root mean square of ``mu - mu_P`` over the array.
  """
  name: str
  size: int
  quantiles: tuple[float, ...]
  mean_shift: float


@dataclasses.dataclass(frozen=True)
class PriorScalePoint(_results.ResultMixin):
  """One prior std of the grid, evaluated at the final posterior.

  Attributes:
    prior_scale: ``s``.
    kl: ``KL(Q || N(mu_P, s^2 I))`` (nats).
    bound: the PAC-Bayes-kl certificate at this ``s`` (same Monte Carlo bound, ``ln G`` paid).
  """
  prior_scale: float
  kl: float
  bound: float


@dataclasses.dataclass(frozen=True)
class PosteriorCertificate(_results.ResultMixin):
  """A PAC-Bayes certificate of an optimised Gaussian posterior (see :func:`certify`).

  Every bound is on the 0-1 test error of the stochastic network ``Q`` and holds with
  probability ``>= 1 - delta - delta_mc`` (the held-out bound, on the prior network, with
  ``>= 1 - delta`` on its own).

  Attributes:
    prior: :class:`PriorKind`.
    objective: the :class:`Objective` minimised.
    granularity: :class:`ScaleGranularity`.
    posterior_init: :class:`PosteriorInit`.
    n: training examples given.
    n_prior: examples that trained the prior (0 when data-free).
    n_bound: examples behind the bound (``n - n_prior``).
    num_params: weights ``d``.
    prior_scale: the selected prior std ``s``.
    grid_size: ``G`` prior stds on the grid.
    tried_configurations: ``T`` certificate configurations tried on the same bound data.
    union_cost_nats: ``ln G + ln T``.
    kl: ``KL(Q || P)`` (nats).
    delta, delta_mc: confidences.
    mc_draws: ``N`` weight draws behind ``mc_error``; ``mc_chunk`` examples each.
    mc_chunk: examples per draw.
    mc_error: Monte Carlo Gibbs 0-1 error on the bound part.
    mc_error_bound: ``kl^{-1}(mc_error, ln(2/delta_mc)/N)``.
    certificate: the PAC-Bayes-kl bound with ``mc_error_bound`` (the headline number).
    classic, quad, lambda_bound: the relaxations on the same event (looser).
    mc_cost: ``certificate`` minus the same bound with ``mc_error`` plugged in.
    union_cost: ``certificate`` minus the same bound without ``ln G``.
    heldout_bound: binomial tail bound of the prior network on the bound part (NaN if none).
    prior_bound_error: the prior network's 0-1 error on the bound part (NaN if none).
    prior_test_error: the prior network's 0-1 test error (NaN without a learnt prior or test
      data).
    trained_train_error, trained_test_error: the user's network (test NaN without test data).
    posterior_mean_test_error: the network at the posterior mean (NaN without test data).
    gibbs_test_error: Monte Carlo 0-1 test error of ``Q`` (NaN without test data).
    history: the objective after each epoch.
    scales: posterior std per parameter array.
    curve: the certificate at every prior std of the grid.
    prior_seconds, optimise_seconds, mc_seconds: wall time of each stage.
  """
  prior: PriorKind
  objective: Objective
  granularity: ScaleGranularity
  posterior_init: PosteriorInit
  n: int
  n_prior: int
  n_bound: int
  num_params: int
  prior_scale: float
  grid_size: int
  tried_configurations: int
  union_cost_nats: float
  kl: float
  delta: float
  delta_mc: float
  mc_draws: int
  mc_chunk: int
  mc_error: float
  mc_error_bound: float
  certificate: float
  classic: float
  quad: float
  lambda_bound: float
  mc_cost: float
  union_cost: float
  heldout_bound: float
  prior_bound_error: float
  prior_test_error: float
  trained_train_error: float
  trained_test_error: float
  posterior_mean_test_error: float
  gibbs_test_error: float
  history: tuple[float, ...]
  scales: tuple[ScaleSummary, ...]
  curve: tuple[PriorScalePoint, ...]
  prior_seconds: float
  optimise_seconds: float
  mc_seconds: float

  def table(self) -> _results.Table:
    """The report: errors, KL, each bound, the Monte Carlo term and what each choice cost.

    Returns:
      A :class:`gbounds.Table` with columns ``(quantity, value, note)``.
    """
    f = self.delta + self.delta_mc
    rows = (
        ("trained network test error", self.trained_test_error, "deterministic, user's weights"),
        ("posterior-mean test error", self.posterior_mean_test_error, "deterministic"),
        ("Gibbs test error", self.gibbs_test_error, f"{self.mc_chunk}-example draws"),
        ("Gibbs error on bound part", self.mc_error, f"{self.mc_draws} draws"),
        ("KL(Q||P) (nats)", self.kl, f"prior std {self.prior_scale:.3g}"),
        ("certificate (PAC-Bayes-kl)", self.certificate, f"probability >= {1 - f:.3g}"),
        ("classic (McAllester)", self.classic, "same event, looser"),
        ("quad", self.quad, "same event, looser"),
        ("lambda", self.lambda_bound, "same event, looser"),
        ("Monte Carlo term", self.mc_error_bound - self.mc_error,
         f"kl^-1 at ln(2/{self.delta_mc:g})/{self.mc_draws}"),
        ("cost of the MC bound", self.mc_cost, "certificate minus MC-free bound"),
        ("cost of the union bounds", self.union_cost,
         f"ln {self.grid_size} (prior grid) + ln {self.tried_configurations} (configurations)"),
        ("held-out bound (prior net)", self.heldout_bound,
         f"binomial tail, {self.n_bound} examples, probability >= {1 - self.delta:.3g}"),
        ("examples: prior / bound", f"{self.n_prior} / {self.n_bound}", str(self.prior)),
    )
    return _results.Table(("quantity", "value", "note"), rows, title=(
        f"PAC-Bayes certificate of an optimised posterior ({self.prior} prior, "
        f"{self.objective} objective, {self.granularity} scales)"))


# ----------------------------------------------------------------------------- pieces


def bounded_cross_entropy(logits: jax.Array, y: jax.Array, min_prob: float) -> jax.Array:
  """Per-example ``min(-ln p_y, ln(1/p_min)) / ln(1/p_min)`` in [0, 1] (Perez-Ortiz et al. 2021,
  sec. 5; Dziugaite & Roy 2017 use the same surrogate idea).

  Args:
    logits: ``(batch, K)``.
    y: int labels ``(batch,)``.
    min_prob: ``p_min`` in (0, 1).

  Returns:
    ``(batch,)`` losses in the dtype of ``logits``.
  """
  logp = jax.nn.log_softmax(logits, axis=-1)
  lp = jnp.take_along_axis(logp, y[:, None].astype(jnp.int32), axis=-1)[:, 0]
  floor = jnp.asarray(math.log(min_prob), logits.dtype)
  return -jnp.maximum(lp, floor) / -floor


def _kl_terms(mean, log_scale, prior_mean, log_prior_scale):
  """``KL(N(mean, exp(log_scale)^2) || N(prior_mean, exp(log_prior_scale)^2 I))``, summed."""
  total = jnp.zeros((), jnp.result_type(log_prior_scale))
  for m, r, p in zip(jax.tree_util.tree_leaves(mean), jax.tree_util.tree_leaves(log_scale),
                     jax.tree_util.tree_leaves(prior_mean)):
    r = jnp.broadcast_to(r, m.shape)
    lp = log_prior_scale.astype(m.dtype)
    t = (jnp.exp(2 * (r - lp)) + (m - p) ** 2 * jnp.exp(-2 * lp) - 1 + 2 * (lp - r))
    total = total + 0.5 * jnp.sum(t).astype(total.dtype)
  return total


def _optimal_log_prior_scale(theta, prior_mean) -> jax.Array:
  """``ln s`` with ``s^2 = (A + B) / d``, the prior std that minimises the KL (in the dtype of
  the weights)."""
  leaves = jax.tree_util.tree_leaves(theta["mean"])
  dtype = jnp.result_type(*leaves)
  a = b = jnp.zeros((), dtype)
  d = 0
  for m, r, p in zip(leaves, jax.tree_util.tree_leaves(theta["log_scale"]),
                     jax.tree_util.tree_leaves(prior_mean)):
    a = a + jnp.sum(jnp.broadcast_to(jnp.exp(2 * r), m.shape)).astype(dtype)
    b = b + jnp.sum((m - p) ** 2).astype(dtype)
    d += m.size
  return 0.5 * jnp.log((a + b) / jnp.asarray(d, dtype))


def _draw(mean, log_scale, key):
  """One reparametrised weight draw ``mean + exp(log_scale) * eps``."""
  leaves, tdef = jax.tree_util.tree_flatten(mean)
  rs = jax.tree_util.tree_leaves(log_scale)
  keys = jax.random.split(key, len(leaves))
  out = [m + jnp.exp(r).astype(m.dtype) * jax.random.normal(k, m.shape, m.dtype)
         for m, r, k in zip(leaves, rs, keys)]
  return jax.tree_util.tree_unflatten(tdef, out)


def _host_stats(mean, scale, prior_mean) -> tuple[float, float, float, int]:
  """``(A, B, L, d)`` of the module docstring, in float64 on the host."""
  a = b = lsum = 0.0
  d = 0
  for m, s, p in zip(jax.tree_util.tree_leaves(mean), jax.tree_util.tree_leaves(scale),
                     jax.tree_util.tree_leaves(prior_mean)):
    m64 = np.asarray(m, np.float64)
    s64 = np.broadcast_to(np.asarray(s, np.float64), m64.shape)
    a += float(np.sum(s64 ** 2))
    b += float(np.sum((m64 - np.asarray(p, np.float64)) ** 2))
    lsum += float(np.sum(np.log(s64 ** 2)))
    d += m64.size
  return a, b, lsum, d


def gaussian_kl_isotropic(stats: tuple[float, float, float, int], prior_scale: float) -> float:
  """``KL(Q || N(mu_P, s^2 I)) = (A/s^2 + B/s^2 - d + d ln s^2 - L) / 2`` from ``(A, B, L, d)``.

  Args:
    stats: ``(A, B, L, d)``: the sum of posterior variances, ``||mu - mu_P||^2``, the sum of
      log posterior variances, and the number of weights.
    prior_scale: ``s > 0``.

  Returns:
    The KL in nats (float64 arithmetic).
  """
  a, b, lsum, d = stats
  s2 = float(prior_scale) ** 2
  return 0.5 * ((a + b) / s2 - d + d * math.log(s2) - lsum)


def _kl_bound(e: float, kl: float, n: int, delta: float, log_g: float) -> float:
  c = (kl + math.log(2 * math.sqrt(n) / delta) + log_g) / n
  return float(_kl_inverse_upper(np.float64(e), np.float64(c)))


# ----------------------------------------------------------------------------- programs


@functools.lru_cache(maxsize=32)
def _epoch_fn(apply_fn: Callable, objective: Objective, batch: int, min_prob: float,
              optimizer: PosteriorOptimizer, learning_rate: float, momentum: float,
              learn_prior_scale: bool):
  """The compiled epoch ``(theta, opt_state, log_prior_scale, prior_mean, x, y, key, n, delta,
  log_g) -> (theta, opt_state, mean objective)``: one pass over a random permutation, one weight
  draw a step. ``theta`` holds ``mean`` and ``log_scale``. When ``learn_prior_scale``, the
  prior std is set at every step to its KL-minimising value ``s^2 = (A + B) / d`` (module
  docstring; not differentiated through, its gradient being zero there) and the argument
  ``log_prior_scale`` is ignored."""
  if optimizer is PosteriorOptimizer.ADAM:
    opt = optax.adam(learning_rate)
  else:
    opt = optax.sgd(learning_rate, momentum=momentum)

  def loss(theta, lps, prior_mean, xb, yb, key, n, delta, log_g):
    if learn_prior_scale:
      lps = jax.lax.stop_gradient(_optimal_log_prior_scale(theta, prior_mean))
    w = _draw(theta["mean"], theta["log_scale"], key)
    logits = apply_fn(w, xb)
    risk = jnp.mean(bounded_cross_entropy(logits, yb, min_prob))
    kl = _kl_terms(theta["mean"], theta["log_scale"], prior_mean, lps)
    return objective_value(objective, risk, kl.astype(risk.dtype), n, delta, log_g)

  grad = jax.value_and_grad(loss)

  @jax.jit
  def epoch(theta, opt_state, lps, prior_mean, x, y, key, n, delta, log_g):
    kp, kd = jax.random.split(key)
    steps = x.shape[0] // batch
    order = jax.random.permutation(kp, x.shape[0])[: steps * batch].reshape(steps, batch)
    keys = jax.random.split(kd, steps)

    def step(carry, inp):
      th, st = carry
      idx, k = inp
      val, g = grad(th, lps, prior_mean, x[idx], y[idx], k, n, delta, log_g)
      # optax mixes int32 step counts with Python floats: standard promotion, scoped to it.
      with jax.numpy_dtype_promotion("standard"):
        upd, st = opt.update(g, st, th)
        th = optax.apply_updates(th, upd)
      return (th, st), val

    (theta, opt_state), vals = jax.lax.scan(step, (theta, opt_state), (order, keys))
    return theta, opt_state, jnp.mean(vals)

  return opt, epoch


@functools.lru_cache(maxsize=32)
def _units_fn(apply_fn: Callable, chunk: int, batch: int):
  """The compiled ``(mean, log_scale, x, y, keys (m,)) -> (m,)``: each key draws fresh weights
  and ``chunk`` example indices uniformly with replacement; returns the draw's 0-1 error."""

  def one(mean, log_scale, x, y, key):
    ki, kw = jax.random.split(key)
    idx = jax.random.randint(ki, (chunk,), 0, x.shape[0])
    logits = apply_fn(_draw(mean, log_scale, kw), x[idx])
    wrong = ((jnp.argmax(logits, axis=-1).astype(y.dtype) != y[idx])
             | ~jnp.all(jnp.isfinite(logits), axis=-1))
    return jnp.mean(wrong.astype(jnp.float32))

  @jax.jit
  def units(mean, log_scale, x, y, keys):
    return jax.lax.map(lambda k: one(mean, log_scale, x, y, k), keys, batch_size=batch)

  return units


def _mc_units(fn, mean, log_scale, x, y, key, m, batch, callback) -> np.ndarray:
  size = max(batch * 16, 1)
  keys = jax.random.split(key, m)
  tick = None if callback is None else (lambda done, _: callback(min(done, m), m))
  out = _batching.chunked_map(lambda ks: np.asarray(fn(mean, log_scale, x, y, ks)), keys,
                              chunk_size=min(size, m), callback=tick,
                              concat=lambda outs: np.concatenate(outs))
  return np.asarray(out[:m], np.float64)


def _delta_ticks(tick: Callable[[int], None]) -> Callable[[int, int], None]:
  """A ``(done, total)`` callback that forwards the increments to ``tick``."""
  last = [0]

  def cb(done: int, _total: int) -> None:
    tick(done - last[0])
    last[0] = done
  return cb


def _error(apply_fn, params, x, y, batch: int = 1000) -> float:
  wrong = 0
  for s in range(0, len(y), batch):
    logits = np.asarray(apply_fn(params, jnp.asarray(x[s:s + batch])))
    wrong += int(np.sum(np.argmax(logits, axis=-1) != np.asarray(y[s:s + batch])))
  return wrong / len(y)


def _leaf_names(tree) -> list[str]:
  paths = jax.tree_util.tree_flatten_with_path(tree)[0]
  return ["/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))
                   for k in path) for path, _ in paths]


# ----------------------------------------------------------------------------- entry point


def certify(model: Any, /, params: Any, init_params: Any, x_train: jax.typing.ArrayLike,
            y_train: jax.typing.ArrayLike, *, train_config: gbounds.train.TrainConfig | None = None,
            config: CertifyConfig = CertifyConfig(), x_test: jax.typing.ArrayLike | None = None,
            y_test: jax.typing.ArrayLike | None = None,
            callback: _progress.ProgressCallback | None = None,
            return_posterior: bool = False
            ) -> PosteriorCertificate | tuple[PosteriorCertificate, GaussianPosterior]:
  """A PAC-Bayes certificate of an optimised Gaussian posterior (module docstring).

  Args:
    model: the network, in any form :func:`gbounds.models.as_model_fn` takes (a Linen module
      with ``params``, an NNX module, a :class:`gbounds.models.ModelFn`) or a plain
      ``apply_fn(params, x) -> (batch, K)`` logits callable. Positional only.
    params: the user's trained weights, or None where ``model`` carries them.
    init_params: the initialisation (data-independent): the data-free prior mean, and the
      start of the learnt prior's training.
    x_train, y_train: the ``n`` training examples (int labels).
    train_config: the user's training recipe; required for a ``LEARNT`` prior.
    config: :class:`CertifyConfig`.
    x_test, y_test: optional test set (test errors of the network and of ``Q``).
    callback: ``callback(done, total)`` over the stages' units of work.
    return_posterior: also return the :class:`GaussianPosterior`.

  Returns:
    :class:`PosteriorCertificate`, or ``(certificate, posterior)``.

  Raises:
    gbounds.InvalidInputError: naming the argument, for bad data, weights, labels or settings
      (e.g. a learnt prior without ``train_config``, or a split that leaves a part empty).
  """
  if not isinstance(config, CertifyConfig):
    _errors.fail("config", "a gbounds.bounds.CertifyConfig", type(config).__name__)
  apply_fn, params, x_train, y_train, x_test, y_test, _ = _pac_bayes._checked_inputs(
      model, params, init_params, x_train, y_train, x_test, y_test)
  if config.prior is PriorKind.LEARNT and not isinstance(train_config, gbounds.train.TrainConfig):
    _errors.fail("train_config", "the gbounds.train.TrainConfig that trains the learnt prior",
                 type(train_config).__name__)
  if callback is not None and not callable(callback):
    _errors.fail("callback", "a callable callback(done, total) or None", type(callback).__name__)

  y_train = y_train.astype(np.int32)
  n = len(y_train)
  key = jax.random.key(config.seed)
  log_g = math.log(len(config.prior_scale_grid)) + math.log(config.tried_configurations)
  total = (config.epochs + (config.finetune_epochs if len(config.prior_scale_grid) > 1 else 0)
           + config.mc_draws + (config.test_draws if x_test is not None else 0))
  progress = [0]

  def tick(k):
    progress[0] += k
    _progress.notify(callback, progress[0], total)

  planned = n - (int(round(config.prior_fraction * n)) if config.prior is PriorKind.LEARNT else 0)
  if planned < 8:  # Maurer's ln(2 sqrt(n) / delta) form of the kl bound needs n >= 8
    _errors.fail("x_train", "at least 8 examples behind the bound (Maurer 2004's constant)",
                 f"{planned} (prior {config.prior}, prior_fraction {config.prior_fraction})")
  # 1. Prior.
  t0 = time.perf_counter()
  prior_bound_error = held = math.nan
  if config.prior is PriorKind.LEARNT:
    perm = np.random.default_rng(config.seed).permutation(n)
    n_prior = int(round(config.prior_fraction * n))
    if n_prior < 1 or n_prior >= n:
      _errors.fail("config.prior_fraction", f"a split of the {n} examples leaving both parts "
                   "non-empty", config.prior_fraction)
    prior_idx, bound_idx = np.sort(perm[:n_prior]), np.sort(perm[n_prior:])
    assert train_config is not None
    prior_mean = gbounds.train.train(apply_fn, init_params, x_train[prior_idx],
                                     y_train[prior_idx], train_config).params
    x_b, y_b = x_train[bound_idx], y_train[bound_idx]
    prior_bound_error = _error(apply_fn, prior_mean, x_b, y_b)
    held = heldout_bound(int(round(prior_bound_error * len(y_b))), len(y_b), config.delta)
  else:
    n_prior = 0
    prior_mean = init_params
    x_b, y_b = x_train, y_train
  n_b = len(y_b)
  prior_seconds = time.perf_counter() - t0

  # 2. Posterior optimisation.
  t0 = time.perf_counter()
  start = prior_mean if config.resolved_posterior_init is PosteriorInit.PRIOR else params
  dtype = jnp.result_type(*jax.tree_util.tree_leaves(start))
  log_s0 = math.log(config.resolved_init_scale)
  if config.granularity is ScaleGranularity.PARAMETER:
    log_scale = jax.tree_util.tree_map(lambda w: jnp.full(jnp.shape(w), log_s0, w.dtype), start)
  else:
    log_scale = jax.tree_util.tree_map(lambda w: jnp.asarray(log_s0, w.dtype), start)
  grid = np.asarray(config.prior_scale_grid, np.float64)
  learn = len(grid) > 1
  lps = jnp.asarray(math.log(grid[0]) if not learn else log_s0, dtype)
  theta = {"mean": jax.tree_util.tree_map(jnp.asarray, start), "log_scale": log_scale}
  batch = min(config.batch_size, n_b)
  xj, yj = jnp.asarray(x_b), jnp.asarray(y_b)
  pm = jax.tree_util.tree_map(jnp.asarray, prior_mean)
  statics = (apply_fn, config.objective, batch, config.resolved_min_prob, config.optimizer,
             float(config.learning_rate), float(config.momentum))
  history = []
  ops = (jnp.asarray(config.delta, dtype), jnp.asarray(log_g, dtype))

  def run(theta, lps, learn_prior_scale, epochs, key_offset):
    """``epochs`` passes from a fresh optimiser state; the objective of each in ``history``."""
    opt, epoch = _epoch_fn(*statics, learn_prior_scale)
    opt_state = opt.init(theta)
    for e in range(epochs):
      theta, opt_state, val = epoch(theta, opt_state, lps, pm, xj, yj,
                                    jax.random.fold_in(key, key_offset + e), n_b, *ops)
      history.append(float(val))
      tick(1)
    return theta

  theta = run(theta, lps, learn, config.epochs, 1000)
  if learn:
    # Round ln s to the grid and scale every posterior std by the same ratio (which leaves
    # the variance terms of the KL unchanged), then let the posterior adapt to the rounded prior.
    s_learnt = float(jnp.exp(_optimal_log_prior_scale(theta, pm)))
    j0 = int(np.argmin(np.abs(np.log(grid) - math.log(s_learnt))))
    lps = jnp.asarray(math.log(grid[j0]), dtype)
    shift = math.log(grid[j0] / s_learnt)
    theta["log_scale"] = jax.tree_util.tree_map(lambda r: r + jnp.asarray(shift, r.dtype),
                                                theta["log_scale"])
    theta = run(theta, lps, False, config.finetune_epochs, 5000)
  mean, log_scale = theta["mean"], theta["log_scale"]
  scale = jax.tree_util.tree_map(jnp.exp, log_scale)
  optimise_seconds = time.perf_counter() - t0

  # 3. Certificate: prior std on the grid (min KL), Monte Carlo bound, the kl bound.
  t0 = time.perf_counter()
  stats = _host_stats(mean, scale, prior_mean)
  kls = np.array([gaussian_kl_isotropic(stats, s) for s in grid])
  j = int(np.argmin(kls))
  prior_scale, kl = float(grid[j]), float(max(kls[j], 0.0))
  units = _units_fn(apply_fn, int(config.mc_chunk), int(config.mc_batch))
  errs = _mc_units(units, mean, log_scale, xj, yj, jax.random.fold_in(key, 2), config.mc_draws,
                   config.mc_batch, _delta_ticks(tick))
  mc_error = float(np.mean(errs))
  e_ub = mc_term(mc_error, config.mc_draws, config.delta_mc)
  cert = _kl_bound(e_ub, kl, n_b, config.delta, log_g)
  c = float(complexity(np.float64(kl), n_b, config.delta, log_g))
  classic = e_ub + math.sqrt(c / 2)
  quad = (math.sqrt(e_ub + c / 2) + math.sqrt(c / 2)) ** 2
  lam = float(optimal_lambda(np.float64(e_ub), np.float64(c)))
  lam_b = e_ub / (1 - lam / 2) + c / (lam * (1 - lam / 2))
  curve = tuple(PriorScalePoint(float(s), float(max(k, 0.0)),
                                _kl_bound(e_ub, float(max(k, 0.0)), n_b, config.delta, log_g))
                for s, k in zip(grid, kls))
  gibbs_test = post_test = trained_test = prior_test = math.nan
  if x_test is not None:
    assert y_test is not None
    y_test = np.asarray(y_test).astype(np.int32)
    terrs = _mc_units(units, mean, log_scale, jnp.asarray(x_test), jnp.asarray(y_test),
                      jax.random.fold_in(key, 3), config.test_draws, config.mc_batch,
                      _delta_ticks(tick))
    gibbs_test = float(np.mean(terrs))
    post_test = _error(apply_fn, mean, x_test, y_test)
    trained_test = _error(apply_fn, params, x_test, y_test)
    if config.prior is PriorKind.LEARNT:
      prior_test = _error(apply_fn, prior_mean, x_test, y_test)
  mc_seconds = time.perf_counter() - t0

  names = _leaf_names(mean)
  scales = []
  for name, m, s, p in zip(names, jax.tree_util.tree_leaves(mean),
                           jax.tree_util.tree_leaves(scale), jax.tree_util.tree_leaves(prior_mean)):
    s64 = np.broadcast_to(np.asarray(s, np.float64), np.shape(m)).ravel()
    shift = float(np.sqrt(np.mean((np.asarray(m, np.float64) - np.asarray(p, np.float64)) ** 2)))
    scales.append(ScaleSummary(name, int(s64.size),
                               tuple(float(q) for q in np.quantile(s64, [.05, .25, .5, .75, .95])),
                               shift))
  result = PosteriorCertificate(
      prior=config.prior, objective=config.objective, granularity=config.granularity,
      posterior_init=config.resolved_posterior_init, n=n, n_prior=n_prior, n_bound=n_b,
      num_params=stats[3], prior_scale=prior_scale, grid_size=len(grid),
      tried_configurations=int(config.tried_configurations), union_cost_nats=log_g,
      kl=kl, delta=float(config.delta), delta_mc=float(config.delta_mc),
      mc_draws=int(config.mc_draws), mc_chunk=int(config.mc_chunk), mc_error=mc_error,
      mc_error_bound=e_ub, certificate=cert, classic=classic, quad=quad, lambda_bound=lam_b,
      mc_cost=cert - _kl_bound(mc_error, kl, n_b, config.delta, log_g),
      union_cost=cert - _kl_bound(e_ub, kl, n_b, config.delta, 0.0),
      heldout_bound=held, prior_bound_error=prior_bound_error, prior_test_error=prior_test,
      trained_train_error=_error(apply_fn, params, x_train, y_train),
      trained_test_error=trained_test, posterior_mean_test_error=post_test,
      gibbs_test_error=gibbs_test, history=tuple(history), scales=tuple(scales), curve=curve,
      prior_seconds=prior_seconds, optimise_seconds=optimise_seconds, mc_seconds=mc_seconds)
  if return_posterior:
    return result, GaussianPosterior(mean, scale, prior_mean, prior_scale)
  return result


__all__ = ["PRIOR_SCALE_GRID", "CertifyConfig", "GaussianPosterior", "PosteriorCertificate",
           "PosteriorInit", "PosteriorOptimizer", "PriorKind", "PriorScalePoint", "ScaleGranularity", "ScaleSummary",
           "bounded_cross_entropy", "certify", "gaussian_kl_isotropic"]
