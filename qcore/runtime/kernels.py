"""The runtime's integer kernel interface: the one place the runtime touches integer math.

Every quantized operator of the runtime goes through these functions, so changing the
engine underneath is local to this module. Today: activation quantization on the C
element-wise kernels (``qcore._elementwise``), integer products on the C GEMM with weights
packed once (``qcore._gemm``), and a NumPy engine for convolutions with many small groups.
(``qcore.ops`` re-exports the same C functions.) The arithmetic is ONNX's
(docs/ARITHMETIC.md):

- quantize: ``q = saturate(round_half_even(x / scale) + zero_point)``; NaN is rejected;
- dynamic quantize (uint8): ``s = (max(0, max x) - min(0, min x)) / 255``,
  ``zp = round_half_even(clip(-min(0, min x) / s, 0, 255))``, per tensor or per row;
  an all-zero tensor or row gets ``s = 1`` and ``zp = 0`` (onnxruntime's choice, as the
  reference); per row, a range whose ``/ 255`` underflows also gets ``s = 1`` (the
  reference raises there, and so does the per-tensor C kernel);
- integer matmul: exact ``acc = sum_k (q[m,k] - zp_x) * (w[k,n] - zp_w[n])``;
- output: ``y = float32(acc) * float32(s_x * s_w[n]) + bias[n]`` in float32.

The integer products are exact whichever engine computes them; see :class:`PackedLinear`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import ModelError, NonFiniteError, ShapeError
from ..reference.tensor import QuantizedTensor

_RANGES = {"uint8": (0, 255), "int8": (-128, 127)}
#: Largest |sum| float32 represents exactly (every integer up to 2**24).
_F32_EXACT = 1 << 24


def quantize(x: np.ndarray, scale: float | np.ndarray, zero_point: int | np.ndarray, dtype: str) -> np.ndarray:
    """ONNX QuantizeLinear, per tensor or per row, on the C core.

    Parameters
    ----------
    x : numpy.ndarray
        float32 values (2-D ``(M, K)`` for per-row parameters).
    scale, zero_point
        Scalars, or per-row arrays of shape ``(M, 1)``.
    dtype : {"uint8", "int8"}

    Returns
    -------
    numpy.ndarray of ``dtype``

    Raises
    ------
    NonFiniteError
        ``x`` holds NaN (+-inf saturate).

    Notes
    -----
    ``q = clip(round_half_even(x / scale) + zero_point, qmin, qmax)``, a true division in
    float32 (:func:`qcore._elementwise.quantize_linear`, bit-exact with the reference).
    """
    from .. import _elementwise  # noqa: PLC0415

    x = np.asarray(x, dtype=np.float32)
    if np.ndim(scale) == 0 or np.size(scale) == 1:
        return _elementwise.quantize_linear(x, np.asarray(scale, np.float32).reshape(()),
                                            np.asarray(zero_point).astype(dtype).reshape(()))
    return _elementwise.quantize_linear(x, np.asarray(scale, np.float32).reshape(-1),
                                        np.asarray(zero_point).astype(dtype).reshape(-1), axis=0)


def dynamic_quantize(x: np.ndarray, per_row: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DynamicQuantizeLinear (uint8) of ``x`` (2-D when ``per_row``): ``(q, scale, zp)``.

    Per tensor this is :func:`qcore._elementwise.dynamic_quantize_linear`; per row, the
    same formulas applied to each row (:func:`dynamic_params`), then :func:`quantize`.
    """
    if not per_row:
        from .. import _elementwise  # noqa: PLC0415

        q, scale, zp = _elementwise.dynamic_quantize_linear(np.asarray(x, dtype=np.float32))
        return q, scale, zp.astype(np.float32)
    scale, zp = dynamic_params(x, True)
    return quantize(x, scale, zp, "uint8"), scale, zp


