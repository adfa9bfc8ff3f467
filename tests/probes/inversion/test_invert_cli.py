"""CLI tests of `dnnkit invert`: a tiny end-to-end run (train-prior, attack both spellings), dry runs, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dnnkit.cli.app import app

TINY = ["--per-class", "2", "--restarts", "2", "--steps", "30", "--evaluator-epochs", "3"]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="session")
def prior_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny shared:5-9 digits prior trained through the CLI (200 critic steps)."""
    out = tmp_path_factory.mktemp("prior") / "prior.safetensors"
    res = invoke("invert", "train-prior", "--data", "digits", "--steps", "200", "-o", str(out), "--json")
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="session")
def other_priors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A disjoint:5-9 prior and a prior of another image shape (library calls, a few steps)."""
    import torch

    from dnnkit.probes.inversion.prior import PriorConfig, save_prior, train_prior
    from dnnkit.probes.inversion.run import load_split_data, train_prior_on

    folder = tmp_path_factory.mktemp("priors")
    data = load_split_data("digits", "disjoint:5-9", 0)
    prior, meta = train_prior_on(data, PriorConfig(steps=10))
    save_prior(folder / "disjoint.safetensors", prior, meta, force=False)
    small, hist = train_prior(torch.rand(32, 1, 6, 6), PriorConfig(steps=10))
    save_prior(folder / "small.safetensors", small, {"data": data.summary() | {"split": "shared:5-9"},
                                                     "history": hist}, force=False)
    return {"disjoint": folder / "disjoint.safetensors", "small": folder / "small.safetensors"}


def test_invert_without_arguments_shows_help_and_exits_2() -> None:
    res = invoke("invert")
    assert res.exit_code == 2 and "train-prior" in res.stderr and "Traceback" not in res.output


def test_train_prior_writes_prior_and_sample_grid(prior_path: Path) -> None:
    from dnnkit.probes.inversion.prior import load_prior

    assert prior_path.with_name("prior.samples.png").read_bytes()[:4] == b"\x89PNG"
    assert prior_path.with_name("prior.progress.png").read_bytes()[:4] == b"\x89PNG"
    prior = load_prior(prior_path)
    assert prior.image_shape == (1, 8, 8) and prior.config.z_dim == 20 and prior.config.arch == "mlp"
    assert prior.meta["data"]["split"] == "shared:5-9" and len(prior.public_hashes) == prior.meta["data"]["n_public"]
    assert "snapshots" not in prior.meta and len(prior.meta["history"]["step"]) == 10


def test_train_prior_dry_run_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "p.safetensors"
    res = invoke("invert", "train-prior", "--data", "digits", "--steps", "5", "-o", str(out), "--dry-run", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["dry_run"] is True and report["prior"]["steps"] == 5 and report["data"]["n_public"] > 0
    assert list(tmp_path.iterdir()) == []


def test_attack_end_to_end(prior_path: Path, digits_mlp_ref: str, tmp_path: Path) -> None:
    out = tmp_path / "audit"
    res = invoke("invert", digits_mlp_ref, "--prior", str(prior_path), "--target-class", "8", "--target-class", "5",
                 *TINY, "-o", str(out), "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["attack"]["classes_attacked"] == [5, 8]
    assert set(report["results"]) == {"gmi", "pixel"} and set(report["references"]) == {"noise", "public",
                                                                                         "prior_samples"}
    keys = {"top1", "top5", "top5_informative", "target_top1", "knn1_top1", "knn_dist", "feat_dist", "psnr",
            "nearest_pixel_l2sq", "leak_ratio", "diversity", "distinct", "frechet", "per_class"}
    for block in (*report["results"].values(), *report["references"].values()):
        assert keys <= set(block) and set(block["per_class"]) == {"5", "8"} and block["n"] == 4
        assert block["top5_informative"] is False
    assert report["evaluator"]["classes"] == 10 and report["evaluator"]["ref"] == "auto"
    assert report["data"]["split"] == "shared:5-9" and report["target"]["sha256"]
    assert {"grid_compare.png", "grid_gmi.png", "grid_pixel.png", "prior_samples.png", "report.json",
            "reconstructions.safetensors"} == {p.name for p in out.iterdir()}
    assert json.loads((out / "report.json").read_text())["results"]["gmi"]["n"] == 4
    from dnnkit.models.safetensors_io import load_tensors

    rec = load_tensors(out / "reconstructions.safetensors")
    assert tuple(rec["gmi.images"].shape) == (4, 1, 8, 8) and rec["pixel.classes"].tolist() == [5, 5, 8, 8]


def test_attack_subcommand_spelling_dry_run_and_no_evaluator(prior_path: Path, digits_mlp_ref: str,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "audit"
    res = invoke("invert", "attack", digits_mlp_ref, "--prior", str(prior_path), "--targets", "6", "--method", "gmi",
                 "--evaluator", "none", *TINY, "-o", str(out), "--dry-run", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert set(report["results"]) == {"gmi"} and report["dry_run"] is True
    assert any("no independent evaluator" in w for w in report["warnings"])
    assert not out.exists()


def _bad(res, needle: str) -> None:
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], res.stderr
    assert "Traceback" not in res.output


@pytest.mark.parametrize("extra,needle", [
    (["--target-class", "12"], "out of range"),
    (["--target-class", "3"], "not a private class"),
    (["--targets", "5-6", "--target-labels", "5,6"], "--target-labels"),
    (["--steps", "0"], "--steps"),
    (["--per-class", "0"], "--per-class"),
    (["--lr", "0"], "--lr"),
    (["--momentum", "1"], "--momentum"),
    (["--method", "magic"], "--method"),
    (["--evaluator", "timm:resnet18?num_classes=5&in_chans=1"], "evaluator knows 5 of 10 classes"),
    (["--evaluator", "zoo:digits-mlp"], "target's weights"),
])
def test_attack_bad_inputs(extra: list[str], needle: str, prior_path: Path, digits_mlp_ref: str,
                           tmp_path: Path) -> None:
    out = tmp_path / "audit"
    _bad(invoke("invert", digits_mlp_ref, "--prior", str(prior_path), *TINY, *extra, "-o", str(out)), needle)
    assert not out.exists()


def test_attack_bad_priors(other_priors: dict[str, Path], prior_path: Path, digits_mlp_ref: str,
                           tmp_path: Path) -> None:
    out = tmp_path / "audit"
    _bad(invoke("invert", digits_mlp_ref, "--prior", str(other_priors["disjoint"]), "--target-class", "2",
                *TINY, "-o", str(out)), "public class under the disjoint split")
    _bad(invoke("invert", digits_mlp_ref, "--prior", str(other_priors["small"]), *TINY, "-o", str(out)),
         "shape (1, 6, 6)")
    _bad(invoke("invert", digits_mlp_ref, "--prior", str(prior_path.with_name("prior.samples.png")), *TINY, "-o",
                str(out)), "prior")
    out.mkdir()
    _bad(invoke("invert", digits_mlp_ref, "--prior", str(prior_path), *TINY, "-o", str(out)), "already exists")
    assert list(out.iterdir()) == []


def test_closed_set_evaluator_allowed_with_a_warning(prior_path: Path, digits_mlp_ref: str) -> None:
    res = invoke("invert", digits_mlp_ref, "--prior", str(prior_path), "--target-class", "7", "--per-class", "1",
                 "--restarts", "1", "--steps", "3", "--evaluator", "timm:resnet18?num_classes=5&in_chans=1",
                 "--allow-closed-set-evaluator", "--dry-run", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["evaluator"]["classes"] == 5
    assert any("evaluator knows 5 of 10" in w for w in report["warnings"])
