"""B-cosification of a trained CNN or ViT (B-cosification, NeurIPS 2024; order and details from the
authors' code): [x, 1-x] input encoding with the first layer rewritten to keep the function, B-cos
conv/linear layers with the pretrained weights, biases removed, uncentred BatchNorm, bias-free
LayerNorm/GroupNorm, gated GELU/SiLU/Hardswish, MaxPool -> AvgPool, the GAP reorder and the fixed
logit bias b0 = -log(C - 1).

`plan_conversion` inspects the model (one traced forward) and refuses unsupported modules before any
weight is touched; `apply_conversion` makes the change on a copy (also used by recipe replay, where the
plan comes from the checkpoint's recipe); `equivalence_check` converts at B = 1 with biases, centring
and max pooling kept and b0 = 0 and compares the logits with the original's.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dnnkit.errors import InputError, RuntimeFailure
from dnnkit.nn.bcos import (
    BcosAttention,
    BcosClassifier,
    BcosConv2d,
    BcosLinear,
    BiasFreeGroupNorm,
    BiasFreeLayerNorm,
    GatedActivation,
    InputEncoding,
    UncentredBatchNorm2d,
)

ENCODINGS = ("exact", "paper")
CONSTANT_PARAMS = ("pos_embed", "cls_token", "reg_token", "dist_token")  # stay (constants, spec 2.2.10)
SCALE_PARAMS = ("gamma",)  # layer scale: a per-channel product, linear
PASS_THROUGH = (nn.ReLU, nn.LeakyReLU, nn.Identity, nn.Flatten, nn.Dropout, nn.Dropout2d, nn.AvgPool2d,
                nn.AdaptiveAvgPool2d)
REFUSE_REASONS = {
    "Sigmoid": "a saturating non-linearity adds constants (no bias-free linear form)",
    "Tanh": "a saturating non-linearity adds constants (no bias-free linear form)",
    "Softmax": "softmax outside attention has no bias-free linear form",
    "ReLU6": "its clipping adds constants",
    "Hardtanh": "its clipping adds constants",
    "Hardsigmoid": "a saturating gate adds constants",
    "Embedding": "an embedding is a lookup, not a linear map of the image",
    "LSTM": "recurrent layers are not supported",
    "GRU": "recurrent layers are not supported",
    "RNN": "recurrent layers are not supported",
}


@dataclass
class BcosOptions:
    """How to convert. `parity=True` is the equivalence-check conversion (B = 1, biases, centring and
    max pooling kept, b0 = 0)."""

    b: float = 2.0
    encoding: str = "exact"
    mean: list[float] | None = None
    std: list[float] | None = None
    keep_maxpool: bool = False
    gap_reorder: bool = True
    parity: bool = False
    logit_scale: str | float = "auto"


@dataclass
class ConversionPlan:
    """What the traced forward found: the stem, the head decision, the classes and channels."""

    stem: str
    in_channels: int
    num_classes: int
    classifier: str
    gap_pool: str | None = None
    gap_reason: str = ""
    units: dict[str, str] = field(default_factory=dict)  # module name -> kind of change

    def params(self) -> dict[str, Any]:
        """The plan as recipe parameters (replay rebuilds from them without a forward pass)."""
        return {"stem": self.stem, "in_channels": self.in_channels, "num_classes": self.num_classes,
                "classifier": self.classifier, "gap_pool": self.gap_pool}


@dataclass
class LayerChange:
    """One converted module, as the report and the recipe list it."""

    name: str
    from_type: str
    to_type: str
    bias_removed: bool
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "from": self.from_type, "to": self.to_type, "bias_removed": self.bias_removed,
                "note": self.note}


def _is_timm(module: nn.Module, cls_name: str) -> bool:
    return type(module).__name__ == cls_name and type(module).__module__.startswith("timm.")


def _is_attention(module: nn.Module) -> bool:
    return _is_timm(module, "Attention") and hasattr(module, "qkv") and hasattr(module, "proj")


def _is_bn_act(module: nn.Module) -> bool:
    return _is_timm(module, "BatchNormAct2d")


def _is_layer_scale(module: nn.Module) -> bool:
    return _is_timm(module, "LayerScale") or _is_timm(module, "LayerScale2d")


def _is_drop_path(module: nn.Module) -> bool:
    return _is_timm(module, "DropPath")


def _unit_kind(module: nn.Module) -> str | None:
    """The change applied to a module handled as a whole (None: recurse into it or pass it through)."""
    if _is_attention(module):
        return "attention"
    if _is_bn_act(module):
        return "bn_act"
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.BatchNorm2d):
        return "batchnorm"
    if isinstance(module, nn.LayerNorm):
        return "layernorm"
    if isinstance(module, nn.GroupNorm):
        return "groupnorm"
    if isinstance(module, (nn.GELU, nn.SiLU, nn.Hardswish)) or _is_timm(module, "GELU") or _is_timm(module, "SiLU"):
        return "gate"
    if isinstance(module, nn.MaxPool2d):
        return "maxpool"
    return None


def _refuse(name: str, module: nn.Module, reason: str) -> InputError:
    return InputError(f"cannot B-cosify {name or '<root>'} ({type(module).__name__}): {reason}",
                      hint="dnnkit bcosify handles Conv2d/Linear, BatchNorm/LayerNorm/GroupNorm, ReLU/GELU/SiLU, "
                           "pooling, timm ViT attention (see docs/bcosify.md)")


def check_supported(model: nn.Module) -> dict[str, str]:
    """Every module is either converted, passed through, or refused with an InputError naming it."""
    units: dict[str, str] = {}
    skip: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(p + ".") for p in skip):
            continue
        kind = _unit_kind(module)
        if kind is not None:
            _check_unit(name, module, kind)
            units[name] = kind
            skip.append(name)
            continue
        own = [n for n, _ in module.named_parameters(recurse=False)]
        allowed = CONSTANT_PARAMS + SCALE_PARAMS
        bad = [n for n in own if n not in allowed]
        if bad:
            raise _refuse(name, module, f"parameter {bad[0]!r} of an unknown module has no B-cos form")
        if _is_layer_scale(module) or _is_drop_path(module):
            skip.append(name)
            continue
        if list(module.children()):
            continue
        if isinstance(module, PASS_THROUGH):
            continue
        reason = REFUSE_REASONS.get(type(module).__name__, "no B-cos form is known for this module")
        raise _refuse(name, module, reason)
    return units


def _check_unit(name: str, module: nn.Module, kind: str) -> None:
    if kind == "conv" and module.padding_mode != "zeros":
        raise _refuse(name, module, f"padding mode {module.padding_mode!r} adds values that are not zero")
    if kind in ("batchnorm", "bn_act") and not module.track_running_stats:
        raise _refuse(name, module, "BatchNorm without running statistics")
    if kind == "attention" and getattr(module, "gate", None) is not None:
        raise _refuse(name, module, "a gated attention output (sigmoid gate) adds constants")
    if kind == "bn_act":
        act = module.act
        if not (isinstance(act, (nn.ReLU, nn.Identity, nn.LeakyReLU)) or _unit_kind(act) == "gate"):
            raise _refuse(name, module, f"activation {type(act).__name__} has no B-cos form")
    if kind == "maxpool" and module.dilation not in (1, (1, 1)):
        raise _refuse(name, module, "dilated max pooling has no average-pooling counterpart")


def _trace(model: nn.Module, units: dict[str, str], sample: torch.Tensor) -> tuple[list[tuple[str, Any, Any]],
                                                                                    torch.Tensor]:
    """Run one forward recording (name, first input, output) of every unit and pass-through leaf, in order."""
    records: list[tuple[str, Any, Any]] = []
    hooks = []
    named = dict(model.named_modules())
    watch = set(units)
    for name, m in named.items():
        if name and not list(m.children()) and not any(name.startswith(u + ".") for u in units):
            watch.add(name)
    for name in watch:
        def hook(mod: nn.Module, inp: Any, out: Any, _name: str = name) -> None:
            records.append((_name, inp[0] if inp else None, out))

        hooks.append(named[name].register_forward_hook(hook))
    try:
        with torch.no_grad():
            out = model(sample)
    finally:
        for h in hooks:
            h.remove()
    out = out.logits if hasattr(out, "logits") else out
    return records, out


def plan_conversion(model: nn.Module, input_shape: tuple[int, ...], gap_reorder: bool = True) -> ConversionPlan:
    """Check the model and find the stem and the head (one forward pass on a random input)."""
    units = check_supported(model)
    gen = torch.Generator().manual_seed(0)
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    device = param.device if param is not None else torch.device("cpu")
    sample = torch.rand((2, *input_shape), generator=gen).to(device=device, dtype=dtype)
    was_training = model.training
    model.eval()
    try:
        records, out = _trace(model, units, sample)
    finally:
        model.train(was_training)
    if out.dim() != 2:
        raise InputError(f"the model's output has shape {tuple(out.shape)}: not an image classifier's logits")
    named = dict(model.named_modules())
    weighted = [(n, i, o) for n, i, o in records if units.get(n) in ("conv", "linear", "attention")]
    if not weighted:
        raise InputError("the model has no conv or linear layer to B-cosify")
    stem, stem_in, _ = weighted[0]
    if units[stem] != "conv" or stem_in is None or stem_in.shape != sample.shape or not torch.equal(stem_in, sample):
        raise InputError(f"cannot B-cosify {stem} ({type(named[stem]).__name__}): the first layer must be a Conv2d "
                         "that sees the image itself (the [x, 1-x] encoding is folded into it)")
    head, head_in, head_out = weighted[-1]
    if units[head] != "linear" or head_out.shape != out.shape or not torch.equal(head_out, out):
        raise InputError(f"cannot B-cosify: the last layer {head} must be the Linear classifier that gives the logits")
    plan = ConversionPlan(stem=stem, in_channels=int(stem_in.shape[1]), num_classes=int(out.shape[1]),
                          classifier=head, units=units)
    plan.gap_pool, plan.gap_reason = _find_gap(model, records, head, head_in, gap_reorder)
    return plan


def _find_gap(model: nn.Module, records: list[tuple[str, Any, Any]], head: str, head_in: torch.Tensor,
              enabled: bool) -> tuple[str | None, str]:
    """The global-average-pool module feeding the classifier (only flatten/dropout between), or why none."""
    if not enabled:
        return None, "--no-gap-reorder"
    named = dict(model.named_modules())
    order = [r[0] for r in records]
    idx = max(i for i, n in enumerate(order) if n == head)
    for name, _inp, out in reversed(records[:idx]):
        mod = named[name]
        if isinstance(mod, (nn.Flatten, nn.Dropout, nn.Identity)):
            continue
        if isinstance(mod, nn.AdaptiveAvgPool2d) and out.dim() == 4 and out.shape[-2:] == (1, 1) \
                and out.reshape(out.shape[0], -1).shape == head_in.shape \
                and torch.equal(out.reshape(out.shape[0], -1), head_in):
            return name, "global average pooling feeds the classifier: it became a 1x1 B-cos conv before the pooling"
        if getattr(model, "cls_token", None) is not None:
            return None, "class-token head (ViT): the classifier stays"
        if isinstance(mod, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d)):
            return None, f"a norm layer ({name}) sits between pooling and the classifier: the head stays"
        return None, (f"no global average pooling feeds the classifier (flatten-FC head after {name}, "
                      f"{type(mod).__name__}): the head stays")
    return None, "no global average pooling feeds the classifier: the head stays"


def resolve_normalisation(mean: list[float] | None, std: list[float] | None, channels: int) -> tuple[list[float],
                                                                                                       list[float]]:
    """Check --mean/--std against the stem's channels; default mu = 0, sigma = 1."""
    mean = list(mean) if mean else [0.0] * channels
    std = list(std) if std else [1.0] * channels
    if len(mean) == 1 and channels > 1:
        mean = mean * channels
    if len(std) == 1 and channels > 1:
        std = std * channels
    if len(mean) != channels or len(std) != channels:
        raise InputError(f"--mean/--std need {channels} values (one per input channel), got {len(mean)}/{len(std)}")
    if any(s <= 0 or not math.isfinite(s) for s in std):
        raise InputError("--std values must be positive")
    return [float(m) for m in mean], [float(s) for s in std]


