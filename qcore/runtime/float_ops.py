"""Float operators in NumPy, with ONNX (opset 13+) semantics.

Each operator is ``fn(inputs, attrs) -> list of outputs``; ``inputs`` holds arrays (None
for an omitted optional input) and ``attrs`` the node's JSON attributes. The importer
normalises older opsets (axes given as attributes or inputs, Softmax's coerced 2-D form)
to what these functions expect; see docs/GRAPH.md for the list and deviations.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import ModelError, ShapeError

Array = np.ndarray
OpFn = Callable[[list, dict], list]

FLOAT_OPS: dict[str, OpFn] = {}

_NP_DTYPES = {
    1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64,
    9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64, 4: np.uint16,
}


def onnx_dtype(code: int) -> np.dtype:
    """NumPy dtype of an ONNX TensorProto element type code."""
    try:
        return np.dtype(_NP_DTYPES[int(code)])
    except KeyError:
        raise ModelError(f"unsupported ONNX element type code {code}") from None


def _op(*names: str) -> Callable[[OpFn], OpFn]:
    def register(fn: OpFn) -> OpFn:
        for name in names:
            FLOAT_OPS[name] = fn
        return fn
    return register


def _unary(name: str, fn: Callable[[Array], Array]) -> None:
    FLOAT_OPS[name] = lambda inputs, attrs: [fn(inputs[0])]


def _binary(name: str, fn: Callable[[Array, Array], Array]) -> None:
    FLOAT_OPS[name] = lambda inputs, attrs: [fn(inputs[0], inputs[1])]


def _same(x: Array, y: Array) -> Array:
    """Cast a 0-d/NumPy-scalar result back to an array of the input's dtype."""
    return np.asarray(y, dtype=x.dtype) if isinstance(x, np.ndarray) else np.asarray(y)


_binary("Add", lambda a, b: np.add(a, b))
_binary("Sub", lambda a, b: np.subtract(a, b))
_binary("Mul", lambda a, b: np.multiply(a, b))
_binary("Pow", lambda a, b: np.power(a, b).astype(a.dtype, copy=False))
_binary("Equal", lambda a, b: np.equal(a, b))
_binary("Less", lambda a, b: np.less(a, b))
_binary("Greater", lambda a, b: np.greater(a, b))
_binary("And", lambda a, b: np.logical_and(a, b))
_binary("Or", lambda a, b: np.logical_or(a, b))
_unary("Not", np.logical_not)
_unary("Relu", lambda x: np.maximum(x, x.dtype.type(0)))
_unary("Neg", np.negative)
_unary("Abs", np.abs)
_unary("Sqrt", np.sqrt)
_unary("Exp", np.exp)
_unary("Log", np.log)
_unary("Tanh", np.tanh)
_unary("Reciprocal", lambda x: np.reciprocal(x))
_unary("Identity", lambda x: x)
_unary("Floor", np.floor)
_unary("Ceil", np.ceil)


@_op("Div")
def _div(inputs: list, attrs: dict) -> list:
    a, b = inputs
    if np.issubdtype(a.dtype, np.integer):
        return [np.trunc(a / b).astype(a.dtype)]  # ONNX integer Div truncates
    return [np.divide(a, b)]


@_op("Mod")
def _mod(inputs: list, attrs: dict) -> list:
    a, b = inputs
    if attrs.get("fmod", 0):
        return [np.fmod(a, b)]  # sign of the dividend (C fmod)
    return [np.mod(a, b)]  # sign of the divisor (Python %)


@_op("Max")
def _max(inputs: list, attrs: dict) -> list:
    result = inputs[0]
    for x in inputs[1:]:
        result = np.maximum(result, x)
    return [result]


@_op("Min")
def _min(inputs: list, attrs: dict) -> list:
    result = inputs[0]
    for x in inputs[1:]:
        result = np.minimum(result, x)
    return [result]


@_op("Sum")
def _sum(inputs: list, attrs: dict) -> list:
    result = inputs[0]
    for x in inputs[1:]:
        result = result + x
    return [result]


@_op("Sigmoid")
def _sigmoid(inputs: list, attrs: dict) -> list:
    x = inputs[0]
    one = x.dtype.type(1)
    # Split by sign so exp never overflows.
    e = np.exp(-np.abs(x))
    return [np.where(x >= 0, one / (one + e), e / (one + e)).astype(x.dtype, copy=False)]


