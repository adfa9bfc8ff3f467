"""Build, train and convert zoo models (torch-side of the catalogue)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dnnkit.progress import ProgressReporter, or_null
from dnnkit.zoo import nets
from dnnkit.zoo.catalog import ZooEntry, converted_path, shipped_path, trained_path, zoo_entry

BUILDERS = {
    "digits-mlp": nets.digits_mlp,
    "digits-cnn": nets.digits_cnn,
    "fashion-cnn": nets.FashionResNet,
}


def build_zoo_network(name: str) -> nn.Module:
    """A freshly initialised network of trained zoo model `name`."""
    entry = zoo_entry(name)
    if name not in BUILDERS:
        raise ValueError(f"zoo model {entry.name!r} is shipped, not built from code")
    return BUILDERS[name]()


def zoo_arch(entry: ZooEntry) -> dict:
    """The architecture spec stored in a trained zoo model's checkpoint."""
    return {"family": "zoo", "name": entry.name, **entry.info()}


def ensure_zoo(name: str, progress: ProgressReporter | None = None) -> Path:
    """Path of the checkpoint (file or HF folder) of zoo model `name`, training/converting on first use."""
    entry = zoo_entry(name)
    if entry.source == "shipped":
        src = shipped_path(entry)
        if src.suffix == ".gguf":
            return ensure_converted_gguf(entry, src, progress)
        return src
    path = trained_path(entry)
    if not path.exists():
        train_zoo_model(entry, path, progress)
    return path


def train_zoo_network(name: str, seed: int = 0, progress: ProgressReporter | None = None,
                      ) -> tuple[nn.Module, dict]:
    """A fresh network of trained zoo model `name`, trained with the zoo recipe and training seed `seed`
    (initialisation and batch order); returns the network (eval mode) and its test metrics."""
    from dnnkit.data import load_data
    from dnnkit.train import TrainConfig, accuracy, fit

    entry = zoo_entry(name)
    torch.manual_seed(seed)
    model = build_zoo_network(entry.name)
    train, test = load_data(entry.data, "train"), load_data(entry.data, "test")
    cfg = TrainConfig(seed=seed, **entry.train)
    threads = torch.get_num_threads()
    hist = fit(model, train.x, train.y, cfg, progress=or_null(progress), description=f"train {entry.name}")
    acc = accuracy(model, test.x, test.y)
    metrics = {"test_accuracy": acc, "train_seconds": round(hist.seconds, 1), "threads": threads,
               "final_train_loss": hist.loss[-1], "seed": seed}
    return model.eval(), metrics


def train_zoo_model(entry: ZooEntry, path: Path, progress: ProgressReporter | None = None) -> dict:
    """Train a zoo model with its fixed recipe (seed 0) and write it (atomically) to `path`."""
    from dnnkit.models.save import write_checkpoint

    progress = or_null(progress)
    progress.log(f"zoo: training {entry.name} on {entry.data} (first use; cached at {path})")
    model, metrics = train_zoo_network(entry.name, seed=0, progress=progress)
    metrics.pop("seed")
    record = {"arch": zoo_arch(entry), "recipe": [], "source": {"reference": f"zoo:{entry.name}",
              "trained_on": entry.data, "train": entry.train}, "metrics": metrics,
              "command": ["dnnkit", "zoo", "build", entry.name]}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_checkpoint(path, model.state_dict(), record, force=True)
    progress.log(f"zoo: {entry.name} test accuracy {metrics['test_accuracy']:.4f}")
    return metrics


def ensure_converted_gguf(entry: ZooEntry, gguf_file: Path, progress: ProgressReporter | None = None) -> Path:
    """Convert a shipped GGUF model once into a cached fp32 Hugging Face folder."""
    from dnnkit.models.gguf import ensure_gguf_converted

    return ensure_gguf_converted(gguf_file, converted_path(entry), progress)
