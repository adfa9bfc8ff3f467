"""No allocation a file can dictate: build on the meta device first and compare with the file's tensors.

An architecture spec, a recipe or a config.json comes from the file being loaded. Building it for
real first would let `rank: 200000000` or `vocab_size: 10**9` allocate whatever it names. So the
loader builds the network on PyTorch's meta device (shapes, no storage), checks that it holds
exactly the tensors the file holds (header only), and only then builds it for real: the memory a
load takes stays bounded by the file's own tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dnnkit.errors import DnnkitError, InputError

if TYPE_CHECKING:
    from torch import nn

# Buffers that are not saved (rotary tables, causal masks) are rebuilt by the constructor: allowed up to
# this many elements beyond the file's own count, since the file does not hold them.
UNSAVED_SLACK = 1 << 26


def meta_build(build: Callable[[], nn.Module], where: str) -> nn.Module:
    """Run `build()` with every tensor on the meta device; any failure is bad input naming `where`."""
    import torch

    try:
        with torch.device("meta"):
            return build()
    except DnnkitError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a file's spec breaks in a constructor is bad input
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "no message"
        raise InputError(f"{where}: the recorded architecture cannot be built ({type(exc).__name__}: {first})") \
            from exc


def tensor_groups(model: nn.Module) -> list[tuple[list[str], tuple[int, ...]]]:
    """Every saved tensor of `model` as (names it goes by, shape): tied parameters form one group."""
    seen: dict[int, int] = {}
    groups: list[tuple[list[str], tuple[int, ...]]] = []
    state_names = set(model.state_dict(keep_vars=True))
    named = [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]
    for name, t in named:
        if name not in state_names:
            continue
        key = id(t)
        if key in seen:
            groups[seen[key]][0].append(name)
        else:
            seen[key] = len(groups)
            groups.append(([name], tuple(t.shape)))
    return groups


def unsaved_numel(model: nn.Module) -> int:
    """Elements of buffers the constructor makes but `state_dict` leaves out."""
    saved = set(model.state_dict(keep_vars=True))
    return sum(b.numel() for n, b in model.named_buffers(remove_duplicate=False) if n not in saved)


def check_exact_fit(model: nn.Module, shapes: dict[str, tuple[int, ...]], where: str) -> None:
    """The meta-built `model` must hold exactly the file's tensors (names and shapes; a tied copy may be absent)."""
    missing, wrong = [], []
    covered: set[str] = set()
    for names, shape in tensor_groups(model):
        present = [n for n in names if n in shapes]
        covered.update(names)
        if not present:
            missing.append(names[0])
        for n in present:
            if tuple(shapes[n]) != shape:
                wrong.append((n, tuple(shapes[n]), shape))
    unexpected = [n for n in shapes if n not in covered]
    if missing or unexpected or wrong:
        raise InputError(f"weights in {where} do not fit the architecture its record describes: "
                         + describe_mismatch(missing, unexpected, wrong),
                         hint="the recipe or the architecture was edited, or --arch names another network")
    _check_unsaved(model, sum(_numel(s) for s in shapes.values()), where)


def check_size_bound(model: nn.Module, file_numel: int, where: str, slack: float = 0.05) -> None:
    """The meta-built `model` must not hold (many) more elements than the file: for folders whose tensor names
    transformers maps itself (prefixes, a freshly initialised head), only the total is compared."""
    total = sum(_numel(shape) for _, shape in tensor_groups(model))
    allowed = file_numel + max(int(file_numel * slack), 1 << 20)
    if total > allowed:
        raise InputError(f"{where}: its config describes a model of {total:,} parameters but the weights hold "
                         f"{file_numel:,}", hint="the config does not belong to these weights (or was edited)")
    _check_unsaved(model, file_numel, where)


def _check_unsaved(model: nn.Module, file_numel: int, where: str) -> None:
    extra = unsaved_numel(model)
    if extra > file_numel + UNSAVED_SLACK:
        raise InputError(f"{where}: the architecture would build {extra:,} elements of unsaved buffers, more than "
                         "the file's own tensors", hint="the config or recipe was edited")


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def describe_mismatch(missing: list[str], unexpected: list[str], wrong: list[tuple[str, tuple, tuple]]) -> str:
    """'N missing (e.g. ..); N unexpected (..); N of another shape (..)' for weights vs an architecture;
    `wrong` holds (name, shape in the file, shape in the architecture)."""
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if wrong:
        n, have, want = wrong[0]
        parts.append(f"{len(wrong)} of another shape (e.g. {n}: {have} in the file, {want} in the architecture)")
    return "; ".join(parts)
