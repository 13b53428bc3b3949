"""float32 attention on the C core (csrc/include/qcore_attention.h): the scores, or the
scores and their product with the values in one call.

Bit-identical on every ISA path and to :func:`qcore.reference.attention.attention_scores`
and :func:`qcore.reference.attention.attention`.
"""

from __future__ import annotations

import math

import numpy as np

from ._native import c_floats, check, copy_back, ffi, float_target, lib, make_options
from .errors import DTypeError, QuantParamError, ShapeError


_NO_STRIDES = (0, 0, 0, 0)


def _operand(a: np.ndarray):
    """A 4-D float32 array for C: its float pointer (any strides) and its element strides
    (``int64_t[4]``), 0 on axes of length 1 (which broadcast) and all 0 for an empty array
    (nothing is read); None when a stride of a longer axis is not a whole number of
    elements or the first element is not 4-byte aligned (C reads floats). The address is
    read once (``ndarray.ctypes`` costs microseconds per access)."""
    address = a.ctypes.data
    if a.size == 0:
        return ffi.cast("float *", address), ffi.new("int64_t[4]", _NO_STRIDES)
    (n0, n1, n2, n3), (s0, s1, s2, s3) = a.shape, a.strides
    strides = (0 if n0 == 1 else s0, 0 if n1 == 1 else s1, 0 if n2 == 1 else s2, 0 if n3 == 1 else s3)
    if (strides[0] | strides[1] | strides[2] | strides[3] | address) & 3:
        return None
    return ffi.cast("float *", address), ffi.new("int64_t[4]", [s >> 2 for s in strides])


def _pointer(keep: list, a: np.ndarray, want: tuple[int, ...]):
    """``a`` broadcast to ``want`` (leading axes, row, col) as (b, h, row, col): a float
    pointer and four element strides; ``keep`` holds what the pointer refers to."""
    found = None
    if len(want) == 4 and a.ndim <= 4:  # the usual case: a view, leading length-1 axes broadcast by zero strides
        a = a.reshape((1,) * (4 - a.ndim) + a.shape)
        found = _operand(a)
    if found is None:
        a = np.broadcast_to(a, want)
        if a.ndim > 4:
            a = np.ascontiguousarray(a).reshape((math.prod(a.shape[:-3]),) + a.shape[-3:])  # also when empty
        found = _operand(a)
        if found is None:  # a stride between elements or a misaligned start (a record field): copied
            a = c_floats(a)
            found = _operand(a)
    keep.append(a)  # alive until the call returns: the C side reads it through the address
    return found


def _checked(caller: str, q, k, scale, mask):
    """The checks :func:`attention_scores` and :func:`attention` share: q, k and the mask as
    float32 arrays, the leading axes of q and k broadcast, the scores' shape, the scale
    argument for C."""
    q = np.asarray(q)
    k = np.asarray(k)
    for name, value in (("q", q), ("k", k), ("mask", mask)):
        if value is not None and np.asarray(value).dtype != np.float32:
            raise DTypeError(f"{caller}: {name} must be float32, got {np.asarray(value).dtype}")
    if q.ndim < 2 or k.ndim < 2 or q.shape[-1] != k.shape[-2]:
        raise ShapeError(f"{caller}: q (..., S, D) and k (..., D, T) do not match: {q.shape}, {k.shape}")
    try:
        lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2])
        shape = lead + (q.shape[-2], k.shape[-1])
        m = None if mask is None else np.asarray(mask)
        if m is not None and np.broadcast_shapes(shape, m.shape) != shape:
            raise ValueError
    except ValueError:
        raise ShapeError(f"{caller}: shapes do not broadcast: q {q.shape}, k {k.shape}, "
                         f"mask {None if mask is None else np.shape(mask)}") from None
    scale_arg = ffi.NULL
    if scale is not None:
        with np.errstate(over="ignore"):  # 1e39 becomes inf: rejected below
            scale32 = np.float32(scale)
        if not np.isfinite(scale32):
            raise QuantParamError(f"{caller}: scale must be finite, got {scale!r}")
        scale_arg = ffi.new("float *", float(scale32))
    return q, k, m, lead, shape, scale_arg


