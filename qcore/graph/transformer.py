"""Transformer-aware quantization: outlier migration, per-token int8, a sensitivity report.

Transformer encoders (BERT, MiniLM) are hard to quantize per tensor: a handful of hidden
channels carry activations tens of times larger than the rest, so one activation scale
per tensor (or even per token) leaves the ordinary channels a few integer steps. This
module adds what the generic passes of :mod:`qcore.graph.quantize` need for them:

- :func:`smooth_activations` -- SmoothQuant-style migration: for every linear layer
  ``y = x @ W + b`` it divides the activation channels by ``s`` and multiplies the
  weight rows by ``s`` (exact in real arithmetic), with ``s`` chosen from calibration
  statistics so the activation outliers shrink and the weights absorb them;
- :func:`quantize_transformer` -- the recipe: smoothing, then
  :func:`~qcore.graph.quantize.quantize_dynamic` with per-channel int8 weights and
  per-row (per-token) dynamic activation parameters; softmax, layer normalisation,
  GELU and the attention score / context matmuls (activation x activation) stay in
  float32; or int4 weight-only with blocks;
- :func:`sensitivity_report` -- which linear layer costs how much accuracy when it alone
  is quantized, worst first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import CalibrationError, ModelError, NonFiniteError, QuantParamError, ShapeError
from ..reference.params import check_scale_dtype, float16_scale
from ..reference.tensor import QuantizedTensor
from .ir import Graph, Node
from .quantize import _as_graph, _quantize_tensor, find_sites, quantize_dynamic, quantize_weight_only

__all__ = [
    "ALPHA_GRID",
    "LayerSensitivity",
    "activation_channel_maxima",
    "activation_samples",
    "frequent_rows",
    "gptq_quantize",
    "index_counts",
    "int4_table",
    "quantize_transformer",
    "sample_feeds",
    "search_smoothing",
    "sensitivity_report",
    "smooth_activations",
    "smoothing_factors",
]

#: Smoothing factors are clipped to this range so no channel is scaled absurdly.
SMOOTHING_LIMITS = (1e-2, 1e2)

Feeds = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class LayerSensitivity:
    """Accuracy of the model's outputs when one linear layer alone is quantized."""

    node: str
    cosine_mean: float
    cosine_worst: float
    sqnr_db: float

#: Candidate fractions of each int4 block's range tried by GPTQ (the smallest round-trip
#: error wins): clipping a block's extremes often lowers the error of the other values.
INT4_CLIP_RATIOS = tuple(round(1.0 - 0.025 * i, 3) for i in range(11))

#: int4 embedding tables of at most this many rows (position and segment tables) are
#: stored in affine blocks of ``block_size`` along each row; larger (vocabulary) tables
#: get one affine scale per row, which keeps them near 4 bits per value.
INT4_TABLE_BLOCK_ROWS = 4096

#: The rows of a per-row int4 table that the calibration data looks up most (special and
#: common tokens) are stored again in int8, as the table's exception rows (``QGather``).
INT4_TABLE_INT8_ROWS = 32


def _executor(graph: Graph) -> Any:
    from ..runtime.executor import Executor  # noqa: PLC0415

    return Executor(graph)


def _run_calibration(graph: Graph, calibration: Iterable[Feeds], observe: Callable[[str, np.ndarray], None]) -> None:
    """Run the float graph on every calibration batch, passing each value to ``observe``."""
    executor = _executor(graph)
    batches = 0
    for feeds in calibration:
        executor.run(feeds, observe=observe)
        batches += 1
    if batches == 0:
        raise CalibrationError("smoothing needs at least one calibration batch")


def _checked_observations(observed: dict[str, np.ndarray], wanted: set[str]) -> dict[str, np.ndarray]:
    """``observed`` when it holds every wanted value and all of them are finite."""
    missing = sorted(wanted - set(observed))
    if missing:
        raise CalibrationError(f"calibration never computed {', '.join(missing[:5])}")
    for name, array in observed.items():
        if not np.isfinite(array).all():
            raise CalibrationError(f"value {name!r} is not finite on the calibration data")
    return observed


