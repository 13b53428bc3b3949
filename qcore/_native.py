"""Loads the compiled C core (``qcore._qcore``), maps its status codes to exceptions and
hands it float arrays it may read and write (aligned, C-contiguous).

This is the only module that imports the cffi extension; :mod:`qcore.reference` never
does. ``check(status)`` is the one path from a C status to a Python exception.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import errors
from ._version import __version__

try:
    from ._qcore import ffi, lib  # type: ignore[import-not-found]
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise errors.BuildMismatchError(
        "qcore's C core (qcore._qcore) is not built; install the package with "
        "'pip install .' or build in place with 'python csrc/ffi_build.py'"
    ) from exc

_c_version = ffi.string(lib.qc_version()).decode()
if _c_version != __version__:
    raise errors.BuildMismatchError(
        f"qcore's C core is version {_c_version} but the Python package is {__version__}; "
        "rebuild the extension (pip install . or python csrc/ffi_build.py)"
    )

_STATUS_CLASSES: dict[int, type[errors.QcoreError]] = {
    lib.QC_E_INVALID_ARGUMENT: errors.QuantParamError,
    lib.QC_E_NULL_POINTER: errors.NativeError,
    lib.QC_E_SHAPE: errors.ShapeError,
    lib.QC_E_DTYPE: errors.DTypeError,
    lib.QC_E_OVERFLOW: errors.ShapeError,
    lib.QC_E_NO_MEMORY: errors.NativeError,
    lib.QC_E_UNSUPPORTED_ISA: errors.UnsupportedISAError,
    lib.QC_E_NONFINITE: errors.NonFiniteError,
    lib.QC_E_THREAD: errors.NativeError,
    lib.QC_E_SCALE: errors.QuantParamError,
    lib.QC_E_ZERO_POINT: errors.QuantParamError,
}


def status_string(status: int) -> str:
    """Return the C library's description of a status code."""
    return ffi.string(lib.qc_status_string(status)).decode()


def check(status: int, context: str) -> None:
    """Raise the qcore exception matching a C status; do nothing for ``QC_OK``.

    Parameters
    ----------
    status : int
        The value a ``qc_*`` function returned.
    context : str
        What was being done, put at the front of the message.

    Raises
    ------
    QcoreError
        The subclass mapped from ``status`` (``FormatError`` for the format range).
    """
    if status == lib.QC_OK:
        return
    if lib.QC_E_FORMAT_FIRST <= status <= lib.QC_E_FORMAT_LAST:
        cls: type[errors.QcoreError] = errors.FormatError
    else:
        cls = _STATUS_CLASSES.get(status, errors.NativeError)
    raise cls(f"{context}: {status_string(status)} (qc_status {status})")


ISA_NAMES: tuple[str, ...] = tuple(ffi.string(lib.qc_isa_name(i)).decode() for i in range(lib.QC_ISA_COUNT))


def available_isas() -> list[str]:
    """Names of the instruction-set paths this build and CPU can run, scalar first."""
    mask = lib.qc_isa_available_mask()
    return [name for i, name in enumerate(ISA_NAMES) if mask & (1 << i)]


def isa_index(isa: str | None) -> int:
    """Map an ISA name (or None for the default) to its ``qc_isa`` value.

    Raises
    ------
    UnsupportedISAError
        For an unknown name or one this CPU cannot run.
    """
    if isa is None:
        return lib.QC_ISA_AUTO
    if isa not in ISA_NAMES:
        raise errors.UnsupportedISAError(f"unknown ISA {isa!r}; known: {', '.join(ISA_NAMES)}")
    index = ISA_NAMES.index(isa)
    if not lib.qc_isa_available_mask() & (1 << index):
        raise errors.UnsupportedISAError(
            f"ISA {isa!r} is not available here; available: {', '.join(available_isas())}"
        )
    return index


def default_isa() -> str:
    """The ISA used when none is named: ``QCORE_ISA`` if set, else the best available."""
    out = ffi.new("int *")
    check(lib.qc_isa_default(out), "QCORE_ISA")
    return ISA_NAMES[out[0]]


def make_options(isa: str | None = None, num_threads: int | None = None):
    """Build a ``qc_options`` struct (cffi-owned) for one call.

    Raises
    ------
    UnsupportedISAError
        ``isa`` is unknown or unavailable.
    QuantParamError
        ``num_threads`` is not in [1, 256].
    """
    options = ffi.new("qc_options *")
    options.isa = isa_index(isa)
    if num_threads is None:
        options.num_threads = 0
    else:
        if not isinstance(num_threads, int) or not 1 <= num_threads <= 256:
            raise errors.QuantParamError(f"num_threads must be an int in [1, 256], got {num_threads!r}")
        options.num_threads = num_threads
    return options


def c_array(a: np.ndarray, dtype: Any = None) -> np.ndarray:
    """``a`` (as ``dtype``, if given) as C reads it through a typed pointer: C-contiguous and
    aligned for its type (copied only when it is not: a strided view, a view at an odd byte
    offset, a record field)."""
    if (type(a) is np.ndarray and a.flags.c_contiguous and a.flags.aligned
            and (dtype is None or a.dtype == dtype)):
        return a  # the usual case, without np.require's cost on the hot path
    return np.require(a, dtype, ["C_CONTIGUOUS", "ALIGNED"])


def c_floats(a: np.ndarray) -> np.ndarray:
    """float32 ``a`` as C reads floats (:func:`c_array` with float32)."""
    return c_array(a, np.float32)


def float_target(out: np.ndarray) -> np.ndarray:
    """Where C may write ``out``'s float32 values: ``out`` itself, or an aligned array of its
    shape when ``out`` starts at an odd byte offset (pass it to :func:`copy_back` after)."""
    return out if out.flags.aligned else np.empty(out.shape, np.float32)


def copy_back(out: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``out`` after C wrote ``target`` (from :func:`float_target`)."""
    if target is not out:
        out[...] = target
    return out
