"""The fast plan's transformer rewrites (qcore.runtime.fusion): GELU, smoothing fold, layer
norm with its residual Add, attention scores, pooled output buffers.

Bit-identical with the node-by-node plan where the arithmetic is the same (smoothing fold,
layer norm with its residual, the context product written in its transposed layout); within float tolerance where the fused GELU kernel replaces
the exported five-op chain and the attention kernel (qcore_attention.h) the MatMul, scale,
mask and softmax.
"""

from __future__ import annotations

import os
import sys
import threading

import numpy as np
import pytest

pytest.importorskip("onnx")
sys.path.insert(0, os.path.dirname(__file__))
import encoder_builder as eb  # noqa: E402

from qcore.errors import NonFiniteError  # noqa: E402
from qcore.graph.transformer import quantize_transformer  # noqa: E402
from qcore.runtime import Model  # noqa: E402
from qcore.runtime.executor import Executor  # noqa: E402
from qcore.runtime.fusion import BufferPool  # noqa: E402


def _ops(executor: Executor) -> list[str]:
    return [node.op for node, *_ in executor.fast_steps]


def _quantized(seed: int = 0, **kwargs) -> tuple[Model, np.random.Generator]:
    rng = np.random.default_rng(seed)
    model = Model.from_onnx(eb.encoder(rng, **kwargs))
    calibration = [eb.feeds(rng, 4, 12) for _ in range(3)]
    return quantize_transformer(model, calibration, weight_bits=8, alpha=0.5, rounding="nearest"), rng


def test_float_encoder_fused_within_float_tolerance_of_node_by_node_and_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(1)
    onnx_model = eb.encoder(rng)
    model = Model.from_onnx(onnx_model)
    fast = Executor(model.graph)
    ops = _ops(fast)
    assert ops.count("Gelu(fused)") == 2 and ops.count("Attention") == 2
    assert ops.count("Add+LayerNorm") == 4 and "Erf" not in ops and "Softmax" not in ops
    assert "Reshape" not in ops and "Transpose" not in ops  # the head views run inside "Attention"
    for batch, seq in ((1, 1), (3, 10), (2, 33)):
        feeds = eb.feeds(rng, batch, seq)
        got = fast.run(feeds)["hidden"]
        plain = Executor(model.graph, fuse=False).run(feeds)["hidden"]
        np.testing.assert_allclose(got, plain, rtol=1e-5, atol=1e-5)
        session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(got, session.run(None, feeds)[0], rtol=1e-5, atol=2e-5)


def test_gelu_rewrite_alone_is_within_float_tolerance():
    from qcore import _activation
    from qcore.runtime.float_ops import FLOAT_OPS

    x = np.random.default_rng(2).normal(0, 4, (64, 257)).astype(np.float32)
    chain = FLOAT_OPS["Div"]([x, np.float32(np.sqrt(2))], {})[0]
    chain = FLOAT_OPS["Add"]([FLOAT_OPS["Erf"]([chain], {})[0], np.float32(1)], {})[0]
    chain = FLOAT_OPS["Mul"]([FLOAT_OPS["Mul"]([x, chain], {})[0], np.float32(0.5)], {})[0]
    # both within about 2.5e-7 * max(1, |x|) of the exact GELU (docs/ARITHMETIC.md, "GELU"):
    # every float32 in [2, 8) differs by 1.43e-6 at most (at x = 4.745, 3 ulp)
    assert np.all(np.abs(_activation.gelu(x) - chain) <= 5e-7 * np.maximum(1.0, np.abs(x)))


@pytest.mark.parametrize("order", ["x_first", "half_first"])
def test_gelu_matched_in_both_export_orders_and_constants_checked(order):
    rng = np.random.default_rng(3)
    fused = Executor(Model.from_onnx(eb.encoder(rng, gelu_order=order)).graph)
    assert _ops(fused).count("Gelu(fused)") == 2
    wrong = Executor(Model.from_onnx(eb.encoder(rng, gelu_order=order, gelu_half=0.25)).graph)
    assert "Gelu(fused)" not in _ops(wrong) and _ops(wrong).count("Erf") == 2


