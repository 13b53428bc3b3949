"""Integer matrix multiplication on the C core (private; :mod:`qcore.ops` re-exports it).

``matmul_integer`` and ``qlinear_matmul`` take exactly the arguments of
:mod:`qcore.reference` (plus keyword-only ``isa`` / ``num_threads``) and return bit-identical
results; validation is the reference's own, so the same bad input raises the same
exception. ``PackedWeights`` packs a weight matrix once for the runtime's repeated products
(``matmul_integer_packed``, ``qlinear_matmul_packed``, ``linear_packed``), and
``Int4Weights`` / ``linear_int4`` are the weight-only int4 linear layer.

Inputs are passed to C without copying when they are C-contiguous (``ffi.from_buffer``)
and copied otherwise; the GIL is released during every C call. The arithmetic is in
docs/KERNELS.md and docs/ARITHMETIC.md.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ._native import c_array, c_floats, check, copy_back, ffi, float_target, lib, make_options
from .errors import DTypeError, QuantParamError, ShapeError
from .reference import matmul as _ref
from .reference._params import as_scale
from .reference.packing import pack_int4

__all__ = [
    "Int4Weights",
    "PackedWeights",
    "linear_int4",
    "linear_packed",
    "matmul_integer",
    "matmul_integer_packed",
    "qlinear_matmul",
    "qlinear_matmul_packed",
]

_C_TYPE = {np.dtype(np.uint8): lib.QC_GEMM_U8, np.dtype(np.int8): lib.QC_GEMM_S8}


def _c_type(dtype: np.dtype) -> int:
    return _C_TYPE[np.dtype(dtype)]


def _bytes_ptr(arr: np.ndarray) -> Any:
    """Zero-copy pointer to a C-contiguous array (the caller keeps ``arr`` alive)."""
    return ffi.from_buffer(arr)


def _zero_point_arg(values: np.ndarray | None) -> tuple[Any, int, np.ndarray | None]:
    """(pointer, count, keep-alive) for an int32 zero-point vector (None or size 1 or per row/column)."""
    if values is None:
        return ffi.NULL, 0, None
    arr = c_array(np.asarray(values, dtype=np.int32).reshape(-1))
    return ffi.cast("int32_t *", ffi.from_buffer(arr)), arr.size, arr


def _requant_params(multiplier: np.ndarray, y_zero_point: int, out_dtype: np.dtype,
                    keep: list[Any]) -> Any:
    """A ``qc_gemm_requant_params`` for a 2-D float32 multiplier of shape (1 or M, 1 or N)."""
    mult = c_floats(multiplier)
    rows, cols = mult.shape
    info = np.iinfo(out_dtype)
    params = ffi.new("qc_gemm_requant_params *")
    params.bias = ffi.NULL
    params.multiplier = ffi.cast("float *", ffi.from_buffer(mult))
    params.multiplier_row_stride = cols if rows > 1 else 0
    params.multiplier_col_stride = 1 if cols > 1 else 0
    params.output_zero_point = y_zero_point
    params.output_type = _c_type(out_dtype)
    params.clamp_min = int(info.min)
    params.clamp_max = int(info.max)
    keep.extend((mult, params))
    return params


# ------------------------------------------------------------------------ plain GEMM


def _gemm_2d(a2: np.ndarray, b2: np.ndarray, za: np.ndarray | None, zb: np.ndarray | None, out: np.ndarray,
             options: Any, multiplier: np.ndarray | None = None, y_zero_point: int = 0) -> None:
    """One product of 2-D operands into the C-contiguous ``out``.

    ``za`` / ``zb`` are None, 1-element or per-row / per-column vectors; with a 2-D
    ``multiplier`` the output is requantized to ``out.dtype``, else it is int32.
    """
    m, k = a2.shape
    n = b2.shape[1]
    a2 = c_array(a2)
    b2 = c_array(b2)
    a_ptr = _bytes_ptr(a2) if a2.size else ffi.NULL
    b_ptr = _bytes_ptr(b2) if b2.size else ffi.NULL
    za_ptr, za_count, _za_keep = _zero_point_arg(za)
    zb_ptr, zb_count, _zb_keep = _zero_point_arg(zb)
    out_ptr = _bytes_ptr(out) if out.size else ffi.NULL
    if multiplier is None:
        status = lib.qc_gemm_s32(m, n, k, _c_type(a2.dtype), a_ptr, k, za_ptr, za_count, _c_type(b2.dtype),
                                 lib.QC_GEMM_B_KN, b_ptr, n, zb_ptr, zb_count,
                                 ffi.cast("int32_t *", out_ptr), n, options)
        check(status, "matmul_integer")
    else:
        keep: list[Any] = []
        params = _requant_params(multiplier, y_zero_point, out.dtype, keep)
        status = lib.qc_gemm_requant(m, n, k, _c_type(a2.dtype), a_ptr, k, za_ptr, za_count, _c_type(b2.dtype),
                                     lib.QC_GEMM_B_KN, b_ptr, n, zb_ptr, zb_count, params, out_ptr, n, options)
        check(status, "qlinear_matmul")


def _prepare(a: object, b: object, a_zero_point: object, b_zero_point: object):
    """The reference's validation and promotion; returns the pieces the C calls need."""
    a = _ref._operand(a, "a")
    b = _ref._operand(b, "b")
    _ref._matmul_shapes(a, b)
    pa, pb, squeeze = _ref._promote(a, b)
    za = zb = None
    if a_zero_point is not None:
        za = _ref._row_param(_ref._zero_point_values(a_zero_point, a.dtype, "a_zero_point"), pa.shape,
                             "a_zero_point")
    if b_zero_point is not None:
        zb = _ref._column_param(_ref._zero_point_values(b_zero_point, b.dtype, "b_zero_point"), pb.shape,
                                "b_zero_point")
    return pa, pb, squeeze, za, zb


