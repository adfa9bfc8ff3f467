"""The documented paths on a fresh machine (issue: every documented command works): hostile HF pickles,
timm folders in and out, `--weights`, output folders, one option set for every command, one input-shape
rule, and the `--require` gate."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
import typer

from dnnkit.cli.app import app


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['DNNKIT_EVIL_MARKER']}",))


def _tiny_bert_folder(folder: Path):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                     max_position_embeddings=32, architectures=["BertModel"])
    model = BertModel(cfg).eval()
    folder.mkdir(parents=True)
    model.config.save_pretrained(folder)
    return model


def test_hf_folder_with_hostile_bin_is_refused_as_bad_input(cli, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("DNNKIT_EVIL_MARKER", str(marker))
    folder = tmp_path / "evil"
    _tiny_bert_folder(folder)
    with open(folder / "pytorch_model.bin", "wb") as fh:
        pickle.dump({"w": _Evil()}, fh)
    for args in (["eval", folder, "--data", "wiki"], ["prune", folder, "--ratio", "0.5", "--dry-run"]):
        res = cli(*args)
        assert res.exit_code == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        assert lines[0].startswith("error: refused to load") and "pytorch_model.bin" in lines[0]
        assert all(line.startswith(("error:", "hint:")) for line in lines), res.stderr  # no torch warning
        assert "weights_only=False" not in res.stderr and "weights_only` set to `False" not in res.stderr
    assert not marker.exists()


def test_hf_folder_with_plain_bin_loads_through_the_restricted_loader(tmp_path):
    from dnnkit.models.registry import load_model

    folder = tmp_path / "bert-bin"
    model = _tiny_bert_folder(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    loaded = load_model(str(folder))
    ids = torch.tensor([[1, 2, 3]])
    assert torch.allclose(loaded.model(ids).last_hidden_state, model(ids).last_hidden_state, atol=1e-6)


def _timm_folder(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    import timm
    from timm.models._hub import save_for_hf

    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=10).eval()
    folder = tmp_path / "r18"
    save_for_hf(model, str(folder), safe_serialization=True)
    return folder, model


def test_timm_folder_in_gives_timm_folder_out(cli, tmp_path):
    import timm

    folder, _ = _timm_folder(tmp_path)
    out = tmp_path / "out" / "r18-pruned"  # parent folder missing: created
    report = cli.json("prune", folder, "--ratio", "0.5", "--method", "global", "-o", out)
    assert report["output"] == str(out)
    assert {"config.json", "model.safetensors", "dnnkit.json"} <= {p.name for p in out.iterdir()}
    again = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    layers = [m for m in again.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    zeros = sum(int((m.weight == 0).sum()) for m in layers)
    total = sum(m.weight.numel() for m in layers)
    assert zeros == pytest.approx(0.5 * total, abs=1)
    prov = cli.json("inspect", out)["provenance"]
    assert prov["recipe"][-1]["op"] == "prune" and prov["source"]["reference"] == str(folder)


def test_timm_name_with_weights_file(cli, tmp_path):
    from safetensors.torch import save_file

    folder, model = _timm_folder(tmp_path)
    weights = tmp_path / "r18.safetensors"
    save_file(model.state_dict(), str(weights))
    x = torch.rand(12, 3, 32, 32)
    import numpy as np

    np.savez(tmp_path / "imgs.npz", x_train=x.numpy(), y_train=np.arange(12) % 10, x_test=x.numpy(),
             y_test=np.arange(12) % 10)
    pred = model(x).argmax(1)
    expected = float((pred == torch.arange(12) % 10).double().mean())
    report = cli.json("eval", "timm:resnet18", "--weights", weights, "--data", f"npz:{tmp_path / 'imgs.npz'}")
    assert report["accuracy"] == pytest.approx(expected)
    pruned = cli.json("prune", "timm:resnet18", "--weights", weights, "--ratio", "0.3", "-o",
                      tmp_path / "p.safetensors")
    assert pruned["achieved"] == pytest.approx(0.3, abs=1e-6)
    res = cli("prune", "zoo:digits-mlp", "--weights", weights, "--ratio", "0.3", "--dry-run")
    assert res.exit_code == 2 and "--weights applies to timm:NAME" in res.stderr


def test_image_shape_rule_is_one_for_every_command(cli, tmp_path):
    """A fully convolutional timm resnet takes 32x32 images in eval and swap-projection, as in the probes."""
    import numpy as np

    folder, _ = _timm_folder(tmp_path)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "small.npz", x=rng.random((40, 3, 32, 32), dtype=np.float32), y=np.arange(40) % 10)
    data = f"npz:{tmp_path / 'small.npz'}"
    assert cli.json("eval", folder, "--data", data)["samples"] == 8
    res = cli("swap-projection", "linear", folder, "--layers", "fc", "--data", data, "--dry-run", "--json")
    assert res.exit_code == 0, res.stderr
    np.savez(tmp_path / "gray.npz", x=rng.random((40, 1, 32, 32), dtype=np.float32), y=np.arange(40) % 10)
    res = cli("eval", folder, "--data", f"npz:{tmp_path / 'gray.npz'}")
    assert res.exit_code == 2 and "expects 3 channels" in res.stderr


def test_output_parent_folders_are_created(cli, tmp_path, digits_mlp_ref):
    out = tmp_path / "a" / "b" / "x.safetensors"
    assert cli.json("prune", digits_mlp_ref, "--ratio", "0.5", "-o", out)["output"] == str(out)
    assert out.is_file()


def _leaf_commands() -> list[tuple[str, object]]:
    root = typer.main.get_command(app)
    found: list[tuple[str, object]] = []

    def walk(cmd: object, path: str) -> None:
        if getattr(cmd, "commands", None):  # a group (typer vendors its own click); batch is a leaf
            for name, sub in cmd.commands.items():
                walk(sub, f"{path} {name}".strip())
        else:
            found.append((path, cmd))

    walk(root, "")
    return found


def test_every_command_takes_the_shared_options_with_one_meaning():
    commands = _leaf_commands()
    assert len(commands) >= 18 and "batch" in [path for path, _ in commands]
    shared = ("--json", "--quiet", "--verbose", "--threads", "--arch", "--weights", "--device", "--force",
              "--dry-run", "--require", "-o")
    seen: dict[str, tuple] = {}
    for path, cmd in commands:
        by_flag = {flag: p for p in cmd.params for flag in getattr(p, "opts", [])}
        for flag in ("--json", "--quiet", "--verbose", "--threads"):
            assert flag in by_flag, f"`dnnkit {path}` lacks {flag}"
        for flag in shared:
            if flag in by_flag:
                p = by_flag[flag]
                key = (tuple(sorted(o for o in p.opts if o != "--threads-per-job")), p.is_flag)
                assert seen.setdefault(flag, key) == key, f"`dnnkit {path}`: {flag} differs ({key} vs {seen[flag]})"
        if "--arch" in by_flag:
            assert "--weights" in by_flag, f"`dnnkit {path}` has --arch but no --weights"


def test_threads_accepted_by_inspect_and_zoo_list(cli, digits_mlp_ref):
    assert cli.json("inspect", digits_mlp_ref, "--threads", "1")["format"] == "safetensors"
    assert cli.json("zoo", "list", "--threads", "1")["models"]


def test_require_gate_stops_the_write_and_warns_on_a_drop(cli, tmp_path, digits_cnn_ref):
    out = tmp_path / "p.safetensors"
    res = cli("prune", digits_cnn_ref, "--ratio", "0.97", "--method", "uniform", "--data", "digits",
              "--require", "accuracy>=0.9", "-o", out)
    assert res.exit_code == 1, res.stderr
    assert "warning: accuracy fell from" in res.stderr
    assert "error: requirement failed: accuracy>=0.9 (got" in res.stderr and "nothing was written" in res.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []
    ok = cli("prune", digits_cnn_ref, "--ratio", "0.3", "--data", "digits", "--require", "accuracy>=0.5",
             "--json", "-o", out)
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["metrics"]["after"]["accuracy"] >= 0.5 and out.is_file()


def test_require_bad_expression_and_unknown_metric(cli, tmp_path, digits_mlp_ref):
    res = cli("prune", digits_mlp_ref, "--ratio", "0.5", "--require", "accuracy=>0.9", "-o", tmp_path / "x.safetensors")
    assert res.exit_code == 2 and "is not METRIC OP NUMBER" in res.stderr
    res = cli("eval", digits_mlp_ref, "--require", "perplexity<=30")
    assert res.exit_code == 1 and "does not report" in res.stderr and "accuracy" in res.stderr
    assert cli("eval", digits_mlp_ref, "--require", "accuracy>=0.5").exit_code == 0
    res = cli("lowrank", digits_mlp_ref, "--svd", "--rank-ratio", "0.05", "--data", "digits", "--no-plots",
              "--require", "accuracy>=0.99", "-o", tmp_path / "lr.safetensors")
    assert res.exit_code == 1 and "requirement failed" in res.stderr
    assert not (tmp_path / "lr.safetensors").exists()
