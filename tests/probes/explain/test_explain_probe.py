"""Explanation probe: colour image recipe, pointing-game scoring, input x gradient, PNG writing."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dnnkit.probes.explain.dynamic import input_x_gradient
from dnnkit.probes.explain.pointing import make_grids, pointing_scores, sliding_explain
from dnnkit.probes.explain.render import Row, colour_image, default_smooth, save_rows


def test_default_smooth() -> None:
    assert default_smooth(224) == 15 and default_smooth(8) == 1 and default_smooth(56) == 3


def test_colour_image_grey_shades_and_alpha_masking() -> None:
    w = torch.zeros(2, 3, 3, dtype=torch.float64)
    w[0] = 2.0  # weight on x only -> shade 1
    w[1, 1, 1] = 4.0  # centre pixel: weight on 1 - x dominates -> dark shade
    w[0, 1, 1] = 1.0
    r = torch.ones(3, 3)
    r[0, 0] = -1.0  # negative contribution -> transparent
    img = colour_image(w, r, smooth=1)
    assert img.shape == (3, 3, 4)
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
    assert abs(img[0, 1, 0] - 1.0) < 1e-6 and abs(img[1, 1, 0] - 0.2) < 1e-6  # 0.25 / (0.25 + 1)
    assert img[0, 0, 3] == 0 and img[..., 3].max() <= 1


def test_pointing_scores_and_grids() -> None:
    r = torch.zeros(2, 4, 4)
    r[0, :2, :2] = 1.0  # all positive mass in cell 0
    r[1] = 1.0
    r[1, 2:, 2:] = -5.0  # negatives do not count
    s = pointing_scores(r, 0)
    assert torch.allclose(s, torch.tensor([1.0, 4 / 12]))
    x = torch.rand(40, 1, 2, 2)
    y = torch.arange(40) % 5
    grids, cells = make_grids(x, y, torch.arange(40), 6, seed=0)
    assert grids.shape == (6, 1, 4, 4)
    assert all(len(set(c.tolist())) == 4 for c in cells)


def test_sliding_window_sums_contributions() -> None:
    grids = torch.ones(1, 1, 4, 4)
    out = sliding_explain(lambda xb, cb: xb.sum(1), grids, torch.zeros(1, dtype=torch.long), (2, 2))
    assert out[0, 0, 0] == 1 and out[0, 1, 1] == 4  # centre pixels are covered by 4 windows


def test_input_x_gradient_complete_for_bias_free_linear_model() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3, bias=False))
    x = torch.rand(4, 1, 4, 4)
    exp = input_x_gradient(model, x)
    assert float(exp.completeness_error.max()) < 1e-5
    biased = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    nn.init.constant_(biased[1].bias, 5.0)
    assert float(input_x_gradient(biased, x).completeness_error.min()) > 1e-3


def test_save_rows_writes_png(tmp_path: Path) -> None:
    w = torch.rand(2, 8, 8)
    rows = [Row(torch.rand(1, 8, 8), torch.randn(8, 8), colour_image(w, torch.ones(8, 8)), "a"),
            Row(torch.rand(1, 8, 8), torch.randn(8, 8), None, "b", extra=[("ixg", torch.randn(8, 8))])]
    out = save_rows(tmp_path / "x.png", rows)
    assert out.read_bytes()[:4] == b"\x89PNG" and [p.name for p in tmp_path.iterdir()] == ["x.png"]
