"""End to end, as a user runs it: `qcore run` against the same job done with onnxruntime.

Each measurement is a fresh process, timed from launch to exit: the interpreter starts,
imports its runtime, opens the model, reads the same inputs .npz, runs one batch and writes
a results .npz. The two commands alternate (the same conditions for both on a shared
machine), one thread each::

    OPENBLAS_NUM_THREADS=1 QCORE_NUM_THREADS=1 PYTHONPATH=$PWD python bench/ab_cli.py 12 \
        [CACHE_DIR]     # processes per command and batch; the digits models' cache directory

- qcore: ``python -m qcore.cli run cnn_int8.qcm --inputs feeds.npz -o out.npz`` (what the
  ``qcore`` console script runs; the static int8 model as bench/ab_models.py makes it);
- onnxruntime: ``python -c <load the .npz, InferenceSession(cnn.onnx) with one intra-op
  thread, run, np.savez>`` on the float32 ONNX model.

Reported per batch: best and median wall time of the process, the ratio, and whether
the two result files agree on the predicted class of every image.

The tested qcore tree is byte-compiled first (``compileall``, what ``pip install`` does):
run from a source tree with ``PYTHONDONTWRITEBYTECODE=1``, every process would otherwise
compile qcore's modules from source (about 60 ms here), a cost an installed qcore and
the installed onnxruntime never pay.
"""

from __future__ import annotations

import compileall
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

ORT_SCRIPT = """
import sys
import numpy as np
import onnxruntime as ort
model, feeds_path, out_path = sys.argv[1:4]
with np.load(feeds_path, allow_pickle=False) as data:
    feeds = {name: data[name] for name in data.files}
options = ort.SessionOptions()
options.intra_op_num_threads = 1
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
names = [o.name for o in session.get_outputs()]
np.savez(out_path, **dict(zip(names, session.run(None, feeds))))
"""


def _timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(processes: int, cache: str) -> None:
    import digits_models as dm

    import qcore.graph.quantize as q
    from qcore.runtime import Model

    data = dm.load_digits_split()
    os.makedirs(cache, exist_ok=True)
    onnx_path = dm.cnn_onnx(cache, data)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    compileall.compile_dir(os.path.join(ROOT, "qcore"), quiet=1)
    with tempfile.TemporaryDirectory() as folder:
        qcm = os.path.join(folder, "cnn_int8.qcm")
        q.quantize_static(Model.from_onnx(onnx_path), {"image": data.x_train[:300].reshape(-1, 1, 8, 8)}).save(qcm)
        images = data.x_test.reshape(-1, 1, 8, 8)
        print("| batch | `qcore run` best ms | median ms | onnxruntime process best ms | median ms | "
              "ratio of bests | ratio of medians | same classes | processes |")
        print("|---|---|---|---|---|---|---|---|---|")
        for batch in (1, 64, 540):
            feeds = os.path.join(folder, f"feeds_{batch}.npz")
            np.savez(feeds, image=images[:batch])
            out_q, out_o = os.path.join(folder, "q.npz"), os.path.join(folder, "o.npz")
            qcore_cmd = [sys.executable, "-m", "qcore.cli", "run", qcm, "--inputs", feeds, "-o", out_q]
            ort_cmd = [sys.executable, "-c", ORT_SCRIPT, onnx_path, feeds, out_o]
            _timed(qcore_cmd, env)  # warm the page cache for both
            _timed(ort_cmd, env)
            times_q, times_o = [], []
            for _ in range(processes):
                times_q.append(_timed(qcore_cmd, env))
                times_o.append(_timed(ort_cmd, env))
            with np.load(out_q) as a, np.load(out_o) as b:
                same = bool(np.array_equal(a["logits"].argmax(axis=1), b["logits"].argmax(axis=1)))
            bq, mq, bo, mo = min(times_q), np.median(times_q), min(times_o), np.median(times_o)
            print(f"| {batch} | {bq * 1e3:.1f} | {mq * 1e3:.1f} | {bo * 1e3:.1f} | {mo * 1e3:.1f} | "
                  f"{bo / bq:.2f}x | {mo / mq:.2f}x | {same} | {processes} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 12,
         sys.argv[2] if len(sys.argv) > 2 else os.path.join(".pytest_cache", "d", "qcore_digits_models"))
