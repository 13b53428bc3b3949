"""int4 MiniLM accuracy against the calibration text: the shipped set, without its short texts, or plus rearranged copies.

Quantizes all-MiniLM-L6-v2 with the int4 recipe of tests/test_minilm.py (weight-only, affine
blocks of 32, GPTQ with clip search, smoothing) from one calibration set and prints the
mean and worst cosine of the 60 test sentences' embeddings against PyTorch float32::

    PYTHONPATH=$PWD python bench/int4_calibration.py [shipped|no-short|shuffled-words N|mixed-sentences N|stdlib-docstrings N] [--max-rows R]

``shipped`` is the recipe's set (``minilm_support.calibration_texts(paragraphs=True)``:
sentences, paragraphs and the short texts of ``tests/data/calibration_short.txt``);
``no-short`` leaves the short texts out (the set before they were added). The other
variants add to ``no-short``:

``shuffled-words N`` adds N copies of every calibration paragraph with its words in a
random order; ``mixed-sentences N`` adds N rounds of new paragraphs made of four sentences
drawn from different paragraphs. Both only rearrange the shipped text (more tokens, no new
words), to see whether GPTQ's Hessians gain from more rows of the same vocabulary.
``stdlib-docstrings N`` adds N paragraphs of new text: prose paragraphs of the docstrings
of Python's standard library (present on every machine; technical English, another
domain than the test sentences). ``--max-rows`` is ``quantize_transformer``'s number of
calibration rows per layer input (default 8192, the recipe's: more tokens than that are not used).
Needs the torch test dependencies (tests/minilm_support.py).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import minilm_support as ms  # noqa: E402


def stdlib_paragraphs() -> list[str]:
    """Prose paragraphs (10+ words, mostly words, no code) of the standard library's
    module, class and function docstrings, in module-name order, without repeats."""
    import importlib
    import inspect
    import pkgutil
    import sysconfig

    stdlib = sysconfig.get_paths()["stdlib"]
    skip = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo"}
    seen: set[str] = set()
    paragraphs = []
    for info in sorted(pkgutil.iter_modules(), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in skip:
            continue
        spec = importlib.util.find_spec(info.name)
        if spec is None or not spec.origin or not spec.origin.startswith(stdlib) or "site-packages" in spec.origin:
            continue
        try:
            module = importlib.import_module(info.name)
        except Exception:  # noqa: BLE001 - a module that cannot be imported here has no text to give
            continue
        members = [o for _, o in inspect.getmembers(module) if (inspect.isclass(o) or inspect.isfunction(o))
                   and getattr(o, "__module__", "") == info.name]
        for obj in [module, *members]:
            for block in re.split(r"\n\s*\n", inspect.getdoc(obj) or ""):
                text = " ".join(block.split())
                words = text.split()
                if (len(words) < 10 or text in seen or ">>>" in text or "::" in text
                        or sum(w.isalpha() for w in words) < 0.7 * len(words)):
                    continue
                seen.add(text)
                paragraphs.append(text)
    return paragraphs


def calibration_texts(variant: str, copies: int, seed: int = 0) -> list[str]:
    """The shipped calibration texts; for the other variants the sentences and paragraphs
    without the short texts, plus ``copies`` rearranged copies (or, for
    ``stdlib-docstrings``, ``copies`` paragraphs of new text)."""
    if variant == "shipped":
        return ms.calibration_texts(paragraphs=True)
    rng = random.Random(seed)
    paragraphs = ms.load_sentences(ms.PARAGRAPHS_PATH)
    texts = ms.load_sentences(ms.CALIBRATION_PATH) + paragraphs
    if variant == "shuffled-words":
        for _ in range(copies):
            for paragraph in paragraphs:
                words = paragraph.split()
                rng.shuffle(words)
                texts.append(" ".join(words))
    elif variant == "stdlib-docstrings":
        extra = stdlib_paragraphs()
        rng.shuffle(extra)
        texts.extend(extra[:copies])
    elif variant == "mixed-sentences":
        sentences = [s for p in paragraphs for s in re.split(r"(?<=[.!?])\s+", p) if s]
        for _ in range(copies):
            rng.shuffle(sentences)
            texts.extend(" ".join(sentences[i:i + 4]) for i in range(0, len(sentences), 4))
    return texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", nargs="?", default="shipped",
                        choices=["shipped", "no-short", "shuffled-words", "mixed-sentences", "stdlib-docstrings"])
    parser.add_argument("copies", nargs="?", type=int, default=2)
    parser.add_argument("--max-rows", type=int, default=8192)
    args = parser.parse_args(argv)
    reason = ms.missing_dependencies()
    if reason:
        print(f"skipped: {reason}")
        return 0
    from qcore.graph import import_onnx
    from qcore.graph.transformer import quantize_transformer

    feeds = ms.tokenize(ms.load_sentences())
    reference = ms.torch_sentence_embeddings(feeds)
    texts = calibration_texts(args.variant, args.copies)
    calibration = [ms.tokenize([text], length=None) for text in texts]
    tokens = sum(int(c["attention_mask"].sum()) for c in calibration)
    model = quantize_transformer(import_onnx(str(ms.onnx_model_path())), calibration, weight_bits=4, block_size=32,
                                 max_rows=args.max_rows)
    hidden, _ = ms.run_saved(model, feeds)
    cosine = ms.cosine_rows(ms.sentence_embeddings(hidden, feeds["attention_mask"]), reference)
    label = (args.variant if args.variant in ("shipped", "no-short") else f"{args.variant} x{args.copies}") + (
        f", max_rows {args.max_rows}")
    print(f"{label}: {len(texts)} texts, {tokens} tokens: mean cosine {cosine.mean():.5f}, worst {cosine.min():.5f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
