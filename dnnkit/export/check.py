"""The check of an exported file against the torch model, and the facts the report gives about it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dnnkit.errors import RuntimeFailure


class RuntimeMismatch(RuntimeFailure):
    """The exported file disagrees with the torch model by more than --atol (exit 1, nothing written)."""

    def __init__(self, report: dict[str, Any]) -> None:
        c = report["check"]
        super().__init__(f"the exported {report['format']} file differs from the torch model by "
                         f"{c['max_abs_diff']:.3g} "
                         f"(relative {c['max_rel_diff']:.3g}) on {c['samples']} held-out inputs, above the tolerance "
                         f"{c['tolerance']:.3g} (--atol {c['atol']:g} + --rtol {c['rtol']:g} x max |output|); "
                         "nothing was written",
                         hint="raise --atol/--rtol if that difference is acceptable for this model")
        self.report = report


def compare(spec: Any, run: Any, batches: list[Any], atol: float, rtol: float) -> dict[str, Any]:
    """Max absolute and relative difference of every output over the check batches (relative to the largest
    torch output magnitude), and for classifiers the share of inputs whose predicted class agrees. It passes
    when max |diff| <= atol + rtol * max |torch output|."""
    abs_diff, scale, samples = 0.0, 0.0, 0
    agree, per_output = 0, [0.0] * len(spec.output_names)
    for inputs in batches:
        args = spec.args(inputs)
        want = [t.float() for t in spec.reference(args)]
        got = [t.float() for t in run(args)]
        if len(got) != len(want):
            raise RuntimeFailure(f"the exported file returns {len(got)} outputs, the torch model {len(want)}")
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            if tuple(w.shape) != tuple(g.shape):
                raise RuntimeFailure(f"output {spec.output_names[i]} has shape {tuple(g.shape)} in the exported "
                                     f"file, {tuple(w.shape)} in torch")
            d = float((w - g).abs().max()) if w.numel() else 0.0
            per_output[i] = max(per_output[i], d)
            abs_diff = max(abs_diff, d)
            scale = max(scale, float(w.abs().max()) if w.numel() else 0.0)
        samples += len(inputs)
        if want[0].dim() == 2:
            agree += int((want[0].argmax(-1) == got[0].argmax(-1)).sum())
    rel = abs_diff / scale if scale > 0 else 0.0
    tolerance = atol + rtol * scale
    return {"samples": samples, "max_abs_diff": abs_diff, "max_rel_diff": rel, "atol": atol, "rtol": rtol,
            "tolerance": tolerance, "passed": abs_diff <= tolerance,
            "per_output": dict(zip(spec.output_names, per_output, strict=True)),
            "top1_agreement": agree / samples if want[0].dim() == 2 else None}


def io_shapes(program: Any, input_names: list[str], output_names: list[str], dynamic: dict[str, dict[int, str]]
              ) -> dict[str, list[dict[str, Any]]]:
    """Input and output names, shapes (dynamic dimensions by name) and dtypes, read from the traced program."""
    nodes = {n.name: n for n in program.graph.nodes}
    symbols: dict[str, str] = {}
    placeholders = [nodes[n] for n in program.graph_signature.user_inputs]
    for name, node in zip(input_names, placeholders, strict=True):
        for axis, d in enumerate(node.meta["val"].shape):
            if isinstance(d, torch.SymInt) and axis in dynamic.get(name, {}):
                symbols[str(d.node.expr)] = dynamic[name][axis]
    out_node = next(n for n in program.graph.nodes if n.op == "output")
    results = out_node.args[0]
    results = list(results) if isinstance(results, (tuple, list)) else [results]
    results = results[-len(output_names):]

    def row(name: str, val: Any) -> dict[str, Any]:
        shape = [int(d) if not isinstance(d, torch.SymInt) else symbols.get(str(d.node.expr), str(d.node.expr))
                 for d in val.shape]
        return {"name": name, "shape": shape, "dtype": str(val.dtype).removeprefix("torch.")}

    return {"inputs": [row(n, p.meta["val"]) for n, p in zip(input_names, placeholders, strict=True)],
            "outputs": [row(n, r.meta["val"]) for n, r in zip(output_names, results, strict=True)]}


def graph_ops(path: Path, fmt: str, program: Any) -> dict[str, Any]:
    """Node count and op counts of the file's graph (ONNX op types, or aten ops of the .pt2)."""
    if fmt == "onnx":
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        ops = Counter(n.op_type for n in model.graph.node)
    else:
        ops = Counter(str(n.target).removeprefix("aten.") for n in program.graph.nodes if n.op == "call_function")
    return {"nodes": sum(ops.values()), "ops": dict(sorted(ops.items()))}


def weight_zeros(net: nn.Module, path: Path, fmt: str, program: Any) -> dict[str, Any]:
    """Exact zeros among the weights, in the torch model and in the file (pruned weights stay zeros)."""
    model_zeros = sum(int((p == 0).sum()) for p in net.state_dict().values() if p.is_floating_point())
    model_total = sum(p.numel() for p in net.state_dict().values() if p.is_floating_point())
    if fmt == "onnx":
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(path), load_external_data=False)
        arrays = [numpy_helper.to_array(t) for t in model.graph.initializer]
        arrays = [a for a in arrays if a.dtype.kind == "f"]
        file_zeros, file_total = sum(int((a == 0).sum()) for a in arrays), sum(int(a.size) for a in arrays)
    else:
        tensors = [*program.state_dict.values(), *program.constants.values()]
        tensors = [t for t in tensors if isinstance(t, torch.Tensor) and t.is_floating_point()]
        file_zeros, file_total = sum(int((t == 0).sum()) for t in tensors), sum(t.numel() for t in tensors)
    return {"model_zeros": model_zeros, "model_values": model_total, "file_zeros": file_zeros,
            "file_values": file_total}
