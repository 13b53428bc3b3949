"""Where MiniLM's accuracy and time go under qcore: sensitivity report and per-op profile.

    PYTHONPATH=$PWD python bench/minilm_report.py [--sentences N] [--runs N]

Prints (Markdown):

1. the sensitivity report of qcore.graph.transformer: each linear layer quantized alone
   with the int8 recipe (smoothing searched on tests/data/calibration.txt, per-token
   activations), cosine of the final hidden states against float over the first N
   evaluation sentences (batch N, padded to 128), worst layers first;
2. the per-op time profile of the int8 recipe's model at batch 1, sequence 128, one
   thread (median over the runs of each op's total).

Needs the torch test dependencies (tests/minilm_support.py) for the ONNX export.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "QCORE_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import minilm_support  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=8, help="evaluation sentences for the sensitivity report")
    parser.add_argument("--runs", type=int, default=10, help="profiled runs")
    parser.add_argument("--top", type=int, default=12, help="layers listed")
    args = parser.parse_args(argv)
    reason = minilm_support.missing_dependencies()
    if reason:
        print(f"skipped: {reason}")
        return 0

    from qcore.graph.transformer import quantize_transformer, sensitivity_report

    graph = minilm_support.float_graph()
    calibration = minilm_support.calibration_feeds()
    sentences = minilm_support.load_sentences()[: args.sentences]
    feeds = minilm_support.tokenize(sentences)

    started = time.perf_counter()
    report = sensitivity_report(graph, [feeds], calibration=calibration)
    print(f"## Sensitivity: each linear layer alone in int8 ({len(report)} layers, "
          f"{len(sentences)} sentences, {time.perf_counter() - started:.0f} s)\n")
    print("| layer | cosine mean | cosine worst | SQNR dB |")
    print("|---|---|---|---|")
    for entry in report[: args.top]:
        print(f"| {entry.node} | {entry.cosine_mean:.6f} | {entry.cosine_worst:.6f} | {entry.sqnr_db:.1f} |")

    model = quantize_transformer(graph, calibration, weight_bits=8)
    single = minilm_support.tokenize(minilm_support.load_sentences()[-1:])
    for _ in range(3):
        model.run(single)
    per_op: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    totals = []
    for _ in range(args.runs):
        started = time.perf_counter()
        model.run(single, profile=True)
        totals.append(time.perf_counter() - started)
        for op, count, seconds in model.profile_summary():
            per_op.setdefault(op, []).append(seconds)
            counts[op] = count
    print(f"\n## Per-op profile, int8 recipe, batch 1, sequence 128, one thread "
          f"(run median {np.median(totals) * 1e3:.1f} ms over {args.runs} runs)\n")
    print("| op | nodes | median ms | share |")
    print("|---|---|---|---|")
    medians = {op: float(np.median(values)) for op, values in per_op.items()}
    whole = sum(medians.values())
    for op, seconds in sorted(medians.items(), key=lambda item: -item[1]):
        print(f"| {op} | {counts[op]} | {seconds * 1e3:.2f} | {seconds / whole:.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
