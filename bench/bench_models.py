"""Model benchmark: the digits CNN run by qcore (int8, float) and onnxruntime float32.

Same model, same batch, same process run. Run (a minute or two on 2 shared cores)::

    OPENBLAS_NUM_THREADS=1 QCORE_NUM_THREADS=1 PYTHONPATH=$PWD pytest bench/bench_models.py \
        --benchmark-enable --benchmark-json=/tmp/models.json
    python bench/bench_models.py /tmp/models.json     # markdown tables

The CNN is tests/digits_models.py's (PyTorch-trained on scikit-learn's 8x8 digits, needs
torch the first time; cached in pytest's cache). The int8 model is the static,
per-channel quantization `qcore quantize --mode static` produces, saved to .qcm and
opened with ``qcore.load`` (the `qcore run` path); `test_qcore_cli_run` times the
command itself (open, run, write .npz). onnxruntime runs with one intra-op thread.

Every entry records ``extra_info``: engine, batch, the CPU path of the C kernels (isa),
held-out accuracy of the outputs, and whether the int8 outputs are bit-identical to the
NumPy engine of the runtime ("exact"). The size entry records file sizes and ratios.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections import defaultdict

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

BATCHES = (1, 64, 540)


@pytest.fixture(scope="module")
def setup(request, tmp_path_factory):
    if importlib.util.find_spec("sklearn") is None or importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("needs scikit-learn and onnxruntime")
    import digits_models as dm

    import qcore.graph.quantize as q
    from qcore.api import load
    from qcore.runtime import Model

    data = dm.load_digits_split()
    cache = str(request.config.cache.mkdir("qcore_digits_models"))
    if not os.path.exists(os.path.join(cache, f"digits_cnn_{dm.CACHE_VERSION}.onnx")) and \
            importlib.util.find_spec("torch") is None:
        pytest.skip("the digits CNN needs torch to train once")
    onnx_path = dm.cnn_onnx(cache, data)
    folder = tmp_path_factory.mktemp("bench_models")
    float_model = Model.from_onnx(onnx_path)
    images = data.x_test.reshape(-1, 1, 8, 8)
    int8_path = str(folder / "cnn_int8.qcm")
    q.quantize_static(float_model, {"image": data.x_train[:300].reshape(-1, 1, 8, 8)}).save(int8_path)
    feeds_path = str(folder / "feeds.npz")
    np.savez(feeds_path, image=images)
    return {"dm": dm, "data": data, "onnx": onnx_path, "float": float_model, "int8": load(int8_path),
            "int8_path": int8_path, "images": images, "feeds": feeds_path, "folder": folder, "q": q}


def _isa() -> str:
    from qcore._native import default_isa

    return default_isa()


@pytest.mark.parametrize("batch", BATCHES)
def test_onnxruntime_float32(benchmark, setup, batch):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(setup["onnx"], options, providers=["CPUExecutionProvider"])
    x = setup["images"][:batch]
    out = benchmark(session.run, None, {"image": x})[0]
    benchmark.group = f"digits CNN batch {batch}"
    benchmark.extra_info.update(engine="onnxruntime float32", batch=batch, isa="-",
                                accuracy=setup["dm"].accuracy(out, setup["data"].y_test[:batch]), exact="-")


@pytest.mark.parametrize("batch", BATCHES)
def test_qcore_float32(benchmark, setup, batch):
    x = {"image": setup["images"][:batch]}
    out = benchmark(setup["float"].run, x)["logits"]
    benchmark.group = f"digits CNN batch {batch}"
    benchmark.extra_info.update(engine="qcore float32", batch=batch, isa="-",
                                accuracy=setup["dm"].accuracy(out, setup["data"].y_test[:batch]), exact="-")


@pytest.mark.parametrize("batch", BATCHES)
def test_qcore_int8(benchmark, setup, batch):
    from qcore.runtime import kernels

    model = setup["int8"]
    x = {"image": setup["images"][:batch]}
    out = benchmark(model.run, x)["logits"]
    # the same model with every integer product on the NumPy engine must give the same bits
    from qcore.runtime import Model

    saved = kernels.C_MAX_GROUPS
    try:
        kernels.C_MAX_GROUPS = 0  # "auto" then picks the NumPy engine for every layer
        ref = Model(model.graph).run(x)["logits"]
    finally:
        kernels.C_MAX_GROUPS = saved
    benchmark.group = f"digits CNN batch {batch}"
    benchmark.extra_info.update(engine="qcore int8 static", batch=batch, isa=_isa(),
                                accuracy=setup["dm"].accuracy(out, setup["data"].y_test[:batch]),
                                exact=bool(np.array_equal(out, ref)))


def test_qcore_cli_run(benchmark, setup):
    from qcore.cli import main

    out = str(setup["folder"] / "result.npz")
    status = benchmark(main, ["run", setup["int8_path"], "--inputs", setup["feeds"], "-o", out])
    assert status == 0
    benchmark.group = "digits CNN batch 540"
    with np.load(out) as result:
        acc = setup["dm"].accuracy(result["logits"], setup["data"].y_test)
    benchmark.extra_info.update(engine="qcore run (CLI: open .qcm, run, write .npz)", batch=540, isa=_isa(),
                                accuracy=acc, exact="-")


def test_file_sizes(benchmark, setup):
    q = setup["q"]
    model = setup["float"]
    folder = setup["folder"]
    onnx_size = os.path.getsize(setup["onnx"])
    variants = {
        "static int8": lambda: q.quantize_static(model, {"image": setup["data"].x_train[:300].reshape(-1, 1, 8, 8)}),
        "dynamic int8": lambda: q.quantize_dynamic(model, op_types=("MatMul", "Conv")),
        "weight-only int8": lambda: q.quantize_weight_only(model),
        "weight-only int4 per channel": lambda: q.quantize_weight_only(model, bits=4),
        "weight-only int4 block 32": lambda: q.quantize_weight_only(model, bits=4, block_size=32),
        "float (qcm)": lambda: model,
    }
    sizes = {}
    for name, make in variants.items():
        path = str(folder / "size.qcm")
        make().save(path)
        sizes[name] = os.path.getsize(path)
    benchmark.pedantic(lambda: None, rounds=1)
    benchmark.group = "file sizes"
    benchmark.extra_info.update(onnx_bytes=onnx_size, **{f"{k} bytes": v for k, v in sizes.items()},
                                **{f"{k} ratio": round(v / onnx_size, 4) for k, v in sizes.items()})


def report(json_path: str) -> str:
    """Markdown tables from a --benchmark-json file."""
    with open(json_path) as fh:
        doc = json.load(fh)
    rows = defaultdict(dict)
    lines = []
    for bench in doc["benchmarks"]:
        info = bench["extra_info"]
        if "onnx_bytes" in info:
            onnx_size = info["onnx_bytes"]
            lines += ["", "| file | bytes | x float ONNX |", "|---|---|---|", f"| float ONNX | {onnx_size} | 1 |"]
            for key, value in info.items():
                if key.endswith(" bytes") and key != "onnx_bytes":
                    name = key[:-6]
                    lines.append(f"| {name} | {value} | {info[name + ' ratio']:.3f} |")
            continue
        rows[info["batch"]][info["engine"]] = (bench["stats"]["min"], bench["stats"]["median"], info)
    table = ["| batch | engine | best ms | median ms | vs onnxruntime float32 | accuracy % | isa | exact |",
             "|---|---|---|---|---|---|---|---|"]
    for batch in sorted(rows):
        base = rows[batch].get("onnxruntime float32", (None,))[0]
        for engine, (best, median, info) in rows[batch].items():
            ratio = f"{base / best:.2f}x" if base else "-"
            table.append(f"| {batch} | {engine} | {best * 1e3:.3f} | {median * 1e3:.3f} | {ratio} | "
                         f"{info['accuracy']:.2f} | {info['isa']} | {info['exact']} |")
    return "\n".join(table + lines)


if __name__ == "__main__":
    print(report(sys.argv[1]))
