"""Ctrl-C in the middle of a batch (a real SIGINT to the process group), then --resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from dnnkit.models.safetensors_io import read_header
from tests.batch import helpers

ROOT = Path(__file__).resolve().parents[2]


def test_ctrl_c_keeps_finished_outputs_and_resume_finishes(scale_cli, ckpts, tmp_path):
    inputs = []
    for i in range(6):
        path = tmp_path / "in" / f"m{i}.safetensors"
        path.parent.mkdir(exist_ok=True)
        shutil.copy(ckpts[i % 3], path)
        inputs.append(path)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, helpers.__file__, "batch", *map(str, inputs), "--out-dir", str(out), "--jobs", "2",
           "--", "scale", "--sleep", "1.5"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                            start_new_session=True)
    try:
        first = proc.stdout.readline()  # returns when the first item has finished
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: SIGINT to the whole foreground group
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    lines = [json.loads(line) for line in [first, *rest.splitlines()] if line.strip()]
    finished = {line["input"] for line in lines if line["status"] == "ok"}
    assert 1 <= len(finished) < len(inputs), lines
    assert "error: interrupted" in err and "--resume" in err
    assert not [p.name for p in out.iterdir() if ".tmp-" in p.name]  # nothing half-written
    for path in inputs:
        output = out / path.name
        if str(path) in finished:
            assert read_header(output).dnnkit_record()["source"]["sha256"]
            assert Path(str(output) + ".result.json").is_file()

    resumed = scale_cli(*inputs, "--out-dir", out, "--resume", "--", "scale", "--sleep", "1.5")
    assert resumed.exit_code == 0, resumed.stderr
    status = {line["input"]: line["status"] for line in scale_cli.lines(resumed)}
    assert {k for k, v in status.items() if v == "skipped"} >= finished
    assert set(status.values()) <= {"ok", "skipped"} and len(status) == len(inputs)
    for path in inputs:
        assert read_header(out / path.name).dnnkit_record()["recipe"][-1]["op"] == "scale"


def test_interrupted_items_are_not_counted_as_finished(ckpts, tmp_path):
    """Item 1 is quick, the others sleep: after Ctrl-C the running ones are `interrupted`, not finished."""
    manifest = tmp_path / "plan.jsonl"
    rows = [{"input": str(ckpts[0]), "options": {"sleep": 0}, "output": "m1.safetensors"}]
    rows += [{"input": str(ckpts[i % 3]), "options": {"sleep": 60}, "output": f"m{i + 1}.safetensors"}
             for i in range(1, 4)]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, helpers.__file__, "batch", "--manifest", str(manifest), "--out-dir", str(tmp_path / "out"),
           "--jobs", "2", "--", "scale"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                            start_new_session=True)
    try:
        first = proc.stdout.readline()  # item 1 has finished; item 2 (and maybe 3) is running
        os.killpg(proc.pid, signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    lines = [json.loads(line) for line in [first, *rest.splitlines()] if line.strip()]
    assert [line["status"] for line in lines if line["status"] != "interrupted"] == ["ok"], lines
    stopped = [line for line in lines if line["status"] == "interrupted"]
    assert 1 <= len(stopped) <= 2 and 2 in {line["index"] for line in stopped}
    assert all(line["exit_code"] == 130 and line["error"] and line["metrics"] is None for line in stopped)
    not_run = 4 - len(lines)
    expected = f"error: interrupted: 1 of 4 items finished, {len(stopped)} interrupted"
    expected += f", {not_run} not run;" if not_run else ";"
    assert expected in err, err
    assert f"4 items: 1 ok, {len(stopped)} interrupted" in err
    assert not [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # nothing half-written
