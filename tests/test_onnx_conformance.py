"""ONNX's own node test vectors for the seven integer quantization ops, checked bit-exactly.

The vectors are generated from the installed onnx package (1.23.2 ships generators, not
files) with ``onnx.backend.test.loader.load_node_model_tests()``. Every vector whose
tensors are integers or float32/float16 is run through :mod:`qcore.reference` and every
output compared bit for bit; vectors with float8/float4 tensors are out of scope and
reported as skipped. ``test_conformance_count`` re-checks all of them and reports the count.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from qcore.reference import (  # noqa: E402
    conv_integer,
    dequantize_linear,
    dynamic_quantize_linear,
    matmul_integer,
    qlinear_conv,
    qlinear_matmul,
    quantize_linear,
    unpack_int2,
    unpack_int4,
)

PINNED_ONNX = "1.23.2"
if onnx.__version__ != PINNED_ONNX:
    pytest.skip(f"conformance vectors are pinned to onnx {PINNED_ONNX}, found {onnx.__version__}",
                allow_module_level=True)

OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger",
       "QLinearMatMul", "ConvInteger", "QLinearConv")

#: ONNX element type -> (qcore type name, NumPy container dtype). Sub-byte types are
#: held one per element in int8/uint8, as qcore.reference expects.
TYPES = {
    TensorProto.INT8: ("int8", np.int8),
    TensorProto.UINT8: ("uint8", np.uint8),
    TensorProto.INT16: ("int16", np.int16),
    TensorProto.UINT16: ("uint16", np.uint16),
    TensorProto.INT32: ("int32", np.int32),
    TensorProto.INT4: ("int4", np.int8),
    TensorProto.UINT4: ("uint4", np.uint8),
    TensorProto.INT2: ("int2", np.int8),
    TensorProto.UINT2: ("uint2", np.uint8),
    TensorProto.FLOAT: ("float32", np.float32),
    TensorProto.FLOAT16: ("float16", np.float16),
}
SUBBYTE = {TensorProto.INT4: (unpack_int4, True), TensorProto.UINT4: (unpack_int4, False),
           TensorProto.INT2: (unpack_int2, True), TensorProto.UINT2: (unpack_int2, False)}

#: Counts for onnx 1.23.2: vectors checked, and vectors skipped for float8/float4 tensors.
EXPECTED_CHECKED = 37
EXPECTED_SKIPPED = 8


@dataclass
class Vector:
    """One data set of one ONNX node test."""

    name: str
    op: str
    attributes: dict
    inputs: list  # (node input name, value or None) in node-input order
    outputs: list  # expected arrays in node-output order
    input_types: list = field(default_factory=list)  # ONNX element types, node-input order
    skip_reason: str | None = None


def _elem_type(value_info) -> int:
    return value_info.type.tensor_type.elem_type


def _decode(value, elem_type: int) -> np.ndarray:
    """A data-set tensor as a NumPy array in qcore's representation."""
    if isinstance(value, TensorProto):
        if value.data_type in SUBBYTE:
            unpack, signed = SUBBYTE[value.data_type]
            raw = (np.frombuffer(value.raw_data, dtype=np.uint8) if value.raw_data
                   else np.asarray(value.int32_data, dtype=np.int64).astype(np.uint8))
            ours = unpack(raw, tuple(value.dims), signed=signed)
            # Cross-check our unpacking against onnx's own (ml_dtypes) decoding.
            theirs = numpy_helper.to_array(value).astype(np.int64)
            np.testing.assert_array_equal(ours.astype(np.int64), theirs)
            return ours
        value = numpy_helper.to_array(value)
    arr = np.asarray(value)
    name, container = TYPES[elem_type]
    assert arr.dtype == np.dtype(container), (arr.dtype, name)
    return arr


def _qcore_attributes(op: str, attributes: dict) -> dict:
    out = dict(attributes)
    if "output_dtype" in out:
        out["output_dtype"] = TYPES[out["output_dtype"]][0]
    if "auto_pad" in out and isinstance(out["auto_pad"], bytes):
        out["auto_pad"] = out["auto_pad"].decode()
    return out


