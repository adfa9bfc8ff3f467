"""`dnnkit lowrank` on GPT-2: transformers' Conv1D (y = x @ W + b, W stored (in, out)) is factored by every
method, computes the same function, is calibrated in the right orientation and reloads by recipe replay."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from dnnkit.cli.app import app

RUNNER = CliRunner()
CONV1D = [f"transformer.h.{i}.{n}" for i in range(2) for n in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")]


def run(*args: str) -> dict:
    result = RUNNER.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def char_tokenizer():  # noqa: ANN201 - a transformers tokenizer
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<|endoftext|>", "<unk>", *string.printable[:-5]])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   unk_token="<unk>")


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT2LMHeadModel (head tied to the embedding) with a character tokenizer, as a HF folder."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("gpt2") / "tiny-gpt2"
    cfg = GPT2Config(vocab_size=100, n_positions=64, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0,
                     pad_token_id=0)
    GPT2LMHeadModel(cfg).save_pretrained(folder)
    char_tokenizer().save_pretrained(folder)
    return folder


def logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


IDS = torch.randint(0, 100, (3, 12), generator=torch.Generator().manual_seed(0))


def test_svd_factors_conv1d_and_reloads(gpt2: Path, tmp_path: Path) -> None:
    out = tmp_path / "svd.safetensors"
    rep = run("lowrank", gpt2, "--svd", "--rank-ratio", "0.5", "--seq-len", "16", "--eval-limit", "4", "-o", out,
              "--json", "--no-plots")
    rows = {r["name"]: r for r in rep["layers"]}
    assert list(rows) == CONV1D and all(r["kind"] == "conv1d" for r in rows.values())
    factored = {n for n, r in rows.items() if r["factored"]}
    # c_attn 32x96, c_fc 32x128 and mlp.c_proj 128x32 shrink at rank 16; attn.c_proj 32x32 breaks even at 16
    assert factored == {n for n in CONV1D if not n.endswith("attn.c_proj")}
    assert rows["transformer.h.0.attn.c_attn"]["shape"] == [32, 96]  # the stored (in, out) weight
    assert rows["transformer.h.0.attn.c_attn"]["params_after"] == 16 * (32 + 96)
    assert {"name": "lm_head", "reason": "tied weight (shared with another module)"} in rep["skipped"]
    from dnnkit.models.registry import load_model
    from dnnkit.nn.lowrank import LowRankLinear
    from dnnkit.surgery.lowrank.api import LowRankConfig, lowrank
    from dnnkit.surgery.lowrank.fidelity import unique_params

    reloaded = load_model(str(out))
    assert isinstance(reloaded.model.get_submodule("transformer.h.0.mlp.c_fc"), LowRankLinear)
    assert unique_params(reloaded.model) == rep["totals"]["model"]["params_after"]
    res = lowrank(load_model(str(gpt2)), LowRankConfig(method="svd", rule="ratio", value=0.5))
    assert torch.equal(logits(reloaded.model, IDS), logits(res.model, IDS))


def test_full_rank_factors_compute_the_dense_function(gpt2: Path, tmp_path: Path) -> None:
    from dnnkit.models.registry import load_model
    from dnnkit.surgery.lowrank.maestro import factor_full_rank
    from dnnkit.surgery.lowrank.select import select_layers

    dense = load_model(str(gpt2)).model
    out = tmp_path / "full.safetensors"
    rep = run("lowrank", gpt2, "--svd", "--rank-ratio", "1.0", "--seq-len", "16", "--eval-limit", "4", "-o", out,
              "--json", "--no-plots")
    assert not any(r["factored"] for r in rep["layers"])  # never enlarge: full rank keeps every layer dense
    assert torch.allclose(logits(load_model(str(out)).model, IDS), logits(dense, IDS), atol=1e-6)
    import copy

    model = copy.deepcopy(dense)
    cands, _ = select_layers(model)
    mods = factor_full_rank(model, cands)  # every Conv1D as its full-rank balanced split, forced
    assert len(mods) == 8
    assert torch.allclose(logits(model, IDS), logits(dense, IDS), atol=1e-5)


def test_whitening_statistics_are_taken_at_the_conv1d_input(gpt2: Path) -> None:
    """SVD-LLM: ||(W - W')X||^2 over the calibration tokens equals the dropped sigma^2 (square attn.c_proj too)."""
    from dnnkit.models.registry import load_model
    from dnnkit.nn.lowrank import make_lowrank, set_factors
    from dnnkit.progress import or_null
    from dnnkit.surgery.lowrank.api import LowRankConfig, calibration_inputs, decompose_layers, plan
    from dnnkit.surgery.lowrank.calibrate import calibrate

    loaded = load_model(str(gpt2))
    cfg = LowRankConfig(method="whiten", rule="ratio", value=0.25, data="wiki", calib=8, seq_len=16)
    p = plan(loaded, cfg)
    cin = calibration_inputs(loaded, p.data, cfg)
    model = loaded.model
    names = [c.name for c in p.candidates]
    calib = calibrate(model, loaded.info.task, cin, names, want_gram=True)
    decs = decompose_layers(model, p.candidates, cfg, calib, [], or_null(None))
    seen: dict[str, torch.Tensor] = {}
    hooks = [model.get_submodule(n).register_forward_hook(
        lambda m, a, o, n=n: seen.__setitem__(n, a[0][cin.attention_mask.bool()])) for n in names]
    with torch.no_grad():
        model(input_ids=cin.x, attention_mask=cin.attention_mask)
    for h in hooks:
        h.remove()
    for name in ("transformer.h.0.attn.c_proj", "transformer.h.1.mlp.c_fc"):
        layer = model.get_submodule(name)
        r = 8
        new = make_lowrank(layer, r)
        up, down = decs[name].factors(r)
        set_factors(new, up.float(), down.float(), layer.bias.detach())
        x = seen[name]
        with torch.no_grad():
            err = float(((layer(x) - new(x)).double() ** 2).sum())
        dropped = float((decs[name].s[r:] ** 2).sum())
        assert err == pytest.approx(dropped, rel=1e-3), name


@pytest.mark.parametrize("method", ["--whiten", "--asvd"])
def test_calibrated_methods_run_and_reload(gpt2: Path, tmp_path: Path, method: str) -> None:
    out = tmp_path / "w.safetensors"
    rep = run("lowrank", gpt2, method, "--data", "wiki", "--calib", "8", "--seq-len", "16", "--eval-limit", "8",
              "--rank-ratio", "0.5", "-o", out, "--json", "--no-plots")
    assert sum(r["factored"] for r in rep["layers"]) == 6
    assert rep["fidelity"]["factored"]["perplexity"] > 0 and rep["macs_unit"] == "per token"
    from dnnkit.models.registry import load_model

    assert logits(load_model(str(out)).model, IDS).shape == (3, 12, 100)


def test_maestro_and_truncate_on_conv1d(gpt2: Path, tmp_path: Path) -> None:
    from dnnkit.models.registry import load_model

    m_out, t_out = tmp_path / "m.safetensors", tmp_path / "t.safetensors"
    rep = run("lowrank", gpt2, "--maestro", "--data", "wiki", "--calib", "8", "--seq-len", "16", "--eval-limit", "4",
              "--epochs", "1", "--params", "0.5", "-o", m_out, "--json", "--no-plots")  # init checked to 1e-4
    assert any(r["factored"] for r in rep["layers"])
    assert logits(load_model(str(m_out)).model, IDS).shape == (3, 12, 100)
    svd_out = tmp_path / "svd.safetensors"
    run("lowrank", gpt2, "--svd", "--rank-ratio", "0.5", "--seq-len", "16", "--eval-limit", "4", "-o", svd_out,
        "--json", "--no-plots")
    rep = run("lowrank", svd_out, "--truncate", "--rank-ratio", "0.25", "--seq-len", "16", "--eval-limit", "4",
              "-o", t_out, "--json", "--no-plots")
    assert [r["rank"] for r in rep["layers"]] == [8] * 6
    again = load_model(str(t_out))
    assert [s["params"]["method"] for s in again.recipe] == ["svd", "truncate"]


def test_seq_len_longer_than_the_position_table_is_cut(gpt2: Path, tmp_path: Path) -> None:
    rep = run("lowrank", gpt2, "--svd", "--rank-ratio", "0.5", "--eval-limit", "4", "-o", tmp_path / "x.safetensors",
              "--json", "--no-plots")  # default --seq-len 128, wiki fidelity: 64 positions
    assert any("longer than the model's 64 positions" in w for w in rep["warnings"])
    assert rep["fidelity"]["samples"] == 4


def test_bare_gpt2_file_factors_conv1d_by_bias_layout(tmp_path: Path) -> None:
    """A bare file: a weight whose bias has length shape[1] is stored (in, out); square ones stay dense."""
    from transformers import GPT2Config, GPT2Model

    from dnnkit.models.registry import load_model
    from dnnkit.surgery.lowrank.api import LowRankConfig, lowrank

    torch.manual_seed(0)
    folder = tmp_path / "gpt2-base"
    GPT2Model(GPT2Config(vocab_size=100, n_positions=64, n_embd=32, n_layer=2, n_head=2)).save_pretrained(folder)
    out = tmp_path / "bare.safetensors"
    rep = run("lowrank", folder / "model.safetensors", "--svd", "--rank-ratio", "0.5", "-o", out, "--json")
    kinds = {r["name"]: r["kind"] for r in rep["layers"]}
    assert set(kinds.values()) == {"conv1d"} and "h.0.attn.c_attn" in kinds
    skipped = {s["name"]: s["reason"] for s in rep["skipped"]}
    assert "layout unknown" in skipped["h.0.attn.c_proj"] and "h.1.attn.c_proj" in skipped
    again = load_model(str(out), arch=str(folder)).model
    excluded = ["*.attn.c_proj", *(n for n in ("h.1.mlp.c_proj",) if n not in kinds)]  # the bare head guess
    res = lowrank(load_model(str(folder)), LowRankConfig(method="svd", rule="ratio", value=0.5, exclude=excluded))
    with torch.no_grad():
        assert torch.equal(again(input_ids=IDS).last_hidden_state, res.model(input_ids=IDS).last_hidden_state)


def test_replay_refuses_linear_factors_on_a_conv1d() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    from dnnkit.errors import InputError
    from dnnkit.surgery.lowrank.replay import replay_lowrank

    model = GPT2LMHeadModel(GPT2Config(vocab_size=100, n_positions=64, n_embd=32, n_layer=1, n_head=2))
    step = {"op": "lowrank", "layers": {"transformer.h.0.attn.c_proj": {"kind": "linear", "shape": [32, 32],
                                                                         "rank": 4}}}
    with pytest.raises(InputError, match="transformers Conv1D .* factored it as a Linear"):
        replay_lowrank(model, step)
