"""ONNX ConvInteger and QLinearConv in NumPy (docs/ARITHMETIC.md, "ConvInteger", "QLinearConv").

N-D convolution (1-D, 2-D, 3-D, ...) of int8/uint8 tensors in NCHW layout with groups,
strides, dilations and explicit or automatic padding, computed by im2col and an exact
integer matrix product. Padded positions hold the real value 0, i.e. the zero point of
``x`` (they contribute nothing after the zero point is subtracted).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

from ..errors import DTypeError, ShapeError
from ._params import as_scale
from .dtypes import int_type
from .matmul import _exact_matmul, _wrap_int32, _zero_point_values
from .requant import requantize_float

__all__ = ["conv_integer", "qlinear_conv"]

_OPERAND_DTYPES = (np.dtype(np.int8), np.dtype(np.uint8))
_PER_TENSOR = ((), (1,))
AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def _operand(x: object, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype not in _OPERAND_DTYPES:
        raise DTypeError(f"{name} must be int8 or uint8, got {arr.dtype}")
    if arr.ndim < 3:
        raise ShapeError(f"{name} must have rank >= 3 ([N, C, D1, ...] / [M, C/group, k1, ...]), got {arr.shape}")
    return arr


def _int_list(value: Sequence[int] | None, default: int, count: int, name: str, minimum: int) -> list[int]:
    if value is None:
        return [default] * count
    values = list(value)
    if len(values) != count or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        raise ShapeError(f"{name} must be {count} integers, got {value!r}")
    if any(v < minimum for v in values):
        raise ShapeError(f"{name} must all be >= {minimum}, got {values}")
    return [int(v) for v in values]


def _geometry(x_shape, w_shape, auto_pad, dilations, group, kernel_shape, pads, strides):
    """Validate the attributes; return (kernel, strides, dilations, pads_begin, pads_end, out_shape)."""
    spatial = len(x_shape) - 2
    if len(w_shape) != len(x_shape):
        raise ShapeError(f"w has rank {len(w_shape)}, x has rank {len(x_shape)}: they must be equal")
    if not isinstance(group, numbers.Integral) or isinstance(group, bool) or group < 1:
        raise ShapeError(f"group must be an int >= 1, got {group!r}")
    channels, out_channels = x_shape[1], w_shape[0]
    if w_shape[1] * group != channels:
        raise ShapeError(f"x has {channels} channels but w.shape[1] * group = {w_shape[1]} * {group}")
    if out_channels % group:
        raise ShapeError(f"{out_channels} output channels do not divide into {group} groups")
    kernel = list(w_shape[2:])
    if kernel_shape is not None and list(kernel_shape) != kernel:
        raise ShapeError(f"kernel_shape {list(kernel_shape)} differs from the weight's spatial shape {kernel}")
    strides = _int_list(strides, 1, spatial, "strides", 1)
    dilations = _int_list(dilations, 1, spatial, "dilations", 1)
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    if auto_pad not in AUTO_PADS:
        raise ShapeError(f"auto_pad must be one of {', '.join(AUTO_PADS)}, got {auto_pad!r}")
    extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    inputs = list(x_shape[2:])
    if auto_pad == "NOTSET":
        explicit = _int_list(pads, 0, 2 * spatial, "pads", 0)
        begin, end = explicit[:spatial], explicit[spatial:]
    elif pads is not None and any(pads):
        raise ShapeError(f"pads cannot be used together with auto_pad={auto_pad}")
    elif auto_pad == "VALID":
        begin, end = [0] * spatial, [0] * spatial
    else:
        # SAME_*: output = ceil(input / stride); the odd unit of padding goes to the end
        # (SAME_UPPER) or the beginning (SAME_LOWER).
        begin, end = [], []
        for size, stride, ext in zip(inputs, strides, extent):
            total = max(0, (math.ceil(size / stride) - 1) * stride + ext - size)
            small, large = total // 2, total - total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else large)
            end.append(large if auto_pad == "SAME_UPPER" else small)
    out_shape = []
    for size, b, e, ext, stride in zip(inputs, begin, end, extent, strides):
        if size + b + e < ext:
            raise ShapeError(
                f"the dilated kernel extent {ext} exceeds the padded input size {size + b + e} (x {tuple(x_shape)})"
            )
        out_shape.append((size + b + e - ext) // stride + 1)
    return kernel, strides, dilations, begin, end, out_shape


def conv_integer(
    x: np.ndarray,
    w: np.ndarray,
    x_zero_point: np.ndarray | int | None = None,
    w_zero_point: np.ndarray | int | None = None,
    *,
    auto_pad: str = "NOTSET",
    dilations: Sequence[int] | None = None,
    group: int = 1,
    kernel_shape: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    strides: Sequence[int] | None = None,
) -> np.ndarray:
    """ONNX ConvInteger: convolution of ``x - x_zero_point`` by ``w - w_zero_point``, int32.

    Parameters
    ----------
    x : numpy.ndarray
        int8 or uint8, ``[N, C, D1, ..., Dn]`` with n >= 1.
    w : numpy.ndarray
        int8 or uint8, ``[M, C / group, k1, ..., kn]``.
    x_zero_point : numpy.ndarray or int, optional
        Per-tensor, dtype of ``x``. Default 0.
    w_zero_point : numpy.ndarray or int, optional
        Per-tensor or per output channel (``(M,)``), dtype of ``w``. Default 0.
    auto_pad : {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"}
        NOTSET uses ``pads``; SAME_* pad so that ``out = ceil(in / stride)``, the odd unit
        at the end (UPPER) or the beginning (LOWER); VALID pads nothing.
    dilations, strides : sequence of int, optional
        One per spatial axis, >= 1. Default all 1.
    group : int
        Number of channel groups; ``C`` and ``M`` must be multiples of it.
    kernel_shape : sequence of int, optional
        If given, must equal ``w.shape[2:]``.
    pads : sequence of int, optional
        ``[x1_begin, x2_begin, ..., x1_end, x2_end, ...]``, >= 0. Default 0.

    Returns
    -------
    numpy.ndarray
        int32, ``[N, M, O1, ..., On]`` with
        ``Oi = floor((Di + begin_i + end_i - ((ki - 1) * dilation_i + 1)) / stride_i) + 1``.

    Raises
    ------
    DTypeError
        Operands not int8/uint8, zero points of another dtype.
    ShapeError
        Ranks, channel counts, groups or attributes that do not fit, a kernel larger than
        the padded input, zero points of a wrong shape.
    QuantParamError
        A Python-int zero point outside its operand's range.

    Notes
    -----
    ``y[n, m, o] = sum_{c, k} (x_pad[n, g*C/group + c, o*s + k*d] - x_zp) * (w[m, c, k] - w_zp[m])``
    with padded positions equal to ``x_zp``; the exact sum is wrapped to int32 (two's
    complement), as in :func:`qcore.reference.matmul_integer`. See docs/ARITHMETIC.md,
    "ConvInteger".
    """
    x = _operand(x, "x")
    w = _operand(w, "w")
    kernel, strides_, dilations_, begin, end, out_shape = _geometry(
        x.shape, w.shape, auto_pad, dilations, group, kernel_shape, pads, strides
    )
    x_diff = x.astype(np.int64)
    if x_zero_point is not None:
        zp = _zero_point_values(x_zero_point, x.dtype, "x_zero_point")
        if zp.shape not in _PER_TENSOR:
            raise ShapeError(f"x_zero_point must be per-tensor (a scalar), got shape {zp.shape}")
        x_diff = x_diff - zp.reshape(())
    w_diff = w.astype(np.int64)
    if w_zero_point is not None:
        w_diff = w_diff - _per_channel(_zero_point_values(w_zero_point, w.dtype, "w_zero_point"), w.shape,
                                       "w_zero_point")
    return _wrap_int32(_conv_exact(x_diff, w_diff, group, kernel, strides_, dilations_, begin, end, out_shape))


def _per_channel(param: np.ndarray, w_shape: tuple[int, ...], name: str) -> np.ndarray:
    """Per-tensor or per-output-channel parameter shaped to broadcast against ``w``."""
    if param.shape in _PER_TENSOR:
        return param.reshape(())
    if param.shape == (w_shape[0],):
        return param.reshape((w_shape[0],) + (1,) * (len(w_shape) - 1))
    raise ShapeError(f"{name} has shape {param.shape}: it must be a scalar or have length M = {w_shape[0]}")


def _conv_exact(x, w, group, kernel, strides, dilations, begin, end, out_shape) -> np.ndarray:
    """Exact int64 convolution of zero-point-free operands by im2col (entries in [-255, 255])."""
    batch, channels = x.shape[:2]
    spatial = len(kernel)
    padded = np.pad(x, [(0, 0), (0, 0)] + list(zip(begin, end)))
    extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    windows = np.lib.stride_tricks.sliding_window_view(padded, extent, axis=tuple(range(2, 2 + spatial)))
    # windows: [N, C, P1, ..., Pn, e1, ..., en]; keep every stride-th start, every dilation-th tap.
    take = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)
    take += tuple(slice(None, None, d) for d in dilations)
    patches = windows[take]
    assert list(patches.shape[2 : 2 + spatial]) == list(out_shape)
    positions = math.prod(out_shape)
    taps = math.prod(kernel)
    in_per_group = channels // group
    out_per_group = w.shape[0] // group
    outputs = []
    for g in range(group):
        group_patches = patches[:, g * in_per_group : (g + 1) * in_per_group]
        # [N, Cg, O..., k...] -> [N, O..., Cg, k...] -> [N, P, Cg * K]
        order = (0,) + tuple(range(2, 2 + spatial)) + (1,) + tuple(range(2 + spatial, 2 + 2 * spatial))
        cols = group_patches.transpose(order).reshape(batch, positions, in_per_group * taps)
        weights = w[g * out_per_group : (g + 1) * out_per_group].reshape(out_per_group, in_per_group * taps)
        outputs.append(_exact_matmul(cols, weights.T))  # [N, P, Mg]
    result = np.concatenate(outputs, axis=2)  # [N, P, M]
    return result.transpose(0, 2, 1).reshape((batch, w.shape[0], *out_shape))


def qlinear_conv(
    x: np.ndarray,
    x_scale: np.ndarray | float,
    x_zero_point: np.ndarray | int | None,
    w: np.ndarray,
    w_scale: np.ndarray | float,
    w_zero_point: np.ndarray | int | None,
    y_scale: np.ndarray | float,
    y_zero_point: np.ndarray | int | None,
    B: np.ndarray | None = None,  # noqa: N803 (the ONNX input name)
    *,
    auto_pad: str = "NOTSET",
    dilations: Sequence[int] | None = None,
    group: int = 1,
    kernel_shape: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    strides: Sequence[int] | None = None,
) -> np.ndarray:
    """ONNX QLinearConv: quantized convolution with int32 bias and float requantization.

    Parameters
    ----------
    x, x_scale, x_zero_point
        Input (int8/uint8, ``[N, C, D1, ...]``) and its per-tensor scale and zero point.
    w, w_scale, w_zero_point
        Weights (int8/uint8, ``[M, C / group, k1, ...]``), scale and zero point per-tensor
        or per output channel (``(M,)``), same shape.
    y_scale, y_zero_point
        Per-tensor output parameters; the zero point's dtype (int8/uint8) is the output
        type (None: 0 of ``x``'s dtype).
    B : numpy.ndarray, optional
        int32 bias of shape ``(M,)``, quantized with scale ``x_scale * w_scale`` and zero point 0.
    auto_pad, dilations, group, kernel_shape, pads, strides
        As in :func:`conv_integer`.

    Returns
    -------
    numpy.ndarray
        int8 or uint8, ``[N, M, O1, ..., On]``.

    Raises
    ------
    DTypeError, ShapeError, QuantParamError
        As :func:`conv_integer`, plus bad scales, a non-int32 or mis-shaped bias, or
        scale/zero-point shapes that differ.

    Notes
    -----
    ::

        acc = wrap_int32(conv_integer(x, w, x_zp, w_zp) + B[m])
        multiplier[m] = float32(float32(x_scale) * float32(w_scale[m])) / float32(y_scale)
        y = saturate(round_half_even(float32(acc) * multiplier[m]) + y_zp)

    exactly :func:`qcore.reference.requantize_float`. See docs/ARITHMETIC.md, "QLinearConv".
    """
    x = _operand(x, "x")
    w = _operand(w, "w")
    out_dtype = x.dtype
    if y_zero_point is not None:
        out_dtype = np.asarray(y_zero_point).dtype
        if out_dtype not in _OPERAND_DTYPES:
            raise DTypeError(f"y_zero_point must be int8 or uint8, got {out_dtype}")
    x_scale_v = as_scale(x_scale, "x_scale")
    w_scale_v = as_scale(w_scale, "w_scale")
    y_scale_v = as_scale(y_scale, "y_scale")
    for scale, zero_point, name in ((x_scale_v, x_zero_point, "x"), (w_scale_v, w_zero_point, "w"),
                                    (y_scale_v, y_zero_point, "y")):
        zp_shape = () if zero_point is None or isinstance(zero_point, numbers.Integral) else np.shape(zero_point)
        if zp_shape != scale.shape and not (zp_shape in _PER_TENSOR and scale.shape in _PER_TENSOR):
            raise ShapeError(f"{name}_scale shape {scale.shape} != {name}_zero_point shape {zp_shape}")
        if name != "w" and scale.shape not in _PER_TENSOR:
            raise ShapeError(f"{name}_scale must be per-tensor (a scalar), got shape {scale.shape}")
    w_scale_b = _per_channel(w_scale_v.astype(np.float32), w.shape, "w_scale")
    acc = conv_integer(x, w, x_zero_point, w_zero_point, auto_pad=auto_pad, dilations=dilations, group=group,
                       kernel_shape=kernel_shape, pads=pads, strides=strides)
    spatial_ones = (1,) * (x.ndim - 2)
    if B is not None:
        bias = np.asarray(B)
        if bias.dtype != np.int32:
            raise DTypeError(f"B must be int32, got {bias.dtype}")
        if bias.shape != (w.shape[0],):
            raise ShapeError(f"B must have shape ({w.shape[0]},), got {bias.shape}")
        acc = _wrap_int32(acc.astype(np.int64) + bias.astype(np.int64).reshape((1, -1) + spatial_ones))
    multiplier = (x_scale_v.astype(np.float32).reshape(()) * w_scale_b) / y_scale_v.astype(np.float32).reshape(())
    if multiplier.ndim:
        multiplier = multiplier.reshape((1, -1) + spatial_ones)
    zero_point = 0 if y_zero_point is None else _zero_point_values(y_zero_point, out_dtype, "y_zero_point").reshape(())
    out = int_type(out_dtype)
    return requantize_float(acc, multiplier, zero_point, out.qmin, out.qmax).astype(out.container)
