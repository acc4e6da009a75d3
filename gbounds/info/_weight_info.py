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

(``k`` parameters; the paper's eq. 8 has slips in the constants, this is the form obtained by
substituting :math:`\\Sigma^*` into the KL divergence between the two Gaussians). In the
eigenvalues :math:`h_i` of :math:`H`, with :math:`u_i = \\lambda^2 h_i / \\beta`,

.. math:: KL^* = \\frac{\\|w^*\\|^2}{2\\lambda^2} + \\sum_i \\Big[\\tfrac12\\log(1 + u_i)
          - \\tfrac12\\,\\frac{u_i}{1 + u_i}\\Big]  \\quad\\text{(nats)},

which is what every form here evaluates. Each summand is increasing in :math:`u_i`, so the
information is non-increasing in :math:`\\beta` and non-decreasing in the curvature.

Curvature: the Fisher information of the model's softmax likelihood stands in for the Hessian.
Conventions (both matter for the numbers):

* **Loss scaling.** :class:`LossScaling.SUM` (default): :math:`L_D(w) = \\sum_i -\\log p_w(y_i|x_i)`,
  so :math:`H = n F`, with :math:`F = \\tfrac1n \\sum_i J_i^\\top H_i J_i` the per-example mean
  Fisher; with ``beta = 1`` the optimal :math:`Q` is then the Laplace approximation of the Bayesian
  posterior. :class:`LossScaling.MEAN`: :math:`L_D` is the mean (per-example average) cross-entropy,
  :math:`H = F`; **this is the convention of Achille, Paolini & Soatto (2019)**, whose
  :math:`L_D` is the average loss over the training set, so their numbers correspond to
  ``scaling=LossScaling.MEAN``. The two differ only by :math:`\\beta`: SUM with ``beta`` equals
  MEAN with ``beta / n``. SUM is kept as the default (it is what every earlier version computed);
  pass ``scaling="mean"`` to reproduce the paper's values.
* **Parameterisation.** The Fisher of the raw Flax parameters (kernels and biases as stored), logits
  ``apply_fn(params, x)`` and :math:`p = \\mathrm{softmax}` of them; :math:`J_i = \\partial f(x_i)/\\partial w`
  and :math:`H_i` is the ``k x k`` output Fisher of example ``i`` (:class:`FisherType`).
"""

from __future__ import annotations

import enum
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax import nnx
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh

from gbounds._src import batching as _batching
from gbounds._src import errors as _errors
from gbounds._src import numerics as _numerics
from gbounds._src import results as _results
from gbounds.info import _model
from gbounds.ntk import jacobian_fn, map_row_bands


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
    EXACT: the exact nonzero eigenvalues of the Fisher, by the ``d x d`` matrix or by the
      ``(n m) x (n m)`` Gram of the kernel trick, whichever is cheaper (:class:`ExactRoute`):
      ``O(min(d, n m)^2)`` memory, ``O(n m d min(d, n m) + min(d, n m)^3)`` time.
    DIAGONAL: only the diagonal ``F_jj``; ``O(d)``; exact when the Fisher is diagonal.
    KFAC: per dense layer (``flax.linen.Dense``; ``flax.nnx.Linear`` in an NNX module),
      ``F ~ A (x) G`` with ``A = E[a a^T]`` over the layer's inputs (with a constant 1 appended only when the layer has a bias) and ``G = E[delta H delta^T]`` over
      the output gradients (Martens & Grosse, 2015); ``log det(I + c A (x) G) = sum_ij log(1 + c a_i
      g_j)``, so the layer contributes exactly as many eigenvalues as it has weights. A layer called
      several times per forward pass combines its calls by :class:`KfacSharing`.
      Exact for a single dense layer whose output Fisher is the same for every example. Parameters
      outside Dense layers (and Dense layers on inputs of rank other than 2) fall back to the
      diagonal form.
  """
  EXACT = 1
  DIAGONAL = 2
  KFAC = 3


class KfacSharing(enum.IntEnum):
  """K-FAC factors of a Dense layer called ``T > 1`` times per forward pass (Eschenhagen, Immer,
  Turner, Schneider & Hennig, "Kronecker-factored approximate curvature for modern neural network
  architectures", NeurIPS 2023). Identical for ``T = 1``.

  Attributes:
    REDUCE: per example, average the ``T`` inputs and sum the ``T`` output gradients,
      ``A = 1/n sum_i abar_i abar_i^T`` with ``abar_i = 1/T sum_t a_it``, ``G = s sum_i dbar_i dbar_i^T``
      with ``dbar_i = sum_t delta_it``. Exact (like plain K-FAC) when every call sees the same
      input; the default, suited to a classifier with one loss term per example. On a small
      two-call tanh MLP (four seeds, n = 30) its shared-layer information was within -28 to +4 %
      of the exact block, against +16 to +36 % for EXPAND.
    EXPAND: treat the calls as extra examples, ``A = 1/(nT) sum_{i,t} a_it a_it^T``,
      ``G = s sum_{i,t} delta_it delta_it^T`` (suited to per-call loss terms, e.g. per-token losses).
  """
  REDUCE = 1
  EXPAND = 2


class ExactRoute(enum.IntEnum):
  """How :attr:`FisherForm.EXACT` finds the eigenvalues of :math:`H = G^\\top G`.

  Write :math:`G` for the ``(n m, d)`` stack of the rows :math:`\\sqrt{s}\\,u_{ic}^\\top J_i`
  (:math:`u_{ic}` the ``m`` rows of the output-Fisher factor of example ``i``, :math:`U_i^\\top U_i
  = H_i`: ``m = k`` for ``TRUE``, ``num_samples`` for ``SAMPLED``, 1 for ``EMPIRICAL``). The
  nonzero eigenvalues of the ``d x d`` curvature :math:`G^\\top G` are those of the
  ``(n m) x (n m)`` Gram :math:`G G^\\top = s\\,\\mathcal U \\Theta \\mathcal U^\\top`
  (:math:`\\mathcal U = \\mathrm{blockdiag}(U_i)`, :math:`\\Theta = J J^\\top` the empirical NTK),
  and the zero eigenvalues add nothing to :math:`KL^*` (each summand vanishes at :math:`u = 0`),
  so either matrix gives the same information.

  Cost model (flops; both routes share the ``O(n k d)`` per-example Jacobians): DENSE forms
  :math:`H` in about :math:`n m d^2` and decomposes it in :math:`O(d^3)`; KERNEL forms the Gram in
  about :math:`(n m)^2 d` and decomposes it in :math:`O((n m)^3)`. Every term favours the smaller of
  ``d`` and ``n m``, so AUTO takes KERNEL exactly when ``n m < d``. Memory: :math:`d^2` against
  :math:`(n m)^2` (plus, for KERNEL, two example chunks of the ``(c m, d)`` rows of :math:`G`, at
  most about 1 GiB each when ``chunk_size`` is None). The per-layer parts follow the same rule
  layer by layer on the kernel route (see :func:`information_in_weights`).

  Attributes:
    AUTO: KERNEL when ``n m < d``, else DENSE (the default).
    DENSE: the ``d x d`` Fisher and its eigenvalues.
    KERNEL: the ``(n m) x (n m)`` Gram and its eigenvalues, for the total and for every layer.
  """
  AUTO = 1
  DENSE = 2
  KERNEL = 3


class LossScaling(enum.IntEnum):
  """Whether the loss in the Lagrangian is the sum (``H = n F``) or the mean (``H = F``).

  Attributes:
    SUM: summed cross-entropy, ``H = n F`` (the default; the Bayesian/Laplace choice at beta = 1).
    MEAN: mean cross-entropy, ``H = F``: the convention of Achille, Paolini & Soatto (2019).
  """
  SUM = 1
  MEAN = 2


