"""qcore._gemm (the C GEMM) against qcore.reference, bit for bit, on every available ISA."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qcore import _gemm
from qcore import reference as ref
from qcore._native import available_isas
from qcore.errors import DTypeError, QuantParamError, ShapeError, UnsupportedISAError

ISAS = available_isas()
DTYPES = (np.uint8, np.int8)


def _random(rng: np.random.Generator, shape: tuple[int, ...], dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, size=shape, dtype=dtype)


def _equal(actual: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_array_equal(actual, expected, strict=True)


# --------------------------------------------------------------------- matmul_integer


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("a_dtype", DTYPES)
@pytest.mark.parametrize("b_dtype", DTYPES)
def test_matmul_integer_matches_reference(isa, threads, a_dtype, b_dtype):
    rng = np.random.default_rng(1)
    # sizes across the tile edges (MR = 4 or 6, NR = 8, k groups of 4) and big enough to thread
    # (3, 51, 40): few rows and a wide B, the path that reads B unpacked
    for m, k, n in [(1, 1, 1), (3, 51, 40), (7, 13, 9), (13, 64, 17), (64, 67, 40), (64, 300, 120), (600, 400, 9)]:
        a = _random(rng, (m, k), a_dtype)
        b = _random(rng, (k, n), b_dtype)
        za = _random(rng, (m,), a_dtype)
        zb = _random(rng, (n,), b_dtype)
        for a_zp, b_zp in [(None, None), (za[:1].reshape(()), zb[:1].reshape(())), (za, zb), (None, zb)]:
            _equal(_gemm.matmul_integer(a, b, a_zp, b_zp, isa=isa, num_threads=threads),
                   ref.matmul_integer(a, b, a_zp, b_zp))


@pytest.mark.parametrize("isa", ISAS)
def test_matmul_integer_batches_and_vectors(isa):
    rng = np.random.default_rng(2)
    a = _random(rng, (2, 3, 5, 20), np.uint8)
    b2 = _random(rng, (20, 11), np.int8)
    b3 = _random(rng, (3, 20, 11), np.int8)
    za_row = _random(rng, (5,), np.uint8)
    za_batch = _random(rng, (2, 1, 5, 1), np.uint8)
    zb_batch = _random(rng, (3, 1, 11), np.int8)
    cases = [
        (a, b2, None, None), (a, b2, za_row, np.int8(-3)), (a, b3, za_batch, zb_batch),
        (a[0, 0], b3, za_row, None), (a[0, 0, 0], b2, None, None), (a[0, 0], b2[:, 0], None, None),
        (a[0, 0, 0], b2[:, 0], np.uint8(7), np.int8(2)),
    ]
    for x, y, zx, zy in cases:
        _equal(_gemm.matmul_integer(x, y, zx, zy, isa=isa), ref.matmul_integer(x, y, zx, zy))


@pytest.mark.parametrize("isa", ISAS)
def test_matmul_integer_extremes(isa):
    """All-extreme operands: where a saturating int16 kernel (vpmaddubsw) goes wrong."""
    for a_val, a_dtype, b_val, b_dtype in [(255, np.uint8, 127, np.int8), (255, np.uint8, -128, np.int8),
                                           (-128, np.int8, -128, np.int8), (255, np.uint8, 255, np.uint8),
                                           (0, np.uint8, -128, np.int8)]:
        for k in (1, 4, 64, 1023):
            a = np.full((7, k), a_val, a_dtype)
            b = np.full((k, 9), b_val, b_dtype)
            info_a, info_b = np.iinfo(a_dtype), np.iinfo(b_dtype)
            for a_zp, b_zp in [(None, None), (a_dtype(info_a.min), b_dtype(info_b.max)),
                               (a_dtype(info_a.max), b_dtype(info_b.min))]:
                _equal(_gemm.matmul_integer(a, b, a_zp, b_zp, isa=isa), ref.matmul_integer(a, b, a_zp, b_zp))
    a = np.full((3, 64), 255, np.uint8)
    b = np.full((64, 5), 127, np.int8)
    assert (_gemm.matmul_integer(a, b, isa=isa) == 2_072_640).all()


@pytest.mark.parametrize("isa", ISAS)
def test_matmul_integer_wraps_like_int32(isa):
    # (255 - 0) * (0 - 255) * 40000 = -2.6e9: outside int32, wraps modulo 2**32
    a = np.full((2, 40000), 255, np.uint8)
    b = np.zeros((40000, 9), np.uint8)
    out = _gemm.matmul_integer(a, b, None, np.uint8(255), isa=isa)
    _equal(out, ref.matmul_integer(a, b, None, np.uint8(255)))
    assert out[0, 0] == np.int64(-65025 * 40000 + 2**32)


@given(m=st.integers(1, 20), k=st.integers(0, 70), n=st.integers(1, 20),
       a_dtype=st.sampled_from(DTYPES), b_dtype=st.sampled_from(DTYPES),
       zp_mode=st.sampled_from(["none", "tensor", "row-column"]), isa=st.sampled_from(ISAS),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**32 - 1))
def test_matmul_integer_property(m, k, n, a_dtype, b_dtype, zp_mode, isa, threads, seed):
    rng = np.random.default_rng(seed)
    a = _random(rng, (m, k), a_dtype)
    b = _random(rng, (k, n), b_dtype)
    a_zp = b_zp = None
    if zp_mode == "tensor":
        a_zp, b_zp = _random(rng, (), a_dtype), _random(rng, (), b_dtype)
    elif zp_mode == "row-column":
        a_zp, b_zp = _random(rng, (m,), a_dtype), _random(rng, (n,), b_dtype)
    _equal(_gemm.matmul_integer(a, b, a_zp, b_zp, isa=isa, num_threads=threads),
           ref.matmul_integer(a, b, a_zp, b_zp))


def test_matmul_integer_non_contiguous_inputs():
    rng = np.random.default_rng(3)
    wide = _random(rng, (9, 40), np.int8)
    a = wide[:, ::2]
    b = np.asfortranarray(_random(rng, (20, 12), np.uint8))
    _equal(_gemm.matmul_integer(a, b, np.int8(1), np.uint8(200)),
           ref.matmul_integer(a, b, np.int8(1), np.uint8(200)))


def test_matmul_integer_empty():
    a = np.zeros((3, 0), np.uint8)
    b = np.zeros((0, 4), np.int8)
    _equal(_gemm.matmul_integer(a, b, np.uint8(5), np.int8(3)), ref.matmul_integer(a, b, np.uint8(5), np.int8(3)))
    _equal(_gemm.matmul_integer(np.zeros((0, 5), np.uint8), np.zeros((5, 2), np.int8)),
           np.zeros((0, 2), np.int32))


def test_matmul_integer_bad_input():
    a = np.zeros((2, 3), np.uint8)
    b = np.zeros((3, 4), np.int8)
    with pytest.raises(DTypeError):
        _gemm.matmul_integer(a.astype(np.int16), b)
    with pytest.raises(DTypeError):
        _gemm.matmul_integer(a, b, np.int8(0))  # zero point of the wrong dtype
    with pytest.raises(ShapeError):
        _gemm.matmul_integer(a, np.zeros((4, 4), np.int8))
    with pytest.raises(ShapeError):
        _gemm.matmul_integer(a, b, np.zeros(3, np.uint8))
    with pytest.raises(QuantParamError):
        _gemm.matmul_integer(a, b, 256)
    with pytest.raises(UnsupportedISAError):
        _gemm.matmul_integer(a, b, isa="sse9")
    with pytest.raises(QuantParamError):
        _gemm.matmul_integer(a, b, num_threads=0)


# --------------------------------------------------------------------- qlinear_matmul


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("out_dtype", DTYPES)
def test_qlinear_matmul_matches_reference(isa, out_dtype):
    rng = np.random.default_rng(4)
    for m, k, n in [(1, 1, 1), (2, 77, 35), (5, 13, 9), (13, 64, 17), (33, 100, 24)]:
        for a_dtype in DTYPES:
            a = _random(rng, (m, k), a_dtype)
            b = _random(rng, (k, n), np.int8)
            a_scale = np.float32(rng.uniform(0.001, 0.05))
            b_scale = (rng.uniform(0.001, 0.05, n)).astype(np.float32)
            y_scale = np.float32(rng.uniform(0.05, 2.0))
            y_zp = _random(rng, (), out_dtype)
            b_zp = _random(rng, (n,), np.int8)
            args = (a, a_scale, _random(rng, (), a_dtype), b, b_scale, b_zp, y_scale, y_zp)
            _equal(_gemm.qlinear_matmul(*args, isa=isa), ref.qlinear_matmul(*args))
            # per-row a parameters, per-tensor b
            args = (a, rng.uniform(0.001, 0.05, m).astype(np.float32), _random(rng, (m,), a_dtype), b,
                    np.float32(0.01), np.int8(0), y_scale, y_zp)
            _equal(_gemm.qlinear_matmul(*args, isa=isa, num_threads=2), ref.qlinear_matmul(*args))


@pytest.mark.parametrize("isa", ISAS)
def test_qlinear_matmul_batches_vectors_and_defaults(isa):
    rng = np.random.default_rng(5)
    a = _random(rng, (2, 4, 30), np.uint8)
    b = _random(rng, (2, 30, 6), np.uint8)
    args = (a, np.float32(0.02), np.uint8(128), b, np.float32(0.03), np.uint8(120), np.float32(0.4), None)
    _equal(_gemm.qlinear_matmul(*args, isa=isa), ref.qlinear_matmul(*args))
    args = (a[0, 0], np.float32(0.02), None, b[0], np.float32(0.03), None, np.float32(0.4), np.int8(-3))
    _equal(_gemm.qlinear_matmul(*args, isa=isa), ref.qlinear_matmul(*args))
    # saturation on both sides
    a = np.full((3, 50), 255, np.uint8)
    b = np.full((50, 4), -128, np.int8)
    args = (a, np.float32(1.0), np.uint8(0), b, np.float32(1.0), np.int8(0), np.float32(0.001), np.int8(0))
    _equal(_gemm.qlinear_matmul(*args, isa=isa), ref.qlinear_matmul(*args))


@given(m=st.integers(1, 12), k=st.integers(1, 40), n=st.integers(1, 12), a_dtype=st.sampled_from(DTYPES),
       b_dtype=st.sampled_from(DTYPES), out_dtype=st.sampled_from(DTYPES), per_axis=st.booleans(),
       isa=st.sampled_from(ISAS), seed=st.integers(0, 2**32 - 1))
def test_qlinear_matmul_property(m, k, n, a_dtype, b_dtype, out_dtype, per_axis, isa, seed):
    rng = np.random.default_rng(seed)
    a = _random(rng, (m, k), a_dtype)
    b = _random(rng, (k, n), b_dtype)
    shape_a, shape_b = ((m,), (n,)) if per_axis else ((), ())
    a_scale = rng.uniform(1e-3, 0.1, shape_a).astype(np.float32)
    b_scale = rng.uniform(1e-3, 0.1, shape_b).astype(np.float32)
    args = (a, a_scale, _random(rng, shape_a, a_dtype), b, b_scale, _random(rng, shape_b, b_dtype),
            np.float32(rng.uniform(1e-3, 1.0)), _random(rng, (), out_dtype))
    _equal(_gemm.qlinear_matmul(*args, isa=isa), ref.qlinear_matmul(*args))


def test_qlinear_matmul_bad_input():
    a = np.zeros((2, 3), np.uint8)
    b = np.zeros((3, 4), np.int8)
    with pytest.raises(QuantParamError):
        _gemm.qlinear_matmul(a, np.float32(0), np.uint8(0), b, np.float32(1), np.int8(0), np.float32(1), np.uint8(0))
    with pytest.raises(QuantParamError):
        _gemm.qlinear_matmul(a, np.float32(np.nan), np.uint8(0), b, np.float32(1), np.int8(0), np.float32(1),
                             np.uint8(0))
    with pytest.raises(ShapeError):
        _gemm.qlinear_matmul(a, np.float32(1), np.uint8(0), b, np.float32(1), np.int8(0),
                             np.ones(2, np.float32), np.zeros(2, np.uint8))
    with pytest.raises(DTypeError):
        _gemm.qlinear_matmul(a, np.float32(1), np.uint8(0), b, np.float32(1), np.int8(0), np.float32(1),
                             np.int16(0))


# --------------------------------------------------------------------- packed weights


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("b_dtype", DTYPES)
def test_packed_matches_unpacked(isa, b_dtype):
    rng = np.random.default_rng(6)
    k, n = 377, 121  # with 9 x 2 rows: above the threading threshold
    b = _random(rng, (k, n), b_dtype)
    b_zp = _random(rng, (n,), b_dtype)
    packed = _gemm.PackedWeights(b, b_zp)
    packed_t = _gemm.PackedWeights(np.ascontiguousarray(b.T), b_zp, transposed=True)
    assert (packed.k, packed.n) == (k, n) and packed.nbytes >= k * n
    for a_dtype in DTYPES:
        a = _random(rng, (2, 27, k), a_dtype)
        a_zp = _random(rng, (27,), a_dtype)
        expected = ref.matmul_integer(a, b, a_zp, b_zp)
        for weights in (packed, packed_t):
            for threads in (1, 2):
                _equal(_gemm.matmul_integer_packed(a, a_zp, weights, isa=isa, num_threads=threads), expected)
        _equal(_gemm.matmul_integer_packed(a[0, 0], None, packed, isa=isa), ref.matmul_integer(a[0, 0], b, None, b_zp))


@pytest.mark.parametrize("isa", ISAS)
def test_packed_every_block_height_with_extremes(isa):
    """M = 1 .. 23 (every height of the last 6-row block, alone and after full blocks; from
    19 rows on the panel stays in L1 and the tiles without prefetch run), with random and
    all-extreme operands, 24 columns (whole panels) and 20 (a partial last panel), equal to
    the reference."""
    rng = np.random.default_rng(61)
    k = 200
    for b in (rng.integers(-128, 128, (k, 24), dtype=np.int8), np.full((k, 24), -128, np.int8),
              rng.integers(-128, 128, (k, 20), dtype=np.int8)):
        packed = _gemm.PackedWeights(b, None)
        for m in range(1, 24):
            for a in (rng.integers(0, 256, (m, k), dtype=np.uint8), np.full((m, k), 255, np.uint8)):
                a_zp = np.uint8(0)
                _equal(_gemm.matmul_integer_packed(a, a_zp, packed, isa=isa), ref.matmul_integer(a, b, a_zp, None))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("b_dtype", DTYPES)
def test_packed_symmetric_weights_match_reference(isa, b_dtype):
    """Weights with zero point 0 (int8) or 128 (uint8), the form qcore's recipes write: the
    AVX2 kernel stores C directly (A centred, no correction). M = 128 as in MiniLM (21 blocks
    of 6 rows and a remainder), partial 8-column panels, per-row A zero points from extreme
    to extreme, random and all-extreme operands."""
    rng = np.random.default_rng(9)
    info_b = np.iinfo(b_dtype)
    b_zp = np.array(0 if b_dtype == np.int8 else 128, dtype=b_dtype)
    for m, k, n in [(128, 384, 40), (13, 37, 20), (7, 1, 8)]:
        for fill in ("random", "a_max_b_min", "a_min_b_max"):
            for a_dtype in DTYPES:
                info_a = np.iinfo(a_dtype)
                if fill == "random":
                    a, b = _random(rng, (m, k), a_dtype), _random(rng, (k, n), b_dtype)
                else:
                    a_value = info_a.max if fill == "a_max_b_min" else info_a.min
                    b_value = info_b.min if fill == "a_max_b_min" else info_b.max
                    a = np.full((m, k), a_value, dtype=a_dtype)
                    b = np.full((k, n), b_value, dtype=b_dtype)
                a_zp = _random(rng, (m,), a_dtype)
                a_zp[0::3] = info_a.min
                a_zp[1::3] = info_a.max
                packed = _gemm.PackedWeights(b, b_zp)
                _equal(_gemm.matmul_integer_packed(a, a_zp, packed, isa=isa),
                       ref.matmul_integer(a, b, a_zp, b_zp))


@pytest.mark.parametrize("isa", ISAS)
def test_qlinear_matmul_packed_matches_reference(isa):
    rng = np.random.default_rng(7)
    k, n = 64, 19
    b = _random(rng, (k, n), np.int8)
    b_scale = rng.uniform(0.001, 0.02, n).astype(np.float32)
    packed = _gemm.PackedWeights(b, np.int8(0))
    a = _random(rng, (4, 6, k), np.uint8)
    args = (np.float32(0.05), np.uint8(131))
    for y_zp in (np.uint8(17), np.int8(-5), None):
        expected = ref.qlinear_matmul(a, *args, b, b_scale, np.zeros(n, np.int8), np.float32(0.3),
                                      None if y_zp is None else y_zp)
        actual = _gemm.qlinear_matmul_packed(a, *args, packed, b_scale, np.float32(0.3), y_zp, isa=isa)
        _equal(actual, expected)


@pytest.mark.parametrize("isa", ISAS)
def test_linear_packed_bias_and_clamp(isa):
    rng = np.random.default_rng(8)
    k, n = 50, 13
    b = _random(rng, (k, n), np.int8)
    packed = _gemm.PackedWeights(b)
    a = _random(rng, (11, k), np.int8)
    bias = rng.integers(-20000, 20000, n, dtype=np.int32)
    multiplier = rng.uniform(0.0005, 0.005, n).astype(np.float32)
    acc = ref.matmul_integer(a, b, np.int8(3)) + bias
    for clamp, out_dtype, zp in [(None, np.int8, -4), ((-4, 127), np.int8, -4), ((10, 200), np.uint8, 10)]:
        lo, hi = clamp if clamp else (-128, 127)
        expected = ref.requantize_float(acc.astype(np.int32), multiplier, zp, lo, hi).astype(out_dtype)
        actual = _gemm.linear_packed(a, np.int8(3), packed, multiplier, out_dtype(zp), bias=bias, clamp=clamp,
                                     isa=isa, num_threads=2)
        _equal(actual, expected)
    expected = ref.requantize_float(ref.matmul_integer(a, b, np.int8(3)), np.float32(0.01), 0, -128, 127)
    _equal(_gemm.linear_packed(a, np.int8(3), packed, 0.01, 0, output_dtype="int8", isa=isa),
           expected.astype(np.int8))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("multiplier", [0.5, 0.25, 1.5, 1e6, 3e-10])
def test_linear_packed_ties_and_clipping(isa, multiplier):
    """Rounding ties (half to even) and products beyond int32 go through the same formula."""
    rng = np.random.default_rng(11)
    k, n = 40, 21  # two full 8-column tiles and a partial one
    b = _random(rng, (k, n), np.int8)
    packed = _gemm.PackedWeights(b, np.int8(-1))
    a = _random(rng, (13, k), np.uint8)
    acc = ref.matmul_integer(a, b, np.uint8(7), np.int8(-1))
    mult = np.float32(multiplier)
    for zp, dtype in [(3, np.int8), (250, np.uint8)]:
        info = np.iinfo(dtype)
        expected = ref.requantize_float(acc, mult, zp, int(info.min), int(info.max)).astype(dtype)
        _equal(_gemm.linear_packed(a, np.uint8(7), packed, mult, dtype(zp), isa=isa), expected)
        # per-column multipliers
        cols = np.full(n, mult, np.float32) * np.float32(1) + np.arange(n, dtype=np.float32) * np.float32(0.5)
        expected = ref.requantize_float(acc, cols, zp, int(info.min), int(info.max)).astype(dtype)
        _equal(_gemm.linear_packed(a, np.uint8(7), packed, cols, dtype(zp), isa=isa), expected)


def test_packed_bad_input():
    b = np.zeros((8, 4), np.int8)
    packed = _gemm.PackedWeights(b)
    with pytest.raises(ShapeError):
        _gemm.PackedWeights(np.zeros((2, 3, 4), np.int8))
    with pytest.raises(ShapeError):
        _gemm.PackedWeights(b, np.zeros(3, np.int8))
    with pytest.raises(DTypeError):
        _gemm.PackedWeights(b.astype(np.float32))
    with pytest.raises(ShapeError):
        _gemm.matmul_integer_packed(np.zeros((2, 7), np.uint8), None, packed)
    with pytest.raises(DTypeError):
        _gemm.matmul_integer_packed(np.zeros((2, 8), np.uint8), None, b)
    a = np.zeros((2, 8), np.uint8)
    with pytest.raises(QuantParamError):
        _gemm.linear_packed(a, None, packed, np.float32(-1), np.uint8(0))
    with pytest.raises(QuantParamError):
        _gemm.linear_packed(a, None, packed, np.float32(1), np.uint8(0), clamp=(10, 5))
    with pytest.raises(DTypeError):
        _gemm.linear_packed(a, None, packed, np.float32(1), 0)  # output type unknown
    with pytest.raises(ShapeError):
        _gemm.linear_packed(a, None, packed, np.float32(1), np.uint8(0), bias=np.zeros(3, np.int32))
    with pytest.raises(DTypeError):
        _gemm.linear_packed(a, None, packed, np.float32(1), np.uint8(0), bias=np.zeros(4, np.int64))


# ----------------------------------------------------------------------- int4 weights


def _int4_expected(a: np.ndarray, values: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None,
                   block_size: int, bias: np.ndarray | None) -> np.ndarray:
    """DequantizeLinear (blocked, axis 0), then the float32 sum in increasing k."""
    w = ref.dequantize_linear(values, scale, zero_point, axis=0, block_size=block_size)
    rows = a.reshape(-1, a.shape[-1])
    y = np.zeros((rows.shape[0], w.shape[1]), np.float32)
    for k in range(w.shape[0]):
        y = y + rows[:, k:k + 1] * w[k:k + 1, :]
    if bias is not None:
        y = y + bias
    return y.reshape(a.shape[:-1] + (w.shape[1],))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", ["int4", "uint4"])
def test_linear_int4_matches_reference(isa, dtype):
    rng = np.random.default_rng(9)
    lo, hi, container = (-8, 7, np.int8) if dtype == "int4" else (0, 15, np.uint8)
    for m, k, n, block in [(1, 32, 8, 32), (3, 70, 17, 32), (5, 128, 9, 64), (2, 130, 16, 128), (4, 5, 7, 2),
                          (8, 2048, 130, 128)]:
        values = rng.integers(lo, hi + 1, (k, n)).astype(container)
        blocks = -(-k // block)
        scale = rng.uniform(0.001, 0.1, (blocks, n)).astype(np.float32)
        zp = rng.integers(lo, hi + 1, (blocks, n)).astype(container)
        a = rng.standard_normal((m, k)).astype(np.float32)
        bias = rng.standard_normal(n).astype(np.float32)
        for zero_point, b in [(None, None), (zp, bias)]:
            weights = _gemm.Int4Weights.from_values(values, scale, zero_point, block_size=block, dtype=dtype)
            expected = _int4_expected(a, values, scale, zero_point, block, b)
            for threads in (1, 2):
                _equal(_gemm.linear_int4(a, weights, b, isa=isa, num_threads=threads), expected)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", ["int4", "uint4"])
def test_int4_dequantize_matches_reference(isa, dtype):
    """Every band of rows (odd starts: weights whose rows begin on a high nibble) is the
    reference DequantizeLinear of the blocked weight, bit for bit."""
    rng = np.random.default_rng(11)
    lo, hi, container = (-8, 7, np.int8) if dtype == "int4" else (0, 15, np.uint8)
    for k, n, block in [(32, 8, 32), (70, 17, 32), (5, 7, 2), (130, 33, 64), (96, 1, 32), (1, 9, 4)]:
        values = rng.integers(lo, hi + 1, (k, n)).astype(container)
        blocks = -(-k // block)
        scale = rng.uniform(0.001, 0.1, (blocks, n)).astype(np.float32)
        zp = rng.integers(lo, hi + 1, (blocks, n)).astype(container)
        for zero_point in (None, zp):
            weights = _gemm.Int4Weights.from_values(values, scale, zero_point, block_size=block, dtype=dtype)
            expected = ref.dequantize_linear(values, scale, zero_point, axis=0, block_size=block)
            _equal(weights.dequantize(isa=isa), expected)
            for k0, k1 in [(0, k), (1, k), (k // 3, k - k // 4), (k - 1, k), (k, k)]:
                out = np.full((k1 - k0, n), np.nan, np.float32)
                got = weights.dequantize((k0, k1), out=out, isa=isa)
                assert got is out
                _equal(got, expected[k0:k1])


def test_int4_dequantize_bad_input():
    weights = _gemm.Int4Weights.from_values(np.zeros((64, 8), np.int8), np.ones((2, 8), np.float32), block_size=32)
    for rows in [(-1, 3), (3, 2), (0, 65), (1,), (0.5, 2), "ab", (True, 2)]:
        with pytest.raises(ShapeError):
            weights.dequantize(rows)
    with pytest.raises(DTypeError):
        weights.dequantize(out=np.empty((64, 8), np.float64))
    for out in [np.empty((63, 8), np.float32), np.empty((8, 64), np.float32).T, np.empty((64, 16), np.float32)[:, ::2]]:
        with pytest.raises(ShapeError):
            weights.dequantize(out=out)
    read_only = np.empty((64, 8), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ShapeError):
        weights.dequantize(out=read_only)
    with pytest.raises(UnsupportedISAError):
        weights.dequantize((3, 3), isa="bogus")  # checked even when there is nothing to do


def test_int4_dequantize_misaligned_out_and_fresh_attributes():
    """A misaligned ``out`` (a view at an odd byte offset) is filled through an aligned
    buffer, and the weights' current arrays are read on every call."""
    rng = np.random.default_rng(12)
    values = rng.integers(-8, 8, (64, 8)).astype(np.int8)
    scale = rng.uniform(0.01, 0.1, (2, 8)).astype(np.float32)
    weights = _gemm.Int4Weights.from_values(values, scale, block_size=32)
    expected = ref.dequantize_linear(values, scale, None, axis=0, block_size=32)
    out = np.zeros(64 * 8 * 4 + 1, np.uint8)[1:].view(np.float32).reshape(64, 8)
    assert not out.flags.aligned
    _equal(weights.dequantize(out=out), expected)
    weights.dequantize()
    weights.scale = scale * 2
    _equal(weights.dequantize(), ref.dequantize_linear(values, scale * 2, None, axis=0, block_size=32))