def _pick(param: np.ndarray | None, batch: tuple[int, ...], index: tuple[int, ...]) -> np.ndarray | None:
    """The 2-D slice of a broadcast parameter (0-d or ``[..., r, c]``) for one batch index."""
    if param is None:
        return None
    if param.ndim == 0:
        return param.reshape(1, 1)
    return np.broadcast_to(param, batch + param.shape[-2:])[index]


def _run(pa: np.ndarray, pb: np.ndarray, za: np.ndarray | None, zb: np.ndarray | None, out_dtype: np.dtype,
         options: Any, multiplier: np.ndarray | None = None, y_zero_point: int = 0) -> np.ndarray:
    """numpy.matmul's batch broadcasting over the 2-D C products.

    When B has no batch dimensions and the A-side parameters none either (the common
    activations-times-weights case), all batches go to C as one tall matrix, so one call
    (and its threads) covers everything.
    """
    batch = tuple(np.broadcast_shapes(pa.shape[:-2], pb.shape[:-2]))
    m, k = pa.shape[-2:]
    n = pb.shape[-1]
    out = np.empty(batch + (m, n), dtype=out_dtype)
    count = int(np.prod(batch, dtype=np.int64))
    if count == 0:
        return out
    flat = pb.ndim == 2 and (za is None or za.ndim <= 2) and (multiplier is None or multiplier.ndim <= 2)
    if flat:
        rows = pa.reshape(count * m, k)
        za_rows = None
        if za is not None:
            za_rows = za.reshape(1) if za.ndim == 0 else np.tile(za.reshape(m), count)
        zb_cols = None if zb is None else zb.reshape(-1)
        mult = None
        if multiplier is not None:
            mult = multiplier.reshape(1, 1) if multiplier.ndim == 0 else multiplier
            if mult.shape[0] > 1:
                mult = np.tile(mult, (count, 1))
        _gemm_2d(rows, pb, za_rows, zb_cols, out.reshape(count * m, n), options, mult, y_zero_point)
        return out
    a_full = np.broadcast_to(pa, batch + (m, k))
    b_full = np.broadcast_to(pb, batch + pb.shape[-2:])
    for index in np.ndindex(*batch):
        za_i = _pick(za, batch, index)
        zb_i = _pick(zb, batch, index)
        _gemm_2d(a_full[index], b_full[index], None if za_i is None else za_i.reshape(-1),
                 None if zb_i is None else zb_i.reshape(-1), out[index], options,
                 _pick(multiplier, batch, index), y_zero_point)
    return out


def matmul_integer(
    a: np.ndarray,
    b: np.ndarray,
    a_zero_point: np.ndarray | int | None = None,
    b_zero_point: np.ndarray | int | None = None,
    *,
    isa: str | None = None,
    num_threads: int | None = None,
) -> np.ndarray:
    """ONNX MatMulInteger on the C core: ``(a - a_zero_point) @ (b - b_zero_point)`` as int32.

    Parameters
    ----------
    a : numpy.ndarray
        int8 or uint8, shape ``[..., M, K]`` (or ``[K]``).
    b : numpy.ndarray
        int8 or uint8, shape ``[..., K, N]`` (or ``[K]``).
    a_zero_point : numpy.ndarray or int, optional
        Same dtype as ``a``; per-tensor or per-row (``(M,)`` or ``[..., M, 1]``). Default 0.
    b_zero_point : numpy.ndarray or int, optional
        Same dtype as ``b``; per-tensor or per-column (``(N,)`` or ``[..., 1, N]``). Default 0.
    isa : str, optional
        Instruction-set path (``qcore._native.available_isas()``); default ``QCORE_ISA`` or
        the best available.
    num_threads : int, optional
        Worker threads (1..256); default ``QCORE_NUM_THREADS`` or 1.

    Returns
    -------
    numpy.ndarray
        int32, the shape :func:`numpy.matmul` gives; bit-identical to
        :func:`qcore.reference.matmul_integer`.

    Raises
    ------
    DTypeError
        An operand not int8/uint8, or a zero point of another dtype than its operand.
    ShapeError
        Scalar operand, mismatched inner or batch dimensions, bad zero-point shape.
    QuantParamError
        A Python-int zero point outside the operand's range, or a bad ``num_threads``.
    UnsupportedISAError
        ``isa`` is unknown or not available here.

    Notes
    -----
    ``C = sum_k (A - za)(B - zb)`` exactly, wrapped to int32 (modulo 2**32) like the
    reference; computed as ``sum A'B' - zb' rowsum(A') - za' colsum(B') + K za' zb'`` in
    wrapping int32 arithmetic (docs/KERNELS.md).
    """
    options = make_options(isa, num_threads)
    pa, pb, squeeze, za, zb = _prepare(a, b, a_zero_point, b_zero_point)
    out = _run(pa, pb, za, zb, np.dtype(np.int32), options)
    return out.reshape(_ref._squeezed_shape(pa, pb, squeeze))


