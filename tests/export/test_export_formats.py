"""`dnnkit export` of every surgery's output to .onnx and .pt2: the file runs in its own runtime and agrees
with the torch model; low-rank layers stay factored; pruned weights stay exact zeros."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dnnkit.cli.app import app
from dnnkit.data import load_data
from dnnkit.models.registry import load_model

SURGERIES = ["plain", "prune", "lowrank", "bcosify", "swap-projection"]


def export(*args: object) -> dict:
    res = CliRunner().invoke(app, ["export", *[str(a) for a in args], "--json"])
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def run_file(path: str, x: torch.Tensor) -> list[np.ndarray]:
    """Run the exported file with nothing of dnnkit: onnxruntime, or torch.export.load."""
    if path.endswith(".onnx"):
        import onnxruntime as ort

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x.numpy()})
    out = torch.export.load(path).module()(x)
    return [t.detach().numpy() for t in (out if isinstance(out, tuple) else (out,))]


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
@pytest.mark.parametrize("surgery", SURGERIES)
def test_every_surgery_output_exports_and_runs(surgery_outputs, tmp_path, surgery, fmt):
    ref = surgery_outputs[surgery]
    out = tmp_path / f"model.{fmt}"
    report = export(ref, "-o", out)
    assert out.is_file() and report["output"] == str(out) and report["file_size"] == out.stat().st_size
    check = report["check"]
    assert check["passed"] and check["samples"] == 64 and check["max_abs_diff"] <= check["tolerance"]
    assert check["max_rel_diff"] <= 1e-5
    assert check["top1_agreement"] == 1.0
    assert report["inputs"] == [{"name": "input", "shape": ["batch", 1, 8, 8], "dtype": "float32"}]
    assert report["outputs"] == [{"name": "logits", "shape": ["batch", 10], "dtype": "float32"}]
    assert (report["opset"] is not None) == (fmt == "onnx")
    # a batch size the export never saw (dynamic batch), on the model as dnnkit loads it
    x = load_data("digits", "test").x[:5]
    with torch.no_grad():
        want = load_model(ref).model(x).numpy()
    (got,) = run_file(str(out), x)
    assert got.shape == (5, 10) and np.abs(got - want).max() <= 1e-4 + 1e-5 * np.abs(want).max()


def _initializer_shapes(path) -> list[tuple[int, ...]]:
    import onnx
    from onnx import numpy_helper

    return [tuple(numpy_helper.to_array(t).shape) for t in onnx.load(str(path)).graph.initializer]


def test_lowrank_layers_stay_factored(surgery_outputs, tmp_path):
    from dnnkit.nn.lowrank import LOWRANK_TYPES, dense_shape

    ref = surgery_outputs["lowrank"]
    net = load_model(ref).model
    factored = [m for m in net.modules() if isinstance(m, LOWRANK_TYPES)]
    assert factored
    out = tmp_path / "lr.onnx"
    report = export(ref, "-o", out)
    shapes = _initializer_shapes(out)
    for m in factored:
        down = tuple(m.down.weight.shape)
        assert down in shapes or down[::-1] in shapes or down[:2][::-1] + down[2:] in shapes
        dense = tuple(dense_shape(m))
        assert dense not in shapes and dense[:2][::-1] + dense[2:] not in shapes
    dense_layers = sum(isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) for m in net.modules()) - 2 * len(factored)
    ops = report["graph"]["ops"]
    assert sum(ops.get(k, 0) for k in ("Conv", "Gemm", "MatMul")) == dense_layers + 2 * len(factored)
    pt2 = export(ref, "-o", tmp_path / "lr.pt2")["graph"]["ops"]
    assert sum(pt2.get(k, 0) for k in ("conv2d.default", "linear.default")) == dense_layers + 2 * len(factored)


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_pruned_weights_stay_exact_zeros(surgery_outputs, tmp_path, fmt):
    report = export(surgery_outputs["prune"], "-o", tmp_path / f"p.{fmt}")
    w = report["weights"]
    assert w["model_zeros"] > 0.5 * w["model_values"] * 0.9
    assert w["file_zeros"] >= w["model_zeros"]


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_bcos_explain_exports_the_contribution_maps(surgery_outputs, tmp_path, fmt):
    from dnnkit.probes.explain.dynamic import explain_dynamic

    ref = surgery_outputs["bcosify"]
    out = tmp_path / f"x.{fmt}"
    report = export(ref, "--explain", "-o", out)
    assert report["explain"] and report["check"]["passed"]
    assert [o["name"] for o in report["outputs"]] == ["logits", "contributions"]
    assert report["outputs"][1]["shape"] == ["batch", 8, 8]
    x = load_data("digits", "test").x[10:17]
    exp = explain_dynamic(load_model(ref).model, x)
    logits, contributions = run_file(str(out), x)
    assert np.abs(contributions - exp.contributions.numpy()).max() < 1e-4
    assert (logits.argmax(-1) == exp.predicted.numpy()).all()
    # completeness survives export: the maps sum to the logit minus the fixed bias
    picked = logits[np.arange(len(x)), logits.argmax(-1)] - load_model(ref).model.logit_bias
    assert np.allclose(contributions.reshape(len(x), -1).sum(1), picked, rtol=1e-3, atol=1e-3)


def test_static_batch_and_dry_run(surgery_outputs, tmp_path):
    report = export(surgery_outputs["plain"], "--format", "pt2", "--static-batch", "4", "--dry-run")
    assert report["dry_run"] and report["output"] is None and not report["dynamic_batch"]
    assert report["inputs"][0]["shape"] == [4, 1, 8, 8] and report["check"]["samples"] == 64
    assert list(tmp_path.iterdir()) == []
