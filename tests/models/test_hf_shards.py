"""HF folder outputs keep a sharded input's layout (same max shard size, index file) unless --max-shard-size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from dnnkit.cli.app import app
from dnnkit.errors import InputError
from dnnkit.models.safetensors_io import read_header
from dnnkit.models.shards import INDEX_NAME, parse_shard_size, split_shards


@pytest.fixture(scope="module")
def sharded_llama(tmp_path_factory, make_tiny_llama) -> Path:
    """A tiny Llama saved by transformers in several shards (40 KB each: 3 shards of ~107 KB)."""
    folder = make_tiny_llama(tmp_path_factory.mktemp("llama") / "tiny-llama", max_shard_size="40KB",
                             vocab_size=128, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                             num_key_value_heads=2, max_position_embeddings=64)
    assert len(list(folder.glob("model-*-of-*.safetensors"))) >= 3
    return folder


def _cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def _index(folder: Path) -> dict:
    return json.loads((folder / INDEX_NAME).read_text())


def _check_index_complete(folder: Path) -> dict[str, str]:
    """The index maps every tensor of the shards, and each to the shard that holds it."""
    weight_map = _index(folder)["weight_map"]
    held = {name: f.name for f in folder.glob("model-*.safetensors") for name in read_header(f).tensors}
    assert weight_map == held
    return weight_map


def test_prune_keeps_the_input_shard_layout(sharded_llama, tmp_path):
    from transformers import LlamaForCausalLM

    out = tmp_path / "pruned"
    result = _cli("prune", sharded_llama, "--ratio", "0.5", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    shards_in = sorted(f.name for f in sharded_llama.glob("model-*.safetensors"))
    assert sorted(f.name for f in out.glob("model-*.safetensors")) == shards_in
    assert not (out / "model.safetensors").exists()
    assert _check_index_complete(out) == _index(sharded_llama)["weight_map"]
    assert _index(out)["metadata"]["total_size"] == _index(sharded_llama)["metadata"]["total_size"]
    plain = LlamaForCausalLM.from_pretrained(str(out), local_files_only=True)
    weight = plain.model.layers[0].mlp.down_proj.weight
    assert 0 < int((weight == 0).sum()) < weight.numel()
    assert torch.isfinite(plain(input_ids=torch.tensor([[1, 2, 3]])).logits).all()
    assert read_header(next(out.glob("model-00001-*.safetensors"))).dnnkit_record()["recipe"][-1]["op"] == "prune"


def test_max_shard_size_changes_the_shard_count(sharded_llama, tmp_path):
    import dnnkit
    from dnnkit.models.registry import load_model

    small = tmp_path / "small"
    assert _cli("prune", sharded_llama, "--ratio", "0.5", "-o", small, "--max-shard-size", "20KB").exit_code == 0
    n_small = len(list(small.glob("model-*.safetensors")))
    assert n_small > len(list(sharded_llama.glob("model-*.safetensors")))
    _check_index_complete(small)
    for f in small.glob("model-*.safetensors"):
        assert sum(t.nbytes for t in read_header(f).tensors.values()) <= 20_000
    # the Python API, with bytes: one file, no index (as transformers writes an unsharded model)
    one = tmp_path / "one"
    dnnkit.prune(str(sharded_llama), ratio=0.3, output=str(one), max_shard_size=10**9)
    assert (one / "model.safetensors").is_file() and not (one / INDEX_NAME).exists()
    # a dnnkit output fed back in keeps its own (new) sharding
    again = tmp_path / "again"
    dnnkit.prune(str(small), ratio=0.6, output=str(again))
    assert len(list(again.glob("model-*.safetensors"))) == n_small
    assert load_model(str(again)).recipe[-1]["params"]["ratio"] == 0.6


def test_result_save_takes_a_shard_size(sharded_llama, tmp_path):
    import dnnkit

    result = dnnkit.prune(str(sharded_llama), ratio=0.5)
    result.save(tmp_path / "saved", max_shard_size="30KB")
    assert len(list((tmp_path / "saved").glob("model-*.safetensors"))) > 1
    _check_index_complete(tmp_path / "saved")


@pytest.mark.parametrize("value", ["abc", "0", "-5MB", "12 parsecs", "1.5XB"])
def test_bad_max_shard_size_is_one_line_exit_2(sharded_llama, tmp_path, value):
    out = tmp_path / "never"
    result = _cli("prune", sharded_llama, "--ratio", "0.5", "-o", out, "--max-shard-size", value)
    assert result.exit_code == 2
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        next(line for line in result.stderr.splitlines() if line.startswith("error:"))]
    assert "--max-shard-size" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".never*"))


def test_max_shard_size_needs_a_folder_output(sharded_llama, digits_mlp_ref, tmp_path):
    for model, out in ((sharded_llama, tmp_path / "x.safetensors"), (digits_mlp_ref, tmp_path / "folder")):
        result = _cli("prune", model, "--ratio", "0.5", "-o", out, "--max-shard-size", "1MB")
        assert result.exit_code == 2, result.output
        assert "--max-shard-size applies to Hugging Face folder outputs" in result.stderr
        assert not out.exists()


def test_parse_and_split():
    assert parse_shard_size("500MB") == 500 * 10**6 and parse_shard_size("2GB") == 2 * 10**9
    assert parse_shard_size("1.5GiB") == int(1.5 * 2**30) and parse_shard_size(" 7 kb ") == 7000
    assert parse_shard_size(None) is None and parse_shard_size(123) == 123
    with pytest.raises(InputError):
        parse_shard_size("2 G B")
    tensors = {"a": torch.zeros(10), "big": torch.zeros(100), "b": torch.zeros(10), "c": torch.zeros(10)}
    layout = split_shards(tensors, 80)  # 40 bytes each, "big" (400) alone, as transformers splits
    assert list(layout.values()) == [["big"], ["a", "b"], ["c"]]
    assert list(layout) == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    assert split_shards(tensors, None) == {"model.safetensors": list(tensors)}


def test_interrupted_sharded_write_leaves_nothing(sharded_llama, tmp_path, monkeypatch):
    import dnnkit.models.safetensors_io as io

    real, calls = io.save_tensors, []

    def fail_on_second_shard(path, tensors, metadata=None):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(path, tensors, metadata)

    monkeypatch.setattr(io, "save_tensors", fail_on_second_shard)
    import dnnkit

    with pytest.raises(KeyboardInterrupt):
        dnnkit.prune(str(sharded_llama), ratio=0.5, output=str(tmp_path / "out"))
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("architectures", [None, ["NoSuchModelForCausalLM"]])
def test_bin_shards_without_architectures_load_as_safetensors_shards(make_tiny_llama, tmp_path, architectures):
    """`.bin` shards go to `from_pretrained(None, state_dict=...)`: an Auto class there could not pick the model
    class (a TypeError, exit 1); it is picked from model_type, as for safetensors shards (LlamaModel both)."""
    from dnnkit.models.registry import load_model

    folders = {}
    for kind, layout in (("bin", {"bin_shards": 2}), ("safetensors", {"max_shard_size": "20KB"})):
        folder = make_tiny_llama(tmp_path / kind, drop_architectures=True, **layout)
        if architectures is not None:  # a class this transformers does not have: the Auto class too
            config = json.loads((folder / "config.json").read_text())
            (folder / "config.json").write_text(json.dumps({**config, "architectures": architectures}))
        folders[kind] = folder
    assert len(list(folders["bin"].glob("pytorch_model-*-of-00002.bin"))) == 2
    assert len(list(folders["safetensors"].glob("model-*.safetensors"))) >= 2
    from_bin, from_safetensors = (load_model(str(folders[k])).model for k in ("bin", "safetensors"))
    assert type(from_bin) is type(from_safetensors) and type(from_bin).__name__ == "LlamaModel"
    expected = from_safetensors.state_dict()
    assert {k: v.shape for k, v in from_bin.state_dict().items()} == {k: v.shape for k, v in expected.items()}
    assert all(torch.equal(v, expected[k]) for k, v in from_bin.state_dict().items())  # same seed, same weights
    files = {}
    for f in folders["bin"].glob("*.bin"):
        files.update(torch.load(f, weights_only=True))
    assert torch.equal(from_bin.embed_tokens.weight, files["model.embed_tokens.weight"])  # the file's, not init
    out = tmp_path / "pruned"
    result = _cli("prune", folders["bin"], "--ratio", "0.5", "-o", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and (out / "config.json").is_file()
