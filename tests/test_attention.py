"""qcore._attention (C attention scores) against qcore.reference.attention, bit for bit, on every ISA."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qcore import _attention, _native
from qcore.errors import DTypeError, QuantParamError, ShapeError
from qcore.reference import attention as ref

sys.path.insert(0, os.path.dirname(__file__))
from alignment import misaligned  # noqa: E402

ISAS = _native.available_isas()
SCALE = float(np.float32(1 / np.sqrt(32)))


def _bits(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float32).view(np.uint32)


def _same(q, k, scale=None, mask=None, isa=None):
    expected = ref.attention_scores(q, k, scale, mask)
    got = _attention.attention_scores(q, k, scale, mask, isa=isa)
    np.testing.assert_array_equal(_bits(got), _bits(expected), strict=True)
    return got


def _heads(rng, batch, seq, heads, depth):
    """q and k as an exported encoder holds them: transposed views of (batch, seq, heads * depth)."""
    q = rng.standard_normal((batch, seq, heads * depth)).astype(np.float32) * 2
    k = rng.standard_normal((batch, seq, heads * depth)).astype(np.float32) * 2
    return (q.reshape(batch, seq, heads, depth).transpose(0, 2, 1, 3),
            k.reshape(batch, seq, heads, depth).transpose(0, 2, 3, 1))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", [(1, 128, 12, 32), (2, 7, 3, 5), (3, 17, 2, 8), (1, 1, 1, 1), (2, 33, 4, 16)])
def test_transposed_views_with_mask_match_bit_for_bit(isa, shape):
    batch, seq, heads, depth = shape
    rng = np.random.default_rng(sum(shape))
    q, k = _heads(rng, batch, seq, heads, depth)
    mask = np.zeros((batch, 1, 1, seq), np.float32)
    mask[0, ..., seq // 2:] = np.float32(-3.4028235e38)  # padding, as the exported mask Mul makes it
    got = _same(q, k, SCALE, mask, isa)
    assert got.shape == (batch, heads, seq, seq) and got.flags.c_contiguous
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("rows, depth, cols", [(5, 3, 13), (4, 1, 8), (9, 0, 7), (6, 40, 17), (1, 64, 130)])
def test_scale_and_mask_optional_any_sizes(isa, rows, depth, cols):
    rng = np.random.default_rng(rows * 100 + cols)
    q = rng.standard_normal((2, rows, depth)).astype(np.float32)
    k = rng.standard_normal((2, depth, cols)).astype(np.float32)
    mask = rng.standard_normal((rows, cols)).astype(np.float32)
    for scale, m in ((None, None), (0.25, None), (None, mask), (-3.0, mask)):
        _same(q, k, scale, m, isa)


@pytest.mark.parametrize("isa", ISAS)
def test_extreme_values(isa):
    rng = np.random.default_rng(7)
    q = rng.standard_normal((1, 2, 12, 9)).astype(np.float32)
    k = rng.standard_normal((1, 2, 9, 21)).astype(np.float32)
    q[0, 0, 0, 3] = np.nan          # a NaN row
    q[0, 0, 1, :] = 3e38            # products overflow to inf: infinite maximum -> NaN row
    q[0, 1, 2, :] = 0.0             # all-zero scores: uniform
    q[0, 1, 3, :] = -0.0
    k[0, 1, :, 4] = 1e-45           # denormals
    mask = np.zeros((1, 1, 12, 21), np.float32)
    mask[..., 5, :] = np.float32(-3.4028235e38)  # a fully masked row: uniform again
    mask[..., 6, 3:] = -np.inf
    with np.errstate(all="ignore"):
        got = _same(q, k, SCALE, mask, isa)
    assert np.isnan(got[0, 0, 0]).all() and np.isnan(got[0, 0, 1]).all()
    np.testing.assert_allclose(got[0, 1, 2], 1 / 21, rtol=1e-6)


def test_broadcast_leading_axes_and_more_than_two():
    rng = np.random.default_rng(8)
    q = rng.standard_normal((2, 1, 3, 6, 4)).astype(np.float32)
    k = rng.standard_normal((1, 5, 1, 4, 7)).astype(np.float32)
    for isa in ISAS:
        got = _same(q, k, 0.5, rng.standard_normal((7,)).astype(np.float32), isa)
        assert got.shape == (2, 5, 3, 6, 7)
    _same(q[0, 0], k[0, 0, 0], None, None)  # no leading axes


def test_out_buffer_used_and_checked():
    rng = np.random.default_rng(9)
    q, k = _heads(rng, 1, 10, 2, 4)
    out = np.empty((1, 2, 10, 10), np.float32)
    assert _attention.attention_scores(q, k, SCALE, out=out) is out
    np.testing.assert_array_equal(_bits(out), _bits(ref.attention_scores(q, k, SCALE)), strict=True)
    with pytest.raises(ShapeError, match="out"):
        _attention.attention_scores(q, k, out=np.empty((1, 2, 10, 9), np.float32))
    with pytest.raises(ShapeError, match="out"):
        _attention.attention_scores(q, k, out=np.empty((1, 2, 10, 10), np.float64))
    square = rng.standard_normal((1, 1, 8, 8)).astype(np.float32)
    with pytest.raises(ShapeError, match="overlaps"):
        _attention.attention_scores(square, square.copy(), out=square)


def test_bad_input_raises_specific_errors():
    rng = np.random.default_rng(10)
    q, k = _heads(rng, 1, 6, 2, 4)
    with pytest.raises(DTypeError, match="q must be float32"):
        _attention.attention_scores(q.astype(np.float64), k)
    with pytest.raises(DTypeError, match="mask must be float32"):
        _attention.attention_scores(q, k, mask=np.zeros(6, np.float16))
    with pytest.raises(ShapeError, match="do not match"):
        _attention.attention_scores(q, k[..., :3, :])
    with pytest.raises(ShapeError, match="do not match"):
        _attention.attention_scores(q[0, 0, 0], k)
    with pytest.raises(ShapeError, match="broadcast"):
        _attention.attention_scores(q, k, mask=np.zeros((3, 6), np.float32))
    with pytest.raises(ShapeError, match="broadcast"):
        _attention.attention_scores(q, np.zeros((3, 4, 6), np.float32))
    for bad in (np.inf, np.nan, 1e39):
        with pytest.raises(QuantParamError, match="finite"):
            _attention.attention_scores(q, k, bad)
    with pytest.raises(DTypeError):
        ref.attention_scores(q.astype(np.float64), k)
    with pytest.raises(ShapeError):
        ref.attention_scores(q, k[..., :3, :])


def test_empty_dimensions():
    for rows, depth, cols in ((0, 4, 5), (3, 4, 0), (3, 0, 5)):
        q = np.ones((2, rows, depth), np.float32)
        k = np.ones((2, depth, cols), np.float32)
        for isa in ISAS:
            _same(q, k, 2.0, None, isa)


@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 9), st.integers(0, 6)),
                  elements=st.floats(-1e4, 1e4, width=32)),
       st.integers(1, 19), st.sampled_from([None, 0.125, -2.0]), st.booleans(), st.randoms())
def test_any_values_match_on_every_isa(q, cols, scale, with_mask, random):
    rng = np.random.default_rng(random.randint(0, 2**32 - 1))
    k = (rng.standard_normal((q.shape[1], cols)) * 10 ** rng.uniform(-3, 3)).astype(np.float32)
    mask = rng.choice(np.float32([0.0, -1e4, -3.4028235e38, 2.5]), (q.shape[0], cols)) if with_mask else None
    with np.errstate(all="ignore"):
        expected = _bits(ref.attention_scores(q, k, scale, mask))
        for isa in ISAS:
            got = _attention.attention_scores(q, k, scale, mask, isa=isa)
            np.testing.assert_array_equal(_bits(got), expected, strict=True)


@pytest.mark.parametrize("isa", ISAS)
def test_masked_padding_skipped_only_when_the_bits_cannot_change(isa):
    """Key columns masked at the end (padding) are not multiplied when the mask alone gives the
    score; NaN, infinity or huge values in q or those K columns keep the full computation."""
    rng = np.random.default_rng(14)
    seq, real = 40, 11
    q, k = _heads(rng, 2, seq, 3, 8)
    q, k = q.copy(), k.copy()
    mask = np.zeros((2, 1, 1, seq), np.float32)
    mask[0, ..., real:] = np.float32(-3.4028235e38)
    mask[1, ..., real:] = -np.inf
    _same(q, k, SCALE, mask, isa)
    _same(q, k, None, mask, isa)
    full = mask.copy()
    full[:] = np.float32(-3.4028235e38)  # every key masked: uniform rows
    np.testing.assert_allclose(_same(q, k, SCALE, full, isa)[0], 1 / seq, rtol=1e-6)
    with np.errstate(all="ignore"):
        bad_k = k.copy()
        bad_k[0, 1, 2, seq - 3] = np.nan        # NaN in a masked key: its rows turn NaN
        got = _same(q, bad_k, SCALE, mask, isa)
        assert np.isnan(got[0, 1]).all() and not np.isnan(got[0, 0]).any()
        bad_k = k.copy()
        bad_k[1, 0, 0, seq - 1] = np.inf       # inf * q + -inf: NaN as computed in full
        _same(q, bad_k, SCALE, mask, isa)
        huge = q.copy()
        huge[0, 2, 5, :] = np.float32(1e30)     # near the bound: computed in full
        _same(huge, k, SCALE, mask, isa)
        huge[0, 2, 5, 0] = np.float32(3e38)
        _same(huge, k * np.float32(1e8), SCALE, mask, isa)


@pytest.mark.parametrize("isa", ISAS)
def test_live_keys_reports_the_zero_probability_tail(isa):
    rng = np.random.default_rng(15)
    q, k = _heads(rng, 2, 30, 4, 8)
    mask = np.zeros((2, 1, 1, 30), np.float32)
    mask[0, ..., 12:] = np.float32(-3.4028235e38)
    mask[1, ..., 17:] = np.float32(-3.4028235e38)
    probs, live = _attention.attention_scores(q, k, SCALE, mask, isa=isa, live_keys=True)
    assert live == 17 and not probs[..., 17:].any()
    np.testing.assert_array_equal(_bits(probs), _bits(ref.attention_scores(q, k, SCALE, mask)), strict=True)
    mask[1, ..., 29] = -np.inf  # padding values differ: nothing shown
    assert _attention.attention_scores(q, k, SCALE, mask, isa=isa, live_keys=True)[1] == 30
    assert _attention.attention_scores(q, k, SCALE, None, isa=isa, live_keys=True)[1] == 30
    empty = _attention.attention_scores(q[:, :, :0], k, SCALE, mask, isa=isa, live_keys=True)
    assert empty[0].shape == (2, 4, 0, 30) and empty[1] == 30


@pytest.mark.parametrize("scale", [None, SCALE])
@pytest.mark.parametrize("padded", [0, 5])
def test_runtime_entry_matches_the_checked_call(scale, padded):
    """``scores_into`` (the runtime's attention step, arguments already checked) gives the
    public call's bits and live-key count, with a mask broadcast over heads and rows."""
    rng = np.random.default_rng(31)
    q, k = _heads(rng, 1, 19, 3, 8)
    mask = np.zeros((1, 1, 1, 19), np.float32)
    mask[:, :, :, 19 - padded:] = np.finfo(np.float32).min  # as exported encoders mask padding
    expected, live = _attention.attention_scores(q, k, scale, mask, live_keys=True)
    out = np.empty(expected.shape, np.float32)
    got_live = _attention.scores_into(q, k, None if scale is None else np.float32(scale), mask, out)
    np.testing.assert_array_equal(_bits(out), _bits(expected), strict=True)
    assert got_live == live == 19 - padded
    no_mask = np.empty(expected.shape, np.float32)
    assert _attention.scores_into(q, k, None, None, no_mask) == 19
    np.testing.assert_array_equal(_bits(no_mask), _bits(_attention.attention_scores(q, k)), strict=True)


def test_runtime_entry_takes_operands_with_strides_between_elements():
    """q as the float32 field of a packed record array (strides not whole elements, also on
    its length-1 axis): the checked call's copy, same bits."""
    rng = np.random.default_rng(33)
    record = np.zeros((1, 2, 4, 8), dtype=[("x", np.float32), ("pad", np.uint8)])
    record["x"] = rng.standard_normal((1, 2, 4, 8)).astype(np.float32)
    q = record["x"]
    assert any(s % 4 for s in q.strides)
    k = rng.standard_normal((1, 2, 8, 4)).astype(np.float32)
    mask = np.zeros((1, 1, 1, 4), dtype=[("m", np.float32), ("pad", np.uint8)])["m"]
    out = np.empty((1, 2, 4, 4), np.float32)
    assert _attention.scores_into(q, k, np.float32(SCALE), mask, out) == 4
    expected = _attention.attention_scores(np.ascontiguousarray(q), k, SCALE, np.zeros((1, 1, 1, 4), np.float32))
    np.testing.assert_array_equal(_bits(out), _bits(expected), strict=True)


def test_empty_depth_record_field_operand():
    """q of depth 0 taken from a packed record array: its odd stride lies along an empty
    axis, which is never stepped along; every score is then 0 and each row uniform."""
    record = np.zeros((4, 5), dtype=[("x", np.float32), ("pad", np.uint8)])
    q = record["x"][:3, :0]
    assert any(s % 4 for s in q.strides)
    k = np.ones((0, 3), np.float32)
    expected = ref.attention_scores(np.zeros((3, 0), np.float32), k)
    for isa in ISAS:
        np.testing.assert_array_equal(_bits(_attention.attention_scores(q, k, isa=isa)), _bits(expected),
                                      strict=True)
    # more than four axes, depth 0: folded into (batch, heads) without a -1 to infer
    q5 = np.zeros((2, 1, 2, 3, 0), np.float32)
    expected5 = ref.attention_scores(q5, np.ones((2, 1, 2, 0, 4), np.float32))
    np.testing.assert_array_equal(_bits(_attention.attention_scores(q5, np.ones((2, 1, 2, 0, 4), np.float32))),
                                  _bits(expected5), strict=True)


def test_runtime_entry_broadcasts_q_and_k_over_batch_and_heads():
    """q shared by every batch, k by every head: ``out``'s leading axes are the ones computed."""
    rng = np.random.default_rng(32)
    q = rng.standard_normal((1, 3, 5, 4)).astype(np.float32)
    k = rng.standard_normal((2, 1, 4, 6)).astype(np.float32)
    expected = _attention.attention_scores(q, k, SCALE)
    out = np.full((2, 3, 5, 6), np.nan, np.float32)
    assert _attention.scores_into(q, k, np.float32(SCALE), None, out) == 6
    np.testing.assert_array_equal(_bits(out), _bits(expected), strict=True)


# ---------------------------------------------------------------------------------------
# attention: softmax(scale * (q @ k) + mask) @ v in one call (qc_attention_f32)
# ---------------------------------------------------------------------------------------

F32_MIN = np.float32(-3.4028235e38)


def _same_context(q, k, v, scale=None, mask=None, isa=None):
    """``_attention.attention`` against ``ref.attention``, bit for bit (NaN payloads too)."""
    with np.errstate(all="ignore"):
        expected = ref.attention(q, k, v, scale, mask)
        got = _attention.attention(q, k, v, scale, mask, isa=isa)
    assert got.shape == expected.shape and got.flags.c_contiguous
    np.testing.assert_array_equal(_bits(got), _bits(expected), strict=True)
    return got


def _fused_qkv(rng, batch, seq, heads, depth, vdepth):
    """q, k and v as an exported encoder holds them: views of one fused projection
    (batch, seq, 2 * heads * depth + heads * vdepth) read as (b, h, s, d), (b, h, d, s)
    and (b, h, s, e); the row stride is the whole fused width."""
    hd, he = heads * depth, heads * vdepth
    qkv = (rng.standard_normal((batch, seq, 2 * hd + he)) * 2).astype(np.float32)
    q = qkv[..., :hd].reshape(batch, seq, heads, depth).transpose(0, 2, 1, 3)
    k = qkv[..., hd:2 * hd].reshape(batch, seq, heads, depth).transpose(0, 2, 3, 1)
    v = qkv[..., 2 * hd:].reshape(batch, seq, heads, vdepth).transpose(0, 2, 1, 3)
    assert all(np.shares_memory(a, qkv) for a in (q, k, v))
    return q, k, v


def _padding_mask(batch, seq, real, value=F32_MIN):
    """(batch, 1, 1, seq): 0 on the first real[b] keys, ``value`` after (exported padding)."""
    mask = np.zeros((batch, 1, 1, seq), np.float32)
    for b in range(batch):
        mask[b, ..., real[b]:] = value
    return mask


def test_attention_is_exported_as_an_op():
    from qcore import ops

    assert ops.attention is _attention.attention


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("shape", [(1, 128, 12, 32, 32), (2, 7, 3, 5, 5), (3, 17, 2, 8, 8), (1, 1, 1, 1, 1),
                                   (2, 33, 4, 16, 16), (2, 9, 3, 5, 7), (1, 11, 2, 6, 1), (1, 6, 2, 4, 13),
                                   (2, 10, 1, 3, 19), (1, 21, 2, 8, 40)])
def test_attention_fused_qkv_views_match_bit_for_bit(isa, padded, shape):
    """q, k and v all views of one fused projection (row stride 2 * H * D + H * E), MiniLM's
    shape and odd ones, vdepth unlike depth (masked AVX2 tails), with and without padding."""
    batch, seq, heads, depth, vdepth = shape
    rng = np.random.default_rng(sum(shape) + padded)
    q, k, v = _fused_qkv(rng, batch, seq, heads, depth, vdepth)
    assert seq == 1 or v.strides[2] == (2 * heads * depth + heads * vdepth) * 4
    mask = _padding_mask(batch, seq, [max(1, seq - 3 - 2 * b) for b in range(batch)]) if padded else None
    got = _same_context(q, k, v, SCALE, mask, isa)
    assert got.shape == (batch, heads, seq, vdepth)
    if padded and seq > 3:  # the padded keys' values do not reach the output: change them, same bits
        v2 = v.copy()
        v2[0, :, seq - 1, :] = 1e3
        np.testing.assert_array_equal(_bits(_attention.attention(q, k, v2, SCALE, mask, isa=isa)), _bits(got),
                                      strict=True)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("vdepth", [1, 2, 7, 8, 9, 13, 16, 17, 19, 24, 40])
def test_attention_separate_transposed_views_every_vdepth(isa, vdepth):
    """q, k as ``_heads`` gives them, v a transposed view of its own (batch, seq, H * E)
    tensor; vdepth from 1 to 40 walks the 16-, 8- and masked-lane paths of the AVX2 kernel."""
    rng = np.random.default_rng(100 + vdepth)
    batch, seq, heads, depth = 2, 11, 3, 8
    q, k = _heads(rng, batch, seq, heads, depth)
    v = rng.standard_normal((batch, seq, heads * vdepth)).astype(np.float32)
    v = v.reshape(batch, seq, heads, vdepth).transpose(0, 2, 1, 3)
    for scale, mask in ((SCALE, _padding_mask(batch, seq, [seq, 6])), (None, None),
                        (0.5, rng.standard_normal((seq, seq)).astype(np.float32))):
        _same_context(q, k, v, scale, mask, isa)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("rows, cols", [(300, 40), (301, 100), (250, 17), (10, 3000), (7, 2049), (5, 1), (6, 3),
                                        (1, 9), (3, 13), (4, 0)])
def test_attention_rows_in_chunks_and_any_key_count(isa, rows, cols):
    """rows not a multiple of 4 and more rows than one scratch chunk (N // T rows, N = 4096 or
    8192 floats, clamped to [4, 256] and a multiple of 4): several chunks and a partial last
    one for either N (S = 301, T = 100: 80 * 3 + 61 or 40 * 7 + 21; T = 3000: 4 + 4 + 2)."""
    rng = np.random.default_rng(rows * 7 + cols)
    depth, vdepth = 5, 13
    q = rng.standard_normal((2, rows, depth)).astype(np.float32)
    k = rng.standard_normal((2, depth, cols)).astype(np.float32)
    v = rng.standard_normal((2, cols, vdepth)).astype(np.float32)
    got = _same_context(q, k, v, SCALE, None, isa)
    if cols == 0:  # a sum of no terms: exact +0 everywhere
        assert got.shape == (2, rows, vdepth) and not _bits(got).any()
        return
    padded = np.zeros((1, cols), np.float32)
    padded[:, cols // 2 + 1:] = F32_MIN
    _same_context(q, k, v, None, padded, isa)
    _same_context(q, k, v, -2.0, rng.standard_normal((rows, cols)).astype(np.float32), isa)


@pytest.mark.parametrize("isa", ISAS)
def test_attention_zero_keys_depth_and_empty_outputs(isa):
    rng = np.random.default_rng(40)
    # T = 0: +0 (positive sign), whatever the mask and the garbage in a reused out
    q = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    k = np.ones((2, 3, 4, 0), np.float32)
    v = np.ones((2, 3, 0, 6), np.float32)
    out = np.full((2, 3, 5, 6), -np.nan, np.float32)
    got = _attention.attention(q, k, v, SCALE, np.zeros((1, 1, 1, 0), np.float32), out=out, isa=isa)
    assert got is out and not _bits(out).any()
    np.testing.assert_array_equal(_bits(out), _bits(ref.attention(q, k, v, SCALE)), strict=True)
    # depth 0: every score 0, uniform probabilities
    q0 = np.ones((2, 5, 0), np.float32)
    k0 = np.ones((2, 0, 7), np.float32)
    v0 = rng.standard_normal((2, 7, 9)).astype(np.float32)
    got = _same_context(q0, k0, v0, SCALE, None, isa)
    np.testing.assert_allclose(got, np.broadcast_to(v0.mean(axis=1, keepdims=True), got.shape), rtol=1e-5, atol=1e-6)
    _same_context(q0, k0, v0, None, _padding_mask(1, 7, [3])[0], isa)
    # empty rows or vdepth: empty result of the right shape
    for qe, ve in ((q[:, :, :0], rng.standard_normal((2, 3, 7, 6))), (q, rng.standard_normal((2, 3, 7, 0)))):
        ke = rng.standard_normal((2, 3, 4, 7)).astype(np.float32)
        got = _same_context(qe, ke, ve.astype(np.float32), SCALE, None, isa)
        assert got.size == 0


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_attention_padding_with_non_finite_values_is_not_skipped(isa, bad):
    """Padded keys whose probabilities are +0 are skipped only when their values are finite:
    0 * NaN and 0 * inf are NaN, and the reference's rows turn NaN."""
    rng = np.random.default_rng(41)
    batch, seq, heads, depth, real = 2, 12, 2, 8, 5
    q, k, v = _fused_qkv(rng, batch, seq, heads, depth, 9)
    mask = _padding_mask(batch, seq, [real, real])
    vbad = v.copy()
    vbad[0, 1, seq - 2, 3] = bad  # batch 0, head 1, a padded key, one value column
    got = _same_context(q, k, vbad, SCALE, mask, isa)
    assert np.isnan(got[0, 1, :, 3]).all()
    assert not np.isnan(np.delete(got[0, 1], 3, axis=-1)).any() and not np.isnan(got[1]).any()
    assert not np.isnan(got[0, 0]).any()
    # a huge but finite padded value: skipped (0 * 3e38 = 0), the same bits as any other value
    vbig = v.copy()
    vbig[:, :, real:, :] = np.float32(3.4e38)
    np.testing.assert_array_equal(_bits(_same_context(q, k, vbig, SCALE, mask, isa)),
                                  _bits(_same_context(q, k, v, SCALE, mask, isa)), strict=True)


@pytest.mark.parametrize("isa", ISAS)
def test_attention_fully_masked_rows_are_uniform_over_every_key(isa):
    rng = np.random.default_rng(42)
    batch, seq, heads, depth = 2, 13, 3, 4
    q, k, v = _fused_qkv(rng, batch, seq, heads, depth, 6)
    mask = _padding_mask(batch, seq, [0, 7])  # batch 0: every key is padding
    got = _same_context(q, k, v, SCALE, mask, isa)
    mean = v[0].astype(np.float64).mean(axis=1, keepdims=True)
    np.testing.assert_allclose(got[0], np.broadcast_to(mean, got[0].shape), rtol=1e-5, atol=1e-6)
    row = np.zeros((seq, seq), np.float32)  # one fully masked row of a per-row mask
    row[4, :] = F32_MIN
    got = _same_context(q, k, v, SCALE, row, isa)
    np.testing.assert_allclose(got[:, :, 4], v.astype(np.float64).mean(axis=2), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("special_row", [0, 1, 5, 8])
def test_attention_block_mixing_padded_and_full_rows(isa, special_row):
    """In one block of four rows, some rows take the padded fast path (their padding
    probabilities are +0, left unwritten) and one does not: its live scores are -inf
    (q * k overflows on live keys whose k is huge, which the padding test does not look at)
    or finite below the padding value, so the whole row's softmax puts 1 / padding on every
    padded key. The block then runs over every key: the other rows' padding must be +0."""
    rng = np.random.default_rng(43 + special_row)
    batch, heads, seq, depth, vdepth, real = 1, 2, 9, 4, 11, 5
    q = rng.standard_normal((batch, heads, seq, depth)).astype(np.float32)
    k = rng.standard_normal((batch, heads, depth, seq)).astype(np.float32)
    v = rng.standard_normal((batch, heads, seq, vdepth)).astype(np.float32)
    q[..., 0] = 0.0
    k[..., 0, :real] = -1e20          # live keys only: the padded keys stay small
    pad_mean = v[..., real:, :].astype(np.float64).mean(axis=-2)
    for q_special, scale, pad in ((1e25, SCALE, F32_MIN),               # 1e25 * -1e20 = -inf
                                  (2e18, None, np.float32(-2.0 ** 127)),  # -2e38 < -2^127
                                  (1e25, None, -np.inf)):                 # -inf live and padded: NaN row
        qs = q.copy()
        qs[..., special_row, 0] = q_special
        mask = _padding_mask(batch, seq, [real], pad)
        got = _same_context(qs, k, v, scale, mask, isa)
        others = np.delete(got, special_row, axis=-2)
        assert np.isfinite(others).all()
        if pad == -np.inf:
            assert np.isnan(got[..., special_row, :]).all()
        else:  # uniform over the padding: it really was not skipped
            np.testing.assert_allclose(got[..., special_row, :], pad_mean, rtol=1e-5, atol=1e-6)
        full = _attention.attention(qs, k, v, scale, np.broadcast_to(mask, (batch, heads, seq, seq)).copy(), isa=isa)
        np.testing.assert_array_equal(_bits(full), _bits(got), strict=True)  # a per-row mask: no fast path
        wide = np.concatenate([v, np.full_like(v, np.nan)], axis=-1)[..., :vdepth]  # rows at a stride: V packed
        np.testing.assert_array_equal(_bits(_attention.attention(qs, k, wide, scale, mask, isa=isa)), _bits(got),
                                      strict=True)
    # padding at -100 (not the padded path's at most -2^127): a row whose live scores are -98
    # gives its padding (scores -100) weight e^-2 against the others' +0
    mask = _padding_mask(batch, seq, [real], np.float32(-100.0))
    qs = q.copy()
    qs[..., special_row, :] = 0.0
    qs[..., special_row, 0] = -98.0
    kk = k.copy()
    kk[..., 0, :real] = 1.0
    kk[..., 0, real:] = 0.0
    got = _same_context(qs, kk, v, None, mask, isa)
    w = np.exp(np.r_[np.zeros(real), np.full(seq - real, -2.0)])
    np.testing.assert_allclose(got[..., special_row, :], (w / w.sum()) @ v.astype(np.float64), rtol=1e-5, atol=1e-6)
    assert np.abs(got[..., special_row, :] - v[..., :real, :].mean(axis=-2)).max() > 1e-2


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("scale", [1e-30, 0.0])
def test_attention_padding_skip_only_when_the_unscaled_sum_cannot_overflow(isa, scale):
    """The padded keys' scores equal the mask only when q * k stays finite: with 1e20 * 1e20
    (inf in float32) times a tiny scale the score is inf (a NaN row), times 0 it is NaN. (A
    bound on |a * scale| alone skipped these keys: finite rows where the reference has NaN.)"""
    q = np.ones((1, 1, 2, 1), np.float32)
    k = np.ones((1, 1, 1, 3), np.float32)
    v = np.ones((1, 1, 3, 2), np.float32)
    q[..., 0, 0] = 1e20
    k[..., 0, 2] = 1e20  # the padded key
    mask = np.float32([[[[0.0, 0.0, F32_MIN]]]])
    with np.errstate(all="ignore"):
        assert np.isnan(ref.attention(q, k, v, scale, mask)[..., 0, :]).all()
        np.testing.assert_array_equal(_bits(_attention.attention_scores(q, k, scale, mask, isa=isa)),
                                      _bits(ref.attention_scores(q, k, scale, mask)), strict=True)
    _same_context(q, k, v, scale, mask, isa)


@pytest.mark.parametrize("isa", ISAS)
def test_attention_extreme_values(isa):
    rng = np.random.default_rng(44)
    batch, seq, heads, depth, vdepth = 1, 14, 3, 9, 10
    q, k, v = (a.copy() for a in _fused_qkv(rng, batch, seq, heads, depth, vdepth))
    q[0, 0, 0, 3] = np.nan            # a NaN query row
    q[0, 0, 1, :] = 3e38              # overflowing products
    q[0, 1, 2, :] = 0.0               # uniform row
    k[0, 1, :, 4] = 1e-45             # denormals
    k[0, 2, 5, 6] = np.inf            # an infinite key
    v[0, 1, 3, 2] = np.nan            # a NaN value
    v[0, 1, 7, 5] = -np.inf           # an infinite value
    v[0, 2, 8, :] = 3e38              # huge values: sums overflow
    v[0, 2, 9, :] = 3e38
    v[0, 0, :, 0] = 1e-45
    mask = np.zeros((1, 1, seq, seq), np.float32)
    mask[..., 5, :] = F32_MIN          # a fully masked row
    mask[..., 6, 3:] = -np.inf
    mask[..., 7, :] = -np.inf          # every key -inf: NaN row
    for scale, m in ((SCALE, mask), (None, None), (SCALE, _padding_mask(1, seq, [9]))):
        got = _same_context(q, k, v, scale, m, isa)
        assert np.isnan(got[0, 0, 0]).all() and np.isnan(got[0, 1, :, 2]).all()


@pytest.mark.parametrize("isa", ISAS)
def test_attention_negative_strides_and_packed_values(isa):
    """Reversed views (negative strides on every axis, the last axis too) and v whose last
    axis is not contiguous (a step of 2, a transposed store, a single column), which the C
    code packs; with padding (the fast path) and without."""
    rng = np.random.default_rng(45)
    batch, heads, seq, depth, vdepth = 2, 3, 10, 6, 13
    q, k = _heads(rng, batch, seq, heads, depth)
    v = rng.standard_normal((batch, heads, seq, vdepth)).astype(np.float32)
    mask = _padding_mask(batch, seq, [seq, 4])
    base = _same_context(q, k, v, SCALE, mask, isa)
    rq, rk, rv = q[::-1, ::-1, ::-1, ::-1], k[::-1, ::-1, ::-1, ::-1], v[::-1, ::-1, ::-1, ::-1]
    assert all(s < 0 for a in (rq, rk, rv) for s in a.strides)
    _same_context(rq, rk, rv, SCALE, mask[::-1, :, :, ::-1], isa)
    _same_context(rq, rk, rv, None, None, isa)
    wide = np.zeros((batch, heads, seq, 2 * vdepth), np.float32)
    wide[..., ::2] = v
    wide[..., 1::2] = np.nan  # never read
    np.testing.assert_array_equal(_bits(_same_context(q, k, wide[..., ::2], SCALE, mask, isa)), _bits(base),
                                  strict=True)
    vt = np.ascontiguousarray(v.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)  # (b, h, e, t) in memory
    assert vt.strides[-1] != 4
    np.testing.assert_array_equal(_bits(_same_context(q, k, vt, SCALE, mask, isa)), _bits(base), strict=True)
    _same_context(q, k, vt, None, None, isa)
    one = wide[..., 4:5:3]  # vdepth 1 through a non-unit stride
    _same_context(q, k, np.lib.stride_tricks.as_strided(one, strides=one.strides[:-1] + (12,)), SCALE, mask, isa)
    _same_context(q[..., ::2, :], k, v, SCALE, mask[..., :], isa)  # every other query row


def test_attention_out_buffer_used_and_checked():
    rng = np.random.default_rng(46)
    q, k, v = _fused_qkv(rng, 1, 10, 2, 4, 6)
    out = np.full((1, 2, 10, 6), np.nan, np.float32)
    for isa in ISAS:
        assert _attention.attention(q, k, v, SCALE, out=out, isa=isa) is out
        np.testing.assert_array_equal(_bits(out), _bits(ref.attention(q, k, v, SCALE)), strict=True)
    for bad in (np.empty((1, 2, 10, 5), np.float32), np.empty((1, 2, 10, 6), np.float64),
                np.empty((1, 2, 6, 10), np.float32).transpose(0, 1, 3, 2), np.empty((2, 10, 6), np.float32),
                [[0.0] * 6] * 10):
        with pytest.raises(ShapeError, match="out"):
            _attention.attention(q, k, v, out=bad)
    square = rng.standard_normal((1, 1, 8, 8)).astype(np.float32)
    for shared in ("q", "k", "v", "mask"):
        a = {name: square.copy() for name in ("q", "k", "v", "mask")}
        a[shared] = square
        with pytest.raises(ShapeError, match="overlaps"):
            _attention.attention(a["q"], a["k"], a["v"], mask=a["mask"], out=square)
    assert np.isfinite(square).all()


def test_attention_bad_input_raises_specific_errors():
    rng = np.random.default_rng(47)
    q, k, v = _fused_qkv(rng, 1, 6, 2, 4, 5)
    with pytest.raises(DTypeError, match="v must be float32"):
        _attention.attention(q, k, v.astype(np.float64))
    with pytest.raises(DTypeError, match="v must be float32"):
        _attention.attention(q, k, v.astype(np.float16))
    with pytest.raises(DTypeError, match="q must be float32"):
        _attention.attention(q.astype(np.float64), k, v)
    with pytest.raises(DTypeError, match="mask must be float32"):
        _attention.attention(q, k, v, mask=np.zeros(6, np.float64))
    for bad in (np.inf, -np.inf, np.nan, 1e39):
        with pytest.raises(QuantParamError, match="finite"):
            _attention.attention(q, k, v, bad)
    with pytest.raises(ShapeError, match="does not match the keys"):
        _attention.attention(q, k, v[..., :5, :])       # v's T is not k's T
    with pytest.raises(ShapeError, match="does not match the keys"):
        _attention.attention(q, k, v[0, 0, 0])          # v 1-D
    with pytest.raises(ShapeError, match="do not match"):
        _attention.attention(q, k[..., :3, :], v)
    with pytest.raises(ShapeError, match="broadcast"):
        _attention.attention(q, k, np.zeros((1, 3, 6, 5), np.float32))  # v's 3 heads against 2
    with pytest.raises(ShapeError, match="broadcast"):
        _attention.attention(q[0], k[0], np.zeros((3, 6, 5), np.float32))  # heads 2 against 3
    with pytest.raises(ShapeError, match="broadcast"):
        _attention.attention(q, k, v, mask=np.zeros((4, 6), np.float32))
    with pytest.raises(DTypeError):
        ref.attention(q, k, v.astype(np.float64))
    with pytest.raises(ShapeError):
        ref.attention(q, k, v[..., :5, :])
    with pytest.raises(ShapeError):
        ref.attention(q[0], k[0], np.zeros((3, 6, 5), np.float32))


@pytest.mark.parametrize("isa", ISAS)
def test_attention_broadcasts_leading_axes(isa):
    rng = np.random.default_rng(48)
    S, D, T, E = 6, 4, 7, 5
    f = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    # q shared by both batches, v by every head
    got = _same_context(f(1, 3, S, D), f(2, 3, D, T), f(2, 1, T, E), SCALE, f(2, 1, 1, T), isa)
    assert got.shape == (2, 3, S, E)
    # more than four axes, each operand broadcast somewhere
    got = _same_context(f(2, 1, 3, S, D), f(1, 4, 1, D, T), f(1, 1, 3, T, E), 0.5, f(T), isa)
    assert got.shape == (2, 4, 3, S, E)
    got = _same_context(f(2, 1, 2, 1, S, D), f(1, 3, 1, 2, D, T), f(2, 3, 2, 2, T, E), None, None, isa)
    assert got.shape == (2, 3, 2, 2, S, E)
    # 2-D and 3-D inputs, mixed
    assert _same_context(f(S, D), f(D, T), f(T, E), SCALE, f(S, T), isa).shape == (S, E)
    assert _same_context(f(S, D), f(3, D, T), f(T, E), SCALE, None, isa).shape == (3, S, E)
    assert _same_context(f(S, D), f(D, T), f(2, 3, T, E), None, None, isa).shape == (2, 3, S, E)
    # masks broadcast along the keys (zero column stride): a scalar, one value per row, all keys
    # masked by one value (every key padding: uniform; -inf: NaN rows)
    q, k, v = f(2, 3, S, D), f(2, 3, D, T), f(2, 3, T, E)
    _same_context(q, k, v, SCALE, np.float32(-1.5), isa)
    _same_context(q, k, v, SCALE, f(S, 1), isa)
    got = _same_context(q, k, v, SCALE, np.full((1, 1, 1, 1), F32_MIN), isa)
    np.testing.assert_allclose(got, np.broadcast_to(v.mean(axis=-2, keepdims=True), got.shape), rtol=1e-5, atol=1e-6)
    assert np.isnan(_same_context(q, k, v, SCALE, np.full((2, 1, 1, 1), -np.inf, np.float32), isa)).all()
    # a broadcast view read in place (zero strides on q's rows)
    qb = np.broadcast_to(f(1, 1, 1, D), (1, 2, S, D))
    got = _same_context(qb, f(1, 2, D, T), f(1, 2, T, E), SCALE, None, isa)
    np.testing.assert_array_equal(_bits(got[:, :, 1:]), _bits(np.broadcast_to(got[:, :, :1], got[:, :, 1:].shape)),
                                  strict=True)


_MASK_VALUES = np.float32([0.0, -1e4, -3.4028235e38, 2.5, -np.inf])


@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 9), st.integers(0, 6)),
                  elements=st.floats(-1e4, 1e4, width=32)),
       st.integers(0, 19), st.integers(1, 20), st.sampled_from([None, 0.125, -2.0]),
       st.sampled_from(["none", "rows", "padding"]), st.sampled_from([None, np.nan, np.inf, 3e38]), st.randoms())
