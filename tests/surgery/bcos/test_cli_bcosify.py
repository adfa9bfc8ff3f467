"""`dnnkit bcosify` and `dnnkit explain` through the CLI: JSON fields, recipe reload, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dnnkit.cli.app import app

RUNNER = CliRunner()


def run(args: list[str]) -> tuple[int, dict | None, str]:
    res = RUNNER.invoke(app, args)
    out = res.stdout.strip()
    try:
        data = json.loads(out) if out else None
    except json.JSONDecodeError:
        data = None
    return res.exit_code, data, res.stderr if hasattr(res, "stderr") else res.output


@pytest.fixture(scope="module")
def converted(digits_cnn_ref: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("bcos") / "digits-bcos.safetensors"
    code, data, err = run(["bcosify", digits_cnn_ref, "--data", "digits", "-o", str(out), "--epochs", "1",
                           "--limit", "256", "--grids", "8", "--json"])
    assert code == 0, err
    return out, data


def test_bcosify_report_and_files(converted: tuple[Path, dict]) -> None:
    out, r = converted
    assert out.is_file()
    assert r["equivalence_max_abs"] <= 1e-5
    assert r["gap_reorder"]["applied"] is False and "flatten-FC head" in r["gap_reorder"]["reason"]
    assert r["modules"][0]["name"] == "0" and r["modules"][0]["to"] == "BcosConv2d"
    assert {m["to"] for m in r["modules"]} == {"BcosConv2d", "AvgPool2d", "BcosLinear"}
    assert len(r["accuracy"]["epochs"]) == 1 and 0 <= r["accuracy"]["final"] <= 1
    assert r["accuracy"]["original"] > 0.9
    assert r["completeness_error"]["inputs"] == 64 and r["completeness_error"]["median"] < 1e-5
    assert 0 <= r["grid_pointing"]["score"] <= 1
    assert r["logit_scale"] > 1  # no norm layer: calibrated
    for p in r["png"].values():
        assert Path(p).is_file() and Path(p).read_bytes()[:4] == b"\x89PNG"


def test_checkpoint_reloads_by_recipe_with_identical_logits(converted: tuple[Path, dict]) -> None:
    from dnnkit.data import load_data
    from dnnkit.models.registry import load_model
    from dnnkit.probes.explain.dynamic import is_bcos

    out, r = converted
    loaded = load_model(str(out))
    assert is_bcos(loaded.model)
    assert loaded.recipe[-1]["op"] == "bcosify" and loaded.recipe[-1]["params"]["b"] == 2.0
    x = load_data("digits", "test").x
    acc = float((loaded.model(x).argmax(1) == load_data("digits", "test").y).float().mean())
    assert acc == pytest.approx(r["accuracy"]["final"], abs=1e-6)
    assert "0.weight" not in loaded.model.state_dict() and loaded.model.state_dict()["net.0.weight"].shape[1] == 2


def test_explain_bcos_and_ixg(converted: tuple[Path, dict], digits_cnn_ref: str, tmp_path: Path) -> None:
    out, _ = converted
    png = tmp_path / "e.png"
    maps = tmp_path / "m.npz"
    code, r, err = run(["explain", str(out), "--data", "digits", "--index", "0,3,5", "-o", str(png),
                        "--save-maps", str(maps), "--dtype", "float64", "--json"])
    assert code == 0, err
    assert r["method"] == "dynamic" and r["b"] == 2.0 and len(r["inputs"]) == 3
    assert [row["index"] for row in r["inputs"]] == [0, 3, 5]
    assert r["completeness_error"]["max"] < 1e-10
    row = r["inputs"][0]
    assert row["contribution_sum"] == pytest.approx(row["logit"] - row["logit_bias"], rel=1e-9)
    assert png.read_bytes()[:4] == b"\x89PNG"
    z = np.load(maps)
    assert z["weights"].shape == (3, 2, 8, 8) and z["contributions"].shape == (3, 8, 8)
    code, r, err = run(["explain", digits_cnn_ref, "--data", "digits", "--index", "1", "--json", "--class", "3"])
    assert code == 0, err
    assert r["method"] == "ixg" and r["inputs"][0]["class"] == 3


@pytest.mark.parametrize("args,msg", [
    (["--b", "0.5"], "--b must be >= 1"),
    (["--b-warmup", "-1"], "--b-warmup"),
    (["--std", "-1"], "--std"),
    (["--encoding", "weird"], "--encoding"),
    (["--logit-scale", "zero"], "--logit-scale"),
])
def test_bcosify_bad_options(digits_cnn_ref: str, tmp_path: Path, args: list[str], msg: str) -> None:
    code, _, err = run(["bcosify", digits_cnn_ref, "--data", "digits", "-o", str(tmp_path / "o.safetensors"), *args])
    assert code == 2 and msg in err and "Traceback" not in err
    assert not (tmp_path / "o.safetensors").exists()


def test_bcosify_refuses_unsupported_architecture(digits_mlp_ref: str, tmp_path: Path) -> None:
    code, _, err = run(["bcosify", digits_mlp_ref, "--data", "digits", "-o", str(tmp_path / "o.safetensors")])
    assert code == 2 and "cannot B-cosify" in err and "Linear" in err


def test_bcosify_dry_run_writes_nothing(digits_cnn_ref: str, tmp_path: Path) -> None:
    out = tmp_path / "o.safetensors"
    code, r, err = run(["bcosify", digits_cnn_ref, "--data", "digits", "-o", str(out), "--dry-run", "--json"])
    assert code == 0, err
    assert r["dry_run"] is True and r["equivalence_max_abs"] <= 1e-5 and r["accuracy"]["original"] is None
    assert list(tmp_path.iterdir()) == []


def test_bcosify_existing_output_needs_force(digits_cnn_ref: str, tmp_path: Path) -> None:
    out = tmp_path / "o.safetensors"
    out.write_bytes(b"keep")
    code, _, err = run(["bcosify", digits_cnn_ref, "--data", "digits", "-o", str(out)])
    assert code == 2 and "already exists" in err and out.read_bytes() == b"keep"


def test_explain_bad_inputs(converted: tuple[Path, dict], digits_cnn_ref: str, tmp_path: Path) -> None:
    out, _ = converted
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((1, 5, 5), dtype=np.float32))
    bright = tmp_path / "bright.npy"
    np.save(bright, np.full((1, 8, 8), 3.0, dtype=np.float32))
    cases = [
        (["--data", "digits", "--index", "540"], "index 540 outside 0..539 of split test"),
        (["--input", str(wrong)], "1x5x5"),
        (["--input", str(bright)], "not pixels in [0, 1]"),
        (["--input", str(tmp_path / "none.npy")], "no such file"),
        (["--data", "digits"], "exactly one of --index"),
        (["--data", "digits", "--index", "0", "--input", str(wrong)], "exactly one of --index"),
        (["--data", "digits", "--index", "0", "--class", "10"], "--class 10 outside 0..9"),
    ]
    for extra, msg in cases:
        code, _, err = run(["explain", str(out), *extra])
        assert code == 2 and msg in err, (extra, err)
    code, _, err = run(["explain", digits_cnn_ref, "--data", "digits", "--index", "0", "--method", "dynamic"])
    assert code == 2 and "needs a B-cos network" in err


def test_explain_input_file(converted: tuple[Path, dict], tmp_path: Path) -> None:
    from dnnkit.data import load_data

    out, _ = converted
    f = tmp_path / "x.npy"
    np.save(f, load_data("digits", "test").x[0].numpy())
    code, r, err = run(["explain", str(out), "--input", str(f), "--json"])
    assert code == 0, err
    assert r["inputs"][0]["input"] == str(f) and r["inputs"][0]["label"] is None
    assert r["inputs"][0]["file"] == str(f) and r["inputs"][0]["index"] is None
    assert torch.isfinite(torch.tensor(r["inputs"][0]["completeness_error"]))


def test_bcosify_timm_vit_dry_run() -> None:
    pytest.importorskip("timm")
    ref = "timm:vit_tiny_patch16_224?num_classes=10&in_chans=1&img_size=8&patch_size=4&depth=1&embed_dim=24&num_heads=2"
    code, r, err = run(["bcosify", ref, "--data", "digits", "--dry-run", "--json"])
    assert code == 0, err
    assert r["gap_reorder"]["applied"] is False and "class-token" in r["gap_reorder"]["reason"]
    assert {"BcosAttention", "BcosLinear", "BiasFreeLayerNorm", "GatedActivation"} <= {m["to"] for m in r["modules"]}
    assert r["equivalence_max_abs"] < 1e-4
