"""GGUF files, loaded (dequantised) through transformers' GGUF support and cached as HF folders."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from dnnkit.errors import InputError
from dnnkit.progress import ProgressReporter, or_null


def load_gguf_model_and_tokenizer(path: Path) -> tuple[Any, Any]:
    """Dequantise a GGUF causal LM into an fp32 transformers model plus its tokenizer (~40 s)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dnnkit.models.hf_quiet import quiet_transformers

    try:
        with quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32,
                                                         local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
    except (ValueError, OSError, KeyError, RuntimeError) as exc:
        raise InputError(f"cannot load GGUF {path}: {str(exc).splitlines()[0][:200]}") from exc
    # The weights are dequantised fp32 now: drop the GGUF quantiser marker so the model saves
    # (and reloads) as a plain fp32 Hugging Face model.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model.eval(), tokenizer


GGUF_MAGIC = b"GGUF"
MAX_GGUF_DIMS = 8


def open_gguf_reader(path: Path) -> Any:
    """A `gguf.GGUFReader` over `path`, after checks the reader leaves out; every failure is one InputError.

    The header's counts are checked against the file size before the reader walks them, and each
    tensor's shape against the bytes the file holds for it (a tensor can never claim more data
    than the file has, so nothing read from a GGUF header sizes an allocation).
    """
    import math

    where = str(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(24)
    except OSError as exc:
        raise InputError(f"cannot read {where}: {exc.strerror}") from exc
    if len(head) < 24 or head[:4] != GGUF_MAGIC:
        raise InputError(f"{where} is not a GGUF file (no GGUF magic)" if head[:4] != GGUF_MAGIC
                         else f"{where} is truncated (only {size} bytes)")
    n_tensors, n_kv = int.from_bytes(head[8:16], "little"), int.from_bytes(head[16:24], "little")
    if n_tensors * 24 > size or n_kv * 12 > size:  # a tensor entry takes >= 24 bytes, a key/value >= 12
        raise InputError(f"{where}: its header counts {n_tensors} tensors and {n_kv} keys, more than a "
                         f"{size}-byte file can hold", hint="the file is truncated or corrupt")
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
        tensors = list(reader.tensors)
        for t in tensors:
            dims = [int(d) for d in t.shape.tolist()]
            if not 1 <= len(dims) <= MAX_GGUF_DIMS or math.prod(dims) != int(t.n_elements):
                raise ValueError(f"tensor {t.name!r} has an invalid shape {dims[:MAX_GGUF_DIMS]}")
            if int(t.data_offset) + int(t.n_bytes) > size or t.data.nbytes != int(t.n_bytes):
                raise ValueError(f"tensor {t.name!r} claims more data than the file holds")
    except MemoryError as exc:
        raise InputError(f"{where} is not a readable GGUF file (its header asks for too much memory)") from exc
    except Exception as exc:  # noqa: BLE001 - any parse failure of an untrusted file is bad input
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else "no detail"
        raise InputError(f"{where} is not a readable GGUF file ({type(exc).__name__}: {first})") from exc
    return reader


def check_gguf_config_fits(path: Path) -> None:
    """The model transformers would build from the GGUF's metadata, built on the meta device first, holds no more
    than the file's tensors (a header claiming `embedding_length: 2**20` allocates nothing)."""
    import math

    from dnnkit.models.guard import check_size_bound, meta_build
    from dnnkit.models.hf_quiet import quiet_transformers

    reader = open_gguf_reader(path)
    file_numel = sum(math.prod(int(d) for d in t.shape.tolist()) for t in reader.tensors)
    try:
        from transformers import AutoConfig

        with quiet_transformers():
            config = AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - transformers' GGUF reader on an untrusted file: any failure is bad input
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot load GGUF {path}: {first}") from exc

    def build() -> Any:
        from transformers import AutoModelForCausalLM

        with quiet_transformers():
            return AutoModelForCausalLM.from_config(config)

    check_size_bound(meta_build(build, str(path)), file_numel, str(path))


def gguf_cache_dir(path: Path, sha256: str) -> Path:
    """Where a GGUF file's converted Hugging Face folder is cached."""
    from dnnkit.home import dnnkit_home

    return dnnkit_home() / "gguf" / f"{path.stem}-{sha256[:16]}"


def ensure_gguf_converted(path: Path, out: Path, progress: ProgressReporter | None = None) -> Path:
    """The fp32 Hugging Face folder `out` converted from GGUF `path`, converting it on first use."""
    from dnnkit.models.atomic import atomic_dir
    from dnnkit.models.hf_quiet import quiet_transformers

    if (out / "config.json").exists():
        return out
    check_gguf_config_fits(path)
    or_null(progress).log(f"converting {path.name} to a cached Hugging Face folder (once, ~40 s)")
    model, tokenizer = load_gguf_model_and_tokenizer(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out) as tmp, quiet_transformers():  # save_pretrained draws "Writing model shards"
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "dnnkit-source.json").write_text(json.dumps({"gguf": str(path)}))
    return out


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
