"""LIMIT: training a classifier on predicted logit gradients (Harutyunyan, Reing, Ver Steeg &
Galstyan, "Improving generalization by controlling label-noise information in neural network
weights", ICML 2020, arXiv 2002.07933).

The label-noise information in the weights is :math:`I(w; \\mathbf y \\mid \\mathbf x)`. Since the
weights depend on the labels only through the gradients, the classifier ``f`` is never shown the
gradient of its loss with respect to its logits,

.. math:: g_i = \\mathrm{softmax}(f(x_i)) - e_{y_i},

but only a prediction of it by an auxiliary network ``q`` that sees the input and not the label,

.. math:: \\hat g_i = \\mathrm{softmax}(f(x_i)) - \\mathrm{softmax}(q(x_i)),

optionally plus noise :math:`\\xi_i` (Gaussian: LIMIT_G, Laplace: LIMIT_L), which bounds the
information each step can carry. The classifier step is the back-propagation of
:math:`\\hat g + \\xi` through the network,

.. math:: \\nabla_w = \\frac{1}{s} \\sum_{i \\in B} J_i^\\top (\\hat g_i + \\xi_i) \\; [+\\, \\mathrm{wd}\\, w],
          \\qquad s = b \\text{ (ClassifierStep.MEAN, default) or } 1 \\text{ (ClassifierStep.SUM)}.

With MEAN and :math:`\\hat g = g`, :math:`\\xi = 0` (:attr:`GradientSource.TRUE_LABELS`) it is
exactly the gradient of the mean softmax cross-entropy that :func:`gbounds.train.train` follows.

Conventions and where they depart from the authors' public PyTorch code
(``hrayrhar/limit-label-memorization``, ``methods/limit.py`` and ``modules/nn_utils.py``):

* **Step scaling.** The authors' code replaces the gradient with respect to the logits by
  :math:`\\hat g_i` itself, so its classifier step is the *sum* over the batch (no ``1/b``):
  :attr:`ClassifierStep.SUM` reproduces it. The default :attr:`ClassifierStep.MEAN` divides by the
  batch size ``b``: under SGD that is a learning rate ``b`` times smaller than the authors' for the
  same ``learning_rate``, and under Adam (nearly invariant to the gradient's scale) the coupled
  weight decay ``wd w`` added to the step is ``b`` times stronger relative to the data term. The
  noise :math:`\\xi` is scaled with the step (it is added before back-propagation).
* **Noise parameterisation.** :attr:`NoiseParameterisation.SCALE` (default): ``noise_scale`` is
  the Gaussian standard deviation :math:`\\sigma` or the Laplace scale :math:`b_L` (standard
  deviation :math:`\\sqrt2\\,b_L`). :attr:`NoiseParameterisation.AUTHORS_LAMBDA`: ``noise_scale`` is
  the authors' ``lamb`` (the coefficient of their :math:`H(p, q)` term, > 0), with Gaussian
  :math:`\\sigma = 1/\\sqrt{2\\lambda}` and Laplace scale :math:`b_L = 1/\\lambda` (standard deviation
  :math:`\\sqrt2/\\lambda`), as their code samples it.
* **Noise default.** The authors' code uses the mean predicted gradient unless ``sample_from_q``
  is set (here :attr:`LimitNoise.NONE`); :class:`LimitConfig` defaults to Gaussian noise of
  standard deviation 0.1.
* **Warm-up** is counted in optimizer steps here (``warm_up_steps``), in epochs in their code.
* **Auxiliary loss.** The normalisation of the authors' squared / absolute error (mean over the
  batch and classes, or over the batch only) was not checked; here it is summed over classes and
  averaged over the batch, as written below.

The auxiliary network is trained on the same mini-batch with

.. math:: \\mathcal L_q = \\frac1b \\sum_i \\|\\hat g_i - g_i\\|_2^2 \\;(\\text{Gaussian}) \\text{ or }
          \\|\\hat g_i - g_i\\|_1 \\;(\\text{Laplace}) \\; + \\; \\beta\\,\\frac1b \\sum_i \\|\\hat g_i\\|_2^2,

the negative log-likelihood of the true gradient under the predicted one (up to constants) plus
the penalty on the predicted gradients' norm that limits how much label information ``q`` can pass
on (the paper's :math:`\\beta`; 0.03 to 10 work). The classifier's logits enter :math:`\\mathcal L_q`
with a stop-gradient, and ``q``'s logits enter the classifier's step with one.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gbounds._src import errors as _errors
from gbounds._src import results as _results
from gbounds.train._train import Optimizer, _optax_promotion, _tree_from_json

ApplyFn = Callable[[Any, jax.Array], jax.Array]


class LimitNoise(enum.IntEnum):
  """Noise added to the predicted gradient before the classifier sees it.

  Attributes:
    NONE: no noise (the mean of the predicted-gradient distribution).
    GAUSSIAN: :math:`\\xi \\sim N(0, \\sigma^2 I)` with :math:`\\sigma` = ``noise_scale`` (LIMIT_G).
    LAPLACE: :math:`\\xi_c \\sim \\mathrm{Laplace}(0, b)` i.i.d. with :math:`b` = ``noise_scale`` (LIMIT_L;
      standard deviation :math:`\\sqrt2\\, b`).
  """
  NONE = 0
  GAUSSIAN = 1
  LAPLACE = 2


class AuxLoss(enum.IntEnum):
  """Loss of the auxiliary network against the true gradient: ``L2`` (squared, LIMIT_G) or ``L1``
  (LIMIT_L)."""
  L2 = 1
  L1 = 2


class ClassifierStep(enum.IntEnum):
  """How the classifier's pseudo-gradient is normalised over a mini-batch of size ``b``.

  Attributes:
    MEAN: :math:`\\frac1b \\sum_i J_i^\\top(\\hat g_i + \\xi_i)`, the gradient of a mean loss (default;
      with true labels exactly what :func:`gbounds.train.train` follows).
    SUM: :math:`\\sum_i J_i^\\top(\\hat g_i + \\xi_i)`, as the authors' public code (a factor ``b`` in
      the SGD learning rate; under Adam, a ``b`` times weaker coupled weight decay than MEAN).
  """
  MEAN = 1
  SUM = 2


class NoiseParameterisation(enum.IntEnum):
  """What ``LimitConfig.noise_scale`` means.

  Attributes:
    SCALE: the Gaussian standard deviation, or the Laplace scale ``b`` (std ``sqrt(2) b``); default.
    AUTHORS_LAMBDA: the authors' ``lamb`` (> 0): Gaussian std ``1/sqrt(2 lamb)``, Laplace scale
      ``1/lamb``.
  """
  SCALE = 1
  AUTHORS_LAMBDA = 2


class GradientSource(enum.IntEnum):
  """Which logit gradient drives the classifier.

  Attributes:
    PREDICTED: the auxiliary network's prediction :math:`\\hat g` (LIMIT).
    TRUE_LABELS: the true :math:`g = \\mathrm{softmax}(f) - e_y` (the auxiliary network is still
      trained but unused): plain cross-entropy training plus the optional noise. Used to check the
      trainer against :func:`gbounds.train.train`.
  """
  PREDICTED = 1
  TRUE_LABELS = 2


@dataclasses.dataclass(frozen=True)
class LimitConfig:
  """A LIMIT recipe (classifier fields mirror :class:`gbounds.train.TrainConfig`).

  Attributes:
    optimizer, learning_rate, momentum, weight_decay: the classifier's optimizer.
    steps: optimizer steps (both networks step together).
    batch_size: mini-batch size (None: full batch); batches are drawn as in :func:`gbounds.train.train`.
    seed: seed of the batch order; the noise uses ``fold_in(key(seed), 1)``.
    aux_optimizer, aux_learning_rate: the auxiliary network's optimizer.
    beta: coefficient of :math:`E\\|\\hat g\\|^2` (> 0 unless ``gradient_source`` is TRUE_LABELS).
    aux_loss: :class:`AuxLoss`.
    noise: :class:`LimitNoise`; noise_scale its scale (>= 0).
    gradient_source: :class:`GradientSource`.
    warm_up_steps: the classifier is frozen for the first steps while ``q`` learns.
    classifier_step: :class:`ClassifierStep` (keyword-only; default MEAN, the authors' code is SUM).
    noise_parameterisation: :class:`NoiseParameterisation` (keyword-only; default SCALE, the
      authors' code is AUTHORS_LAMBDA).
  """
  optimizer: Optimizer = Optimizer.ADAM
  learning_rate: float = 1e-3
  momentum: float = 0.9
  weight_decay: float = 0.0
  steps: int = 1000
  batch_size: int | None = 128
  seed: int = 0
  aux_optimizer: Optimizer = Optimizer.ADAM
  aux_learning_rate: float = 1e-3
  beta: float = 0.1
  aux_loss: AuxLoss = AuxLoss.L2
  noise: LimitNoise = LimitNoise.GAUSSIAN
  noise_scale: float = 0.1
  gradient_source: GradientSource = GradientSource.PREDICTED
  warm_up_steps: int = 0
  _: dataclasses.KW_ONLY
  classifier_step: ClassifierStep = ClassifierStep.MEAN
  noise_parameterisation: NoiseParameterisation = NoiseParameterisation.SCALE

  def __post_init__(self):
    for name, cls in (("optimizer", Optimizer), ("aux_optimizer", Optimizer), ("aux_loss", AuxLoss),
                      ("noise", LimitNoise), ("gradient_source", GradientSource),
                      ("classifier_step", ClassifierStep),
                      ("noise_parameterisation", NoiseParameterisation)):
      object.__setattr__(self, name, _errors.as_enum(name, getattr(self, name), cls))
    for name in ("learning_rate", "aux_learning_rate", "momentum", "weight_decay", "noise_scale",
                 "beta"):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        _errors.fail(name, "a finite real number", repr(v))
    for name in ("steps", "warm_up_steps", "seed"):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        _errors.fail(name, "an integer", repr(v))
    if self.batch_size is not None and (isinstance(self.batch_size, bool) or not isinstance(
        self.batch_size, (int, np.integer))):
      _errors.fail("batch_size", "a positive integer or None", repr(self.batch_size))
    if (self.noise_parameterisation == NoiseParameterisation.AUTHORS_LAMBDA
        and self.noise != LimitNoise.NONE):
      _errors.check_positive("noise_scale", self.noise_scale)
    if not 0 <= self.momentum < 1:
      _errors.fail("momentum", "a value in [0, 1)", self.momentum)
    _errors.check_positive("learning_rate", self.learning_rate)
    _errors.check_positive("aux_learning_rate", self.aux_learning_rate)
    _errors.check_positive("weight_decay", self.weight_decay, strict=False)
    _errors.check_positive("noise_scale", self.noise_scale, strict=False)
    if self.gradient_source == GradientSource.PREDICTED:
      _errors.check_positive("beta", self.beta)
    else:
      _errors.check_positive("beta", self.beta, strict=False)
    for name in ("steps", "warm_up_steps"):
      v = getattr(self, name)
      if int(v) != v or v < 0:
        _errors.fail(name, "a non-negative integer", v)
    if self.batch_size is not None and (int(self.batch_size) != self.batch_size
                                        or self.batch_size < 1):
      _errors.fail("batch_size", "a positive integer or None", self.batch_size)


class LimitResult(NamedTuple):
  """Trained classifier and auxiliary parameters, and the last step's auxiliary loss.

  Attributes:
    params: the classifier's trained parameters.
    aux_params: the auxiliary network's trained parameters.
    aux_loss: :math:`\\mathcal L_q` on the last step's mini-batch (a scalar).
  """
  params: Any
  aux_params: Any
  aux_loss: jax.Array | np.ndarray  # numpy after from_dict

  # duplicates: thin to_dict/from_dict wrappers over gbounds._src.results (see ntk._dynamics).
  def to_dict(self) -> dict[str, Any]:
    """JSON-ready dict (parameter pytrees as nested dicts of lists).

    Returns:
      ``{"params": ..., "aux_params": ..., "aux_loss": ...}``.
    """
    return _results.to_dict(self)

  @classmethod
  def from_dict(cls, data: dict[str, Any]) -> LimitResult:
    """Rebuilds a :class:`LimitResult` from :meth:`to_dict` output.

    Args:
      data: the dict.

    Returns:
      The result with numpy-array leaves (float64: JSON numbers).
    """
    return cls(_tree_from_json(data["params"]), _tree_from_json(data["aux_params"]),
               np.asarray(data["aux_loss"]))


def _optimizer(kind: Optimizer, lr: float, momentum: float) -> optax.GradientTransformation:
  if kind == Optimizer.SGD:
    return optax.sgd(lr)
  if kind == Optimizer.MOMENTUM:
    return optax.sgd(lr, momentum=momentum)
  return optax.adam(lr)


def limit_gradients(apply_fn: ApplyFn, aux_apply_fn: ApplyFn, params: Any, aux_params: Any,
                    x: jax.Array, y: jax.Array, noise: jax.Array, config: LimitConfig):
  """One LIMIT step's gradients on a batch (pure; jit-able).

  Args:
    apply_fn: classifier, ``apply_fn(params, x) -> logits (b, k)``.
    aux_apply_fn: auxiliary network ``q`` with the same output size.
    params: classifier parameters.
    aux_params: auxiliary parameters.
    x: the mini-batch inputs ``(b, ...)``.
    y: its integer labels ``(b,)``.
    noise: :math:`\\xi`, ``(b, k)`` (zeros for no noise).
    config: :class:`LimitConfig`.

  Returns:
    ``(classifier_grads, aux_grads, aux_loss)``: the classifier's pseudo-gradient
    :math:`\\frac1s \\sum_i J_i^\\top (\\hat g_i + \\xi_i)` (+ weight decay; :math:`s = b` for
    :attr:`ClassifierStep.MEAN`, 1 for ``SUM``) and the gradient of
    :math:`\\mathcal L_q` with respect to the auxiliary parameters.
  """
  if not isinstance(config, LimitConfig):
    _errors.fail("config", "a gbounds.train.LimitConfig", type(config).__name__)
  logits, vjp = jax.vjp(lambda p: apply_fn(p, x), params)
  k = logits.shape[-1]
  if logits.ndim != 2 or np.shape(noise) != logits.shape or np.shape(y) != logits.shape[:1]:
    _errors.fail("noise and y", f"shapes {logits.shape} and {logits.shape[:1]} (logits and batch)",
                 f"{np.shape(noise)} and {np.shape(y)}")
  p_f = jax.nn.softmax(jax.lax.stop_gradient(logits), axis=-1)
  g_true = p_f - jax.nn.one_hot(y, k, dtype=logits.dtype)

  def aux_objective(qp):
    g_hat = p_f - jax.nn.softmax(aux_apply_fn(qp, x), axis=-1)
    diff = g_hat - g_true
    fit = jnp.sum(diff ** 2, -1) if config.aux_loss == AuxLoss.L2 else jnp.sum(jnp.abs(diff), -1)
    return jnp.mean(fit) + config.beta * jnp.mean(jnp.sum(g_hat ** 2, -1)), g_hat

  (aux_loss, g_hat), aux_grads = jax.value_and_grad(aux_objective, has_aux=True)(aux_params)
  g = g_true if config.gradient_source == GradientSource.TRUE_LABELS else g_hat
  g = jax.lax.stop_gradient(g) + noise
  if config.classifier_step == ClassifierStep.MEAN:
    g = g / x.shape[0]
  (grads,) = vjp(g.astype(logits.dtype))
  if config.weight_decay:
    grads = jax.tree_util.tree_map(lambda gr, w: gr + config.weight_decay * w, grads, params)
  return grads, aux_grads, aux_loss


def noise_scale_of(config: LimitConfig) -> float:
  """The Gaussian standard deviation or the Laplace scale that ``config`` samples with.

  ``noise_scale`` itself under :attr:`NoiseParameterisation.SCALE`; under ``AUTHORS_LAMBDA``
  :math:`1/\\sqrt{2\\lambda}` (Gaussian) or :math:`1/\\lambda` (Laplace), with
  :math:`\\lambda` = ``noise_scale``.
  0 for :attr:`LimitNoise.NONE`.

  Args:
    config: :class:`LimitConfig`.

  Returns:
    The scale as a Python float.
  """
  if config.noise == LimitNoise.NONE:
    return 0.0
  s = float(config.noise_scale)
  if config.noise_parameterisation == NoiseParameterisation.SCALE:
    return s
  # A Python float (weakly typed): the noise keeps the dtype of the gradients it perturbs.
  return float(1.0 / np.sqrt(2.0 * s)) if config.noise == LimitNoise.GAUSSIAN else float(1.0 / s)


def _sample_noise(config: LimitConfig, key, shape, dtype):
  scale = noise_scale_of(config)
  if config.noise == LimitNoise.GAUSSIAN and scale > 0:
    return scale * jax.random.normal(key, shape, dtype)
  if config.noise == LimitNoise.LAPLACE and scale > 0:
    return scale * jax.random.laplace(key, shape, dtype)
  return jnp.zeros(shape, dtype)


def _train_limit(apply_fn, aux_apply_fn, config: LimitConfig, params, aux_params, x, y):
  opt = _optimizer(config.optimizer, config.learning_rate, config.momentum)
  aux_opt = _optimizer(config.aux_optimizer, config.aux_learning_rate, config.momentum)
  n = x.shape[0]
  b = n if config.batch_size is None else min(config.batch_size, n)
  per_epoch = max(1, n // b)
  key = jax.random.fold_in(jax.random.key(config.seed), 0)  # = gbounds.train.train's batch key
  noise_key = jax.random.fold_in(jax.random.key(config.seed), 1)
  idx = jnp.arange(n)
  k = jax.eval_shape(apply_fn, params, x[:1]).shape[-1]
  dtype = jax.eval_shape(apply_fn, params, x[:1]).dtype

  def step(s, carry):
    p, q, st, qst, _ = carry
    if config.batch_size is None:
      bi = idx
    else:
      perm = jax.random.permutation(jax.random.fold_in(key, s // per_epoch), n)
      bi = idx[jax.lax.dynamic_slice_in_dim(perm, (s % per_epoch) * b, b)]
    xi = jax.random.fold_in(noise_key, s)
    noise = _sample_noise(config, xi, (bi.shape[0], k), dtype)
    grads, qgrads, qloss = limit_gradients(apply_fn, aux_apply_fn, p, q, x[bi], y[bi], noise, config)
    with _optax_promotion():
      qupd, qst = aux_opt.update(qgrads, qst, q)
      upd, new_st = opt.update(grads, st, p)
    q = optax.apply_updates(q, qupd)
    new_p = optax.apply_updates(p, upd)
    frozen = s < config.warm_up_steps
    p = jax.tree_util.tree_map(lambda a, c: jnp.where(frozen, a, c), p, new_p)
    st = jax.tree_util.tree_map(lambda a, c: jnp.where(frozen, a, c), st, new_st)
    return p, q, st, qst, qloss

  init = (params, aux_params, opt.init(params), aux_opt.init(aux_params), jnp.zeros((), dtype))
  p, q, _, _, qloss = jax.lax.fori_loop(0, config.steps, step, init)
  return p, q, qloss


def _num_outputs(name, fn, params, x) -> int:
  try:
    out = jax.eval_shape(fn, params, x[:1])
  except _errors.GBoundsError:
    raise
  except Exception as exc:  # noqa: BLE001 - name the argument instead of a deep traceback
    _errors.fail(name, "a function that accepts (params, x) with these params and inputs",
                 f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
  if not hasattr(out, "shape") or len(out.shape) != 2 or out.shape[-1] < 2:
    _errors.fail(name, "logits of shape (batch, k) with k >= 2 classes",
                 f"{getattr(out, 'shape', type(out).__name__)}")
  return int(out.shape[-1])


def train_limit(apply_fn: ApplyFn, params: Any, aux_apply_fn: ApplyFn, aux_params: Any,
                x: jax.typing.ArrayLike, y: jax.typing.ArrayLike, config: LimitConfig
                ) -> LimitResult:
  """Trains a classifier with LIMIT (see the module docstring for the update rules).

  Args:
    apply_fn: classifier, ``apply_fn(params, x) -> logits (batch, k)``.
    params: its initial parameters.
    aux_apply_fn: auxiliary network with the same output size ``k`` (it never sees ``y``).
    aux_params: its initial parameters.
    x: inputs ``(n, ...)``.
    y: integer (possibly noisy) labels ``(n,)``.
    config: :class:`LimitConfig`.

  Returns:
    :class:`LimitResult`.
  """
  if not isinstance(config, LimitConfig):
    _errors.fail("config", "a gbounds.train.LimitConfig", type(config).__name__)
  for name, fn in (("apply_fn", apply_fn), ("aux_apply_fn", aux_apply_fn)):
    if not callable(fn):
      _errors.fail(name, "a callable apply_fn(params, x) -> logits", type(fn).__name__)
  if np.ndim(x) < 1:
    _errors.fail("x", "an input batch with a leading batch axis", f"shape {np.shape(x)}")
  _errors.check_nonempty("x", x)
  y = np.asarray(y)
  _errors.check_rank("y", y, 1)
  _errors.check_same_leading(("x", "y"), x, y)
  _errors.check_finite("x", x)
  _errors.check_finite_tree("params", params)
  _errors.check_finite_tree("aux_params", aux_params)
  x = jnp.asarray(x)
  k = _num_outputs("apply_fn", apply_fn, params, x)
  kq = _num_outputs("aux_apply_fn", aux_apply_fn, aux_params, x)
  if k != kq:
    _errors.fail("aux_apply_fn", f"{k} outputs (as the classifier)", kq)
  _errors.check_labels("y", y, k)
  y = y.astype(np.int32)
  return train_limit_fn(apply_fn, aux_apply_fn, config)(params, aux_params, x, jnp.asarray(y))


@functools.lru_cache(maxsize=32)
def _limit_program(apply_fn, aux_apply_fn, config: LimitConfig):
  return jax.jit(lambda p, q, xx, yy: _train_limit(apply_fn, aux_apply_fn, config, p, q, xx, yy))


def train_limit_fn(apply_fn: ApplyFn, aux_apply_fn: ApplyFn, config: LimitConfig
                   ) -> Callable[[Any, Any, jax.Array, jax.Array], LimitResult]:
  """Compile-once LIMIT trainer: the program behind :func:`train_limit`.

  Cached on ``(apply_fn, aux_apply_fn, config)`` (function identities, the frozen config's
  value): repeated calls on the same shapes reuse one compiled program.

  Args:
    apply_fn: classifier, ``apply_fn(params, x) -> logits (batch, k)``.
    aux_apply_fn: auxiliary network with the same output size ``k``.
    config: :class:`LimitConfig`.

  Returns:
    ``fn(params, aux_params, x, y) -> LimitResult`` with ``y`` int32 labels; the update rules of
    the module docstring. Unchecked (use :func:`train_limit` for the checked entry point).
  """
  if not isinstance(config, LimitConfig):
    _errors.fail("config", "a gbounds.train.LimitConfig", type(config).__name__)
  for name, f in (("apply_fn", apply_fn), ("aux_apply_fn", aux_apply_fn)):
    if not callable(f):
      _errors.fail(name, "a callable apply_fn(params, x) -> logits", type(f).__name__)
  program = _limit_program(apply_fn, aux_apply_fn, config)

  def fn(params, aux_params, x, y):
    return LimitResult(*program(params, aux_params, x, y))
  return fn
