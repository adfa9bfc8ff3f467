"""Factored layers: a Linear, Conv2d or transformers Conv1D replaced by a thin "down" map (n -> r) and an
"up" map (r -> m).

`LowRankLinear` holds `down` (nn.Linear n -> r, no bias) and `up` (nn.Linear r -> m, with the
original bias); its forward is the kernel op `lowrank_linear` (one launch on the GPU).
`LowRankConv2d` holds `down` (kh x kw conv c_in -> r with the original stride, padding and
dilation) and `up` (1x1 conv r -> c_out). State-dict names are `NAME.down.weight`,
`NAME.up.weight`, `NAME.up.bias`. `active_rank` (not saved) makes the layer compute with the
first b components only: Maestro's ordered dropout and truncation sweeps use it.

transformers' `Conv1D` (GPT-2 and relatives) computes y = x @ W + b with W stored (in, out): it is a
Linear whose weight is W^T, so it is factored as that Linear (`dense_matrix` gives W^T) and becomes a
`LowRankLinear` computing the same function.
"""

from __future__ import annotations

import sys

import torch
from torch import nn
from torch.nn import functional as F

from dnnkit.kernels.lowrank_matmul import lowrank_linear


class LowRankLinear(nn.Module):
    """y = up(down(x)): a rank-r factorisation of an m x n Linear layer."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.down = nn.Linear(in_features, rank, bias=False, device=device, dtype=dtype)
        self.up = nn.Linear(rank, out_features, bias=bias, device=device, dtype=dtype)
        self.active_rank: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        b = self.active_rank
        if b is None or b >= self.rank:
            return lowrank_linear(x, self.down.weight, self.up.weight, self.up.bias)
        if b <= 0:
            y = x.new_zeros(*x.shape[:-1], self.out_features)
            return y + self.up.bias if self.up.bias is not None else y
        return lowrank_linear(x, self.down.weight[:b], self.up.weight[:, :b], self.up.bias)

    def factor_matrices(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(U m x r, V n x r) with W ~ U V^T."""
        return self.up.weight, self.down.weight.t()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"