def stem_weight(weight: torch.Tensor, encoding: str, mean: list[float], std: list[float]) -> torch.Tensor:
    """First-layer weights on [x, 1-x] (spec 2.3): exact A = W(1-mu)/sigma, A' = -W mu/sigma; paper [W, -W]/2."""
    if encoding == "paper":
        return torch.cat([weight, -weight], dim=1) / 2
    mu = torch.tensor(mean, dtype=torch.float64).view(1, -1, 1, 1)
    sd = torch.tensor(std, dtype=torch.float64).view(1, -1, 1, 1)
    w = weight.double()
    return torch.cat([w * (1 - mu) / sd, -w * mu / sd], dim=1).to(weight.dtype)


def _copy_param(dst: torch.Tensor, src: torch.Tensor) -> None:
    with torch.no_grad():
        dst.copy_(src.to(dst.dtype))


def _convert_conv(m: nn.Conv2d, opts: BcosOptions, *, stem: bool) -> nn.Module:
    keep_bias = opts.parity and m.bias is not None
    cin = m.in_channels * 2 if stem else m.in_channels
    new = BcosConv2d(cin, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding, dilation=m.dilation,
                     groups=m.groups, bias=keep_bias, b=1.0 if opts.parity else opts.b,
                     device=m.weight.device, dtype=m.weight.dtype)
    w = m.weight
    if stem:
        if m.groups != 1:
            raise InputError("cannot B-cosify a grouped first conv")
        w = stem_weight(w, opts.encoding, opts.mean or [0.0] * m.in_channels, opts.std or [1.0] * m.in_channels)
    _copy_param(new.weight, w)
    if keep_bias:
        _copy_param(new.bias, m.bias)
    return new


