"""`--executor ray`: a real cluster (head + one worker node on loopback), the same job, shutdown."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_cli() -> list[str]:
    exe = Path(sys.executable).parent / "ray"
    return [str(exe)] if exe.exists() else [shutil.which("ray") or "ray"]


@pytest.mark.ray
def test_same_job_on_a_real_ray_cluster(ckpts, tmp_path):
    pytest.importorskip("ray")
    ray = _ray_cli()
    port = _free_port()
    # Workers import dnnkit from this checkout; a running cluster elsewhere must not be picked up.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    subprocess.run([*ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                    "--include-dashboard", "false", *common], env=env, check=True, capture_output=True, timeout=180)
    try:
        subprocess.run([*ray, "start", "--address", f"127.0.0.1:{port}", *common], env=env, check=True,
                       capture_output=True, timeout=180)
        out = tmp_path / "reports"
        proc = subprocess.run([sys.executable, "-m", "dnnkit", "batch", *map(str, ckpts), "--executor", "ray",
                               "--address", f"127.0.0.1:{port}", "--out-dir", str(out), "--", "inspect", "--stats"],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 3, proc.stderr
        assert "2 nodes, 2 CPUs" in proc.stderr  # head + worker joined the cluster the job ran on
        lines = {Path(r["input"]).name: r for r in map(json.loads, proc.stdout.splitlines())}
        assert {k: v["status"] for k, v in lines.items()} == {
            "alpha.safetensors": "ok", "beta.safetensors": "ok", "gamma.safetensors": "ok",
            "broken.safetensors": "failed"}
        assert lines["alpha.safetensors"]["metrics"]["num_params"] == 30
        assert "not a valid safetensors file" in lines["broken.safetensors"]["error"]
        assert sorted(p.name for p in out.glob("*.json")) == ["alpha.json", "beta.json", "gamma.json"]

    finally:
        stop = subprocess.run([*ray, "stop"], env=env, capture_output=True, text=True, timeout=180)
    assert stop.returncode == 0, stop.stderr
    after = subprocess.run([sys.executable, "-m", "dnnkit", "batch", str(ckpts[0]), "--executor", "ray",
                            "--address", f"127.0.0.1:{port}", "--", "inspect"], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert after.returncode == 2 and f"127.0.0.1:{port}" in after.stderr  # the cluster is gone


def test_unreachable_ray_address_is_exit_2_with_a_hint(batch_cli, ckpts):
    pytest.importorskip("ray")
    port = _free_port()
    result = batch_cli(ckpts[0], "--executor", "ray", "--address", f"127.0.0.1:{port}", "--", "inspect")
    assert result.exit_code == 2
    assert f"error: cannot reach a Ray cluster at 127.0.0.1:{port}" in result.stderr
    assert "ray start --head" in result.stderr
    assert result.stdout == ""


def test_gpus_per_task_needs_ray(batch_cli, ckpts):
    result = batch_cli(ckpts[0], "--gpus-per-task", "1", "--", "inspect")
    assert result.exit_code == 2 and "--executor ray" in result.stderr
