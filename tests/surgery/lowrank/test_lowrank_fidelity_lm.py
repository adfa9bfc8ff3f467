"""Causal-LM fidelity: one forward of each model per batch, and the same perplexities as `metrics.perplexity`."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from dnnkit.metrics import Inputs, perplexity
from dnnkit.surgery.lowrank.fidelity import fidelity, make_reference


def tiny_llama(seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval()


def counting(model: torch.nn.Module) -> list[int]:
    calls = [0]
    model.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_lm_fidelity_forwards_each_model_once_per_batch_and_matches_perplexity() -> None:
    dense = tiny_llama(0)
    other = copy.deepcopy(dense)
    with torch.no_grad():
        other.model.layers[0].mlp.down_proj.weight.mul_(0.5)
    g = torch.Generator().manual_seed(1)
    inputs = Inputs("tokens", torch.randint(0, 64, (20, 16), generator=g))
    want_dense, want_other = perplexity(dense, inputs), perplexity(other, inputs)
    ref = make_reference(dense, "causal-lm", inputs)
    dense_calls, other_calls = counting(dense), counting(other)
    got = fidelity(other, ref)
    assert dense_calls[0] == other_calls[0] == 3  # 20 blocks in batches of 8
    assert got["perplexity"] == pytest.approx(want_other, rel=1e-6)
    assert ref.metrics["perplexity"] == pytest.approx(want_dense, rel=1e-6)
    assert got["relative_output_mse"] > 0
    assert fidelity(dense, ref)["relative_output_mse"] == 0.0
