"""Activation codes of a dataset: bits packed per batch, constant columns dropped over train + test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dnnkit.errors import InputError
from dnnkit.probes.gating.capture import CallLayout, GateCapture
from dnnkit.probes.gating.inputs import logits_of
from dnnkit.probes.gating.units import GateInfo
from dnnkit.progress import ProgressReporter, or_null


@dataclass
class SplitCodes:
    """Codes of one split: packed uint8 bits (binary) or float32 per-channel sums (pooled); net predictions."""

    codes: np.ndarray
    pred: np.ndarray


def code_length(model: nn.Module, x: torch.Tensor, gates: list[GateInfo], mode: str) -> CallLayout:
    """Run one example to learn the layout (units per gate call) before any heavy work."""
    with GateCapture(gates, mode) as cap, torch.no_grad():
        cap.run(model, x[:1])
    assert cap.layout is not None
    return cap.layout


def check_max_bits(layout: CallLayout, max_bits: int) -> None:
    """Refuse codes longer than --max-bits per example."""
    if layout.total > max_bits:
        raise InputError(f"codes would be {layout.total} bits per example (more than --max-bits {max_bits}): every "
                         "position of a conv map is a bit", hint="use --code pooled, pick fewer gates with --layers, "
                                                                 "or raise --max-bits")


def compute_codes(model: nn.Module, x: torch.Tensor, gates: list[GateInfo], mode: str = "binary",
                  batch_size: int = 256, progress: ProgressReporter | None = None,
                  description: str = "codes") -> tuple[SplitCodes, CallLayout]:
    """Codes of every row of x (eval mode, float32); bits are packed as soon as a batch is done."""
    progress = or_null(progress)
    parts, preds = [], []
    task = progress.task(description, -(-len(x) // batch_size))
    with GateCapture(gates, mode) as cap, torch.no_grad():
        for i in range(0, len(x), batch_size):
            out, code = cap.run(model, x[i:i + batch_size])
            preds.append(logits_of(out).reshape(len(code), -1).argmax(1).cpu().numpy())
            code = code.cpu().numpy()
            parts.append(np.packbits(code, axis=1) if mode == "binary" else code.astype(np.float32))
            task.advance(1)
    assert cap.layout is not None
    return SplitCodes(np.concatenate(parts), np.concatenate(preds)), cap.layout


def constant_columns(packed: list[np.ndarray], bits: int) -> tuple[np.ndarray, int, int]:
    """Keep-mask of bits that vary over all given splits; also (#always off, #always on)."""
    any_on = np.zeros(packed[0].shape[1], dtype=np.uint8)
    all_on = np.full(packed[0].shape[1], 255, dtype=np.uint8)
    for p in packed:
        if len(p):
            any_on |= np.bitwise_or.reduce(p, axis=0)
            all_on &= np.bitwise_and.reduce(p, axis=0)
    ever = np.unpackbits(any_on)[:bits].astype(bool)
    always = np.unpackbits(all_on)[:bits].astype(bool)
    return ever & ~always, int((~ever).sum()), int(always.sum())


def keep_columns(packed: np.ndarray, bits: int, keep: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Repack only the kept bits (chunked, so the unpacked bits never exist for the whole set)."""
    out = [np.packbits(np.unpackbits(packed[s:s + chunk], axis=1, count=bits)[:, keep], axis=1)
           for s in range(0, len(packed), chunk)]
    return np.concatenate(out) if out else np.zeros((0, (int(keep.sum()) + 7) // 8), dtype=np.uint8)


def unpack_float(packed: np.ndarray, bits: int) -> np.ndarray:
    """Kept bits as float32 0/1 features (for LR and K-Means, only on the subsets they use)."""
    return np.unpackbits(packed, axis=1, count=bits).astype(np.float32)


def minmax_pooled(train: np.ndarray, test: np.ndarray, layout: CallLayout) -> tuple[np.ndarray, np.ndarray]:
    """Pooled codes: each gate call's block min-max scaled over train + test together."""
    train, test = train.copy(), test.copy()
    for off, units in zip(layout.offsets(), layout.units, strict=True):
        both = np.concatenate([train[:, off:off + units], test[:, off:off + units]])
        lo, hi = float(both.min(initial=0.0)), float(both.max(initial=0.0))
        scale = hi - lo if hi > lo else 1.0
        train[:, off:off + units] = (train[:, off:off + units] - lo) / scale
        test[:, off:off + units] = (test[:, off:off + units] - lo) / scale
    return train, test
