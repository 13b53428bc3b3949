"""The per-layer report's streaming sums agree with qcore.reference.metrics."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from qcore.errors import ModelError
from qcore.reference import metrics

sys.path.insert(0, os.path.dirname(__file__))
mb = pytest.importorskip("model_builders")
import qcore.graph.quantize as q  # noqa: E402
from qcore.graph.compare import compare_models  # noqa: E402
from qcore.runtime import Model  # noqa: E402


def test_report_matches_reference_metrics_and_streams():
    rng = np.random.default_rng(0)
    float_model = Model.from_onnx(mb.mlp(rng))
    data = {"input": rng.normal(size=(40, 64)).astype(np.float32)}
    quant = q.quantize_static(float_model, {"input": data["input"][:20]})  # half the data: some clipping
    whole = compare_models(float_model.graph, quant.graph, data, batch_size=40)
    streamed = compare_models(float_model.graph, quant.graph, data, batch_size=7)
    for a, b in zip(whole, streamed):
        assert a.name == b.name
        # BLAS may sum differently for other batch sizes: equal up to float32 rounding
        assert a.sqnr_db == pytest.approx(b.sqnr_db, rel=1e-5) and a.cosine == pytest.approx(b.cosine, rel=1e-7)
        assert a.max_error_steps == pytest.approx(b.max_error_steps, rel=1e-3)
        assert a.fraction_clipped == b.fraction_clipped
    fvals, qvals = {}, {}
    wanted = {r.output for r in whole}
    float_model.executor.run(data, observe=lambda n, v: fvals.__setitem__(n, v) if n in wanted else None)
    quant.executor.run(data, observe=lambda n, v: qvals.__setitem__(n, v) if n in wanted else None)
    for r in whole:
        if r.op == "output":
            continue
        assert r.sqnr_db == pytest.approx(metrics.sqnr(fvals[r.output], qvals[r.output]), rel=1e-9)
        assert r.cosine == pytest.approx(metrics.cosine_similarity(fvals[r.output], qvals[r.output]), rel=1e-9)
    assert [r.sqnr_db for r in whole if r.op != "output"] == sorted(r.sqnr_db for r in whole if r.op != "output")
    assert any(r.fraction_clipped > 0 and r.max_error_steps > 0.5 for r in whole)


def test_models_must_correspond():
    rng = np.random.default_rng(1)
    a = Model.from_onnx(mb.mlp(rng))
    b = Model.from_onnx(mb.cnn1d(rng))
    with pytest.raises(ModelError, match="different inputs|no quantized layer"):
        compare_models(a.graph, q.quantize_dynamic(b, op_types=("Conv",)).graph,
                       {"input": np.zeros((2, 64), np.float32)})
