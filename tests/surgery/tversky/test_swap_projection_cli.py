"""`dnnkit swap-projection tversky|linear`: swaps on zoo models and a Hugging Face folder, reload, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from dnnkit.cli.app import app

FAST = ["--steps", "20", "--calib", "32", "--threads", "1", "--json"]


def run(*args: str) -> tuple[int, dict | None, str]:
    res = CliRunner().invoke(app, list(args))
    out = res.stdout.strip()
    data = json.loads(out) if out.startswith("{") else None
    return res.exit_code, data, res.stderr if hasattr(res, "stderr") else res.output


def logits(path: str | Path, x: torch.Tensor) -> torch.Tensor:
    from dnnkit.models.registry import load_model

    with torch.no_grad():
        return load_model(str(path)).model(x)


def test_tversky_head_on_zoo_cnn_reloads_by_replay(digits_cnn_ref: str, tmp_path: Path) -> None:
    out = tmp_path / "cnn-tv.safetensors"
    code, r, err = run("swap-projection", "tversky", digits_cnn_ref, "--layers", "11", "--features", "16",
                       "--freeze-rest", "-o", str(out), *FAST)
    assert code == 0, err
    lay = r["layers"][0]
    assert (lay["name"], lay["in_features"], lay["out_features"], lay["features"]) == ("11", 128, 10, 16)
    assert lay["params_before"] == 1290 and lay["params_after"] == 16 * 128 + 10 * 128 + 3
    assert r["params_after"] - r["params_before"] == lay["params_after"] - lay["params_before"]
    assert r["cached_inputs"] is True and r["budget"]["steps"] == 20
    assert 0 <= r["metric_after"]["accuracy"] <= 1 and r["metric_before"]["accuracy"] > 0.9
    assert 0 < lay["active_feature_share"] <= 1 and lay["timing_ms"]["linear"] > 0
    assert len(r["loss_curve"]) == 20 and r["loss_curve"][-1] < r["loss_curve"][0]
    assert all(Path(p).is_file() for p in r["plots"]) and len(r["plots"]) == 2
    from dnnkit.metrics import load_inputs
    from dnnkit.models.registry import load_model

    loaded = load_model(str(out))
    assert loaded.recipe[-1]["op"] == "swap-projection"
    inputs = load_inputs(loaded, "digits", "test")
    with torch.no_grad():
        acc = float((loaded.model(inputs.x).argmax(-1) == inputs.y).float().mean())
    assert acc == pytest.approx(r["metric_after"]["accuracy"], abs=1e-6)
    code, r2, _ = run("eval", str(out), "--json")
    assert code == 0 and r2["accuracy"] == pytest.approx(acc, abs=1e-6)


def test_linear_control_same_budget_and_new_label_set(digits_cnn_ref: str, tmp_path: Path) -> None:
    out = tmp_path / "cnn-lin.safetensors"
    code, r, err = run("swap-projection", "linear", digits_cnn_ref, "--layers", "11", "--freeze-rest",
                       "--num-classes", "12", "-o", str(out), *FAST)
    assert code == 0, err
    assert r["metric_before"] is None and r["budget"]["steps"] == 20 and r["plots"] == []
    assert r["layers"][0]["out_features"] == 12 and r["layers"][0]["params_after"] == 128 * 12 + 12
    assert logits(out, torch.rand(3, 1, 8, 8)).shape == (3, 12)


def test_shared_bank_unfrozen_training_on_mlp(digits_mlp_ref: str, tmp_path: Path) -> None:
    out = tmp_path / "mlp-tv.safetensors"
    code, r, err = run("swap-projection", "tversky", digits_mlp_ref, "--layers", "3,5", "--features", "8",
                       "--share-features", "--intersection", "min", "--similarity", "ratio", "--limit", "128",
                       "--batch-size", "64", "-o", str(out), *FAST[:2], *FAST[4:])
    assert code == 0, err
    assert r["cached_inputs"] is False and [lay["bank"] for lay in r["layers"]] == ["256", "256"]
    from dnnkit.models.safetensors_io import read_header

    names = set(read_header(out).tensors)
    assert "tversky_bank_256" in names and "3.features" not in names and "3.prototypes" in names
    from dnnkit.models.registry import load_model

    loaded = load_model(str(out))
    assert loaded.model.get_submodule("3").bank is loaded.model.get_submodule("5").bank
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.isfinite(loaded.model(x)).all()


def test_dry_run_writes_nothing(digits_mlp_ref: str, tmp_path: Path) -> None:
    out = tmp_path / "dry.safetensors"
    code, r, err = run("swap-projection", "tversky", digits_mlp_ref, "--layers", "1", "--features", "32",
                       "--dry-run", "-o", str(out), "--json")
    assert code == 0, err
    assert r["dry_run"] is True and r["plots"] == [] and not out.exists()
    assert {"loss_curve", "train_seconds", "kernel", "settings", "budget", "metric_after"} <= set(r)
    lay = r["layers"][0]
    assert lay["params_after"] == 32 * 64 + 256 * 64 + 3 and lay["naive_nxpxk_bytes"] == 64 * 256 * 32 * 4


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A byte-level LlamaForCausalLM folder (ByT5 tokenizer, no vocabulary files) and a small text file."""
    from transformers import ByT5Tokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-lm")
    tok = ByT5Tokenizer(extra_ids=0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                      tie_word_embeddings=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    text = folder.parent / "corpus.txt"
    text.write_text("\n\n".join(f"document {i}: the quick brown fox jumps over the lazy dog." for i in range(40)))
    return folder, text


def test_hf_folder_lm_head_tied_to_embedding(tiny_lm: tuple[Path, Path], tmp_path: Path) -> None:
    folder, text = tiny_lm
    out = tmp_path / "lm-tv.safetensors"
    code, r, err = run("swap-projection", "tversky", str(folder), "--layers", "lm_head", "--features", "8",
                       "--tie-prototypes", "model.embed_tokens", "--data", f"text:{text}", "--seq-len", "32",
                       "--limit", "8", "--eval-limit", "4", "--batch-size", "4", "-o", str(out), *FAST[:2],
                       *FAST[4:])
    assert code == 0, err
    lay = r["layers"][0]
    assert lay["tied_to"] == "model.embed_tokens" and lay["params_after"] == 8 * 16 + 3
    assert r["metric_after"]["perplexity"] > 1 and r["plots"] and r["plots"][0].endswith("membership.png")
    from dnnkit.models.registry import load_model
    from dnnkit.models.safetensors_io import read_header

    assert "lm_head.prototypes" not in read_header(out).tensors
    loaded = load_model(str(out))
    head = loaded.model.get_submodule("lm_head")
    assert head.prototype_matrix is loaded.model.get_submodule("model.embed_tokens").weight
    ids = torch.randint(3, 200, (2, 16))
    with torch.no_grad():
        assert loaded.model(input_ids=ids).logits.shape == (2, 16, 259)


@pytest.mark.parametrize("args,message", [
    (["--layers", "nothing*", "--features", "4"], "matched nothing; Linear layers are: 1, 3"),
    (["--layers", "0", "--features", "4"], "0 is Flatten, not Linear"),
    (["--layers", "1", "--features", "0"], "--features must be a positive integer"),
    (["--layers", "1"], "--features must be a positive integer"),
    (["--layers", "1", "--features", "4", "--prototypes", "7"], "must equal 1's out_features (256)"),
    (["--layers", "1", "--features", "4", "--prototypes", "-1"], "--prototypes must be positive"),
    (["--layers", "1", "--features", "4", "--num-classes", "5"], "--num-classes changes the final layer only"),
    (["--layers", "11", "--features", "4", "--num-classes", "1"], "--num-classes must be at least 2"),
    (["--layers", "11", "--features", "4", "--tie-prototypes", "nope"], "--tie-prototypes nope: no such module"),
    (["--layers", "11", "--features", "4", "--tie-prototypes", "1"], "has shape (256, 64)"),
    (["--layers", "11", "--features", "4", "--alpha", "-0.1"], "--alpha/--beta must be >= 0"),
    (["--layers", "11", "--features", "4", "--theta", "0"], "--theta must be > 0"),
    (["--layers", "11", "--features", "4", "--intersection", "median"], "unknown intersection 'median'"),
    (["--layers", "11", "--features", "4", "--data", "wiki"], "is text, but"),
])
def test_bad_input_exits_2_with_one_line(digits_mlp_ref: str, tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "bad.safetensors"
    res = CliRunner().invoke(app, ["swap-projection", "tversky", digits_mlp_ref, *args, "-o", str(out)])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert "Traceback" not in res.output and not out.exists()


def test_bad_output_paths(digits_mlp_ref: str, tmp_path: Path) -> None:
    existing = tmp_path / "exists.safetensors"
    existing.write_bytes(b"keep")
    for out, msg in ((existing, "already exists"), (tmp_path / "x.pt", "must end in .safetensors"),
                     (existing / "x.safetensors", "is not a folder")):
        res = CliRunner().invoke(app, ["swap-projection", "linear", digits_mlp_ref, "--layers", "11", "-o", str(out)])
        assert res.exit_code == 2 and msg in res.stderr
    assert existing.read_bytes() == b"keep"