def test_attention_any_values_match_on_every_isa(q, cols, vdepth, scale, mask_kind, special, random):
    rng = np.random.default_rng(random.randint(0, 2**32 - 1))
    k = (rng.standard_normal((q.shape[1], cols)) * 10 ** rng.uniform(-3, 3)).astype(np.float32)
    v = (rng.standard_normal((cols, vdepth)) * 10 ** rng.uniform(-3, 3)).astype(np.float32)
    mask = None
    if mask_kind == "rows":
        mask = rng.choice(_MASK_VALUES, (q.shape[0], cols))
    elif mask_kind == "padding":  # the same for every row, the last keys at float32's min (or -inf)
        mask = np.zeros((1, cols), np.float32)
        mask[:, rng.integers(0, cols + 1):] = rng.choice(_MASK_VALUES[2:3].tolist() + [-np.inf])
    if special is not None and cols > 0:
        v[rng.integers(0, cols), rng.integers(0, vdepth)] = special
    if rng.integers(0, 2) and cols > 0:  # v read through a non-unit last-axis stride
        v = np.repeat(v, 2, axis=-1)[:, ::2]
    with np.errstate(all="ignore"):
        expected = _bits(ref.attention(q, k, v, scale, mask))
        for isa in ISAS:
            got = _attention.attention(q, k, v, scale, mask, isa=isa)
            np.testing.assert_array_equal(_bits(got), expected, strict=True)


