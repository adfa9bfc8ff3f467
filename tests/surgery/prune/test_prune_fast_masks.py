"""The sort-free masks and the one-sort LAMP give bit-identical results to the argsort algorithms
they replace (embedded here as oracles): masks, scores, allocations and whole pruned files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import typer
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from dnnkit.cli.app import app
from dnnkit.surgery.prune import masks
from dnnkit.surgery.prune.masks import keep_mask, lamp_scores, lamp_sorted_scores, magnitude_ranks
from dnnkit.surgery.prune.select import select_counts

RUNNER = CliRunner()
CLI = typer.main.get_command(app)


# --- oracles: the algorithms before the change, verbatim --------------------------------------

def old_keep_mask(weight: torch.Tensor, zeros: int) -> torch.Tensor:
    flat = weight.detach().reshape(-1).abs().float()
    order = torch.sort(flat, stable=True).indices
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(order.numel())
    return (ranks >= zeros).reshape(weight.shape)


def old_lamp_scores(weight: torch.Tensor) -> torch.Tensor:
    flat = weight.detach().reshape(-1).double()
    sq_sorted, order = torch.sort(flat.abs(), stable=True)
    sq_sorted = sq_sorted * sq_sorted
    suffix = torch.flip(torch.cumsum(torch.flip(sq_sorted, [0]), 0), [0])
    sorted_scores = torch.where(suffix > 0, sq_sorted / suffix.clamp_min(1e-300), torch.zeros_like(suffix))
    scores = torch.empty_like(sorted_scores)
    scores[order] = sorted_scores
    return scores.float()


def _old_bits(values: torch.Tensor) -> torch.Tensor:
    return values.detach().reshape(-1).float().abs().contiguous().view(torch.int32).long()


def old_select_counts(names: list[str], values_fn, p: int) -> dict[str, int]:
    if p <= 0:
        return dict.fromkeys(names, 0)
    hist = torch.zeros(1 << 15, dtype=torch.long)
    for name in names:
        hist += torch.bincount(_old_bits(values_fn(name)) >> 16, minlength=1 << 15)
    if p >= int(hist.sum()):
        return {name: int(values_fn(name).numel()) for name in names}
    cum = torch.cumsum(hist, 0)
    hi = int(torch.searchsorted(cum, torch.tensor(p), right=False))
    below_hi = int(cum[hi - 1]) if hi > 0 else 0
    low_hist = torch.zeros(1 << 16, dtype=torch.long)
    per_lt, per_bucket = {}, {}
    for name in names:
        bits = _old_bits(values_fn(name))
        in_bucket = bits[(bits >> 16) == hi] & 0xFFFF
        per_lt[name] = int(((bits >> 16) < hi).sum())
        uniq, cnt = torch.unique(in_bucket, return_counts=True)
        per_bucket[name] = (uniq, cnt)
        low_hist.index_add_(0, uniq, cnt)
    low_cum = torch.cumsum(low_hist, 0)
    lo = int(torch.searchsorted(low_cum, torch.tensor(p - below_hi), right=False))
    need = p - below_hi - (int(low_cum[lo - 1]) if lo > 0 else 0)
    counts = {}
    for name in names:
        uniq, cnt = per_bucket[name]
        ties = min(int(cnt[uniq == lo].sum()), need)
        need -= ties
        counts[name] = per_lt[name] + int(cnt[uniq < lo].sum()) + ties
    return counts


def old_select_with_caps(names: list[str], values_fn, p: int, hi: list[int]) -> list[int]:
    fixed: dict[int, int] = {}
    while True:
        free = [i for i in range(len(names)) if i not in fixed]
        counts = old_select_counts([names[i] for i in free], values_fn, p - sum(fixed.values()))
        over = [i for i in free if counts[names[i]] > hi[i]]
        if not over:
            return [fixed[i] if i in fixed else counts[names[i]] for i in range(len(names))]
        for i in over:
            fixed[i] = hi[i]


# --- tensors with every kind of tie -------------------------------------------------------------

def _tensors() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    quant = torch.randint(-6, 7, (40, 30), generator=g).float() / 4  # heavy ties, many exact zeros
    quant[0, :5] = -0.0
    special = torch.randn(500, generator=g)
    special[[3, 77, 400]] = float("nan")
    special[[5, 9]] = float("inf")
    special[11] = -float("inf")
    return [quant, torch.randn(37, 19, generator=g), torch.zeros(50), special,
            (torch.randn(300, generator=g) * 3).round().half(), (torch.randn(300, generator=g)).bfloat16(),
            torch.randn(64, generator=g).double(), torch.tensor([1e-40, 2e-45, 0.0, -1e-40, 3.0]),
            torch.randn(64, generator=g).double() * 1e-30]


@pytest.mark.parametrize("index", range(len(_tensors())))
def test_keep_mask_matches_the_stable_argsort(index: int) -> None:
    w = _tensors()[index]
    n = w.numel()
    for z in sorted({0, 1, 2, n // 3, n // 2, n - 5, n - 1, n, n + 3, *range(0, n, max(1, n // 37))}):
        new = keep_mask(w, z)
        assert new.shape == w.shape and new.dtype == torch.bool
        assert torch.equal(new, old_keep_mask(w, z)), z
        assert torch.equal(new.reshape(-1), magnitude_ranks(w) >= z)


@pytest.mark.parametrize("index", range(len(_tensors())))
def test_radix_threshold_matches_the_stable_argsort(index: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The radix selection large tensors take (forced here on the small ones) gives the same masks."""
    monkeypatch.setattr(masks, "RADIX_MIN", 0)
    w = _tensors()[index]
    n = w.numel()
    for z in sorted({0, 1, 2, n // 3, n // 2, n - 5, n - 1, n, n + 3, *range(0, n, max(1, n // 37))}):
        assert torch.equal(keep_mask(w, z), old_keep_mask(w, z)), z


def _large_tensors() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    ties = torch.randint(-40, 41, (256, 160), generator=g).float() / 16  # 81 distinct values, many zeros
    ties[:3] = -0.0
    special = torch.randn(300, 200, generator=g)
    special.view(-1)[torch.randint(0, special.numel(), (40,), generator=g)] = float("nan")
    special.view(-1)[torch.randint(0, special.numel(), (30,), generator=g)] = float("inf")
    special.view(-1)[7] = -float("inf")
    near = 1.0 + torch.randint(0, 70_000, (40_000,), generator=g).float() * 2 ** -23  # one top-16 bucket, and two
    return [torch.randn(512, 96, generator=g), ties, special, near, torch.randn(40_000, generator=g).half(),
            torch.randn(200, 200, generator=g).double(), torch.zeros(33_000)]


@pytest.mark.parametrize("index", range(len(_large_tensors())))
def test_radix_threshold_on_large_tensors(index: int) -> None:
    w = _large_tensors()[index]
    n = w.numel()
    assert n >= masks.RADIX_MIN
    flat = w.reshape(-1).abs().float()
    for z in sorted({1, 2, n // 7, n // 2, n - 100, n - 41, n - 1, *range(1, n, n // 11)}):
        t, at_most = masks._threshold(flat, z)
        expect = flat.kthvalue(z).values
        assert torch.equal(t.view(torch.int32), expect.view(torch.int32)) or (bool(t.isnan()) and bool(expect.isnan()))
        if not bool(t.isnan()):
            assert at_most == int((flat <= t).sum())
        assert torch.equal(keep_mask(w, z), old_keep_mask(w, z)), z


@pytest.mark.parametrize("index", range(len(_tensors())))
def test_lamp_scores_bit_identical(index: int) -> None:
    w = _tensors()[index]
    old = old_lamp_scores(w)
    assert torch.equal(lamp_scores(w).view(torch.int32), old.view(torch.int32))
    assert torch.equal(lamp_sorted_scores(w).view(torch.int32), torch.sort(old).values.view(torch.int32)) or \
        torch.isnan(old).any()  # NaN scores: the same multiset, in another order
    assert torch.equal(torch.sort(lamp_sorted_scores(w)).values.view(torch.int32),
                       torch.sort(old).values.view(torch.int32))


def test_lamp_sorted_scores_rise_along_the_magnitude_order() -> None:
    for w in _tensors()[:3] + _tensors()[4:]:
        if torch.isfinite(w).all():
            s = lamp_sorted_scores(w)
            assert bool((s[1:] >= s[:-1]).all())
            order = torch.sort(w.reshape(-1).abs().float(), stable=True).indices
            assert torch.equal(s, old_lamp_scores(w)[order])


@pytest.mark.parametrize("kind", ["global", "lamp"])
def test_selection_matches_the_old_one(kind: str) -> None:
    tensors = {f"t{i}": t for i, t in enumerate(_tensors()) if torch.isfinite(t).all()}
    names = list(tensors)
    total = sum(t.numel() for t in tensors.values())
    if kind == "global":
        def new_fn(n):
            return tensors[n]

        def old_fn(n):
            return tensors[n].detach().reshape(-1).abs().float()
    else:
        def new_fn(n):
            return lamp_sorted_scores(tensors[n])

        def old_fn(n):
            return old_lamp_scores(tensors[n])
    for p in (0, 1, 7, total // 4, total // 2, total - 3, total, total + 1):
        assert select_counts(names, new_fn, p) == old_select_counts(names, old_fn, p), p


def _natural(name: str) -> list:
    return [int(s) if s.isdigit() else s for s in name.replace(".", " ").split()]


@pytest.fixture()
def fixture_file(tmp_path: Path) -> Path:
    g = torch.Generator().manual_seed(3)
    tensors = {
        "layers.0.weight": torch.randint(-8, 9, (64, 32), generator=g).float() / 8,
        "layers.1.weight": torch.randn(48, 64, generator=g),
        "layers.2.weight": torch.randint(-8, 9, (32, 48), generator=g).float() / 8,
        "layers.10.weight": (torch.randn(16, 32, generator=g) * 4).round() / 4,
        "layers.0.bias": torch.randn(64, generator=g),
        "embed.weight": torch.randn(100, 8, generator=g),
    }
    tensors["layers.1.weight"][:4] = 0.0
    path = tmp_path / "fixture.safetensors"
    save_file(tensors, str(path))
    return path


@pytest.mark.parametrize(("method", "cap"), [("global", None), ("global", "0.65"), ("uniform", None),
                                             ("lamp", None), ("lamp", "0.63"), ("erk", None)])
def test_pruned_file_bit_identical_to_the_argsort_algorithm(fixture_file: Path, tmp_path: Path, method: str,
                                                           cap: str | None) -> None:
    out = tmp_path / "out.safetensors"
    args = ["prune", str(fixture_file), "--ratio", "0.6", "--method", method, "-o", str(out), "--json"]
    if cap is not None:
        args += ["--max-layer-sparsity", cap]
    res = RUNNER.invoke(CLI, args)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout.strip().splitlines()[-1])
    src, got = load_file(str(fixture_file)), load_file(str(out))
    names = [r["name"] for r in report["layers"]]
    assert names == sorted(names, key=_natural)
    zeros = [r["size"] - r["kept"] for r in report["layers"]]
    if method in ("global", "lamp"):  # the allocation itself, recomputed the old way
        total = sum(src[n].numel() for n in names)
        p = round(0.6 * total)
        hi = [src[n].numel() if cap is None else int(float(cap) * src[n].numel()) for n in names]
        hi = [max(h, int((src[n] == 0).sum())) for h, n in zip(hi, names, strict=True)]
        old_fn = (lambda n: src[n].reshape(-1).abs().float()) if method == "global" else \
            (lambda n: old_lamp_scores(src[n]))
        assert zeros == old_select_with_caps(names, old_fn, p, hi)
    for name, tensor in src.items():
        if name in names:
            expect = tensor * old_keep_mask(tensor, zeros[names.index(name)]).to(tensor.dtype)
        else:
            expect = tensor
        assert got[name].dtype == expect.dtype and torch.equal(got[name].view(torch.int32), expect.view(torch.int32))


def test_scan_layers_counts_zeros_and_rejects_non_finite_exactly() -> None:
    from dnnkit.errors import InputError
    from dnnkit.models.weights import StateDictWeights
    from dnnkit.surgery.prune.layers import scan_layers

    big = torch.full((64, 64), 60000.0).half()  # finite, but its sum overflows float16: the exact check decides
    big[0, :5] = 0.0
    big[1, 0] = -0.0
    huge = torch.full((8, 8), 3e38)  # finite, its float32 sum overflows
    tensors = {"a.weight": big, "b.weight": huge, "c.weight": torch.zeros(0, 4), "d.weight": torch.randn(5, 5)}
    layers = scan_layers(StateDictWeights(tensors), list(tensors))
    assert [layer.zeros for layer in layers] == [int((t == 0).sum()) for t in tensors.values()] == [6, 0, 0, 0]
    for bad, count in ((float("nan"), 3), (float("inf"), 2), (-float("inf"), 1)):
        w = torch.randn(10, 10)
        w.view(-1)[:count] = bad
        with pytest.raises(InputError, match=f"tensor w.weight holds {count} NaN/Inf values"):
            scan_layers(StateDictWeights({"w.weight": w}), ["w.weight"])
    mixed = torch.randn(10, 10)
    mixed[0, 0], mixed[0, 1] = float("inf"), -float("inf")  # the sum is NaN
    with pytest.raises(InputError, match="holds 2 NaN/Inf"):
        scan_layers(StateDictWeights({"w.weight": mixed}), ["w.weight"])
