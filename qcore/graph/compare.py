"""Per-layer error report of a quantized model against its float model.

Both models run over the same data batch by batch; per layer only running sums are kept
(bounded memory). For every quantized node:

- ``sqnr_db``: ``10 log10(sum f^2 / sum (q - f)^2)`` of the node output (q quantized
  model, f float model, both fed the same model inputs, so errors accumulate as in use);
- ``cosine``: cosine similarity of the flattened outputs;
- ``max_error_steps``: the largest ``|dequantize(quantize(v)) - v| / scale`` over what the
  node quantizes: its float input activation (QMatMul / QConv) or its weight (weight-only
  layers, embedding tables);
  at most 0.5 inside the range;
- ``fraction_clipped``: the fraction of those values outside the representable range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import ModelError
from ..reference.tensor import QuantizedTensor
from .ir import Graph, Node
from .quantize import iter_calibration_batches

QUANTIZED_OPS = ("QMatMul", "QConv", "WMatMul", "WConv", "QGather")
_RANGES = {"uint8": (0, 255), "int8": (-128, 127)}


@dataclass
class LayerReport:
    """Error figures of one layer (see the module docstring)."""

    name: str
    op: str
    output: str
    sqnr_db: float
    cosine: float
    max_error_steps: float
    fraction_clipped: float


class _Sums:
    def __init__(self) -> None:
        self.signal = self.noise = self.dot = self.qq = 0.0
        self.max_steps = 0.0
        self.clipped = 0
        self.count = 0

    def add_output(self, q: np.ndarray, f: np.ndarray) -> None:
        q64, f64 = q.astype(np.float64).reshape(-1), f.astype(np.float64).reshape(-1)
        self.signal += float(f64 @ f64)
        diff = q64 - f64
        self.noise += float(diff @ diff)
        self.dot += float(q64 @ f64)
        self.qq += float(q64 @ q64)

    def add_steps(self, steps: float, clipped: int, count: int) -> None:
        self.max_steps = max(self.max_steps, steps)
        self.clipped += clipped
        self.count += count

    def report(self, node: Node, output: str) -> LayerReport:
        sqnr = float("inf") if self.noise == 0 else 10 * np.log10(max(self.signal, 1e-300) / self.noise)
        denom = np.sqrt(self.signal * self.qq)
        cosine = 1.0 if denom == 0 else self.dot / denom
        return LayerReport(node.name, node.op, output, float(sqnr), float(cosine), self.max_steps,
                           self.clipped / self.count if self.count else 0.0)


def _activation_steps(node: Node, x: np.ndarray) -> tuple[float, int, int]:
    attrs = node.attrs
    x = x.astype(np.float32)
    if attrs.get("activation") == "static":
        lo_q, hi_q = _RANGES[attrs.get("x_dtype", "uint8")]
        scale, zp = np.float32(attrs["x_scale"]), float(attrs["x_zero_point"])
    else:
        lo_q, hi_q = 0, 255
        lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
        scale = np.float32((hi - lo) / 255) or np.float32(1)
        zp = float(np.clip(np.rint(-lo / scale), 0, 255))
    q = np.clip(np.rint(x / scale) + zp, lo_q, hi_q)
    steps = float(np.abs((q - zp) * scale - x).max() / scale) if x.size else 0.0
    lo_r, hi_r = (lo_q - zp) * float(scale), (hi_q - zp) * float(scale)
    clipped = int(np.count_nonzero((x < lo_r - 0.5 * float(scale)) | (x > hi_r + 0.5 * float(scale))))
    return steps, clipped, int(x.size)


def _weight_steps(weight: QuantizedTensor, float_weight: np.ndarray) -> tuple[float, int, int]:
    from ..reference.dtypes import int_type  # noqa: PLC0415
    from ..runtime.kernels import dequantize_weight  # noqa: PLC0415

    deq = dequantize_weight(weight)
    scale = dequantize_weight(QuantizedTensor(np.ones_like(weight.data), weight.scale,
                                              np.zeros_like(weight.zero_point), weight.dtype,
                                              weight.axis, weight.block_size))
    err = np.abs(deq - float_weight) / scale
    itype = int_type(weight.dtype)
    data = weight.data.astype(np.int64)
    # saturated and more than half a step away (beyond float rounding of the 0.5 bound)
    clipped = int(np.count_nonzero(((data == itype.qmin) | (data == itype.qmax)) & (err > 0.5 + 1e-3)))
    return float(err.max()), clipped, int(err.size)


def compare_models(float_graph: Graph, quant_graph: Graph, data: Any, *, batch_size: int = 64,
                   progress: Callable[[int, int], None] | None = None) -> list[LayerReport]:
    """Run both graphs over ``data`` and report every quantized layer, worst SQNR first.

    Parameters
    ----------
    float_graph, quant_graph : Graph
        The float model and a quantized model derived from it (same input names).
    data : mapping or iterable of mappings
        As for calibration: ``{input name: array}`` with samples along axis 0.

    Raises
    ------
    ModelError
        The models do not correspond (different inputs, or no quantized layer whose
        output the float model also computes).
    """
    from ..runtime.executor import Executor  # noqa: PLC0415

    if [v.name for v in float_graph.inputs] != [v.name for v in quant_graph.inputs]:
        raise ModelError("the float and quantized models have different inputs: "
                         f"{[v.name for v in float_graph.inputs]} vs {[v.name for v in quant_graph.inputs]}")
    float_values = {o for n in float_graph.nodes for o in n.outputs}
    layers = [n for n in quant_graph.nodes if n.op in QUANTIZED_OPS and n.outputs[0] in float_values]
    if not layers:
        raise ModelError("no quantized layer of the second model matches a value of the float model")
    outputs = [v.name for v in quant_graph.outputs if v.name in float_values | {i.name for i in float_graph.inputs}]
    wanted_f = {n.outputs[0] for n in layers} | {n.inputs[0] for n in layers} | set(outputs)
    wanted_q = {n.outputs[0] for n in layers} | set(outputs)
    sums = {n.name: _Sums() for n in layers}
    out_sums = {name: _Sums() for name in outputs}

    for node in layers:  # weight-only layers: the quantized tensor is the weight
        if node.op in ("WMatMul", "WConv", "QGather"):
            w_input = node.inputs[0] if node.op == "QGather" else node.inputs[1]
            fw = float_graph.initializers.get(w_input.rsplit(".", 1)[0])
            if isinstance(fw, np.ndarray):
                sums[node.name].add_steps(*_weight_steps(quant_graph.initializers[w_input], fw))

    fexec, qexec = Executor(float_graph), Executor(quant_graph)
    batches, total = iter_calibration_batches(float_graph, data, batch_size)
    done = 0
    for feeds in batches:
        fvals: dict[str, np.ndarray] = {}
        qvals: dict[str, np.ndarray] = {}
        checked = fexec._check_feeds(feeds)
        fvals.update({k: v for k, v in checked.items() if k in wanted_f})
        fexec.run(checked, observe=lambda n, v: fvals.__setitem__(n, v) if n in wanted_f else None)
        qexec.run(checked, observe=lambda n, v: qvals.__setitem__(n, v) if n in wanted_q else None)
        for node in layers:
            s = sums[node.name]
            s.add_output(qvals[node.outputs[0]], fvals[node.outputs[0]])
            if node.op in ("QMatMul", "QConv"):
                s.add_steps(*_activation_steps(node, fvals[node.inputs[0]]))
        for name in outputs:
            out_sums[name].add_output(qvals[name], fvals[name])
        done += 1
        if progress is not None:
            progress(done, total)
    reports = [sums[n.name].report(n, n.outputs[0]) for n in layers]
    reports.sort(key=lambda r: r.sqnr_db)
    reports += [out_sums[name].report(Node("output", [], [name], {}, f"output {name}"), name) for name in outputs]
    return reports
