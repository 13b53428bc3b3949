"""Calibration observers: streaming, mergeable range estimators (docs/ARITHMETIC.md, "Observers").

Every observer takes batch after batch with ``update(batch)`` and keeps a state of fixed
size (no activations are stored), ``merge(other)`` returns a new observer equal to one
that saw both streams (calibration can run on shards), and ``compute_range()`` returns
``(min, max)`` for :func:`qcore.reference.params.choose_qparams`.

The histogram observers (percentile, MSE, entropy) share one data-independent bin grid:
a float32 value falls in the bucket named by its sign, its 8 exponent bits and the top
7 mantissa bits (bins ``2**-7`` wide relative to the value, every float32 covered), so
merging two histograms is an exact addition of integer counts.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from ..errors import CalibrationError, NonFiniteError, QuantParamError, ShapeError
from .params import choose_qparams, quant_range

__all__ = [
    "EntropyObserver",
    "MinMaxObserver",
    "MovingAverageMinMaxObserver",
    "MSEObserver",
    "Observer",
    "PercentileObserver",
]


def _check_batch(batch: Any) -> np.ndarray:
    arr = np.asarray(batch)
    if arr.dtype.kind not in "fiu":
        raise QuantParamError(f"observers take real numbers, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ShapeError("empty batch: observers need at least one value")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise NonFiniteError("batch contains NaN or infinite values")
    return arr


class Observer:
    """Base class: a streaming, mergeable estimator of the range to quantize."""

    #: number of values observed so far
    count: int

    def update(self, batch: Any) -> None:
        """Observe one batch (any shape, cast to float32)."""
        raise NotImplementedError

    def compute_range(self) -> tuple[Any, Any]:
        """Return ``(min, max)``: floats, or float32 arrays for per-channel observers."""
        raise NotImplementedError

    def merge(self, other: Observer) -> Observer:
        """Return a new observer equal to one that observed ``self``'s stream, then ``other``'s."""
        raise NotImplementedError

    def _config(self) -> tuple:
        return ()

    def _check_mergeable(self, other: Observer) -> None:
        if type(other) is not type(self) or other._config() != self._config():
            raise QuantParamError(
                f"cannot merge {type(other).__name__}{other._config()} into {type(self).__name__}{self._config()}"
            )

    def _require_data(self) -> None:
        if self.count == 0:
            raise CalibrationError(f"{type(self).__name__} has observed no data")


def _reduce(arr: np.ndarray, axis: int | None, size: int | None, fn) -> np.ndarray:
    if axis is None:
        return fn(arr)
    if arr.ndim == 0:
        raise ShapeError("a per-channel observer needs batches of rank >= 1")
    if not -arr.ndim <= axis < arr.ndim:
        raise ShapeError(f"axis {axis} out of range for a batch of rank {arr.ndim}")
    ax = axis % arr.ndim
    if size is not None and arr.shape[ax] != size:
        raise ShapeError(f"batch has {arr.shape[ax]} channels on axis {axis}, the observer has {size}")
    return fn(arr, axis=tuple(d for d in range(arr.ndim) if d != ax))


class MinMaxObserver(Observer):
    """The running minimum and maximum, per tensor or per channel.

    Parameters
    ----------
    axis : int, optional
        Channel axis of every batch; None for one range per tensor.

    Notes
    -----
    ``min = min over all values``, ``max = max over all values`` (per channel: over all
    axes but ``axis``). Merge is exact: element-wise min and max.
    """

    def __init__(self, axis: int | None = None) -> None:
        self.axis = axis
        self.count = 0
        self.min_val: np.ndarray | None = None
        self.max_val: np.ndarray | None = None

    def _config(self) -> tuple:
        return (self.axis,)

    def update(self, batch: Any) -> None:
        arr = _check_batch(batch)
        size = None if self.min_val is None or self.axis is None else self.min_val.shape[0]
        lo = np.asarray(_reduce(arr, self.axis, size, np.min), np.float32)
        hi = np.asarray(_reduce(arr, self.axis, size, np.max), np.float32)
        if self.min_val is None:
            self.min_val, self.max_val = lo, hi
        else:
            self.min_val = np.minimum(self.min_val, lo)
            self.max_val = np.maximum(self.max_val, hi)
        self.count += arr.size

    def merge(self, other: MinMaxObserver) -> MinMaxObserver:
        self._check_mergeable(other)
        if other.count == 0:
            return copy.deepcopy(self)
        if self.count == 0:
            return copy.deepcopy(other)
        if self.min_val.shape != other.min_val.shape:
            raise ShapeError(f"channel counts differ: {self.min_val.shape} vs {other.min_val.shape}")
        out = copy.deepcopy(self)
        out.min_val = np.minimum(self.min_val, other.min_val)
        out.max_val = np.maximum(self.max_val, other.max_val)
        out.count = self.count + other.count
        return out

    def compute_range(self) -> tuple[Any, Any]:
        self._require_data()
        if self.axis is None:
            return float(self.min_val), float(self.max_val)
        return self.min_val.copy(), self.max_val.copy()


class MovingAverageMinMaxObserver(Observer):
    """Exponential moving average of each batch's min and max (PyTorch's observer).

    Parameters
    ----------
    averaging_constant : float
        ``c`` in ``(0, 1]``.
    axis : int, optional
        Channel axis; None for per tensor.

    Notes
    -----
    The first batch sets ``m = batch_min``; each later batch
    ``m = m + c * (batch_min - m)`` (same for max), in float64.

    Merge is order-dependent, as the average is: ``a.merge(b)`` is the observer that saw
    ``a``'s batches and then ``b``'s. After ``b``'s ``n_b`` batches,
    ``m_ab = m_b + (1 - c)**n_b * (m_a - first_b)``, where ``first_b`` is ``b``'s first
    batch minimum, which the observer keeps for this purpose. This is exact in real
    arithmetic; in float64 it equals sequential observation to about ``1e-12``
    relative. Merging with an observer that has seen nothing returns a copy.
    """

    def __init__(self, averaging_constant: float = 0.01, axis: int | None = None) -> None:
        if not 0 < averaging_constant <= 1:
            raise QuantParamError(f"averaging_constant must be in (0, 1], got {averaging_constant}")
        self.averaging_constant = float(averaging_constant)
        self.axis = axis
        self.count = 0
        self.batches = 0
        self.min_val: np.ndarray | None = None
        self.max_val: np.ndarray | None = None
        self.first_min: np.ndarray | None = None
        self.first_max: np.ndarray | None = None

    def _config(self) -> tuple:
        return (self.averaging_constant, self.axis)

    def update(self, batch: Any) -> None:
        arr = _check_batch(batch)
        size = None if self.min_val is None or self.axis is None else self.min_val.shape[0]
        lo = np.asarray(_reduce(arr, self.axis, size, np.min), np.float64)
        hi = np.asarray(_reduce(arr, self.axis, size, np.max), np.float64)
        if self.min_val is None:
            self.min_val, self.max_val = lo, hi
            self.first_min, self.first_max = lo.copy(), hi.copy()
        else:
            c = self.averaging_constant
            self.min_val = self.min_val + c * (lo - self.min_val)
            self.max_val = self.max_val + c * (hi - self.max_val)
        self.count += arr.size
        self.batches += 1

    def merge(self, other: MovingAverageMinMaxObserver) -> MovingAverageMinMaxObserver:
        self._check_mergeable(other)
        if other.count == 0:
            return copy.deepcopy(self)
        if self.count == 0:
            return copy.deepcopy(other)
        if self.min_val.shape != other.min_val.shape:
            raise ShapeError(f"channel counts differ: {self.min_val.shape} vs {other.min_val.shape}")
        decay = (1.0 - self.averaging_constant) ** other.batches
        out = copy.deepcopy(self)
        out.min_val = other.min_val + decay * (self.min_val - other.first_min)
        out.max_val = other.max_val + decay * (self.max_val - other.first_max)
        out.count = self.count + other.count
        out.batches = self.batches + other.batches
        return out

    def compute_range(self) -> tuple[Any, Any]:
        self._require_data()
        if self.axis is None:
            return float(np.float32(self.min_val)), float(np.float32(self.max_val))
        return self.min_val.astype(np.float32), self.max_val.astype(np.float32)


# ---- the fixed histogram grid -------------------------------------------------------

MANTISSA_BITS = 7
_SHIFT = 23 - MANTISSA_BITS
_PER_SIGN = 1 << (8 + MANTISSA_BITS)  # buckets for one sign, inf/NaN patterns included
NUM_BUCKETS = 2 * _PER_SIGN


def _bucket_bounds() -> np.ndarray:
    """Lower bound of each magnitude bucket k (bits ``k << _SHIFT``), plus the next, as float64."""
    bits = (np.arange(_PER_SIGN + 1, dtype=np.uint64) << np.uint64(_SHIFT)).astype(np.uint32)
    bits[-1] = 0x7F800000  # magnitude buckets end at +inf
    return np.minimum(bits, 0x7F800000).view(np.float32).astype(np.float64)


_MAG_BOUNDS = _bucket_bounds()


def bucket_index(values: np.ndarray) -> np.ndarray:
    """Bucket of each finite float32 value, in increasing value order (``-0.0`` is ``+0.0``)."""
    bits = (values.astype(np.float32) + np.float32(0)).view(np.uint32)
    magnitude = (bits & np.uint32(0x7FFFFFFF)) >> np.uint32(_SHIFT)
    negative = (bits >> np.uint32(31)).astype(bool)
    magnitude = magnitude.astype(np.int64)
    return np.where(negative, _PER_SIGN - 1 - magnitude, _PER_SIGN + magnitude)


def bucket_edges() -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` of every bucket in index order: values ``v`` with ``low <= |v| < high``
    for positive buckets (mirrored for negative ones), as float64."""
    lo_mag, hi_mag = _MAG_BOUNDS[:-1], _MAG_BOUNDS[1:]
    low = np.concatenate([-hi_mag[::-1], lo_mag])
    high = np.concatenate([-lo_mag[::-1], hi_mag])
    return low, high