def _convert_linear(m: nn.Linear, opts: BcosOptions, *, plain: bool = False) -> nn.Module:
    keep_bias = opts.parity and m.bias is not None
    if plain:
        new: nn.Module = nn.Linear(m.in_features, m.out_features, bias=keep_bias, device=m.weight.device,
                                   dtype=m.weight.dtype)
    else:
        new = BcosLinear(m.in_features, m.out_features, bias=keep_bias, b=1.0 if opts.parity else opts.b,
                         device=m.weight.device, dtype=m.weight.dtype)
    _copy_param(new.weight, m.weight)
    if keep_bias:
        _copy_param(new.bias, m.bias)
    return new


def _convert_bn(m: nn.BatchNorm2d, opts: BcosOptions) -> nn.Module:
    if opts.parity:
        new = nn.BatchNorm2d(m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
                             device=m.running_var.device, dtype=m.running_var.dtype)
        new.load_state_dict({k: v for k, v in m.state_dict().items()}, strict=False)
        return new
    new = UncentredBatchNorm2d(m.num_features, eps=m.eps, momentum=m.momentum).to(m.running_var.device)
    with torch.no_grad():
        if m.weight is not None:
            new.weight.copy_(m.weight)
        new.running_var.copy_(m.running_var)
        if m.num_batches_tracked is not None:
            new.num_batches_tracked.copy_(m.num_batches_tracked)
    return new