def qlinear_matmul(
    a: np.ndarray,
    a_scale: np.ndarray | float,
    a_zero_point: np.ndarray | int | None,
    b: np.ndarray,
    b_scale: np.ndarray | float,
    b_zero_point: np.ndarray | int | None,
    y_scale: np.ndarray | float,
    y_zero_point: np.ndarray | int | None,
    *,
    isa: str | None = None,
    num_threads: int | None = None,
) -> np.ndarray:
    """ONNX QLinearMatMul on the C core (integer GEMM with the fused float requantization).

    Parameters
    ----------
    a, b : numpy.ndarray
        int8 or uint8 operands, as in :func:`matmul_integer`.
    a_scale, a_zero_point : numpy.ndarray
        Per-tensor or per-row, same shape; scale float32/float16, finite and > 0.
    b_scale, b_zero_point : numpy.ndarray
        Per-tensor or per-column, same shape.
    y_scale, y_zero_point : numpy.ndarray
        Per-tensor; the zero point's dtype is the output type (None: 0 of ``a``'s dtype).
    isa, num_threads
        As in :func:`matmul_integer`.

    Returns
    -------
    numpy.ndarray
        int8 or uint8, bit-identical to :func:`qcore.reference.qlinear_matmul`.

    Raises
    ------
    DTypeError, ShapeError, QuantParamError, UnsupportedISAError
        As :func:`qcore.reference.qlinear_matmul` and :func:`matmul_integer`.

    Notes
    -----
    ::

        acc = matmul_integer(a, b, a_zero_point, b_zero_point)        # int32, wraps
        multiplier = float32(float32(a_scale) * float32(b_scale)) / float32(y_scale)
        y = saturate(round_half_even(float32(acc) * multiplier) + y_zero_point)

    The multiplier is computed here with NumPy exactly as the reference does; C applies
    ``qc__requant_float`` tile by tile (no int32 matrix is materialised).
    """
    options = make_options(isa, num_threads)
    a_arr = _ref._operand(a, "a")
    b_arr = _ref._operand(b, "b")
    _ref._matmul_shapes(a_arr, b_arr)
    out_dtype = a_arr.dtype
    if y_zero_point is not None:
        out_dtype = np.asarray(y_zero_point).dtype
        if out_dtype not in _ref._OPERAND_DTYPES:
            raise DTypeError(f"y_zero_point must be int8 or uint8, got {out_dtype}")
    a_scale_v, b_scale_v, y_scale_v = (as_scale(s, n) for s, n in
                                       ((a_scale, "a_scale"), (b_scale, "b_scale"), (y_scale, "y_scale")))
    _ref._same_shape(a_scale_v, a_zero_point, "a")
    _ref._same_shape(b_scale_v, b_zero_point, "b")
    _ref._same_shape(y_scale_v, y_zero_point, "y")
    if y_scale_v.shape not in _ref._PER_TENSOR:
        raise ShapeError(f"y_scale must be per-tensor (a scalar), got shape {y_scale_v.shape}")
    pa, pb, squeeze, za, zb = _prepare(a_arr, b_arr, a_zero_point, b_zero_point)
    a_scale_b = _ref._row_param(a_scale_v.astype(np.float32), pa.shape, "a_scale")
    b_scale_b = _ref._column_param(b_scale_v.astype(np.float32), pb.shape, "b_scale")
    multiplier = (a_scale_b * b_scale_b) / y_scale_v.astype(np.float32).reshape(())
    if not (np.isfinite(multiplier).all() and (multiplier > 0).all()):
        raise QuantParamError("a_scale * b_scale / y_scale must be finite and > 0 in float32")
    y_zp = 0 if y_zero_point is None else int(
        _ref._zero_point_values(y_zero_point, out_dtype, "y_zero_point").reshape(()))
    out = _run(pa, pb, za, zb, np.dtype(out_dtype), options, multiplier, y_zp)
    return out.reshape(_ref._squeezed_shape(pa, pb, squeeze))


# ------------------------------------------------------------------ pre-packed weights


