"""Models in .qcm files: the graph structure in the metadata, tensors as file tensors.

Schema (docs/GRAPH.md): ``qcore.graph.schema_version`` (int) and
``qcore.graph.structure`` (string: the JSON document of :meth:`Graph.structure_json`).
Every initializer is one file tensor under its value name.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import ModelError
from .ir import GRAPH_SCHEMA_VERSION, Graph

SCHEMA_KEY = "qcore.graph.schema_version"
STRUCTURE_KEY = "qcore.graph.structure"


def graph_metadata(graph: Graph) -> dict[str, Any]:
    """The metadata entries that describe ``graph``."""
    return {SCHEMA_KEY: GRAPH_SCHEMA_VERSION, STRUCTURE_KEY: graph.structure_json()}


def save_graph(graph: Graph, path: str | os.PathLike, metadata: dict[str, Any] | None = None) -> None:
    """Write ``graph`` to a .qcm file (atomic, via :func:`qcore.format.save_tensors`)."""
    from .. import format as qcm  # noqa: PLC0415

    graph.validate()
    meta = dict(metadata or {})
    meta.update(graph_metadata(graph))
    # .qcm has no boolean element type: bool constants travel as uint8 0/1 and are listed
    # in the structure's "bool_initializers" (docs/GRAPH.md)
    tensors = {name: (value.astype(np.uint8) if isinstance(value, np.ndarray) and value.dtype == np.bool_ else value)
               for name, value in graph.initializers.items()}
    qcm.save_tensors(path, tensors, metadata=meta)


def has_graph(metadata: Any) -> bool:
    return STRUCTURE_KEY in metadata


def graph_from_file(qcm_file: Any) -> Graph:
    """Rebuild the graph of an opened .qcm file (tensors stay memory-mapped).

    Raises
    ------
    ModelError
        The file holds no graph, or one written by a newer schema.
    """
    metadata = qcm_file.metadata
    if not has_graph(metadata):
        raise ModelError("the file holds tensors but no model graph (no qcore.graph.structure metadata)")
    version = metadata.get(SCHEMA_KEY)
    if version != GRAPH_SCHEMA_VERSION:
        raise ModelError(f"graph schema version {version!r} is not supported (this qcore reads {GRAPH_SCHEMA_VERSION})")
    tensors = {name: qcm_file[name] for name in qcm_file}
    return Graph.from_structure_json(str(metadata[STRUCTURE_KEY]), tensors)


def load_graph(path: str | os.PathLike, *, verify: bool = True) -> Graph:
    """Open a .qcm model file and return its graph."""
    from .. import format as qcm  # noqa: PLC0415

    if not os.path.exists(os.fspath(path)):
        raise ModelError(f"model file not found: {os.fspath(path)}")
    return graph_from_file(qcm.load_tensors(path, verify=verify))
