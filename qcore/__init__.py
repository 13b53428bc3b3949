"""qcore: a framework-agnostic model quantizer and exact int8 runtime.

Layers, lowest first (nothing imports a layer above it):

- :mod:`qcore.reference`: the NumPy oracle for every formula (docs/ARITHMETIC.md);
- :mod:`qcore.ops`: the same operations on the C core, bit-exact with the reference;
- :mod:`qcore.format`: the .qcm model file (docs/FORMAT.md);
- :mod:`qcore.graph`, :mod:`qcore.runtime`, :mod:`qcore.cli`: models, passes, execution.
"""

from ._version import __version__
from .errors import (
    BuildMismatchError,
    CalibrationError,
    DTypeError,
    FormatError,
    ModelError,
    NativeError,
    NonFiniteError,
    QcoreError,
    QuantParamError,
    ShapeError,
    UnsupportedISAError,
    UnsupportedOpError,
)

__all__ = [
    "__version__",
    "BuildMismatchError",
    "CalibrationError",
    "DTypeError",
    "FormatError",
    "ModelError",
    "NativeError",
    "NonFiniteError",
    "QcoreError",
    "QuantParamError",
    "ShapeError",
    "UnsupportedISAError",
    "UnsupportedOpError",
]