def test_quantized_encoder_rewrites_are_bit_identical_except_gelu_and_attention():
    model, rng = _quantized(4)
    fast = Executor(model.graph)
    ops = _ops(fast)
    # per layer: q, k, v; the attention output and the FFN output with their residual
    # layer norms, the FFN input with its GELU (qc_linear_dynamic_post_f32)
    assert ops.count("QMatMul+smoothing") == 6 and "QMatMul" not in ops
    assert ops.count("QMatMul+smoothing+Add+LayerNorm") == 4 and ops.count("QMatMul+smoothing+Gelu") == 2
    assert "Gelu(fused)" not in ops and ops.count("Add+LayerNorm") == 0
    assert ops.count("Mul") == 1  # only the mask's; every smoothing Mul is folded
    assert ops.count("Attention") == 2
    # without the fused GELU and attention kernels (whose float arithmetic differs from the
    # exported ops'), the whole fast plan must give the node-by-node bits
    no_gelu = quantize_transformer(
        Model.from_onnx(eb.encoder(np.random.default_rng(4), gelu_half=0.25, scale_op="Div")),
        [eb.feeds(rng, 4, 12) for _ in range(3)], weight_bits=8, alpha=0.5, rounding="nearest")
    fast_no_gelu = Executor(no_gelu.graph)
    no_gelu_ops = _ops(fast_no_gelu)
    assert "Gelu(fused)" not in no_gelu_ops and "Attention scores" not in no_gelu_ops
    assert "Attention" not in no_gelu_ops
    assert no_gelu_ops.count("MatMul+Transpose") == 2  # the context written transposed: same bits
    assert "QMatMul+smoothing" in no_gelu_ops and no_gelu_ops.count("QMatMul+smoothing+Add+LayerNorm") == 4
    for batch, seq in ((1, 1), (3, 10), (2, 40)):
        feeds = eb.feeds(rng, batch, seq)
        np.testing.assert_array_equal(fast_no_gelu.run(feeds)["hidden"],
                                      Executor(no_gelu.graph, fuse=False).run(feeds)["hidden"], strict=True)
        got = fast.run(feeds)["hidden"]
        plain = Executor(model.graph, fuse=False).run(feeds)["hidden"]
        # GELU's and the scores' last bits can move a per-token quantization step: float
        # tolerance, not bits
        np.testing.assert_allclose(got, plain, rtol=0, atol=2e-2)
        assert np.mean(np.abs(got - plain)) < 1e-3


def test_pooled_outputs_are_never_overwritten_while_held():
    model, rng = _quantized(5)
    fast = Executor(model.graph)
    first_feeds, second_feeds = eb.feeds(rng, 2, 30), eb.feeds(rng, 2, 30)
    first = fast.run(first_feeds)["hidden"]
    kept = first.copy()
    second = fast.run(second_feeds)["hidden"]
    np.testing.assert_array_equal(first, kept, strict=True)  # still the first run's values
    assert not np.shares_memory(first, second)
    again = fast.run(first_feeds)["hidden"]
    np.testing.assert_array_equal(again, kept, strict=True)


def test_concurrent_runs_give_each_caller_its_own_results():
    model, rng = _quantized(6)
    fast = Executor(model.graph)
    inputs = [eb.feeds(rng, 2, 24) for _ in range(4)]
    expected = [fast.run(f)["hidden"].copy() for f in inputs]
    failures = []

    def worker(i: int) -> None:
        for _ in range(15):
            if not np.array_equal(fast.run(inputs[i])["hidden"], expected[i]):
                failures.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_pool_hands_out_only_unreferenced_buffers():
    pool = BufferPool()
    a = pool.get((200, 100))
    b = pool.get((200, 100))
    assert a is not b and a.flags.c_contiguous and a.dtype == np.float32
    view = a.reshape(-1)[10:]
    del a
    c = pool.get((200, 100))
    assert not np.shares_memory(c, view)  # a view keeps its buffer in use
    del view, c
    d = pool.get((100, 200))  # the same size, another shape: a kept buffer comes back
    assert d.shape == (100, 200) and d.flags.c_contiguous
    e = pool.get((100, 200))
    assert not np.shares_memory(d, e) and not np.shares_memory(d, b) and not np.shares_memory(e, b)
    small = pool.get((3, 4))
    assert small.shape == (3, 4) and pool.get((3, 4)) is not small  # small arrays are not pooled


