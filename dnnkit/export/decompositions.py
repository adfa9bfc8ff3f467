"""Backward ops of the traced B-cos explanation, rewritten as forward ops that ONNX has.

`make_fx` spells the explanation's gradient out as aten backward ops; ONNX has no `convolution_backward`
or `avg_pool2d_backward`, but the input gradient of both is a transposed convolution. Only the input
gradient is produced: the weights are frozen while tracing, so no weight gradient is asked for.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F


def _input_padding(grad: torch.Tensor, input_size: list[int], kernel: list[int], stride: list[int],
                   padding: list[int], dilation: list[int]) -> list[int]:
    """output_padding that makes conv_transpose2d give back the input's spatial size."""
    out = []
    for d in range(2):
        built = (grad.shape[2 + d] - 1) * stride[d] - 2 * padding[d] + dilation[d] * (kernel[d] - 1) + 1
        out.append(int(input_size[2 + d]) - int(built))
    return out


def convolution_backward(grad_output: torch.Tensor, input: torch.Tensor, weight: torch.Tensor, bias_sizes: Any,
                         stride: list[int], padding: list[int], dilation: list[int], transposed: bool,
                         output_padding: list[int], groups: int, output_mask: list[bool]) -> Any:
    """grad_input of a 2-d convolution as conv_transpose2d (the weight/bias gradients are not asked for)."""
    if transposed or weight.dim() != 4 or output_mask[1] or output_mask[2]:
        return NotImplemented
    extra = _input_padding(grad_output, list(input.shape), list(weight.shape[2:]), stride, padding, dilation)
    grad_input = F.conv_transpose2d(grad_output, weight, None, stride, padding, extra, groups, dilation) \
        if output_mask[0] else None
    return grad_input, None, None


def avg_pool2d_backward(grad_output: torch.Tensor, input: torch.Tensor, kernel_size: list[int], stride: list[int],
                        padding: list[int], ceil_mode: bool, count_include_pad: bool,
                        divisor_override: int | None) -> Any:
    """grad_input of average pooling as a depthwise conv_transpose2d with a constant kernel."""
    kernel = list(kernel_size) if len(kernel_size) == 2 else [kernel_size[0]] * 2
    stride = (list(stride) if len(stride) == 2 else [stride[0]] * 2) if stride else kernel
    padding = list(padding) if len(padding) == 2 else [padding[0]] * 2
    if ceil_mode or (any(padding) and not count_include_pad) or input.dim() != 4:
        return NotImplemented
    channels = input.shape[1]
    divisor = divisor_override or kernel[0] * kernel[1]
    ones = torch.full((channels, 1, *kernel), 1.0 / divisor, dtype=grad_output.dtype, device=grad_output.device)
    extra = _input_padding(grad_output, list(input.shape), kernel, stride, padding, [1, 1])
    return F.conv_transpose2d(grad_output, ones, None, stride, padding, extra, channels, 1)


def explain_decompositions() -> dict[Any, Any]:
    """torch's core decompositions plus the two above."""
    from torch._decomp import core_aten_decompositions

    table = dict(core_aten_decompositions())
    aten = torch.ops.aten
    table[aten.convolution_backward.default] = convolution_backward
    table[aten.avg_pool2d_backward.default] = avg_pool2d_backward
    return table
