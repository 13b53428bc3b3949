"""Import an ONNX model into qcore's graph IR.

``onnx`` is an optional dependency (``pip install qcore[onnx]``): it is imported only when
this module's functions run, never by the runtime.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import FormatError, ModelError, UnsupportedOpError
from .ir import Graph, Node, ValueInfo

_DOMAINS = ("", "ai.onnx")

#: ONNX operators the importer accepts (float semantics); Constant becomes an initializer.
SUPPORTED_OPS = frozenset({
    "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Relu", "Clip", "LeakyRelu",
    "Sigmoid", "Tanh", "Erf", "Gelu", "Softmax", "LayerNormalization", "ReduceMean", "ReduceSum",
    "ReduceMax", "ReduceMin", "Conv", "MaxPool", "AveragePool", "GlobalAveragePool",
    "GlobalMaxPool", "BatchNormalization", "Flatten", "Reshape", "Transpose", "Concat", "Split",
    "Gather", "Unsqueeze", "Squeeze", "Slice", "Where", "Cast", "CastLike", "Shape", "Size",
    "Constant", "ConstantOfShape", "Expand", "Range", "Equal", "Less", "Greater", "And", "Or",
    "Not", "Neg", "Abs", "Exp", "Log", "Reciprocal", "Identity", "Dropout", "Max", "Min", "Sum",
    "Floor", "Ceil", "Tile", "Mod",
})


def _require_onnx() -> Any:
    try:
        import onnx  # noqa: PLC0415
    except ImportError:
        raise ModelError("importing ONNX models needs the onnx package: pip install 'qcore[onnx]'") from None
    return onnx


def _load_proto(model: Any) -> Any:
    onnx = _require_onnx()
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise ModelError(f"model file not found: {path}")
        try:
            return onnx.load(path)
        except Exception as exc:  # onnx raises DecodeError / various on damaged files
            raise FormatError(f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    if isinstance(model, (bytes, bytearray)):
        try:
            return onnx.load_from_string(bytes(model))
        except Exception as exc:
            raise FormatError(f"bytes are not a readable ONNX model ({type(exc).__name__})") from None
    if hasattr(model, "graph"):
        return model
    raise ModelError(f"cannot import {type(model).__name__} as an ONNX model")


_ELEM_NAMES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool", 10: "float16", 11: "float64"}


def _value_info(onnx: Any, vi: Any) -> ValueInfo:
    ttype = vi.type.tensor_type
    dtype = _ELEM_NAMES.get(ttype.elem_type)
    if dtype is None:
        raise ModelError(f"graph value {vi.name!r} has unsupported element type {ttype.elem_type}")
    shape: list[Any] | None = None
    if ttype.HasField("shape"):
        shape = []
        for dim in ttype.shape.dim:
            if dim.HasField("dim_value"):
                shape.append(int(dim.dim_value))
            elif dim.HasField("dim_param") and dim.dim_param:
                shape.append(str(dim.dim_param))
            else:
                shape.append(None)
    return ValueInfo(vi.name, dtype, shape)


def _attr_value(onnx: Any, attr: Any, node_desc: str) -> Any:
    from onnx import numpy_helper  # noqa: PLC0415

    A = onnx.AttributeProto
    if attr.type == A.FLOAT:
        return float(np.float32(attr.f))
    if attr.type == A.INT:
        return int(attr.i)
    if attr.type == A.STRING:
        return attr.s.decode("utf-8")
    if attr.type == A.FLOATS:
        return [float(np.float32(v)) for v in attr.floats]
    if attr.type == A.INTS:
        return [int(v) for v in attr.ints]
    if attr.type == A.STRINGS:
        return [s.decode("utf-8") for s in attr.strings]
    if attr.type == A.TENSOR:
        return numpy_helper.to_array(attr.t)
    raise UnsupportedOpError(f"{node_desc}: attribute {attr.name!r} of type {attr.type} is not supported")


def import_onnx(model: Any, *, optimize: bool = True) -> Graph:
    """Convert an ONNX model (path, bytes or ``onnx.ModelProto``) into a :class:`Graph`.

    Parameters
    ----------
    model : str, os.PathLike, bytes or onnx.ModelProto
        The float model.
    optimize : bool
        Run the import-time simplifications (constant and Shape folding, BatchNorm folding
        into Conv, Gemm to MatMul + Add, LayerNorm pattern fusion, dead-code removal).

    Returns
    -------
    Graph

    Raises
    ------
    UnsupportedOpError
        The model uses operators qcore does not support; the message names every such
        operator and the nodes that use it.
    ModelError
        onnx is missing, or the model is malformed.
    FormatError
        The file is not a readable ONNX model.
    """
    onnx = _require_onnx()
    from onnx import numpy_helper  # noqa: PLC0415

    proto = _load_proto(model)
    opset = 13
    for imp in proto.opset_import:
        if imp.domain in _DOMAINS:
            opset = int(imp.version)
    g = proto.graph

    unsupported: dict[str, list[str]] = {}
    for i, n in enumerate(g.node):
        name = n.name or f"{n.op_type}_{i}"
        if n.domain not in _DOMAINS or n.op_type not in SUPPORTED_OPS:
            key = n.op_type if n.domain in _DOMAINS else f"{n.domain}::{n.op_type}"
            unsupported.setdefault(key, []).append(name)
    if unsupported:
        parts = [f"{op} (nodes: {', '.join(names)})" for op, names in sorted(unsupported.items())]
        raise UnsupportedOpError(f"unsupported operators: {'; '.join(parts)}")

    initializers: dict[str, np.ndarray] = {}
    for init in g.initializer:
        try:
            initializers[init.name] = numpy_helper.to_array(init)
        except Exception as exc:
            raise ModelError(f"initializer {init.name!r} cannot be read: {exc}") from None
    init_names = set(initializers)

    inputs = [_value_info(onnx, vi) for vi in g.input if vi.name not in init_names]
    outputs = [_value_info(onnx, vi) for vi in g.output]

    nodes: list[Node] = []
    used_names: set[str] = set()
    for i, n in enumerate(g.node):
        name = n.name or f"{n.op_type}_{i}"
        while name in used_names:
            name = f"{name}_{i}"
        used_names.add(name)
        desc = f"node {name!r} ({n.op_type})"
        attrs = {a.name: _attr_value(onnx, a, desc) for a in n.attribute}
        if n.op_type == "Constant":
            initializers[n.output[0]] = _constant_value(attrs, desc)
            continue
        if n.op_type == "ConstantOfShape":
            value = attrs.pop("value", None)
            arr = np.zeros(1, np.float32) if value is None else np.asarray(value)
            attrs["value"] = arr.reshape(-1)[0].item()
            attrs["dtype"] = arr.dtype.name
        if n.op_type == "Softmax" and opset < 13:
            attrs.setdefault("axis", 1)
            attrs["coerce_2d"] = 1
        for key, value in list(attrs.items()):
            if isinstance(value, np.ndarray):
                raise UnsupportedOpError(f"{desc}: tensor attribute {key!r} is not supported")
        nodes.append(Node(n.op_type, list(n.input), list(n.output), attrs, name))

    graph = Graph(nodes, inputs, outputs, initializers,
                  {"producer": f"{proto.producer_name} {proto.producer_version}".strip(), "opset": opset})
    graph.validate()
    if optimize:
        from .transforms import simplify  # noqa: PLC0415

        static_shapes = _static_shapes(onnx, proto)
        graph = simplify(graph, static_shapes)
    return graph


def _constant_value(attrs: dict[str, Any], desc: str) -> np.ndarray:
    if "value" in attrs:
        return np.asarray(attrs["value"])
    if "value_float" in attrs:
        return np.array(attrs["value_float"], dtype=np.float32)
    if "value_floats" in attrs:
        return np.array(attrs["value_floats"], dtype=np.float32)
    if "value_int" in attrs:
        return np.array(attrs["value_int"], dtype=np.int64)
    if "value_ints" in attrs:
        return np.array(attrs["value_ints"], dtype=np.int64)
    raise UnsupportedOpError(f"{desc}: Constant with attributes {sorted(attrs)} is not supported")


def _static_shapes(onnx: Any, proto: Any) -> dict[str, list[int | None]]:
    """Shapes ONNX shape inference can prove, dims unknown at import as None."""
    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # inference is an optimisation only
        return {}
    shapes: dict[str, list[int | None]] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        ttype = vi.type.tensor_type
        if not ttype.HasField("shape"):
            continue
        shapes[vi.name] = [int(d.dim_value) if d.HasField("dim_value") else None for d in ttype.shape.dim]
    return shapes
