"""Peak resident memory of a fresh process that loads a MiniLM model and runs it once.

Run by bench_minilm.py as a child process::

    python bench/minilm_peak_rss.py RUNTIME MODEL FEEDS.npz

RUNTIME is ``onnxruntime`` or ``qcore``. Imports only numpy and that runtime, limits every
runtime to one thread, runs the feeds once, and prints ``VmHWM`` (the peak resident set
size, kiB, from /proc/self/status) as the last line.
"""

from __future__ import annotations

import os
import sys

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "QCORE_NUM_THREADS"):
    os.environ[_variable] = "1"

import numpy as np  # noqa: E402


def _peak_rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(argv: list[str]) -> int:
    runtime, model_path, feeds_path = argv
    with np.load(feeds_path) as archive:
        feeds = {name: archive[name] for name in archive.files}
    if runtime == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
        outputs = session.run(None, feeds)
    elif runtime == "qcore":
        import qcore

        load = getattr(qcore, "load", None)
        if load is None:
            from qcore.api import load
        model = load(model_path)
        outputs = list(model.run(feeds).values())
    else:
        raise SystemExit(f"unknown runtime {runtime!r}")
    if not all(np.isfinite(output).all() for output in outputs):
        raise SystemExit("non-finite output")
    print(_peak_rss_kib())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
