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


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qcore' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
