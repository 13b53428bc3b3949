"""Element-wise operations on the C core: quantize, dequantize, requantize, int4 packing.

The private layer under :mod:`qcore.ops`. :func:`quantize_linear`,
:func:`dequantize_linear` and :func:`dynamic_quantize_linear` take exactly the arguments
of their :mod:`qcore.reference` namesakes (plus a keyword-only ``isa``) and return
bit-identical results. They run in C for the cases the C kernels implement and call the
reference for the rest:

==========================  ===============================================================
in C                        per-tensor and per-axis (any axis) parameters; float32 scales
                            (the division is in the scale's dtype; float16 ``x`` is
                            converted to float32 exactly);
                            outputs int8, uint8, int16, uint16; inputs int8, uint8, int16,
                            uint16, int32; float16 outputs of dequantize (cast after C)
in :mod:`qcore.reference`   blocked parameters (``block_size > 0``), sub-byte outputs
                            (int4, uint4, int2, uint2), float16 quantize scales, and every
                            argument the reference rejects (it raises the error)
==========================  ===============================================================

Arguments follow the reference's rules and raise the same exception classes: the common
well-formed call (a float32 scale, a NumPy zero point of the same shape) has its shapes
checked here and its scale and zero-point values checked by the C entry point, which
hands any bad value back to the reference for its precise message; every other call is
validated with the reference's own helpers before C runs. Arrays reach C without a copy
when they are C-contiguous with the expected dtype (``ffi.from_buffer``), and as
contiguous copies otherwise; outputs are allocated here. Every other C status goes
through :func:`qcore._native.check`. The GIL is released during each C call (cffi's API mode).

``isa`` names an instruction-set path (``"scalar"``, ``"avx2"``, ``"neon"``, ...;
:func:`qcore._native.available_isas`); ``None`` picks ``QCORE_ISA`` or the best one. All
paths give identical results; ``isa`` exists for testing and benchmarking.

Formulas: docs/ARITHMETIC.md. C interface: csrc/include/qcore_kernels.h, docs/C-API.md.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

from . import reference
from ._native import c_array, c_floats, check, ffi, lib, make_options
from .errors import DTypeError, NonFiniteError, QuantParamError, ShapeError
from .reference import _params
from .reference.dtypes import IntType, int_type

__all__ = [
    "dequantize_linear",
    "dynamic_quantize_linear",
    "pack_int4",
    "quantize_linear",
    "requantize",
    "requantize_fixedpoint",
    "unpack_int4",
]

_FLOAT32 = np.dtype(np.float32)
_FLOAT16 = np.dtype(np.float16)
_FLOAT_DTYPES = (_FLOAT32, _FLOAT16)

#: qc_dtype values of the integer types the C kernels take.
_C_DTYPES: dict[str, int] = {
    "int8": lib.QC_DTYPE_INT8,
    "uint8": lib.QC_DTYPE_UINT8,
    "int16": lib.QC_DTYPE_INT16,
    "uint16": lib.QC_DTYPE_UINT16,
    "int32": lib.QC_DTYPE_INT32,
}
_C_QUANTIZE_OUTPUTS = ("int8", "uint8", "int16", "uint16")
_CONTAINERS = {name: np.dtype(name) for name in _C_QUANTIZE_OUTPUTS}
_C_REQUANT_OUTPUTS = ("int8", "uint8")


def _contiguous(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``arr`` itself when C-contiguous and aligned with ``dtype``, else a copy (1-D view)."""
    return c_array(arr, dtype).reshape(-1)


def _buffer(ctype: str, arr: np.ndarray | None):
    """A cffi pointer into a contiguous array (``NULL`` for None); no copy."""
    if arr is None:
        return ffi.NULL
    return ffi.from_buffer(ctype, arr)


def _layout(shape: tuple[int, ...], per_tensor: bool, axis: int) -> tuple[int, int, int]:
    """``(outer, channels, inner)`` of a C-contiguous tensor for the C kernels.

    Per-tensor parameters see the tensor as one run; per-axis parameters along ``axis``
    split it as ``shape[:axis]``, ``shape[axis]``, ``shape[axis + 1:]``.
    """
    if per_tensor:
        return 1, 1, math.prod(shape)
    ax = _params.normalize_axis(axis, len(shape))
    return math.prod(shape[:ax]), shape[ax], math.prod(shape[ax + 1 :])