def _out_array(caller: str, out, shape: tuple[int, ...], inputs: tuple) -> np.ndarray:
    """``out`` checked (C-contiguous float32 of ``shape``, sharing no memory with an input), or a new array."""
    if out is None:
        return np.empty(shape, np.float32)
    if (not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != np.float32
            or not out.flags.c_contiguous):
        raise ShapeError(f"{caller}: out must be a C-contiguous float32 array of shape {shape}")
    if any(a is not None and np.shares_memory(out, a) for a in inputs):
        raise ShapeError(f"{caller}: out overlaps an input")
    return out


def attention_scores(q: np.ndarray, k: np.ndarray, scale: float | None = None, mask: np.ndarray | None = None, *,
                     out: np.ndarray | None = None, isa: str | None = None,
                     live_keys: bool = False) -> np.ndarray | tuple[np.ndarray, int]:
    """``softmax(scale * (q @ k) + mask)`` over the last axis, in one C call.

    Parameters
    ----------
    q : numpy.ndarray
        float32 ``(..., S, D)``, any strides (transposed views are read in place).
    k : numpy.ndarray
        float32 ``(..., D, T)``: the keys already transposed. The leading axes of ``q``
        and ``k`` broadcast.
    scale : float, optional
        Multiplies the scores (as float32); must be finite.
    mask : numpy.ndarray, optional
        float32, broadcastable to ``(..., S, T)``; added after the scale.
    out : numpy.ndarray, optional
        C-contiguous float32 ``(..., S, T)`` to write into (must not overlap the inputs).
    isa : str, optional
        Instruction-set path (results are identical on all).
    live_keys : bool, optional
        Also return ``L``: every probability in key columns ``L`` and after is exactly +0
        (padding masked with one value whose probabilities came out 0 in every row;
        ``L = T`` when that is not shown), so a product with the probabilities may stop
        at ``L`` for finite values.

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, int)
        float32 ``(..., S, T)``, with ``L`` when ``live_keys`` is set.

    Raises
    ------
    DTypeError
        An input is not float32.
    ShapeError
        ``q`` and ``k`` do not match or broadcast, the mask does not broadcast, or ``out``
        does not fit or overlaps an input.
    QuantParamError
        ``scale`` is not finite.

    Notes
    -----
    Per score, float32: ``a = +0; a = a + q[i, d] * k[d, j]`` for ``d = 0 .. D - 1``;
    ``v = a * scale``; ``v = v + mask``; then :func:`qcore.ops.softmax` of each row
    (:func:`qcore.reference.attention.attention_scores` states the same in NumPy).
    """
    q, k, m, lead, shape, scale_arg = _checked("attention_scores", q, k, scale, mask)
    out = _out_array("attention_scores", out, shape, (q, k, m))
    if out.size == 0:
        return (out, shape[-1]) if live_keys else out
    # leading axes as (batch, heads): padded with length-1 axes, or folded when there are more
    lead4 = (1,) * max(0, 2 - len(lead)) + lead
    full = lead4 + shape[-2:]
    keep: list[np.ndarray] = []
    q_ptr, q_str = _pointer(keep, q, lead4 + q.shape[-2:])
    k_ptr, k_str = _pointer(keep, k, lead4 + k.shape[-2:])
    m_ptr, m_str = _pointer(keep, m, full) if m is not None else (ffi.NULL, ffi.NULL)
    target = float_target(out)
    live = _call(math.prod(lead4[:-1]), lead4[-1], shape[-2], q.shape[-1], shape[-1], q_ptr, q_str, k_ptr, k_str,
                 scale_arg, m_ptr, m_str, target, make_options(isa, None))
    copy_back(out, target)
    return (out, live) if live_keys else out


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float | None = None,
              mask: np.ndarray | None = None, *, out: np.ndarray | None = None,
              isa: str | None = None) -> np.ndarray:
    """``softmax(scale * (q @ k) + mask) @ v`` in one C call, the probabilities never stored whole.

    Parameters
    ----------
    q : numpy.ndarray
        float32 ``(..., S, D)``, any strides (transposed views are read in place).
    k : numpy.ndarray
        float32 ``(..., D, T)``: the keys already transposed.
    v : numpy.ndarray
        float32 ``(..., T, E)``, any strides. The leading axes of ``q``, ``k`` and ``v``
        broadcast.
    scale : float, optional
        Multiplies the scores (as float32); must be finite.
    mask : numpy.ndarray, optional
        float32, broadcastable to ``(..., S, T)``; added after the scale.
    out : numpy.ndarray, optional
        C-contiguous float32 ``(..., S, E)`` to write into (must not overlap the inputs).
    isa : str, optional
        Instruction-set path (results are identical on all).

    Returns
    -------
    numpy.ndarray
        float32 ``(..., S, E)``.

    Raises
    ------
    DTypeError
        An input is not float32.
    ShapeError
        ``q``, ``k`` and ``v`` do not match or broadcast, the mask does not broadcast, or
        ``out`` does not fit or overlaps an input.
    QuantParamError
        ``scale`` is not finite.

    Notes
    -----
    The probabilities ``p`` as :func:`attention_scores` gives them; then per output
    element, float32: ``c = +0; c = c + p[i, j] * v[j, e]`` for ``j = 0 .. T - 1``
    (:func:`qcore.reference.attention.attention` states the same in NumPy). Keys whose
    probabilities are +0 in a block of rows and whose values are finite are skipped: they
    add nothing.
    """
    v = np.asarray(v)
    if v.dtype != np.float32:
        raise DTypeError(f"attention: v must be float32, got {v.dtype}")
    q, k, m, lead, shape, scale_arg = _checked("attention", q, k, scale, mask)
    if v.ndim < 2 or v.shape[-2] != shape[-1]:
        raise ShapeError(f"attention: v (..., T, E) does not match the keys: v {v.shape}, k {k.shape}")
    try:
        lead = np.broadcast_shapes(lead, v.shape[:-2])
    except ValueError:
        raise ShapeError(f"attention: v's leading axes do not broadcast: v {v.shape}, q {q.shape}, "
                         f"k {k.shape}") from None
    out_shape = lead + (shape[-2], v.shape[-1])
    out = _out_array("attention", out, out_shape, (q, k, v, m))
    if out.size == 0:
        return out
    lead4 = (1,) * max(0, 2 - len(lead)) + lead
    keep: list[np.ndarray] = []
    q_ptr, q_str = _pointer(keep, q, lead4 + q.shape[-2:])
    k_ptr, k_str = _pointer(keep, k, lead4 + k.shape[-2:])
    v_ptr, v_str = _pointer(keep, v, lead4 + v.shape[-2:])
    m_ptr, m_str = _pointer(keep, m, lead4 + (shape[-2], shape[-1])) if m is not None else (ffi.NULL, ffi.NULL)
    target = float_target(out)
    folded = target.reshape((math.prod(lead4[:-1]), lead4[-1]) + out_shape[-2:])  # a view: contiguous
    y_ptr, y_str = _operand(folded)
    _call_context(math.prod(lead4[:-1]), lead4[-1], shape[-2], q.shape[-1], shape[-1], v.shape[-1],
                  q_ptr, q_str, k_ptr, k_str, scale_arg, m_ptr, m_str, v_ptr, v_str, y_ptr, y_str,
                  make_options(isa, None))
    return copy_back(out, target)


