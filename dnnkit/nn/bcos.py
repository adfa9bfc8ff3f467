"""B-cos network building blocks: B-cos conv/linear layers, bias-free norms, gated activations,
attention with detachable q/k, the [x, 1-x] input encoding and the classifier wrapper.

Every module here has an `explain_mode` flag (set by `explanation_mode`): when on, the input-dependent
scales (B-cos |cos|^(B-1) with its norms, norm-layer deviations, activation gates, attention q and k)
are detached, so the network is a linear map W(x) x for autograd (B-cos papers, section "explanations").
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from dnnkit.kernels.bcos_linear import bcos_linear

CONV_NORM_EPS = 1e-6
POW_EPS = 1e-6


class ExplainMixin:
    """The explanation-mode flag, with the guard that training never runs with it on."""

    explain_mode: bool = False

    def _check_mode(self) -> bool:
        if self.explain_mode and getattr(self, "training", False):
            raise RuntimeError("explanation mode is on during training: gradients would be wrong")
        return self.explain_mode


class BcosConv2d(ExplainMixin, nn.Conv2d):
    """out = (w^T x) * (|w^T x| / ||x||)^(B-1) per output position; ||x|| over the kernel window (per group).

    With `b == 1` and a bias this is exactly `nn.Conv2d` (used by the equivalence check).
    """

    def __init__(self, *args: object, b: float = 2.0, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros":
            raise ValueError("B-cos conv supports zero padding only")
        self.b = float(b)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", b={self.b}"

    def window_norm(self, x: torch.Tensor) -> torch.Tensor:
        """sqrt(sum of x^2 over each kernel window and group + 1e-6), one value per group and position."""
        g = self.groups
        cin = x.shape[1]
        ones = torch.ones((g, cin // g, *self.kernel_size), dtype=x.dtype, device=x.device)
        sq = F.conv2d(x * x, ones, None, self.stride, self.padding, self.dilation, g)
        return (sq + CONV_NORM_EPS).sqrt()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        detach = self._check_mode()
        lin = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        if self.b == 1:
            return lin
        norm = self.window_norm(x)
        if self.groups > 1:
            norm = norm.repeat_interleave(self.out_channels // self.groups, dim=1)
        ratio = lin.abs() / norm
        scale = ratio if self.b == 2 else (ratio + POW_EPS) ** (self.b - 1)
        if detach:
            scale = scale.detach()
        return lin * scale


class BcosLinear(ExplainMixin, nn.Linear):
    """Bias-free B-cos linear layer over the last dimension (the `bcos_linear` kernel op).

    With `b == 1` and a bias this is exactly `nn.Linear` (used by the equivalence check).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False, b: float = 2.0,
                 device: object = None, dtype: object = None) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.b = float(b)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", b={self.b}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        detach = self._check_mode()
        if self.bias is not None:
            if self.b != 1:
                raise RuntimeError("a B-cos linear layer with B != 1 has no bias")
            return F.linear(x, self.weight, self.bias)
        return bcos_linear(x, self.weight, self.b, detach)


class UncentredBatchNorm2d(ExplainMixin, nn.Module):
    """y = gamma * x / sqrt(v + eps): no mean subtraction, no beta (B-cosification, authors' code).

    v is the per-channel batch variance in training (running_var updated as BatchNorm does) and
    running_var in evaluation.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, uncentred, no bias"

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        detach = self._check_mode()
        if self.training:
            dims = [d for d in range(x.dim()) if d != 1]
            var = x.var(dim=dims, unbiased=False)
            with torch.no_grad():
                n = x.numel() / x.shape[1]
                unbiased = var.detach() * (n / max(n - 1, 1))
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_var.mul_(1 - m).add_(m * unbiased.to(self.running_var.dtype))
        else:
            var = self.running_var
        std = (var + self.eps).sqrt()
        if detach:
            std = std.detach()
        shape = [1, -1] + [1] * (x.dim() - 2)
        return x * (self.weight / std).view(shape)


class BiasFreeLayerNorm(ExplainMixin, nn.Module):
    """LayerNorm with centring kept (a per-sample mean is linear in x) and no beta; the deviation is
    detached in explanation mode. `channels_first` normalises dim 1 of an NCHW tensor (ConvNeXt)."""

    def __init__(self, shape: tuple[int, ...], eps: float = 1e-5, affine: bool = True,
                 channels_first: bool = False, bias: bool = False) -> None:
        super().__init__()
        self.normalized_shape, self.eps, self.channels_first = tuple(shape), eps, channels_first
        self.weight = nn.Parameter(torch.ones(self.normalized_shape)) if affine else None
        self.bias = nn.Parameter(torch.zeros(self.normalized_shape)) if bias else None  # equivalence check only

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, no bias" + (", channels_first" if self.channels_first else "")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        detach = self._check_mode()
        if self.channels_first:
            x = x.permute(0, 2, 3, 1)
        dims = tuple(range(-len(self.normalized_shape), 0))
        centred = x - x.mean(dim=dims, keepdim=True)
        std = (centred.pow(2).mean(dim=dims, keepdim=True) + self.eps).sqrt()
        if detach:
            std = std.detach()
        y = centred / std
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y.permute(0, 3, 1, 2) if self.channels_first else y


class BiasFreeGroupNorm(ExplainMixin, nn.Module):
    """GroupNorm with centring kept and no beta; the deviation is detached in explanation mode."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 bias: bool = False) -> None:
        super().__init__()
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        self.weight = nn.Parameter(torch.ones(num_channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_channels)) if bias else None  # equivalence check only

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        detach = self._check_mode()
        n = x.shape[0]
        g = x.reshape(n, self.num_groups, -1)
        centred = g - g.mean(dim=-1, keepdim=True)
        std = (centred.pow(2).mean(dim=-1, keepdim=True) + self.eps).sqrt()
        if detach:
            std = std.detach()
        y = (centred / std).reshape_as(x)
        shape = (1, -1, *([1] * (x.dim() - 2)))
        if self.weight is not None:
            y = y * self.weight.view(shape)
        if self.bias is not None:
            y = y + self.bias.view(shape)
        return y


