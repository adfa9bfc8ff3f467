import json

import pytest
from typer.testing import CliRunner

from dnnkit.cli.app import app


@pytest.fixture
def cli_json():
    def run(*args: str) -> dict:
        result = CliRunner().invoke(app, [str(a) for a in args] + ["--json"])
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)

    return run
