"""ONNX models built with onnx.helper for the graph, runtime and CLI tests.

Shared by several test modules (imported after putting tests/ on sys.path). Every
builder takes a seeded generator and returns an ``onnx.ModelProto`` with a free batch
dimension.
"""

from __future__ import annotations

import numpy as np

onnx = __import__("pytest").importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

F = TensorProto.FLOAT


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def _model(nodes, inputs, outputs, inits, opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="qcore-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def mlp(rng: np.random.Generator, sizes=(64, 48, 32, 10)) -> onnx.ModelProto:
    """Gemm(transB) -> Relu -> Gemm -> Tanh -> MatMul + Add -> Softmax."""
    nodes, inits = [], []
    x = "input"
    n_layers = len(sizes) - 1
    for i in range(n_layers):
        w = rng.normal(0, 1 / np.sqrt(sizes[i]), (sizes[i + 1], sizes[i])).astype(np.float32)
        b = rng.normal(0, 0.1, sizes[i + 1]).astype(np.float32)
        inits += [_init(f"w{i}", w if i < n_layers - 1 else w.T.copy()), _init(f"b{i}", b)]
        if i < n_layers - 1:
            nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [f"g{i}"], transB=1, name=f"fc{i}"))
            nodes.append(helper.make_node("Relu" if i % 2 == 0 else "Tanh", [f"g{i}"], [f"a{i}"], name=f"act{i}"))
            x = f"a{i}"
        else:
            nodes.append(helper.make_node("MatMul", [x, f"w{i}"], ["mm"], name="fc_last"))
            nodes.append(helper.make_node("Add", ["mm", f"b{i}"], ["logits"], name="bias_last"))
            nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=-1, name="softmax"))
    return _model(nodes, [helper.make_tensor_value_info("input", F, ["batch", sizes[0]])],
                  [helper.make_tensor_value_info("probs", F, ["batch", sizes[-1]])], inits)


def cnn2d(rng: np.random.Generator) -> onnx.ModelProto:
    """Conv+BN+Relu, MaxPool (pads, ceil), depthwise Conv, grouped dilated Conv with
    SAME_UPPER, AveragePool with and without padding counted, GlobalAveragePool, Gemm."""
    def conv_w(oc, cin, k):
        return (rng.normal(0, 1, (oc, cin, k, k)) / np.sqrt(cin * k * k)).astype(np.float32)
    inits = [
        _init("c1w", conv_w(8, 1, 3)), _init("c1b", rng.normal(0, 0.1, 8).astype(np.float32)),
        _init("bn_s", rng.uniform(0.5, 1.5, 8).astype(np.float32)), _init("bn_b", rng.normal(0, 0.1, 8).astype(np.float32)),
        _init("bn_m", rng.normal(0, 0.1, 8).astype(np.float32)), _init("bn_v", rng.uniform(0.5, 2, 8).astype(np.float32)),
        _init("dww", conv_w(8, 1, 3)),
        _init("gw", conv_w(16, 4, 3)), _init("gb", rng.normal(0, 0.1, 16).astype(np.float32)),
        _init("fw", rng.normal(0, 0.2, (10, 16)).astype(np.float32)), _init("fb", np.zeros(10, np.float32)),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "c1w", "c1b"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("BatchNormalization", ["c1", "bn_s", "bn_b", "bn_m", "bn_v"], ["bn"], epsilon=1e-3, name="bn1"),
        helper.make_node("Relu", ["bn"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 0, 0],
                         ceil_mode=1, name="maxpool"),
        helper.make_node("Conv", ["p1", "dww"], ["dw"], group=8, auto_pad="SAME_UPPER", strides=[2, 2], name="depthwise"),
        helper.make_node("Relu", ["dw"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "gw", "gb"], ["gc"], group=2, dilations=[2, 2], pads=[2, 1, 2, 2],
                         name="grouped"),
        helper.make_node("AveragePool", ["gc"], ["ap1"], kernel_shape=[2, 2], pads=[1, 1, 1, 1],
                         count_include_pad=1, name="avgpool_incl"),
        helper.make_node("AveragePool", ["ap1"], ["ap2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1],
                         name="avgpool_excl"),
        helper.make_node("GlobalAveragePool", ["ap2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fw", "fb"], ["logits"], transB=1, name="fc"),
    ]
    return _model(nodes, [helper.make_tensor_value_info("input", F, ["batch", 1, 16, 16])],
                  [helper.make_tensor_value_info("logits", F, ["batch", 10])], inits)


def cnn1d(rng: np.random.Generator) -> onnx.ModelProto:
    """Conv1d (strided, padded), BN, LeakyRelu, grouped Conv1d, MaxPool1d, Sigmoid, Clip."""
    inits = [
        _init("w1", rng.normal(0, 0.4, (6, 3, 5)).astype(np.float32)), _init("b1", rng.normal(0, 0.1, 6).astype(np.float32)),
        _init("s", rng.uniform(0.5, 1.5, 6).astype(np.float32)), _init("b", rng.normal(0, 0.1, 6).astype(np.float32)),
        _init("m", rng.normal(0, 0.1, 6).astype(np.float32)), _init("v", rng.uniform(0.5, 2, 6).astype(np.float32)),
        _init("w2", rng.normal(0, 0.4, (6, 2, 3)).astype(np.float32)),
        _init("lo", np.array(-0.5, np.float32)), _init("hi", np.array(0.8, np.float32)),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], strides=[2], pads=[2, 1], name="conv1d"),
        helper.make_node("BatchNormalization", ["c1", "s", "b", "m", "v"], ["bn"], name="bn"),
        helper.make_node("LeakyRelu", ["bn"], ["lr"], alpha=0.1, name="leaky"),
        helper.make_node("Conv", ["lr", "w2"], ["c2"], group=3, pads=[1, 1], name="grouped1d"),
        helper.make_node("MaxPool", ["c2"], ["mp"], kernel_shape=[2], strides=[2], name="maxpool1d"),
        helper.make_node("Sigmoid", ["mp"], ["sg"], name="sigmoid"),
        helper.make_node("Clip", ["mp", "lo", "hi"], ["cl"], name="clip"),
        helper.make_node("Add", ["sg", "cl"], ["output"], name="sum"),
    ]
    return _model(nodes, [helper.make_tensor_value_info("input", F, ["batch", 3, 21])],
                  [helper.make_tensor_value_info("output", F, ["batch", 6, None])], inits)


