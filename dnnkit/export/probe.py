"""`export` as a Probe: trace once, write the file to a temporary path, run it in its own runtime on
held-out inputs and compare with the torch model; only a file that passes the check is moved into place."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from dnnkit.errors import InputError
from dnnkit.export.config import ExportConfig, format_for
from dnnkit.probes.contract import Probe, ProbeResult


class ExportProbe(Probe):
    """Reads any model dnnkit loads; the writer moves the checked file to the output path (atomic)."""

    name = "export"
    Config = ExportConfig

    def output_paths(self, cfg: ExportConfig, output: str) -> list[Path]:
        format_for(output, cfg.format)  # a wrong suffix fails before the model loads
        return []

    def apply(self, loaded: Any, cfg: ExportConfig, ctx: Any) -> ProbeResult:
        from dnnkit.export.check import RuntimeMismatch

        tmpdir = Path(tempfile.mkdtemp(prefix="dnnkit-export-"))
        try:
            report, staged = export_file(loaded, cfg, tmpdir)
        except BaseException:
            shutil.rmtree(tmpdir, ignore_errors=True)
            raise
        if not report["check"]["passed"]:
            shutil.rmtree(tmpdir, ignore_errors=True)
            raise RuntimeMismatch(report)

        def write(output: str) -> None:
            from dnnkit.models.atomic import atomic_file

            try:
                with atomic_file(output) as tmp:
                    shutil.copyfile(staged, tmp)
            finally:
                shutil.rmtree(tmpdir, ignore_errors=True)
            report["output"] = output

        if ctx.dry_run or ctx.output is None:
            shutil.rmtree(tmpdir, ignore_errors=True)
            return ProbeResult(report, None)
        return ProbeResult(report, write)


def export_file(loaded: Any, cfg: ExportConfig, folder: Path) -> tuple[dict[str, Any], Path]:
    """Trace, write `folder/model.<format>`, reload it and check it; returns (report, staged path)."""
    import torch

    from dnnkit.export.backends import file_size, onnx_runner, pt2_runner, write_onnx, write_pt2
    from dnnkit.export.check import compare, graph_ops, io_shapes, weight_zeros
    from dnnkit.export.forward import forward_spec
    from dnnkit.export.trace import trace
    from dnnkit.metrics import load_inputs

    name = loaded.ref.raw
    net = loaded.require_network("export")
    net.eval()
    data = cfg.data or loaded.info.default_data
    if data is None:
        raise InputError(f"{name} names no default data for the check", hint="pass --data")
    inputs = load_inputs(loaded, data, "test", cfg.samples, cfg.seed, cfg.seq_len)
    param = next(iter(net.parameters()), None)
    if param is not None and inputs.x.is_floating_point():
        inputs.x = inputs.x.to(dtype=param.dtype)
    batch = cfg.static_batch or 2
    example_inputs = inputs.take([i % len(inputs) for i in range(batch)])
    spec = forward_spec(net, loaded.info.task, inputs.kind, cfg.explain, (example_inputs.x,))
    example = spec.args(example_inputs)
    started = time.perf_counter()
    program = trace(spec, example, cfg.static_batch, name)
    staged = folder / f"model.{cfg.format}"
    if cfg.format == "onnx":
        facts = write_onnx(program, staged, spec.input_names, spec.output_names, cfg.opset, name)
    else:
        facts = write_pt2(program, staged)
    export_s = time.perf_counter() - started
    started = time.perf_counter()
    run = onnx_runner(staged, spec.input_names) if cfg.format == "onnx" else pt2_runner(staged)
    check_batches = _check_batches(inputs, cfg.static_batch)
    check = compare(spec, run, check_batches, cfg.atol, cfg.rtol)
    check_s = time.perf_counter() - started
    shapes = io_shapes(program, spec.input_names, spec.output_names, {} if cfg.static_batch else spec.dynamic)
    report = {
        "model": name, "format": cfg.format, "output": None, "explain": cfg.explain, "data": data,
        "file_size": file_size(staged), "opset": facts["opset"], "dynamic_batch": cfg.static_batch is None,
        "inputs": shapes["inputs"], "outputs": shapes["outputs"],
        "check": check, "graph": graph_ops(staged, cfg.format, program),
        "weights": weight_zeros(net, staged, cfg.format, program),
        "timing": {"export_s": export_s, "check_s": check_s},
        "torch_version": torch.__version__,
    }
    return report, staged


def _check_batches(inputs: Any, static_batch: int | None) -> list[Any]:
    """The check inputs in one batch (dynamic batch: a size other than the example's), or in static batches."""
    if static_batch is None:
        return [inputs]
    n = len(inputs)
    return [inputs.take([(i + j) % n for j in range(static_batch)]) for i in range(0, n, static_batch)]


EXPORT = ExportProbe()
