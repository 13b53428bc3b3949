"""qcore.graph.transformer on a small encoder built in the test (no torch needed)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
mb = pytest.importorskip("model_builders")

from qcore.errors import CalibrationError, NonFiniteError, QuantParamError, ShapeError  # noqa: E402
from qcore.graph import import_onnx  # noqa: E402
from qcore.graph.transformer import (  # noqa: E402
    activation_samples,
    INT4_CLIP_RATIOS,
    INT4_TABLE_BLOCK_ROWS,
    INT4_TABLE_INT8_ROWS,
    frequent_rows,
    gptq_quantize,
    index_counts,
    int4_table,
    quantize_transformer,
    sensitivity_report,
    smooth_activations,
    smoothing_factors,
)
from qcore.reference.quantize import quantize_tensor  # noqa: E402
from qcore.runtime import Model  # noqa: E402


@pytest.fixture(scope="module")
def encoder():
    rng = np.random.default_rng(6)
    graph = import_onnx(mb.transformer(rng, hidden=32, heads=4, ffn=64, layers=2))
    calibration = [mb.transformer_feeds(rng, batch=2) for _ in range(4)]
    evaluation = mb.transformer_feeds(rng, batch=3)
    return graph, calibration, evaluation


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_smoothing_factors_formula():
    activation_max = np.array([4.0, 1.0, 0.0, 9.0], dtype=np.float32)
    weight = np.array([[1.0, -2.0], [0.5, 0.25], [1.0, 1.0], [0.0, 0.0]], dtype=np.float32)
    factors = smoothing_factors(activation_max, weight, 0.5)
    # sqrt(4) / sqrt(2), sqrt(1) / sqrt(0.5); zero activation or zero weight row -> 1.
    np.testing.assert_allclose(factors, [np.sqrt(2.0), np.sqrt(2.0), 1.0, 1.0], rtol=1e-6)
    assert factors.dtype == np.float32
    huge = smoothing_factors(np.array([1e9], np.float32), np.array([[1e-9]], np.float32), 0.5)
    assert huge[0] == np.float32(100.0)  # clipped
    with pytest.raises(QuantParamError, match="alpha"):
        smoothing_factors(activation_max, weight, 1.5)


def test_smoothing_keeps_the_float_function(encoder):
    graph, calibration, evaluation = encoder
    smoothed = smooth_activations(graph, calibration, alpha=0.5)
    linear_count = sum(1 for n in graph.nodes if n.op == "MatMul" and n.inputs[1] in graph.initializers)
    assert sum(1 for n in smoothed.nodes if n.name.endswith(".smoothing")) == linear_count
    before = Model(graph).run(evaluation)["hidden"]
    after = Model(smoothed).run(evaluation)["hidden"]
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-5)


def test_searched_smoothing_keeps_the_float_function(encoder):
    graph, calibration, evaluation = encoder
    smoothed = smooth_activations(graph, calibration)
    assert smoothed.metadata["smoothing"]["searched"] is True
    np.testing.assert_allclose(Model(smoothed).run(evaluation)["hidden"], Model(graph).run(evaluation)["hidden"],
                               rtol=1e-4, atol=1e-5)


def test_calibration_must_not_be_empty(encoder):
    graph, _, _ = encoder
    with pytest.raises(CalibrationError, match="at least one"):
        smooth_activations(graph, [], alpha=0.5)
    with pytest.raises(CalibrationError, match="never computed"):
        activation_samples(graph, [mb.transformer_feeds(np.random.default_rng(0))], ["no such value"])


def test_gptq_beats_round_to_nearest_on_correlated_inputs():
    rng = np.random.default_rng(11)
    mixing = rng.normal(size=(64, 64))
    samples = (rng.normal(size=(512, 64)) @ mixing).astype(np.float32)
    samples[:, 3] *= 20.0  # an outlier channel
    weight = rng.normal(size=(64, 24)).astype(np.float32)
    reference = samples.astype(np.float64) @ weight
    for bits, block in ((8, 0), (4, 16)):
        q = gptq_quantize(weight, samples, bits=bits, block_size=block, symmetric=True)
        assert q.dtype == ("int8" if bits == 8 else "int4")
        assert (q.axis, q.block_size) == ((1, 0) if block == 0 else (0, block))
        qmax = 127 if bits == 8 else 7
        assert q.data.min() >= -qmax - 1 and q.data.max() <= qmax
        nearest_scale = (np.abs(weight).max(axis=0) / qmax if block == 0 else
                         np.repeat(np.abs(weight.reshape(-1, block, 24)).max(axis=1) / qmax, block, axis=0))
        nearest = np.clip(np.rint(weight / nearest_scale), -qmax - 1, qmax) * nearest_scale
        gptq_error = np.linalg.norm(reference - samples @ q.dequantize().astype(np.float64))
        nearest_error = np.linalg.norm(reference - samples @ nearest)
        assert gptq_error < 0.8 * nearest_error, (bits, gptq_error, nearest_error)


def test_gptq_affine_blocks_and_bad_arguments():
    rng = np.random.default_rng(12)
    samples = rng.normal(size=(128, 40)).astype(np.float32)
    weight = (rng.normal(size=(40, 8)) + 0.5).astype(np.float32)
    q = gptq_quantize(weight, samples, bits=4, block_size=16, symmetric=False)
    assert q.scale.shape == (3, 8) and q.zero_point.shape == (3, 8)  # 40 rows: blocks 16, 16, 8
    assert np.abs(q.zero_point).max() > 0
    assert np.abs(q.dequantize() - weight).max() < 0.5
    with pytest.raises(QuantParamError, match="bits"):
        gptq_quantize(weight, samples, bits=3)
    with pytest.raises(QuantParamError, match="do not match"):
        gptq_quantize(weight, samples[:, :10])
    with pytest.raises(QuantParamError, match="block size"):
        gptq_quantize(weight, samples, bits=4, symmetric=False)



@pytest.mark.parametrize("symmetric", [True, False])
def test_gptq_clip_search_lowers_the_error_of_heavy_tailed_blocks(symmetric):
    rng = np.random.default_rng(13)
    samples = rng.normal(size=(2048, 64)).astype(np.float32)  # near-diagonal Hessian
    weight = rng.laplace(size=(64, 16)).astype(np.float32)
    full = gptq_quantize(weight, samples, bits=4, block_size=32, symmetric=symmetric)
    clipped = gptq_quantize(weight, samples, bits=4, block_size=32, symmetric=symmetric,
                            clip_ratios=INT4_CLIP_RATIOS)
    assert INT4_CLIP_RATIOS[0] == 1.0 and min(INT4_CLIP_RATIOS) == 0.75
    # the first block starts from the original weight in both runs: clipping only shrinks it
    assert np.all(clipped.scale[0] <= full.scale[0]) and np.any(clipped.scale[0] < full.scale[0])
    reference = samples.astype(np.float64) @ weight
    errors = [np.linalg.norm(reference - samples @ q.dequantize().astype(np.float64)) for q in (full, clipped)]
    assert errors[1] < errors[0], errors
    # the full range alone reproduces the default
    same = gptq_quantize(weight, samples, bits=4, block_size=32, symmetric=symmetric, clip_ratios=(1.0,))
    np.testing.assert_array_equal(same.data, full.data, strict=True)
    for bad in ((), (0.0,), (1.1,), (0.9, -0.5)):
        with pytest.raises(QuantParamError, match="clip ratios"):
            gptq_quantize(weight, samples, bits=4, block_size=32, clip_ratios=bad)


def test_gptq_pair_limit_bounds_every_pair_and_spreads_the_clipping():
    rng = np.random.default_rng(14)
    samples = (rng.normal(size=(512, 32)) @ rng.normal(size=(32, 32))).astype(np.float32)
    weight = rng.laplace(size=(32, 12)).astype(np.float32)
    weight[4:6] *= 6.0  # a pair of outlier rows: both near the column maximum
    free = gptq_quantize(weight, samples)
    pairs = np.abs(free.data[0::2].astype(np.int32)) + np.abs(free.data[1::2].astype(np.int32))
    assert pairs.max() > 128  # the constraint has work to do
    limited = gptq_quantize(weight, samples, pair_limit=128)
    pairs = np.abs(limited.data[0::2].astype(np.int32)) + np.abs(limited.data[1::2].astype(np.int32))
    assert pairs.max() <= 128
    np.testing.assert_array_equal(limited.scale, free.scale, strict=True)  # same per-column scales
    # outlier rows paired together lose: the constraint costs accuracy (as on MiniLM)
    reference = samples.astype(np.float64) @ weight
    errors = [np.linalg.norm(reference - samples @ q.dequantize().astype(np.float64)) for q in (free, limited)]
    assert errors[0] < errors[1], errors
    # a limit no pair reaches changes nothing
    loose = gptq_quantize(weight, samples, pair_limit=256)
    np.testing.assert_array_equal(loose.data, free.data, strict=True)
    for bad in ({"pair_limit": 0}, {"pair_limit": 128, "bits": 4, "block_size": 16, "symmetric": False}):
        with pytest.raises(QuantParamError, match="pair_limit"):
            gptq_quantize(weight, samples, **bad)


def test_quantize_transformer_int8_and_int4(encoder):
    graph, calibration, evaluation = encoder
    reference = Model(graph).run(evaluation)["hidden"]
    int8 = quantize_transformer(graph, calibration, weight_bits=8)
    ops = int8.graph.op_counts()
    assert ops.get("QMatMul", 0) > 0 and "Softmax" in ops and ops.get("QGather", 0) >= 1
    assert _cosine(int8.run(evaluation)["hidden"], reference) > 0.999
    int4 = quantize_transformer(graph, calibration, weight_bits=4, block_size=16)
    assert int4.graph.op_counts().get("WMatMul", 0) == ops["QMatMul"]
    assert _cosine(int4.run(evaluation)["hidden"], reference) > 0.98
    nearest = quantize_transformer(graph, calibration, weight_bits=8, rounding="nearest", alpha=0.5)
    assert _cosine(nearest.run(evaluation)["hidden"], reference) > 0.999
    with pytest.raises(QuantParamError, match="weight_bits"):
        quantize_transformer(graph, calibration, weight_bits=2)
    with pytest.raises(QuantParamError, match="rounding"):
        quantize_transformer(graph, calibration, rounding="stochastic")
    with pytest.raises(QuantParamError, match="max_rows"):
        quantize_transformer(graph, calibration, max_rows=0)
    # fewer calibration rows: a valid model, other weights
    few = quantize_transformer(graph, calibration, weight_bits=8, max_rows=8)
    assert _cosine(few.run(evaluation)["hidden"], reference) > 0.99


def test_int4_table_clip_search_per_row_and_per_block():
    rng = np.random.default_rng(12)
    table = rng.standard_t(3, size=(40, 64)).astype(np.float32)  # heavy tails: clipping pays
    for block in (0, 16):
        q = int4_table(table, block)
        data = np.asarray(q.data)
        assert q.dtype == "int4" and data.min() >= -8 and data.max() <= 7
        assert (q.axis, q.block_size) == ((1, 16) if block else (0, 0))
        assert np.asarray(q.scale).dtype == np.float32
        assert np.array_equal(np.asarray(q.scale).astype(np.float16).astype(np.float32), np.asarray(q.scale))
        plain = quantize_tensor(table, "int4", granularity="per_block" if block else "per_channel",
                                axis=1 if block else 0, block_size=block, symmetric=False)
        searched_error = np.square(q.dequantize() - table).sum()
        assert searched_error < np.square(plain.dequantize() - table).sum()
    with pytest.raises(QuantParamError, match="2-D"):
        int4_table(table[0])
    with pytest.raises(QuantParamError, match="2-D with columns"):
        int4_table(np.zeros((3, 0), np.float32))
    with pytest.raises(ShapeError, match="empty table"):
        int4_table(np.zeros((0, 4), np.float32))
    with pytest.raises(NonFiniteError, match="NaN or infinite"):
        int4_table(np.array([[np.nan, 1.0]], np.float32))
    for bad in (-1, 2.5):
        with pytest.raises(QuantParamError, match="block size"):
            int4_table(table, bad)


def test_frequent_rows_and_index_counts():
    rng = np.random.default_rng(13)
    table = rng.normal(size=(30, 8)).astype(np.float32)
    counts = np.zeros(30, np.int64)
    counts[[4, 9, 2, 17]] = [5, 7, 5, 1]
    ids, rows = frequent_rows(table, counts, 3)
    np.testing.assert_array_equal(ids, [2, 4, 9])  # the tie 2 / 4 keeps both, 17 is fourth
    assert rows.dtype == "int8" and rows.shape == (3, 8) and rows.axis == 0
    np.testing.assert_allclose(rows.dequantize(), table[ids], atol=np.abs(table).max() / 127)
    assert frequent_rows(table, counts, 10)[0].tolist() == [2, 4, 9, 17]  # never-seen rows are not chosen
    with pytest.raises(QuantParamError, match="looked up"):
        frequent_rows(table, np.zeros(30, np.int64), 3)
    with pytest.raises(QuantParamError, match="one count per table row"):
        frequent_rows(table, np.ones(20, np.int64), 3)
    for bad in (0, -1):
        with pytest.raises(QuantParamError, match="limit"):
            frequent_rows(table, counts, bad)

    graph = import_onnx(mb.transformer(rng, vocab=60, positions="gather", layers=1))
    feeds = [mb.transformer_feeds(rng, batch=2, vocab=60) for _ in range(3)]
    feeds[0]["input_ids"][0, 0] = -1  # a negative index counts for the last row
    found = index_counts(graph, feeds, {"input_ids": 60, "pos_ids": 64})
    ids = np.concatenate([f["input_ids"].ravel() for f in feeds])
    np.testing.assert_array_equal(found["input_ids"], np.bincount(np.where(ids < 0, ids + 60, ids), minlength=60))
    np.testing.assert_array_equal(found["pos_ids"], np.r_[np.full(8, 3), np.zeros(56, np.int64)])
    with pytest.raises(CalibrationError, match="out of range"):
        index_counts(graph, feeds, {"input_ids": 10})
    with pytest.raises(CalibrationError, match="never computed"):
        index_counts(graph, feeds, {"no_such_value": 10})
    with pytest.raises(CalibrationError, match="at least one"):
        index_counts(graph, [], {"input_ids": 60})


def test_int4_vocabulary_table_keeps_its_frequent_rows_in_int8(tmp_path):
    from qcore.api import load, save

    rng = np.random.default_rng(14)
    vocab = INT4_TABLE_BLOCK_ROWS + 100
    graph = import_onnx(mb.transformer(rng, vocab=vocab, positions="gather", layers=1))
    zipf = 1.0 / np.arange(1, vocab + 1)
    calibration = []
    for _ in range(4):
        feed = mb.transformer_feeds(rng, batch=2, vocab=vocab)
        feed["input_ids"] = rng.choice(vocab, size=feed["input_ids"].shape, p=zipf / zipf.sum()).astype(np.int64)
        calibration.append(feed)
    model = quantize_transformer(graph, calibration, weight_bits=4, block_size=16)
    gathers = {node.name: node for node in model.graph.nodes if node.op == "QGather"}
    tokens, positions = gathers["embed_tokens"], gathers["embed_positions"]
    inits = model.graph.initializers
    assert len(positions.inputs) == 2 and inits[positions.inputs[0]].block_size == 16  # a small table: blocks
    assert len(tokens.inputs) == 4 and inits[tokens.inputs[0]].axis == 0  # per row, plus exception rows
    ids, rows = inits[tokens.inputs[2]], inits[tokens.inputs[3]]
    counts = np.bincount(np.concatenate([f["input_ids"].ravel() for f in calibration]), minlength=vocab)
    assert ids.size == min(INT4_TABLE_INT8_ROWS, np.count_nonzero(counts))
    assert counts[ids].min() >= np.sort(counts)[::-1][ids.size - 1]
    # looked up, an exception id gives its int8 row; any other id the int4 row
    feed = mb.transformer_feeds(rng, batch=1, vocab=vocab)
    other = next(i for i in range(vocab) if i not in set(ids.tolist()))
    feed["input_ids"][0, :3] = [ids[0], other, ids[-1]]
    looked = {}
    Model(model.graph).executor.run(feed, observe=lambda name, value: looked.setdefault(name, value))
    tok = looked[tokens.outputs[0]][0]
    np.testing.assert_array_equal(tok[0], rows.dequantize()[0])
    np.testing.assert_array_equal(tok[1], inits[tokens.inputs[0]].dequantize()[other])
    np.testing.assert_array_equal(tok[2], rows.dequantize()[-1])
    path = tmp_path / "encoder-int4.qcm"
    save(model, path)
    np.testing.assert_array_equal(load(path).run(feed)["hidden"], model.run(feed)["hidden"])


def test_sensitivity_report_covers_every_linear_layer(encoder):
    graph, calibration, evaluation = encoder
    report = sensitivity_report(graph, [evaluation], calibration=calibration)
    linears = {n.name for n in graph.nodes if n.op == "MatMul" and n.inputs[1] in graph.initializers}
    assert {entry.node for entry in report} == linears
    worst = [entry.cosine_worst for entry in report]
    assert worst == sorted(worst)
    assert all(0.9 < entry.cosine_worst <= 1.0 and entry.sqnr_db > 10 for entry in report)
