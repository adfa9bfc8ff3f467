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
