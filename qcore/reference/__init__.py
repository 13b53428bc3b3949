"""The NumPy reference: qcore's arithmetic, written once, naive and readable.

Every formula is stated in docs/ARITHMETIC.md; the C core (:mod:`qcore.ops`) must agree
with these functions bit for bit. This package never imports the C extension.

The ONNX operators are the default convention; :mod:`qcore.reference.tflite` and
:mod:`qcore.reference.pytorch` reproduce those ecosystems on request, and
:mod:`qcore.reference.fixedpoint` holds TFLite's integer-only requantization.
"""

from . import pytorch, tflite
from .conv import conv_integer, qlinear_conv
from .dtypes import INT_TYPES, IntType, int_type
from .fixedpoint import (
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)
from .matmul import matmul_integer, qlinear_matmul
from .metrics import cosine_similarity, fraction_clipped, max_error_in_steps, sqnr
from .observers import (
    EntropyObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MSEObserver,
    PercentileObserver,
)
from .onnx_ops import dequantize_linear, dynamic_quantize_linear, quantize_linear
from .packing import pack_int2, pack_int4, unpack_int2, unpack_int4
from .params import choose_qparams, quant_range
from .quantize import quantize_tensor
from .requant import requantize_float
from .tensor import QuantizedTensor

__all__ = [
    "INT_TYPES",
    "EntropyObserver",
    "IntType",
    "MSEObserver",
    "MinMaxObserver",
    "MovingAverageMinMaxObserver",
    "PercentileObserver",
    "QuantizedTensor",
    "choose_qparams",
    "conv_integer",
    "cosine_similarity",
    "dequantize_linear",
    "dynamic_quantize_linear",
    "fraction_clipped",
    "int_type",
    "matmul_integer",
    "max_error_in_steps",
    "multiply_by_quantized_multiplier",
    "pack_int2",
    "pack_int4",
    "pytorch",
    "qlinear_conv",
    "qlinear_matmul",
    "quant_range",
    "quantize_linear",
    "quantize_multiplier",
    "quantize_tensor",
    "requantize_float",
    "rounding_divide_by_pot",
    "saturating_rounding_doubling_high_mul",
    "sqnr",
    "tflite",
    "unpack_int2",
    "unpack_int4",
]
