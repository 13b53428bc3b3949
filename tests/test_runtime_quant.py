"""Quantized operators of the runtime: exact against the NumPy reference, and end to end."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from qcore.errors import NonFiniteError
from qcore.graph.ir import Graph, Node, ValueInfo
from qcore.reference.onnx_ops import dequantize_linear, dynamic_quantize_linear, quantize_linear
from qcore.reference.quantize import quantize_tensor
from qcore.runtime import Model
from qcore.runtime import kernels

sys.path.insert(0, os.path.dirname(__file__))


def exact_qmatmul(q, x_zp, qw, x_scale, bias):
    """Reference: int64 product of centred integers, then the float32 output formula."""
    w = qw.data.astype(np.int64) - qw.zero_point.astype(np.int64).reshape(1, -1)
    acc = (q.astype(np.int64) - np.asarray(x_zp, np.int64)) @ w
    assert np.abs(acc).max() < 2**31
    y = acc.astype(np.float32) * (np.asarray(x_scale, np.float32) * qw.scale.astype(np.float32).reshape(-1))
    return y + bias if bias is not None else y


def one_node_model(op, x_shape, weight, bias, attrs):
    inits = {"w": weight}
    inputs = ["x", "w"]
    if bias is not None:
        inits["b"] = bias
        inputs.append("b")
    return Model(Graph([Node(op, inputs, ["y"], attrs, "n0")], [ValueInfo("x", "float32", list(x_shape))],
                       [ValueInfo("y", "float32", None)], inits))


@pytest.mark.parametrize("k", [7, 64, 700])  # 700: past the float32-exact bound, float64 path
@pytest.mark.parametrize("x_dtype, x_zp", [("uint8", 131), ("int8", 0)])
def test_static_qmatmul_exact(k, x_dtype, x_zp):
    rng = np.random.default_rng(k)
    n = 9
    w = rng.normal(size=(k, n)).astype(np.float32)
    qw = quantize_tensor(w, "int8", granularity="per_channel", axis=1)
    bias = rng.normal(size=n).astype(np.float32)
    x = rng.normal(0, 3, size=(5, k)).astype(np.float32)
    x[0] = 1e6  # saturates to the top of the range: all-extreme row
    x[1] = -1e6
    scale = np.float32(0.02)
    model = one_node_model("QMatMul", [None, k], qw, bias,
                           {"activation": "static", "x_dtype": x_dtype, "x_scale": float(scale), "x_zero_point": x_zp})
    q = quantize_linear(x, scale, np.array(x_zp, dtype=x_dtype))
    expected = exact_qmatmul(q, x_zp, qw, scale, bias)
    np.testing.assert_array_equal(model.run({"x": x})["y"], expected, strict=True)


@pytest.mark.parametrize("per_row", [False, True])
def test_dynamic_qmatmul_exact(per_row):
    rng = np.random.default_rng(11)
    k, n = 33, 6
    qw = quantize_tensor(rng.normal(size=(k, n)).astype(np.float32), "int8", granularity="per_channel", axis=1)
    x = rng.normal(size=(2, 4, k)).astype(np.float32) * np.array([1, 10, 0.1, 3], np.float32)[None, :, None]
    x[1, 2] = 0  # an all-zero row
    attrs = {"activation": "dynamic", "x_dtype": "uint8", "per_row": int(per_row)}
    y = one_node_model("QMatMul", [None, None, k], qw, None, attrs).run({"x": x})["y"]
    rows = x.reshape(-1, k)
    if per_row:
        parts = [dynamic_quantize_linear(r[None]) for r in rows]
        q = np.concatenate([p[0] for p in parts])
        s = np.array([p[1] for p in parts], np.float32)[:, None]
        zp = np.array([p[2] for p in parts], np.int64)[:, None]
    else:
        q, s, zp = dynamic_quantize_linear(rows)
    expected = exact_qmatmul(q, zp, qw, s, None).reshape(2, 4, n)
    np.testing.assert_array_equal(y, expected, strict=True)


def test_dynamic_rejects_nan():
    qw = quantize_tensor(np.ones((3, 2), np.float32), "int8")
    model = one_node_model("QMatMul", [None, 3], qw, None, {"activation": "dynamic"})
    with pytest.raises(NonFiniteError, match="n0"):
        model.run({"x": np.array([[1, np.nan, 2]], np.float32)})


@pytest.mark.parametrize("group", [1, 2, 6])
def test_static_qconv_matches_reference_convolution(group):
    rng = np.random.default_rng(group)
    c, oc = 6, 12
    w = rng.normal(size=(oc, c // group, 3, 3)).astype(np.float32)
    qw = quantize_tensor(w, "int8", granularity="per_channel", axis=0)
    bias = rng.normal(size=oc).astype(np.float32)
    x = rng.uniform(-1, 2, size=(2, c, 7, 6)).astype(np.float32)
    scale, zp = np.float32(3 / 255), 85
    attrs = {"activation": "static", "x_dtype": "uint8", "x_scale": float(scale), "x_zero_point": zp,
             "group": group, "pads": [1, 0, 2, 1], "strides": [2, 1]}
    y = one_node_model("QConv", [None, c, None, None], qw, bias, attrs).run({"x": x})["y"]
    # reference: exact integer convolution of the centred operands, int64 accumulation
    q = quantize_linear(x, scale, np.uint8(zp)).astype(np.int64) - zp
    q = np.pad(q, [(0, 0), (0, 0), (1, 2), (0, 1)])
    wc = qw.data.astype(np.int64)
    oh, ow = (q.shape[2] - 3) // 2 + 1, q.shape[3] - 3 + 1
    acc = np.zeros((2, oc, oh, ow), np.int64)
    cg, og = c // group, oc // group
    for o in range(oc):
        g = o // og
        for i in range(oh):
            for j in range(ow):
                patch = q[:, g * cg:(g + 1) * cg, 2 * i:2 * i + 3, j:j + 3]
                acc[:, o, i, j] = (patch * wc[o]).sum(axis=(1, 2, 3))
    expected = acc.astype(np.float32) * (scale * qw.scale).reshape(1, -1, 1, 1) + bias.reshape(1, -1, 1, 1)
    np.testing.assert_array_equal(y, expected.astype(np.float32), strict=True)


@pytest.mark.parametrize("dtype, block", [("int8", 0), ("int4", 16), ("int4", 5)])
def test_weight_only_matmul_uses_dequantized_weights(dtype, block):
    rng = np.random.default_rng(3)
    w = rng.normal(size=(37, 8)).astype(np.float32)
    qw = (quantize_tensor(w, dtype, granularity="per_block", axis=0, block_size=block) if block
          else quantize_tensor(w, dtype, granularity="per_channel", axis=1))
    x = rng.normal(size=(4, 37)).astype(np.float32)
    y = one_node_model("WMatMul", [None, 37], qw, None, {}).run({"x": x})["y"]
    np.testing.assert_array_equal(kernels.dequantize_weight(qw), qw.dequantize())
    np.testing.assert_allclose(y, x @ qw.dequantize(), rtol=1e-6, atol=1e-6)


def cosine(a, b):
    a, b = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _has_observers() -> bool:
    try:
        import qcore.reference.observers  # noqa: F401
    except ImportError:
        return False
    return True


def test_transformer_end_to_end_cosine():
    mb = pytest.importorskip("model_builders")
    import qcore.graph.quantize as q

    rng = np.random.default_rng(21)
    proto = mb.transformer(rng)
    float_model = Model.from_onnx(proto)
    feeds = mb.transformer_feeds(rng, batch=4)
    ref = float_model.run(feeds)["hidden"]
    calib = mb.transformer_feeds(np.random.default_rng(22), batch=16)
    variants = {
        "dynamic": q.quantize_dynamic(float_model),
        "dynamic_per_row": q.quantize_dynamic(float_model, per_row=True),
        "weight_only_int8": q.quantize_weight_only(float_model),
        "weight_only_int4": q.quantize_weight_only(float_model, bits=4, block_size=16),
    }
    if _has_observers():
        variants["static"] = q.quantize_static(float_model, calib)
    for name, model in variants.items():
        ops = model.graph.op_counts()
        assert ops.get("MatMul", 0) == 4  # attention score/context matmuls stay float
        assert ops["QGather"] == 1 and "Gather" in ops  # the token table; the shape Gathers stay
        c = cosine(model.run(feeds)["hidden"], ref)
        # int8 paths: the 0.99; int4 on random (untrained) weights loses more
        floor = 0.97 if name.endswith("int4") else 0.99
        assert c >= floor, f"{name}: cosine {c:.4f}"


@pytest.mark.parametrize("groups, k, per_row", [(1, 5, False), (1, 700, True), (3, 40, False), (1, 1000, False)])
def test_c_and_numpy_engines_identical(groups, k, per_row):
    rng = np.random.default_rng(k)
    n, m = 11, 9
    data = rng.integers(-128, 128, size=(groups, k, n), dtype=np.int8)
    data[0, :, 0] = -128  # all-extreme column
    zp = np.zeros(groups * n, np.int8)
    scale = rng.uniform(0.001, 0.01, size=(groups, 1, n)).astype(np.float32)
    bias = rng.normal(size=groups * n).astype(np.float32)
    engines = {e: kernels.PackedLinear(data, zp, scale, bias, engine=e) for e in ("c", "numpy")}
    q = rng.integers(0, 256, size=(groups, m, k), dtype=np.uint8) if groups > 1 else \
        rng.integers(0, 256, size=(m, k), dtype=np.uint8)
    q[..., 0, :] = 255  # all-extreme row: 255 x -128 over the whole of K
    if per_row:
        x_scale = rng.uniform(0.01, 0.1, size=(m, 1)).astype(np.float32)
        x_zp = rng.integers(0, 256, size=(m, 1)).astype(np.float32)
    else:
        x_scale, x_zp = np.float32(0.05), np.float32(3)
    c, ref = engines["c"].run(q, x_scale, x_zp), engines["numpy"].run(q, x_scale, x_zp)
    np.testing.assert_array_equal(c, ref, strict=True)
    exact = (q.astype(np.int64) - x_zp.astype(np.int64)) @ data.astype(np.int64)[0 if groups == 1 else slice(None)]
    mult = x_scale * (scale[0] if groups == 1 else scale)
    expected = exact.astype(np.float32) * mult + (bias.reshape(groups, 1, n)[0] if groups == 1 else bias.reshape(groups, 1, n))
    np.testing.assert_array_equal(ref, expected.astype(np.float32), strict=True)


@pytest.mark.parametrize("block", [0, 16])
def test_int4_weight_only_uses_c_kernel_and_matches_reference_sum(block):
    rng = np.random.default_rng(block)
    w = rng.normal(size=(48, 7)).astype(np.float32)
    qw = (quantize_tensor(w, "int4", granularity="per_block", axis=0, block_size=block) if block
          else quantize_tensor(w, "int4", granularity="per_channel", axis=1))
    bias = rng.normal(size=7).astype(np.float32)
    x = rng.normal(size=(3, 48)).astype(np.float32)
    y = one_node_model("WMatMul", [None, 48], qw, bias, {}).run({"x": x})["y"]
    # the C kernel's documented order: float32 sum over increasing k, multiply then add, bias last
    wd = qw.dequantize()
    acc = np.zeros((3, 7), np.float32)
    for kk in range(48):
        acc = acc + x[:, kk:kk + 1] * wd[kk:kk + 1, :]
    np.testing.assert_array_equal(y, acc + bias, strict=True)


@pytest.mark.parametrize("dtype, block", [("int8", 0), ("int4", 0), ("int4", 8)])
def test_qgather_returns_dequantized_rows(dtype, block):
    rng = np.random.default_rng(5)
    table = rng.normal(size=(40, 30)).astype(np.float32)
    qt = (quantize_tensor(table, dtype, granularity="per_block", axis=1, block_size=block) if block
          else quantize_tensor(table, dtype, granularity="per_channel", axis=0))
    graph = Graph([Node("QGather", ["t", "idx"], ["y"], {"axis": 0}, "g")], [ValueInfo("idx", "int64", [None, None])],
                  [ValueInfo("y", "float32", None)], {"t": qt})
    idx = np.array([[0, 39, -1], [5, 5, 7]], np.int64)
    y = Model(graph).run({"idx": idx})["y"]
    np.testing.assert_array_equal(y, qt.dequantize()[np.where(idx < 0, idx + 40, idx)], strict=True)
    with pytest.raises(ValueError, match="index out of range"):
        Model(graph).run({"idx": np.array([[40]], np.int64)})


def test_qgather_exception_rows_replace_the_rows_they_list(tmp_path):
    from qcore.api import load, save
    from qcore.errors import ModelError

    rng = np.random.default_rng(7)
    table = rng.normal(size=(40, 30)).astype(np.float32)
    qt = quantize_tensor(table, "int4", granularity="per_channel", axis=0, symmetric=False)
    ids = np.array([0, 5, 39], np.int64)
    rows = quantize_tensor(table[ids], "int8", granularity="per_channel", axis=0)

    def graph(inits: dict, inputs=("t", "idx", "ids", "rows")) -> Graph:
        return Graph([Node("QGather", list(inputs), ["y"], {"axis": 0}, "g")],
                     [ValueInfo("idx", "int64", None)], [ValueInfo("y", "float32", None)], inits)

    model = Model(graph({"t": qt, "ids": ids, "rows": rows}))
    idx = np.array([[0, 39, -1], [5, 6, 7]], np.int64)
    expected = qt.dequantize()[np.where(idx < 0, idx + 40, idx)]
    for position, row in (((0, 0), 0), ((0, 1), 2), ((0, 2), 2), ((1, 0), 1)):
        expected[position] = rows.dequantize()[row]
    np.testing.assert_array_equal(model.run({"idx": idx})["y"], expected, strict=True)
    assert model.run({"idx": np.zeros((0,), np.int64)})["y"].shape == (0, 30)
    path = tmp_path / "gather.qcm"
    save(model, path)
    np.testing.assert_array_equal(load(path).run({"idx": idx})["y"], expected, strict=True)
    bad = [
        ({"t": qt, "ids": ids}, ("t", "idx", "ids"), "two initializers"),
        ({"t": qt, "ids": ids, "rows": table[ids]}, None, "two initializers"),
        ({"t": qt, "ids": ids.astype(np.float32), "rows": rows}, None, "1-D integers"),
        ({"t": qt, "ids": ids[::-1].copy(), "rows": rows}, None, "strictly increasing"),
        ({"t": qt, "ids": np.array([0, 5, 40]), "rows": rows}, None, "strictly increasing"),
        ({"t": qt, "ids": ids[:2].copy(), "rows": rows}, None, "do not match"),
        ({"t": qt, "ids": ids, "rows": quantize_tensor(table[ids], "int8", granularity="per_channel", axis=1)},
         None, "got axis 1, block size 0"),
        ({"t": qt, "ids": ids, "rows": quantize_tensor(table[ids], "int8", granularity="per_block", axis=0,
                                                       block_size=2)}, None, "got axis 0, block size 2"),
    ]
    for inits, inputs, message in bad:
        with pytest.raises(ModelError, match=message):  # at load, or at the first run of a lazily built step
            Model(graph(inits, inputs or ("t", "idx", "ids", "rows"))).run({"idx": idx})


def test_empty_batch_runs_in_every_mode():
    mb = pytest.importorskip("model_builders")
    import qcore.graph.quantize as q

    rng = np.random.default_rng(9)
    model = Model.from_onnx(mb.mlp(rng))
    calib = {"input": rng.normal(size=(10, 64)).astype(np.float32)}
    for variant in (model, q.quantize_dynamic(model), q.quantize_dynamic(model, per_row=True),
                    q.quantize_static(model, calib), q.quantize_weight_only(model, bits=4, block_size=16)):
        assert variant.run({"input": np.zeros((0, 64), np.float32)})["probs"].shape == (0, 10)


def _panel_case(rng, dtype, k, n, block):
    w = rng.normal(size=(k, n)).astype(np.float32)
    if block:
        return quantize_tensor(w, dtype, granularity="per_block", axis=0, block_size=block)
    return quantize_tensor(w, dtype, granularity="per_channel", axis=1)


@pytest.mark.parametrize("dtype, k, n, block, panel_floats", [
    ("int4", 200, 48, 32, 48 * 70),    # panels of 64 rows (2 blocks); K = 3 panels + 8 rows, last block partial
    ("int4", 200, 48, 64, 48 * 150),   # panels of 128 rows
    ("uint4", 200, 48, 32, 48 * 70),
    ("int4", 200, 48, 0, 48 * 70),     # per column: one block of K rows, split into 70-row panels
    ("int4", 37, 7, 5, 7 * 7),         # odd N and odd panel start: panels begin on a high nibble
    ("int4", 384, 96, 32, None),       # the default panel size (one panel)
])
@pytest.mark.parametrize("m", [15, 16, 40])
def test_int4_linear_panels_match_float64_matmul(dtype, k, n, block, panel_floats, m):
    rng = np.random.default_rng(k + n + block + m)
    qw = _panel_case(rng, dtype, k, n, block)
    bias = rng.normal(size=n).astype(np.float32)
    x = rng.normal(size=(m, k)).astype(np.float32)
    linear = kernels.Int4Linear(qw, bias, panel_floats=panel_floats)
    y = linear.run(x)
    assert y.dtype == np.float32 and y.shape == (m, n)
    wd = kernels.dequantize_weight(qw).astype(np.float64)
    exact = x.astype(np.float64) @ wd + bias
    # float32 summation of k products, any order: |error| <= k * 2**-23 * sum |terms|
    bound = (k + 2) * 2.0 ** -23 * (np.abs(x).astype(np.float64) @ np.abs(wd) + np.abs(bias))
    assert (np.abs(y - exact) <= bound).all()
    if m < kernels.Int4Linear.PANEL_MIN_ROWS:  # below the threshold: the C kernel's exact order
        np.testing.assert_array_equal(y, linear._linear(x, linear._weights, linear.bias), strict=True)


def test_int4_linear_panels_keep_batch_shape_and_match_wmatmul_fallback():
    rng = np.random.default_rng(11)
    qw = _panel_case(rng, "int4", 96, 40, 32)
    x = rng.normal(size=(2, 20, 96)).astype(np.float32)
    y = one_node_model("WMatMul", [None, 20, 96], qw, None, {}).run({"x": x})["y"]
    assert y.shape == (2, 20, 40)
    np.testing.assert_allclose(y, x @ kernels.dequantize_weight(qw), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int4"])
def test_qgather_affine_rows_on_the_c_core_match_the_reference(dtype):
    """Per-row tables with zero points: gathered rows dequantized by the C kernel give the
    reference's bits, for any index shape including an empty one."""
    rng = np.random.default_rng(6)
    table = (rng.normal(size=(50, 19)) + 0.7).astype(np.float32)
    qt = quantize_tensor(table, dtype, granularity="per_channel", axis=0, symmetric=False)
    assert np.any(np.asarray(qt.zero_point) != 0)
    graph = Graph([Node("QGather", ["t", "idx"], ["y"], {"axis": 0}, "g")], [ValueInfo("idx", "int64", None)],
                  [ValueInfo("y", "float32", None)], {"t": qt})
    model = Model(graph)
    for idx in (np.array([3, 49, 0, 3], np.int64), np.zeros((2, 0), np.int64), np.array(7, np.int64)):
        y = model.run({"idx": idx})["y"]
        np.testing.assert_array_equal(y, qt.dequantize()[idx], strict=True)
