"""Models trained on scikit-learn's bundled digits data set, exported to ONNX.

The MLP is trained with scikit-learn's MLPClassifier and written as an ONNX graph from
its weights with onnx.helper; the CNN is trained with PyTorch and exported with
``torch.onnx.export(..., dynamo=False)``. Both are cached on disk (the directory is
given by the caller, normally pytest's cache) so repeated test runs do not retrain.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

SPLIT_SEED = 0
CACHE_VERSION = "v1"


@dataclass
class DigitsData:
    x_train: np.ndarray  # float32 (n, 64), values in [0, 1]
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits_split() -> DigitsData:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, digits.target, test_size=0.3, random_state=SPLIT_SEED,
                                              stratify=digits.target)
    return DigitsData(x_tr, y_tr.astype(np.int64), x_te, y_te.astype(np.int64))


def mlp_onnx(cache_dir: str, data: DigitsData) -> str:
    """Path of the digits MLP (input ``pixels`` (batch, 64) -> ``logits`` (batch, 10))."""
    path = os.path.join(cache_dir, f"digits_mlp_{CACHE_VERSION}.onnx")
    if os.path.exists(path):
        return path
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=(128, 64), activation="relu", max_iter=400, random_state=0)
    clf.fit(data.x_train, data.y_train)
    inits, nodes = [], []
    x = "pixels"
    n = len(clf.coefs_)
    for i, (w, b) in enumerate(zip(clf.coefs_, clf.intercepts_)):
        inits += [numpy_helper.from_array(w.astype(np.float32), f"fc{i}.weight"),
                  numpy_helper.from_array(b.astype(np.float32), f"fc{i}.bias")]
        out = "logits" if i == n - 1 else f"fc{i}"
        nodes.append(helper.make_node("Gemm", [x, f"fc{i}.weight", f"fc{i}.bias"], [out], name=f"fc{i}"))
        if i < n - 1:
            nodes.append(helper.make_node("Relu", [out], [f"relu{i}"], name=f"relu{i}"))
            x = f"relu{i}"
    graph = helper.make_graph(nodes, "digits_mlp",
                              [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 64])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="sklearn-digits")
    model.ir_version = 8
    onnx.checker.check_model(model)
    tmp = path + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, path)
    return path


def cnn_onnx(cache_dir: str, data: DigitsData) -> str:
    """Path of the digits CNN (input ``image`` (batch, 1, 8, 8) -> ``logits`` (batch, 10))."""
    path = os.path.join(cache_dir, f"digits_cnn_{CACHE_VERSION}.onnx")
    if os.path.exists(path):
        return path
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1, groups=4), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10),
    )
    x = torch.from_numpy(data.x_train.reshape(-1, 1, 8, 8))
    y = torch.from_numpy(data.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(25):
        perm = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), 64):
            idx = perm[start:start + 64]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
    model.eval()
    tmp = path + ".tmp"
    torch.onnx.export(model, (x[:2],), tmp, input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    os.replace(tmp, path)
    return path


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy in percentage points."""
    return 100.0 * float((np.argmax(logits, axis=1) == labels).mean())
