"""Header-level validation of a .qcm file (docs/FORMAT.md, rules 1..39).

Two implementations of the record rules, which must agree:

- a vectorized one (NumPy over the whole tensor table) that finds the first record that
  *might* break a rule, cheaply, for files of hundreds of thousands of records;
- the exact one, record by record in the order of docs/FORMAT.md, run from that record
  on, which raises the error of the first broken rule (the same one the C reader
  reports).

A valid file only runs the vectorized pass; the per-record loop runs only from the first
suspicious record of an invalid one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import errors as E
from . import layout as L
from .metadata import MetadataValue, decode_metadata

RECORD_DTYPE = np.dtype([
    ("data_offset", "<u8"), ("data_size", "<u8"), ("name_offset", "<u4"), ("name_length", "<u4"),
    ("element_type", "<u2"), ("rank", "u1"), ("role", "u1"), ("scheme", "u1"), ("convention", "u1"),
    ("reserved0", "<u2"), ("axis", "<u4"), ("block_size", "<u4"), ("scale_index", "<u4"),
    ("zero_point_index", "<u4"), ("owner_index", "<u4"), ("crc", "<u4"), ("reserved1", "<u8"),
    ("dims", "<u8", (L.MAX_RANK,)),
])
assert RECORD_DTYPE.itemsize == L.RECORD_SIZE

SCHEME_NAMES = {L.SCHEME_NONE: "none", L.SCHEME_PER_TENSOR: "per_tensor", L.SCHEME_PER_AXIS: "per_axis",
                L.SCHEME_BLOCKED: "blocked"}
ROLE_NAMES = {L.ROLE_DATA: "data", L.ROLE_SCALE: "scale", L.ROLE_ZERO_POINT: "zero_point"}

# Per element-type code (index), 0 for unknown codes.
_BITS = np.zeros(256, np.uint64)
_QUANTIZABLE = np.zeros(256, bool)
_ZP_CODE = np.zeros(256, np.uint16)
for _t in L.ELEMENT_TYPES.values():
    _BITS[_t.code] = _t.bits
    _QUANTIZABLE[_t.code] = _t.qrange is not None
    _ZP_CODE[_t.code] = _t.zero_point_code
_LIMIT = float(1 << 62)  # below this, float products are exact enough to trust


@dataclass
class Directory:
    """A validated directory: the tensor table, the names and the metadata."""

    table: np.ndarray            # RECORD_DTYPE, a copy
    names: list[str]
    metadata: dict[str, MetadataValue]
    directory_offset: int
    version: int = L.VERSION_MIN


def parse(buf, size: int) -> Directory:
    """Apply rules 1..39 to the bytes ``buf`` (``size`` of them); return the directory.

    Raises
    ------
    QcmError
        The subclass of the first broken rule.
    """
    if size < L.PREAMBLE_SIZE:
        raise E.TruncatedError(f"file is {size} bytes, shorter than the {L.PREAMBLE_SIZE}-byte preamble")
    (magic, mark, version, flags, alignment, file_size, dir_offset, dir_length, n,
     metadata_count, names_length, stored_crc) = L.PREAMBLE.unpack_from(buf, 0)
    if magic != L.MAGIC:
        raise E.BadMagicError(f"first bytes are {bytes(magic)!r}, expected {L.MAGIC!r}")
    if mark != L.BYTE_ORDER_MARK:
        what = "a big-endian file" if mark == 0x04030201 else "not a byte-order mark"
        raise E.ByteOrderError(f"byte-order mark reads 0x{mark:08x} ({what}); versions 1 and 2 are little-endian")
    if not L.VERSION_MIN <= version <= L.VERSION:
        raise E.UnsupportedVersionError(
            f"format version {version}; this reader reads versions {L.VERSION_MIN}..{L.VERSION}")
    if flags != 0:
        raise E.UnsupportedFlagsError(f"preamble flags 0x{flags:08x}; versions 1 and 2 define none")
    if alignment != L.ALIGNMENT:
        raise E.UnsupportedAlignmentError(f"alignment field {alignment}, must be {L.ALIGNMENT}")
    if size < file_size:
        raise E.TruncatedError(f"file is {size} bytes but declares {file_size}")
    if size > file_size:
        raise E.TrailingDataError(f"file is {size} bytes but declares {file_size}")
    if dir_length > L.MAX_DIRECTORY:
        raise E.HeaderTooLargeError(f"directory length {dir_length} is over the cap {L.MAX_DIRECTORY}")
    if n > L.MAX_TENSORS:
        raise E.TooManyTensorsError(f"tensor count {n} is over the cap {L.MAX_TENSORS}")
    if metadata_count > L.MAX_METADATA:
        raise E.TooManyMetadataError(f"metadata count {metadata_count} is over the cap {L.MAX_METADATA}")
    fixed = n * (L.RECORD_SIZE + L.INDEX_ENTRY_SIZE) + names_length
    if (dir_offset < L.PREAMBLE_SIZE or dir_offset % L.ALIGNMENT or dir_offset > file_size
            or file_size - dir_offset != dir_length):
        raise E.DirectoryBoundsError(
            f"directory at {dir_offset} of length {dir_length} does not end the {file_size}-byte file "
            f"at a 64-byte boundary after the preamble")
    if fixed > dir_length:
        raise E.DirectoryBoundsError(
            f"{n} records, their index and {names_length} bytes of names need {fixed} bytes; "
            f"the directory has {dir_length}")
    view = memoryview(buf)
    try:
        directory = view[dir_offset:dir_offset + dir_length]
        crc = L.crc32c(directory, L.crc32c(view[:60]))
        if crc != stored_crc:
            raise E.HeaderChecksumError(f"computed 0x{crc:08x}, stored 0x{stored_crc:08x}")
        table = np.frombuffer(directory, RECORD_DTYPE, n).copy()
        index = np.frombuffer(directory, "<u4", n, n * L.RECORD_SIZE).astype(np.int64)
        names_at = n * (L.RECORD_SIZE + L.INDEX_ENTRY_SIZE)
        pool = bytes(directory[names_at:names_at + names_length])
        metadata_bytes = bytes(directory[names_at + names_length:])
        del directory
    finally:
        view.release()

    names = _check_records(table, pool, names_length, dir_offset)
    _check_references(table, names, version)
    _check_name_index(index, names)
    metadata = decode_metadata(metadata_bytes, metadata_count)
    return Directory(table, names, metadata, dir_offset, version)


# ---- rules 13..27 -----------------------------------------------------------------------

def _check_records(table: np.ndarray, pool: bytes, names_length: int, dir_offset: int) -> list[str]:
    n = len(table)
    name_length = table["name_length"].astype(np.uint64)
    pool_start = np.zeros(n, np.uint64)
    np.cumsum(name_length[:-1] + 1, out=pool_start[1:])
    rank = table["rank"].astype(np.int64)
    code = table["element_type"]
    known = (code < 256) & (_BITS[np.minimum(code, 255)] > 0)
    bits = _BITS[np.where(known, code, 0)]
    dims = table["dims"]
    unused = np.arange(L.MAX_RANK)[None, :] >= rank[:, None]
    used_dims = np.where(unused, 1, dims).astype(np.float64)
    prefix = np.cumprod(used_dims, axis=1).max(axis=1) if n else np.zeros(0)
    count_f = np.prod(used_dims, axis=1) if n else np.zeros(0)
    safe = (prefix < _LIMIT) & (count_f * np.maximum(bits, 8).astype(np.float64) / 8 < _LIMIT)
    count = np.prod(np.where(unused | ~safe[:, None], 1, dims), axis=1, dtype=np.uint64)
    per_byte = np.where(bits >= 8, 1, 8 // np.maximum(bits, 1)).astype(np.uint64)
    nbytes = np.where(bits >= 8, count * (bits // 8), (count + per_byte - 1) // per_byte)
    data_size = table["data_size"]
    aligned = (data_size + np.uint64(L.ALIGNMENT - 1)) // np.uint64(L.ALIGNMENT) * np.uint64(L.ALIGNMENT)
    expected_offset = np.full(n, L.PREAMBLE_SIZE, np.uint64)
    if n > 1:
        expected_offset[1:] += np.cumsum(aligned[:-1])
    offset = table["data_offset"]
    scheme = table["scheme"]
    convention = table["convention"]
    axis = table["axis"].astype(np.int64)
    block = table["block_size"]
    quantized = scheme != L.SCHEME_NONE
    along_axis = (scheme == L.SCHEME_PER_AXIS) | (scheme == L.SCHEME_BLOCKED)
    bad = (
        (name_length == 0) | (name_length > L.MAX_NAME)
        | (table["name_offset"] != pool_start) | (pool_start + name_length + 1 > names_length)
        | ~known | (rank > L.MAX_RANK) | (table["reserved0"] != 0) | (table["reserved1"] != 0)
        | (unused & (dims != 0)).any(axis=1)
        | ~safe | (data_size != nbytes)
        | (offset % np.uint64(L.ALIGNMENT) != 0) | (offset != expected_offset)
        | (offset + data_size > np.uint64(dir_offset))
        | (table["role"] > L.ROLE_ZERO_POINT) | (scheme > L.SCHEME_BLOCKED)
        | np.where(quantized, (convention < 1) | (convention > 3), convention != 0)
        | (quantized & ~_QUANTIZABLE[np.where(known, code, 0)])
        | np.where(along_axis, axis >= rank, axis != 0)
        | np.where(scheme == L.SCHEME_BLOCKED, block == 0, block != 0)
    )
    names: list[str] | None = None
    if not bad.any():
        # The names: tiled, NUL-terminated; NUL-free UTF-8 iff the pool is UTF-8 with
        # exactly one NUL per name (NUL never occurs inside a multi-byte sequence).
        total = int(pool_start[-1] + name_length[-1] + 1) if n else 0
        if total == names_length and pool.count(0) == n:
            try:
                text = pool.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is not None:
                names = text.split("\0")[:-1]
                ends = (pool_start + name_length).astype(np.int64)
                if n and not (np.frombuffer(pool, np.uint8)[ends] == 0).all():
                    names = None
        if names is not None:
            end = int(offset[-1] + data_size[-1]) if n else L.PREAMBLE_SIZE
            if L.align(end) != dir_offset:
                raise E.HoleError(f"tensor data ends at {L.align(end)}, the directory starts at {dir_offset}")
            return names
    first = int(np.argmax(bad)) if bad.any() else 0
    if first > 0:
        # Records before `first` passed the per-record checks; their names still need the
        # NUL and UTF-8 checks before the exact loop may start after them.
        prefix = pool[:int(pool_start[first])]
        ends = (pool_start[:first] + name_length[:first]).astype(np.int64)
        try:
            prefix.decode("utf-8")
            names_ok = prefix.count(0) == first and bool((np.frombuffer(prefix, np.uint8)[ends] == 0).all())
        except UnicodeDecodeError:
            names_ok = False
        if not names_ok:
            first = 0
    return _check_records_exact(table, pool, names_length, dir_offset, first, int(expected_offset[first]) if n else 64,
                                int(pool_start[first]) if n else 0)


def _check_records_exact(table, pool: bytes, names_length: int, dir_offset: int, start: int, cursor: int,
                         pool_cursor: int) -> list[str]:
    """Rules 13..27 record by record from ``start`` (earlier records passed); raises."""
    names = [pool[int(s):int(s) + int(k)].decode("utf-8") for s, k in
             zip(table["name_offset"][:start], table["name_length"][:start])]
    for i in range(start, len(table)):
        rec = table[i]
        name_offset, name_length = int(rec["name_offset"]), int(rec["name_length"])
        tag = f"#{i}"
        if name_length == 0 or name_length > L.MAX_NAME:
            raise E.BadNameError(f"tensor {tag}: name length {name_length} not in 1..{L.MAX_NAME}")
        if name_offset != pool_cursor:
            raise E.BadNameError(f"tensor {tag}: name offset {name_offset}, expected {pool_cursor} (the pool is tiled)")
        if name_length + 1 > names_length - pool_cursor:
            raise E.BadNameError(f"tensor {tag}: name of {name_length} bytes runs past the name pool")
        raw = pool[name_offset:name_offset + name_length]
        try:
            if b"\0" in raw or pool[name_offset + name_length] != 0:
                raise UnicodeError
            name = raw.decode("utf-8")
        except UnicodeError:
            raise E.BadNameError(f"tensor {tag}: name {raw!r} is not NUL-free UTF-8 followed by NUL") from None
        pool_cursor += name_length + 1
        code = int(rec["element_type"])
        etype = L.ELEMENT_TYPES.get(code)
        if etype is None:
            raise E.UnknownElementTypeError(f"element type code {code}", tensor=name)
        rank = int(rec["rank"])
        if rank > L.MAX_RANK:
            raise E.RankError(f"rank {rank} is over {L.MAX_RANK}", tensor=name)
        if rec["reserved0"] or rec["reserved1"]:
            raise E.ReservedFieldError(f"reserved fields are {rec['reserved0']}, {rec['reserved1']}", tensor=name)
        dims = [int(d) for d in rec["dims"]]
        if any(dims[rank:]):
            raise E.ReservedFieldError(f"dimension slots past rank {rank} are {dims[rank:]}", tensor=name)
        shape = tuple(dims[:rank])
        count = 1
        for d in shape:
            count *= d
            if count > L.INT64_MAX:
                break
        nbytes = etype.byte_size(count)
        if count > L.INT64_MAX or nbytes > L.INT64_MAX:
            raise E.ShapeOverflowError(f"shape {shape} has over 2**63 - 1 elements or bytes", tensor=name)
        data_size, offset = int(rec["data_size"]), int(rec["data_offset"])
        if data_size != nbytes:
            raise E.SizeMismatchError(f"data size {data_size}, {etype.name} {shape} takes {nbytes}", tensor=name)
        if offset % L.ALIGNMENT:
            raise E.MisalignedError(f"data offset {offset} is not a multiple of {L.ALIGNMENT}", tensor=name)
        if offset < cursor:
            raise E.OverlapError(f"data offset {offset} is before the previous tensor's padded end {cursor}",
                                 tensor=name)
        if offset > cursor:
            raise E.HoleError(f"data offset {offset} leaves a hole after {cursor}", tensor=name)
        end = offset + data_size
        if end > dir_offset:
            raise E.OverlapError(f"data ends at {end}, inside the directory at {dir_offset}", tensor=name)
        cursor = L.align(end)
        role, scheme, convention = int(rec["role"]), int(rec["scheme"]), int(rec["convention"])
        if role > L.ROLE_ZERO_POINT:
            raise E.UnknownRoleError(f"role code {role}", tensor=name)
        if scheme > L.SCHEME_BLOCKED:
            raise E.UnknownSchemeError(f"scheme code {scheme}", tensor=name)
        if (convention != 0) if scheme == L.SCHEME_NONE else convention not in L.CONVENTION_NAMES:
            raise E.UnknownConventionError(
                f"convention code {convention} with scheme {SCHEME_NAMES[scheme]}", tensor=name)
        if scheme != L.SCHEME_NONE and etype.qrange is None:
            raise E.QuantTypeError(f"{etype.name} data cannot be quantized", tensor=name)
        axis, block = int(rec["axis"]), int(rec["block_size"])
        if (axis >= rank) if scheme in (L.SCHEME_PER_AXIS, L.SCHEME_BLOCKED) else axis != 0:
            raise E.AxisError(f"axis {axis} with scheme {SCHEME_NAMES[scheme]} and rank {rank}", tensor=name)
        if (block == 0) if scheme == L.SCHEME_BLOCKED else block != 0:
            raise E.BlockSizeError(f"block size {block} with scheme {SCHEME_NAMES[scheme]}", tensor=name)
        names.append(name)
    if pool_cursor != names_length:
        raise E.BadNameError(f"names use {pool_cursor} bytes of a {names_length}-byte pool")
    if cursor != dir_offset:
        raise E.HoleError(f"tensor data ends at {cursor}, the directory starts at {dir_offset}")
    return names


# ---- rules 25 (scales, zero points), 28..30 ---------------------------------------------

def scale_shape_ok(shape, scheme: int, axis: int, block: int, scale_shape) -> bool:
    """Rule scale-count for one data record."""
    if scheme == L.SCHEME_PER_TENSOR:
        return all(d == 1 for d in scale_shape)
    if scheme == L.SCHEME_PER_AXIS:
        return len(scale_shape) == 1 and scale_shape[0] == shape[axis]
    if len(scale_shape) != len(shape):
        return False
    want = list(shape)
    want[axis] = -(-want[axis] // block)
    return list(scale_shape) == want


def _check_references(table: np.ndarray, names: list[str], version: int = L.VERSION_MIN) -> None:
    n = len(table)
    if n == 0:
        return
    none = np.uint32(L.NONE)
    idx = np.arange(n)
    role, scheme = table["role"], table["scheme"]
    s_i, z_i, o_i = table["scale_index"], table["zero_point_index"], table["owner_index"]
    s_c, z_c, o_c = (np.where(a < n, a, 0).astype(np.int64) for a in (s_i, z_i, o_i))
    code = table["element_type"]
    rank = table["rank"].astype(np.int64)
    dims = table["dims"]
    data, quantized = role == L.ROLE_DATA, scheme != L.SCHEME_NONE
    # Shapes: gathered scale / zero-point shapes, compared in the slow path if suspicious.
    s_rank, s_dims, z_dims = rank[s_c], dims[s_c], dims[z_c]
    axis = np.minimum(table["axis"].astype(np.int64), L.MAX_RANK - 1)
    block = np.maximum(table["block_size"].astype(np.uint64), 1)
    dim_axis = dims[idx, axis]
    want = dims.copy()
    want[idx, axis] = (dim_axis + block - 1) // block
    slot = np.arange(L.MAX_RANK)[None, :]
    per_tensor_ok = ((s_dims == 1) | (slot >= s_rank[:, None])).all(axis=1)
    per_axis_ok = (s_rank == 1) & (s_dims[:, 0] == dim_axis)
    blocked_ok = (s_rank == rank) & ((want == s_dims) | (slot >= rank[:, None])).all(axis=1)
    scale_ok = np.select([scheme == L.SCHEME_PER_TENSOR, scheme == L.SCHEME_PER_AXIS], [per_tensor_ok, per_axis_ok],
                         blocked_ok)
    same_shape = (rank[z_c] == s_rank) & ((z_dims == s_dims) | (slot >= s_rank[:, None])).all(axis=1)
    back = np.where(role == L.ROLE_SCALE, s_i[o_c], z_i[o_c])
    bad_data_plain = data & ~quantized & ((o_i != none) | (s_i != none) | (z_i != none))
    # Version 2: a quantized record may omit its zero points (index NONE: all 0) and
    # store its scales as float16.
    v2 = version >= 2
    has_zp = (z_i != none) | (not v2)
    scale_type_ok = (code[s_c] == L.FLOAT32.code) | (v2 & (code[s_c] == L.FLOAT16.code))
    bad_data_quant = data & quantized & (
        (o_i != none) | (s_i >= n) | (role[s_c] != L.ROLE_SCALE) | (o_i[s_c] != idx)
        | (has_zp & ((z_i >= n) | (role[z_c] != L.ROLE_ZERO_POINT) | (o_i[z_c] != idx)))
        | ~scale_type_ok | (has_zp & (code[z_c] != _ZP_CODE[np.minimum(code, 255)]))
        | ~scale_ok | (has_zp & ~same_shape))
    bad_aux = ~data & (quantized | (s_i != none) | (z_i != none) | (o_i >= n) | (role[o_c] != L.ROLE_DATA)
                       | (back != idx))
    bad = bad_data_plain | bad_data_quant | bad_aux
    if bad.any():
        _check_references_exact(table, names, int(np.argmax(bad)), version)


def _check_references_exact(table: np.ndarray, names: list[str], start: int, version: int) -> None:
    n = len(table)

    def shape(k):
        return tuple(int(d) for d in table[k]["dims"][:table[k]["rank"]])

    for i in range(start, n):
        rec, name = table[i], names[i]
        role, scheme = int(rec["role"]), int(rec["scheme"])
        scale_index, zp_index, owner = int(rec["scale_index"]), int(rec["zero_point_index"]), int(rec["owner_index"])
        if role == L.ROLE_DATA:
            if owner != L.NONE:
                raise E.BadReferenceError(f"data tensor has owner index {owner}", tensor=name)
            if scheme == L.SCHEME_NONE:
                if scale_index != L.NONE or zp_index != L.NONE:
                    raise E.BadReferenceError(
                        f"unquantized tensor references scale {scale_index} / zero point {zp_index}", tensor=name)
                continue
            if scale_index >= n:
                raise E.BadReferenceError(f"scale index {scale_index} out of range ({n} tensors)", tensor=name)
            scale = table[scale_index]
            if scale["role"] != L.ROLE_SCALE or scale["owner_index"] != i:
                raise E.BadReferenceError(f"tensor #{scale_index} is not a scale owned by #{i}", tensor=name)
            has_zp = zp_index != L.NONE or version < 2
            if has_zp:
                if zp_index >= n:
                    raise E.BadReferenceError(f"zero-point index {zp_index} out of range ({n} tensors)", tensor=name)
                zp = table[zp_index]
                if zp["role"] != L.ROLE_ZERO_POINT or zp["owner_index"] != i:
                    raise E.BadReferenceError(f"tensor #{zp_index} is not a zero point owned by #{i}", tensor=name)
            if scale["element_type"] != L.FLOAT32.code and not (version >= 2 and scale["element_type"] == L.FLOAT16.code):
                allowed = "float32 or float16" if version >= 2 else "float32 (float16 needs format version 2)"
                raise E.QuantTypeError(
                    f"scale element type {L.ELEMENT_TYPES[int(scale['element_type'])].name}, must be {allowed}",
                    tensor=name)
            etype = L.ELEMENT_TYPES[int(rec["element_type"])]
            if has_zp and zp["element_type"] != etype.zero_point_code:
                raise E.QuantTypeError(
                    f"zero point element type {L.ELEMENT_TYPES[int(zp['element_type'])].name}, must be "
                    f"{L.ELEMENT_TYPES[etype.zero_point_code].name}", tensor=name)
            if not scale_shape_ok(shape(i), scheme, int(rec["axis"]), int(rec["block_size"]), shape(scale_index)):
                raise E.ScaleCountError(
                    f"scale shape {shape(scale_index)} does not fit {SCHEME_NAMES[scheme]} quantization of "
                    f"{shape(i)} (axis {int(rec['axis'])}, block size {int(rec['block_size'])})", tensor=name)
            if has_zp and shape(zp_index) != shape(scale_index):
                raise E.ZeroPointShapeError(
                    f"zero point shape {shape(zp_index)} != scale shape {shape(scale_index)}", tensor=name)
        else:
            if scheme != L.SCHEME_NONE or scale_index != L.NONE or zp_index != L.NONE:
                raise E.BadReferenceError(f"{ROLE_NAMES[role]} tensor is itself quantized or references others",
                                          tensor=name)
            if owner >= n:
                raise E.BadReferenceError(f"owner index {owner} out of range ({n} tensors)", tensor=name)
            o = table[owner]
            back = int(o["scale_index"] if role == L.ROLE_SCALE else o["zero_point_index"])
            if o["role"] != L.ROLE_DATA or back != i:
                raise E.BadReferenceError(f"owner #{owner} does not reference this {ROLE_NAMES[role]}", tensor=name)


# ---- rules 31, 32 -----------------------------------------------------------------------

def _check_name_index(index: np.ndarray, names: list[str]) -> None:
    n = len(names)
    if n == 0:
        return
    out_of_range = index >= n
    first_bad = int(np.argmax(out_of_range)) if out_of_range.any() else n
    encoded = [names[int(i)].encode("utf-8") for i in index[:first_bad]]
    for k in range(1, len(encoded)):
        if not encoded[k - 1] < encoded[k]:
            i = int(index[k])
            if encoded[k - 1] == encoded[k]:
                raise E.DuplicateNameError(f"tensors #{int(index[k - 1])} and #{i} share the name", tensor=names[i])
            raise E.NameIndexError(f"name index entry {k} is out of ascending name order", tensor=names[i])
    if first_bad < n:
        raise E.NameIndexError(f"name index entry {first_bad} is {int(index[first_bad])}, there are {n} tensors")
