"""Shared test set-up: an isolated $DNNKIT_HOME, one torch thread, small shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_HOME = Path(os.environ.get("DNNKIT_TEST_HOME", "")) if os.environ.get("DNNKIT_TEST_HOME") else None


def pytest_configure(config: pytest.Config) -> None:
    """Tests never touch the user's cache: zoo models are trained into a per-run folder."""
    import tempfile

    home = _HOME or Path(tempfile.mkdtemp(prefix="dnnkit-test-home-"))
    os.environ["DNNKIT_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_mlp_ref() -> str:
    """`zoo:digits-mlp`, trained once per test session (a few seconds)."""
    from dnnkit.models.registry import load_model

    load_model("zoo:digits-mlp")
    return "zoo:digits-mlp"


@pytest.fixture(scope="session")
def digits_cnn_ref() -> str:
    """`zoo:digits-cnn`, trained once per test session (a few seconds)."""
    from dnnkit.models.registry import load_model

    load_model("zoo:digits-cnn")
    return "zoo:digits-cnn"
