"""all-MiniLM-L6-v2 at batch 1, sequence 128, one thread: qcore beside onnxruntime.

Every contender is measured in the same process run:

- latency (pytest-benchmark, batch 1, one sentence padded to 128 tokens), and after the
  last contender ``QCORE_BENCH_INTERLEAVED_ROUNDS`` (default 20) rounds that call every
  contender in turn: the speed-up columns use these interleaved medians, which a shared
  host cannot tilt towards whichever contender ran in a quiet moment;
- cosine of the sentence embeddings against onnxruntime float32 over every sentence of
  tests/data/sentences.txt, each run alone at batch 1 padded to 128 (mean and worst);
- model file size;
- peak resident memory (VmHWM) of a fresh process that loads the model and runs it once
  (bench/minilm_peak_rss.py).

Run (needs the torch test dependencies, see tests/minilm_support.py)::

    PYTHONPATH=$PWD pytest bench/bench_minilm.py --benchmark-enable -s

The summary table is printed at the end and, when ``QCORE_BENCH_TABLE`` names a file,
written there as Markdown.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import minilm_support  # noqa: E402

_MISSING = minilm_support.missing_dependencies()
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))

Feeds = Mapping[str, np.ndarray]
Runner = Callable[[Feeds], np.ndarray]


# --------------------------------------------------------------------------- runtimes


def _onnxruntime_runner(path: Path) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(None, dict(feeds))[0]


def _qcore_load(path: Path):
    import qcore

    load = getattr(qcore, "load", None)
    if load is None:
        from qcore.api import load
    return load(str(path))


def _qcore_runner(path: Path) -> Runner:
    model = _qcore_load(path)
    return lambda feeds: model.run(dict(feeds))[minilm_support.OUTPUT_NAME]


_RUNNERS = {"onnxruntime": _onnxruntime_runner, "qcore": _qcore_runner}


# --------------------------------------------------------------------------- contenders


def _copy_float(float_path: Path, workdir: Path) -> Path:
    return float_path


def _ort_dynamic(per_channel: bool) -> Callable[[Path, Path], Path]:
    def build(float_path: Path, workdir: Path) -> Path:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        out = workdir / f"ort-dynamic-{'per-channel' if per_channel else 'per-tensor'}.onnx"
        quantize_dynamic(str(float_path), str(out), per_channel=per_channel, weight_type=QuantType.QInt8)
        return out

    return build


def _qcore_build(weight_bits: int | None) -> Callable[[Path, Path], Path]:
    """qcore: float (None), or the transformer recipe with int8 / int4 weights."""

    def build(float_path: Path, workdir: Path) -> Path:
        from qcore.api import save
        from qcore.graph import import_onnx
        from qcore.runtime import Model

        graph = import_onnx(str(float_path))
        if weight_bits is None:
            model = Model(graph)
        else:
            from qcore.graph.transformer import quantize_transformer

            model = quantize_transformer(graph, minilm_support.calibration_feeds(paragraphs=weight_bits == 4),
                                         weight_bits=weight_bits, block_size=32)
        out = workdir / f"qcore-{'float32' if weight_bits is None else f'int{weight_bits}'}.qcm"
        save(model, out)
        return out

    return build


def _qcore_missing() -> str | None:
    try:
        from qcore.graph import transformer  # noqa: F401
        from qcore import api  # noqa: F401
    except ImportError as exc:
        return f"qcore's model pipeline is not available: {exc}"
    return None


@dataclass
class Contender:
    """One model file and the runtime that executes it."""

    name: str
    runtime: str
    build: Callable[[Path, Path], Path]
    available: Callable[[], str | None] = field(default=lambda: None)


CONTENDERS = [
    Contender("onnxruntime float32", "onnxruntime", _copy_float),
    Contender("onnxruntime int8 dynamic per-channel", "onnxruntime", _ort_dynamic(per_channel=True)),
    Contender("onnxruntime int8 dynamic per-tensor", "onnxruntime", _ort_dynamic(per_channel=False)),
    Contender("qcore float32", "qcore", _qcore_build(None), _qcore_missing),
    Contender("qcore int8 (smoothed, GPTQ, per-token)", "qcore", _qcore_build(8), _qcore_missing),
    Contender("qcore int4 weight-only b32 (GPTQ)", "qcore", _qcore_build(4), _qcore_missing),
]


# --------------------------------------------------------------------------- measurements


@dataclass
class Result:
    name: str
    file_bytes: int
    cosine_mean: float
    cosine_worst: float
    worst_sentence: str
    peak_rss_kib: int
    build_seconds: float
    latency_ms_median: float | None = None
    latency_ms_min: float | None = None
    interleaved_ms_median: float | None = None
    interleaved_ms_min: float | None = None


_RESULTS: dict[str, Result] = {}
#: every contender's timed call, for the interleaved rounds after the last test
_RUNS: dict[str, Callable[[], object]] = {}
#: interleaved rounds (each calls every contender once, in turn)
INTERLEAVED_ROUNDS = int(os.environ.get("QCORE_BENCH_INTERLEAVED_ROUNDS", "20"))


def _interleave(results: dict[str, Result], runs: dict[str, Callable[[], object]], rounds: int) -> None:
    """Every contender called in turn, ``rounds`` times (after one warm-up round): on a
    shared host each sees the same moments, which sequential runs do not."""
    from threadpoolctl import threadpool_limits

    times: dict[str, list[float]] = {name: [] for name in runs}
    with threadpool_limits(limits=1):
        for round_ in range(rounds + 1):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                if round_:
                    times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        if values:
            results[name].interleaved_ms_median = float(np.median(values)) * 1e3
            results[name].interleaved_ms_min = min(values) * 1e3


def _peak_rss(runtime: str, model: Path, feeds_file: Path) -> int:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "minilm_peak_rss.py"), runtime, str(model), str(feeds_file)],
        capture_output=True, text=True, env=env, check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"peak-RSS child failed for {model}: {completed.stderr.strip()[-2000:]}")
    return int(completed.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def threads_limited():
    from threadpoolctl import threadpool_limits

    os.environ["QCORE_NUM_THREADS"] = "1"
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def float_path() -> Path:
    return minilm_support.onnx_model_path()


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    return minilm_support.load_sentences()


@pytest.fixture(scope="module")
def sentence_feeds(sentences) -> list[dict[str, np.ndarray]]:
    """Each sentence alone, batch 1, padded to 128 tokens."""
    batch = minilm_support.tokenize(sentences)
    return [{name: batch[name][i : i + 1] for name in minilm_support.INPUT_NAMES} for i in range(len(sentences))]


@pytest.fixture(scope="module")
def reference(float_path, sentence_feeds, threads_limited) -> np.ndarray:
    run = _onnxruntime_runner(float_path)
    return np.concatenate(
        [minilm_support.sentence_embeddings(run(feeds), feeds["attention_mask"]) for feeds in sentence_feeds]
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("minilm")


@pytest.fixture(scope="module")
def latency_feeds_file(sentence_feeds, workdir) -> Path:
    path = workdir / "feeds-b1-s128.npz"
    np.savez(path, **sentence_feeds[-1])
    return path


@pytest.fixture(scope="module", autouse=True)
def summary():
    yield
    if not _RESULTS:
        return
    if INTERLEAVED_ROUNDS > 0 and len(_RUNS) > 1:
        _interleave(_RESULTS, _RUNS, INTERLEAVED_ROUNDS)
    table = format_table(list(_RESULTS.values()))
    print("\n" + table)
    destination = os.environ.get("QCORE_BENCH_TABLE")
    if destination:
        Path(destination).write_text(table + "\n", encoding="utf-8")


def format_table(results: list[Result]) -> str:
    """Markdown table of every contender, with ratios to onnxruntime's int8 and float32."""
    by_name = {r.name: r for r in results}
    ort_int8 = by_name.get("onnxruntime int8 dynamic per-channel")
    ort_float = by_name.get("onnxruntime float32")

    def ratio(value: float | None, base: float | None) -> str:
        return "" if value is None or not base else f"{value / base:.2f}x"

    lines = [
        "| contender | latency median (min), ms | interleaved median (min), ms | speed-up vs ort fp32 | vs ort int8 "
        "| peak RSS MiB | vs ort int8 | file MB | vs ort int8 | cosine mean | cosine worst |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def timing(r: Result) -> float | None:  # the speed-ups: interleaved when measured
        return r.interleaved_ms_median if r.interleaved_ms_median is not None else r.latency_ms_median

    for r in results:
        latency = "" if r.latency_ms_median is None else f"{r.latency_ms_median:.1f} ({r.latency_ms_min:.1f})"
        interleaved = "" if r.interleaved_ms_median is None else \
            f"{r.interleaved_ms_median:.1f} ({r.interleaved_ms_min:.1f})"
        lines.append(
            f"| {r.name} | {latency} | {interleaved} "
            f"| {ratio(timing(ort_float) if ort_float else None, timing(r))} "
            f"| {ratio(timing(r), timing(ort_int8) if ort_int8 else None)} "
            f"| {r.peak_rss_kib / 1024:.1f} | {ratio(r.peak_rss_kib, ort_int8.peak_rss_kib if ort_int8 else None)} "
            f"| {r.file_bytes / 1e6:.2f} | {ratio(r.file_bytes, ort_int8.file_bytes if ort_int8 else None)} "
            f"| {r.cosine_mean:.5f} | {r.cosine_worst:.5f} |"
        )
    return "\n".join(lines)


@pytest.mark.parametrize("contender", CONTENDERS, ids=[c.name.replace(" ", "-") for c in CONTENDERS])
def test_minilm_b1_s128(
    benchmark, contender, float_path, workdir, sentences, sentence_feeds, reference, latency_feeds_file
):
    reason = contender.available()
    if reason is not None:
        pytest.skip(reason)
    started = time.perf_counter()
    model_path = contender.build(float_path, workdir)
    build_seconds = time.perf_counter() - started
    run = _RUNNERS[contender.runtime](model_path)

    embeddings = np.concatenate(
        [minilm_support.sentence_embeddings(run(feeds), feeds["attention_mask"]) for feeds in sentence_feeds]
    )
    cosine = minilm_support.cosine_rows(embeddings, reference)
    result = Result(
        name=contender.name,
        file_bytes=model_path.stat().st_size,
        cosine_mean=float(cosine.mean()),
        cosine_worst=float(cosine.min()),
        worst_sentence=sentences[int(cosine.argmin())],
        peak_rss_kib=_peak_rss(contender.runtime, model_path, latency_feeds_file),
        build_seconds=build_seconds,
    )

    feeds = sentence_feeds[-1]
    benchmark.group = "minilm batch 1 seq 128, 1 thread"
    benchmark.extra_info.update(
        runtime=contender.runtime,
        exact=False,
        file_bytes=result.file_bytes,
        peak_rss_kib=result.peak_rss_kib,
        cosine_mean=result.cosine_mean,
        cosine_worst=result.cosine_worst,
        worst_sentence=result.worst_sentence,
    )
    benchmark.pedantic(run, args=(feeds,), rounds=15, iterations=1, warmup_rounds=3)
    _RUNS[contender.name] = lambda: run(feeds)
    if benchmark.stats is not None:
        result.latency_ms_median = benchmark.stats.stats.median * 1e3
        result.latency_ms_min = benchmark.stats.stats.min * 1e3
    _RESULTS[contender.name] = result
