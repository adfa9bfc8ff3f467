"""Seeded fuzz cases for every parser of untrusted input, shared by tests/fuzz and benchmarks/fuzz.py.

Each `Target` has a `setup(workdir)` that writes a few valid seed inputs and a `case(rng, workdir)` that
writes one mutated input and returns a zero-argument function running the parser on it. `run_case`
sorts the outcome: *accepted* (the parser returned; for safetensors and GGUF the data is then read
too, so an accepted file really loads), *clean* (an InputError: exit 2 with one line), or *other*
(any other exception: a bug). Mutations are structural (a JSON/YAML value replaced by a hostile
one: lists for strings, huge or negative sizes, deep nesting, 5000-digit integers) and byte-level
(flips, truncation, inserted bytes, extreme integers written over header words).
"""

from __future__ import annotations

import io
import json
import random
import struct
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnnkit.errors import DnnkitError

# ----------------------------------------------------------------------------------------- hostile values

HUGE_INTS = [0, -1, 1, 2**31, 2**32 - 1, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 2**100, 200_000_000, 10**12]


def hostile_value(rng: random.Random, depth: int = 0) -> Any:
    """A JSON/YAML value of the kind that breaks naive parsers."""
    pick = rng.randrange(16)
    if pick == 0:
        return rng.choice(HUGE_INTS)
    if pick == 1:
        return rng.choice([True, False, None])
    if pick == 2:
        return rng.choice([0.5, -0.0, 1e308, -1e308, float("nan"), float("inf")])
    if pick == 3:
        return rng.choice(["", "F32", "x" * rng.randrange(1, 300), "\u0000", "../../etc/passwd", "é漢", "1e9"])
    if pick == 4:
        return [rng.choice(["F32", 1, None])]
    if pick == 5:
        return {"a": rng.choice([1, "b", None])}
    if pick == 6:
        return [rng.randrange(-5, 2**20) for _ in range(rng.randrange(0, 6))]
    if pick == 7:
        return [rng.choice(HUGE_INTS) for _ in range(rng.randrange(1, 4))]
    if pick == 8 and depth < 2:
        return [hostile_value(rng, depth + 1) for _ in range(rng.randrange(0, 3))]
    if pick == 9 and depth < 2:
        return {rng.choice(["dtype", "shape", "op", "rank", "x"]): hostile_value(rng, depth + 1)}
    if pick == 10:
        return rng.randrange(-10, 10)
    if pick == 11:
        return rng.randrange(0, 2**16)
    if pick == 12:
        return "F16" if rng.random() < 0.5 else "U8"
    if pick == 13:
        return [rng.randrange(0, 64), rng.randrange(0, 64)]
    return rng.choice([[], {}, "", 0])


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys / indices) into a JSON-like tree."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.extend(_paths(v, (*prefix, i)))
    return out


def mutate_tree(obj: Any, rng: random.Random, n: int | None = None) -> Any:
    """A deep copy of `obj` with 1-3 random edits: replace a value, delete a key, add a key, swap two values."""
    obj = json.loads(json.dumps(obj))
    for _ in range(n or rng.choice([1, 1, 2, 3])):
        paths = _paths(obj)
        path = rng.choice(paths)
        if not path:
            if rng.random() < 0.1:
                obj = hostile_value(rng)
            continue
        parent = obj
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        op = rng.randrange(4)
        if op == 0 and isinstance(parent, dict):
            del parent[key]
        elif op == 1 and isinstance(parent, dict):
            parent[rng.choice(["extra", "__metadata__", "dtype", "op", "x" * 3])] = hostile_value(rng)
        elif op == 2:
            other = rng.choice(paths)
            if other and other[: len(path)] != path and path[: len(other)] != other:
                src = obj
                for k in other:
                    src = src[k]
                parent[key] = json.loads(json.dumps(src))
            else:
                parent[key] = hostile_value(rng)
        else:
            parent[key] = hostile_value(rng)
        if not isinstance(obj, (dict, list)):
            break
    return obj


