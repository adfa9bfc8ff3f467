"""Maestro (Horvath et al., ICML 2024): trainable low-rank layers with ordered dropout over rank.

Every selected layer becomes U V^T at full rank r = min(m, n) (balanced SVD split of the
pretrained weight, or of a fresh initialisation with `--from-scratch`). Each training step runs a
sub-model that keeps only the first b components of layers (ordered dropout): `independent`
draws b uniformly in 1..r_i for every layer, `pair` walks a shuffled list of (layer, b) and
truncates one layer per step. The loss adds the hierarchical group lasso
lambda * sum_b (||U[:, b:]||_F + ||V[:, b:]||_F); after every epoch progressive shrinking sets
r_i = max(min_rank, #{b : ||U[:, b:]|| ||V[:, b:]|| >= eps}) by masking (optimiser state stays
valid). Export slices the factors, folds a layer back to dense when r (m + n) >= m n, and with
`--params P` first drops trailing components greedily, lowest importance / (m + n) first.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dnnkit.errors import RuntimeFailure
from dnnkit.metrics import Inputs
from dnnkit.nn.lowrank import dense_matrix, make_lowrank, set_dense_matrix, set_factors, set_module
from dnnkit.progress import ProgressReporter
from dnnkit.surgery.lowrank.decompose import decompose
from dnnkit.surgery.lowrank.fidelity import Reference, fidelity, headline, unique_params
from dnnkit.surgery.lowrank.select import Candidate
from dnnkit.surgery.lowrank.training import recalibrate_batchnorm, train_model


@dataclass
class MaestroOutcome:
    """The exported model, ranks, factored layers and the training report."""

    model: nn.Module
    ranks: dict[str, int]
    factored: dict[str, int]
    report: dict[str, Any] = field(default_factory=dict)
    trained: nn.Module | None = None  # the full-rank trained model (masks applied), for truncation sweeps


def tail_norms(mod: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(||U[:, b:]||_F, ||V[:, b:]||_F) for b = 0..r-1 (sqrt clamped at 1e-12), differentiable."""
    u, v = mod.factor_matrices()
    cu = (u.float() ** 2).sum(0)
    cv = (v.float() ** 2).sum(0)
    tu = torch.flip(torch.cumsum(torch.flip(cu, [0]), 0), [0])
    tv = torch.flip(torch.cumsum(torch.flip(cv, [0]), 0), [0])
    return tu.clamp_min(1e-12).sqrt(), tv.clamp_min(1e-12).sqrt()


def group_lasso(mods: dict[str, nn.Module]) -> torch.Tensor:
    """Hierarchical group lasso summed over layers."""
    total = None
    for mod in mods.values():
        tu, tv = tail_norms(mod)
        term = tu.sum() + tv.sum()
        total = term if total is None else total + term
    return total


@torch.no_grad()
def importances(mod: nn.Module) -> torch.Tensor:
    """s_b = ||U[:, b:]|| ||V[:, b:]|| (monotone in b, so the kept set is a prefix)."""
    tu, tv = tail_norms(mod)
    return tu * tv


def factor_full_rank(model: nn.Module, candidates: list[Candidate]) -> dict[str, nn.Module]:
    """Replace every candidate by its full-rank balanced SVD split (exact up to rounding)."""
    mods = {}
    for c in candidates:
        layer = model.get_submodule(c.name)
        dec = decompose(dense_matrix(layer))
        up, down = dec.factors(c.full_rank)
        new = make_lowrank(layer, c.full_rank)
        set_factors(new, up.to(layer.weight.dtype), down.to(layer.weight.dtype),
                    None if layer.bias is None else layer.bias.detach())
        set_module(model, c.name, new)
        mods[c.name] = new
    return mods


def _reinit(model: nn.Module, seed: int) -> None:
    torch.manual_seed(seed)
    for m in model.modules():
        if hasattr(m, "reset_parameters") and m is not model:
            m.reset_parameters()


