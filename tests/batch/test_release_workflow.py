"""docs/release-workflow.md's script, run for real twice in a row: the second run resumes every step."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "release-workflow.md"
BIN = Path(sys.executable).parent


def release_script(doc: Path = DOC) -> str:
    """The first ```bash block of the document: the release script."""
    match = re.search(r"```bash\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)
    assert match, f"no bash block in {doc}"
    return match.group(1)


def run_script(script: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(ROOT)}
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def statuses(path: Path) -> dict[str, str]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {Path(r["input"]).name: r["status"] for r in rows}


@pytest.mark.skipif(shutil.which("jq") is None or shutil.which("bash") is None, reason="the script needs bash and jq")
@pytest.mark.skipif(not (BIN / "dnnkit").exists(), reason="needs the dnnkit console script beside this Python")
def test_release_script_runs_twice_and_resumes(digits_mlp_ref, tmp_path):
    from dnnkit.models.registry import resolve

    zoo_file = resolve(digits_mlp_ref).path
    release = tmp_path / "release"
    release.mkdir()
    for name in ("small", "base"):
        shutil.copy(zoo_file, release / f"{name}.safetensors")
    script = release_script()
    work = tmp_path / "build" / "release"

    first = run_script(script, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "release ready in build/release/pruned" in first.stdout
    assert set(statuses(work / "prune.jsonl").values()) == {"ok"}
    pruned = {p.name for p in (work / "pruned").iterdir()}
    assert {"base.safetensors", "small.safetensors", "base.safetensors.result.json", "SHA256SUMS"} <= pruned

    second = run_script(script, tmp_path)  # "run it again to resume": every batch step skips its verified outputs
    assert second.returncode == 0, second.stderr[-3000:]
    assert "release ready" in second.stdout
    for log in ("prune.jsonl", "eval-base.jsonl", "eval-pruned.jsonl"):
        assert statuses(work / log) == {"base.safetensors": "skipped", "small.safetensors": "skipped"}, log



def test_report_steps_resume_and_redo_a_changed_input(batch_cli, ckpts, tmp_path):
    """Steps 1 and 3 in small: a report batch with --resume runs on the first call, skips on the next, and
    redoes the report of an input that changed (as a re-pruned checkpoint does)."""
    good = ckpts[:3]
    args = [*good, "--out-dir", tmp_path / "reports", "--resume", "--quiet", "--", "inspect", "--stats"]
    first = batch_cli(*args)
    assert first.exit_code == 0, first.stderr
    assert {r["status"] for r in batch_cli.lines(first)} == {"ok"}
    again = batch_cli(*args)
    assert again.exit_code == 0, again.stderr
    skipped = batch_cli.lines(again)
    assert {r["status"] for r in skipped} == {"skipped"} and all("tensors" in r["metrics"] for r in skipped)
    import torch
    from safetensors.torch import save_file

    save_file({"fc.weight": torch.zeros(6, 4), "fc.bias": torch.zeros(6)}, str(good[1]))
    changed = batch_cli(*args)
    assert {Path(r["input"]).stem: r["status"] for r in batch_cli.lines(changed)} == {
        "alpha": "skipped", "beta": "ok", "gamma": "skipped"}
    plain = batch_cli(*args[:-5], "--quiet", "--", "inspect", "--stats")  # without --resume: refused, as documented
    assert plain.exit_code == 2 and "already exists" in plain.stderr and "--resume" in plain.stderr
