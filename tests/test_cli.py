"""The qcore command line: each command, and one-line errors with a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import qcore
from qcore.cli import main

sys.path.insert(0, os.path.dirname(__file__))
mb = pytest.importorskip("model_builders")
import onnx  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    onnx_path = folder / "mlp.onnx"
    onnx.save(mb.mlp(rng), onnx_path)
    calib = folder / "calib.npz"
    np.savez(calib, input=rng.normal(size=(100, 64)).astype(np.float32))
    x = rng.normal(size=(5, 64)).astype(np.float32)
    np.save(folder / "x.npy", x)
    np.savez(folder / "feeds.npz", input=x)
    return folder


def run_cli(*args):
    return main([str(a) for a in args])


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qcore: error: "), err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize("mode_args", [
    ["--mode", "dynamic"],
    ["--mode", "dynamic", "--per-tensor", "--per-row"],
    ["--mode", "static", "--calibration", "CALIB", "--method", "percentile"],
    ["--mode", "static", "--calibration", "CALIB", "--symmetric-activations", "--exclude", "fc_last"],
    ["--mode", "weight-only", "--weight-bits", "4", "--block-size", "16"],
])
def test_quantize_run_inspect(files, tmp_path, capsys, mode_args):
    out = tmp_path / "m.qcm"
    mode_args = [str(files / "calib.npz") if a == "CALIB" else a for a in mode_args]
    assert run_cli("quantize", files / "mlp.onnx", "-o", out, *mode_args) == 0
    assert "quantized layers" in capsys.readouterr().out
    result = tmp_path / "r.npz"
    assert run_cli("run", out, "--input", f"input={files / 'x.npy'}", "-o", result) == 0
    from qcore.api import load

    expected = load(out).run({"input": np.load(files / "x.npy")})
    with np.load(result) as got:
        assert got.files == ["probs"]
        np.testing.assert_array_equal(got["probs"], expected["probs"], strict=True)
    capsys.readouterr()
    assert run_cli("inspect", out) == 0
    text = capsys.readouterr().out
    assert "quantized layers:" in text and "tensor data:" in text and "scale[" in text


@pytest.mark.parametrize("scale_dtype", ["float16", "float32"])
def test_quantize_scale_dtype(files, tmp_path, capsys, scale_dtype):
    from qcore.api import load

    out = tmp_path / "m.qcm"
    assert run_cli("quantize", files / "mlp.onnx", "-o", out, "--scale-dtype", scale_dtype) == 0
    scales = [t.scale for t in load(out).graph.initializers.values() if hasattr(t, "scale")]
    assert scales and all(s.dtype == np.float32 for s in scales)  # widened on load
    exact = all(np.array_equal(s.astype(np.float16).astype(np.float32), s) for s in scales)
    assert exact == (scale_dtype == "float16")


def test_run_with_feeds_npz_and_profile(files, tmp_path, capsys):
    out = tmp_path / "m.qcm"
    assert run_cli("quantize", files / "mlp.onnx", "-o", out) == 0
    assert run_cli("run", out, "--inputs", files / "feeds.npz", "-o", tmp_path / "r.npz", "--profile") == 0
    assert "per node" in capsys.readouterr().err


def test_compare_reports_worst_layers_first(files, tmp_path, capsys):
    out = tmp_path / "m.qcm"
    assert run_cli("quantize", files / "mlp.onnx", "-o", out, "--mode", "static", "--calibration",
                   files / "calib.npz") == 0
    capsys.readouterr()
    assert run_cli("compare", files / "mlp.onnx", out, "--data", files / "calib.npz") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:3] == ["layer", "op", "SQNR"]
    rows = [line.split() for line in lines[1:] if not line.startswith("output")]
    sqnr = [float(r[2]) for r in rows]
    assert len(rows) == 3 and sqnr == sorted(sqnr)
    assert all(float(r[4]) <= 0.5 + 1e-6 for r in rows)  # calibrated on the same data: nothing clipped
    assert any(line.startswith("output probs") for line in lines)


@pytest.mark.parametrize("args, message", [
    (["quantize", "MISSING", "-o", "OUT"], "file not found"),
    (["quantize", "CORRUPT", "-o", "OUT"], "not a readable ONNX model"),
    (["quantize", "MLP", "-o", "OUT", "--mode", "static"], "needs --calibration"),
    (["quantize", "MLP", "-o", "OUT", "--mode", "static", "--calibration", "BADCALIB"], "lacks model input(s) 'input'"),
    (["quantize", "MLP", "-o", "OUT", "--weight-bits", "4"], "needs --mode weight-only"),
    (["quantize", "MLP", "-o", "OUT", "--mode", "transformer"], "--mode transformer needs --calibration"),
    (["quantize", "MLP", "-o", "OUT", "--mode", "transformer", "--per-tensor", "--scale-dtype", "float32"],
     "--per-tensor, --scale-dtype: not an option of --mode transformer"),
    (["quantize", "MLP", "-o", "OUT", "--mode", "transformer", "--block-size", "32"],
     "--block-size: not an option of --mode transformer"),
    (["quantize", "MLP", "-o", "OUT", "--mode", "transformer", "--weight-bits", "4", "--block-size", "-4",
      "--calibration", "CALIB"], "block_size must be an integer >= 1"),
    (["quantize", "MLP", "-o", "OUT", "--mode", "transformer", "--calibration", "BADCALIB"],
     "unknown input name(s) 'other'"),
    (["quantize", "MLP", "-o", "OUT", "--exclude", "nope"], "--exclude nope"),
    (["quantize", "UNSUPPORTED", "-o", "OUT"], "unsupported operators: TopK (nodes: topk)"),
    (["run", "QCM", "--input", "wrong=X", "-o", "OUT"], "unknown input name(s) 'wrong'"),
    (["run", "QCM", "--input", "input=XBAD", "-o", "OUT"], "must have shape [batch, 64], got (5, 3)"),
    (["run", "QCM", "--input", "input=XINT", "-o", "OUT"], "must be float32, got int64"),
    (["run", "QCM", "--input", "input", "-o", "OUT"], "expects NAME=FILE.npy"),
    (["run", "CORRUPTQCM", "--input", "input=X", "-o", "OUT"], ""),
    (["inspect", "MISSING"], "file not found"),
    (["compare", "MLP", "QCM", "--data", "MISSING"], "not found"),
])
def test_errors_are_one_line(files, tmp_path, capsys, args, message):
    from onnx import TensorProto, helper

    qcm = tmp_path / "m.qcm"
    assert run_cli("quantize", files / "mlp.onnx", "-o", qcm) == 0
    corrupt_qcm = tmp_path / "bad.qcm"
    data = bytearray(qcm.read_bytes())
    data[100] ^= 0x55
    corrupt_qcm.write_bytes(bytes(data))
    (tmp_path / "bad.onnx").write_bytes(b"\x01\x02garbage")
    np.savez(tmp_path / "badcalib.npz", other=np.zeros((4, 64), np.float32))
    np.save(tmp_path / "xbad.npy", np.zeros((5, 3), np.float32))
    np.save(tmp_path / "xint.npy", np.zeros((5, 64), np.int64))
    graph = helper.make_graph([helper.make_node("TopK", ["x", "k"], ["v", "i"], name="topk")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("v", TensorProto.FLOAT, None)],
                              [helper.make_tensor("k", TensorProto.INT64, [1], [1])])
    onnx.save(helper.make_model(graph), tmp_path / "unsupported.onnx")
    subst = {"MISSING": tmp_path / "missing.onnx", "CORRUPT": tmp_path / "bad.onnx", "OUT": tmp_path / "out.qcm",
             "MLP": files / "mlp.onnx", "BADCALIB": tmp_path / "badcalib.npz", "QCM": qcm,
             "CALIB": files / "calib.npz",
             "UNSUPPORTED": tmp_path / "unsupported.onnx", "CORRUPTQCM": corrupt_qcm,
             "wrong=X": f"wrong={files / 'x.npy'}", "input=X": f"input={files / 'x.npy'}",
             "input=XBAD": f"input={tmp_path / 'xbad.npy'}", "input=XINT": f"input={tmp_path / 'xint.npy'}"}
    capsys.readouterr()
    assert run_cli(*[subst.get(a, a) for a in args]) == 1
    assert message in one_error_line(capsys)


@pytest.mark.parametrize("bits", [8, 4])
def test_quantize_transformer_recipe_from_padded_calibration(tmp_path, capsys, bits):
    """``--mode transformer`` cuts each padded calibration sample to its attention mask and
    builds what ``quantize_transformer`` builds from the unpadded feeds; ``qcore run`` runs it."""
    from qcore.api import load
    from qcore.graph import import_onnx
    from qcore.graph.transformer import quantize_transformer, sample_feeds

    rng = np.random.default_rng(3)
    proto = mb.transformer(rng, positions="gather", layers=1)
    onnx.save(proto, tmp_path / "encoder.onnx")
    batches = [mb.transformer_feeds(rng, batch=3) for _ in range(3)]
    calibration = {name: np.concatenate([b[name] for b in batches]) for name in batches[0]}
    calibration["attention_mask"][4] = 0  # an all-padding sample is skipped
    np.savez(tmp_path / "calib.npz", **calibration)
    out = tmp_path / "encoder.qcm"
    extra = ["--weight-bits", "4", "--block-size", "16"] if bits == 4 else []
    assert run_cli("quantize", tmp_path / "encoder.onnx", "-o", out, "--mode", "transformer",
                   "--calibration", tmp_path / "calib.npz", *extra) == 0
    assert "transformer" in capsys.readouterr().out
    feeds = sample_feeds(calibration)
    assert len(feeds) == 8 and [f["input_ids"].shape[1] for f in feeds[:3]] == [8, 7, 6]
    expected = quantize_transformer(import_onnx(proto), feeds, weight_bits=bits, block_size=16)
    evaluation = mb.transformer_feeds(rng, batch=2)
    np.savez(tmp_path / "feeds.npz", **evaluation)
    assert run_cli("run", out, "--inputs", tmp_path / "feeds.npz", "-o", tmp_path / "r.npz") == 0
    with np.load(tmp_path / "r.npz") as result:
        np.testing.assert_array_equal(result["hidden"], expected.run(evaluation)["hidden"])
    assert load(out).graph.op_counts().get("QMatMul" if bits == 8 else "WMatMul", 0) == 6


def test_sample_feeds_errors():
    from qcore.errors import CalibrationError
    from qcore.graph.transformer import sample_feeds

    with pytest.raises(CalibrationError, match="no arrays"):
        sample_feeds({})
    with pytest.raises(CalibrationError, match="common sample axis"):
        sample_feeds({"a": np.zeros((2, 3)), "b": np.zeros((3, 3))})
    with pytest.raises(CalibrationError, match="common sample axis"):
        sample_feeds({"a": np.float32(1.0)})
    with pytest.raises(CalibrationError, match="nonzero 'attention_mask'"):
        sample_feeds({"input_ids": np.ones((2, 4), np.int64), "attention_mask": np.zeros((2, 4), np.int64)})
    with pytest.raises(CalibrationError, match="padding before a real position"):
        sample_feeds({"input_ids": np.ones((2, 4), np.int64), "attention_mask": np.array([[1, 1, 0, 0], [0, 1, 1, 1]])})
    with pytest.raises(CalibrationError, match="no samples"):
        sample_feeds({"x": np.zeros((0, 3))})
    cut = sample_feeds({"input_ids": np.ones((1, 4), np.int64), "attention_mask": np.array([[1, 1, 0, 0]]),
                        "bias": np.zeros((1, 4, 4), np.float32)})
    assert cut[0]["input_ids"].shape == (1, 2) and cut[0]["bias"].shape == (1, 4, 4)  # only the mask's shape is cut
    plain = sample_feeds({"x": np.arange(6.0).reshape(3, 2)})  # no mask: every sample as it is
    assert [f["x"].tolist() for f in plain] == [[[0.0, 1.0]], [[2.0, 3.0]], [[4.0, 5.0]]]


def test_console_entry_point_exit_status(tmp_path):
    # the tested package first on the path, run outside the source tree (which may be unbuilt)
    package_parent = str(Path(qcore.__file__).parents[1])
    proc = subprocess.run([sys.executable, "-m", "qcore.cli", "inspect", str(tmp_path / "none.qcm")],
                          capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": package_parent})
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"qcore: error: file not found: {tmp_path / 'none.qcm'}"


def test_demo_runs_without_onnx(capsys, monkeypatch):
    # the demo reads its bundled float .qcm: hide onnx to prove it is not needed
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert run_cli("demo") == 0
    out = capsys.readouterr().out
    assert "accuracy on 540 held-out images" in out and "file size" in out and "latency" in out
    import re

    f, i = (float(v) for v in re.search(r"float ([\d.]+) %\s+int8 ([\d.]+) %", out).groups())
    assert abs(f - i) <= 0.5


def test_progress_bar_on_stderr(files, tmp_path, capsys):
    assert run_cli("quantize", files / "mlp.onnx", "-o", tmp_path / "m.qcm", "--mode", "static",
                   "--calibration", files / "calib.npz", "--batch-size", "10") == 0
    err = capsys.readouterr().err
    assert "calibrating [" in err and "10/10" in err and "quantizing weights [" in err and "3/3" in err
