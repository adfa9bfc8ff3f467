"""Parse what a user passes as MODEL into a typed reference (DESIGN.md section 2)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dnnkit.errors import InputError

ACCEPTED_FORMS = ("path/model.safetensors, path/hf-folder/, path/model.gguf, zoo:NAME, timm:NAME, "
                  "hf:ORG/NAME, path/model.pt|.pth|.bin")
LEGACY_SUFFIXES = (".pt", ".pth", ".bin")


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference: `kind` is one of safetensors, hf-dir, gguf, zoo, timm, hf-hub, legacy."""

    kind: str
    target: str
    raw: str

    @property
    def path(self) -> Path:
        return Path(self.target)

    @property
    def is_file_based(self) -> bool:
        return self.kind in ("safetensors", "hf-dir", "gguf", "legacy")


def parse_reference(raw: str) -> ModelRef:
    """Turn a MODEL argument into a ModelRef, checking that local paths exist."""
    if not raw or not raw.strip():
        raise InputError("empty model reference", hint=f"accepted forms: {ACCEPTED_FORMS}")
    for prefix, kind in (("zoo:", "zoo"), ("timm:", "timm"), ("hf:", "hf-hub")):
        if raw.startswith(prefix):
            name = raw[len(prefix):]
            if not name:
                raise InputError(f"{raw!r} names no model", hint=f"accepted forms: {ACCEPTED_FORMS}")
            if kind == "hf-hub" and not re.fullmatch(r"[\w.\-]+(/[\w.\-]+)?", name):
                raise InputError(f"{raw!r} is not a hub name of the form hf:ORG/NAME")
            return ModelRef(kind, name, raw)
    path = Path(raw)
    if path.is_dir():
        return ModelRef("hf-dir", str(path), raw)
    suffix = path.suffix.lower()
    if path.exists():
        if suffix == ".safetensors":
            return ModelRef("safetensors", str(path), raw)
        if suffix == ".gguf":
            return ModelRef("gguf", str(path), raw)
        if suffix in LEGACY_SUFFIXES:
            return ModelRef("legacy", str(path), raw)
        raise InputError(f"{raw!r}: unknown model file type {suffix or '(no suffix)'!r}",
                         hint=f"accepted forms: {ACCEPTED_FORMS}")
    if suffix in (".safetensors", ".gguf", *LEGACY_SUFFIXES) or "/" in raw and raw.count("/") > 1:
        raise InputError(f"no such file: {raw}")
    if re.fullmatch(r"[\w.\-]+/[\w.\-]+", raw):
        raise InputError(f"{raw!r} is ambiguous: no such local path",
                         hint=f"for a hub model write hf:{raw}; accepted forms: {ACCEPTED_FORMS}")
    raise InputError(f"unknown model reference {raw!r}: no such file, and no known prefix",
                     hint=f"accepted forms: {ACCEPTED_FORMS}; list built-in models with `dnnkit zoo list`")
