"""The public :class:`Model`: a graph plus its prepared runtime."""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from ..errors import ModelError
from ..graph.ir import Graph, tensor_nbytes
from .executor import Executor, NodeTiming


class Model:
    """A float or quantized model that runs with NumPy and qcore's integer kernels.

    Parameters
    ----------
    graph : Graph
        The model graph (from :func:`qcore.graph.import_onnx`, a quantization pass or
        :meth:`load`).

    Examples
    --------
    >>> model = Model.from_onnx("mlp.onnx")                     # doctest: +SKIP
    >>> outputs = model.run({"input": x})                        # doctest: +SKIP
    """

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._executor: Executor | None = None
        self.last_timings: list[NodeTiming] = []

    # -- construction ----------------------------------------------------------------
    @classmethod
    def from_onnx(cls, model: Any, *, optimize: bool = True) -> Model:
        """Import an ONNX model (path, bytes or ModelProto); needs the onnx package."""
        from ..graph.onnx_import import import_onnx  # noqa: PLC0415

        return cls(import_onnx(model, optimize=optimize))

    @property
    def executor(self) -> Executor:
        """The :class:`Executor` of this model's graph, built on first use and kept."""
        if self._executor is None:
            self._executor = Executor(self.graph)
        return self._executor

    # -- queries ---------------------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        """Names of the graph inputs, in order (the keys :meth:`run` expects)."""
        return [v.name for v in self.graph.inputs]

    @property
    def output_names(self) -> list[str]:
        """Names of the graph outputs, in order (the keys :meth:`run` returns)."""
        return [v.name for v in self.graph.outputs]

    @property
    def weight_nbytes(self) -> int:
        """Bytes of tensor data (int4 counted packed)."""
        return sum(tensor_nbytes(t) for t in self.graph.initializers.values())

    def __repr__(self) -> str:
        ops = ", ".join(f"{op} x{count}" for op, count in sorted(self.graph.op_counts().items()))
        return f"Model(inputs={self.input_names}, outputs={self.output_names}, ops=[{ops}])"

    # -- execution -------------------------------------------------------------------
    def run(self, feeds: Mapping[str, np.ndarray], *, profile: bool = False) -> dict[str, np.ndarray]:
        """Run the model.

        Parameters
        ----------
        feeds : mapping of str to numpy.ndarray
            One array per model input, keyed by input name; any batch size where the
            model's input shape leaves the dimension free.
        profile : bool
            Record the wall time of every node in :attr:`last_timings`.

        Returns
        -------
        dict of str to numpy.ndarray
            One array per model output, keyed by output name.

        Raises
        ------
        ModelError
            Unknown or missing input names.
        DTypeError, ShapeError
            An input of the wrong element kind or shape.
        """
        if not isinstance(feeds, Mapping):
            raise ModelError("feeds must be a mapping {input name: array}")
        timings: list[NodeTiming] | None = [] if profile else None
        result = self.executor.run(feeds, timings=timings)
        if timings is not None:
            self.last_timings = timings
        return result

    def profile_summary(self) -> list[tuple[str, int, float]]:
        """Per-op totals of the last profiled run: ``(op, count, seconds)``, slowest first."""
        totals: dict[str, list[float]] = {}
        for t in self.last_timings:
            entry = totals.setdefault(t.op, [0, 0.0])
            entry[0] += 1
            entry[1] += t.seconds
        return sorted(((op, int(c), s) for op, (c, s) in totals.items()), key=lambda r: -r[2])

    # -- files -----------------------------------------------------------------------
    def save(self, path: str | os.PathLike, *, pack_limit: int | None = None) -> None:
        """Write the model to a .qcm file (docs/GRAPH.md).

        ``pack_limit``: initializers of at most this many stored bytes are packed into one
        file tensor with the structure (default ``qcore.graph.serialize.PACK_LIMIT``,
        64 KiB); 0 stores every initializer as its own file tensor.
        """
        from ..graph.serialize import PACK_LIMIT, save_graph  # noqa: PLC0415

        save_graph(self.graph, path, pack_limit=PACK_LIMIT if pack_limit is None else pack_limit)

    @classmethod
    def load(cls, path: str | os.PathLike, *, verify: bool = True) -> Model:
        """Open a .qcm model file; tensors stay memory-mapped.

        Raises
        ------
        FormatError
            The file is damaged or not a .qcm file.
        ModelError
            The file holds tensors but no graph, or a graph this qcore cannot read.
        """
        from ..graph.serialize import load_graph  # noqa: PLC0415

        return cls(load_graph(path, verify=verify))
