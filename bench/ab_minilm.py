"""Interleaved latency of all-MiniLM-L6-v2 at batch 1, sequence 128, one thread.

On a shared machine one contender can land in a busy moment and the next in a quiet one;
this calls every contender in turn, round after round, for a fixed time, so all of them
see the same conditions, and prints each one's median and best wall time, and the median
CPU time of the calling thread (every contender runs on it alone: one thread; CPU time
leaves out the time the thread waited for a core, which dominates wall time when the
machine is oversubscribed)::

    PYTHONPATH=$PWD python bench/ab_minilm.py [SECONDS] [--workdir DIR] [--profile] [--full | --tokens N]

Contenders: qcore int8 (the transformer recipe, ``qcore.load`` of its .qcm file, the
runtime's fast plan), the same model node by node (``Executor(fuse=False)``: no rewrites,
what the runtime does when intermediate values are requested), onnxruntime int8
(``quantize_dynamic`` per-channel) and onnxruntime float32. Models are built once into
``--workdir`` (default ``.pytest_cache/d/qcore_minilm_ab``) and reused. ``--profile``
prints the per-op profile of the qcore int8 fast plan first (median of 15 profiled runs).
The input is the last test sentence padded to 128 tokens (as bench/bench_minilm.py
times it); ``--full`` gives 128 real tokens instead (the test sentences joined and
truncated), where no key is padding; ``--tokens N`` the first N of those, unpadded.

Needs the torch test dependencies (tests/minilm_support.py) to build the models.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "QCORE_NUM_THREADS"):
    os.environ[_variable] = "1"

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import minilm_support  # noqa: E402


def _models(workdir: Path) -> tuple[Path, Path, Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    float_path = minilm_support.onnx_model_path()
    ort_int8 = workdir / "ort-int8-per-channel.onnx"
    qcore_int8 = workdir / "qcore-int8.qcm"
    if not ort_int8.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(float_path), str(ort_int8), per_channel=True, weight_type=QuantType.QInt8)
    if not qcore_int8.exists():
        from qcore.api import save
        from qcore.graph import import_onnx
        from qcore.graph.transformer import quantize_transformer

        model = quantize_transformer(import_onnx(str(float_path)), minilm_support.calibration_feeds(), weight_bits=8)
        save(model, qcore_int8)
    return float_path, ort_int8, qcore_int8


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seconds", nargs="?", type=float, default=20.0)
    parser.add_argument("--workdir", type=Path, default=ROOT / ".pytest_cache" / "d" / "qcore_minilm_ab")
    parser.add_argument("--profile", action="store_true")
    inputs = parser.add_mutually_exclusive_group()
    inputs.add_argument("--full", action="store_true",
                        help="128 real tokens (the sentences joined and truncated) instead of one padded sentence")
    inputs.add_argument("--tokens", type=int, default=None,
                        help="the first N (1-128) tokens of --full's input, unpadded: small N shows the fixed cost "
                             "of a run (Python steps, weights read for few rows)")
    args = parser.parse_args(argv)
    reason = minilm_support.missing_dependencies()
    if reason:
        print(f"skipped: {reason}")
        return 0
    import onnxruntime as ort

    import qcore
    from qcore.runtime.executor import Executor

    float_path, ort_int8, qcore_int8 = _models(args.workdir)
    sentences = minilm_support.load_sentences()
    if args.tokens is not None and not 1 <= args.tokens <= 128:
        parser.error("--tokens must be in 1..128")
    if args.tokens:
        batch = minilm_support.tokenize([" ".join(sentences)], length=args.tokens)
    else:
        batch = minilm_support.tokenize([" ".join(sentences)] if args.full else sentences[-1:])
    print(f"input: batch 1, {int(batch['attention_mask'].sum())} real tokens of {batch['input_ids'].shape[1]}\n")
    feeds = {name: batch[name] for name in minilm_support.INPUT_NAMES}

    def session(path: Path):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    model = qcore.load(str(qcore_int8))
    node_by_node = Executor(model.graph, fuse=False)
    s8, s32 = session(ort_int8), session(float_path)
    contenders = {
        "qcore int8 (fast plan)": lambda: model.run(feeds),
        "qcore int8 node by node": lambda: node_by_node.run(feeds),
        "onnxruntime int8 dynamic per-channel": lambda: s8.run(None, feeds),
        "onnxruntime float32": lambda: s32.run(None, feeds),
    }
    for run in contenders.values():
        run()
        run()
    if args.profile:
        per_op: dict[str, list[float]] = {}
        counts: dict[str, int] = {}
        for _ in range(15):
            model.run(feeds, profile=True)
            for op, count, seconds in model.profile_summary():
                per_op.setdefault(op, []).append(seconds)
                counts[op] = count
        medians = {op: float(np.median(v)) for op, v in per_op.items()}
        whole = sum(medians.values())
        print(f"## Per-op profile, qcore int8 fast plan (sum of medians {whole * 1e3:.1f} ms)\n")
        print("| op | nodes | median ms | share |\n|---|---|---|---|")
        for op, seconds in sorted(medians.items(), key=lambda item: -item[1]):
            print(f"| {op} | {counts[op]} | {seconds * 1e3:.2f} | {seconds / whole:.0%} |")
        print()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    end = time.perf_counter() + args.seconds
    while time.perf_counter() < end:
        for name, run in contenders.items():
            start, start_cpu = time.perf_counter(), time.thread_time()
            run()
            cpu[name].append(time.thread_time() - start_cpu)
            times[name].append(time.perf_counter() - start)
    ref = float(np.median(times["onnxruntime float32"]))
    ref8 = float(np.median(times["onnxruntime int8 dynamic per-channel"]))
    ref_cpu = float(np.median(cpu["onnxruntime float32"]))
    ref8_cpu = float(np.median(cpu["onnxruntime int8 dynamic per-channel"]))
    print(f"## Interleaved, {args.seconds:.0f} s, {len(times['onnxruntime float32'])} rounds, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| contender | wall median ms | wall best ms | speed-up vs ort fp32 | vs ort int8 | CPU median ms "
          "| CPU speed-up vs ort fp32 | vs ort int8 |\n|---|---|---|---|---|---|---|---|")
    for name, values in times.items():
        median = float(np.median(values))
        c = float(np.median(cpu[name]))
        print(f"| {name} | {median * 1e3:.1f} | {min(values) * 1e3:.1f} | {ref / median:.2f}x | {ref8 / median:.2f}x "
              f"| {c * 1e3:.1f} | {ref_cpu / c:.2f}x | {ref8_cpu / c:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
