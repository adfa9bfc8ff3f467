"""The GGUF -> Hugging Face path end to end, offline: a tiny llama GGUF written here with `gguf`'s
writer is converted by the registry (through transformers' GGUF loader), cached, reloaded from the
cache, and run through `dnnkit inspect` / `dnnkit eval` without any progress bar on stderr."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

HIDDEN, FFN, LAYERS, HEADS, KV_HEADS = 16, 24, 2, 2, 1
HEAD_DIM = HIDDEN // HEADS
EOS = "<|endoftext|>"
MERGES = ["h e", "l l", "he ll", "Ġ w", "o r"]
BAR_TEXT = ("Converting and de-quantizing", "Loading weights", "Writing model shards", "it/s]", "%|", "\r")


def _llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row interleave (convert_hf_to_gguf.py), which transformers' loader undoes."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _vocab() -> list[str]:
    """A byte-level BPE vocabulary: the 256 byte symbols, one token per merge, then EOS."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return list(bytes_to_unicode().values()) + [m.replace(" ", "") for m in MERGES] + [EOS]


def write_tiny_llama_gguf(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Write a 2-layer fp32 llama GGUF; return the Hugging Face state dict it must load as."""
    import gguf

    tokens = _vocab()
    vocab = len(tokens)
    rng = np.random.default_rng(seed)

    def rand(*shape: int, offset: float = 0.0) -> np.ndarray:
        return (offset + 0.1 * rng.standard_normal(shape)).astype(np.float32)

    hf: dict[str, np.ndarray] = {"model.embed_tokens.weight": rand(vocab, HIDDEN)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        hf[p + "input_layernorm.weight"] = rand(HIDDEN, offset=1.0)
        hf[p + "self_attn.q_proj.weight"] = rand(HEADS * HEAD_DIM, HIDDEN)
        hf[p + "self_attn.k_proj.weight"] = rand(KV_HEADS * HEAD_DIM, HIDDEN)
        hf[p + "self_attn.v_proj.weight"] = rand(KV_HEADS * HEAD_DIM, HIDDEN)
        hf[p + "self_attn.o_proj.weight"] = rand(HIDDEN, HEADS * HEAD_DIM)
        hf[p + "post_attention_layernorm.weight"] = rand(HIDDEN, offset=1.0)
        hf[p + "mlp.gate_proj.weight"] = rand(FFN, HIDDEN)
        hf[p + "mlp.up_proj.weight"] = rand(FFN, HIDDEN)
        hf[p + "mlp.down_proj.weight"] = rand(HIDDEN, FFN)
    hf["model.norm.weight"] = rand(HIDDEN, offset=1.0)
    hf["lm_head.weight"] = rand(vocab, HIDDEN)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama")
    w.add_context_length(64)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([int(gguf.TokenType.NORMAL)] * (vocab - 1) + [int(gguf.TokenType.CONTROL)])
    w.add_token_merges(MERGES)
    w.add_bos_token_id(vocab - 1)
    w.add_eos_token_id(vocab - 1)
    # numpy (out, in) order: the writer stores ne reversed, the reader hands back (out, in).
    w.add_tensor("token_embd.weight", hf["model.embed_tokens.weight"])
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        w.add_tensor(f"blk.{i}.attn_norm.weight", hf[p + "input_layernorm.weight"])
        w.add_tensor(f"blk.{i}.attn_q.weight", _llama_cpp_permute(hf[p + "self_attn.q_proj.weight"], HEADS))
        w.add_tensor(f"blk.{i}.attn_k.weight", _llama_cpp_permute(hf[p + "self_attn.k_proj.weight"], KV_HEADS))
        w.add_tensor(f"blk.{i}.attn_v.weight", hf[p + "self_attn.v_proj.weight"])
        w.add_tensor(f"blk.{i}.attn_output.weight", hf[p + "self_attn.o_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_norm.weight", hf[p + "post_attention_layernorm.weight"])
        w.add_tensor(f"blk.{i}.ffn_gate.weight", hf[p + "mlp.gate_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_up.weight", hf[p + "mlp.up_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_down.weight", hf[p + "mlp.down_proj.weight"])
    w.add_tensor("output_norm.weight", hf["model.norm.weight"])
    w.add_tensor("output.weight", hf["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return hf


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh $DNNKIT_HOME per test, so every test converts (and its cache checks see only its file)."""
    folder = tmp_path / "home"
    monkeypatch.setenv("DNNKIT_HOME", str(folder))
    return folder


def test_registry_converts_gguf_once_and_caches(tmp_path: Path, home: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import dnnkit.models.gguf as gguf_mod
    from dnnkit.models.registry import load_model

    path = tmp_path / "tiny.gguf"
    expected = write_tiny_llama_gguf(path)
    vocab = len(_vocab())

    loaded = load_model(str(path))
    assert loaded.info.task == "causal-lm"
    model = loaded.model
    cfg = model.config
    assert (cfg.model_type, cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size) == (
        "llama", HIDDEN, LAYERS, FFN)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.vocab_size) == (HEADS, KV_HEADS, vocab)
    assert cfg.tie_word_embeddings is False

    # every weight is the one written, in HF layout: shapes not transposed, q/k un-permuted.
    state = model.state_dict()
    assert set(state) == set(expected)
    for name, want in expected.items():
        got = state[name]
        assert got.dtype == torch.float32, name
        assert tuple(got.shape) == want.shape, name
        torch.testing.assert_close(got, torch.from_numpy(want), rtol=0, atol=0, msg=name)

    with torch.no_grad():
        logits = model(torch.tensor([[1, 2, 3, vocab - 1]])).logits
    assert logits.shape == (1, 4, vocab)
    assert torch.isfinite(logits).all()

    tok = loaded.tokenizer()
    ids = tok("hello world", add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(ids)[:2] == ["hell", "o"]  # the file's merges are applied
    assert tok.decode(ids) == "hello world"
    assert tok.eos_token == EOS and tok.eos_token_id == vocab - 1

    # the converted folder is cached under $DNNKIT_HOME/gguf/ ...
    folder = Path(loaded.hf_dir)
    assert folder.parent == home / "gguf"
    assert folder.name.startswith("tiny-")
    assert (folder / "config.json").is_file()
    assert json.loads((folder / "config.json").read_text())["model_type"] == "llama"
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())

    # ... and a second load reads the cache instead of converting again.
    def no_conversion(p: Path) -> None:
        raise AssertionError(f"GGUF {p} converted again instead of using the cache")

    monkeypatch.setattr(gguf_mod, "load_gguf_model_and_tokenizer", no_conversion)
    again = load_model(str(path))
    assert Path(again.hf_dir) == folder
    assert again.sha256() == loaded.sha256()
    torch.testing.assert_close(again.model.state_dict()["lm_head.weight"], state["lm_head.weight"])


def _write_corpus(path: Path) -> Path:
    """Twenty short paragraphs; `text:` splits on blank lines and keeps the last 10 % for 'test'."""
    words = ["hello", "world", "or", "hell", "low", "word", "roll", "hero"]
    paragraphs = [" ".join(words[(i + j) % len(words)] for j in range(12)) for i in range(20)]
    path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return path


def test_cli_eval_and_inspect_gguf_quietly(tmp_path: Path, home: Path) -> None:
    from dnnkit.cli.app import app

    path = tmp_path / "tiny.gguf"
    write_tiny_llama_gguf(path, seed=1)
    corpus = _write_corpus(tmp_path / "corpus.txt")
    runner = CliRunner()

    # eval converts (fresh $DNNKIT_HOME): no tqdm / transformers bar may reach stderr.
    result = runner.invoke(app, ["eval", str(path), "--data", f"text:{corpus}", "--limit", "2",
                                 "--seq-len", "8", "--json"])
    assert result.exit_code == 0, result.stderr + repr(result.exception)
    for text in BAR_TEXT:
        assert text not in result.stderr, result.stderr
    report = json.loads(result.stdout)
    assert report["samples"] == 2
    assert math.isfinite(report["perplexity"]) and report["perplexity"] > 1.0
    assert (home / "gguf").is_dir()

    result = runner.invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.stderr + repr(result.exception)
    for text in BAR_TEXT:
        assert text not in result.stderr, result.stderr
    info = json.loads(result.stdout)
    assert info["format"] == "gguf"
    assert info["num_tensors"] == 3 + 9 * LAYERS
    assert info["architecture"]["architecture"] == "llama"