def _masks(model: nn.Module, mods: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    names = {id(p): n for n, p in model.named_parameters()}
    masks = {}
    for mod in mods.values():
        masks[names[id(mod.up.weight)]] = torch.ones_like(mod.up.weight, dtype=torch.bool)
        masks[names[id(mod.down.weight)]] = torch.ones_like(mod.down.weight, dtype=torch.bool)
    return masks


def _set_rank_mask(model: nn.Module, mod: nn.Module, masks: dict[str, torch.Tensor], r: int) -> None:
    names = {id(p): n for n, p in model.named_parameters()}
    up, down = masks[names[id(mod.up.weight)]], masks[names[id(mod.down.weight)]]
    up.fill_(True)
    down.fill_(True)
    up[:, r:] = False
    down[r:] = False


class RankSampler:
    """Chooses each step's sub-model (ordered dropout over rank)."""

    def __init__(self, mods: dict[str, nn.Module], ranks: dict[str, int], kind: str, seed: int) -> None:
        self.mods, self.ranks, self.kind = mods, ranks, kind
        self.rng = random.Random(seed)
        self.queue: list[tuple[str, int]] = []

    def __call__(self, model: nn.Module) -> None:
        if self.kind == "independent":
            for name, mod in self.mods.items():
                mod.active_rank = self.rng.randint(1, self.ranks[name])
            return
        if not self.queue:
            self.queue = [(n, b) for n in self.mods for b in range(1, self.ranks[n] + 1)]
            self.rng.shuffle(self.queue)
        name, b = self.queue.pop()
        while b > self.ranks[name] and self.queue:  # a pair made stale by shrinking
            name, b = self.queue.pop()
        for n, mod in self.mods.items():
            mod.active_rank = min(b, self.ranks[n]) if n == name else None

    def clear(self) -> None:
        for mod in self.mods.values():
            mod.active_rank = None
        self.queue = []


def budget_ranks(mods: dict[str, nn.Module], cands: dict[str, Candidate], ranks: dict[str, int],
                 fraction: float) -> dict[str, int]:
    """Drop trailing components greedily (lowest s_b / (m + n) first) until the selected layers fit
    fraction * sum(m n) parameters (a layer costs min(r (m + n), m n): it folds back to dense)."""
    ranks = dict(ranks)
    imp = {n: importances(m) for n, m in mods.items()}
    budget = fraction * sum(c.dense_params for c in cands.values())

    def cost(n: str) -> int:
        c = cands[n]
        return min(ranks[n] * (c.m + c.n), c.dense_params)

    used = sum(cost(n) for n in ranks)
    while used > budget:
        options = [(float(imp[n][ranks[n] - 1]) / (cands[n].m + cands[n].n), n) for n in ranks if ranks[n] > 1]
        if not options:
            break
        _, n = min(options)
        before = cost(n)
        ranks[n] -= 1
        used += cost(n) - before
    return ranks


def export(trained: nn.Module, mods: dict[str, nn.Module], cands: dict[str, Candidate], ranks: dict[str, int],
           dense: nn.Module) -> tuple[nn.Module, dict[str, int]]:
    """Slice the trained factors to their ranks; fold layers that would not shrink back to dense."""
    model = copy.deepcopy(trained)
    factored = {}
    for name, r in ranks.items():
        c = cands[name]
        mod = model.get_submodule(name)
        mod.active_rank = None
        u, v = mod.factor_matrices()
        bias = mod.up.bias.detach() if mod.up.bias is not None else None
        if r * (c.m + c.n) >= c.dense_params:
            layer = copy.deepcopy(dense.get_submodule(name))
            with torch.no_grad():
                set_dense_matrix(layer, u[:, :r] @ v[:, :r].t())
                if bias is not None:
                    layer.bias.copy_(bias)
            set_module(model, name, layer)
            continue
        new = make_lowrank(dense.get_submodule(name), r)
        set_factors(new, u[:, :r].detach(), v[:, :r].t().detach(), bias)
        set_module(model, name, new)
        factored[name] = r
    return model, factored


def export_params(cands: dict[str, Candidate], ranks: dict[str, int], base: int) -> int:
    """Whole-model parameters if exported at `ranks` (base = dense model's count)."""
    return base + sum(min(r * (cands[n].m + cands[n].n), cands[n].dense_params) - cands[n].dense_params
                      for n, r in ranks.items())


def run_maestro(dense: nn.Module, task: str, candidates: list[Candidate], train: Inputs, ref: Reference | None,
                cfg: Any, warnings: list[str], progress: ProgressReporter) -> MaestroOutcome:
    """Train a decomposed copy of `dense` with ordered dropout, group lasso and progressive shrinking."""
    from dnnkit.train import TrainConfig

    model = copy.deepcopy(dense)
    if cfg.from_scratch:
        _reinit(model, cfg.seed)
    mods = factor_full_rank(model, candidates)
    if not cfg.from_scratch and ref is not None:
        check_init(model, dense, ref)
    cands = {c.name: c for c in candidates}
    ranks = {c.name: c.full_rank for c in candidates}
    masks = _masks(model, mods)
    sampler = RankSampler(mods, ranks, cfg.sampler, cfg.seed)
    steps = cfg.epochs * max(1, -(-len(train) // cfg.batch_size))
    if steps / max(ranks.values()) < 20:
        warnings.append(f"{steps} training steps for max rank {max(ranks.values())}: fewer than 20 visits per "
                        "rank, the components may not order (train longer)")
    base = unique_params(dense)
    trajectory: list[dict[str, int]] = []
    params_hist: list[int] = []
    metric_hist: list[float | None] = []
    metric_name = None
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())

    def on_epoch_end(epoch: int, m: nn.Module) -> None:
        nonlocal metric_name
        sampler.clear()
        for name, mod in mods.items():
            s = importances(mod)
            keep = int((s[: ranks[name]] >= cfg.eps).sum())
            ranks[name] = max(cfg.min_rank, min(keep, ranks[name]))
            _set_rank_mask(m, mod, masks, ranks[name])
        from dnnkit.train import apply_masks

        apply_masks(m, masks)
        if has_bn:
            recalibrate_batchnorm(m, task, train)
        trajectory.append(dict(ranks))
        params_hist.append(export_params(cands, ranks, base))
        if ref is not None:
            head = headline(fidelity(m, ref))
            metric_name = head[0] if head else None
            metric_hist.append(head[1] if head else None)
        m.eval()

    lam = cfg.lambda_gl
    extra = (lambda m: lam * group_lasso(mods)) if lam > 0 else None
    lr = cfg.lr or (3e-3 if cfg.from_scratch else 1e-3)
    tcfg = TrainConfig(epochs=cfg.epochs, lr=lr, batch_size=cfg.batch_size, seed=cfg.seed)
    hist = train_model(model, task, train, tcfg, dense=dense, before_forward=sampler, full_pass=cfg.full_pass,
                       extra_loss=extra, masks=masks, on_epoch_end=on_epoch_end, progress=progress,
                       description="maestro")
    sampler.clear()
    final = dict(ranks)
    if cfg.rule == "params":
        final = budget_ranks(mods, cands, final, cfg.value)
    exported, factored = export(model, mods, cands, final, dense)
    if has_bn:
        recalibrate_batchnorm(exported, task, train)
    report = {"epochs": cfg.epochs, "steps": steps, "lr": lr, "lambda_gl": lam, "eps": cfg.eps,
              "sampler": cfg.sampler, "from_scratch": cfg.from_scratch, "full_pass": cfg.full_pass,
              "train_seconds": round(hist.seconds, 2), "train_loss": hist.loss,
              "rank_trajectory": {n: [t[n] for t in trajectory] for n in ranks},
              "params": params_hist, "eval_metric": metric_hist, "eval_metric_name": metric_name,
              "final_ranks": final}
    return MaestroOutcome(exported, final, factored, report, trained=model)


@torch.no_grad()
def check_init(model: nn.Module, dense: nn.Module, ref: Reference) -> None:
    """The full-rank split must reproduce the dense outputs (1e-4 relative)."""
    part = ref.inputs.slice(0, 16)
    from dnnkit.metrics import outputs

    a = outputs(model, ref.task, part, 16).double()
    b = outputs(dense, ref.task, part, 16).double()
    rel = float((a - b).norm() / b.norm().clamp_min(1e-300))
    if rel > 1e-4:
        raise RuntimeFailure(f"Maestro init changed the outputs by {rel:.2e} (relative); expected <= 1e-4")
