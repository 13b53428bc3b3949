"""The runtime's fast plan (qcore.runtime.fusion): int8 chains give the node-by-node bits."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import qcore.graph.quantize as q  # noqa: E402
from qcore.runtime import Model, kernels  # noqa: E402
from qcore.runtime.executor import Executor  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))


def _init(name, array):
    return numpy_helper.from_array(array.astype(np.float32), name)


def chain_cnn(rng, pool_attrs, flatten=True):
    """Conv-Relu-Conv-Relu-MaxPool-grouped Conv-Relu-Flatten-Gemm-Relu-Gemm (the digits CNN's shape)."""
    def conv_w(oc, cin, k):
        return rng.normal(0, 1, (oc, cin, k, k)) / np.sqrt(cin * k * k)
    inits = [_init("w1", conv_w(8, 1, 3)), _init("b1", rng.normal(0, 0.1, 8)),
             _init("w2", conv_w(12, 8, 3)), _init("b2", rng.normal(0, 0.1, 12)),
             _init("w3", conv_w(12, 3, 3)), _init("b3", rng.normal(0, 0.1, 12))]
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 0, 1, 2], strides=[1, 2], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("MaxPool", ["r2"], ["p2"], name="pool", **pool_attrs),
        helper.make_node("Conv", ["p2", "w3", "b3"], ["c3"], group=4, pads=[1, 1, 1, 1], name="conv3"),
        helper.make_node("Relu", ["c3"], ["r3"], name="relu3"),
    ]
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 9, 8])
    graph = helper.make_graph(nodes, "chain", [x], [], inits)
    # shapes for the Gemm after Flatten
    inferred = onnx.shape_inference.infer_shapes(
        helper.make_model(helper.make_graph(nodes, "g", [x], [helper.make_tensor_value_info("r3", TensorProto.FLOAT,
                                                                                           None)], inits),
                          opset_imports=[helper.make_opsetid("", 17)]))
    dims = [d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim][1:]
    if flatten:
        features = int(np.prod(dims))
        graph.initializer.extend([_init("fw", rng.normal(0, 0.3, (features, 16))), _init("fb", rng.normal(0, 0.1, 16)),
                                  _init("gw", rng.normal(0, 0.3, (16, 10))), _init("gb", np.zeros(10))])
        graph.node.extend([
            helper.make_node("Flatten", ["r3"], ["flat"], axis=1, name="flatten"),
            helper.make_node("Gemm", ["flat", "fw", "fb"], ["f1"], name="fc1"),
            helper.make_node("Relu", ["f1"], ["rf"], name="relu_fc"),
            helper.make_node("Gemm", ["rf", "gw", "gb"], ["logits"], name="fc2"),
        ])
        graph.output.extend([helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])])
    else:
        graph.output.extend([helper.make_tensor_value_info("r3", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


POOLS = [
    {"kernel_shape": [2, 2], "strides": [2, 2]},   # tiles the image: fused into conv2's output stage
    {"kernel_shape": [3, 3], "strides": [2, 1], "pads": [1, 1, 0, 1], "ceil_mode": 1},
    {"kernel_shape": [2, 3], "strides": [1, 2], "dilations": [2, 1]},
    {"kernel_shape": [3, 2], "strides": [3, 2]},   # fused; 9 rows of 4 pool to 3 x 2
    {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1},  # ceil mode: a separate int8 pool
]
FUSED_POOLS = {0, 3}


@pytest.mark.parametrize("pool", range(len(POOLS)))
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("flatten", [True, False])
def test_fast_plan_matches_node_by_node_and_numpy_engine(pool, symmetric, flatten):
    rng = np.random.default_rng(pool)
    model = Model.from_onnx(chain_cnn(rng, POOLS[pool], flatten))
    calib = {"image": rng.uniform(0, 1, (40, 1, 9, 8)).astype(np.float32)}
    qmodel = q.quantize_static(model, calib, symmetric_activations=symmetric)
    x = rng.uniform(-0.2, 1.5, (7, 1, 9, 8)).astype(np.float32)  # beyond the calibrated range: saturation
    x[0] = 1e6
    fast = Executor(qmodel.graph)
    assert fast.fast_steps is not None and len(fast.fast_steps) < len(qmodel.graph.nodes)
    ops = [node.op for node, *_ in fast.fast_steps]
    assert ("QConv+MaxPool+int8 out" in ops) == (pool in FUSED_POOLS)
    assert ("MaxPool(int8)" in ops) == (pool not in FUSED_POOLS)
    name = qmodel.output_names[0]
    got = fast.run({"image": x})[name]
    plain = Executor(qmodel.graph, fuse=False).run({"image": x})[name]
    np.testing.assert_array_equal(got, plain, strict=True)
    saved = kernels.C_MAX_GROUPS
    try:
        kernels.C_MAX_GROUPS = 0  # every product on the NumPy engine, no fast plan
        numpy_engine = Executor(qmodel.graph)
        assert numpy_engine.fast_steps is None
        np.testing.assert_array_equal(got, numpy_engine.run({"image": x})[name], strict=True)
    finally:
        kernels.C_MAX_GROUPS = saved
    # requesting an intermediate value runs the node-by-node plan: the float value is there
    values = fast.run({"image": x}, outputs=["c2", name])
    assert values["c2"].dtype == np.float32
    np.testing.assert_array_equal(values[name], got, strict=True)
    # any batch size, including empty, in both plans
    empty = fast.run({"image": x[:0]})[name]
    assert empty.shape[0] == 0
    assert Executor(qmodel.graph, fuse=False).run({"image": x[:0]})[name].shape == empty.shape
    np.testing.assert_array_equal(fast.run({"image": x[:1]})[name], got[:1], strict=True)


@pytest.mark.parametrize("pool", [0, 1])
def test_chained_steps_reuse_buffers_and_give_the_same_bits(pool):
    rng = np.random.default_rng(10 + pool)
    model = Model.from_onnx(chain_cnn(rng, POOLS[pool]))
    qmodel = q.quantize_static(model, {"image": rng.uniform(0, 1, (30, 1, 9, 8)).astype(np.float32)})
    fast = Executor(qmodel.graph)
    ops = [node.op for node, *_ in fast.chained_steps]
    assert "Int8Chain" in ops and len(fast.chained_steps) < len(fast.fast_steps)
    name = qmodel.output_names[0]
    plain = Executor(qmodel.graph, fuse=False)
    batches = [rng.uniform(-0.2, 1.5, (b, 1, 9, 8)).astype(np.float32) for b in (5, 5, 2, 5, 2)]
    results = []
    for x in batches:  # the same shapes again: the intermediates are written into the kept buffers
        results.append(fast.run({"image": x})[name])
        np.testing.assert_array_equal(results[-1], plain.run({"image": x})[name], strict=True)
        assert fast.run({"image": x[:0]})[name].shape == (0, 10)
    for x, y in zip(batches, results):  # earlier outputs were not overwritten by later runs
        np.testing.assert_array_equal(y, plain.run({"image": x})[name], strict=True)
    # per-node timing runs the unmerged fast plan: the same bits
    timings: list = []
    np.testing.assert_array_equal(fast.run({"image": batches[0]}, timings=timings)[name], results[0], strict=True)
    assert "Int8Chain" not in [t.op for t in timings]


def test_chained_step_names_the_failing_node():
    from qcore.errors import ShapeError
    from qcore.graph.ir import Node
    from qcore.runtime import fusion

    def double(inputs, out=None):
        return [inputs[0] * 2]

    def fail(inputs, out=None):
        if inputs[0].sum() > 10:
            raise ShapeError("too big")
        return [inputs[0] + 1]

    step = fusion._chain_step([(Node("QConv", ["x"], ["y"], {}, "first"), double),
                               (Node("QMatMul", ["y"], ["z"], {}, "second"), fail)])
    np.testing.assert_array_equal(step([np.ones(3)])[0], np.full(3, 3.0))
    with pytest.raises(ShapeError, match="in 'second' \\(QMatMul\\): too big"):
        step([np.full(3, 5.0)])
    np.testing.assert_array_equal(step([np.ones(3)])[0], np.full(3, 3.0))  # still usable


@pytest.mark.parametrize("pool", [0, 1])
def test_profile_lists_fused_steps(pool):
    rng = np.random.default_rng(1)
    model = Model.from_onnx(chain_cnn(rng, POOLS[pool]))
    qmodel = q.quantize_static(model, {"image": rng.uniform(0, 1, (20, 1, 9, 8)).astype(np.float32)})
    qmodel.run({"image": rng.uniform(0, 1, (3, 1, 9, 8)).astype(np.float32)}, profile=True)
    ops = [t.op for t in qmodel.last_timings]
    assert "Relu" not in ops and "Flatten" not in ops and ops[-1] == "QMatMul"
    if pool in FUSED_POOLS:
        assert ops[:3] == ["QConv+int8 out", "QConv+MaxPool+int8 out", "QConv+int8 out"]
    else:
        assert ops.count("QConv+int8 out") == 3 and "MaxPool(int8)" in ops


def test_static_mlp_chain_fused():
    mb = pytest.importorskip("model_builders")
    rng = np.random.default_rng(4)
    model = Model.from_onnx(mb.mlp(rng))
    qmodel = q.quantize_static(model, {"input": rng.normal(size=(50, 64)).astype(np.float32)})
    x = rng.normal(0, 2, size=(9, 64)).astype(np.float32)
    fast = Executor(qmodel.graph)
    assert fast.fast_steps is not None
    np.testing.assert_array_equal(fast.run({"input": x})["probs"],
                                  Executor(qmodel.graph, fuse=False).run({"input": x})["probs"], strict=True)


def test_fast_plan_reports_bad_input_like_the_plain_plan():
    rng = np.random.default_rng(2)
    model = Model.from_onnx(chain_cnn(rng, POOLS[0]))
    qmodel = q.quantize_static(model, {"image": rng.uniform(0, 1, (20, 1, 9, 8)).astype(np.float32)})
    x = rng.uniform(0, 1, (2, 1, 9, 8)).astype(np.float32)
    x[1, 0, 3, 3] = np.nan
    from qcore.errors import NonFiniteError
    with pytest.raises(NonFiniteError, match="conv1"):
        qmodel.run({"image": x})


@pytest.mark.parametrize("fuse, timed", [(True, False), (True, True), (False, False)])
def test_one_model_run_from_several_threads_gives_each_its_own_result(fuse, timed):
    """The C calls release the GIL: threads sharing a model must not share call descriptors."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(21)
    model = Model.from_onnx(chain_cnn(rng, POOLS[0]))
    qmodel = q.quantize_static(model, {"image": rng.uniform(0, 1, (30, 1, 9, 8)).astype(np.float32)})
    executor = Executor(qmodel.graph, fuse=fuse)
    name = qmodel.output_names[0]
    batches = [rng.uniform(-0.2, 1.5, (b, 1, 9, 8)).astype(np.float32) for b in (1, 64, 8, 33) * 25]
    expected = [Executor(qmodel.graph, fuse=False).run({"image": x})[name] for x in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        # timed runs take the unmerged fast steps: each layer's C call on its own
        got = list(pool.map(lambda x: executor.run({"image": x}, timings=[] if timed else None)[name], batches))
    for want, have in zip(expected, got):
        np.testing.assert_array_equal(have, want, strict=True)