def _convert_layernorm(m: nn.LayerNorm, opts: BcosOptions) -> nn.Module:
    channels_first = _is_timm(m, "LayerNorm2d")
    new = BiasFreeLayerNorm(m.normalized_shape, eps=m.eps, affine=m.weight is not None, channels_first=channels_first,
                            bias=opts.parity and m.bias is not None)
    return _copy_norm(new, m)


def _convert_groupnorm(m: nn.GroupNorm, opts: BcosOptions) -> nn.Module:
    new = BiasFreeGroupNorm(m.num_groups, m.num_channels, eps=m.eps, affine=m.weight is not None,
                            bias=opts.parity and m.bias is not None)
    return _copy_norm(new, m)


def _copy_norm(new: nn.Module, m: nn.Module) -> nn.Module:
    if m.weight is not None:
        new.to(device=m.weight.device, dtype=m.weight.dtype)
        _copy_param(new.weight, m.weight)
    if getattr(new, "bias", None) is not None:
        _copy_param(new.bias, m.bias)
    return new


def _gate_kind(m: nn.Module) -> str:
    if isinstance(m, nn.GELU) or _is_timm(m, "GELU"):
        return "gelu_tanh" if getattr(m, "approximate", "none") == "tanh" else "gelu"
    if isinstance(m, nn.SiLU) or _is_timm(m, "SiLU"):
        return "silu"
    return "hardswish"


