"""Choosing a scale and zero point from a real range (docs/ARITHMETIC.md, "Choosing parameters").

One function per convention, each reproducing how that ecosystem's own tools pick the
parameters, bit for bit:

- ``"onnx"``: onnxruntime's quantization tools (``quant_utils.compute_scale_zp`` and
  ``get_qmin_qmax_for_qType``), the de-facto ONNX recipe;
- ``"tflite"``: the TFLite converter (``GetAsymmetricQuantizationParams`` for activations,
  ``max|x| / 127`` for symmetric weights);
- ``"pytorch"``: ``torch.ao.quantization`` observers (``_calculate_qparams``).

Every convention first widens the range to include 0, so real zero is exactly
representable (it quantizes to the zero point).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..errors import NonFiniteError, QuantParamError, ShapeError
from .dtypes import IntType, int_type
from .fixedpoint import round_half_away

CONVENTIONS = ("onnx", "tflite", "pytorch")

_F32_TINY = np.finfo(np.float32).tiny
_F32_EPS = np.finfo(np.float32).eps

# onnxruntime quant_utils: ONNX_INT_TYPE_REDUCED_RANGE and ONNX_INT_TYPE_SYMMETRIC_RANGE.
_ONNX_REDUCED = {
    "uint8": (0, 127),
    "int8": (-64, 64),
    "uint16": (0, 32767),
    "int16": (-16384, 16384),
    "uint4": (0, 7),
    "int4": (-4, 3),
}
_ONNX_SYMMETRIC = {"int8": (-127, 127), "int16": (-32767, 32767)}


def check_convention(convention: str) -> str:
    """Return ``convention`` if it is known, else raise :class:`QuantParamError`."""
    if convention not in CONVENTIONS:
        raise QuantParamError(f"unknown convention {convention!r}; known: {', '.join(CONVENTIONS)}")
    return convention


def _quantizable(dtype: str | IntType) -> IntType:
    itype = int_type(dtype)
    if itype.name == "int32":
        raise QuantParamError("int32 is not a quantization target (it holds accumulators and biases)")
    return itype


def quant_range(
    dtype: str | IntType = "int8", *, symmetric: bool = False, convention: str = "onnx", reduce_range: bool = False
) -> tuple[int, int]:
    """The integer range ``[qmin, qmax]`` a convention maps the real range onto.

    Parameters
    ----------
    dtype : str or IntType
        Target type (``"int8"``, ``"uint8"``, ``"int4"``, ...).
    symmetric : bool
        Symmetric (zero point at the middle) or affine.
    convention : {"onnx", "tflite", "pytorch"}
    reduce_range : bool
        One bit less (onnxruntime's and PyTorch's option for CPUs whose int8 dot
        products saturate in int16).

    Returns
    -------
    (int, int)

    Raises
    ------
    QuantParamError
        An unknown convention, or a combination the convention does not define
        (TFLite: reduce_range, symmetric unsigned; ONNX: reduce_range for 2-bit types).

    Notes
    -----
    ============ ====================================== ==================================
    convention   symmetric                              reduce_range
    ============ ====================================== ==================================
    onnx         int8 [-127, 127], int16 [-32767,       onnxruntime's table: int8 [-64, 64],
                 32767]; other types full range         uint8 [0, 127], int4 [-4, 3], ...
    tflite       signed only, [-(2^(b-1)-1), 2^(b-1)-1] not defined
    pytorch      full range (scale uses (qmax-qmin)/2)  signed [-2^(b-2), 2^(b-2)-1],
                                                        unsigned affine [0, 2^(b-1)-1]
    ============ ====================================== ==================================
    """
    itype = _quantizable(dtype)
    check_convention(convention)
    if convention == "onnx":
        if reduce_range:
            if itype.name not in _ONNX_REDUCED:
                raise QuantParamError(f"onnx convention defines no reduced range for {itype.name}")
            return _ONNX_REDUCED[itype.name]
        if symmetric and itype.name in _ONNX_SYMMETRIC:
            return _ONNX_SYMMETRIC[itype.name]
        return itype.qmin, itype.qmax
    if convention == "tflite":
        if reduce_range:
            raise QuantParamError("the tflite convention has no reduce_range")
        if symmetric:
            if not itype.signed:
                raise QuantParamError(f"tflite symmetric quantization is signed only, got {itype.name}")
            return -itype.qmax, itype.qmax
        return itype.qmin, itype.qmax
    # pytorch
    if reduce_range:
        if symmetric and not itype.signed:
            raise QuantParamError("pytorch cannot reduce the range of symmetric unsigned quantization")
        if itype.signed:
            return -(1 << (itype.bits - 2)), (1 << (itype.bits - 2)) - 1
        return 0, (1 << (itype.bits - 1)) - 1
    return itype.qmin, itype.qmax


def _check_range(min_val: ArrayLike, max_val: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    lo = np.asarray(min_val, dtype=np.float32)
    hi = np.asarray(max_val, dtype=np.float32)
    try:
        shape = np.broadcast_shapes(lo.shape, hi.shape)
    except ValueError as exc:
        raise ShapeError(f"min_val {lo.shape} and max_val {hi.shape} do not broadcast") from exc
    lo, hi = np.broadcast_to(lo, shape), np.broadcast_to(hi, shape)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise NonFiniteError("the range to quantize must be finite")
    if np.any(lo > hi):
        raise QuantParamError("min_val must be <= max_val")
    return lo, hi


def choose_qparams(
    min_val: ArrayLike,
    max_val: ArrayLike,
    dtype: str | IntType = "int8",
    *,
    symmetric: bool = True,
    convention: str = "onnx",
    reduce_range: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point for the real range ``[min_val, max_val]`` (element-wise).

    Parameters
    ----------
    min_val, max_val : float or array_like
        The range, one per tensor, channel or block (broadcast together). Cast to float32.
    dtype : str or IntType
        Target type: int8, uint8, int16, uint16, int4, uint4, int2, uint2.
    symmetric : bool
        Symmetric (zero point fixed, range ``[-max|r|, max|r|]``) or affine.
    convention : {"onnx", "tflite", "pytorch"}
    reduce_range : bool
        See :func:`quant_range`.

    Returns
    -------
    scale : numpy.ndarray
        float32, > 0, the broadcast shape of the inputs.
    zero_point : numpy.ndarray
        Same shape, the container dtype of ``dtype`` (int8 for int4).

    Raises
    ------
    NonFiniteError
        A NaN or infinite bound.
    QuantParamError
        ``min_val > max_val``, an unknown convention, or an undefined combination.
    ShapeError
        The bounds do not broadcast.

    Notes
    -----
    All conventions first widen: ``rmin = min(min_val, 0)``, ``rmax = max(max_val, 0)``
    (float32). ``[qmin, qmax] = quant_range(...)``. Then:

    onnx (float64 arithmetic, scale stored as float32):
        symmetric: ``a = max(|rmin|, |rmax|)``, ``rmin, rmax = -a, a``;
        ``scale = (rmax - rmin) / (qmax - qmin)``; if ``scale < float32 tiny``:
        ``scale = 1, zp = 0``; else ``zp = round_half_even((qmin + qmax) / 2)`` (symmetric)
        or ``round_half_even(qmin - rmin / scale)`` (affine).
    tflite (float32 arithmetic):
        symmetric: ``scale = max(|rmin|, |rmax|) / qmax``, ``zp = 0``; affine:
        ``scale = (rmax - rmin) / (qmax - qmin)``, ``z = qmin - rmin / scale``,
        ``zp = qmin if z < qmin, qmax if z > qmax, else round_half_away(z)``.
        A scale below the smallest normal float32 (a zero range) becomes ``scale = 1``
        (affine: with ``zp = qmin``, TFLite's zero-scale branch). TFLite itself stores 0
        for an all-zero channel, which is not a valid scale.
    pytorch (float32 arithmetic, ``eps = 2**-23``):
        symmetric: ``scale = max(max(-rmin, rmax) / ((qmax - qmin) / 2), eps)``,
        ``zp = 0`` for signed types, ``2**(bits-1)`` for unsigned (128 for uint8); affine:
        ``scale = max((rmax - rmin) / (qmax - qmin), eps)``,
        ``zp = clip(qmin - round_half_even(rmin / scale), qmin, qmax)``.
    """
    itype = _quantizable(dtype)
    qmin, qmax = quant_range(itype, symmetric=symmetric, convention=convention, reduce_range=reduce_range)
    lo, hi = _check_range(min_val, max_val)
    zero = np.float32(0)
    rmin = np.minimum(lo, zero)
    rmax = np.maximum(hi, zero)
    if convention == "onnx":
        scale, zp = _onnx_qparams(rmin, rmax, qmin, qmax, symmetric)
    elif convention == "tflite":
        scale, zp = _tflite_qparams(rmin, rmax, qmin, qmax, symmetric)
    else:
        scale, zp = _pytorch_qparams(rmin, rmax, qmin, qmax, symmetric, itype)
    return np.asarray(scale, dtype=np.float32), np.asarray(zp).astype(itype.container)


