"""int4 MiniLM accuracy against the calibration text: the shipped set, or it plus rearranged copies.

Quantizes all-MiniLM-L6-v2 with the int4 recipe of tests/test_minilm.py (weight-only, affine
blocks of 32, GPTQ with clip search, smoothing) from one calibration set and prints the
mean and worst cosine of the 52 test sentences' embeddings against PyTorch float32::

    PYTHONPATH=$PWD python bench/int4_calibration.py [shipped|shuffled-words N|mixed-sentences N]

``shuffled-words N`` adds N copies of every calibration paragraph with its words in a
random order; ``mixed-sentences N`` adds N rounds of new paragraphs made of four sentences
drawn from different paragraphs. Both only rearrange the shipped text (more tokens, no new
words), to see whether GPTQ's Hessians gain from more rows of the same vocabulary.
Needs the torch test dependencies (tests/minilm_support.py).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import tempfile
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import minilm_support as ms  # noqa: E402


def calibration_texts(variant: str, copies: int, seed: int = 0) -> list[str]:
    """The shipped calibration sentences and paragraphs, plus ``copies`` rearranged copies."""
    rng = random.Random(seed)
    paragraphs = ms.load_sentences(ms.PARAGRAPHS_PATH)
    texts = ms.load_sentences(ms.CALIBRATION_PATH) + paragraphs
    if variant == "shuffled-words":
        for _ in range(copies):
            for paragraph in paragraphs:
                words = paragraph.split()
                rng.shuffle(words)
                texts.append(" ".join(words))
    elif variant == "mixed-sentences":
        sentences = [s for p in paragraphs for s in re.split(r"(?<=[.!?])\s+", p) if s]
        for _ in range(copies):
            rng.shuffle(sentences)
            texts.extend(" ".join(sentences[i:i + 4]) for i in range(0, len(sentences), 4))
    return texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", nargs="?", default="shipped", choices=["shipped", "shuffled-words", "mixed-sentences"])
    parser.add_argument("copies", nargs="?", type=int, default=2)
    args = parser.parse_args(argv)
    reason = ms.missing_dependencies()
    if reason:
        print(f"skipped: {reason}")
        return 0
    from qcore.api import load, save
    from qcore.graph import import_onnx
    from qcore.graph.transformer import quantize_transformer

    feeds = ms.tokenize(ms.load_sentences())
    reference = ms.torch_sentence_embeddings(feeds)
    texts = calibration_texts(args.variant, args.copies)
    calibration = [ms.tokenize([text], length=None) for text in texts]
    tokens = sum(int(c["attention_mask"].sum()) for c in calibration)
    model = quantize_transformer(import_onnx(str(ms.onnx_model_path())), calibration, weight_bits=4, block_size=32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "minilm-int4.qcm"
        save(model, path)
        hidden = load(path).run(feeds)[ms.OUTPUT_NAME]
    cosine = ms.cosine_rows(ms.sentence_embeddings(hidden, feeds["attention_mask"]), reference)
    label = args.variant if args.variant == "shipped" else f"{args.variant} x{args.copies}"
    print(f"{label}: {len(texts)} texts, {tokens} tokens: mean cosine {cosine.mean():.5f}, worst {cosine.min():.5f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
