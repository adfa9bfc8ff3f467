"""B-cos layers: B = 1 parity with torch layers, the window norm, the explanation-mode identity."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from dnnkit.nn.bcos import (
    BcosConv2d,
    BcosLinear,
    BiasFreeLayerNorm,
    GatedActivation,
    UncentredBatchNorm2d,
    explanation_mode,
)


def test_bcos_conv_at_b1_with_bias_is_conv2d() -> None:
    torch.manual_seed(0)
    ref = nn.Conv2d(4, 6, 3, padding=1, stride=2, groups=2)
    conv = BcosConv2d(4, 6, 3, padding=1, stride=2, groups=2, b=1.0)
    conv.load_state_dict(ref.state_dict())
    x = torch.randn(2, 4, 9, 9)
    torch.testing.assert_close(conv(x), ref(x))


@pytest.mark.parametrize("groups,dilation", [(1, 1), (2, 1), (1, 2)])
def test_bcos_conv_scale_matches_unfolded_windows(groups: int, dilation: int) -> None:
    torch.manual_seed(1)
    conv = BcosConv2d(4, 4, 3, padding=2, dilation=dilation, groups=groups, bias=False, b=2.0)
    x = torch.randn(2, 4, 7, 7)
    out = conv(x)
    lin = F.conv2d(x, conv.weight, None, 1, 2, dilation, groups)
    cols = F.unfold(x, 3, dilation=dilation, padding=2)  # N x (C*9) x L
    per_group = cols.view(2, groups, -1, cols.shape[-1]).pow(2).sum(2)  # N x G x L
    norm = (per_group + 1e-6).sqrt().repeat_interleave(4 // groups, dim=1).view_as(lin)
    torch.testing.assert_close(out, lin * lin.abs() / norm)


@pytest.mark.parametrize("b", [1.0, 1.5, 2.0, 2.5])
def test_bcos_linear_formula(b: float) -> None:
    torch.manual_seed(2)
    layer = BcosLinear(5, 3, b=b)
    x = torch.randn(4, 5)
    lin = x @ layer.weight.t()
    ratio = lin.abs() / (x.norm(dim=-1, keepdim=True) + 1e-12)
    scale = ratio if b == 2 else (ratio + 1e-6) ** (b - 1)
    torch.testing.assert_close(layer(x), lin * scale)


def test_explanation_mode_gives_exact_linear_map_and_is_restored() -> None:
    torch.manual_seed(3)
    net = nn.Sequential(BcosConv2d(2, 4, 3, padding=1, bias=False), UncentredBatchNorm2d(4), nn.ReLU(),
                        BcosConv2d(4, 4, 3, padding=1, groups=2, bias=False), GatedActivation("gelu"),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), BiasFreeLayerNorm((4,)), BcosLinear(4, 3))
    net.train()
    net(torch.rand(8, 2, 6, 6))  # running_var moves away from 1
    net = net.double().eval()
    x = torch.rand(3, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    with explanation_mode(net):
        y = net(x)[:, 1]
        (w,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close((w * x).sum((1, 2, 3)), y.detach(), rtol=1e-10, atol=1e-12)
    assert not net.training and not any(getattr(m, "explain_mode", False) for m in net.modules())
    with torch.no_grad():
        plain = net(x)[:, 1]
    torch.testing.assert_close(plain, y.detach())  # the forward value is the same in both modes


def test_training_in_explanation_mode_is_refused() -> None:
    layer = BcosLinear(3, 2)
    with explanation_mode(layer):
        layer.train()
        with pytest.raises(RuntimeError, match="explanation mode"):
            layer(torch.randn(1, 3))