def _gelu_gate(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _gelu_tanh_gate(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


GATES = {
    "gelu": _gelu_gate,
    "gelu_tanh": _gelu_tanh_gate,
    "silu": torch.sigmoid,
    "hardswish": lambda x: F.relu6(x + 3.0) / 6.0,
}


class GatedActivation(ExplainMixin, nn.Module):
    """x * g(x) (GELU, SiLU, Hardswish written as a gate); the gate is detached in explanation mode."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind not in GATES:
            raise ValueError(f"unknown gate {kind!r}")
        self.kind = kind

    def extra_repr(self) -> str:
        return self.kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        gate = GATES[self.kind](x)
        if self._check_mode():
            gate = gate.detach()
        return x * gate


class BcosAttention(ExplainMixin, nn.Module):
    """Multi-head self-attention that exposes q and k (detached in explanation mode, so the output is
    linear in v): the same computation as timm's Attention without its fused kernel."""

    def __init__(self, num_heads: int, head_dim: int, qkv: nn.Module, proj: nn.Module, q_norm: nn.Module,
                 k_norm: nn.Module, attn_drop: nn.Module, norm: nn.Module, proj_drop: nn.Module) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        self.scale = head_dim ** -0.5
        self.qkv, self.q_norm, self.k_norm = qkv, q_norm, k_norm
        self.attn_drop, self.norm, self.proj, self.proj_drop = attn_drop, norm, proj, proj_drop

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, **_: object) -> torch.Tensor:  # noqa: D102
        if attn_mask is not None:
            raise RuntimeError("B-cos attention does not take an attention mask")
        detach = self._check_mode()
        bsz, n, _c = x.shape
        qkv = self.qkv(x).reshape(bsz, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if detach:
            q, k = q.detach(), k.detach()
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        attn = self.attn_drop(attn)
        out = (attn @ v).transpose(1, 2).reshape(bsz, n, self.num_heads * self.head_dim)
        return self.proj_drop(self.proj(self.norm(out)))


class InputEncoding(nn.Module):
    """x (pixels in [0, 1]) -> [x, 1 - x]; the *paper* encoding then normalises the 2C channels with
    means (mu, 1 - mu) and stds (sigma, sigma) (constants, not saved: the recipe holds them)."""

    def __init__(self, encoding: str = "exact", mean: list[float] | None = None,
                 std: list[float] | None = None) -> None:
        super().__init__()
        self.encoding = encoding
        if encoding == "paper":
            mu = torch.tensor(mean, dtype=torch.float32)
            sd = torch.tensor(std, dtype=torch.float32)
            self.register_buffer("enc_mean", torch.cat([mu, 1 - mu]).view(1, -1, 1, 1), persistent=False)
            self.register_buffer("enc_std", torch.cat([sd, sd]).view(1, -1, 1, 1), persistent=False)

    def extra_repr(self) -> str:
        return self.encoding

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[x, 1 - x] along channels (the tensor explanations are taken against)."""
        return torch.cat([x, 1 - x], dim=1)

    def normalise(self, x_enc: torch.Tensor) -> torch.Tensor:
        """What the first layer sees given x_enc (identity for the exact encoding)."""
        if self.encoding == "paper":
            return (x_enc - self.enc_mean.to(x_enc.dtype)) / self.enc_std.to(x_enc.dtype)
        return x_enc

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.normalise(self.encode(x))


class BcosClassifier(nn.Module):
    """A B-cosified classifier: logits = s * net(encode(x)) + b0 with b0 a fixed constant (-log(C - 1)) and
    s a fixed logit scale (1 unless calibrated for a network without normalisation layers)."""

    is_bcos = True

    def __init__(self, net: nn.Module, encoding: InputEncoding, logit_bias: float, logit_scale: float = 1.0) -> None:
        super().__init__()
        self.encoder = encoding
        self.net = net
        self.logit_bias = float(logit_bias)
        self.logit_scale = float(logit_scale)

    def extra_repr(self) -> str:
        return f"logit_bias={self.logit_bias:.6g}, logit_scale={self.logit_scale:.6g}"

    def forward_encoded(self, x_enc: torch.Tensor) -> torch.Tensor:
        """Logits from an already encoded input [x, 1 - x] (the explanation's input)."""
        out = self.net(self.encoder.normalise(x_enc))
        if self.logit_scale != 1.0:
            out = out * self.logit_scale
        return out + self.logit_bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.forward_encoded(self.encoder.encode(x))


def set_b(model: nn.Module, b: float) -> None:
    """Set B of every B-cos conv/linear layer (the optional B ramp)."""
    for m in model.modules():
        if isinstance(m, (BcosConv2d, BcosLinear)):
            m.b = float(b)


def current_b(model: nn.Module) -> float | None:
    """B of the first B-cos layer (None when there is none)."""
    for m in model.modules():
        if isinstance(m, (BcosConv2d, BcosLinear)):
            return m.b
    return None


@contextlib.contextmanager
def explanation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Detach every dynamic scale and put the model in eval mode; both restored on exit."""
    flagged = [m for m in model.modules() if isinstance(m, ExplainMixin)]
    was_training = model.training
    model.eval()
    for m in flagged:
        m.explain_mode = True
    try:
        yield model
    finally:
        for m in flagged:
            m.explain_mode = False
        model.train(was_training)
