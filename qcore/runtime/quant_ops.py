"""qcore's quantized operators (docs/GRAPH.md, "Quantized operators").

Each builder receives the node and the graph's initializers once, prepares (packs) the
weights, and returns ``fn(inputs) -> outputs`` that the executor calls per run:

- ``QMatMul(X, W[, B])``: ``W`` int8 ``(K, N)``; X quantized to ``x_dtype`` with static
  parameters (``activation="static"``, ``x_scale``, ``x_zero_point``) or per run
  (``activation="dynamic"``, per tensor or per row with ``per_row=1``); int32-exact
  product; float32 output ``acc * s_x * s_w + B``.
- ``QConv(X, W[, B])``: the same for Conv (im2col of the quantized input, padding with
  the zero point), all Conv attributes.
- ``WMatMul(X, W[, B])`` / ``WConv(X, W[, B])``: weight-only: int8/int4 weights
  (per-channel or blocked), float activations.
- ``QGather(W, indices[, ids, rows])``: an embedding table stored quantized (one scale
  per row, or per block of a row); the looked-up rows are dequantized to float32. With
  exception rows, an index listed in ``ids`` takes its row from ``rows`` instead.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import ModelError, ShapeError
from ..reference.tensor import QuantizedTensor
from . import kernels
from .float_ops import FLOAT_OPS, col2out, im2col
from ..graph.ir import Node

Step = Callable[[list], list]


def _weight(node: Node, initializers: dict) -> QuantizedTensor:
    w = initializers.get(node.inputs[1])
    if not isinstance(w, QuantizedTensor):
        raise ModelError(f"node {node.name!r} ({node.op}) needs a quantized weight initializer {node.inputs[1]!r}")
    return w


def _bias(node: Node, initializers: dict) -> np.ndarray | None:
    if len(node.inputs) < 3 or not node.inputs[2]:
        return None
    b = initializers.get(node.inputs[2])
    if not isinstance(b, np.ndarray):
        raise ModelError(f"node {node.name!r} ({node.op}) needs a constant float bias {node.inputs[2]!r}")
    return b.astype(np.float32, copy=False)


def _activation_quantizer(node: Node) -> Callable[[np.ndarray], tuple[np.ndarray, object, object]]:
    """Return ``x (M, K) -> (q, scale, zero_point)`` for the node's activation scheme."""
    attrs = node.attrs
    mode = attrs.get("activation", "dynamic")
    if mode == "static":
        dtype = attrs.get("x_dtype", "uint8")
        scale = np.float32(attrs["x_scale"])
        zp = int(attrs["x_zero_point"])
        return lambda x: (kernels.quantize(x, scale, zp, dtype), scale, zp)
    if mode == "dynamic":
        per_row = bool(attrs.get("per_row", 0))

        def dynamic(x: np.ndarray) -> tuple[np.ndarray, object, object]:
            if x.size == 0:  # an empty batch has no range; its product is empty anyway
                return np.zeros(x.shape, np.uint8), np.float32(1), np.float32(0)
            return kernels.dynamic_quantize(x, per_row)
        return dynamic
    raise ModelError(f"node {node.name!r}: unknown activation mode {mode!r}")


def build_qmatmul(node: Node, initializers: dict) -> Step:
    """QMatMul: quantize the float input (static or dynamic parameters), int8 GEMM on packed weights, float output."""
    w = _weight(node, initializers)
    packed = kernels.PackedLinear.from_matmul(w, _bias(node, initializers))
    quantize = _activation_quantizer(node)
    k, n = packed.k, packed.n
    fused = (node.attrs.get("activation", "dynamic") == "dynamic" and bool(node.attrs.get("per_row", 0))
             and packed.fuses_dynamic_rows)

    def run(inputs: list) -> list:
        x = inputs[0]
        if x.shape[-1] != k:
            raise ShapeError(f"node {node.name!r}: input has {x.shape[-1]} features, weight expects {k}")
        x2 = x.reshape(-1, k)
        if fused and x2.dtype == np.float32:  # quantize rows + GEMM + epilogue in one C call
            return [packed.run_dynamic_rows(x2).reshape(x.shape[:-1] + (n,))]
        q, scale, zp = quantize(x2)
        y = packed.run(q, scale, zp)
        return [y.reshape(x.shape[:-1] + (n,))]
    return run


def build_qconv(node: Node, initializers: dict) -> Step:
    """QConv (node-by-node plan): quantize the input, im2col, int8 GEMM on packed weights, float output."""
    w = _weight(node, initializers)
    group = int(node.attrs.get("group", 1))
    packed = kernels.PackedLinear.from_conv(w, group, _bias(node, initializers))
    kernel = list(w.data.shape[2:])
    quantize = _activation_quantizer(node)
    if node.attrs.get("per_row"):
        raise ModelError(f"node {node.name!r}: QConv supports per-tensor activations only")
    c_in = w.data.shape[1] * group

    def run(inputs: list) -> list:
        x = inputs[0]
        if x.ndim != len(kernel) + 2 or x.shape[1] != c_in:
            raise ShapeError(f"node {node.name!r}: input {x.shape} does not fit weight {w.data.shape}")
        q, scale, zp = quantize(x)
        cols, out_spatial = im2col(q, kernel, group, node.attrs, pad_value=int(np.asarray(zp)))
        y = packed.run(cols, scale, zp)
        return [col2out(y, x.shape[0], out_spatial)]
    return run


