"""The .qcm file: size overhead, open time and resident memory, checksum and write speed.

Two ways to run it:

    PYTHONPATH=$PWD python bench/bench_format.py [--gb 1] [--out bench/results/format.md]
        every figure against its target, each measurement that involves resident memory
        in a fresh subprocess (RSS from /proc/self/status); writes the markdown report.

    PYTHONPATH=$PWD pytest bench/bench_format.py --benchmark-enable
        pytest-benchmark timings, each beside its baseline in the same run: open with
        verify=False beside a bare open + mmap of the same file; qcore's CRC-32C (hardware
        and portable paths) beside zlib's CRC-32; QcmWriter beside a plain write + fsync.

The large file (1 GB by default, QCORE_BENCH_GB) is generated in a temporary directory
and deleted afterwards. Timings are with the file in the page cache (this machine's disk
speed is not what is measured; dropping caches would disturb other users of the machine).
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TENSOR_MB = 16


def _subprocess(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], check=True, env=env,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


_RSS = """
def rss_kib(field="VmRSS"):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
"""


# ---- size -------------------------------------------------------------------------------

def small_model() -> dict:
    """A ~1.6 MB model shaped like a small transformer: int4 per-channel weights, int32
    biases, float32 norms, one blocked int4 embedding."""
    from qcore.reference.tensor import QuantizedTensor

    rng = np.random.default_rng(0)
    tensors: dict = {}

    def q4(shape, axis=0, block=0):
        data = rng.integers(-8, 8, shape).astype(np.int8)
        if block:
            pshape = tuple(-(-d // block) if k == axis else d for k, d in enumerate(shape))
        else:
            pshape = (shape[axis],)
        return QuantizedTensor(data, rng.uniform(1e-3, 1e-1, pshape).astype(np.float32), np.zeros(pshape, np.int8),
                               "int4", axis=axis, block_size=block)

    tensors["embed.weight"] = q4((1000, 256), axis=1, block=32)
    for layer in range(4):
        p = f"layers.{layer}."
        for name, shape in (("attn.qkv", (768, 256)), ("attn.out", (256, 256)), ("mlp.up", (1024, 256)),
                            ("mlp.down", (256, 1024))):
            tensors[p + name + ".weight"] = q4(shape)
            tensors[p + name + ".bias"] = rng.integers(-1000, 1000, shape[0]).astype(np.int32)
        tensors[p + "norm1.weight"] = np.ones(256, np.float32)
        tensors[p + "norm2.weight"] = np.ones(256, np.float32)
    return tensors


def measure_size(directory: Path) -> dict:
    from qcore.format import load_tensors, save_tensors

    path = directory / "small.qcm"
    save_tensors(path, small_model(), {"qcore.graph.schema_version": 1})
    with load_tensors(path) as f:
        payload = sum(info.nbytes for info in f.infos())
        records = len(f.infos())
        weights = sum(info.nbytes for info in f.infos() if info.element_type == "int4")
        int4_elements = sum(int(np.prod(info.shape)) for info in f.infos() if info.element_type == "int4")
    size = path.stat().st_size
    limit = payload + payload // 100 + 4096
    return {"payload_bytes": payload, "file_bytes": size, "overhead_bytes": size - payload,
            "overhead_percent": 100.0 * (size - payload) / payload, "limit_bytes": limit, "records": records,
            "int4_elements": int4_elements, "int4_bytes": weights, "within_target": size <= limit}


# ---- the large file ---------------------------------------------------------------------

_WRITE = _RSS + """
import json, os, sys, time
import numpy as np
from qcore.format import QcmWriter
path, gb, tensor_mb = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
chunk = np.random.default_rng(1).integers(-128, 128, tensor_mb << 20, dtype=np.int8)
count = max(1, int(gb * 1e9) // (tensor_mb << 20))
base = rss_kib()
t = time.perf_counter()
with QcmWriter(path) as w:
    for i in range(count):
        w.add_tensor(f"layer.{i}.weight", chunk)
qcm = time.perf_counter() - t
# Baseline: the same bytes with a plain write + fsync.
raw_path = path + ".raw"
t = time.perf_counter()
with open(raw_path, "wb") as f:
    for i in range(count):
        f.write(chunk)
    f.flush(); os.fsync(f.fileno())
raw = time.perf_counter() - t
os.unlink(raw_path)
print(json.dumps({"tensors": count, "tensor_bytes": chunk.nbytes, "bytes": os.path.getsize(path),
                  "write_s": qcm, "raw_write_s": raw, "peak_rss_increase_kib": rss_kib("VmHWM") - base}))
"""

_WRITE_INT4 = _RSS + """
import json, sys, time
import numpy as np
from qcore.format import QcmWriter
from qcore.reference.tensor import QuantizedTensor
path = sys.argv[1]
rows, cols = 4096, 4096                          # 16 Mi int4 weights, 8 MiB packed
data = np.random.default_rng(2).integers(-8, 8, (rows, cols), dtype=np.int8)
tensor = QuantizedTensor(data, np.full(rows, 0.01, np.float32), np.zeros(rows, np.int8), "int4", axis=0)
base = rss_kib()
t = time.perf_counter()
with QcmWriter(path) as w:
    for i in range(8):
        w.add_tensor(f"layer.{i}.weight", tensor)
elapsed = time.perf_counter() - t
import os
print(json.dumps({"tensors": 8, "elements": data.size, "container_bytes": data.nbytes, "write_s": elapsed,
                  "bytes": os.path.getsize(path), "peak_rss_increase_kib": rss_kib("VmHWM") - base}))
os.unlink(path)
"""

_CRC_MEMORY = """
import json, time
import numpy as np
from qcore._native import ffi, lib
data = np.random.default_rng(0).integers(0, 256, 256 << 20, dtype=np.uint8)
buf = ffi.from_buffer(data)
out = {}
for name, fn in (("hardware", lib.qc_crc32c_hardware), ("portable", lib.qc_crc32c_portable)):
    times = []
    for _ in range(3):
        t = time.perf_counter(); fn(0, buf, len(buf)); times.append(time.perf_counter() - t)
    out[name + "_gbs"] = data.nbytes / min(times) / 1e9
print(json.dumps(out))
"""

_OPEN = _RSS + """
import json, sys, time
from qcore.format import load_tensors
path = sys.argv[1]
before = rss_kib()
t = time.perf_counter()
f = load_tensors(path, verify=False)
first = time.perf_counter() - t
after = rss_kib()
names = list(f)
shape = f[names[-1]].shape           # a view: still no data read
after_view = rss_kib()
times = []
for _ in range(20):
    t = time.perf_counter()
    g = load_tensors(path, verify=False)
    times.append(time.perf_counter() - t)
    g.close()
print(json.dumps({"first_open_s": first, "open_min_s": min(times), "open_median_s": sorted(times)[10],
                  "rss_increase_kib": after - before, "rss_increase_with_view_kib": after_view - before,
                  "tensors": len(names)}))
"""

_VERIFY = """
import json, sys, time, zlib
from qcore.format import load_tensors
from qcore._native import ffi, lib
path = sys.argv[1]
f = load_tensors(path, verify=False)
f.verify()                                    # warm the page cache
t = time.perf_counter(); f.verify(); qcm = time.perf_counter() - t
nbytes = sum(i.nbytes for i in f.infos())
buf = ffi.from_buffer(f._map)
t = time.perf_counter(); lib.qc_crc32c_portable(0, buf, len(buf)); portable = time.perf_counter() - t
t = time.perf_counter(); zlib.crc32(f._map); zl = time.perf_counter() - t
t = time.perf_counter(); load_tensors(path, verify=True).close(); full_open = time.perf_counter() - t
print(json.dumps({"bytes": nbytes, "verify_s": qcm, "portable_crc_s": portable, "zlib_crc32_s": zl,
                  "open_verify_true_s": full_open, "file_bytes": len(buf),
                  "hardware_crc": bool(lib.qc_crc32c_hardware_available())}))
"""


_OPEN_MANY = """
import json, sys, time
import numpy as np
from qcore.format import QcmWriter, load_tensors
from qcore.format.native import CReader
from qcore.reference.tensor import QuantizedTensor
path = sys.argv[1]
q = QuantizedTensor(np.zeros((64, 64), np.int8), np.ones(64, np.float32), np.zeros(64, np.int8), "int4", axis=0)
bias = np.zeros(64, np.int32)
with QcmWriter(path) as w:
    for i in range(10000):
        w.add_tensor(f"model.layers.{i}.weight", q)
        w.add_tensor(f"model.layers.{i}.bias", bias)
def best(fn, rounds=5):
    times = []
    for _ in range(rounds):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return min(times)
data = open(path, "rb").read()
print(json.dumps({"records": 40000, "bytes": len(data),
                  "python_open_s": best(lambda: load_tensors(path, verify=False).close()),
                  "python_verify_s": best(lambda: load_tensors(path, verify=True).close(), 2),
                  "c_open_s": best(lambda: CReader(data, verify=False)),
                  "c_verify_s": best(lambda: CReader(data, verify=True))}))
"""


def measure_many(directory: Path) -> dict:
    path = directory / "many.qcm"
    try:
        return _subprocess(_OPEN_MANY, str(path))
    finally:
        path.unlink(missing_ok=True)


def measure_large(directory: Path, gb: float) -> dict:
    path = directory / "large.qcm"
    write = _subprocess(_WRITE, str(path), str(gb), str(TENSOR_MB))
    write_int4 = _subprocess(_WRITE_INT4, str(directory / "int4.qcm"))
    crc_memory = _subprocess(_CRC_MEMORY)
    try:
        opened = _subprocess(_OPEN, str(path))
        verify = _subprocess(_VERIFY, str(path))
    finally:
        path.unlink()
    return {"write": write, "write_int4": write_int4, "crc_memory": crc_memory, "open": opened, "verify": verify}


def report(size: dict, large: dict, many: dict, gb: float) -> str:
    w, o, v = large["write"], large["open"], large["verify"]
    w4, cm = large["write_int4"], large["crc_memory"]
    load = os.getloadavg()
    gbs = lambda nbytes, s: nbytes / s / 1e9  # noqa: E731
    lines = [
        "# .qcm format benchmarks",
        "",
        f"Command: `PYTHONPATH=$PWD python bench/bench_format.py --gb {gb:g}` "
        f"({time.strftime('%Y-%m-%d', time.gmtime())}, AMD Zen 3, 2 cores shared with other jobs, Python "
        f"{sys.version.split()[0]}, numpy {np.__version__}; load average {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f} during the run, so CPU-bound figures are pessimistic). The large file is generated in a temporary "
        "directory and deleted; timings are with it in the page cache. Resident memory is read from "
        "/proc/self/status in a fresh subprocess.",
        "",
        "| measure | result | target | met |",
        "|---|---|---|---|",
        f"| size: model of {size['payload_bytes']:,} bytes of packed tensors ({size['records']} records, "
        f"{size['int4_elements']:,} int4 weights in {size['int4_bytes']:,} bytes) | file {size['file_bytes']:,} bytes: "
        f"+{size['overhead_bytes']:,} bytes ({size['overhead_percent']:.2f} %) | <= payload + 1 % + 4 KiB = "
        f"{size['limit_bytes']:,} | {'yes' if size['within_target'] else 'NO'} |",
        f"| open {o['tensors']} tensors, {w['bytes'] / 1e9:.2f} GB, verify=False | min {o['open_min_s'] * 1e3:.2f} ms, "
        f"median {o['open_median_s'] * 1e3:.2f} ms (first open in the process {o['first_open_s'] * 1e3:.2f} ms) | "
        f"< 50 ms | {'yes' if o['open_median_s'] < 0.05 else 'NO'} |",
        f"| resident memory increase of that open | {o['rss_increase_kib'] / 1024:.2f} MiB "
        f"({o['rss_increase_with_view_kib'] / 1024:.2f} MiB after also taking a view of one tensor) | < 10 MB | "
        f"{'yes' if o['rss_increase_kib'] < 10 * 1000 else 'NO'} |",
        f"| checksum speed, verify=True ({v['bytes'] / 1e9:.2f} GB, one core, hardware CRC: "
        f"{v['hardware_crc']}) | {gbs(v['bytes'], v['verify_s']):.2f} GB/s (whole open with verify=True "
        f"{v['open_verify_true_s'] * 1e3:.0f} ms) | >= 1 GB/s | {'yes' if gbs(v['bytes'], v['verify_s']) >= 1 else 'NO'} |",
        f"| CRC-32C over a 256 MiB in-memory buffer (no page faults), one core | hardware path "
        f"{cm['hardware_gbs']:.2f} GB/s; portable path {cm['portable_gbs']:.2f} GB/s | >= 1 GB/s | "
        f"{'yes' if cm['hardware_gbs'] >= 1 else 'NO'} |",
        f"| baselines over the same bytes | portable CRC-32C (slicing-by-8) {gbs(v['file_bytes'], v['portable_crc_s']):.2f} GB/s; "
        f"zlib.crc32 {gbs(v['file_bytes'], v['zlib_crc32_s']):.2f} GB/s | | |",
        f"| write {w['tensors']} x {w['tensor_bytes'] >> 20} MiB tensors with QcmWriter (fsync, rename) | "
        f"{gbs(w['bytes'], w['write_s']):.2f} GB/s; plain write + fsync of the same bytes "
        f"{gbs(w['bytes'], w['raw_write_s']):.2f} GB/s | disk speed | "
        f"{'yes' if w['write_s'] <= 1.5 * w['raw_write_s'] else 'NO'} |",
        f"| writer peak resident memory increase beyond the caller's arrays | {w['peak_rss_increase_kib'] / 1024:.1f} MiB for "
        f"{w['tensor_bytes'] >> 20} MiB tensors | bounded by the largest tensor | "
        f"{'yes' if w['peak_rss_increase_kib'] * 1024 <= 2 * w['tensor_bytes'] + (8 << 20) else 'NO'} |",
        f"| writer peak resident memory, {w4['tensors']} int4 tensors of {w4['elements'] >> 20} Mi elements "
        f"({w4['container_bytes'] >> 20} MiB unpacked, packed on the fly) | +{w4['peak_rss_increase_kib'] / 1024:.1f} MiB "
        f"beyond the caller's tensor; {w4['bytes'] / 1e6:.1f} MB file in {w4['write_s']:.2f} s | bounded by the "
        f"largest tensor | {'yes' if w4['peak_rss_increase_kib'] * 1024 <= 2 * w4['container_bytes'] else 'NO'} |",
        f"| directory-heavy file: {many['records']:,} records (10,000 int4 64x64 tensors with scales, zero "
        f"points and biases), verify=False | Python {many['python_open_s'] * 1e3:.1f} ms; C reader "
        f"{many['c_open_s'] * 1e3:.2f} ms | (no target) | |",
        f"| same file, verify=True | Python {many['python_verify_s'] * 1e3:.0f} ms; C reader "
        f"{many['c_verify_s'] * 1e3:.1f} ms | (no target) | |",
        "",
        "Notes: the size overhead is the 64-byte preamble, 132 bytes per record (table entry and name "
        "index), the names, the metadata and up to 63 bytes of padding per record; a quantized tensor "
        "has three records (data, scale, zero point). Open time with verify=False is independent of "
        "the data size (it reads the preamble and the directory only); the resident-memory figure "
        "counts the directory pages and Python objects, not tensor data. verify=True reads every "
        "byte, so its resident memory grows by the file size (page cache, shared with the file).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="qcore .qcm benchmarks")
    parser.add_argument("--gb", type=float, default=float(os.environ.get("QCORE_BENCH_GB", "1")))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "format.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=os.environ.get("QCORE_BENCH_TMP")) as tmp:
        size = measure_size(Path(tmp))
        many = measure_many(Path(tmp))
        large = measure_large(Path(tmp), args.gb)
    text = report(size, large, many, args.gb)
    args.out.write_text(text)
    print(text)
    print(json.dumps({"size": size, "many": many, **large}, indent=1))
    return 0


# ---- pytest-benchmark -------------------------------------------------------------------

@pytest.fixture(scope="module")
def large_file(tmp_path_factory):
    from qcore.format import QcmWriter

    gb = float(os.environ.get("QCORE_BENCH_GB", "1"))
    path = tmp_path_factory.mktemp("bench") / "large.qcm"
    chunk = np.random.default_rng(1).integers(-128, 128, TENSOR_MB << 20, dtype=np.int8)
    with QcmWriter(path) as w:
        for i in range(max(1, int(gb * 1e9) // chunk.nbytes)):
            w.add_tensor(f"layer.{i}.weight", chunk)
    yield path
    path.unlink()


def test_open_verify_false(benchmark, large_file):
    from qcore.format import load_tensors

    benchmark.extra_info.update(impl="qcore load_tensors(verify=False)", bytes=large_file.stat().st_size, exact=True)
    benchmark.pedantic(lambda: load_tensors(large_file, verify=False).close(), rounds=20, iterations=1)


def test_open_baseline_bare_mmap(benchmark, large_file):
    def bare():
        with open(large_file, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            mm[:64]

    benchmark.extra_info.update(impl="open + mmap + read 64 bytes", bytes=large_file.stat().st_size, exact=True)
    benchmark.pedantic(bare, rounds=20, iterations=1)


@pytest.fixture(scope="module")
def crc_buffer():
    return np.random.default_rng(2).integers(0, 256, 64 << 20, dtype=np.uint8)


@pytest.mark.parametrize("impl", ["qcore-hardware", "qcore-portable", "zlib.crc32"])
def test_crc(benchmark, crc_buffer, impl):
    from qcore._native import ffi, lib

    buf = ffi.from_buffer(crc_buffer)
    fn = {"qcore-hardware": lambda: lib.qc_crc32c_hardware(0, buf, len(buf)),
          "qcore-portable": lambda: lib.qc_crc32c_portable(0, buf, len(buf)),
          "zlib.crc32": lambda: zlib.crc32(crc_buffer)}[impl]
    exact = impl == "zlib.crc32" or lib.qc_crc32c_hardware(0, buf, len(buf)) == lib.qc_crc32c_portable(0, buf, len(buf))
    benchmark.extra_info.update(impl=impl, bytes=crc_buffer.nbytes, exact=bool(exact),
                                hardware=bool(lib.qc_crc32c_hardware_available()))
    benchmark.pedantic(fn, rounds=5, iterations=1)


def test_verify(benchmark, large_file):
    from qcore.format import load_tensors

    f = load_tensors(large_file, verify=False)
    f.verify()
    benchmark.extra_info.update(impl="QcmFile.verify", bytes=large_file.stat().st_size, exact=True)
    benchmark.pedantic(f.verify, rounds=3, iterations=1)
    f.close()


@pytest.mark.parametrize("impl", ["QcmWriter", "plain write + fsync"])
def test_write(benchmark, tmp_path, impl):
    from qcore.format import QcmWriter

    chunk = np.random.default_rng(3).integers(-128, 128, TENSOR_MB << 20, dtype=np.int8)
    count = 16
    path = tmp_path / "w.qcm"

    def qcm():
        with QcmWriter(path) as w:
            for i in range(count):
                w.add_tensor(f"t{i}", chunk)

    def raw():
        with open(path, "wb") as f:
            for _ in range(count):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())

    benchmark.extra_info.update(impl=impl, bytes=count * chunk.nbytes, exact=True)
    benchmark.pedantic(qcm if impl == "QcmWriter" else raw, rounds=3, iterations=1)
    path.unlink()


if __name__ == "__main__":
    sys.exit(main())
