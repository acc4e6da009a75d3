"""Plain-float references for the binary kl and its upper inverse (independent of gbounds)."""

import math


def kl(q: float, p: float) -> float:
  """Binary kl(q || p) in nats, plain floats, 0 log 0 = 0."""
  if p <= 0.0:
    return 0.0 if q == 0.0 else math.inf
  if p >= 1.0:
    return 0.0 if q == 1.0 else math.inf
  out = 0.0
  if q > 0:
    out += q * math.log(q / p)
  if q < 1:
    out += (1 - q) * math.log((1 - q) / (1 - p))
  return out


def kl_inv(q: float, c: float, steps: int = 200) -> float:
  """sup{p in [q, 1] : kl(q || p) <= c} by plain bisection."""
  lo, hi = q, 1.0
  for _ in range(steps):
    mid = 0.5 * (lo + hi)
    if kl(q, mid) <= c:
      lo = mid
    else:
      hi = mid
  return lo
