"""Integer element types of quantized tensors (docs/ARITHMETIC.md, "Integer types").

Sub-byte types (int4, uint4, int2, uint2) are held one value per element in an
int8/uint8 container array and named explicitly; :mod:`qcore.reference.packing` converts
them to ONNX's packed byte layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DTypeError


@dataclass(frozen=True)
class IntType:
    """One quantized integer type.

    Attributes
    ----------
    name : str
        ``"int8"``, ``"uint4"``, ...
    bits : int
        Width of one value.
    signed : bool
        Two's complement when True.
    qmin, qmax : int
        The saturation range, ``[-2**(bits-1), 2**(bits-1) - 1]`` or ``[0, 2**bits - 1]``.
    container : numpy.dtype
        The NumPy dtype that holds one value per element.
    """

    name: str
    bits: int
    signed: bool
    qmin: int
    qmax: int
    container: np.dtype

    @property
    def is_subbyte(self) -> bool:
        """True for the packed types narrower than a byte (int4, uint4, int2, uint2)."""
        return self.bits < 8


def _make(name: str, bits: int, signed: bool, container: str) -> IntType:
    if signed:
        qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        qmin, qmax = 0, (1 << bits) - 1
    return IntType(name, bits, signed, qmin, qmax, np.dtype(container))


INT_TYPES: dict[str, IntType] = {
    t.name: t
    for t in (
        _make("int8", 8, True, "int8"),
        _make("uint8", 8, False, "uint8"),
        _make("int16", 16, True, "int16"),
        _make("uint16", 16, False, "uint16"),
        _make("int32", 32, True, "int32"),
        _make("int4", 4, True, "int8"),
        _make("uint4", 4, False, "uint8"),
        _make("int2", 2, True, "int8"),
        _make("uint2", 2, False, "uint8"),
    )
}

#: Types a quantize operation may produce (int32 is only a dequantize input).
QUANTIZED_TYPES = tuple(name for name in INT_TYPES if name != "int32")


def int_type(spec: str | np.dtype | type | IntType) -> IntType:
    """Resolve a type name, NumPy dtype or :class:`IntType` to an :class:`IntType`.

    A NumPy dtype resolves to the full-width type of the same name (``np.int8`` ->
    ``int8``); sub-byte types must be named (``"int4"``).

    Raises
    ------
    DTypeError
        The spec names no supported integer type.
    """
    if isinstance(spec, IntType):
        return spec
    if isinstance(spec, str):
        key = spec.lower()
    else:
        try:
            key = np.dtype(spec).name
        except TypeError as exc:
            raise DTypeError(f"not an integer type: {spec!r}") from exc
    try:
        return INT_TYPES[key]
    except KeyError:
        raise DTypeError(
            f"unsupported integer type {spec!r}; supported: {', '.join(INT_TYPES)}"
        ) from None
