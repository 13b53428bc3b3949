"""Fast quantized operations on the C core, bit-exact with :mod:`qcore.reference`.

The ONNX operators here take exactly the reference's arguments (plus keyword-only ``isa``
and, for matrix products, ``num_threads``) and return bit-identical results on every
instruction-set path; the tests compare each path with the reference. The pre-packed
weight API (:class:`PackedWeights`, :func:`linear_packed`, :class:`Int4Weights`) is what
the runtime uses: pack a weight matrix once, multiply many times. The convolution
(:class:`Conv2d`), the one-call dynamic linear layer (:func:`linear_dynamic`) and the
float32 activations of transformer models (:func:`erf`, :func:`gelu`, :func:`softmax`,
:func:`attention_scores`, :func:`attention`, identical bits on every path) complete the set
the runtime needs.

``isa=None`` uses ``QCORE_ISA`` if set, else the best path this CPU runs;
:func:`available_isas` lists the paths. ``num_threads=None`` uses ``QCORE_NUM_THREADS``,
else 1. The GIL is released during every C call.
"""

from __future__ import annotations

from ._conv import Conv2d, ConvWeights, MaxPool2d, conv_integer, max_pool2d, qlinear_conv
from ._activation import erf, gelu, softmax
from ._attention import attention, attention_scores
from ._elementwise import (
    dequantize_linear,
    dynamic_quantize_linear,
    pack_int4,
    quantize_linear,
    requantize,
    requantize_fixedpoint,
    unpack_int4,
)
from ._gemm import (
    Int4Weights,
    PackedWeights,
    linear_int4,
    linear_packed,
    matmul_integer,
    matmul_integer_packed,
    qlinear_matmul,
    qlinear_matmul_packed,
)
from ._linear import linear_dynamic
from ._native import available_isas, default_isa

__all__ = [
    "Conv2d",
    "ConvWeights",
    "Int4Weights",
    "MaxPool2d",
    "PackedWeights",
    "attention",
    "attention_scores",
    "available_isas",
    "conv_integer",
    "default_isa",
    "dequantize_linear",
    "dynamic_quantize_linear",
    "erf",
    "gelu",
    "linear_dynamic",
    "linear_int4",
    "linear_packed",
    "matmul_integer",
    "matmul_integer_packed",
    "max_pool2d",
    "pack_int4",
    "qlinear_conv",
    "qlinear_matmul",
    "qlinear_matmul_packed",
    "quantize_linear",
    "requantize",
    "requantize_fixedpoint",
    "softmax",
    "unpack_int4",
]
