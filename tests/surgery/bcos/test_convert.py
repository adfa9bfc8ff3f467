"""Conversion: function preserved at B = 1 (equivalence), GAP reorder, completeness at B = 2, refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dnnkit.errors import InputError
from dnnkit.nn.bcos import BcosConv2d, UncentredBatchNorm2d
from dnnkit.probes.explain.dynamic import explain_dynamic
from dnnkit.surgery.bcos.convert import BcosOptions, apply_conversion, convert, normalise, plan_conversion


class TinyResNet(nn.Module):
    """Stem conv with bias, BN, ReLU, max-pool, a residual pair, GAP, dropout, linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.c1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.gelu = nn.GELU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.act(self.bn(self.stem(x))))
        h = self.gelu(self.bn1(self.c1(h)) + h)
        return self.fc(self.drop(self.flat(self.gap(h))))


def trained_like(model: nn.Module) -> nn.Module:
    """Move BN statistics away from their defaults so the check means something."""
    torch.manual_seed(0)
    model.train()
    for _ in range(3):
        model(torch.rand(16, 2, 8, 8))
    return model.eval()


@pytest.mark.parametrize("encoding", ["exact", "paper"])
def test_equivalence_and_gap_reorder(encoding: str) -> None:
    model = trained_like(TinyResNet())
    x = torch.rand(64, 2, 8, 8)
    opts = BcosOptions(encoding=encoding, mean=[0.3, 0.5], std=[0.2, 0.4])
    converted, plan, changes, delta = convert(model, (2, 8, 8), opts, x)
    assert delta is not None and delta < 1e-5
    assert plan.stem == "stem" and plan.gap_pool == "gap" and plan.classifier == "fc"
    assert isinstance(converted.net.stem, BcosConv2d) and converted.net.stem.in_channels == 4
    assert isinstance(converted.net.bn, UncentredBatchNorm2d)
    assert isinstance(converted.net.pool, nn.AvgPool2d)
    assert isinstance(converted.net.fc, nn.Identity)
    assert not any(n.endswith("bias") for n in converted.state_dict())
    assert converted.logit_bias == pytest.approx(-torch.log(torch.tensor(4.0)).item())
    assert {c.name for c in changes} >= {"stem", "bn", "pool", "c1", "bn1", "gelu", "fc"}
    # the original is untouched
    assert isinstance(model.stem, nn.Conv2d) and model.stem.bias is not None


def test_exact_fold_of_first_layer_is_the_same_function() -> None:
    torch.manual_seed(4)
    model = trained_like(TinyResNet()).double()
    plan = plan_conversion(model, (2, 8, 8))
    opts = BcosOptions(mean=[0.3, 0.5], std=[0.2, 0.4], parity=True)
    parity, _ = apply_conversion(model, plan, opts)
    x = torch.rand(8, 2, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(parity(x), model(normalise(x, opts.mean, opts.std)), rtol=1e-10, atol=1e-10)


def test_exact_encoding_is_complete_and_paper_encoding_is_not() -> None:
    model = trained_like(TinyResNet()).double()
    x = torch.rand(64, 2, 8, 8, dtype=torch.float64)
    errs = {}
    for enc in ("exact", "paper"):
        converted, *_ = convert(model, (2, 8, 8), BcosOptions(encoding=enc, mean=[0.3, 0.5], std=[0.2, 0.4]), x)
        errs[enc] = float(explain_dynamic(converted, x[:6]).completeness_error.max())
    assert errs["exact"] < 1e-10
    assert errs["paper"] > 1e-3


def test_unsupported_module_is_named_before_any_change() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Sigmoid(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(InputError, match=r"cannot B-cosify 1 \(Sigmoid\)"):
        convert(model, (1, 8, 8), BcosOptions(), torch.rand(4, 1, 8, 8))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_first_layer_must_see_the_image() -> None:
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(InputError, match="first layer must be a Conv2d"):
        convert(mlp, (1, 8, 8), BcosOptions(), None)


def test_b_below_one_and_bad_std() -> None:
    model = TinyResNet().eval()
    with pytest.raises(InputError, match="--b must be >= 1"):
        convert(model, (2, 8, 8), BcosOptions(b=0.5), None)
    with pytest.raises(InputError, match="--mean/--std need 2 values"):
        convert(model, (2, 8, 8), BcosOptions(mean=[0.1, 0.2, 0.3], std=[1, 1, 1]), None)


def test_timm_resnet_and_vit_structural_conversion() -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    cases = [
        (timm.create_model("resnet18", num_classes=7, in_chans=1), (1, 32, 32), "global_pool.pool"),
        (timm.create_model("vit_tiny_patch16_224", img_size=16, patch_size=8, depth=2, embed_dim=48, num_heads=3,
                           num_classes=5), (3, 16, 16), None),
    ]
    for model, shape, pool in cases:
        model = model.eval().double()
        x = torch.rand(4, *shape, dtype=torch.float64)
        cfg = model.pretrained_cfg
        mean = list(cfg["mean"])[: shape[0]]
        std = list(cfg["std"])[: shape[0]]
        converted, plan, _changes, delta = convert(model, shape, BcosOptions(mean=mean, std=std), x)
        assert delta < 1e-9, delta
        assert plan.gap_pool == pool
        exp = explain_dynamic(converted, x[:2])
        assert float(exp.completeness_error.max()) < 1e-8
        if pool is None:  # ViT: position embeddings and class token carry part of the logit
            assert float(exp.constants.abs().max()) > 0