class PackedWeights:
    """A K x N int8/uint8 weight matrix and its zero point, packed once for the C kernels.

    Parameters
    ----------
    b : numpy.ndarray
        int8 or uint8, shape ``(K, N)`` (or ``(N, K)`` with ``transposed=True``, the layout
        of a Linear layer's weight).
    b_zero_point : numpy.ndarray or int, optional
        Same dtype as ``b`` (or a Python int in its range); per-tensor or per-column ``(N,)``.
    transposed : bool
        ``b`` is given as ``(N, K)``.
    isa : str, optional
        Only validated: the packed layout is the same for every ISA.

    Raises
    ------
    DTypeError, ShapeError, QuantParamError
        Bad dtype, a ``b`` that is not 2-D, a zero point of the wrong dtype, shape or range.

    Notes
    -----
    The buffer holds the column sums of ``B - 128`` (unsigned) or ``B`` (signed) and the
    zero points, so the zero-point correction costs nothing per call (docs/KERNELS.md).
    """

    def __init__(self, b: np.ndarray, b_zero_point: np.ndarray | int | None = None, *, transposed: bool = False,
                 isa: str | None = None) -> None:
        b = _ref._operand(b, "b")
        if b.ndim != 2:
            raise ShapeError(f"packed weights must be 2-D, got shape {b.shape}")
        k, n = (b.shape[1], b.shape[0]) if transposed else b.shape
        zb = None
        if b_zero_point is not None:
            zb = _ref._zero_point_values(b_zero_point, b.dtype, "b_zero_point")
            if zb.shape not in _ref._PER_TENSOR and zb.shape != (n,):
                raise ShapeError(f"b_zero_point has shape {zb.shape}; it must be per-tensor or per-column ({n},)")
        options = make_options(isa, None)
        size = ffi.new("size_t *")
        check(lib.qc_gemm_packed_size(k, n, size), "PackedWeights")
        # 64 spare bytes so the packed data can start on a 64-byte boundary.
        storage = np.empty(size[0] + 64, dtype=np.uint8)
        offset = (-storage.ctypes.data) % 64
        self._buffer = storage[offset:offset + size[0]]
        b_c = c_array(b)
        zb_ptr, zb_count, _keep = _zero_point_arg(zb)
        status = lib.qc_gemm_pack_b(k, n, _c_type(b.dtype), lib.QC_GEMM_B_NK if transposed else lib.QC_GEMM_B_KN,
                                    _bytes_ptr(b_c) if b_c.size else ffi.NULL, b_c.shape[1], zb_ptr, zb_count,
                                    _bytes_ptr(self._buffer), size[0], options)
        check(status, "PackedWeights")
        self.k = int(k)
        self.n = int(n)
        self.dtype = b.dtype
        self.zero_point = None if zb is None else zb.astype(b.dtype)

    @property
    def nbytes(self) -> int:
        """Size of the packed buffer in bytes."""
        return int(self._buffer.nbytes)

    def __repr__(self) -> str:
        return f"PackedWeights(k={self.k}, n={self.n}, dtype={self.dtype}, nbytes={self.nbytes})"

    def _ptr(self) -> Any:
        return _bytes_ptr(self._buffer)


