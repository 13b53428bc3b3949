"""Models through .qcm files: exact round trips, memory-mapped weights, clear errors."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import qcore.api as api
from qcore.errors import FormatError, ModelError
from qcore.graph.ir import Graph
from qcore.graph.serialize import STRUCTURE_KEY
from qcore.reference.tensor import QuantizedTensor
from qcore.runtime import Model

sys.path.insert(0, os.path.dirname(__file__))
mb = pytest.importorskip("model_builders")
import qcore.graph.quantize as q  # noqa: E402


@pytest.fixture(scope="module")
def float_model():
    return Model.from_onnx(mb.transformer(np.random.default_rng(0)))


@pytest.mark.parametrize("variant", ["float", "dynamic_per_row", "int4_block16", "int8_per_tensor"])
def test_round_trip_is_exact(tmp_path, float_model, variant):
    model = {
        "float": lambda: float_model,
        "dynamic_per_row": lambda: q.quantize_dynamic(float_model, per_row=True),
        "int4_block16": lambda: q.quantize_weight_only(float_model, bits=4, block_size=16),
        "int8_per_tensor": lambda: q.quantize_dynamic(float_model, per_channel=False),
    }[variant]()
    path = tmp_path / "m.qcm"
    api.save(model, path)
    loaded = api.load(path)
    assert isinstance(loaded, Model)
    assert loaded.graph.structure_json() == model.graph.structure_json()
    for name, tensor in model.graph.initializers.items():
        other = loaded.graph.initializers[name]
        if isinstance(tensor, QuantizedTensor):
            assert isinstance(other, QuantizedTensor) and other.dtype == tensor.dtype
            np.testing.assert_array_equal(other.data, tensor.data, strict=True)
            np.testing.assert_array_equal(other.scale, tensor.scale, strict=True)
        else:
            np.testing.assert_array_equal(other, tensor, strict=True)
    feeds = mb.transformer_feeds(np.random.default_rng(1))
    for name, value in model.run(feeds).items():
        np.testing.assert_array_equal(loaded.run(feeds)[name], value, strict=True)


def test_float_weights_stay_memory_mapped(tmp_path, float_model):
    path = tmp_path / "m.qcm"
    float_model.save(path)
    loaded = Model.load(path, verify=False)
    big = max((t for t in loaded.graph.initializers.values() if isinstance(t, np.ndarray)), key=np.size)
    assert not big.flags.owndata and not big.flags.writeable  # a read-only view of the mapped file
    base = big
    while getattr(base, "base", None) is not None:
        base = base.base
    assert isinstance(base, memoryview)


def test_plain_tensors_load_as_mapping(tmp_path):
    path = tmp_path / "t.qcm"
    api.save({"a": np.arange(6, dtype=np.float32)}, path, metadata={"note": "x"})
    loaded = api.load(path)
    assert not isinstance(loaded, Model)
    np.testing.assert_array_equal(loaded["a"], np.arange(6, dtype=np.float32))
    with pytest.raises(ModelError, match="no model graph"):
        Model.load(path)


def test_errors(tmp_path, float_model):
    with pytest.raises(ModelError, match="not found"):
        api.load(tmp_path / "missing.qcm")
    with pytest.raises(ModelError, match="cannot save"):
        api.save([1, 2], tmp_path / "x.qcm")
    path = tmp_path / "m.qcm"
    float_model.save(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip bits inside tensor data: checksum mismatch
    bad = tmp_path / "bad.qcm"
    bad.write_bytes(bytes(data))
    with pytest.raises(FormatError):
        api.load(bad)
    (tmp_path / "junk.qcm").write_bytes(b"not a model at all")
    with pytest.raises(FormatError):
        Model.load(tmp_path / "junk.qcm")


def test_schema_checks():
    text = '{"schema_version": 99, "inputs": [], "outputs": [], "nodes": [], "initializers": []}'
    with pytest.raises(ModelError, match="schema version 99"):
        Graph.from_structure_json(text, {})
    with pytest.raises(ModelError, match="not valid JSON"):
        Graph.from_structure_json("{", {})
    text = '{"schema_version": 1, "inputs": [], "outputs": [], "nodes": [], "initializers": ["w"]}'
    with pytest.raises(ModelError, match="missing from the file: w"):
        Graph.from_structure_json(text, {})
    assert STRUCTURE_KEY.startswith("qcore.graph.")


def test_bool_constants_round_trip(tmp_path):
    from qcore.graph.ir import Node, ValueInfo

    graph = Graph([Node("Where", ["cond", "x", "zero"], ["y"], {}, "w")], [ValueInfo("x", "float32", [2, 3])],
                  [ValueInfo("y", "float32", None)],
                  {"cond": np.array([[True, False, True]]), "zero": np.array(0, np.float32)})
    model = Model(graph)
    model.save(tmp_path / "b.qcm")
    loaded = Model.load(tmp_path / "b.qcm")
    assert loaded.graph.initializers["cond"].dtype == np.bool_
    x = np.arange(6, dtype=np.float32).reshape(2, 3) + 1
    np.testing.assert_array_equal(loaded.run({"x": x})["y"], model.run({"x": x})["y"], strict=True)
