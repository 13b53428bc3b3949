"""The ``qcore`` command line: quantize, run, inspect, compare, demo.

Thin over the Python API. Every failure is reported as one line on stderr
(``qcore: error: ...``) with a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

from .errors import CalibrationError, ModelError, QcoreError

EXIT_ERROR = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


class ProgressBar:
    """A one-line progress bar on stderr (``label [#####-----] 5/10``)."""

    def __init__(self, label: str, stream: Any = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done != total and now - self.last < 0.1:
            return
        self.last = now
        if total:
            filled = int(self.width * done / total)
            text = f"\r{self.label} [{'#' * filled}{'-' * (self.width - filled)}] {done}/{total}"
        else:
            text = f"\r{self.label} {done}"
        self.stream.write(text)
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        """End the progress line, if one was drawn."""
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False


# -- helpers -----------------------------------------------------------------------------

def _load_model(path: str) -> Any:
    """A float or quantized model from .onnx (importer) or .qcm."""
    from .runtime.model import Model  # noqa: PLC0415

    if not os.path.exists(path):
        raise CliError(f"file not found: {path}")
    if path.lower().endswith(".onnx"):
        return Model.from_onnx(path)
    from .api import load  # noqa: PLC0415

    loaded = load(path)
    if not isinstance(loaded, Model):
        raise CliError(f"{path} holds tensors but no model graph")
    return loaded


def _load_npz(path: str, what: str) -> dict[str, np.ndarray]:
    if not os.path.exists(path):
        raise CliError(f"{what} file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise CliError(f"{what} file {path} is a single array; expected an .npz with one array per input")
            return {name: np.asarray(data[name]) for name in data.files}
    except CliError:
        raise
    except Exception as exc:
        raise CliError(f"cannot read {what} file {path}: {exc}") from None


def _load_npy(path: str) -> np.ndarray:
    if not os.path.exists(path):
        raise CliError(f"input file not found: {path}")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:
        raise CliError(f"cannot read input file {path}: {exc}") from None


def _size_text(nbytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return str(nbytes)


def _split_excludes(model: Any, names: Sequence[str]) -> tuple[list[str], list[str]]:
    node_names = {n.name for n in model.graph.nodes}
    op_types = {n.op for n in model.graph.nodes}
    nodes, ops = [], []
    for name in names:
        if name in node_names:
            nodes.append(name)
        elif name in op_types:
            ops.append(name)
        else:
            raise CliError(f"--exclude {name}: no node or operator type of that name in the model")
    return nodes, ops


# -- commands ----------------------------------------------------------------------------

def cmd_quantize(args: argparse.Namespace) -> int:
    """``qcore quantize``: import an ONNX model, quantize it as asked, save the .qcm; returns the exit code."""
    from .graph import quantize as q  # noqa: PLC0415

    model = _load_model(args.model)
    nodes, ops = _split_excludes(model, args.exclude or [])
    per_channel = not args.per_tensor
    mode = args.mode
    if args.weight_bits == 4 and mode not in ("weight-only", "transformer"):
        raise CliError("--weight-bits 4 needs --mode weight-only or --mode transformer")
    if args.block_size and mode not in ("weight-only", "transformer"):
        raise CliError("--block-size applies to --mode weight-only and --mode transformer only")
    if mode == "transformer":
        from .graph import transformer as t  # noqa: PLC0415

        fixed = [flag for flag, given in (("--per-tensor", args.per_tensor), ("--method", args.method != "minmax"),
                                          ("--symmetric-activations", args.symmetric_activations),
                                          ("--scale-dtype", args.scale_dtype != "float16"),
                                          ("--block-size", args.block_size and args.weight_bits == 8)) if given]
        if fixed:
            raise CliError(f"{', '.join(fixed)}: not an option of --mode transformer (per-channel GPTQ "
                           "weights, per-token activations; --block-size with --weight-bits 4 only)")
        if not args.calibration:
            raise CliError("--mode transformer needs --calibration DATA.npz (one array per model input)")
        feeds = t.sample_feeds(_load_npz(args.calibration, "calibration"))
        excluded = nodes + [n.name for n in model.graph.nodes if n.op in ops]
        quantized = t.quantize_transformer(model, feeds, weight_bits=args.weight_bits,
                                           block_size=args.block_size or 32, exclude_nodes=excluded)
    elif mode == "static":
        if not args.calibration:
            raise CliError("--mode static needs --calibration DATA.npz (one array per model input)")
        data = _load_npz(args.calibration, "calibration")
        bar, weights_bar = ProgressBar("calibrating"), ProgressBar("quantizing weights")

        def weight_progress(done: int, total: int) -> None:
            bar.close()
            weights_bar(done, total)
        try:
            quantized = q.quantize_static(model, data, method=args.method, per_channel=per_channel,
                                          symmetric_activations=args.symmetric_activations,
                                          exclude_nodes=nodes, exclude_op_types=ops,
                                          batch_size=args.batch_size, progress=bar,
                                          weight_progress=weight_progress, scale_dtype=args.scale_dtype)
        finally:
            bar.close()
            weights_bar.close()
    else:
        weights_bar = ProgressBar("quantizing weights")
        try:
            if mode == "dynamic":
                quantized = q.quantize_dynamic(model, per_channel=per_channel, per_row=args.per_row,
                                               exclude_nodes=nodes, exclude_op_types=ops,
                                               op_types=("MatMul", "Conv"), progress=weights_bar,
                                               scale_dtype=args.scale_dtype)
            else:
                quantized = q.quantize_weight_only(model, bits=args.weight_bits, block_size=args.block_size,
                                                   exclude_nodes=nodes, exclude_op_types=ops, progress=weights_bar,
                                                   scale_dtype=args.scale_dtype)
        finally:
            weights_bar.close()
    quantized.save(args.output)
    counts = quantized.graph.op_counts()
    n_quant = sum(c for op, c in counts.items() if op in ("QMatMul", "QConv", "WMatMul", "WConv", "QGather"))
    in_size = os.path.getsize(args.model)
    out_size = os.path.getsize(args.output)
    print(f"{args.output}: {mode}, {n_quant} quantized layers, {_size_text(out_size)} "
          f"({out_size / in_size:.3f}x of {_size_text(in_size)})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """``qcore run``: load a model, run it on the given inputs, write one array per output; returns the exit code."""
    model = _load_model(args.model)
    feeds: dict[str, np.ndarray] = {}
    if args.inputs:
        feeds.update(_load_npz(args.inputs, "inputs"))
    for item in args.input or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise CliError(f"--input expects NAME=FILE.npy, got {item!r}")
        feeds[name] = _load_npy(path)
    if not feeds:
        raise CliError(f"no inputs given; the model's inputs are {', '.join(model.input_names)} "
                       "(use --input NAME=FILE.npy or --inputs FEEDS.npz)")
    start = time.perf_counter()
    outputs = model.run(feeds, profile=args.profile)
    elapsed = time.perf_counter() - start
    tmp = args.output + ".tmp.npz"
    np.savez(tmp, **outputs)
    os.replace(tmp, args.output)
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in outputs.items())
    print(f"{args.output}: {shapes} in {elapsed * 1e3:.2f} ms")
    if args.profile:
        total = sum(t.seconds for t in model.last_timings) or 1e-12
        print("per node (slowest first):", file=sys.stderr)
        for t in sorted(model.last_timings, key=lambda t: -t.seconds)[:args.profile_top]:
            print(f"  {t.seconds * 1e3:9.3f} ms {100 * t.seconds / total:5.1f} %  {t.op:<20} {t.name}", file=sys.stderr)
    return 0


def inspect_lines(model: Any, path: str | None = None) -> list[str]:
    """The text of ``qcore inspect``."""
    from .graph.ir import tensor_nbytes  # noqa: PLC0415
    from .reference.tensor import QuantizedTensor  # noqa: PLC0415

    g = model.graph
    lines = []
    if path:
        lines.append(f"file: {path} ({_size_text(os.path.getsize(path))})")
    quant = g.metadata.get("quantization")
    lines.append(f"quantization: {quant if quant else 'none (float model)'}")
    lines.append("inputs:")
    lines += [f"  {v.name}: {v.dtype} {v.shape}" for v in g.inputs]
    lines.append("outputs:")
    lines += [f"  {v.name}: {v.dtype} {v.shape}" for v in g.outputs]
    lines.append(f"ops ({len(g.nodes)} nodes):")
    lines += [f"  {op}: {count}" for op, count in sorted(g.op_counts().items())]
    lines.append("quantized layers:")
    for node in g.nodes:
        if node.op in ("QMatMul", "QConv"):
            a = node.attrs
            act = (f"static {a['x_dtype']} scale={a['x_scale']:.6g} zero_point={a['x_zero_point']}"
                   if a.get("activation") == "static" else
                   f"dynamic uint8 {'per row' if a.get('per_row') else 'per tensor'}")
            lines.append(f"  {node.name} ({node.op}): activations {act}")
        elif node.op in ("WMatMul", "WConv"):
            lines.append(f"  {node.name} ({node.op}): weight-only")
        elif node.op == "QGather":
            ids = g.initializers.get(node.inputs[2]) if len(node.inputs) == 4 else None
            kept = g.initializers.get(node.inputs[3]) if len(node.inputs) == 4 else None
            rows = f", {ids.size} rows also in {kept.dtype}" if isinstance(ids, np.ndarray) and kept is not None else ""
            lines.append(f"  {node.name} ({node.op}): quantized embedding table{rows}")
    total = 0
    lines.append("tensors:")
    for name, t in g.initializers.items():
        nbytes = tensor_nbytes(t)
        total += nbytes
        if isinstance(t, QuantizedTensor):
            scale = np.asarray(t.scale)
            desc = (f"{t.dtype} {list(t.shape)} {t.granularity}"
                    + (f" axis={t.axis}" if t.axis is not None else "")
                    + (f" block={t.block_size}" if t.block_size else "")
                    + f" scale[{scale.size}] in [{scale.min():.3g}, {scale.max():.3g}]"
                    + f" zero_point[{np.asarray(t.zero_point).size}]")
        else:
            desc = f"{t.dtype} {list(t.shape)}"
        lines.append(f"  {name}: {desc}, {_size_text(nbytes)}")
    lines.append(f"tensor data: {_size_text(total)}")
    return lines


def cmd_inspect(args: argparse.Namespace) -> int:
    """``qcore inspect``: print the model's ops, tensors, types, quantization parameters and sizes."""
    model = _load_model(args.model)
    print("\n".join(inspect_lines(model, args.model)))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """``qcore compare``: per-layer error of a quantized model against its float model, worst first."""
    from .graph.compare import compare_models  # noqa: PLC0415

    float_model = _load_model(args.float_model)
    quant_model = _load_model(args.quantized)
    data = _load_npz(args.data, "data")
    if args.limit:
        data = {k: v[:args.limit] for k, v in data.items()}
    bar = ProgressBar("comparing")
    try:
        reports = compare_models(float_model.graph, quant_model.graph, data, batch_size=args.batch_size, progress=bar)
    except CalibrationError as exc:
        raise CliError(str(exc).replace("calibration", "--data")) from None
    finally:
        bar.close()
    print(f"{'layer':<40} {'op':<8} {'SQNR dB':>8} {'cosine':>9} {'max err (steps)':>16} {'clipped':>8}")
    for r in reports:
        if r.op == "output":  # model outputs: end-to-end figures only
            print(f"{r.name[:40]:<40} {'':<8} {r.sqnr_db:8.2f} {r.cosine:9.6f} {'-':>16} {'-':>8}")
            continue
        print(f"{r.name[:40]:<40} {r.op:<8} {r.sqnr_db:8.2f} {r.cosine:9.6f} {r.max_error_steps:16.3f} "
              f"{100 * r.fraction_clipped:7.3f}%")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """``qcore demo``: quantize and run the bundled digits CNN, print float vs int8 accuracy, size, latency."""
    from .data.demo import run_demo  # noqa: PLC0415

    run_demo(print, workdir=args.workdir)
    return 0


# -- entry point -------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The ``qcore`` argument parser: one sub-command per ``cmd_*`` function."""
    parser = argparse.ArgumentParser(prog="qcore", description="Quantize models and run them in int8.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("quantize", help="quantize a float model (.onnx or float .qcm) to a .qcm file")
    p.add_argument("model")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--mode", choices=["dynamic", "static", "weight-only", "transformer"], default="dynamic",
                   help="transformer: the encoder recipe (smoothing, GPTQ; int8 with per-token activations, "
                        "or int4 weight-only with --weight-bits 4), calibrated on --calibration")
    p.add_argument("--calibration", help="DATA.npz: one array per model input, samples along axis 0")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--per-channel", action="store_true", help="one weight scale per output channel (default)")
    group.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor")
    p.add_argument("--weight-bits", type=int, choices=[8, 4], default=8)
    p.add_argument("--block-size", type=int, default=0,
                   help="weight-only: block length along the input axis (transformer int4: default 32)")
    p.add_argument("--method", choices=["minmax", "percentile", "mse", "entropy"], default="minmax")
    p.add_argument("--exclude", nargs="+", metavar="NAME", help="node names or op types to keep in float")
    p.add_argument("--per-row", action="store_true", help="dynamic: one activation scale per row (token)")
    p.add_argument("--symmetric-activations", action="store_true", help="static: int8 activations, zero point 0")
    p.add_argument("--batch-size", type=int, default=64, help="calibration batch size")
    p.add_argument("--scale-dtype", choices=["float16", "float32"], default="float16",
                   help="how weight scales are stored (float16: rounded up, half the size; default)")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("run", help="run a model on .npy/.npz inputs, write the outputs to .npz")
    p.add_argument("model")
    p.add_argument("--input", action="append", metavar="NAME=FILE.npy")
    p.add_argument("--inputs", metavar="FEEDS.npz")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--profile", action="store_true", help="print per-node times to stderr")
    p.add_argument("--profile-top", type=int, default=20)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("inspect", help="list ops, tensors, types, quantization parameters and sizes")
    p.add_argument("model")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("compare", help="per-layer error of a quantized model against its float model")
    p.add_argument("float_model")
    p.add_argument("quantized")
    p.add_argument("--data", required=True, help="DATA.npz: one array per model input, samples along axis 0")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--limit", type=int, default=0, help="use at most this many samples")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("demo", help="quantize the bundled digits model, run it, print accuracy, size, latency")
    p.add_argument("--workdir", help="keep the files here (default: a temporary directory)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one-line usage error
        return int(exc.code or 0) if exc.code in (0, None) else EXIT_USAGE
    handlers: tuple[type[BaseException], ...] = (CliError, QcoreError, OSError, MemoryError)
    try:
        return int(args.func(args))
    except handlers as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        kind = "" if isinstance(exc, (CliError, QcoreError)) else f"{type(exc).__name__}: "
        print(f"qcore: error: {kind}{message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("qcore: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line, unless QCORE_DEBUG asks for the traceback
        if os.environ.get("QCORE_DEBUG"):
            raise
        print(f"qcore: internal error: {type(exc).__name__}: {exc} (set QCORE_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return EXIT_ERROR


def _entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    _entry()
