"""Label-free memorization measures: per-neuron activation entropy and neuron-neuron mutual information.

Bansal, Pruthi and Belinkov, "Measures of Information Reflect Memorization Patterns", NeurIPS 2022
(arXiv 2210.09404). On held-out *unlabelled* inputs, shortcut (heuristic) memorization lowers the
entropy of neuron activations and raises the mutual information between neurons; example-level
memorization (fitting noisy labels) does the opposite. Mean entropy and mean MI then rank models
without labels.

Everything takes an activation matrix ``A`` of shape ``(S, N)``: ``S`` inputs by ``N`` neurons
(see :func:`gbounds.models.capture_activations` and :func:`gbounds.models.stack_activations`). All values are in
nats.

* :func:`neuron_entropy` -- plug-in Shannon entropy of a histogram of each neuron,
  ``H_n = -sum_b p_nb log p_nb`` with ``p_nb = c_nb / S``.
* :func:`pairwise_mutual_information` -- KSG estimator 1 (Kraskov, Stoegbauer and Grassberger,
  Phys. Rev. E 69, 066138 (2004), eq. 8) for every pair of a neuron subset.
* :func:`activation_information` -- both, with the aggregates (mean entropy, mean MI) and a seeded
  neuron subsample for the MI.

The KSG nearest-neighbour search is exact and runs on blocks of pairs at once: for a pair
``(x, y)`` the samples are scanned outwards in the sorted order of ``x`` and, at the same time, in
the sorted order of ``y``, keeping the ``k`` smallest Chebyshev distances seen so far; a sample is
finished as soon as its current ``k``-th distance is no larger than the marginal distance to the
next unscanned sample of either scan (every unscanned sample is at least that far away in the
max-norm). The loop stops when every sample of the block is finished, so the work is
``O(S * w)`` per pair, ``w`` the scan depth the hardest sample of the block needs, instead of the
``O(S^2)`` of a dense search; memory is ``O(block_size * S)``. Marginal neighbour counts use
binary search in the sorted columns.

Cost on a CPU (256 neurons x 2,000 inputs, 32,640 pairs; benchmarks/bench_ksg.py): half the
samples need a scan depth of about 31 offsets in the better of the two orders and one in 200
more than 64, so the block scans 64 offsets in both orders before it first checks (about 256
candidate distances per sample, each a subtraction, a maximum and an insertion into the ``k``
smallest: 0.4-0.9 ns per candidate on 2 cores), then 16 at a time; the last ``cap`` samples get
a dense row. All gathers index the flattened rows (``_take_rows``: XLA's CPU gather along an
axis of a 2-D array was 15 times slower and made the binary searches, not the scan, the main
cost).

Ties (an activation value shared by several inputs: post-ReLU zeros, saturated units, quantised
activations) break KSG, whose derivation assumes that no two samples are at the same distance:
a sample whose ``k``-th neighbour is at distance 0 gets marginal counts of 0 and a term of several
nats (two independent ReLU units with a third of their inputs at 0 gave 1.1 nats, where the truth
is 0; a pair of true MI 0.18 gave 2.0). The estimators here therefore add tiny Gaussian noise to
every column that has a tie, as scikit-learn's ``mutual_info_regression`` does
(``1e-10 * max(std, mean |a|)`` standard deviation in float64; float32 needs a larger relative
scale, :data:`DEFAULT_TIE_NOISE`). Each atom becomes a tiny, locally uniform cluster, so KSG's
assumptions hold again at every scale, and the estimate converges to the MI of the mixed
discrete-continuous pair. Measured against quadrature of the true MI of post-ReLU Gaussian pairs
(a third of each unit at 0, ``S = 2,000``, ``k = 3``, 10 draws): mean errors from -0.002 to
+0.007 nats at true MI 0, 0.04, 0.18 and 0.67, single draws within 0.052, in float64 and float32
(standard deviation over noise seeds at fixed data: about 0.007 nats). The
mixed estimator of Gao, Kannan, Oh and Viswanath (NeurIPS 2017) was measured too: +0.02-0.03 nats
of bias at S = 2,000 from samples whose ``k``-th neighbour distance is set by a tied atom, and
it needs joint tie counts that the blocked search does not have. Columns without ties are not
touched (the estimate is then exactly KSG-1), and a constant column has MI exactly 0 with any
other column (returned without estimation: ``I(X; Y) = 0`` when ``X`` is constant).
"""

from __future__ import annotations

import enum
import functools
from typing import NamedTuple

import jax
import jax.core  # explicit: jax/__init__ imports it, then `del`s the name (hidden from pyright)
import jax.numpy as jnp
import numpy as np

from gbounds._src import batching as _batching
from gbounds._src import errors as _errors
from gbounds._src import progress as _progress
from gbounds._src import results as _results


class Binning(enum.Enum):
  """How histogram bin edges are chosen for :func:`neuron_entropy`.

  GLOBAL: one set of ``bins`` equal-width bins spanning the minimum to the maximum over *all*
    neurons analysed together (the paper's convention): entropies are comparable across neurons
    and a neuron with a narrow range has low entropy.
  PER_NEURON: each neuron's own range is cut into ``bins`` equal-width bins: the entropy then
    measures the shape of each neuron's distribution only (scale-free).
  """
  GLOBAL = "global"
  PER_NEURON = "per_neuron"


