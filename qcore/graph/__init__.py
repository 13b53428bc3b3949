"""Model graphs: the IR, the ONNX importer, import-time simplifications, quantization passes."""

from .ir import GRAPH_SCHEMA_VERSION, Graph, Node, ValueInfo
from .onnx_import import SUPPORTED_OPS, import_onnx

__all__ = ["GRAPH_SCHEMA_VERSION", "Graph", "Node", "SUPPORTED_OPS", "ValueInfo", "import_onnx"]