def _is_per_tensor(param: np.ndarray) -> bool:
    return param.ndim == 0 or param.shape == (1,)


#: One read-only qc_options struct per ``isa`` argument, made (and validated) once.
_OPTIONS: dict[str | None, object] = {}


def _options(isa: str | None):
    """The cached ``qc_options`` for ``isa`` (raises UnsupportedISAError like make_options)."""
    options = _OPTIONS.get(isa)
    if options is None:
        options = make_options(isa)
        if isa is None or isinstance(isa, str):
            _OPTIONS[isa] = options
    return options


#: Zero-point dtypes of full-width types: every value of the dtype is in the type's range.
_ZP_DTYPES = {np.dtype(name): name for name in ("int8", "uint8", "int16", "uint16", "int32")}


def _fast_params(
    x_shape: tuple[int, ...], scale: object, zero_point: object, axis: object
) -> tuple[np.ndarray, np.ndarray | None, str | None, tuple[int, int, int]] | None:
    """Parameters of the common, well-formed call without the reference's validation.

    Returns ``(scales, zero_points, zero_point_type, layout)`` when ``scale`` is a float32
    scalar or 1-D array (or a Python float), the zero point is None or a NumPy integer
    array / scalar of the same per-tensor or per-axis shape, and the shapes fit; None
    otherwise (the caller then validates with :mod:`qcore.reference`'s rules). Scale and
    zero-point *values* are checked by the C entry point (QC_E_SCALE, QC_E_ZERO_POINT).
    """
    if type(scale) is float:
        scale = np.float32(scale)
    if not isinstance(scale, (np.ndarray, np.generic)) or scale.dtype != _FLOAT32 or scale.ndim > 1:
        return None
    if scale.size == 0:
        return None
    per_tensor = scale.ndim == 0 or scale.shape == (1,)
    zp_type = None
    if zero_point is not None:
        if not isinstance(zero_point, (np.ndarray, np.generic)):
            return None
        zp_type = _ZP_DTYPES.get(zero_point.dtype)
        if zp_type is None or zero_point.ndim > 1:
            return None
        zp_per_tensor = zero_point.ndim == 0 or zero_point.shape == (1,)
        if zp_per_tensor != per_tensor or (not per_tensor and zero_point.shape != scale.shape):
            return None
    if per_tensor:
        layout = (1, 1, math.prod(x_shape))
    else:
        ndim = len(x_shape)
        if type(axis) is not int or not -ndim <= axis < ndim or x_shape[axis] != scale.shape[0]:
            return None
        ax = axis % ndim
        layout = (math.prod(x_shape[:ax]), x_shape[ax], math.prod(x_shape[ax + 1 :]))
    scales = c_floats(np.asarray(scale, dtype=_FLOAT32).reshape(-1))
    zps = None if zero_point is None else np.asarray(zero_point).astype(np.int32).reshape(-1)
    return scales, zps, zp_type, layout


def _raise_param_error(status: int, context: str, reference_call) -> None:
    """For a bad scale or zero point found in C, raise the reference's precise exception."""
    if status in (lib.QC_E_SCALE, lib.QC_E_ZERO_POINT):
        reference_call()  # raises QuantParamError naming the bad value
    if status == lib.QC_E_NONFINITE:
        raise NonFiniteError(f"{context}: x contains NaN; qcore does not quantize NaN (docs/ARITHMETIC.md)")
    check(status, context)


# ---------------------------------------------------------------------------------------
# QuantizeLinear / DequantizeLinear / DynamicQuantizeLinear
# ---------------------------------------------------------------------------------------


