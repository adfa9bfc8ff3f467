"""GGUF files the fuzzer broke (benchmarks/fuzz.py, `--seed 0`): each now loads or is one clean InputError."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch
from fuzz_cases import TARGETS

from dnnkit.errors import InputError
from dnnkit.models.gguf import MAX_GGUF_ITEMS
from dnnkit.models.weights import GGUFWeights

# 686, 1875, 5227: a Q8_0 tensor with a zero dimension ("cannot reshape array of size 0");
# 9339: an I8 tensor (NotImplementedError); 9911: a metadata array claiming ~2**63 elements (the
# reader looped on it up to 12.7 GB).
SEED0_CASES = [686, 1875, 5227, 9339, 9911]


def test_seed0_cases_are_clean(tmp_path):
    tally = TARGETS["gguf-header"].run(0, seed=0, workdir=tmp_path, indices=SEED0_CASES)
    assert tally.other == 0, tally.examples
    assert tally.cases == len(SEED0_CASES)


def _write(path, tensors=(), arrays=()):
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    for key, values in arrays:
        writer.add_array(key, values)
    for name, arr, raw_dtype in tensors:
        if raw_dtype is None:
            writer.add_tensor(name, arr)
        else:
            writer.add_tensor(name, arr, raw_shape=arr.shape, raw_dtype=raw_dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_integer_and_f64_tensors_read_as_fp32(tmp_path):
    vals = np.arange(-6, 6).reshape(3, 4)
    path = _write(tmp_path / "ints.gguf", [("i8", vals.astype(np.int8), None), ("i16", vals.astype(np.int16), None),
                                           ("i32", vals.astype(np.int32), None), ("f64", vals / 4, None)])
    src = GGUFWeights(path)
    for name in ("i8", "i16", "i32", "f64"):
        t = src.get(name)
        assert t.dtype == torch.float32 and t.shape == (3, 4)
        expect = vals / 4 if name == "f64" else vals
        assert torch.equal(t, torch.from_numpy(expect).float())


def test_empty_quantised_tensor_is_an_empty_tensor(tmp_path):
    import gguf

    path = _write(tmp_path / "e.gguf", [("w", np.ones((2, 32), np.float32), None),
                                        ("q", np.zeros((2, 0), np.uint8), gguf.GGMLQuantizationType.Q8_0)])
    src = GGUFWeights(path)
    q = src.get("q")
    assert q.dtype == torch.float32 and q.shape == src.shape("q") and q.numel() == 0


def test_type_the_library_cannot_dequantise_is_clean(tmp_path):
    import gguf
    from gguf.constants import GGML_QUANT_SIZES

    block = np.zeros((1, GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_1][1]), np.uint8)  # one Q8_1 block
    path = _write(tmp_path / "q81.gguf", [("q", block, gguf.GGMLQuantizationType.Q8_1)])
    with pytest.raises(InputError, match="Q8_1, a type dnnkit cannot dequantise"):
        GGUFWeights(path).get("q")


def _patch_first_array_length(path, key: bytes, length: int) -> None:
    raw = bytearray(path.read_bytes())
    at = raw.index(key) + len(key) + 4 + 4  # key, value type (array), element type, then the u64 length
    raw[at:at + 8] = struct.pack("<Q", length)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("length", [2**63 - 1, 2**32 + 3, 10_000])
def test_metadata_array_longer_than_the_file_is_refused(tmp_path, length):
    path = _write(tmp_path / "a.gguf", [("w", np.ones(4, np.float32), None)], [("tokenizer.ggml.tokens", ["a", "b"])])
    _patch_first_array_length(path, b"tokenizer.ggml.tokens", length)
    with pytest.raises(InputError, match=r"claims \d+ elements, more than the \d+ bytes left"):
        GGUFWeights(path)


def test_metadata_arrays_beyond_the_item_cap_are_refused(tmp_path):
    n = MAX_GGUF_ITEMS + 1  # a uint8 array that fits its file, but past what the reader may hold in views
    path = tmp_path / "big.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"x"
                     + struct.pack("<IIQ", 9, 0, n) + bytes(n))
    with pytest.raises(InputError, match="more than 1048576 elements in all"):
        GGUFWeights(path)


@pytest.mark.parametrize("field, value, match", [
    ("n_dims", 9, "9 dimensions"),
    ("dim", 2**40, "larger than the file"),
    ("type", 999, "unknown type 999"),
    ("offset", 2**20, "past the end"),
])
def test_tensor_info_lies_are_refused(tmp_path, field, value, match):
    path = _write(tmp_path / "t.gguf", [("wt", np.ones(4, np.float32), None)])
    raw = bytearray(path.read_bytes())
    at = raw.index(b"wt") + 2  # then n_dims u32, dims u64 x n_dims, type u32, offset u64
    spot = {"n_dims": (at, "<I"), "dim": (at + 4, "<Q"), "type": (at + 12, "<I"), "offset": (at + 16, "<Q")}[field]
    struct.pack_into(spot[1], raw, spot[0], value)
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=match):
        GGUFWeights(path)