class WeightInformation(NamedTuple):
  """Information in the weights (nats) and its parts.

  Attributes:
    total: :math:`KL^*` in nats.
    per_layer: dict from layer name (``"/"``-joined parameter path without the leaf name, so
      ``"params/dense0"`` when ``params`` is the full variables dict) to that layer's information
      in nats (its norm term included). For ``DIAGONAL`` and ``KFAC`` these sum to ``total``; for
      ``EXACT`` each is the layer's exact diagonal block alone (they do not sum to ``total`` when
      layers are coupled).
    log_det: :math:`\\sum_i \\tfrac12 \\log(1 + u_i)` (nats).
    trace_term: :math:`-\\sum_i \\tfrac12 u_i/(1+u_i)` (nats, <= 0).
    norm_term: :math:`\\|w^*\\|^2/(2\\lambda^2)` (nats).
    fisher_trace: :math:`\\mathrm{tr} H` (the cheap proxy; same scaling as ``H``).
    num_params: ``k``.
  """
  total: jax.Array | np.ndarray  # numpy after from_dict
  per_layer: dict[str, jax.Array | np.ndarray]
  log_det: jax.Array | np.ndarray
  trace_term: jax.Array | np.ndarray
  norm_term: jax.Array | np.ndarray
  fisher_trace: jax.Array | np.ndarray
  num_params: int

  # duplicates: thin to_dict/from_dict wrappers over gbounds._src.results (see ntk._dynamics).
  def to_dict(self) -> dict[str, Any]:
    """This result as a JSON-ready dict.

    Returns:
      ``{field: value}`` with arrays as nested lists (``gbounds._src.results``).
    """
    return _results.to_dict(self)

  @classmethod
  def from_dict(cls, data: dict[str, Any]) -> WeightInformation:
    """Rebuilds the result from :meth:`to_dict` output (arrays as numpy arrays).

    Args:
      data: the dict.

    Returns:
      A :class:`WeightInformation`.
    """
    arr = np.asarray
    return cls(total=arr(data["total"]), per_layer={k: arr(v) for k, v in
                                                     data["per_layer"].items()},
               log_det=arr(data["log_det"]), trace_term=arr(data["trace_term"]),
               norm_term=arr(data["norm_term"]), fisher_trace=arr(data["fisher_trace"]),
               num_params=int(data["num_params"]))

  def table(self) -> _results.Table:
    """Information per layer.

    Returns:
      A :class:`gbounds.Table` with columns ``layer`` and ``information_nats``, one row per
      layer, then a ``total`` row.
    """
    rows = [(k, float(v)) for k, v in self.per_layer.items()] + [("total", float(self.total))]
    return _results.Table(("layer", "information_nats"), tuple(rows),
                          title="information in the weights (nats)")


# ----------------------------------------------------------------------------- closed form

_PSD_RTOL = 1e-6  # negative eigenvalues up to this fraction of the largest are round-off


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
  _check_scalar("beta", beta)
  _check_scalar("prior_scale", prior_scale)
  ev = jnp.asarray(eigenvalues)
  sq = jnp.asarray(sq_norm)
  if _errors.is_concrete(ev, sq):
    _errors.check_finite("eigenvalues", ev)
    _errors.check_finite("sq_norm", sq)
    _errors.check_positive("sq_norm", sq, strict=False)
    if ev.size and float(jnp.min(ev)) < -_PSD_RTOL * max(float(jnp.max(jnp.abs(ev))), 1e-300):
      _errors.fail("eigenvalues", "the spectrum of a positive semi-definite curvature (negative "
                   f"round-off below {_PSD_RTOL:g} x the largest is clipped)",
                   f"smallest {float(jnp.min(ev)):.3g}, largest {float(jnp.max(ev)):.3g}")
  else:
    ev = _errors.error_if(ev, ~jnp.all(jnp.isfinite(ev)) | ~jnp.isfinite(sq) | (sq < 0),
                          "eigenvalues: expected finite values and sq_norm >= 0, got non-finite "
                          "or negative values instead.")
  h = jnp.maximum(ev, 0)
  u = (prior_scale ** 2 / beta) * h
  return (sq / (2 * prior_scale ** 2)
          + jnp.sum(0.5 * jnp.log1p(u) - 0.5 * u / (1 + u)))


@jax.jit
def _terms(u):
  return jnp.sum(0.5 * jnp.log1p(u)), jnp.sum(-0.5 * u / (1 + u))


@jax.jit
def _matrix_terms(h, c):
  """``_terms`` of ``c`` times the (clipped) eigenvalues of a symmetric matrix."""
  return _terms(c * jnp.maximum(_numerics.eigh(0.5 * (h + h.T)).values, 0))


@jax.jit
def _kron_terms(a, g, c):
  """``_terms`` of ``c a_p g_q`` over the eigenvalues of the K-FAC factors."""
  ea = jnp.maximum(_numerics.eigh(a).values, 0)
  eg = jnp.maximum(_numerics.eigh(g).values, 0)
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


