"""Bad input to `dnnkit export`: exit 2 (or 1 for a failed check), one error line, nothing written."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dnnkit.cli.app import app

DATA_DEPENDENT = '''
from torch import nn


class Gate(nn.Module):
    def forward(self, x):
        if x.mean() > 0.5:  # Python control flow on a tensor value
            return x * 2
        return x


def build():
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), Gate(), nn.Linear(16, 10))
    net.dnnkit_info = {"task": "classifier", "input_shape": [1, 8, 8], "num_classes": 10, "data": "digits"}
    return net
'''


def cli(*args: object):
    return CliRunner().invoke(app, ["export", *[str(a) for a in args]])


def assert_one_error(res, code: int, text: str) -> None:
    assert res.exit_code == code, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and text in lines[0], res.stderr
    assert "Traceback" not in res.stderr


def test_bad_suffix(digits_mlp_ref, tmp_path):
    assert_one_error(cli(digits_mlp_ref, "-o", tmp_path / "m.tflite"), 2, "must end in .onnx or .pt2")
    assert_one_error(cli(digits_mlp_ref, "--format", "pt2", "-o", tmp_path / "m.onnx"), 2, "does not match")
    assert_one_error(cli(digits_mlp_ref, "--dry-run"), 2, "give -o FILE.onnx or FILE.pt2")
    assert list(tmp_path.iterdir()) == []


def test_untraceable_module_is_named(tmp_path):
    import torch
    from safetensors.torch import save_file

    arch = tmp_path / "gated.py"
    arch.write_text(DATA_DEPENDENT)
    namespace: dict = {}
    exec(compile(DATA_DEPENDENT, str(arch), "exec"), namespace)
    torch.manual_seed(0)
    weights = tmp_path / "gated.safetensors"
    save_file(namespace["build"]().state_dict(), str(weights))
    for suffix in ("onnx", "pt2"):
        res = cli(weights, "--arch", f"py:{arch}:build", "-o", tmp_path / f"g.{suffix}")
        assert_one_error(res, 2, "in module '2', Gate")
        assert "torch.cond" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gated.py", "gated.safetensors"]


def test_onnxruntime_missing(digits_mlp_ref, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    res = cli(digits_mlp_ref, "-o", tmp_path / "m.onnx")
    assert_one_error(res, 2, "needs onnxruntime")
    assert "pip install" in res.stderr and list(tmp_path.iterdir()) == []


def test_check_above_atol_writes_nothing(digits_mlp_ref, tmp_path):
    res = cli(digits_mlp_ref, "--atol", "1e-12", "--rtol", "0", "-o", tmp_path / "m.onnx")
    assert_one_error(res, 1, "above the tolerance")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("args", "text"), [
    (["--explain"], "needs a B-cos network"),
    (["--opset", "18", "--format", "pt2"], "--opset applies to .onnx"),
    (["--existing"], "already exists"),
])
def test_option_errors(digits_mlp_ref, tmp_path, args, text):
    out = tmp_path / ("m.pt2" if "pt2" in args else "m.onnx")
    if "--existing" in args:
        out.write_bytes(b"keep")
        args = []
    res = cli(digits_mlp_ref, *args, "-o", out) if "--format" not in args else cli(digits_mlp_ref, *args,
                                                                                     "-o", tmp_path / "m.pt2")
    assert_one_error(res, 2, text)
    assert not out.exists() or out.read_bytes() == b"keep"
