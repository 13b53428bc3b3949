"""The qcore exception hierarchy.

Every error qcore raises on purpose is a :class:`QcoreError`. Each concrete class also
derives from the builtin exception a Python user would expect (``TypeError`` for a wrong
dtype, ``ValueError`` for a bad value, ...), so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class QcoreError(Exception):
    """Base class of every error raised by qcore."""


class DTypeError(QcoreError, TypeError):
    """An array or parameter has an element type the operation does not accept."""


class ShapeError(QcoreError, ValueError):
    """Shapes do not fit together (including empty arrays where data is required)."""


class QuantParamError(QcoreError, ValueError):
    """A scale, zero point, axis or block size is invalid."""


class NonFiniteError(QcoreError, ValueError):
    """A NaN or infinite value where qcore requires finite data."""


class NativeError(QcoreError, RuntimeError):
    """The C core reported a failure that has no more specific class."""


class UnsupportedISAError(QcoreError, RuntimeError):
    """The requested instruction-set path is not compiled in or not run by this CPU."""


class BuildMismatchError(QcoreError, ImportError):
    """The compiled C core does not belong to this version of the Python package."""


class FormatError(QcoreError, ValueError):
    """A .qcm file breaks a rule of docs/FORMAT.md (subclasses name the rule)."""


class ModelError(QcoreError, ValueError):
    """A model graph is malformed, or its inputs do not match what the model expects."""


class UnsupportedOpError(ModelError):
    """A model uses operators qcore cannot import or run."""


class CalibrationError(QcoreError, ValueError):
    """Calibration data is missing, malformed or does not match the model's inputs."""
