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
# gguf's reader keeps numpy views per metadata array element (~1 KB each, measured), so the count of
# elements is what a header could otherwise inflate; real files hold well under a million (a 262k-token
# vocabulary with its scores and types).
MAX_GGUF_ITEMS = 1 << 20
# GGUF value types: fixed sizes of the scalars; 8 is a string (u64 length + bytes), 9 an array.
_GGUF_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_STRING, _GGUF_ARRAY, _GGUF_UINT32 = 8, 9, 4


class _GGUFLayoutError(ValueError):
    """One malformed spot in a GGUF header (the message is the reason)."""


class _Cursor:
    """Bounds-checked little- or big-endian reads over a memory-mapped file."""

    def __init__(self, buf: Any, order: str) -> None:
        self.buf, self.order, self.pos, self.size = buf, order, 0, len(buf)

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise _GGUFLayoutError(f"{what} at byte {self.pos} runs past the end of the file")

    def unpack(self, fmt: str, what: str) -> int:
        import struct

        n = struct.calcsize(fmt)
        self.need(n, what)
        (value,) = struct.unpack_from(self.order + fmt, self.buf, self.pos)
        self.pos += n
        return value

    def string(self, what: str) -> str:
        n = self.unpack("Q", f"the length of {what}")
        self.need(n, f"{what} ({n} bytes)")
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _GGUFLayoutError(f"{what} at byte {self.pos - n} is not UTF-8") from exc


def _walk_value(cur: _Cursor, vtype: int, key: str, budget: list[int], depth: int = 0) -> Any:
    """Step over one metadata value (checked against the bytes left); returns it for scalars of interest."""
    if vtype in _GGUF_SCALAR_SIZES:
        size = _GGUF_SCALAR_SIZES[vtype]
        if vtype == _GGUF_UINT32:
            return cur.unpack("I", f"the value of {key!r}")
        cur.need(size, f"the value of {key!r}")
        cur.pos += size
        return None
    if vtype == _GGUF_STRING:
        cur.string(f"the string value of {key!r}")
        return None
    if vtype != _GGUF_ARRAY or depth > 2:
        raise _GGUFLayoutError(f"metadata {key!r} has an unknown value type {vtype}"
                               if vtype != _GGUF_ARRAY else f"metadata {key!r} nests arrays too deeply")
    itype = cur.unpack("I", f"the element type of {key!r}")
    n = cur.unpack("Q", f"the length of {key!r}")
    smallest = _GGUF_SCALAR_SIZES.get(itype, 8 if itype == _GGUF_STRING else 12)
    if n * smallest > cur.size - cur.pos:
        raise _GGUFLayoutError(f"metadata array {key!r} claims {n} elements, more than the "
                               f"{cur.size - cur.pos} bytes left in the file hold")
    budget[0] -= n
    if budget[0] < 0:
        raise _GGUFLayoutError(f"the metadata arrays hold more than {MAX_GGUF_ITEMS} elements in all "
                               f"({key!r} alone claims {n})")
    if itype in _GGUF_SCALAR_SIZES:
        cur.pos += n * smallest
    else:
        for _ in range(n):
            _walk_value(cur, itype, key, budget, depth + 1)
    return None


