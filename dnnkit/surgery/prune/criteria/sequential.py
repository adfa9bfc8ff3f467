"""Sequential calibration, as SparseGPT and llm-compressor run it: the model is pruned block by
block, and each block's calibration inputs come from the blocks before it, already pruned.

Blocks are the entries of the model's main `nn.ModuleList` (the decoder or encoder layers). Their
inputs are captured once at the first block (positional and keyword arguments: attention masks,
position embeddings), then each block runs twice per batch: once with hooks that gather its layers'
input statistics, and once after pruning to make the next block's inputs. Memory is one block's
activations over the calibration set plus the Hessians of one block's layers. Prunable layers
outside the blocks (or every layer, in a model without such a list: CNNs) are pruned one at a time
in forward order, their statistics gathered by full forward passes of the partly pruned model.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dnnkit.errors import InputError
from dnnkit.metrics import Inputs
from dnnkit.progress import ProgressReporter, or_null
from dnnkit.surgery.prune.criteria.stats import InputStats, gather
from dnnkit.surgery.prune.criteria.view import LayerView, layer_view

PruneFn = Callable[[LayerView, InputStats, int], dict[str, Any]]


class _Stop(Exception):
    """Raised by the capture hook to end a forward pass at the first block."""


@dataclass
class Plan:
    """Pruning order: layers before the blocks, the blocks' layers, layers after them."""

    before: list[LayerView] = field(default_factory=list)
    blocks: list[tuple[nn.Module, list[LayerView]]] = field(default_factory=list)
    after: list[LayerView] = field(default_factory=list)
    fallback: list[str] = field(default_factory=list)  # layers with no matrix view


def forward_batch(model: nn.Module, task: str, inputs: Inputs) -> None:
    """One forward pass whose outputs are discarded (the hooks do the work)."""
    from dnnkit.surgery.prune.curves import forward_y

    forward_y(model, task, inputs)


def main_blocks(model: nn.Module, modules: set[nn.Module]) -> nn.ModuleList | None:
    """The ModuleList whose entries hold the most target modules (at least two entries with some)."""
    best, best_count = None, 0
    for candidate in model.modules():
        if not isinstance(candidate, nn.ModuleList) or len(candidate) < 2:
            continue
        counts = [sum(1 for m in entry.modules() if m in modules) for entry in candidate]
        if sum(1 for c in counts if c) >= 2 and sum(counts) > best_count:
            best, best_count = candidate, sum(counts)
    return best


def call_order(model: nn.Module, task: str, probe: Inputs, modules: list[nn.Module]) -> dict[int, int]:
    """id(module) -> position of its first call in one forward pass (uncalled modules are absent)."""
    order: dict[int, int] = {}

    def seen(module: nn.Module, args: tuple) -> None:
        order.setdefault(id(module), len(order))

    handles = [m.register_forward_pre_hook(seen) for m in modules]
    try:
        with torch.no_grad():
            forward_batch(model, task, probe)
    finally:
        for h in handles:
            h.remove()
    return order


def plan(model: nn.Module, task: str, probe: Inputs, names: list[str]) -> Plan:
    """Split the named weights into the pruning order of `Plan`."""
    from dnnkit.surgery.prune.criteria.apply import module_of

    views, out = [], Plan()
    for name in names:
        view = layer_view(name, module_of(model, name))
        if view is None or name.rsplit(".", 1)[-1] != "weight":
            out.fallback.append(name)
        else:
            views.append(view)
    modules = {v.module for v in views}
    blocks = main_blocks(model, modules)
    order = call_order(model, task, probe, [v.module for v in views] + (list(blocks) if blocks is not None else []))
    views.sort(key=lambda v: order.get(id(v.module), len(order)))
    if blocks is None:
        out.before = views
        return out
    first = order.get(id(blocks[0]), 0)
    inside: dict[int, list[LayerView]] = {i: [] for i in range(len(blocks))}
    owner = {id(m): i for i, entry in enumerate(blocks) for m in entry.modules()}
    for view in views:
        i = owner.get(id(view.module))
        if i is not None:
            inside[i].append(view)
        elif order.get(id(view.module), len(order)) < first:
            out.before.append(view)
        else:
            out.after.append(view)
    out.blocks = [(blocks[i], inside[i]) for i in range(len(blocks))]
    return out


def _batches(inputs: Inputs, batch: int) -> list[Inputs]:
    return [inputs.slice(i, i + batch) for i in range(0, len(inputs), batch)]


def _one_by_one(model: nn.Module, task: str, batches: list[Inputs], views: list[LayerView], zeros: dict[str, int],
                prune: PruneFn, hessian: bool, outcomes: dict[str, dict[str, Any]], advance: Callable[[], None],
                ) -> None:
    """Each layer in turn: full forward passes gather its inputs, then it is pruned."""
    for view in views:
        with gather([view], hessian) as stats, torch.no_grad():
            for b in batches:
                forward_batch(model, task, b)
        outcomes[view.name] = prune(view, stats[view.name], zeros[view.name])
        advance()


def capture_block_inputs(model: nn.Module, task: str, first: nn.Module, batches: list[Inputs],
                         ) -> list[tuple[tuple, dict[str, Any]]]:
    """(args, kwargs) of the first block's call for every calibration batch."""
    captured: list[tuple[tuple, dict[str, Any]]] = []

    def hook(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        captured.append((args, kwargs))
        raise _Stop

    handle = first.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            for b in batches:
                with suppress(_Stop):
                    forward_batch(model, task, b)
    finally:
        handle.remove()
    if len(captured) != len(batches):
        raise InputError("sequential calibration could not capture the first block's inputs",
                         hint="the model's forward does not call its layer list once per pass")
    return captured


def _run_block(block: nn.Module, args: tuple, kwargs: dict[str, Any]) -> Any:
    out = block(*args, **kwargs)
    return out[0] if isinstance(out, tuple | list) else out


def _next_call(args: tuple, kwargs: dict[str, Any], hidden: torch.Tensor) -> tuple[tuple, dict[str, Any]]:
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


def prune_sequential(model: nn.Module, task: str, calib: Inputs, names: list[str], zeros: dict[str, int],
                     prune: PruneFn, *, hessian: bool, batch: int, progress: ProgressReporter | None = None,
                     ) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Prune every named weight with `prune(view, stats, zeros)` in sequential order.
    Returns each layer's outcome and the names that have no matrix view (the caller falls back)."""
    progress = or_null(progress)
    model.eval()
    batches = _batches(calib, batch)
    order = plan(model, task, calib.slice(0, 1), names)
    task_bar = progress.task("calibrated prune", len(names) - len(order.fallback))
    outcomes: dict[str, dict[str, Any]] = {}

    def advance() -> None:
        task_bar.advance(1)

    _one_by_one(model, task, batches, order.before, zeros, prune, hessian, outcomes, advance)
    if order.blocks:
        calls = capture_block_inputs(model, task, order.blocks[0][0], batches)
        with torch.no_grad():
            for block, views in order.blocks:
                if views:
                    with gather(views, hessian) as stats:
                        for args, kwargs in calls:
                            _run_block(block, args, kwargs)
                    for view in views:
                        outcomes[view.name] = prune(view, stats[view.name], zeros[view.name])
                        advance()
                calls = [_next_call(args, kwargs, _run_block(block, args, kwargs)) for args, kwargs in calls]
        _one_by_one(model, task, batches, order.after, zeros, prune, hessian, outcomes, advance)
    return outcomes, order.fallback
