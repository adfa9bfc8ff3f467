"""Surgery outputs of the zoo models, made once per test module with small budgets."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dnnkit.cli.app import app


def run(*args: object) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="session")
def surgery_outputs(tmp_path_factory: pytest.TempPathFactory, digits_cnn_ref: str, digits_mlp_ref: str
                    ) -> dict[str, Path]:
    """{"plain", "prune", "lowrank", "bcosify", "swap-projection"} -> a model reference / checkpoint."""
    folder = tmp_path_factory.mktemp("surgeries")
    made = {"plain": digits_cnn_ref}
    commands = {
        "prune": ["prune", digits_cnn_ref, "--ratio", "0.6"],
        "lowrank": ["lowrank", digits_cnn_ref, "--svd", "--rank-ratio", "0.3", "--no-plots"],
        "bcosify": ["bcosify", digits_cnn_ref, "--epochs", "0", "--grids", "0", "--no-plots"],
        "swap-projection": ["swap-projection", "tversky", digits_mlp_ref, "--layers", "9", "--features", "16",
                            "--epochs", "1", "--limit", "64", "--no-plots"],
    }
    for name, args in commands.items():
        out = folder / f"{name}.safetensors"
        res = run(*args, "-o", out, "--quiet")
        assert res.exit_code == 0, res.stderr
        made[name] = str(out)
    return made