def _check(apply_fn, params, x, y, fisher, key, num_samples, beta=None, prior_scale=None,
           chunk_size=None):
  """Eager validation shared by every public entry; returns the :class:`FisherType`."""
  fisher = _errors.as_enum("fisher", fisher, FisherType)
  if not callable(apply_fn):
    _errors.fail("model", "a callable apply_fn(params, x) -> logits", type(apply_fn).__name__)
  if x is None:
    _errors.fail("x", "an input batch", None)
  if beta is not None:
    _check_scalar("beta", beta)
  if prior_scale is not None:
    _check_scalar("prior_scale", prior_scale)
  if np.ndim(x) < 1:
    _errors.fail("x", "an input batch with a leading batch axis", f"shape {np.shape(x)}")
  _errors.check_nonempty("x", x)
  _errors.check_finite("x", x)
  if not jax.tree_util.tree_leaves(params):
    _errors.fail("params", "a pytree with at least one parameter array", "no leaves")
  _errors.check_finite_tree("params", params)
  if isinstance(num_samples, bool) or int(num_samples) != num_samples or num_samples < 1:
    _errors.fail("num_samples", "a positive integer", repr(num_samples))
  if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(
      chunk_size, (int, np.integer)) or chunk_size < 1):
    _errors.fail("chunk_size", "a positive integer or None", repr(chunk_size))
  try:
    out = jax.eval_shape(apply_fn, params, jnp.asarray(x)[:1])
  except _errors.GBoundsError:
    raise
  except Exception as exc:  # noqa: BLE001 - report the model/input mismatch by argument name
    _errors.fail("model", "a function that accepts (params, x) with these params and inputs",
                 f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
  if not hasattr(out, "shape") or len(out.shape) != 2 or out.shape[-1] < 2:
    _errors.fail("model", "logits of shape (batch, k) with k >= 2 classes",
                 f"{getattr(out, 'shape', type(out).__name__)}")
  num_classes = int(out.shape[-1])
  if y is not None or fisher == FisherType.EMPIRICAL:
    if y is None:
      _errors.fail("y", "integer labels for the empirical Fisher", None)
    _errors.check_rank("y", y, 1)
    _errors.check_same_leading(("x", "y"), x, y)
    _errors.check_labels("y", y, num_classes)
  if fisher == FisherType.SAMPLED and key is None:
    _errors.fail("key", "a PRNG key for the sampled Fisher", None)
  return fisher


def _check_scalar(name, value):
  if isinstance(value, bool) or np.ndim(value) != 0:
    _errors.fail(name, "a positive finite scalar", repr(value))
  _errors.check_positive(name, value)


@functools.lru_cache(maxsize=64)
def _accumulate_chunk_fn(apply_fn, fisher: FisherType, num_samples: int, kind: str):
  """A jitted per-chunk accumulator, cached per model function so repeated calls do not
  recompile."""
  per_example_jacobian = jacobian_fn(apply_fn)  # (c k, d), ravel_pytree(params) columns

  @jax.jit
  def chunk(params, xc, yc, kc):
    v = _fisher_rows(apply_fn, per_example_jacobian, params, xc, yc, kc, fisher, num_samples)
    return (jnp.matmul(v.T, v, precision=_HIGHEST) if kind == "full"
            else jnp.sum(v * v, axis=0))
  return chunk


_HIGHEST = jax.lax.Precision.HIGHEST  # full float32 products on accelerators too (no TF32)


def _fisher_rows(apply_fn, per_example_jacobian, params, xc, yc, kc, fisher, num_samples):
  """The ``(c m, d)`` rows ``u_im^T J_i`` of ``G`` (unscaled) for a chunk of examples, so that
  ``sum_i J_i^T H_i J_i = G^T G`` (traced inside a jitted caller)."""
  logits = apply_fn(params, xc)
  u = _output_factors(logits, fisher, yc, kc, num_samples)  # (c, m, k)
  jac = per_example_jacobian(params, xc)
  d = jac.shape[-1]
  jac = jac.reshape(xc.shape[0], -1, d)  # (c, k, d)
  return jnp.einsum("cmk,ckd->cmd", u, jac, precision=_HIGHEST).reshape(-1, d)


def _accumulate(apply_fn, params, x, y, fisher, key, num_samples, chunk_size, kind):
  """Sum over examples of ``V_i^T V_i`` (``kind="full"``) or of ``V_i^2`` (``"diag"``), flat."""
  _, unravel = ravel_pytree(params)
  x = jnp.asarray(x)
  yy = jnp.zeros(x.shape[0], jnp.int32) if y is None else jnp.asarray(y)
  if key is None:
    key = jax.random.key(0)
  chunk = _accumulate_chunk_fn(apply_fn, fisher, int(num_samples), kind)
  total = 0.0
  for j, (s, e) in enumerate(_batching.chunk_bounds(x.shape[0], chunk_size)):
    total = total + chunk(params, x[s:e], yy[s:e], jax.random.fold_in(key, j))
  assert isinstance(total, jax.Array)  # x has >= 1 example (_check): >= 1 chunk was added
  return total, None, unravel


def _scale(n, scaling: LossScaling):
  return 1.0 if scaling == LossScaling.SUM else 1.0 / n


def fisher_matrix(model: Any, params: Any = None, x: jax.typing.ArrayLike | None = None,
                  y: jax.typing.ArrayLike | None = None, *,
                  fisher: FisherType | str = FisherType.TRUE,
                  scaling: LossScaling | str = LossScaling.SUM,
                  key: jax.Array | None = None, num_samples: int = 1,
                  chunk_size: int | None = None) -> jax.Array:
  """The full ``d x d`` Fisher curvature :math:`H` in ``ravel_pytree(params)`` order.

  .. math:: H = s \\sum_i J_i^\\top H_i J_i, \\qquad s = 1 \\text{ (SUM) or } 1/n \\text{ (MEAN)}

  with :math:`H_i` the output Fisher of :class:`FisherType`. ``O(d^2)`` memory.

  Args:
    model: the classifier, ``logits = f(params, x)`` of shape ``(batch, k)``, ``k >= 2``: an
      ``apply_fn(params, x)`` callable, a :class:`gbounds.models.ModelFn`, a Linen module (with
      ``params``) or an NNX module (normalised by :func:`gbounds.models.as_model_fn`).
    params: the weights (a pytree, passed to the model as is; optional for a ``ModelFn`` or an
      NNX module: their own weights; for NNX an ``nnx.State`` of ``nnx.Param``).
    x: inputs ``(n, ...)``.
    y: integer labels ``(n,)`` (needed for ``FisherType.EMPIRICAL`` only).
    fisher: :class:`FisherType`.
    scaling: :class:`LossScaling`.
    key: PRNG key for ``FisherType.SAMPLED``.
    num_samples: label draws per example for ``FisherType.SAMPLED``.
    chunk_size: at most this many examples differentiated at once (None: all).

  Returns:
    ``(d, d)`` matrix :math:`H`.
  """
  m = _model.as_model(model, params, name="model")
  fisher = _check(m.apply_fn, m.params, x, y, fisher, key, num_samples,
                  chunk_size=chunk_size)
  scaling = _errors.as_enum("scaling", scaling, LossScaling)
  assert x is not None  # _check refused None
  total, _, _ = _accumulate(m.apply_fn, m.params, x, y, fisher, key, num_samples, chunk_size,
                            "full")
  return total * _scale(np.shape(x)[0], scaling)


# duplicates: fisher_matrix, fisher_diagonal and fisher_trace document the same
# model/params/x/y/fisher arguments; each is a public entry point over the shared _accumulate.
def fisher_diagonal(model: Any, params: Any = None, x: jax.typing.ArrayLike | None = None,
                    y: jax.typing.ArrayLike | None = None, *,
                    fisher: FisherType | str = FisherType.TRUE,
                    scaling: LossScaling | str = LossScaling.SUM,
                    key: jax.Array | None = None, num_samples: int = 1,
                    chunk_size: int | None = None) -> Any:
  """Diagonal of the Fisher curvature, :math:`H_{jj} = s \\sum_i (J_i^\\top H_i J_i)_{jj}`, as a
  pytree shaped like ``params`` (chunked over examples: memory ``O(chunk_size k d)``).

  Args:
    model: the classifier, ``logits = f(params, x)`` of shape ``(batch, k)``, ``k >= 2``: an
      ``apply_fn(params, x)`` callable, a :class:`gbounds.models.ModelFn`, a Linen module (with
      ``params``) or an NNX module (normalised by :func:`gbounds.models.as_model_fn`).
    params: the weights (a pytree, passed to the model as is; optional for a ``ModelFn`` or an
      NNX module: their own weights; for NNX an ``nnx.State`` of ``nnx.Param``).
    x: inputs ``(n, ...)``.
    y: integer labels ``(n,)`` (needed for ``FisherType.EMPIRICAL`` only).
    fisher: :class:`FisherType`.
    scaling: :class:`LossScaling`.
    key: PRNG key for ``FisherType.SAMPLED``.
    num_samples: label draws per example for ``FisherType.SAMPLED``.
    chunk_size: at most this many examples differentiated at once (None: all).

  Returns:
    A pytree shaped like ``params`` holding :math:`H_{jj}`.
  """
  m = _model.as_model(model, params, name="model")
  fisher = _check(m.apply_fn, m.params, x, y, fisher, key, num_samples,
                  chunk_size=chunk_size)
  scaling = _errors.as_enum("scaling", scaling, LossScaling)
  assert x is not None  # _check refused None
  total, _, unravel = _accumulate(m.apply_fn, m.params, x, y, fisher, key, num_samples,
                                  chunk_size, "diag")
  return unravel(total * _scale(np.shape(x)[0], scaling))


def fisher_trace(model: Any, params: Any = None, x: jax.typing.ArrayLike | None = None,
                 y: jax.typing.ArrayLike | None = None, **kwargs) -> jax.Array:
  """:math:`\\mathrm{tr}\\,H = \\sum_j H_{jj}`, the cheap proxy for the information in the weights.

  Args:
    model, params, x, y: as in :func:`fisher_diagonal`.
    **kwargs: the keyword arguments of :func:`fisher_diagonal`.

  Returns:
    The scalar trace.
  """
  diag = fisher_diagonal(model, params, x, y, **kwargs)
  # sum() types as Array | 0; params has >= 1 leaf (_check), so this is an Array (asarray: no-op)
  return jnp.asarray(sum(jnp.sum(leaf) for leaf in jax.tree_util.tree_leaves(diag)))



# ----------------------------------------------------------------------------- the kernel route
# The nonzero eigenvalues of H = G^T G are those of the Gram G G^T (see ExactRoute). The Gram is
# built block by block over example chunks (only blocks on and above the diagonal are
# contracted), per part (a layer's parameter columns) so that the per-layer Grams come from the
# same contractions: the total Gram is the sum of the parts' Grams.

_KERNEL_CHUNK_BYTES = 1 << 30  # chunk_size None: a chunk's (c, k, d) Jacobian at most this
_KERNEL_CACHE_BYTES = 1 << 30  # every chunk's rows of G are kept when all of them fit in this


def _factor_rows(fisher: FisherType, num_classes: int, num_samples: int) -> int:
  """``m``: rows of the output-Fisher factor ``U_i`` per example."""
  if fisher == FisherType.TRUE:
    return num_classes
  if fisher == FisherType.EMPIRICAL:
    return 1
  return int(num_samples)


def _kernel_chunk_size(n: int, num_classes: int, d: int, itemsize: int,
                       chunk_size: int | None) -> int:
  """The given ``chunk_size``, or the most examples whose ``(c, k, d)`` Jacobian fits in
  ``_KERNEL_CHUNK_BYTES`` (at least 1, at most ``n``)."""
  if chunk_size is not None:
    return int(chunk_size)
  return max(1, min(n, _KERNEL_CHUNK_BYTES // max(1, num_classes * d * itemsize)))


@functools.lru_cache(maxsize=64)
def _part_rows_fn(apply_fn, fisher: FisherType, num_samples: int, parts: tuple):
  """Jitted ``(params, xc, yc, kc) -> ((c m, d_p), ...)``: the rows of ``G`` split into parts, each
  part a tuple of ``(start, stop)`` column ranges of ``ravel_pytree(params)``."""
  per_example_jacobian = jacobian_fn(apply_fn)

  @jax.jit
  def rows(params, xc, yc, kc):
    v = _fisher_rows(apply_fn, per_example_jacobian, params, xc, yc, kc, fisher, num_samples)
    return tuple(v[:, part[0][0]:part[0][1]] if len(part) == 1
                 else jnp.concatenate([v[:, a:b] for a, b in part], axis=1) for part in parts)
  return rows


@functools.partial(jax.jit, static_argnums=(2,))
def _gram_block(gi, gj, keep: tuple):
  """``sum_p G_ip G_jp^T`` and the kept parts' own blocks ``G_ip G_jp^T``."""
  blocks = [jnp.matmul(a, b.T, precision=_HIGHEST) for a, b in zip(gi, gj)]
  return functools.reduce(jnp.add, blocks), tuple(b for b, k in zip(blocks, keep) if k)


@functools.partial(jax.jit, static_argnums=(1,))
def _part_fishers(gi, which: tuple):
  """``G_ip^T G_ip`` for the parts ``which`` (their ``d_p x d_p`` Fisher blocks, one chunk)."""
  return tuple(jnp.matmul(gi[p].T, gi[p], precision=_HIGHEST) for p in which)


@functools.partial(jax.jit, donate_argnums=(0,))
def _put_block(gram, block, i, j):
  """``gram`` with ``block`` at rows ``i``, columns ``j`` and its transpose at ``(j, i)``."""
  gram = jax.lax.dynamic_update_slice(gram, block, (i, j))
  return jax.lax.dynamic_update_slice(gram, block.T, (j, i))


class _KernelParts(NamedTuple):
  """Unscaled results of :func:`_kernel_grams` (multiply by ``s`` for ``H``'s scaling)."""
  total: jax.Array          # (n m, n m) Gram G G^T
  grams: dict[int, jax.Array]    # part index -> (n m, n m) Gram G_p G_p^T
  fishers: dict[int, jax.Array]  # part index -> (d_p, d_p) block G_p^T G_p


def _kernel_grams(apply_fn, params, x, y, fisher, key, num_samples, chunk_size, parts: tuple,
                  gram_parts: tuple, fisher_parts: tuple) -> _KernelParts:
  """The Gram ``G G^T`` over all parameters, the Grams of the parts ``gram_parts`` and the
  ``d_p x d_p`` Fisher blocks of the parts ``fisher_parts``, chunk by chunk over examples.

  Memory: the Grams, plus the rows of two example chunks (the column chunk is recomputed for
  every row chunk unless all rows fit in ``_KERNEL_CACHE_BYTES``). Chunk ``j`` draws its labels
  (``SAMPLED``) from ``fold_in(key, j)``, as the dense accumulation does.
  """
  x = jnp.asarray(x)
  n = x.shape[0]
  yy = jnp.zeros(n, jnp.int32) if y is None else jnp.asarray(y)
  if key is None:
    key = jax.random.key(0)
  bounds = _batching.chunk_bounds(n, chunk_size)
  rows_fn = _part_rows_fn(apply_fn, fisher, int(num_samples), parts)
  keep = tuple(p in gram_parts for p in range(len(parts)))
  cache: dict[int, tuple] = {}
  use_cache = False

  def rows(j):
    if j in cache:
      return cache[j]
    s, e = bounds[j]
    r = rows_fn(params, x[s:e], yy[s:e], jax.random.fold_in(key, j))
    if use_cache:
      cache[j] = r
    return r

  gi = rows(0)
  m = gi[0].shape[0] // (bounds[0][1] - bounds[0][0])
  dtype = gi[0].dtype
  d = sum(g.shape[1] for g in gi)
  if n * m * d * np.dtype(dtype).itemsize <= _KERNEL_CACHE_BYTES:
    use_cache = True
    cache[0] = gi
  size = n * m
  total = jnp.zeros((size, size), dtype)
  grams = {p: jnp.zeros((size, size), dtype) for p in gram_parts}
  fishers: dict[int, jax.Array] = {}
  for i, (si, _) in enumerate(bounds):
    if i > 0:
      gi = rows(i)
    if fisher_parts:
      for p, f in zip(fisher_parts, _part_fishers(gi, fisher_parts)):
        fishers[p] = f if p not in fishers else fishers[p] + f
    for j in range(i, len(bounds)):
      gj = gi if j == i else rows(j)
      block, kept = _gram_block(gi, gj, keep)
      oi, oj = jnp.asarray(si * m, jnp.int32), jnp.asarray(bounds[j][0] * m, jnp.int32)
      total = _put_block(total, block, oi, oj)
      for p, b in zip(gram_parts, kept):
        grams[p] = _put_block(grams[p], b, oi, oj)
  return _KernelParts(total, grams, fishers)


def _sharded_kernel_grams(apply_fn, params, x, y, fisher, key, num_samples, chunk_size,
                          parts: tuple, gram_parts: tuple, fisher_parts: tuple, m: int,
                          mesh) -> _KernelParts:
  """:func:`_kernel_grams` with the rows of every Gram spread over the devices of ``mesh``.

  Device ``p`` holds the rows ``[b_p]`` of ``G`` (the example chunks they touch) and contracts
  them with every chunk's rows, recomputed on the device: ``K_{[b_p]} = G_{[b_p]} G^T``, a band
  of the row-sharded result (``gbounds.ntk.map_row_bands``). Chunk ``j`` draws its labels from
  ``fold_in(key, j)`` as on one device, so every route agrees. The ``d_p x d_p`` Fisher blocks
  ``sum_p G_{[b_p]}^T G_{[b_p]}`` are summed on the first device.
  """
  n = int(np.shape(x)[0])
  yy = np.zeros(n, np.int32) if y is None else y
  if key is None:
    key = jax.random.key(0)
  bounds = _batching.chunk_bounds(n, chunk_size)
  rows_fn = _part_rows_fn(apply_fn, fisher, int(num_samples), parts)
  keep = tuple(p in gram_parts for p in range(len(parts)))
  part_fishers: list[tuple] = []

  def band(start, stop, device):
    p_d, x_d, y_d = jax.device_put((params, x, yy), device)
    e0, e1 = start // m, -(-stop // m)
    mine = [j for j, (s, e) in enumerate(bounds) if s < e1 and e > e0]
    computed = {}

    def rows(j):
      if j not in computed:
        s, e = bounds[j]
        computed[j] = rows_fn(p_d, x_d[s:e], y_d[s:e], jax.random.fold_in(key, j))
      return computed[j]

    lo = bounds[mine[0]][0] * m
    gb = tuple(jnp.concatenate([rows(j)[q] for j in mine])[start - lo:stop - lo]
               for q in range(len(parts)))
    if fisher_parts:
      part_fishers.append(_part_fishers(gb, fisher_parts))
    total, kept = [], []
    for j in range(len(bounds)):
      block, kj = _gram_block(gb, rows(j), keep)
      total.append(block)
      kept.append(kj)
      if j not in mine:
        computed.pop(j)
    return (jnp.concatenate(total, axis=1),
            tuple(jnp.concatenate([kj[q] for kj in kept], axis=1) for q in range(len(gram_parts))))

  total, grams = map_row_bands(band, n * m, mesh=mesh, name="x")
  fishers = {p: functools.reduce(jnp.add, [jax.device_put(f[i], part_fishers[0][i].device)
                                            for f in part_fishers])
             for i, p in enumerate(fisher_parts)}
  return _KernelParts(total, dict(zip(gram_parts, grams)), fishers)


def fisher_gram(model: Any, params: Any = None, x: jax.typing.ArrayLike | None = None,
                y: jax.typing.ArrayLike | None = None, *,
                fisher: FisherType | str = FisherType.TRUE,
                scaling: LossScaling | str = LossScaling.SUM,
                key: jax.Array | None = None, num_samples: int = 1,
                chunk_size: int | None = None, mesh: Mesh | None = None) -> jax.Array:
  """The ``(n m) x (n m)`` Gram :math:`K = G G^\\top` whose nonzero eigenvalues are those of the
  Fisher curvature :math:`H = G^\\top G` (the kernel trick of :class:`ExactRoute`).

  .. math:: K_{(i a),(j b)} = s\\, u_{ia}^\\top J_i J_j^\\top u_{jb}
            = s\\,(\\mathcal U \\Theta \\mathcal U^\\top)_{(i a),(j b)}

  with :math:`u_{ia}` the ``m`` rows of the output-Fisher factor :math:`U_i`
  (:math:`U_i^\\top U_i = H_i`; for ``TRUE`` the ``k`` rows :math:`\\sqrt{p_{ia}}(e_a - p_i)`),
  :math:`\\Theta = J J^\\top` the empirical NTK (Jacot et al., 2018) and ``s`` the loss scaling.
  Rows are sample-major (row ``i m + a``). Memory ``O((n m)^2)`` plus two chunks of
  ``(c m, d)`` rows; ``d`` never appears squared.

  Args:
    model: the classifier, as in :func:`fisher_matrix`.
    params: the weights, as in :func:`fisher_matrix`.
    x: inputs ``(n, ...)``.
    y: integer labels ``(n,)`` (needed for ``FisherType.EMPIRICAL`` only).
    fisher: :class:`FisherType`.
    scaling: :class:`LossScaling`.
    key: PRNG key for ``FisherType.SAMPLED`` (chunk ``j`` draws from ``fold_in(key, j)``, as
      :func:`fisher_matrix` does, so the two agree for the same ``chunk_size``).
    num_samples: label draws per example for ``FisherType.SAMPLED``.
    chunk_size: at most this many examples differentiated at once (None: as many as keep a
      chunk's ``(c, k, d)`` Jacobian within about 1 GiB).
    mesh: a ``jax.sharding.Mesh`` to spread the rows of :math:`K` over its devices (each
      device contracts its rows of :math:`G` with all of them; ``n m`` must divide evenly over
      the devices; see ``gbounds.ntk.map_row_bands``, and ``jax.distributed.initialize`` for
      several hosts). None (the default): one device, as before.

  Returns:
    ``(n m, n m)`` symmetric positive semi-definite :math:`K` (with ``mesh``: a global array
    whose rows are sharded over the mesh, symmetric up to round-off).
  """
  m = _model.as_model(model, params, name="model")
  fisher = _check(m.apply_fn, m.params, x, y, fisher, key, num_samples,
                  chunk_size=chunk_size)
  scaling = _errors.as_enum("scaling", scaling, LossScaling)
  assert x is not None  # _check refused None
  xx = jnp.asarray(x)
  leaves = jax.tree_util.tree_leaves(m.params)
  d = int(sum(np.size(v) for v in leaves))
  k = int(jax.eval_shape(m.apply_fn, m.params, xx[:1]).shape[-1])
  itemsize = max(np.dtype(v.dtype).itemsize for v in leaves)
  chunk = _kernel_chunk_size(xx.shape[0], k, d, itemsize, chunk_size)
  if mesh is not None:
    res = _sharded_kernel_grams(m.apply_fn, m.params, xx, y, fisher, key, num_samples, chunk,
                                (((0, d),),), (), (), _factor_rows(fisher, k, num_samples), mesh)
  else:
    res = _kernel_grams(m.apply_fn, m.params, xx, y, fisher, key, num_samples, chunk,
                        (((0, d),),), (), ())
  return res.total * jnp.asarray(_scale(xx.shape[0], scaling), res.total.dtype)


class _DenseCall(NamedTuple):
  """Static description of one call of a ``flax.linen.Dense`` layer (found by tracing shapes)."""
  path: tuple      # module path, e.g. ("dense0",)
  call: int        # 0 for the first call of that module in a forward pass, 1 for the second, ...
  use_bias: bool
  in_features: int
  out_shape: tuple  # (batch, features)
  out_dtype: Any


def _is_dense_call(context) -> bool:
  return isinstance(context.module, nn.Dense) and context.method_name == "__call__"


# A hooked forward pass ``run(params, x, hook) -> logits`` calls
# ``hook(path, call, use_bias, layer_input, layer_output) -> output`` at every dense layer call
# (``flax.linen.Dense`` through ``nn.intercept_methods``; ``flax.nnx.Linear`` through a probe put
# in place of the layer in a freshly merged copy of the module).


@functools.lru_cache(maxsize=64)
def _linen_hooked(apply_fn):
  def run(params, x, hook):
    counts: dict[tuple, int] = {}

    def interceptor(next_fun, args, kwargs, context):
      if not _is_dense_call(context):
        return next_fun(*args, **kwargs)
      path = tuple(context.module.path)
      call = counts.get(path, 0)
      counts[path] = call + 1
      out = next_fun(*args, **kwargs)
      return hook(path, call, bool(context.module.use_bias), args[0], out)

    with nn.intercept_methods(interceptor):
      return apply_fn(params, x)
  return run


class _NnxProbe:
  """Stands in for an ``nnx.Linear`` in a merged copy of the module and calls the hook."""

  def __init__(self, layer, path, counts, hook):
    self.layer, self.path, self.counts, self.hook = layer, path, counts, hook

  def __call__(self, x):
    call = self.counts.get(self.path, 0)
    self.counts[self.path] = call + 1
    out = self.layer(x)
    return self.hook(self.path, call, self.layer.bias is not None, x, out)


def _nnx_hooked(module):
  graphdef, _, rest = nnx.split(module, nnx.Param, ...)

  def run(params, x, hook):
    m = nnx.merge(graphdef, params, rest)
    counts: dict[tuple, int] = {}
    for path, layer in list(nnx.iter_modules(m)):
      if not isinstance(layer, nnx.Linear) or not path:
        continue
      parent = m
      for name in path[:-1]:
        # flax types path parts as Key; module attribute names are str (ints handled here)
        parent = (parent[name] if isinstance(name, int)
                  else getattr(parent, name))  # pyright: ignore[reportArgumentType]
      probe = _NnxProbe(layer, tuple(str(q) for q in path), counts, hook)
      if isinstance(path[-1], int):
        parent[path[-1]] = probe
      else:
        setattr(parent, path[-1], probe)  # pyright: ignore[reportArgumentType]  (a str, as above)
    return m(x)
  return run


def _hooked_forward(m: _model.Model):
  """``run(params, x, hook)`` for the model (see above)."""
  return _linen_hooked(m.apply_fn) if m.nnx_module is None else _nnx_hooked(m.nnx_module)


def _dense_forward(run, params, x, perturb):
  """Runs the hooked forward pass recording the input of every dense call in ``perturb`` and
  adding ``perturb[(path, call)]`` to its output; returns ``(logits, {(path, call): input})``."""
  inputs = {}

  def hook(path, call, use_bias, inp, out):
    key = (path, call)
    if perturb is not None and key in perturb:
      inputs[key] = inp
      out = out + perturb[key]
    return out

  return run(params, x, hook), inputs


def _dense_calls(run, params, x) -> list[_DenseCall]:
  """Every dense call of one forward pass, in call order (shapes only, nothing computed)."""
  calls: list[_DenseCall] = []

  def hook(path, call, use_bias, inp, out):
    calls.append(_DenseCall(path, call, use_bias, int(inp.shape[-1]), tuple(out.shape),
                            np.dtype(out.dtype)))
    return out

  jax.eval_shape(lambda p, xx: run(p, xx, hook), params, x)
  return calls


def _key_name(k) -> str:
  return str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))


def _leaf_keys(params) -> list[tuple]:
  """Key path of every leaf, as strings; an NNX ``Param``'s trailing ``.value`` is dropped, so
  that an ``nnx.State`` gives the same layer paths as the module (``("layers", "0", "kernel")``)."""
  out = []
  for path, _ in jax.tree_util.tree_leaves_with_path(params):
    if path and isinstance(path[-1], jax.tree_util.GetAttrKey) and path[-1].name == "value":
      path = path[:-1]
    out.append(tuple(_key_name(k) for k in path))
  return out


def _locate_dense(params, calls: list[_DenseCall]) -> dict[tuple, dict[str, tuple]]:
  """Maps each Dense module path to the leaf key tuples of its ``kernel`` (and ``bias``) in
  ``params``, whatever the nesting (``{"params": ...}``, the bare dict, or deeper).

  A leaf belongs to the module when its key path ends with ``(*module_path, "kernel")``; when
  several leaves match, the one with the shortest prefix is taken if it is unique. A module
  whose kernel is not in ``params`` (a closed-over, non-trained layer) is left out: its weights
  are not part of ``w``. Raises when the match is ambiguous or the shapes disagree.
  """
  keys = _leaf_keys(params)
  shapes = {k: np.shape(v) for k, v in zip(keys, jax.tree_util.tree_leaves(params))}
  found: dict[tuple, dict[str, tuple]] = {}
  not_2d = {c.path for c in calls if len(c.out_shape) != 2}  # these stay in the diagonal form
  for c in calls:
    if c.path in found or c.path in not_2d:
      continue
    tail = (*c.path, "kernel")
    matches = [k for k in keys if k[-len(tail):] == tail]
    if not matches:
      continue
    shortest = min(len(k) for k in matches)
    best = [k for k in matches if len(k) == shortest]
    if len(best) > 1:
      _errors.fail("params", f"one kernel for the Dense layer {'/'.join(c.path)}",
                   f"{len(best)} candidates {['/'.join(b) for b in best]}")
    kernel = best[0]
    want = (c.in_features, c.out_shape[-1])
    if shapes[kernel] != want:
      _errors.fail("params", f"a kernel of shape {want} at {'/'.join(kernel)}",
                   f"shape {shapes[kernel]}")
    entry = {"kernel": kernel}
    bias = (*kernel[:-1], "bias")
    if c.use_bias:
      if bias not in shapes:
        _errors.fail("params", f"a bias at {'/'.join(bias)} (the layer has use_bias=True)",
                     "no such leaf")
      entry["bias"] = bias
    found[c.path] = entry
  return found


def kfac_factors(model: Any, params: Any = None, x: jax.typing.ArrayLike | None = None,
                 y: jax.typing.ArrayLike | None = None, *,
                 fisher: FisherType | str = FisherType.TRUE,
                 scaling: LossScaling | str = LossScaling.SUM,
                 key: jax.Array | None = None, num_samples: int = 1,
                 chunk_size: int | None = None,
                 sharing: KfacSharing | str = KfacSharing.REDUCE) -> dict:
  """K-FAC factors of every dense layer (``flax.linen.Dense``; ``flax.nnx.Linear`` in an NNX
  module) the model calls on 2-D inputs.

  For a layer with input :math:`a_i` and output :math:`z_i` on example ``i``,
  :math:`\\tilde a = [a; 1]` when the layer has a bias and :math:`\\tilde a = a` when it has none
  (``use_bias=False``), and :math:`\\delta_{im} = (\\partial f(x_i)/\\partial z_i)^\\top u_{im}` (rows of
  the output-Fisher factor, :math:`\\sum_m u_{im} u_{im}^\\top = H_i`),

  .. math:: A = \\frac{1}{n} \\sum_i \\tilde a_i \\tilde a_i^\\top, \\qquad
            G = s \\sum_{i,m} \\delta_{im}\\delta_{im}^\\top

  (:math:`s = 1` for SUM, :math:`1/n` for MEAN), so that the layer's block of :math:`H` (kernel
  rows then the bias row, row-major) is approximately :math:`A \\otimes G` (Martens & Grosse, 2015,
  eq. 1-2). The factors' sizes are those of the layer's own parameters: ``A`` is ``in + 1`` or
  ``in`` square, ``G`` ``out``. A layer called ``T > 1`` times (shared weights) combines its calls
  by :class:`KfacSharing` (``sharing``; default REDUCE: mean of the ``T`` inputs, sum of the
  ``T`` output gradients, per example; EXPAND: the calls as extra examples, ``A`` averaged over
  the ``n T`` inputs).

  ``params`` may be nested in any way (``variables["params"]``, the full ``{"params": ...}``
  variables dict, or deeper): each layer's parameters are found by their module path. Dense
  calls on inputs of rank other than 2 and layers whose kernel is not in ``params`` are skipped.

  Args:
    model: the classifier, ``logits = f(params, x)`` of shape ``(batch, k)``, ``k >= 2``: an
      ``apply_fn(params, x)`` callable, a :class:`gbounds.models.ModelFn`, a Linen module (with
      ``params``) or an NNX module (normalised by :func:`gbounds.models.as_model_fn`).
    params: the weights (a pytree, passed to the model as is; optional for a ``ModelFn`` or an
      NNX module: their own weights; for NNX an ``nnx.State`` of ``nnx.Param``).
    x: inputs ``(n, ...)``.
    y: integer labels ``(n,)`` (needed for ``FisherType.EMPIRICAL`` only).
    fisher: :class:`FisherType`.
    scaling: :class:`LossScaling`.
    key: PRNG key for ``FisherType.SAMPLED``.
    num_samples: label draws per example for ``FisherType.SAMPLED``.
    chunk_size: at most this many examples differentiated at once (None: all).
    sharing: :class:`KfacSharing`, for a layer called more than once per forward pass.

  Returns:
    ``{layer_path: (A, G)}`` with ``layer_path`` a tuple of module names (``("dense0",)`` for
    Linen; the attribute path for NNX, ``("layers", "0")``).
  """
  m = _model.as_model(model, params, name="model")
  fisher = _check(m.apply_fn, m.params, x, y, fisher, key, num_samples,
                  chunk_size=chunk_size)
  scaling = _errors.as_enum("scaling", scaling, LossScaling)
  sharing = _errors.as_enum("sharing", sharing, KfacSharing)
  factors, _ = _kfac(m, x, y, fisher, scaling, key, num_samples, chunk_size, sharing)
  if not factors:
    _errors.fail("model", "a model whose parameters include flax.linen.Dense (or flax.nnx.Linear)"
                 " layers for K-FAC", "no dense layer on 2-D inputs with its kernel in params")
  return factors


def _kfac(m: _model.Model, x, y, fisher, scaling, key, num_samples, chunk_size,
          sharing=KfacSharing.REDUCE):
  """``({path: (A, G)}, {path: {"kernel": leaf keys, "bias": leaf keys}})``."""
  params = m.params
  x = jnp.asarray(x)
  n = x.shape[0]
  run = _hooked_forward(m)
  calls = _dense_calls(run, params, x[:1])
  located = _locate_dense(params, calls)
  if not located:
    return {}, {}
  use = tuple(c for c in calls if c.path in located)
  yy = jnp.zeros(n, jnp.int32) if y is None else jnp.asarray(y)
  key = jax.random.key(0) if key is None else key
  chunk = _kfac_chunk_fn(run, fisher, int(num_samples), use, sharing)
  acc = None
  for j, (s, e) in enumerate(_batching.chunk_bounds(n, chunk_size)):
    part = chunk(params, x[s:e], yy[s:e], jax.random.fold_in(key, j))
    acc = part if acc is None else jax.tree_util.tree_map(jnp.add, acc, part)
  scale = _scale(n, scaling)
  num_calls = {}
  for c in use:
    num_calls[c.path] = num_calls.get(c.path, 0) + 1
  calls_in_a = {p: (t if sharing == KfacSharing.EXPAND else 1) for p, t in num_calls.items()}
  assert acc is not None  # n >= 1 (x checked non-empty), so at least one chunk ran
  factors = {p: (a / (n * calls_in_a[p]), g * scale) for p, (a, g) in acc.items()}
  return factors, located


@functools.lru_cache(maxsize=64)
def _kfac_chunk_fn(run, fisher: FisherType, num_samples: int, calls: tuple,
                   sharing: KfacSharing):
  @jax.jit
  def chunk(params, xc, yc, kc):
    c = xc.shape[0]
    perturb = {(d.path, d.call): jnp.zeros((c, d.out_shape[-1]), d.out_dtype) for d in calls}
    fn = lambda pt: _dense_forward(run, params, xc, pt)  # noqa: E731
    logits, vjp, inputs = jax.vjp(fn, perturb, has_aux=True)
    u = _output_factors(logits, fisher, yc, kc, num_samples)  # (c, m, k)
    deltas = jax.vmap(lambda um: vjp(um)[0], in_axes=1)(u)  # {(path, call): (m, c, out)}
    per_layer: dict[tuple, list] = {}
    for d in calls:
      a = inputs[(d.path, d.call)]
      if d.use_bias:
        a = jnp.concatenate([a, jnp.ones((a.shape[0], 1), a.dtype)], axis=1)
      per_layer.setdefault(d.path, []).append((a, deltas[(d.path, d.call)]))  # (c, in), (m, c, out)
    res: dict[tuple, Any] = {}
    for path, parts in per_layer.items():
      out = parts[0][1].shape[-1]
      if sharing == KfacSharing.REDUCE:  # mean input, summed output gradient, per example
        # sum() types as Array | 0; parts is never empty (asarray of an array: a no-op)
        a = jnp.asarray(sum(p[0] for p in parts)) / len(parts)
        dl = jnp.asarray(sum(p[1] for p in parts)).reshape(-1, out)
        res[path] = (a.T @ a, dl.T @ dl)
      else:  # EXPAND: every call is an extra example
        res[path] = (sum(p[0].T @ p[0] for p in parts),
                     sum(p[1].reshape(-1, out).T @ p[1].reshape(-1, out) for p in parts))
    return res
  return chunk


# ----------------------------------------------------------------------------- the estimator


def _layer_name(keys: tuple) -> str:
  """Layer name of a parameter leaf: its key path without the leaf name, ``/``-joined."""
  return "/".join(keys[:-1]) or keys[-1]


def information_in_weights(model: Any, params: Any = None, x: jax.typing.ArrayLike | None = None,
                           y: jax.typing.ArrayLike | None = None, *, beta: float,
                           prior_scale: float, form: FisherForm | str = FisherForm.DIAGONAL,
                           fisher: FisherType | str = FisherType.TRUE,
                           scaling: LossScaling | str = LossScaling.SUM,
                           key: jax.Array | None = None, num_samples: int = 1,
                           chunk_size: int | None = None,
                           sharing: KfacSharing | str = KfacSharing.REDUCE,
                           exact_route: ExactRoute | str = ExactRoute.AUTO,
                           mesh: Mesh | None = None) -> WeightInformation:
  """Information in the weights :math:`KL^*` (nats) of a trained classifier on data ``x``.

  .. math:: KL^* = \\frac{\\|w^*\\|^2}{2\\lambda^2} + \\sum_i \\Big[\\tfrac12\\log(1 + \\lambda^2 h_i/\\beta)
            - \\tfrac12\\big(1 - (1 + \\lambda^2 h_i/\\beta)^{-1}\\big)\\Big]

  with :math:`h_i` the eigenvalues of the Fisher curvature :math:`H` (exact), its diagonal
  entries (diagonal), or the products :math:`a_p g_q` of the K-FAC factors' eigenvalues per Dense
  layer (K-FAC). Achille, Paolini & Soatto (2019), eq. 8 (corrected; see the module docstring for
  the derivation and the SUM/MEAN loss-scaling convention).

  Args:
    model: the classifier, ``logits = f(params, x)`` of shape ``(batch, k)``; the likelihood is
      ``softmax(logits)``. An ``apply_fn(params, x)`` callable, a
      :class:`gbounds.models.ModelFn`, a Linen module (with ``params``) or an NNX module
      (normalised by :func:`gbounds.models.as_model_fn`).
    params: the trained weights :math:`w^*` (a pytree, passed to the model as is: for a
      callable the Linen ``variables["params"]`` or the full ``{"params": ...}`` variables dict,
      as it expects; optional for a ``ModelFn`` or an NNX module, whose own weights are used);
      every floating leaf counts as a parameter.
    x: inputs ``(n, ...)``.
    y: integer labels ``(n,)`` (needed for ``FisherType.EMPIRICAL`` only).
    beta: Lagrange multiplier :math:`\\beta > 0`.
    prior_scale: prior standard deviation :math:`\\lambda > 0`.
    form: :class:`FisherForm`.
    fisher: :class:`FisherType`.
    scaling: :class:`LossScaling` (default SUM, :math:`H = nF`; the paper's convention is MEAN,
      :math:`H = F`, equivalent to SUM with ``beta / n``).
    key, num_samples: for ``FisherType.SAMPLED``.
    chunk_size: at most this many examples differentiated at once (None: all at once, except on
      the kernel route, where a chunk's ``(c, k, d)`` Jacobian is kept within about 1 GiB).
    sharing: :class:`KfacSharing`, for K-FAC on a Dense layer called more than once.
    exact_route: :class:`ExactRoute`, for ``form=EXACT``: the ``d x d`` Fisher (DENSE), the
      ``(n m) x (n m)`` Gram (KERNEL) or the cheaper of the two (AUTO: KERNEL when ``n m < d``,
      ``m`` the output-Fisher rows per example: ``k``, ``num_samples`` or 1). On the kernel route
      the per-layer parts (each layer's exact diagonal block :math:`H_{ll} = G_l^\\top G_l`) come
      from the same chunked contractions: a layer's Gram :math:`G_l G_l^\\top` (its nonzero
      eigenvalues are those of :math:`H_{ll}`) when ``n m < d_l`` or the route is forced, else its
      ``d_l x d_l`` block accumulated over the chunks; a model with a single layer reuses the
      total. Both routes give the same values up to round-off (for ``SAMPLED`` given the same
      explicit ``chunk_size``: chunk ``j`` draws its labels from ``fold_in(key, j)``).
    mesh: a ``jax.sharding.Mesh``: the Grams of the kernel route (``form=EXACT``, the route
      KERNEL) are built with their rows sharded over its devices, as in :func:`fisher_gram`.
      Refused for the other forms and routes. None (the default): one device.

  Returns:
    :class:`WeightInformation`.
  """
  m = _model.as_model(model, params, name="model")
  apply_fn, params = m.apply_fn, m.params
  fisher = _check(apply_fn, params, x, y, fisher, key, num_samples, beta, prior_scale,
                  chunk_size)
  form = _errors.as_enum("form", form, FisherForm)
  scaling = _errors.as_enum("scaling", scaling, LossScaling)
  sharing = _errors.as_enum("sharing", sharing, KfacSharing)
  exact_route = _errors.as_enum("exact_route", exact_route, ExactRoute)
  c = prior_scale ** 2 / beta
  keys = _leaf_keys(params)
  values = jax.tree_util.tree_leaves(params)
  num_params = int(sum(np.size(v) for v in values))
  # sum() of arrays types as Array | 0: every sum below has >= 1 term, so asarray is a no-op
  sq_norm = jnp.asarray(sum(jnp.sum(jnp.square(v)) for v in values))
  norm_by_layer: dict[str, Any] = {}
  for k, v in zip(keys, values):
    name = _layer_name(k)
    norm_by_layer[name] = (norm_by_layer.get(name, 0.0)
                           + jnp.sum(jnp.square(v)) / (2 * prior_scale ** 2))

  per_layer: dict[str, Any] = {}
  blocks: dict[str, list] = {}  # EXACT: layer name -> its columns of ravel_pytree(params)
  route, num_classes = ExactRoute.DENSE, 0
  if form == FisherForm.EXACT:
    offset = 0
    for k, v in zip(keys, values):
      blocks.setdefault(_layer_name(k), []).extend(range(offset, offset + int(np.size(v))))
      offset += int(np.size(v))
    xx = jnp.asarray(x)
    num_classes = int(jax.eval_shape(apply_fn, params, xx[:1]).shape[-1])
    size = xx.shape[0] * _factor_rows(fisher, num_classes, num_samples)
    route = (exact_route if exact_route != ExactRoute.AUTO
             else ExactRoute.KERNEL if size < num_params else ExactRoute.DENSE)
  if mesh is not None and (form != FisherForm.EXACT or route != ExactRoute.KERNEL):
    _errors.fail("mesh", "None unless form=EXACT takes the kernel route (exact_route=KERNEL, or "
                 "AUTO with n m < d)", f"a mesh with form={form.name}, route {route.name}")
  if form == FisherForm.EXACT and route == ExactRoute.KERNEL:
    log_det, trace_term, fisher_tr, layer_terms = _exact_by_kernel(
        apply_fn, params, x, y, fisher, key, num_samples, chunk_size, scaling, c, blocks,
        num_classes, forced=exact_route == ExactRoute.KERNEL, mesh=mesh)
    for name, (ld, tt) in layer_terms.items():
      per_layer[name] = ld + tt + norm_by_layer[name]
  elif form == FisherForm.EXACT:
    h = fisher_matrix(apply_fn, params, x, y, fisher=fisher, scaling=scaling, key=key,
                      num_samples=num_samples, chunk_size=chunk_size)
    log_det, trace_term = _matrix_terms(h, c)
    for name, idx in blocks.items():
      idx = np.asarray(idx)
      sub = h[np.ix_(idx, idx)]
      ld, tt = _matrix_terms(sub, c)
      per_layer[name] = ld + tt + norm_by_layer[name]
    fisher_tr = jnp.trace(h)
  else:
    if form == FisherForm.KFAC and not _locate_dense(
        params, _dense_calls(_hooked_forward(m), params, jnp.asarray(x)[:1])):
      _errors.fail("form", "a model with flax.linen.Dense (or flax.nnx.Linear) layers (whose "
                   "kernels are in params) for K-FAC; use form='diagonal'", "no such layer")
    diag = fisher_diagonal(apply_fn, params, x, y, fisher=fisher, scaling=scaling, key=key,
                           num_samples=num_samples, chunk_size=chunk_size)
    fisher_tr = jnp.asarray(sum(jnp.sum(v) for v in jax.tree_util.tree_leaves(diag)))
    contrib: dict[str, list] = {}
    covered: set = set()
    if form == FisherForm.KFAC:
      factors, located = _kfac(m, x, y, fisher, scaling, key, num_samples, chunk_size, sharing)
      if not factors:
        _errors.fail("form", "a model with flax.linen.Dense (or flax.nnx.Linear) layers (whose "
                     "kernels are in params) for K-FAC; use form='diagonal'", "no such layer")
      for mpath, (a, g) in factors.items():
        leaf_keys = located[mpath]
        contrib.setdefault(_layer_name(leaf_keys["kernel"]), []).append(_kron_terms(a, g, c))
        covered.update(leaf_keys.values())
    for k, v in zip(_leaf_keys(diag), jax.tree_util.tree_leaves(diag)):
      if k in covered:
        continue
      contrib.setdefault(_layer_name(k), []).append(_terms(c * jnp.maximum(v, 0)))
    log_det = jnp.asarray(sum(ld for parts in contrib.values() for ld, _ in parts))
    trace_term = jnp.asarray(sum(tt for parts in contrib.values() for _, tt in parts))
    for name in norm_by_layer:
      per_layer[name] = sum(ld + tt for ld, tt in contrib.get(name, [])) + norm_by_layer[name]
  norm_term = sq_norm / (2 * prior_scale ** 2)
  total = log_det + trace_term + norm_term
  if not bool(jnp.isfinite(total)) or not bool(jnp.isfinite(fisher_tr)):
    _errors.fail("model", "finite logits and Fisher on these params and inputs",
                 f"information {float(total)}, Fisher trace {float(fisher_tr)}")
  return WeightInformation(total=total, per_layer=per_layer,
                           log_det=log_det, trace_term=trace_term, norm_term=norm_term,
                           fisher_trace=fisher_tr, num_params=num_params)


def _segments(idx: list) -> tuple:
  """Sorted column indices as a tuple of contiguous ``(start, stop)`` ranges."""
  out: list[list[int]] = []
  for i in sorted(idx):
    if out and out[-1][1] == i:
      out[-1][1] = i + 1
    else:
      out.append([i, i + 1])
  return tuple((a, b) for a, b in out)


def _exact_by_kernel(apply_fn, params, x, y, fisher, key, num_samples, chunk_size, scaling, c,
                     blocks: dict[str, list], num_classes: int, forced: bool, mesh=None):
  """The EXACT form by the kernel route: ``(log_det, trace_term, tr H, {layer: (ld, tt)})``.

  Each layer's terms come from its Gram ``G_l G_l^T`` when ``n m < d_l`` (or ``forced``), else
  from its ``d_l x d_l`` Fisher block; a layer holding every parameter reuses the total.
  """
  x = jnp.asarray(x)
  n = x.shape[0]
  size = n * _factor_rows(fisher, num_classes, num_samples)
  names = list(blocks)
  parts = tuple(_segments(blocks[name]) for name in names)
  d = sum(len(blocks[name]) for name in names)
  whole = [p for p, name in enumerate(names) if len(blocks[name]) == d]
  gram_parts = tuple(p for p, name in enumerate(names)
                     if p not in whole and (forced or size < len(blocks[name])))
  fisher_parts = tuple(p for p in range(len(names)) if p not in whole and p not in gram_parts)
  leaves = jax.tree_util.tree_leaves(params)
  itemsize = max(np.dtype(v.dtype).itemsize for v in leaves)
  chunk = _kernel_chunk_size(n, num_classes, d, itemsize, chunk_size)
  if mesh is not None:
    res = _sharded_kernel_grams(apply_fn, params, x, y, fisher, key, num_samples, chunk, parts,
                                gram_parts, fisher_parts,
                                _factor_rows(fisher, num_classes, num_samples), mesh)
  else:
    res = _kernel_grams(apply_fn, params, x, y, fisher, key, num_samples, chunk, parts,
                        gram_parts, fisher_parts)
  cs = c * _scale(n, scaling)  # eigenvalues of s K, times c
  log_det, trace_term = _matrix_terms(res.total, cs)
  fisher_tr = jnp.trace(res.total) * jnp.asarray(_scale(n, scaling), res.total.dtype)
  layer_terms = {}
  for p, name in enumerate(names):
    if p in whole:
      layer_terms[name] = (log_det, trace_term)
    elif p in res.grams:
      layer_terms[name] = _matrix_terms(res.grams.pop(p), cs)
    else:
      layer_terms[name] = _matrix_terms(res.fishers.pop(p), cs)
  return log_det, trace_term, fisher_tr, layer_terms


def information_lagrangian_posterior(curvature: jax.typing.ArrayLike, *, beta: float,
                                     prior_scale: float) -> jax.Array:
  """The optimal posterior covariance :math:`\\Sigma^* = \\beta (H + \\tfrac{\\beta}{\\lambda^2} I)^{-1}`
  (Achille, Paolini & Soatto, 2019, Prop. 3.1) for a ``d x d`` curvature ``H``.

  Args:
    curvature: ``(d, d)`` symmetric positive semi-definite ``H``.
    beta: Lagrange multiplier :math:`\\beta > 0`.
    prior_scale: prior standard deviation :math:`\\lambda > 0`.

  Returns:
    ``(d, d)`` covariance :math:`\\Sigma^*`.
  """
  _check_scalar("beta", beta)
  _check_scalar("prior_scale", prior_scale)
  h = jnp.asarray(curvature)
  _errors.check_rank("curvature", h, 2)
  if h.shape[0] != h.shape[1] or h.shape[0] == 0:
    _errors.fail("curvature", "a non-empty square (d, d) matrix", f"shape {h.shape}")
  _errors.check_finite("curvature", h)
  hn = np.asarray(h, dtype=float)
  scale = max(float(np.max(np.abs(hn))), 1e-300)
  if not np.allclose(hn, hn.T, rtol=0, atol=1e-8 * scale):
    _errors.fail("curvature", "a symmetric matrix", "an asymmetric one")
  # a host-side validation on a numpy float64 copy (pure numpy, not a JAX op)
  low = float(np.linalg.eigvalsh(0.5 * (hn + hn.T))[0])
  if low < -_PSD_RTOL * scale:
    _errors.fail("curvature", "a positive semi-definite matrix",
                 f"smallest eigenvalue {low:.3g} (largest |entry| {scale:.3g})")
  d = h.shape[0]
  return beta * jnp.linalg.inv(h + (beta / prior_scale ** 2) * jnp.eye(d, dtype=h.dtype))