def quantize_linear(
    x: np.ndarray,
    y_scale: np.ndarray | float,
    y_zero_point: np.ndarray | int | None = None,
    *,
    axis: int = 1,
    block_size: int = 0,
    output_dtype: str | np.dtype | IntType | None = None,
    isa: str | None = None,
) -> np.ndarray:
    """ONNX QuantizeLinear on the C core: ``y = saturate(round_half_even(x / y_scale) + y_zero_point)``.

    Parameters
    ----------
    x : numpy.ndarray
        float32 or float16 data, any shape and strides. NaN is rejected; +-inf saturate.
    y_scale : numpy.ndarray or float
        float32 or float16, finite and > 0: per-tensor (``()`` or ``(1,)``), per-axis
        (``(x.shape[axis],)``) or blocked (with ``block_size``).
    y_zero_point : numpy.ndarray or int, optional
        Same shape as ``y_scale``, in the output container dtype. Default 0.
    axis : int
        Quantization axis of per-axis and blocked parameters (may be negative).
    block_size : int
        Block length for blocked parameters (computed by :mod:`qcore.reference`).
    output_dtype : str, numpy.dtype or IntType, optional
        As in :func:`qcore.reference.quantize_linear` (default: the zero point's type,
        else uint8).
    isa : str, optional
        Instruction-set path; None for the default.

    Returns
    -------
    numpy.ndarray
        Same shape as ``x``, the output type's container dtype; bit-identical to
        :func:`qcore.reference.quantize_linear`.

    Raises
    ------
    DTypeError, ShapeError, QuantParamError, NonFiniteError
        As :func:`qcore.reference.quantize_linear` (NaN in ``x``: NonFiniteError).
    UnsupportedISAError
        ``isa`` is unknown or not available here.

    Notes
    -----
    A true float32 division (``vdivps`` / ``vdivq_f32``, or the scalar IEEE division),
    rounded half to even, clipped to the output range before narrowing, plus the zero
    point. See docs/ARITHMETIC.md, "ONNX convention".
    """
    options = _options(isa)
    x_arr = np.asarray(x)
    if type(block_size) is int and block_size == 0 and x_arr.dtype in _FLOAT_DTYPES:
        fast = _fast_params(x_arr.shape, y_scale, y_zero_point, axis)
        if fast is not None:
            scales, zps, zp_type, layout = fast
            if output_dtype is None:
                out_name = zp_type or "uint8"
            elif isinstance(output_dtype, str) and zp_type in (None, output_dtype):
                out_name = output_dtype
            else:
                out_name = None
            if out_name in _C_QUANTIZE_OUTPUTS:
                return _quantize_c(
                    x_arr, scales, zps, layout, out_name, options,
                    lambda: reference.quantize_linear(x, y_scale, y_zero_point, axis=axis, output_dtype=output_dtype),
                )
    if x_arr.dtype not in _FLOAT_DTYPES or block_size != 0 or isinstance(block_size, bool):
        return reference.quantize_linear(
            x, y_scale, y_zero_point, axis=axis, block_size=block_size, output_dtype=output_dtype
        )
    scale = _params.as_scale(y_scale, "y_scale")
    itype = _params.resolve_quantized_type(y_zero_point, output_dtype, "y_zero_point")
    # The division happens in the scale's dtype (ONNX): float16 scales stay in the reference.
    if itype.name not in _C_QUANTIZE_OUTPUTS or scale.dtype != _FLOAT32:
        return reference.quantize_linear(
            x, y_scale, y_zero_point, axis=axis, block_size=block_size, output_dtype=output_dtype
        )
    zero_point = _params.as_zero_point(y_zero_point, itype, scale.shape, "y_zero_point")
    _params.broadcast_param(scale, x_arr.shape, axis, block_size, "y_scale")  # shape checks
    outer, channels, inner = _layout(x_arr.shape, _is_per_tensor(scale), axis)

    scales = _contiguous(scale, _FLOAT32)
    zps = None if y_zero_point is None else _contiguous(zero_point, np.dtype(np.int32))
    return _quantize_c(x_arr, scales, zps, (outer, channels, inner), itype.name, options, lambda: None)


def _quantize_c(x_arr, scales, zps, layout, out_name, options, reference_call) -> np.ndarray:
    """Run qc_quantize_f32 on validated-shape arguments."""
    xs = _contiguous(x_arr, _FLOAT32)
    y = np.empty(x_arr.shape, dtype=_CONTAINERS[out_name])
    outer, channels, inner = layout
    status = lib.qc_quantize_f32(
        _buffer("float[]", xs), outer, channels, inner, _buffer("float[]", scales),
        _buffer("int32_t[]", zps), _C_DTYPES[out_name], ffi.from_buffer(y.reshape(-1)), options,
    )
    if status != lib.QC_OK:
        _raise_param_error(status, "quantize_linear", reference_call)
    return y


