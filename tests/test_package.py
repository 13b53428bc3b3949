"""The package's public surface: every advertised name resolves, and layering holds."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import qcore
import qcore.ops
import qcore.reference


def test_every_public_name_resolves():
    for module in (qcore, qcore.ops, qcore.reference):
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"


def test_unknown_attribute_is_an_attribute_error():
    try:
        qcore.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("qcore.no_such_thing resolved")


def _modules_after(statement: str) -> set[str]:
    """Modules loaded by a fresh interpreter after ``statement``, importing the qcore under test.

    The child runs outside the source tree (whose qcore may be unbuilt) with the tested
    package's parent directory first on its path.
    """
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(qcore.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env,
                         cwd=tempfile.gettempdir()).stdout
    return set(out.split())


def test_import_qcore_is_light():
    loaded = _modules_after("import qcore")
    assert not {m for m in loaded if m.startswith(("qcore.graph", "qcore.runtime", "qcore.format", "onnx"))}


def test_reference_never_imports_the_c_core():
    loaded = _modules_after("import qcore.reference, qcore.reference.tflite, qcore.reference.pytorch")
    assert "qcore._qcore" not in loaded and "qcore._native" not in loaded


def test_runtime_does_not_need_onnx():
    loaded = _modules_after("import qcore.runtime, qcore.api, qcore.cli")
    assert not {m for m in loaded if m == "onnx" or m.startswith("onnx.")}


def test_loading_and_running_a_model_imports_only_the_run_path():
    """A board that runs a model never imports the passes, the importer, the writer or observers."""
    model = Path(qcore.__file__).parent / "data" / "digits_cnn.qcm"
    loaded = _modules_after(
        "import numpy as np, qcore; "
        f"m = qcore.load({str(model)!r}); "
        "name = m.graph.inputs[0].name; "
        "m.run({name: np.zeros((2, 1, 8, 8), np.float32)})")
    assert "qcore.runtime.executor" in loaded and "qcore.format.reader" in loaded
    heavy = {"qcore.graph.quantize", "qcore.graph.onnx_import", "qcore.graph.transforms", "qcore.graph.transformer",
             "qcore.format.writer", "qcore.reference.observers", "qcore.reference.pytorch", "qcore.reference.tflite",
             "qcore.cli"}
    assert not heavy & loaded, sorted(heavy & loaded)


def test_lazy_package_names_resolve_and_list():
    import qcore.api
    import qcore.format
    import qcore.graph

    assert qcore.format.QcmWriter.__name__ == "QcmWriter" and "save_tensors" in dir(qcore.format)
    assert qcore.graph.import_onnx is qcore.api.import_onnx and "SUPPORTED_OPS" in dir(qcore.graph)
    assert qcore.quantize_static is qcore.api.quantize_static
    assert qcore.reference.pytorch.__name__ == "qcore.reference.pytorch"
    for module in (qcore.format, qcore.graph, qcore.api, qcore.reference):
        try:
            module.no_such_name  # noqa: B018
        except AttributeError as exc:
            assert "no_such_name" in str(exc)
        else:
            raise AssertionError(f"{module.__name__}.no_such_name resolved")