def test_fused_steps_report_bad_input_like_the_plain_plan():
    model, rng = _quantized(7)
    feeds = eb.feeds(rng, 2, 9)
    feeds["x"][1, 4, 2] = np.nan
    with pytest.raises(NonFiniteError):
        model.run(feeds)
    with pytest.raises(NonFiniteError):
        Executor(model.graph, fuse=False).run(feeds)


def test_layer_norm_last_axis_given_as_positive_number():
    rng = np.random.default_rng(8)
    model = Model.from_onnx(eb.encoder(rng, layers=1, ln_axis=2))  # axis 2 of rank 3: the last, fused
    assert "Add+LayerNorm" in _ops(Executor(model.graph))
    feeds = eb.feeds(rng, 2, 7)
    np.testing.assert_allclose(model.run(feeds)["hidden"], Executor(model.graph, fuse=False).run(feeds)["hidden"],
                               rtol=1e-5, atol=1e-5)


def test_intermediate_values_run_node_by_node():
    model, rng = _quantized(9)
    feeds = eb.feeds(rng, 1, 6)
    name = next(n.outputs[0] for n in model.graph.nodes if n.op == "Erf")
    values = Executor(model.graph).run(feeds, outputs=[name, "hidden"])
    assert values[name].shape == (1, 6, eb.FFN)
    np.testing.assert_array_equal(values["hidden"], Executor(model.graph, fuse=False).run(feeds)["hidden"],
                                  strict=True)


def test_malformed_attribute_leaves_the_node_to_the_plain_step():
    from qcore.errors import ModelError

    rng = np.random.default_rng(10)
    model = Model.from_onnx(eb.encoder(rng, layers=1))
    node = next(n for n in model.graph.nodes if n.op == "LayerNormalization")
    node.attrs["epsilon"] = "tiny"
    fast = Executor(model.graph)  # planning does not fail; the node is not rewritten
    assert _ops(fast).count("LayerNorm") + _ops(fast).count("Add+LayerNorm") == 2
    with pytest.raises(ModelError, match=node.name):
        fast.run(eb.feeds(rng, 1, 4))


def test_pool_bounded_for_changing_sizes():
    pool = BufferPool()
    pool.MAX_BYTES = 1 << 20
    held = [pool.get((64, 1024)) for _ in range(6)]  # 256 KiB each: four are kept
    assert pool.kept_bytes == 1 << 20 and all(h.shape == (64, 1024) for h in held)
    del held
    for rows in range(40):  # more sizes than SIZES: the pool starts again
        pool.get((100 + rows, 200))
    assert pool.kept_bytes <= pool.MAX_BYTES


def test_smoothing_mul_with_the_constant_first():
    rng = np.random.default_rng(11)
    model = quantize_transformer(Model.from_onnx(eb.encoder(rng, gelu_half=0.25, scale_op="Div")),
                                 [eb.feeds(rng, 4, 12) for _ in range(3)], weight_bits=8, alpha=0.5,
                                 rounding="nearest")
    for node in model.graph.nodes:
        if node.op == "Mul" and node.inputs[1] in model.graph.initializers:
            node.inputs.reverse()  # Mul(s, x): same values
    fast = Executor(model.graph)
    ops = _ops(fast)
    assert ops.count("QMatMul+smoothing") == 8 and ops.count("QMatMul+smoothing+Add+LayerNorm") == 4
    feeds = eb.feeds(rng, 2, 9)
    np.testing.assert_array_equal(fast.run(feeds)["hidden"], Executor(model.graph, fuse=False).run(feeds)["hidden"],
                                  strict=True)


