"""Batch test fixtures: tiny checkpoints (one broken), the test-only `scale` command, a CLI runner."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import typer
from safetensors.torch import save_file
from typer.testing import CliRunner


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ray: starts a real local Ray cluster (runs in CI; about 40 s here)")


@pytest.fixture
def ckpts(tmp_path: Path) -> list[Path]:
    """Three tiny bare safetensors checkpoints and one that is broken (random bytes)."""
    folder = tmp_path / "ckpts"
    folder.mkdir()
    paths = []
    for i, name in enumerate(("alpha", "beta", "gamma")):
        gen = torch.Generator().manual_seed(i)
        path = folder / f"{name}.safetensors"
        save_file({"fc.weight": torch.randn(6, 4, generator=gen), "fc.bias": torch.randn(6, generator=gen)},
                  str(path))
        paths.append(path)
    broken = folder / "broken.safetensors"
    broken.write_bytes(bytes(range(256)) * 3)
    paths.append(broken)
    return paths


class BatchCli:
    """Runs `dnnkit batch` in-process (typer's CliRunner on the dnnkit app); parses the JSON Lines on stdout."""

    def __init__(self, app: typer.Typer) -> None:
        self.app = app
        self.runner = CliRunner()

    def __call__(self, *args: object, input: str | None = None):  # noqa: A002 - CliRunner's name
        return self.runner.invoke(self.app, ["batch", *[str(a) for a in args]], input=input)

    @staticmethod
    def lines(result) -> list[dict]:
        return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def batch_cli() -> BatchCli:
    from dnnkit.cli.app import app

    return BatchCli(app)


@pytest.fixture
def scale_cli():
    """The CLI with the test-only `scale` writer registered (workers are forked, so they see it too)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the test-only command reaches workers through fork, which batch uses on Linux only")
    from dnnkit.cli.app import app
    from tests.batch.helpers import register

    info = register(app)
    try:
        yield BatchCli(app)
    finally:
        app.registered_commands.remove(info)


def make_bert_folder(path: Path, seed: int = 0) -> Path:
    """A tiny Hugging Face model folder (config.json + model.safetensors), as `save_pretrained` writes it."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    BertModel(config).save_pretrained(str(path))
    return path


def make_timm_folder(path: Path, safe: bool = True) -> Path:
    """A tiny timm model folder, as timm's `save_for_hf` writes it (config.json with "architecture")."""
    import timm
    from timm.models._hub import save_for_hf

    torch.manual_seed(0)
    save_for_hf(timm.create_model("test_resnet", pretrained=False, num_classes=4), str(path),
                safe_serialization=safe)
    return path