def dequantize_linear(
    x: np.ndarray,
    x_scale: np.ndarray | float,
    x_zero_point: np.ndarray | int | None = None,
    *,
    axis: int = 1,
    block_size: int = 0,
    output_dtype: str | np.dtype | None = None,
    isa: str | None = None,
) -> np.ndarray:
    """ONNX DequantizeLinear on the C core: ``y = (x - x_zero_point) * x_scale``.

    Parameters
    ----------
    x : numpy.ndarray
        int8, uint8, int16, uint16 or int32 (sub-byte values in their container), any
        shape and strides.
    x_scale : numpy.ndarray or float
        float32 or float16, finite and > 0; granularity as in :func:`quantize_linear`.
    x_zero_point : numpy.ndarray or int, optional
        Same shape as ``x_scale``, same dtype as ``x``; 0 for int32.
    axis, block_size : int
        As in :func:`quantize_linear`.
    output_dtype : str or numpy.dtype, optional
        float32 or float16; default the scale's dtype.
    isa : str, optional
        Instruction-set path; None for the default.

    Returns
    -------
    numpy.ndarray
        Same shape as ``x``; bit-identical to :func:`qcore.reference.dequantize_linear`.

    Raises
    ------
    DTypeError, ShapeError, QuantParamError
        As :func:`qcore.reference.dequantize_linear`.
    UnsupportedISAError
        ``isa`` is unknown or not available here.

    Notes
    -----
    ``x - x_zero_point`` exactly (64-bit for int32), converted to float32 rounding half to
    even, one float32 multiply, then cast to ``output_dtype``.
    """
    options = _options(isa)
    x_arr = np.asarray(x)
    if type(block_size) is int and block_size == 0 and x_arr.dtype in _ZP_DTYPES and output_dtype in (None, "float32"):
        fast = _fast_params(x_arr.shape, x_scale, x_zero_point, axis)
        if fast is not None:
            scales, zps, zp_type, layout = fast
            int32_zp_ok = x_arr.dtype != np.int32 or zps is None or not zps.any()
            if zp_type in (None, _ZP_DTYPES[x_arr.dtype]) and int32_zp_ok:
                return _dequantize_c(
                    x_arr, scales, zps, layout, options,
                    lambda: reference.dequantize_linear(x, x_scale, x_zero_point, axis=axis, output_dtype=output_dtype),
                )
    if x_arr.dtype.name not in _C_DTYPES or not x_arr.dtype.isnative or block_size != 0 or isinstance(
        block_size, bool
    ):
        return reference.dequantize_linear(
            x, x_scale, x_zero_point, axis=axis, block_size=block_size, output_dtype=output_dtype
        )
    itype = int_type(x_arr.dtype)
    scale = _params.as_scale(x_scale, "x_scale")
    out_dtype = reference.onnx_ops._float_output_dtype(output_dtype, scale.dtype)
    zero_point = _params.as_zero_point(x_zero_point, itype, scale.shape, "x_zero_point")
    if itype.name == "int32" and np.any(zero_point != 0):
        raise QuantParamError("an int32 input has no zero point (ONNX): x_zero_point must be 0")
    _params.broadcast_param(scale, x_arr.shape, axis, block_size, "x_scale")  # shape checks
    outer, channels, inner = _layout(x_arr.shape, _is_per_tensor(scale), axis)

    scales = _contiguous(scale, _FLOAT32)
    zps = None if x_zero_point is None else _contiguous(zero_point, np.dtype(np.int32))
    y = _dequantize_c(x_arr, scales, zps, (outer, channels, inner), options, lambda: None)
    if out_dtype == _FLOAT32:
        return y
    with np.errstate(over="ignore"):  # float32 -> float16 beyond 65504 is inf, by definition
        return y.astype(out_dtype)


def _dequantize_c(x_arr, scales, zps, layout, options, reference_call) -> np.ndarray:
    """Run qc_dequantize_f32 on validated-shape arguments; float32 result."""
    xs = _contiguous(x_arr, x_arr.dtype)
    y = np.empty(x_arr.shape, dtype=_FLOAT32)
    outer, channels, inner = layout
    status = lib.qc_dequantize_f32(
        ffi.from_buffer(xs), _C_DTYPES[_ZP_DTYPES[x_arr.dtype]], outer, channels, inner, _buffer("float[]", scales),
        _buffer("int32_t[]", zps), _buffer("float[]", y.reshape(-1)), options,
    )
    if status != lib.QC_OK:
        _raise_param_error(status, "dequantize_linear", reference_call)
    return y


