"""`--arch py:FILE.py:FACTORY`: a user's own architecture, imported only on the user's own flag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from dnnkit.errors import InputError
from dnnkit.models.registry import load_model

NET = '''
import os, pathlib
from torch import nn

if os.environ.get("UA_MARKER"):
    pathlib.Path(os.environ["UA_MARKER"]).touch()  # proves whether this file was imported


def build(hidden=32):
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                        nn.Linear(hidden, 10))
    net.dnnkit_info = {"task": "classifier", "input_shape": [1, 8, 8], "num_classes": 10, "data": "digits"}
    return net
'''


@pytest.fixture()
def user_net(tmp_path: Path, monkeypatch) -> tuple[Path, Path, Path]:
    """(architecture file, trained bare weights, import marker)."""
    from dnnkit.data import load_data

    marker = tmp_path / "imported"
    monkeypatch.setenv("UA_MARKER", str(marker))
    arch_file = tmp_path / "mynet.py"
    arch_file.write_text(NET)
    namespace: dict = {}
    exec(compile(NET, str(arch_file), "exec"), namespace)  # the test's own copy, to train it
    torch.manual_seed(0)
    net = namespace["build"](hidden=32)
    data = load_data("digits", "train")
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(data.x), data.y).backward()
        opt.step()
    weights = tmp_path / "mine.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    marker.unlink(missing_ok=True)
    return arch_file, weights, marker


def test_cli_commands_that_need_the_network_take_py_arch(cli, user_net, tmp_path):
    arch_file, weights, marker = user_net
    arch = f"py:{arch_file}:build?hidden=32"
    ev = cli.json("eval", weights, "--arch", arch)
    assert ev["accuracy"] > 0.85 and marker.exists()
    out = tmp_path / "pruned.safetensors"
    pruned = cli.json("prune", weights, "--arch", arch, "--ratio", "0.5", "--layer-adaptive", "--data", "digits",
                      "--levels", "11", "-o", out)
    assert pruned["achieved"] == pytest.approx(0.5, abs=1e-3) and out.is_file()
    assert cli.json("hash-codes", weights, "--arch", arch)["layers"]
    li = cli.json("linear-interpret", weights, "--arch", arch, "--index", "0")
    assert li["n_outputs"] == 10
    # the checkpoint records the reference, and reloading it needs the user's flag again
    described = cli.json("inspect", out)["architecture"]
    assert described["family"] == "py" and described["reference"] == arch and len(described["sha256"]) == 64
    marker.unlink()
    res = cli("eval", out)
    assert res.exit_code == 2 and "never imports code a checkpoint names" in res.stderr
    assert f"--arch {arch}" in res.stderr and not marker.exists()
    again = cli.json("eval", out, "--arch", arch)
    assert again["accuracy"] == pytest.approx(pruned["metrics"]["after"]["accuracy"])


def test_a_checkpoint_cannot_make_dnnkit_import_a_file(tmp_path, monkeypatch):
    """A hostile record naming a py architecture is refused before anything is imported."""
    marker = tmp_path / "imported"
    monkeypatch.setenv("UA_MARKER", str(marker))
    evil = tmp_path / "evil.py"
    evil.write_text(NET)
    record = {"version": "0.1.0", "arch": {"family": "py", "file": str(evil), "factory": "build", "kwargs": {}},
              "recipe": []}
    path = tmp_path / "hostile.safetensors"
    save_file({"1.weight": torch.zeros(32, 64)}, str(path), metadata={"format": "pt", "dnnkit": json.dumps(record)})
    with pytest.raises(InputError, match="never imports code"):
        load_model(str(path))
    assert not marker.exists()


@pytest.mark.parametrize("value, match", [
    ("py:nofile.py:build", "no such Python file"),
    ("py:mynet.py", "is not py:FILE.py:FACTORY"),
    ("py:{dir}/mynet.py:missing", "has no callable 'missing'"),
])
def test_bad_py_arch(cli, user_net, tmp_path, value, match):
    _, weights, _ = user_net
    res = cli("eval", weights, "--arch", value.format(dir=tmp_path))
    assert res.exit_code == 2 and match in res.stderr