def transformer(rng: np.random.Generator, vocab: int = 50, seq: int = 8, hidden: int = 32, heads: int = 4,
                ffn: int = 64, layers: int = 2, positions: str = "slice") -> onnx.ModelProto:
    """A small encoder: token + position embeddings (Gather, Shape subgraph), attention
    with a padding mask (Where), decomposed and fused layer norms, Erf-GELU and Gelu,
    head split/merge with Reshape/Transpose, Concat/Slice/Squeeze/Unsqueeze, Cast.

    ``positions="slice"`` takes the first ``seq`` rows of the position table with Slice;
    ``"gather"`` looks them up as BERT exports do (Range -> Gather).

    Inputs: ``input_ids`` int64 (batch, seq), ``attention_mask`` int64 (batch, seq).
    Output: ``hidden`` float32 (batch, seq, hidden).
    """
    head_dim = hidden // heads
    inits = [
        _init("tok_emb", rng.normal(0, 1, (vocab, hidden)).astype(np.float32)),
        _init("pos_emb", rng.normal(0, 0.5, (64, hidden)).astype(np.float32)),
        _init("i0", np.array(0, np.int64)), _init("i1", np.array(1, np.int64)),
        _init("ax0", np.array([0], np.int64)), _init("ax1", np.array([1], np.int64)),
        _init("ax2", np.array([2], np.int64)), _init("axm1", np.array([-1], np.int64)),
        _init("neg1", np.array([-1], np.int64)), _init("heads_hd", np.array([heads, head_dim], np.int64)),
        _init("hidden_v", np.array([hidden], np.int64)),
        _init("two", np.array(2.0, np.float32)), _init("eps", np.array(1e-5, np.float32)),
        _init("sqrt_d", np.array(np.sqrt(head_dim), np.float32)), _init("neg_big", np.array(-1e4, np.float32)),
        _init("half", np.array(0.5, np.float32)), _init("one", np.array(1.0, np.float32)),
        _init("rsqrt2", np.array(1 / np.sqrt(2), np.float32)),
    ]
    nodes = [
        helper.make_node("Gather", ["tok_emb", "input_ids"], ["tok"], axis=0, name="embed_tokens"),
        # positions: Shape -> Gather(1) -> Unsqueeze -> Slice of the position table
        helper.make_node("Shape", ["input_ids"], ["ids_shape"], name="ids_shape"),
        helper.make_node("Gather", ["ids_shape", "i1"], ["seq_len"], axis=0, name="seq_len"),
        helper.make_node("Unsqueeze", ["seq_len", "ax0"], ["seq_len_1"], name="seq_len_1"),
        helper.make_node("Slice", ["pos_emb", "ax0", "seq_len_1", "ax0"], ["pos"], name="pos_slice")
        if positions == "slice" else
        helper.make_node("Range", ["i0", "seq_len", "i1"], ["pos_ids"], name="pos_ids"),
        *([] if positions == "slice" else
          [helper.make_node("Gather", ["pos_emb", "pos_ids"], ["pos"], axis=0, name="embed_positions")]),
        helper.make_node("Add", ["tok", "pos"], ["emb"], name="add_pos"),
        # mask: (batch, 1, 1, seq) additive via Where
        helper.make_node("Cast", ["attention_mask"], ["mask_b"], to=TensorProto.BOOL, name="mask_bool"),
        helper.make_node("Unsqueeze", ["mask_b", "ax1"], ["mask_u1"], name="mask_u1"),
        helper.make_node("Unsqueeze", ["mask_u1", "ax2"], ["mask_u2"], name="mask_u2"),
        helper.make_node("Where", ["mask_u2", "i0f", "neg_big"], ["mask_add"], name="mask_where"),
        # (batch, seq, hidden) -> (batch, seq, heads, head_dim) shape via Concat
        helper.make_node("Gather", ["ids_shape", "i0"], ["batch_dim"], axis=0, name="batch_dim"),
        helper.make_node("Unsqueeze", ["batch_dim", "ax0"], ["batch_1"], name="batch_1"),
        helper.make_node("Concat", ["batch_1", "seq_len_1", "heads_hd"], ["split_shape"], axis=0, name="split_shape"),
        helper.make_node("Concat", ["batch_1", "neg1", "hidden_v"], ["merge_shape"], axis=0, name="merge_shape"),
    ]
    inits.append(_init("i0f", np.array(0.0, np.float32)))
    x = "emb"
    for layer in range(layers):
        p = f"l{layer}_"

        def lin(name, src, n_in, n_out, dst):
            inits.append(_init(p + name + "_w", rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_out)).astype(np.float32)))
            inits.append(_init(p + name + "_b", rng.normal(0, 0.05, n_out).astype(np.float32)))
            nodes.append(helper.make_node("MatMul", [src, p + name + "_w"], [dst + "_mm"], name=p + name))
            nodes.append(helper.make_node("Add", [dst + "_mm", p + name + "_b"], [dst], name=p + name + "_bias"))

        for name in ("q", "k", "v"):
            lin(name, x, hidden, hidden, p + name)
            nodes.append(helper.make_node("Reshape", [p + name, "split_shape"], [p + name + "_4d"], name=p + name + "_split"))
        nodes += [
            helper.make_node("Transpose", [p + "q_4d"], [p + "qt"], perm=[0, 2, 1, 3], name=p + "qt"),
            helper.make_node("Transpose", [p + "k_4d"], [p + "kt"], perm=[0, 2, 3, 1], name=p + "kt"),
            helper.make_node("Transpose", [p + "v_4d"], [p + "vt"], perm=[0, 2, 1, 3], name=p + "vt"),
            helper.make_node("MatMul", [p + "qt", p + "kt"], [p + "scores"], name=p + "scores"),
            helper.make_node("Div", [p + "scores", "sqrt_d"], [p + "scaled"], name=p + "scale"),
            helper.make_node("Add", [p + "scaled", "mask_add"], [p + "masked"], name=p + "mask"),
            helper.make_node("Softmax", [p + "masked"], [p + "probs"], axis=-1, name=p + "softmax"),
            helper.make_node("MatMul", [p + "probs", p + "vt"], [p + "ctx"], name=p + "context"),
            helper.make_node("Transpose", [p + "ctx"], [p + "ctx_t"], perm=[0, 2, 1, 3], name=p + "ctx_t"),
            helper.make_node("Reshape", [p + "ctx_t", "merge_shape"], [p + "ctx_m"], name=p + "merge"),
        ]
        lin("o", p + "ctx_m", hidden, hidden, p + "attn")
        nodes.append(helper.make_node("Add", [x, p + "attn"], [p + "res1"], name=p + "res1"))
        # decomposed layer norm
        inits += [_init(p + "ln1_g", rng.uniform(0.8, 1.2, hidden).astype(np.float32)),
                  _init(p + "ln1_b", rng.normal(0, 0.1, hidden).astype(np.float32))]
        nodes += [
            helper.make_node("ReduceMean", [p + "res1", "axm1"], [p + "mu"], name=p + "ln1_mean"),
            helper.make_node("Sub", [p + "res1", p + "mu"], [p + "d"], name=p + "ln1_sub"),
            helper.make_node("Pow", [p + "d", "two"], [p + "d2"], name=p + "ln1_pow"),
            helper.make_node("ReduceMean", [p + "d2", "axm1"], [p + "var"], name=p + "ln1_var"),
            helper.make_node("Add", [p + "var", "eps"], [p + "var_eps"], name=p + "ln1_eps"),
            helper.make_node("Sqrt", [p + "var_eps"], [p + "std"], name=p + "ln1_sqrt"),
            helper.make_node("Div", [p + "d", p + "std"], [p + "norm"], name=p + "ln1_div"),
            helper.make_node("Mul", [p + "norm", p + "ln1_g"], [p + "scaled_n"], name=p + "ln1_mul"),
            helper.make_node("Add", [p + "scaled_n", p + "ln1_b"], [p + "h1"], name=p + "ln1_add"),
        ]
        lin("ff1", p + "h1", hidden, ffn, p + "f1")
        if layer % 2 == 0:  # Erf GELU
            nodes += [
                helper.make_node("Mul", [p + "f1", "rsqrt2"], [p + "f1s"], name=p + "gelu_scale"),
                helper.make_node("Erf", [p + "f1s"], [p + "erf"], name=p + "gelu_erf"),
                helper.make_node("Add", [p + "erf", "one"], [p + "erf1"], name=p + "gelu_add"),
                helper.make_node("Mul", [p + "f1", p + "erf1"], [p + "g0"], name=p + "gelu_mul"),
                helper.make_node("Mul", [p + "g0", "half"], [p + "act"], name=p + "gelu_half"),
            ]
        else:
            nodes.append(helper.make_node("Gelu", [p + "f1"], [p + "act"], name=p + "gelu"))
        lin("ff2", p + "act", ffn, hidden, p + "f2")
        nodes.append(helper.make_node("Add", [p + "h1", p + "f2"], [p + "res2"], name=p + "res2"))
        inits += [_init(p + "ln2_g", rng.uniform(0.8, 1.2, hidden).astype(np.float32)),
                  _init(p + "ln2_b", rng.normal(0, 0.1, hidden).astype(np.float32))]
        nodes.append(helper.make_node("LayerNormalization", [p + "res2", p + "ln2_g", p + "ln2_b"], [p + "out"],
                                      axis=-1, epsilon=1e-5, name=p + "ln2"))
        x = p + "out"
    # A Split/Squeeze detour that leaves the values unchanged: split the hidden axis in two,
    # concatenate back; take the first token with Slice + Squeeze as a second output.
    nodes += [
        helper.make_node("Slice", [x, "ax0", "ax1", "ax1"], ["cls_3d"], name="cls_slice"),
        helper.make_node("Squeeze", ["cls_3d", "ax1"], ["cls"], name="cls_squeeze"),
        helper.make_node("Identity", [x], ["hidden"], name="out_identity"),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("hidden", F, ["batch", "seq", hidden]),
         helper.make_tensor_value_info("cls", F, ["batch", hidden])],
        inits, opset=20)


def transformer_feeds(rng: np.random.Generator, batch: int = 3, seq: int = 8, vocab: int = 50) -> dict[str, np.ndarray]:
    ids = rng.integers(0, vocab, (batch, seq)).astype(np.int64)
    mask = np.ones((batch, seq), np.int64)
    for b in range(batch):
        mask[b, seq - b:] = 0  # pad the tail of later rows
    return {"input_ids": ids, "attention_mask": mask}


def run_onnxruntime(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    ort = __import__("pytest").importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))
