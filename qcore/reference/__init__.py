"""The NumPy reference: qcore's arithmetic, written once, naive and readable.

Every formula is stated in docs/ARITHMETIC.md; the C core (:mod:`qcore.ops`) must agree
with these functions bit for bit. This package never imports the C extension.
"""

from .dtypes import INT_TYPES, IntType, int_type
from .onnx_ops import dequantize_linear, dynamic_quantize_linear, quantize_linear, requantize_float
from .packing import pack_int2, pack_int4, unpack_int2, unpack_int4

__all__ = [
    "INT_TYPES",
    "IntType",
    "dequantize_linear",
    "dynamic_quantize_linear",
    "int_type",
    "pack_int2",
    "pack_int4",
    "quantize_linear",
    "requantize_float",
    "unpack_int2",
    "unpack_int4",
]
