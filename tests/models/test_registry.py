import json
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from dnnkit.errors import InputError
from dnnkit.models.atomic import atomic_file, check_output_path
from dnnkit.models.recipe import register_replay
from dnnkit.models.registry import load_model, open_weights
from dnnkit.models.safetensors_io import read_header
from dnnkit.models.save import save_model, write_checkpoint


def _tiny_bert(tmp_path, shard: bool = False):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                     max_position_embeddings=32, architectures=["BertModel"])
    model = BertModel(cfg).eval()
    folder = tmp_path / ("bert-sharded" if shard else "bert")
    model.save_pretrained(folder, max_shard_size="20KB" if shard else "5GB")
    return model, folder


def test_zoo_model_loads_with_record(digits_mlp_ref):
    loaded = load_model(digits_mlp_ref)
    assert loaded.info.task == "classifier" and loaded.info.input_shape == (1, 8, 8)
    assert loaded.record["arch"]["name"] == "digits-mlp"
    assert loaded.record["metrics"]["test_accuracy"] > 0.9
    assert loaded.model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_bare_safetensors_needs_arch(tmp_path, digits_mlp_ref):
    loaded = load_model(digits_mlp_ref)
    bare = tmp_path / "bare.safetensors"
    save_file(loaded.model.state_dict(), str(bare))
    plain = load_model(str(bare))
    assert plain.model is None
    with pytest.raises(InputError, match="needs the network"):
        plain.require_network("test")
    with_arch = load_model(str(bare), arch="zoo:digits-mlp")
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(with_arch.model(x), loaded.model(x))
    with pytest.raises(InputError, match="do not fit"):
        load_model(str(bare), arch="zoo:digits-cnn")


class _Doubled(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.inner(x) * self.scale


@register_replay("test-wrap-first-linear")
def _replay_wrap(model, step):
    model[1] = _Doubled(model[1])
    return model


def test_recipe_replay_reloads_structural_change(tmp_path, digits_mlp_ref):
    loaded = load_model(digits_mlp_ref)
    model = _replay_wrap(loaded.model, {})
    with torch.no_grad():
        model[1].scale.fill_(0.5)
    out = tmp_path / "wrapped.safetensors"
    save_model(loaded, model, out, {"op": "test-wrap-first-linear", "params": {}}, {"note": 1}, structural=True)
    record = read_header(out).dnnkit_record()
    assert record["recipe"][-1]["op"] == "test-wrap-first-linear"
    assert record["source"]["reference"] == digits_mlp_ref and len(record["source"]["sha256"]) == 64
    assert {"version", "arch", "recipe", "source", "command", "metrics", "created"} <= set(record)
    again = load_model(str(out))
    x = torch.randn(3, 1, 8, 8)
    assert torch.allclose(again.model(x), model(x))


def test_unknown_recipe_op_is_input_error(tmp_path, digits_mlp_ref):
    loaded = load_model(digits_mlp_ref)
    out = tmp_path / "weird.safetensors"
    write_checkpoint(out, loaded.model.state_dict(), {"arch": loaded.arch, "recipe": [{"op": "no-such-op"}]},
                     force=False)
    with pytest.raises(InputError, match="unknown op"):
        load_model(str(out))


def test_hf_folder_single_and_sharded(tmp_path):
    model, folder = _tiny_bert(tmp_path)
    ids = torch.randint(0, 64, (2, 7))
    ref = model(input_ids=ids).last_hidden_state
    loaded = load_model(str(folder))
    assert loaded.info.task == "encoder" and loaded.info.family == "hf"
    assert torch.allclose(loaded.model(input_ids=ids).last_hidden_state, ref, atol=1e-6)
    _, sharded = _tiny_bert(tmp_path, shard=True)
    assert (sharded / "model.safetensors.index.json").exists()
    loaded2 = load_model(str(sharded))
    assert torch.allclose(loaded2.model(input_ids=ids).last_hidden_state, ref, atol=1e-6)
    assert len(open_weights(str(sharded)).names()) == len(model.state_dict())


def test_hf_folder_written_back_loads_with_plain_transformers(tmp_path):
    from transformers import BertModel

    _, folder = _tiny_bert(tmp_path)
    loaded = load_model(str(folder))
    with torch.no_grad():
        loaded.model.encoder.layer[0].output.dense.weight.zero_()
    out = tmp_path / "out-folder"
    save_model(loaded, loaded.model, out, {"op": "prune", "params": {"ratio": 0.1}})
    plain = BertModel.from_pretrained(str(out), local_files_only=True)
    assert torch.count_nonzero(plain.encoder.layer[0].output.dense.weight) == 0
    assert json.loads((out / "dnnkit.json").read_text())["recipe"][0]["op"] == "prune"
    assert read_header(out / "model.safetensors").dnnkit_record() is not None


def test_directory_without_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(InputError, match="has no weights"):
        load_model(str(tmp_path))


def test_timm_with_weights_from_pth_and_safetensors(tmp_path):
    import timm

    model = timm.create_model("resnet18", pretrained=False, num_classes=7).eval()
    pth = tmp_path / "r18.pth"
    torch.save(model.state_dict(), pth)
    st = tmp_path / "r18.safetensors"
    save_file(model.state_dict(), str(st))
    x = torch.randn(1, 3, 64, 64)
    for weights in (pth, st):
        loaded = load_model("timm:resnet18", weights=str(weights))
        assert loaded.info.num_classes == 7
        assert torch.allclose(loaded.model(x), model(x), atol=1e-5)


def test_hub_reference_offline_is_clear(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="Hugging Face hub"):
        load_model("hf:someorg/somemodel")


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['DNNKIT_EVIL_MARKER']}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("DNNKIT_EVIL_MARKER", str(marker))
    bad = tmp_path / "evil.pt"
    with open(bad, "wb") as fh:
        pickle.dump({"w": _Evil()}, fh)
    with pytest.raises(InputError, match="refused"):
        open_weights(str(bad))
    assert not marker.exists()