class PairwiseMI(NamedTuple):
  """KSG mutual information for pairs of neurons.

  Attributes:
    neurons: ``(n,)`` column indices of the analysed neurons in the activation matrix.
    pairs: ``(P, 2)`` column indices ``(i, j)``, ``i < j``, of each pair.
    values: ``(P,)`` MI estimates in nats (not clipped: small negative values are estimation
      noise around zero); exactly 0 for a pair with a constant neuron.
  """
  neurons: jax.Array | np.ndarray  # numpy after from_dict
  pairs: jax.Array | np.ndarray
  values: jax.Array | np.ndarray

  def to_dict(self) -> dict:
    """This result as a JSON-ready dict.

    Returns:
      ``{field: value}`` with arrays as nested lists (``gbounds._src.results``).
    """
    return _results.to_dict(self)

  @classmethod
  def from_dict(cls, data: dict) -> PairwiseMI:
    """Rebuilds the result from :meth:`to_dict` output.

    Args:
      data: the dict.

    Returns:
      A :class:`PairwiseMI` of numpy arrays (indices int64).
    """
    return cls(np.asarray(data["neurons"], np.int64),
               np.asarray(data["pairs"], np.int64).reshape(-1, 2), np.asarray(data["values"]))

  def matrix(self) -> jax.Array:
    """The MI values as a matrix.

    Returns:
      ``(n, n)`` symmetric matrix over :attr:`neurons` with NaN on the diagonal.
    """
    n = self.neurons.shape[0]
    pos = {int(c): r for r, c in enumerate(np.asarray(self.neurons))}
    p = np.asarray(self.pairs)
    a = np.array([pos[int(c)] for c in p[:, 0]], dtype=np.int64)
    b = np.array([pos[int(c)] for c in p[:, 1]], dtype=np.int64)
    values = jnp.asarray(self.values)  # numpy after from_dict: the default float dtype then
    m = jnp.full((n, n), jnp.nan, values.dtype)
    return m.at[a, b].set(values).at[b, a].set(values)


class ActivationInformation(NamedTuple):
  """Entropy and MI of the neurons of a network on a set of inputs (all in nats).

  Attributes:
    mean_entropy: mean over neurons of :attr:`entropies`.
    mean_mi: mean over pairs of :attr:`mi.values`.
    entropies: ``(N,)`` histogram entropy of every neuron.
    mi: the pairwise KSG MI of the (sub)sampled neurons.
  """
  mean_entropy: jax.Array | np.ndarray  # numpy after from_dict
  mean_mi: jax.Array | np.ndarray
  entropies: jax.Array | np.ndarray
  mi: PairwiseMI

  # duplicates: pairwise_mutual_information documents the same activation/neuron-sampling arguments
  # as activation_information, which calls it.
  def to_dict(self) -> dict:
    """This result as a JSON-ready dict.

    Returns:
      ``{field: value}`` with arrays as nested lists (``gbounds._src.results``).
    """
    return _results.to_dict(self)

  @classmethod
  def from_dict(cls, data: dict) -> ActivationInformation:
    """Rebuilds the result from :meth:`to_dict` output.

    Args:
      data: the dict.

    Returns:
      An :class:`ActivationInformation` of numpy arrays.
    """
    return cls(np.asarray(data["mean_entropy"]), np.asarray(data["mean_mi"]),
               np.asarray(data["entropies"]), PairwiseMI.from_dict(data["mi"]))


# ----------------------------------------------------------------------------- validation


def _check_activations(name: str, a, *, rank: int = 2) -> jax.Array:
  """Rank, emptiness, dtype and (eager, or jit-safe under tracing) finiteness of activations."""
  if a is None or isinstance(a, (str, bytes, dict)):
    _errors.fail(name, f"an array of rank {rank}", type(a).__name__)
  _errors.check_rank(name, a, rank)
  for axis in range(rank):
    _errors.check_nonempty(name, a, axis=axis)
  kind = np.dtype(getattr(a, "dtype", None) or np.asarray(a).dtype).kind
  if kind not in "biuf":
    _errors.fail(name, "real numbers (a bool, integer or floating dtype)",
                 f"dtype {getattr(a, 'dtype', None) or np.asarray(a).dtype}")
  a = jnp.asarray(a)
  if not jnp.issubdtype(a.dtype, jnp.floating):
    a = a.astype(jnp.result_type(float))
  elif jnp.finfo(a.dtype).bits < 32:       # float16 / bfloat16: too coarse for bins and distances
    a = a.astype(jnp.float32)
  if _errors.is_concrete(a):
    _errors.check_finite(name, a)
  else:
    a = _errors.error_if(a, ~jnp.all(jnp.isfinite(a)),
                         f"{name}: expected finite values (no NaN or inf), got non-finite "
                         "entries instead.")
  return a


def _check_int(name: str, value, minimum: int, maximum: int | None = None) -> int:
  """A Python or numpy integer (not a bool, not a whole float) in ``[minimum, maximum]``."""
  return _errors.check_int(name, value, minimum, maximum, whole_floats=False)


_MAX_BINS = 1 << 20   # the per-neuron counts are an (N, bins + 1) array


def _check_bins(bins) -> int:
  return _check_int("bins", bins, 2, _MAX_BINS)


def _check_k(k, num_samples: int, samples: str) -> int:
  """``1 <= k <= S - 1``: the ``k``-th neighbour of a sample must exist among the others."""
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
    _errors.fail("k", "an integer >= 1", repr(k))
  if k > num_samples - 1:
    _errors.fail("k", f"at most S - 1 = {num_samples - 1}: k + 1 = {k + 1} samples are needed "
                 f"and {samples} has S = {num_samples}", repr(k))
  return int(k)


