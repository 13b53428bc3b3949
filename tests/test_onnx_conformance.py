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
import zlib
from dataclasses import dataclass, field

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from qcore.reference import (  # noqa: E402
    int_type,
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


def _count_id() -> str:
    vectors = collect_vectors()
    checked = sum(v.skip_reason is None for v in vectors)
    return f"{checked}-checked-{len(vectors) - checked}-skipped"


# The counts are in the test id (visible with -v) and printed (visible with -rA or -s).
@pytest.mark.parametrize("counts", [_count_id()])
def test_conformance_count(counts: str, record_property) -> None:
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


# --- Cross-checks on random inputs: onnxruntime and ONNX's reference evaluator -------------
#
# Where the two disagree, docs/ARITHMETIC.md ("Where the implementations disagree") says
# which one the spec supports; qcore follows the spec, and these tests pin qcore to
# whichever implementation is right on each input class.

from onnx.reference import ReferenceEvaluator  # noqa: E402

try:
    import onnxruntime as ort
except ImportError:  # the vectors above still run
    ort = None

#: The onnxruntime behaviour documented in docs/ARITHMETIC.md was measured with 1.32.
ORT_MEASURED = (1, 32)
_ort_version = tuple(int(p) for p in ort.__version__.split(".")[:2]) if ort else None
needs_ort = pytest.mark.skipif(
    ort is None or _ort_version < ORT_MEASURED,
    reason=f"needs onnxruntime >= {'.'.join(map(str, ORT_MEASURED))} (found {ort.__version__ if ort else 'none'})",
)
if ort is not None:
    ort.set_default_logger_severity(3)

_ELEM = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float16): TensorProto.FLOAT16,
    np.dtype(np.int8): TensorProto.INT8,
    np.dtype(np.uint8): TensorProto.UINT8,
    np.dtype(np.int16): TensorProto.INT16,
    np.dtype(np.uint16): TensorProto.UINT16,
    np.dtype(np.int32): TensorProto.INT32,
}
_QTYPE = {"int4": TensorProto.INT4, "uint4": TensorProto.UINT4, "int2": TensorProto.INT2, "uint2": TensorProto.UINT2}


