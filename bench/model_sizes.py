"""Where the bytes of quantized model files go, and their size against the float ONNX file.

    PYTHONPATH=$PWD python bench/model_sizes.py [--minilm] [--out DIR]

Prints, for the digits CNN (tests/digits_models.py; needs its cached ONNX export or
torch to train it) and a MiniLM-sized encoder block (tests/model_builders.py), the file
size of each quantization mode as a ratio of the float ONNX file, and for every file a
breakdown: tensor data, scales, zero points, directory records, names, alignment
padding, metadata, and inside the graph pack (docs/GRAPH.md) the compressed structure
and the packed data / scales / zero points / padding. ``--minilm`` adds the real
all-MiniLM-L6-v2 (tests/minilm_support.py; torch, transformers): qcore int8 and int4
(blocks of 32 and 64) against onnxruntime's dynamic int8 per-channel file, built in the
same run. ``--out DIR`` keeps the files there.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def breakdown(path: Path) -> collections.Counter:
    """Bytes of the file by what they hold (they sum to the file size)."""
    from qcore.format import layout as L
    from qcore.format import load_tensors
    from qcore.graph.serialize import PACK_STRUCTURE_KEY, PACK_TENSOR

    parts: collections.Counter = collections.Counter()
    size = path.stat().st_size
    with load_tensors(path, verify=False) as f:
        infos = f.infos()
        for info in infos:
            parts[f"{info.role} bytes"] += info.nbytes
            parts["padding (64-byte alignment)"] += L.align(info.nbytes) - info.nbytes
            parts["records + name index"] += L.RECORD_SIZE + 4
            parts["names"] += len(info.name.encode()) + 1
        parts["preamble"] = L.PREAMBLE_SIZE
        parts["metadata"] = size - sum(parts.values())
        if PACK_TENSOR in f:
            pack = f[PACK_TENSOR]
            head = int(f.metadata[PACK_STRUCTURE_KEY])
            doc = json.loads(zlib.decompress(pack[:head].tobytes()))
            parts["data bytes"] -= pack.size
            parts["pack: structure (zlib)"] = head
            inner = collections.Counter()
            cursor = head
            for entry in doc["packed"]:
                name, dtype, shape = entry[0], entry[1], entry[2]
                count = int(np.prod(shape))
                etype = L.ELEMENT_TYPES_BY_NAME[dtype]
                runs = [("pack: data", 1 if etype.packed else etype.numpy.itemsize, etype.byte_size(count))]
                if len(entry) > 3:
                    axis, block, _, scale_dtype, has_zp, scale_shape = entry[3]
                    if axis is None:
                        scales = int(np.prod(scale_shape))
                    elif block:
                        scales = count // shape[axis] * -(-shape[axis] // block)
                    else:
                        scales = shape[axis]
                    runs.append(("pack: scales", 2 if scale_dtype == "float16" else 4,
                                 scales * (2 if scale_dtype == "float16" else 4)))
                    if has_zp:
                        width = L.ELEMENT_TYPES[etype.zero_point_code].numpy.itemsize
                        runs.append(("pack: zero points", width, scales * width))
                for label, alignment, nbytes in runs:
                    at = -(-cursor // alignment) * alignment
                    inner["pack: padding"] += at - cursor
                    inner[label] += nbytes
                    cursor = at + nbytes
            parts.update(inner)
            parts["pack: tensors"] = len(doc["packed"])
    return parts


def describe(label: str, path: Path, onnx_size: int, lines: list[str]) -> None:
    size = path.stat().st_size
    lines.append(f"{label}: {size:,} bytes = {size / onnx_size:.4f}x of the float ONNX file ({onnx_size:,})")
    parts = breakdown(path)
    count = parts.pop("pack: tensors", 0)
    for key, value in sorted(parts.items(), key=lambda kv: -kv[1]):
        if value:
            lines.append(f"    {key:30s} {value:12,d}  {100 * value / size:6.2f} %")
    if count:
        lines.append(f"    ({count} initializers in the pack)")


def small_models(workdir: Path, lines: list[str]) -> None:
    import onnx

    import digits_models as dm
    import model_builders as mb
    import qcore.graph.quantize as q
    from qcore.runtime import Model

    data = dm.load_digits_split()
    cache = os.environ.get("QCORE_DIGITS_CACHE", str(ROOT / ".pytest_cache" / "d" / "qcore_digits_models"))
    os.makedirs(cache, exist_ok=True)
    cnn = Path(dm.cnn_onnx(cache, data))
    encoder = workdir / "encoder.onnx"
    onnx.save(mb.transformer(np.random.default_rng(0), vocab=1000, hidden=384, heads=6, ffn=1536, layers=2,
                             positions="gather"), encoder)
    calibration = {"image": data.x_train[:128].reshape(-1, 1, 8, 8)}
    for name, onnx_path, modes in [
        ("digits CNN", cnn, [("static int8 per channel", lambda m: q.quantize_static(m, calibration)),
                             ("weight-only int8", lambda m: q.quantize_weight_only(m)),
                             ("weight-only int4 block 32", lambda m: q.quantize_weight_only(m, bits=4, block_size=32)),
                             ("weight-only int4 block 64", lambda m: q.quantize_weight_only(m, bits=4, block_size=64)),
                             ("static int8, float32 scales, no pack",
                              lambda m: q.quantize_static(m, calibration, scale_dtype="float32"))]),
        ("encoder block", encoder, [("dynamic int8", lambda m: q.quantize_dynamic(m)),
                                    ("weight-only int8", lambda m: q.quantize_weight_only(m)),
                                    ("weight-only int4 block 32",
                                     lambda m: q.quantize_weight_only(m, bits=4, block_size=32)),
                                    ("weight-only int4 block 64",
                                     lambda m: q.quantize_weight_only(m, bits=4, block_size=64))]),
    ]:
        model = Model.from_onnx(onnx_path)
        for label, make in modes:
            out = workdir / f"{name}-{label}.qcm".replace(" ", "_").replace(",", "")
            make(model).save(out, pack_limit=0 if "no pack" in label else None)
            describe(f"{name}, {label}", out, onnx_path.stat().st_size, lines)


def minilm(workdir: Path, lines: list[str]) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    import minilm_support
    from qcore.graph import import_onnx
    from qcore.graph.transformer import quantize_transformer

    float_path = minilm_support.onnx_model_path()
    ort = workdir / "ort-int8-per-channel.onnx"
    quantize_dynamic(str(float_path), str(ort), per_channel=True, weight_type=QuantType.QInt8)
    ort_size = ort.stat().st_size
    lines.append(f"MiniLM float ONNX {float_path.stat().st_size:,} bytes; onnxruntime int8 dynamic per-channel "
                 f"{ort_size:,} bytes")
    graph = import_onnx(str(float_path))
    for label, kwargs in [("int8", dict(weight_bits=8)), ("int4 block 32", dict(weight_bits=4, block_size=32)),
                          ("int4 block 64", dict(weight_bits=4, block_size=64))]:
        out = workdir / f"minilm-{label.replace(' ', '_')}.qcm"
        calibration = minilm_support.calibration_feeds(paragraphs=kwargs["weight_bits"] == 4)
        quantize_transformer(graph, calibration, **kwargs).save(out)
        size = out.stat().st_size
        lines.append(f"MiniLM qcore {label}: {size:,} bytes = {size / ort_size:.4f}x of onnxruntime int8")
        describe(f"MiniLM qcore {label}", out, float_path.stat().st_size, lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minilm", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.out or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        small_models(workdir, lines)
        if args.minilm:
            minilm(workdir, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
