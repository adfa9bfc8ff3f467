"""The hostile inputs of issue 20: each is bad input (exit 2, one `error:` line), and no file decides how much
dnnkit allocates beyond its own tensors."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dnnkit.cli.app import app
from dnnkit.errors import InputError


def _cli(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def _one_error_line(result) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.stderr
    assert lines and lines[0].startswith("error: ") and "Traceback" not in result.stderr
    assert all(line.startswith(("error: ", "hint: ")) for line in lines), lines


@pytest.fixture
def list_dtype_file(tmp_path):
    raw = json.dumps({"w": {"dtype": ["F32"], "shape": [2], "data_offsets": [0, 8]}}).encode()
    raw += b" " * (-len(raw) % 8)
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 8)
    return path


@pytest.mark.parametrize("command", [["inspect"], ["prune", "--ratio", "0.5", "-o", "OUT"]])
def test_list_dtype_header_is_exit_2(list_dtype_file, tmp_path, command):
    args = [str(tmp_path / "out.safetensors") if a == "OUT" else a for a in command]
    result = _cli(args[0], list_dtype_file, *args[1:])
    _one_error_line(result)
    assert "unknown dtype" in result.stderr


def test_npz_with_object_array_is_exit_2(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.array([object(), 1], dtype=object), y=np.array([0, 1]))
    from dnnkit.data import load_data

    with pytest.raises(InputError, match="only numbers are read"):
        load_data(f"npz:{path}")


def _hostile_lowrank_file(path, rank: int) -> None:
    """A digits-mlp checkpoint whose recipe factors layer 3 at `rank`, its tensors renamed to fit that step."""
    from dnnkit.models.arch import build_arch
    from dnnkit.models.safetensors_io import save_tensors

    arch = {"family": "zoo", "name": "digits-mlp", "task": "classifier", "input_shape": [1, 8, 8], "num_classes": 10,
            "data": "digits"}
    state = {k: v.detach().clone() for k, v in build_arch(arch).state_dict().items()}
    state.pop("3.weight")
    state["3.down.weight"] = torch.zeros(4, 256)
    state["3.up.weight"] = torch.zeros(256, 4)
    state["3.up.bias"] = state.pop("3.bias")
    record = {"version": "0.1.0", "arch": arch, "recipe": [
        {"op": "lowrank", "params": {}, "layers": {"3": {"kind": "linear", "shape": [256, 256], "rank": rank}}}]}
    save_tensors(path, state, {"format": "pt", "dnnkit": json.dumps(record)})


def test_hostile_recipe_rank_is_refused_on_the_meta_device(tmp_path):
    from dnnkit.models.registry import load_model

    path = tmp_path / "hostile.safetensors"
    _hostile_lowrank_file(path, 200_000_000)  # 2 x 200M x 256 fp32 = 409.6 GB if built for real
    with pytest.raises(InputError, match=r"3\.down\.weight: \(4, 256\) in the file, \(200000000, 256\)"):
        load_model(str(path))
    _hostile_lowrank_file(path, 4)  # the same file with an honest rank loads
    assert load_model(str(path)).model is not None


PEAK_RSS = """
import re, sys
from dnnkit.cli.app import click_command
code = click_command().main(args=sys.argv[1:], prog_name="dnnkit", standalone_mode=False)
hwm = int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) // 1024
print(f"{code} {hwm}")
"""


def test_hostile_recipe_eval_exits_2_with_bounded_peak_memory(tmp_path):
    path = tmp_path / "hostile.safetensors"
    _hostile_lowrank_file(path, 200_000_000)
    out = subprocess.run([sys.executable, "-c", PEAK_RSS, "eval", str(path), "--data", "digits", "--limit", "8"],
                         capture_output=True, text=True, timeout=300)
    code, peak_mib = (int(v) for v in out.stdout.split()[-2:])
    assert code == 2, out.stderr
    assert out.stderr.startswith("error: weights in") and "Traceback" not in out.stderr
    assert peak_mib < 1500, f"peak RSS {peak_mib} MiB"  # python + torch + a 0.3 MB model; 409.6 GB if unguarded


def _tiny_gpt2_folder(folder):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64, n_positions=32))
    model.save_pretrained(folder)
    return folder


def test_hf_config_larger_than_its_weights_is_refused(tmp_path):
    from dnnkit.models.registry import load_model

    folder = _tiny_gpt2_folder(tmp_path / "gpt2")
    assert load_model(str(folder)).model is not None
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] = 2_000_000_000  # 2e9 x 32 fp32 = 256 GB of embedding for a 0.1 MB file
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="describes a model of .* parameters but the weights hold"):
        load_model(str(folder))
    config["vocab_size"] = [64]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="vocab_size must be a size"):
        load_model(str(folder))


def test_malformed_sparse_metadata_is_exit_2(tmp_path):
    from dnnkit.models.safetensors_io import save_tensors
    from dnnkit.models.sparse_format import encode_sparse

    w = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    path = tmp_path / "s.safetensors"
    meta = json.dumps({"format": "bitmask-v1", "tensors": {"w": {"shape": [2**40, 2**40], "dtype": "F32"}}})
    save_tensors(path, encode_sparse("w", w), {"dnnkit.sparse": meta})
    _one_error_line(_cli("inspect", path))


def test_truncated_gguf_is_exit_2(tmp_path):
    path = tmp_path / "t.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 2**40, 1))
    result = _cli("inspect", path)
    _one_error_line(result)
    assert "more than a" in result.stderr


def test_config_yaml_alias_bomb_and_nesting_are_exit_2(tmp_path):
    bomb = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    bomb += [f"a{i}: &a{i} [{', '.join(['*a' + str(i - 1)] * 9)}]" for i in range(1, 10)]
    for text in ("\n".join(bomb), "seed: " + "[" * 5000 + "]" * 5000, "prune: {ratio: {a: 1}}", "- 1\n"):
        cfg = tmp_path / "c.yaml"
        cfg.write_text(text)
        _one_error_line(_cli("--config", cfg, "inspect", "zoo:digits-mlp"))


def test_gguf_metadata_larger_than_its_tensors_is_refused(tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "gguf_writer", Path(__file__).resolve().parent.parent / "models" / "test_gguf_convert.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("DNNKIT_HOME", str(tmp_path / "home"))
    path = tmp_path / "tiny.gguf"
    module.write_tiny_llama_gguf(path)
    raw = bytearray(path.read_bytes())
    key = b"llama.feed_forward_length"
    at = raw.index(key) + len(key) + 4  # then the value type (uint32), then the value
    assert int.from_bytes(raw[at:at + 4], "little") == module.FFN
    raw[at:at + 4] = (1 << 24).to_bytes(4, "little")  # 2 layers x 3 x 16 x 2^24 fp32 = 6.4 GB of MLP
    path.write_bytes(bytes(raw))
    from dnnkit.models.registry import load_model

    with pytest.raises(InputError, match="describes a model of .* parameters but the weights hold"):
        load_model(str(path))
    assert not (tmp_path / "home" / "gguf").exists() or not any((tmp_path / "home" / "gguf").iterdir())


READ_UNDER_LIMIT = """
import resource, sys
from pathlib import Path
import torch, sklearn.model_selection  # noqa: F401 - the imports' mappings come before the limit
from dnnkit.data.images import load_imagefolder
from dnnkit.errors import InputError
vm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (vm + 512 * 2**20,) * 2)
try:
    print(len(load_imagefolder(Path(sys.argv[1]), "train").y))
except InputError as exc:
    print("clean", type(exc.__cause__).__name__, exc)
"""


def test_png_chunk_length_does_not_decide_an_allocation(tmp_path):
    """Fuzz case 1091: an IDAT chunk whose length field claims 4 GiB made PIL allocate it when reading from a
    file object (a MemoryError under the fuzz limit); the file's bytes are now decoded from memory."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (4, 4), 128).save(buf, format="PNG")
    raw = buf.getvalue()
    idat = raw.index(b"IDAT") - 4
    hostile = raw[:idat] + struct.pack(">I", 0xFFFFFFFF) + raw[idat + 4:]
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            (tmp_path / cls / f"{i}.png").write_bytes(raw)
    (tmp_path / "a" / "0.png").write_bytes(hostile)
    out = subprocess.run([sys.executable, "-c", READ_UNDER_LIMIT, str(tmp_path)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "MemoryError" not in out.stdout, out.stdout