def activation_channel_maxima(graph: Graph, calibration: Iterable[Feeds], values: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-channel (last axis) maximum of ``|x|`` of the given values over calibration data.

    Parameters
    ----------
    graph : Graph
        The float graph.
    calibration : iterable of mapping
        Feeds (one array per graph input), e.g. a few tokenized sentences each.
    values : sequence of str
        Value names to observe.

    Returns
    -------
    dict of str to numpy.ndarray
        float32 ``[channels]`` per value.

    Raises
    ------
    CalibrationError
        No calibration feeds, or a value was never computed or is not finite.
    """
    wanted = set(values)
    maxima: dict[str, np.ndarray] = {}

    def observe(name: str, value: np.ndarray) -> None:
        if name in wanted:
            channel_max = np.abs(value.reshape(-1, value.shape[-1])).max(axis=0).astype(np.float32)
            previous = maxima.get(name)
            maxima[name] = channel_max if previous is None else np.maximum(previous, channel_max)

    _run_calibration(graph, calibration, observe)
    return _checked_observations(maxima, wanted)


def activation_samples(graph: Graph, calibration: Iterable[Feeds], values: Sequence[str],
                       max_rows: int = 8192) -> dict[str, np.ndarray]:
    """Rows of the given values (flattened to ``[rows, channels]``) over calibration data.

    Parameters
    ----------
    graph : Graph
        The float graph.
    calibration : iterable of mapping
        Feeds (one array per graph input). Unpadded sentences are best: padding rows
        would count as data.
    values : sequence of str
        Value names to record.
    max_rows : int
        At most this many rows per value are kept (the first ones), so memory stays
        bounded.

    Returns
    -------
    dict of str to numpy.ndarray
        float32 ``[rows, channels]`` per value.

    Raises
    ------
    CalibrationError
        No calibration feeds, a value never computed, or non-finite values.
    """
    wanted = set(values)
    samples: dict[str, list[np.ndarray]] = {name: [] for name in wanted}
    counts = dict.fromkeys(wanted, 0)

    def observe(name: str, value: np.ndarray) -> None:
        if name in wanted and counts[name] < max_rows:
            rows = value.reshape(-1, value.shape[-1])[: max_rows - counts[name]]
            samples[name].append(np.array(rows, dtype=np.float32))
            counts[name] += rows.shape[0]

    _run_calibration(graph, calibration, observe)
    return _checked_observations({name: np.concatenate(samples[name]) for name, count in counts.items() if count},
                                 wanted)


def index_counts(graph: Graph, calibration: Iterable[Feeds], values: Mapping[str, int]) -> dict[str, np.ndarray]:
    """How often each row of a table is looked up over calibration data.

    Parameters
    ----------
    graph : Graph
        The float graph.
    calibration : iterable of mapping
        Feeds (one array per graph input).
    values : mapping of str to int
        Index value names (the Gather nodes' second inputs) and their tables' row counts.

    Returns
    -------
    dict of str to numpy.ndarray
        int64 ``[rows]`` counts per value (negative indices count for ``index + rows``).

    Raises
    ------
    CalibrationError
        No calibration feeds, a value never computed, or an index out of range.
    """
    counts = {name: np.zeros(rows, dtype=np.int64) for name, rows in values.items()}
    graph_inputs = {value.name for value in graph.inputs}
    seen: set[str] = set()

    def observe(name: str, value: np.ndarray) -> None:
        if name in counts:
            seen.add(name)
            rows = counts[name].size
            flat = np.asarray(value).astype(np.int64).reshape(-1)
            if flat.size and (flat.min() < -rows or flat.max() >= rows):
                raise CalibrationError(f"indices of {name!r} out of range [{-rows}, {rows - 1}]")
            counts[name] += np.bincount(np.where(flat < 0, flat + rows, flat), minlength=rows)

    feeds = list(calibration)
    if not feeds:
        raise CalibrationError("index counts need at least one calibration batch")
    if set(counts) - graph_inputs:
        _run_calibration(graph, feeds, observe)
    for feed in feeds:  # indices fed directly (input_ids) are not node outputs
        for name in graph_inputs & set(counts):
            if name not in feed:
                raise CalibrationError(f"a calibration feed has no input {name!r}")
            observe(name, feed[name])
    return _checked_observations({name: counts[name] for name in seen}, set(values))


def _stored_scale(scale: np.ndarray, scale_dtype: str = "float16") -> np.ndarray:
    """A scale as the file will store it (float64 copy): float32, or rounded up to float16."""
    if scale_dtype == "float16":
        half = float16_scale(scale)
        if half is not None:
            return half.astype(np.float64)
    return scale.astype(np.float32).astype(np.float64)


def int4_table(table: np.ndarray, block_size: int = 0) -> QuantizedTensor:
    """An embedding table in int4, affine, with a searched clip ratio per scale.

    Parameters
    ----------
    table : numpy.ndarray
        float ``[rows, columns]``.
    block_size : int
        0: one scale and zero point per row (axis 0); otherwise per block of
        ``block_size`` columns of a row (axis 1).

    Returns
    -------
    QuantizedTensor
        int4, int8 zero points in ``[-8, 7]``; scales rounded up to float16 values (kept
        float32 where a scale lies outside float16's normal range).

    Raises
    ------
    QuantParamError
        Not a 2-D table with columns, or a negative or non-integer ``block_size``.
    ShapeError
        A table without rows.
    NonFiniteError
        NaN or infinity in the table.

    Notes
    -----
    Per row (or block) the range ``[min(w, 0), max(w, 0)]`` times each ratio of
    :data:`INT4_CLIP_RATIOS` is tried and the one with the smallest squared round-trip
    error kept (:func:`gptq_quantize`'s block parameters, without the error feedback).
    """
    w = np.asarray(table, dtype=np.float64)
    if w.ndim != 2 or not w.shape[1]:
        raise QuantParamError(f"an embedding table must be 2-D with columns, got shape {w.shape}")
    if not w.size:
        raise ShapeError("cannot quantize an empty table")
    if not np.isfinite(w).all():
        raise NonFiniteError("cannot quantize a table holding NaN or infinite values")
    if not isinstance(block_size, (int, np.integer)) or isinstance(block_size, bool) or block_size < 0:
        raise QuantParamError(f"block size must be an integer >= 0, got {block_size!r}")
    width = block_size or w.shape[1]
    blocks = [w[:, start:start + width] for start in range(0, w.shape[1], width)]
    params = [_block_parameters(b.T, False, -8.0, 7.0, INT4_CLIP_RATIOS, _stored_scale) for b in blocks]
    data = np.concatenate([np.clip(np.rint(b / s[:, None]) + z[:, None], -8, 7) for b, (s, z) in zip(blocks, params)],
                          axis=1).astype(np.int8)
    scale = np.stack([s for s, _ in params], axis=1).astype(np.float32)
    zero = np.stack([z for _, z in params], axis=1).astype(np.int8)
    if not block_size:
        return QuantizedTensor(data, scale[:, 0], zero[:, 0], "int4", axis=0)
    return QuantizedTensor(data, scale, zero, "int4", axis=1, block_size=block_size)


def frequent_rows(table: np.ndarray, counts: np.ndarray, limit: int) -> tuple[np.ndarray, QuantizedTensor]:
    """The ``limit`` most looked-up rows of a table, in int8: a ``QGather``'s exception rows.

    Parameters
    ----------
    table : numpy.ndarray
        float ``[rows, columns]``.
    counts : numpy.ndarray
        Look-ups per row (:func:`index_counts`); rows never looked up are not chosen.
    limit : int
        At most this many rows.

    Returns
    -------
    (numpy.ndarray, QuantizedTensor)
        Their ids (int64, increasing; ties in count go to the lower id) and the rows,
        int8 symmetric with one scale per row (a float16 value where float16 holds it).

    Raises
    ------
    QuantParamError
        ``counts`` not one per row, ``limit`` below 1, or no row looked up (every count 0).
    """
    counts = np.asarray(counts)
    if counts.shape != (np.shape(table)[0],):
        raise QuantParamError(f"counts {counts.shape} must hold one count per table row ({np.shape(table)[0]})")
    if limit < 1:
        raise QuantParamError(f"limit must be >= 1, got {limit}")
    order = np.argsort(-counts, kind="stable")[:limit]
    ids = np.sort(order[counts[order] > 0]).astype(np.int64)
    if not ids.size:
        raise QuantParamError("no row of the table was looked up")
    rows = _quantize_tensor(np.asarray(table, np.float32)[ids], "int8", granularity="per_channel", axis=0,
                            scale_dtype="float16")
    return ids, rows


def sample_feeds(data: Mapping[str, np.ndarray], *, mask: str = "attention_mask") -> list[dict[str, np.ndarray]]:
    """Split batched calibration arrays into one unpadded feed per sample.

    Parameters
    ----------
    data : mapping of str to numpy.ndarray
        One array per model input, samples along axis 0 (the layout of a calibration
        .npz, padded to a common length).
    mask : str
        The input that marks real positions along axis 1 (nonzero) and padding (0, after
        the real positions: right padding). When ``data`` has it as a 2-D array, each
        sample is cut after its last real position in every input of the mask's shape
        (token ids, token types, the mask itself); other inputs are fed whole.

    Returns
    -------
    list of dict
        Feeds of batch 1, in sample order; samples whose mask is all zero are left out.

    Raises
    ------
    CalibrationError
        No arrays, arrays with no sample axis or different sample counts, a mask with
        padding before a real position, or no sample with a real position.

    Notes
    -----
    :func:`quantize_transformer` wants unpadded feeds: padding rows would count as
    calibration data in the smoothing statistics and GPTQ's Hessians.
    """
    if not data:
        raise CalibrationError("calibration data holds no arrays")
    arrays = {name: np.asarray(value) for name, value in data.items()}
    counts = {name: a.shape[0] if a.ndim else None for name, a in arrays.items()}
    if None in counts.values() or len(set(counts.values())) != 1:
        raise CalibrationError(f"calibration arrays need one common sample axis 0, got {counts}")
    marks = arrays.get(mask)
    if marks is not None and marks.ndim != 2:
        marks = None
    feeds = []
    for i in range(next(iter(counts.values()))):
        length = None  # no mask: every input whole
        if marks is not None:
            real = np.flatnonzero(marks[i])
            if not real.size:
                continue
            length = int(real[-1]) + 1
            if real.size != length:
                raise CalibrationError(f"sample {i}: {mask!r} has padding before a real position; "
                                       "only right padding can be cut")
        feeds.append({name: (a[i:i + 1, :length] if length is not None and a.shape == marks.shape else a[i:i + 1])
                      for name, a in arrays.items()})
    if not feeds:
        raise CalibrationError(f"no calibration sample has a nonzero {mask!r} position" if marks is not None
                               else "calibration data holds no samples")
    return feeds


def _fake_quantize_weight(weight: np.ndarray, bits: int, block_size: int) -> np.ndarray:
    """Symmetric weight quantization round trip: per output column, or blocks along K."""
    qmax = float((1 << (bits - 1)) - 1)
    if block_size and weight.shape[0] > block_size:
        rows = weight.shape[0]
        padded = -(-rows // block_size) * block_size
        blocks = np.zeros((padded, weight.shape[1]), dtype=np.float32)
        blocks[:rows] = weight
        blocks = blocks.reshape(padded // block_size, block_size, weight.shape[1])
        scale = np.abs(blocks).max(axis=1, keepdims=True) / qmax
        scale[scale == 0] = 1.0
        return (np.clip(np.rint(blocks / scale), -qmax - 1, qmax) * scale).reshape(padded, -1)[:rows]
    scale = np.abs(weight).max(axis=0, keepdims=True) / qmax
    scale[scale == 0] = 1.0
    return np.clip(np.rint(weight / scale), -qmax, qmax) * scale


def _fake_quantize_rows(x: np.ndarray) -> np.ndarray:
    """Per-row uint8 DynamicQuantizeLinear round trip (the runtime's per-token scheme)."""
    lo = np.minimum(x.min(axis=1, keepdims=True), 0)
    hi = np.maximum(x.max(axis=1, keepdims=True), 0)
    scale = (hi - lo) / 255.0
    scale[scale == 0] = 1.0
    zero_point = np.clip(np.rint(-lo / scale), 0, 255)
    return (np.clip(np.rint(x / scale) + zero_point, 0, 255) - zero_point) * scale


#: Migration strengths tried per layer by :func:`search_smoothing`; None = no smoothing.
ALPHA_GRID = (None, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def search_smoothing(samples: np.ndarray, weight: np.ndarray, *, weight_bits: int = 8, block_size: int = 0,
                     quantize_activations: bool = True,
                     alphas: Sequence[float | None] = ALPHA_GRID) -> tuple[float | None, np.ndarray]:
    """Choose the migration strength of one linear layer by its output error.

    Parameters
    ----------
    samples : numpy.ndarray
        ``[rows, K]`` calibration inputs of the layer.
    weight : numpy.ndarray
        ``[K, N]`` float weight.
    weight_bits, block_size : int
        The weight scheme (8 per output column; 4 with blocks along K).
    quantize_activations : bool
        Simulate the per-row uint8 activation quantization too (int8 dynamic) or not
        (weight-only).
    alphas : sequence
        Candidates; ``None`` means no smoothing.

    Returns
    -------
    (alpha, factors)
        The best candidate and its factors ``s`` (``[K]``, all ones for None).

    Notes
    -----
    Minimises ``|| x W - Q_x(x / s) Q_w(diag(s) W) ||_F`` over the candidates, with
    ``s`` from :func:`smoothing_factors`. Error propagation through later layers is not
    modelled; each layer is chosen on its own inputs.
    """
    x = np.asarray(samples, dtype=np.float32)
    w = np.asarray(weight, dtype=np.float32)
    reference = x @ w
    activation_max = np.abs(x).max(axis=0)
    best: tuple[float, float | None, np.ndarray] | None = None
    for alpha in alphas:
        factors = np.ones(w.shape[0], dtype=np.float32) if alpha is None else smoothing_factors(activation_max, w, alpha)
        scaled_x = x / factors
        if quantize_activations:
            scaled_x = _fake_quantize_rows(scaled_x)
        error = float(np.square(reference - scaled_x @ _fake_quantize_weight(w * factors[:, None], weight_bits,
                                                                            block_size)).sum())
        if best is None or error < best[0]:
            best = (error, alpha, factors)
    assert best is not None
    return best[1], best[2]


def gptq_quantize(weight: np.ndarray, samples: np.ndarray, *, bits: int = 8, block_size: int = 0,
                  symmetric: bool = True, damping: float = 0.01, lazy_block: int = 128,
                  scale_dtype: str = "float16", clip_ratios: Sequence[float] = (1.0,),
                  pair_limit: int | None = None) -> QuantizedTensor:
    """Quantize a ``[K, N]`` MatMul weight with GPTQ's error-compensating rounding.

    Parameters
    ----------
    weight : numpy.ndarray
        ``[K, N]`` float weight (rows are input features).
    samples : numpy.ndarray
        ``[rows, K]`` calibration inputs of the layer.
    bits : {8, 4}
        Symmetric signed weights, zero point 0.
    block_size : int
        0: one scale per output column (``axis=1``); otherwise one scale per block of
        ``block_size`` input features and output column (``axis=0``).
    symmetric : bool
        Zero point 0 and ``scale = max|w| / qmax`` (default), or affine per block:
        ``scale = (max w - min w) / (2**bits - 1)`` (range widened to include 0),
        ``zero_point = clip(round_half_even(qmin - min w / scale), qmin, qmax)``
        (blocked weights only).
    damping : float
        Added to the Hessian diagonal, as a fraction of its mean.
    lazy_block : int
        Rows updated together (speed only; the result does not depend on it).
    scale_dtype : {"float16", "float32"}
        ``"float16"`` (default) rounds every scale up to a float16 value
        (:func:`qcore.reference.params.float16_scale`) before the rows are rounded with
        it, so the file stores two-byte scales that the data agrees with exactly;
        ``"float32"`` keeps float32 scales.
    clip_ratios : sequence of float
        Blocked weights only: candidate fractions of each block's range; per block and
        output column the one whose plain round trip of the block (as updated when the
        block starts) has the smallest squared error is used. ``(1.0,)`` (default) is the
        full range.
    pair_limit : int, optional
        Constrain every pair of input features ``(2j, 2j + 1)`` to
        ``|q[2j, n]| + |q[2j + 1, n]| <= pair_limit`` (symmetric weights): the odd row is
        clipped to what its partner leaves, and GPTQ spreads the clipping error like any
        rounding error. With 128, a byte-pair multiply-add of uint8 activations
        (x86 ``vpmaddubsw``) cannot saturate. None (default): no constraint.

    Returns
    -------
    QuantizedTensor
        int8 (``bits=8``) or int4 values, symmetric, ONNX convention.

    Raises
    ------
    QuantParamError
        Bad ``bits`` or ``block_size``, or shapes that do not match.

    Notes
    -----
    Rounds the input features one after another and spreads each rounding error over the
    features not yet rounded so that ``|| X W - X Q ||_F`` stays small
    (Frantar et al., 2022): with ``H = X^T X + lambda I`` and ``U`` the upper Cholesky
    factor of ``H^-1``, after rounding row ``k`` the remaining rows receive
    ``W[j] -= U[k, j] * (W[k] - Q[k]) / U[k, k]`` for ``j > k``. Scales:
    ``max|w| / qmax`` (``qmax = 127`` or ``7``) over the column (per channel, from the
    original weight) or over the block (from the weight as updated when the block
    starts). Features never active in the calibration data are quantized plainly.
    """
    if bits not in (8, 4):
        raise QuantParamError(f"bits must be 8 or 4, got {bits}")
    if not clip_ratios or not all(0.0 < float(r) <= 1.0 for r in clip_ratios):
        raise QuantParamError(f"clip ratios must be in (0, 1], got {tuple(clip_ratios)}")
    if block_size < 0:
        raise QuantParamError(f"block size must be >= 0, got {block_size}")
    if pair_limit is not None and (not symmetric or pair_limit < 1):
        raise QuantParamError(f"pair_limit needs symmetric weights and a positive limit, got {pair_limit}")
    w = np.array(weight, dtype=np.float64)
    x = np.asarray(samples, dtype=np.float64)
    if w.ndim != 2 or x.ndim != 2 or x.shape[1] != w.shape[0]:
        raise QuantParamError(f"samples {x.shape} do not match the weight {w.shape}")
    k_dim, n_dim = w.shape
    qmax = float((1 << (bits - 1)) - 1)
    hessian = x.T @ x
    dead = np.diag(hessian) == 0
    hessian[dead, dead] = 1.0
    hessian[np.diag_indices(k_dim)] += damping * float(np.mean(np.diag(hessian)))
    upper = np.linalg.cholesky(np.linalg.inv(hessian)).T

    qmin = -qmax - 1
    check_scale_dtype(scale_dtype)

    def stored(scale: np.ndarray) -> np.ndarray:
        return _stored_scale(scale, scale_dtype)

    if not symmetric and not block_size:
        raise QuantParamError("affine GPTQ weights need a block size")
    if block_size:
        scales = np.ones((-(-k_dim // block_size), n_dim))
        zero_points = np.zeros((-(-k_dim // block_size), n_dim))
    else:
        column_scale = np.abs(w).max(axis=0) / qmax
        column_scale[column_scale == 0] = 1.0
        column_scale = stored(column_scale)
    q = np.zeros((k_dim, n_dim), dtype=np.int8)
    for start in range(0, k_dim, lazy_block):
        stop = min(start + lazy_block, k_dim)
        errors = np.zeros((stop - start, n_dim))
        for k in range(start, stop):
            if block_size:
                if k % block_size == 0:
                    group, zero_point = _block_parameters(w[k:k + block_size], symmetric, qmin, qmax, clip_ratios,
                                                          stored)
                    scales[k // block_size] = group
                    zero_points[k // block_size] = zero_point
                scale = scales[k // block_size]
                zero_point = zero_points[k // block_size]
            else:
                scale = column_scale
                zero_point = 0.0
            row = w[k]
            values = np.clip(np.rint(row / scale) + zero_point, qmin, qmax)
            if pair_limit is not None and k % 2 == 1:
                room = np.maximum(pair_limit - np.abs(q[k - 1].astype(np.float64)), 0.0)
                values = np.clip(values, -room, room)
            q[k] = values
            error = (row - (q[k] - zero_point) * scale) / upper[k, k]
            w[k + 1:stop] -= np.outer(upper[k, k + 1:stop], error)
            errors[k - start] = error
        w[stop:] -= upper[start:stop, stop:].T @ errors
    dtype = "int8" if bits == 8 else "int4"
    if block_size:
        scale_array = scales.astype(np.float32)
        return QuantizedTensor(q, scale_array, zero_points.astype(np.int8), dtype, axis=0, block_size=block_size)
    scale_array = column_scale.astype(np.float32)
    return QuantizedTensor(q, scale_array, np.zeros(n_dim, dtype=np.int8), dtype, axis=1)


def _block_parameters(block: np.ndarray, symmetric: bool, qmin: float, qmax: float, clip_ratios: Sequence[float],
                      stored: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point of each column of a ``[rows, N]`` weight block.

    Each candidate range is the block's range (widened to include 0) times one of
    ``clip_ratios``; per column the candidate whose round trip has the smallest squared
    error is kept (ties: the earliest ratio).
    """
    low = np.minimum(block.min(axis=0), 0.0)
    high = np.maximum(block.max(axis=0), 0.0)
    best_error = best_scale = best_zero = None
    for ratio in clip_ratios:
        if symmetric:
            scale = np.maximum(-low, high) * ratio / qmax
            scale[scale == 0] = 1.0
            scale = stored(scale)
            zero = np.zeros_like(scale)
        else:
            scale = (high - low) * ratio / (qmax - qmin)
            scale[scale == 0] = 1.0
            scale = stored(scale)
            zero = np.clip(np.rint(qmin - low * ratio / scale), qmin, qmax)
        restored = (np.clip(np.rint(block / scale) + zero, qmin, qmax) - zero) * scale
        error = ((restored - block) ** 2).sum(axis=0)
        if best_error is None:
            best_error, best_scale, best_zero = error, scale, zero
        else:
            better = error < best_error
            best_error = np.where(better, error, best_error)
            best_scale = np.where(better, scale, best_scale)
            best_zero = np.where(better, zero, best_zero)
    return best_scale, best_zero


def smoothing_factors(activation_max: np.ndarray, weight: np.ndarray, alpha: float) -> np.ndarray:
    """SmoothQuant's per-input-channel factors for ``y = x @ W`` (W is ``[K, N]``).

    Parameters
    ----------
    activation_max : numpy.ndarray
        ``[K]``, the calibration maximum of ``|x|`` per input channel.
    weight : numpy.ndarray
        ``[K, N]`` float weights (rows are input channels).
    alpha : float
        Migration strength in [0, 1]: 0 leaves the activations alone, 1 moves all of the
        range into the weights.

    Returns
    -------
    numpy.ndarray
        float32 ``[K]``, positive.

    Notes
    -----
    ``s_k = clip(max|x_k|**alpha / max_n |W[k, n]|**(1 - alpha), 1e-2, 1e2)``; the layer
    then computes ``(x / s) @ (diag(s) W)``, which equals ``x @ W`` in real arithmetic.
    A channel that is zero in the activations or the weights gets ``s = 1``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise QuantParamError(f"smoothing alpha must lie in [0, 1], got {alpha}")
    activation_max = np.asarray(activation_max, dtype=np.float64)
    weight_max = np.abs(np.asarray(weight, dtype=np.float64)).max(axis=1)
    usable = (activation_max > 0) & (weight_max > 0)
    factors = np.ones_like(activation_max)
    factors[usable] = activation_max[usable] ** alpha / weight_max[usable] ** (1.0 - alpha)
    return np.clip(factors, *SMOOTHING_LIMITS).astype(np.float32)


def smooth_activations(model: Any, calibration: Iterable[Feeds], *,
                       alpha: float | Mapping[str, float] | str = "search", weight_bits: int = 8,
                       block_size: int = 0, quantize_activations: bool = True,
                       exclude_nodes: Sequence[str] = (), max_rows: int = 8192) -> Graph:
    """Migrate activation outliers of every linear layer into its weights.

    Parameters
    ----------
    model : Model, Graph, str or onnx.ModelProto
        The float model.
    calibration : iterable of mapping
        Feeds to collect per-channel activation maxima from.
    alpha : float, mapping of str to float, or "search"
        Migration strength, one for all layers or per MatMul node name (missing names use
        ``alpha["*"]``, default 0.5); ``"search"`` (default) picks it per layer with
        :func:`search_smoothing` for the target scheme.
    weight_bits, block_size, quantize_activations
        The scheme the search simulates (see :func:`search_smoothing`).
    exclude_nodes : sequence of str
        MatMul nodes to leave untouched.
    max_rows : int
        Calibration rows (tokens) per layer input the search uses (the first ones;
        :func:`activation_samples`).

    Returns
    -------
    Graph
        A new graph computing the same function: before each smoothed MatMul a ``Mul`` by
        the constant ``1 / s`` (one per distinct input value and factor vector) and the
        MatMul's weight replaced by ``diag(s) W``.

    Notes
    -----
    The division is a separate float ``Mul`` rather than folded into the producer,
    because in post-LN encoders the producer (LayerNormalization) also feeds the residual
    path, which must see the unscaled value. With ``alpha="search"`` and
    ``quantize_activations``, MatMuls that read the same input (an attention's query, key
    and value projections) get one factor vector, searched on their weights concatenated
    along the outputs, and one ``Mul``: the runtime quantizes that input once for all of
    them (weight-only searches stay per layer: there sharing cost all-MiniLM-L6-v2 0.013
    of worst-sentence cosine; bench/results/minilm.md has both measurements).
    """
    graph = _as_graph(model)
    sites = find_sites(graph, exclude_nodes=exclude_nodes, op_types=("MatMul",), fuse_bias=False)
    if not sites:
        return graph.copy()
    inputs = sorted({site.node.inputs[0] for site in sites})
    searching = isinstance(alpha, str)
    if searching and alpha != "search":
        raise QuantParamError(f"alpha must be a number, a mapping or 'search', got {alpha!r}")
    if searching:
        samples = activation_samples(graph, calibration, inputs, max_rows=max_rows)
    else:
        maxima = activation_channel_maxima(graph, calibration, inputs)
    chosen: dict[str, float | None] = {}
    out = graph.copy()
    by_name = {site.node.name: site for site in sites}
    # with quantized activations, MatMuls reading one input (an attention's query, key and
    # value) share one factor vector, searched on their weights side by side, and one
    # smoothing Mul: the runtime then quantizes that input once for all of them
    siblings: dict[str, list[Any]] = {}
    if searching and quantize_activations:
        for site in sites:
            siblings.setdefault(site.node.inputs[0], []).append(site)
    shared: dict[str, tuple[float | None, np.ndarray, str]] = {}
    nodes: list[Node] = []
    for node in out.nodes:
        site = by_name.get(node.name)
        if site is None:
            nodes.append(node)
            continue
        group = siblings.get(node.inputs[0], [site])
        first = group[0].node.name
        if len(group) > 1 and node.inputs[0] in shared:
            strength, factors, first = shared[node.inputs[0]]
        elif searching:
            weight = site.weight if len(group) == 1 else np.concatenate([g.weight for g in group], axis=1)
            strength, factors = search_smoothing(samples[node.inputs[0]], weight, weight_bits=weight_bits,
                                                 block_size=block_size,
                                                 quantize_activations=quantize_activations)
            shared[node.inputs[0]] = (strength, factors, first)
        else:
            strength = alpha if isinstance(alpha, (int, float)) else alpha.get(node.name, alpha.get("*", 0.5))
            factors = smoothing_factors(maxima[node.inputs[0]], site.weight, float(strength))
        chosen[node.name] = strength
        if strength is None:
            nodes.append(node)
            continue
        weight_name = f"{node.name}.smoothed_weight"
        inverse_name = f"{first}.smoothing_inverse"
        scaled_input = f"{first}.smoothed_input"
        out.initializers[weight_name] = (site.weight * factors[:, None]).astype(np.float32)
        if first == node.name:
            out.initializers[inverse_name] = (np.float32(1.0) / factors).astype(np.float32)
            nodes.append(Node("Mul", [node.inputs[0], inverse_name], [scaled_input], {}, f"{node.name}.smoothing"))
        nodes.append(Node(node.op, [scaled_input, weight_name], list(node.outputs), dict(node.attrs), node.name))
    out.nodes = nodes
    from .transforms import remove_dead_code  # noqa: PLC0415

    out = remove_dead_code(out)
    out.metadata["smoothing"] = {"alpha": chosen, "searched": searching}
    return out


def quantize_transformer(model: Any, calibration: Iterable[Feeds] | None = None, *, weight_bits: int = 8,
                         block_size: int = 32, alpha: float | Mapping[str, float] | str = "search",
                         rounding: str = "gptq", symmetric: bool = False,
                         exclude_nodes: Sequence[str] = (), max_rows: int = 8192) -> Any:
    """Quantize a transformer encoder for accuracy close to float.

    Parameters
    ----------
    model : Model, Graph, str or onnx.ModelProto
        The float model.
    calibration : iterable of mapping, optional
        Feeds for the smoothing statistics and the GPTQ Hessians (a few dozen sentences,
        unpadded, suffice). Without it: no smoothing and round-to-nearest weights.
    weight_bits : {8, 4}
        8: int8 weights per output column, activations quantized per row (per token) at
        run time to uint8 (``QMatMul``). 4: int4 weight-only in blocks of ``block_size``
        along K, activations in float (``WMatMul``).
    block_size : int
        Block length of the int4 weights, and of the int4 embedding tables of at most
        :data:`INT4_TABLE_BLOCK_ROWS` rows (ignored for 8 bits).
    alpha : float, mapping or "search"
        Smoothing strength (:func:`smooth_activations`); ``"search"`` picks it per layer.
    rounding : {"gptq", "nearest"}
        Weight rounding with calibration data: GPTQ (:func:`gptq_quantize`) or plain
        round-to-nearest.
    symmetric : bool
        int4 only: symmetric blocks (zero point 0) or affine blocks with a zero point
        (default: on all-MiniLM-L6-v2 affine blocks reached a mean sentence cosine of
        0.980 against 0.971 for symmetric ones).
    exclude_nodes : sequence of str
        MatMul nodes to leave in float.
    max_rows : int
        Calibration rows (tokens) per layer input that the smoothing search and GPTQ's
        Hessians use, the first ones (memory grows with it: rows x width x 4 bytes per
        layer input).

    Returns
    -------
    Model

    Raises
    ------
    QuantParamError
        ``weight_bits`` not 8 or 4, an unknown ``rounding``, ``max_rows`` below 1, or
        (int4) ``block_size`` below 1.

    Notes
    -----
    MatMuls with a constant weight and embedding tables (``QGather``: int8 with one
    symmetric scale per row; with int4 weights, :func:`int4_table`: tables of at most
    :data:`INT4_TABLE_BLOCK_ROWS` rows in affine blocks of ``block_size`` along each row,
    larger ones with one affine scale and zero point per row, which keeps the 30522-row
    table of a BERT vocabulary at 4.1 bits per value, plus its
    :data:`INT4_TABLE_INT8_ROWS` rows most looked up in the calibration data again in
    int8, :func:`frequent_rows`) are quantized; the attention products of two activations, softmax, layer
    normalisation and GELU run in float32. int4 GPTQ tries the block ranges
    :data:`INT4_CLIP_RATIOS` (:func:`gptq_quantize`'s ``clip_ratios``).
    """
    from .quantize import _quantize_embedding, _quantize_tensor, _rewrite, find_embedding_sites  # noqa: PLC0415

    if weight_bits not in (8, 4):
        raise QuantParamError(f"weight_bits must be 8 or 4, got {weight_bits}")
    if rounding not in ("gptq", "nearest"):
        raise QuantParamError(f"rounding must be 'gptq' or 'nearest', got {rounding!r}")
    if max_rows < 1:
        raise QuantParamError(f"max_rows must be >= 1, got {max_rows}")
    if weight_bits == 4 and (not isinstance(block_size, (int, np.integer)) or isinstance(block_size, bool)
                             or block_size < 1):
        raise QuantParamError(f"block_size must be an integer >= 1, got {block_size!r}")
    graph = _as_graph(model)
    if calibration is None:
        if weight_bits == 4:
            return quantize_weight_only(graph, bits=4, block_size=block_size, exclude_nodes=exclude_nodes,
                                        op_types=("MatMul",))
        return quantize_dynamic(graph, per_channel=True, per_row=True, exclude_nodes=exclude_nodes)
    calibration = list(calibration)
    graph = smooth_activations(graph, calibration, alpha=alpha, weight_bits=weight_bits,
                               block_size=block_size if weight_bits == 4 else 0,
                               quantize_activations=weight_bits == 8, exclude_nodes=exclude_nodes,
                               max_rows=max_rows)
    smoothing = graph.metadata.get("smoothing", {})
    if rounding == "nearest":
        if weight_bits == 4:
            result = quantize_weight_only(graph, bits=4, block_size=block_size, exclude_nodes=exclude_nodes,
                                          op_types=("MatMul",))
        else:
            result = quantize_dynamic(graph, per_channel=True, per_row=True, exclude_nodes=exclude_nodes)
        result.graph.metadata["smoothing"] = smoothing
        return result
    sites = find_sites(graph, exclude_nodes=exclude_nodes, op_types=("MatMul",))
    samples = activation_samples(graph, calibration, sorted({site.node.inputs[0] for site in sites}),
                                 max_rows=max_rows)
    tables = find_embedding_sites(graph, exclude_nodes=exclude_nodes)
    sites += tables
    vocabularies: dict[str, int] = {}  # index value -> rows of the largest table it indexes
    for site in tables:
        if site.weight.shape[0] > INT4_TABLE_BLOCK_ROWS:
            index = site.node.inputs[1]
            vocabularies[index] = max(vocabularies.get(index, 0), site.weight.shape[0])
    lookups = index_counts(graph, calibration, vocabularies) if weight_bits == 4 and vocabularies else {}

    def make(site: Any) -> tuple:
        if site.node.op == "Gather":
            if weight_bits == 8:
                return "QGather", _quantize_embedding(site, "int8"), {}
            if site.weight.shape[0] <= INT4_TABLE_BLOCK_ROWS:
                return "QGather", int4_table(site.weight, block_size), {}
            table = int4_table(site.weight)
            counts = lookups.get(site.node.inputs[1], np.zeros(0, np.int64))[:site.weight.shape[0]]
            if not counts.any():
                return "QGather", table, {}
            return "QGather", table, {}, frequent_rows(site.weight, counts, INT4_TABLE_INT8_ROWS)
        samples_in = samples[site.node.inputs[0]]
        if weight_bits == 4:
            return "WMatMul", gptq_quantize(site.weight, samples_in, bits=4, block_size=block_size,
                                            symmetric=symmetric, clip_ratios=INT4_CLIP_RATIOS), {}
        attrs = {"activation": "dynamic", "x_dtype": "uint8", "per_row": 1}
        # float32 scales on the int8 layers: with float16 ones the worst of the 60 test
        # sentences measured 0.9921 against 0.9938 (bench/results/sizes.md); the 41 kB
        # they would save are not needed (the float16 embedding scales save 91 kB).
        return "QMatMul", gptq_quantize(site.weight, samples_in, bits=8, scale_dtype="float32"), attrs

    metadata = {"mode": "weight-only" if weight_bits == 4 else "dynamic", "recipe": "transformer",
                "bits": weight_bits, "block_size": block_size if weight_bits == 4 else 0, "per_row": weight_bits == 8,
                "rounding": rounding, "exclude_nodes": list(exclude_nodes)}
    from ..runtime.model import Model  # noqa: PLC0415

    quantized = _rewrite(graph, sites, make, metadata)
    quantized.metadata["smoothing"] = smoothing
    return Model(quantized)


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(a.shape[0], -1).astype(np.float64)
    b = b.reshape(b.shape[0], -1).astype(np.float64)
    denominator = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(denominator > 0, (a * b).sum(axis=1) / np.where(denominator > 0, denominator, 1), 1.0)


def sensitivity_report(model: Any, feeds: Sequence[Feeds], *, calibration: Iterable[Feeds] | None = None,
                       alpha: float | Mapping[str, float] | str = "search",
                       output: str | None = None) -> list[LayerSensitivity]:
    """Cost of quantizing each linear layer alone in int8 (smoothing, per-token activations).

    Parameters
    ----------
    model : Model, Graph, str or onnx.ModelProto
        The float model.
    feeds : sequence of mapping
        Evaluation feeds; each one's first axis is the batch.
    calibration : iterable of mapping, optional
        Smoothing statistics, as for :func:`quantize_transformer`; without it the layers
        are not smoothed.
    alpha : float, mapping or "search"
        Smoothing strength (:func:`smooth_activations`).
    output : str, optional
        The graph output to compare (default: the first).

    Returns
    -------
    list of LayerSensitivity
        One per quantizable MatMul, lowest worst-case cosine first.

    Notes
    -----
    For each layer the model is quantized with every other MatMul excluded (weights
    rounded to nearest, so the figures show the layer's exposure, not GPTQ's result,
    and embeddings left in float); the output
    is compared with the float model's per batch row: cosine (mean and worst) and
    ``SQNR = 10 log10(sum y**2 / sum (y - y_q)**2)`` over all feeds.
    """
    from ..runtime.model import Model  # noqa: PLC0415

    graph = _as_graph(model)
    if not feeds:
        raise ModelError("the sensitivity report needs at least one evaluation feed")
    output = graph.outputs[0].name if output is None else output
    if calibration is not None:
        graph = smooth_activations(graph, list(calibration), alpha=alpha)
    reference_model = Model(graph)
    references = [reference_model.run(f)[output] for f in feeds]
    names = [site.node.name for site in find_sites(graph, op_types=("MatMul",))]
    report: list[LayerSensitivity] = []
    for name in names:
        quantized = quantize_dynamic(graph, per_channel=True, per_row=True, embeddings=False,
                                     exclude_nodes=[other for other in names if other != name])
        cosines, signal, noise = [], 0.0, 0.0
        for f, reference in zip(feeds, references):
            result = quantized.run(f)[output]
            cosines.append(_cosine_rows(result, reference))
            signal += float(np.square(reference, dtype=np.float64).sum())
            noise += float(np.square(result.astype(np.float64) - reference).sum())
        cosine = np.concatenate(cosines)
        sqnr = float("inf") if noise == 0 else 10.0 * np.log10(signal / noise)
        report.append(LayerSensitivity(name, float(cosine.mean()), float(cosine.min()), sqnr))
    report.sort(key=lambda entry: (entry.cosine_worst, entry.sqnr_db))
    return report
