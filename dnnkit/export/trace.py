"""Tracing with torch.export, and turning a failure into one line that names the module it came from."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from dnnkit.errors import InputError


@contextlib.contextmanager
def module_stack(model: nn.Module) -> Iterator[list[str]]:
    """Hooks that keep the names of the modules whose forward is running (innermost last); an exception
    leaves the stack as it was where it was raised."""
    stack: list[str] = []
    handles = []

    def enter(name: str) -> Any:
        def hook(module: nn.Module, args: Any) -> None:
            stack.append(name)
        return hook

    def leave(module: nn.Module, args: Any, output: Any) -> None:  # returns None: the output stays as it is
        if stack:
            stack.pop()

    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(enter(name)))
        handles.append(module.register_forward_hook(leave))
    try:
        yield stack
    finally:
        for h in handles:
            h.remove()


def _dynamic_shapes(spec: Any, static_batch: int | None) -> tuple[Any, ...] | None:
    dims: dict[str, Any] = {}
    shapes = []
    for name in spec.input_names:
        axes = {}
        for axis, symbol in spec.dynamic.get(name, {}).items():
            if symbol == "batch" and static_batch is not None:
                continue
            dims.setdefault(symbol, torch.export.Dim(symbol, min=1 if symbol == "batch" else 2))
            axes[axis] = dims[symbol]
        shapes.append(axes or None)
    return tuple(shapes) if any(s is not None for s in shapes) else None


@contextlib.contextmanager
def quiet_torch() -> Iterator[None]:
    """Keep torch's tracing logs and graph dumps off stdout/stderr (stdout carries the one JSON object)."""
    import io
    import logging

    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def trace(spec: Any, example: tuple[torch.Tensor, ...], static_batch: int | None, what: str) -> Any:
    """`torch.export.export` of the spec's module (non-strict); a failure is an InputError naming the module."""
    shapes = _dynamic_shapes(spec, static_batch)
    try:
        with quiet_torch():
            return torch.export.export(spec.module, example, dynamic_shapes=shapes, strict=False)
    except Exception as exc:  # noqa: BLE001 - any tracing failure is reported, with the module it came from
        where = _failing_module(spec.module, example, shapes)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise InputError(f"torch.export cannot trace {what}{where}: {type(exc).__name__}: {first}",
                         hint="torch.export (behind both .onnx and .pt2) cannot follow Python control flow on "
                              "a tensor value: rewrite that branch with torch.cond; a loop over a batch-dependent "
                              "size exports with --static-batch N") from exc


def _failing_module(module: nn.Module, example: tuple[torch.Tensor, ...], shapes: Any) -> str:
    """' (in module NAME (Type))' for the innermost module whose forward raised, traced again with hooks."""
    inner = getattr(module, "model", module)
    with module_stack(inner) as stack, quiet_torch():
        with contextlib.suppress(Exception):  # the same failure, now with the stack recorded
            torch.export.export(module, example, dynamic_shapes=shapes, strict=False)
        names = [n for n in stack if n]
    if not names:
        return ""
    name = names[-1]
    return f" (in module {name!r}, {type(inner.get_submodule(name)).__name__})"
