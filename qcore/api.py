"""Top-level convenience functions: ``qcore.save`` / ``qcore.load`` and the passes.

:mod:`qcore` re-exports ``save, load, Model, quantize_dynamic, quantize_static,
quantize_weight_only, import_onnx``. The importer and the passes are imported here on
first use (qcore/_lazy.py), so loading and running a model never imports them.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from ._lazy import lazy_exports
from .errors import ModelError
from .runtime.model import Model

__getattr__, __dir__ = lazy_exports(__name__, globals(), {
    "import_onnx": "graph.onnx_import",
    "quantize_dynamic": "graph.quantize",
    "quantize_static": "graph.quantize",
    "quantize_weight_only": "graph.quantize",
}, base="qcore")

__all__ = ["Model", "import_onnx", "load", "quantize_dynamic", "quantize_static", "quantize_weight_only", "save"]


def save(obj: Any, path: str | os.PathLike, *, metadata: Mapping[str, Any] | None = None) -> None:
    """Write a model or a mapping of tensors to a .qcm file.

    Parameters
    ----------
    obj : Model or mapping of str to array / QuantizedTensor
        A :class:`Model` is saved with its graph (docs/GRAPH.md); a mapping is saved as
        plain tensors with ``metadata`` (:func:`qcore.format.save_tensors`).
    path : str or os.PathLike
    metadata : mapping, optional
        Extra metadata entries (mappings only; models carry their own).

    Raises
    ------
    ModelError
        ``obj`` is neither a Model nor a mapping.
    """
    if isinstance(obj, Model):
        if metadata:
            raise ModelError("metadata is stored with plain tensors only; a Model carries its own graph metadata")
        obj.save(path)
        return
    if isinstance(obj, Mapping):
        from .format import save_tensors  # noqa: PLC0415

        save_tensors(path, dict(obj), metadata=dict(metadata) if metadata else None)
        return
    raise ModelError(f"cannot save a {type(obj).__name__}: pass a qcore.Model or a mapping of tensors")


def load(path: str | os.PathLike, *, verify: bool = True) -> Any:
    """Open a .qcm file: a :class:`Model` when it holds a graph, else the tensor mapping.

    Parameters
    ----------
    path : str or os.PathLike
    verify : bool
        Check every checksum (default); False opens in constant time.

    Returns
    -------
    Model or qcore.format.QcmFile

    Raises
    ------
    ModelError
        The file does not exist, or its graph cannot be read.
    FormatError
        The file breaks a rule of docs/FORMAT.md.
    """
    from .format import load_tensors  # noqa: PLC0415
    from .graph.serialize import graph_from_file, has_graph  # noqa: PLC0415

    if not os.path.exists(os.fspath(path)):
        raise ModelError(f"file not found: {os.fspath(path)}")
    qcm = load_tensors(path, verify=verify)
    if has_graph(qcm.metadata):
        model = Model(graph_from_file(qcm))
        # the runtime has packed its weights; the mapped originals need not stay resident
        qcm.release_pages()
        return model
    return qcm
