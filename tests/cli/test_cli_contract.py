import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file


def test_help_and_version_do_not_import_torch():
    code = ("import sys; from dnnkit.cli.app import main; sys.argv=['dnnkit','--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', [m for m in ('torch','transformers','timm','triton','rich') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in out.stdout
    ver = subprocess.run([sys.executable, "-m", "dnnkit", "--version"], capture_output=True, text=True, timeout=60)
    assert ver.returncode == 0 and ver.stdout.startswith("dnnkit ")


def test_inspect_json_header_only(cli, tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"a.weight": torch.zeros(4, 3), "a.bias": torch.ones(4)}, str(path))
    report = cli.json("inspect", path)
    assert report["format"] == "safetensors" and report["num_params"] == 16
    assert report["architecture"] is None
    assert {t["name"] for t in report["tensors"]} == {"a.weight", "a.bias"}
    assert "stats" not in report["tensors"][0]


def test_inspect_stats_reports_nan_and_zeros(cli, tmp_path):
    w = torch.zeros(10)
    w[3] = float("nan")
    w[4] = float("inf")
    w[5] = 2.0
    path = tmp_path / "nan.safetensors"
    save_file({"w": w}, str(path))
    result = cli("inspect", path, "--stats", "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    st = report["tensors"][0]["stats"]
    assert st["nan"] == 1 and st["inf"] == 1 and st["zeros"] == 7 and st["max"] == 2.0
    assert report["nonfinite_tensors"] == 1
    assert "warning: non-finite values in w" in result.stderr


def test_inspect_human_table(cli, digits_mlp_ref):
    result = cli("inspect", digits_mlp_ref)
    assert result.exit_code == 0
    assert "provenance" in result.stdout and "1.weight" in result.stdout


@pytest.mark.parametrize("make, match", [
    (lambda d: d / "missing.safetensors", "no such file"),
    (lambda d: d, "has no weights"),
    (lambda d: (d / "rand.safetensors").write_bytes(bytes(range(200))) and d / "rand.safetensors",
     "not a valid safetensors"),
])
def test_inspect_bad_inputs(cli, tmp_path, make, match):
    target = make(tmp_path)
    result = cli("inspect", target)
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and match in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_unknown_and_ambiguous_references(cli):
    assert cli("inspect", "whatisthis").exit_code == 2
    result = cli("inspect", "someorg/somemodel")
    assert result.exit_code == 2 and "hf:someorg/somemodel" in result.stderr


def test_eval_classifier_json(cli, digits_mlp_ref):
    report = cli.json("eval", digits_mlp_ref, "--data", "digits")
    assert report["task"] == "classifier" and report["samples"] == 540 and report["accuracy"] > 0.9


def test_eval_bad_data_and_usage(cli, digits_mlp_ref):
    result = cli("eval", digits_mlp_ref, "--data", "nope")
    assert result.exit_code == 2 and "unknown --data" in result.stderr
    assert cli("eval", digits_mlp_ref, "--batch-size", "0").exit_code == 2
    assert cli("eval", digits_mlp_ref, "--no-such-flag").exit_code == 2
    result = cli("eval", digits_mlp_ref, "--data", "wiki")
    assert result.exit_code == 2 and "is text" in result.stderr


def test_eval_wrong_image_shape(cli, digits_mlp_ref, tmp_path):
    import numpy as np

    npz = tmp_path / "d.npz"
    np.savez(npz, x=np.random.rand(20, 1, 5, 5).astype("float32"), y=np.array([0, 1] * 10))
    result = cli("eval", digits_mlp_ref, "--data", f"npz:{npz}")
    assert result.exit_code == 2 and "expects 1x8x8" in result.stderr


def test_config_file_supplies_options(cli, digits_mlp_ref, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: digits\nlimit: 50\n")
    result = cli("--config", cfg, "eval", digits_mlp_ref, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["samples"] == 50
    result = cli("--config", cfg, "eval", digits_mlp_ref, "--limit", "20", "--json")
    assert json.loads(result.stdout)["samples"] == 20
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    assert cli("--config", bad, "eval", digits_mlp_ref).exit_code == 2


def test_zoo_list(cli):
    report = cli.json("zoo", "list")
    names = {m["name"] for m in report["models"]}
    assert {"zoo:digits-mlp", "zoo:digits-cnn", "zoo:fashion-cnn", "zoo:minilm", "zoo:smollm2-135m"} <= names


def test_unknown_zoo_model(cli):
    result = cli("inspect", "zoo:nope")
    assert result.exit_code == 2 and "unknown zoo model" in result.stderr


def test_json_output_is_one_object(cli, digits_mlp_ref):
    result = cli("inspect", digits_mlp_ref, "--json")
    assert len(result.stdout.strip().splitlines()) == 1
