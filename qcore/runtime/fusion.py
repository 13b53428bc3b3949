"""The runtime's fast plan: static int8 chains kept in int8 between layers.

A static quantized node (``QConv`` 2-D, ``QMatMul``) computes ``y = float32(acc) * m + b``
and the next static quantized node quantizes ``y`` (after any ReLU / MaxPool / Flatten in
between) with its own ``(x_scale, x_zero_point)``. The fast plan computes the same bits
with fewer passes and fewer Python steps:

- the producer's C output stage (``qcore._conv.Conv2d``, ``"quantize"``) writes ``y``
  already quantized with the consumer's parameters; a ReLU in the chain is the clamp
  ``q >= zero_point`` (``quantize(max(y, 0)) == max(quantize(y), quantize(0))`` because
  quantization is monotonic and ``quantize(0) == zero_point``), so it costs nothing;
- MaxPool runs on the int8 values (``max`` commutes with a monotonic quantization); a
  pool whose windows tile the image (kernel = strides, no padding or dilation, floor
  mode) runs inside the producing convolution's output stage (``Conv2d(pool=...)``), which
  then writes only the pooled bytes;
- int8 activations between convolutions stay NHWC (im2col copies channel runs); a Flatten
  before a ``QMatMul`` is a reshape, the MatMul weight rows permuted once from
  ``(c, h, w)`` to ``(h, w, c)`` order (the integer sum does not depend on the order);
- a ``QMatMul`` is a 1x1 convolution of an NHWC ``[M, 1, 1, K]`` input, so one C call
  quantizes its float input, multiplies and applies the output stage.

For runs without per-node timing, :meth:`FastPlan.chained` merges consecutive fused steps
whose intermediate values nothing else reads into one step (``Int8Chain``): one Python
step per chain instead of one per node, and the int8 intermediates written into buffers
kept from the previous run of the same input shape (no allocation, no page faults). The
merged step runs the same steps in the same order, so its outputs are the same bits.

Every value the plan produces that a user can see (graph outputs, float values read by
float operators) is bit-identical with the node-by-node plan, which stays in use whenever
intermediate values are requested (``observe`` / ``outputs``: calibration, ``qcore
compare``). Only nodes the C engine would run are fused (groups <= ``kernels.C_MAX_GROUPS``,
so ``C_MAX_GROUPS = 0`` turns the fast plan off and leaves the NumPy engine).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import ModelError, QcoreError, ShapeError
from ..graph.ir import Graph, Node
from ..reference.tensor import QuantizedTensor
from . import kernels
from .float_ops import _pool_extra, conv_geometry

Step = Callable[[list], list]


@dataclass
class _Chain:
    consumer: int        # index of the consuming static node
    relu: bool           # a ReLU somewhere in the chain
    flatten: bool        # a Flatten before a QMatMul consumer


def _static(node: Node) -> bool:
    return node.attrs.get("activation", "dynamic") == "static" and not node.attrs.get("per_row")


def _fusable(node: Node, inits: dict) -> bool:
    """A static QConv (2-D, explicit pads) or QMatMul that the C engine would run."""
    if node.op not in ("QConv", "QMatMul") or not _static(node):
        return False
    w = inits.get(node.inputs[1])
    if not isinstance(w, QuantizedTensor) or w.dtype not in ("int8", "uint8") or w.block_size:
        return False
    if len(node.inputs) > 2 and node.inputs[2] and not isinstance(inits.get(node.inputs[2]), np.ndarray):
        return False
    if node.attrs.get("x_dtype", "uint8") not in ("uint8", "int8"):
        return False
    if node.op == "QMatMul":
        return w.data.ndim == 2 and w.axis in (None, 1) and kernels.C_MAX_GROUPS >= 1
    group = int(node.attrs.get("group", 1))
    return (w.data.ndim == 4 and w.axis in (None, 0) and group <= kernels.C_MAX_GROUPS
            and node.attrs.get("auto_pad", "NOTSET") in ("NOTSET", "VALID"))


def _pool_fusable(node: Node) -> bool:
    attrs = node.attrs
    return (len(attrs.get("kernel_shape", [])) == 2 and not attrs.get("storage_order", 0)
            and (len(node.outputs) == 1 or not node.outputs[1]))


def _tiling_pool(node: Node) -> tuple[int, int] | None:
    """``(height, width)`` of a MaxPool whose windows tile the input, else None.

    Kernel equal to the strides, no padding, no dilation, floor mode: the pool the
    convolution's output stage can apply (``qcore._conv.Conv2d``, ``pool``).
    """
    attrs = node.attrs
    kernel = [int(k) for k in attrs.get("kernel_shape", [])]
    if len(kernel) != 2 or min(kernel) < 1:
        return None
    if [int(v) for v in attrs.get("strides", [1, 1])] != kernel:
        return None
    if any(int(p) for p in attrs.get("pads", [0, 0, 0, 0])) or any(int(d) != 1 for d in attrs.get("dilations", [1, 1])):
        return None
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID") or int(attrs.get("ceil_mode", 0)):
        return None
    return kernel[0], kernel[1]


class FastPlan:
    """Decisions of the fast plan for one graph (see the module notes).

    ``replaced`` are the node indices the fast plan runs with its own steps; ``steps``
    builds the plan from the node-by-node steps (reused for every other node).
    """

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        nodes = graph.nodes
        inits = graph.initializers
        readers: dict[str, list[int]] = {}
        for index, node in enumerate(nodes):
            for name in node.inputs:
                if name:
                    readers.setdefault(name, []).append(index)
        outputs = {v.name for v in graph.outputs}
        self.chains: dict[int, _Chain] = {}       # producer -> chain
        self.absorbed: set[int] = set()          # Relu / Flatten nodes folded into a chain
        self.pools: set[int] = set()             # MaxPool nodes on int8 values
        self.fused_pools: dict[int, tuple[int, int]] = {}  # producer -> pool in its output stage
        self.consumers: dict[int, _Chain] = {}   # consumer -> chain
        fusable = {i for i, node in enumerate(nodes) if _fusable(node, inits)}
        for index in sorted(fusable):
            producer = nodes[index]
            value = producer.outputs[0]
            relu = flatten = False
            absorbed, pools = [], []
            consumer = None
            while value not in outputs and len(readers.get(value, [])) == 1:
                r = readers[value][0]
                node = nodes[r]
                if node.inputs[0] != value:
                    break
                if node.op == "Relu":
                    relu = True
                    absorbed.append(r)
                elif node.op == "MaxPool" and producer.op == "QConv" and not flatten and _pool_fusable(node):
                    pools.append(r)
                elif (node.op == "Flatten" and producer.op == "QConv" and not flatten
                      and int(node.attrs.get("axis", 1)) == 1):
                    flatten = True
                    absorbed.append(r)
                elif r in fusable and r not in self.consumers:
                    if nodes[r].op == "QConv" and producer.op == "QConv" and not flatten:
                        consumer = r
                    elif nodes[r].op == "QMatMul" and (flatten if producer.op == "QConv" else True):
                        consumer = r
                    break
                else:
                    break
                value = node.outputs[0]
            if consumer is None:
                continue
            if flatten and not self._flatten_fits(producer, nodes[consumer]):
                continue
            chain = _Chain(consumer, relu, flatten)
            self.chains[index] = chain
            self.consumers[consumer] = chain
            self.absorbed.update(absorbed)
            tiling = _tiling_pool(nodes[pools[0]]) if len(pools) == 1 else None
            if tiling is not None:  # max commutes with the ReLU clamp, so its place in the chain is free
                self.fused_pools[index] = tiling
                self.absorbed.update(pools)
            else:
                self.pools.update(pools)
        self.replaced = set(self.chains) | set(self.consumers) | self.absorbed | self.pools
        self._linkable: set[int] = set()  # id() of the fused steps chained() may merge

    def _flatten_fits(self, producer: Node, consumer: Node) -> bool:
        channels = self.graph.initializers[producer.inputs[1]].data.shape[0]
        k = self.graph.initializers[consumer.inputs[1]].data.shape[0]
        return k % channels == 0

    def __bool__(self) -> bool:
        return bool(self.chains)

    # ------------------------------------------------------------------ building steps
    def steps(self, plain: list[tuple[Node, Step, list[str], bool]]) -> list[tuple[Node, Step, list[str], bool]]:
        """The fast plan: fused steps for the chains, the given steps for every other node."""
        nodes = self.graph.nodes
        alias: dict[str, str] = {}
        built: list[tuple[Node, Step, bool]] = []
        for index, node in enumerate(nodes):
            inputs = [alias.get(name, name) for name in node.inputs]
            if index in self.absorbed:
                alias[node.outputs[0]] = inputs[0]
                continue
            if index in self.chains or index in self.consumers:
                step = self._quantized_step(index, node)
                self._linkable.add(id(step))
                op = node.op + ("+MaxPool" if index in self.fused_pools else "") + (
                    "+int8 out" if index in self.chains else "")
                built.append((Node(op, inputs, list(node.outputs), node.attrs, node.name), step, False))
            elif index in self.pools:
                built.append((Node("MaxPool(int8)", inputs, list(node.outputs), node.attrs, node.name),
                              _int8_max_pool(node), False))
            else:
                _, fn, _, is_shape = plain[index]
                built.append((Node(node.op, inputs, node.outputs, node.attrs, node.name), fn, is_shape))
        last_use: dict[str, int] = {}
        for position, (node, _, _) in enumerate(built):
            for name in node.inputs:
                if name:
                    last_use[name] = position
        keep = {v.name for v in self.graph.outputs} | set(self.graph.initializers)
        release: list[list[str]] = [[] for _ in built]
        for name, position in last_use.items():
            if name not in keep:
                release[position].append(name)
        return [(node, fn, release[i], is_shape) for i, (node, fn, is_shape) in enumerate(built)]

    def chained(self, steps: list[tuple[Node, Step, list[str], bool]]) -> list[tuple[Node, Step, list[str], bool]]:
        """``steps`` (from :meth:`steps`) with each run of linked fused steps merged into one.

        Steps link when the next one's input is the previous one's output and no other
        step or graph output reads that value (it is released right there).
        """
        outputs = {v.name for v in self.graph.outputs}
        merged: list[tuple[Node, Step, list[str], bool]] = []
        run: list[tuple[Node, Step, list[str], bool]] = []

        def flush() -> None:
            if len(run) == 1:
                merged.append(run[0])
            elif run:
                first, last = run[0][0], run[-1][0]
                node = Node("Int8Chain", list(first.inputs), list(last.outputs), {}, first.name)
                release = sorted({name for _, _, names, _ in run for name in names})
                merged.append((node, _chain_step([(n, fn) for n, fn, _, _ in run]), release, False))
            run.clear()

        for step in steps:
            node, fn = step[0], step[1]
            if id(fn) in self._linkable and run:
                previous, _, previous_release, _ = run[-1]
                value = previous.outputs[0] if len(previous.outputs) == 1 else None
                if value and value not in outputs and node.inputs[0] == value and value in step[2] and all(
                        name != value for name in node.inputs[1:]):
                    run.append(step)
                    continue
            flush()
            if id(fn) in self._linkable:
                run.append(step)
            else:
                merged.append(step)
        flush()
        return merged

    def _quantized_step(self, index: int, node: Node) -> Step:
        from .. import _conv  # noqa: PLC0415

        inits = self.graph.initializers
        w: QuantizedTensor = inits[node.inputs[1]]
        bias = None
        if len(node.inputs) > 2 and node.inputs[2]:
            bias = np.ascontiguousarray(inits[node.inputs[2]], dtype=np.float32).reshape(-1)
        attrs = node.attrs
        x_dtype = attrs.get("x_dtype", "uint8")
        x_scale = np.float32(attrs["x_scale"])
        x_zp = int(attrs["x_zero_point"])
        int8_in = index in self.consumers
        multiplier = (x_scale * np.asarray(w.scale, np.float32).reshape(-1)).astype(np.float32)
        out: dict = {"output": "float32", "output_layout": "NCHW"}
        if index in self.chains:
            chain = self.chains[index]
            nxt = self.graph.nodes[chain.consumer].attrs
            out_dtype = nxt.get("x_dtype", "uint8")
            out_zp = int(nxt["x_zero_point"])
            info = np.iinfo(out_dtype)
            out = {"output": "quantize", "output_layout": "NHWC", "output_scale": np.float32(nxt["x_scale"]),
                   "output_zero_point": out_zp, "output_dtype": out_dtype,
                   "clamp": (out_zp, int(info.max)) if chain.relu else None, "pool": self.fused_pools.get(index)}
        zp = np.asarray(w.zero_point).reshape(-1).astype(w.dtype)
        if node.op == "QConv":
            group = int(attrs.get("group", 1))
            kernel = list(w.data.shape[2:])
            strides, dilations, begin, end = conv_geometry((0, 0, 1, 1), kernel, attrs)
            layout = "NHWC" if int8_in else "NCHW"
            weights = _conv.ConvWeights(w.data, zp if zp.size > 1 else zp.reshape(()), group=group)
            conv = _conv.Conv2d(weights, input_layout=layout, x_dtype=x_dtype if int8_in else "float32",
                                x_scale=x_scale,
                                x_zero_point=x_zp, quantized_dtype=x_dtype, strides=strides, dilations=dilations,
                                pads=[begin[0], begin[1], end[0], end[1]], multiplier=multiplier, bias=bias, **out)
            channels = w.data.shape[1] * group

            def run_conv(inputs: list, out: np.ndarray | None = None) -> list:
                x = inputs[0]
                if not int8_in:
                    if x.ndim != 4 or x.shape[1] != channels:
                        raise ShapeError(f"input {x.shape} does not fit weight {w.data.shape}")
                    if x.dtype != np.float32:
                        x = x.astype(np.float32)
                return [conv(x, out)]
            return run_conv

        k, n = w.data.shape
        data = w.data
        chain = self.consumers.get(index)
        if chain is not None and chain.flatten:
            # rows of a (c, h, w)-flattened input, reordered to the (h, w, c) order of NHWC
            producer = next(p for p, c in self.chains.items() if c is chain)
            channels = inits[self.graph.nodes[producer].inputs[1]].data.shape[0]
            data = data.reshape(channels, k // channels, n).transpose(1, 0, 2).reshape(k, n)
        weights = _conv.ConvWeights(np.ascontiguousarray(data.T).reshape(n, k, 1, 1),
                                    zp if zp.size > 1 else zp.reshape(()))
        linear = _conv.Conv2d(weights, input_layout="NHWC", x_dtype=x_dtype if int8_in else "float32", x_scale=x_scale,
                              x_zero_point=x_zp, quantized_dtype=x_dtype, multiplier=multiplier, bias=bias, **out)

        def run_linear(inputs: list, out: np.ndarray | None = None) -> list:
            x = inputs[0]
            if chain is not None and chain.flatten:
                lead: tuple = (x.shape[0],)
                rows = x.reshape(x.shape[0], 1, 1, math.prod(x.shape[1:]))
            else:
                lead = x.shape[:-1]
                rows = x.reshape(math.prod(lead), 1, 1, x.shape[-1])
            if rows.shape[-1] != k:
                raise ShapeError(f"input has {rows.shape[-1]} features, weight expects {k}")
            if not int8_in and rows.dtype != np.float32:
                rows = rows.astype(np.float32)
            return [linear(rows, out).reshape(lead + (n,))]
        return run_linear


#: Input shapes per chain whose intermediate buffers are kept (all dropped when exceeded).
_CHAIN_SHAPES = 4


def _chain_step(parts: list[tuple[Node, Step]]) -> Step:
    """One step running the fused steps ``parts`` in order, each feeding the next.

    Each intermediate output is kept and passed back as ``out`` on the next run with the
    same input shape (the fused steps write into it when it fits); only the last
    output leaves the step, freshly allocated. A lock makes concurrent runs of the same
    model take turns (the prepared C arguments are shared).
    """
    lock = threading.Lock()
    kept: dict[tuple, list] = {}
    inner = parts[:-1]
    last_fn = parts[-1][1]

    def run(inputs: list) -> list:
        x = inputs[0]
        key = (x.shape, x.dtype.str)
        with lock:
            buffers = kept.get(key)
            fresh = buffers is None
            if fresh:
                if len(kept) >= _CHAIN_SHAPES:
                    kept.clear()
                buffers = kept[key] = [None] * len(inner)
            position = 0
            try:
                for position, (_, fn) in enumerate(inner):
                    x = fn([x], buffers[position])[0]
                    if fresh:
                        buffers[position] = x
                position = len(inner)
                return last_fn([x])
            except (QcoreError, ValueError, TypeError, IndexError, FloatingPointError) as exc:
                kept.pop(key, None)
                if position == 0:  # reported as the chain's node, named after its first node
                    raise
                node = parts[position][0]
                raise type(exc)(f"in {node.name!r} ({node.op}): {exc}") from None
    return run


def _int8_max_pool(node: Node) -> Step:
    from .. import _conv  # noqa: PLC0415

    attrs = node.attrs
    kernel = list(attrs["kernel_shape"])
    ceil_mode = bool(attrs.get("ceil_mode", 0))
    pools: dict[tuple, _conv.MaxPool2d] = {}  # per input height and width (auto_pad, ceil_mode)

    def run(inputs: list) -> list:
        x = inputs[0]  # int8 / uint8 NHWC
        pool = pools.get(x.shape[1:3])
        if pool is None:
            nchw = (x.shape[0], x.shape[3], x.shape[1], x.shape[2])
            strides, dilations, begin, end = conv_geometry(nchw, kernel, attrs)
            extra = _pool_extra(nchw, kernel, strides, dilations, begin, end, ceil_mode)
            pads = [begin[0], begin[1], end[0] + extra[0], end[1] + extra[1]]
            if len(pools) >= 16:
                pools.clear()
            pool = pools[x.shape[1:3]] = _conv.MaxPool2d(kernel, strides=strides, dilations=dilations, pads=pads,
                                                         layout="NHWC")
        return [pool(x)]
    return run


def build(graph: Graph) -> FastPlan | None:
    """The fast plan's decisions for ``graph``, or None when nothing is fused."""
    try:
        plan = FastPlan(graph)
    except (KeyError, ValueError, TypeError) as exc:  # malformed attributes: the plain plan reports them
        raise ModelError(f"cannot plan int8 chains: {exc}") from None
    return plan if plan else None
