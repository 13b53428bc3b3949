"""The model graph: nodes, tensors, graph inputs and outputs (docs/GRAPH.md).

A :class:`Graph` is a list of :class:`Node` in topological order. Values are named by
strings; a value is a graph input, an initializer (a constant tensor: float
``numpy.ndarray`` or :class:`~qcore.reference.tensor.QuantizedTensor`) or the output of
exactly one node. Attributes are JSON values only (ints, floats, strings and lists of
them), so the whole graph structure serialises to one JSON document stored in the .qcm
metadata under ``qcore.graph.*``; the tensors travel as the file's tensors.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from ..errors import ModelError
from ..reference.tensor import QuantizedTensor

#: Version of the graph schema written to ``qcore.graph.schema_version``.
GRAPH_SCHEMA_VERSION = 1

#: Element types a graph input or output may have.
VALUE_DTYPES = ("float32", "float64", "float16", "int64", "int32", "int8", "uint8", "bool")

Tensor = Union[np.ndarray, QuantizedTensor]
Dim = Union[int, str, None]


@dataclass
class ValueInfo:
    """A graph input or output: name, element type and shape.

    A dimension is an ``int`` when fixed, a ``str`` (symbolic, e.g. ``"batch"``) or None
    when free.
    """

    name: str
    dtype: str
    shape: list[Dim] | None = None

    def to_json(self) -> dict[str, Any]:
        """This value's entry of the stored graph structure (docs/GRAPH.md)."""
        return {"name": self.name, "dtype": self.dtype, "shape": self.shape}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ValueInfo:
        """Rebuild a value from its stored entry (:meth:`to_json`)."""
        shape = obj.get("shape")
        return cls(str(obj["name"]), str(obj["dtype"]), None if shape is None else list(shape))


@dataclass
class Node:
    """One operation.

    Attributes
    ----------
    op : str
        Operator name: an ONNX operator (float semantics of ONNX opset 13+) or one of
        qcore's quantized operators (``QMatMul``, ``QConv``, ``WMatMul``, ``WConv``).
    inputs : list of str
        Input value names in operator order; ``""`` for an omitted optional input.
    outputs : list of str
        Output value names.
    attrs : dict
        JSON-compatible attributes.
    name : str
        Unique node name (used in errors, profiles and ``exclude`` lists).
    """

    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    def to_json(self) -> dict[str, Any]:
        """This node's entry of the stored graph structure (docs/GRAPH.md)."""
        return {"op": self.op, "name": self.name, "inputs": list(self.inputs),
                "outputs": list(self.outputs), "attrs": self.attrs}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Node:
        """Rebuild a node from its stored entry (:meth:`to_json`)."""
        return cls(str(obj["op"]), [str(i) for i in obj["inputs"]], [str(o) for o in obj["outputs"]],
                   dict(obj.get("attrs", {})), str(obj.get("name", "")))