def _model(op: str, inputs: list, output_types: list[int], opset: int, initializers: dict | None = None,
           **attributes) -> tuple[bytes, dict]:
    """A one-node model; ``inputs`` are arrays (graph inputs) or None (omitted optional)."""
    initializers = initializers or {}
    names = [f"in{i}" if value is not None or i in initializers else "" for i, value in enumerate(inputs)]
    node = helper.make_node(op, names, [f"out{i}" for i in range(len(output_types))], **attributes)
    graph_inputs = [helper.make_tensor_value_info(n, _ELEM[v.dtype], v.shape)
                    for n, v in zip(names, inputs) if v is not None]
    graph = helper.make_graph(
        [node], op, graph_inputs,
        [helper.make_tensor_value_info(f"out{i}", t, None) for i, t in enumerate(output_types)],
        initializer=[helper.make_tensor(f"in{i}", t, dims, vals) for i, (t, dims, vals) in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model, {n: np.asarray(v) for n, v in zip(names, inputs) if v is not None}


def run_ort(op: str, inputs: list, output_types: list[int], opset: int, **attributes) -> list[np.ndarray]:
    model, feeds = _model(op, inputs, output_types, opset, **attributes)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def run_evaluator(op: str, inputs: list, output_types: list[int], opset: int, initializers: dict | None = None,
                  **attributes) -> list[np.ndarray]:
    model, feeds = _model(op, inputs, output_types, opset, initializers, **attributes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ReferenceEvaluator(model).run(None, feeds)


def _rng(*parts: object) -> np.random.Generator:
    """A generator seeded from the test parameters (stable across processes, unlike hash())."""
    return np.random.default_rng(zlib.crc32(repr(parts).encode()))


def _random_ints(rng: np.random.Generator, dtype: type, shape: tuple[int, ...], high: int | None = None) -> np.ndarray:
    info = np.iinfo(dtype)
    return rng.integers(info.min, (info.max if high is None else high) + 1, shape).astype(dtype)


def _quantize_inputs(rng, granularity: str, x_dtype, scale_dtype, zp_dtype):
    """Random x with exact ties, huge values and +-inf, with scales of one granularity."""
    shape, axis, block = (3, 10, 4), -2, 0
    if granularity == "per_tensor":
        param_shape = ()
    elif granularity == "per_axis":
        param_shape = (10,)
    else:
        param_shape, block = (3, 3, 4), 4  # blocks of 4 along axis 1: 4, 4 and a partial 2
    exponent = rng.integers(-8, 2, param_shape)
    scale = (np.ldexp(1.0, exponent) * rng.choice([1.0, 1.5, 0.3, 0.7], param_shape)).astype(scale_dtype)
    info = np.iinfo(zp_dtype)
    zero_point = rng.integers(info.min, info.max + 1, param_shape).astype(zp_dtype)
    steps = rng.integers(-300, 300, shape) + rng.choice([0.0, 0.5, 0.25, 0.49], shape)
    scale_full = np.asarray(scale, np.float64)
    if granularity == "per_axis":
        scale_full = scale_full.reshape(1, 10, 1)
    elif granularity == "blocked":
        scale_full = np.repeat(scale_full, 4, axis=1)[:, :10]
    x = (steps * scale_full).astype(x_dtype)
    x.flat[:4] = [np.inf, -np.inf, 6e4, -6e4]
    return x, scale, zero_point, dict(axis=axis, block_size=block) if block else dict(axis=axis)


@needs_ort
@pytest.mark.parametrize("zp_dtype", [np.int8, np.uint8, np.int16, np.uint16])
@pytest.mark.parametrize("granularity", ["per_tensor", "per_axis", "blocked"])
@pytest.mark.parametrize(("x_dtype", "scale_dtype"), [(np.float32, np.float32), (np.float16, np.float16),
                                                      (np.float32, np.float16), (np.float16, np.float32)])
def test_quantize_linear_matches_onnxruntime(zp_dtype, granularity, x_dtype, scale_dtype) -> None:
    rng = _rng(zp_dtype.__name__, granularity, x_dtype.__name__, scale_dtype.__name__)
    for _ in range(5):
        x, scale, zero_point, attrs = _quantize_inputs(rng, granularity, x_dtype, scale_dtype, zp_dtype)
        (expected,) = run_ort("QuantizeLinear", [x, scale, zero_point], [_ELEM[np.dtype(zp_dtype)]], 25, **attrs)
        assert_bit_exact(quantize_linear(x, scale, zero_point, **attrs), expected)


@pytest.mark.parametrize("qtype", ["int4", "uint4", "int2", "uint2"])
@pytest.mark.parametrize("granularity", ["per_tensor", "per_axis", "blocked"])
def test_subbyte_quantize_dequantize_match_reference_evaluator(qtype: str, granularity: str) -> None:
    # onnxruntime's Python API has no int4/int2 arrays; ONNX's evaluator is right here for
    # finite inputs (it mishandles +-inf and huge values, see docs/ARITHMETIC.md).
    rng = _rng(qtype, granularity)
    itype = int_type(qtype)
    for _ in range(5):
        x, scale, _, attrs = _quantize_inputs(rng, granularity, np.float32, np.float32, np.int8)
        x = np.clip(x, -1e4, 1e4)
        zero_point = rng.integers(itype.qmin, itype.qmax + 1, scale.shape).astype(itype.container)
        zp_init = {2: (_QTYPE[qtype], list(zero_point.shape), zero_point.reshape(-1).tolist())}
        (expected,) = run_evaluator("QuantizeLinear", [x, scale, None], [_QTYPE[qtype]], 25, zp_init, **attrs)
        y = quantize_linear(x, scale, zero_point, output_dtype=qtype, **attrs)
        np.testing.assert_array_equal(y, expected.astype(itype.container), strict=True)
        y_init = {0: (_QTYPE[qtype], list(y.shape), y.reshape(-1).tolist()), **zp_init}
        (expected,) = run_evaluator("DequantizeLinear", [None, scale, None], [TensorProto.FLOAT], 25, y_init, **attrs)
        assert_bit_exact(dequantize_linear(y, scale, zero_point, **attrs), expected)


@needs_ort
@pytest.mark.parametrize("x_dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32])
@pytest.mark.parametrize("granularity", ["per_tensor", "per_axis", "blocked"])
@pytest.mark.parametrize("scale_dtype", [np.float32, np.float16])
def test_dequantize_linear_matches_onnxruntime_and_evaluator(x_dtype, granularity, scale_dtype) -> None:
    rng = _rng(x_dtype.__name__, granularity, scale_dtype.__name__)
    _, scale, zero_point, attrs = _quantize_inputs(rng, granularity, np.float32, scale_dtype, np.int8)
    x = _random_ints(rng, x_dtype, (3, 10, 4))
    zero_point = (np.zeros(scale.shape, x_dtype) if x_dtype is np.int32
                  else _random_ints(rng, x_dtype, scale.shape))
    ours = dequantize_linear(x, scale, zero_point, **attrs)
    (expected,) = run_ort("DequantizeLinear", [x, scale, zero_point], [_ELEM[np.dtype(scale_dtype)]], 25, **attrs)
    assert_bit_exact(ours, expected)
    (expected,) = run_evaluator("DequantizeLinear", [x, scale, zero_point], [_ELEM[np.dtype(scale_dtype)]], 25,
                                **attrs)
    assert_bit_exact(ours, expected)


@needs_ort
def test_dynamic_quantize_linear_matches_onnxruntime() -> None:
    rng = np.random.default_rng(17)
    arrays = [rng.normal(0, s, (7, 13)).astype(np.float32) for s in (1e-3, 0.1, 1, 30, 1e4)]
    arrays += [np.abs(arrays[2]), -np.abs(arrays[3]), np.zeros((4, 4), np.float32),
               np.array([-2.5, 0, 2.5], np.float32), np.array([1e-30, 3e-30], np.float32)]
    for x in arrays:
        expected = run_ort("DynamicQuantizeLinear", [x],
                           [TensorProto.UINT8, TensorProto.FLOAT, TensorProto.UINT8], 11)
        for got, want in zip(dynamic_quantize_linear(x), expected):
            assert_bit_exact(got, want)


def _mixed_pairs():
    # onnxruntime 1.32's AVX2 kernels multiply uint8 by int8 with a saturating int16
    # pair sum (vpmaddubsw): with a uint8 operand above 127 next to an int8 operand its
    # result is wrong (docs/ARITHMETIC.md). Those pairs are checked with uint8 <= 127
    # here, and at full range against ONNX's evaluator below.
    return [(np.uint8, np.uint8, None), (np.int8, np.int8, None), (np.int8, np.uint8, None),
            (np.uint8, np.int8, 127)]


@needs_ort
@pytest.mark.parametrize(("a_dtype", "b_dtype", "u8_high"), _mixed_pairs())
def test_matmul_integer_matches_onnxruntime(a_dtype, b_dtype, u8_high) -> None:
    rng = np.random.default_rng(19)
    for a_shape, b_shape in [((5, 33), (33, 7)), ((2, 3, 4, 17), (17, 6)), ((4, 9), (2, 9, 5)), ((8,), (8, 3))]:
        a = _random_ints(rng, a_dtype, a_shape, u8_high if a_dtype is np.uint8 else None)
        b = _random_ints(rng, b_dtype, b_shape)
        a_zp = _random_ints(rng, a_dtype, (), u8_high if a_dtype is np.uint8 else None)
        # onnxruntime accepts a per-column b zero point only for 2-D b.
        b_zp = _random_ints(rng, b_dtype, (b_shape[-1],) if len(b_shape) == 2 else ())
        if u8_high is not None:
            a_zp = np.zeros((), a_dtype)  # a zero point > 0 would also put |a - zp| above 127
        (expected,) = run_ort("MatMulInteger", [a, b, a_zp, b_zp], [TensorProto.INT32], 10)
        np.testing.assert_array_equal(matmul_integer(a, b, a_zp, b_zp), expected, strict=True)


@pytest.mark.parametrize(("a_dtype", "b_dtype"), [(np.uint8, np.int8), (np.int8, np.uint8)])
def test_matmul_and_conv_integer_full_range_mixed_signedness_match_evaluator(a_dtype, b_dtype) -> None:
    rng = np.random.default_rng(23)
    a = _random_ints(rng, a_dtype, (6, 40))
    b = _random_ints(rng, b_dtype, (40, 5))
    a[0] = np.iinfo(a_dtype).max
    b[:, 0] = np.iinfo(b_dtype).min
    zps = [_random_ints(rng, a_dtype, ()), _random_ints(rng, b_dtype, (5,))]
    (expected,) = run_evaluator("MatMulInteger", [a, b, *zps], [TensorProto.INT32], 10)
    np.testing.assert_array_equal(matmul_integer(a, b, *zps), expected, strict=True)
    x = _random_ints(rng, a_dtype, (2, 4, 6, 6))
    w = _random_ints(rng, b_dtype, (3, 4, 3, 3))
    zps = [_random_ints(rng, a_dtype, ()), _random_ints(rng, b_dtype, (3,))]
    (expected,) = run_evaluator("ConvInteger", [x, w, *zps], [TensorProto.INT32], 10, pads=[1, 0, 1, 2])
    np.testing.assert_array_equal(conv_integer(x, w, *zps, pads=[1, 0, 1, 2]), expected, strict=True)


@needs_ort
@pytest.mark.parametrize("qdtype", [np.uint8, np.int8])
@pytest.mark.parametrize("scale_dtype", [np.float32, np.float16])
def test_qlinear_matmul_matches_onnxruntime(qdtype, scale_dtype) -> None:
    rng = np.random.default_rng(29)
    for a_shape, b_shape, per_column in [((7, 40), (40, 9), False), ((2, 3, 16), (2, 16, 5), False),
                                         ((6, 24), (24, 8), True)]:
        a = _random_ints(rng, qdtype, a_shape)
        b = _random_ints(rng, qdtype, b_shape)
        n = b_shape[-1]
        b_param_shape = (n,) if per_column else ()
        args = [a, scale_dtype(rng.uniform(1e-3, 5e-2)), _random_ints(rng, qdtype, ()),
                b, rng.uniform(1e-3, 5e-2, b_param_shape).astype(scale_dtype), _random_ints(rng, qdtype, b_param_shape),
                scale_dtype(rng.uniform(0.05, 2.0)), _random_ints(rng, qdtype, ())]
        (expected,) = run_ort("QLinearMatMul", args, [_ELEM[np.dtype(qdtype)]], 21)
        np.testing.assert_array_equal(qlinear_matmul(*args), expected, strict=True)


_CONV_CASES = [
    ((2, 4, 9, 8), (6, 4, 3, 2), {}),
    ((1, 4, 9, 8), (6, 4, 3, 3), {"pads": [1, 0, 2, 1]}),
    ((1, 4, 9, 8), (6, 4, 2, 2), {"strides": [2, 1]}),
    ((1, 4, 9, 8), (6, 4, 3, 2), {"dilations": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 4, 9, 8), (6, 2, 3, 3), {"group": 2}),
    ((1, 4, 7, 7), (4, 1, 3, 3), {"group": 4, "auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 4, 8, 9), (6, 4, 2, 3), {"auto_pad": "SAME_LOWER", "strides": [2, 3]}),
    ((1, 4, 9, 8), (6, 4, 3, 2), {"auto_pad": "VALID", "strides": [1, 2]}),
    ((2, 3, 17), (5, 3, 4), {"strides": [3], "pads": [2, 1]}),
    ((1, 2, 5, 6, 4), (4, 1, 2, 3, 2), {"group": 2, "auto_pad": "SAME_UPPER"}),
]


@needs_ort
@pytest.mark.parametrize(("x_dtype", "w_dtype", "u8_high"),
                         [(np.uint8, np.uint8, None), (np.int8, np.int8, None), (np.uint8, np.int8, None),
                          (np.int8, np.uint8, 127)])
@pytest.mark.parametrize(("x_shape", "w_shape", "attrs"), _CONV_CASES)
def test_conv_integer_matches_onnxruntime(x_dtype, w_dtype, u8_high, x_shape, w_shape, attrs) -> None:
    # onnxruntime's ConvInteger takes only a per-tensor weight zero point, and is wrong for
    # int8 x with uint8 w above 127 (the vpmaddubsw saturation, operands swapped).
    rng = np.random.default_rng(31)
    x = _random_ints(rng, x_dtype, x_shape)
    w = _random_ints(rng, w_dtype, w_shape, u8_high if w_dtype is np.uint8 else None)
    x_zp = _random_ints(rng, x_dtype, ())
    w_zp = np.zeros((), w_dtype) if u8_high else _random_ints(rng, w_dtype, ())
    (expected,) = run_ort("ConvInteger", [x, w, x_zp, w_zp], [TensorProto.INT32], 10, **attrs)
    np.testing.assert_array_equal(conv_integer(x, w, x_zp, w_zp, **attrs), expected, strict=True)


@needs_ort
@pytest.mark.parametrize("qdtype", [np.uint8, np.int8])
@pytest.mark.parametrize(("x_shape", "w_shape", "attrs"), _CONV_CASES)
def test_qlinear_conv_matches_onnxruntime_and_evaluator(qdtype, x_shape, w_shape, attrs) -> None:
    rng = np.random.default_rng(37)
    m = w_shape[0]
    args = [_random_ints(rng, qdtype, x_shape), np.float32(rng.uniform(0.005, 0.05)), _random_ints(rng, qdtype, ()),
            _random_ints(rng, qdtype, w_shape), rng.uniform(1e-3, 1e-2, m).astype(np.float32),
            _random_ints(rng, qdtype, (m,)), np.float32(rng.uniform(0.1, 1.0)), _random_ints(rng, qdtype, ()),
            rng.integers(-20000, 20000, m).astype(np.int32)]
    ours = qlinear_conv(*args, **attrs)
    (expected,) = run_ort("QLinearConv", args, [_ELEM[np.dtype(qdtype)]], 10, **attrs)
    np.testing.assert_array_equal(ours, expected, strict=True)
    if len(x_shape) == 4:  # the evaluator's per-channel scale handling is 2-D only
        (expected,) = run_evaluator("QLinearConv", args, [_ELEM[np.dtype(qdtype)]], 10, **attrs)
        np.testing.assert_array_equal(ours, expected, strict=True)


@needs_ort
def test_where_onnxruntime_and_the_evaluator_disagree_qcore_follows_the_spec() -> None:
    """The documented disagreements (docs/ARITHMETIC.md); each asserts qcore's answer and
    that onnxruntime gives the same, with the evaluator's different answer in the comment."""
    # 1. QuantizeLinear saturates +-inf and huge values (evaluator: wraps through int32 -> qmin).
    x = np.array([np.inf, -np.inf, 3e9, 1e10], np.float32)
    ours = quantize_linear(x, np.float32(1), np.int8(3))
    np.testing.assert_array_equal(ours, np.array([127, -128, 127, 127], np.int8), strict=True)
    np.testing.assert_array_equal(ours, run_ort("QuantizeLinear", [x, np.float32(1), np.int8(3)],
                                                [TensorProto.INT8], 25)[0], strict=True)
    # 2. float32 x with a float16 scale divides in float16 (evaluator: float32 -> [197, 321]).
    x = np.array([59.25, 96.1875], np.float32)
    args = [x, np.float16(0.3), np.int16(0)]
    ours = quantize_linear(*args)
    np.testing.assert_array_equal(ours, np.array([198, 320], np.int16), strict=True)
    np.testing.assert_array_equal(ours, run_ort("QuantizeLinear", args, [TensorProto.INT16], 25)[0], strict=True)
    # 3. QLinearMatMul rounds before adding the zero point (evaluator: 0.5 + 1 -> 2).
    one = np.array([[1]], np.uint8)
    args = [one, np.float32(1), np.uint8(0), one, np.float32(1), np.uint8(0), np.float32(2), np.uint8(1)]
    assert qlinear_matmul(*args)[0, 0] == 1 == run_ort("QLinearMatMul", args, [TensorProto.UINT8], 21)[0][0, 0]
    # 4. ... and multiplies in float32 (evaluator: float64, 5 * 0.1f = 0.50000000745 -> 1).
    args = [np.array([[5]], np.uint8), np.float32(0.1), np.uint8(0), one, np.float32(1), np.uint8(0),
            np.float32(1), np.uint8(0)]
    assert qlinear_matmul(*args)[0, 0] == 0 == run_ort("QLinearMatMul", args, [TensorProto.UINT8], 21)[0][0, 0]
    # 5. All-zero DynamicQuantizeLinear: scale 1.0 like onnxruntime (evaluator: 1/255).
    x = np.zeros(3, np.float32)
    assert dynamic_quantize_linear(x)[1] == np.float32(1.0) == run_ort(
        "DynamicQuantizeLinear", [x], [TensorProto.UINT8, TensorProto.FLOAT, TensorProto.UINT8], 11)[1]
