"""NumPy definition of qcore's float32 attention (the oracle of csrc/include/qcore_attention.h).

``softmax(scale * (q @ k) + mask)`` over the last axis, and its product with ``v``, each
product summed in a stated order so that C and NumPy agree bit for bit: from +0, one
float32 multiply and one float32 add per term, in increasing ``d`` (scores) or key ``j``
(context). The softmax is :func:`qcore.reference.activation.softmax`.
"""

from __future__ import annotations

import numpy as np

from ..errors import DTypeError, ShapeError
from .activation import softmax


def attention_scores(q: np.ndarray, k: np.ndarray, scale: float | None = None,
                     mask: np.ndarray | None = None) -> np.ndarray:
    """qcore's float32 attention probabilities ``softmax(scale * (q @ k) + mask)``.

    Parameters
    ----------
    q : numpy.ndarray
        float32 ``(..., S, D)``: the queries of every head.
    k : numpy.ndarray
        float32 ``(..., D, T)``: the keys, already transposed (as exported graphs hold
        them). The leading axes of ``q`` and ``k`` broadcast.
    scale : float, optional
        Multiplies the scores (rounded to float32 first); none when omitted.
    mask : numpy.ndarray, optional
        float32, broadcastable to the scores' shape: added after the scale.

    Returns
    -------
    numpy.ndarray
        float32 ``(..., S, T)``.

    Raises
    ------
    DTypeError
        An input is not float32.
    ShapeError
        ``q``'s last axis differs from ``k``'s second to last, the leading axes or the mask
        do not broadcast, or an input has fewer than two axes.

    Notes
    -----
    ``a = +0; a = a + q[..., i, d] * k[..., d, j]`` for ``d = 0 .. D - 1`` in turn (each
    product and sum rounded to float32); ``v = a * float32(scale)``; ``v = v + mask``;
    then the softmax of each row of ``v``.
    """
    for name, value in (("q", q), ("k", k), ("mask", mask)):
        if value is not None and np.asarray(value).dtype != np.float32:
            raise DTypeError(f"attention_scores: {name} must be float32, got {np.asarray(value).dtype}")
    q = np.asarray(q)
    k = np.asarray(k)
    if q.ndim < 2 or k.ndim < 2 or q.shape[-1] != k.shape[-2]:
        raise ShapeError(f"attention_scores: q (..., S, D) and k (..., D, T) do not match: {q.shape}, {k.shape}")
    try:
        shape = np.broadcast_shapes(q.shape[:-2], k.shape[:-2]) + (q.shape[-2], k.shape[-1])
        if mask is not None and np.broadcast_shapes(shape, np.shape(mask)) != shape:
            raise ValueError
    except ValueError:
        raise ShapeError(f"attention_scores: shapes do not broadcast: q {q.shape}, k {k.shape}, "
                         f"mask {None if mask is None else np.shape(mask)}") from None
    s = np.zeros(shape, np.float32)
    for d in range(q.shape[-1]):
        s = s + q[..., :, d:d + 1] * k[..., d:d + 1, :]
    if scale is not None:
        s = s * np.float32(scale)
    if mask is not None:
        s = s + np.asarray(mask, np.float32)
    return softmax(s)


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float | None = None,
              mask: np.ndarray | None = None) -> np.ndarray:
    """qcore's float32 attention context ``softmax(scale * (q @ k) + mask) @ v``.

    Parameters
    ----------
    q : numpy.ndarray
        float32 ``(..., S, D)``: the queries of every head.
    k : numpy.ndarray
        float32 ``(..., D, T)``: the keys, already transposed.
    v : numpy.ndarray
        float32 ``(..., T, E)``: the values. The leading axes of ``q``, ``k`` and ``v``
        broadcast.
    scale : float, optional
        Multiplies the scores (rounded to float32 first); none when omitted.
    mask : numpy.ndarray, optional
        float32, broadcastable to the scores' shape ``(..., S, T)``: added after the scale.

    Returns
    -------
    numpy.ndarray
        float32 ``(..., S, E)``.

    Raises
    ------
    DTypeError
        An input is not float32.
    ShapeError
        As :func:`attention_scores`, or ``v``'s second to last axis differs from ``k``'s
        last, or its leading axes do not broadcast.

    Notes
    -----
    ``p = attention_scores(q, k, scale, mask)``; then ``c = +0; c = c + p[..., i, j] *
    v[..., j, e]`` for ``j = 0 .. T - 1`` in turn, each product and sum rounded to float32.
    """
    if np.asarray(v).dtype != np.float32:
        raise DTypeError(f"attention: v must be float32, got {np.asarray(v).dtype}")
    v = np.asarray(v)
    p = attention_scores(q, k, scale, mask)
    if v.ndim < 2 or v.shape[-2] != p.shape[-1]:
        raise ShapeError(f"attention: v (..., T, E) does not match the keys: v {v.shape}, k {np.shape(k)}")
    try:
        lead = np.broadcast_shapes(p.shape[:-2], v.shape[:-2])
    except ValueError:
        raise ShapeError(f"attention: v's leading axes do not broadcast: {v.shape} with {p.shape}") from None
    c = np.zeros(lead + (p.shape[-2], v.shape[-1]), np.float32)
    for j in range(p.shape[-1]):
        c = c + p[..., :, j:j + 1] * v[..., j:j + 1, :]
    return c
