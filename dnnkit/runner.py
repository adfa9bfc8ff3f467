"""The one runner of every surgery: reference or module in -> check -> load -> apply -> gate -> save
(provenance, atomic) -> artifacts. The CLI adapters, `batch` (through the CLI), the benchmarks and the
Python API all call `run_surgery`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dnnkit.errors import InputError
from dnnkit.progress import ProgressReporter, or_null
from dnnkit.surgery.contract import Context, Result, Surgery

if TYPE_CHECKING:
    from torch import nn

    from dnnkit.models.registry import LoadedModel


@dataclass
class LoadOptions:
    """How MODEL is loaded (the shared --arch/--weights/--device/--dtype)."""

    arch: str | dict[str, Any] | None = None
    weights: str | None = None
    device: str = "cpu"
    dtype: str | None = None


def model_inputs(model: Any) -> tuple[str, ...]:
    """The local files/folders a MODEL reference reads (an output must never be one of them)."""
    if not isinstance(model, str) or model.startswith(("zoo:", "timm:", "hf:")):
        return ()
    return (model,) if Path(model).exists() else ()


def check_outputs(surgery: Surgery, cfg: Any, model: Any, output: str | None, force: bool, dry_run: bool) -> None:
    """The output and every artifact beside it are writable, new (or --force), and not the input."""
    from dnnkit.models.atomic import check_output_path

    if output is None or dry_run:
        return
    if surgery.structural and not output.endswith(".safetensors"):
        raise InputError(f"output {output!r} must end in .safetensors",
                         hint=f"a {surgery.name} output is a dnnkit checkpoint that reloads by recipe replay")
    check_output_path(output, force, inputs=model_inputs(model))
    for path in surgery.artifact_paths(cfg, output):
        check_output_path(path, force)


def load_for(model: Any, load: LoadOptions, progress: ProgressReporter) -> LoadedModel:
    """A LoadedModel for a reference or ModelRef (loaded), a LoadedModel (as is) or a module (a deep copy:
    the caller's module is never modified)."""
    from torch import nn

    from dnnkit.models.reference import ModelRef, parse_reference
    from dnnkit.models.registry import LoadedModel, load_model

    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, nn.Module):
        from dnnkit.models.inmemory import loaded_from_module

        return loaded_from_module(copy.deepcopy(model), arch=load.arch)
    ref = model if isinstance(model, ModelRef) else parse_reference(str(model))
    if load.weights is not None and ref.kind != "timm":
        raise InputError(f"--weights applies to timm:NAME models, not {ref.raw}",
                         hint="a checkpoint file or folder carries its own weights")
    model = ref
    return load_model(model, arch=load.arch, weights=load.weights, device=load.device, dtype=load.dtype,
                      progress=progress)


def gate(result: Result, requirements: list[Any], warn: Any, what: str) -> None:
    """Warn when an after-metric fell far below its before-value; raise when a requirement fails."""
    from dnnkit.gate import check_requirements, drop_warnings

    for message in drop_warnings(result.before, result.after):
        warn(message + ("" if requirements else "; gate a pipeline with --require, e.g. --require 'accuracy>=0.9'"))
    check_requirements(requirements, result.after, what)


def run_surgery(surgery: Surgery | str, model: str | nn.Module | LoadedModel, cfg: Any, *, data: str | None = None,
                load: LoadOptions | None = None, output: str | None = None, force: bool = False,
                dry_run: bool = False, require: list[str] | None = None, progress: ProgressReporter | None = None,
                warn: Any = None, argv: list[str] | None = None, stream: bool = True,
                max_shard_size: int | str | None = None) -> Result:
    """Run one surgery end to end; returns its Result (`report` is the command's `--json` object).

    `max_shard_size` (bytes, or "500MB"/"2GB") shards a Hugging Face folder output; by default a sharded
    input's max shard size is kept.

    `stream=False` never takes the weight-only path, so the Result holds the new module (the Python API
    without `output=`); a bare file without an architecture then needs `arch=`.
    """
    from dnnkit.gate import parse_requirements
    from dnnkit.models.reference import ModelRef, parse_reference
    from dnnkit.models.save import check_shard_option
    from dnnkit.models.shards import parse_shard_size
    from dnnkit.surgery.registry import get_surgery

    started = time.perf_counter()
    surgery = get_surgery(surgery) if isinstance(surgery, str) else surgery
    load = load or LoadOptions()
    progress = or_null(progress)
    warn = warn or (lambda message: None)
    if data is not None:
        import dataclasses

        cfg = dataclasses.replace(cfg, data=data)
    cfg.check()
    if getattr(cfg, "data", None) is not None:
        from dnnkit.data.registry import check_data_spec

        check_data_spec(cfg.data)
    requirements = parse_requirements(require)
    max_shard_size = parse_shard_size(max_shard_size)
    check_shard_option(max_shard_size, output, "dnnkit" if surgery.structural else None)
    if surgery.cpu_only and load.device != "cpu":
        raise InputError(f"{surgery.name} runs on the CPU for now", hint="drop --device")
    ref: ModelRef | None = parse_reference(model) if isinstance(model, str) else None
    arch = load.arch if isinstance(load.arch, str) else None
    surgery.precheck(ref, cfg, arch, None if dry_run else output)
    check_outputs(surgery, cfg, model, output, force, dry_run)
    ctx = Context(progress=progress, warn=warn, dry_run=dry_run, output=None if dry_run else output, argv=argv)
    if stream and ref is not None and load.arch is None and load.weights is None:
        from dnnkit.models.registry import resolve

        ref = resolve(ref, progress)
        if surgery.streams(ref, cfg, arch):
            check_shard_option(max_shard_size, output, "dnnkit")
            if requirements:
                raise InputError("--require needs after-metrics, and the weight-only path measures none",
                                 hint="pass --arch (or --data) so the network is built and measured")
            result = surgery.apply_weights(ref, cfg, ctx)
            for message in result.report.get("warnings", []):
                warn(message)
            return _finish(surgery, result, output, dry_run, started)
    loaded = load_for(ref if ref is not None else model, load, progress)
    if max_shard_size is not None and output is not None:
        from dnnkit.models.save import folder_output_family

        check_shard_option(max_shard_size, output, folder_output_family(loaded) or "dnnkit")
    result = surgery.apply(loaded, cfg, ctx)
    result.loaded = result.loaded or loaded
    for message in result.report.get("warnings", []):
        warn(message)
    gate(result, requirements, warn, surgery.name)
    if output is not None and not dry_run:
        save_result(result, output, force=force, argv=argv, max_shard_size=max_shard_size)
    return _finish(surgery, result, output, dry_run, started)


