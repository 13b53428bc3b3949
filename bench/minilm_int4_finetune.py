"""int4 MiniLM: fine-tune the GPTQ rounding against float32 by distillation, measure the test cosine.

Starts from the int4 recipe of tests/test_minilm.py (weight-only, affine blocks of 32 along
K, GPTQ with clip search, smoothing; word and position embeddings int4 per row) and trains
the integer values of every int4 tensor with a straight-through estimator: each tensor's
values are a float parameter ``v`` (initialised to the recipe's integers: GPTQ for the
layers, rounding to nearest for the embeddings), the forward pass uses
``(round(clip(v, -8, 7)) - zero_point) * scale`` (the stored scales and zero points stay as
they are), the loss is the squared error of the last hidden state against the float32 model
on the calibration texts (the int4 test's sentences and paragraphs, masked to real tokens),
Adam on ``v``. Every ``--every`` steps the rounded values are written back into the qcore
model, which is saved, loaded and run by the qcore runtime on the 60 test sentences: the
printed cosines are of real int4 files (same size as the recipe's)::

    PYTHONPATH=$PWD python bench/minilm_int4_finetune.py [--steps 400] [--lr 5e-3] [--batch 8]
        [--every 200] [--frozen-embeddings] [--seed 0]

``--frozen-embeddings`` trains only the 36 linear layers. Needs the torch test
dependencies (tests/minilm_support.py); torch runs on every core it finds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import minilm_support as ms  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--every", type=int, default=200, help="steps between evaluations")
    parser.add_argument("--frozen-embeddings", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    reason = ms.missing_dependencies()
    if reason:
        print(f"skipped: {reason}")
        return 0
    import torch
    from torch.nn.utils import parametrize

    from qcore.graph.transformer import quantize_transformer
    from qcore.reference.tensor import QuantizedTensor

    torch.manual_seed(args.seed)
    model = quantize_transformer(ms.float_graph(), ms.calibration_feeds(paragraphs=True), weight_bits=4,
                                 block_size=32)
    graph = model.graph
    smoothing = {n.outputs[0]: graph.initializers[n.inputs[1]] for n in graph.nodes
                 if n.op == "Mul" and n.name.endswith(".smoothing")}

    class Int4Values(torch.nn.Module):
        """A torch weight computed from trainable int4 values with fixed scales and zero points."""

        def __init__(self, name: str, multiplier: np.ndarray | None, transpose: bool) -> None:
            super().__init__()
            tensor = graph.initializers[name]
            scale, zero = tensor.expanded_params()
            self.name, self.transpose = name, transpose
            self.scale = torch.from_numpy(np.ascontiguousarray(scale, dtype=np.float32))
            self.zero = torch.from_numpy(zero.astype(np.float32))
            self.values = torch.nn.Parameter(torch.from_numpy(tensor.data.astype(np.float32)))
            self.multiplier = None if multiplier is None else torch.from_numpy(
                np.asarray(multiplier, np.float32)[:, None])

        def integers(self) -> torch.Tensor:
            v = torch.clamp(self.values, -8, 7)
            return v + (torch.round(v) - v).detach()  # straight-through rounding

        def forward(self, _: torch.Tensor) -> torch.Tensor:
            w = (self.integers() - self.zero) * self.scale
            if self.multiplier is not None:
                w = self.multiplier * w
            return w.t() if self.transpose else w

    student, teacher = ms.load_torch_model(), ms.load_torch_model()
    for p in list(student.parameters()) + list(teacher.parameters()):
        p.requires_grad_(False)
    trained: list[Int4Values] = []
    for node in graph.nodes:
        if node.op == "WMatMul":
            module = student.get_submodule(ms.torch_module_path(node.name))
            values = Int4Values(node.inputs[1], smoothing.get(node.inputs[0]), transpose=True)
            bias = np.array(graph.initializers[node.inputs[2]], dtype=np.float32)  # a writable copy
            module.bias = torch.nn.Parameter(torch.from_numpy(bias), requires_grad=False)
        elif node.op == "QGather":
            module = student.get_submodule(node.inputs[0].removeprefix("bert.").removesuffix(".weight.qgather"))
            values = Int4Values(node.inputs[0], None, transpose=False)
            values.values.requires_grad_(not args.frozen_embeddings)
        else:
            continue
        parametrize.register_parametrization(module, "weight", values, unsafe=True)
        trained.append(values)

    sentences = ms.tokenize(ms.load_sentences())
    reference = ms.torch_sentence_embeddings(sentences, teacher)

    def evaluate(label: str) -> None:
        for values in trained:
            old = graph.initializers[values.name]
            data = values.integers().detach().numpy().astype(np.int8)
            graph.initializers[values.name] = QuantizedTensor(data, old.scale, old.zero_point, old.dtype,
                                                              axis=old.axis, block_size=old.block_size)
        hidden, size = ms.run_saved(model, sentences)
        cosine = ms.cosine_rows(ms.sentence_embeddings(hidden, sentences["attention_mask"]), reference)
        print(f"| {label} | {cosine.mean():.5f} | {cosine.min():.5f} | {size:,} |", flush=True)

    texts = ms.load_sentences(ms.CALIBRATION_PATH) + ms.load_sentences(ms.PARAGRAPHS_PATH)
    batch = ms.tokenize(texts, length=None)
    inputs = {name: torch.from_numpy(np.asarray(batch[name])) for name in ms.INPUT_NAMES}
    with torch.no_grad():
        target = teacher(**inputs).last_hidden_state
    mask = inputs["attention_mask"].to(torch.float32)[..., None]
    start = [v.values.detach().clone() for v in trained]
    optimizer = torch.optim.Adam([v.values for v in trained if v.values.requires_grad], lr=args.lr)
    print(f"{len(texts)} calibration texts, {int(mask.sum())} tokens; lr {args.lr}, batch {args.batch}, "
          f"embeddings {'frozen' if args.frozen_embeddings else 'trained'}\n")
    print("| step | mean cosine | worst | file bytes |\n|---|---|---|---|")
    evaluate("0 (GPTQ)")
    began = time.perf_counter()
    for step in range(1, args.steps + 1):
        rows = torch.randint(0, len(texts), (args.batch,))
        hidden = student(**{name: value[rows] for name, value in inputs.items()}).last_hidden_state
        m = mask[rows]
        loss = (((hidden - target[rows]) ** 2) * m).sum() / (m.sum() * hidden.shape[-1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % args.every == 0 or step == args.steps:
            moved = sum(int((v.integers().detach() != torch.round(s)).sum()) for v, s in zip(trained, start))
            evaluate(f"{step} (loss {loss.item():.5f}, {moved:,} values moved, {time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