def check_gguf_layout(path: Path) -> None:
    """Walk a GGUF header the way gguf's reader does, but check every count, length, shape and extent
    against the bytes the file holds first (the reader trusts them: an array length of 2**63 makes it
    loop, allocating, until memory runs out). Raises InputError with the first problem."""
    import math
    import mmap

    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.gguf_reader import READER_SUPPORTED_VERSIONS

    where = str(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(24)
            if len(head) < 24 or head[:4] != GGUF_MAGIC:
                raise InputError(f"{where} is not a GGUF file (no GGUF magic)" if head[:4] != GGUF_MAGIC
                                 else f"{where} is truncated (only {size} bytes)")
            buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise InputError(f"cannot read {where}: {exc.strerror or exc}") from exc
    try:
        # Like the reader: a version whose low half is zero means the file was written big-endian.
        order = ">" if int.from_bytes(head[4:8], "little") & 0xFFFF == 0 else "<"
        cur = _Cursor(buf, order)
        cur.pos = 4
        version = cur.unpack("I", "the version")
        if version not in READER_SUPPORTED_VERSIONS:
            raise _GGUFLayoutError(f"GGUF version {version} is not supported (only {READER_SUPPORTED_VERSIONS})")
        n_tensors, n_kv = cur.unpack("Q", "the tensor count"), cur.unpack("Q", "the key count")
        if n_tensors * 24 > size or n_kv * 13 > size:  # a tensor entry takes >= 24 bytes, a key/value >= 13
            raise InputError(f"{where}: its header counts {n_tensors} tensors and {n_kv} keys, more than a "
                             f"{size}-byte file can hold", hint="the file is truncated or corrupt")
        budget = [MAX_GGUF_ITEMS]
        alignment = 32
        for _ in range(n_kv):
            key = cur.string("a metadata key")
            vtype = cur.unpack("I", f"the type of {key!r}")
            value = _walk_value(cur, vtype, key, budget)
            if key == "general.alignment":
                if vtype != _GGUF_UINT32 or not value or value & (value - 1):
                    raise _GGUFLayoutError("general.alignment is not a power of two (uint32)")
                alignment = value
        infos = []
        for i in range(n_tensors):
            name = cur.string(f"the name of tensor {i}")
            n_dims = cur.unpack("I", f"the rank of tensor {name!r}")
            if not 1 <= n_dims <= MAX_GGUF_DIMS:
                raise _GGUFLayoutError(f"tensor {name!r} has {n_dims} dimensions (1 to {MAX_GGUF_DIMS} allowed)")
            dims = [cur.unpack("Q", f"the shape of tensor {name!r}") for _ in range(n_dims)]
            raw_type = cur.unpack("I", f"the type of tensor {name!r}")
            offset = cur.unpack("Q", f"the data offset of tensor {name!r}")
            infos.append((name, dims, raw_type, offset))
        data_start = cur.pos + (-cur.pos % alignment)
        for name, dims, raw_type, offset in infos:
            try:
                qtype = GGMLQuantizationType(raw_type)
                block, type_size = GGML_QUANT_SIZES[qtype]
            except (ValueError, KeyError):
                raise _GGUFLayoutError(f"tensor {name!r} has an unknown type {raw_type}") from None
            n = math.prod(dims)
            # No element type takes under one bit, so no dimension can exceed 8 x the file size.
            if any(d > 8 * size for d in dims) or n * type_size > 8 * size * block:
                raise _GGUFLayoutError(f"tensor {name!r} claims a shape {dims} larger than the file")
            if dims[0] % block:
                raise _GGUFLayoutError(f"tensor {name!r} ({qtype.name}) has rows of {dims[0]}, not a multiple "
                                       f"of its block size {block}")
            end = data_start + offset + n // block * type_size
            if end > size:
                raise _GGUFLayoutError(f"tensor {name!r} claims bytes up to {end}, past the end of the "
                                       f"{size}-byte file")
    except _GGUFLayoutError as exc:
        raise InputError(f"{where} is not a readable GGUF file ({exc})", hint="the file is truncated or corrupt") \
            from exc
    finally:
        buf.close()


def open_gguf_reader(path: Path) -> Any:
    """A `gguf.GGUFReader` over `path`, after checks the reader leaves out; every failure is one InputError.

    `check_gguf_layout` walks the header first, bounding every count, length and tensor extent by the
    file size, so the reader only ever walks a header whose every part lies inside the file (nothing
    read from a GGUF header sizes an allocation).
    """
    import math

    where = str(path)
    check_gguf_layout(path)
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
        tensors = list(reader.tensors)
        size = path.stat().st_size
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
