"""qcore._attention (C attention scores) against qcore.reference.attention, bit for bit, on every ISA."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qcore import _attention, _native
from qcore.errors import DTypeError, QuantParamError, ShapeError
from qcore.reference import attention as ref

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