@pytest.mark.parametrize("scale", [None, SCALE])
@pytest.mark.parametrize("padded", [0, 5])
@pytest.mark.parametrize("vdepth", [8, 13])
def test_context_runtime_entry_writes_the_transposed_buffer(scale, padded, vdepth):
    """``context_into`` (the runtime's attention step) writes ``buf.transpose(0, 2, 1, 3)`` of a
    C-contiguous (B, S, H, E) buffer in place: the heads joined, the reference's bits."""
    rng = np.random.default_rng(34 + padded + vdepth)
    batch, seq, heads, depth = 2, 19, 3, 8
    q, k, v = _fused_qkv(rng, batch, seq, heads, depth, vdepth)
    mask = _padding_mask(batch, seq, [seq - padded, seq - 2 * padded]) if padded else None
    buf = np.full((batch, seq, heads, vdepth), np.nan, np.float32)
    _attention.context_into(q, k, None if scale is None else np.float32(scale), mask, v, buf.transpose(0, 2, 1, 3))
    with np.errstate(all="ignore"):
        expected = ref.attention(q, k, v, scale, mask)
    np.testing.assert_array_equal(_bits(buf.transpose(0, 2, 1, 3)), _bits(expected), strict=True)
    np.testing.assert_array_equal(_bits(buf.reshape(batch, seq, heads * vdepth)),
                                  _bits(expected.transpose(0, 2, 1, 3).reshape(batch, seq, heads * vdepth)),
                                  strict=True)
    # an out whose last axis is not contiguous ((B, H, E, S) in memory): the scalar loop's stores
    store = np.full((batch, heads, vdepth, seq), np.nan, np.float32)
    _attention.context_into(q, k, None if scale is None else np.float32(scale), mask, v, store.transpose(0, 1, 3, 2))
    np.testing.assert_array_equal(_bits(store.transpose(0, 1, 3, 2)), _bits(expected), strict=True)