def _call_context(batch: int, heads: int, rows: int, depth: int, cols: int, vdepth: int, q_ptr, q_str, k_ptr,
                  k_str, scale_arg, m_ptr, m_str, v_ptr, v_str, y_ptr, y_str, options) -> None:
    status = lib.qc_attention_f32(batch, heads, rows, depth, cols, vdepth, q_ptr, q_str, k_ptr, k_str, scale_arg,
                                  m_ptr, m_str, v_ptr, v_str, y_ptr, y_str, options)
    check(status, "attention")


def _call(batch: int, heads: int, rows: int, depth: int, cols: int, q_ptr, q_str, k_ptr, k_str, scale_arg,
          m_ptr, m_str, out: np.ndarray, options) -> int:
    live = ffi.new("size_t *")
    status = lib.qc_attention_scores_f32(batch, heads, rows, depth, cols, q_ptr, q_str, k_ptr, k_str, scale_arg,
                                         m_ptr, m_str, ffi.cast("float *", ffi.from_buffer(out)), live, options)
    check(status, "attention_scores")
    return int(live[0])


_DEFAULT_OPTIONS = make_options(None, None)


def scores_into(q: np.ndarray, k: np.ndarray, scale: np.float32 | None, mask: np.ndarray | None,
                out: np.ndarray) -> int:
    """:func:`attention_scores` with ``live_keys`` for the runtime's attention step, whose
    arguments are already checked: 4-D float32 ``q (B, H, S, D)`` and ``k (., ., D, T)``
    whose leading axes are ``out``'s or 1, ``mask`` 4-D broadcastable to ``out`` or None,
    a finite float32 ``scale`` or None, and ``out`` a C-contiguous float32 ``(B, H, S, T)``
    array that shares no memory with them (a fresh pooled buffer). Returns ``L``. An
    operand with a stride between elements or a start not aligned to 4 bytes (a field of a
    record array) goes through :func:`attention_scores`, which copies it.
    """
    qa, ka = _operand(q), _operand(k)
    ma = (ffi.NULL, ffi.NULL) if mask is None else _operand(mask)
    if qa is None or ka is None or ma is None or not out.flags.aligned:
        return attention_scores(q, k, scale, mask, out=out, live_keys=True)[1]
    b, h, rows, cols = out.shape
    scale_arg = ffi.NULL if scale is None else ffi.new("float *", float(scale))
    return _call(b, h, rows, q.shape[-1], cols, *qa, *ka, scale_arg, *ma, out, _DEFAULT_OPTIONS)


