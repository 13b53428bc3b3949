"""Executes a :class:`~qcore.graph.ir.Graph`: a plan of prepared steps, built once.

Building the plan resolves every node to a Python callable with its attributes and
weights bound (quantized weights are packed here, once), and computes when each
intermediate value can be released, so a run is one loop over steps with no lookups
beyond the value table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from ..errors import DTypeError, ModelError, QcoreError, ShapeError, UnsupportedOpError
from ..graph.ir import Graph, Node, ValueInfo
from . import fusion
from .float_ops import FLOAT_OPS
from .quant_ops import QUANT_BUILDERS

Observer = Callable[[str, np.ndarray], None]

#: Input-shape signatures whose shape-only values are kept (oldest dropped first).
_SHAPE_CACHE_ENTRIES = 16


@dataclass
class NodeTiming:
    """Wall time of one node in one run."""

    name: str
    op: str
    seconds: float


def supported_ops() -> set[str]:
    """Operator names the runtime can execute."""
    return set(FLOAT_OPS) | set(QUANT_BUILDERS)


def _float_step(fn: Callable[[list, dict], list], attrs: dict) -> Callable[[list], list]:
    return lambda inputs: fn(inputs, attrs)


def _lazy_step(builder: Callable[[Node, dict], Callable[[list], list]], node: Node,
               initializers: dict) -> Callable[[list], list]:
    """A node-by-node step built on first use (its node runs fused in the fast plan)."""
    built: list[Callable[[list], list]] = []

    def run(inputs: list) -> list:
        if not built:
            built.append(builder(node, initializers))
        return built[0](inputs)
    return run


class Executor:
    """A prepared execution plan for one graph.

    Parameters
    ----------
    graph : Graph
    fuse : bool
        Prepare the fast plan (qcore.runtime.fusion: static int8 chains stay int8 between
        layers, same output bits); it runs whenever no intermediate value is requested.

    Raises
    ------
    UnsupportedOpError
        At construction, naming every operator (and its nodes) the runtime cannot run.
    """

    def __init__(self, graph: Graph, *, fuse: bool = True) -> None:
        graph.validate()
        self.graph = graph
        unsupported: dict[str, list[str]] = {}
        for node in graph.nodes:
            if node.op not in FLOAT_OPS and node.op not in QUANT_BUILDERS:
                unsupported.setdefault(node.op, []).append(node.name)
        if unsupported:
            parts = [f"{op} (nodes: {', '.join(names)})" for op, names in sorted(unsupported.items())]
            raise UnsupportedOpError(f"unsupported operators: {'; '.join(parts)}")

        # Quantized weights are bound into their steps; they stay in the table only so that
        # every node input resolves.
        self.constants = dict(graph.initializers)
        self.steps: list[tuple[Node, Callable[[list], list], list[str], bool]] = []
        last_use: dict[str, int] = {}
        for index, node in enumerate(graph.nodes):
            for name in node.inputs:
                if name:
                    last_use[name] = index
        keep = {v.name for v in graph.outputs} | set(self.constants)
        release: list[list[str]] = [[] for _ in graph.nodes]
        for name, index in last_use.items():
            if name not in keep:
                release[index].append(name)
        # Shape-only nodes compute from tensor shapes alone (Shape, and anything fed only
        # by shapes and constants): their values are a function of the input shapes and
        # are cached per input-shape signature, so a run skips them after the first.
        shape_only: set[str] = set()
        self.shape_only_steps = 0
        fast = fusion.build(graph) if fuse else None
        for index, node in enumerate(graph.nodes):
            if node.op in QUANT_BUILDERS and fast is not None and index in fast.replaced:
                fn = _lazy_step(QUANT_BUILDERS[node.op], node, graph.initializers)
            elif node.op in QUANT_BUILDERS:
                fn = QUANT_BUILDERS[node.op](node, graph.initializers)
            else:
                fn = _float_step(FLOAT_OPS[node.op], node.attrs)
            is_shape = node.op in ("Shape", "Size") or (
                node.op in FLOAT_OPS and any(i in shape_only for i in node.inputs)
                and all(not i or i in shape_only or i in self.constants for i in node.inputs))
            if is_shape:
                shape_only.update(o for o in node.outputs if o)
                self.shape_only_steps += 1
            self.steps.append((node, fn, release[index], is_shape))
        self.fast_steps = fast.steps(self.steps) if fast is not None else None
        # runs without per-node timing: each run of linked int8 steps as one step
        self.chained_steps = fast.chained(self.fast_steps) if fast is not None else None
        self._shape_cache: dict[tuple, dict[str, np.ndarray]] = {}
        self._slots = _SlotPlan(self.chained_steps if self.chained_steps is not None else self.steps,
                                self.constants, [v.name for v in graph.inputs])

    # -- input checks ----------------------------------------------------------------
    def _check_feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        expected = {v.name: v for v in self.graph.inputs}
        unknown = [name for name in feeds if name not in expected]
        if unknown:
            raise ModelError(f"unknown input name(s) {', '.join(map(repr, unknown))}; "
                             f"the model's inputs are {', '.join(map(repr, expected))}")
        missing = [name for name in expected if name not in feeds]
        if missing:
            raise ModelError(f"missing input(s) {', '.join(map(repr, missing))}")
        return {name: _check_value(expected[name], feeds[name]) for name in expected}

    # -- execution -------------------------------------------------------------------
    def run(self, feeds: Mapping[str, np.ndarray], *, timings: list[NodeTiming] | None = None,
            observe: Observer | None = None, outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """Run the graph.

        Parameters
        ----------
        feeds : mapping
            One array per graph input.
        timings : list, optional
            When given, one :class:`NodeTiming` per node is appended.
        observe : callable, optional
            Called as ``observe(value_name, array)`` for every node output (calibration).
        outputs : list of str, optional
            Value names to return instead of the graph outputs (intermediates are then
            kept alive until the end).

        Returns
        -------
        dict
            Output name -> array.
        """
        checked = self._check_feeds(feeds)
        wanted = [v.name for v in self.graph.outputs] if outputs is None else list(outputs)
        keep_all = outputs is not None
        shape_key = tuple(a.shape for a in checked.values())
        cached = self._shape_cache.get(shape_key) if self.shape_only_steps else None
        if timings is None and observe is None and not keep_all and (cached is not None or not self.shape_only_steps):
            return self._slots.run(checked, cached or {}, wanted)
        values: dict[str, np.ndarray] = dict(self.constants)
        values.update(checked)
        clock = time.perf_counter
        if cached is not None:
            values.update(cached)
        recorded: dict[str, np.ndarray] | None = {} if cached is None and self.shape_only_steps else None
        plan = self.fast_steps if self.fast_steps is not None and observe is None and not keep_all else self.steps
        if plan is self.fast_steps and timings is None:
            plan = self.chained_steps
        for node, fn, release, is_shape in plan:
            if is_shape and cached is not None:
                if observe is not None:  # computed on an earlier run of this shape
                    for name in node.outputs:
                        if name in cached:
                            observe(name, cached[name])
                if not keep_all:
                    for name in release:
                        values.pop(name, None)
                continue
            args = [values[name] if name else None for name in node.inputs]
            start = clock() if timings is not None else 0.0
            try:
                results = fn(args)
            except QcoreError as exc:
                raise type(exc)(f"node {node.name!r} ({node.op}): {exc}") from None
            except (ValueError, TypeError, IndexError, FloatingPointError) as exc:
                raise ModelError(f"node {node.name!r} ({node.op}) failed: {exc}") from None
            if timings is not None:
                timings.append(NodeTiming(node.name, node.op, clock() - start))
            for name, value in zip(node.outputs, results):
                if name:
                    if not isinstance(value, np.ndarray):
                        value = np.asarray(value)
                    values[name] = value
                    if is_shape and recorded is not None:
                        recorded[name] = value
                    if observe is not None:
                        observe(name, value)
            if not keep_all:
                for name in release:
                    values.pop(name, None)
        if recorded is not None:
            if len(self._shape_cache) >= _SHAPE_CACHE_ENTRIES:
                self._shape_cache.pop(next(iter(self._shape_cache)))
            self._shape_cache[shape_key] = recorded
        try:
            return {name: values[name] for name in wanted}
        except KeyError as exc:
            raise ModelError(f"no value named {exc.args[0]!r} in the graph") from None


class _SlotPlan:
    """The run plan with every value in a numbered slot: the same steps, releases and
    errors as :meth:`Executor.run`, for a run that records nothing and whose shape-only
    values are cached (those steps are left out; what they released is released where
    they would have run)."""

    def __init__(self, plan: list[tuple[Node, Callable[[list], list], list[str], bool]], constants: dict,
                 inputs: list[str]) -> None:
        index: dict[str, int] = {"": 0}  # slot 0 stays None: an omitted optional input

        def slot(name: str) -> int:
            return index.setdefault(name, len(index))

        for name in list(constants) + inputs:
            slot(name)
        self.start_release: list[int] = []
        self.steps: list[tuple[Callable[[list], list], list[int], list[int], list[int], Node]] = []
        for node, fn, release, is_shape in plan:
            ins = [slot(name) for name in node.inputs]
            outs = [slot(name) for name in node.outputs]
            dropped = [slot(name) for name in release]
            if is_shape:  # skipped: its releases happen after the step before it
                (self.steps[-1][3] if self.steps else self.start_release).extend(dropped)
                continue
            self.steps.append((fn, ins, outs, dropped, node))
        self.index = index
        self.template: list = [None] * len(index)
        for name, value in constants.items():
            self.template[index[name]] = value

    def run(self, feeds: dict[str, np.ndarray], cached: dict[str, np.ndarray], wanted: list[str]) -> dict:
        """Run with the checked feeds and the cached shape-only values."""
        index = self.index
        slots = self.template.copy()
        for name, value in feeds.items():
            slots[index[name]] = value
        for name, value in cached.items():
            if name in index:
                slots[index[name]] = value
        for i in self.start_release:
            slots[i] = None
        for fn, ins, outs, release, node in self.steps:
            try:
                results = fn([slots[i] for i in ins])
            except QcoreError as exc:
                raise type(exc)(f"node {node.name!r} ({node.op}): {exc}") from None
            except (ValueError, TypeError, IndexError, FloatingPointError) as exc:
                raise ModelError(f"node {node.name!r} ({node.op}) failed: {exc}") from None
            for i, value in zip(outs, results):
                if i:
                    slots[i] = value if isinstance(value, np.ndarray) else np.asarray(value)
            for i in release:
                slots[i] = None
        try:
            return {name: slots[index[name]] for name in wanted}
        except KeyError as exc:
            raise ModelError(f"no value named {exc.args[0]!r} in the graph") from None


_KINDS = {"float32": "f", "float64": "f", "float16": "f", "int64": "iu", "int32": "iu",
          "int8": "iu", "uint8": "iu", "bool": "b"}


def _check_value(info: ValueInfo, value: object) -> np.ndarray:
    array = np.asarray(value)
    kinds = _KINDS.get(info.dtype, "")
    if array.dtype.kind not in kinds:
        raise DTypeError(f"input {info.name!r} must be {info.dtype}, got {array.dtype}")
    if array.dtype != np.dtype(info.dtype):
        if array.dtype.kind in "iu" and array.size and (
                array.min() < np.iinfo(info.dtype).min or array.max() > np.iinfo(info.dtype).max):
            raise DTypeError(f"input {info.name!r} values do not fit {info.dtype}")
        array = array.astype(info.dtype)
    if info.shape is not None:
        if array.ndim != len(info.shape):
            raise ShapeError(f"input {info.name!r} must have rank {len(info.shape)} "
                             f"(shape {_shape_text(info.shape)}), got shape {array.shape}")
        for axis, (want, got) in enumerate(zip(info.shape, array.shape)):
            if isinstance(want, int) and want != got:
                raise ShapeError(f"input {info.name!r} must have shape {_shape_text(info.shape)}, "
                                 f"got {array.shape} (axis {axis})")
    return array


def _shape_text(shape: list) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