def test_context_runtime_entry_broadcasts_and_takes_padding_with_nan_values():
    rng = np.random.default_rng(35)
    q = rng.standard_normal((1, 3, 9, 4)).astype(np.float32)
    k = rng.standard_normal((2, 1, 4, 11)).astype(np.float32)
    v = rng.standard_normal((2, 3, 11, 6)).astype(np.float32)
    v[1, 2, 10, 0] = np.nan  # a padded key of batch 1
    mask = _padding_mask(2, 11, [11, 7])
    out = np.full((2, 3, 9, 6), np.inf, np.float32)
    _attention.context_into(q, k, np.float32(SCALE), mask, v, out)
    with np.errstate(all="ignore"):
        expected = ref.attention(q, k, v, SCALE, mask)
    np.testing.assert_array_equal(_bits(out), _bits(expected), strict=True)
    assert np.isnan(out[1, 2, :, 0]).all() and np.isfinite(out[0]).all()


def test_context_runtime_entry_takes_operands_with_strides_between_elements():
    """q, v and the mask as float32 fields of packed record arrays (strides not whole
    elements): the checked call's copy, written into the transposed out, same bits."""
    rng = np.random.default_rng(36)
    record = np.zeros((1, 2, 5, 8), dtype=[("x", np.float32), ("pad", np.uint8)])
    record["x"] = rng.standard_normal((1, 2, 5, 8)).astype(np.float32)
    q = record["x"]
    k = rng.standard_normal((1, 2, 8, 6)).astype(np.float32)
    vrec = np.zeros((1, 2, 6, 7), dtype=[("pad", np.uint8), ("v", np.float32)])
    vrec["v"] = rng.standard_normal((1, 2, 6, 7)).astype(np.float32)
    v = vrec["v"]
    mrec = np.zeros((1, 1, 1, 6), dtype=[("m", np.float32), ("pad", np.uint8)])
    mrec["m"][..., 4:] = F32_MIN
    mask = mrec["m"]
    assert all(any(s % 4 for s in a.strides) for a in (q, v, mask))
    expected = ref.attention(np.ascontiguousarray(q), k, np.ascontiguousarray(v), SCALE, np.ascontiguousarray(mask))
    for operands in ((q, k, v, mask), (np.ascontiguousarray(q), k, v, None), (q, k, np.ascontiguousarray(v), mask)):
        buf = np.full((1, 5, 2, 7), np.nan, np.float32)
        m = operands[3]
        _attention.context_into(operands[0], operands[1], np.float32(SCALE), m, operands[2], buf.transpose(0, 2, 1, 3))
        want = expected if m is not None else ref.attention(np.ascontiguousarray(q), k, np.ascontiguousarray(v),
                                                            SCALE)
        np.testing.assert_array_equal(_bits(buf.transpose(0, 2, 1, 3)), _bits(want), strict=True)
    # out itself a record field: written through the fallback
    orec = np.zeros((1, 2, 5, 7), dtype=[("y", np.float32), ("pad", np.uint8)])
    _attention.context_into(q, k, np.float32(SCALE), mask, v, orec["y"])
    np.testing.assert_array_equal(_bits(orec["y"]), _bits(expected), strict=True)