def context_into(q: np.ndarray, k: np.ndarray, scale: np.float32 | None, mask: np.ndarray | None,
                 v: np.ndarray, out: np.ndarray) -> None:
    """:func:`attention` for the runtime's attention step, whose arguments are already
    checked: 4-D float32 ``q (B, H, S, D)``, ``k (., ., D, T)`` and ``v (., ., T, E)``
    whose leading axes are ``out``'s or 1, ``mask`` 4-D broadcastable to ``(B, H, S, T)``
    or None, a finite float32 ``scale`` or None, and ``out`` a float32 ``(B, H, S, E)``
    view with distinct elements (such as the transposed layout of a fresh pooled buffer)
    that shares no memory with them. An operand with a stride between elements or a start
    not aligned to 4 bytes goes through :func:`attention`, whose result is copied into
    ``out``.
    """
    qa, ka, va, ya = _operand(q), _operand(k), _operand(v), _operand(out)
    ma = (ffi.NULL, ffi.NULL) if mask is None else _operand(mask)
    if qa is None or ka is None or va is None or ya is None or ma is None:
        out[...] = attention(q, k, v, scale, mask)
        return
    b, h, rows, vdepth = out.shape
    scale_arg = ffi.NULL if scale is None else ffi.new("float *", float(scale))
    _call_context(b, h, rows, q.shape[-1], k.shape[-1], vdepth, *qa, *ka, scale_arg, *ma, *va, *ya,
                  _DEFAULT_OPTIONS)
