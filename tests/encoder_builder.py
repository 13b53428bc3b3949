"""A small BERT-style encoder layer in ONNX, exported the way transformers exports it.

Residual Adds before each LayerNormalization, attention scores ``MatMul -> Mul(scale) ->
Add(mask) -> Softmax``, the GELU written out as ``Div(sqrt 2) -> Erf -> Add 1 -> Mul x ->
Mul 0.5``: the patterns the runtime's fast plan rewrites (qcore.runtime.fusion).
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

HIDDEN = 16
HEADS = 2
FFN = 64


def encoder(rng: np.random.Generator, *, gelu_half: float = 0.5, gelu_order: str = "x_first",
            layers: int = 2, ln_axis: int = -1, scale_op: str = "Mul"):
    """The ONNX model: inputs ``x`` float32 ``[batch, seq, 16]`` and ``mask`` float32 ``[batch, seq]``.

    ``scale_op="Div"`` scales the attention scores by a Div (which the fast plan leaves to
    the node-by-node ops) instead of a Mul.
    """
    inits, nodes = [], []
    head = HIDDEN // HEADS

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def i64(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, np.int64), name))
        return name

    def node(op, inputs, name, **attrs):
        out = f"{name}_out"
        nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def linear(x, k, n, name):
        w = const(f"{name}.w", rng.normal(0, 1 / np.sqrt(k), (k, n)) * rng.choice([1.0, 4.0], (k, 1)))
        b = const(f"{name}.b", rng.normal(0, 0.1, n))
        return node("Add", [b, node("MatMul", [x, w], f"{name}/MatMul")], f"{name}/Add")

    def layer_norm(x, name):
        g = const(f"{name}.g", rng.normal(1, 0.2, HIDDEN))
        b = const(f"{name}.b", rng.normal(0, 0.1, HIDDEN))
        return node("LayerNormalization", [x, g, b], name, axis=ln_axis, epsilon=1e-12)

    i64("heads_shape", [0, 0, HEADS, head])
    i64("merge_shape", [0, 0, HIDDEN])
    i64("axes_12", [1, 2])
    one = node("Sub", [const("one", 1.0), node("Unsqueeze", ["mask", "axes_12"], "mask/Unsqueeze")], "mask/Sub")
    mask = node("Mul", [one, const("neg", -3.4028235e38)], "mask/Mul")
    h = layer_norm(node("Add", ["x", const("pos", rng.normal(0, 0.5, HIDDEN))], "embed/Add"), "embed/LN")
    for layer in range(layers):
        p = f"layer{layer}"
        q = node("Transpose", [node("Reshape", [linear(h, HIDDEN, HIDDEN, f"{p}/q"), "heads_shape"], f"{p}/q/R")],
                 f"{p}/q/T", perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [linear(h, HIDDEN, HIDDEN, f"{p}/k"), "heads_shape"], f"{p}/k/R")],
                 f"{p}/k/T", perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [linear(h, HIDDEN, HIDDEN, f"{p}/v"), "heads_shape"], f"{p}/v/R")],
                 f"{p}/v/T", perm=[0, 2, 1, 3])
        scale = const(f"{p}/scale", 1 / np.sqrt(head) if scale_op == "Mul" else np.sqrt(head))
        scores = node(scale_op, [node("MatMul", [q, k], f"{p}/scores"), scale], f"{p}/scale")
        probs = node("Softmax", [node("Add", [scores, mask], f"{p}/mask")], f"{p}/softmax", axis=-1)
        ctx = node("Reshape", [node("Transpose", [node("MatMul", [probs, v], f"{p}/ctx")], f"{p}/ctx/T",
                                    perm=[0, 2, 1, 3]), "merge_shape"], f"{p}/ctx/R")
        h = layer_norm(node("Add", [linear(ctx, HIDDEN, HIDDEN, f"{p}/o"), h], f"{p}/res1"), f"{p}/LN1")
        up = linear(h, HIDDEN, FFN, f"{p}/up")
        g = node("Add", [node("Erf", [node("Div", [up, const(f"{p}/sqrt2", np.sqrt(2.0))], f"{p}/gelu/Div")],
                              f"{p}/gelu/Erf"), const(f"{p}/one", 1.0)], f"{p}/gelu/Add")
        half = const(f"{p}/half", gelu_half)
        if gelu_order == "x_first":
            act = node("Mul", [node("Mul", [up, g], f"{p}/gelu/Mul"), half], f"{p}/gelu/Mul_1")
        else:
            act = node("Mul", [node("Mul", [up, half], f"{p}/gelu/Mul"), g], f"{p}/gelu/Mul_1")
        h = layer_norm(node("Add", [linear(act, FFN, HIDDEN, f"{p}/down"), h], f"{p}/res2"), f"{p}/LN2")
    graph = helper.make_graph(
        nodes + [helper.make_node("Identity", [h], ["hidden"], name="out")], "encoder",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", HIDDEN]),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", "seq"])],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "seq", HIDDEN])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def feeds(rng: np.random.Generator, batch: int, seq: int) -> dict[str, np.ndarray]:
    """Inputs with outlier channels (what smoothing is for) and padding at the end of each row."""
    x = rng.normal(0, 1, (batch, seq, HIDDEN)).astype(np.float32)
    x[..., 3] *= 20
    mask = np.ones((batch, seq), np.float32)
    for b in range(batch):
        mask[b, max(1, seq - b):] = 0
    return {"x": x, "mask": mask}
