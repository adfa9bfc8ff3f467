import pytest
import torch
from safetensors.torch import save_file

from dnnkit.errors import InputError
from dnnkit.models.reference import parse_reference


def test_prefixed_forms():
    assert parse_reference("zoo:digits-mlp").kind == "zoo"
    assert parse_reference("timm:resnet18").kind == "timm"
    assert parse_reference("hf:org/name").kind == "hf-hub"


def test_file_forms(tmp_path):
    st = tmp_path / "m.safetensors"
    save_file({"w": torch.zeros(1)}, str(st))
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    (tmp_path / "m.pt").write_bytes(b"x")
    assert parse_reference(str(st)).kind == "safetensors"
    assert parse_reference(str(tmp_path / "m.gguf")).kind == "gguf"
    assert parse_reference(str(tmp_path / "m.pt")).kind == "legacy"
    assert parse_reference(str(tmp_path)).kind == "hf-dir"


@pytest.mark.parametrize("raw, match", [
    ("missing.safetensors", "no such file"),
    ("org/name", "ambiguous"),
    ("somethingodd", "unknown model reference"),
    ("zoo:", "names no model"),
    ("", "empty"),
])
def test_bad_references(raw, match):
    with pytest.raises(InputError, match=match):
        parse_reference(raw)


def test_unknown_suffix(tmp_path):
    f = tmp_path / "weights.npy"
    f.write_bytes(b"x")
    with pytest.raises(InputError, match="unknown model file type"):
        parse_reference(str(f))
