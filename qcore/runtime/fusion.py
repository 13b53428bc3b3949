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

The float side of a transformer encoder is rewritten too (same plan, same rules):

- an exported GELU (``Div(x, sqrt 2)`` or ``Mul(x, 1/sqrt 2)``, ``Erf``, ``Add 1``,
  ``Mul x``, ``Mul 0.5``, matched structurally with the constants checked) is one
  :func:`qcore._activation.gelu` pass (float tolerance: one rounding chain replaces five);
- a ``Mul`` by a constant per-input-channel vector that only feeds a dynamic per-row
  ``QMatMul`` (SmoothQuant's smoothing) runs inside that layer's C call
  (:func:`qcore._linear.linear_dynamic` with ``x_mul``): the same float32 products, same bits;
- ``LayerNormalization`` over the last axis, with the residual ``Add`` before it when only
  the layer norm reads the sum, is one :func:`qcore._activation.layer_norm` call (same
  float32 sum, then the C layer norm the node-by-node plan also uses: same bits);
- the attention scores ``MatMul -> Mul(scalar) -> Add(mask) -> Softmax`` run in one buffer,
  in place, with the same NumPy and C operations as node by node (same bits).

The large outputs of these steps are written into buffers of a :class:`BufferPool` that
the plan keeps between runs, so their pages are not faulted in again on every run.

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
import sys
import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import ModelError, QcoreError, ShapeError
from ..graph.ir import Graph, Node
from ..reference.tensor import QuantizedTensor
from . import kernels
from .float_ops import _pool_extra, conv_geometry, reshape

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
        self.pool = BufferPool()
        self.rewrites: dict[int, _Rewrite] = {}   # anchor (last node of a pattern) -> rewrite
        claimed = set(self.chains) | set(self.consumers) | self.absorbed | self.pools
        self._find_float_rewrites(readers, outputs, claimed)
        self.rewritten = {i for r in self.rewrites.values() for i in r.nodes}
        self.replaced = claimed | self.rewritten
        self._linkable: set[int] = set()  # id() of the fused steps chained() may merge

    def _flatten_fits(self, producer: Node, consumer: Node) -> bool:
        channels = self.graph.initializers[producer.inputs[1]].data.shape[0]
        k = self.graph.initializers[consumer.inputs[1]].data.shape[0]
        return k % channels == 0

    def __bool__(self) -> bool:
        return bool(self.chains) or bool(self.rewrites)

    # ------------------------------------------------------------------ float rewrites
    def _find_float_rewrites(self, readers: dict[str, list[int]], outputs: set[str], claimed: set[int]) -> None:
        nodes = self.graph.nodes
        inits = self.graph.initializers

        def only_reader(value: str) -> int | None:
            """The single node reading ``value`` (None when it is an output or read elsewhere too)."""
            r = readers.get(value, [])
            return r[0] if len(r) == 1 and value not in outputs else None

        producers = {o: i for i, n in enumerate(nodes) for o in n.outputs if o}

        def add(rewrite: _Rewrite | None) -> None:
            if rewrite is None or any(i in claimed for i in rewrite.nodes):
                return
            claimed.update(rewrite.nodes)
            self.rewrites[max(rewrite.nodes) if rewrite.anchor is None else rewrite.anchor] = rewrite

        def match(matcher: Callable[..., _Rewrite | None], *args: object) -> _Rewrite | None:
            try:
                return matcher(*args)
            except (KeyError, ValueError, TypeError, IndexError, AttributeError):
                return None  # malformed attributes: the node-by-node step reports them when it runs

        for index, node in enumerate(nodes):
            if node.op == "Mul" and index not in claimed:
                add(match(_match_smoothing, index, node, nodes, inits, only_reader))
                if index not in claimed:
                    add(match(_match_shared_smoothing, index, node, nodes, inits, readers, outputs))
        for index, node in enumerate(nodes):
            if index in claimed:
                continue
            if node.op == "Erf":
                add(match(_match_gelu, index, nodes, inits, only_reader, producers))
            elif node.op == "LayerNormalization":
                add(match(_match_layer_norm, index, node, nodes, inits, only_reader, producers, claimed))
            elif node.op == "Softmax":
                add(match(_match_attention_scores, index, node, nodes, inits, only_reader, producers))
        for index, node in enumerate(nodes):  # after the scores, which claim their own MatMul
            if node.op == "MatMul" and index not in claimed:
                add(match(_match_matmul_transpose, index, node, nodes, inits, only_reader))
        for index, node in enumerate(nodes):  # the remaining C-fused dynamic linear layers
            if node.op == "QMatMul" and index not in claimed and _dynamic_rows(node, inits):
                add(_Rewrite("QMatMul", [index], list(node.inputs[:1]), list(node.outputs),
                             _linear_step(node, inits, None, node.inputs[0]),
                             {"linear": (node, None, node.inputs[0], 0)}))
        self._fuse_post_ops(readers, outputs)

    def _fuse_post_ops(self, readers: dict[str, list[int]], outputs: set[str]) -> None:
        """A dynamic linear layer whose output only a GELU or an ``Add+LayerNorm`` rewrite
        reads runs with that op in its C call (``qc_linear_dynamic_post_f32``): same bits."""
        inits = self.graph.initializers
        by_input: dict[str, _Rewrite] = {}
        for rewrite in self.rewrites.values():
            post = rewrite.info.get("post")
            if post is None:
                continue
            for name in rewrite.inputs[:2] if post["post"] == "layer_norm" else rewrite.inputs[:1]:
                by_input.setdefault(name, rewrite)
        for anchor, linear in list(self.rewrites.items()):
            if "linear" not in linear.info or len(linear.outputs) != 1:
                continue
            value = linear.outputs[0]
            post = by_input.get(value)
            if post is None or value in outputs or not all(r in post.nodes for r in readers.get(value, [])):
                continue
            node, smoothing, x, rank = linear.info["linear"]
            options = dict(post.info["post"])
            inputs = [x]
            if options["post"] == "layer_norm":
                other = [name for name in post.inputs if name != value]
                n = inits[node.inputs[1]].data.shape[1]
                if len(other) != 1 or options["gamma"].size != n:  # Add(y, y), or a norm that does not fit
                    continue
                options["residual"] = other[0]
                inputs.append(other[0])
            members = sorted(linear.nodes + post.nodes)
            del self.rewrites[anchor]
            del self.rewrites[next(key for key, r in self.rewrites.items() if r is post)]
            # a post op fuses once (Add(linear_a, linear_b): the second stays a plain layer)
            by_input = {name: r for name, r in by_input.items() if r is not post}
            op = linear.op + ("+Gelu" if options["post"] == "gelu" else "+Add+LayerNorm")
            self.rewrites[max(members)] = _Rewrite(op, members, inputs, list(post.outputs),
                                                   _linear_step(node, inits, smoothing, x, options, rank))

    # ------------------------------------------------------------------ building steps
    def steps(self, plain: list[tuple[Node, Step, list[str], bool]]) -> list[tuple[Node, Step, list[str], bool]]:
        """The fast plan: fused steps for the chains, the given steps for every other node."""
        nodes = self.graph.nodes
        alias: dict[str, str] = {}
        built: list[tuple[Node, Step, bool]] = []
        for index, node in enumerate(nodes):
            inputs = [alias.get(name, name) for name in node.inputs]
            if index in self.rewritten:
                rewrite = self.rewrites.get(index)
                if rewrite is not None:
                    fallback = [(nodes[i], plain[i][1]) for i in rewrite.nodes]
                    built.append((Node(rewrite.op, [alias.get(n, n) for n in rewrite.inputs], rewrite.outputs,
                                       node.attrs, node.name), rewrite.make(self.pool, fallback), False))
                continue
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


class BufferPool:
    """Output buffers kept between runs, handed out again once nothing refers to them.

    A buffer is free when the pool's own references are the only ones left (no value of a
    running plan, no view of it, no array a caller still holds): its reference count says
    so. Reuse therefore never overwrites a value anyone can still see, whichever thread
    runs the plan; what it saves is the allocation and the page faults of a fresh large
    array on every run. Buffers are kept flat, per byte size and dtype, and handed out as
    a view of the requested shape (arrays of different shapes but the same size share).
    """

    #: Buffers kept per size (more live at once are allocated and not kept).
    PER_SIZE = 8
    #: Sizes kept (beyond that the pool starts again: the input sizes keep changing).
    SIZES = 32
    #: Arrays smaller than this are not pooled (bytes).
    MIN_BYTES = 64 * 1024
    #: Bytes kept at most (inputs of changing sizes would otherwise keep a set per size).
    MAX_BYTES = 128 * 1024 * 1024

    def __init__(self) -> None:
        self._buffers: dict[tuple, list[np.ndarray]] = {}
        self._kept_bytes = 0
        self._lock = threading.Lock()
        # references of a free buffer inside ``get``: the list, the loop variable, the call
        probe = [np.empty(0)]
        self._free_refs = next(sys.getrefcount(a) for a in probe)

    def get(self, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
        """An uninitialised C-contiguous array of ``shape`` that nobody else refers to."""
        count = math.prod(shape)
        dtype = np.dtype(dtype)
        if count * dtype.itemsize < self.MIN_BYTES:
            return np.empty(shape, dtype)
        key = (count, dtype)
        with self._lock:
            kept = self._buffers.get(key)
            if kept is None:
                if len(self._buffers) >= self.SIZES:
                    self._buffers.clear()
                    self._kept_bytes = 0
                kept = self._buffers[key] = []
            for flat in kept:
                if sys.getrefcount(flat) == self._free_refs:
                    return flat.reshape(shape)
            flat = np.empty(count, dtype)
            if len(kept) < self.PER_SIZE and self._kept_bytes + flat.nbytes <= self.MAX_BYTES:
                kept.append(flat)
                self._kept_bytes += flat.nbytes
            return flat.reshape(shape)

    @property
    def kept_bytes(self) -> int:
        """Bytes of the buffers the pool holds."""
        return self._kept_bytes


Fallback = list[tuple[Node, Step]]


@dataclass
class _Rewrite:
    """Nodes run as one step: ``make(pool, fallback)`` builds it (``fallback``: the nodes'
    own steps, run in order for inputs the fused step does not take)."""

    op: str
    nodes: list[int]
    inputs: list[str]
    outputs: list[str]
    make: Callable[[BufferPool, Fallback], Step]
    #: what a later rewrite may fuse with: a dynamic linear layer's ``linear`` (node,
    #: smoothing, input name, rank of the smoothing vector or 0), a row-wise ``post`` op
    info: dict = field(default_factory=dict)
    #: the node whose place in the plan the step takes (None: the last of ``nodes``)
    anchor: int | None = None


def _run_nodes(fallback: Fallback, names: list[str], inputs: list, outputs: list[str], inits: dict) -> list:
    """Run the replaced nodes one by one (the node-by-node plan's steps) on ``inputs``."""
    values = dict(zip(names, inputs))
    for node, fn in fallback:
        results = fn([(values[n] if n in values else inits[n]) if n else None for n in node.inputs])
        values.update(zip(node.outputs, results))
    return [values[n] for n in outputs]


def _scalar(inits: dict, name: str) -> float | None:
    value = inits.get(name)
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype == np.float32:
        return float(value.reshape(()))
    return None


def _const_other(node: Node, value: str, inits: dict) -> str | None:
    """For a binary node reading ``value`` and a constant: the constant's name."""
    if len(node.inputs) != 2 or value not in node.inputs:
        return None
    other = node.inputs[1] if node.inputs[0] == value else node.inputs[0]
    return other if other in inits and other != value else None


def _dynamic_rows(node: Node, inits: dict) -> bool:
    """A dynamic per-row QMatMul whose weights run on the one-call C layer."""
    if node.op != "QMatMul" or node.attrs.get("activation", "dynamic") != "dynamic" or not node.attrs.get("per_row"):
        return False
    w = inits.get(node.inputs[1])
    if not isinstance(w, QuantizedTensor) or w.dtype not in ("int8", "uint8") or w.block_size:
        return False
    if w.data.ndim != 2 or w.axis not in (None, 1) or kernels.C_MAX_GROUPS < 1:
        return False
    return len(node.inputs) < 3 or not node.inputs[2] or isinstance(inits.get(node.inputs[2]), np.ndarray)


def _linear_step(node: Node, inits: dict, smoothing: np.ndarray | None, x_name: str,
                 post: dict | None = None, rank: int = 0) -> Callable[[BufferPool, Fallback], Step]:
    """The dynamic per-row QMatMul ``node`` (after the smoothing Mul by ``smoothing``) on input
    ``x_name``, with the row-wise ``post`` op of a GELU or (residual) layer norm rewrite
    fused in; ``rank``: the smoothing vector's rank (a lower-rank input runs node by node)."""
    residual = post.get("residual") if post is not None else None
    axis = post.get("axis", -1) if post is not None else -1

    def make(pool: BufferPool, fallback: Fallback) -> Step:
        w: QuantizedTensor = inits[node.inputs[1]]
        bias = None
        if len(node.inputs) > 2 and node.inputs[2]:
            bias = np.asarray(inits[node.inputs[2]], dtype=np.float32)
        packed = kernels.PackedLinear.from_matmul(w, bias)
        k, n = packed.k, packed.n
        options = {} if post is None else {key: post[key] for key in ("post", "gamma", "beta", "epsilon") if key in post}
        call = packed.dynamic_rows_call(smoothing, **options)
        names = [x_name] + ([residual] if residual else [])
        outputs = [fallback[-1][0].outputs[0]]

        def run(inputs: list) -> list:
            x = inputs[0]
            r = inputs[1] if residual else None
            # the norm runs over the last axis only: another axis runs node by node
            if (not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim < max(rank, 1) or x.shape[-1] != k
                    or axis % x.ndim != x.ndim - 1
                    or (residual and (not isinstance(r, np.ndarray) or r.dtype != np.float32
                                      or r.shape != x.shape[:-1] + (n,)))):
                return _run_nodes(fallback, names, inputs, outputs, inits)  # reports bad input as node by node
            lead = x.shape[:-1]
            out = pool.get((math.prod(lead), n))
            extra = [np.ascontiguousarray(r.reshape(-1, n))] if residual else []
            call(np.ascontiguousarray(x.reshape(-1, k)), out, *extra)
            return [out.reshape(lead + (n,))]
        return run
    return make


def _match_smoothing(index: int, node: Node, nodes: list[Node], inits: dict,
                     only_reader: Callable[[str], int | None]) -> _Rewrite | None:
    """``Mul(x, s)`` with a constant per-channel ``s`` feeding one dynamic per-row QMatMul."""
    reader = only_reader(node.outputs[0])
    if reader is None:
        return None
    linear = nodes[reader]
    if not _dynamic_rows(linear, inits) or linear.inputs[0] != node.outputs[0]:
        return None
    found = _smoothing_vector(node, inits, inits[linear.inputs[1]].data.shape[0])
    if found is None:
        return None
    x, smoothing, rank = found
    # a rank-r vector broadcasts an input of lower rank to rank r: node by node
    return _Rewrite("QMatMul+smoothing", [index, reader], [x], list(linear.outputs),
                    _linear_step(linear, inits, smoothing, x, rank=rank), {"linear": (linear, smoothing, x, rank)})


def _smoothing_vector(node: Node, inits: dict, k: int) -> tuple[str, np.ndarray, int] | None:
    """For ``Mul(x, s)`` (either order) with a constant float32 per-channel ``s`` of ``k``
    values: (x, s flattened, rank of s)."""
    if len(node.inputs) != 2:
        return None
    for x_pos in (0, 1):
        x, s = node.inputs[x_pos], node.inputs[1 - x_pos]
        vector = inits.get(s)
        if x in inits or not isinstance(vector, np.ndarray) or vector.dtype != np.float32 or vector.ndim < 1:
            continue
        if vector.size != k or any(d != 1 for d in vector.shape[:-1]) or vector.shape[-1] != k:
            continue
        return x, np.ascontiguousarray(vector.reshape(-1)), vector.ndim
    return None


def _match_shared_smoothing(index: int, node: Node, nodes: list[Node], inits: dict, readers: dict[str, list[int]],
                            outputs: set[str]) -> _Rewrite | None:
    """``Mul(x, s)`` read only by several dynamic per-row QMatMuls on int8 weights of one K
    (an attention's query, key and value after a shared smoothing): one C call on their
    weights side by side, the outputs column slices of one buffer. Each output column is
    computed as in its own layer (same rows quantized, same column sums and epilogue), so
    the bits are those of the separate layers."""
    value = node.outputs[0]
    members = readers.get(value, [])
    if len(members) < 2 or value in outputs or len(set(members)) != len(members):
        return None
    layers = [nodes[i] for i in members]
    weights = [inits.get(layer.inputs[1]) for layer in layers]
    if not all(_dynamic_rows(layer, inits) and layer.inputs[0] == value for layer in layers):
        return None
    if any(w.dtype != "int8" or w.data.shape[0] != weights[0].data.shape[0] for w in weights):
        return None
    has_bias = [len(layer.inputs) > 2 and bool(layer.inputs[2]) for layer in layers]
    if any(has_bias) and not all(has_bias):
        return None
    k = weights[0].data.shape[0]
    found = _smoothing_vector(node, inits, k)
    if found is None:
        return None
    x, smoothing, rank = found
    widths = [w.data.shape[1] for w in weights]
    outs = [layer.outputs[0] for layer in layers]

    def make(pool: BufferPool, fallback: Fallback) -> Step:
        def column(w: QuantizedTensor, values: np.ndarray) -> np.ndarray:
            return np.broadcast_to(np.asarray(values).reshape(-1), (w.data.shape[1],))
        data = np.concatenate([w.data for w in weights], axis=1)
        scale = np.concatenate([column(w, w.scale) for w in weights]).astype(np.float32)
        zero = np.concatenate([column(w, w.zero_point) for w in weights]).astype(np.int8)
        joined = QuantizedTensor(data, scale, zero, "int8", axis=1)
        bias = (np.concatenate([np.asarray(inits[layer.inputs[2]], np.float32).reshape(-1) for layer in layers])
                if all(has_bias) else None)
        call = kernels.PackedLinear.from_matmul(joined, bias).dynamic_rows_call(smoothing)
        n = sum(widths)
        bounds = np.cumsum([0] + widths)

        def run(inputs: list) -> list:
            v = inputs[0]
            if not isinstance(v, np.ndarray) or v.dtype != np.float32 or v.ndim < rank or v.shape[-1] != k:
                return _run_nodes(fallback, [x], inputs, outs, inits)  # reports bad input as node by node
            lead = v.shape[:-1]
            out = pool.get((math.prod(lead), n))
            call(np.ascontiguousarray(v.reshape(-1, k)), out)
            return [out[:, a:b].reshape(lead + (b - a,)) for a, b in zip(bounds[:-1], bounds[1:])]
        return run
    # placed where the Mul was: each layer's readers may come before the next layer
    return _Rewrite(f"QMatMul+smoothing x{len(layers)}", sorted([index] + members), [x], outs, make, anchor=index)


_SQRT2 = float(np.float32(np.sqrt(2.0)))
_INV_SQRT2 = float(np.float32(1.0 / np.sqrt(2.0)))


def _match_gelu(erf_index: int, nodes: list[Node], inits: dict, only_reader: Callable[[str], int | None],
                producers: dict[str, int]) -> _Rewrite | None:
    """``0.5 * x * (1 + erf(x / sqrt 2))`` as exported (Div or Mul by the constant, two Muls in either order)."""
    erf = nodes[erf_index]
    first = producers.get(erf.inputs[0])
    if first is None or only_reader(erf.inputs[0]) != erf_index:
        return None
    div = nodes[first]
    x = None
    if div.op in ("Div", "Mul") and len(div.inputs) == 2:
        const = div.inputs[1]
        value = _scalar(inits, const)
        if div.op == "Div" and value == _SQRT2 and div.inputs[0] not in inits:
            x = div.inputs[0]
        elif div.op == "Mul":
            xs = [n for n in div.inputs if n not in inits]
            consts = [n for n in div.inputs if n in inits]
            if len(xs) == 1 and len(consts) == 1 and _scalar(inits, consts[0]) == _INV_SQRT2:
                x = xs[0]
    if x is None:
        return None
    plus = only_reader(erf.outputs[0])
    if plus is None or nodes[plus].op != "Add":
        return None
    one = _const_other(nodes[plus], erf.outputs[0], inits)
    if one is None or _scalar(inits, one) != 1.0:
        return None
    m1 = only_reader(nodes[plus].outputs[0])
    if m1 is None or nodes[m1].op != "Mul" or len(nodes[m1].inputs) != 2:
        return None
    g = nodes[plus].outputs[0]
    other = nodes[m1].inputs[1] if nodes[m1].inputs[0] == g else nodes[m1].inputs[0]
    half = None
    if other == x:      # (x * (1 + erf)) * 0.5
        m2 = only_reader(nodes[m1].outputs[0])
        if m2 is None or nodes[m2].op != "Mul":
            return None
        half = _const_other(nodes[m2], nodes[m1].outputs[0], inits)
        pattern = [first, erf_index, plus, m1, m2]
        last = m2
    else:               # (x * 0.5) * (1 + erf)
        h = producers.get(other)
        if h is None or nodes[h].op != "Mul" or only_reader(other) != m1 or x not in nodes[h].inputs:
            return None
        half = _const_other(nodes[h], x, inits)
        pattern = [h, first, erf_index, plus, m1]
        last = m1
    if half is None or _scalar(inits, half) != 0.5:
        return None
    output = nodes[last].outputs[0]

    def make(pool: BufferPool, fallback: Fallback) -> Step:
        from .. import _activation  # noqa: PLC0415

        def run(inputs: list) -> list:
            v = inputs[0]
            if not isinstance(v, np.ndarray) or v.dtype != np.float32 or v.ndim == 0:
                return _run_nodes(fallback, [x], inputs, [output], inits)
            return [_activation.gelu(v, out=pool.get(v.shape))]
        return run
    return _Rewrite("Gelu(fused)", sorted(pattern), [x], [output], make, {"post": {"post": "gelu"}})


def _match_layer_norm(index: int, node: Node, nodes: list[Node], inits: dict,
                      only_reader: Callable[[str], int | None], producers: dict[str, int],
                      claimed: set[int]) -> _Rewrite | None:
    """LayerNormalization (last axis, constant float32 scale / bias), with its residual Add."""
    if len(node.outputs) > 1 and any(node.outputs[1:]):
        return None
    gamma = inits.get(node.inputs[1]) if len(node.inputs) > 1 else None
    beta = inits.get(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    if not isinstance(gamma, np.ndarray) or gamma.dtype != np.float32 or gamma.ndim != 1:
        return None
    if len(node.inputs) > 2 and node.inputs[2] and (
            not isinstance(beta, np.ndarray) or beta.dtype != np.float32 or beta.shape != gamma.shape):
        return None
    eps = float(node.attrs.get("epsilon", 1e-5))
    axis = int(node.attrs.get("axis", -1))
    if not (np.isfinite(eps) and eps >= 0) or node.inputs[0] in inits:
        return None
    add = producers.get(node.inputs[0])
    residual = (add is not None and add not in claimed and nodes[add].op == "Add" and len(nodes[add].inputs) == 2
                and only_reader(node.inputs[0]) == index and not any(n in inits for n in nodes[add].inputs))
    members = [add, index] if residual else [index]
    inputs = list(nodes[add].inputs) if residual else [node.inputs[0]]
    output = node.outputs[0]
    g = np.ascontiguousarray(gamma)
    b = None if beta is None else np.ascontiguousarray(beta)

    def make(pool: BufferPool, fallback: Fallback) -> Step:
        from .. import _activation  # noqa: PLC0415

        def run(args: list) -> list:
            x = args[0]
            r = args[1] if residual else None
            if (not isinstance(x, np.ndarray) or x.dtype != np.float32 or not x.ndim or axis % x.ndim != x.ndim - 1
                    or x.shape[-1] != g.size
                    or (r is not None and (not isinstance(r, np.ndarray) or r.dtype != np.float32
                                           or r.shape != x.shape))):
                return _run_nodes(fallback, inputs, args, [output], inits)
            return [_activation.layer_norm(x, g, b, eps, residual=r, out=pool.get(x.shape))]
        return run
    info = {"post": {"post": "layer_norm", "gamma": g, "beta": b, "epsilon": eps, "axis": axis}} if residual else {}
    return _Rewrite("Add+LayerNorm" if residual else "LayerNorm", members, inputs, [output], make, info)


def _view_chain(value: str, consumer: int, nodes: list[Node], producers: dict[str, int],
                only_reader: Callable[[str], int | None]) -> tuple[list[int], str, list[tuple]]:
    """The ``Reshape`` / ``Transpose`` nodes that produce ``value`` for ``consumer`` alone:
    ``(their indices, the value they start from, their ops in order)``; an op is
    ``("Transpose", perm, None)`` or ``("Reshape", allowzero, shape value name)``."""
    members: list[int] = []
    ops: list[tuple] = []
    while True:
        p = producers.get(value)
        if p is None or only_reader(value) != consumer:
            break
        node = nodes[p]
        if node.op == "Transpose" and len(node.inputs) == 1:
            ops.append(("Transpose", node.attrs.get("perm"), None))
        elif node.op == "Reshape" and len(node.inputs) == 2 and node.inputs[1]:
            ops.append(("Reshape", int(node.attrs.get("allowzero", 0)), node.inputs[1]))
        else:
            break
        members.append(p)
        value, consumer = node.inputs[0], p
    return members, value, ops[::-1]


def _apply_views(x: object, ops: list[tuple], values: dict) -> object:
    """``x`` through :func:`_view_chain`'s ops (``values``: the shape inputs by name)."""
    for op, attr, name in ops:
        if not isinstance(x, np.ndarray):
            return None
        x = x.transpose(attr) if op == "Transpose" else reshape(x, values[name], attr)
    return x


def _scores_shape(q: np.ndarray, k: np.ndarray, m: np.ndarray | None) -> tuple[int, ...] | None:
    """The shape of ``q @ k`` (leading axes broadcast), or None when they or the mask do not broadcast."""
    if q.ndim == 4 and k.ndim == 4 and q.shape[:2] == k.shape[:2]:
        shape = q.shape[:3] + k.shape[3:]
    else:
        try:
            shape = np.broadcast_shapes(q.shape[:-2], k.shape[:-2]) + (q.shape[-2], k.shape[-1])
        except ValueError:
            return None
    if m is None or (m.ndim == len(shape) and all(a == 1 or a == b for a, b in zip(m.shape, shape))):
        return shape
    try:
        return shape if np.broadcast_shapes(shape, m.shape) == shape else None
    except ValueError:
        return None


def _match_attention_scores(index: int, node: Node, nodes: list[Node], inits: dict,
                            only_reader: Callable[[str], int | None],
                            producers: dict[str, int]) -> _Rewrite | None:
    """``Softmax(MatMul(q, k) * c + mask)`` over the last axis: one C call (qcore_attention.h), or NumPy in one buffer.

    When the probabilities only feed ``Transpose(MatMul(probs, v), perm=[0, 2, 1, 3])``,
    that context product is taken in too ("Attention"), written into the transposed
    layout: with the C call's order and 4-D operands, scores and context in one C call
    (``qc_attention_f32``, the context in its stated order); otherwise NumPy's product,
    stopped at the padded keys whose probabilities the C scores call shows are 0.
    The ``Reshape`` / ``Transpose`` views that split the heads of ``q``, ``k`` and ``v``
    (and the ``Reshape`` that joins them after the context) are taken in as well when the
    step alone reads them: one Python step per attention instead of eight.
    """
    if int(node.attrs.get("axis", -1)) != -1 or node.attrs.get("coerce_2d"):
        return None
    chain: list[int] = []
    value = node.inputs[0]
    mask = scale = None
    while True:
        p = producers.get(value)
        if p is None or only_reader(value) != (chain[-1] if chain else index):
            return None
        pnode = nodes[p]
        chain.append(p)
        if pnode.op == "MatMul" and len(pnode.inputs) == 2 and not any(n in inits for n in pnode.inputs):
            break
        if pnode.op == "Add" and mask is None and scale is None and len(pnode.inputs) == 2:
            first = producers.get(pnode.inputs[0])
            pos = 0 if first is not None and nodes[first].op in ("Mul", "MatMul") else 1
            value, mask = pnode.inputs[pos], pnode.inputs[1 - pos]
        elif pnode.op == "Mul" and scale is None and len(pnode.inputs) == 2:
            scale = pnode.inputs[1] if pnode.inputs[1] in inits else pnode.inputs[0]
            value = pnode.inputs[0] if scale == pnode.inputs[1] else pnode.inputs[1]
            if _scalar(inits, scale) is None:
                return None
        else:
            return None
    matmul = nodes[chain[-1]]
    members = sorted(chain + [index])
    inputs = list(matmul.inputs) + ([mask] if mask is not None else [])
    output = node.outputs[0]
    # the context product Transpose(MatMul(probs, v), perm=[0, 2, 1, 3]) read only from here:
    # taken in too, so the product can stop at the padded keys whose probabilities are 0
    context = only_reader(output)
    transpose = only_reader(nodes[context].outputs[0]) if context is not None else None
    with_context = (
        context is not None and nodes[context].op == "MatMul" and len(nodes[context].inputs) == 2
        and nodes[context].inputs[0] == output and nodes[context].inputs[1] not in inits
        and transpose is not None and nodes[transpose].op == "Transpose"
        and list(nodes[transpose].attrs.get("perm", [])) == [0, 2, 1, 3])
    if with_context:
        members = sorted(members + [context, transpose])
        inputs.append(nodes[context].inputs[1])
        output = nodes[transpose].outputs[0]
    # the head-splitting views of q, k (and v), and a Reshape after the context
    chains: list[list[tuple]] = []
    operands = [(0, chain[-1]), (1, chain[-1])] + ([(len(inputs) - 1, context)] if with_context else [])
    for position, consumer in operands:
        absorbed, source, ops = _view_chain(inputs[position], consumer, nodes, producers, only_reader)
        members += absorbed
        inputs[position] = source
        chains.append(ops)
    joined = only_reader(output) if with_context else None
    out_view: list[tuple] = []
    if (joined is not None and nodes[joined].op == "Reshape" and len(nodes[joined].inputs) == 2
            and nodes[joined].inputs[0] == output and nodes[joined].inputs[1]):
        out_view = [("Reshape", int(nodes[joined].attrs.get("allowzero", 0)), nodes[joined].inputs[1])]
        members.append(joined)
        output = nodes[joined].outputs[0]
    shape_names = sorted({name for ops in chains + [out_view] for _, _, name in ops if name})
    n_main = len(inputs)
    inputs += shape_names
    members = sorted(members)
    c = np.float32(_scalar(inits, scale)) if scale is not None else None
    # the C kernel's order: the product, then the scale, then the mask
    one_call = [nodes[i].op for i in chain[-2::-1]] in ([], ["Mul"], ["Add"], ["Mul", "Add"]) and (
        c is None or bool(np.isfinite(c)))

    def make(pool: BufferPool, fallback: Fallback) -> Step:
        from .. import _activation, _attention  # noqa: PLC0415

        def run(args: list) -> list:
            views = dict(zip(shape_names, args[n_main:]))
            q = _apply_views(args[0], chains[0], views)
            k = _apply_views(args[1], chains[1], views)
            m = args[2] if mask is not None else None
            v = _apply_views(args[n_main - 1], chains[2], views) if with_context else None
            if (not isinstance(q, np.ndarray) or not isinstance(k, np.ndarray) or q.dtype != np.float32
                    or k.dtype != np.float32 or q.ndim < 2 or k.ndim < 2 or q.shape[-1] != k.shape[-2]
                    or (m is not None and (not isinstance(m, np.ndarray) or m.dtype != np.float32))):
                return _run_nodes(fallback, inputs, args, [output], inits)
            shape = _scores_shape(q, k, m)
            if shape is None:
                return _run_nodes(fallback, inputs, args, [output], inits)
            if with_context and (not isinstance(v, np.ndarray) or v.dtype != np.float32 or len(shape) != 4
                                 or v.shape != shape[:2] + (shape[3], v.shape[-1])):
                return _run_nodes(fallback, inputs, args, [output], inits)
            four = len(shape) == 4 and q.ndim == 4 and k.ndim == 4 and (m is None or m.ndim == 4)
            if with_context and one_call and four:  # scores, softmax and context in one C call
                out = pool.get((shape[0], shape[2], shape[1], v.shape[3]))
                _attention.context_into(q, k, c, m, v, out.transpose(0, 2, 1, 3))
                return [_apply_views(out, out_view, views)] if out_view else [out]
            s = pool.get(shape)
            live = shape[-1]
            if one_call and four:
                live = _attention.scores_into(q, k, c, m, s)
            elif one_call:
                s, live = _attention.attention_scores(q, k, c, m, out=s, live_keys=True)
            else:
                np.matmul(q, k, out=s)
                for i in chain[-2::-1]:  # the Mul / Add in graph order, in place
                    if nodes[i].op == "Mul":
                        np.multiply(s, c, out=s)
                    else:
                        np.add(s, m, out=s)
                _activation.softmax(s, out=s)
            if not with_context:
                return [s]
            result = _context_transposed(pool, s, v, live)
            return [_apply_views(result, out_view, views)] if out_view else [result]
        return run
    return _Rewrite("Attention" if with_context else "Attention scores", members, inputs, [output], make)


def _match_matmul_transpose(index: int, node: Node, nodes: list[Node], inits: dict,
                            only_reader: Callable[[str], int | None]) -> _Rewrite | None:
    """``Transpose(MatMul(p, v), perm=[0, 2, 1, 3])`` (an attention's context): the product
    written straight into the transposed layout, so the Reshape after it is a view."""
    if len(node.inputs) != 2 or any(n in inits for n in node.inputs):
        return None
    t = only_reader(node.outputs[0])
    if t is None or nodes[t].op != "Transpose" or list(nodes[t].attrs.get("perm", [])) != [0, 2, 1, 3]:
        return None
    inputs = list(node.inputs)
    output = nodes[t].outputs[0]

    def make(pool: BufferPool, fallback: Fallback) -> Step:
        def run(args: list) -> list:
            p, v = args
            if (not isinstance(p, np.ndarray) or not isinstance(v, np.ndarray) or p.dtype != np.float32
                    or v.dtype != np.float32 or p.ndim != 4 or v.ndim != 4 or p.shape[-1] != v.shape[-2]
                    or p.shape[:2] != v.shape[:2]):
                return _run_nodes(fallback, inputs, args, [output], inits)
            return [_context_transposed(pool, p, v)]
        return run
    return _Rewrite("MatMul+Transpose", [index, t], inputs, [output], make)


def _context_transposed(pool: BufferPool, p: np.ndarray, v: np.ndarray, live: int | None = None) -> np.ndarray:
    """``Transpose(p @ v, perm=[0, 2, 1, 3])`` for 4-D ``p``, ``v``: NumPy's matmul writing into
    the transposed layout of a pooled buffer. With ``live`` (every probability in ``p``'s
    columns ``live`` and after is exactly +0) the product stops there when the values it
    skips are finite (0 * v then adds nothing)."""
    out = pool.get((p.shape[0], p.shape[2], p.shape[1], v.shape[3]))
    if live is not None and live < p.shape[-1] and np.isfinite(v[..., live:, :]).all():
        p, v = p[..., :live], v[..., :live, :]
    np.matmul(p, v, out=out.transpose(0, 2, 1, 3))
    return out


def build(graph: Graph) -> FastPlan | None:
    """The fast plan's decisions for ``graph``, or None when nothing is fused."""
    try:
        plan = FastPlan(graph)
    except (KeyError, ValueError, TypeError) as exc:  # malformed attributes: the plain plan reports them
        raise ModelError(f"cannot plan int8 chains: {exc}") from None
    return plan if plan else None