def _packed_rows(a: object, packed: PackedWeights, a_zero_point: object) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate ``a`` (``[..., K]``) against a packed matrix; returns 2-D rows and the zero points."""
    if not isinstance(packed, PackedWeights):
        raise DTypeError(f"packed must be a PackedWeights, got {type(packed).__name__}")
    a = _ref._operand(a, "a")
    if a.shape[-1] != packed.k:
        raise ShapeError(f"a has {a.shape[-1]} columns but the packed weights have K = {packed.k}")
    rows = c_array(a).reshape(-1, packed.k)
    za = None
    if a_zero_point is not None:
        za = _ref._zero_point_values(a_zero_point, a.dtype, "a_zero_point")
        if za.shape not in _ref._PER_TENSOR:
            if a.ndim < 2 or za.shape != (a.shape[-2],):
                raise ShapeError(f"a_zero_point has shape {za.shape}; it must be per-tensor or per-row "
                                 f"({a.shape[-2] if a.ndim >= 2 else 1},)")
            za = np.broadcast_to(za, a.shape[:-1]).reshape(-1)
    return rows, za


def matmul_integer_packed(a: np.ndarray, a_zero_point: np.ndarray | int | None, packed: PackedWeights, *,
                          isa: str | None = None, num_threads: int | None = None) -> np.ndarray:
    """``matmul_integer(a, B, a_zero_point, b_zero_point)`` with B and its zero point pre-packed.

    Parameters
    ----------
    a : numpy.ndarray
        int8 or uint8, shape ``[..., K]`` (all leading dimensions are rows).
    a_zero_point : numpy.ndarray or int or None
        Same dtype as ``a``; per-tensor, or per-row ``(M,)`` with ``M = a.shape[-2]``.
    packed : PackedWeights
        The weight matrix.
    isa, num_threads
        As in :func:`matmul_integer`.

    Returns
    -------
    numpy.ndarray
        int32, shape ``a.shape[:-1] + (N,)``.

    Raises
    ------
    DTypeError, ShapeError, QuantParamError, UnsupportedISAError
        Bad operand, zero point or options.

    Notes
    -----
    Bit-identical to ``matmul_integer(a, b, a_zero_point, b_zero_point)`` on the unpacked B.
    """
    options = make_options(isa, num_threads)
    rows, za = _packed_rows(a, packed, a_zero_point)
    out = np.empty((rows.shape[0], packed.n), dtype=np.int32)
    za_ptr, za_count, _keep = _zero_point_arg(za)
    status = lib.qc_gemm_packed_s32(rows.shape[0], _c_type(rows.dtype), _bytes_ptr(rows) if rows.size else ffi.NULL,
                                    packed.k, za_ptr, za_count, packed._ptr(),
                                    ffi.cast("int32_t *", _bytes_ptr(out)) if out.size else ffi.NULL, packed.n,
                                    options)
    check(status, "matmul_integer_packed")
    return out.reshape(np.shape(a)[:-1] + (packed.n,))


def linear_packed(a: np.ndarray, a_zero_point: np.ndarray | int | None, packed: PackedWeights,
                  multiplier: np.ndarray | float, y_zero_point: np.ndarray | int, *, bias: np.ndarray | None = None,
                  clamp: tuple[int, int] | None = None, output_dtype: str | np.dtype | None = None,
                  isa: str | None = None, num_threads: int | None = None) -> np.ndarray:
    """A quantized linear layer: integer GEMM, int32 bias, float requantization, clamp.

    Parameters
    ----------
    a : numpy.ndarray
        int8 or uint8 activations, shape ``[..., K]``.
    a_zero_point : numpy.ndarray or int or None
        As in :func:`matmul_integer_packed`.
    packed : PackedWeights
        Weights (K x N) with their zero point.
    multiplier : numpy.ndarray or float
        float32 ``input_scale * weight_scale / output_scale``: a scalar or one per output
        column ``(N,)``; finite and > 0.
    y_zero_point : numpy.ndarray or int
        Output zero point; an int8/uint8 scalar fixes the output type, a Python int needs
        ``output_dtype``.
    bias : numpy.ndarray, optional
        int32 ``(N,)``, added to the accumulator (wrapping) before requantization.
    clamp : tuple of int, optional
        ``(lo, hi)`` within the output type's range (fused ReLU / ReLU6 / min-max);
        default the whole range.
    output_dtype : str or numpy.dtype, optional
        ``"int8"`` or ``"uint8"``; must agree with ``y_zero_point``'s dtype if both are given.
    isa, num_threads
        As in :func:`matmul_integer`.

    Returns
    -------
    numpy.ndarray
        int8 or uint8, shape ``a.shape[:-1] + (N,)``.

    Raises
    ------
    DTypeError, ShapeError, QuantParamError, UnsupportedISAError
        Bad operands, parameters or options.

    Notes
    -----
    ``y = clamp(round_half_even(float32(acc + bias) * multiplier) + y_zero_point, lo, hi)``
    with ``acc = (a - a_zero_point) @ (B - b_zero_point)`` in wrapping int32 and float32
    arithmetic without FMA (``qc__requant_float``).
    """
    options = make_options(isa, num_threads)
    rows, za = _packed_rows(a, packed, a_zero_point)
    out_dtype = _output_dtype(y_zero_point, output_dtype)
    y_zp = int(_ref._zero_point_values(y_zero_point, out_dtype, "y_zero_point").reshape(()))
    mult = np.asarray(multiplier)
    if isinstance(multiplier, numbers.Real) and not isinstance(multiplier, (bool, np.generic)):
        mult = np.asarray(multiplier, dtype=np.float32)
    if mult.dtype != np.float32:
        raise DTypeError(f"multiplier must be float32, got {mult.dtype}")
    if mult.shape not in _ref._PER_TENSOR and mult.shape != (packed.n,):
        raise ShapeError(f"multiplier has shape {mult.shape}; it must be a scalar or ({packed.n},)")
    if not (np.isfinite(mult).all() and (mult > 0).all()):
        raise QuantParamError("multiplier must be finite and > 0")
    mult = c_floats(mult.reshape(-1))
    info = np.iinfo(out_dtype)
    lo, hi = (int(info.min), int(info.max)) if clamp is None else (int(clamp[0]), int(clamp[1]))
    if not info.min <= lo <= hi <= info.max:
        raise QuantParamError(f"clamp {clamp} must satisfy {info.min} <= lo <= hi <= {info.max}")
    bias_arr = None
    if bias is not None:
        bias_arr = np.asarray(bias)
        if bias_arr.dtype != np.int32:
            raise DTypeError(f"bias must be int32, got {bias_arr.dtype}")
        if bias_arr.shape != (packed.n,):
            raise ShapeError(f"bias has shape {bias_arr.shape}, expected ({packed.n},)")
        bias_arr = c_array(bias_arr)
    params = ffi.new("qc_gemm_requant_params *")
    params.bias = ffi.cast("int32_t *", ffi.from_buffer(bias_arr)) if bias_arr is not None else ffi.NULL
    params.multiplier = ffi.cast("float *", ffi.from_buffer(mult))
    params.multiplier_row_stride = 0
    params.multiplier_col_stride = 1 if mult.size > 1 else 0
    params.output_zero_point = y_zp
    params.output_type = _c_type(out_dtype)
    params.clamp_min = lo
    params.clamp_max = hi
    out = np.empty((rows.shape[0], packed.n), dtype=out_dtype)
    za_ptr, za_count, _keep = _zero_point_arg(za)
    status = lib.qc_gemm_packed_requant(rows.shape[0], _c_type(rows.dtype),
                                        _bytes_ptr(rows) if rows.size else ffi.NULL, packed.k, za_ptr, za_count,
                                        packed._ptr(), params, _bytes_ptr(out) if out.size else ffi.NULL, packed.n,
                                        options)
    check(status, "linear_packed")
    return out.reshape(np.shape(a)[:-1] + (packed.n,))


def _output_dtype(y_zero_point: object, output_dtype: object) -> np.dtype:
    zp_dtype = None
    if isinstance(y_zero_point, (np.ndarray, np.generic)):
        zp_dtype = np.asarray(y_zero_point).dtype
    requested = None
    if output_dtype is not None:
        try:
            requested = np.dtype(output_dtype)
        except TypeError:
            raise DTypeError(f"output_dtype must be int8 or uint8, got {output_dtype!r}") from None
    dtype = requested if requested is not None else zp_dtype
    if dtype is None:
        raise DTypeError("give y_zero_point as an int8/uint8 scalar or name output_dtype")
    if dtype not in _ref._OPERAND_DTYPES:
        raise DTypeError(f"the output type must be int8 or uint8, got {dtype}")
    if zp_dtype is not None and zp_dtype != dtype:
        raise DTypeError(f"y_zero_point dtype {zp_dtype} differs from output_dtype {dtype}")
    return dtype


def qlinear_matmul_packed(a: np.ndarray, a_scale: np.ndarray | float, a_zero_point: np.ndarray | int | None,
                          packed: PackedWeights, b_scale: np.ndarray | float, y_scale: np.ndarray | float,
                          y_zero_point: np.ndarray | int | None, *, isa: str | None = None,
                          num_threads: int | None = None) -> np.ndarray:
    """``qlinear_matmul`` with B (and its zero point) pre-packed; per-tensor ``a`` parameters.

    Parameters
    ----------
    a : numpy.ndarray
        int8 or uint8, shape ``[..., K]``.
    a_scale, a_zero_point
        Per-tensor scale (float32/float16) and zero point of ``a``.
    packed : PackedWeights
        B with its zero point.
    b_scale : numpy.ndarray or float
        Per-tensor or per-column ``(N,)``.
    y_scale, y_zero_point
        Per-tensor output parameters; the zero point's dtype is the output type (None: 0 of
        ``a``'s dtype).
    isa, num_threads
        As in :func:`matmul_integer`.

    Returns
    -------
    numpy.ndarray
        int8 or uint8, shape ``a.shape[:-1] + (N,)``, bit-identical to
        :func:`qlinear_matmul` on the unpacked B.

    Raises
    ------
    DTypeError, ShapeError, QuantParamError, UnsupportedISAError
        As :func:`qlinear_matmul`.

    Notes
    -----
    ``multiplier = float32(float32(a_scale) * float32(b_scale)) / float32(y_scale)``, then
    :func:`linear_packed` without bias or clamp.
    """
    a_arr = _ref._operand(a, "a")
    a_scale_v, b_scale_v, y_scale_v = (as_scale(s, n) for s, n in
                                       ((a_scale, "a_scale"), (b_scale, "b_scale"), (y_scale, "y_scale")))
    _ref._same_shape(a_scale_v, a_zero_point, "a")
    _ref._same_shape(y_scale_v, y_zero_point, "y")
    for value, name in ((a_scale_v, "a_scale"), (y_scale_v, "y_scale")):
        if value.shape not in _ref._PER_TENSOR:
            raise ShapeError(f"{name} must be per-tensor here, got shape {value.shape}")
    if b_scale_v.shape not in _ref._PER_TENSOR and b_scale_v.shape != (packed.n,):
        raise ShapeError(f"b_scale has shape {b_scale_v.shape}; it must be per-tensor or ({packed.n},)")
    multiplier = (a_scale_v.astype(np.float32).reshape(()) * b_scale_v.astype(np.float32).reshape(-1)) / \
        y_scale_v.astype(np.float32).reshape(())
    if not (np.isfinite(multiplier).all() and (multiplier > 0).all()):
        raise QuantParamError("a_scale * b_scale / y_scale must be finite and > 0 in float32")
    out_dtype = a_arr.dtype if y_zero_point is None else np.asarray(y_zero_point).dtype
    y_zp = np.zeros((), out_dtype) if y_zero_point is None else y_zero_point
    if isinstance(y_zp, numbers.Integral) and not isinstance(y_zp, np.generic):
        y_zp = int(y_zp)
    return linear_packed(a_arr, a_zero_point, packed, multiplier.reshape(-1) if multiplier.size > 1 else
                         multiplier.reshape(()), y_zp, output_dtype=out_dtype, isa=isa, num_threads=num_threads)


# ----------------------------------------------------------------------- int4 weights


class Int4Weights:
    """A K x N int4/uint4 weight matrix with scales (and zero points) per block of K rows.

    Parameters
    ----------
    packed : numpy.ndarray
        uint8, ``ceil(K * N / 2)`` bytes: the K x N matrix, row-major, two values per byte in
        ONNX nibble order (:func:`qcore.reference.pack_int4` of the flattened matrix).
    shape : tuple of int
        ``(K, N)``.
    scale : numpy.ndarray
        float32 ``(ceil(K / block_size), N)``, finite and > 0.
    zero_point : numpy.ndarray, optional
        Same shape as ``scale``, one value per element: int8 in [-8, 7] for ``"int4"``,
        uint8 in [0, 15] for ``"uint4"``. Default 0.
    block_size : int
        Rows of K per scale (e.g. 32, 64 or 128).
    dtype : str
        ``"int4"`` or ``"uint4"``.

    Raises
    ------
    DTypeError, ShapeError, QuantParamError
        Wrong dtypes or shapes, bad scales or zero points, block_size < 1.

    Notes
    -----
    The dequantized weight is ONNX ``DequantizeLinear(w, scale, zero_point, axis=0,
    block_size)``: ``W[k, n] = float32(w[k, n] - zp[k // bs, n]) * scale[k // bs, n]``.
    """

    def __init__(self, packed: np.ndarray, shape: tuple[int, int], scale: np.ndarray,
                 zero_point: np.ndarray | None = None, *, block_size: int, dtype: str = "int4") -> None:
        if dtype not in ("int4", "uint4"):
            raise DTypeError(f"dtype must be 'int4' or 'uint4', got {dtype!r}")
        if not isinstance(block_size, numbers.Integral) or block_size < 1:
            raise QuantParamError(f"block_size must be an int >= 1, got {block_size!r}")
        k, n = (int(v) for v in shape)
        if k < 0 or n < 0:
            raise ShapeError(f"shape must be non-negative, got {shape}")
        packed = np.asarray(packed)
        if packed.dtype != np.uint8:
            raise DTypeError(f"packed int4 weights must be uint8, got {packed.dtype}")
        if packed.size != (k * n + 1) // 2:
            raise ShapeError(f"packed int4 weights of shape {shape} need {(k * n + 1) // 2} bytes, got {packed.size}")
        blocks = -(-k // block_size)
        scale = np.asarray(scale)
        if scale.dtype != np.float32:
            raise DTypeError(f"scale must be float32, got {scale.dtype}")
        if scale.shape != (blocks, n):
            raise ShapeError(f"scale has shape {scale.shape}, expected ({blocks}, {n})")
        if not (np.isfinite(scale).all() and (scale > 0).all()):
            raise QuantParamError("int4 weight scales must be finite and > 0")
        signed = dtype == "int4"
        if zero_point is not None:
            zero_point = np.asarray(zero_point)
            want = np.dtype(np.int8 if signed else np.uint8)
            if zero_point.dtype != want:
                raise DTypeError(f"zero_point of {dtype} weights must be {want}, got {zero_point.dtype}")
            if zero_point.shape != scale.shape:
                raise ShapeError(f"zero_point has shape {zero_point.shape}, expected {scale.shape}")
            lo, hi = (-8, 7) if signed else (0, 15)
            if zero_point.size and (zero_point.min() < lo or zero_point.max() > hi):
                raise QuantParamError(f"zero_point values must lie in [{lo}, {hi}]")
            zero_point = np.ascontiguousarray(zero_point)
        self.packed = np.ascontiguousarray(packed.reshape(-1))
        self.k, self.n = k, n
        self.scale = c_floats(scale)
        self.zero_point = zero_point
        self.block_size = int(block_size)
        self.dtype = dtype

    @classmethod
    def from_values(cls, values: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None = None, *,
                    block_size: int, dtype: str = "int4") -> "Int4Weights":
        """Pack a K x N matrix of int4 (int8 container) or uint4 (uint8 container) values.

        Raises
        ------
        DTypeError, ShapeError, QuantParamError
            As the constructor, or values outside the type's range.
        """
        values = np.asarray(values)
        if values.ndim != 2:
            raise ShapeError(f"int4 weights must be 2-D (K, N), got shape {values.shape}")
        packed = pack_int4(values.reshape(-1), signed=dtype == "int4")
        return cls(packed, values.shape, scale, zero_point, block_size=block_size, dtype=dtype)

    def dequantize(self, rows: tuple[int, int] | None = None, *, out: np.ndarray | None = None,
                   isa: str | None = None) -> np.ndarray:
        """The dequantized float32 weight, or a band of its rows, in one C call.

        Parameters
        ----------
        rows : tuple of int, optional
            ``(k0, k1)``: rows ``k0 <= k < k1`` of K (default: all).
        out : numpy.ndarray, optional
            Writeable C-contiguous float32 ``(k1 - k0, N)`` to fill.
        isa : str, optional
            Kernel ISA (default: the best available).

        Returns
        -------
        numpy.ndarray
            float32 ``(k1 - k0, N)``: ``float32(w - zp[k // bs]) * scale[k // bs]``, bit for
            bit the reference ``DequantizeLinear`` of the blocked weight.

        Raises
        ------
        DTypeError
            ``out`` not a float32 array.
        ShapeError
            ``rows`` not a pair of ints, outside ``[0, K]`` or decreasing, or ``out`` of the
            wrong shape or layout.
        UnsupportedISAError
            ``isa`` cannot run here.

        Notes
        -----
        An ``out`` whose start is not 4-byte aligned is filled through an aligned buffer.
        """
        if rows is None:
            k0, k1 = 0, self.k
        elif (isinstance(rows, (tuple, list)) and len(rows) == 2
              and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in rows)):
            k0, k1 = int(rows[0]), int(rows[1])
        else:
            raise ShapeError(f"rows must be a pair of ints (k0, k1), got {rows!r}")
        if not 0 <= k0 <= k1 <= self.k:
            raise ShapeError(f"rows must satisfy 0 <= k0 <= k1 <= {self.k}, got {rows}")
        options = make_options(isa, None)
        shape = (k1 - k0, self.n)
        if out is None:
            out = np.empty(shape, np.float32)
        elif not isinstance(out, np.ndarray) or out.dtype != np.float32:
            raise DTypeError(f"out must be a float32 array, got {getattr(out, 'dtype', type(out).__name__)}")
        elif out.shape != shape or not out.flags.c_contiguous or not out.flags.writeable:
            raise ShapeError(f"out must be a writeable C-contiguous float32 array of shape {shape}")
        if out.size:
            target = float_target(out)
            check(self._dequantize(k0, k1, ffi.cast("float *", ffi.from_buffer(target)), options), "int4 dequantize")
            copy_back(out, target)
        return out

    def _dequantize(self, k0: int, k1: int, y_ptr: Any, options: Any) -> int:
        """The C call of :meth:`dequantize` into ``y_ptr`` (rows of N floats); its status.
        The pointers are taken afresh from the current attributes on every call."""
        zp = self.zero_point
        return lib.qc_dequantize_w4_f32(
            self.k, self.n, lib.QC_GEMM_S4 if self.dtype == "int4" else lib.QC_GEMM_U4,
            ffi.cast("uint8_t *", ffi.from_buffer(self.packed)) if self.packed.size else ffi.NULL,
            ffi.cast("float *", ffi.from_buffer(self.scale)) if self.scale.size else ffi.NULL,
            ffi.from_buffer(zp) if zp is not None and zp.size else ffi.NULL,
            self.block_size, k0, k1, 0, self.n, y_ptr, self.n, options)

    def __repr__(self) -> str:
        return f"Int4Weights(k={self.k}, n={self.n}, dtype={self.dtype!r}, block_size={self.block_size})"


def linear_int4(a: np.ndarray, weights: Int4Weights, bias: np.ndarray | None = None, *, isa: str | None = None,
                num_threads: int | None = None) -> np.ndarray:
    """Weight-only int4 linear layer: float32 activations times dequantized int4 weights.

    Parameters
    ----------
    a : numpy.ndarray
        float32, shape ``[..., K]``. Not checked for NaN (it propagates).
    weights : Int4Weights
        The K x N weights with their block scales.
    bias : numpy.ndarray, optional
        float32 ``(N,)``, added last.
    isa, num_threads
        As in :func:`matmul_integer`.

    Returns
    -------
    numpy.ndarray
        float32, shape ``a.shape[:-1] + (N,)``.

    Raises
    ------
    DTypeError, ShapeError, UnsupportedISAError, QuantParamError
        Bad operand, bias or options.

    Notes
    -----
    ``y[m, n] = bias[n] + sum_k a[m, k] * W[k, n]`` with ``W`` as in :class:`Int4Weights`,
    summed in float32 in increasing ``k`` starting from 0.0, multiply then add (no FMA),
    bias added last: every ISA and thread count gives the same bits, and a NumPy loop over
    ``k`` reproduces them exactly. Weights are unpacked in registers.
    """
    options = make_options(isa, num_threads)
    if not isinstance(weights, Int4Weights):
        raise DTypeError(f"weights must be an Int4Weights, got {type(weights).__name__}")
    a = np.asarray(a)
    if a.dtype != np.float32:
        raise DTypeError(f"a must be float32, got {a.dtype}")
    if a.ndim == 0 or a.shape[-1] != weights.k:
        raise ShapeError(f"a of shape {a.shape} does not have K = {weights.k} columns")
    rows = c_array(a).reshape(-1, weights.k)
    bias_arr = None
    if bias is not None:
        bias_arr = np.asarray(bias)
        if bias_arr.dtype != np.float32:
            raise DTypeError(f"bias must be float32, got {bias_arr.dtype}")
        if bias_arr.shape != (weights.n,):
            raise ShapeError(f"bias has shape {bias_arr.shape}, expected ({weights.n},)")
        bias_arr = c_floats(bias_arr)
    out = np.empty((rows.shape[0], weights.n), dtype=np.float32)
    status = lib.qc_gemm_f32_w4(
        rows.shape[0], weights.n, weights.k,
        ffi.cast("float *", ffi.from_buffer(rows)) if rows.size else ffi.NULL, weights.k,
        lib.QC_GEMM_S4 if weights.dtype == "int4" else lib.QC_GEMM_U4,
        ffi.cast("uint8_t *", ffi.from_buffer(weights.packed)) if weights.packed.size else ffi.NULL,
        ffi.cast("float *", ffi.from_buffer(weights.scale)) if weights.scale.size else ffi.NULL,
        ffi.from_buffer(weights.zero_point) if weights.zero_point is not None and weights.zero_point.size
        else ffi.NULL,
        weights.block_size,
        ffi.cast("float *", ffi.from_buffer(bias_arr)) if bias_arr is not None else ffi.NULL,
        ffi.cast("float *", ffi.from_buffer(out)) if out.size else ffi.NULL, weights.n, options)
    check(status, "linear_int4")
    return out.reshape(a.shape[:-1] + (weights.n,))
