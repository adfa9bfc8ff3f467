"""`dnnkit hash-codes` end to end: a zoo model, a tiny sweep, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from click.testing import CliRunner

from dnnkit.cli.app import app

CMD = typer.main.get_command(app)


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(CMD, list(args))
    return res.exit_code, res.stdout, res.stderr


def test_zoo_model_report_and_codes(digits_mlp_ref: str, tmp_path: Path) -> None:
    out = tmp_path / "hc"
    code, stdout, stderr = run("hash-codes", digits_mlp_ref, "--data", "digits", "--max-train", "200",
                               "--kmeans-init", "1", "--json", "-o", str(out), "--codes-out", "codes.npz")
    assert code == 0, stderr
    r = json.loads(stdout)
    assert r["bits_total"] == 256 * 4 + 128 and 0 < r["bits_kept"] <= r["bits_total"]
    assert r["n_train"] + r["n_test"] == 1797
    assert 0 <= r["rr_test"] <= 1 and r["unique_test"] <= r["n_test"]
    assert r["knn_test"] > 0.6 and r["lr_test"] > 0.6 and r["raw"]["knn"] > 0.8  # 200 training codes
    assert [layer["calls"] for layer in r["layers"]] == [1] * 5
    saved = np.load(out / "codes.npz", allow_pickle=False)
    assert saved["test"].shape == (r["n_test"], (r["bits_kept"] + 7) // 8)
    assert int(saved["kept_mask"].sum()) == r["bits_kept"]
    assert (out / "bits_per_layer.png").exists() and (out / "report.json").exists()


def test_width_sweep(tmp_path: Path) -> None:
    code, stdout, stderr = run("hash-codes", "--sweep", "width", "--data", "digits", "--widths", "3,40",
                               "--epochs", "3", "--seeds", "1", "--no-raw", "--max-train", "300", "--kmeans-init", "1",
                               "--json", "-o", str(tmp_path / "sw"))
    assert code == 0, stderr
    rows = {row["x"]: row["mean"] for row in json.loads(stdout)["sweep"]["rows"]}
    assert set(rows) == {3, 40}
    assert rows[3]["bits_kept"] <= 3 < rows[40]["bits_kept"]
    assert rows[3]["rr_test"] > rows[40]["rr_test"]
    assert (tmp_path / "sw" / "sweep_width.png").exists()


@pytest.mark.parametrize("args,needle", [
    (["zoo:digits-mlp", "--sweep", "width"], "no MODEL"),
    (["--sweep", "width", "--depth", "3", "--widths", "2,10"], "at least --depth"),
    (["zoo:digits-mlp", "--layers", "nothing*"], "matches no"),
    (["zoo:digits-mlp", "--code", "nope"], "binary or pooled"),
    (["zoo:digits-mlp", "--max-bits", "10"], "--max-bits"),
    (["zoo:digits-mlp", "--data", "fashion-mnist"], "expects"),
])
def test_bad_input(digits_mlp_ref: str, args: list[str], needle: str) -> None:
    code, stdout, stderr = run("hash-codes", *args)
    assert code == 2, stderr
    assert needle in stderr and "Traceback" not in stderr
    assert stdout == ""