@dataclass
class Graph:
    """A model graph in topological order.

    Attributes
    ----------
    nodes : list of Node
    inputs, outputs : list of ValueInfo
    initializers : dict
        Constant tensors by value name (float arrays, integer arrays or QuantizedTensor).
    metadata : dict
        Free-form JSON information (producer, opset, quantization settings).
    """

    nodes: list[Node]
    inputs: list[ValueInfo]
    outputs: list[ValueInfo]
    initializers: dict[str, Tensor] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    # -- queries ---------------------------------------------------------------------
    def producers(self) -> dict[str, Node]:
        """Map each node output name to its node."""
        return {out: node for node in self.nodes for out in node.outputs if out}

    def consumers(self) -> dict[str, list[Node]]:
        """Map each value name to the nodes that read it."""
        result: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    result.setdefault(name, []).append(node)
        return result

    def node_by_name(self, name: str) -> Node:
        """The node called ``name``.

        Raises
        ------
        ModelError
            No node has that name.
        """
        for node in self.nodes:
            if node.name == name:
                return node
        raise ModelError(f"no node named {name!r}")

    def op_counts(self) -> dict[str, int]:
        """Number of nodes of each op type."""
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
        return counts

    def copy(self) -> Graph:
        """A structural copy sharing the (immutable) tensors."""
        return Graph(
            [Node(n.op, list(n.inputs), list(n.outputs), json.loads(json.dumps(n.attrs)), n.name)
             for n in self.nodes],
            [ValueInfo(v.name, v.dtype, None if v.shape is None else list(v.shape)) for v in self.inputs],
            [ValueInfo(v.name, v.dtype, None if v.shape is None else list(v.shape)) for v in self.outputs],
            dict(self.initializers),
            json.loads(json.dumps(self.metadata)),
        )

    # -- checks ----------------------------------------------------------------------
    def validate(self) -> None:
        """Check names and order: every input defined before use, one producer per value.

        Raises
        ------
        ModelError
            Naming the first broken rule and the node.
        """
        defined = {v.name for v in self.inputs} | set(self.initializers)
        seen_names: set[str] = set()
        for node in self.nodes:
            if not node.name or node.name in seen_names:
                raise ModelError(f"node names must be unique and non-empty: {node.name!r} ({node.op})")
            seen_names.add(node.name)
            for name in node.inputs:
                if name and name not in defined:
                    raise ModelError(f"node {node.name!r} ({node.op}) reads {name!r} before it is defined")
            for out in node.outputs:
                if out in defined:
                    raise ModelError(f"value {out!r} is defined twice (node {node.name!r})")
                if out:
                    defined.add(out)
        for out in self.outputs:
            if out.name not in defined:
                raise ModelError(f"graph output {out.name!r} is never computed")

    # -- serialisation ---------------------------------------------------------------
    def structure_json(self) -> str:
        """The graph without tensor data as a JSON document (docs/GRAPH.md)."""
        doc = {
            "schema_version": GRAPH_SCHEMA_VERSION,
            "inputs": [v.to_json() for v in self.inputs],
            "outputs": [v.to_json() for v in self.outputs],
            "nodes": [n.to_json() for n in self.nodes],
            "initializers": sorted(self.initializers),
            "bool_initializers": sorted(n for n, t in self.initializers.items()
                                        if isinstance(t, np.ndarray) and t.dtype == np.bool_),
            "metadata": self.metadata,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_structure_json(cls, text: str, tensors: dict[str, Tensor]) -> Graph:
        """Rebuild a graph from :meth:`structure_json` and its tensors.

        Raises
        ------
        ModelError
            Unknown schema version, malformed document or a missing tensor.
        """
        try:
            doc = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"graph structure is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ModelError("graph structure must be a JSON object")
        version = doc.get("schema_version")
        if version not in (GRAPH_SCHEMA_VERSION, 2):
            raise ModelError(
                f"graph schema version {version!r} is not supported (this qcore reads {GRAPH_SCHEMA_VERSION} and 2)")
        try:
            names = [str(n) for n in doc["initializers"]]
            if version == 2:  # the initializers packed into the pack tensor (docs/GRAPH.md)
                names += [str(entry[0]) for entry in doc["packed"]]
            missing = [n for n in names if n not in tensors]
            if missing:
                raise ModelError(f"graph initializers missing from the file: {', '.join(missing[:5])}")
            bools = {str(n) for n in doc.get("bool_initializers", [])}
            graph = cls(
                [Node.from_json(n) for n in doc["nodes"]],
                [ValueInfo.from_json(v) for v in doc["inputs"]],
                [ValueInfo.from_json(v) for v in doc["outputs"]],
                {n: (np.asarray(tensors[n]) != 0) if n in bools else tensors[n] for n in names},
                dict(doc.get("metadata", {})),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"malformed graph structure: {exc!r}") from None
        graph.validate()
        return graph


def tensor_nbytes(tensor: Tensor) -> int:
    """Storage size of a tensor's data (sub-byte types counted packed)."""
    if isinstance(tensor, QuantizedTensor):
        from ..reference.dtypes import int_type

        bits = int_type(tensor.dtype).bits
        return (math.prod(tensor.shape) * bits + 7) // 8 + tensor.scale.nbytes + tensor.zero_point.nbytes
    return int(np.asarray(tensor).nbytes)
