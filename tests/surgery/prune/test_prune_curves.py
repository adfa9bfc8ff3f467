"""Curves with prefix reuse and level batching equal naive full passes; rd end to end on a tiny net."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from dnnkit.metrics import Inputs
from dnnkit.surgery.prune.curves import (
    DistortionMeter,
    forward_y,
    layer_variants,
    measure_curves,
    per_sample_error,
    reduce_errors,
)
from dnnkit.surgery.prune.layers import PrunableLayer
from dnnkit.surgery.prune.rd import rd_allocate


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()) for _ in range(2)])
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 6 * 6, 8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for b in self.blocks:
            h = h + b(h)
        return self.head(h)


def _naive(model: nn.Module, inputs: Inputs, ref: torch.Tensor, name: str, variants: list[torch.Tensor],
           objective: str) -> list[float]:
    param = dict(model.named_parameters())[name]
    orig = param.detach().clone()
    out = []
    with torch.no_grad():
        for v in variants:
            param.copy_(v)
            out.append(reduce_errors(per_sample_error(forward_y(model, "classifier", inputs), ref), objective))
        param.copy_(orig)
    return out


@pytest.mark.parametrize("objective", ["mean", "worst-case"])
@pytest.mark.parametrize("batch_size", [7, 64])
def test_reuse_and_batching_equal_naive(objective: str, batch_size: int) -> None:
    torch.manual_seed(0)
    model = Residual().eval()
    inputs = Inputs("images", torch.randn(20, 1, 6, 6))
    with torch.no_grad():
        ref = forward_y(model, "classifier", inputs)
    names = [n for n, p in model.named_parameters() if n.endswith("weight")]
    meter = DistortionMeter(model, "classifier", inputs, ref, names, objective, batch_size=batch_size)
    assert meter.patched["head.1"]  # the head reuses the cached trunk
    for name in names:
        w = dict(model.named_parameters())[name].detach().clone()
        zs = [1, w.numel() // 3, w.numel() // 2, w.numel() - 1]
        got = meter.measure(name, layer_variants(w, zs))
        want = _naive(model, inputs, ref, name, layer_variants(w, zs), objective)
        assert got == pytest.approx(want, rel=1e-4, abs=1e-7)
    assert meter.measure_model() == pytest.approx(0.0, abs=1e-10)


def test_rd_allocate_exact_and_additivity_reported() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    inputs = Inputs("images", torch.randn(32, 6))
    with torch.no_grad():
        ref = model(inputs.x)
    layers = [PrunableLayer(n, tuple(p.shape)) for n, p in model.named_parameters() if n.endswith("weight")]
    out = rd_allocate(model, "classifier", inputs, ref, layers, 0.6, levels=11, cap=0.99, objective="mean",
                      dp_units=None, batch_size=16, refine=2)
    total = sum(layer.n for layer in layers)
    assert sum(out.zeros) == round(0.6 * total)
    zeros_now = sum(int((p == 0).sum()) for n, p in model.named_parameters() if n.endswith("weight"))
    assert zeros_now == sum(out.zeros)
    assert out.measured > 0 and out.rho is not None
    assert out.rounds and out.rounds[0]["start"] in ("dp", "lamp", "erk")
    assert out.measured <= min(out.rounds[0]["measured"].values()) + 1e-12  # refine never ends worse than its start


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_reuse_equals_naive_on_tiny_transformers(family: str) -> None:
    import transformers

    torch.manual_seed(0)
    if family == "bert":
        cfg = transformers.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=24, max_position_embeddings=16)
        model, task = transformers.BertModel(cfg).eval(), "encoder"
    else:
        cfg = transformers.LlamaConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                       num_key_value_heads=1, intermediate_size=24, max_position_embeddings=16)
        model, task = transformers.LlamaForCausalLM(cfg).eval(), "causal-lm"
    ids = torch.randint(0, 40, (6, 8))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    inputs = Inputs("tokens", ids, None, mask)
    with torch.no_grad():
        ref = forward_y(model, task, inputs)
    from dnnkit.surgery.prune.layers import network_weight_names

    names = network_weight_names(model)
    meter = DistortionMeter(model, task, inputs, ref, names, "mean", batch_size=4)
    assert any(meter.patched[n[: -len(".weight")]] for n in names)
    params = dict(model.named_parameters())
    for name in names[-4:] + names[:2]:
        w = params[name].detach().clone()
        zs = [w.numel() // 4, w.numel() // 2]
        got = meter.measure(name, layer_variants(w, zs))
        orig = w.clone()
        want = []
        with torch.no_grad():
            for v in layer_variants(w, zs):
                params[name].copy_(v)
                want.append(reduce_errors(per_sample_error(forward_y(model, task, inputs), ref), "mean"))
            params[name].copy_(orig)
        assert got == pytest.approx(want, rel=1e-4, abs=1e-8)


def test_reused_curves_count_existing_zeros_exactly() -> None:
    """Curves measured from level 0 (a cache, the `curves=` argument) on weights that already hold exact
    zeros: the DP must not count those layers as dense, or the achieved count overshoots."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    with torch.no_grad():
        model[2].weight[:3] = 0.0  # 48 natural zeros
    inputs = Inputs("images", torch.randn(32, 6))
    with torch.no_grad():
        ref = model(inputs.x)
    names = [n for n, p in model.named_parameters() if n.endswith("weight")]
    meter = DistortionMeter(model, "classifier", inputs, ref, names, "mean", batch_size=32)
    params = dict(model.named_parameters())
    weights = {n: params[n].detach().clone() for n in names}
    options = {n: [d * weights[n].numel() // 10 for d in range(10)] for n in names}  # from 0, ignoring the zeros
    curves = measure_curves(meter, weights, options)
    curves.distortion[1] = [0.0] + [1e6] * 9  # make the DP keep that layer at its lowest option
    layers = [PrunableLayer(n, tuple(params[n].shape), int((params[n] == 0).sum())) for n in names]
    assert layers[1].zeros == 48
    for ratio in (0.2, 0.4):  # above the 48 / 400 existing zeros
        m = copy.deepcopy(model)
        out = rd_allocate(m, "classifier", inputs, ref, layers, ratio, levels=10, cap=0.99, objective="mean",
                          dp_units=None, batch_size=32, curves=curves)
        total = sum(layer.n for layer in layers)
        got = sum(int((p == 0).sum()) for n, p in m.named_parameters() if n in names)
        assert sum(out.zeros) == got == round(ratio * total)


def test_proxy_curves_scale_one_measured_level_by_the_reconstruction_error() -> None:
    """--rd-curves proxy: per layer one level (nearest the anchor) is measured, and it equals the exact
    curve there; every other level is that measurement times E(z) / E(z_anchor)."""
    from dnnkit.surgery.prune.criteria.apply import CriterionSpec
    from dnnkit.surgery.prune.criteria.variants import criterion_variants

    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    inputs = Inputs("images", torch.randn(64, 6))
    with torch.no_grad():
        ref = model(inputs.x)
    names = [n for n, p in model.named_parameters() if n.endswith("weight")]
    params = dict(model.named_parameters())
    weights = {n: params[n].detach().clone() for n in names}
    options = {n: [d * weights[n].numel() // 10 for d in range(10)] for n in names}
    exact_meter = DistortionMeter(model, "classifier", inputs, ref, names, "mean", batch_size=64)
    exact = measure_curves(exact_meter, weights, options)
    variants, proxy = criterion_variants(model, "classifier", inputs, names, CriterionSpec("magnitude"), 64, True)
    meter = DistortionMeter(model, "classifier", inputs, ref, names, "mean", batch_size=64)
    curves = measure_curves(meter, weights, options, variants=variants, proxy=proxy, anchor=0.5)
    assert curves.source == "proxy" and meter.stats.measured_levels == len(names)
    for k, name in enumerate(names):
        anchor = options[name].index(weights[name].numel() // 2)
        assert curves.distortion[k][anchor] == pytest.approx(exact.distortion[k][anchor], rel=1e-5)
        errors = [proxy(name, weights[name], v) for v in variants(name, weights[name], options[name][1:])]
        scale = exact.distortion[k][anchor] / errors[anchor - 1]
        assert curves.distortion[k][1:] == pytest.approx([scale * e for e in errors], rel=1e-5)
        assert curves.distortion[k][0] == 0.0
