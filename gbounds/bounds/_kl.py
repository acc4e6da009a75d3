"""Binary KL divergence and its inverses (numerics shared by the CMI and PAC-Bayes bounds).

All quantities are in nats. The functions are pure ``jax.numpy`` code: they follow the dtype of
their inputs (float32 unless the caller enabled ``jax_enable_x64``), broadcast elementwise, and
are safe under ``jax.jit`` and ``jax.vmap``.

The inverses are computed by a fixed number of bisection steps (enough to reach the last bit of
the dtype on [0, 1]) followed by a few safeguarded Newton steps that fix the relative accuracy of
roots close to 0 or 1 (in ``p`` for the upper inverse, in ``log p`` for the lower one, where roots
such as ``1e-200`` occur when ``c >> q``). Absolute error: a few ulps (about 1e-16 in float64).

Every public function validates its arguments before computing anything: probabilities must lie
in [0, 1], budgets be ``>= 0`` (``inf`` allowed), and nothing may be NaN. The check is eager
(an :class:`gbounds.InvalidInputError` naming the argument) on concrete values; under
``jax.jit``/``jax.vmap`` it runs at execution time through :func:`gbounds._src.errors.error_if`, so a
traced call with an invalid value fails (JAX re-raises it as a runtime error whose text holds the
same message) instead of returning a number. :func:`_checked` and :func:`_check_broadcast` are
shared with the CMI and PAC-Bayes modules.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy
from jax.typing import ArrayLike

from gbounds._src.errors import error_if, fail, is_concrete

# Bisection on [0, 1] halves the bracket each step: 64 steps take it below the float64 spacing
# of numbers in [0.5, 1]; the Newton steps that follow fix the relative accuracy near 0.
_BISECTION_STEPS = 80
_NEWTON_STEPS = 6


def _float_dtype(*xs):
  dtype = jnp.result_type(*xs)
  if not jnp.issubdtype(dtype, jnp.floating):
    dtype = jnp.result_type(float)
  return dtype



# ----------------------------------------------------------------------------------------------
# Argument validation shared by the bound helpers (_kl, _cmi, _pac_bayes).

_INF = float("inf")
# domain -> (what is expected, predicate ok(xp, x) on float values; NaN fails every predicate).
_DOMAINS = {
    "probability": ("probabilities in [0, 1]", lambda xp, x: (x >= 0) & (x <= 1)),
    "open_unit": ("values in the open interval (0, 1)", lambda xp, x: (x > 0) & (x < 1)),
    "budget": ("values >= 0 in nats (inf allowed, no NaN)", lambda xp, x: x >= 0),
    "nonnegative": ("finite values >= 0", lambda xp, x: (x >= 0) & (x < _INF)),
    "positive": ("finite values > 0", lambda xp, x: (x > 0) & (x < _INF)),
    "count": ("integers >= 1", lambda xp, x: (x >= 1) & (x < _INF) & (x == xp.floor(x))),
    "nonnegative_count": ("finite integer counts >= 0",
                          lambda xp, x: (x >= 0) & (x < _INF) & (x == xp.floor(x))),
    "finite": ("finite values (no NaN or inf)", lambda xp, x: xp.abs(x) < _INF),
}


def _describe_bad(arr: np.ndarray, good: np.ndarray) -> str:
  if arr.size == 1:
    return repr(arr.reshape(()).item())
  bad = arr[~good]
  return (f"{bad.size} of {arr.size} entries outside it (first {bad.reshape(-1)[0].item()!r}; "
          f"shape {arr.shape})")


def _checked(name: str, x, domain: str):
  """Validates ``x`` against ``domain`` (a key of :data:`_DOMAINS`) and returns it.

  Eager on concrete values (raises :class:`gbounds.InvalidInputError` naming ``name``); under a
  JAX transformation the check is threaded through ``error_if`` (a host callback) so the traced
  computation fails at run time instead of returning a number.
  """
  what, ok = _DOMAINS[domain]
  if is_concrete(x):
    try:
      arr = np.asarray(x)
    except (TypeError, ValueError) as e:  # ragged lists, objects
      fail(name, f"a numeric array of {what}", f"{type(x).__name__} ({e})")
    if arr.dtype.kind not in "biuf":
      fail(name, f"a real numeric array of {what}", f"dtype {arr.dtype}")
    vals = arr.astype(np.float64)
    with np.errstate(invalid="ignore"):
      good = np.asarray(ok(np, vals), bool)
    if not np.all(good):
      fail(name, what, _describe_bad(vals, good))
    return x
  x = jnp.asarray(x)
  if not (jnp.issubdtype(x.dtype, jnp.number) or x.dtype == jnp.bool_) or jnp.issubdtype(
      x.dtype, jnp.complexfloating):
    fail(name, f"a real numeric array of {what}", f"dtype {x.dtype}")
  xf = x.astype(_float_dtype(x))
  return error_if(x, ~ok(jnp, xf),
                  f"{name}: expected {what}, got a value outside that (or NaN) instead "
                  "(checked at run time under a JAX transformation).")


def _check_broadcast(names, *xs) -> None:
  """Raises naming the first argument whose shape does not broadcast against the earlier ones."""
  shape = np.shape(xs[0])
  for name, x in zip(names[1:], xs[1:]):
    try:
      shape = np.broadcast_shapes(shape, np.shape(x))
    except ValueError:
      fail(name, f"a shape that broadcasts against {' and '.join(names[:names.index(name)])} "
           f"{shape}", f"shape {np.shape(x)}")


def _x_minus_log1p(x, log_b, log_a):
  # phi(x) = x - log(1 + x) >= 0 with 1 + x = b / a, without cancellation: Taylor series
  # x^2/2 - x^3/3 + ... for |x| < 0.02 (truncation error below 1e-18 relative), log1p for
  # x >= -1/2, and log b - log a below (where 1 + x rounds badly, e.g. b << a).
  small = jnp.abs(x) < 0.02
  xs = jnp.where(small, x, jnp.zeros_like(x))
  series = jnp.zeros_like(x)
  for k in range(12, 1, -1):  # Horner for sum_{k>=2} (-1)^k x^k / k
    series = xs * (((-1) ** k) / k + series)
  series = xs * series
  mid = x >= -0.5
  log1p_x = jnp.where(mid, jnp.log1p(jnp.where(mid, x, jnp.zeros_like(x))), log_b - log_a)
  return jnp.where(small, series, x - log1p_x)


def binary_kl(q: ArrayLike, p: ArrayLike) -> jax.Array:
  r"""Binary Kullback-Leibler divergence in nats.

  .. math::
    \mathrm{kl}(q \,\|\, p) = q \log\frac{q}{p} + (1 - q) \log\frac{1 - q}{1 - p},

  with the conventions :math:`0 \log(0 / x) = 0` and :math:`a \log(a / 0) = +\infty` for
  :math:`a > 0` (so ``kl(0 || 0) = kl(1 || 1) = 0`` and ``kl(q || 0) = inf`` for ``q > 0``).

  Args:
    q: first Bernoulli parameter(s), in [0, 1].
    p: second Bernoulli parameter(s), in [0, 1]; broadcast against ``q``.

  Returns:
    ``kl(q || p) >= 0`` in nats, with the broadcast shape of ``q`` and ``p``.
  """
  q = _checked("q", q, "probability")
  p = _checked("p", p, "probability")
  _check_broadcast(("q", "p"), q, p)
  return _binary_kl(q, p)


@jax.jit
def _binary_kl(q, p):
  dtype = _float_dtype(q, p)
  q = jnp.asarray(q, dtype)
  p = jnp.asarray(p, dtype)
  # xlogy(0, nan) == 0 covers 0/0 at the edges; a / 0 = inf gives +inf for a > 0.
  # With d = p - q: kl = q phi(d / q) + (1 - q) phi(-d / (1 - q)), phi(x) = x - log1p(x); the
  # linear parts cancel exactly, which keeps kl accurate for p close to q (kl ~ d^2 / 2q(1-q)).
  inner = (q > 0) & (q < 1)
  qs = jnp.where(inner, q, jnp.full_like(q, 0.5))
  d = p - q
  out = (qs * _x_minus_log1p(d / qs, jnp.log(p), jnp.log(qs))
         + (1 - qs) * _x_minus_log1p(-d / (1 - qs), jnp.log1p(-p), jnp.log1p(-qs)))
  out = jnp.where(q == 0, -jnp.log1p(-p), out)
  out = jnp.where(q == 1, -jnp.log(p), out)
  return jnp.maximum(out, jnp.zeros((), dtype))


def _dkl_dp(q, p):
  # d/dp kl(q || p) = (p - q) / (p (1 - p)).
  return (p - q) / (p * (1 - p))


def kl_inverse_upper(q: ArrayLike, c: ArrayLike) -> jax.Array:
  r"""Upper inverse of the binary KL divergence.

  .. math::
    \mathrm{kl}^{-1}_{+}(q, c) = \sup\{p \in [q, 1] : \mathrm{kl}(q \,\|\, p) \le c\}.

  Exact (to the last few ulps of the dtype; 1e-12 in float64) everywhere in the domain,
  including the edges: ``c = 0`` gives ``q``; ``q = 0`` gives ``1 - exp(-c)`` (closed form);
  ``q = 1`` or ``c = inf`` gives 1. Used, e.g., by Seeger's PAC-Bayes-kl bound and by the
  binary-KL e-CMI bound of Hellstrom & Durisi (2022).

  Args:
    q: empirical value(s) in [0, 1].
    c: budget(s) in nats, ``>= 0`` (``inf`` allowed); broadcast against ``q``.

  Returns:
    The supremum, with the broadcast shape of ``q`` and ``c``.
  """
  q = _checked("q", q, "probability")
  c = _checked("c", c, "budget")
  _check_broadcast(("q", "c"), q, c)
  return _kl_inverse_upper(q, c)


@jax.jit
def _kl_inverse_upper(q, c):
  dtype = _float_dtype(q, c)
  q = jnp.clip(jnp.asarray(q, dtype), 0, 1)
  c = jnp.asarray(c, dtype)
  q, c = jnp.broadcast_arrays(q, c)
  one = jnp.ones((), dtype)

  def feasible(p):
    return _binary_kl(q, p) <= c

  def bisect(_, bracket):
    lo, hi = bracket
    mid = lo + (hi - lo) / 2
    ok = feasible(mid)
    return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid)

  lo, hi = jax.lax.fori_loop(0, _BISECTION_STEPS, bisect, (q, jnp.ones_like(q)))

  def newton(_, p):
    # From p with kl(q||p) > c, a Newton step on the convex increasing kl(q||.) - c lands in
    # [root, p]; clamp to the bisection bracket to be safe against rounding.
    f = _binary_kl(q, p) - c
    step = f / _dkl_dp(q, p)
    new = jnp.clip(p - step, lo, p)
    good = (f > 0) & jnp.isfinite(new) & (p > q) & (p < one)
    return jnp.where(good, new, p)

  p = jax.lax.fori_loop(0, _NEWTON_STEPS, newton, hi)
  # Edges in closed form.
  p = jnp.where(q == 0, -jnp.expm1(-c), p)
  p = jnp.where(c == 0, q, p)
  p = jnp.where((q == 1) | (c == jnp.inf), one, p)
  return p


# duplicates: kl_inverse_lower mirrors kl_inverse_upper (same checks, the bisection bracket on the
# other side of q); kept as two short functions so each side's edge cases (q = 0, q = 1, c = inf)
# stay explicit.
def kl_inverse_lower(q: ArrayLike, c: ArrayLike) -> jax.Array:
  r"""Lower inverse of the binary KL divergence.

  .. math::
    \mathrm{kl}^{-1}_{-}(q, c) = \inf\{p \in [0, q] : \mathrm{kl}(q \,\|\, p) \le c\}.

  Edges: ``c = 0`` gives ``q``; ``q = 1`` gives ``exp(-c)`` (closed form); ``q = 0`` or
  ``c = inf`` gives 0. Equivalent to ``1 - kl_inverse_upper(1 - q, c)``.

  Args:
    q: empirical value(s) in [0, 1].
    c: budget(s) in nats, ``>= 0`` (``inf`` allowed); broadcast against ``q``.

  Returns:
    The infimum, with the broadcast shape of ``q`` and ``c``.
  """
  q = _checked("q", q, "probability")
  c = _checked("c", c, "budget")
  _check_broadcast(("q", "c"), q, c)
  return _kl_inverse_lower(q, c)


@jax.jit
def _kl_inverse_lower(q, c):
  dtype = _float_dtype(q, c)
  q = jnp.clip(jnp.asarray(q, dtype), 0, 1)
  c = jnp.asarray(c, dtype)
  q, c = jnp.broadcast_arrays(q, c)
  zero = jnp.zeros((), dtype)

  def feasible(p):
    return _binary_kl(q, p) <= c

  def bisect(_, bracket):
    lo, hi = bracket
    mid = lo + (hi - lo) / 2
    ok = feasible(mid)
    return jnp.where(ok, lo, mid), jnp.where(ok, mid, hi)

  lo, hi = jax.lax.fori_loop(0, _BISECTION_STEPS, bisect, (jnp.zeros_like(q), q))

  def newton(_, t):
    # Newton in t = log p, where g(t) = kl(q || e^t) - c is convex and decreasing on p < q with
    # g'(t) = (p - q) / (1 - p); this reaches roots far below the bisection's absolute
    # resolution (e.g. p = 1e-100 when c >> q), and is clamped to the bisection bracket.
    p = jnp.exp(t)
    # kl(q || e^t) written in t so that it stays finite for p far below the smallest float.
    f = (xlogy(q, q) - q * t + xlogy(1 - q, 1 - q) - (1 - q) * jnp.log1p(-p)) - c
    new = jnp.clip(t - f * (1 - p) / (p - q), jnp.log(lo), t_hi)
    good = (p < q) & ~jnp.isnan(new)
    return jnp.where(good, new, t)

  t_hi = jnp.log(hi)
  # exp(log(q)) can round one ulp above q: the infimum never exceeds q.
  p = jnp.minimum(jnp.exp(jax.lax.fori_loop(0, _NEWTON_STEPS, newton, t_hi)), q)
  p = jnp.where(q == 1, jnp.exp(-c), p)
  p = jnp.where(c == 0, q, p)
  p = jnp.where((q == 0) | (c == jnp.inf), zero, p)
  return p
