"""Models in .qcm files: the graph structure in the metadata, tensors as file tensors.

Schema (docs/GRAPH.md): ``qcore.graph.schema_version`` (int) and the JSON document of
:meth:`Graph.structure_json`, either as ``qcore.graph.structure`` (string: the document)
or as ``qcore.graph.structure_zlib`` (string: base64 of the zlib-compressed document,
what :func:`graph_metadata` writes). Every initializer is one file tensor under its value
name.
"""

from __future__ import annotations

import base64
import binascii
import os
import zlib
from typing import Any

import numpy as np

from ..errors import ModelError
from .ir import GRAPH_SCHEMA_VERSION, Graph

SCHEMA_KEY = "qcore.graph.schema_version"
STRUCTURE_KEY = "qcore.graph.structure"
STRUCTURE_ZLIB_KEY = "qcore.graph.structure_zlib"


def compress_structure(text: str) -> str:
    """base64 (standard alphabet, padded) of the zlib stream (level 9) of UTF-8 ``text``."""
    return base64.b64encode(zlib.compress(text.encode("utf-8"), 9)).decode("ascii")


def decompress_structure(value: str) -> str:
    """Inverse of :func:`compress_structure`.

    Raises
    ------
    ModelError
        ``value`` is not base64 of a zlib stream of UTF-8 text.
    """
    try:
        return zlib.decompress(base64.b64decode(value.encode("ascii"), validate=True)).decode("utf-8")
    except (binascii.Error, zlib.error, UnicodeError, ValueError) as exc:
        raise ModelError(f"{STRUCTURE_ZLIB_KEY} is not base64 zlib-compressed UTF-8 text: {exc}") from None


def graph_metadata(graph: Graph) -> dict[str, Any]:
    """The metadata entries that describe ``graph`` (the structure compressed)."""
    return {SCHEMA_KEY: GRAPH_SCHEMA_VERSION, STRUCTURE_ZLIB_KEY: compress_structure(graph.structure_json())}


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
    return STRUCTURE_KEY in metadata or STRUCTURE_ZLIB_KEY in metadata


def structure_text(metadata: Any) -> str:
    """The structure JSON document of a file's metadata, from whichever key holds it."""
    if STRUCTURE_KEY in metadata:
        return str(metadata[STRUCTURE_KEY])
    return decompress_structure(str(metadata[STRUCTURE_ZLIB_KEY]))


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
    if STRUCTURE_KEY in metadata and STRUCTURE_ZLIB_KEY in metadata:
        raise ModelError(f"the file holds both {STRUCTURE_KEY} and {STRUCTURE_ZLIB_KEY}; exactly one is allowed")
    version = metadata.get(SCHEMA_KEY)
    if version != GRAPH_SCHEMA_VERSION:
        raise ModelError(f"graph schema version {version!r} is not supported (this qcore reads {GRAPH_SCHEMA_VERSION})")
    text = structure_text(metadata)
    tensors = {name: qcm_file[name] for name in qcm_file}
    return Graph.from_structure_json(text, tensors)


def load_graph(path: str | os.PathLike, *, verify: bool = True) -> Graph:
    """Open a .qcm model file and return its graph."""
    from .. import format as qcm  # noqa: PLC0415

    if not os.path.exists(os.fspath(path)):
        raise ModelError(f"model file not found: {os.fspath(path)}")
    return graph_from_file(qcm.load_tensors(path, verify=verify))
