"""LinearScope on timm modules: norm subclasses with the standard forward are frozen, others are refused with
the reason; timm's softmax Attention is frozen (probabilities from x0, values live); functional culprits named."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dnnkit.errors import InputError
from dnnkit.probes.gating.scope import LinearScope
from dnnkit.probes.gating.units import classify
from dnnkit.probes.linear_interpret.checks import linearity_check, local_error
from dnnkit.probes.linear_interpret.replay import Interpreter

timm = pytest.importorskip("timm")


class SameForward(nn.LayerNorm):
    """A subclass that only adds an attribute: the base forward."""

    tag = "mine"


class OwnForward(nn.LayerNorm):
    """Its own forward, computing what nn.LayerNorm computes (like timm's LayerNorm)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class Doubled(nn.LayerNorm):
    """Its own forward, computing something else."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * super().forward(x)


def test_norm_subclasses_with_the_standard_forward_are_frozen() -> None:
    from timm.layers import LayerNorm, LayerNorm2d

    assert classify(SameForward(6)) == classify(OwnForward(6)) == classify(LayerNorm(6)) == "norm"
    assert classify(Doubled(6)) == classify(LayerNorm2d(6)) == "unsupported"
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 6), LayerNorm(6), nn.GELU(), nn.Linear(6, 6), OwnForward(6),
                        nn.Linear(6, 3)).eval()
    x0 = torch.randn(4, 5)
    with Interpreter(net) as it:
        assert it.scope.units["LayerNorm"] == 1 and it.scope.units["OwnForward"] == 1
        f, c = it.bias(x0)
        _, _, rows = it.rows(x0, torch.arange(3).repeat(4, 1))
        assert linearity_check(it, x0) < 1e-4
    assert torch.allclose(f, net(x0), atol=1e-6)
    assert torch.allclose((rows * x0[:, None]).sum(-1) + c, f, atol=1e-5)


def test_norm_subclass_with_another_forward_is_refused_by_name_and_reason() -> None:
    from timm.layers import LayerNorm2d

    with pytest.raises(InputError, match=r"1 \(.*Doubled\).*forward differs from nn.LayerNorm.forward"):
        LinearScope(nn.Sequential(nn.Linear(3, 4), Doubled(4)))
    with pytest.raises(InputError, match=r"1 \(timm.layers.norm.LayerNorm2d\).*forward differs"):
        LinearScope(nn.Sequential(nn.Conv2d(1, 4, 1), LayerNorm2d(4)))


def tiny_vit(fused: bool = True) -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    net = VisionTransformer(img_size=16, patch_size=8, in_chans=1, embed_dim=16, depth=2, num_heads=2,
                            num_classes=3).eval()
    for m in net.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = fused
    return net


@pytest.mark.parametrize("fused", [True, False])
def test_timm_vit_attention_is_frozen_exactly_at_x0(fused: bool) -> None:
    net = tiny_vit(fused)
    x0 = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        plain = net(x0)
    with Interpreter(net) as it:
        assert {"attention", "norm", "smooth"} <= it.scope.kinds and it.scope.units["Attention"] == 2
        assert "attention" in it.scope.rules()
        f, c, rows = it.rows(x0, torch.arange(3).repeat(2, 1))
        assert linearity_check(it, x0) < 1e-4
        cols = it.columns(x0, [0, 100, 255])
        err = float(local_error(it, x0).max())
    assert torch.allclose(f, plain, atol=1e-6)
    flat = rows.flatten(2)
    ident = ((flat * x0.flatten(1)[:, None]).sum(-1) + c - f).abs().max() / f.abs().max()
    assert ident < 1e-5
    assert torch.allclose(cols, flat[:, :, [0, 100, 255]].transpose(1, 2), atol=1e-5)  # columns = rows^T
    assert 0 < err < 0.5


def test_unsupported_attention_variants_are_named() -> None:
    from timm.models.vision_transformer import VisionTransformer

    net = VisionTransformer(img_size=16, patch_size=8, in_chans=1, embed_dim=16, depth=1, num_heads=2,
                            num_classes=3, qk_norm=True).eval()
    with pytest.raises(InputError, match=r"blocks.0.attn \(timm.layers.attention.Attention\).*qk_norm"):
        LinearScope(net)

    class Masked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = tiny_vit().blocks[0].attn

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.attn(x, attn_mask=torch.ones(x.shape[1], x.shape[1], dtype=torch.bool))

    with Interpreter(Masked().eval()) as it, pytest.raises(InputError, match="attn: attention with a mask"):
        it.bias(torch.randn(1, 5, 16))


class SoftAttention(nn.Module):
    """Self-attention written with a functional softmax: the scope cannot see it."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.proj(F.softmax(q @ k.transpose(-2, -1), dim=-1) @ v)


def test_functional_attention_is_named_as_the_culprit() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), SoftAttention(8), nn.Flatten(), nn.Linear(40, 2)).eval()
    with Interpreter(net) as it, pytest.raises(
            InputError, match=r"first broken at 1.proj \(Linear\), whose input is already non-linear.*"
                              r"inside the forward of 1 \(SoftAttention\)"):
        linearity_check(it, torch.randn(2, 5, 4))
