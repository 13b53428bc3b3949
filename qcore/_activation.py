"""float32 erf, GELU and softmax on the C core (csrc/include/qcore_activation.h).

Bit-identical on every ISA path and to the NumPy definition
:mod:`qcore.reference.activation`; ``isa`` (``"scalar"``, ``"avx2"``, ...; ``None`` picks
``QCORE_ISA`` or the best) exists for testing and benchmarking.
"""

from __future__ import annotations

import numpy as np

from ._native import check, ffi, lib, make_options
from .errors import DTypeError


def _run(fn, name: str, x: np.ndarray, out: np.ndarray | None, isa: str | None) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise DTypeError(f"{name}: expected float32 input, got {x.dtype}")
    src = np.ascontiguousarray(x)
    if out is None:
        out = np.empty(src.shape, dtype=np.float32)
    elif out.shape != src.shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise DTypeError(f"{name}: out must be a C-contiguous float32 array of shape {src.shape}")
    if src.size:
        status = fn(ffi.cast("const float *", ffi.from_buffer(src)), src.size,
                    ffi.cast("float *", ffi.from_buffer(out)), make_options(isa, None))
        check(status, name)
    return out


def erf(x: np.ndarray, *, out: np.ndarray | None = None, isa: str | None = None) -> np.ndarray:
    """Element-wise error function of float32 ``x`` (:func:`qcore.reference.activation.erf`).

    Parameters
    ----------
    x : numpy.ndarray
        float32, any shape.
    out : numpy.ndarray, optional
        C-contiguous float32 array of ``x``'s shape to write into (may be ``x`` itself).
    isa : str, optional
        Instruction-set path.

    Returns
    -------
    numpy.ndarray
        float32, same shape.

    Raises
    ------
    DTypeError
        ``x`` is not float32 or ``out`` does not fit.
    UnsupportedISAError
        ``isa`` cannot run here.

    Notes
    -----
    ``erf(x) = sign(x) * z * S(z^2)`` for ``z = |x| < 0.5``, else ``sign(x) * (1 - erfc(z))``
    (docs in csrc/include/qcore_activation.h); absolute error below 3e-7.
    """
    return _run(lib.qc_erf_f32, "erf", x, out, isa)


def gelu(x: np.ndarray, *, out: np.ndarray | None = None, isa: str | None = None) -> np.ndarray:
    """Element-wise GELU ``x / 2 * (1 + erf(x / sqrt 2))`` of float32 ``x``.

    Parameters
    ----------
    x : numpy.ndarray
        float32, any shape.
    out : numpy.ndarray, optional
        C-contiguous float32 array of ``x``'s shape to write into (may be ``x`` itself).
    isa : str, optional
        Instruction-set path.

    Returns
    -------
    numpy.ndarray
        float32, same shape.

    Raises
    ------
    DTypeError
        ``x`` is not float32 or ``out`` does not fit.
    UnsupportedISAError
        ``isa`` cannot run here.

    Notes
    -----
    :func:`qcore.reference.activation.gelu`: ``(0.5 x) * g``, ``g`` from the erf series
    near 0 and from erfc otherwise (``g = erfc(|u|)`` for negative ``u = x / sqrt 2``).
    """
    return _run(lib.qc_gelu_f32, "gelu", x, out, isa)


def softmax(x: np.ndarray, *, out: np.ndarray | None = None, isa: str | None = None) -> np.ndarray:
    """Softmax of float32 ``x`` over its last axis (:func:`qcore.reference.activation.softmax`).

    Parameters
    ----------
    x : numpy.ndarray
        float32, at least 1-D.
    out : numpy.ndarray, optional
        C-contiguous float32 array of ``x``'s shape to write into (may be ``x`` itself).
    isa : str, optional
        Instruction-set path.

    Returns
    -------
    numpy.ndarray
        float32, same shape.

    Raises
    ------
    DTypeError
        ``x`` is not float32, is 0-d, or ``out`` does not fit.
    UnsupportedISAError
        ``isa`` cannot run here.

    Notes
    -----
    ``y = exp(x - max) / sum`` with qcore's float32 exp and a fixed 8-lane summation
    order, so every ISA gives the same bits.
    """
    x = np.asarray(x)
    if x.ndim == 0:
        raise DTypeError("softmax needs at least one axis")
    cols = x.shape[-1]

    def run(xp, n, yp, options):
        return lib.qc_softmax_f32(xp, n // cols if cols else 0, cols, yp, options)
    return _run(run, "softmax", x, out, isa)
