"""The forward an exported file computes, as a module torch.export can trace, with its example inputs,
names and dynamic dimensions, and the torch reference it is checked against."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from dnnkit.errors import InputError
from dnnkit.metrics import Inputs


@dataclass
class ForwardSpec:
    """A traceable module and what is needed to export and check it."""

    module: nn.Module
    input_names: list[str]
    output_names: list[str]
    dynamic: dict[str, dict[int, str]]  # input name -> {dim: symbol}
    reference: Callable[[tuple[torch.Tensor, ...]], list[torch.Tensor]]  # the torch model's outputs
    args: Callable[[Inputs], tuple[torch.Tensor, ...]]  # check inputs -> positional tensors


class ImageForward(nn.Module):
    """pixels -> logits (the `.logits` of a HF/timm output object)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = self.model(x)
        return out.logits if hasattr(out, "logits") else out


class CausalLMForward(nn.Module):
    """input_ids -> next-token logits (no cache)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.model(input_ids=input_ids, use_cache=False).logits


class EncoderForward(nn.Module):
    """(input_ids, attention_mask) -> mean-pooled embedding (what `dnnkit eval` compares)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)


def _eager(module: nn.Module) -> Callable[[tuple[torch.Tensor, ...]], list[torch.Tensor]]:
    def run(args: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        with torch.no_grad():
            out = module(*args)
        return list(out) if isinstance(out, (tuple, list)) else [out]

    return run


def forward_spec(model: nn.Module, task: str, kind: str, explain: bool, example: tuple[torch.Tensor, ...]
                 ) -> ForwardSpec:
    """The spec for a classifier (images), a causal LM or an encoder (tokens); `explain` for B-cos only."""
    if kind == "images":
        if explain:
            return explain_spec(model, example[0])
        module = ImageForward(model).eval()
        return ForwardSpec(module, ["input"], ["logits"], {"input": {0: "batch"}}, _eager(module), lambda i: (i.x,))
    if explain:
        raise InputError("--explain exports the contribution maps of a B-cos image classifier",
                         hint="make one with `dnnkit bcosify`")
    if task == "encoder":
        module = EncoderForward(model).eval()
        return ForwardSpec(module, ["input_ids", "attention_mask"], ["embedding"],
                           {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}},
                           _eager(module), lambda i: (i.x, i.attention_mask))
    module = CausalLMForward(model).eval()
    return ForwardSpec(module, ["input_ids"], ["logits"], {"input_ids": {0: "batch", 1: "sequence"}},
                       _eager(module), lambda i: (i.x,))


def explain_spec(model: nn.Module, example: torch.Tensor) -> ForwardSpec:
    """pixels -> (logits, contributions R = sum_channels W(x) * x_enc for the predicted class), the B-cos
    explanation of `dnnkit explain`. Its backward pass is traced into plain ops (`torch.export` cannot
    take `autograd.grad`), so the file needs no autograd to explain."""
    from torch.fx.experimental.proxy_tensor import make_fx

    from dnnkit.export.decompositions import explain_decompositions
    from dnnkit.nn.bcos import ExplainMixin
    from dnnkit.probes.explain.dynamic import CONSTANT_PARAMS, explain_dynamic, is_bcos

    if not is_bcos(model):
        raise InputError("--explain needs a B-cos network (made by `dnnkit bcosify`)",
                         hint="drop --explain to export the plain forward")
    if any(n.rsplit(".", 1)[-1] in CONSTANT_PARAMS for n, _ in model.named_parameters()):
        raise InputError("--explain covers B-cos CNNs; this network has token/position constants (a ViT)",
                         hint="export the plain forward (drop --explain)")
    net = copy.deepcopy(model).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    for m in net.modules():
        if isinstance(m, ExplainMixin):
            m.explain_mode = True

    def explain_forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_enc = net.encoder.encode(x)
        with torch.enable_grad():
            e = x_enc.detach().requires_grad_(True)
            logits = net.forward_encoded(e)
            y = logits.gather(1, logits.argmax(-1, keepdim=True))[:, 0]
            (w,) = torch.autograd.grad(y.sum(), e)
        return logits.detach(), (w * x_enc).sum(1)

    graph = make_fx(explain_forward, tracing_mode="symbolic", _allow_non_fake_inputs=True,
                    decomposition_table=explain_decompositions())(example)
    module = _constants_as_buffers(graph).eval()

    def reference(args: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        exp = explain_dynamic(model, args[0])
        with torch.no_grad():
            logits = model(args[0])
        return [logits, exp.contributions]

    return ForwardSpec(module, ["input"], ["logits", "contributions"], {"input": {0: "batch"}}, reference,
                       lambda i: (i.x,))


def _constants_as_buffers(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Turn the weights make_fx captured as `_param_constantN` attributes into buffers named `weightN`, which
    torch.export lifts cleanly (a later retrace would reuse the `_param_constant` names)."""
    renamed: dict[str, str] = {}
    for node in graph.graph.nodes:
        if node.op == "get_attr" and isinstance(getattr(graph, node.target), torch.Tensor):
            if node.target not in renamed:
                renamed[node.target] = f"weight{len(renamed)}"
                graph.register_buffer(renamed[node.target], getattr(graph, node.target).detach().clone())
            node.target = renamed[node.target]
    for old in renamed:
        delattr(graph, old)
    graph.recompile()
    return graph
