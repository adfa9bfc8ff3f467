"""The LM-head shortcut (spec 4.4): curves from final hidden states and W_h^T W_h equal full-logit curves."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dnnkit.metrics import Inputs
from dnnkit.surgery.prune.curves import (
    DistortionMeter,
    forward_y,
    layer_variants,
    per_sample_error,
    reduce_errors,
    reference_outputs,
)
from dnnkit.surgery.prune.layers import PrunableLayer
from dnnkit.surgery.prune.lm_head import head_shortcut
from dnnkit.surgery.prune.rd import rd_allocate


def _tiny_llama() -> nn.Module:
    import transformers

    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                   num_key_value_heads=1, intermediate_size=24, max_position_embeddings=16)
    return transformers.LlamaForCausalLM(cfg).eval()


def _inputs() -> Inputs:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 50, (6, 8), generator=g)
    return Inputs("tokens", ids, None, torch.ones_like(ids))


def _block_weights(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if n.endswith(".weight") and p.dim() == 2
            and ".layers." in n]


@pytest.mark.parametrize("objective", ["mean", "worst-case"])
def test_shortcut_curves_equal_full_logit_curves(objective: str) -> None:
    model, inputs = _tiny_llama(), _inputs()
    names = _block_weights(model)
    head = head_shortcut(model, "causal-lm", [n.removesuffix(".weight") for n in names], inputs)
    assert head is not None and head.name == "lm_head" and head.gram.shape == (16, 16) and head.vocab == 50
    ref_logits = reference_outputs(model, "causal-lm", inputs, 4)
    ref_hidden = reference_outputs(model, "causal-lm", inputs, 4, head)
    assert ref_logits.shape[-1] == 50 and ref_hidden.shape[-1] == 16
    full = DistortionMeter(model, "causal-lm", inputs, ref_logits, names, objective, batch_size=4)
    short = DistortionMeter(model, "causal-lm", inputs, ref_hidden, names, objective, batch_size=4, head=head)
    assert short.per_row_floats < full.per_row_floats  # no V-wide rows, so more levels fit in one batch
    params = dict(model.named_parameters())
    for name in names[:2] + names[-2:]:
        w = params[name].detach().clone()
        zs = [w.numel() // 4, w.numel() // 2, w.numel() - 1]
        got = short.measure(name, layer_variants(w, zs))
        want = full.measure(name, layer_variants(w, zs))
        assert got == pytest.approx(want, rel=1e-4)
        with torch.no_grad():  # and against plain full passes
            params[name].copy_(layer_variants(w, zs[-1:])[0])
            naive = reduce_errors(per_sample_error(forward_y(model, "causal-lm", inputs), ref_logits), objective)
            params[name].copy_(w)
        assert got[-1] == pytest.approx(naive, rel=1e-4)
    assert short.measure_model() == pytest.approx(0.0, abs=1e-10)
    assert "forward" not in vars(model.lm_head)  # the head is restored


def test_no_shortcut_when_head_is_pruned_or_not_a_causal_lm() -> None:
    model, inputs = _tiny_llama(), _inputs()
    assert head_shortcut(model, "causal-lm", ["lm_head", "model.layers.0.mlp.up_proj"], inputs) is None
    assert head_shortcut(model, "classifier", [], inputs) is None


def test_no_shortcut_when_logits_are_not_the_head_output() -> None:
    class Capped(nn.Module):  # soft-capped logits (Gemma-2 style): the quadratic form would be wrong
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def get_output_embeddings(self) -> nn.Module:
            return self.inner.lm_head

        def forward(self, **kw: object) -> object:
            out = self.inner(**kw)
            out.logits = 30 * torch.tanh(out.logits / 30)
            return out

    model, inputs = Capped(_tiny_llama()), _inputs()
    assert head_shortcut(model, "causal-lm", [], inputs) is None


def test_rd_allocate_with_shortcut_matches_full_logits() -> None:
    import copy

    base, inputs = _tiny_llama(), _inputs()
    names = _block_weights(base)
    layers = [PrunableLayer(n, tuple(p.shape)) for n, p in base.named_parameters() if n in names]
    outs = []
    for use_head in (False, True):
        model = copy.deepcopy(base)
        head = head_shortcut(model, "causal-lm", [n.removesuffix(".weight") for n in names], inputs) if use_head \
            else None
        ref = reference_outputs(model, "causal-lm", inputs, 4, head)
        outs.append(rd_allocate(model, "causal-lm", inputs, ref, layers, 0.5, levels=6, cap=0.99, objective="mean",
                                dp_units=None, batch_size=4, head=head))
    full, short = outs
    assert short.zeros == full.zeros
    assert short.measured == pytest.approx(full.measured, rel=1e-4)
    assert short.predicted == pytest.approx(full.predicted, rel=1e-4)


def test_meter_refuses_a_head_of_another_model() -> None:
    import copy

    model, inputs = _tiny_llama(), _inputs()
    other = copy.deepcopy(model)
    head = head_shortcut(other, "causal-lm", [], inputs)
    assert head is not None
    ref = reference_outputs(other, "causal-lm", inputs, 4, head)
    with pytest.raises(ValueError, match="another model"):
        DistortionMeter(model, "causal-lm", inputs, ref, _block_weights(model), "mean", batch_size=4, head=head)
