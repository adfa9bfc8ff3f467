"""Fine-tuning pieces (loss targets, B ramp, shifts) and recipe replay edge cases."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dnnkit.errors import InputError
from dnnkit.models.recipe import replay
from dnnkit.nn.bcos import current_b
from dnnkit.surgery.bcos.convert import BcosOptions, convert
from dnnkit.surgery.bcos.finetune import b_at, bce_targets, finetune, random_shift
from dnnkit.surgery.bcos.pipeline import BcosifyConfig, BcosifyResult


def small_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 3)).eval()


def test_bce_targets_and_b_ramp() -> None:
    t = bce_targets(torch.tensor([2, 0]), 4, torch.float32)
    assert torch.equal(t, torch.tensor([[0.25, 0.25, 1, 0.25], [1, 0.25, 0.25, 0.25]]))
    assert [b_at(e, 2.0, 2) for e in (0, 1, 2, 5)] == [1.0, 1.5, 2.0, 2.0]
    assert b_at(0, 2.5, 0) == 2.5


def test_random_shift_moves_by_at_most_one_pixel() -> None:
    x = torch.zeros(20, 1, 5, 5)
    x[:, :, 2, 2] = 1
    out = random_shift(x, 1, torch.Generator().manual_seed(0))
    pos = out.flatten(1).argmax(1)
    rows, cols = pos // 5, pos % 5
    assert ((rows - 2).abs() <= 1).all() and ((cols - 2).abs() <= 1).all() and out.sum() == 20


def test_finetune_with_b_warmup_ends_at_b() -> None:
    torch.manual_seed(0)
    model, *_ = convert(small_cnn(), (1, 6, 6), BcosOptions(b=2.0), None)
    x, y = torch.rand(32, 1, 6, 6), torch.randint(0, 3, (32,))
    res = finetune(model, x, y, epochs=3, b=2.0, b_warmup=2, batch_size=16)
    assert res.b == [1.0, 1.5, 2.0] and current_b(model) == 2.0 and len(res.loss) == 3


def test_replay_rebuilds_and_refuses_malformed_steps() -> None:
    base = small_cnn()
    opts = BcosOptions()
    converted, plan, changes, _ = convert(base, (1, 6, 6), opts, torch.rand(4, 1, 6, 6))
    step = BcosifyResult(converted, plan, changes, 0.0, "test").step(BcosifyConfig(), opts)
    rebuilt = replay(small_cnn(), [step])
    rebuilt.load_state_dict(converted.state_dict(), strict=True)
    x = torch.rand(3, 1, 6, 6)
    torch.testing.assert_close(rebuilt.eval()(x), converted.eval()(x))
    bad = {**step, "params": {k: v for k, v in step["params"].items() if k != "stem"}}
    with pytest.raises(InputError, match="malformed"):
        replay(small_cnn(), [bad])
    wrong = {**step, "layers": {**step["layers"], "extra": {"from": "Conv2d", "to": "BcosConv2d"}}}
    with pytest.raises(InputError, match="does not match"):
        replay(small_cnn(), [wrong])