def _onnx_qparams(rmin, rmax, qmin, qmax, symmetric):
    if symmetric:
        absmax = np.maximum(np.abs(rmin), np.abs(rmax))
        rmin, rmax = -absmax, absmax
    scale64 = (rmax.astype(np.float64) - rmin.astype(np.float64)) / float(qmax - qmin)
    degenerate = scale64 < _F32_TINY
    safe = np.where(degenerate, 1.0, scale64)
    if symmetric:
        zp = np.full(scale64.shape, np.round((qmin + qmax) / 2.0))
    else:
        zp = np.round(qmin - rmin.astype(np.float64) / safe)
    scale = np.where(degenerate, np.float32(1), scale64.astype(np.float32))
    return scale, np.where(degenerate, 0, zp).astype(np.int64)


def _tflite_qparams(rmin, rmax, qmin, qmax, symmetric):
    if symmetric:
        absmax = np.maximum(np.abs(rmin), np.abs(rmax))
        scale = absmax / np.float32(qmax)
        return np.where(scale < _F32_TINY, np.float32(1), scale), np.zeros(scale.shape, np.int64)
    fmin, fmax = np.float32(qmin), np.float32(qmax)
    scale = (rmax - rmin) / (fmax - fmin)
    degenerate = scale < _F32_TINY
    safe = np.where(degenerate, np.float32(1), scale)
    from_min = np.where(degenerate, fmin, fmin - rmin / safe)
    zp = np.where(from_min < fmin, fmin, np.where(from_min > fmax, fmax, round_half_away(from_min)))
    return np.where(degenerate, np.float32(1), scale), zp.astype(np.int64)