def dynamic_quantize_linear(x: np.ndarray, *, isa: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ONNX DynamicQuantizeLinear on the C core: uint8 with a range computed from ``x``.

    Parameters
    ----------
    x : numpy.ndarray
        float32, non-empty, every value finite; any shape and strides.
    isa : str, optional
        Instruction-set path; None for the default.

    Returns
    -------
    y : numpy.ndarray
        uint8, same shape as ``x``.
    y_scale : numpy.ndarray
        float32 scalar (shape ``()``).
    y_zero_point : numpy.ndarray
        uint8 scalar (shape ``()``).

    Raises
    ------
    DTypeError
        ``x`` is not float32.
    ShapeError
        ``x`` is empty.
    NonFiniteError
        NaN or +-inf in ``x``, or a range that overflows float32.
    QuantParamError
        A range so small that ``range / 255`` underflows to 0.
    UnsupportedISAError
        ``isa`` is unknown or not available here.

    Notes
    -----
    All in float32: ``lo = min(0, min x)``, ``hi = max(0, max x)``,
    ``y_scale = (hi - lo) / 255`` (1.0 for an all-zero input, as onnxruntime),
    ``y_zero_point = round_half_even(clip(0 - lo / y_scale, 0, 255))``,
    ``y = clip(round_half_even(x / y_scale) + y_zero_point, 0, 255)``.
    """
    options = _options(isa)
    x_arr = np.asarray(x)
    if x_arr.dtype != _FLOAT32:
        raise DTypeError(f"x must be float32, got {x_arr.dtype}")
    if x_arr.size == 0:
        raise ShapeError("x is empty: DynamicQuantizeLinear needs data to compute a range")
    xs = _contiguous(x_arr, _FLOAT32)
    y = np.empty(x_arr.shape, dtype=np.uint8)
    scale = ffi.new("float *")
    zero_point = ffi.new("uint8_t *")
    status = lib.qc_dynamic_quantize_u8(
        _buffer("float[]", xs), xs.size, _buffer("uint8_t[]", y.reshape(-1)), scale, zero_point, options
    )
    check(status, "dynamic_quantize_linear")
    return y, np.asarray(scale[0], dtype=np.float32), np.asarray(zero_point[0], dtype=np.uint8)


# ---------------------------------------------------------------------------------------
# Requantization of int32 accumulators
# ---------------------------------------------------------------------------------------


def _int32_array(value: object, name: str) -> np.ndarray:
    """An int32 array from an int32 array or Python int (values checked), else DTypeError."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.generic)):
        if not -(1 << 31) <= int(value) < (1 << 31):
            raise QuantParamError(f"{name} {value} outside the int32 range")
        return np.asarray(int(value), dtype=np.int32)
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu" or arr.dtype == np.bool_:
        raise DTypeError(f"{name} must be an integer array or int, got dtype {arr.dtype}")
    if arr.dtype != np.int32:
        if arr.size and (arr.min() < -(1 << 31) or arr.max() >= (1 << 31)):
            raise QuantParamError(f"{name} has values outside the int32 range")
        arr = arr.astype(np.int32)
    return arr


def _channel_param(param: np.ndarray, channels: int | None, name: str) -> np.ndarray:
    """Per-tensor (``()``/``(1,)``) or per-channel (``(channels,)``) parameter as a 1-D
    array of ``channels`` entries (1 for per-tensor layouts)."""
    if _is_per_tensor(param):
        flat = param.reshape(1)
        return np.repeat(flat, channels) if channels is not None else flat
    if param.ndim != 1 or channels is None or param.shape[0] != channels:
        raise ShapeError(
            f"{name} has shape {param.shape}: it must be a scalar or have one entry per channel "
            f"({channels if channels is not None else 'per-tensor layout'})"
        )
    return param


class _RequantArgs:
    """Validated arguments shared by both requantization forms."""

    def __init__(
        self,
        acc: np.ndarray,
        params: Sequence[tuple[np.ndarray, str]],
        zero_point: object,
        bias: object,
        axis: int,
        clamp: tuple[int, int] | None,
        output_dtype: str | np.dtype | IntType,
    ) -> None:
        acc_arr = np.asarray(acc)
        if acc_arr.dtype != np.int32:
            raise DTypeError(f"acc must be int32, got {acc_arr.dtype}")
        itype = int_type(output_dtype)
        if itype.name not in _C_REQUANT_OUTPUTS:
            raise DTypeError(f"requantization outputs int8 or uint8, got {itype.name}")
        zp = _int32_array(0 if zero_point is None else zero_point, "zero_point")
        bias_arr = None if bias is None else _int32_array(bias, "bias")
        per_channel = any(not _is_per_tensor(p) for p, _ in params) or not _is_per_tensor(zp)
        per_channel = per_channel or (bias_arr is not None and not _is_per_tensor(bias_arr))
        if per_channel:
            if acc_arr.ndim == 0:
                raise ShapeError("per-channel parameters need acc of rank >= 1")
            ax = _params.normalize_axis(axis, acc_arr.ndim)
            channels: int | None = acc_arr.shape[ax]
            self.layout = _layout(acc_arr.shape, False, ax)
        else:
            channels = None
            self.layout = _layout(acc_arr.shape, True, 0)
        self.params = [_contiguous(_channel_param(p, channels, name), p.dtype) for p, name in params]
        zp = _channel_param(zp, channels, "zero_point")
        self.zero_point = _contiguous(zp, np.dtype(np.int32))
        self.bias = None
        if bias_arr is not None:
            self.bias = _contiguous(_channel_param(bias_arr, channels, "bias"), np.dtype(np.int32))
        if clamp is None:
            lo, hi = itype.qmin, itype.qmax
        else:
            try:
                lo, hi = (int(v) for v in clamp)
            except (TypeError, ValueError):
                raise QuantParamError(f"clamp must be a pair of ints (lo, hi), got {clamp!r}") from None
            lo, hi = max(lo, itype.qmin), min(hi, itype.qmax)
        if lo > hi:
            raise QuantParamError(f"clamp range [{lo}, {hi}] is empty within {itype.name}")
        self.lo, self.hi = lo, hi
        self.itype = itype
        self.acc = _contiguous(acc_arr, np.dtype(np.int32))
        self.shape = acc_arr.shape
        self.c_dtype = _C_DTYPES[itype.name]


def _check_requant(status: int, context: str, args: _RequantArgs) -> None:
    """Raise for a requantize status; the C entry point checks the parameter values (clamp
    bounds are settled here, so QC_E_INVALID_ARGUMENT can only be a shift)."""
    if status == lib.QC_OK:
        return
    if status == lib.QC_E_SCALE:
        raise QuantParamError(f"{context}: multiplier must be finite and > 0")
    if status == lib.QC_E_ZERO_POINT:
        it = args.itype
        raise QuantParamError(f"{context}: zero_point outside the {it.name} range [{it.qmin}, {it.qmax}]")
    if status == lib.QC_E_INVALID_ARGUMENT:
        raise QuantParamError(f"{context}: shift must be in [-31, 31]")
    check(status, context)


def requantize(
    acc: np.ndarray,
    multiplier: np.ndarray | float,
    zero_point: np.ndarray | int = 0,
    *,
    bias: np.ndarray | int | None = None,
    axis: int = -1,
    clamp: tuple[int, int] | None = None,
    output_dtype: str | np.dtype | IntType = "int8",
    isa: str | None = None,
) -> np.ndarray:
    """ONNX real-valued requantization of int32 accumulators (QLinearMatMul / QLinearConv).

    Parameters
    ----------
    acc : numpy.ndarray
        int32 accumulators, any shape and strides.
    multiplier : numpy.ndarray or float
        float32 (a Python float becomes float32), finite and > 0: per-tensor (``()`` or
        ``(1,)``) or per-channel (``(acc.shape[axis],)``), typically
        ``a_scale * b_scale / y_scale``.
    zero_point : numpy.ndarray or int
        Output zero point(s), per-tensor or per-channel, in the output range.
    bias : numpy.ndarray or int, optional
        int32 bias added to ``acc`` first (wrapping in int32), per-tensor or per-channel.
    axis : int
        The channel axis of per-channel parameters (default the last, the output channels
        of a ``[M, N]`` GEMM result).
    clamp : tuple of int, optional
        ``(lo, hi)``: fused activation bounds in the quantized domain, intersected with the
        output range (ReLU: ``(zero_point, qmax)``). Default the full range.
    output_dtype : str or numpy.dtype
        ``"int8"`` or ``"uint8"``.
    isa : str, optional
        Instruction-set path; None for the default.

    Returns
    -------
    numpy.ndarray
        ``acc``'s shape, the output dtype.

    Raises
    ------
    DTypeError
        ``acc``, ``bias`` or ``zero_point`` not integer / int32, ``multiplier`` not
        float32, or an output type other than int8/uint8.
    QuantParamError
        A multiplier that is not finite and > 0, a zero point outside the output range,
        an empty clamp range, a bad axis.
    ShapeError
        Parameters that are neither per-tensor nor per-channel along ``axis``.
    UnsupportedISAError
        ``isa`` is unknown or not available here.

    Notes
    -----
    ``a = acc + bias`` (int32, wrapping);
    ``y = clip(round_half_even(float32(a) * multiplier) + zero_point, lo, hi)`` with one
    float32 multiply and no FMA: :func:`qcore.reference.requantize_float` applied to ``a``.
    """
    options = _options(isa)
    if isinstance(multiplier, numbers.Real) and not isinstance(multiplier, (bool, np.generic)):
        multiplier = np.float32(multiplier)
    mult = np.asarray(multiplier)
    if mult.dtype != _FLOAT32:
        raise DTypeError(f"multiplier must be float32, got {mult.dtype}")
    if mult.size == 0:
        raise ShapeError("multiplier is empty")
    args = _RequantArgs(acc, [(mult, "multiplier")], zero_point, bias, axis, clamp, output_dtype)
    y = np.empty(args.shape, dtype=args.itype.container)
    outer, channels, inner = args.layout
    status = lib.qc_requantize(
        _buffer("int32_t[]", args.acc), outer, channels, inner, _buffer("int32_t[]", args.bias),
        _buffer("float[]", args.params[0]), _buffer("int32_t[]", args.zero_point), args.lo, args.hi,
        args.c_dtype, ffi.from_buffer(y.reshape(-1)), options,
    )
    _check_requant(status, "requantize", args)
    return y


def requantize_fixedpoint(
    acc: np.ndarray,
    multiplier: np.ndarray | int,
    shift: np.ndarray | int,
    zero_point: np.ndarray | int = 0,
    *,
    bias: np.ndarray | int | None = None,
    axis: int = -1,
    clamp: tuple[int, int] | None = None,
    output_dtype: str | np.dtype | IntType = "int8",
    isa: str | None = None,
) -> np.ndarray:
    """TFLite's integer-only requantization of int32 accumulators.

    Parameters
    ----------
    acc : numpy.ndarray
        int32 accumulators, any shape and strides.
    multiplier : numpy.ndarray or int
        int32 significands (:func:`qcore.reference.fixedpoint.quantize_multiplier`),
        per-tensor or per-channel along ``axis``.
    shift : numpy.ndarray or int
        Exponents in ``[-31, 31]`` (positive: left shift), same granularity rules.
    zero_point, bias, axis, clamp, output_dtype, isa
        As in :func:`requantize`.

    Returns
    -------
    numpy.ndarray
        ``acc``'s shape, the output dtype.

    Raises
    ------
    DTypeError, QuantParamError, ShapeError, UnsupportedISAError
        As :func:`requantize`; a shift outside ``[-31, 31]`` or a multiplier outside
        int32 is a QuantParamError.

    Notes
    -----
    ``a = acc + bias`` (int32, wrapping);
    ``y = clip(MultiplyByQuantizedMultiplier(a, multiplier, shift) + zero_point, lo, hi)``
    with gemmlowp's SaturatingRoundingDoublingHighMul and RoundingDivideByPOT; a left
    shift that overflows int32 saturates (qcore's definition;
    :func:`qcore.reference.fixedpoint.multiply_by_quantized_multiplier`).
    """
    options = _options(isa)
    mult = _int32_array(multiplier, "multiplier")
    shifts = _int32_array(shift, "shift")
    if mult.size == 0 or shifts.size == 0:
        raise ShapeError("multiplier and shift must not be empty")
    args = _RequantArgs(acc, [(mult, "multiplier"), (shifts, "shift")], zero_point, bias, axis, clamp, output_dtype)
    y = np.empty(args.shape, dtype=args.itype.container)
    outer, channels, inner = args.layout
    status = lib.qc_requantize_fixedpoint(
        _buffer("int32_t[]", args.acc), outer, channels, inner, _buffer("int32_t[]", args.bias),
        _buffer("int32_t[]", args.params[0]), _buffer("int32_t[]", args.params[1]),
        _buffer("int32_t[]", args.zero_point), args.lo, args.hi, args.c_dtype, ffi.from_buffer(y.reshape(-1)),
        options,
    )
    _check_requant(status, "requantize_fixedpoint", args)
    return y


# ---------------------------------------------------------------------------------------
# int4 packing
# ---------------------------------------------------------------------------------------


def pack_int4(values: np.ndarray, *, signed: bool = True, isa: str | None = None) -> np.ndarray:
    """Pack 4-bit values two per byte, first element in the low nibble (ONNX layout).

    Parameters
    ----------
    values : numpy.ndarray
        int8 in [-8, 7] (``signed=True``) or uint8 in [0, 15], any shape (C order).
    signed : bool
        int4 (True) or uint4 (False).
    isa : str, optional
        Instruction-set path; None for the default.

    Returns
    -------
    numpy.ndarray
        1-D uint8 array of ``ceil(values.size / 2)`` bytes; an odd count leaves the last
        high nibble 0. Identical to :func:`qcore.reference.pack_int4`.

    Raises
    ------
    DTypeError
        ``values`` is not int8 (signed) / uint8 (unsigned).
    QuantParamError
        A value is outside the type's range.
    UnsupportedISAError
        ``isa`` is unknown or not available here.

    Notes
    -----
    ``byte[k] = (v[2k] & 0xF) | (v[2k+1] & 0xF) << 4``.
    """
    options = _options(isa)
    arr = np.asarray(values)
    name = "int4" if signed else "uint4"
    container = np.dtype(np.int8 if signed else np.uint8)
    if arr.dtype != container:
        raise DTypeError(f"{name} values must be held in {container}, got {arr.dtype}")
    flat = _contiguous(arr, container)
    packed = np.empty((flat.size + 1) // 2, dtype=np.uint8)
    status = lib.qc_pack_int4(
        ffi.from_buffer("int8_t[]", flat), flat.size, int(bool(signed)), _buffer("uint8_t[]", packed), options
    )
    if status == lib.QC_E_INVALID_ARGUMENT:
        lo, hi = (-8, 7) if signed else (0, 15)
        bad = flat[(flat < lo) | (flat > hi)][0]
        raise QuantParamError(f"value {bad} outside the {name} range [{lo}, {hi}]")
    check(status, "pack_int4")
    return packed


def unpack_int4(
    packed: np.ndarray, shape: int | tuple[int, ...], *, signed: bool = True, isa: str | None = None
) -> np.ndarray:
    """Unpack ONNX-layout 4-bit values into one value per element.

    Parameters
    ----------
    packed : numpy.ndarray
        uint8 bytes, exactly ``ceil(prod(shape) / 2)`` of them.
    shape : int or tuple of int
        Shape (or element count) of the result.
    signed : bool
        int4 (True: int8 result, sign-extended) or uint4 (False: uint8 result).
    isa : str, optional
        Instruction-set path; None for the default.

    Returns
    -------
    numpy.ndarray
        Array of ``shape``; identical to :func:`qcore.reference.unpack_int4`.

    Raises
    ------
    DTypeError
        ``packed`` is not uint8.
    ShapeError
        The byte count does not match ``shape``.
    UnsupportedISAError
        ``isa`` is unknown or not available here.
    """
    options = _options(isa)
    arr = np.asarray(packed)
    if arr.dtype != np.uint8:
        raise DTypeError(f"packed {'int4' if signed else 'uint4'} data must be uint8, got {arr.dtype}")
    dims = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
    if any(d < 0 for d in dims):
        raise ShapeError(f"negative dimension in shape {dims}")
    count = math.prod(dims)
    if arr.size != (count + 1) // 2:
        raise ShapeError(
            f"{arr.size} bytes cannot hold exactly {count} {'int4' if signed else 'uint4'} values "
            f"(needs {(count + 1) // 2})"
        )
    flat = _contiguous(arr, np.dtype(np.uint8))
    out = np.empty(dims, dtype=np.int8 if signed else np.uint8)
    status = lib.qc_unpack_int4(
        _buffer("uint8_t[]", flat), count, int(bool(signed)), ffi.from_buffer("int8_t[]", out.reshape(-1)), options
    )
    check(status, "unpack_int4")
    return out
