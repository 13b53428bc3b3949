"""The graph structure stored compressed (qcore.graph.structure_zlib) and the plain key."""

from __future__ import annotations

import numpy as np
import pytest

import qcore.api as api
from qcore.errors import ModelError
from qcore.format import load_tensors, save_tensors
from qcore.graph.ir import Graph, Node, ValueInfo
from qcore.graph.serialize import (
    SCHEMA_KEY, STRUCTURE_KEY, STRUCTURE_ZLIB_KEY, compress_structure, decompress_structure)
from qcore.runtime import Model


def _graph() -> Graph:
    return Graph([Node("Add", ["x", "b"], ["y"], {}, "add0")], [ValueInfo("x", "float32", [2, 3])],
                 [ValueInfo("y", "float32", None)], {"b": np.arange(3, dtype=np.float32)})


def test_saved_compressed_and_round_trips(tmp_path):
    model = Model(_graph())
    path = tmp_path / "m.qcm"
    model.save(path, pack_limit=0)  # no pack: the schema-1 layout
    with load_tensors(path) as f:
        assert STRUCTURE_ZLIB_KEY in f.metadata and STRUCTURE_KEY not in f.metadata
        assert decompress_structure(f.metadata[STRUCTURE_ZLIB_KEY]) == model.graph.structure_json()
    loaded = api.load(path)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(loaded.run({"x": x})["y"], x + np.arange(3, dtype=np.float32), strict=True)


def _write(path, metadata):
    save_tensors(path, {"b": np.arange(3, dtype=np.float32)}, metadata={SCHEMA_KEY: 1, **metadata})


def test_plain_structure_key_still_read(tmp_path):
    _write(tmp_path / "p.qcm", {STRUCTURE_KEY: _graph().structure_json()})
    assert api.load(tmp_path / "p.qcm").graph.structure_json() == _graph().structure_json()


def test_both_keys_or_bad_compressed_text_raise(tmp_path):
    text = _graph().structure_json()
    _write(tmp_path / "both.qcm", {STRUCTURE_KEY: text, STRUCTURE_ZLIB_KEY: compress_structure(text)})
    with pytest.raises(ModelError, match="exactly one"):
        api.load(tmp_path / "both.qcm")
    _write(tmp_path / "bad.qcm", {STRUCTURE_ZLIB_KEY: "not base64 at all!"})
    with pytest.raises(ModelError, match="base64"):
        api.load(tmp_path / "bad.qcm")
    _write(tmp_path / "notzlib.qcm", {STRUCTURE_ZLIB_KEY: "aGVsbG8="})
    with pytest.raises(ModelError, match="zlib"):
        api.load(tmp_path / "notzlib.qcm")


def test_compression_round_trip_of_unicode():
    text = '{"name": "caf\\u00e9 \u00e9\u4e2d"}'
    assert decompress_structure(compress_structure(text)) == text