class LowRankConv2d(nn.Module):
    """A kh x kw conv to r channels followed by a 1x1 conv to c_out: rank r over (c_in*kh*kw)."""

    def __init__(self, conv: nn.Conv2d, rank: int, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.rank = conv.in_channels, conv.out_channels, rank
        self.down = nn.Conv2d(conv.in_channels, rank, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                              dilation=conv.dilation, bias=False, padding_mode=conv.padding_mode,
                              device=device, dtype=dtype)
        self.up = nn.Conv2d(rank, conv.out_channels, 1, bias=conv.bias is not None, device=device, dtype=dtype)
        self.active_rank: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        b = self.active_rank
        if b is None or b >= self.rank:
            return self.up(self.down(x))
        d = self.down
        if b <= 0:
            h = d._conv_forward(x, d.weight[:1], None)
            y = h.new_zeros(h.shape[0], self.out_channels, *h.shape[2:])
            return y + self.up.bias.view(1, -1, 1, 1) if self.up.bias is not None else y
        h = d._conv_forward(x, d.weight[:b], None)
        return F.conv2d(h, self.up.weight[:, :b], self.up.bias)

    def factor_matrices(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(U c_out x r, V (c_in*kh*kw) x r) with the unrolled kernel W ~ U V^T."""
        return self.up.weight.flatten(1), self.down.weight.flatten(1).t()

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, rank={self.rank}"


LOWRANK_TYPES = (LowRankLinear, LowRankConv2d)


def is_conv1d(module: nn.Module) -> bool:
    """True for transformers' `Conv1D` (y = x @ W + b, W of shape (in, out)).

    Read from `sys.modules`: a model holding one has imported transformers, and a model that has not
    does not pay for importing it.
    """
    utils = sys.modules.get("transformers.pytorch_utils")
    cls = getattr(utils, "Conv1D", None)
    return cls is not None and isinstance(module, cls)


def layer_kind(module: nn.Module) -> str | None:
    """'linear', 'conv2d' or 'conv1d' (transformers Conv1D) for a dense layer lowrank can factor, else None."""
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.Conv2d):
        return "conv2d"
    if is_conv1d(module):
        return "conv1d"
    return None


def out_features(module: nn.Module) -> int:
    """m: output features / channels of a dense Linear, Conv2d or Conv1D."""
    return int(module.weight.shape[1] if is_conv1d(module) else module.weight.shape[0])


def dense_matrix(module: nn.Module) -> torch.Tensor:
    """The layer's weight as the m x n (out x in) matrix W of y = W x + b (a conv unrolled, a Conv1D transposed)."""
    w = module.weight
    if is_conv1d(module):
        return w.t()
    return w.reshape(w.shape[0], -1)


def set_dense_matrix(module: nn.Module, w: torch.Tensor) -> None:
    """Write an m x n matrix back into a dense layer's weight (the inverse of `dense_matrix`)."""
    with torch.no_grad():
        if is_conv1d(module):
            module.weight.copy_(w.t())
        else:
            module.weight.copy_(w.reshape(module.weight.shape))


def dense_shape(module: nn.Module) -> list[int]:
    """The weight shape of the dense layer a factored module stands for."""
    if isinstance(module, LowRankLinear):
        return [module.out_features, module.in_features]
    return [module.out_channels, *module.down.weight.shape[1:]]


def make_lowrank(layer: nn.Module, rank: int) -> nn.Module:
    """An uninitialised factored module of `rank` with the same shape, dtype and device as `layer`
    (a dense Linear/Conv2d/Conv1D, or a factored module to re-cut at another rank)."""
    if isinstance(layer, LowRankLinear):
        w = layer.down.weight
        return LowRankLinear(layer.in_features, layer.out_features, rank, bias=layer.up.bias is not None,
                             device=w.device, dtype=w.dtype)
    if isinstance(layer, LowRankConv2d):
        d, w = layer.down, layer.down.weight
        template = nn.Conv2d(layer.in_channels, layer.out_channels, d.kernel_size, stride=d.stride, padding=d.padding,
                             dilation=d.dilation, bias=layer.up.bias is not None, padding_mode=d.padding_mode,
                             device="meta")
        return LowRankConv2d(template, rank, device=w.device, dtype=w.dtype)
    w = layer.weight
    if isinstance(layer, nn.Linear):
        return LowRankLinear(layer.in_features, layer.out_features, rank, bias=layer.bias is not None,
                             device=w.device, dtype=w.dtype)
    if isinstance(layer, nn.Conv2d):
        return LowRankConv2d(layer, rank, device=w.device, dtype=w.dtype)
    if is_conv1d(layer):  # W is (in, out): the factored layer is the Linear with weight W^T
        return LowRankLinear(int(w.shape[0]), int(w.shape[1]), rank, bias=layer.bias is not None,
                             device=w.device, dtype=w.dtype)
    raise TypeError(f"cannot factor {type(layer).__name__}")


def set_factors(module: nn.Module, up: torch.Tensor, down: torch.Tensor, bias: torch.Tensor | None) -> None:
    """Copy factor matrices (up m x r, down r x n) into a factored module, reshaping for convs."""
    with torch.no_grad():
        module.up.weight.copy_(up.reshape(module.up.weight.shape))
        module.down.weight.copy_(down.reshape(module.down.weight.shape))
        if bias is not None:
            module.up.bias.copy_(bias)


def get_module(root: nn.Module, name: str) -> nn.Module:
    """The submodule at dotted path `name`."""
    return root.get_submodule(name)


def set_module(root: nn.Module, name: str, new: nn.Module) -> None:
    """Replace the submodule at dotted path `name`."""
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)
