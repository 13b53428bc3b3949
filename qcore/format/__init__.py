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
from .layout import crc32c
from .metadata import GRAPH_PREFIX, GRAPH_SCHEMA_VERSION_KEY
from .reader import QcmFile, TensorInfo, load_tensors
from .writer import QcmWriter, save_tensors

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