class _HistogramObserver(Observer):
    """Exact min, max and the fixed-grid histogram (65536 int64 counts, 512 KiB)."""

    def __init__(self) -> None:
        self.count = 0
        self.counts = np.zeros(NUM_BUCKETS, dtype=np.int64)
        self.min_val = np.float32(np.inf)
        self.max_val = np.float32(-np.inf)

    def update(self, batch: Any) -> None:
        arr = _check_batch(batch).ravel()
        self.counts += np.bincount(bucket_index(arr), minlength=NUM_BUCKETS)
        self.min_val = min(self.min_val, arr.min())
        self.max_val = max(self.max_val, arr.max())
        self.count += arr.size

    def merge(self, other: _HistogramObserver) -> _HistogramObserver:
        self._check_mergeable(other)
        out = copy.deepcopy(self)
        out.counts = self.counts + other.counts
        out.min_val = min(self.min_val, other.min_val)
        out.max_val = max(self.max_val, other.max_val)
        out.count = self.count + other.count
        return out

    def _occupied(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Non-empty buckets: (count, low, high) with the edges clipped to [min, max]."""
        idx = np.nonzero(self.counts)[0]
        low, high = bucket_edges()
        lo = np.clip(low[idx], float(self.min_val), float(self.max_val))
        hi = np.clip(high[idx], float(self.min_val), float(self.max_val))
        return self.counts[idx], lo, hi

    def _magnitude_counts(self) -> np.ndarray:
        """Counts of ``|x|`` per magnitude bucket."""
        return self.counts[_PER_SIGN:] + self.counts[_PER_SIGN - 1 :: -1]

    def _clip_to_observed(self, lo: float, hi: float) -> tuple[float, float]:
        return max(float(self.min_val), lo), min(float(self.max_val), hi)


class PercentileObserver(_HistogramObserver):
    """The range that keeps a given percentile of the values.

    Parameters
    ----------
    percentile : float
        In ``(0, 100]``.
    symmetric : bool
        True: one threshold ``t`` on ``|x|`` (onnxruntime's percentile calibration),
        range ``[-t, t]`` clipped to the observed range. False: the lower and upper
        ``(100 - percentile) / 2`` tails are cut separately.

    Notes
    -----
    With ``n`` values and ``k = ceil(n * percentile / 100)`` (symmetric), ``t`` is the upper
    edge of the first magnitude bucket where the cumulative count reaches ``k``: the
    exact percentile rounded up to the bucket grid (at most ``2**-7`` relative above it),
    never beyond the observed extreme. Asymmetric: ``k = ceil(n * (1 - tail))`` from each
    side, ``tail = (100 - percentile) / 200``.
    """

    def __init__(self, percentile: float = 99.99, symmetric: bool = True) -> None:
        super().__init__()
        if not 0 < percentile <= 100:
            raise QuantParamError(f"percentile must be in (0, 100], got {percentile}")
        self.percentile = float(percentile)
        self.symmetric = bool(symmetric)

    def _config(self) -> tuple:
        return (self.percentile, self.symmetric)

    def compute_range(self) -> tuple[float, float]:
        self._require_data()
        if self.symmetric:
            need = math.ceil(self.count * self.percentile / 100)
            k = int(np.searchsorted(np.cumsum(self._magnitude_counts()), need))
            t = float(_MAG_BOUNDS[k + 1])
            return self._clip_to_observed(-t, t)
        tail = (100 - self.percentile) / 200
        need = math.ceil(self.count * (1 - tail))
        low, high = bucket_edges()
        upper = int(np.searchsorted(np.cumsum(self.counts), need))
        lower = NUM_BUCKETS - 1 - int(np.searchsorted(np.cumsum(self.counts[::-1]), need))
        return self._clip_to_observed(float(low[lower]), float(high[upper]))


class MSEObserver(_HistogramObserver):
    """The clipping range that minimises the mean squared quantization error.

    Parameters
    ----------
    dtype : str
        Target type of the quantization the range is for.
    symmetric : bool
        Symmetric or affine target quantization.
    convention : str
        Whose parameter choice (:func:`choose_qparams`) the candidates use.
    num_candidates : int
        Candidate ranges ``alpha * [min, max]``, ``alpha = i / num_candidates``.

    Notes
    -----
    For each candidate, ``(scale, zp) = choose_qparams(alpha * min, alpha * max, ...)`` and
    ``err = sum_b count_b * (v_b - scale * (clip(round_half_even(v_b / scale) + zp) - zp))**2``
    over the non-empty buckets ``b``, with ``v_b`` the bucket's midpoint (edges clipped to
    the observed range). The smallest error wins; ties go to the larger ``alpha``.
    """

    def __init__(self, dtype: str = "int8", symmetric: bool = True, convention: str = "onnx",
                 num_candidates: int = 100) -> None:
        super().__init__()
        quant_range(dtype, symmetric=symmetric, convention=convention)  # validates
        if num_candidates < 1:
            raise QuantParamError("num_candidates must be >= 1")
        self.dtype, self.symmetric, self.convention = dtype, bool(symmetric), convention
        self.num_candidates = int(num_candidates)

    def _config(self) -> tuple:
        return (self.dtype, self.symmetric, self.convention, self.num_candidates)

    def compute_range(self) -> tuple[float, float]:
        self._require_data()
        counts, lo, hi = self._occupied()
        values = (lo + hi) / 2
        weights = counts.astype(np.float64)
        qmin, qmax = quant_range(self.dtype, symmetric=self.symmetric, convention=self.convention)
        alphas = np.arange(1, self.num_candidates + 1) / self.num_candidates
        rmin, rmax = float(self.min_val), float(self.max_val)
        best, best_err = (rmin, rmax), np.inf
        for alpha in alphas:
            cand = (np.float32(alpha * rmin), np.float32(alpha * rmax))
            scale, zp = choose_qparams(*cand, self.dtype, symmetric=self.symmetric, convention=self.convention)
            s, z = float(scale), int(zp)
            q = np.clip(np.rint(values / s) + z, qmin, qmax)
            err = float(np.sum(weights * (values - (q - z) * s) ** 2))
            if err <= best_err:
                best, best_err = (float(cand[0]), float(cand[1])), err
        return best


class EntropyObserver(_HistogramObserver):
    """TensorRT's entropy calibration: the threshold that minimises KL divergence.

    Parameters
    ----------
    num_bins : int
        Bins of the linear histogram of ``|x|`` over ``[0, max|x|]`` (TensorRT: 2048).
    num_quantized_bins : int
        Levels the reference distribution is merged into (TensorRT: 128).

    Notes
    -----
    The fixed-grid histogram is resampled to ``num_bins`` linear bins ``h`` of ``|x|``
    (each bucket's count spread uniformly over its interval; the total count is kept).
    For ``i = num_quantized_bins .. num_bins``: ``P = h[:i]`` with the count beyond
    (``sum(h[i:])``) added to ``P[i-1]``; ``Q`` = ``h[:i]`` (without the outliers) merged
    into ``nq = num_quantized_bins`` groups (group ``j`` covers bins
    ``floor(j*i/nq) .. floor((j+1)*i/nq) - 1``), each group's total spread evenly over its
    non-empty bins. ``P`` and ``Q`` are normalised, ``Q`` is smoothed where it is zero
    (MXNet's ``eps = 1e-4`` scheme: ``+eps`` on the zeros, the same mass taken evenly
    from the non-zeros), and ``KL(P || Q) = sum over P > 0 of P log(P / Q)``. The smallest
    KL (first on ties) gives ``t = i * max|x| / num_bins`` and the range ``[-t, t]``
    clipped to the observed range.
    """

    def __init__(self, num_bins: int = 2048, num_quantized_bins: int = 128) -> None:
        super().__init__()
        if num_quantized_bins < 2 or num_bins < num_quantized_bins:
            raise QuantParamError("need 2 <= num_quantized_bins <= num_bins")
        self.num_bins, self.num_quantized_bins = int(num_bins), int(num_quantized_bins)

    def _config(self) -> tuple:
        return (self.num_bins, self.num_quantized_bins)

    def linear_histogram(self) -> tuple[np.ndarray, float]:
        """The resampled histogram of ``|x|`` (float64 counts) and ``max|x|``."""
        absmax = max(abs(float(self.min_val)), abs(float(self.max_val)))
        mag = self._magnitude_counts().astype(np.float64)
        cumulative = np.concatenate([[0.0], np.cumsum(mag)])
        finite = np.isfinite(_MAG_BOUNDS)
        edges = np.linspace(0.0, absmax, self.num_bins + 1)
        at_edges = np.interp(edges, _MAG_BOUNDS[finite], cumulative[finite])
        hist = np.diff(at_edges)
        hist[-1] += cumulative[-1] - at_edges[-1]  # the top bucket's share beyond max|x|
        return hist, absmax

    def compute_range(self) -> tuple[float, float]:
        self._require_data()
        hist, absmax = self.linear_histogram()
        if absmax == 0:
            return 0.0, 0.0
        nq = self.num_quantized_bins
        best_i, best_kl = self.num_bins, np.inf
        for i in range(nq, self.num_bins + 1):
            kl = _clipped_kl(hist, i, nq)
            if kl < best_kl:
                best_i, best_kl = i, kl
        t = best_i * absmax / self.num_bins
        return self._clip_to_observed(-t, t)


def _clipped_kl(hist: np.ndarray, i: int, nq: int, eps: float = 1e-4) -> float:
    """KL divergence between the first ``i`` bins (outliers folded in) and their ``nq``-level version."""
    kept = hist[:i]
    p = kept.copy()
    p[-1] += hist[i:].sum()
    nonzero = kept > 0
    bounds = (np.arange(nq + 1) * i) // nq
    starts = bounds[:-1]
    totals = np.add.reduceat(kept, starts)
    filled = np.add.reduceat(nonzero.astype(np.float64), starts)
    per_bin = np.divide(totals, filled, out=np.zeros_like(totals), where=filled > 0)
    q = np.repeat(per_bin, np.diff(bounds)) * nonzero
    if q.sum() == 0:
        return np.inf
    p = p / p.sum()
    q = q / q.sum()
    zeros = q == 0
    if zeros.any():
        q = q + eps * zeros - eps * zeros.sum() / (~zeros).sum() * (~zeros)
        q = np.maximum(q, eps * 1e-3)
    support = p > 0
    return float(np.sum(p[support] * np.log(p[support] / q[support])))