@pytest.mark.parametrize("isa", ISAS)
def test_misaligned_operands_and_out_are_copied_not_read_as_floats(isa):
    """Arrays starting off a 4-byte boundary (np.frombuffer at an odd offset, a packed record
    field) are valid NumPy float32 arrays but not valid C floats: they are copied first
    (and an unaligned out is written through an aligned buffer), with the same bits."""
    rng = np.random.default_rng(41)
    q, k = _heads(rng, 1, 9, 2, 4)
    v = rng.standard_normal((1, 2, 9, 5)).astype(np.float32)
    mask = np.zeros((1, 1, 1, 9), np.float32)
    mask[..., 6:] = F32_MIN
    expected = ref.attention(q, k, v, SCALE, mask)
    expected_scores = ref.attention_scores(q, k, SCALE, mask)
    mq, mk, mv, mm = (misaligned(np.ascontiguousarray(a)) for a in (q, k, v, mask))
    assert all(a.ctypes.data % 4 for a in (mq, mk, mv, mm)) and not mq.flags.aligned
    np.testing.assert_array_equal(_bits(_attention.attention(mq, mk, mv, SCALE, mm, isa=isa)), _bits(expected),
                                  strict=True)
    np.testing.assert_array_equal(_bits(_attention.attention_scores(mq, mk, SCALE, mm, isa=isa)),
                                  _bits(expected_scores), strict=True)
    out = misaligned(np.zeros(expected.shape, np.float32))
    _attention.attention(q, k, v, SCALE, mask, out=out, isa=isa)
    np.testing.assert_array_equal(_bits(out), _bits(expected), strict=True)
    scores_out = misaligned(np.zeros(expected_scores.shape, np.float32))
    _attention.attention_scores(q, k, SCALE, mask, out=scores_out, isa=isa)
    np.testing.assert_array_equal(_bits(scores_out), _bits(expected_scores), strict=True)


def test_runtime_entries_copy_misaligned_operands():
    rng = np.random.default_rng(42)
    q, k = _heads(rng, 1, 7, 2, 4)
    v = rng.standard_normal((1, 2, 7, 3)).astype(np.float32)
    expected = ref.attention(q, k, v, SCALE)
    buf = np.zeros((1, 7, 2, 3), np.float32)
    _attention.context_into(misaligned(np.ascontiguousarray(q)), k, np.float32(SCALE), None,
                            misaligned(v), buf.transpose(0, 2, 1, 3))
    np.testing.assert_array_equal(_bits(buf.transpose(0, 2, 1, 3)), _bits(expected), strict=True)
    scores = np.zeros((1, 2, 7, 7), np.float32)
    _attention.scores_into(q, misaligned(np.ascontiguousarray(k)), np.float32(SCALE), None, scores)
    np.testing.assert_array_equal(_bits(scores), _bits(ref.attention_scores(q, k, SCALE)), strict=True)
