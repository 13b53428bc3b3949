"""The NumPy reference: qcore's arithmetic, written once, naive and readable.

Every formula is stated in docs/ARITHMETIC.md; the C core (:mod:`qcore.ops`) must agree
with these functions bit for bit. This package never imports the C extension.
"""

from .conv import conv_integer, qlinear_conv
from .dtypes import INT_TYPES, IntType, int_type
from .matmul import matmul_integer, qlinear_matmul
from .onnx_ops import dequantize_linear, dynamic_quantize_linear, quantize_linear
from .packing import pack_int2, pack_int4, unpack_int2, unpack_int4
from .requant import requantize_float

__all__ = [
    "INT_TYPES",
    "IntType",
    "conv_integer",
    "dequantize_linear",
    "dynamic_quantize_linear",
    "int_type",
    "matmul_integer",
    "pack_int2",
    "pack_int4",
    "qlinear_conv",
    "qlinear_matmul",
    "quantize_linear",
    "requantize_float",
    "unpack_int2",
    "unpack_int4",
]