def _finish(surgery: Surgery, result: Result, output: str | None, dry_run: bool, started: float) -> Result:
    written = output if (output is not None and not dry_run) else None
    if isinstance(result.report.get("timing"), dict):
        result.report["timing"]["total_s"] = time.perf_counter() - started  # load and write included
    result.report.setdefault("output", written)
    if result.report.get("output") is None:
        result.report["output"] = written
    result.report["dry_run"] = dry_run
    surgery.finish(result, written)
    return result


def save_result(result: Result, output: str, *, force: bool = False, argv: list[str] | None = None,
                max_shard_size: int | str | None = None) -> dict[str, Any]:
    """Write a Result's model with its provenance (the recipe gains `result.step`), then its artifacts."""
    from dnnkit.models.save import save_model
    from dnnkit.models.shards import parse_shard_size

    if result.written:
        raise InputError("this result was streamed to its output already")
    if result.model is None or result.loaded is None or result.step is None:
        raise InputError("this result holds no model to save")
    metrics = result.record_metrics if result.record_metrics is not None else (
        {k: v for k, v in (("before", result.before), ("after", result.after)) if v})
    record = save_model(result.loaded, result.model, output, result.step, metrics, force=force,
                        sparse=result.sparse, structural=result.structural, command=argv,
                        max_shard_size=parse_shard_size(max_shard_size))
    result.report["output"] = output
    for artifact in result.artifacts:
        result.report.setdefault("artifacts", {}).update(artifact.write(output))
    return record


def run_probe(probe: Any, model: Any, cfg: Any, *, load: LoadOptions | None = None, output: str | None = None,
              force: bool = False, dry_run: bool = False, progress: ProgressReporter | None = None,
              warn: Any = None, argv: list[str] | None = None) -> Any:
    """Run one probe end to end: check -> outputs checked -> load (when it reads a model) -> apply -> write."""
    from dnnkit.models.atomic import check_output_path

    load = load or LoadOptions()
    progress = or_null(progress)
    warn = warn or (lambda message: None)
    cfg.check()
    if getattr(cfg, "data", None) is not None:
        from dnnkit.data.registry import check_data_spec

        check_data_spec(cfg.data)
    inputs = (*model_inputs(model), *(p for extra in probe.input_paths(cfg) for p in model_inputs(extra)))
    if output is not None and not dry_run:
        check_output_path(output, force, inputs=inputs)
        for path in probe.output_paths(cfg, output):
            check_output_path(path, force, inputs=inputs)
    if not dry_run:
        for path in probe.side_outputs(cfg):
            check_output_path(path, force, inputs=inputs)
    loaded, load_s = None, None
    if model is not None and probe.needs_model:
        probe.precheck(model, cfg)
        started = time.perf_counter()
        loaded = load_for(model, load, progress)
        load_s = time.perf_counter() - started
    ctx = Context(progress=progress, warn=warn, dry_run=dry_run, output=None if dry_run else output, argv=argv,
                  force=force, load_s=load_s)
    result = probe.apply(loaded, cfg, ctx)
    for message in result.report.get("warnings", []):
        warn(message)
    result.report.setdefault("output", None)
    if output is not None and not dry_run:
        if result.writer is not None:
            result.writer(output)
        result.report["output"] = output
    result.report["dry_run"] = dry_run
    return result
