"""LinearScope: the frozen network reproduces f(x0) exactly, is affine in the copies, rows = Jacobian."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dnnkit.errors import InputError
from dnnkit.probes.gating.scope import LinearScope
from dnnkit.probes.linear_interpret.checks import jacobian_rows, linearity_check
from dnnkit.probes.linear_interpret.replay import Interpreter


class Block(nn.Module):
    """Residual block with one in-place ReLU module called twice."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(self.relu(x))) + x)


def piecewise_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.LeakyReLU(0.1), Block(4), nn.MaxPool2d(2),
                        nn.Conv2d(4, 4, 3, padding=1), nn.PReLU(4), nn.AdaptiveMaxPool2d(2), nn.Flatten(),
                        nn.Linear(16, 8), nn.ReLU6(), nn.Linear(8, 3))
    bn = net[2].bn
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


def smooth_net() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.LayerNorm(12), nn.GELU(), nn.Linear(12, 12),
                         nn.SiLU(), nn.Linear(12, 3)).eval()


def affine_map(it: Interpreter, x0: torch.Tensor, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    outs = torch.arange(n_out).repeat(x0.shape[0], 1)
    f, c, rows = it.rows(x0, outs)
    return f, c, rows.flatten(2)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_identity_and_jacobian_piecewise(dtype: torch.dtype, tol: float) -> None:
    net = piecewise_net().to(dtype)
    x0 = torch.randn(5, 1, 8, 8, dtype=dtype)
    with torch.no_grad():
        f_plain = net(x0.clone())
    with Interpreter(net) as it:
        assert it.scope.piecewise_linear
        f, c, rows = affine_map(it, x0, 3)
        recon = (rows * x0.flatten(1)[:, None]).sum(-1) + c
        assert torch.equal(f, f_plain)  # the x0 part is untouched
        assert ((recon - f).abs().max() / f.abs().max()) <= tol
        cols = it.columns(x0, [0, 9, 63])
        assert torch.allclose(cols, rows[:, :, [0, 9, 63]].transpose(1, 2), atol=tol * 10)
        assert linearity_check(it, x0) < tol * 10
    for i in range(2):
        jac = jacobian_rows(net, x0[i]).reshape(3, -1)
        assert torch.allclose(jac, rows[i], atol=tol * 10, rtol=0)
    # the model is restored: no hooks left, parameters trainable again
    assert all(p.requires_grad for p in net.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())


def test_bias_free_model_has_no_bias_path() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 10, bias=False), nn.ReLU(), nn.Linear(10, 3, bias=False)).eval()
    x0 = torch.randn(4, 1, 4, 4)
    with Interpreter(net) as it:
        f, c = it.bias(x0)
    assert c.abs().max() == 0
    assert f.abs().max() > 0


@pytest.mark.parametrize("smooth", ["secant", "tangent"])
def test_smooth_units_exact_at_x0_only(smooth: str) -> None:
    net = smooth_net()
    x0 = torch.randn(3, 1, 4, 4)
    with Interpreter(net, smooth=smooth) as it:
        assert not it.scope.piecewise_linear
        f, c, rows = affine_map(it, x0, 3)
        recon = (rows * x0.flatten(1)[:, None]).sum(-1) + c
        assert ((recon - f).abs().max() / f.abs().max()) <= 1e-5
        linearity_check(it, x0)
        x = x0 + 0.3 * torch.randn_like(x0)
        _, y = it.apply(x0, x[:, None])
        with it.scope.suspended(), torch.no_grad():
            fx = net(x)
    assert (y[:, 0] - fx).abs().max() > 1e-4  # away from x0 the replay is an approximation
    assert rows.abs().max() > 0


def test_tangent_rule_gives_jacobian_without_norm() -> None:
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 2)).eval()
    x0 = torch.randn(2, 6)
    with Interpreter(net, smooth="tangent") as it:
        _, _, rows = affine_map(it, x0, 2)
    with Interpreter(net, smooth="secant") as it:
        _, _, rows_secant = affine_map(it, x0, 2)
    jac = jacobian_rows(net, x0[0])
    assert torch.allclose(jac, rows[0], atol=1e-5)
    assert not torch.allclose(jac, rows_secant[0], atol=1e-3)


class FunctionalRelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.fc2 = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


def test_functional_nonlinearity_fails_linearity_check() -> None:
    torch.manual_seed(0)
    net = FunctionalRelu().eval()
    with Interpreter(net) as it, pytest.raises(InputError, match="not linear.*fc2"):
        linearity_check(it, torch.randn(3, 6))


def test_unfreezable_units_and_train_mode_are_refused() -> None:
    with pytest.raises(InputError, match="Softmax"):
        LinearScope(nn.Sequential(nn.Linear(3, 3), nn.Softmax(-1)))
    with pytest.raises(InputError, match="training mode"):
        LinearScope(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)).train())


def test_affine_model() -> None:
    net = nn.Sequential(nn.Linear(4, 3)).eval()
    with Interpreter(net) as it:
        assert not it.scope.modules
        f, c = it.bias(torch.randn(2, 4))
    assert torch.allclose(c, net[0].bias.expand(2, 3))


def test_norm_subclass_and_inplace_smooth_unit() -> None:
    class LayerNorm2d(nn.LayerNorm):
        """Normalises the channel dim of NCHW maps (as timm's): not the last dims, so not frozen by the scope."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                                self.eps).permute(0, 3, 1, 2)

    with pytest.raises(InputError, match="LayerNorm2d.*forward differs from nn.LayerNorm.forward"):
        LinearScope(nn.Sequential(nn.Conv2d(1, 2, 1), LayerNorm2d(2)))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.SiLU(inplace=True), nn.Linear(6, 2)).eval()
    x0 = torch.randn(3, 4)
    with Interpreter(net) as it:
        f, c, rows = affine_map(it, x0, 2)
    assert torch.allclose((rows * x0[:, None]).sum(-1) + c, f, atol=1e-6)