def dynamic_params(x: np.ndarray, per_row: bool) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point of DynamicQuantizeLinear (uint8), per tensor or per row.

    ``x`` is 2-D ``(M, K)`` when ``per_row``; the results then have shape ``(M, 1)``,
    otherwise they are 0-d. All arithmetic in float32.
    """
    if per_row:
        lo = np.minimum(x.min(axis=1, keepdims=True), np.float32(0))
        hi = np.maximum(x.max(axis=1, keepdims=True), np.float32(0))
    else:
        lo = np.minimum(np.float32(x.min()), np.float32(0))
        hi = np.maximum(np.float32(x.max()), np.float32(0))
    scale = ((hi - lo) / np.float32(255)).astype(np.float32)
    if not np.isfinite(scale).all():
        raise NonFiniteError("activation range is not finite (NaN or inf in the input)")
    scale = np.where(scale == 0, np.float32(1), scale).astype(np.float32)
    zp = np.clip(np.rint(-lo / scale), 0, 255).astype(np.float32)
    return scale, zp


def release_mapped_pages(array: np.ndarray) -> bool:
    """Advise the kernel to drop the resident pages of ``array`` when it views a read-only mmap.

    Used after weights were packed into their own buffer: the mapped originals are not
    read again by the runtime, and if anything does read them the pages fault back in
    from the page cache (the map is file-backed and read-only, so the values never
    change). Only whole pages inside the array are released. Returns whether advice was
    given (False for ordinary arrays, or where ``madvise`` is unavailable).
    """
    import mmap  # noqa: PLC0415

    base: object = array
    while base is not None and not isinstance(base, mmap.mmap):
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    if base is None or not hasattr(mmap, "MADV_DONTNEED") or base.closed or not array.flags.c_contiguous:
        return False
    from .._native import ffi  # noqa: PLC0415

    try:
        start = int(ffi.cast("uintptr_t", ffi.from_buffer(base)))
    except (TypeError, ValueError):
        return False
    offset = array.ctypes.data - start
    if offset < 0 or offset + array.nbytes > len(base):
        return False
    first = -(-offset // mmap.PAGESIZE) * mmap.PAGESIZE
    last = ((offset + array.nbytes) // mmap.PAGESIZE) * mmap.PAGESIZE
    if last <= first:
        return False
    try:
        base.madvise(mmap.MADV_DONTNEED, first, last - first)
    except (OSError, ValueError):
        return False
    return True


#: Groups up to this many run one C GEMM each; more (depthwise-like convs with tiny
#: per-group matrices) use the batched NumPy engine.
C_MAX_GROUPS = 4


class PackedLinear:
    """Quantized weights prepared once for ``y = x @ W + b`` (optionally in groups).

    Use :meth:`from_matmul` for a MatMul weight ``(K, N)`` and :meth:`from_conv` for a
    Conv weight ``(OC, C / group, *kernel)``.

    Parameters
    ----------
    data : numpy.ndarray
        int8/uint8 weights ``(G, K, N)``.
    zero_point : numpy.ndarray
        Weight zero points, per tensor or ``(G, N)``.
    w_scale : numpy.ndarray
        float32, broadcasting to ``(G, 1, N)``.
    bias : numpy.ndarray or None
        float32, ``G * N`` values.
    engine : {"auto", "c", "numpy"}
        ``"c"``: qcore's C GEMM on weights packed once (:class:`qcore._gemm.PackedWeights`),
        exact int32. ``"numpy"``: BLAS on the centred operands held as float32 (exact, see
        Notes). ``"auto"``: C unless there are more than :data:`C_MAX_GROUPS` groups.

    Notes
    -----
    Both engines compute the exact integer sum ``acc = sum_k (q - zp_x)(w - zp_w)``, then
    ``y = float32(acc) * float32(s_x * s_w[n]) + b[n]`` in float32, so their results are
    identical. The NumPy engine stores ``w - zp_w`` as float32 and uses float32 BLAS when
    every partial sum is provably below 2**24 (``K * max|q - zp_x| * max|w - zp_w| < 2**24``),
    float64 BLAS otherwise (exact below 2**53).
    """

    def __init__(self, data: np.ndarray, zero_point: np.ndarray, w_scale: np.ndarray, bias: np.ndarray | None,
                 engine: str = "auto") -> None:
        self.groups, self.k, self.n = data.shape
        if engine == "auto":
            engine = "c" if self.groups <= C_MAX_GROUPS else "numpy"
        if engine not in ("c", "numpy"):
            raise ValueError(f"unknown engine {engine!r}")
        self.engine = engine
        zp = np.asarray(zero_point).reshape(-1)
        zp_g = zp.reshape(self.groups, 1, self.n) if zp.size > 1 else zp.reshape(1, 1, 1)
        if engine == "c":
            from .. import _gemm  # noqa: PLC0415

            self._packed = [
                _gemm.PackedWeights(np.ascontiguousarray(data[g]),
                                    zp_g[g].reshape(-1).astype(data.dtype) if zp.size > 1
                                    else zp.astype(data.dtype).reshape(()))
                for g in range(self.groups)]
            self._gemm = _gemm
            release_mapped_pages(data)  # packed: the mapped originals need not stay resident
        else:
            centered = data.astype(np.float32) - zp_g.astype(np.float32)
            self.w_max = float(np.abs(centered).max()) if centered.size else 0.0
            self.w32 = np.ascontiguousarray(centered)
            self.w64: np.ndarray | None = None
        self.w_scale = np.asarray(w_scale, dtype=np.float32)
        self.bias = None if bias is None else np.asarray(bias, dtype=np.float32).reshape(self.groups, 1, self.n)

    @classmethod
    def from_matmul(cls, weight: QuantizedTensor, bias: np.ndarray | None, engine: str = "auto") -> PackedLinear:
        """Pack a ``(K, N)`` weight quantized per tensor or per column (``axis=1``)."""
        if weight.data.ndim != 2 or weight.dtype not in ("int8", "uint8"):
            raise ShapeError(f"packed linear weights must be 2-D int8/uint8, got {weight.dtype} {weight.data.shape}")
        if weight.axis not in (None, 1) or weight.block_size:
            raise ShapeError("packed linear weights are per-tensor or per output column (axis 1)")
        scale = np.asarray(weight.scale, dtype=np.float32).reshape(1, 1, -1)
        return cls(weight.data[None], np.asarray(weight.zero_point), scale, bias, engine)

    @classmethod
    def from_conv(cls, weight: QuantizedTensor, group: int, bias: np.ndarray | None,
                  engine: str = "auto") -> PackedLinear:
        """Pack a ``(OC, C/group, *kernel)`` weight quantized per tensor or per OC (``axis=0``)."""
        if weight.axis not in (None, 0) or weight.block_size or weight.dtype not in ("int8", "uint8"):
            raise ShapeError("packed conv weights are int8/uint8, per-tensor or per output channel (axis 0)")
        oc = weight.data.shape[0]
        if oc % group:
            raise ShapeError(f"{oc} output channels do not split into {group} groups")
        data = weight.data.reshape(group, oc // group, -1).transpose(0, 2, 1)
        scale = np.asarray(weight.scale, dtype=np.float32).reshape(-1)
        scale = scale.reshape(group, 1, oc // group) if scale.size > 1 else scale.reshape(1, 1, 1)
        return cls(np.ascontiguousarray(data), np.asarray(weight.zero_point), scale, bias, engine)

    def _accumulate_numpy(self, q: np.ndarray, x_zero_point: float | np.ndarray) -> np.ndarray:
        a = q.astype(np.float32)
        a -= np.asarray(x_zero_point, dtype=np.float32)
        a_max = max(float(a.max(initial=0)), -float(a.min(initial=0)))
        if self.k * a_max * self.w_max < _F32_EXACT:
            return np.matmul(a, self.w32 if q.ndim == 3 else self.w32[0])
        if self.w64 is None:
            self.w64 = self.w32.astype(np.float64)
        return np.matmul(a.astype(np.float64), self.w64 if q.ndim == 3 else self.w64[0]).astype(np.float32)

    def _accumulate_c(self, q: np.ndarray, x_zero_point: float | np.ndarray) -> np.ndarray:
        zp = np.asarray(x_zero_point)
        zp = zp.reshape(-1).astype(q.dtype) if zp.size > 1 else zp.astype(q.dtype).reshape(())
        if q.ndim == 2:
            return self._gemm.matmul_integer_packed(q, zp, self._packed[0]).astype(np.float32)
        out = np.empty((self.groups, q.shape[1], self.n), dtype=np.float32)
        for g in range(self.groups):
            out[g] = self._gemm.matmul_integer_packed(q[g], zp, self._packed[g])
        return out

    @property
    def fuses_dynamic_rows(self) -> bool:
        """True when :meth:`run_dynamic_rows` runs in one C call (C engine, one group)."""
        return self.engine == "c" and self.groups == 1

    def run_dynamic_rows(self, x: np.ndarray, *, x_mul: np.ndarray | None = None,
                         out: np.ndarray | None = None) -> np.ndarray:
        """``run(*dynamic_quantize(x, per_row=True))`` in one C call (:func:`qcore._linear.linear_dynamic`).

        Parameters
        ----------
        x : numpy.ndarray
            float32 ``(M, K)``.
        x_mul : numpy.ndarray, optional
            float32 ``(K,)``: run on ``x * x_mul`` (the smoothing Mul, same bits).
        out : numpy.ndarray, optional
            C-contiguous float32 ``(M, N)`` to write into.

        Returns
        -------
        numpy.ndarray
            float32 ``(M, N)``, bit-identical to the two-step form.

        Raises
        ------
        NonFiniteError
            NaN or infinity in ``x``.
        """
        from .. import _linear  # noqa: PLC0415

        return _linear.linear_dynamic(x, self._packed[0], self.w_scale.reshape(-1),
                                      None if self.bias is None else self.bias.reshape(-1), x_mul=x_mul, out=out)

    def dynamic_rows_call(self, x_mul: np.ndarray | None = None, **post: object) -> Callable[..., np.ndarray]:
        """:meth:`run_dynamic_rows` prepared once: a ``call(x, out)`` for C-contiguous 2-D ``x`` and ``out``.

        Parameters
        ----------
        x_mul : numpy.ndarray, optional
            float32 ``(K,)``: the smoothing vector.
        **post
            ``post``, ``gamma``, ``beta``, ``epsilon`` of :class:`qcore._linear.DynamicLinear`
            (a GELU or layer norm fused after the layer; the layer norm's residual is the
            call's third argument).

        Returns
        -------
        callable
            :class:`qcore._linear.DynamicLinear` (same bits as :meth:`run_dynamic_rows`).

        Raises
        ------
        ModelError
            The layer does not run in one C call (:attr:`fuses_dynamic_rows` is False).
        """
        from .. import _linear  # noqa: PLC0415

        if not self.fuses_dynamic_rows:
            raise ModelError("this linear layer does not run dynamic rows in one C call")
        return _linear.DynamicLinear(self._packed[0], self.w_scale.reshape(-1),
                                     None if self.bias is None else self.bias.reshape(-1), x_mul, **post)

    def run(self, q: np.ndarray, x_scale: float | np.ndarray, x_zero_point: float | np.ndarray) -> np.ndarray:
        """Integer product of quantized rows, dequantized to float32.

        Parameters
        ----------
        q : numpy.ndarray
            uint8/int8 of shape ``(M, K)`` (one group) or ``(G, M, K)``.
        x_scale, x_zero_point
            Per tensor (scalars) or per row (shape ``(M, 1)``; 2-D ``q`` only).

        Returns
        -------
        numpy.ndarray
            float32 of shape ``(M, N)`` or ``(G, M, N)``.
        """
        if self.engine == "c":
            acc = self._accumulate_c(q, x_zero_point)
        else:
            acc = self._accumulate_numpy(q, x_zero_point)
        multiplier = np.asarray(x_scale, dtype=np.float32) * self.w_scale
        if q.ndim == 2:
            multiplier = multiplier.reshape(multiplier.shape[-2:]) if multiplier.ndim == 3 else multiplier
        acc *= multiplier
        if self.bias is not None:
            acc += self.bias if q.ndim == 3 else self.bias[0]
        return acc


class Int4Linear:
    """Weight-only int4 MatMul weights ``(K, N)``, blocked along K or per column, for C.

    ``y = x @ dequantize(W) + b``. With fewer than :attr:`PANEL_MIN_ROWS` rows of ``x``
    (decoding one token) it is :func:`qcore._gemm.linear_int4` (float32 accumulation in
    increasing k, no FMA, weights unpacked in registers). With more rows the weight is
    dequantized a panel of K rows at a time into a small float32 scratch buffer
    (:attr:`PANEL_FLOATS` values at most) by one C call (:meth:`Int4Weights.dequantize`:
    nibbles unpacked and scaled in registers), and each panel is multiplied by BLAS sgemm
    (``numpy.matmul``); the whole float weight is never held.

    Parameters
    ----------
    weight : QuantizedTensor
        int4/uint4 ``(K, N)``, blocked along K (axis 0) or per column (axis 1).
    bias : numpy.ndarray or None
        float32 ``(N,)``, added last.
    panel_floats : int, optional
        Most float32 values per dequantized panel; default :attr:`PANEL_FLOATS`.

    Raises
    ------
    ShapeError
        The weight is not 2-D int4/uint4 blocked along K or per column.

    Notes
    -----
    Both paths multiply by the same dequantized weight,
    ``W[k, n] = float32(w[k, n] - zp[k // bs, n]) * scale[k // bs, n]`` (ONNX
    DequantizeLinear, docs/ARITHMETIC.md), bit for bit what :func:`dequantize_weight`
    gives. The panel path sums the products in BLAS order and adds the panels in
    increasing k, so it equals the float matmul ``x @ dequantize_weight(W) + b`` (the
    NumPy fallback of ``WMatMul``) within float32 summation-order rounding, not bit for
    bit the C path's fixed order. Per-column weights are one block of K rows.
    """

    #: Rows of ``x`` from which the panel path (dequantize + sgemm) replaces the C kernel.
    PANEL_MIN_ROWS = 16
    #: Most float32 values in one dequantized panel (1 MB: 1.05x faster on the int4 MiniLM than
    #: 384 KB, no faster at 2.5 MB); a panel has at least one row.
    PANEL_FLOATS = 256 * 1024

    def __init__(self, weight: QuantizedTensor, bias: np.ndarray | None, *, panel_floats: int | None = None) -> None:
        from .. import _gemm  # noqa: PLC0415

        if weight.dtype not in ("int4", "uint4") or len(weight.shape) != 2:
            raise ShapeError(f"int4 linear weights must be 2-D int4/uint4, got {weight.dtype} {weight.shape}")
        k, n = weight.shape
        if weight.block_size and weight.axis == 0:
            block = weight.block_size
            scale = np.asarray(weight.scale, np.float32).reshape(-1, n)
            zp = np.asarray(weight.zero_point).reshape(-1, n)
        elif weight.axis == 1 and not weight.block_size:
            block = max(k, 1)
            scale = np.asarray(weight.scale, np.float32).reshape(1, n)
            zp = np.asarray(weight.zero_point).reshape(1, n)
        else:
            raise ShapeError("int4 linear weights are blocked along K (axis 0) or per column (axis 1)")
        zp = None if not zp.any() else np.ascontiguousarray(zp)
        params = dict(scale=np.ascontiguousarray(scale), zero_point=zp, block_size=block, dtype=weight.dtype)
        # a file's bytes are already in the layout the C kernels read: no copy
        self._weights = (_gemm.Int4Weights(weight.packed, (k, n), **params) if weight.packed is not None
                         else _gemm.Int4Weights.from_values(np.ascontiguousarray(weight.data), **params))
        self._linear = _gemm.linear_int4
        self.bias = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
        self.k, self.n = k, n
        rows = max(1, (self.PANEL_FLOATS if panel_floats is None else int(panel_floats)) // max(n, 1))
        # Whole blocks per panel when a block fits, so most panels need few dequantize calls.
        self._panel_rows = rows // block * block if rows >= block else rows

    def run(self, x: np.ndarray) -> np.ndarray:
        """``x @ dequantize(W) + bias`` for float32 ``x`` of shape ``[..., K]``.

        Below ``PANEL_MIN_ROWS`` rows the exact C int4 kernel runs; from there the weight is
        dequantized panel by panel into float32 scratch and each panel multiplied with BLAS
        (equal to the float matmul of the dequantized weight within float32 summation order).
        """
        x = np.asarray(x, dtype=np.float32)
        rows = x.size // self.k if self.k else 0
        if rows < self.PANEL_MIN_ROWS or self.k == 0 or self.n == 0:
            return self._linear(x, self._weights, self.bias)
        y = self._run_panels(np.ascontiguousarray(x).reshape(rows, self.k))
        return y.reshape(x.shape[:-1] + (self.n,))

    def _run_panels(self, x: np.ndarray) -> np.ndarray:
        """``x @ W + b`` for 2-D float32 ``x``, one dequantized panel of K rows at a time."""
        from .._native import check, ffi, make_options  # noqa: PLC0415

        w = self._weights
        k, n = self.k, self.n
        step = min(self._panel_rows, k)
        panel = np.empty((step, n), np.float32)
        y = np.empty((x.shape[0], n), np.float32)
        part = np.empty_like(y) if step < k else None
        options = make_options(num_threads=1)
        panel_ptr = ffi.cast("float *", ffi.from_buffer(panel))
        for k0 in range(0, k, step):
            k1 = min(k, k0 + step)
            check(w._dequantize(k0, k1, panel_ptr, options), "int4 dequantize")
            if k0 == 0:
                np.matmul(x[:, k0:k1], panel[:k1 - k0], out=y)
            else:
                np.matmul(x[:, k0:k1], panel[:k1 - k0], out=part)
                y += part
        if self.bias is not None:
            y += self.bias
        return y


def dequantize_weight(weight: QuantizedTensor) -> np.ndarray:
    """float32 ``(w - zp) * scale`` of a per-tensor, per-axis or blocked weight."""
    data = weight.data.astype(np.float32)
    scale = np.asarray(weight.scale, dtype=np.float32)
    zp = np.asarray(weight.zero_point, dtype=np.float32)
    if weight.axis is None:
        return (data - zp.reshape(())) * scale.reshape(())
    axis = weight.axis
    if weight.block_size:
        scale = np.repeat(scale, weight.block_size, axis=axis)
        zp = np.repeat(zp, weight.block_size, axis=axis)
        index = [slice(None)] * data.ndim
        index[axis] = slice(0, data.shape[axis])
        return (data - zp[tuple(index)]) * scale[tuple(index)]
    shape = [1] * data.ndim
    shape[axis] = -1
    return (data - zp.reshape(shape)) * scale.reshape(shape)


def _gathered_rows(table: QuantizedTensor, flat: np.ndarray) -> np.ndarray:
    """The integer rows ``table[flat]``; from a packed int4 table (read from a file) only
    those rows are unpacked (an odd row width straddles bytes: the whole table then)."""
    packed, (rows, cols) = table.packed, table.shape
    if packed is not None and cols % 2 == 0 and table.dtype in ("int4", "uint4"):
        from ..reference.packing import unpack_int4  # noqa: PLC0415

        chosen = np.take(packed.reshape(rows, cols // 2), flat, axis=0)
        return unpack_int4(chosen, (flat.size, cols), signed=table.dtype == "int4")
    return np.take(table.data, flat, axis=0)


def dequantize_rows(table: QuantizedTensor, indices: np.ndarray) -> np.ndarray:
    """float32 rows ``table[indices]`` of a 2-D table quantized per row or per row block.

    Output shape ``indices.shape + (columns,)``; ``(w - zp) * scale`` as DequantizeLinear.
    """
    flat = indices.reshape(-1)
    scale = np.asarray(table.scale)
    zp = np.asarray(table.zero_point)
    cols = table.shape[1]

    def rows(a: np.ndarray) -> np.ndarray:  # the gathered rows' parameters only, as float32
        return (a[flat] if a.ndim else a).astype(np.float32)

    if table.axis is None:
        data = _gathered_rows(table, flat).astype(np.float32)
        out = (data - zp.astype(np.float32).reshape(())) * scale.astype(np.float32).reshape(())
    elif table.axis == 0 and not table.block_size and not flat.size:
        out = np.empty((0, cols), np.float32)
    elif table.axis == 0 and not table.block_size:
        from .. import _elementwise  # noqa: PLC0415

        # one row per channel on the C core: the same (w - zp) * scale, rounded once
        gathered = _gathered_rows(table, flat)
        row_zp = np.take(zp, flat) if zp.ndim else np.full(flat.shape, zp)
        row_scale = np.take(scale, flat) if scale.ndim else np.full(flat.shape, scale)
        out = _elementwise.dequantize_linear(gathered, row_scale.astype(np.float32, copy=False),
                                             row_zp.astype(gathered.dtype, copy=False), axis=0)
    elif table.axis == 1 and table.block_size:
        data = _gathered_rows(table, flat).astype(np.float32)
        s = np.repeat(rows(scale), table.block_size, axis=1)[:, :cols]
        z = np.repeat(rows(zp), table.block_size, axis=1)[:, :cols]
        out = (data - z) * s
    else:
        raise ShapeError("quantized tables are per tensor, per row (axis 0) or blocked along a row (axis 1)")
    return out.reshape(indices.shape + (cols,))
