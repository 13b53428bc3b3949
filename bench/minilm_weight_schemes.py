"""Weight schemes measured on all-MiniLM-L6-v2 and not adopted: paired int8, rotated int4, int4 embeddings, 7-bit rows.

``pairs`` -- int8 weights whose byte pairs cannot saturate ``vpmaddubsw``. The int8 recipe
of tests/test_minilm.py (smoothing, GPTQ, per-token uint8 activations) with GPTQ's
``pair_limit=128``: every pair of input features ``(2j, 2j + 1)`` keeps
``|q[2j]| + |q[2j + 1]| <= 128``, so ``255 * 128`` bounds each int16 pair sum and the faster
x86 ``vpmaddubsw`` product would be exact (docs/KERNELS.md, "Where the bound is").
``--balanced`` pairs each row with large weights with one with small weights (a
permutation of K that a kernel would have to apply to its activations too) before the
constrained GPTQ. The model is built and run by the qcore runtime (the stored weights
are the constrained ones; the runtime's exact kernel runs them).

``rotation`` -- int4 weight-only with an orthogonal rotation of K (incoherence processing,
as in QuIP# / QuaRot): ``x W = (x R)(R^T W)``, GPTQ (affine blocks of 32, clip search) on
``R^T W`` with the Hessian of ``x R`` (the int4 test's calibration sentences and
paragraphs), evaluated as float weights ``R Q`` (exactly what
an online rotation of the activations would compute, up to float rounding); the word
embedding stays float, and ``identity`` is the same pipeline without rotation for the
comparison. ``hadamard`` uses random-sign Hadamard blocks of ``--block`` (128 by default),
``orthogonal`` one random orthogonal K x K matrix.

``position`` -- the int4 recipe of tests/test_minilm.py with the position embedding
(512 x 384, int4 per row in the recipe) as int4 affine blocks of 32 along each row
(float16 scales, 16.9 kB more) or as int8 symmetric per row: run by the qcore runtime.

``activations7`` -- the int8 recipe of tests/test_minilm.py (smoothing, GPTQ) with its
per-row uint8 activations replaced by 7-bit ones (128 levels, 0..127: what would let the
faster ``vpmaddubsw`` product stay exact, docs/KERNELS.md) in one group of layers at a
time (query / key / value, attention output, FFN input, FFN output) or several. Evaluated
in PyTorch with the recipe's weights and smoothing: each linear layer quantizes its rows
as the runtime does (``lo = min(0, min x)``, ``hi = max(0, max x)``, ``s = (hi - lo) / L``,
``z = round(clip(-lo / s, 0, L))``, ``q = clip(round(x / s) + z, 0, L)``, L = 255 or 127) and
multiplies in float64; the embeddings stay float (the recipe's are int8). The first row,
every group at 256 levels (0..255), shows how far this model is from the runtime's own
figures (printed above it): read the others by their change from it.

``embedding`` -- the int4 recipe of tests/test_minilm.py with the word embedding's rows
quantized with a searched clip ratio (per row, the affine range times the ratio among
1.0, 0.975, ..., 0.5 with the smallest squared error) instead of their full range: same
file size, run by the qcore runtime.

Prints the mean and worst cosine of the 60 test sentences' embeddings against PyTorch
float32::

    PYTHONPATH=$PWD python bench/minilm_weight_schemes.py pairs [--balanced]
    PYTHONPATH=$PWD python bench/minilm_weight_schemes.py rotation identity|hadamard|orthogonal [--block 128]
    PYTHONPATH=$PWD python bench/minilm_weight_schemes.py embedding
    PYTHONPATH=$PWD python bench/minilm_weight_schemes.py position
    PYTHONPATH=$PWD python bench/minilm_weight_schemes.py activations7

Each takes 1-2 minutes. Needs the torch test dependencies (tests/minilm_support.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import minilm_support as ms  # noqa: E402


def _report(label: str, hidden: np.ndarray, feeds: dict, reference: np.ndarray) -> None:
    cosine = ms.cosine_rows(ms.sentence_embeddings(hidden, feeds["attention_mask"]), reference)
    print(f"{label}: mean cosine {cosine.mean():.5f}, worst {cosine.min():.5f}")


def _balanced_order(weight: np.ndarray) -> np.ndarray:
    """A permutation of K putting the row with the k-th largest relative weight next to the
    row with the k-th smallest."""
    relative = (np.abs(weight) / np.maximum(np.abs(weight).max(axis=0), 1e-30)).max(axis=1)
    order = np.argsort(-relative, kind="stable")
    half = len(order) // 2
    perm = np.empty(len(order), dtype=np.int64)
    perm[0:2 * half:2] = order[:half]
    perm[1:2 * half:2] = order[len(order) - half:][::-1]
    if len(order) % 2:
        perm[-1] = order[half]
    return perm


def pairs(balanced: bool, graph, calibration, feeds, reference) -> None:
    from qcore.graph import transformer
    from qcore.reference.tensor import QuantizedTensor

    plain = transformer.gptq_quantize
    violations = [0, 0]

    def constrained(weight, samples, **kwargs):
        if kwargs.get("bits", 8) != 8 or kwargs.get("block_size"):
            return plain(weight, samples, **kwargs)
        free = plain(weight, samples, **kwargs).data.astype(np.int32)
        violations[0] += int((np.abs(free[0::2]) + np.abs(free[1::2]) > 128).sum())
        violations[1] += free[0::2].size
        perm = _balanced_order(np.asarray(weight)) if balanced else np.arange(weight.shape[0])
        q = plain(np.asarray(weight)[perm], np.asarray(samples)[:, perm], pair_limit=128, **kwargs)
        inverse = np.argsort(perm)
        return QuantizedTensor(q.data[inverse], q.scale, q.zero_point, q.dtype, axis=q.axis)

    transformer.gptq_quantize = constrained
    try:
        model = transformer.quantize_transformer(graph, calibration, weight_bits=8)
    finally:
        transformer.gptq_quantize = plain
    print(f"unconstrained int8 pairs over 128: {violations[0]} of {violations[1]} "
          f"({100.0 * violations[0] / max(violations[1], 1):.2f} %)")
    hidden, _ = ms.run_saved(model, feeds)
    _report(f"int8, pairs <= 128{' (balanced pairing)' if balanced else ''}", hidden, feeds, reference)


def _hadamard(n: int) -> np.ndarray:
    h = np.ones((1, 1))
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h / np.sqrt(n)


def rotation(kind: str, block: int, graph, calibration, feeds, reference) -> None:
    from qcore.graph import transformer
    from qcore.graph.quantize import find_sites
    from qcore.runtime import Model

    rng = np.random.default_rng(1)
    graph = transformer.smooth_activations(graph, calibration, alpha="search", weight_bits=4, block_size=32,
                                           quantize_activations=False)
    sites = find_sites(graph, op_types=("MatMul",))
    samples = transformer.activation_samples(graph, calibration, sorted({s.node.inputs[0] for s in sites}))
    for site in sites:
        weight = np.asarray(site.weight, np.float64)
        k = weight.shape[0]
        if kind == "identity":
            r = np.eye(k)
        elif kind == "orthogonal":
            r, _ = np.linalg.qr(rng.standard_normal((k, k)))
        else:
            if k % block:
                raise SystemExit(f"K = {k} is not a multiple of the Hadamard block {block}")
            r = np.kron(np.eye(k // block), _hadamard(block)) * rng.choice([-1.0, 1.0], k)[:, None]
        x = np.asarray(samples[site.node.inputs[0]], np.float64)
        q = transformer.gptq_quantize(r.T @ weight, x @ r, bits=4, block_size=32, symmetric=False,
                                      clip_ratios=transformer.INT4_CLIP_RATIOS)
        graph.initializers[site.node.inputs[1]] = (r @ q.dequantize().astype(np.float64)).astype(np.float32)
    hidden = Model(graph).run(feeds)[ms.OUTPUT_NAME]
    _report(f"int4 b32 GPTQ, rotation {kind}{f' {block}' if kind == 'hadamard' else ''}, embeddings float",
            hidden, feeds, reference)


def embedding(graph, calibration, feeds, reference) -> None:
    from qcore.graph import transformer
    from qcore.reference.params import float16_scale
    from qcore.reference.tensor import QuantizedTensor

    model = transformer.quantize_transformer(graph, calibration, weight_bits=4, block_size=32)
    ratios = tuple(round(1.0 - 0.025 * i, 3) for i in range(21))

    def stored(scale: np.ndarray) -> np.ndarray:
        half = float16_scale(scale)
        return half.astype(np.float64) if half is not None else scale.astype(np.float32).astype(np.float64)

    for node in model.graph.nodes:
        table = model.graph.initializers.get(node.inputs[0]) if node.op == "QGather" else None
        if table is None or table.axis != 0 or table.block_size:
            continue
        weight = np.asarray(graph.initializers[node.inputs[0].removesuffix(".qgather")], np.float64)
        scale, zero = transformer._block_parameters(weight.T, False, -8.0, 7.0, ratios, stored)
        data = np.clip(np.rint(weight / scale[:, None]) + zero[:, None], -8, 7).astype(np.int8)
        model.graph.initializers[node.inputs[0]] = QuantizedTensor(data, scale.astype(np.float32),
                                                                   zero.astype(np.int8), "int4", axis=0)
    hidden, size = ms.run_saved(model, feeds)
    print(f"file: {size:,} bytes")
    _report("int4 b32 recipe, word embedding rows with a searched clip ratio", hidden, feeds, reference)


def position(graph, calibration, feeds, reference) -> None:
    from qcore.graph import transformer
    from qcore.reference.quantize import quantize_tensor

    model = transformer.quantize_transformer(graph, calibration, weight_bits=4, block_size=32)
    name = "bert.embeddings.position_embeddings.weight"
    table = np.asarray(graph.initializers[name], np.float32)
    schemes = {
        "int4 per row (the recipe)": model.graph.initializers[name + ".qgather"],
        "int4 affine blocks of 32": quantize_tensor(table, "int4", granularity="per_block", axis=1, block_size=32,
                                                    symmetric=False, scale_dtype="float16"),
        "int8 symmetric per row": quantize_tensor(table, "int8", granularity="per_channel", axis=0,
                                                  symmetric=True, scale_dtype="float16"),
    }
    for label, tensor in schemes.items():
        model.graph.initializers[name + ".qgather"] = tensor
        hidden, size = ms.run_saved(model, feeds)
        _report(f"int4 b32 recipe, position embedding {label}, {size:,} bytes", hidden, feeds, reference)


def _layer_group(path: str) -> str:
    """The layer group of a BertModel linear module path."""
    if ".attention.self." in path:
        return "query / key / value"
    if ".attention.output." in path:
        return "attention output"
    return "FFN input" if ".intermediate." in path else "FFN output"


def activations7(graph, calibration, feeds, reference) -> None:
    import torch

    from qcore.graph import transformer

    model = transformer.quantize_transformer(graph, calibration, weight_bits=8)
    _report("runtime, uint8 rows (the recipe)", model.run(feeds)[ms.OUTPUT_NAME], feeds, reference)
    inits = model.graph.initializers
    smoothing = {n.outputs[0]: inits[n.inputs[1]] for n in model.graph.nodes
                 if n.op == "Mul" and n.name.endswith(".smoothing")}
    seven: set[str] = set()

    class RowQuantizedLinear(torch.nn.Module):
        def __init__(self, path: str, weight, smooth, bias) -> None:
            super().__init__()
            self.group = _layer_group(path)
            self.weight = torch.from_numpy(np.asarray(weight.dequantize(), np.float64))
            self.smooth = None if smooth is None else torch.from_numpy(np.asarray(smooth, np.float32))
            self.bias = torch.from_numpy(np.asarray(bias, np.float64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.smooth is not None:
                x = x * self.smooth  # float32, as the runtime's smoothing
            x = x.double()
            levels = 127 if self.group in seven else 255
            lo = torch.clamp(x.amin(-1, keepdim=True), max=0)
            hi = torch.clamp(x.amax(-1, keepdim=True), min=0)
            s = ((hi - lo) / levels).float().double()
            s = torch.where(s == 0, torch.ones_like(s), s)
            z = torch.round(torch.clamp(-lo / s, 0, levels))
            q = torch.clamp(torch.round(x / s) + z, 0, levels)
            return (((q - z) @ self.weight) * s + self.bias).float()

    student = ms.load_torch_model()
    for node in model.graph.nodes:
        if node.op == "QMatMul":
            path = ms.torch_module_path(node.name)
            parent, name = path.rsplit(".", 1)
            setattr(student.get_submodule(parent), name,
                    RowQuantizedLinear(path, inits[node.inputs[1]], smoothing.get(node.inputs[0]),
                                       inits[node.inputs[2]]))
    groups = ["query / key / value", "attention output", "FFN input", "FFN output"]
    for chosen in [[]] + [[g] for g in groups] + [groups[:1] + groups[2:3], groups[1:3], groups]:
        seven.clear()
        seven.update(chosen)
        cosine = ms.cosine_rows(ms.torch_sentence_embeddings(feeds, student), reference)
        label = " + ".join(chosen) if chosen else "none (every group uint8)"
        print(f"7-bit rows in {label}: mean cosine {cosine.mean():.5f}, worst {cosine.min():.5f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="scheme", required=True)
    p = sub.add_parser("pairs")
    p.add_argument("--balanced", action="store_true")
    r = sub.add_parser("rotation")
    r.add_argument("kind", choices=["identity", "hadamard", "orthogonal"])
    r.add_argument("--block", type=int, default=128)
    sub.add_parser("embedding")
    sub.add_parser("position")
    sub.add_parser("activations7")
    args = parser.parse_args(argv)
    reason = ms.missing_dependencies()
    if reason:
        print(f"skipped: {reason}")
        return 0
    graph = ms.float_graph()
    # the calibration sets of tests/test_minilm.py: sentences for int8, plus paragraphs for int4
    calibration = ms.calibration_feeds(paragraphs=args.scheme not in ("pairs", "activations7"))
    feeds = ms.tokenize(ms.load_sentences())
    reference = ms.torch_sentence_embeddings(feeds)
    if args.scheme == "pairs":
        pairs(args.balanced, graph, calibration, feeds, reference)
    elif args.scheme == "embedding":
        embedding(graph, calibration, feeds, reference)
    elif args.scheme == "position":
        position(graph, calibration, feeds, reference)
    elif args.scheme == "activations7":
        activations7(graph, calibration, feeds, reference)
    else:
        rotation(args.kind, args.block, graph, calibration, feeds, reference)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
