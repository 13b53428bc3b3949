"""Small initializers packed into one file tensor with the structure (graph schema 2)."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

import qcore.api as api
from qcore.errors import ModelError
from qcore.format import load_tensors, save_tensors
from qcore.graph.ir import Graph, Node, ValueInfo
from qcore.graph.serialize import PACK_STRUCTURE_KEY, PACK_TENSOR, SCHEMA_KEY, load_graph, save_graph
from qcore.reference.quantize import quantize_tensor
from qcore.reference.tensor import QuantizedTensor


def _graph(rng: np.random.Generator) -> Graph:
    """MatMuls over initializers of every kind a pack holds: float32 and float16 arrays, a
    bool mask, int8 per-channel (float16 scales), int4 blocked affine (zero points), a
    per-tensor uint8 with a (1,)-shaped float32 scale, and one weight too big to pack."""
    w8 = quantize_tensor(rng.standard_normal((8, 6)).astype(np.float32), "int8", granularity="per_channel", axis=1,
                         scale_dtype="float16")
    w4 = quantize_tensor(rng.standard_normal((6, 5)).astype(np.float32), "int4", granularity="per_block", axis=0,
                         block_size=4, symmetric=False, scale_dtype="float16")
    u8 = QuantizedTensor(rng.integers(0, 256, (5, 5)).astype(np.uint8), np.array([0.01], np.float32),
                         np.array([128], np.uint8), "uint8")
    inits = {
        "w8": w8, "w4": w4, "u8": u8,
        "big": rng.standard_normal((5, 5000)).astype(np.float32),
        "half": rng.standard_normal(5).astype(np.float16),
        "mask": rng.integers(0, 2, 5).astype(bool),
        "b": rng.standard_normal(6).astype(np.float32),
    }
    nodes = [Node("WMatMul", ["x", "w8"], ["h0"], {}, "m0"), Node("Add", ["h0", "b"], ["h1"], {}, "a0"),
             Node("WMatMul", ["h1", "w4"], ["h2"], {}, "m1"), Node("WMatMul", ["h2", "u8"], ["h3"], {}, "m2"),
             Node("Cast", ["half"], ["h4"], {"to": 1}, "c0"), Node("Mul", ["h3", "h4"], ["h5"], {}, "mul"),
             Node("Where", ["mask", "h5", "h3"], ["h6"], {}, "w"), Node("MatMul", ["h6", "big"], ["y"], {}, "m3")]
    return Graph(nodes, [ValueInfo("x", "float32", ["n", 8])], [ValueInfo("y", "float32", None)], inits)


def _same(a, b) -> None:
    if isinstance(a, QuantizedTensor):
        assert isinstance(b, QuantizedTensor)
        for field in ("data", "scale", "zero_point"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field), strict=True)
        assert (a.dtype, a.axis, a.block_size, a.convention) == (b.dtype, b.axis, b.block_size, b.convention)
    else:
        np.testing.assert_array_equal(a, b, strict=True)


def test_round_trip_packs_small_tensors(tmp_path):
    rng = np.random.default_rng(70)
    graph = _graph(rng)
    save_graph(graph, tmp_path / "p.qcm")
    save_graph(graph, tmp_path / "u.qcm", pack_limit=0)
    with load_tensors(tmp_path / "p.qcm") as f:
        assert list(f) == [PACK_TENSOR, "big"]  # the one large weight stays a file tensor
        assert f.metadata[SCHEMA_KEY] == 2 and PACK_STRUCTURE_KEY in f.metadata
    packed, plain = load_graph(tmp_path / "p.qcm"), load_graph(tmp_path / "u.qcm")
    assert sorted(packed.initializers) == sorted(graph.initializers)
    for name, tensor in graph.initializers.items():
        _same(packed.initializers[name], tensor)
        _same(plain.initializers[name], tensor)
    assert packed.initializers["w8"].scale.dtype == np.float32
    assert not packed.initializers["b"].flags.writeable  # a view into the map, not a copy
    x = rng.standard_normal((3, 8)).astype(np.float32)
    y_packed = api.load(tmp_path / "p.qcm").run({"x": x})["y"]
    y_plain = api.load(tmp_path / "u.qcm").run({"x": x})["y"]
    np.testing.assert_array_equal(y_packed, y_plain, strict=True)
    assert (tmp_path / "p.qcm").stat().st_size < (tmp_path / "u.qcm").stat().st_size


def test_pack_limit_zero_keeps_schema_1(tmp_path):
    save_graph(_graph(np.random.default_rng(71)), tmp_path / "u.qcm", pack_limit=0)
    with load_tensors(tmp_path / "u.qcm") as f:
        assert f.metadata[SCHEMA_KEY] == 1 and PACK_TENSOR not in f
    with pytest.raises(ModelError, match="pack_limit"):
        save_graph(_graph(np.random.default_rng(71)), tmp_path / "x.qcm", pack_limit=-1)


def _rewrite(tmp_path, edit) -> str:
    """Save a packed model, let ``edit(doc, pack, meta)`` change it, write it back."""
    save_graph(_graph(np.random.default_rng(72)), tmp_path / "p.qcm")
    with load_tensors(tmp_path / "p.qcm") as f:
        meta = dict(f.metadata)
        pack = np.array(f[PACK_TENSOR])
        big = np.array(f["big"])
    length = meta[PACK_STRUCTURE_KEY]
    doc = json.loads(zlib.decompress(pack[:length].tobytes()))
    tail = pack[length:]
    doc, tail, meta = edit(doc, tail, meta)
    head = np.frombuffer(zlib.compress(json.dumps(doc).encode()), np.uint8)
    meta[PACK_STRUCTURE_KEY] = head.size
    save_tensors(tmp_path / "bad.qcm", {PACK_TENSOR: np.concatenate([head, tail]), "big": big}, metadata=meta)
    return str(tmp_path / "bad.qcm")


@pytest.mark.parametrize("edit, message", [
    (lambda d, t, m: (d, t[:-1], m), "runs past the end"),
    (lambda d, t, m: (d, np.concatenate([t, np.zeros(1, np.uint8)]), m), "after its last initializer"),
    (lambda d, t, m: ({**d, "packed": d["packed"][1:]}, t, m), "after its last initializer|missing|packed initializer"),
    (lambda d, t, m: ({**d, "packed": [["b", "complex64", [6]]] + d["packed"][1:]}, t, m), "packed initializer entry"),
    (lambda d, t, m: ({**d, "packed": {}}, t, m), "must be a list"),
    (lambda d, t, m: (d, t, {**m, SCHEMA_KEY: 1}), "schema version"),
])
def test_malformed_packs_raise_model_error(tmp_path, edit, message):
    path = _rewrite(tmp_path, edit)
    with pytest.raises(ModelError, match=message):
        load_graph(path)


def test_bad_packed_values_raise_model_error(tmp_path):
    """A negative float16 scale inside the pack (its CRC is fine: the file was rewritten)."""
    w8 = quantize_tensor(np.random.default_rng(74).standard_normal((8, 6)).astype(np.float32), "int8",
                         granularity="per_channel", axis=1, scale_dtype="float16")
    graph = Graph([Node("WMatMul", ["x", "w8"], ["y"], {}, "m0")], [ValueInfo("x", "float32", ["n", 8])],
                  [ValueInfo("y", "float32", None)], {"w8": w8})
    save_graph(graph, tmp_path / "p.qcm")
    with load_tensors(tmp_path / "p.qcm") as f:
        meta = dict(f.metadata)
        pack = np.array(f[PACK_TENSOR])
    pack[-1] |= 0x80  # the pack ends with w8's six float16 scales: sign bit of the last one
    save_tensors(tmp_path / "bad.qcm", {PACK_TENSOR: pack}, metadata=meta)
    with pytest.raises(ModelError, match="w8"):
        load_graph(tmp_path / "bad.qcm")


def test_reserved_name(tmp_path):
    graph = _graph(np.random.default_rng(73))
    graph.initializers[PACK_TENSOR] = np.zeros(1, np.float32)
    with pytest.raises(ModelError, match="reserved"):
        save_graph(graph, tmp_path / "x.qcm")