def test_padded_keys_skipped_in_the_context_product():
    """One padded sequence (the last 7 of 20 keys masked): the fused attention's context
    product stops at the 13 real keys and stays within float tolerance of node by node."""
    model, rng = _quantized(12)
    fast = Executor(model.graph)
    assert _ops(fast).count("Attention") == 2
    feeds = eb.feeds(rng, 1, 20)
    feeds["mask"][0, 13:] = 0
    got = fast.run(feeds)["hidden"]
    plain = Executor(model.graph, fuse=False).run(feeds)["hidden"]
    np.testing.assert_allclose(got, plain, rtol=0, atol=2e-2)
    assert np.mean(np.abs(got - plain)) < 1e-3
    float_model = Model.from_onnx(eb.encoder(np.random.default_rng(12)))
    np.testing.assert_allclose(Executor(float_model.graph).run(feeds)["hidden"],
                               Executor(float_model.graph, fuse=False).run(feeds)["hidden"], rtol=1e-5, atol=1e-5)


def test_shared_smoothing_runs_query_key_value_in_one_call_with_the_same_bits():
    """A searched smoothing gives q, k and v one Mul; the fast plan runs the three layers in
    one C call on their weights side by side, and (GELU and attention left unfused) gives
    the node-by-node bits; the three outputs are column views of one pooled buffer."""
    rng = np.random.default_rng(13)
    model = quantize_transformer(Model.from_onnx(eb.encoder(rng, gelu_half=0.25, scale_op="Div")),
                                 [eb.feeds(rng, 4, 12) for _ in range(3)], weight_bits=8, rounding="nearest")
    smoothing = [n for n in model.graph.nodes if n.op == "Mul" and n.name.endswith(".smoothing")]
    readers = [sum(name in n.inputs for n in model.graph.nodes) for name in (m.outputs[0] for m in smoothing)]
    assert readers.count(3) == 2  # q, k and v of both layers share their Mul
    fast = Executor(model.graph)
    ops = _ops(fast)
    assert ops.count("QMatMul+smoothing x3") == 2
    plain = Executor(model.graph, fuse=False)
    for batch, seq in ((1, 1), (2, 9), (3, 33)):
        feeds = eb.feeds(rng, batch, seq)
        np.testing.assert_array_equal(fast.run(feeds)["hidden"], plain.run(feeds)["hidden"], strict=True)
    # the outputs are column slices of one buffer, and stay intact while held
    first_feeds = eb.feeds(rng, 2, 30)
    first = fast.run(first_feeds)["hidden"]
    kept = first.copy()
    fast.run(eb.feeds(rng, 2, 30))
    np.testing.assert_array_equal(first, kept, strict=True)
    feeds = eb.feeds(rng, 2, 9)
    feeds["x"][1, 4, 2] = np.nan
    for executor in (fast, plain):
        with pytest.raises(NonFiniteError, match="node 'layer0/q/MatMul"):
            executor.run(feeds)


def test_layer_norm_of_two_linear_layers_fuses_one_of_them():
    """Add(linear_a(x), linear_b(x)) -> LayerNorm: the first layer takes the norm with the
    second's output as its residual; the second stays a plain layer; same bits."""
    from onnx import TensorProto, helper, numpy_helper

    import qcore.graph.quantize as q

    rng = np.random.default_rng(14)
    inits = [numpy_helper.from_array(rng.normal(size=(8, 8)).astype(np.float32), name) for name in ("wa", "wb")]
    inits += [numpy_helper.from_array(rng.normal(size=8).astype(np.float32), name) for name in ("g", "b")]
    nodes = [helper.make_node("MatMul", ["x", "wa"], ["a"], name="la"),
             helper.make_node("MatMul", ["x", "wb"], ["bb"], name="lb"),
             helper.make_node("Add", ["a", "bb"], ["s"], name="add"),
             helper.make_node("LayerNormalization", ["s", "g", "b"], ["y"], name="ln", axis=-1, epsilon=1e-5)]
    graph = helper.make_graph(nodes, "two", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, 8])], inits)
    model = q.quantize_dynamic(Model.from_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])),
                               per_channel=True, per_row=True)
    fast = Executor(model.graph)
    ops = _ops(fast)
    assert ops.count("QMatMul+Add+LayerNorm") == 1 and ops.count("QMatMul") == 1
    x = rng.normal(size=(2, 5, 8)).astype(np.float32)
    np.testing.assert_array_equal(fast.run({"x": x})["y"], Executor(model.graph, fuse=False).run({"x": x})["y"],
                                  strict=True)


