"""One exception class per validation rule of docs/FORMAT.md.

Every class derives from :class:`qcore.errors.FormatError` (a ``ValueError``), carries the
rule's name (``rule``) and its C status code (``status``, ``QC_E_FORMAT_*`` in
csrc/include/qcore.h), and its message names the rule, the offending value and, where
there is one, the tensor (``tensor``) or metadata key.
"""

from __future__ import annotations

from ..errors import FormatError


class QcmError(FormatError):
    """Base of the per-rule errors; ``rule`` and ``status`` identify the broken rule."""

    rule: str = ""
    status: int = 0

    def __init__(self, detail: str, *, tensor: str | None = None) -> None:
        self.tensor = tensor
        where = f" (tensor {tensor!r})" if tensor is not None else ""
        super().__init__(f"rule {self.rule}{where}: {detail}")


class ChecksumError(QcmError):
    """A CRC-32C does not match (the header's or a tensor's)."""


def _rule(name: str, status: int):
    def decorate(cls):
        cls.rule = name
        cls.status = status
        return cls

    return decorate


@_rule("truncated", 100)
class TruncatedError(QcmError):
    """The file is shorter than its 64-byte preamble or than its declared size."""


@_rule("magic", 101)
class BadMagicError(QcmError):
    """The first 8 bytes are not the .qcm magic."""


@_rule("byte-order", 102)
class ByteOrderError(QcmError):
    """The byte-order mark does not read 0x01020304 as little-endian."""


@_rule("version", 103)
class UnsupportedVersionError(QcmError):
    """The format version is not one this reader knows."""


@_rule("flags", 104)
class UnsupportedFlagsError(QcmError):
    """The preamble flags are not zero."""


@_rule("alignment", 105)
class UnsupportedAlignmentError(QcmError):
    """The preamble's alignment field is not 64."""


@_rule("trailing-data", 106)
class TrailingDataError(QcmError):
    """The file is longer than its declared size."""


@_rule("header-size", 107)
class HeaderTooLargeError(QcmError):
    """The directory is longer than the 128 MiB cap."""


@_rule("tensor-count", 108)
class TooManyTensorsError(QcmError):
    """More tensor records than the cap."""


@_rule("metadata-count", 109)
class TooManyMetadataError(QcmError):
    """More metadata entries than the cap."""


@_rule("directory-bounds", 110)
class DirectoryBoundsError(QcmError):
    """The directory's offset or length does not fit the file."""


@_rule("header-checksum", 111)
class HeaderChecksumError(ChecksumError):
    """The CRC-32C of the preamble and directory does not match."""


@_rule("name", 112)
class BadNameError(QcmError):
    """A tensor name is empty, too long, not UTF-8, contains NUL, or the pool is not tiled."""


@_rule("element-type", 113)
class UnknownElementTypeError(QcmError):
    """A tensor's element type code is unknown."""


@_rule("rank", 114)
class RankError(QcmError):
    """A tensor's rank is over 8."""


@_rule("reserved", 115)
class ReservedFieldError(QcmError):
    """A reserved field or an unused dimension slot is not zero."""


@_rule("shape-overflow", 116)
class ShapeOverflowError(QcmError):
    """The element count or byte size of a shape exceeds 2**63 - 1."""


@_rule("data-size", 117)
class SizeMismatchError(QcmError):
    """A tensor's data size is not what its shape and element type give."""


@_rule("misaligned", 118)
class MisalignedError(QcmError):
    """A tensor's data offset is not a multiple of 64."""


@_rule("overlap", 119)
class OverlapError(QcmError):
    """A tensor's data starts before the previous one's padded end or runs into the directory."""


@_rule("hole", 120)
class HoleError(QcmError):
    """Bytes between two tensors (or before the directory) that no tensor accounts for."""


@_rule("role", 121)
class UnknownRoleError(QcmError):
    """A tensor's role code is unknown."""


@_rule("scheme", 122)
class UnknownSchemeError(QcmError):
    """A tensor's quantization scheme code is unknown."""


@_rule("convention", 123)
class UnknownConventionError(QcmError):
    """A convention code is unknown, or set on an unquantized tensor."""


@_rule("quant-type", 124)
class QuantTypeError(QcmError):
    """Quantized data, its scale or its zero point has an element type not allowed there."""


@_rule("axis", 125)
class AxisError(QcmError):
    """The quantization axis is out of range (or set where the scheme has none)."""


@_rule("block-size", 126)
class BlockSizeError(QcmError):
    """Blocked quantization without a block size, or a block size on another scheme."""


@_rule("reference", 127)
class BadReferenceError(QcmError):
    """A scale / zero-point / owner index does not form a valid pair of back-references."""


@_rule("scale-count", 128)
class ScaleCountError(QcmError):
    """The scale tensor's shape does not match the scheme, axis and block size."""


@_rule("zero-point-shape", 129)
class ZeroPointShapeError(QcmError):
    """The zero-point tensor's shape differs from the scale tensor's."""


@_rule("duplicate-name", 130)
class DuplicateNameError(QcmError):
    """Two tensors have the same name."""


@_rule("name-index", 131)
class NameIndexError(QcmError):
    """The name index has an entry out of range or is not in ascending name order."""


@_rule("metadata-key", 132)
class BadMetadataKeyError(QcmError):
    """A metadata key is empty, too long, or has a character outside [A-Za-z0-9_.-]."""


@_rule("duplicate-key", 133)
class DuplicateKeyError(QcmError):
    """Two metadata entries have the same key."""


@_rule("metadata-order", 134)
class MetadataOrderError(QcmError):
    """Metadata keys are not in ascending order."""


@_rule("metadata-type", 135)
class UnknownMetadataTypeError(QcmError):
    """A metadata value type (or array element type) is unknown."""


@_rule("metadata-value", 136)
class BadMetadataValueError(QcmError):
    """A metadata bool is not 0/1, or a string is not NUL-free UTF-8 followed by NUL."""


@_rule("metadata-bounds", 137)
class MetadataBoundsError(QcmError):
    """A metadata entry runs past the section, or bytes are left after the last entry."""


@_rule("graph-schema", 138)
class GraphSchemaError(QcmError):
    """``qcore.graph.*`` keys without an int ``qcore.graph.schema_version`` >= 1."""


@_rule("tensor-checksum", 139)
class TensorChecksumError(ChecksumError):
    """A tensor's CRC-32C does not match its bytes."""


@_rule("padding", 140)
class NonZeroPaddingError(QcmError):
    """An alignment padding byte, or an unused bit of a packed last byte, is not zero."""


@_rule("scale-value", 141)
class BadScaleError(QcmError):
    """A scale is NaN, infinite, zero or negative."""


@_rule("zero-point-range", 142)
class ZeroPointRangeError(QcmError):
    """A zero point is outside the range of the quantized type."""


class DataRangeError(FormatError):
    """Writer only: a sub-byte tensor holds a value its bit width cannot store."""


#: C status code -> error class (every QC_E_FORMAT_* rule status).
STATUS_ERRORS: dict[int, type[QcmError]] = {
    cls.status: cls for cls in list(globals().values())
    if isinstance(cls, type) and issubclass(cls, QcmError) and cls.status
}

__all__ = [name for name, obj in list(globals().items())
           if isinstance(obj, type) and issubclass(obj, FormatError)] + ["STATUS_ERRORS"]
