"""The two file formats: write an exported program to a file, and run that file in its own runtime."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dnnkit.errors import InputError


def write_pt2(program: Any, path: Path) -> dict[str, Any]:
    """`torch.export.save`; the file reloads with `torch.export.load` (no dnnkit needed)."""
    torch.export.save(program, str(path))
    return {"opset": None}


def write_onnx(program: Any, path: Path, input_names: list[str], output_names: list[str], opset: int | None,
               what: str) -> dict[str, Any]:
    """Convert a traced program with the dynamo ONNX exporter into one self-contained .onnx file."""
    import onnx

    from dnnkit.export.trace import quiet_torch

    try:
        with quiet_torch():
            onnx_program = torch.onnx.export(program, (), input_names=input_names, output_names=output_names,
                                             opset_version=opset, dynamo=True, verbose=False, optimize=True)
    except Exception as exc:  # noqa: BLE001 - the converter's failure is a property of the model
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        op = _missing_op(exc)
        raise InputError(f"the ONNX exporter cannot convert {what}{op}: {first}",
                         hint="torch.export traced it: export to .pt2 instead (-o FILE.pt2)") from exc
    onnx_program.save(str(path), external_data=False)
    model = onnx.load(str(path), load_external_data=False)
    return {"opset": next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)}


def _missing_op(exc: BaseException) -> str:
    while exc is not None:
        text = str(exc)
        if "No ONNX function found for" in text:
            return " (no ONNX function for " + text.split("No ONNX function found for", 1)[1].split(".")[0].strip() \
                + ")"
        exc = exc.__cause__
    return ""


def onnx_runner(path: Path, input_names: list[str]) -> Callable[[tuple[torch.Tensor, ...]], list[torch.Tensor]]:
    """Run the .onnx file with onnxruntime on the CPU (threads as torch has them)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(args: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        feeds = {name: np.ascontiguousarray(a.detach().cpu().numpy()) for name, a in zip(input_names, args,
                                                                                           strict=True)}
        return [torch.from_numpy(np.asarray(o)) for o in session.run(None, feeds)]

    return run


def pt2_runner(path: Path) -> Callable[[tuple[torch.Tensor, ...]], list[torch.Tensor]]:
    """Run the .pt2 file after `torch.export.load` (a fresh program, not the one in memory)."""
    module = torch.export.load(str(path)).module()

    def run(args: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        with torch.no_grad():
            out = module(*args)
        return list(out) if isinstance(out, (tuple, list)) else [out]

    return run


def file_size(path: Path) -> int:
    """Bytes on disk."""
    return os.path.getsize(path)