def build_wmatmul(node: Node, initializers: dict) -> Step:
    """WMatMul: float input times the int8 / int4 weight (blocked int4 through :class:`kernels.Int4Linear`)."""
    w = _weight(node, initializers)
    bias = _bias(node, initializers)
    if w.dtype in ("int4", "uint4") and len(w.shape) == 2 and (
            (w.axis == 0 and w.block_size) or (w.axis == 1 and not w.block_size)):
        linear = kernels.Int4Linear(w, bias)
        k, n = linear.k, linear.n

        def run_int4(inputs: list) -> list:
            x = inputs[0]
            if x.shape[-1] != k:
                raise ShapeError(f"node {node.name!r}: input has {x.shape[-1]} features, weight expects {k}")
            return [linear.run(x)]
        return run_int4

    def run(inputs: list) -> list:
        y = np.matmul(inputs[0], kernels.dequantize_weight(w))
        return [y + bias if bias is not None else y]
    return run


def build_wconv(node: Node, initializers: dict) -> Step:
    """WConv: the float convolution of the input with the dequantized weight."""
    w = _weight(node, initializers)
    bias = _bias(node, initializers)
    conv = FLOAT_OPS["Conv"]

    def run(inputs: list) -> list:
        return conv([inputs[0], kernels.dequantize_weight(w), bias], node.attrs)
    return run


def _exception_rows(node: Node, initializers: dict, table: QuantizedTensor) -> tuple[np.ndarray, np.ndarray] | None:
    """QGather's optional ``(ids, rows)`` inputs, checked: sorted ids and their float32 rows."""
    extra = node.inputs[2:]
    if not extra:
        return None
    ids = initializers.get(extra[0])
    rows = initializers.get(extra[1]) if len(extra) == 2 else None
    if len(extra) != 2 or not isinstance(ids, np.ndarray) or not isinstance(rows, QuantizedTensor):
        raise ModelError(f"node {node.name!r} (QGather): exception rows need two initializers, "
                         "integer ids and a quantized table of their rows")
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise ModelError(f"node {node.name!r} (QGather): exception ids must be 1-D integers, got "
                         f"{ids.dtype} {ids.shape}")
    ids = ids.astype(np.int64)
    if ids.size and (ids[0] < 0 or ids[-1] >= table.shape[0] or np.any(np.diff(ids) <= 0)):
        raise ModelError(f"node {node.name!r} (QGather): exception ids must be strictly increasing "
                         f"and in [0, {table.shape[0] - 1}]")
    if (rows.axis, bool(rows.block_size)) not in ((None, False), (0, False), (1, True)):
        raise ModelError(f"node {node.name!r} (QGather): exception rows must be quantized per tensor, per row "
                         f"or in blocks along the row, got axis {rows.axis}, block size {rows.block_size}")
    if tuple(rows.shape) != (ids.size, table.shape[1]):
        raise ModelError(f"node {node.name!r} (QGather): exception rows {tuple(rows.shape)} do not match "
                         f"{ids.size} ids of a table with {table.shape[1]} columns")
    return ids, kernels.dequantize_rows(rows, np.arange(ids.size))


def build_qgather(node: Node, initializers: dict) -> Step:
    """QGather: gather rows of a quantized table and dequantize only those rows.

    Exception rows (inputs 2 and 3, :func:`qcore.graph.transformer.quantize_transformer`
    stores the most looked-up rows of an int4 vocabulary table again in int8) replace the
    table's row for every index they list.
    """
    table = initializers.get(node.inputs[0])
    if not isinstance(table, QuantizedTensor) or len(table.shape) != 2:
        raise ModelError(f"node {node.name!r} (QGather) needs a 2-D quantized table {node.inputs[0]!r}")
    rows = table.shape[0]
    exceptions = _exception_rows(node, initializers, table)

    def run(inputs: list) -> list:
        idx = np.asarray(inputs[1]).astype(np.int64, copy=False)
        if idx.size and (idx.min() < -rows or idx.max() >= rows):
            raise ShapeError(f"node {node.name!r}: index out of range [{-rows}, {rows - 1}]")
        idx = np.where(idx < 0, idx + rows, idx)
        out = kernels.dequantize_rows(table, idx)
        if exceptions is not None and exceptions[0].size:
            ids, values = exceptions
            where = np.minimum(np.searchsorted(ids, idx), ids.size - 1)
            hit = ids[where] == idx
            out[hit] = values[where[hit]]
        return [out]
    return run


QUANT_BUILDERS: dict[str, Callable[[Node, dict], Step]] = {
    "QGather": build_qgather,
    "QMatMul": build_qmatmul,
    "QConv": build_qconv,
    "WMatMul": build_wmatmul,
    "WConv": build_wconv,
}
