"""Graph simplifications run at import: folding, fusion, dead-code removal.

Each pass takes a :class:`Graph` and returns a new one (the input is not modified).
"""

from __future__ import annotations

import numpy as np

from .ir import Graph, Node

#: Folded constants may grow to at most this many elements beyond their inputs' size
#: (an Expand of a scalar to a big shape is left for run time rather than stored).
_FOLD_GROWTH_LIMIT = 1 << 16


def simplify(graph: Graph, static_shapes: dict[str, list[int | None]] | None = None) -> Graph:
    """Run every import-time pass in order until nothing changes."""
    graph = remove_identities(graph)
    graph = fold_static_shapes(graph, static_shapes or {})
    graph = fold_constants(graph)
    graph = gemm_to_matmul(graph)
    graph = fold_batchnorm(graph)
    graph = fuse_layernorm(graph)
    graph = fold_constants(graph)
    graph = remove_dead_code(graph)
    graph.validate()
    return graph


def _is_const(graph: Graph, name: str) -> bool:
    return name == "" or (name in graph.initializers and isinstance(graph.initializers[name], np.ndarray))


def _output_names(graph: Graph) -> set[str]:
    return {v.name for v in graph.outputs}


def remove_identities(graph: Graph) -> Graph:
    """Drop Identity and inference-mode Dropout nodes, renaming their readers' inputs."""
    graph = graph.copy()
    outputs = _output_names(graph)
    rename: dict[str, str] = {}
    kept: list[Node] = []
    for node in graph.nodes:
        node.inputs = [rename.get(i, i) for i in node.inputs]
        drop = node.op in ("Identity", "Dropout") and node.outputs[0] not in outputs and all(
            not o for o in node.outputs[1:])
        if drop:
            rename[node.outputs[0]] = node.inputs[0]
        else:
            kept.append(node)
    graph.nodes = kept
    return graph


def fold_static_shapes(graph: Graph, static_shapes: dict[str, list[int | None]]) -> Graph:
    """Replace Shape nodes (and Gathers of single dims) whose values are known at import."""
    graph = graph.copy()
    known: dict[str, list[int | None]] = dict(static_shapes)
    for name, value in graph.initializers.items():
        known[name] = list(np.shape(value))
    for vi in graph.inputs:
        if vi.shape is not None:
            known.setdefault(vi.name, [d if isinstance(d, int) else None for d in vi.shape])
    consumers = graph.consumers()
    kept: list[Node] = []
    removed: set[str] = set()
    for node in graph.nodes:
        if node.op == "Shape" and node.inputs[0] in known:
            dims = known[node.inputs[0]][node.attrs.get("start", 0):node.attrs.get("end")]
            if all(d is not None for d in dims):
                graph.initializers[node.outputs[0]] = np.array(dims, dtype=np.int64)
                continue
            # Partially known: fold Gathers that pick known dimensions.
            for reader in consumers.get(node.outputs[0], []):
                if reader.op != "Gather" or not _is_const(graph, reader.inputs[1]):
                    continue
                idx = np.asarray(graph.initializers[reader.inputs[1]]).astype(np.int64)
                values = np.array([-1 if d is None else d for d in dims], dtype=np.int64)
                if idx.size and (idx.min() < -len(dims) or idx.max() >= len(dims)):
                    continue
                picked = values[idx]
                if (picked >= 0).all():
                    graph.initializers[reader.outputs[0]] = np.array(picked)
                    removed.add(reader.name)
        if node.name not in removed:
            kept.append(node)
    graph.nodes = kept
    return remove_dead_code(graph)


def fold_constants(graph: Graph) -> Graph:
    """Evaluate every node whose inputs are all constant and store the results."""
    from ..runtime.float_ops import FLOAT_OPS  # noqa: PLC0415

    graph = graph.copy()
    kept: list[Node] = []
    for node in graph.nodes:
        if node.op in FLOAT_OPS and all(_is_const(graph, i) for i in node.inputs):
            args = [graph.initializers[i] if i else None for i in node.inputs]
            results = FLOAT_OPS[node.op](args, node.attrs)
            in_size = sum(int(np.size(a)) for a in args if a is not None)
            if all(np.size(r) <= in_size + _FOLD_GROWTH_LIMIT for r in results):
                for out, value in zip(node.outputs, results):
                    if out:
                        graph.initializers[out] = np.array(value, order="C")
                continue
        kept.append(node)
    graph.nodes = kept
    return graph