def test_legacy_state_dict_loads(tmp_path, digits_mlp_ref):
    loaded = load_model(digits_mlp_ref)
    pt = tmp_path / "m.pt"
    torch.save({"state_dict": loaded.model.state_dict()}, pt)
    again = load_model(str(pt), arch="zoo:digits-mlp")
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(again.model(x), loaded.model(x))


def test_tied_weights_saved_once_and_restored(tmp_path):
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10, bias=False))
    model[1].weight = model[0].weight
    out = tmp_path / "tied.safetensors"
    record = write_checkpoint(out, model.state_dict(), {"arch": None}, force=False)
    assert record["aliases"] == {"1.weight": "0.weight"}
    assert list(read_header(out).tensors) == ["0.weight"]


def test_sparse_storage_roundtrip(tmp_path):
    w = torch.randn(64, 64)
    w[torch.rand_like(w) < 0.8] = 0
    out = tmp_path / "sparse.safetensors"
    write_checkpoint(out, {"w": w, "b": torch.randn(64)}, {"arch": None}, force=False, sparse={"w"})
    header = read_header(out)
    assert "w.__bitmask" in header.tensors and "w" not in header.tensors
    src = open_weights(str(out))
    assert sorted(src.names()) == ["b", "w"]
    assert torch.equal(src.get("w"), w)
    dense_bytes = 64 * 64 * 4
    assert src.stored_bytes("w") < 0.35 * dense_bytes


def test_corrupt_sparse_tensor(tmp_path):
    from dnnkit.errors import CorruptCheckpointError
    from dnnkit.models.safetensors_io import load_tensors, save_tensors
    from dnnkit.models.sparse_format import encode_sparse, sparse_metadata

    w = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    enc = encode_sparse("w", w)
    enc["w.__values"] = enc["w.__values"][:1]
    path = tmp_path / "c.safetensors"
    save_tensors(path, enc, {"dnnkit.sparse": sparse_metadata({"w": w})})
    with pytest.raises(CorruptCheckpointError, match="corrupt sparse tensor w"):  # bad input: exit 2
        load_tensors(path)


