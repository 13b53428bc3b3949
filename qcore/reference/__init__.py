"""The NumPy reference: qcore's arithmetic, written once, naive and readable.

Every formula is stated in docs/ARITHMETIC.md; the C core (:mod:`qcore.ops`) must agree
with these functions bit for bit. This package never imports the C extension.

The ONNX operators are the default convention; :mod:`qcore.reference.tflite` and
:mod:`qcore.reference.pytorch` reproduce those ecosystems on request, and
:mod:`qcore.reference.fixedpoint` holds TFLite's integer-only requantization.
"""

from .._lazy import lazy_exports

# Public names import their submodule on first use (qcore/_lazy.py): loading a model
# needs QuantizedTensor, not the observers or the other conventions.
_EXPORTS = {
    "pytorch": "pytorch",
    "tflite": "tflite",
    "conv_integer": "conv",
    "qlinear_conv": "conv",
    "INT_TYPES": "dtypes",
    "IntType": "dtypes",
    "int_type": "dtypes",
    "multiply_by_quantized_multiplier": "fixedpoint",
    "quantize_multiplier": "fixedpoint",
    "rounding_divide_by_pot": "fixedpoint",
    "saturating_rounding_doubling_high_mul": "fixedpoint",
    "matmul_integer": "matmul",
    "qlinear_matmul": "matmul",
    "cosine_similarity": "metrics",
    "fraction_clipped": "metrics",
    "max_error_in_steps": "metrics",
    "sqnr": "metrics",
    "EntropyObserver": "observers",
    "MinMaxObserver": "observers",
    "MovingAverageMinMaxObserver": "observers",
    "MSEObserver": "observers",
    "PercentileObserver": "observers",
    "dequantize_linear": "onnx_ops",
    "dynamic_quantize_linear": "onnx_ops",
    "quantize_linear": "onnx_ops",
    "pack_int2": "packing",
    "pack_int4": "packing",
    "unpack_int2": "packing",
    "unpack_int4": "packing",
    "choose_qparams": "params",
    "quant_range": "params",
    "quantize_tensor": "quantize",
    "requantize_float": "requant",
    "QuantizedTensor": "tensor",
}
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)

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
