"""`inspect` reads layers / width / heads of any HF config, including GPT-2's `n_layer` / `n_embd` names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dnnkit.cli.app import app
from dnnkit.models.arch import hf_config_value


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("gpt2") / "tiny-gpt2"
    cfg = GPT2Config(vocab_size=100, n_positions=64, n_embd=32, n_layer=2, n_head=2)
    GPT2LMHeadModel(cfg).save_pretrained(folder)
    return folder


def test_inspect_gpt2_folder_gives_layers_and_width(gpt2_folder: Path) -> None:
    res = CliRunner().invoke(app, ["inspect", str(gpt2_folder), "--json"])
    assert res.exit_code == 0, res.output
    arch = json.loads(res.stdout)["architecture"]
    assert arch["model_type"] == "gpt2"
    assert arch["num_hidden_layers"] == 2
    assert arch["hidden_size"] == 32
    assert arch["num_attention_heads"] == 2
    assert arch["max_position_embeddings"] == 64


@pytest.mark.parametrize("model_type,kwargs", [
    ("gpt2", {"n_layer": 3, "n_embd": 24, "n_head": 4, "n_positions": 40}),
    ("t5", {"num_layers": 3, "d_model": 24, "num_heads": 4}),
    ("distilbert", {"n_layers": 3, "dim": 24, "n_heads": 4, "max_position_embeddings": 40}),
    ("bart", {"encoder_layers": 3, "decoder_layers": 3, "d_model": 24, "encoder_attention_heads": 4,
              "decoder_attention_heads": 4, "max_position_embeddings": 40}),  # through transformers' attribute_map
    ("llama", {"num_hidden_layers": 3, "hidden_size": 24, "num_attention_heads": 4, "max_position_embeddings": 40}),
])
def test_config_aliases_agree_with_transformers(model_type: str, kwargs: dict) -> None:
    from transformers import AutoConfig

    cfg = AutoConfig.for_model(model_type, **kwargs)
    as_json = json.loads(cfg.to_json_string())
    for key in ("num_hidden_layers", "hidden_size", "num_attention_heads", "max_position_embeddings"):
        want = getattr(cfg, key, None)
        if want is not None:
            assert hf_config_value(as_json, key) == want, key


def test_nested_text_config_and_missing_keys() -> None:
    cfg = {"model_type": "no-such-model-type", "text_config": {"n_layer": 4, "n_embd": 8}}
    assert hf_config_value(cfg, "num_hidden_layers") == 4
    assert hf_config_value(cfg, "hidden_size") == 8
    assert hf_config_value(cfg, "num_attention_heads") is None