def dumps_hostile(obj: Any, rng: random.Random) -> str:
    """JSON text of `obj`, sometimes with a raw hostile token spliced in (deep nesting, a 5000-digit integer)."""
    text = json.dumps(obj)
    r = rng.random()
    if r < 0.03:
        depth = rng.choice([100, 5000, 100_000])
        token = "[" * depth + "]" * depth
    elif r < 0.06:
        token = "9" * rng.choice([20, 5000])
    else:
        return text
    for marker in ('"F32"', '"F16"', "[", "0"):
        if marker in text:
            return text.replace(marker, token, 1)
    return text


def mutate_bytes(raw: bytes, rng: random.Random, header_end: int | None = None) -> bytes:
    """Flip bytes, truncate, insert, or write an extreme integer over a word (near the start when `header_end`)."""
    data = bytearray(raw)
    for _ in range(rng.choice([1, 1, 2, 4])):
        if not data:
            break
        limit = min(len(data), header_end or len(data))
        op = rng.randrange(5)
        pos = rng.randrange(limit)
        if op == 0:
            data[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[pos] = rng.randrange(256)
        elif op == 2:
            del data[rng.randrange(len(data)):]
        elif op == 3:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        else:
            width = rng.choice([4, 8])
            value = rng.choice(HUGE_INTS) % (1 << (8 * width))
            data[pos:pos + width] = value.to_bytes(width, "little")
    return bytes(data)


# --------------------------------------------------------------------------------------------- outcomes

@dataclass
class Tally:
    """What one target's cases did."""

    cases: int = 0
    accepted: int = 0
    clean: int = 0
    other: int = 0
    slowest_s: float = 0.0
    slowest_case: int = -1
    examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"cases": self.cases, "accepted": self.accepted, "clean": self.clean, "other": self.other,
                "slowest_s": self.slowest_s, "slowest_case": self.slowest_case, "examples": self.examples}


def run_case(fn: Callable[[], Any]) -> tuple[str, BaseException | None]:
    """'accepted', 'clean' (InputError, exit 2) or 'other' (anything else, with the exception)."""
    try:
        fn()
    except DnnkitError as exc:
        if exc.exit_code == 2 and "\n" not in exc.message:
            return "clean", None
        return "other", exc
    except Exception as exc:  # noqa: BLE001 - the point of the harness: every other exception is a finding
        return "other", exc
    return "accepted", None


@dataclass
class Target:
    """One parser under fuzz: seeds written once by `setup`, then `case` per mutated input."""

    name: str
    setup: Callable[[Path], Any]
    case: Callable[[random.Random, Path, Any], Callable[[], Any]]

    def run(self, n: int, seed: int, workdir: Path, indices: list[int] | None = None) -> Tally:
        """Cases 0..n-1 of `seed` (or just `indices`, to replay the ones a benchmark run reported)."""
        workdir.mkdir(parents=True, exist_ok=True)
        state = self.setup(workdir)
        tally = Tally()
        for i in range(n) if indices is None else indices:
            rng = random.Random(f"{seed}:{self.name}:{i}")
            t0 = time.perf_counter()
            outcome, exc = run_case(self.case(rng, workdir, state))
            dt = time.perf_counter() - t0
            tally.cases += 1
            setattr(tally, outcome, getattr(tally, outcome) + 1)
            if dt > tally.slowest_s:
                tally.slowest_s, tally.slowest_case = dt, i
            if exc is not None and len(tally.examples) < 5:
                tally.examples.append(f"case {i}: {type(exc).__name__}: {str(exc)[:200]}")
        return tally


# ----------------------------------------------------------------------------------------- safetensors

def _st_bytes(header: Any, data: bytes, rng: random.Random | None = None) -> bytes:
    text = (dumps_hostile(header, rng) if rng else json.dumps(header)).encode("utf-8", "surrogatepass")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def _st_seed_header(tensors: dict[str, tuple[str, list[int], int]], metadata: dict[str, str] | None) -> dict:
    header: dict[str, Any] = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    for name, (dtype, shape, nbytes) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    return header