def _convert_activation(act: nn.Module) -> nn.Module:
    return GatedActivation(_gate_kind(act)) if _unit_kind(act) == "gate" else act


def _convert_attention(m: nn.Module, opts: BcosOptions) -> nn.Module:
    qkv = _convert_linear(m.qkv, opts, plain=True)
    proj = _convert_linear(m.proj, opts)
    norm = m.norm if isinstance(m.norm, nn.Identity) else _convert_module(m.norm, opts)
    return BcosAttention(m.num_heads, m.head_dim, qkv, proj, m.q_norm, m.k_norm, m.attn_drop, norm, m.proj_drop)


def _convert_module(m: nn.Module, opts: BcosOptions) -> nn.Module:
    kind = _unit_kind(m)
    if kind == "layernorm":
        return _convert_layernorm(m, opts)
    if kind == "groupnorm":
        return _convert_groupnorm(m, opts)
    if kind == "batchnorm":
        return _convert_bn(m, opts)
    raise InputError(f"cannot B-cosify a {type(m).__name__} inside attention")


def _note(kind: str, opts: BcosOptions) -> str:
    return {"batchnorm": "uncentred: gamma * x / sqrt(var + eps)", "bn_act": "split into uncentred BN + activation",
            "layernorm": "centring kept, beta removed", "groupnorm": "centring kept, beta removed",
            "gate": "x * g(x), gate detached when explaining", "attention": "q, k, v plain bias-free Linear; "
            "q and k detached when explaining", "maxpool": "same geometry (parity, not completeness)"}.get(kind, "")


def apply_conversion(model: nn.Module, plan: ConversionPlan, opts: BcosOptions) -> tuple[BcosClassifier,
                                                                                         list[LayerChange]]:
    """Convert a deep copy of `model` following `plan` (the input is left untouched)."""
    if opts.encoding not in ENCODINGS:
        raise InputError(f"--encoding must be one of {', '.join(ENCODINGS)}")
    net = copy.deepcopy(model)
    units = plan.units or check_supported(net)
    changes: list[LayerChange] = []
    for name, kind in units.items():
        old = net.get_submodule(name)
        has_bias = getattr(old, "bias", None) is not None
        if kind == "conv":
            new = _convert_conv(old, opts, stem=name == plan.stem)
        elif kind == "linear":
            if name == plan.classifier and plan.gap_pool is not None:
                continue
            new = _convert_linear(old, opts)
        elif kind == "batchnorm":
            new = _convert_bn(old, opts)
        elif kind == "bn_act":
            new = nn.Sequential(OrderedDict(norm=_convert_bn(old, opts), drop=old.drop,
                                            act=_convert_activation(old.act)))
        elif kind == "layernorm":
            new = _convert_layernorm(old, opts)
        elif kind == "groupnorm":
            new = _convert_groupnorm(old, opts)
        elif kind == "gate":
            new = GatedActivation(_gate_kind(old))
        elif kind == "maxpool":
            if opts.keep_maxpool or opts.parity:
                continue
            new = nn.AvgPool2d(old.kernel_size, old.stride, old.padding, ceil_mode=old.ceil_mode)
        elif kind == "attention":
            new = _convert_attention(old, opts)
            has_bias = old.qkv.bias is not None or old.proj.bias is not None
        else:  # pragma: no cover - _unit_kind yields only the kinds above
            continue
        _set(net, name, new)
        removed = has_bias and not opts.parity
        if kind in ("batchnorm", "bn_act"):
            removed = not opts.parity
        note = "first layer on [x, 1-x] (" + opts.encoding + " encoding)" if name == plan.stem else _note(kind, opts)
        changes.append(LayerChange(name, type(old).__name__, type(new).__name__, removed, note))
    if plan.gap_pool is not None:
        head = net.get_submodule(plan.classifier)
        pool = net.get_submodule(plan.gap_pool)
        conv = BcosConv2d(head.in_features, head.out_features, 1, bias=opts.parity and head.bias is not None,
                          b=1.0 if opts.parity else opts.b, device=head.weight.device, dtype=head.weight.dtype)
        _copy_param(conv.weight, head.weight[:, :, None, None])
        if conv.bias is not None:
            _copy_param(conv.bias, head.bias)
        _set(net, plan.gap_pool, nn.Sequential(OrderedDict(head_conv=conv, pool=pool)))
        _set(net, plan.classifier, nn.Identity())
        changes.append(LayerChange(plan.classifier, "Linear", "BcosConv2d(1x1) before pooling",
                                   head.bias is not None and not opts.parity, "GAP reorder"))
    b0 = 0.0 if opts.parity else -math.log(max(plan.num_classes - 1, 1))
    encoder = InputEncoding(opts.encoding, opts.mean or [0.0] * plan.in_channels, opts.std or [1.0] * plan.in_channels)
    converted = BcosClassifier(net, encoder, b0)
    converted.train(model.training)
    return converted, changes


