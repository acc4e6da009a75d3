"""Information in the weights: the Gaussian information Lagrangian with the Fisher as curvature.

Achille, Paolini & Soatto, "Where is the information in a deep network?" (arXiv 1905.12213),
define the information Lagrangian

.. math:: C_\\beta(Q) = E_{w \\sim Q}[L_D(w)] + \\beta\\,KL(Q(w|D)\\,\\|\\,P(w))

and call the KL term at the minimiser the information in the weights. With a Gaussian prior
:math:`P = N(0, \\lambda^2 I)`, a Gaussian posterior :math:`Q = N(w^*, \\Sigma)` and the loss
expanded to second order around the trained weights :math:`w^*` with curvature :math:`H`, the
minimiser is :math:`\\Sigma^* = \\beta (H + \\tfrac{\\beta}{\\lambda^2} I)^{-1}` and

.. math::

   KL^* = \\tfrac12 \\log|H + \\tfrac{\\beta}{\\lambda^2} I| + \\tfrac{k}{2}\\log\\tfrac{\\lambda^2}{\\beta}
          - \\tfrac{k}{2} + \\tfrac{1}{2\\lambda^2}\\big[\\|w^*\\|^2
          + \\beta\\,\\mathrm{tr}(H + \\tfrac{\\beta}{\\lambda^2} I)^{-1}\\big]

(``k`` parameters; the paper's eq. 8 has slips in the constants, this is the form re-derived in
``notes/memorization_diagnostics.md`` section 3). In the eigenvalues :math:`h_i` of :math:`H`,
with :math:`u_i = \\lambda^2 h_i / \\beta`,

.. math:: KL^* = \\frac{\\|w^*\\|^2}{2\\lambda^2} + \\sum_i \\Big[\\tfrac12\\log(1 + u_i)
          - \\tfrac12\\,\\frac{u_i}{1 + u_i}\\Big]  \\quad\\text{(nats)},

which is what every form here evaluates. Each summand is increasing in :math:`u_i`, so the
information is non-increasing in :math:`\\beta` and non-decreasing in the curvature.

Curvature: the Fisher information of the model's softmax likelihood stands in for the Hessian.
Conventions (both matter for the numbers):

* **Loss scaling.** :class:`LossScaling.SUM` (default): :math:`L_D(w) = \\sum_i -\\log p_w(y_i|x_i)`,
  so :math:`H = n F`, with :math:`F = \\tfrac1n \\sum_i J_i^\\top H_i J_i` the per-example mean
  Fisher; with ``beta = 1`` the optimal :math:`Q` is then the Laplace approximation of the Bayesian
  posterior. :class:`LossScaling.MEAN`: :math:`L_D` is the mean, :math:`H = F` (equivalent to
  ``beta * n`` under SUM).
* **Parameterisation.** The Fisher of the raw Flax parameters (kernels and biases as stored), logits
  ``apply_fn(params, x)`` and :math:`p = \\mathrm{softmax}` of them; :math:`J_i = \\partial f(x_i)/\\partial w`
  and :math:`H_i` is the ``k x k`` output Fisher of example ``i`` (:class:`FisherType`).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from jax.flatten_util import ravel_pytree

from gbounds import _errors

ApplyFn = Callable[[Any, jax.Array], jax.Array]


class FisherType(enum.IntEnum):
  """Which Fisher matrix: how the output Fisher ``H_i`` of each example is formed.

  Attributes:
    TRUE: exact expectation over labels drawn from the model,
      ``H_i = diag(p_i) - p_i p_i^T`` (no sampling noise; costs ``k`` backward passes per example).
    SAMPLED: Monte-Carlo true Fisher, ``H_i = 1/S sum_s (p_i - e_{y_s})(p_i - e_{y_s})^T`` with
      ``y_s ~ Cat(p_i)`` (``num_samples`` draws; needs ``key``). Unbiased for ``TRUE``; cheaper for
      many classes.
    EMPIRICAL: the empirical Fisher with the given labels, ``H_i = (p_i - e_{y_i})(p_i - e_{y_i})^T``.
      Not a curvature in general; near zero on examples that are fitted confidently.
  """
  TRUE = 1
  SAMPLED = 2
  EMPIRICAL = 3


class FisherForm(enum.IntEnum):
  """How the ``d x d`` Fisher enters the log-determinant.

  Attributes:
    EXACT: the full matrix and its eigenvalues; ``O(d^2)`` memory, ``O(d^3)`` time: small models
      only (a few thousand parameters).
    DIAGONAL: only the diagonal ``F_jj``; ``O(d)``; exact when the Fisher is diagonal.
    KFAC: per ``flax.linen.Dense`` layer, ``F ~ A (x) G`` with ``A = E[a a^T]`` over the layer's inputs
      (with a constant 1 appended for the bias) and ``G = E[delta H delta^T]`` over the output
      gradients (Martens & Grosse, 2015); ``log det(I + c A (x) G) = sum_ij log(1 + c a_i g_j)``.
      Exact for a single dense layer whose output Fisher is the same for every example. Parameters
      outside Dense layers fall back to the diagonal form.
  """
  EXACT = 1
  DIAGONAL = 2
  KFAC = 3


class LossScaling(enum.IntEnum):
  """Whether the loss in the Lagrangian is the sum (``H = n F``) or the mean (``H = F``)."""
  SUM = 1
  MEAN = 2


class WeightInformation(NamedTuple):
  """Information in the weights (nats) and its parts.

  Attributes:
    total: :math:`KL^*` in nats.
    per_layer: dict from layer name (``"/"``-joined parameter path without the leaf name) to that
      layer's information in nats. For ``DIAGONAL`` and ``KFAC`` these sum to ``total``; for
      ``EXACT`` each is the layer's exact diagonal block alone (they do not sum to ``total`` when
      layers are coupled).
    log_det: :math:`\\sum_i \\tfrac12 \\log(1 + u_i)` (nats).
    trace_term: :math:`-\\sum_i \\tfrac12 u_i/(1+u_i)` (nats, <= 0).
    norm_term: :math:`\\|w^*\\|^2/(2\\lambda^2)` (nats).
    fisher_trace: :math:`\\mathrm{tr} H` (the cheap proxy; same scaling as ``H``).
    num_params: ``k``.
  """
  total: jax.Array
  per_layer: dict
  log_det: jax.Array
  trace_term: jax.Array
  norm_term: jax.Array
  fisher_trace: jax.Array
  num_params: int


# ----------------------------------------------------------------------------- closed form


def information_from_spectrum(eigenvalues: jax.typing.ArrayLike, sq_norm: jax.typing.ArrayLike, *,
                              beta: float, prior_scale: float) -> jax.Array:
  """Closed-form :math:`KL^*` from the curvature eigenvalues (jit- and vmap-safe).

  .. math:: KL^* = \\frac{\\|w^*\\|^2}{2\\lambda^2} + \\sum_i \\Big[\\tfrac12\\log(1 + u_i)
            - \\tfrac12 \\frac{u_i}{1+u_i}\\Big], \\quad u_i = \\lambda^2 h_i / \\beta

  (Achille, Paolini & Soatto, 2019, Prop. 3.1 / eq. 8, corrected). Negative round-off
  eigenvalues are clipped at 0.

  Args:
    eigenvalues: eigenvalues :math:`h_i` of the curvature ``H`` (any shape; summed over).
    sq_norm: :math:`\\|w^*\\|^2`.
    beta: Lagrange multiplier :math:`\\beta > 0`.
    prior_scale: prior standard deviation :math:`\\lambda > 0`.

  Returns:
    :math:`KL^*` in nats.
  """
  h = jnp.maximum(jnp.asarray(eigenvalues), 0)
  u = (prior_scale ** 2 / beta) * h
  return (jnp.asarray(sq_norm) / (2 * prior_scale ** 2)
          + jnp.sum(0.5 * jnp.log1p(u) - 0.5 * u / (1 + u)))


@jax.jit
def _terms(u):
  return jnp.sum(0.5 * jnp.log1p(u)), jnp.sum(-0.5 * u / (1 + u))


@jax.jit
def _matrix_terms(h, c):
  """``_terms`` of ``c`` times the (clipped) eigenvalues of a symmetric matrix."""
  return _terms(c * jnp.maximum(jnp.linalg.eigvalsh(0.5 * (h + h.T)), 0))


@jax.jit
def _kron_terms(a, g, c):
  """``_terms`` of ``c a_p g_q`` over the eigenvalues of the K-FAC factors."""
  ea = jnp.maximum(jnp.linalg.eigvalsh(a), 0)
  eg = jnp.maximum(jnp.linalg.eigvalsh(g), 0)
  return _terms(c * jnp.outer(ea, eg))


# ----------------------------------------------------------------------------- output Fisher factors


def _output_factors(logits, fisher: FisherType, y, key, num_samples):
  """Rows ``U_i`` (``(n, m, k)``) with ``U_i^T U_i = H_i``."""
  p = jax.nn.softmax(logits, axis=-1)
  k = logits.shape[-1]
  eye = jnp.eye(k, dtype=logits.dtype)
  if fisher == FisherType.TRUE:  # sum_c p_c (e_c - p)(e_c - p)^T = diag(p) - p p^T
    return jnp.sqrt(p)[:, :, None] * (eye[None] - p[:, None, :])
  if fisher == FisherType.EMPIRICAL:
    return (p - jax.nn.one_hot(y, k, dtype=logits.dtype))[:, None, :]
  ys = jax.random.categorical(key, logits, axis=-1, shape=(num_samples, logits.shape[0]))  # (S, n)
  rows = p[:, None, :] - jax.nn.one_hot(ys.T, k, dtype=logits.dtype)  # (n, S, k)
  return rows / jnp.sqrt(jnp.asarray(num_samples, logits.dtype))


def _check(apply_fn, params, x, y, fisher, key, num_samples, beta=None, prior_scale=None):
  fisher = _errors.as_enum("fisher", fisher, FisherType)
  _errors.check_nonempty("x", x)
  _errors.check_finite("x", x)
  if beta is not None:
    _errors.check_positive("beta", beta)
  if prior_scale is not None:
    _errors.check_positive("prior_scale", prior_scale)
  if fisher == FisherType.EMPIRICAL:
    if y is None:
      _errors.fail("y", "integer labels for the empirical Fisher", None)
    y = np.asarray(y)
    _errors.check_rank("y", y, 1)
    _errors.check_same_leading(("x", "y"), x, y)
  if fisher == FisherType.SAMPLED:
    if key is None:
      _errors.fail("key", "a PRNG key for the sampled Fisher", None)
    if int(num_samples) != num_samples or num_samples < 1:
      _errors.fail("num_samples", "a positive integer", num_samples)
  return fisher


def _chunks(n, chunk_size):
  if chunk_size is None or chunk_size >= n:
    return [(0, n)]
  if chunk_size < 1:
    _errors.fail("chunk_size", "a positive integer or None", chunk_size)
  return [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]


@functools.lru_cache(maxsize=64)
def _accumulate_chunk_fn(apply_fn, fisher: FisherType, num_samples: int, kind: str):
  """A jitted per-chunk accumulator, cached per model function so repeated calls do not
  recompile."""
  @jax.jit
  def chunk(params, xc, yc, kc):
    flat, unravel = ravel_pytree(params)

    def single(w, xi):
      return apply_fn(unravel(w), xi[None])[0]
    logits = apply_fn(params, xc)
    u = _output_factors(logits, fisher, yc, kc, num_samples)  # (c, m, k)
    jac = jax.vmap(jax.jacrev(single), in_axes=(None, 0))(flat, xc)  # (c, k, d)
    v = jnp.einsum("cmk,ckd->cmd", u, jac).reshape(-1, flat.shape[0])
    return v.T @ v if kind == "full" else jnp.sum(v * v, axis=0)
  return chunk


def _accumulate(apply_fn, params, x, y, fisher, key, num_samples, chunk_size, kind):
  """Sum over examples of ``V_i^T V_i`` (``kind="full"``) or of ``V_i^2`` (``"diag"``), flat."""
  _, unravel = ravel_pytree(params)
  x = jnp.asarray(x)
  yy = jnp.zeros(x.shape[0], jnp.int32) if y is None else jnp.asarray(y)
  if key is None:
    key = jax.random.key(0)
  chunk = _accumulate_chunk_fn(apply_fn, fisher, int(num_samples), kind)
  total = 0.0
  for j, (s, e) in enumerate(_chunks(x.shape[0], chunk_size)):
    total = total + chunk(params, x[s:e], yy[s:e], jax.random.fold_in(key, j))
  return total, None, unravel


def _scale(n, scaling: LossScaling):
  return 1.0 if scaling == LossScaling.SUM else 1.0 / n


def fisher_matrix(apply_fn: ApplyFn, params: Any, x: jax.typing.ArrayLike,
                  y: jax.typing.ArrayLike | None = None, *,
                  fisher: FisherType | str = FisherType.TRUE,
                  scaling: LossScaling | str = LossScaling.SUM,
                  key: jax.Array | None = None, num_samples: int = 1,
                  chunk_size: int | None = None) -> jax.Array:
  """The full ``d x d`` Fisher curvature :math:`H` in ``ravel_pytree(params)`` order.

  .. math:: H = s \\sum_i J_i^\\top H_i J_i, \\qquad s = 1 \\text{ (SUM) or } 1/n \\text{ (MEAN)}

  with :math:`H_i` the output Fisher of :class:`FisherType`. ``O(d^2)`` memory.
  """
  fisher = _check(apply_fn, params, x, y, fisher, key, num_samples)
  scaling = _errors.as_enum("scaling", scaling, LossScaling)
  total, _, _ = _accumulate(apply_fn, params, x, y, fisher, key, num_samples, chunk_size, "full")
  return total * _scale(np.shape(x)[0], scaling)


def fisher_diagonal(apply_fn: ApplyFn, params: Any, x: jax.typing.ArrayLike,
                    y: jax.typing.ArrayLike | None = None, *,
                    fisher: FisherType | str = FisherType.TRUE,
                    scaling: LossScaling | str = LossScaling.SUM,
                    key: jax.Array | None = None, num_samples: int = 1,
                    chunk_size: int | None = None) -> Any:
  """Diagonal of the Fisher curvature, :math:`H_{jj} = s \\sum_i (J_i^\\top H_i J_i)_{jj}`, as a
  pytree shaped like ``params`` (chunked over examples: memory ``O(chunk_size k d)``)."""
  fisher = _check(apply_fn, params, x, y, fisher, key, num_samples)
  scaling = _errors.as_enum("scaling", scaling, LossScaling)
  total, _, unravel = _accumulate(apply_fn, params, x, y, fisher, key, num_samples, chunk_size,
                                  "diag")
  return unravel(total * _scale(np.shape(x)[0], scaling))


def fisher_trace(apply_fn: ApplyFn, params: Any, x: jax.typing.ArrayLike,
                 y: jax.typing.ArrayLike | None = None, **kwargs) -> jax.Array:
  """:math:`\\mathrm{tr}\\,H`, the cheap proxy for the information in the weights (same arguments
  as :func:`fisher_diagonal`)."""
  diag = fisher_diagonal(apply_fn, params, x, y, **kwargs)
  return sum(jnp.sum(leaf) for leaf in jax.tree_util.tree_leaves(diag))


# ----------------------------------------------------------------------------- K-FAC


def _dense_forward(apply_fn, params, x, perturb):
  """Runs ``apply_fn`` recording every 2-D ``nn.Dense`` input and adding ``perturb[path]`` to its
  output; returns ``(logits, {path: input})``."""
  inputs = {}

  def interceptor(next_fun, args, kwargs, context):
    if not (isinstance(context.module, nn.Dense) and context.method_name == "__call__"):
      return next_fun(*args, **kwargs)
    path = tuple(context.module.path)
    out = next_fun(*args, **kwargs)
    if out.ndim != 2:
      _errors.fail("apply_fn", "Dense layers applied to (batch, features) inputs for K-FAC",
                   f"a Dense output of shape {out.shape} at {'/'.join(path)}")
    inputs[path] = args[0]
    if perturb is not None:
      out = out + perturb[path]
    return out

  with nn.intercept_methods(interceptor):
    logits = apply_fn(params, x)
  return logits, inputs


def kfac_factors(apply_fn: ApplyFn, params: Any, x: jax.typing.ArrayLike,
                 y: jax.typing.ArrayLike | None = None, *,
                 fisher: FisherType | str = FisherType.TRUE,
                 scaling: LossScaling | str = LossScaling.SUM,
                 key: jax.Array | None = None, num_samples: int = 1,
                 chunk_size: int | None = None) -> dict:
  """K-FAC factors of every ``flax.linen.Dense`` layer called by ``apply_fn``.

  For a layer with input :math:`a_i` and output :math:`z_i`, with :math:`\\tilde a = [a; 1]` and
  :math:`\\delta_{im} = (\\partial f(x_i)/\\partial z_i)^\\top u_{im}` (rows of the output-Fisher
  factor, :math:`\\sum_m u_{im} u_{im}^\\top = H_i`),

  .. math:: A = \\tfrac1n \\sum_i \\tilde a_i \\tilde a_i^\\top, \\qquad
            G = s\\,n \\cdot \\tfrac1n \\sum_{i,m} \\delta_{im}\\delta_{im}^\\top

  so that the layer's block of :math:`H` (kernel rows then the bias row, row-major) is
  approximately :math:`A \\otimes G` (Martens & Grosse, 2015, eq. 1-2).

  Returns:
    ``{layer_path: (A, G)}`` with ``layer_path`` a tuple of module names (``("dense0",)``).
  """
  fisher = _check(apply_fn, params, x, y, fisher, key, num_samples)
  scaling = _errors.as_enum("scaling", scaling, LossScaling)
  x = jnp.asarray(x)
  n = x.shape[0]
  yy = jnp.zeros(n, jnp.int32) if y is None else jnp.asarray(y)
  key = jax.random.key(0) if key is None else key

  chunk = _kfac_chunk_fn(apply_fn, fisher, int(num_samples))

  acc = None
  for j, (s, e) in enumerate(_chunks(n, chunk_size)):
    part = chunk(params, x[s:e], yy[s:e], jax.random.fold_in(key, j))
    acc = part if acc is None else jax.tree_util.tree_map(jnp.add, acc, part)
  if not acc:
    _errors.fail("apply_fn", "a model built from flax.linen.Dense layers for K-FAC", "no Dense calls")
  s = _scale(n, scaling)
  return {p: (a / n, g * s) for p, (a, g) in acc.items()}


@functools.lru_cache(maxsize=64)
def _kfac_chunk_fn(apply_fn, fisher: FisherType, num_samples: int):
  @jax.jit
  def chunk(params, xc, yc, kc):
    out_shapes = jax.eval_shape(lambda: _dense_out_shapes(apply_fn, params, xc))
    perturb = {p: jnp.zeros(s.shape, s.dtype) for p, s in out_shapes.items()}
    fn = lambda pt: _dense_forward(apply_fn, params, xc, pt)  # noqa: E731
    logits, vjp, inputs = jax.vjp(fn, perturb, has_aux=True)
    u = _output_factors(logits, fisher, yc, kc, num_samples)  # (c, m, k)
    deltas = jax.vmap(lambda um: vjp(um)[0], in_axes=1)(u)  # {path: (m, c, out)}
    res = {}
    for path, a in inputs.items():
      a1 = jnp.concatenate([a, jnp.ones((a.shape[0], 1), a.dtype)], axis=1)
      dl = deltas[path].reshape(-1, deltas[path].shape[-1])
      res[path] = (a1.T @ a1, dl.T @ dl)
    return res
  return chunk


def _dense_out_shapes(apply_fn, params, x):
  shapes = {}

  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if isinstance(context.module, nn.Dense) and context.method_name == "__call__":
      shapes[tuple(context.module.path)] = out
    return out

  with nn.intercept_methods(interceptor):
    apply_fn(params, x)
  return shapes


# ----------------------------------------------------------------------------- the estimator


def _layer_name(path) -> str:
  keys = [getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))) for k in path]
  return "/".join(str(k) for k in keys[:-1]) or str(keys[-1])


def _get(tree, path):
  for p in path:
    tree = tree[p]
  return tree


def information_in_weights(apply_fn: ApplyFn, params: Any, x: jax.typing.ArrayLike,
                           y: jax.typing.ArrayLike | None = None, *, beta: float,
                           prior_scale: float, form: FisherForm | str = FisherForm.DIAGONAL,
                           fisher: FisherType | str = FisherType.TRUE,
                           scaling: LossScaling | str = LossScaling.SUM,
                           key: jax.Array | None = None, num_samples: int = 1,
                           chunk_size: int | None = None) -> WeightInformation:
  """Information in the weights :math:`KL^*` (nats) of a trained classifier on data ``x``.

  .. math:: KL^* = \\frac{\\|w^*\\|^2}{2\\lambda^2} + \\sum_i \\Big[\\tfrac12\\log(1 + \\lambda^2 h_i/\\beta)
            - \\tfrac12\\big(1 - (1 + \\lambda^2 h_i/\\beta)^{-1}\\big)\\Big]

  with :math:`h_i` the eigenvalues of the Fisher curvature :math:`H` (exact), its diagonal
  entries (diagonal), or the products :math:`a_p g_q` of the K-FAC factors' eigenvalues per Dense
  layer (K-FAC). Achille, Paolini & Soatto (2019), eq. 8 (corrected; see the module docstring for
  the derivation and the SUM/MEAN loss-scaling convention).

  Args:
    apply_fn: ``apply_fn(params, x) -> logits (batch, k)``; the likelihood is ``softmax(logits)``.
    params: the trained weights :math:`w^*` (a pytree).
    x: inputs ``(n, ...)``.
    y: integer labels ``(n,)`` (needed for ``FisherType.EMPIRICAL`` only).
    beta: Lagrange multiplier :math:`\\beta > 0`.
    prior_scale: prior standard deviation :math:`\\lambda > 0`.
    form: :class:`FisherForm`.
    fisher: :class:`FisherType`.
    scaling: :class:`LossScaling` (default SUM, :math:`H = nF`).
    key, num_samples: for ``FisherType.SAMPLED``.
    chunk_size: at most this many examples differentiated at once.

  Returns:
    :class:`WeightInformation`.
  """
  fisher = _check(apply_fn, params, x, y, fisher, key, num_samples, beta, prior_scale)
  form = _errors.as_enum("form", form, FisherForm)
  scaling = _errors.as_enum("scaling", scaling, LossScaling)
  kw = dict(fisher=fisher, scaling=scaling, key=key, num_samples=num_samples,
            chunk_size=chunk_size)
  c = prior_scale ** 2 / beta
  leaves = jax.tree_util.tree_leaves_with_path(params)
  num_params = int(sum(np.size(v) for _, v in leaves))
  sq_norm = sum(jnp.sum(jnp.square(v)) for _, v in leaves)
  norm_by_layer: dict[str, Any] = {}
  for path, v in leaves:
    name = _layer_name(path)
    norm_by_layer[name] = norm_by_layer.get(name, 0.0) + jnp.sum(jnp.square(v)) / (2 * prior_scale ** 2)

  per_layer: dict[str, Any] = {}
  if form == FisherForm.EXACT:
    h = fisher_matrix(apply_fn, params, x, y, **kw)
    log_det, trace_term = _matrix_terms(h, c)
    _, unravel = ravel_pytree(params)
    offset = 0
    blocks: dict[str, list] = {}
    for path, v in leaves:
      blocks.setdefault(_layer_name(path), []).extend(range(offset, offset + int(np.size(v))))
      offset += int(np.size(v))
    for name, idx in blocks.items():
      idx = np.asarray(idx)
      sub = h[np.ix_(idx, idx)]
      ld, tt = _matrix_terms(sub, c)
      per_layer[name] = ld + tt + norm_by_layer[name]
    fisher_tr = jnp.trace(h)
  else:
    diag = fisher_diagonal(apply_fn, params, x, y, **kw)
    fisher_tr = sum(jnp.sum(v) for v in jax.tree_util.tree_leaves(diag))
    contrib: dict[str, list] = {}
    covered: set = set()
    if form == FisherForm.KFAC:
      factors = kfac_factors(apply_fn, params, x, y, **kw)
      for mpath, (a, g) in factors.items():
        ld, tt = _kron_terms(a, g, c)
        name = "/".join(mpath)
        contrib.setdefault(name, []).append((ld, tt))
        covered.add(name)
    for path, v in jax.tree_util.tree_leaves_with_path(diag):
      name = _layer_name(path)
      if name in covered:
        continue
      contrib.setdefault(name, []).append(_terms(c * jnp.maximum(v, 0)))
    log_det = sum(ld for parts in contrib.values() for ld, _ in parts)
    trace_term = sum(tt for parts in contrib.values() for _, tt in parts)
    for name in norm_by_layer:
      per_layer[name] = sum(ld + tt for ld, tt in contrib.get(name, [])) + norm_by_layer[name]
  norm_term = sq_norm / (2 * prior_scale ** 2)
  return WeightInformation(total=log_det + trace_term + norm_term, per_layer=per_layer,
                           log_det=log_det, trace_term=trace_term, norm_term=norm_term,
                           fisher_trace=fisher_tr, num_params=num_params)


def information_lagrangian_posterior(curvature: jax.typing.ArrayLike, *, beta: float,
                                     prior_scale: float) -> jax.Array:
  """The optimal posterior covariance :math:`\\Sigma^* = \\beta (H + \\tfrac{\\beta}{\\lambda^2} I)^{-1}`
  (Achille, Paolini & Soatto, 2019, Prop. 3.1) for a ``d x d`` curvature ``H``."""
  _errors.check_positive("beta", beta)
  _errors.check_positive("prior_scale", prior_scale)
  h = jnp.asarray(curvature)
  _errors.check_rank("curvature", h, 2)
  d = h.shape[0]
  return beta * jnp.linalg.inv(h + (beta / prior_scale ** 2) * jnp.eye(d, dtype=h.dtype))

