"""The quantized tensor: integer data plus the parameters that give it meaning.

``real = (data - zero_point) * scale`` with per-tensor, per-axis or blocked parameters,
exactly as ONNX DequantizeLinear broadcasts them (docs/ARITHMETIC.md).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import QuantParamError, ShapeError
from .dtypes import int_type

CONVENTIONS = ("onnx", "tflite", "pytorch")
_UNPACK_LOCK = threading.Lock()


@dataclass(frozen=True, eq=False)
class QuantizedTensor:
    """Integer data with its scale, zero point, granularity and convention.

    Attributes
    ----------
    data : numpy.ndarray
        One value per element in the container dtype of ``dtype`` (int4 in an int8 array).
    scale : numpy.ndarray
        float32. Shape ``()`` per-tensor; ``(data.shape[axis],)`` per-axis; for blocked,
        the rank of ``data`` with ``ceil(data.shape[axis] / block_size)`` along ``axis``.
    zero_point : numpy.ndarray
        Same shape as ``scale``, container dtype of ``dtype``.
    dtype : str
        ``"int8"``, ``"uint8"``, ``"int4"``, ``"uint4"``, ``"int16"``, ...
    axis : int or None
        The quantization axis (non-negative) for per-axis and blocked; None per-tensor.
    block_size : int
        Block length along ``axis`` for blocked quantization, 0 otherwise.
    convention : str
        ``"onnx"``, ``"tflite"`` or ``"pytorch"``: how ``data`` was rounded.
    """

    data: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    dtype: str
    axis: int | None = None
    block_size: int = 0
    convention: str = "onnx"

    def __post_init__(self) -> None:
        itype = int_type(self.dtype)
        if self.data.dtype != itype.container:
            raise ShapeError(f"data has dtype {self.data.dtype}, {itype.name} needs {itype.container}")
        self._check_params(tuple(self.data.shape))

    @classmethod
    def from_packed(cls, packed: np.ndarray, shape: tuple[int, ...], unpack: Callable[[], np.ndarray],
                    scale: np.ndarray, zero_point: np.ndarray, dtype: str, axis: int | None = None,
                    block_size: int = 0, convention: str = "onnx") -> QuantizedTensor:
        """A sub-byte tensor kept as its packed bytes, unpacked only when ``data`` is read.

        Parameters
        ----------
        packed : numpy.ndarray
            uint8, the values of ``shape`` row-major, first element in the lowest bits
            (ONNX layout), e.g. a view of a memory-mapped model file.
        shape : tuple of int
            The tensor's shape.
        unpack : callable
            Returns ``data`` (one value per element, in the container dtype) from
            ``packed``; called once, on the first read of ``data``, whose array is then
            kept read-only (writers and kernels read ``packed``).
        scale, zero_point, dtype, axis, block_size, convention
            As for the constructor.

        Returns
        -------
        QuantizedTensor
            ``packed`` is :attr:`packed`; ``shape`` is known without unpacking.

        Raises
        ------
        ShapeError, QuantParamError
            As the constructor, or a ``dtype`` that is not sub-byte, or ``packed`` not
            uint8 of ``ceil(size * bits / 8)`` bytes.
        """
        itype = int_type(dtype)
        if itype.bits >= 8:
            raise ShapeError(f"only sub-byte tensors are kept packed, not {itype.name}")
        shape = tuple(int(d) for d in shape)
        count = int(np.prod(shape, dtype=np.int64))
        packed = np.asarray(packed)
        if packed.dtype != np.uint8 or packed.size != (count * itype.bits + 7) // 8:
            raise ShapeError(f"packed {itype.name} data of shape {shape} must be {(count * itype.bits + 7) // 8} "
                             f"uint8 bytes, got {packed.size} {packed.dtype}")
        tensor = object.__new__(cls)
        for name, value in (("scale", scale), ("zero_point", zero_point), ("dtype", dtype), ("axis", axis),
                            ("block_size", block_size), ("convention", convention), ("_packed", packed.reshape(-1)),
                            ("_shape", shape), ("_unpack", unpack)):
            object.__setattr__(tensor, name, value)
        tensor._check_params(shape)
        return tensor

    def __getattr__(self, name: str) -> object:
        # only reached for attributes not set: ``data`` of a tensor made by from_packed
        state = self.__dict__
        if name == "data" and "_unpack" in state:
            with _UNPACK_LOCK:  # one unpacking when threads read it first at once
                if "data" not in state:
                    data = np.asarray(state["_unpack"]()).reshape(state["_shape"])
                    if data.dtype != int_type(state["dtype"]).container:
                        raise ShapeError(f"unpacked data has dtype {data.dtype}, {state['dtype']} needs "
                                         f"{int_type(state['dtype']).container}")
                    data.flags.writeable = False  # the packed bytes are what writers and kernels read
                    object.__setattr__(self, "data", data)
                return state["data"]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def packed(self) -> np.ndarray | None:
        """The packed bytes of a tensor made by :meth:`from_packed` (ONNX layout), else None."""
        return self.__dict__.get("_packed")

    def _check_params(self, shape: tuple[int, ...]) -> None:
        itype = int_type(self.dtype)
        ndim = len(shape)
        if self.scale.shape != self.zero_point.shape:
            raise ShapeError(f"scale shape {self.scale.shape} != zero_point shape {self.zero_point.shape}")
        if self.convention not in CONVENTIONS:
            raise QuantParamError(f"unknown convention {self.convention!r}; known: {', '.join(CONVENTIONS)}")
        if self.axis is None:
            if self.scale.size != 1 or self.block_size:
                raise ShapeError("per-tensor quantization needs one scale and no block size")
        elif not 0 <= self.axis < ndim:
            raise QuantParamError(f"axis {self.axis} out of range for rank {ndim}")
        elif self.block_size < 0:
            raise QuantParamError(f"block_size must be >= 0, got {self.block_size}")
        elif self.block_size:
            expected = list(shape)
            expected[self.axis] = -(-shape[self.axis] // self.block_size)
            if tuple(self.scale.shape) != tuple(expected):
                raise ShapeError(f"blocked scale must have shape {tuple(expected)}, got {self.scale.shape}")
        elif self.scale.shape != (shape[self.axis],):
            raise ShapeError(f"per-axis scale must have shape ({shape[self.axis]},), got {self.scale.shape}")
        scale = np.asarray(self.scale)
        if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
            raise QuantParamError("scale must be finite and > 0")
        zero_point = np.asarray(self.zero_point)
        if zero_point.size and (zero_point.min() < itype.qmin or zero_point.max() > itype.qmax):
            raise QuantParamError(f"zero_point outside the range of {itype.name} [{itype.qmin}, {itype.qmax}]")

    @property
    def granularity(self) -> str:
        """``"per_tensor"``, ``"per_axis"`` or ``"per_block"``."""
        if self.axis is None:
            return "per_tensor"
        return "per_block" if self.block_size else "per_axis"

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the tensor (known without unpacking a packed one)."""
        state = self.__dict__
        return state["_shape"] if "_shape" in state else tuple(self.data.shape)

    def expanded_params(self) -> tuple[np.ndarray, np.ndarray]:
        """Scale (float32) and zero point (int64) broadcast to the shape of ``data``."""
        return (
            expand_to(self.scale, self.data.shape, self.axis, self.block_size),
            expand_to(self.zero_point.astype(np.int64), self.data.shape, self.axis, self.block_size),
        )

    def dequantize(self) -> np.ndarray:
        """Return ``(data - zero_point) * scale`` as float32 (ONNX DequantizeLinear)."""
        from .onnx_ops import dequantize_linear

        return dequantize_linear(
            self.data,
            self.scale,
            self.zero_point,
            axis=1 if self.axis is None else self.axis,
            block_size=self.block_size,
        )


def expand_to(param: np.ndarray, shape: tuple[int, ...], axis: int | None, block_size: int = 0) -> np.ndarray:
    """Broadcast a per-tensor, per-axis or blocked parameter to every element of ``shape``.

    Per-tensor: any one-element array. Per-axis: 1-D of length ``shape[axis]``. Blocked:
    the rank of ``shape`` with ``ceil(shape[axis] / block_size)`` along ``axis`` (the last
    block may be partial), as ONNX lays blocked scales out.
    """
    param = np.asarray(param)
    if axis is None:
        return np.broadcast_to(param.reshape(()), shape)
    if block_size:
        return np.repeat(param, block_size, axis=axis).take(np.arange(shape[axis]), axis=axis)
    view = [1] * len(shape)
    view[axis] = shape[axis]
    return np.broadcast_to(param.reshape(view), shape)