def _set(root: nn.Module, name: str, module: nn.Module) -> None:
    if not name:
        raise InputError("cannot B-cosify a model that is a single layer")
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def normalise(x: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """(x - mu) / sigma per channel: what the original model is fed."""
    mu = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    sd = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mu) / sd


@torch.no_grad()
def equivalence_check(model: nn.Module, plan: ConversionPlan, opts: BcosOptions, x: torch.Tensor) -> float:
    """max |logit difference| of the parity conversion vs the original; RuntimeFailure when it does not match."""
    parity_opts = dataclasses.replace(opts, parity=True)
    parity, _ = apply_conversion(model, plan, parity_opts)
    model.eval()
    parity.eval()
    ref = model(normalise(x, opts.mean or [0.0] * plan.in_channels, opts.std or [1.0] * plan.in_channels))
    ref = ref.logits if hasattr(ref, "logits") else ref
    got = parity(x)
    diff = float((got - ref).abs().max())
    scale = float(ref.abs().max())
    if not diff <= 1e-4 * max(scale, 1e-12):
        raise RuntimeFailure(f"equivalence check failed: the B = 1 conversion changes the logits by {diff:.3g} "
                             f"(max |logit| {scale:.3g}); this is a converter bug")
    return diff


def convert(model: nn.Module, input_shape: tuple[int, ...], opts: BcosOptions, check_inputs: torch.Tensor | None = None
            ) -> tuple[BcosClassifier, ConversionPlan, list[LayerChange], float | None]:
    """Plan, check equivalence on `check_inputs` (when given) and convert: (model, plan, changes, max |delta|)."""
    if opts.b < 1:
        raise InputError(f"--b must be >= 1, got {opts.b}")
    plan = plan_conversion(model, input_shape, opts.gap_reorder)
    opts.mean, opts.std = resolve_normalisation(opts.mean, opts.std, plan.in_channels)
    delta = equivalence_check(model, plan, opts, check_inputs) if check_inputs is not None else None
    converted, changes = apply_conversion(model, plan, opts)
    converted.logit_scale = resolve_logit_scale(model, converted, plan, opts, check_inputs)
    return converted, plan, changes, delta


NORM_KINDS = ("batchnorm", "bn_act", "layernorm", "groupnorm")


@torch.no_grad()
def resolve_logit_scale(model: nn.Module, converted: BcosClassifier, plan: ConversionPlan, opts: BcosOptions,
                        x: torch.Tensor | None) -> float:
    """The fixed logit scale s: a number as given; `auto` is 1 when a normalisation layer absorbs the
    B-cos layers' change of scale, else std(original logits) / std(converted logits) on the check inputs
    (a network without norm layers otherwise starts with logits near 0: dnnkit's addition, not the paper's)."""
    if opts.logit_scale != "auto":
        try:
            value = float(opts.logit_scale)
        except ValueError as exc:
            raise InputError(f"--logit-scale must be auto or a positive number, got {opts.logit_scale!r}") from exc
        if not value > 0 or not math.isfinite(value):
            raise InputError(f"--logit-scale must be positive, got {opts.logit_scale!r}")
        return value
    if any(k in NORM_KINDS for k in plan.units.values()) or x is None:
        return 1.0
    model.eval()
    converted.eval()
    ref = model(normalise(x, opts.mean, opts.std))
    ref = ref.logits if hasattr(ref, "logits") else ref
    converted.logit_scale = 1.0
    raw = converted(x) - converted.logit_bias
    spread = float(raw.std())
    return float(ref.std()) / spread if spread > 0 else 1.0
