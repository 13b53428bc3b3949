"""Integer convolution and max pooling on the C core (private; :mod:`qcore.ops` re-exports it).

``conv_integer`` and ``qlinear_conv`` take exactly the arguments of :mod:`qcore.reference`
(plus keyword-only ``isa`` / ``num_threads``) and return bit-identical results; their
validation is the reference's own. 1-D and 2-D convolutions run in C (a 1-D one as a 2-D
one of height 1); 3-D and higher use the reference.

:class:`ConvWeights` packs a convolution weight once (one buffer for every ISA) and
:class:`Conv2d` binds it to fixed attributes and an output stage, for the runtime's
repeated calls: float32 or int8/uint8 input, NCHW or NHWC, and an output of int32, int8 /
uint8 (QLinearConv's requantization), float32 (``acc * multiplier + bias``) or that float
value quantized for the next layer (``qcore_conv.h``). :func:`max_pool2d` pools int8 /
uint8 values. The design is in docs/KERNELS.md ("Convolution").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._native import c_array, c_floats, check, ffi, lib, make_options
from .errors import DTypeError, QuantParamError, ShapeError
from .reference import conv as _ref
from .reference import matmul as _ref_matmul
from .reference._params import as_scale

__all__ = ["Conv2d", "ConvWeights", "MaxPool2d", "conv_integer", "max_pool2d", "qlinear_conv"]

_DTYPE = {np.dtype(np.int8): lib.QC_DTYPE_INT8, np.dtype(np.uint8): lib.QC_DTYPE_UINT8,
          np.dtype(np.float32): lib.QC_DTYPE_FLOAT32, np.dtype(np.int32): lib.QC_DTYPE_INT32}
_LAYOUTS = {"NCHW": lib.QC_CONV_NCHW, "NHWC": lib.QC_CONV_NHWC}
_KINDS = {"int32": lib.QC_CONV_OUT_S32, "requant": lib.QC_CONV_OUT_REQUANT, "float32": lib.QC_CONV_OUT_F32,
          "quantize": lib.QC_CONV_OUT_F32_QUANTIZE}


def _layout(layout: str) -> int:
    try:
        return _LAYOUTS[layout]
    except KeyError:
        raise ShapeError(f"layout must be 'NCHW' or 'NHWC', got {layout!r}") from None


class ConvWeights:
    """A 2-D convolution weight ``[OC, C/group, KH, KW]`` packed once for C.

    Parameters
    ----------
    w : numpy.ndarray
        int8 or uint8, ``[OC, C / group, KH, KW]`` (ONNX layout).
    w_zero_point : numpy.ndarray or int, optional
        dtype of ``w``; per tensor or per output channel ``(OC,)``.
    group : int
        Channel groups (``OC`` must be a multiple).

    Raises
    ------
    DTypeError, ShapeError, QuantParamError
        Bad dtype or rank, groups that do not divide ``OC``, a bad zero point.

    Notes
    -----
    One buffer serves every ISA (``qcore_conv.h``): int16 panels of ``w - w_zero_point``
    for the direct x86 kernels and per-group packed GEMM matrices for the NEON paths.
    """

    def __init__(self, w: np.ndarray, w_zero_point: np.ndarray | int | None = None, *, group: int = 1) -> None:
        w = np.asarray(w)
        if w.dtype not in (np.int8, np.uint8):
            raise DTypeError(f"w must be int8 or uint8, got {w.dtype}")
        if w.ndim != 4:
            raise ShapeError(f"w must be [OC, C/group, KH, KW], got shape {w.shape}")
        if not isinstance(group, (int, np.integer)) or group < 1 or w.shape[0] % group:
            raise ShapeError(f"{w.shape[0]} output channels do not split into group={group!r} groups")
        oc = w.shape[0]
        zp = None
        if w_zero_point is not None:
            zp = _ref_matmul._zero_point_values(w_zero_point, w.dtype, "w_zero_point")
            if zp.shape not in ((), (1,), (oc,)):
                raise ShapeError(f"w_zero_point has shape {zp.shape}; it must be per-tensor or ({oc},)")
            zp = c_array(np.asarray(zp, dtype=np.int32).reshape(-1))
        shape = ffi.new("qc_conv2d_shape *")
        shape.out_channels = oc
        shape.channels = w.shape[1] * group
        shape.groups = group
        shape.kernel_height, shape.kernel_width = w.shape[2], w.shape[3]
        size = ffi.new("size_t *")
        check(lib.qc_conv2d_packed_size(shape, size), "ConvWeights")
        storage = np.empty(size[0] + 64, dtype=np.uint8)
        offset = (-storage.ctypes.data) % 64
        self._buffer = storage[offset:offset + size[0]]
        wc = np.ascontiguousarray(w)
        check(lib.qc_conv2d_pack_weights(shape, _DTYPE[w.dtype], ffi.from_buffer(wc) if wc.size else ffi.NULL,
                                         ffi.cast("int32_t *", ffi.from_buffer(zp)) if zp is not None else ffi.NULL,
                                         0 if zp is None else zp.size, ffi.from_buffer(self._buffer), size[0],
                                         make_options(None, None)), "ConvWeights")
        self.shape = tuple(int(d) for d in w.shape)
        self.group = int(group)
        self.dtype = w.dtype
        self._ptr = ffi.from_buffer(self._buffer)

    @property
    def nbytes(self) -> int:
        """Size of the packed buffer in bytes."""
        return int(self._buffer.nbytes)


class Conv2d:
    """A 2-D convolution with fixed attributes and output stage, called many times.

    Parameters
    ----------
    weights : ConvWeights
    input_layout : {"NCHW", "NHWC"}
        Layout of the activations.
    x_dtype : {"uint8", "int8", "float32"}
        Input element type; float32 input is quantized first with ``x_scale`` and
        ``x_zero_point`` to ``quantized_dtype`` (ONNX QuantizeLinear).
    x_zero_point : int
        Per-tensor input zero point (padding value).
    strides, dilations : sequence of 2 int
    pads : sequence of 4 int
        ``[top, left, bottom, right]``.
    output : {"int32", "requant", "float32", "quantize"}
        The output stage (``qcore_conv.h``).
    output_layout : {"NCHW", "NHWC"}
    multiplier : numpy.ndarray, optional
        float32, one value or one per output channel.
    bias : numpy.ndarray, optional
        int32 (``"requant"``) or float32 (``"float32"``, ``"quantize"``), ``(OC,)``.
    output_scale, output_zero_point, output_dtype, clamp
        For the quantized outputs: ``output_dtype`` "uint8"/"int8", ``clamp`` ``(lo, hi)``
        (default the whole range; ``(zp, max)`` is a fused ReLU).
    x_scale, quantized_dtype
        For float32 input.
    pool : (int, int), optional
        ``(height, width)`` of a max pool fused into the quantized outputs (``"requant"``,
        ``"quantize"``): windows of that size with the same strides, no padding, floor
        mode, so the output is ``[N, OC, OH // height, OW // width]``.
    isa, num_threads
        As in :func:`qcore.ops.matmul_integer`.

    Notes
    -----
    ``acc[n, oc, oh, ow] = sum (x_pad - x_zp) * (w - w_zp)`` exactly (int32, wrapping); then
    ``"float32"``: ``y = float32(acc) * multiplier[oc] + bias[oc]``; ``"quantize"``: that
    ``y`` quantized, ``clamp(saturate(round_half_even(y / output_scale) + output_zero_point))``;
    ``"requant"``: ``clamp(round_half_even(float32(acc + bias) * multiplier) + zp)``.
    With ``pool``, ``y[n, oc, i, j] = max`` of those bytes over rows ``i * height ..`` and
    columns ``j * width ..`` of the window: exactly :func:`max_pool2d` of the unpooled output.
    """

    def __init__(self, weights: ConvWeights, *, input_layout: str = "NCHW", x_dtype: str, x_zero_point: int,
                 strides: Sequence[int] = (1, 1),
                 dilations: Sequence[int] = (1, 1), pads: Sequence[int] = (0, 0, 0, 0), output: str = "float32",
                 output_layout: str = "NCHW", multiplier: np.ndarray | float | None = None,
                 bias: np.ndarray | None = None, output_scale: float = 1.0, output_zero_point: int = 0,
                 output_dtype: str = "uint8", clamp: tuple[int, int] | None = None, x_scale: float = 1.0,
                 quantized_dtype: str = "uint8", pool: tuple[int, int] | None = None, isa: str | None = None,
                 num_threads: int | None = None) -> None:
        self.weights = weights
        self._options = make_options(isa, num_threads)
        oc, cg, kh, kw = weights.shape
        self.out_channels = oc
        self.in_channels = cg * weights.group
        self.kernel = (kh, kw)
        self.strides = tuple(int(s) for s in strides)
        self.dilations = tuple(int(d) for d in dilations)
        self.pads = tuple(int(p) for p in pads)
        if len(self.strides) != 2 or len(self.dilations) != 2 or len(self.pads) != 4:
            raise ShapeError("strides and dilations need 2 values, pads 4 ([top, left, bottom, right])")
        if min(self.strides + self.dilations) < 1 or min(self.pads) < 0:
            raise ShapeError(f"strides/dilations must be >= 1 and pads >= 0, got {strides}, {dilations}, {pads}")
        x_dt = np.dtype(x_dtype)
        if x_dt not in (np.int8, np.uint8, np.float32):
            raise DTypeError(f"x_dtype must be int8, uint8 or float32, got {x_dt}")
        q_dt = np.dtype(quantized_dtype) if x_dt == np.float32 else x_dt
        if q_dt not in (np.int8, np.uint8):
            raise DTypeError(f"quantized_dtype must be int8 or uint8, got {q_dt}")
        self.x_dtype = x_dt
        self.input_layout = input_layout
        inp = ffi.new("qc_conv_input *")
        inp.type = _DTYPE[x_dt]
        inp.layout = _layout(input_layout)
        inp.zero_point = int(x_zero_point)
        inp.scale = float(np.float32(x_scale))
        inp.quantized_type = _DTYPE[q_dt]
        self._input = inp
        if output not in _KINDS:
            raise ShapeError(f"output must be one of {', '.join(_KINDS)}, got {output!r}")
        out = ffi.new("qc_conv_output *")
        out.kind = _KINDS[output]
        out.layout = _layout(output_layout)
        self.output_layout = output_layout
        keep: list[Any] = []
        if output == "int32":
            self.out_dtype = np.dtype(np.int32)
        else:
            if multiplier is None:
                raise QuantParamError(f"output {output!r} needs a multiplier")
            mult = c_floats(np.asarray(multiplier, dtype=np.float32).reshape(-1))
            if mult.size not in (1, oc):
                raise ShapeError(f"multiplier has {mult.size} values; it must be 1 or {oc}")
            out.multiplier = ffi.cast("float *", ffi.from_buffer(mult))
            out.multiplier_per_channel = int(mult.size > 1)
            keep.append(mult)
            if bias is not None:
                b = c_array(np.asarray(bias).reshape(-1))
                if b.size != oc:
                    raise ShapeError(f"bias has {b.size} values, expected {oc}")
                want = np.int32 if output == "requant" else np.float32
                if b.dtype != want:
                    raise DTypeError(f"bias for output {output!r} must be {np.dtype(want)}, got {b.dtype}")
                if output == "requant":
                    out.bias_s32 = ffi.cast("int32_t *", ffi.from_buffer(b))
                else:
                    out.bias_f32 = ffi.cast("float *", ffi.from_buffer(b))
                keep.append(b)
            if output == "float32":
                self.out_dtype = np.dtype(np.float32)
            else:
                self.out_dtype = np.dtype(output_dtype)
                if self.out_dtype not in (np.int8, np.uint8):
                    raise DTypeError(f"output_dtype must be int8 or uint8, got {self.out_dtype}")
                info = np.iinfo(self.out_dtype)
                out.type = _DTYPE[self.out_dtype]
                out.output_zero_point = int(output_zero_point)
                out.output_scale = float(np.float32(output_scale))
                lo, hi = (int(info.min), int(info.max)) if clamp is None else (int(clamp[0]), int(clamp[1]))
                out.clamp_min = lo
                out.clamp_max = hi
        self.pool = (1, 1) if pool is None else (int(pool[0]), int(pool[1]))
        if len(self.pool) != 2 or min(self.pool) < 1:
            raise ShapeError(f"pool must be two sizes >= 1, got {pool!r}")
        if self.pool != (1, 1) and output not in ("requant", "quantize"):
            raise ShapeError(f"a fused pool needs a quantized output ('requant' or 'quantize'), not {output!r}")
        out.pool_height, out.pool_width = self.pool
        self._output = out
        self._keep = keep
        self._sizes: dict[tuple[int, int], tuple[int, int]] = {}
        self._shape = ffi.new("qc_conv2d_shape *")
        s = self._shape
        s.out_channels = oc
        s.groups = weights.group
        s.kernel_height, s.kernel_width = kh, kw
        s.stride_height, s.stride_width = self.strides
        s.dilation_height, s.dilation_width = self.dilations
        s.pad_top, s.pad_left, s.pad_bottom, s.pad_right = self.pads

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Output height and width for an input of this height and width."""
        sizes = []
        for size, k, s, d, b, e in ((height, self.kernel[0], self.strides[0], self.dilations[0], self.pads[0],
                                     self.pads[2]),
                                    (width, self.kernel[1], self.strides[1], self.dilations[1], self.pads[1],
                                     self.pads[3])):
            span = (k - 1) * d + 1
            if size + b + e < span:
                raise ShapeError(f"the dilated kernel extent {span} exceeds the padded input size {size + b + e}")
            sizes.append((size + b + e - span) // s + 1)
        return sizes[0], sizes[1]

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Convolve ``x`` (4-D in the weights' input layout, dtype ``x_dtype``).

        Parameters
        ----------
        x : numpy.ndarray
        out : numpy.ndarray, optional
            A C-contiguous array of the output's dtype and size to write into (reused
            across calls by the runtime); ignored when it does not fit.

        Returns
        -------
        numpy.ndarray
            ``[N, OC, OH, OW]`` or ``[N, OH, OW, OC]`` (``output_layout``; pooled sizes
            with ``pool``), a view of ``out`` when it was used.

        Raises
        ------
        DTypeError, ShapeError, NonFiniteError
            Wrong dtype or shape; NaN in a float32 input.
        """
        if x.dtype != self.x_dtype:
            raise DTypeError(f"x must be {self.x_dtype}, got {x.dtype}")
        if x.ndim != 4:
            raise ShapeError(f"x must be 4-D, got shape {x.shape}")
        if self.input_layout == "NCHW":
            n, c, h, w = x.shape
        else:
            n, h, w, c = x.shape
        if c != self.in_channels:
            raise ShapeError(f"x has {c} channels, the weights expect {self.in_channels}")
        sizes = self._sizes.get((h, w))
        if sizes is None:
            if len(self._sizes) >= 16:
                self._sizes.clear()
            oh, ow = self.output_size(h, w)
            if self.pool[0] > oh or self.pool[1] > ow:
                raise ShapeError(f"the pool window {self.pool} is larger than the convolution's output ({oh}, {ow})")
            sizes = self._sizes[(h, w)] = (oh // self.pool[0], ow // self.pool[1])
        oh, ow = sizes
        shape = (n, self.out_channels, oh, ow) if self.output_layout == "NCHW" else (n, oh, ow, self.out_channels)
        if (out is not None and out.dtype == self.out_dtype and out.size == n * self.out_channels * oh * ow
                and out.flags.c_contiguous and out.flags.aligned):
            y = out.reshape(shape)
        else:
            y = np.empty(shape, dtype=self.out_dtype)
        if not (x.flags.c_contiguous and x.flags.aligned):  # C reads a float32 input as floats
            x = c_array(x)
        # Per-call copies of the shape and input descriptors: the C call releases the GIL,
        # so two threads running the same layer must not share them.
        s = ffi.new("qc_conv2d_shape *", self._shape[0])
        s.batch, s.channels, s.height, s.width = n, c, h, w
        inp = ffi.new("qc_conv_input *", self._input[0])
        inp.data = ffi.from_buffer(x) if x.size else ffi.NULL
        check(lib.qc_conv2d(s, inp, self.weights._ptr, self._output,
                            ffi.from_buffer(y) if y.size else ffi.NULL, self._options), "conv2d")
        return y


class MaxPool2d:
    """2-D max pooling of int8 / uint8 values with fixed attributes, called many times.

    Parameters
    ----------
    kernel, strides, dilations : sequence of 2 int
    pads : sequence of 4 int
        ``[top, left, bottom, right]`` (ceil_mode: add the overhang to bottom / right).
    layout : {"NCHW", "NHWC"}
    isa : str, optional

    Notes
    -----
    ``y = max`` over the taps inside the input; padding never wins (a window without any
    tap inside gives the type's minimum). Max commutes with a monotonic quantization, so
    this equals quantizing the float max pool.
    """

    def __init__(self, kernel: Sequence[int], *, strides: Sequence[int] | None = None,
                 dilations: Sequence[int] | None = None, pads: Sequence[int] = (0, 0, 0, 0), layout: str = "NCHW",
                 isa: str | None = None) -> None:
        self._layout = _layout(layout)
        self.layout = layout
        kernel = [int(k) for k in kernel]
        strides = [int(s) for s in (strides or kernel)]
        dilations = [int(d) for d in (dilations or (1, 1))]
        pads = [int(p) for p in pads]
        if len(kernel) != 2 or len(strides) != 2 or len(dilations) != 2 or len(pads) != 4:
            raise ShapeError("kernel, strides and dilations need 2 values, pads 4")
        if min(kernel + strides + dilations) < 1 or min(pads) < 0:
            raise ShapeError(f"kernel/strides/dilations must be >= 1 and pads >= 0, got {kernel}, {strides}, "
                             f"{dilations}, {pads}")
        s = self._shape = ffi.new("qc_conv2d_shape *")
        s.kernel_height, s.kernel_width = kernel
        s.stride_height, s.stride_width = strides
        s.dilation_height, s.dilation_width = dilations
        s.pad_top, s.pad_left, s.pad_bottom, s.pad_right = pads
        self._sizes = ffi.new("size_t[2]")
        self._options = make_options(isa, None)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Pool ``x`` (int8 / uint8, 4-D in ``layout``); same dtype and layout out."""
        if x.dtype not in (np.int8, np.uint8):
            raise DTypeError(f"x must be int8 or uint8, got {x.dtype}")
        if x.ndim != 4:
            raise ShapeError(f"x must be 4-D, got shape {x.shape}")
        n, c, h, w = x.shape if self.layout == "NCHW" else (x.shape[0], x.shape[3], x.shape[1], x.shape[2])
        s = self._shape
        s.batch, s.channels, s.height, s.width = n, c, h, w
        check(lib.qc_conv2d_output_size(s, self._sizes, self._sizes + 1), "max_pool2d")
        oh, ow = self._sizes[0], self._sizes[1]
        y = np.empty((n, c, oh, ow) if self.layout == "NCHW" else (n, oh, ow, c), dtype=x.dtype)
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        check(lib.qc_maxpool2d_x8(s, _DTYPE[x.dtype], self._layout, ffi.from_buffer(x) if x.size else ffi.NULL,
                                  ffi.from_buffer(y) if y.size else ffi.NULL, self._options), "max_pool2d")
        return y


def max_pool2d(x: np.ndarray, kernel: Sequence[int], *, strides: Sequence[int] | None = None,
               dilations: Sequence[int] | None = None, pads: Sequence[int] = (0, 0, 0, 0), layout: str = "NCHW",
               isa: str | None = None) -> np.ndarray:
    """2-D max pooling of int8 / uint8 values on the C core (:class:`MaxPool2d` for one call).

    Parameters
    ----------
    x : numpy.ndarray
        int8 or uint8, 4-D in ``layout``.
    kernel, strides, dilations : sequence of 2 int
    pads : sequence of 4 int
        ``[top, left, bottom, right]`` (ceil_mode: add the overhang to bottom / right).
    layout : {"NCHW", "NHWC"}

    Returns
    -------
    numpy.ndarray
        Same dtype and layout.

    Raises
    ------
    DTypeError, ShapeError
        Not int8/uint8, not 4-D, bad attributes, a window larger than the padded input.

    Notes
    -----
    ``y = max`` over the taps inside the input; padding never wins (a window without any
    tap inside gives the type's minimum). Max commutes with a monotonic quantization, so
    this equals quantizing the float max pool.
    """
    x = np.asarray(x)
    return MaxPool2d(kernel, strides=strides, dilations=dilations, pads=pads, layout=layout, isa=isa)(x)


# ---------------------------------------------------------------- ONNX operators


def _to_2d(x: np.ndarray, w: np.ndarray, kernel, strides, dilations, begin, end):
    """1-D operands and attributes as 2-D ones of height 1."""
    if x.ndim == 3:
        return (x[:, :, None, :], w[:, :, None, :], [1, strides[0]], [1, dilations[0]],
                [0, begin[0], 0, end[0]])
    return x, w, strides, dilations, [begin[0], begin[1], end[0], end[1]]


def _run_conv(x, w, x_zero_point, w_zero_point, group, kernel, strides, dilations, begin, end, isa, num_threads,
              **output) -> np.ndarray:
    squeeze = x.ndim == 3
    x4, w4, strides2, dilations2, pads4 = _to_2d(x, w, kernel, strides, dilations, begin, end)
    weights = ConvWeights(w4, w_zero_point, group=group)
    conv = Conv2d(weights, x_dtype=str(x.dtype), x_zero_point=x_zero_point, strides=strides2,
                  dilations=dilations2, pads=pads4, isa=isa, num_threads=num_threads, **output)
    y = conv(np.ascontiguousarray(x4))
    return y[:, :, 0, :] if squeeze else y


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
    isa: str | None = None,
    num_threads: int | None = None,
) -> np.ndarray:
    """ONNX ConvInteger on the C core; arguments and result as :func:`qcore.reference.conv_integer`.

    Parameters
    ----------
    x, w, x_zero_point, w_zero_point, auto_pad, dilations, group, kernel_shape, pads, strides
        As in :func:`qcore.reference.conv_integer` (same validation, same exceptions).
    isa, num_threads
        As in :func:`qcore.ops.matmul_integer`.

    Returns
    -------
    numpy.ndarray
        int32 ``[N, M, O1, ...]``, bit-identical with the reference.

    Raises
    ------
    DTypeError, ShapeError, QuantParamError
        As the reference.

    Notes
    -----
    ``y[n, m, o] = sum_{c, k} (x_pad[n, g*C/group + c, o*s + k*d] - x_zp) * (w[m, c, k] - w_zp[m])``,
    exact and wrapped to int32; 1-D and 2-D in C (im2col + packed GEMM), higher ranks by the
    reference.
    """
    xa = _ref._operand(x, "x")
    wa = _ref._operand(w, "w")
    if xa.ndim > 4:
        return _ref.conv_integer(x, w, x_zero_point, w_zero_point, auto_pad=auto_pad, dilations=dilations,
                                 group=group, kernel_shape=kernel_shape, pads=pads, strides=strides)
    kernel, strides_, dilations_, begin, end, _ = _ref._geometry(xa.shape, wa.shape, auto_pad, dilations, group,
                                                                  kernel_shape, pads, strides)
    zp = 0
    if x_zero_point is not None:
        zpv = _ref_matmul._zero_point_values(x_zero_point, xa.dtype, "x_zero_point")
        if zpv.shape not in _ref._PER_TENSOR:
            raise ShapeError(f"x_zero_point must be per-tensor (a scalar), got shape {zpv.shape}")
        zp = int(zpv.reshape(()))
    wzp = None
    if w_zero_point is not None:
        wzp = _ref._per_channel(_ref_matmul._zero_point_values(w_zero_point, wa.dtype, "w_zero_point"), wa.shape,
                                "w_zero_point").reshape(-1).astype(wa.dtype)
    return _run_conv(xa, wa, zp, wzp, group, kernel, strides_, dilations_, begin, end, isa, num_threads,
                     output="int32")


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
    isa: str | None = None,
    num_threads: int | None = None,
) -> np.ndarray:
    """ONNX QLinearConv on the C core; arguments and result as :func:`qcore.reference.qlinear_conv`.

    Parameters
    ----------
    x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B
        As in :func:`qcore.reference.qlinear_conv`.
    auto_pad, dilations, group, kernel_shape, pads, strides
        As in :func:`qcore.reference.conv_integer`.
    isa, num_threads
        As in :func:`qcore.ops.matmul_integer`.

    Returns
    -------
    numpy.ndarray
        int8 or uint8 ``[N, M, O1, ...]``, bit-identical with the reference.

    Raises
    ------
    DTypeError, ShapeError, QuantParamError
        As the reference.

    Notes
    -----
    ``acc = wrap_int32(conv_integer(x, w, x_zp, w_zp) + B[m])``,
    ``multiplier[m] = float32(float32(x_scale) * float32(w_scale[m])) / float32(y_scale)``,
    ``y = saturate(round_half_even(float32(acc) * multiplier[m]) + y_zp)``, the requantization
    fused into the convolution's output stage (``qc__requant_float``).
    """
    xa = _ref._operand(x, "x")
    wa = _ref._operand(w, "w")
    if xa.ndim > 4:
        return _ref.qlinear_conv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B,
                                 auto_pad=auto_pad, dilations=dilations, group=group, kernel_shape=kernel_shape,
                                 pads=pads, strides=strides)
    # The reference's own parameter validation, on an empty batch (cheap), then C.
    empty = np.zeros((0,) + xa.shape[1:], dtype=xa.dtype)
    y_empty = _ref.qlinear_conv(empty, x_scale, x_zero_point, wa, w_scale, w_zero_point, y_scale, y_zero_point, B,
                                auto_pad=auto_pad, dilations=dilations, group=group, kernel_shape=kernel_shape,
                                pads=pads, strides=strides)
    kernel, strides_, dilations_, begin, end, _ = _ref._geometry(xa.shape, wa.shape, auto_pad, dilations, group,
                                                                  kernel_shape, pads, strides)
    oc = wa.shape[0]
    x_scale_v = as_scale(x_scale, "x_scale").astype(np.float32).reshape(())
    w_scale_v = as_scale(w_scale, "w_scale").astype(np.float32).reshape(-1)
    y_scale_v = as_scale(y_scale, "y_scale").astype(np.float32).reshape(())
    multiplier = (x_scale_v * w_scale_v) / y_scale_v
    zp = 0 if x_zero_point is None else int(
        _ref_matmul._zero_point_values(x_zero_point, xa.dtype, "x_zero_point").reshape(()))
    wzp = None
    if w_zero_point is not None:
        wzp = _ref._per_channel(_ref_matmul._zero_point_values(w_zero_point, wa.dtype, "w_zero_point"), wa.shape,
                                "w_zero_point").reshape(-1).astype(wa.dtype)
    out_dtype = y_empty.dtype
    y_zp = 0 if y_zero_point is None else int(
        _ref_matmul._zero_point_values(y_zero_point, out_dtype, "y_zero_point").reshape(()))
    bias = None if B is None else np.asarray(B, dtype=np.int32).reshape(oc)
    if multiplier.size == 1:
        multiplier = multiplier.reshape(1)
    if not np.isfinite(multiplier).all():
        raise QuantParamError("x_scale * w_scale / y_scale is not finite")
    return _run_conv(xa, wa, zp, wzp, group, kernel, strides_, dilations_, begin, end, isa, num_threads,
                     output="requant", multiplier=multiplier, bias=bias, output_zero_point=y_zp,
                     output_dtype=str(out_dtype))
