"""`dnnkit prune` through the CLI: methods on bare files and networks, outputs, reloads, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import typer
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from dnnkit.cli.app import app

RUNNER = CliRunner()
CLI = typer.main.get_command(app)


def _run(*args: str) -> tuple[int, dict | None, str]:
    res = RUNNER.invoke(CLI, ["prune", *args])
    data = None
    if res.exit_code == 0 and "--json" in args:
        data = json.loads(res.stdout.strip().splitlines()[-1])
    return res.exit_code, data, res.stderr if hasattr(res, "stderr") else res.output


@pytest.fixture()
def bare(tmp_path: Path) -> Path:
    g = torch.Generator().manual_seed(0)
    path = tmp_path / "bare.safetensors"
    save_file({"layers.0.weight": torch.randn(64, 32, generator=g),
               "layers.10.weight": torch.randn(16, 64, generator=g),
               "layers.2.weight": torch.randn(64, 64, generator=g), "embed.weight": torch.randn(100, 8, generator=g),
               "layers.0.bias": torch.randn(64, generator=g)}, str(path))
    return path


@pytest.mark.parametrize("method", ["uniform", "uniform-plus", "global", "erk", "lamp"])
def test_bare_file_methods_exact(bare: Path, tmp_path: Path, method: str) -> None:
    out = tmp_path / f"{method}.safetensors"
    code, data, err = _run(str(bare), "--ratio", "0.6", "--method", method, "-o", str(out), "--json")
    assert code == 0, err
    total = 64 * 32 + 16 * 64 + 64 * 64
    assert data["total"] == total and data["pruned"] == round(0.6 * total) and data["path"] == "streaming"
    assert [r["name"] for r in data["layers"]] == ["layers.0.weight", "layers.2.weight", "layers.10.weight"]
    t = load_file(str(out))
    assert sum(int((t[r["name"]] == 0).sum()) for r in data["layers"]) == data["pruned"]
    assert torch.equal(t["embed.weight"], load_file(str(bare))["embed.weight"])
    for r in data["layers"]:  # survivors are exactly the largest magnitudes
        w, orig = t[r["name"]], load_file(str(bare))[r["name"]]
        kept = orig[w != 0].abs()
        if 0 < kept.numel() < orig.numel():
            assert float(kept.min()) >= float(orig[w == 0].abs().max())


def test_sparse_format_smaller_and_reloads(bare: Path, tmp_path: Path) -> None:
    dense, sparse = tmp_path / "d.safetensors", tmp_path / "s.safetensors"
    assert _run(str(bare), "--ratio", "0.9", "--method", "global", "-o", str(dense))[0] == 0
    code, data, _ = _run(str(bare), "--ratio", "0.9", "--method", "global", "--format", "sparse", "-o", str(sparse),
                         "--json")
    assert code == 0 and data["format"] == "sparse"
    assert sparse.stat().st_size < 0.5 * dense.stat().st_size
    from dnnkit.models.registry import open_weights

    src = open_weights(str(sparse))
    ref = load_file(str(dense))
    for name in ref:
        assert torch.equal(src.get(name), ref[name])


def test_include_exclude_and_dry_run(bare: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.safetensors"
    code, data, _ = _run(str(bare), "--ratio", "0.5", "--include", "layers.0.bias", "--exclude", "layers.10.*",
                         "--dry-run", "--json", "-o", str(out))
    assert code == 0 and not out.exists() and data["dry_run"]
    assert [r["name"] for r in data["layers"]] == ["layers.0.bias", "layers.0.weight", "layers.2.weight"]


@pytest.mark.parametrize("args,msg", [
    (["--ratio", "1.0"], "--ratio must be in [0, 1)"),
    (["--ratio", "nan"], "--ratio must be in [0, 1)"),
    (["--ratio", "-0.1"], "--ratio must be in [0, 1)"),
    (["--ratio", "0.5", "--method", "rd", "--data", "digits"], "needs the network"),
    (["--ratio", "0.5", "--finetune-epochs", "1", "--data", "digits"], "needs the network"),
    (["--ratio", "0.5", "--include", "nothing*"], "matches no"),
    (["--ratio", "0.5", "--exclude", "layers.*"], "no prunable tensor"),
    (["--ratio", "0.5", "--levels", "1", "--method", "rd"], "--levels"),
    (["--ratio", "0.5", "--dp-units", "5"], "--dp-units"),
    (["--ratio", "0.5", "--method", "magic"], "unknown --method"),
])
def test_bad_input_exit_2_nothing_written(bare: Path, tmp_path: Path, args: list[str], msg: str) -> None:
    out = tmp_path / "o.safetensors"
    res = RUNNER.invoke(CLI, ["prune", str(bare), *args, "-o", str(out)])
    assert res.exit_code == 2, res.output
    assert msg in res.output and "Traceback" not in res.output
    assert not out.exists()


def test_nan_weights_and_existing_output(bare: Path, tmp_path: Path) -> None:
    t = load_file(str(bare))
    t["layers.2.weight"][0, 0] = float("nan")
    bad = tmp_path / "nan.safetensors"
    save_file(t, str(bad))
    res = RUNNER.invoke(CLI, ["prune", str(bad), "--ratio", "0.5", "-o", str(tmp_path / "o.safetensors")])
    assert res.exit_code == 2 and "NaN" in res.output
    exists = tmp_path / "exists.safetensors"
    exists.write_bytes(b"keep")
    res = RUNNER.invoke(CLI, ["prune", str(bare), "--ratio", "0.5", "-o", str(exists)])
    assert res.exit_code == 2 and exists.read_bytes() == b"keep"
    res = RUNNER.invoke(CLI, ["prune", str(bare), "--ratio", "0.5", "--format", "sparse", "-o", str(tmp_path / "d")])
    assert res.exit_code == 2 and "sparse" in res.output


def test_zoo_network_rd_reload_and_recipe(digits_cnn_ref: str, tmp_path: Path) -> None:
    out = tmp_path / "rd.safetensors"
    code, data, err = _run(digits_cnn_ref, "--ratio", "0.8", "--layer-adaptive", "--data", "digits", "--calib", "32",
                           "--levels", "11", "-o", str(out), "--json")
    assert code == 0, err
    assert data["method"] == "rd" and data["pruned"] == round(0.8 * data["total"])
    assert data["additivity"]["rho"] is not None and data["additivity"]["curve_reuse"] == "prefix"
    assert set(data["metrics"]) == {"before", "after"} and "accuracy" in data["metrics"]["after"]
    for key in ("curves_s", "dp_s", "finetune_s", "naive_estimate_s"):
        assert key in data["timing"]
    from dnnkit.models.registry import load_model

    loaded = load_model(str(out))
    step = loaded.recipe[-1]
    assert step["op"] == "prune" and step["params"]["method"] == "rd"
    zeros = sum(int((p == 0).sum()) for n, p in loaded.model.named_parameters() if n in step["layers"])
    assert zeros == data["pruned"]
    assert all(math.isclose(step["layers"][r["name"]], r["sparsity"]) for r in data["layers"])


def test_zoo_finetune_steps_and_sparse(digits_cnn_ref: str, tmp_path: Path) -> None:
    out = tmp_path / "ft.safetensors"
    code, data, err = _run(digits_cnn_ref, "--ratio", "0.9", "--method", "global", "--steps", "2",
                           "--finetune-epochs", "1", "--data", "digits", "--format", "sparse", "-o", str(out),
                           "--json")
    assert code == 0, err
    assert data["pruned"] == round(0.9 * data["total"]) and len(data["steps"]) == 2
    assert data["timing"]["finetune_s"] > 0
    from dnnkit.models.registry import load_model

    model = load_model(str(out)).model
    zeros = sum(int((dict(model.named_parameters())[r["name"]] == 0).sum()) for r in data["layers"])
    assert zeros == data["pruned"]


def test_rd_without_data_and_unreachable(digits_cnn_ref: str, tmp_path: Path) -> None:
    res = RUNNER.invoke(CLI, ["prune", digits_cnn_ref, "--ratio", "0.5", "--method", "rd", "--dry-run"])
    assert res.exit_code == 2 and "--data" in res.output
    res = RUNNER.invoke(CLI, ["prune", digits_cnn_ref, "--ratio", "0.95", "--max-layer-sparsity", "0.5",
                              "--dry-run"])
    assert res.exit_code == 2 and "largest reachable" in res.output
    res = RUNNER.invoke(CLI, ["prune", digits_cnn_ref, "--ratio", "0.5", "--method", "rd", "--data", "digits",
                              "--calib", "100000", "--dry-run"])
    assert res.exit_code == 2 and "100000" in res.output
    res = RUNNER.invoke(CLI, ["prune", digits_cnn_ref, "--ratio", "0.5", "--method", "rd", "--data", "wiki",
                              "--dry-run"])
    assert res.exit_code == 2 and "text" in res.output


def test_hf_folder_stays_loadable_by_transformers(tmp_path: Path) -> None:
    import transformers

    cfg = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=32)
    torch.manual_seed(0)
    src = tmp_path / "bert"
    transformers.BertModel(cfg).save_pretrained(str(src))
    out = tmp_path / "bert-pruned"
    code, data, err = _run(str(src), "--ratio", "0.6", "--method", "erk", "-o", str(out), "--json")
    assert code == 0, err
    model = transformers.BertModel.from_pretrained(str(out))
    params = dict(model.named_parameters())
    assert sum(int((params[r["name"]] == 0).sum()) for r in data["layers"]) == data["pruned"]
    assert not any("embeddings" in r["name"] for r in data["layers"])
    assert (out / "dnnkit.json").is_file()


@pytest.mark.parametrize("exclude_head", [False, True])
def test_rd_on_causal_lm_takes_the_head_shortcut_unless_the_head_is_pruned(tmp_path: Path,
                                                                           exclude_head: bool) -> None:
    from tests.probes.hallucination.conftest import build_tiny_lm

    src = build_tiny_lm(tmp_path / "lm")
    extra = ["--exclude", "lm_head.*"] if exclude_head else []
    code, data, err = _run(str(src), "--ratio", "0.5", "--layer-adaptive", "--data", "wiki", "--calib", "4",
                           "--levels", "5", "--limit", "2", "--seq-len", "12", "--dry-run", "--json", *extra)
    assert code == 0, err
    assert data["additivity"]["lm_head_shortcut"] == ("lm_head" if exclude_head else None)
    assert data["calibration"]["samples"] == 4 and data["calibration"]["seq_len"] == 12
    assert data["pruned"] == round(0.5 * data["total"])
    assert ("lm_head.weight" in {r["name"] for r in data["layers"]}) != exclude_head