def test_attention_takes_in_the_head_views_with_the_same_bits():
    """The Reshape / Transpose nodes that split q, k and v into heads (and the Reshape that
    joins the context) run inside the attention step: one step per attention. A view that
    something else also reads (here: a graph output) stays a step of its own, and the two
    plans give the same bits."""
    from qcore.graph.ir import ValueInfo

    model, rng = _quantized(14)
    absorbed = Executor(model.graph)
    ops = _ops(absorbed)
    assert ops.count("Attention") == 2 and "Reshape" not in ops and "Transpose" not in ops
    graph = model.graph.copy()
    q_view = next(n for n in graph.nodes if n.op == "Transpose").outputs[0]
    graph.outputs.append(ValueInfo(q_view, "float32", None))
    kept = Executor(graph)
    kept_ops = _ops(kept)
    assert kept_ops.count("Attention") == 2 and kept_ops.count("Transpose") == 1 and kept_ops.count("Reshape") == 1
    for batch, seq in ((1, 1), (2, 17)):
        feeds = eb.feeds(rng, batch, seq)
        np.testing.assert_array_equal(absorbed.run(feeds)["hidden"], kept.run(feeds)["hidden"], strict=True)


def test_attention_head_views_report_a_bad_reshape_like_the_node():
    """A head-splitting Reshape whose target does not fit: the fused step fails with the
    node-by-node plan's ShapeError (the fast plan adds no error of its own)."""
    from qcore.errors import ShapeError

    model, rng = _quantized(15)
    graph = model.graph.copy()
    reshape = next(n for n in graph.nodes if n.op == "Reshape" and n.inputs[1] in graph.initializers)
    target = graph.initializers[reshape.inputs[1]].copy()
    target[-1] += 1  # heads x (depth + 1) != hidden
    graph.initializers[reshape.inputs[1]] = target
    feeds = eb.feeds(rng, 1, 5)
    for executor in (Executor(graph), Executor(graph, fuse=False)):
        with pytest.raises(ShapeError, match="cannot reshape"):
            executor.run(feeds)


def test_reshape_reading_the_context_as_its_shape_is_not_taken_in():
    """A Reshape whose *shape* input is the attention's context (odd, but valid for the
    runtime) is not the Reshape that joins the heads: it stays a step, and the fast plan
    gives what the node-by-node plan gives."""
    from onnx import TensorProto, helper

    def value(name, shape):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    nodes = [
        helper.make_node("MatMul", ["q", "k"], ["s"]),
        helper.make_node("Softmax", ["s"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["c"]),
        helper.make_node("Transpose", ["c"], ["ct"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["z", "ct"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "g", [value("q", [1, 1, 1, 1]), value("k", [1, 1, 1, 1]),
                                           value("v", [1, 1, 1, 1]), value("z", [1])], [value("y", None)])
    model = Model.from_onnx(helper.make_model(graph, opset_imports=[helper.make_operatorsetid("", 17)]))
    fast = Executor(model.graph)
    assert "Attention" in _ops(fast) and "Reshape" in _ops(fast)
    feeds = {"q": np.ones((1, 1, 1, 1), np.float32), "k": np.ones((1, 1, 1, 1), np.float32),
             "v": np.ones((1, 1, 1, 1), np.float32), "z": np.array([3.0], np.float32)}
    got = fast.run(feeds)["y"]
    np.testing.assert_array_equal(got, Executor(model.graph, fuse=False).run(feeds)["y"], strict=True)
    assert got.shape == (1,)


def test_reshape_rules_shared_by_the_node_and_the_attention_step():
    from qcore.errors import ShapeError
    from qcore.runtime.float_ops import reshape

    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    assert reshape(x, np.array([0, -1], np.int64)).shape == (2, 12)
    assert np.shares_memory(reshape(x, np.array([0, 3, 2, 2], np.int64)), x)
    empty = np.zeros((0, 3), np.float32)
    assert reshape(empty, np.array([3, 0], np.int64), allowzero=1).shape == (3, 0)
    with pytest.raises(ShapeError, match="past the input's 2 axes"):
        reshape(empty, np.array([0, 3, 0], np.int64))
    with pytest.raises(ShapeError, match="cannot reshape"):
        reshape(x, np.array([5, -1], np.int64))