def _check_tie_noise(tie_noise) -> float | None:
  if tie_noise is None:
    return None
  if isinstance(tie_noise, bool) or not isinstance(tie_noise, (int, float, np.integer,
                                                               np.floating)):
    _errors.fail("tie_noise", "None or a finite number >= 0", repr(tie_noise))
  if not np.isfinite(tie_noise) or tie_noise < 0 or tie_noise >= 1:
    _errors.fail("tie_noise", "None or a number in [0, 1) (a relative noise scale)",
                 repr(tie_noise))
  return float(tie_noise)


def _check_seed(seed) -> int:
  return _check_int("seed", seed, 0, 2 ** 32 - 1)


def _progress_callback(callback: _progress.ProgressCallback | None,
                       progress: bool | _progress.ProgressCallback | None,
                       desc: str) -> _progress.ProgressCallback | None:
  """The one ``callback(done, total)`` from ``callback`` and the ``progress`` flag.

  ``progress=True`` draws a tqdm bar (:class:`gbounds._src.progress.TqdmCallback`); a callable
  ``progress`` is taken as the callback (the earlier form of this argument).
  """
  if callback is not None and not callable(callback):
    _errors.fail("callback", "None or a callable callback(done, total)", type(callback).__name__)
  if progress is None or progress is False:
    return callback
  if isinstance(progress, bool):
    bar = _progress.TqdmCallback(desc, unit="pairs")
    if callback is None:
      return bar

    def both(done: int, total: int) -> None:
      bar(done, total)
      callback(done, total)
    return both
  if not callable(progress):
    _errors.fail("progress", "None, a bool or a callable progress(done, total)",
                 type(progress).__name__)
  if callback is not None:
    _errors.fail("progress", "a bool when callback is given (a callable progress is the "
                 "callback)", "a callable")
  return progress


# ----------------------------------------------------------------------------- entropy


def histogram_bin_indices(activations: jax.typing.ArrayLike, *, bins: int = 100,
                          binning: Binning | str = Binning.GLOBAL) -> jax.Array:
  """Bin index of every activation, ``(S, N)`` ints in ``[0, bins)``.

  Equal-width bins from ``lo`` to ``hi`` (global or per-neuron extremes):
  ``b = min(floor((a - lo) / (hi - lo) * bins), bins - 1)``, so the maximum falls in the last
  bin (numpy's ``histogram`` convention; no overflow bin). A zero range (constant activations)
  puts everything in bin 0.

  Args:
    activations: ``(S, N)`` activations.
    bins: number of bins, in ``[2, 2**20]``.
    binning: :class:`Binning`.

  Returns:
    ``(S, N)`` integer bin indices.
  """
  a = _check_activations("activations", activations)
  bins = _check_bins(bins)
  binning = _errors.as_enum("binning", binning, Binning)
  return _bin_indices_jit(a, bins, binning)


def _bin_indices(a: jax.Array, bins: int, binning: Binning) -> jax.Array:
  if binning is Binning.GLOBAL:
    lo, hi = jnp.min(a), jnp.max(a)
  else:
    lo, hi = jnp.min(a, axis=0, keepdims=True), jnp.max(a, axis=0, keepdims=True)  # (1, N)
  # halved operands: hi - lo cannot overflow for finite inputs, and halving is exact, so the
  # ratio is the same as (a - lo) / (hi - lo) wherever that does not overflow; for huge ranges
  # both sides are scaled by 2^-16 (exact) since XLA on CPU divides through a reciprocal,
  # which flushes to zero once it is subnormal
  width = hi / 2 - lo / 2
  huge = width > jnp.asarray(2.0 ** (jnp.finfo(a.dtype).maxexp - 8), a.dtype)
  pow2 = jnp.where(huge, jnp.asarray(2.0 ** -16, a.dtype), jnp.asarray(1, a.dtype))
  safe = jnp.where(width > 0, width * pow2, 1)
  idx = jnp.floor(((a / 2 - lo / 2) * pow2) / safe * bins)
  # a zero range (a constant neuron, or all activations equal) puts everything in bin 0
  idx = jnp.where(width > 0, idx, 0)
  return jnp.clip(idx, 0, bins - 1).astype(jnp.int32)


def neuron_entropy(activations: jax.typing.ArrayLike, *, bins: int = 100,
                   binning: Binning | str = Binning.GLOBAL) -> jax.Array:
  """Plug-in Shannon entropy (nats) of each neuron's activation histogram.

  ``H_n = -sum_b p_nb log p_nb``, ``p_nb = #{s : b(a_sn) = b} / S`` with the bins of
  :func:`histogram_bin_indices` (Bansal et al., NeurIPS 2022, Sec. 3; they use 100 global bins).
  ``0 <= H_n <= log(bins)``; a constant neuron has ``H_n = 0`` exactly (all its activations
  fall in one bin, ``p = S / S = 1``), with either binning.

  Args:
    activations: ``(S, N)`` activations of ``N`` neurons on ``S`` inputs.
    bins: number of equal-width bins, an integer in ``[2, 2**20]``.
    binning: :class:`Binning` (``"global"`` or ``"per_neuron"``).

  Returns:
    ``(N,)`` entropies in nats, in the dtype of ``activations`` (the default float dtype for
    integer or bool inputs, float32 for half precision).

  Raises:
    InvalidInputError: ``activations`` not a non-empty ``(S, N)`` real array or not finite (under
      ``jit`` the finiteness check runs at run time), ``bins`` or ``binning`` invalid.

  Example:
    >>> import jax.numpy as jnp
    >>> float(neuron_entropy(jnp.array([[0.0], [1.0]]), bins=2)[0])  # log 2
    0.6931...
  """
  a = _check_activations("activations", activations)
  bins = _check_bins(bins)
  binning = _errors.as_enum("binning", binning, Binning)
  return _entropy_jit(a, bins, binning)


