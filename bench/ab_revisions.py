"""Two revisions of qcore timed in one process, call for call, on MiniLM: before / after figures on a noisy host.

On a shared machine two runs minutes apart can differ by 20 % or more; a change worth a
few percent only shows when both versions run in the same process, alternating call for
call, so both see the same conditions. This builds each revision's C extension in a
scratch git worktree, imports the two packages side by side (renamed ``qcore_a`` and
``qcore_b``; qcore imports itself only relatively), checks that both give the same bits,
and prints the best and median time of each::

    PYTHONPATH=$PWD python bench/ab_revisions.py REV_A [REV_B] [--layers M ...] [--tokens N ...] [--padded]
                                                 [--kernels] [--rounds R] [--float-change] [--int4]

``REV_B`` defaults to the working tree (its extension as built in place). ``--layers M``
times MiniLM's 36 int8 linear layers (``DynamicLinear`` calls) on M rows, every layer's
output compared; ``--tokens N``
times a whole ``Model.run`` on the first N tokens of the test sentences, unpadded (N =
128 is bench/ab_minilm.py's ``--full``), ``--padded`` on its default input (the last test
sentence padded to 128 tokens); ``--kernels`` the float kernels on MiniLM's
shapes (attention scores, softmax, GELU, erf, layer norm; ten times the rounds); ``--float-change`` times
whole runs whose outputs differ in their float bits (a change of float convention) and
prints the largest difference; ``--int4`` runs ``--tokens`` / ``--padded`` on the int4
weight-only model (tests/test_minilm.py's recipe, built once). The int8 model is built as bench/ab_minilm.py
builds it (and shared with it: ``--workdir``). Needs git and the torch test dependencies
(tests/minilm_support.py) when the model is not built yet; each revision's build takes
about a minute.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "QCORE_NUM_THREADS"):
    os.environ[_variable] = "1"

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))


def _package(revision: str | None, name: str, scratch: Path, trees: list[Path]) -> None:
    """A copy of qcore at ``revision`` (None: the working tree), built, as package ``name``
    under ``scratch``; a worktree it adds is appended to ``trees`` at once (for removal)."""
    source = ROOT
    if revision is not None:
        source = scratch / f"tree-{name}"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(source), revision],
                       check=True, capture_output=True)
        trees.append(source)
        build = subprocess.run([sys.executable, "csrc/ffi_build.py"], cwd=source, capture_output=True, text=True)
        if build.returncode:
            raise SystemExit(f"building {revision} failed:\n{build.stdout[-4000:]}{build.stderr[-4000:]}")
    shutil.copytree(source / "qcore", scratch / name, ignore=shutil.ignore_patterns("__pycache__", "*.o", "*.c"))


def _feeds(tokens: int) -> dict[str, np.ndarray]:
    """The first ``tokens`` of the joined test sentences, unpadded; 0: the last sentence padded to 128."""
    import minilm_support

    sentences = minilm_support.load_sentences()
    batch = minilm_support.tokenize([" ".join(sentences)], length=tokens) if tokens else \
        minilm_support.tokenize(sentences[-1:])
    return {name: batch[name] for name in minilm_support.INPUT_NAMES}


def _linear_layers(package, model_path: Path) -> list:
    kernels = importlib.import_module(package.__name__ + ".runtime.kernels")
    graph = package.load(str(model_path)).graph
    layers = []
    for node in graph.nodes:
        if node.op == "QMatMul":
            bias = np.asarray(graph.initializers[node.inputs[2]], np.float32)
            packed = kernels.PackedLinear.from_matmul(graph.initializers[node.inputs[1]], bias)
            layers.append((packed.k, packed.n, packed.dynamic_rows_call(None)))
    return layers


def _report(label: str, times: dict[str, list[float]]) -> None:
    cells = [f"best {min(v) * 1e3:.3f}, median {float(np.median(v)) * 1e3:.3f} ms" for v in times.values()]
    a, b = (float(np.median(v)) for v in times.values())
    print(f"| {label} | " + " | ".join(cells) + f" | {a / b:.3f}x |")


def _kernels(packages: dict, rounds: int) -> int:
    """Time the float kernels of both packages call for call; nonzero when their bits differ."""
    rng = np.random.default_rng(1)
    rows = rng.standard_normal((1, 128, 2, 12, 32)).astype(np.float32) * 2
    q, k = rows[:, :, 0].transpose(0, 2, 1, 3), rows[:, :, 1].transpose(0, 2, 3, 1)
    mask = np.zeros((1, 1, 1, 128), np.float32)
    scores = (rng.standard_normal((1, 12, 128, 128)) * 3).astype(np.float32)
    x = (rng.standard_normal((128, 1536)) * 2).astype(np.float32)
    h, r = (rng.standard_normal((2, 128, 384)) * 3).astype(np.float32)
    gamma, beta = rng.standard_normal((2, 384)).astype(np.float32)
    cases = {
        "attention scores, 12 x 128 x 128": lambda att, act, out: att.attention_scores(q, k, 0.1767767, mask, out=out),
        "softmax, 12 x 128 x 128": lambda att, act, out: act.softmax(scores, out=out),
        "GELU, 128 x 1536": lambda att, act, out: act.gelu(x, out=out),
        "erf, 128 x 1536": lambda att, act, out: act.erf(x, out=out),
        "layer norm + residual, 128 x 384": lambda att, act, out: act.layer_norm(h, gamma, beta, 1e-12, residual=r,
                                                                                out=out),
    }
    modules = {name: (importlib.import_module(p.__name__ + "._attention"),
                      importlib.import_module(p.__name__ + "._activation")) for name, p in packages.items()}
    for label, run in cases.items():
        shape = x.shape if "128 x 1536" in label else h.shape if "128 x 384" in label else scores.shape
        outs = {name: np.empty(shape, np.float32) for name in packages}
        times: dict[str, list[float]] = {name: [] for name in packages}
        for _ in range(rounds):
            for name, (attention, activation) in modules.items():
                start = time.perf_counter()
                run(attention, activation, outs[name])
                times[name].append(time.perf_counter() - start)
        first, second = outs.values()
        if not np.array_equal(first.view(np.uint32), second.view(np.uint32)):
            print(f"{label}: the revisions give different bits")
            return 1
        _report(label, times)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev_a")
    parser.add_argument("rev_b", nargs="?", default=None)
    parser.add_argument("--layers", type=int, nargs="*", default=[], metavar="M")
    parser.add_argument("--tokens", type=int, nargs="*", default=[], metavar="N")
    parser.add_argument("--padded", action="store_true",
                        help="also time Model.run on the padded benchmark input (the last test sentence, 128 tokens)")
    parser.add_argument("--kernels", action="store_true",
                        help="also time the float kernels on MiniLM's shapes at 128 tokens: the attention scores "
                             "(12 heads, 128 x 128, depth 32, a mask), softmax alone, GELU and erf of 128 x 1536, "
                             "a layer norm with its residual of 128 x 384")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--float-change", action="store_true",
                        help="time whole runs whose float outputs differ (a changed float convention), "
                             "printing the largest difference, instead of stopping")
    parser.add_argument("--int4", action="store_true",
                        help="--tokens / --padded run the int4 weight-only model (the recipe of tests/test_minilm.py, "
                             "built once into --workdir) instead of the int8 one")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".pytest_cache" / "d" / "qcore_minilm_ab")
    args = parser.parse_args(argv)
    if not args.layers and not args.tokens and not args.kernels and not args.padded:
        args.layers, args.tokens = [1, 4, 16, 128], [4, 128]
    if any(not 1 <= n <= 128 for n in args.tokens) or any(m < 1 for m in args.layers):
        parser.error("--tokens must be in 1..128 and --layers at least 1")
    import minilm_support

    model_path = args.workdir / "qcore-int8.qcm"
    run_path = args.workdir / "qcore-int4.qcm" if args.int4 else model_path
    needs_model = bool(args.layers or args.tokens or args.padded)
    reason = minilm_support.missing_dependencies()
    if needs_model and reason and not (model_path.exists() and run_path.exists()):
        print(f"skipped: {reason}")
        return 0
    if needs_model and not model_path.exists():
        import ab_minilm

        ab_minilm._models(args.workdir)
    if needs_model and not run_path.exists():
        from qcore.api import save
        from qcore.graph import import_onnx
        from qcore.graph.transformer import quantize_transformer

        save(quantize_transformer(import_onnx(str(minilm_support.onnx_model_path())),
                                  minilm_support.calibration_feeds(paragraphs=True), weight_bits=4, block_size=32),
             run_path)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        trees: list[Path] = []
        try:
            for revision, name in ((args.rev_a, "qcore_a"), (args.rev_b, "qcore_b")):
                _package(revision, name, scratch, trees)
            sys.path.insert(0, str(scratch))
            packages = {f"a ({args.rev_a})": importlib.import_module("qcore_a"),
                        f"b ({args.rev_b or 'working tree'})": importlib.import_module("qcore_b")}
            print(f"| what | {' | '.join(packages)} | a / b (medians) |\n|---|---|---|---|")
            rng = np.random.default_rng(0)
            layers = {name: _linear_layers(p, model_path) for name, p in packages.items()} if args.layers else {}
            for m in args.layers:
                xs = {k: rng.standard_normal((m, k)).astype(np.float32) for k in (384, 1536)}
                # one output per layer, so that every layer's bits are compared
                outs = {name: [np.empty((m, n), np.float32) for _, n, _ in calls] for name, calls in layers.items()}
                times: dict[str, list[float]] = {name: [] for name in packages}
                for _ in range(args.rounds):
                    for name, calls in layers.items():
                        start = time.perf_counter()
                        for (k, _, call), out in zip(calls, outs[name]):
                            call(xs[k], out)
                        times[name].append(time.perf_counter() - start)
                first, second = outs.values()
                if any(not np.array_equal(a, b) for a, b in zip(first, second)):
                    print(f"M = {m}: the revisions' linear layers give different bits")
                    return 1
                _report(f"{len(first)} linear layers, M = {m}", times)
            if args.kernels and _kernels(packages, args.rounds * 10):
                return 1
            models = {name: p.load(str(run_path)) for name, p in packages.items()} if args.tokens or args.padded else {}
            for tokens in args.tokens + ([0] if args.padded else []):
                feeds = _feeds(tokens)
                results = {name: model.run(feeds) for name, model in models.items()}
                first, second = results.values()
                if any(not np.array_equal(first[k], second[k]) for k in first):
                    worst = max(float(np.max(np.abs(first[k].astype(np.float64) - second[k]))) for k in first)
                    print(f"{tokens} tokens: the revisions' outputs differ (bits; largest difference {worst:.3g})")
                    if not args.float_change:
                        return 1
                times = {name: [] for name in models}
                for _ in range(args.rounds):
                    for name, model in models.items():
                        start = time.perf_counter()
                        model.run(feeds)
                        times[name].append(time.perf_counter() - start)
                kind = "int4 " if args.int4 else ""
                _report(f"{kind}Model.run, {tokens} tokens" if tokens else f"{kind}Model.run, padded sentence", times)
        finally:
            for tree in trees:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                               check=False, capture_output=True)
    print(f"\n{args.rounds} rounds each, interleaved; load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
