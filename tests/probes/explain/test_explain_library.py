"""The explain probe called as a library (the Python API's entry): report, PNG writer, maps, input untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dnnkit.errors import InputError
from dnnkit.probes.explain.probe import EXPLAIN, ExplainConfig
from dnnkit.runner import run_probe


def test_ixg_report_png_and_maps(digits_cnn_ref: str, tmp_path: Path) -> None:
    png, maps = tmp_path / "e.png", tmp_path / "sub" / "m.npz"
    cfg = ExplainConfig(data="digits", indices=[1, 4], class_=3, save_maps=str(maps))
    res = run_probe(EXPLAIN, digits_cnn_ref, cfg, output=str(png))
    r = res.to_json()
    assert r["method"] == "ixg" and not r["bcos"] and r["b"] is None and r["dry_run"] is False
    assert [row["index"] for row in r["inputs"]] == [1, 4] and {row["class"] for row in r["inputs"]} == {3}
    assert r["png"] == str(png) and r["maps"] == str(maps) and r["output"] == str(png)
    assert png.read_bytes()[:4] == b"\x89PNG" and np.load(maps)["contributions"].shape == (2, 8, 8)
    assert res.extra["explanation"].contributions.shape == (2, 8, 8)
    with pytest.raises(InputError, match="already exists"):  # the maps file is checked before any work
        run_probe(EXPLAIN, digits_cnn_ref, cfg)


def test_dry_run_and_maps_without_output(digits_cnn_ref: str, tmp_path: Path) -> None:
    maps = tmp_path / "m.npz"
    cfg = ExplainConfig(data="digits", indices=[0], save_maps=str(maps))
    r = run_probe(EXPLAIN, digits_cnn_ref, cfg, output=str(tmp_path / "e.png"), dry_run=True).report
    assert r["png"] is None and r["maps"] is None and r["dry_run"] and list(tmp_path.iterdir()) == []
    r = run_probe(EXPLAIN, digits_cnn_ref, cfg).report  # no -o: the maps are still written on a real run
    assert r["png"] is None and r["maps"] == str(maps) and [p.name for p in tmp_path.iterdir()] == ["m.npz"]
    r = run_probe(EXPLAIN, digits_cnn_ref, ExplainConfig(data="digits", indices=[0], save_maps=str(maps)),
                  force=True).report
    assert r["maps"] == str(maps)


def test_module_input_is_untouched_in_float64(digits_cnn_ref: str) -> None:
    from dnnkit.models.registry import load_model

    net = load_model(digits_cnn_ref).require_network()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    r = run_probe(EXPLAIN, net, ExplainConfig(data="digits", indices=[0], dtype="float64")).report
    assert r["inputs"][0]["index"] == 0 and r["model"].startswith("<in-memory")
    assert all(v.dtype == torch.float32 and torch.equal(net.state_dict()[k], v) for k, v in before.items())
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("kwargs,needle", [
    ({}, "exactly one of --index"),
    ({"indices": [0], "input_files": ["x.npy"]}, "exactly one of --index"),
    ({"indices": []}, "names no sample"),
    ({"indices": [0], "method": "lrp"}, "auto, dynamic or ixg"),
    ({"indices": [0], "percentile": 0}, "--percentile"),
    ({"indices": [0], "dtype": "int8"}, "unknown --dtype"),
    ({"indices": [0], "class_": "cat"}, "class index or pred"),
])
def test_config_check(kwargs: dict, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        ExplainConfig(data="digits", **kwargs).check()