def safetensors_seeds() -> list[tuple[dict, bytes]]:
    """Valid (header, data) pairs: several dtypes, a scalar, an empty tensor, metadata."""
    seeds = []
    specs = [
        {"w": ("F32", [2, 3], 24), "b": ("F16", [3], 6), "m": ("BOOL", [2], 2)},
        {"s": ("F64", [], 8), "e": ("I32", [0, 4], 0), "h": ("BF16", [4], 8), "q": ("I8", [3], 3)},
        {"layers.0.weight": ("F32", [4, 4], 64), "layers.0.bias": ("F32", [4], 16)},
    ]
    metas: list[dict[str, str] | None] = [{"format": "pt"}, None, {"format": "pt", "dnnkit": json.dumps(
        {"version": "0.1.0", "arch": None, "recipe": [{"op": "prune", "params": {}, "layers": {}}]})}]
    for spec, meta in zip(specs, metas, strict=True):
        size = sum(v[2] for v in spec.values())
        seeds.append((_st_seed_header(spec, meta), bytes(range(256)) * (size // 256) + bytes(size % 256)))
    return seeds


def _check_loads(path: Path) -> None:
    """An accepted file must load through the safetensors library too (or the header check let it through)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        for name in fh.keys():  # noqa: SIM118 - safe_open is not a mapping
            fh.get_tensor(name)


def _safetensors_case(rng: random.Random, workdir: Path, seeds: list) -> Callable[[], Any]:
    from dnnkit.models.safetensors_io import read_header

    header, data = rng.choice(seeds)
    path = workdir / "case.safetensors"
    r = rng.random()
    if r < 0.6:
        raw = _st_bytes(mutate_tree(header, rng), data, rng)
    elif r < 0.8:
        base = _st_bytes(header, data)
        raw = mutate_bytes(base, rng, header_end=8 + struct.unpack("<Q", base[:8])[0])
    else:
        raw = mutate_bytes(_st_bytes(header, data), rng)
    path.write_bytes(raw)

    def parse() -> None:
        read_header(path)
        _check_loads(path)

    return parse


# -------------------------------------------------------------------------------- dnnkit record / recipe

def record_setup(workdir: Path) -> dict[str, Any]:
    """A small dnnkit checkpoint (zoo digits-mlp architecture, one layer factored to rank 8) and its parts."""
    import torch

    from dnnkit.models.arch import build_arch
    from dnnkit.nn.lowrank import make_lowrank, set_module

    torch.manual_seed(0)
    arch = {"family": "zoo", "name": "digits-mlp", "task": "classifier", "input_shape": [1, 8, 8],
            "num_classes": 10, "data": "digits"}
    model = build_arch(arch)
    set_module(model, "3", make_lowrank(model.get_submodule("3"), 8))
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    record = {"version": "0.1.0", "arch": arch, "source": {"reference": "zoo:digits-mlp", "sha256": "0" * 64},
              "recipe": [{"op": "prune", "params": {"ratio": 0.5}, "layers": {"1": 0.5}},
                         {"op": "lowrank", "params": {"method": "svd"},
                          "layers": {"3": {"kind": "linear", "shape": [256, 256], "rank": 8}}}],
              "command": ["dnnkit", "lowrank"], "metrics": {}, "created": "2026-01-01T00:00:00+00:00"}
    return {"state": state, "record": record}


def _record_case(rng: random.Random, workdir: Path, seed: dict[str, Any]) -> Callable[[], Any]:
    from dnnkit.models.registry import load_model
    from dnnkit.models.safetensors_io import save_tensors

    state = seed["state"]
    record = mutate_tree(seed["record"], rng)
    if rng.random() < 0.2:  # a hostile recipe with tensors renamed to match it (the attack)
        rank = rng.choice([200_000_000, 20_000_000, 2**40, 0, -3, 300])
        record = json.loads(json.dumps(seed["record"]))
        record["recipe"][1]["layers"]["3"]["rank"] = rank
    meta = {"format": "pt", "dnnkit": dumps_hostile(record, rng)}
    path = workdir / "record.safetensors"
    save_tensors(path, state, meta)
    return lambda: load_model(str(path))


# ----------------------------------------------------------------------------------------- bitmask-v1

def sparse_setup(workdir: Path) -> dict[str, Any]:
    import torch

    from dnnkit.models.sparse_format import encode_sparse, sparse_metadata

    w = torch.tensor([[0.0, 1.5, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    parts = {**encode_sparse("w", w), "b": torch.ones(3)}
    return {"parts": parts, "meta": json.loads(sparse_metadata({"w": w}))}


def _sparse_case(rng: random.Random, workdir: Path, seed: dict[str, Any]) -> Callable[[], Any]:
    import torch

    from dnnkit.models.safetensors_io import load_tensors, save_tensors
    from dnnkit.models.weights import SafetensorsWeights

    parts = dict(seed["parts"])
    meta = mutate_tree(seed["meta"], rng) if rng.random() < 0.7 else seed["meta"]
    if rng.random() < 0.4:  # stored parts of the wrong size or dtype
        key = rng.choice(["w.__bitmask", "w.__values"])
        n = rng.choice([0, 1, 2, 5, 9, 64])
        dtype = rng.choice([torch.uint8, torch.float32, torch.float16, torch.int64])
        parts[key] = torch.zeros(n, dtype=dtype) if rng.random() < 0.5 else torch.ones(n, dtype=dtype)
    if rng.random() < 0.1:
        del parts[rng.choice(["w.__bitmask", "w.__values"])]
    path = workdir / "sparse.safetensors"
    save_tensors(path, parts, {"format": "pt", "dnnkit.sparse": dumps_hostile(meta, rng)})

    def parse() -> None:
        src = SafetensorsWeights([path])
        for name in src.names():
            src.shape(name), src.dtype(name), src.stored_bytes(name)
            src.get(name)
        load_tensors(path)

    return parse


# ----------------------------------------------------------------------------------------------- GGUF

def gguf_setup(workdir: Path) -> list[bytes]:
    import gguf
    import numpy as np

    seeds = []
    for variant in range(2):
        path = workdir / f"seed{variant}.gguf"
        writer = gguf.GGUFWriter(str(path), "llama")
        writer.add_name("fuzz")
        writer.add_block_count(1)
        writer.add_array("tokenizer.ggml.tokens", ["a", "b", "c"])
        writer.add_uint32("general.alignment", 32)
        writer.add_tensor("w", np.arange(12, dtype=np.float32).reshape(3, 4))
        if variant:
            writer.add_tensor("h", np.ones((2, 32), dtype=np.float16))
            q = gguf.quants.quantize(np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32),
                                     gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor("q", q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        seeds.append(path.read_bytes())
    return seeds


def _gguf_case(rng: random.Random, workdir: Path, seeds: list[bytes]) -> Callable[[], Any]:
    from dnnkit.models.weights import GGUFWeights

    raw = rng.choice(seeds)
    header_end = len(raw) - 12 * 4 - 64 * 2 - 68 if rng.random() < 0.8 else None
    path = workdir / "case.gguf"
    path.write_bytes(mutate_bytes(raw, rng, header_end=header_end))

    def parse() -> None:
        src = GGUFWeights(path)
        src.metadata()
        for name in src.names():
            src.shape(name), src.dtype(name)
            src.get(name)

    return parse


# -------------------------------------------------------------------------------------- HF config.json

HF_SEEDS: list[dict[str, Any]] = [
    {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 2,
     "vocab_size": 100, "n_positions": 64},
    {"architectures": ["BertModel"], "model_type": "bert", "num_hidden_layers": 2, "hidden_size": 64,
     "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 100, "text_config": {"hidden_size": 64}},
    {"architecture": "resnet18", "num_classes": 10, "model_args": {"in_chans": 1}},
]


def _hf_config_case(rng: random.Random, workdir: Path, _: Any) -> Callable[[], Any]:
    from dnnkit.models.arch import folder_arch_from_config
    from dnnkit.models.describe import _arch_summary
    from dnnkit.models.hf_config import read_hf_config

    path = workdir / "config.json"
    if rng.random() < 0.85:
        path.write_text(dumps_hostile(mutate_tree(rng.choice(HF_SEEDS), rng), rng))
    else:
        path.write_bytes(mutate_bytes(json.dumps(rng.choice(HF_SEEDS)).encode(), rng))

    def parse() -> None:
        _arch_summary(folder_arch_from_config(read_hf_config(path)))

    return parse


# ---------------------------------------------------------------------------------------- --data files

def _npz_bytes(arrays: dict[str, Any]) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _npz_case(rng: random.Random, workdir: Path, _: Any) -> Callable[[], Any]:
    import numpy as np

    from dnnkit.data.images import load_npz

    n = rng.choice([1, 4, 10])
    x = rng.choice([np.zeros((n, 8, 8), np.uint8), np.ones((n, 1, 4, 4), np.float32), np.zeros((n, 5))])
    y = np.arange(n) % rng.choice([1, 2, 3])
    arrays: dict[str, Any] = {"x": x, "y": y}
    r = rng.random()
    if r < 0.15:
        arrays[rng.choice(["x", "y"])] = np.array([object(), 1], dtype=object)
    elif r < 0.3:
        arrays["y"] = rng.choice([np.array([-1] * n), np.array([2**40] * n), np.full(n, np.nan),
                                  np.array(["a"] * n), np.zeros((n, 2)), np.arange(n + 1), np.array([True] * n)])
    elif r < 0.4:
        arrays["x"] = rng.choice([np.full((n, 3), np.inf), np.array(["s"] * n), np.zeros(n), np.zeros((n, 1, 1, 1, 1)),
                                  np.zeros((0, 2))])
    elif r < 0.5:
        arrays = {"x_train": x, "y_train": y} if rng.random() < 0.5 else {"a": x}
    raw = _npz_bytes(arrays)
    if 0.5 <= r < 0.75:
        raw = mutate_bytes(raw, rng)
    elif r >= 0.75:  # a forged .npy header inside an intact zip: the shape claims far more than the member holds
        raw = _forge_npy_shape(raw, rng)
    path = workdir / "case.npz"
    path.write_bytes(raw)
    return lambda: load_npz(path, rng.choice(["train", "test"]))


def _forge_npy_shape(raw: bytes, rng: random.Random) -> bytes:
    """Rewrite the .npy header dict of the members (same header length), so the shape or dtype lies."""
    src = zipfile.ZipFile(io.BytesIO(raw))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if rng.random() < 0.7 and data[:6] == b"\x93NUMPY" and data[6] == 1:
                hlen = struct.unpack("<H", data[8:10])[0]
                shape = rng.choice(["1000000000,", "1099511627776, 1099511627776", "-1,", "0,", "2, 2", "()"])
                descr = rng.choice(["<f4", "<i8", "|O", "<U3", "|V8", "<c8", "|b1", "<f4"])
                order = rng.choice(["False", "True"])
                text = f"{{'descr': '{descr}', 'fortran_order': {order}, 'shape': ({shape.strip('()')}), }}"
                if len(text) < hlen:
                    data = data[:10] + (text + " " * (hlen - 1 - len(text)) + "\n").encode() + data[10 + hlen:]
            dst.writestr(info.filename, data)
    return out.getvalue()


def _jsonl_case(rng: random.Random, workdir: Path, _: Any) -> Callable[[], Any]:
    from dnnkit.data.qa import load_jsonl

    lines = []
    for _ in range(rng.randrange(0, 4)):
        rec = {"question": "What is 2+2?", "answers": ["4", "four"]}
        text = dumps_hostile(mutate_tree(rec, rng) if rng.random() < 0.6 else rec, rng)
        lines.append(text.encode("utf-8", "surrogatepass"))
    raw = b"\n".join(lines)
    if rng.random() < 0.3:
        raw = mutate_bytes(raw, rng) if raw else bytes([rng.randrange(256)])
    path = workdir / "case.jsonl"
    path.write_bytes(raw)
    return lambda: load_jsonl(path)


def _text_case(rng: random.Random, workdir: Path, _: Any) -> Callable[[], Any]:
    from dnnkit.data.text import load_text

    base = "First paragraph.\n\nSecond one, é漢.\r\n\r\nThird.\n".encode()
    r = rng.random()
    raw = mutate_bytes(base, rng) if r < 0.6 else bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
    if rng.random() < 0.1:
        raw = b"\n" * rng.randrange(0, 10)
    path = workdir / "case.txt"
    path.write_bytes(raw)
    return lambda: load_text(path, rng.choice(["train", "test"]), name="fuzz")


def imagefolder_setup(workdir: Path) -> list[bytes]:
    from PIL import Image

    seeds = []
    for mode, size in (("L", (4, 4)), ("RGB", (4, 4)), ("L", (4, 4))):
        buf = io.BytesIO()
        Image.new(mode, size, 128).save(buf, format="PNG")
        seeds.append(buf.getvalue())
    return seeds


def _png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header (correct CRC) that claims width x height pixels, with one tiny data chunk."""
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _imagefolder_case(rng: random.Random, workdir: Path, seeds: list[bytes]) -> Callable[[], Any]:
    import shutil

    from dnnkit.data.images import load_imagefolder

    root = workdir / "images"
    shutil.rmtree(root, ignore_errors=True)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            (root / cls / f"{i}.png").write_bytes(seeds[0])
    victim = root / rng.choice(["a", "b"]) / f"{rng.randrange(2)}.png"
    r = rng.random()
    if r < 0.6:
        victim.write_bytes(mutate_bytes(rng.choice(seeds), rng))
    elif r < 0.75:
        victim.write_bytes(_png_bomb(rng.choice([1, 5, 70_000, 2**31 - 1, 0]), rng.choice([1, 70_000, 2**20])))
    elif r < 0.85:
        victim.write_bytes(rng.choice(seeds[1:]))  # another mode or size
    elif r < 0.95:
        victim.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40))))
    else:
        shutil.rmtree(root / "b")
        (root / "a" / "0.png").unlink()
    return lambda: load_imagefolder(root, rng.choice(["train", "test"]))


