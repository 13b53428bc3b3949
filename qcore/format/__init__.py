"""The .qcm model file (docs/FORMAT.md): writer, reader and validation.

- :func:`save_tensors` / :class:`QcmWriter`: streaming, atomic, deterministic writing of
  plain arrays and :class:`~qcore.reference.tensor.QuantizedTensor` values plus typed
  metadata.
- :func:`load_tensors` -> :class:`QcmFile`: memory-mapped, validated, zero-copy reading.
- :mod:`qcore.format.errors`: one exception class per validation rule.
- :mod:`qcore.format.native`: the C reader (csrc/src/format.c) over a Python buffer.
"""

from .errors import *  # noqa: F401,F403
from .errors import __all__ as _error_names
from .._lazy import lazy_exports

# The reader, writer and their helpers import on first use (qcore/_lazy.py): running a
# model never imports the writer.
_EXPORTS = {
    "crc32c": "layout",
    "GRAPH_PREFIX": "metadata",
    "GRAPH_SCHEMA_VERSION_KEY": "metadata",
    "QcmFile": "reader",
    "TensorInfo": "reader",
    "load_tensors": "reader",
    "QcmWriter": "writer",
    "save_tensors": "writer",
}
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)

__all__ = [
    "QcmFile",
    "QcmWriter",
    "TensorInfo",
    "load_tensors",
    "save_tensors",
    "crc32c",
    "GRAPH_PREFIX",
    "GRAPH_SCHEMA_VERSION_KEY",
    *_error_names,
]