def _entropy(a: jax.Array, bins: int, binning: Binning) -> jax.Array:
  s = a.shape[0]
  # counts by sorting each neuron's bin indices and binary search of the bin boundaries
  # (XLA's CPU scatter-add is several times slower)
  srt = jnp.sort(_bin_indices(a, bins, binning), axis=0).T                  # (N, S)
  edges = jnp.arange(bins + 1, dtype=srt.dtype)
  below = jax.vmap(lambda col: jnp.searchsorted(col, edges, side="left"))(srt)  # (N, bins + 1)
  counts = jnp.diff(below, axis=1)
  p = counts.astype(a.dtype) / s
  return 0.0 - jnp.sum(jax.scipy.special.xlogy(p, p), axis=1)   # 0 - 0 is +0, never -0


_bin_indices_jit = jax.jit(_bin_indices, static_argnums=(1, 2))
_entropy_jit = jax.jit(_entropy, static_argnums=(1, 2))


# ----------------------------------------------------------------------------- KSG


def _insert(best: tuple[jax.Array, ...], c: jax.Array) -> tuple[jax.Array, ...]:
  """Inserts candidate distances into the ascending k-smallest lists (elementwise)."""
  out = []
  for b in best:
    out.append(jnp.minimum(b, c))
    c = jnp.maximum(b, c)
  return tuple(out)


def _kth_smallest(dist: jax.Array, k: int) -> jax.Array:
  """The ``k``-th smallest entry of each column, counting repeated values (``(S, R)`` -> ``(R,)``).

  One pass over the rows keeping each column's ``k`` smallest values (XLA's CPU argmin or sort
  along rows is several times slower).
  """
  inf = jnp.asarray(jnp.inf, dist.dtype)
  best = tuple(jnp.full(dist.shape[1:], inf, dist.dtype) for _ in range(k))
  return jax.lax.fori_loop(0, dist.shape[0], lambda i, b: _insert(b, dist[i]), best,
                           unroll=8)[-1]


