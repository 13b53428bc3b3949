"""qcore: a framework-agnostic model quantizer and exact int8 runtime.

Layers, lowest first (nothing imports a layer above it):

- :mod:`qcore.reference`: the NumPy oracle for every formula (docs/ARITHMETIC.md);
- :mod:`qcore.ops`: the same operations on the C core, bit-exact with the reference;
- :mod:`qcore.format`: the .qcm model file (docs/FORMAT.md);
- :mod:`qcore.graph`, :mod:`qcore.runtime`, :mod:`qcore.cli`: models, passes, execution.
"""

from ._lazy import lazy_exports
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

# Public names resolved on first use (PEP 562), so ``import qcore`` stays cheap and a
# board that only runs models never imports the quantization passes.
_LAZY = {
    "save": "api",
    "load": "api",
    "Model": "api",
    "import_onnx": "api",
    "quantize_dynamic": "api",
    "quantize_static": "api",
    "quantize_weight_only": "api",
    "QuantizedTensor": "reference",
    "quantize_tensor": "reference",
    "choose_qparams": "reference",
    "MinMaxObserver": "reference",
    "MovingAverageMinMaxObserver": "reference",
    "PercentileObserver": "reference",
    "MSEObserver": "reference",
    "EntropyObserver": "reference",
    "sqnr": "reference",
    "cosine_similarity": "reference",
    "max_error_in_steps": "reference",
    "fraction_clipped": "reference",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)


__all__ = [
    *_LAZY,
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