# -------------------------------------------------------------------------------------------- --config

YAML_SEED = {"seed": 3, "calib": 32, "json": True, "prune": {"ratio": 0.5, "pattern": "2:4"},
             "swap-projection": {"features": 16}, "data": "digits", "layers": ["a", "b"]}


def _yaml_case(rng: random.Random, workdir: Path, _: Any) -> Callable[[], Any]:
    import yaml

    from dnnkit.cli.app import COMMANDS
    from dnnkit.cli.config_file import read_config

    r = rng.random()
    if r < 0.5:
        text = yaml.safe_dump(mutate_tree(YAML_SEED, rng), allow_unicode=True)
    elif r < 0.6:  # an alias bomb: 9 levels of 9 references each
        lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
        lines += [f"a{i}: &a{i} [{', '.join(['*a' + str(i - 1)] * 9)}]" for i in range(1, 10)]
        text = "\n".join(lines) + "\n"
    elif r < 0.65:
        depth = rng.choice([50, 3000])
        text = "a: " + "[" * depth + "]" * depth + "\n"
    elif r < 0.7:
        text = rng.choice(["!!python/object/apply:os.system ['true']\n", "a: !!binary AAAA\n", "? [a, b]\n: 1\n",
                           "a: 1\na: 2\n", "- 1\n- 2\n", "1: x\n", "null\n", "a: .inf\n"])
    else:
        text = yaml.safe_dump(YAML_SEED)
        text = mutate_bytes(text.encode(), rng).decode("latin-1") if rng.random() < 0.5 else text
    path = workdir / "config.yaml"
    raw = text.encode("utf-8", "surrogatepass") if rng.random() < 0.9 else mutate_bytes(text.encode("utf-8",
                                                                                                     "replace"), rng)
    path.write_bytes(raw)
    commands = {c[0] for c in COMMANDS}
    return lambda: read_config(str(path), commands)


# ----------------------------------------------------------------------------------------------- index

def _seed_only(workdir: Path) -> None:
    return None


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("safetensors-header", lambda d: safetensors_seeds(), _safetensors_case),
    Target("dnnkit-record", record_setup, _record_case),
    Target("bitmask-v1", sparse_setup, _sparse_case),
    Target("gguf-header", gguf_setup, _gguf_case),
    Target("hf-config", _seed_only, _hf_config_case),
    Target("data-npz", _seed_only, _npz_case),
    Target("data-jsonl", _seed_only, _jsonl_case),
    Target("data-text", _seed_only, _text_case),
    Target("data-imagefolder", imagefolder_setup, _imagefolder_case),
    Target("config-yaml", _seed_only, _yaml_case),
)}
