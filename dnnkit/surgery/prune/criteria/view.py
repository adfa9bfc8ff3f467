"""A prunable module seen as a matrix W [out, in] with inputs X [rows, in], so that the layer's
output is X @ W.T (plus bias): Linear as is, transformers' Conv1D transposed, Conv2d through im2col."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class LayerView:
    """The matrix view of one module (`kind`: linear, conv1d-t or conv2d)."""

    name: str
    module: nn.Module
    kind: str

    @property
    def columns(self) -> int:
        """The input size `in` of W [out, in]."""
        shape = self.module.weight.shape
        return int(shape[0]) if self.kind == "conv1d-t" else math.prod(shape[1:])

    def to2d(self, weight: torch.Tensor) -> torch.Tensor:
        """A tensor in the parameter's shape as [out, in] float32 (a copy)."""
        w = weight.detach()
        if self.kind == "conv1d-t":
            w = w.t()
        return w.reshape(w.shape[0], -1).float().clone()

    def from2d(self, w2d: torch.Tensor) -> torch.Tensor:
        """A [out, in] tensor (weights or mask) in the parameter's own shape."""
        w = w2d.t() if self.kind == "conv1d-t" else w2d
        return w.reshape(self.module.weight.shape)

    def weight2d(self) -> torch.Tensor:
        """The module's W as [out, in] in float32 (a copy)."""
        return self.to2d(self.module.weight)

    def set_weight2d(self, w2d: torch.Tensor) -> None:
        """Write W [out, in] back into the module, in its own shape and dtype."""
        param = self.module.weight
        with torch.no_grad():
            param.copy_(self.from2d(w2d).to(param.dtype))

    def mask_to_param(self, mask2d: torch.Tensor) -> torch.Tensor:
        """A [out, in] mask in the parameter's own shape."""
        return self.from2d(mask2d)

    def inputs2d(self, x: torch.Tensor) -> torch.Tensor:
        """The module's input as rows of X [rows, in] (float32)."""
        if self.kind == "conv2d":
            m = self.module
            cols = F.unfold(x.float(), m.kernel_size, dilation=m.dilation, padding=m.padding, stride=m.stride)
            return cols.transpose(1, 2).reshape(-1, cols.shape[1])
        return x.reshape(-1, x.shape[-1]).float()


def layer_view(name: str, module: nn.Module) -> LayerView | None:
    """The view of a module, or None when calibrated criteria do not apply (grouped or padded-mode
    convs, Conv1d/Conv3d): those layers fall back to magnitude."""
    if isinstance(module, nn.Linear):
        return LayerView(name, module, "linear")
    if isinstance(module, nn.Conv2d):
        if module.groups != 1 or module.padding_mode != "zeros" or isinstance(module.padding, str):
            return None
        return LayerView(name, module, "conv2d")
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - transformers is a dependency
        return None
    if isinstance(module, Conv1D):
        return LayerView(name, module, "conv1d-t")
    return None
