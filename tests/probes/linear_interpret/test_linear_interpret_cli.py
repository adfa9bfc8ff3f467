"""`dnnkit linear-interpret` end to end on zoo:digits-cnn: identity, JSON fields, PNGs, bad input."""

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


def test_rows_identity_and_eval(digits_cnn_ref: str, tmp_path: Path) -> None:
    out = tmp_path / "li"
    code, stdout, stderr = run("linear-interpret", digits_cnn_ref, "--data", "digits", "--index", "3", "--count", "2",
                               "--outputs", "all", "--columns", "0,27", "--svd", "2", "--eval", "60", "--json",
                               "-o", str(out))
    assert code == 0, stderr
    r = json.loads(stdout)
    assert r["piecewise_linear"] and r["exact_at_x0"]
    assert r["units"] == {"ReLU": 4, "MaxPool2d": 2}
    for it in r["items"]:
        assert it["identity_error"] <= 1e-5
        assert it["jacobian_error"] <= 1e-4
        assert it["columns_vs_rows_error"] <= 1e-4
        assert 0 <= it["bias_share"] <= 1
        logits, c, ax = map(np.array, (it["logits"], it["c"], it["Ax"]))
        assert np.allclose(c + ax, logits, atol=1e-5)
        assert abs(it["vote_sum"] - ax[it["pred"]]) <= 1e-4 * max(1.0, abs(ax[it["pred"]]))
        assert len(it["top_singular_values"]) == 2
    ev = r["eval"]
    assert ev["n"] == 60 and ev["acc_full"] > 0.8 and 0 <= ev["acc_Ax_only"] <= 1
    files = {p.name for p in out.iterdir()}
    assert {"report.json", "item_3.png", "item_4.png", "columns_3.png", "svd_3.png", "bias_share.png"} <= files
    assert json.loads((out / "report.json").read_text())["items"][0]["index"] == 3


def test_input_file_float64(digits_cnn_ref: str, tmp_path: Path) -> None:
    arr = np.random.default_rng(0).random((1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", arr)
    code, stdout, stderr = run("linear-interpret", digits_cnn_ref, "--input", str(tmp_path / "x.npy"),
                               "--dtype", "float64", "--json")
    assert code == 0, stderr
    r = json.loads(stdout)
    assert r["items"][0]["identity_error"] <= 1e-10 and r["exact_at_x0"]


@pytest.mark.parametrize("args,needle", [
    (["--data", "digits", "--index", "100000"], "out of range"),
    (["--data", "digits"], "exactly one of"),
    (["--data", "digits", "--index", "0", "--outputs", "12"], "outputs 0..9"),
    (["--data", "digits", "--index", "0", "--columns", "64"], "outside the input"),
    (["--data", "digits", "--index", "0", "--dtype", "float16"], "float32 or float64"),
    (["--data", "nope", "--index", "0"], "unknown --data"),
])
def test_bad_input(digits_cnn_ref: str, args: list[str], needle: str) -> None:
    code, stdout, stderr = run("linear-interpret", digits_cnn_ref, *args)
    assert code == 2
    assert needle in stderr and "Traceback" not in stderr
    assert stdout == ""


def test_bad_input_file_shape_and_existing_output(digits_cnn_ref: str, tmp_path: Path) -> None:
    np.save(tmp_path / "bad.npy", np.zeros((3, 5, 5), dtype=np.float32))
    code, _, stderr = run("linear-interpret", digits_cnn_ref, "--input", str(tmp_path / "bad.npy"))
    assert code == 2 and "5x5" in stderr and "1x8x8" in stderr
    out = tmp_path / "exists"
    out.mkdir()
    code, _, stderr = run("linear-interpret", digits_cnn_ref, "--data", "digits", "--index", "0", "-o", str(out))
    assert code == 2 and "already exists" in stderr
    code, stdout, _ = run("linear-interpret", digits_cnn_ref, "--data", "digits", "--index", "0", "-o",
                          str(tmp_path / "new"), "--dry-run", "--json")
    assert code == 0 and json.loads(stdout)["dry_run"] and not (tmp_path / "new").exists()
