"""The from-scratch B-cos control: unit-gain initialisation makes a norm-free random B-cos network trainable."""

from __future__ import annotations

import torch

from dnnkit.nn.bcos import BcosConv2d, BcosLinear
from dnnkit.surgery.bcos.convert import BcosOptions, convert
from dnnkit.surgery.bcos.finetune import finetune
from dnnkit.surgery.bcos.scratch import bcos_layers_in_order, scratch_bcos, unit_gain_init
from dnnkit.train import accuracy
from dnnkit.zoo.nets import digits_cnn


def _layer_rms(model: torch.nn.Module, x: torch.Tensor) -> list[float]:
    outs: list[torch.Tensor] = []
    layers = bcos_layers_in_order(model, x)
    hooks = [m.register_forward_hook(lambda _m, _i, o: outs.append(o)) for m in layers]
    model.eval()
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return [float(o.pow(2).mean().sqrt()) for o in outs]


def test_default_init_collapses_and_unit_gain_fixes_it() -> None:
    torch.manual_seed(0)
    x = torch.rand(64, 1, 8, 8)
    model, *_ = convert(digits_cnn().eval(), (1, 8, 8), BcosOptions(logit_scale=1.0), None)
    before = _layer_rms(model, x)
    assert before[-1] < 1e-6  # PyTorch's default init: the B-cos stack shrinks the logits to nothing
    factors = unit_gain_init(model, x)
    assert len(factors) == 5 and all(f > 1 for f in factors)
    after = _layer_rms(model, x)
    assert all(abs(r - 1) < 1e-3 for r in after)
    assert all(isinstance(m, (BcosConv2d, BcosLinear)) for m in bcos_layers_in_order(model, x))


def test_scratch_bcos_trains_above_chance() -> None:
    from dnnkit.data import load_data

    tr, te = load_data("digits", "train"), load_data("digits", "test")
    torch.manual_seed(0)
    model, _plan = scratch_bcos(digits_cnn().eval(), (1, 8, 8), BcosOptions(), tr.x[:256], te.x[:64])
    assert 0 < model.logit_scale < 1  # auto: calibrated against the random original's small logits
    ft = finetune(model, tr.x[:512], tr.y[:512], epochs=2, lr=1e-2)
    assert ft.loss[-1] < ft.loss[0]
    assert accuracy(model, te.x, te.y) > 0.4  # chance is 0.1; without the init it stays there
