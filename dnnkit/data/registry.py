"""Parse a `--data` spec, check it cheaply, and load the requested split."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dnnkit.errors import InputError

if TYPE_CHECKING:
    import torch

DATA_FORMS = "digits, fashion-mnist, imagefolder:PATH, npz:PATH, text:PATH, wiki, jsonl:PATH"
SPLITS = ("train", "test")


@dataclass
class ImageData:
    """Images as a float tensor (N, C, H, W) in [0, 1] with integer labels."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def take(self, indices: Any) -> ImageData:
        return ImageData(self.name, self.x[indices], self.y[indices], self.classes)


@dataclass
class TextData:
    """Plain-text documents (tokenised later by the model's tokenizer)."""

    name: str
    texts: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, indices: Any) -> TextData:
        return TextData(self.name, [self.texts[int(i)] for i in indices])


@dataclass
class QAData:
    """Question/answer records from a JSONL file."""

    name: str
    records: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def take(self, indices: Any) -> QAData:
        return QAData(self.name, [self.records[int(i)] for i in indices])


@dataclass(frozen=True)
class DataSpec:
    kind: str
    path: Path | None
    raw: str


def check_data_spec(spec: str) -> DataSpec:
    """Parse and check a `--data` value without loading it (cheap, before heavy work)."""
    from dnnkit.data import images, text

    if spec in ("digits",):
        return DataSpec("digits", None, spec)
    if spec in ("fashion-mnist", "fashion_mnist", "fashionmnist"):
        images.fashion_mnist_dir()  # raises with the install command when missing
        return DataSpec("fashion-mnist", None, spec)
    if spec in ("wiki", "text:wiki", "builtin"):
        text.builtin_corpus_path()
        return DataSpec("wiki", None, spec)
    if spec.startswith("memory:"):
        from dnnkit.data.memory import memory_kind

        return DataSpec(memory_kind(spec), None, spec)
    kind, sep, rest = spec.partition(":")
    if sep and kind in ("imagefolder", "npz", "text", "jsonl"):
        path = Path(rest)
        if not rest:
            raise InputError(f"--data {spec!r} names no path")
        if kind == "imagefolder" and not path.is_dir():
            raise InputError(f"--data {spec!r}: no such folder")
        if kind != "imagefolder" and not path.is_file():
            raise InputError(f"--data {spec!r}: no such file")
        return DataSpec(kind, path, spec)
    raise InputError(f"unknown --data {spec!r}", hint=f"accepted: {DATA_FORMS}")


def load_data(spec: str, split: str = "train") -> ImageData | TextData | QAData:
    """Load one split ('train' or 'test') of a dataset given by its `--data` spec."""
    from dnnkit.data import images, qa, text

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    parsed = check_data_spec(spec)
    if parsed.kind.startswith("memory-"):
        from dnnkit.data.memory import load_memory

        return load_memory(spec, split)
    if parsed.kind == "digits":
        return images.load_digits_split(split)
    if parsed.kind == "fashion-mnist":
        return images.load_fashion_mnist(split)
    if parsed.kind == "imagefolder":
        return images.load_imagefolder(parsed.path, split)
    if parsed.kind == "npz":
        return images.load_npz(parsed.path, split)
    if parsed.kind == "wiki":
        return text.load_text(text.builtin_corpus_path(), split, name="wiki")
    if parsed.kind == "text":
        return text.load_text(parsed.path, split, name=str(parsed.path))
    return qa.load_jsonl(parsed.path)


def subset_indices(n_total: int, n: int, seed: int) -> list[int]:
    """`n` distinct indices out of `n_total`, sorted, deterministic given `seed`."""
    import numpy as np

    if n > n_total:
        raise InputError(f"asked for {n} samples but the split holds {n_total}")
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(n_total, size=n, replace=False))
