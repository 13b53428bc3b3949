"""Models nobody in the project wrote: digits MLP (scikit-learn) and CNN (PyTorch).

Accuracy targets (held-out 30 % of scikit-learn's digits, 540 images): static int8 with
per-channel weights within 0.5 points of the float model; dynamic and weight-only int8
within 0.3. Trained models are cached in pytest's cache directory.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("onnx")
sys.path.insert(0, os.path.dirname(__file__))
import digits_models as dm  # noqa: E402
import model_builders as mb  # noqa: E402

import qcore.graph.quantize as q  # noqa: E402
from qcore.runtime import Model  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return dm.load_digits_split()


@pytest.fixture(scope="module")
def cache_dir(request):
    return str(request.config.cache.mkdir("qcore_digits_models"))


@pytest.fixture(scope="module")
def mlp_path(cache_dir, data):
    return dm.mlp_onnx(cache_dir, data)


@pytest.fixture(scope="module")
def cnn_path(cache_dir, data):
    import importlib.util

    if importlib.util.find_spec("torch") is None:  # find, not import: a cached model needs no torch
        pytest.skip("PyTorch is not installed")
    return dm.cnn_onnx(cache_dir, data)


def _accuracies(path, data, shape):
    import onnx

    float_model = Model.from_onnx(path)
    name = float_model.input_names[0]
    x_test = data.x_test.reshape(shape)
    calibration = {name: data.x_train[:300].reshape(shape)}
    # the float runtime agrees with onnxruntime on this model too
    expected = mb.run_onnxruntime(onnx.load(path), {name: x_test})["logits"]
    got = float_model.run({name: x_test})["logits"]
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
    acc = {"float": dm.accuracy(got, data.y_test)}
    variants = {
        "static": q.quantize_static(float_model, calibration, per_channel=True),
        "dynamic": q.quantize_dynamic(float_model, op_types=("MatMul", "Conv")),
        "weight_only_int8": q.quantize_weight_only(float_model, bits=8),
    }
    for label, model in variants.items():
        acc[label] = dm.accuracy(model.run({name: x_test})["logits"], data.y_test)
    return acc, variants


def _check(acc):
    assert acc["float"] > 90
    assert abs(acc["static"] - acc["float"]) <= 0.5, acc
    assert abs(acc["dynamic"] - acc["float"]) <= 0.3, acc
    assert abs(acc["weight_only_int8"] - acc["float"]) <= 0.3, acc


def test_digits_mlp_accuracy(mlp_path, data):
    acc, variants = _accuracies(mlp_path, data, (-1, 64))
    _check(acc)
    assert variants["static"].graph.op_counts() == {"QMatMul": 3, "Relu": 2}


@pytest.mark.torch
def test_digits_cnn_accuracy(cnn_path, data):
    acc, variants = _accuracies(cnn_path, data, (-1, 1, 8, 8))
    _check(acc)
    ops = variants["static"].graph.op_counts()
    assert ops["QConv"] == 3 and ops["QMatMul"] == 2 and "Conv" not in ops


@pytest.mark.torch
def test_digits_cnn_saved_model_runs_with_any_batch(cnn_path, data, tmp_path):
    float_model = Model.from_onnx(cnn_path)
    model = q.quantize_static(float_model, {"image": data.x_train[:128].reshape(-1, 1, 8, 8)})
    path = tmp_path / "cnn.qcm"
    model.save(path)
    loaded = Model.load(path)
    for batch in (1, 3, 64):
        x = data.x_test[:batch].reshape(-1, 1, 8, 8)
        np.testing.assert_array_equal(loaded.run({"image": x})["logits"], model.run({"image": x})["logits"],
                                      strict=True)


def test_calibration_errors(mlp_path, data):
    from qcore.errors import CalibrationError

    float_model = Model.from_onnx(mlp_path)
    with pytest.raises(CalibrationError, match="lacks model input.*'pixels'.*it has 'x'"):
        q.quantize_static(float_model, {"x": data.x_train[:10]})
    with pytest.raises(CalibrationError, match="no samples"):
        q.quantize_static(float_model, {"pixels": data.x_train[:0]})
    with pytest.raises(CalibrationError, match=r"batch 0: input 'pixels' must have shape"):
        q.quantize_static(float_model, {"pixels": data.x_train[:10, :32]})
    with pytest.raises(CalibrationError, match="no batches"):
        q.quantize_static(float_model, [])
    with pytest.raises(ValueError, match="unknown calibration method 'kl'"):
        q.quantize_static(float_model, {"pixels": data.x_train[:10]}, method="kl")


@pytest.mark.parametrize("method", ["percentile", "mse", "entropy", "moving_average"])
def test_digits_mlp_other_calibration_methods(mlp_path, data, method):
    float_model = Model.from_onnx(mlp_path)
    base = dm.accuracy(float_model.run({"pixels": data.x_test})["logits"], data.y_test)
    model = q.quantize_static(float_model, {"pixels": data.x_train[:300]}, method=method, batch_size=50)
    assert model.graph.metadata["quantization"]["method"] == method
    assert abs(dm.accuracy(model.run({"pixels": data.x_test})["logits"], data.y_test) - base) <= 1.0


def test_exclusions_keep_float(mlp_path, data):
    float_model = Model.from_onnx(mlp_path)
    model = q.quantize_dynamic(float_model, exclude_nodes=["fc2"])
    assert model.graph.op_counts()["QMatMul"] == 2 and model.graph.op_counts()["MatMul"] == 1
    model = q.quantize_dynamic(float_model, exclude_op_types=["MatMul"])
    assert "QMatMul" not in model.graph.op_counts()
    from qcore.errors import ModelError

    with pytest.raises(ModelError, match="no such node: nope"):
        q.quantize_dynamic(float_model, exclude_nodes=["nope"])
