"""Fixtures shared by the model tests: tiny random Llama folders, as transformers (or older versions) save them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TINY_LLAMA = {"vocab_size": 64, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
              "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 32}


def _build_tiny_llama(folder: Path, *, max_shard_size: str | None = None, bin_shards: int = 0,
                      drop_architectures: bool = False, seed: int = 0, **config: Any) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**{**TINY_LLAMA, **config})).eval()
    if bin_shards:
        # transformers 5 saves safetensors only: write `.bin` shards and their index as transformers 4 did
        folder.mkdir(parents=True)
        model.config.architectures = [type(model).__name__]  # as save_pretrained records it
        model.config.save_pretrained(folder)
        state = {name: t.detach().clone() for name, t in model.state_dict().items()}
        names, weight_map = list(state), {}
        for i in range(bin_shards):
            filename = f"pytorch_model-{i + 1:05d}-of-{bin_shards:05d}.bin"
            part = names[i * len(names) // bin_shards:(i + 1) * len(names) // bin_shards]
            torch.save({name: state[name] for name in part}, folder / filename)
            weight_map.update(dict.fromkeys(part, filename))
        total = sum(t.numel() * t.element_size() for t in state.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2))
    else:
        model.save_pretrained(folder, **({"max_shard_size": max_shard_size} if max_shard_size else {}))
    if drop_architectures:
        config_file = folder / "config.json"
        saved = json.loads(config_file.read_text())
        del saved["architectures"]
        config_file.write_text(json.dumps(saved, indent=2))
    return folder


@pytest.fixture(scope="session")
def make_tiny_llama() -> Callable[..., Path]:
    """`make_tiny_llama(folder, max_shard_size=None, bin_shards=0, drop_architectures=False, seed=0, **config)`:
    a `LlamaForCausalLM` (TINY_LLAMA, `config` overriding) saved into `folder` by `save_pretrained`, or as
    `bin_shards` `pytorch_model-0000i-of-0000N.bin` files plus `pytorch_model.bin.index.json`."""
    return _build_tiny_llama
