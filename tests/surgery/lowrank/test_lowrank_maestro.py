"""Maestro: ordered dropout over rank, hierarchical group lasso, progressive shrinking, export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from dnnkit.cli.app import app
from dnnkit.nn.lowrank import LowRankConv2d, LowRankLinear
from dnnkit.surgery.lowrank.maestro import RankSampler, budget_ranks, group_lasso, importances, tail_norms
from dnnkit.surgery.lowrank.select import Candidate


def test_tail_norms_and_importances_are_monotone() -> None:
    layer = LowRankLinear(6, 5, 4)
    with torch.no_grad():
        layer.up.weight.copy_(torch.arange(20.0).reshape(5, 4))
        layer.down.weight.copy_(torch.ones(4, 6))
    tu, tv = tail_norms(layer)
    u = layer.up.weight
    assert float(tu[2].detach()) == pytest.approx(float(u[:, 2:].detach().norm()))
    assert float(tv[0].detach()) == pytest.approx(float(layer.down.weight.detach().norm()))
    s = importances(layer)
    assert (s[1:] <= s[:-1]).all()
    gl = group_lasso({"a": layer})
    gl.backward()
    assert layer.up.weight.grad is not None


def test_active_rank_uses_a_prefix_of_the_components() -> None:
    torch.manual_seed(0)
    layer = LowRankLinear(7, 5, 4)
    x = torch.randn(3, 7)
    layer.active_rank = 2
    want = x @ layer.down.weight[:2].t() @ layer.up.weight[:, :2].t() + layer.up.bias
    assert torch.allclose(layer(x), want, atol=1e-6)
    layer.active_rank = 0
    assert torch.allclose(layer(x), layer.up.bias.expand(3, 5))
    conv = LowRankConv2d(nn.Conv2d(3, 6, 3, padding=1), 4)
    xi = torch.randn(2, 3, 5, 5)
    conv.active_rank = 2
    d = nn.functional.conv2d(xi, conv.down.weight[:2], padding=1)
    assert torch.allclose(conv(xi), nn.functional.conv2d(d, conv.up.weight[:, :2], conv.up.bias), atol=1e-5)
    conv.active_rank = 0
    assert torch.allclose(conv(xi), conv.up.bias.view(1, -1, 1, 1).expand(2, 6, 5, 5))


def test_samplers() -> None:
    mods = {"a": LowRankLinear(4, 4, 4), "b": LowRankLinear(4, 4, 3)}
    ranks = {"a": 4, "b": 2}
    ind = RankSampler(mods, ranks, "independent", 0)
    for _ in range(20):
        ind(None)
        assert 1 <= mods["a"].active_rank <= 4 and 1 <= mods["b"].active_rank <= 2
    pair = RankSampler(mods, ranks, "pair", 0)
    seen = set()
    for _ in range(6):  # one pass over all (layer, b) pairs
        pair(None)
        active = {n: m.active_rank for n, m in mods.items() if m.active_rank is not None}
        assert len(active) == 1
        seen.add(next(iter(active.items())))
    assert seen == {("a", 1), ("a", 2), ("a", 3), ("a", 4), ("b", 1), ("b", 2)}


def test_budget_drops_lowest_importance_per_parameter() -> None:
    torch.manual_seed(0)
    mods = {"a": LowRankLinear(10, 10, 10), "b": LowRankLinear(10, 10, 10)}
    with torch.no_grad():
        mods["b"].up.weight.mul_(100)  # b's components matter more
    cands = {n: Candidate(n, "linear", 10, 10, (10, 10)) for n in mods}
    ranks = budget_ranks(mods, cands, {"a": 10, "b": 10}, 0.5)
    assert sum(min(r * 20, 100) for r in ranks.values()) <= 100
    assert ranks["b"] > ranks["a"]


def run(*args: str) -> tuple[int, dict | None, str]:
    result = CliRunner().invoke(app, list(args))
    out = json.loads(result.stdout) if result.exit_code == 0 and "--json" in args else None
    return result.exit_code, out, result.output


def test_maestro_cli_trains_shrinks_exports_and_reloads(digits_mlp_ref: str, tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    code, rep, text = run("lowrank", digits_mlp_ref, "--maestro", "--data", "digits", "--epochs", "2",
                          "--lambda-gl", "1e-3", "--eps", "0.5", "--params", "0.3", "--eval-limit", "100",
                          "-o", str(out), "--json")
    assert code == 0, text
    m = rep["maestro"]
    assert m["epochs"] == 2 and len(m["train_loss"]) == 2 and len(m["eval_metric"]) == 2
    for traj in m["rank_trajectory"].values():
        assert len(traj) == 2 and traj[1] <= traj[0]
    assert any("fewer than 20 visits" in w for w in rep["warnings"])
    sel = rep["totals"]["selected"]
    assert sel["params_after"] <= 0.3 * sel["params_before"]
    assert set(rep["plots"]) >= {"ranks", "tradeoff"}
    from dnnkit.models.registry import load_model
    from dnnkit.surgery.lowrank.fidelity import unique_params

    again = load_model(str(out))
    assert again.recipe[-1]["params"]["method"] == "maestro"
    assert unique_params(again.model) == rep["totals"]["model"]["params_after"]
    from dnnkit.data import load_data, subset_indices

    test = load_data("digits", "test")
    test = test.take(subset_indices(len(test), 100, 0))  # the --eval-limit subset (seed 0)
    with torch.no_grad():
        acc = float((again.model(test.x).argmax(-1) == test.y).double().mean())
    assert acc == pytest.approx(rep["fidelity"]["factored"]["accuracy"], abs=1e-9)


def test_maestro_from_scratch_and_pair_sampler(digits_cnn_ref: str) -> None:
    from dnnkit.models.registry import load_model
    from dnnkit.surgery.lowrank.api import LowRankConfig, lowrank

    loaded = load_model(digits_cnn_ref)
    cfg = LowRankConfig(method="maestro", data="digits", epochs=1, from_scratch=True, sampler="pair",
                        eps=1e9, min_rank=2, eval_limit=64, train_limit=256)
    res = lowrank(loaded, cfg)
    final = res.report["maestro"]["final_ranks"]
    assert set(final.values()) == {2}  # eps above every importance: shrink to --min-rank
    assert res.report["maestro"]["from_scratch"] and res.report["maestro"]["lr"] == 3e-3
    assert res.step["layers"] and all(v["rank"] == 2 for v in res.step["layers"].values())
