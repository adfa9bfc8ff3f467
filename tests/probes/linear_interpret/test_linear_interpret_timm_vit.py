"""`dnnkit linear-interpret` on a timm ViT folder: timm's LayerNorm subclass and softmax Attention are frozen."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from click.testing import CliRunner

from dnnkit.cli.app import app

CMD = typer.main.get_command(app)
timm = pytest.importorskip("timm")


@pytest.fixture(scope="module")
def vit_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from timm.models._hub import save_for_hf

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10, img_size=32, patch_size=8)
    folder = tmp_path_factory.mktemp("vit") / "vit-tiny"
    save_for_hf(model, str(folder), safe_serialization=True)
    return folder


def test_timm_vit_is_interpreted_exactly_at_x0(vit_folder: Path, tmp_path: Path) -> None:
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).random((3, 32, 32), dtype=np.float32))
    res = CliRunner().invoke(CMD, ["linear-interpret", str(vit_folder), "--input", str(x), "--json"])
    assert res.exit_code == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["units"] == {"LayerNorm": 25, "Attention": 12, "GELU": 12}  # timm.layers.LayerNorm subclasses
    assert {"attention", "norm", "smooth-secant"} <= set(r["rules"]) and not r["piecewise_linear"]
    assert r["exact_at_x0"] and r["linearity_error"] < 1e-4
    item = r["items"][0]
    assert item["identity_error"] < 1e-5 and item["jacobian_error"] is None and 0 < item["local_error"] < 0.5
