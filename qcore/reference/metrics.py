"""Quantization error metrics (docs/ARITHMETIC.md, "Error metrics").

All metrics compute in float64. ``approx`` may be a float array or a
:class:`~qcore.reference.tensor.QuantizedTensor` (then its ``dequantize()`` is used).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from ..errors import DTypeError, NonFiniteError, QuantParamError, ShapeError
from .dtypes import int_type
from .tensor import QuantizedTensor

__all__ = ["cosine_similarity", "fraction_clipped", "max_error_in_steps", "sqnr"]


def _real(name: str, value: ArrayLike | QuantizedTensor) -> np.ndarray:
    if isinstance(value, QuantizedTensor):
        value = value.dequantize()
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise DTypeError(f"{name} must be a real array, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ShapeError(f"{name} is empty")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise NonFiniteError(f"{name} contains NaN or infinite values")
    return arr


def _pair(reference: ArrayLike, approx: ArrayLike | QuantizedTensor) -> tuple[np.ndarray, np.ndarray]:
    ref = _real("reference", reference)
    app = _real("approx", approx)
    if ref.shape != app.shape:
        raise ShapeError(f"reference shape {ref.shape} != approx shape {app.shape}")
    return ref, app


def sqnr(reference: ArrayLike, approx: ArrayLike | QuantizedTensor) -> float:
    """Signal-to-quantization-noise ratio in dB.

    Returns
    -------
    float
        ``10 * log10(sum(reference**2) / sum((reference - approx)**2))``; ``inf`` when the
        two are equal (no noise), ``-inf`` when the reference is all zero and the noise not.

    Raises
    ------
    ShapeError
        Different shapes, or empty arrays.
    NonFiniteError, DTypeError
    """
    ref, app = _pair(reference, approx)
    signal = float(np.sum(ref * ref))
    noise = float(np.sum((ref - app) ** 2))
    if noise == 0:
        return math.inf
    if signal == 0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def cosine_similarity(reference: ArrayLike, approx: ArrayLike | QuantizedTensor) -> float:
    """Cosine of the angle between the two arrays, flattened.

    Returns
    -------
    float
        ``dot(a, b) / (|a| |b|)``, in ``[-1, 1]``. Defined as 1.0 when both are all zero
        and 0.0 when exactly one is.
    """
    ref, app = _pair(reference, approx)
    a, b = ref.ravel(), app.ravel()
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))


def max_error_in_steps(
    reference: ArrayLike, approx: ArrayLike | QuantizedTensor, scale: ArrayLike | None = None
) -> float:
    """Largest absolute error in units of the quantization step.

    Parameters
    ----------
    reference : array_like
        The float values.
    approx : array_like or QuantizedTensor
        The dequantized values, or the quantized tensor itself.
    scale : float or array_like, optional
        The step, broadcast against ``reference``. Taken from ``approx`` (per element, for
        per-channel and blocked tensors too) when it is a QuantizedTensor; required
        otherwise.

    Returns
    -------
    float
        ``max(|reference - approx| / scale)``. Within the representable range this is at
        most 0.5 for round-to-nearest (plus float32 error of the dequantization).
    """
    ref, app = _pair(reference, approx)
    if scale is None:
        if not isinstance(approx, QuantizedTensor):
            raise QuantParamError("scale is required when approx is not a QuantizedTensor")
        step = approx.expanded_params()[0].astype(np.float64)
    else:
        step = np.asarray(scale, dtype=np.float64)
        try:
            step = np.broadcast_to(step, ref.shape)
        except ValueError as exc:
            raise ShapeError(f"scale {step.shape} does not broadcast to {ref.shape}") from exc
    if not np.all(np.isfinite(step)) or np.any(step <= 0):
        raise QuantParamError("scale must be finite and > 0")
    return float(np.max(np.abs(ref - app) / step))


def fraction_clipped(x: ArrayLike, qtensor: QuantizedTensor) -> float:
    """Fraction of ``x`` that falls outside the range ``qtensor`` can represent.

    Returns
    -------
    float
        The fraction of elements with ``x / scale + zero_point`` outside
        ``[qmin - 0.5, qmax + 0.5]`` (per element scale and zero point; ``qmin, qmax``
        the range of ``qtensor.dtype``): the values whose quantization saturates rather
        than rounds, computed in float64. Exact ties at the edges are not counted.

    Raises
    ------
    ShapeError
        ``x`` and ``qtensor`` differ in shape, or ``x`` is empty.
    """
    if not isinstance(qtensor, QuantizedTensor):
        raise QuantParamError("fraction_clipped needs a QuantizedTensor for the representable range")
    ref = _real("x", x)
    if ref.shape != qtensor.shape:
        raise ShapeError(f"x shape {ref.shape} != quantized tensor shape {qtensor.shape}")
    scale, zero_point = qtensor.expanded_params()
    itype = int_type(qtensor.dtype)
    position = ref / scale.astype(np.float64) + zero_point
    clipped = (position > itype.qmax + 0.5) | (position < itype.qmin - 0.5)
    return float(np.count_nonzero(clipped)) / ref.size
