"""ONNX import and the float runtime against onnxruntime (quantization off)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
mb = pytest.importorskip("model_builders")
from onnx import TensorProto, helper  # noqa: E402

from qcore.errors import ModelError, QcoreError, UnsupportedOpError  # noqa: E402
from qcore.graph import import_onnx  # noqa: E402
from qcore.runtime import Model  # noqa: E402
from qcore.runtime.executor import Executor  # noqa: E402


def assert_close_relative(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-5) -> None:
    """Max absolute error relative to the largest reference magnitude."""
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    scale = float(np.abs(expected).max()) or 1.0
    err = float(np.abs(actual.astype(np.float64) - expected).max()) / scale
    assert err <= rtol, f"relative error {err:.3g} > {rtol}"


def check_against_onnxruntime(proto, feeds):
    expected = mb.run_onnxruntime(proto, feeds)
    model = Model.from_onnx(proto)
    actual = model.run(feeds)
    assert set(actual) == set(expected)
    for name in expected:
        assert_close_relative(actual[name], expected[name])
    return model


@pytest.mark.parametrize("batch", [1, 7])
def test_mlp_matches_onnxruntime(batch):
    rng = np.random.default_rng(0)
    proto = mb.mlp(rng)
    model = check_against_onnxruntime(proto, {"input": rng.normal(size=(batch, 64)).astype(np.float32)})
    ops = model.graph.op_counts()
    assert "Gemm" not in ops and ops["MatMul"] == 3  # Gemm with constant B became MatMul + Add


@pytest.mark.parametrize("batch", [1, 4])
def test_cnn2d_matches_onnxruntime(batch):
    rng = np.random.default_rng(1)
    proto = mb.cnn2d(rng)
    model = check_against_onnxruntime(proto, {"input": rng.normal(size=(batch, 1, 16, 16)).astype(np.float32)})
    assert "BatchNormalization" not in model.graph.op_counts()  # folded into the conv


def test_cnn1d_matches_onnxruntime():
    rng = np.random.default_rng(2)
    proto = mb.cnn1d(rng)
    model = check_against_onnxruntime(proto, {"input": rng.normal(size=(5, 3, 21)).astype(np.float32)})
    assert "BatchNormalization" not in model.graph.op_counts()


@pytest.mark.parametrize("positions", ["slice", "gather"])
def test_transformer_matches_onnxruntime(positions):
    rng = np.random.default_rng(3)
    proto = mb.transformer(rng, positions=positions)
    model = check_against_onnxruntime(proto, mb.transformer_feeds(rng))
    ops = model.graph.op_counts()
    # the decomposed pattern became LayerNormalization (2 per layer), Shape chains folded
    # where the input shape is known; the batch dimension stays free
    assert ops["LayerNormalization"] == 4
    assert "Pow" not in ops and "Sqrt" not in ops
    other = model.run(mb.transformer_feeds(np.random.default_rng(4), batch=1, seq=5))
    assert other["hidden"].shape == (1, 5, 32)


def test_shape_subgraph_folded_for_static_input():
    rng = np.random.default_rng(5)
    proto = mb.transformer(rng, layers=1)
    for vi in proto.graph.input:  # fix the shapes: everything about them is known at import
        for dim, value in zip(vi.type.tensor_type.shape.dim, (2, 8)):
            dim.Clear()
            dim.dim_value = value
    graph = import_onnx(proto)
    assert "Shape" not in graph.op_counts()
    feeds = mb.transformer_feeds(rng, batch=2)
    expected = mb.run_onnxruntime(proto, feeds)
    assert_close_relative(Model(graph).run(feeds)["hidden"], expected["hidden"])


def test_unsupported_ops_named_in_one_error():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="ok"),
        helper.make_node("NonMaxSuppression", ["a", "a"], ["b"], name="nms1"),
        helper.make_node("TopK", ["a", "k"], ["c", "d"], name="topk"),
        helper.make_node("NonMaxSuppression", ["c", "c"], ["e"], name="nms2"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("e", TensorProto.INT64, None)],
                              [helper.make_tensor("k", TensorProto.INT64, [1], [1])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedOpError) as info:
        import_onnx(proto)
    message = str(info.value)
    assert "NonMaxSuppression (nodes: nms1, nms2)" in message and "TopK (nodes: topk)" in message


def test_missing_and_corrupt_onnx_files(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        import_onnx(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(Exception) as info:
        import_onnx(bad)
    assert "qcore" in type(info.value).__module__


def test_wrong_input_name_shape_dtype():
    rng = np.random.default_rng(6)
    model = Model.from_onnx(mb.mlp(rng))
    x = rng.normal(size=(2, 64)).astype(np.float32)
    with pytest.raises(ModelError, match="unknown input name.*'inputs'.*model's inputs are 'input'"):
        model.run({"inputs": x})
    with pytest.raises(ModelError, match="missing input"):
        model.run({})
    with pytest.raises(ValueError, match=r"must have shape \[batch, 64\], got \(2, 63\)"):
        model.run({"input": x[:, :63]})
    with pytest.raises(ValueError, match="must have rank 2"):
        model.run({"input": x[0]})
    with pytest.raises(TypeError, match="must be float32, got int64"):
        model.run({"input": x.astype(np.int64)})
    # float64 is accepted and converted
    np.testing.assert_allclose(model.run({"input": x.astype(np.float64)})["probs"], model.run({"input": x})["probs"])


def test_profile_records_every_node():
    rng = np.random.default_rng(7)
    model = Model.from_onnx(mb.cnn2d(rng))
    model.run({"input": rng.normal(size=(2, 1, 16, 16)).astype(np.float32)}, profile=True)
    assert [t.name for t in model.last_timings] == [n.name for n in model.graph.nodes]
    assert all(t.seconds >= 0 for t in model.last_timings)
    assert {op for op, _, _ in model.profile_summary()} == set(model.graph.op_counts())


def test_shape_only_nodes_cached_per_input_shape():
    rng = np.random.default_rng(8)
    proto = mb.transformer(rng)
    model = Model.from_onnx(proto)
    executor = model.executor
    assert executor.shape_only_steps >= 5  # Shape -> Gather -> Unsqueeze -> Concat chains
    for batch, seq in [(2, 8), (3, 5), (2, 8), (3, 5)]:
        feeds = mb.transformer_feeds(rng, batch=batch, seq=seq)
        got = model.run(feeds, profile=True)
        assert_close_relative(got["hidden"], mb.run_onnxruntime(proto, feeds)["hidden"])
    # the last two runs reused the cached shape values: those nodes did not run (the run
    # used the fast plan, whose fused steps replace several nodes each)
    plan = executor.fast_steps if executor.fast_steps is not None else executor.steps
    assert len(model.last_timings) == sum(1 for *_, is_shape in plan if not is_shape)
    assert sum(1 for *_, is_shape in plan if is_shape) == executor.shape_only_steps


def test_an_observer_sees_every_node_output_on_every_run():
    """Shape-only values cached from an earlier run of the same shape are observed too
    (calibration that counts them, such as position ids, sees every batch)."""
    rng = np.random.default_rng(10)
    model = Model.from_onnx(mb.transformer(rng, positions="gather"))
    executor = Executor(model.graph)
    feeds = mb.transformer_feeds(rng, batch=2, seq=8)
    outputs = {name for node in model.graph.nodes for name in node.outputs if name}
    for _ in range(3):
        seen: dict[str, np.ndarray] = {}
        executor.run(feeds, observe=seen.__setitem__)
        assert set(seen) == outputs
        np.testing.assert_array_equal(seen["pos_ids"], np.arange(8))


def test_cached_runs_match_the_recording_run_and_name_the_failing_node():
    """The slot plan (shape values cached, nothing recorded) gives the first run's bits and
    the same node-named errors; the buffers it releases are reused."""
    rng = np.random.default_rng(9)
    proto = mb.transformer(rng)
    for fuse in (True, False):
        model = Model.from_onnx(proto)
        executor = Executor(model.graph, fuse=fuse)
        feeds = mb.transformer_feeds(rng, batch=2, seq=8)
        first = executor.run(feeds)  # records the shape-only values
        assert executor._shape_cache
        for _ in range(3):
            again = executor.run(feeds)
            for name in first:
                np.testing.assert_array_equal(again[name], first[name], strict=True)
        assert executor.run(feeds, outputs=["hidden"])["hidden"].shape == first["hidden"].shape
        with pytest.raises(ModelError, match="no value named"):
            executor._slots.run(executor._check_feeds(feeds), next(iter(executor._shape_cache.values())),
                                ["no such value"])
        bad = dict(feeds, input_ids=feeds["input_ids"] + 1000)  # same shapes: the cached plan
        with pytest.raises(QcoreError, match="node '.*' \\(Gather\\): Gather index out of range"):
            executor.run(bad)


@pytest.mark.torch
def test_torch_exported_encoder(tmp_path):
    torch = pytest.importorskip("torch")
    from torch import nn

    import qcore.graph.quantize as q

    torch.manual_seed(0)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.tokens = nn.Embedding(100, 64)
            self.positions = nn.Embedding(32, 64)
            layer = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, activation="gelu", batch_first=True)
            self.layers = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(64)

        def forward(self, ids, mask):
            h = self.tokens(ids) + self.positions(torch.arange(ids.shape[1]).unsqueeze(0))
            h = self.norm(self.layers(h, src_key_padding_mask=mask == 0))
            m = mask.unsqueeze(-1).to(h.dtype)
            return (h * m).sum(1) / m.sum(1)  # mean pooling over the real tokens

    ids = torch.randint(0, 100, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.int64)
    mask[1, 7:] = 0
    path = tmp_path / "encoder.onnx"
    torch.onnx.export(Encoder().eval(), (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                      output_names=["pooled"], opset_version=17, dynamo=False,
                      dynamic_axes={"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}})
    import onnx

    proto = onnx.load(path)
    feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    model = check_against_onnxruntime(proto, feeds)
    ref = model.run(feeds)["pooled"]
    for quantized in (q.quantize_dynamic(model), q.quantize_dynamic(model, per_row=True)):
        y = quantized.run(feeds)["pooled"]
        cos = (y * ref).sum(1) / np.linalg.norm(y, axis=1) / np.linalg.norm(ref, axis=1)
        assert cos.min() >= 0.99