def test_linear_int4_from_packed_bytes_and_batches():
    rng = np.random.default_rng(10)
    values = rng.integers(-8, 8, (64, 12)).astype(np.int8)
    scale = rng.uniform(0.01, 0.1, (2, 12)).astype(np.float32)
    weights = _gemm.Int4Weights(ref.pack_int4(values.reshape(-1)), (64, 12), scale, block_size=32)
    a = rng.standard_normal((2, 3, 64)).astype(np.float32)
    _equal(_gemm.linear_int4(a, weights), _int4_expected(a, values, scale, None, 32, None))


def test_linear_int4_bad_input():
    values = np.zeros((64, 8), np.int8)
    scale = np.ones((2, 8), np.float32)
    with pytest.raises(QuantParamError):
        _gemm.Int4Weights.from_values(values, -scale, block_size=32)
    with pytest.raises(ShapeError):
        _gemm.Int4Weights.from_values(values, scale, block_size=64)
    with pytest.raises(QuantParamError):
        _gemm.Int4Weights.from_values(values, scale, np.full((2, 8), 9, np.int8), block_size=32)
    with pytest.raises(DTypeError):
        _gemm.Int4Weights.from_values(values, scale, block_size=32, dtype="int3")
    with pytest.raises(ShapeError):
        _gemm.Int4Weights(np.zeros(10, np.uint8), (64, 8), scale, block_size=32)
    weights = _gemm.Int4Weights.from_values(values, scale, block_size=32)
    with pytest.raises(DTypeError):
        _gemm.linear_int4(np.zeros((1, 64), np.float64), weights)
    with pytest.raises(ShapeError):
        _gemm.linear_int4(np.zeros((1, 63), np.float32), weights)
