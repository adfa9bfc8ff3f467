"""Record which units are on, per example, with forward pre-hooks (read before any in-place op)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from dnnkit.errors import RuntimeFailure
from dnnkit.probes.gating.units import GateInfo


@dataclass
class CallLayout:
    """Where each gate call's units sit in the concatenated code."""

    names: list[str] = field(default_factory=list)  # gate name per call, in call order
    units: list[int] = field(default_factory=list)  # units per call (channels x positions)
    shapes: list[tuple[int, ...]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.units)

    def offsets(self) -> list[int]:
        out, acc = [], 0
        for u in self.units:
            out.append(acc)
            acc += u
        return out


class GateCapture:
    """Context manager: while active, each forward pass records its gate inputs (binary) or pooled outputs.

    `mode="binary"`: bit = 1[z > 0] of each gate's input z (pre-hook, so in-place units cannot hide it).
    `mode="pooled"`: per channel, the spatial sum of the gate's output map (the authors' relaxed code).
    Calls are keyed by call order; a reused module contributes once per call.
    """

    def __init__(self, gates: list[GateInfo], mode: str = "binary") -> None:
        if mode not in ("binary", "pooled"):
            raise ValueError(f"mode must be binary or pooled, got {mode!r}")
        self.gates, self.mode = gates, mode
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._calls: list[tuple[str, torch.Tensor]] = []
        self.layout: CallLayout | None = None

    def __enter__(self) -> GateCapture:
        for g in self.gates:
            if self.mode == "binary":
                self._handles.append(g.module.register_forward_pre_hook(self._pre_hook(g.name)))
            else:
                self._handles.append(g.module.register_forward_hook(self._post_hook(g.name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._calls.clear()

    def _pre_hook(self, name: str):  # noqa: ANN202
        def hook(module: nn.Module, args: tuple) -> None:
            self._calls.append((name, (args[0].detach().float() > 0).flatten(1)))
        return hook

    def _post_hook(self, name: str):  # noqa: ANN202
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            o = output.detach().float()
            self._calls.append((name, o.flatten(2).sum(-1) if o.dim() > 2 else o))
        return hook

    def run(self, model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward `x`; return (model output, codes N x units) — bool for binary, float for pooled."""
        self._calls.clear()
        out = model(x)
        calls, self._calls = self._calls, []
        if not calls:
            raise RuntimeFailure("no gate was called during the forward pass",
                                 hint="the chosen modules are not used by the model's forward")
        layout = CallLayout([n for n, _ in calls], [int(t.shape[1]) for _, t in calls],
                            [tuple(t.shape[1:]) for _, t in calls])
        if self.layout is None:
            self.layout = layout
        elif layout.names != self.layout.names or layout.units != self.layout.units:
            raise RuntimeFailure(f"gate calls changed between batches ({len(self.layout.names)} calls, "
                                 f"then {len(layout.names)}); codes would not line up")
        return out, torch.cat([t for _, t in calls], dim=1)
