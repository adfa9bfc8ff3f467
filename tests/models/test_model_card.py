"""Every HF or timm folder dnnkit writes carries a Hub model card (README.md); an input's card is kept."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from dnnkit.models.card import base_model_name, model_card, split_front_matter

DNNKIT = Path(sys.executable).parent / "dnnkit"


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory, make_tiny_llama) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("card") / "tiny-llama")


def _card(folder: Path) -> tuple[dict, str]:
    meta, body = split_front_matter((folder / "README.md").read_text())
    assert meta is not None
    return meta, body


def test_cli_output_card_in_hub_format(llama_dir, tmp_path):
    from huggingface_hub import ModelCard

    out = tmp_path / "pruned"
    argv = [str(DNNKIT), "prune", str(llama_dir), "--ratio", "0.5", "--method", "uniform", "-o", str(out), "--quiet"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    card = ModelCard.load(out / "README.md")  # the Hub's own parser
    assert card.data.base_model == str(llama_dir)
    assert card.data.tags == ["dnnkit", "prune"] and card.data.library_name == "transformers"
    text = card.text
    assert "## dnnkit: prune" in text
    assert "50 % of the prunable weights set to zero (method uniform, criterion magnitude)" in text
    assert shlex.join(["dnnkit", *argv[1:]]) in text
    assert "measured no metrics" in text


def test_input_card_kept_tags_merged_metrics_and_chain(llama_dir, tmp_path):
    import shutil

    import dnnkit

    src = tmp_path / "with-card"
    shutil.copytree(llama_dir, src)
    (src / "README.md").write_text("---\nlicense: apache-2.0\ntags:\n- text-generation\n- llama\n---\n\n"
                                   "# My tiny model\n\nTrained on nothing at all.\n")
    ids = torch.randint(0, 64, (20, 12), generator=torch.Generator().manual_seed(1))
    first = tmp_path / "first"
    dnnkit.prune(str(src), ratio=0.5, criterion="wanda", data=ids, calib=16, output=str(first))
    meta, body = _card(first)
    assert meta["license"] == "apache-2.0" and meta["base_model"] == str(src)
    assert meta["tags"] == ["text-generation", "llama", "dnnkit", "prune"]
    assert meta["library_name"] == "transformers"
    assert body.index("Trained on nothing at all.") < body.index("## dnnkit: prune")
    assert "criterion wanda" in body and "| perplexity |" in body and "| output_mse |" in body
    assert "Python API" in body
    second = tmp_path / "second"
    dnnkit.prune(str(first), ratio=0.7, output=str(second))
    meta2, body2 = _card(second)
    assert meta2["base_model"] == str(src)  # a chain of dnnkit steps keeps the original base
    assert meta2["tags"] == meta["tags"] and body2.count("## dnnkit: prune") == 2
    assert "(already in the input)" in body2 and "70 % of the prunable weights" in body2
    assert (src / "README.md").read_text().startswith("---\nlicense: apache-2.0")  # the input is untouched


def test_timm_output_card(tmp_path):
    import timm
    from timm.models._hub import save_for_hf

    import dnnkit

    torch.manual_seed(0)
    folder = tmp_path / "tres"
    save_for_hf(timm.create_model("test_resnet", pretrained=False, num_classes=4), str(folder))
    out = tmp_path / "tres-pruned"
    dnnkit.prune(str(folder), ratio=0.5, output=str(out))
    meta, body = _card(out)
    assert meta == {"base_model": str(folder), "tags": ["dnnkit", "prune"], "library_name": "timm"}
    assert "## dnnkit: prune" in body
    assert timm.create_model(f"local-dir:{out}", pretrained=True) is not None


def test_base_model_and_broken_cards():
    assert base_model_name("hf:org/name") == "org/name"
    assert base_model_name("./here", {"_name_or_path": "meta-llama/Llama-3.2-1B"}) == "meta-llama/Llama-3.2-1B"
    assert base_model_name("./here", {"_name_or_path": "/abs/path"}) == "./here"
    assert base_model_name("timm:resnet18") == "timm:resnet18"
    record = {"recipe": [{"op": "lowrank", "params": {"rank": 8, "method": "svd", "extra": None}}],
              "metrics": {"before": {"accuracy": 0.9}, "after": {"accuracy": 0.85}},
              "command": ["dnnkit", "lowrank", "x"], "source": {"reference": "x"}}
    broken = "---\ntags: [unclosed\n---\nbody text\n"
    text = model_card(record, base_model="x", library_name="transformers", existing=broken)
    meta, body = split_front_matter(text)
    assert meta["tags"] == ["dnnkit", "lowrank"] and broken in body  # kept verbatim under dnnkit's front matter
    assert "**lowrank** with rank 8, method svd." in body and "| accuracy | 0.9 | 0.85 |" in body
    assert yaml.safe_load(text.split("---\n")[1])["base_model"] == "x"


def test_in_memory_module_card_names_a_hub_base_only(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    import dnnkit

    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32)
    model = LlamaForCausalLM(cfg)
    dnnkit.prune(model, ratio=0.5, output=str(tmp_path / "anon"))
    meta, body = _card(tmp_path / "anon")
    assert "base_model" not in meta and meta["tags"] == ["dnnkit", "prune"]
    assert "<in-memory LlamaForCausalLM>" in body
    model.config._name_or_path = "someorg/tiny-llama"
    dnnkit.prune(model, ratio=0.5, output=str(tmp_path / "named"))
    assert _card(tmp_path / "named")[0]["base_model"] == "someorg/tiny-llama"
