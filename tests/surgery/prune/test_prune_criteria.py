"""Criteria inside a layer: Wanda, SparseGPT, N:M patterns, quotas and OWL, on tensors and tiny models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dnnkit.errors import InputError
from dnnkit.metrics import Inputs
from dnnkit.surgery.prune.criteria.apply import CriterionSpec, apply_criterion
from dnnkit.surgery.prune.criteria.owl import owl_zeros
from dnnkit.surgery.prune.criteria.pattern import group_mask, parse_pattern, satisfies
from dnnkit.surgery.prune.criteria.quota import spread
from dnnkit.surgery.prune.criteria.sequential import plan
from dnnkit.surgery.prune.criteria.sparsegpt import (
    inverse_hessian_factor,
    reconstruction_error,
    sparsegpt_levels,
    sparsegpt_prune,
)
from dnnkit.surgery.prune.criteria.stats import gather
from dnnkit.surgery.prune.criteria.view import layer_view
from dnnkit.surgery.prune.criteria.wanda import wanda_prune
from dnnkit.surgery.prune.layers import PrunableLayer
from dnnkit.surgery.prune.masks import keep_mask


def _correlated(rows: int, cols: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, cols, generator=g) @ torch.randn(cols, cols, generator=g) + torch.randn(cols, generator=g)


def test_wanda_matches_a_hand_computation() -> None:
    w = torch.tensor([[1.0, -2.0, 3.0, -4.0], [4.0, 3.0, -2.0, 1.0]])
    col_sq = torch.tensor([16.0, 1.0, 0.25, 0.0625])  # ||X_j|| = 4, 1, 0.5, 0.25
    # scores row 0: 4, 2, 1.5, 1 -> prune columns 3, 2; row 1: 16, 3, 1, 0.25 -> prune columns 3, 2
    pruned, mask = wanda_prune(w, col_sq, 4)
    assert mask.tolist() == [[False, False, True, True], [False, False, True, True]]
    assert torch.equal(pruned, torch.tensor([[1.0, -2.0, 0.0, 0.0], [4.0, 3.0, 0.0, 0.0]]))
    # an odd count: the spare zero goes to the first row (ties by index), rows stay compared alone
    _, mask = wanda_prune(w, col_sq, 3)
    assert mask.sum(1).tolist() == [2, 1]


def test_sparsegpt_beats_magnitude_on_the_same_budget_and_keeps_counts_exact() -> None:
    x = _correlated(512, 64)
    h = x.t() @ x
    w = torch.randn(48, 64, generator=torch.Generator().manual_seed(3))
    w[0, :5] = 0  # existing zeros are never revived
    zeros = 1500
    res = sparsegpt_prune(w, h, zeros, "layer", block_size=16)
    assert int(res.mask.sum()) == zeros and int((res.weight == 0).sum()) == zeros
    assert bool((res.weight[0, :5] == 0).all())
    magnitude = w * keep_mask(w, zeros)
    assert res.error < 0.7 * reconstruction_error(w, magnitude, h)[0]
    direct = float(((res.weight - w) @ x.t()).pow(2).sum())  # ||(W - W_hat) X||^2 from the samples
    assert res.error == pytest.approx(direct, rel=1e-3)


@pytest.mark.parametrize("criterion", ["magnitude", "wanda", "sparsegpt"])
@pytest.mark.parametrize("text", ["2:4", "4:8", "1:4"])
def test_patterns_hold_on_every_group(criterion: str, text: str) -> None:
    pattern = parse_pattern(text)
    x = _correlated(256, 32)
    w = torch.randn(24, 32, generator=torch.Generator().manual_seed(1))
    if criterion == "sparsegpt":
        pruned = sparsegpt_prune(w, x.t() @ x, 0, "l", pattern, block_size=16).weight
    elif criterion == "wanda":
        pruned = wanda_prune(w, (x * x).sum(0), 0, pattern)[0]
    else:
        pruned = w.masked_fill(group_mask(w.abs(), pattern, w == 0), 0.0)
    assert satisfies(pruned, pattern)
    assert int((pruned == 0).sum()) == round(pattern.sparsity * w.numel())


@pytest.mark.parametrize("text", ["2", "a:b", "4:2", "0:4", "2:2", "1:100"])
def test_bad_patterns_are_refused(text: str) -> None:
    with pytest.raises(InputError):
        parse_pattern(text)


def test_spread_is_exact_and_respects_floors_and_caps() -> None:
    sizes, floors = torch.tensor([10, 10, 10, 10]), torch.tensor([0, 7, 0, 0])
    q = spread(12, sizes, floors)
    assert int(q.sum()) == 12 and bool((q >= floors).all()) and bool((q <= sizes).all()) and int(q[1]) == 7
    q = spread(20, sizes, floors, base=torch.tensor([0.4, 0.0, 0.0, 0.6]), caps=torch.tensor([10, 10, 3, 10]))
    assert int(q.sum()) == 20 and int(q[2]) <= 3
    with pytest.raises(ValueError):
        spread(50, sizes, floors)


def test_singular_hessian_names_the_layer() -> None:
    h = torch.full((4, 4), float("nan"))
    with pytest.raises(InputError, match="layer blocks.3.fc"):
        inverse_hessian_factor(h, 0.01, "blocks.3.fc")


def test_views_give_the_layer_output_as_a_matmul() -> None:
    conv = nn.Conv2d(3, 5, 3, padding=1, stride=2)
    x = torch.randn(2, 3, 7, 7)
    view = layer_view("c.weight", conv)
    cols = view.inputs2d(x)
    y = (cols @ view.weight2d().t()).reshape(2, -1, 5).transpose(1, 2)
    assert torch.allclose(y + conv.bias[None, :, None], conv(x).reshape(2, 5, -1), atol=1e-5)
    from transformers.pytorch_utils import Conv1D

    c1 = Conv1D(6, 4)
    v1 = layer_view("c1.weight", c1)
    x1 = torch.randn(3, 4)
    assert torch.allclose(v1.inputs2d(x1) @ v1.weight2d().t() + c1.bias, c1(x1), atol=1e-6)
    assert layer_view("g.weight", nn.Conv2d(4, 4, 3, groups=2)) is None


def _tiny_llama() -> nn.Module:
    import transformers

    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                                   num_key_value_heads=1, intermediate_size=32, max_position_embeddings=32)
    return transformers.LlamaForCausalLM(cfg).eval()


def _tokens(n: int = 8, t: int = 12) -> Inputs:
    ids = torch.randint(0, 64, (n, t), generator=torch.Generator().manual_seed(2))
    return Inputs("tokens", ids, None, torch.ones_like(ids))


def _block_names(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if ".layers." in n and n.endswith(".weight") and p.dim() == 2]


def test_sequential_plan_uses_the_decoder_layers() -> None:
    model, calib = _tiny_llama(), _tokens()
    order = plan(model, "causal-lm", calib.slice(0, 1), _block_names(model) + ["lm_head.weight"])
    assert len(order.blocks) == 3 and not order.before and [v.name for v in order.after] == ["lm_head.weight"]
    assert [v.name.split(".")[-2] for v in order.blocks[0][1]][:3] == ["q_proj", "k_proj", "v_proj"]


def test_each_block_is_calibrated_on_the_pruned_blocks_before_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import dnnkit.surgery.prune.criteria.apply as apply_mod

    model, calib = _tiny_llama(), _tokens()
    names = _block_names(model)
    seen: dict[str, torch.Tensor] = {}
    real = apply_mod.prune_layer

    def spy(view, stats, zeros, spec):  # type: ignore[no-untyped-def]
        seen[view.name] = stats.hessian.clone()
        return real(view, stats, zeros, spec)

    monkeypatch.setattr(apply_mod, "prune_layer", spy)
    zeros = [p.numel() // 2 for n, p in model.named_parameters() if n in names]
    out = apply_criterion(model, "causal-lm", calib, names, zeros, CriterionSpec("sparsegpt"), batch=4)
    assert all(out[n]["zeros"] == z for n, z in zip(names, zeros, strict=True))
    target = "model.layers.2.self_attn.q_proj.weight"  # its inputs depend on blocks 0 and 1, both pruned
    view = layer_view(target, model.get_submodule(target.removesuffix(".weight")))
    with gather([view], hessian=True) as stats, torch.no_grad():
        model(input_ids=calib.x, use_cache=False)
    assert torch.allclose(seen[target], stats[target].hessian, rtol=1e-4, atol=1e-4)


def test_owl_gives_exact_totals_within_the_lambda_band() -> None:
    model, calib = _tiny_llama(), _tokens()
    names = _block_names(model)
    params = dict(model.named_parameters())
    with torch.no_grad():  # an outlier block: a tenth of its attention input weights 20x larger
        for proj in ("q_proj", "k_proj", "v_proj"):
            w = params[f"model.layers.1.self_attn.{proj}.weight"]
            w[torch.rand(w.shape, generator=torch.Generator().manual_seed(5)) < 0.1] *= 20
    layers = [PrunableLayer(n, tuple(params[n].shape)) for n in names]
    zeros, info = owl_zeros(model, "causal-lm", calib, layers, 0.5, batch=4)
    total = sum(layer.n for layer in layers)
    assert sum(zeros) == round(0.5 * total)
    sparsity = [b["sparsity"] for b in info["blocks"]]
    assert len(sparsity) == 3 and max(sparsity) - min(sparsity) <= 2 * 0.08 + 1e-9
    assert min(range(3), key=lambda i: sparsity[i]) == 1  # the block with the outlier keeps the most


def test_shared_statistics_match_each_layer_gathered_alone() -> None:
    """q/k/v (and gate/up) share one InputStats; nothing else may, even when a freed activation's memory is
    reused at the same address by the next layer's input (that once gave gate/up o_proj's Hessian)."""
    model, calib = _tiny_llama(), _tokens(n=16, t=24)  # these sizes reused the address on the 2-core machine
    names = [n for n in _block_names(model) if ".layers.0." in n]
    views = [layer_view(n, model.get_submodule(n.removesuffix(".weight"))) for n in names]
    with gather(views, hessian=True) as together, torch.no_grad():
        for i in range(0, 16, 4):
            model(input_ids=calib.x[i:i + 4], use_cache=False)
    for view in views:
        with gather([view], hessian=True) as alone, torch.no_grad():
            for i in range(0, 16, 4):
                model(input_ids=calib.x[i:i + 4], use_cache=False)
        assert together[view.name].rows == alone[view.name].rows, view.name
        assert torch.allclose(together[view.name].hessian, alone[view.name].hessian, rtol=1e-5, atol=1e-5), view.name
        assert torch.allclose(together[view.name].col_sq, alone[view.name].col_sq, rtol=1e-5, atol=1e-5), view.name
    shared = {id(together[n]) for n in names}
    assert len(shared) == 4  # q/k/v, o, gate/up, down


def test_a_tensor_at_the_same_address_with_other_contents_is_not_shared() -> None:
    """x and x.t() have one address, shape and version but other contents: each layer keeps its own stats."""

    class TwoViews(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(6, 3), nn.Linear(6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(x) + self.b(x.t())

    model = TwoViews()
    x = torch.randn(6, 6, generator=torch.Generator().manual_seed(0))
    views = [layer_view(f"{n}.weight", getattr(model, n)) for n in ("a", "b")]
    with gather(views, hessian=True) as stats, torch.no_grad():
        model(x)
    assert stats["a.weight"] is not stats["b.weight"]
    assert torch.allclose(stats["a.weight"].hessian, x.t() @ x)
    assert torch.allclose(stats["b.weight"].hessian, x @ x.t())


def test_sparsegpt_levels_equal_one_run_per_level() -> None:
    """The rd curves' one-sweep SparseGPT gives each level exactly what its own sparsegpt_prune gives
    (blocks of unequal size, existing zeros, levels from none to all)."""
    torch.manual_seed(3)
    w = torch.randn(24, 40)
    w[torch.rand(24, 40) < 0.1] = 0
    x = torch.randn(120, 40) * torch.rand(40)
    h = x.t() @ x
    zeros = [int((w == 0).sum()), 200, 480, 700, 960]  # from the existing zeros (never revived) to all
    together = sparsegpt_levels(w, h, zeros, "l", block_size=16)
    for z, got in zip(zeros, together, strict=True):
        alone = sparsegpt_prune(w, h, z, "l", block_size=16)
        assert torch.equal(got, alone.weight)
        assert int((got == 0).sum()) == z


def test_masks_are_dropped_unless_asked_for_and_the_weights_do_not_change() -> None:
    """keep_masks=False (no fine-tune: the peak-memory saving) prunes exactly as with the masks held."""
    names = _block_names(_tiny_llama())
    results = []
    for keep in (True, False):
        model, calib = _tiny_llama(), _tokens()
        zeros = [p.numel() // 2 for n, p in model.named_parameters() if n in names]
        out = apply_criterion(model, "causal-lm", calib, names, zeros, CriterionSpec("wanda"), batch=4,
                              keep_masks=keep)
        assert all(("keep" in out[n]) == keep for n in names)
        results.append({n: p.detach().clone() for n, p in model.named_parameters() if n in names})
    assert all(torch.equal(results[0][n], results[1][n]) for n in names)


def test_held_out_metrics_in_batches_match_the_whole_split() -> None:
    """The prune report's perplexity and output MSE, one batch at a time, equal the whole-split figures."""
    from types import SimpleNamespace

    from dnnkit.metrics import perplexity
    from dnnkit.surgery.prune.network import held_out_metrics
    from dnnkit.surgery.prune.run import PruneConfig

    model, test = _tiny_llama(), _tokens()
    loaded = SimpleNamespace(info=SimpleNamespace(task="causal-lm"))
    opts = PruneConfig(ratio=0.5, batch_size=3)
    before, y = held_out_metrics(loaded, model, opts, test, None)
    assert y is not None and y.shape[0] == len(test)
    assert before["perplexity"] == pytest.approx(perplexity(model, test, batch_size=3), rel=1e-6)
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight.mul_(0.5)
        y_after = model(input_ids=test.x, use_cache=False).logits.float()
    after, none = held_out_metrics(loaded, model, opts, test, y)
    assert none is None
    assert after["output_mse"] == pytest.approx(float(((y_after - y) ** 2).mean()), rel=1e-4)
    assert after["perplexity"] > 0 and after["perplexity"] != before["perplexity"]