@_op("LeakyRelu")
def _leaky_relu(inputs: list, attrs: dict) -> list:
    x = inputs[0]
    alpha = x.dtype.type(attrs.get("alpha", 0.01))
    return [np.where(x >= 0, x, x * alpha)]


@_op("Clip")
def _clip(inputs: list, attrs: dict) -> list:
    x = inputs[0]
    lo = inputs[1] if len(inputs) > 1 and inputs[1] is not None else attrs.get("min")
    hi = inputs[2] if len(inputs) > 2 and inputs[2] is not None else attrs.get("max")
    out = x
    if lo is not None:
        out = np.maximum(out, np.asarray(lo, dtype=x.dtype))
    if hi is not None:
        out = np.minimum(out, np.asarray(hi, dtype=x.dtype))
    return [out]


def erf(x: Array) -> Array:
    """The error function in NumPy, float32 results with absolute error below 2e-7.

    Notes
    -----
    Chebyshev fit of erfc (Numerical Recipes' ``erfcc``, fractional error < 1.2e-7),
    evaluated in float64: ``erfc(z) = t * exp(-z*z + P(t))`` with ``t = 1 / (1 + z/2)``,
    ``z = |x|``; ``erf(x) = sign(x) * (1 - erfc(|x|))``.
    """
    z = np.abs(x).astype(np.float64)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    erfc = t * np.exp(-z * z + poly)
    return (np.sign(x) * (1.0 - erfc)).astype(x.dtype, copy=False)


def _erf_op(x: Array) -> Array:
    """Erf: float32 on the C kernel (:func:`qcore._activation.erf`), other dtypes :func:`erf`."""
    if isinstance(x, np.ndarray) and x.dtype == np.float32:
        from .. import _activation  # noqa: PLC0415

        return _activation.erf(x)
    return erf(x)


_unary("Erf", _erf_op)


@_op("Gelu")
def _gelu(inputs: list, attrs: dict) -> list:
    x = inputs[0]
    if attrs.get("approximate", "none") == "tanh":
        c = np.sqrt(2.0 / np.pi)
        y = 0.5 * x * (1.0 + np.tanh(c * (x + 0.044715 * x ** 3)))
    elif x.dtype == np.float32:
        from .. import _activation  # noqa: PLC0415

        return [_activation.gelu(x)]
    else:
        y = 0.5 * x * (1.0 + erf((x / np.sqrt(2.0)).astype(x.dtype)))
    return [y.astype(x.dtype, copy=False)]


@_op("Softmax")
def _softmax(inputs: list, attrs: dict) -> list:
    x = inputs[0]
    axis = int(attrs.get("axis", -1))
    if attrs.get("coerce_2d"):  # opset < 13: flatten from axis, softmax over the rest
        shape = x.shape
        x = x.reshape(int(np.prod(shape[:axis], dtype=np.int64)), -1)
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return [(e / e.sum(axis=1, keepdims=True)).reshape(shape)]
    if x.dtype == np.float32 and x.ndim and axis % x.ndim == x.ndim - 1:
        from .. import _activation  # noqa: PLC0415

        return [_activation.softmax(x)]
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return [e / e.sum(axis=axis, keepdims=True)]


