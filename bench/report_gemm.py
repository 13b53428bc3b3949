"""Markdown table of a bench_gemm.py run: GOP/s per implementation and qcore's ratios.

    python bench/report_gemm.py /tmp/gemm.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def main(path: str) -> None:
    with open(path) as f:
        runs = json.load(f)["benchmarks"]
    table: dict[tuple, dict] = defaultdict(dict)
    for run in runs:
        info = run["extra_info"]
        key = (info["m"], info["k"], info["n"], info["threads"])
        gops = 2.0 * info["m"] * info["k"] * info["n"] / run["stats"]["min"] / 1e9
        table[key][info["impl"]] = (gops, info["exact"], run["stats"]["min"])
    print("| M | K | N | thr | qcore packed GOP/s | qcore matmul_integer | numpy fp32 GFLOP/s | onnxruntime GOP/s "
          "| qcore / numpy | qcore / ort | 2 thr / 1 thr | exact (qcore, ort) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for key in sorted(table):
        row = table[key]
        q = row.get("qcore-packed", (float("nan"), None, 0))
        qm = row.get("qcore-matmul_integer", (float("nan"), None, 0))
        npf = row.get("numpy-fp32", (float("nan"), None, 0))
        ort = row.get("onnxruntime-MatMulInteger", (float("nan"), None, 0))
        one = table.get(key[:3] + (1,), {}).get("qcore-packed", (float("nan"),))[0]
        scale = f"{q[0] / one:.2f}" if key[3] > 1 else ""
        print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {q[0]:.1f} | {qm[0]:.1f} | {npf[0]:.1f} | {ort[0]:.1f} "
              f"| {q[0] / npf[0]:.2f} | {q[0] / ort[0]:.2f} | {scale} | {q[1]}, {ort[1]} |")


if __name__ == "__main__":
    main(sys.argv[1])