def gemm_to_matmul(graph: Graph) -> Graph:
    """Rewrite Gemm with a constant B as MatMul (+ Add of the scaled bias)."""
    graph = graph.copy()
    new_nodes: list[Node] = []
    for node in graph.nodes:
        if node.op != "Gemm" or node.attrs.get("transA", 0) or not _is_const(graph, node.inputs[1]):
            new_nodes.append(node)
            continue
        has_c = len(node.inputs) > 2 and node.inputs[2] != ""
        if has_c and not _is_const(graph, node.inputs[2]):
            new_nodes.append(node)
            continue
        b = np.asarray(graph.initializers[node.inputs[1]])
        if node.attrs.get("transB", 0):
            b = b.T
        alpha = float(node.attrs.get("alpha", 1.0))
        if alpha != 1.0:
            b = b * np.float32(alpha)
        w_name = f"{node.name}.weight"
        graph.initializers[w_name] = np.ascontiguousarray(b.astype(np.float32))
        if not has_c:
            new_nodes.append(Node("MatMul", [node.inputs[0], w_name], list(node.outputs), {}, node.name))
            continue
        c = np.asarray(graph.initializers[node.inputs[2]]).astype(np.float32)
        beta = float(node.attrs.get("beta", 1.0))
        if beta != 1.0:
            c = c * np.float32(beta)
        b_name = f"{node.name}.bias"
        graph.initializers[b_name] = np.ascontiguousarray(c)
        mid = f"{node.name}.matmul_out"
        new_nodes.append(Node("MatMul", [node.inputs[0], w_name], [mid], {}, node.name))
        new_nodes.append(Node("Add", [mid, b_name], list(node.outputs), {}, f"{node.name}.bias_add"))
    graph.nodes = new_nodes
    return remove_dead_code(graph)


def fold_batchnorm(graph: Graph) -> Graph:
    """Fold BatchNormalization into the Conv before it (constant weights, single reader).

    Notes
    -----
    ``f = gamma / sqrt(var + eps)``; ``W' = W * f[oc]``; ``b' = (b - mean) * f + beta``.
    """
    graph = graph.copy()
    consumers = graph.consumers()
    producers = graph.producers()
    outputs = _output_names(graph)
    replaced: dict[str, Node] = {}
    dropped: set[str] = set()
    for node in graph.nodes:
        if node.op != "BatchNormalization" or len([o for o in node.outputs if o]) != 1:
            continue
        if not all(_is_const(graph, i) for i in node.inputs[1:5]):
            continue
        conv = producers.get(node.inputs[0])
        if conv is None or conv.op != "Conv" or conv.outputs[0] in outputs:
            continue
        if len(consumers.get(conv.outputs[0], [])) != 1 or not _is_const(graph, conv.inputs[1]):
            continue
        has_bias = len(conv.inputs) > 2 and conv.inputs[2] != ""
        if has_bias and not _is_const(graph, conv.inputs[2]):
            continue
        gamma, beta, mean, var = (np.asarray(graph.initializers[i], dtype=np.float64) for i in node.inputs[1:5])
        eps = float(node.attrs.get("epsilon", 1e-5))
        w = np.asarray(graph.initializers[conv.inputs[1]], dtype=np.float64)
        b = np.asarray(graph.initializers[conv.inputs[2]], dtype=np.float64) if has_bias else np.zeros(w.shape[0])
        factor = gamma / np.sqrt(var + eps)
        w_name, b_name = f"{conv.name}.weight_bn", f"{conv.name}.bias_bn"
        graph.initializers[w_name] = (w * factor.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32)
        graph.initializers[b_name] = ((b - mean) * factor + beta).astype(np.float32)
        replaced[conv.name] = Node("Conv", [conv.inputs[0], w_name, b_name], [node.outputs[0]],
                                   dict(conv.attrs), conv.name)
        dropped.add(node.name)
    graph.nodes = [replaced.get(n.name, n) for n in graph.nodes if n.name not in dropped]
    return remove_dead_code(graph)


def _const_scalar(graph: Graph, name: str) -> float | None:
    if not _is_const(graph, name) or name == "":
        return None
    value = np.asarray(graph.initializers[name])
    if value.size != 1:
        return None
    return float(value.reshape(-1)[0])


