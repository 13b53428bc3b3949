"""Model graphs: the IR, the ONNX importer, import-time simplifications, quantization passes."""

from .._lazy import lazy_exports
from .ir import GRAPH_SCHEMA_VERSION, Graph, Node, ValueInfo

# The ONNX importer imports on first use (qcore/_lazy.py): a loaded model needs only the IR.
__getattr__, __dir__ = lazy_exports(__name__, globals(), {"SUPPORTED_OPS": "onnx_import",
                                                          "import_onnx": "onnx_import"})

__all__ = ["GRAPH_SCHEMA_VERSION", "Graph", "Node", "SUPPORTED_OPS", "ValueInfo", "import_onnx"]
