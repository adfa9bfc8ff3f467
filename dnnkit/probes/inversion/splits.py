"""Public/private splits of the GMI protocol (spec section 5) and image hashes for overlap checks.

`shared:5-9`: a seeded random half of all train images (labels dropped) is public; private = classes 5-9
in the other half. `disjoint:5-9`: public = train images of the other classes, private = classes 5-9.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dnnkit.errors import InputError

if TYPE_CHECKING:
    import torch

PROTOCOLS = ("shared", "disjoint")
DEFAULT_SPLIT = "shared:5-9"


@dataclass(frozen=True)
class SplitSpec:
    """A parsed `--split` value."""

    protocol: str
    classes: tuple[int, ...]

    def __str__(self) -> str:
        return f"{self.protocol}:{format_classes(self.classes)}"


def parse_classes(text: str, what: str = "class list") -> tuple[int, ...]:
    """`5-9` or `0,2,4` (or a mix, `0-2,7`) as a sorted tuple of distinct class ids."""
    out: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError as exc:
            raise InputError(f"{what} {text!r}: expected ids like 5-9 or 0,2,4") from exc
        if a < 0 or b < a:
            raise InputError(f"{what} {text!r}: bad range {part!r}")
        out.update(range(a, b + 1))
    if not out:
        raise InputError(f"{what} {text!r} names no class")
    return tuple(sorted(out))


def format_classes(classes: tuple[int, ...]) -> str:
    """Inverse of `parse_classes` for contiguous runs (`5-9`), else a comma list."""
    c = sorted(classes)
    if len(c) > 1 and c == list(range(c[0], c[-1] + 1)):
        return f"{c[0]}-{c[-1]}"
    return ",".join(str(i) for i in c)


def parse_split(text: str) -> SplitSpec:
    """`shared:5-9` / `disjoint:0,2,4` -> SplitSpec."""
    protocol, sep, rest = text.partition(":")
    if protocol not in PROTOCOLS or not sep:
        raise InputError(f"--split {text!r}: expected shared:CLASSES or disjoint:CLASSES (e.g. shared:5-9)")
    return SplitSpec(protocol, parse_classes(rest, "--split classes"))


@dataclass
class InversionSplit:
    """Indices into the train split (public, private) and the test split (held-out private)."""

    spec: SplitSpec
    public: np.ndarray
    private_train: np.ndarray
    private_test: np.ndarray
    dropped_duplicates: int = 0


def make_split(train_y: np.ndarray, test_y: np.ndarray, spec: SplitSpec, n_classes: int, seed: int,
               train_hashes: np.ndarray | None = None, test_hashes: np.ndarray | None = None) -> InversionSplit:
    """Build the split; private images whose pixels equal a public image are dropped (samples stay disjoint)."""
    bad = [c for c in spec.classes if c >= n_classes]
    if bad:
        raise InputError(f"--split names class {bad[0]} but the dataset has classes 0..{n_classes - 1}")
    if spec.protocol == "disjoint" and len(spec.classes) >= n_classes:
        raise InputError("--split disjoint needs at least one public class")
    n = len(train_y)
    is_private_class = np.isin(train_y, spec.classes)
    if spec.protocol == "shared":
        order = np.random.default_rng(seed).permutation(n)
        half = np.zeros(n, dtype=bool)
        half[order[: n // 2]] = True
        public = np.sort(np.flatnonzero(half))
        private = np.flatnonzero(~half & is_private_class)
    else:
        public = np.flatnonzero(~is_private_class)
        private = np.flatnonzero(is_private_class)
    heldout = np.flatnonzero(np.isin(test_y, spec.classes))
    dropped = 0
    if train_hashes is not None:
        keep = ~np.isin(train_hashes[private], train_hashes[public])
        dropped = int((~keep).sum())
        private = private[keep]
        if test_hashes is not None:
            keep_t = ~np.isin(test_hashes[heldout], train_hashes[public])
            dropped += int((~keep_t).sum())
            heldout = heldout[keep_t]
    return InversionSplit(spec, public, np.sort(private), heldout, dropped)


def image_hashes(x: torch.Tensor) -> np.ndarray:
    """One int64 per image: the first 8 bytes of sha256 over its 8-bit-quantised pixels."""
    import torch

    q = (x.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).flatten(1).numpy()
    return np.array([int.from_bytes(hashlib.sha256(row.tobytes()).digest()[:8], "little", signed=True)
                     for row in q], dtype=np.int64)


def data_sha256(x: torch.Tensor, y: torch.Tensor) -> str:
    """sha256 over the quantised train images and labels (identifies the dataset a prior saw)."""
    import torch

    h = hashlib.sha256()
    h.update((x.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy().tobytes())
    h.update(y.detach().cpu().to(torch.int64).numpy().tobytes())
    return h.hexdigest()