@_op("LayerNormalization")
def _layer_norm(inputs: list, attrs: dict) -> list:
    x, scale = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    axis = int(attrs.get("axis", -1))
    eps = float(attrs.get("epsilon", 1e-5))
    axis = axis % x.ndim
    if (x.dtype == np.float32 and axis == x.ndim - 1 and np.isfinite(eps) and eps >= 0
            and all(isinstance(p, np.ndarray) and p.dtype == np.float32 and p.size == x.shape[-1] and p.ndim == 1
                    for p in ((scale,) if bias is None else (scale, bias)))):
        from .. import _activation  # noqa: PLC0415

        return [_activation.layer_norm(x, scale, bias, eps)]  # C, float32 (8-lane sums)
    axes = tuple(range(axis, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    centered = x - mean
    var = (centered * centered).mean(axis=axes, keepdims=True)
    y = centered / np.sqrt(var + x.dtype.type(eps))
    y = y * scale
    if bias is not None:
        y = y + bias
    return [y.astype(x.dtype, copy=False)]


def _reduce_axes(x: Array, inputs: list, attrs: dict) -> tuple[int, ...] | None:
    axes = attrs.get("axes")
    if axes is None and len(inputs) > 1 and inputs[1] is not None:
        axes = [int(a) for a in np.asarray(inputs[1]).reshape(-1)]
    if axes is None or len(axes) == 0:
        if attrs.get("noop_with_empty_axes", 0):
            return ()
        return None
    return tuple(int(a) % x.ndim for a in axes)


def _reduction(name: str, fn: Callable[..., Array]) -> None:
    def run(inputs: list, attrs: dict) -> list:
        x = inputs[0]
        axes = _reduce_axes(x, inputs, attrs)
        if axes == ():
            return [x]
        keep = bool(attrs.get("keepdims", 1))
        return [np.asarray(fn(x, axis=axes, keepdims=keep)).astype(x.dtype, copy=False)]
    FLOAT_OPS[name] = run


_reduction("ReduceMean", np.mean)
_reduction("ReduceSum", np.sum)
_reduction("ReduceMax", np.max)
_reduction("ReduceMin", np.min)
_reduction("ReduceProd", np.prod)


@_op("MatMul")
def _matmul(inputs: list, attrs: dict) -> list:
    return [np.matmul(inputs[0], inputs[1])]


@_op("Gemm")
def _gemm(inputs: list, attrs: dict) -> list:
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    if attrs.get("transA", 0):
        a = a.T
    if attrs.get("transB", 0):
        b = b.T
    y = a @ b
    alpha = float(attrs.get("alpha", 1.0))
    if alpha != 1.0:
        y = y * y.dtype.type(alpha)
    if c is not None:
        beta = float(attrs.get("beta", 1.0))
        y = y + (c if beta == 1.0 else c * c.dtype.type(beta))
    return [y]


# -- convolution and pooling --------------------------------------------------------------

def conv_geometry(x_shape: tuple[int, ...], kernel: list[int], attrs: dict) -> tuple[list[int], list[int], list[int], list[int]]:
    """Resolve strides, dilations and explicit (begin, end) pads for the spatial axes.

    Returns ``(strides, dilations, pads_begin, pads_end)``; ``auto_pad`` SAME_UPPER /
    SAME_LOWER / VALID are turned into explicit pads as ONNX defines them.
    """
    nd = len(kernel)
    strides = list(attrs.get("strides") or [1] * nd)
    dilations = list(attrs.get("dilations") or [1] * nd)
    pads = list(attrs.get("pads") or [0] * (2 * nd))
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * (2 * nd)
        for i in range(nd):
            size = x_shape[2 + i]
            out = -(-size // strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size)
            small, big = total // 2, total - total // 2
            pads[i], pads[i + nd] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    elif auto_pad == "VALID":
        pads = [0] * (2 * nd)
    return strides, dilations, pads[:nd], pads[nd:]


def _offset_slices(offsets: tuple[int, ...], strides: list[int], dilations: list[int],
                   out_spatial: list[int]) -> tuple[slice, ...]:
    return tuple(slice(o * d, o * d + s * (n - 1) + 1, s)
                 for o, s, d, n in zip(offsets, strides, dilations, out_spatial))


def _padded(x: Array, pads_begin: list[int], pads_end: list[int], pad_value: float | int) -> Array:
    pad_width = [(0, 0), (0, 0)] + list(zip(pads_begin, pads_end))
    if any(p != (0, 0) for p in pad_width):
        return np.pad(x, pad_width, mode="constant", constant_values=pad_value)
    return x


def im2col(x: Array, kernel: list[int], group: int, attrs: dict, pad_value: float | int = 0) -> tuple[Array, list[int]]:
    """Rearrange conv input into (group, N * prod(out), C/group * prod(kernel)) columns.

    One strided copy per kernel offset (``prod(kernel)`` copies of the whole input),
    columns ordered ``(C/group, *kernel)`` to match the weight's layout.
    """
    strides, dilations, pb, pe = conv_geometry(x.shape, kernel, attrs)
    nd = len(kernel)
    xp = _padded(x, pb, pe, pad_value)
    out_spatial = []
    for i in range(nd):
        span = (kernel[i] - 1) * dilations[i] + 1
        if xp.shape[2 + i] < span:
            raise ShapeError(f"kernel span {span} larger than padded input size {xp.shape[2 + i]}")
        out_spatial.append((xp.shape[2 + i] - span) // strides[i] + 1)
    n, c = x.shape[0], x.shape[1]
    cg = c // group
    cols = np.empty((group, n, *out_spatial, cg, *kernel), dtype=x.dtype)
    # source viewed as (G, N, *spatial, C/G)
    src = np.moveaxis(xp.reshape(n, group, cg, *xp.shape[2:]), (1, 2), (0, -1))
    for offsets in np.ndindex(*kernel):
        index = (slice(None), slice(None)) + _offset_slices(offsets, strides, dilations, out_spatial)
        cols[(Ellipsis,) + offsets] = src[index]
    rows = n * int(np.prod(out_spatial, dtype=np.int64))
    return cols.reshape(group, rows, cg * int(np.prod(kernel, dtype=np.int64))), out_spatial


def col2out(y: Array, n: int, out_spatial: list[int]) -> Array:
    """(group, N * prod(out), OC/group) -> (N, OC, *out)."""
    group, _, ocg = y.shape
    y = y.reshape((group, n, *out_spatial, ocg))
    nd = len(out_spatial)
    order = (1, 0, 2 + nd) + tuple(range(2, 2 + nd))
    return np.ascontiguousarray(y.transpose(order)).reshape((n, group * ocg, *out_spatial))


@_op("Conv")
def _conv(inputs: list, attrs: dict) -> list:
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    group = int(attrs.get("group", 1))
    kernel = list(w.shape[2:])
    if x.ndim != w.ndim or x.shape[1] != w.shape[1] * group:
        raise ShapeError(f"Conv input {x.shape} does not fit weight {w.shape} with group={group}")
    cols, out_spatial = im2col(x, kernel, group, attrs, 0)
    oc = w.shape[0]
    wmat = w.reshape(group, oc // group, -1).transpose(0, 2, 1)
    y = np.matmul(cols, wmat)
    out = col2out(y, x.shape[0], out_spatial)
    if b is not None:
        out = out + b.reshape((1, -1) + (1,) * len(kernel))
    return [out.astype(x.dtype, copy=False)]


def _pool_extra(x_shape: tuple[int, ...], kernel: list[int], strides: list[int], dilations: list[int],
                pb: list[int], pe: list[int], ceil_mode: bool) -> list[int]:
    extra = []
    for i in range(len(kernel)):
        span = (kernel[i] - 1) * dilations[i] + 1
        size = x_shape[2 + i] + pb[i] + pe[i]
        if ceil_mode:
            out = -(-(size - span) // strides[i]) + 1
            # ONNX: the last window must start inside the input or the begin padding
            if (out - 1) * strides[i] >= x_shape[2 + i] + pb[i]:
                out -= 1
        else:
            out = (size - span) // strides[i] + 1
        extra.append(max(0, (out - 1) * strides[i] + span - size))
    return extra


def _pool(x: Array, attrs: dict, pad_value: float | int, reduce: Callable[..., Array]) -> tuple[Array, list[int], list[int], list[int], list[int], list[int], list[int]]:
    kernel = list(attrs["kernel_shape"])
    strides, dilations, pb, pe = conv_geometry(x.shape, kernel, attrs)
    extra = _pool_extra(x.shape, kernel, strides, dilations, pb, pe, bool(attrs.get("ceil_mode", 0)))
    xp = _padded(x, pb, [e + x_ for e, x_ in zip(pe, extra)], pad_value)
    nd = len(kernel)
    out_spatial = []
    for i in range(nd):
        span = (kernel[i] - 1) * dilations[i] + 1
        if xp.shape[2 + i] < span:
            raise ShapeError(f"pool window {span} larger than padded input size {xp.shape[2 + i]}")
        out_spatial.append((xp.shape[2 + i] - span) // strides[i] + 1)
    result = None
    for offsets in np.ndindex(*kernel):
        view = xp[(slice(None), slice(None)) + _offset_slices(offsets, strides, dilations, out_spatial)]
        result = view.copy() if result is None else reduce(result, view, out=result)
    return result, kernel, strides, dilations, pb, pe, extra


@_op("MaxPool")
def _maxpool(inputs: list, attrs: dict) -> list:
    x = inputs[0]
    low = -np.inf if np.issubdtype(x.dtype, np.floating) else np.iinfo(x.dtype).min
    return [_pool(x, attrs, low, np.maximum)[0]]


@_op("AveragePool")
def _avgpool(inputs: list, attrs: dict) -> list:
    x = inputs[0]
    total, kernel, strides, dilations, pb, pe, extra = _pool(x, attrs, 0, np.add)
    nd = len(kernel)
    if not any(pb) and not any(pe) and not any(extra):
        return [(total / x.dtype.type(np.prod(kernel))).astype(x.dtype, copy=False)]
    ones = np.ones((1, 1) + x.shape[2:], dtype=x.dtype)
    if attrs.get("count_include_pad", 0):
        # Count the explicit padding but not the ceil-mode overhang.
        ones = np.pad(ones, [(0, 0), (0, 0)] + [(pb[i], pe[i]) for i in range(nd)], constant_values=1)
        count = _pool(ones, {**attrs, "pads": [0] * (2 * nd), "auto_pad": "NOTSET"}, 0, np.add)[0]
    else:
        count = _pool(ones, attrs, 0, np.add)[0]
    return [(total / count).astype(x.dtype, copy=False)]


@_op("GlobalAveragePool")
def _gap(inputs: list, attrs: dict) -> list:
    x = inputs[0]
    return [x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)]


@_op("GlobalMaxPool")
def _gmp(inputs: list, attrs: dict) -> list:
    x = inputs[0]
    return [x.max(axis=tuple(range(2, x.ndim)), keepdims=True)]


@_op("BatchNormalization")
def _batchnorm(inputs: list, attrs: dict) -> list:
    x, scale, bias, mean, var = inputs[:5]
    eps = x.dtype.type(attrs.get("epsilon", 1e-5))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    factor = (scale / np.sqrt(var + eps)).reshape(shape)
    return [((x - mean.reshape(shape)) * factor + bias.reshape(shape)).astype(x.dtype, copy=False)]


# -- shape manipulation ----------------------------------------------------------------

@_op("Flatten")
def _flatten(inputs: list, attrs: dict) -> list:
    x = inputs[0]
    axis = int(attrs.get("axis", 1)) % (x.ndim + 1) if x.ndim else 0
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    return [x.reshape(outer, -1) if x.size else x.reshape(outer, int(np.prod(x.shape[axis:], dtype=np.int64)))]


def reshape(x: np.ndarray, shape: object, allowzero: int = 0) -> np.ndarray:
    """ONNX Reshape of ``x`` to the 1-D integer ``shape`` (0 copies the input's dimension
    unless ``allowzero``; one -1 is inferred); a view whenever NumPy can make one.

    Raises
    ------
    ShapeError
        ``x`` does not fit ``shape``.
    """
    dims = [int(s) for s in np.asarray(shape).reshape(-1).tolist()]
    if not allowzero and 0 in dims:
        if any(s == 0 for s in dims[x.ndim:]):
            raise ShapeError(f"cannot reshape {x.shape} to {dims}: a 0 (copy the input's dimension) "
                             f"past the input's {x.ndim} axes")
        dims = [x.shape[i] if s == 0 else s for i, s in enumerate(dims)]
    try:
        return x.reshape(dims)
    except ValueError:
        raise ShapeError(f"cannot reshape {x.shape} to {dims}") from None


@_op("Reshape")
def _reshape(inputs: list, attrs: dict) -> list:
    return [reshape(inputs[0], inputs[1], attrs.get("allowzero", 0))]


@_op("Transpose")
def _transpose(inputs: list, attrs: dict) -> list:
    perm = attrs.get("perm")
    return [np.transpose(inputs[0], perm)]


@_op("Concat")
def _concat(inputs: list, attrs: dict) -> list:
    return [np.concatenate([x for x in inputs if x is not None], axis=int(attrs["axis"]))]


@_op("Split")
def _split(inputs: list, attrs: dict) -> list:
    x = inputs[0]
    axis = int(attrs.get("axis", 0)) % x.ndim
    split = attrs.get("split")
    if split is None and len(inputs) > 1 and inputs[1] is not None:
        split = [int(s) for s in inputs[1]]
    if split is None:
        n = int(attrs["num_outputs"])
        size = -(-x.shape[axis] // n)
        split = [min(size, x.shape[axis] - i * size) for i in range(n)]
    points = np.cumsum(split)[:-1]
    return list(np.split(x, points, axis=axis))


@_op("Gather")
def _gather(inputs: list, attrs: dict) -> list:
    x, idx = inputs
    axis = int(attrs.get("axis", 0)) % x.ndim
    idx = np.asarray(idx).astype(np.int64, copy=False)
    size = x.shape[axis]
    if idx.size and (idx.min() < -size or idx.max() >= size):
        raise ShapeError(f"Gather index out of range [{-size}, {size - 1}]")
    return [np.take(x, np.where(idx < 0, idx + size, idx), axis=axis)]


@_op("Unsqueeze")
def _unsqueeze(inputs: list, attrs: dict) -> list:
    x = inputs[0]
    axes = attrs.get("axes")
    if axes is None:
        axes = [int(a) for a in np.asarray(inputs[1]).reshape(-1)]
    rank = x.ndim + len(axes)
    out = x
    for a in sorted(int(a) % rank for a in axes):
        out = np.expand_dims(out, a)
    return [out]


@_op("Squeeze")
def _squeeze(inputs: list, attrs: dict) -> list:
    x = inputs[0]
    axes = attrs.get("axes")
    if axes is None and len(inputs) > 1 and inputs[1] is not None:
        axes = [int(a) for a in np.asarray(inputs[1]).reshape(-1)]
    if axes is None:
        return [np.squeeze(x)]
    return [np.squeeze(x, axis=tuple(int(a) % x.ndim for a in axes))]


@_op("Slice")
def _slice(inputs: list, attrs: dict) -> list:
    x = inputs[0]
    starts = [int(v) for v in np.asarray(inputs[1]).reshape(-1)]
    ends = [int(v) for v in np.asarray(inputs[2]).reshape(-1)]
    axes = ([int(v) for v in np.asarray(inputs[3]).reshape(-1)] if len(inputs) > 3 and inputs[3] is not None
            else list(range(len(starts))))
    steps = ([int(v) for v in np.asarray(inputs[4]).reshape(-1)] if len(inputs) > 4 and inputs[4] is not None
             else [1] * len(starts))
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        dim = x.shape[axis % x.ndim]
        # ONNX clamps huge sentinel values; Python slicing does the same for ints.
        start = max(-dim - 1, min(dim, start))
        end = max(-dim - 1, min(dim, end))
        if step < 0 and end < -dim:
            end = None  # run to the beginning
        index[axis % x.ndim] = slice(start, end, step)
    return [x[tuple(index)]]


@_op("Where")
def _where(inputs: list, attrs: dict) -> list:
    return [np.where(inputs[0], inputs[1], inputs[2])]


@_op("Cast")
def _cast(inputs: list, attrs: dict) -> list:
    return [inputs[0].astype(onnx_dtype(attrs["to"]), copy=False)]


@_op("CastLike")
def _cast_like(inputs: list, attrs: dict) -> list:
    return [inputs[0].astype(inputs[1].dtype, copy=False)]


@_op("Shape")
def _shape(inputs: list, attrs: dict) -> list:
    shape = np.array(inputs[0].shape, dtype=np.int64)
    start = attrs.get("start", 0)
    end = attrs.get("end")
    return [shape[start:end]]


@_op("Size")
def _size(inputs: list, attrs: dict) -> list:
    return [np.array(inputs[0].size, dtype=np.int64)]


@_op("ConstantOfShape")
def _constant_of_shape(inputs: list, attrs: dict) -> list:
    shape = [int(s) for s in np.asarray(inputs[0]).reshape(-1)]
    dtype = np.dtype(attrs.get("dtype", "float32"))
    return [np.full(shape, attrs.get("value", 0), dtype=dtype)]


@_op("Expand")
def _expand(inputs: list, attrs: dict) -> list:
    x, shape = inputs[0], [int(s) for s in np.asarray(inputs[1]).reshape(-1)]
    target = np.broadcast_shapes(x.shape, tuple(shape))
    return [np.broadcast_to(x, target)]


@_op("Range")
def _range(inputs: list, attrs: dict) -> list:
    start, limit, delta = (np.asarray(v) for v in inputs)
    return [np.arange(start, limit, delta, dtype=start.dtype)]


@_op("Tile")
def _tile(inputs: list, attrs: dict) -> list:
    return [np.tile(inputs[0], [int(r) for r in inputs[1]])]


@_op("Dropout")
def _dropout(inputs: list, attrs: dict) -> list:
    x = inputs[0]
    return [x, np.ones(x.shape, dtype=bool)]


@_op("Constant")
def _constant(inputs: list, attrs: dict) -> list:
    raise ModelError("Constant nodes are turned into initializers at import")


def evaluate(op: str, inputs: list, attrs: dict[str, Any]) -> list:
    """Run one float operator (used by constant folding and tests)."""
    try:
        fn = FLOAT_OPS[op]
    except KeyError:
        raise ModelError(f"no float implementation of {op}") from None
    return fn(inputs, attrs)