def _last_axis_reduce(graph: Graph, node: Node) -> bool:
    if node.op != "ReduceMean" or not node.attrs.get("keepdims", 1):
        return False
    axes = node.attrs.get("axes")
    if axes is None and len(node.inputs) > 1 and _is_const(graph, node.inputs[1]):
        axes = [int(a) for a in np.asarray(graph.initializers[node.inputs[1]]).reshape(-1)]
    return axes == [-1]


def fuse_layernorm(graph: Graph) -> Graph:
    """Replace the decomposed layer norm pattern by one LayerNormalization node.

    Pattern (over the last axis)::

        m = ReduceMean(x); d = Sub(x, m); p = Pow(d, 2); v = ReduceMean(p)
        s = Sqrt(Add(v, eps)); n = Div(d, s); [y = Mul(n, gamma)]; [z = Add(y, beta)]
    """
    graph = graph.copy()
    consumers = graph.consumers()
    outputs = _output_names(graph)

    def only_reader(value: str) -> Node | None:
        readers = consumers.get(value, [])
        if len(readers) != 1 or value in outputs:
            return None
        return readers[0]

    replacements: dict[str, Node] = {}
    dropped: set[str] = set()
    for mean_node in graph.nodes:
        if not _last_axis_reduce(graph, mean_node) or mean_node.name in dropped:
            continue
        x = mean_node.inputs[0]
        sub = only_reader(mean_node.outputs[0])
        if sub is None or sub.op != "Sub" or sub.inputs != [x, mean_node.outputs[0]]:
            continue
        d = sub.outputs[0]
        readers = consumers.get(d, [])
        if d in outputs or len(readers) != 2:
            continue
        pow_node = next((r for r in readers if r.op == "Pow" and r.inputs[0] == d), None)
        div = next((r for r in readers if r.op == "Div" and r.inputs[0] == d), None)
        if pow_node is None or div is None or _const_scalar(graph, pow_node.inputs[1]) != 2.0:
            continue
        var_node = only_reader(pow_node.outputs[0])
        if var_node is None or not _last_axis_reduce(graph, var_node):
            continue
        add_eps = only_reader(var_node.outputs[0])
        if add_eps is None or add_eps.op != "Add" or add_eps.inputs[0] != var_node.outputs[0]:
            continue
        eps = _const_scalar(graph, add_eps.inputs[1])
        sqrt = only_reader(add_eps.outputs[0])
        if eps is None or sqrt is None or sqrt.op != "Sqrt" or div.inputs[1] != sqrt.outputs[0]:
            continue
        chain = [mean_node, sub, pow_node, var_node, add_eps, sqrt, div]
        out, gamma, beta = div.outputs[0], None, None
        mul = only_reader(out)
        if mul is not None and mul.op == "Mul":
            other = mul.inputs[1] if mul.inputs[0] == out else mul.inputs[0]
            if _is_const(graph, other) and np.ndim(graph.initializers[other]) == 1:
                gamma, out = other, mul.outputs[0]
                chain.append(mul)
                add = only_reader(out)
                if add is not None and add.op == "Add":
                    other = add.inputs[1] if add.inputs[0] == out else add.inputs[0]
                    if _is_const(graph, other) and np.ndim(graph.initializers[other]) == 1:
                        beta, out = other, add.outputs[0]
                        chain.append(add)
        if gamma is None:
            continue
        inputs = [x, gamma] + ([beta] if beta else [])
        # the fused node takes the place of the pattern's last node
        replacements[chain[-1].name] = Node(
            "LayerNormalization", inputs, [out], {"axis": -1, "epsilon": eps}, f"{mean_node.name}.layernorm")
        dropped.update(n.name for n in chain)
        dropped.discard(chain[-1].name)
    new_nodes = []
    for node in graph.nodes:
        if node.name in replacements:
            new_nodes.append(replacements[node.name])
        elif node.name not in dropped:
            new_nodes.append(node)
    graph.nodes = new_nodes
    return remove_dead_code(graph)


def remove_dead_code(graph: Graph) -> Graph:
    """Remove nodes whose outputs nobody reads and initializers nobody uses."""
    graph = graph.copy()
    live = _output_names(graph)
    kept: list[Node] = []
    for node in reversed(graph.nodes):
        if any(o in live for o in node.outputs if o):
            kept.append(node)
            live.update(i for i in node.inputs if i)
    kept.reverse()
    graph.nodes = kept
    graph.initializers = {k: v for k, v in graph.initializers.items() if k in live}
    return graph