@functools.lru_cache(maxsize=1)
def collect_vectors() -> tuple[Vector, ...]:
    from onnx.backend.test.loader import load_node_model_tests

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the generators of unrelated ops warn on purpose
        cases = load_node_model_tests()
    direct = {}
    for case in cases:
        nodes = case.model.graph.node
        if len(nodes) == 1 and nodes[0].op_type in OPS:
            direct[case.name] = nodes[0]
    vectors = []
    for case in cases:
        # "<name>_expanded" is the same test with the op replaced by its function body:
        # its vectors are vectors of the op, so they are checked too.
        base = case.name[: -len("_expanded")] if case.name.endswith("_expanded") else case.name
        if base not in direct:
            continue
        node = direct[base]
        graph = case.model.graph
        in_types = {vi.name: _elem_type(vi) for vi in graph.input}
        out_types = [_elem_type(vi) for vi in graph.output]
        all_types = list(in_types.values()) + out_types
        unsupported = [TensorProto.DataType.Name(t) for t in all_types if t not in TYPES]
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        for index, (ins, outs) in enumerate(case.data_sets):
            name = f"{case.name}[{index}]" if len(case.data_sets) > 1 else case.name
            if unsupported:
                vectors.append(Vector(name, node.op_type, attributes, [], [],
                                      skip_reason=f"float8/float4 tensors are out of scope: {unsupported}"))
                continue
            by_name = {vi.name: _decode(v, in_types[vi.name]) for vi, v in zip(graph.input, ins)}
            # The expanded graphs name their inputs like the node test; map positionally.
            inputs = [(n, by_name.get(n) if n else None) for n in node.input]
            outputs = [_decode(v, t) for v, t in zip(outs, out_types)]
            vectors.append(Vector(name, node.op_type, _qcore_attributes(node.op_type, attributes),
                                  inputs, outputs, [in_types.get(n) for n in node.input]))
    return tuple(vectors)


def run_vector(vector: Vector) -> list[np.ndarray]:
    """Run one vector through qcore.reference."""
    args = [value for _, value in vector.inputs]
    attrs = vector.attributes
    if vector.op == "QuantizeLinear":
        out_type = attrs.get("output_dtype")
        if out_type is None and len(args) > 2 and args[2] is not None:
            # A sub-byte zero point says its type through the ONNX tensor type.
            out_type = TYPES[vector.input_types[2]][0]
        return [quantize_linear(*args, axis=attrs.get("axis", 1), block_size=attrs.get("block_size", 0),
                                output_dtype=out_type)]
    if vector.op == "DequantizeLinear":
        return [dequantize_linear(*args, axis=attrs.get("axis", 1), block_size=attrs.get("block_size", 0))]
    if vector.op == "DynamicQuantizeLinear":
        return list(dynamic_quantize_linear(*args))
    if vector.op == "MatMulInteger":
        return [matmul_integer(*args)]
    if vector.op == "QLinearMatMul":
        return [qlinear_matmul(*args)]
    if vector.op == "ConvInteger":
        return [conv_integer(*args, **attrs)]
    if vector.op == "QLinearConv":
        return [qlinear_conv(*args, **attrs)]
    raise AssertionError(vector.op)


def assert_bit_exact(actual: np.ndarray, expected: np.ndarray) -> None:
    """Same dtype, shape and bits (floats compared through their bit patterns)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if expected.dtype.kind == "f":
        bits = np.dtype(f"u{expected.dtype.itemsize}")
        np.testing.assert_array_equal(actual.view(bits), expected.view(bits), strict=True)
    else:
        np.testing.assert_array_equal(actual, expected, strict=True)


def check_vector(vector: Vector) -> None:
    results = run_vector(vector)
    assert len(results) == len(vector.outputs)
    for got, want in zip(results, vector.outputs):
        assert_bit_exact(got, want)


def _params():
    for vector in collect_vectors():
        marks = [pytest.mark.skip(reason=vector.skip_reason)] if vector.skip_reason else []
        yield pytest.param(vector, id=vector.name, marks=marks)


@pytest.mark.parametrize("vector", list(_params()))
def test_onnx_vector(vector: Vector) -> None:
    check_vector(vector)


def test_conformance_count(record_property) -> None:
    """Every in-scope vector of the seven ops is reproduced; report how many."""
    vectors = collect_vectors()
    checked = [v for v in vectors if v.skip_reason is None]
    skipped = [v for v in vectors if v.skip_reason is not None]
    for vector in checked:
        check_vector(vector)
    ops = sorted({v.op for v in checked})
    record_property("onnx_vectors_checked", len(checked))
    record_property("onnx_vectors_skipped_float8_float4", len(skipped))
    print(f"\nONNX {onnx.__version__} conformance: {len(checked)} vectors checked bit-exactly "
          f"({', '.join(ops)}); {len(skipped)} skipped (float8/float4 tensors)")
    assert set(ops) == set(OPS)
    assert (len(checked), len(skipped)) == (EXPECTED_CHECKED, EXPECTED_SKIPPED)
