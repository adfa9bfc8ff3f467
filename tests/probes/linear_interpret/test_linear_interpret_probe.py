"""The linear-interpret probe called as a library (the Python API's entry): report, writer, input untouched."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dnnkit.errors import InputError
from dnnkit.probes.linear_interpret.probe import LINEAR_INTERPRET, LinearInterpretConfig
from dnnkit.runner import run_probe


def test_reference_report_and_dry_run_writes_nothing(digits_mlp_ref: str, tmp_path: Path) -> None:
    out = tmp_path / "li"
    res = run_probe(LINEAR_INTERPRET, digits_mlp_ref, LinearInterpretConfig(data="digits", index=2, count=2, svd=1),
                    output=str(out), dry_run=True)
    r = res.to_json()
    assert r["model"] == digits_mlp_ref and r["dry_run"] is True and r["output"] is None
    assert [it["index"] for it in r["items"]] == [2, 3] and r["exact_at_x0"] and r["piecewise_linear"]
    for it in r["items"]:
        assert np.allclose(np.array(it["c"]) + np.array(it["Ax"]), it["logits"], atol=1e-5)
    assert len(res.extra["items"]) == 2 and not out.exists()
    assert res.save(out) == str(out) and res.report["output"] == str(out)  # save(): the writer behind -o
    assert json.loads((out / "report.json").read_text())["items"][1]["index"] == 3
    assert {"item_2.png", "item_3.png", "svd_2.png"} <= {p.name for p in out.iterdir()}


def test_module_input_is_untouched_in_float64(digits_mlp_ref: str) -> None:
    from dnnkit.models.registry import load_model

    net = load_model(digits_mlp_ref).require_network()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(3, 64)
    cfg = LinearInterpretConfig(data="digits", index=0, dtype="float64", eval_n=20)
    r = run_probe(LINEAR_INTERPRET, net, cfg).report
    assert r["dtype"] == "float64" and r["items"][0]["identity_error"] <= 1e-10 and r["eval"]["n"] == 20
    after = net.state_dict()
    assert all(after[k].dtype == torch.float32 and torch.equal(after[k], v) for k, v in before.items())
    assert not net._forward_hooks and all(not m._forward_hooks for m in net.modules())
    assert net(x).dtype == torch.float32


@pytest.mark.parametrize("kwargs,needle", [
    ({}, "exactly one of"),
    ({"index": 0, "input_file": "x.npy"}, "exactly one of"),
    ({"input_file": "x.npy", "eval_n": 5}, "--eval needs --data"),
    ({"index": 0, "dtype": "float16"}, "float32 or float64"),
    ({"index": 0, "smooth": "spline"}, "secant or tangent"),
    ({"index": 0, "split": "val"}, "train or test"),
])
def test_config_check(kwargs: dict, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        LinearInterpretConfig(data="digits", **kwargs).check()