def _ksg_eps(x: jax.Array, y: jax.Array, ux: jax.Array, vx: jax.Array, ix: jax.Array,
             uy: jax.Array, vy: jax.Array, iy: jax.Array, k: int, chunk: int,
             cap: int, first: int = 0) -> jax.Array:
  """KSG ``k``-th neighbour distances ``eps`` for a block of ``B`` pairs; every argument is ``(B, S)``.

  ``x, y``: the pairs' samples in sample order; ``ux`` is ``x`` sorted, ``vx`` is ``y`` in that
  order and ``ix`` the position of each sample in it (likewise ``uy, vy, iy`` for the order of
  ``y``). Both orders are scanned outwards ``chunk`` offsets at a time (static slices of the
  padded rows, one fused loop per chunk) until at most ``cap`` samples of the block are
  uncertified; the rest get an exact dense row each, ``cap`` at a time. The first ``first``
  offsets are scanned before the first certification (which costs four gathers per sample).
  """
  nb, s = x.shape
  dtype = x.dtype
  inf = jnp.asarray(jnp.inf, dtype)
  pad = s + chunk + 1

  def padded(u, v):
    full = jnp.full((nb, pad), inf, dtype)
    zero = jnp.zeros((nb, pad), dtype)
    return (jnp.concatenate([-full, u, full], axis=1), jnp.concatenate([zero, v, zero], axis=1))

  sides = ((ux, vx, *padded(ux, vx), ix), (uy, vy, *padded(uy, vy), iy))

  def sl(a, off):
    return jax.lax.dynamic_slice_in_dim(a, pad + off, s, axis=1)

  def scan_chunk(d0, best):
    new = []
    for (u, v, upad, vpad, _), bst in zip(sides, best):
      for t in range(chunk):
        # d <= s - 1 + chunk < pad: the slices are never clamped, and past either end they read
        # the +-inf padding, so those candidates are +inf without a test
        d = d0 + t
        cr = jnp.maximum(sl(upad, d) - u, jnp.abs(sl(vpad, d) - v))
        cl = jnp.maximum(u - sl(upad, -d), jnp.abs(sl(vpad, -d) - v))
        bst = _insert(_insert(bst, cr), cl)
      new.append(bst)
    return tuple(new)

  def certify(d_next, best):
    # eps_hat = min of the two k-th distances found so far, an upper bound on eps; it is exact
    # once it is <= the marginal gap to the first unscanned sample of either order (every
    # unscanned sample is at least that far away in the max-norm)
    kth, gaps = [], []
    for (u, _, upad, _, inv), bst in zip(sides, best):
      gap = jnp.where(d_next <= s - 1, jnp.minimum(sl(upad, d_next) - u, u - sl(upad, -d_next)),
                      inf)
      kth.append(_take_rows(bst[-1], inv))
      gaps.append(_take_rows(gap, inv))
    eps_hat = jnp.minimum(*kth)
    return eps_hat, (eps_hat <= gaps[0]) | (eps_hat <= gaps[1])

  def cond(state):
    d, _, _, done = state
    return (d <= s - 1) & (jnp.sum(~done) > cap)

  def body(state):
    d, best, _, _ = state
    best = scan_chunk(d, best)
    eps_hat, done = certify(d + chunk, best)
    return d + chunk, best, eps_hat, done

  best = tuple(tuple(jnp.full((nb, s), inf, dtype) for _ in range(k)) for _ in range(2))
  eps, done = jnp.full((nb, s), inf, dtype), jnp.zeros((nb, s), bool)
  d0 = 1
  if first > 0:   # a loop of chunks (one long fused chunk compiles to a much slower loop)
    nfirst = min(-(-first // chunk), -(-(s - 1) // chunk))
    best = jax.lax.fori_loop(0, nfirst, lambda i, b: scan_chunk(1 + i * chunk, b), best)
    d0 = 1 + nfirst * chunk
    eps, done = certify(d0, best)
  _, _, eps, done = jax.lax.while_loop(cond, body, (jnp.asarray(d0), best, eps, done))

  # exact dense rows for the (at most a few) uncertified samples, cap at a time
  eps, done = eps.reshape(-1), done.reshape(-1)
  cols = jnp.arange(s)
  xcols, ycols = x.T, y.T

  def dense_cond(state):
    return ~jnp.all(state[1])

  def dense_body(state):
    eps, done = state
    sel = jnp.nonzero(~done, size=cap, fill_value=0)[0]
    valid = jnp.arange(cap) < jnp.sum(~done)
    b, p = sel // s, sel % s
    xr, yr = xcols[:, b], ycols[:, b]                                # (S, cap)
    dist = jnp.maximum(jnp.abs(xr - xr[p, jnp.arange(cap)][None]),
                       jnp.abs(yr - yr[p, jnp.arange(cap)][None]))
    dist = jnp.where(cols[:, None] == p[None], inf, dist)
    target = jnp.where(valid, sel, nb * s)
    eps = eps.at[target].set(_kth_smallest(dist, k), mode="drop")
    done = done.at[target].set(True, mode="drop")
    return eps, done

  eps, _ = jax.lax.while_loop(dense_cond, dense_body, (eps, done))
  return eps.reshape(nb, s)


def _ksg_block(x: jax.Array, y: jax.Array, ux: jax.Array, vx: jax.Array, ix: jax.Array,
               uy: jax.Array, vy: jax.Array, iy: jax.Array, k: int, chunk: int,
               cap: int, first: int = 0) -> jax.Array:
  """KSG-1 MI for a block of ``B`` pairs (arguments as :func:`_ksg_eps`)."""
  s, dtype = x.shape[1], x.dtype
  eps = _ksg_eps(x, y, ux, vx, ix, uy, vy, iy, k, chunk, cap, first)

  def count(vals, srt):
    # n(s) = #{t != s : |v_t - v_s| < eps_s}, by binary search on the sorted column using the
    # same differences as the distances above (no rounding of v_s +- eps_s)
    upper = _prefix_count(srt, lambda w: w - vals < eps)          # sorted - v < eps
    lower = _prefix_count(srt, lambda w: vals - w >= eps)         # v - sorted >= eps
    return jnp.where(eps > 0, upper - lower - 1, 0)                # strictly inside, minus self

  nx, ny = count(x, ux), count(y, uy)
  psi = jax.scipy.special.digamma
  const = psi(jnp.asarray(s, dtype)) + psi(jnp.asarray(k, dtype))
  return const - jnp.mean(psi((nx + 1).astype(dtype)) + psi((ny + 1).astype(dtype)), axis=1)


_ksg_block_jit = jax.jit(_ksg_block, static_argnums=(8, 9, 10, 11))


@functools.partial(jax.jit, static_argnums=(6, 7, 8, 9))
def _pairs_block(xt: jax.Array, sv: jax.Array, order: jax.Array, inverse: jax.Array,
                 bi: jax.Array, bj: jax.Array, k: int, chunk: int, cap: int,
                 first: int) -> jax.Array:
  """KSG-1 MI of the pairs ``(bi[b], bj[b])`` of rows of ``xt`` (``(n, S)``, sorted rows ``sv``,
  sorting permutations ``order`` and their inverses ``inverse``), gathered on the device."""
  x, y = xt[bi], xt[bj]
  return _ksg_block(x, y, sv[bi], _take_rows(y, order[bi]), inverse[bi],
                    sv[bj], _take_rows(x, order[bj]), inverse[bj], k, chunk, cap, first)


def _take_rows(a: jax.Array, idx: jax.Array) -> jax.Array:
  """``a[b, idx[b, j]]`` for in-range ``idx``: a gather from the flattened rows.

  Same values as ``jnp.take_along_axis(a, idx, axis=1)``; measured about 15 times faster on CPU
  (a one-dimensional gather instead of XLA's general one).
  """
  nb, s = a.shape
  base = (jnp.arange(nb, dtype=jnp.int32) * s)[:, None]
  return jnp.take(a.reshape(-1), base + idx.astype(jnp.int32), mode="clip")


def _prefix_count(srt: jax.Array, pred) -> jax.Array:
  """Length of the prefix of each sorted row on which the monotone ``pred`` holds."""
  nb, s = srt.shape
  lo = jnp.zeros((nb, s), jnp.int32)
  hi = jnp.full((nb, s), s, jnp.int32)
  for _ in range(int(np.ceil(np.log2(s + 1)))):
    mid = (lo + hi) // 2
    w = _take_rows(srt, jnp.minimum(mid, s - 1))
    ok = pred(w) & (mid < hi)
    lo = jnp.where(ok, mid + 1, lo)
    hi = jnp.where(ok, hi, mid)
  return lo


def _sorted_columns(xt):
  """Rows of ``xt`` sorted, the sorting permutation and its inverse (numpy or jax arrays)."""
  xp = np if isinstance(xt, np.ndarray) else jnp
  order = xp.argsort(xt, axis=1)
  # xp matches the input (np or jnp); pyright checks np's stub against the union of both.
  return (xp.take_along_axis(xt, order, axis=1),  # pyright: ignore[reportArgumentType]
          order, xp.argsort(order, axis=1))


def _block_args(xt, sv, order, inverse, i, j):
  """The ``(B, S)`` arguments of :func:`_ksg_block` for the pairs ``(i[b], j[b])`` of rows."""
  xp = np if isinstance(xt, np.ndarray) else jnp
  x, y = xt[i], xt[j]
  return (x, y, sv[i], xp.take_along_axis(y, order[i], axis=1), inverse[i],
          sv[j], xp.take_along_axis(x, order[j], axis=1), inverse[j])


_CHUNK = 16     # neighbour offsets scanned per termination check
_CAP = 256      # samples per dense fallback pass
_FIRST = 64     # neighbour offsets scanned before the first termination check


#: Relative scale of the tie-breaking noise by dtype (``tie_noise=None``): ``tie_noise *
#: max(std, mean |a|)`` is the noise standard deviation of a column. float64 uses scikit-learn's
#: 1e-10; in float32 that is below the rounding unit of most activations (an atom at 1.0 would
#: stay tied), so it uses 1e-4, about 800 rounding units at the column's scale (at 1e-5, rounding
#: left enough exact ties inside an atom at 1.0 to bias the MI by +0.03 nats at a true 0.67) and
#: still far below the ``k``-th-neighbour distances KSG works with (about 0.04 of the scale at
#: ``S = 2,000``, ``k = 3``).
DEFAULT_TIE_NOISE = {"float64": 1e-10, "float32": 1e-4}


def _noise_scale(dtype, tie_noise: float | None) -> float:
  if tie_noise is not None:
    return tie_noise
  return DEFAULT_TIE_NOISE.get(jnp.dtype(dtype).name, DEFAULT_TIE_NOISE["float32"])


def _break_ties(v: jax.Array, key: jax.Array, scale: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Tie-broken copy of the column ``v`` (``(S,)``) and whether ``v`` is constant.

  A column with two equal values gets ``scale * max(std(v), mean |v|) * N(0, 1)`` noise added
  (scikit-learn's ``mutual_info_regression`` recipe, without its standardisation); a column
  without ties is returned unchanged.
  """
  srt = jnp.sort(v)
  tied = jnp.any(srt[1:] == srt[:-1])
  constant = srt[0] == srt[-1]
  amp = scale * jnp.maximum(jnp.std(v), jnp.mean(jnp.abs(v)))
  noisy = v + amp * jax.random.normal(key, v.shape, v.dtype)
  return jnp.where(tied & (scale > 0), noisy, v), constant


def _column_keys(seed: int, columns) -> jax.Array:
  """One key per activation column: the noise of a neuron does not depend on the others."""
  base = jax.random.key(seed)
  return jax.vmap(lambda c: jax.random.fold_in(base, c))(jnp.asarray(columns, jnp.uint32))


def ksg_mutual_information(x: jax.typing.ArrayLike, y: jax.typing.ArrayLike, *, k: int = 3,
                           tie_noise: float | None = None, seed: int = 0) -> jax.Array:
  """KSG estimator 1 of the mutual information between two scalar variables, in nats.

  Kraskov, Stoegbauer and Grassberger (2004), eq. 8:
  ``I(X; Y) = psi(S) + psi(k) - <psi(n_x + 1) + psi(n_y + 1)>``, where for sample ``s``,
  ``eps_s`` is the Chebyshev (max-norm) distance ``max(|x_s - x_t|, |y_s - y_t|)`` to its
  ``k``-th nearest neighbour ``t != s``, and ``n_x(s) = #{t != s : |x_s - x_t| < eps_s}``
  (strictly inside), likewise ``n_y``. Not clipped at zero. Jittable and vmappable.

  Ties: a variable with repeated values (post-ReLU zeros, saturation, quantisation) first gets
  tiny Gaussian noise, ``tie_noise * max(std, mean |v|)`` standard deviation, seeded by ``seed``
  (scikit-learn's ``mutual_info_regression`` does the same); without it KSG-1 returns several
  nats for independent tied variables. A variable without ties is used as is (the estimate is then
  exactly KSG-1 and does not depend on ``seed``). If either variable is constant the result is
  exactly 0 (``I(X; Y) = 0`` for a constant ``X``), without estimation.

  Args:
    x: ``(S,)`` samples of the first variable.
    y: ``(S,)`` samples of the second variable, paired with ``x``.
    k: neighbour order, ``1 <= k <= S - 1``.
    tie_noise: relative scale of the tie-breaking noise; ``None`` uses
      :data:`DEFAULT_TIE_NOISE` for the dtype, ``0`` disables it (plain KSG-1 on tied data,
      biased upwards by up to several nats).
    seed: seed of the noise (``x`` uses ``fold_in(key(seed), 0)``, ``y`` ``fold_in(..., 1)``, as
      columns 0 and 1 of :func:`pairwise_mutual_information`).

  Returns:
    A scalar estimate in nats.

  Raises:
    InvalidInputError: ``x`` or ``y`` not a non-empty 1-D real array, of different lengths or not
      finite (under ``jit``: at run time), ``k`` outside ``[1, S - 1]``, ``tie_noise`` or
      ``seed`` invalid.
  """
  for name, v in (("x", x), ("y", y)):
    _check_activations(name, v, rank=1)
  _errors.check_same_leading(("x", "y"), x, y)
  x, y = _check_activations("x", x, rank=1), _check_activations("y", y, rank=1)
  k = _check_k(k, x.shape[0], "x")
  scale = _noise_scale(jnp.result_type(x, y), _check_tie_noise(tie_noise))
  seed = _check_seed(seed)
  xt = jnp.stack([x, y]).astype(jnp.result_type(x, y))
  return _ksg_pair_jit(xt, _column_keys(seed, [0, 1]), k, jnp.asarray(scale, xt.dtype))


@functools.partial(jax.jit, static_argnums=(2,))
def _ksg_pair_jit(xt: jax.Array, keys: jax.Array, k: int, scale: jax.Array) -> jax.Array:
  xt, constant = jax.vmap(lambda v, key: _break_ties(v, key, scale))(xt, keys)
  sv, order, inverse = _sorted_columns(xt)
  zero, one = jnp.zeros((1,), jnp.int32), jnp.ones((1,), jnp.int32)
  args = _block_args(xt, sv, order, inverse, zero, one)
  # Under jit every argument is a jax.Array; _block_args' np/jnp dispatch widens the inference.
  value = _ksg_block(*args, k, _CHUNK,  # pyright: ignore[reportArgumentType]
                     min(_CAP, xt.shape[1]))[0]
  return jnp.where(constant[0] | constant[1], jnp.zeros_like(value), value)


def subsample_neurons(num_neurons: int, num: int | None, *, seed: int = 0) -> jax.Array:
  """``num`` distinct neuron indices out of ``range(num_neurons)``, uniformly at random, sorted.

  ``num=None`` or ``num >= num_neurons`` returns all of them. Deterministic given ``seed``.

  Args:
    num_neurons: ``N >= 1``.
    num: how many to pick (an integer >= 2), or None for all.
    seed: seed of the draw.

  Returns:
    The sorted indices, ``(min(num, N),)``.

  Raises:
    InvalidInputError: ``num_neurons`` not an integer >= 1, ``num`` neither ``None`` nor an
      integer >= 2, ``seed`` invalid.
  """
  num_neurons = _check_int("num_neurons", num_neurons, 1)
  seed = _check_seed(seed)
  if num is None:
    return jnp.arange(num_neurons)
  num = _check_int("num", num, 2)
  if num >= num_neurons:
    return jnp.arange(num_neurons)
  pick = jax.random.choice(jax.random.key(seed), num_neurons, (num,), replace=False)
  return jnp.sort(pick)


def pairwise_mutual_information(
    activations: jax.typing.ArrayLike, *, k: int = 3,
    neurons: jax.typing.ArrayLike | None = None, block_size: int = 128, unroll: int = _CHUNK,
    tie_noise: float | None = None, seed: int = 0,
    callback: _progress.ProgressCallback | None = None,
    progress: bool | _progress.ProgressCallback | None = None) -> PairwiseMI:
  """KSG-1 mutual information (nats) between every pair of the chosen neurons.

  For each pair ``(i, j)``, ``i < j``, of columns of ``activations``, the estimator of
  :func:`ksg_mutual_information` (Kraskov et al. 2004, eq. 8; ``k = 3`` and the max-norm as in
  Bansal et al., NeurIPS 2022), with the same handling of ties (each tied column gets its noise
  once, from ``fold_in(key(seed), column index)``, so a pair's value does not depend on which other
  neurons are analysed) and of constant columns (MI exactly 0). Pairs are processed
  ``block_size`` at a time (memory ``O(block_size * S)``); the result does not depend on
  ``block_size`` or ``unroll``.

  Args:
    activations: ``(S, N)`` activations.
    k: neighbour order, ``1 <= k <= S - 1``.
    neurons: distinct column indices to analyse (e.g. from :func:`subsample_neurons`), at least
      2; default all.
    block_size: pairs per compiled block (>= 1).
    unroll: neighbour offsets scanned between two termination checks (>= 1).
    tie_noise: see :func:`ksg_mutual_information`.
    seed: seed of the tie-breaking noise.
    callback: optional ``callback(done_pairs, total_pairs)`` after each block.
    progress: True draws a progress bar (a callable is taken as ``callback``, the earlier form).

  Returns:
    :class:`PairwiseMI` with ``n (n - 1) / 2`` values.

  Raises:
    InvalidInputError: for any invalid argument (the message names it).
  """
  a = _check_activations("activations", activations)
  s, n_total = a.shape
  k = _check_k(k, s, "activations")
  block_size = _check_int("block_size", block_size, 1)
  unroll = _check_int("unroll", unroll, 1)
  scale = _noise_scale(a.dtype, _check_tie_noise(tie_noise))
  seed = _check_seed(seed)
  callback = _progress_callback(callback, progress, "pairwise MI")
  if neurons is None:
    cols = np.arange(n_total)
  else:
    if isinstance(neurons, jax.core.Tracer):
      _errors.fail("neurons", "concrete column indices (not traced)", "a tracer")
    cols = np.asarray(neurons)
    if cols.ndim != 1 or cols.dtype.kind not in "iu" or cols.size < 2:
      _errors.fail("neurons", "a 1-D integer array of at least 2 column indices",
                   f"shape {cols.shape}, dtype {cols.dtype}")
    if cols.min() < 0 or cols.max() >= n_total or np.unique(cols).size != cols.size:
      _errors.fail("neurons", f"distinct column indices in [0, {n_total})",
                   f"range [{cols.min()}, {cols.max()}] with {cols.size - np.unique(cols).size}"
                   " duplicates")
  if cols.size < 2:
    _errors.fail("activations", "at least 2 neurons (columns) for pairwise MI", cols.size)
  # tie-breaking noise and per-neuron sorts once, shared by all pairs; the per-block gathers run
  # in numpy so the compiled block depends only on (block size, S, k, unroll, dtype), not on the
  # neuron count
  xt, constant = _break_ties_jit(a[:, cols].T, _column_keys(seed, cols),
                                 jnp.asarray(scale, a.dtype))
  sv, order, inverse = _sorted_columns(np.asarray(xt))     # numpy's sort is the faster on CPU
  sv, order, inverse = jnp.asarray(sv), jnp.asarray(order, jnp.int32), jnp.asarray(inverse,
                                                                                   jnp.int32)
  constant = np.asarray(constant)
  li, lj = np.triu_indices(cols.size, 1)
  total = li.size
  # a power of two up to block_size: few distinct compiled shapes for small problems; the last
  # block is padded to the same size (gbounds._src.batching: its first pair repeated, the
  # padded values dropped; every pair's value is computed independently of the others)
  bsz = min(block_size, 1 << (total - 1).bit_length())
  out = []
  for start, stop in _batching.chunk_bounds(total, bsz):
    m = stop - start
    bi, bj = _batching.pad_rows((li[start:stop], lj[start:stop]), bsz)
    vals = _pairs_block(xt, sv, order, inverse, jnp.asarray(bi, jnp.int32),
                        jnp.asarray(bj, jnp.int32), k, unroll, _CAP, _FIRST)
    out.append(vals[:m])
    _progress.notify(callback, stop, total)
  values = jnp.concatenate(out)
  values = jnp.where(jnp.asarray(constant[li] | constant[lj]), jnp.zeros_like(values), values)
  pairs = jnp.asarray(np.stack([cols[li], cols[lj]], axis=1))
  return PairwiseMI(jnp.asarray(cols), pairs, values)


@jax.jit
def _break_ties_jit(xt: jax.Array, keys: jax.Array, scale: jax.Array):
  return jax.vmap(lambda v, key: _break_ties(v, key, scale))(xt, keys)


def activation_information(
    activations: jax.typing.ArrayLike, *, bins: int = 100,
    binning: Binning | str = Binning.GLOBAL, k: int = 3, mi_neurons: int | None = None,
    seed: int = 0, block_size: int = 128, tie_noise: float | None = None,
    callback: _progress.ProgressCallback | None = None,
    progress: bool | _progress.ProgressCallback | None = None) -> ActivationInformation:
  """Mean neuron entropy and mean pairwise neuron MI (nats) of an activation matrix.

  ``mean_entropy = 1/N sum_n H_n`` over all ``N`` neurons (:func:`neuron_entropy`) and
  ``mean_mi = 2 / (n (n - 1)) sum_{i<j} I(a_i; a_j)`` over a uniformly subsampled set of ``n``
  neurons (:func:`pairwise_mutual_information`): Bansal, Pruthi and Belinkov (NeurIPS 2022),
  Sec. 3 and Table 2 (low entropy and high MI: heuristic memorization; high entropy and low MI:
  example-level memorization).

  Args:
    activations: ``(S, N)`` activations on held-out inputs (no labels needed), ``N >= 2``.
    bins: histogram bins for the entropy, in ``[2, 2**20]``.
    binning: :class:`Binning` for the entropy.
    k: KSG neighbour order, ``1 <= k <= S - 1``.
    mi_neurons: number of neurons subsampled for the MI, an integer >= 2 (``None``: all ``N``,
      i.e. ``N (N - 1) / 2`` pairs).
    seed: seed of the neuron subsample and of the KSG tie-breaking noise.
    block_size: pairs per KSG block.
    tie_noise: see :func:`ksg_mutual_information`.
    callback: optional ``callback(done_pairs, total_pairs)`` after each block of MI pairs.
    progress: True draws a progress bar over the MI pairs (a callable is taken as
      ``callback``, the earlier form of this argument).

  Returns:
    :class:`ActivationInformation`.

  Raises:
    InvalidInputError: for any invalid argument (the message names it), before any estimation.
  """
  a = _check_activations("activations", activations)
  s, n = a.shape
  if n < 2:
    _errors.fail("activations", "at least 2 neurons (columns) for pairwise MI", f"shape {a.shape}")
  bins = _check_bins(bins)
  binning = _errors.as_enum("binning", binning, Binning)
  k = _check_k(k, s, "activations")
  if mi_neurons is not None:
    _check_int("mi_neurons", mi_neurons, 2)
  seed = _check_seed(seed)
  block_size = _check_int("block_size", block_size, 1)
  tie_noise = _check_tie_noise(tie_noise)
  callback = _progress_callback(callback, progress, "activation MI")
  ent = _entropy_jit(a, bins, binning)
  cols = subsample_neurons(n, mi_neurons, seed=seed)
  mi = pairwise_mutual_information(a, k=k, neurons=np.asarray(cols), block_size=block_size,
                                   tie_noise=tie_noise, seed=seed, callback=callback)
  return ActivationInformation(jnp.mean(ent), jnp.mean(mi.values), ent, mi)