def test_output_checks(tmp_path):
    nested = tmp_path / "nope" / "deeper" / "x.safetensors"
    assert check_output_path(nested, force=False) == nested  # missing parents are created by the write
    assert not (tmp_path / "nope").exists()  # ... not by the check
    with atomic_file(nested) as tmp:
        tmp.write_bytes(b"new")
    assert nested.read_bytes() == b"new"
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(InputError, match="is not a folder"):
        check_output_path(tmp_path / "file" / "x.safetensors", force=False)
    existing = tmp_path / "x.safetensors"
    existing.write_bytes(b"old")
    with pytest.raises(InputError, match="already exists"):
        check_output_path(existing, force=False)
    with pytest.raises(InputError, match="is the input"):
        check_output_path(existing, force=True, inputs=(existing,))
    assert check_output_path(existing, force=True) == existing


def test_interrupted_write_leaves_nothing(tmp_path):
    dest = tmp_path / "out.safetensors"
    with pytest.raises(KeyboardInterrupt), atomic_file(dest) as tmp:
        tmp.write_bytes(b"partial")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_timm_folder_saved_by_timm(tmp_path):
    import timm
    from timm.models._hub import save_for_hf

    model = timm.create_model("resnet18", pretrained=False, num_classes=5).eval()
    save_for_hf(model, str(tmp_path / "r18"), safe_serialization=True)
    loaded = load_model(str(tmp_path / "r18"))
    assert loaded.arch["family"] == "timm" and loaded.info.num_classes == 5
    x = torch.randn(1, 3, 64, 64)
    assert torch.allclose(loaded.model(x), model(x), atol=1e-5)


def test_gguf_header_only_weights(tmp_path):
    import gguf
    import numpy as np

    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    writer.add_block_count(1)
    writer.add_tensor("blk.0.ffn_up.weight", np.arange(12, dtype=np.float32).reshape(3, 4))
    writer.add_tensor("output_norm.weight", np.ones(4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    src = open_weights(str(path))
    assert src.shape("blk.0.ffn_up.weight") == (3, 4)
    assert torch.equal(src.get("blk.0.ffn_up.weight"), torch.arange(12, dtype=torch.float32).view(3, 4))
    assert src.metadata()["general.architecture"] == "llama"
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + bytes(40))
    with pytest.raises(InputError, match="GGUF"):
        open_weights(str(bad))


def test_sigterm_during_write_leaves_nothing(tmp_path):
    import signal
    import subprocess
    import sys

    dest = tmp_path / "out.safetensors"
    code = ("import signal, sys, time\n"
            "from dnnkit.cli.app import _sigterm\n"
            "from dnnkit.models.atomic import atomic_file\n"
            "signal.signal(signal.SIGTERM, _sigterm)\n"
            "try:\n"
            f"    with atomic_file({str(dest)!r}) as tmp:\n"
            "        tmp.write_bytes(b'partial')\n"
            "        print('ready', flush=True)\n"
            "        time.sleep(60)\n"
            "except KeyboardInterrupt:\n"
            "    sys.exit(130)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    assert any(tmp_path.iterdir())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 130
    assert list(tmp_path.iterdir()) == []


def test_bare_file_of_a_tied_model_loads_with_arch(tmp_path):
    """GPT-2 style: the file holds the embedding once; the tied LM head is filled from it."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=1, n_head=2)).eval()
    folder = tmp_path / "gpt2"
    model.save_pretrained(folder)
    assert "lm_head.weight" not in read_header(folder / "model.safetensors").tensors
    loaded = load_model(str(folder / "model.safetensors"), arch=str(folder))
    ids = torch.tensor([[1, 2, 3, 4]])
    assert torch.allclose(loaded.model(ids).logits, model(ids).logits, atol=1e-6)
    assert loaded.model.lm_head.weight.data_ptr() == loaded.model.transformer.wte.weight.data_ptr()
