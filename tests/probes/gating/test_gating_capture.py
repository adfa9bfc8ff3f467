"""GateCapture: bits are 1[z > 0] of each gate's input, in call order, in-place units included."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dnnkit.errors import InputError
from dnnkit.probes.gating.capture import GateCapture
from dnnkit.probes.gating.units import find_gates


class Reused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.head = nn.Linear(4, 5), nn.Linear(5, 3), nn.Linear(3, 2)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.relu(self.fc2(self.relu(self.fc1(x)))))


def test_bits_follow_call_order_and_inplace() -> None:
    torch.manual_seed(0)
    net = Reused().eval()
    x = torch.randn(7, 4)
    gates = find_gates(net)
    assert [g.name for g in gates] == ["relu"]
    with GateCapture(gates) as cap, torch.no_grad():
        _, bits = cap.run(net, x)
    z1 = net.fc1(x)
    z2 = net.fc2(torch.relu(z1))
    assert torch.equal(bits, torch.cat([z1 > 0, z2 > 0], 1))
    assert cap.layout is None or cap.layout.names == ["relu", "relu"]


def test_pooled_codes_sum_post_relu_maps() -> None:
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(48, 2)).eval()
    x = torch.randn(2, 1, 4, 4)
    with GateCapture(find_gates(net), "pooled") as cap, torch.no_grad():
        _, codes = cap.run(net, x)
        want = torch.relu(net[0](x)).sum((2, 3))
    assert torch.allclose(codes, want)


def test_find_gates_patterns() -> None:
    net = nn.Sequential(nn.Linear(3, 3), nn.GELU(), nn.Linear(3, 3), nn.ReLU())
    assert [g.name for g in find_gates(net)] == ["3"]
    gates = find_gates(net, ["1", "3"])
    assert [(g.name, g.kind) for g in gates] == [("1", "smooth"), ("3", "relu")]
    with pytest.raises(InputError, match="matches no"):
        find_gates(net, ["nothing*"])
    with pytest.raises(InputError, match="no ReLU-family module"):
        find_gates(nn.Sequential(nn.Linear(3, 3), nn.GELU()))
