import json

import pytest
from typer.testing import CliRunner

from dnnkit.cli.app import app


class Invoker:
    """Runs the CLI in-process and splits stdout/stderr."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str):
        result = self.runner.invoke(app, [str(a) for a in args])
        return result

    def json(self, *args: str) -> dict:
        result = self(*args, "--json")
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture
def cli() -> Invoker:
    return Invoker()