def _pytorch_qparams(rmin, rmax, qmin, qmax, symmetric, itype):
    eps = np.float32(_F32_EPS)
    if symmetric:
        half_levels = np.float32((qmax - qmin) / 2)
        scale = np.maximum(np.maximum(-rmin, rmax) / half_levels, eps)
        zp_value = 0 if itype.signed else 1 << (itype.bits - 1)
        return scale, np.full(scale.shape, zp_value, np.int64)
    scale = np.maximum((rmax - rmin) / np.float32(qmax - qmin), eps)
    zp = qmin - np.round(rmin / scale).astype(np.int64)
    return scale, np.clip(zp, qmin, qmax)


#: Smallest normal and largest finite float16 values: the range of scales stored as
#: float16 (below 2**-14 float16 is subnormal and loses relative precision).
FLOAT16_SCALE_MIN = 2.0 ** -14
FLOAT16_SCALE_MAX = 65504.0

#: How a quantizer may store the scales it chooses.
SCALE_DTYPE_NAMES = ("float32", "float16")


def float16_scale(scale: ArrayLike) -> np.ndarray | None:
    """Round scales up to float16 values, for storage as float16 (docs/ARITHMETIC.md).

    Parameters
    ----------
    scale : array_like of float
        Positive, finite scales (float32 or float64).

    Returns
    -------
    numpy.ndarray or None
        float32, same shape: for each scale ``s`` the smallest float16 value ``h >= s``,
        widened exactly to float32. None when some scale lies outside
        ``[2**-14, 65504]`` (float16's normal range): such a tensor keeps float32 scales.

    Notes
    -----
    Rounding up, not to nearest, keeps every real value the float32 scale could represent
    inside the quantized range: ``|x| <= qmax * s <= qmax * h``, so a symmetric range is
    never clipped. The relative change is below ``2**-10``. The quantizer then quantizes
    with ``h`` itself, so the stored data and the stored scale agree exactly.
    """
    s = np.asarray(scale, dtype=np.float64)
    if s.size == 0 or not np.all(np.isfinite(s)) or s.min() < FLOAT16_SCALE_MIN or s.max() > FLOAT16_SCALE_MAX:
        return None
    h = s.astype(np.float16)  # round to nearest even; may fall below s
    low = h.astype(np.float64) < s
    h[low] = np.nextafter(h[low], np.float16(np.inf))
    return h.astype(np.float32)


def check_scale_dtype(scale_dtype: str) -> None:
    """Raise QuantParamError unless ``scale_dtype`` is ``"float32"`` or ``"float16"``."""
    if scale_dtype not in SCALE_DTYPE_NAMES:
        raise QuantParamError(f"scale_dtype must be one of {', '.join(SCALE_DTYPE_NAMES)}, got {scale_dtype!r}")
