import json
import struct

import pytest
import torch
from safetensors.torch import load_file, save_file

from dnnkit.errors import InputError
from dnnkit.models.safetensors_io import StreamingWriter, read_header, save_tensors


def test_header_only_read(tmp_path):
    path = tmp_path / "a.safetensors"
    save_file({"w": torch.zeros(3, 4), "b": torch.ones(5, dtype=torch.float16)}, str(path), metadata={"k": "v"})
    header = read_header(path)
    assert header.tensors["w"].shape == (3, 4) and header.tensors["w"].dtype == "F32"
    assert header.tensors["b"].dtype == "F16"
    assert header.metadata == {"k": "v"}
    assert header.num_params == 17


def test_truncated_file_is_input_error(tmp_path):
    path = tmp_path / "t.safetensors"
    save_file({"w": torch.randn(64, 64)}, str(path))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 100])
    with pytest.raises(InputError, match="truncated"):
        read_header(path)


def test_random_bytes_is_input_error(tmp_path):
    path = tmp_path / "r.safetensors"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InputError):
        read_header(path)


def test_header_claiming_more_data_than_file(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}).encode()
    path = tmp_path / "h.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    with pytest.raises(InputError, match="truncated"):
        read_header(path)


def test_shape_offset_mismatch(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [10], "data_offsets": [0, 8]}}).encode()
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    with pytest.raises(InputError, match="claims 8 bytes"):
        read_header(path)


def test_streaming_writer_roundtrip_all_dtypes(tmp_path):
    tensors = {"a": torch.randn(3, 5), "b": torch.randn(7).to(torch.bfloat16), "c": torch.arange(6).view(2, 3),
               "d": torch.tensor([True, False]), "e": torch.randn(2, 2).half()}
    path = tmp_path / "s.safetensors"
    save_tensors(path, tensors, {"format": "pt"})
    back = load_file(str(path))
    for k, v in tensors.items():
        assert torch.equal(back[k], v), k
    assert read_header(path).metadata == {"format": "pt"}


def test_streaming_writer_enforces_order(tmp_path):
    w = StreamingWriter(tmp_path / "o.safetensors", {"a": ("F32", (2,)), "b": ("F32", (2,))})
    with pytest.raises(ValueError):
        w.write("b", torch.zeros(2))
    w._fh.close()
