"""Execute qcore models: float operators in NumPy, integer operators via :mod:`.kernels`."""

from .executor import Executor, NodeTiming, supported_ops
from .model import Model

__all__ = ["Executor", "Model", "NodeTiming", "supported_ops"]
