"""Post-training quantization passes: dynamic, static (calibrated) and weight-only.

Each pass takes a float model (a :class:`~qcore.runtime.Model`, a :class:`Graph`, or an
ONNX model path/proto) and returns a new :class:`~qcore.runtime.Model` whose MatMul and
Conv nodes with constant weights are replaced by qcore's quantized operators
(docs/QUANTIZATION.md). Weights are quantized once, here, and stored quantized.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import CalibrationError, ModelError, QuantParamError
from ..reference.tensor import QuantizedTensor
from .ir import Graph, Node

Progress = Callable[[int, int], None]

#: Operator types the passes quantize.
QUANTIZABLE_OPS = ("MatMul", "Conv")
#: Calibration methods and the observer class each uses (qcore.reference.observers).
METHODS = {
    "minmax": "MinMaxObserver",
    "moving_average": "MovingAverageMinMaxObserver",
    "percentile": "PercentileObserver",
    "mse": "MSEObserver",
    "entropy": "EntropyObserver",
}


def _quantize_tensor(*args: Any, **kwargs: Any) -> QuantizedTensor:
    from ..reference.quantize import quantize_tensor  # noqa: PLC0415

    return quantize_tensor(*args, **kwargs)


def _check_scale_dtype(scale_dtype: str) -> None:
    from ..reference.params import check_scale_dtype  # noqa: PLC0415

    check_scale_dtype(scale_dtype)


def _choose_qparams(*args: Any, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
    from ..reference.params import choose_qparams  # noqa: PLC0415

    return choose_qparams(*args, **kwargs)


@dataclass
class _Site:
    """One node to quantize: the node, its weight and (for MatMul) a fused bias Add."""

    node: Node
    weight: np.ndarray
    bias_add: Node | None = None
    bias: np.ndarray | None = None
    output: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _as_graph(model: Any) -> Graph:
    from ..runtime.model import Model  # noqa: PLC0415

    if isinstance(model, Model):
        return model.graph
    if isinstance(model, Graph):
        return model
    from .onnx_import import import_onnx  # noqa: PLC0415

    return import_onnx(model)


def _is_float_const(graph: Graph, name: str) -> bool:
    value = graph.initializers.get(name)
    return isinstance(value, np.ndarray) and value.dtype.kind == "f"


def find_sites(graph: Graph, *, exclude_nodes: Sequence[str] = (), exclude_op_types: Sequence[str] = (),
               op_types: Sequence[str] = QUANTIZABLE_OPS, fuse_bias: bool = True) -> list[_Site]:
    """The MatMul/Conv nodes with constant float weights the passes will replace.

    Raises
    ------
    ModelError
        An ``exclude_nodes`` entry names no node of the graph.
    """
    names = {n.name for n in graph.nodes}
    unknown = [n for n in exclude_nodes if n not in names]
    if unknown:
        raise ModelError(f"exclude names no such node: {', '.join(unknown)}")
    unknown_ops = [op for op in exclude_op_types if not isinstance(op, str) or not op]
    if unknown_ops:
        raise ModelError(f"bad op types to exclude: {unknown_ops}")
    skip_nodes, skip_ops = set(exclude_nodes), set(exclude_op_types)
    consumers = graph.consumers()
    graph_outputs = {v.name for v in graph.outputs}
    sites: list[_Site] = []
    for node in graph.nodes:
        if node.op not in op_types or node.op in skip_ops or node.name in skip_nodes:
            continue
        if node.inputs[0] in graph.initializers or not _is_float_const(graph, node.inputs[1]):
            continue
        weight = np.asarray(graph.initializers[node.inputs[1]], dtype=np.float32)
        if node.op == "MatMul":
            if weight.ndim != 2:
                continue
            site = _Site(node, weight, output=node.outputs[0])
            readers = consumers.get(node.outputs[0], [])
            if fuse_bias and len(readers) == 1 and node.outputs[0] not in graph_outputs:
                add = readers[0]
                other = add.inputs[1] if add.inputs[0] == node.outputs[0] else add.inputs[0]
                if add.op == "Add" and add.name not in skip_nodes and _is_float_const(graph, other):
                    bias = np.asarray(graph.initializers[other], dtype=np.float32)
                    if bias.shape == (weight.shape[1],):
                        site.bias_add, site.bias, site.output = add, bias, add.outputs[0]
            sites.append(site)
        else:
            if len(node.inputs) > 2 and node.inputs[2] and not _is_float_const(graph, node.inputs[2]):
                continue
            bias = (np.asarray(graph.initializers[node.inputs[2]], dtype=np.float32)
                    if len(node.inputs) > 2 and node.inputs[2] else None)
            sites.append(_Site(node, weight, bias=bias, output=node.outputs[0]))
    return sites


def find_embedding_sites(graph: Graph, *, exclude_nodes: Sequence[str] = (),
                         exclude_op_types: Sequence[str] = ()) -> list[_Site]:
    """Gather nodes that look rows up in a constant 2-D float table (embeddings)."""
    if "Gather" in exclude_op_types:
        return []
    skip = set(exclude_nodes)
    sites = []
    for node in graph.nodes:
        if node.op != "Gather" or node.name in skip or int(node.attrs.get("axis", 0)) != 0:
            continue
        if not _is_float_const(graph, node.inputs[0]) or node.inputs[1] in graph.initializers:
            continue
        table = np.asarray(graph.initializers[node.inputs[0]], dtype=np.float32)
        if table.ndim == 2 and table.size >= 1024:
            sites.append(_Site(node, table, output=node.outputs[0]))
    return sites


def _quantize_embedding(site: _Site, dtype: str, block_size: int = 0, scale_dtype: str = "float16") -> QuantizedTensor:
    """One scale per table row (or per block of a row), symmetric."""
    if block_size:
        return _quantize_tensor(site.weight, dtype, granularity="per_block", axis=1, block_size=block_size,
                                scale_dtype=scale_dtype)
    return _quantize_tensor(site.weight, dtype, granularity="per_channel", axis=0, scale_dtype=scale_dtype)


def _quantize_weight(site: _Site, per_channel: bool, symmetric: bool, scale_dtype: str = "float16") -> QuantizedTensor:
    axis = 1 if site.node.op == "MatMul" else 0
    if per_channel:
        return _quantize_tensor(site.weight, "int8", granularity="per_channel", axis=axis, symmetric=symmetric,
                                scale_dtype=scale_dtype)
    return _quantize_tensor(site.weight, "int8", granularity="per_tensor", symmetric=symmetric,
                            scale_dtype=scale_dtype)


def _rewrite(graph: Graph, sites: list[_Site], make: Callable[[_Site], tuple],
             metadata: dict[str, Any], progress: Progress | None = None) -> Graph:
    """Replace each site by its quantized node (same output name) and drop fused Adds.

    ``make(site)`` returns ``(op, quantized weight, attributes)``, or for ``QGather``
    optionally ``(op, table, attributes, (ids, rows))``: the table's exception rows,
    stored as ``<table>.ids`` / ``<table>.rows`` and appended to the node's inputs.
    """
    from .transforms import remove_dead_code  # noqa: PLC0415

    out = graph.copy()
    by_name = {s.node.name: s for s in sites}
    dropped = {s.bias_add.name for s in sites if s.bias_add is not None}
    nodes: list[Node] = []
    done = 0
    for node in out.nodes:
        if node.name in dropped:
            continue
        site = by_name.get(node.name)
        if site is None:
            nodes.append(node)
            continue
        op, qweight, attrs, *extra = make(site)
        done += 1
        if progress is not None:
            progress(done, len(sites))
        if op == "QGather":
            w_name = f"{node.inputs[0]}.qgather"
            out.initializers[w_name] = qweight
            inputs = [w_name, node.inputs[1]]
            if extra:
                ids, rows = extra[0]
                base = w_name if f"{w_name}.ids" not in out.initializers else f"{w_name}.{node.name}"
                out.initializers[f"{base}.ids"] = ids  # a second node on the same table: its own rows
                out.initializers[f"{base}.rows"] = rows
                inputs += [f"{base}.ids", f"{base}.rows"]
            nodes.append(Node(op, inputs, [site.output], {"axis": 0}, node.name))
            continue
        w_name = f"{node.inputs[1]}.{op.lower()}"
        out.initializers[w_name] = qweight
        inputs = [node.inputs[0], w_name]
        if site.bias is not None:
            b_name = f"{node.name}.qbias"
            out.initializers[b_name] = site.bias
            inputs.append(b_name)
        base = {k: v for k, v in node.attrs.items()} if node.op == "Conv" else {}
        base.update(attrs)
        nodes.append(Node(op, inputs, [site.output], base, node.name))
    out.nodes = nodes
    out.metadata["quantization"] = metadata
    return remove_dead_code(out)


def _model(graph: Graph) -> Any:
    from ..runtime.model import Model  # noqa: PLC0415

    return Model(graph)


def quantize_dynamic(model: Any, *, per_channel: bool = True, per_row: bool = False,
                     exclude_nodes: Sequence[str] = (), exclude_op_types: Sequence[str] = (),
                     op_types: Sequence[str] = ("MatMul",), embeddings: bool = True,
                     progress: Progress | None = None, scale_dtype: str = "float16") -> Any:
    """Dynamic quantization: int8 weights now, activation parameters computed per run.

    Parameters
    ----------
    model : Model, Graph, str or onnx.ModelProto
        The float model.
    per_channel : bool
        One weight scale per output channel (default) or one per tensor.
    per_row : bool
        One activation scale and zero point per row (per token) instead of per tensor
        (MatMul only).
    exclude_nodes, exclude_op_types : sequence of str
        Nodes (by name) and operator types to leave in float.
    op_types : sequence of str
        Which operator types to quantize: MatMul (default, as onnxruntime) and/or Conv.
    embeddings : bool
        Also store Gather tables (embeddings) as int8 with one scale per row
        (``QGather``); looked-up rows are dequantized to float.
    progress : callable, optional
        Called as ``progress(layers_done, layers_total)`` while weights are quantized.
    scale_dtype : {"float16", "float32"}
        How weight scales are stored: ``"float16"`` (default) rounds each scale up to a
        float16 value before quantizing with it (half the bytes per scale, a relative
        scale change below 2**-10; docs/ARITHMETIC.md, "Stored float16 scales");
        ``"float32"`` keeps the float32 scale.

    Returns
    -------
    Model

    Notes
    -----
    Weights: symmetric int8, ``scale = max|w| / 127`` per channel or tensor, zero point
    0. Activations per run: ONNX DynamicQuantizeLinear (uint8 affine) over the tensor or
    each row; ``y = float32(acc) * (s_x * s_w) + b`` (docs/QUANTIZATION.md).
    """
    _check_scale_dtype(scale_dtype)
    graph = _as_graph(model)
    sites = find_sites(graph, exclude_nodes=exclude_nodes, exclude_op_types=exclude_op_types, op_types=op_types)

    if embeddings:
        sites += find_embedding_sites(graph, exclude_nodes=exclude_nodes, exclude_op_types=exclude_op_types)

    def make(site: _Site) -> tuple[str, QuantizedTensor, dict]:
        if site.node.op == "Gather":
            return "QGather", _quantize_embedding(site, "int8", scale_dtype=scale_dtype), {}
        op = "QMatMul" if site.node.op == "MatMul" else "QConv"
        attrs: dict[str, Any] = {"activation": "dynamic", "x_dtype": "uint8"}
        if per_row and op == "QMatMul":
            attrs["per_row"] = 1
        return op, _quantize_weight(site, per_channel, True, scale_dtype), attrs

    meta = {"mode": "dynamic", "per_channel": per_channel, "per_row": per_row, "embeddings": embeddings,
            "scale_dtype": scale_dtype,
            "exclude_nodes": list(exclude_nodes), "exclude_op_types": list(exclude_op_types)}
    return _model(_rewrite(graph, sites, make, meta, progress))


def quantize_weight_only(model: Any, *, bits: int = 8, block_size: int = 0, symmetric: bool = True,
                         exclude_nodes: Sequence[str] = (), exclude_op_types: Sequence[str] = (),
                         op_types: Sequence[str] = QUANTIZABLE_OPS, embeddings: bool = True,
                         progress: Progress | None = None, scale_dtype: str = "float16") -> Any:
    """Weight-only quantization: int8 or int4 weights, float activations.

    Parameters
    ----------
    bits : {8, 4}
    block_size : int
        0 for one scale per output channel; otherwise blocks of this many input features
        (MatMul: along K, axis 0; Conv: along input channels, axis 1), the last block
        possibly partial.
    symmetric : bool
        Symmetric weights (zero point 0) or affine.
    embeddings : bool
        Also store Gather tables with ``bits`` bits, one scale per row (or per block of
        ``block_size`` columns of a row).
    progress : callable, optional
        Called as ``progress(layers_done, layers_total)`` while weights are quantized.
    scale_dtype : {"float16", "float32"}
        How weight scales are stored: ``"float16"`` (default) rounds each scale up to a
        float16 value before quantizing with it (half the bytes per scale, a relative
        scale change below 2**-10; docs/ARITHMETIC.md, "Stored float16 scales");
        ``"float32"`` keeps the float32 scale.

    Returns
    -------
    Model

    Raises
    ------
    QuantParamError
        ``bits`` not 4 or 8, or a negative block size.
    """
    if bits not in (4, 8):
        raise QuantParamError(f"weight bits must be 4 or 8, got {bits}")
    if block_size < 0:
        raise QuantParamError(f"block size must be >= 0, got {block_size}")
    _check_scale_dtype(scale_dtype)
    dtype = "int8" if bits == 8 else "int4"
    graph = _as_graph(model)
    sites = find_sites(graph, exclude_nodes=exclude_nodes, exclude_op_types=exclude_op_types, op_types=op_types)

    if embeddings:
        sites += find_embedding_sites(graph, exclude_nodes=exclude_nodes, exclude_op_types=exclude_op_types)

    def make(site: _Site) -> tuple[str, QuantizedTensor, dict]:
        if site.node.op == "Gather":
            return "QGather", _quantize_embedding(site, dtype, block_size, scale_dtype), {}
        is_matmul = site.node.op == "MatMul"
        op = "WMatMul" if is_matmul else "WConv"
        if block_size:
            axis = 0 if is_matmul else 1
            qw = _quantize_tensor(site.weight, dtype, granularity="per_block", axis=axis,
                                  block_size=block_size, symmetric=symmetric, scale_dtype=scale_dtype)
        else:
            qw = _quantize_tensor(site.weight, dtype, granularity="per_channel", axis=1 if is_matmul else 0,
                                  symmetric=symmetric, scale_dtype=scale_dtype)
        return op, qw, {}

    meta = {"mode": "weight-only", "bits": bits, "block_size": block_size, "symmetric": symmetric,
            "embeddings": embeddings, "scale_dtype": scale_dtype,
            "exclude_nodes": list(exclude_nodes), "exclude_op_types": list(exclude_op_types)}
    return _model(_rewrite(graph, sites, make, meta, progress))


# -- static quantization ---------------------------------------------------------------

def iter_calibration_batches(graph: Graph, data: Any, batch_size: int) -> tuple[Iterator[dict[str, np.ndarray]], int]:
    """Turn calibration data into feed batches.

    ``data`` is a mapping ``{input name: array}`` with samples along the first axis (as
    in an .npz file), or an iterable of such mappings (each one batch). Returns the
    iterator and the number of batches (0 when unknown).

    Raises
    ------
    CalibrationError
        Missing or unknown input names, unequal sample counts, or no samples.
    """
    names = [v.name for v in graph.inputs]
    if isinstance(data, Mapping):
        missing = [n for n in names if n not in data]
        if missing:
            raise CalibrationError(f"calibration data lacks model input(s) {', '.join(map(repr, missing))}; "
                                   f"it has {', '.join(map(repr, data)) or 'nothing'}")
        arrays = {n: np.asarray(data[n]) for n in names}
        counts = {n: (a.shape[0] if a.ndim else -1) for n, a in arrays.items()}
        if len(set(counts.values())) != 1 or -1 in counts.values():
            raise CalibrationError(f"calibration inputs need the same number of samples along axis 0, got {counts}")
        total = next(iter(counts.values()))
        if total == 0:
            raise CalibrationError("calibration data holds no samples")
        n_batches = -(-total // batch_size)

        def gen() -> Iterator[dict[str, np.ndarray]]:
            for start in range(0, total, batch_size):
                yield {n: a[start:start + batch_size] for n, a in arrays.items()}
        return gen(), n_batches
    if isinstance(data, Iterable):
        def checked() -> Iterator[dict[str, np.ndarray]]:
            seen = 0
            for batch in data:
                if not isinstance(batch, Mapping):
                    raise CalibrationError("each calibration batch must be a mapping {input name: array}")
                missing = [n for n in names if n not in batch]
                if missing:
                    raise CalibrationError(f"calibration batch lacks model input(s) {', '.join(map(repr, missing))}")
                seen += 1
                yield {n: batch[n] for n in names}
            if not seen:
                raise CalibrationError("calibration data holds no batches")
        return checked(), len(data) if hasattr(data, "__len__") else 0
    raise CalibrationError(f"calibration data must be a mapping or an iterable of mappings, got {type(data).__name__}")


def _make_observer(method: str, options: Mapping[str, Any]) -> Any:
    from ..reference import observers  # noqa: PLC0415

    try:
        cls = getattr(observers, METHODS[method])
    except KeyError:
        raise QuantParamError(f"unknown calibration method {method!r}; known: {', '.join(METHODS)}") from None
    return cls(**options)


def calibrate(graph: Graph, values: Sequence[str], calibration_data: Any, *, method: str = "minmax",
              observer_options: Mapping[str, Any] | None = None, batch_size: int = 64,
              progress: Progress | None = None) -> dict[str, tuple[float, float]]:
    """Observe the float model over calibration batches and return each value's range.

    Memory is bounded: every batch runs through the float graph, each watched value
    updates its streaming observer, and nothing else is kept.

    Returns
    -------
    dict
        Value name -> ``(min, max)`` chosen by the observer.
    """
    from ..runtime.executor import Executor  # noqa: PLC0415

    if method not in METHODS:
        raise QuantParamError(f"unknown calibration method {method!r}; known: {', '.join(METHODS)}")
    if batch_size < 1:
        raise QuantParamError(f"batch size must be >= 1, got {batch_size}")
    executor = Executor(graph)
    watched = set(values)
    observers = {name: _make_observer(method, observer_options or {}) for name in watched}
    graph_inputs = {v.name for v in graph.inputs} & watched

    def observe(name: str, value: np.ndarray) -> None:
        if name in watched:
            observers[name].update(np.asarray(value, dtype=np.float32))

    batches, total = iter_calibration_batches(graph, calibration_data, batch_size)
    done = 0
    for feeds in batches:
        try:
            checked = executor._check_feeds(feeds)
        except (ModelError, ValueError, TypeError) as exc:
            raise CalibrationError(f"calibration batch {done}: {exc}") from None
        for name in graph_inputs:
            observe(name, checked[name])
        executor.run(checked, observe=observe)
        done += 1
        if progress is not None:
            progress(done, total)
    ranges: dict[str, tuple[float, float]] = {}
    for name, obs in observers.items():
        lo, hi = obs.compute_range()
        ranges[name] = (float(lo), float(hi))
    return ranges


def quantize_static(model: Any, calibration_data: Any, *, method: str = "minmax", per_channel: bool = True,
                    symmetric_activations: bool = False, op_types: Sequence[str] = QUANTIZABLE_OPS,
                    exclude_nodes: Sequence[str] = (), exclude_op_types: Sequence[str] = (),
                    batch_size: int = 64, observer_options: Mapping[str, Any] | None = None,
                    progress: Progress | None = None, embeddings: bool = True,
                    weight_progress: Progress | None = None, scale_dtype: str = "float16") -> Any:
    """Static quantization: int8 weights and activation parameters fixed by calibration.

    Parameters
    ----------
    model : Model, Graph, str or onnx.ModelProto
        The float model.
    calibration_data : mapping or iterable of mappings
        ``{input name: array}`` with samples along axis 0 (as a .npz file holds them), or
        an iterable of such batches. Processed ``batch_size`` samples at a time.
    method : {"minmax", "moving_average", "percentile", "mse", "entropy"}
        The range observer (:mod:`qcore.reference.observers`).
    per_channel : bool
        Weight scales per output channel (default) or per tensor.
    symmetric_activations : bool
        int8 activations with zero point 0, or (default) uint8 affine.
    exclude_nodes, exclude_op_types : sequence of str
        Keep these nodes / operator types in float.
    observer_options : mapping, optional
        Keyword arguments for the observer (e.g. ``{"percentile": 99.99}``).
    progress : callable, optional
        Called as ``progress(batches_done, batches_total)``.
    embeddings : bool
        Also store Gather tables as int8 with one scale per row (``QGather``).
    weight_progress : callable, optional
        Called as ``progress(layers_done, layers_total)`` while weights are quantized.
    scale_dtype : {"float16", "float32"}
        How weight scales are stored: ``"float16"`` (default) rounds each scale up to a
        float16 value before quantizing with it (half the bytes per scale, a relative
        scale change below 2**-10; docs/ARITHMETIC.md, "Stored float16 scales");
        ``"float32"`` keeps the float32 scale.

    Returns
    -------
    Model

    Raises
    ------
    CalibrationError
        Calibration data missing an input, empty, or of the wrong shape/dtype.

    Notes
    -----
    ``(scale, zp) = choose_qparams(min, max, uint8 | int8, symmetric)`` (ONNX convention)
    per quantized node input; at run time ``q = QuantizeLinear(x, scale, zp)`` and
    ``y = float32(acc) * (scale * s_w) + b`` (docs/QUANTIZATION.md).
    """
    _check_scale_dtype(scale_dtype)
    graph = _as_graph(model)
    sites = find_sites(graph, exclude_nodes=exclude_nodes, exclude_op_types=exclude_op_types, op_types=op_types)
    wanted = sorted({s.node.inputs[0] for s in sites})
    x_dtype = "int8" if symmetric_activations else "uint8"
    options = dict(observer_options or {})
    if method == "mse":  # judge candidate ranges by the quantization actually used
        options.setdefault("dtype", x_dtype)
        options.setdefault("symmetric", symmetric_activations)
    ranges = calibrate(graph, wanted, calibration_data, method=method, observer_options=options,
                       batch_size=batch_size, progress=progress)

    if embeddings:
        sites += find_embedding_sites(graph, exclude_nodes=exclude_nodes, exclude_op_types=exclude_op_types)

    def make(site: _Site) -> tuple[str, QuantizedTensor, dict]:
        if site.node.op == "Gather":
            return "QGather", _quantize_embedding(site, "int8", scale_dtype=scale_dtype), {}
        lo, hi = ranges[site.node.inputs[0]]
        scale, zp = _choose_qparams(lo, hi, x_dtype, symmetric=symmetric_activations)
        attrs = {"activation": "static", "x_dtype": x_dtype, "x_scale": float(np.float32(scale)),
                 "x_zero_point": int(zp)}
        op = "QMatMul" if site.node.op == "MatMul" else "QConv"
        return op, _quantize_weight(site, per_channel, True, scale_dtype), attrs

    meta = {"mode": "static", "method": method, "per_channel": per_channel, "scale_dtype": scale_dtype,
            "symmetric_activations": symmetric_activations, "embeddings": embeddings,
            "exclude_nodes": list(exclude_nodes), "exclude_op_types": list(exclude_op_types)}
    return _model(_rewrite(graph, sites, make, meta, weight_progress))
