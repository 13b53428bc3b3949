"""The runtime's integer kernel interface: the one place the runtime touches integer math.

Every quantized operator of the runtime goes through these functions, so changing the
engine underneath (NumPy reference, C core) is local to this module. The arithmetic is
ONNX's (docs/ARITHMETIC.md):

- quantize: ``q = saturate(round_half_even(x / scale) + zero_point)``;
- dynamic quantize (uint8): ``s = (max(0, max x) - min(0, min x)) / 255``,
  ``zp = round_half_even(clip(-min(0, min x) / s, 0, 255))``, per tensor or per row;
  an all-zero row gets ``s = 1`` and ``zp = 0`` (onnxruntime's choice, as the reference),
  and so does a range whose ``/ 255`` underflows (the reference raises there);
- integer matmul: exact ``acc = sum_k (q[m,k] - zp_x) * (w[k,n] - zp_w[n])``;
- output: ``y = float32(acc) * float32(s_x * s_w[n]) + bias[n]`` in float32.

The integer products are exact whichever engine computes them; see :class:`PackedLinear`
for how the NumPy engine gets exact integer sums from BLAS.
"""

from __future__ import annotations

import numpy as np

from ..errors import NonFiniteError, ShapeError
from ..reference.tensor import QuantizedTensor

_RANGES = {"uint8": (0, 255), "int8": (-128, 127)}
#: Largest |sum| float32 represents exactly (every integer up to 2**24).
_F32_EXACT = 1 << 24


def quantize(x: np.ndarray, scale: float | np.ndarray, zero_point: int | np.ndarray, dtype: str) -> np.ndarray:
    """ONNX QuantizeLinear with per-tensor or per-row (broadcast) parameters.

    Parameters
    ----------
    x : numpy.ndarray
        float32 values.
    scale, zero_point
        Scalars, or arrays broadcasting against ``x`` (per-row: shape ``(M, 1)``).
    dtype : {"uint8", "int8"}

    Returns
    -------
    numpy.ndarray of ``dtype``

    Notes
    -----
    ``q = clip(round_half_even(x / scale) + zero_point, qmin, qmax)``; a true division in
    float32. NaN quantizes to the zero point.
    """
    lo, hi = _RANGES[dtype]
    if np.isnan(x).any():
        x = np.nan_to_num(x, nan=0.0, posinf=np.inf, neginf=-np.inf)
    y = np.rint(np.divide(x, np.float32(scale) if np.ndim(scale) == 0 else scale.astype(np.float32)))
    y += np.asarray(zero_point, dtype=np.float32)
    np.clip(y, lo, hi, out=y)
    return y.astype(dtype)


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


class PackedLinear:
    """Quantized weights prepared once for ``y = x @ W + b`` (optionally in groups).

    Use :meth:`from_matmul` for a MatMul weight ``(K, N)`` and :meth:`from_conv` for a
    Conv weight ``(OC, C / group, *kernel)``.

    Notes
    -----
    NumPy engine: ``w - zp_w`` is stored once as float32, shape ``(G, K, N)``; the
    activation operand ``q - zp_x`` is formed in float32 too, and the product is computed
    by BLAS in float32 when every partial sum is provably below 2**24 in magnitude
    (``K * max|q - zp_x| * max|w - zp_w| < 2**24``), in float64 otherwise (exact below
    2**53). The integer sum is therefore exact either way; it is then scaled by
    ``float32(s_x * s_w[n])`` and the bias added, in float32.
    """

    def __init__(self, centered: np.ndarray, w_scale: np.ndarray, bias: np.ndarray | None) -> None:
        self.groups, self.k, self.n = centered.shape
        self.w_max = float(np.abs(centered).max()) if centered.size else 0.0
        self.w32 = np.ascontiguousarray(centered, dtype=np.float32)
        self.w64: np.ndarray | None = None
        self.w_scale = np.asarray(w_scale, dtype=np.float32)
        self.bias = None if bias is None else np.asarray(bias, dtype=np.float32).reshape(self.groups, 1, self.n)

    @classmethod
    def from_matmul(cls, weight: QuantizedTensor, bias: np.ndarray | None) -> PackedLinear:
        """Pack a ``(K, N)`` weight quantized per tensor or per column (``axis=1``)."""
        if weight.data.ndim != 2:
            raise ShapeError(f"packed linear weight must be 2-D, got {weight.data.shape}")
        if weight.axis not in (None, 1) or weight.block_size:
            raise ShapeError("packed linear weights are per-tensor or per output column (axis 1)")
        zp = np.asarray(weight.zero_point, dtype=np.float32).reshape(1, -1)
        centered = weight.data.astype(np.float32) - zp
        scale = np.asarray(weight.scale, dtype=np.float32).reshape(1, 1, -1)
        return cls(centered[None], scale, bias)

    @classmethod
    def from_conv(cls, weight: QuantizedTensor, group: int, bias: np.ndarray | None) -> PackedLinear:
        """Pack a ``(OC, C/group, *kernel)`` weight quantized per tensor or per OC (``axis=0``)."""
        if weight.axis not in (None, 0) or weight.block_size:
            raise ShapeError("packed conv weights are per-tensor or per output channel (axis 0)")
        oc = weight.data.shape[0]
        if oc % group:
            raise ShapeError(f"{oc} output channels do not split into {group} groups")
        zp = np.asarray(weight.zero_point, dtype=np.float32).reshape((-1,) + (1,) * (weight.data.ndim - 1))
        centered = (weight.data.astype(np.float32) - zp).reshape(group, oc // group, -1).transpose(0, 2, 1)
        scale = np.asarray(weight.scale, dtype=np.float32).reshape(-1)
        scale = scale.reshape(group, 1, oc // group) if scale.size > 1 else scale.reshape(1, 1, 1)
        return cls(centered, scale, bias)

    def _accumulate(self, a: np.ndarray, a_max: float) -> np.ndarray:
        if self.k * a_max * self.w_max < _F32_EXACT:
            return np.matmul(a, self.w32)
        if self.w64 is None:
            self.w64 = self.w32.astype(np.float64)
        return np.matmul(a.astype(np.float64), self.w64).astype(np.float32)

    def run(self, q: np.ndarray, x_scale: float | np.ndarray, x_zero_point: float | np.ndarray) -> np.ndarray:
        """Integer product of quantized rows, dequantized to float32.

        Parameters
        ----------
        q : numpy.ndarray
            uint8/int8 of shape ``(M, K)`` (one group) or ``(G, M, K)``.
        x_scale, x_zero_point
            Per tensor (scalars) or per row (shape ``(M, 1)``).

        Returns
        -------
        numpy.ndarray
            float32 of shape ``(M, N)`` or ``(G, M, N)``.
        """
        a = q.astype(np.float32)
        a -= np.asarray(x_zero_point, dtype=np.float32)
        a_max = max(float(a.max(initial=0)), -float(a.min(initial=0)))
        acc = self._accumulate(a, a_max)
        multiplier = np.asarray(x_scale, dtype=np.float32) * self.w_scale
        if q.ndim == 2:
            multiplier = multiplier.reshape(multiplier.shape[-2:]) if multiplier.ndim == 3 else multiplier
        acc *= multiplier
        if self.bias is not None:
            acc += self.bias if q.ndim == 3 else self.bias[0]
        return acc


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
