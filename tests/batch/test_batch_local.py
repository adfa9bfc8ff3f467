"""`dnnkit batch` with the local process pool: streaming results, failures, outputs, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dnnkit.models.safetensors_io import read_header


def test_inspect_over_checkpoints_with_one_broken(batch_cli, ckpts, tmp_path):
    out = tmp_path / "reports"
    result = batch_cli(ckpts[0].parent, "--jobs", "2", "--out-dir", out, "--", "inspect", "--stats")
    assert result.exit_code == 3, result.stderr
    lines = batch_cli.lines(result)
    by_name = {Path(r["input"]).name: r for r in lines}
    assert set(by_name) == {p.name for p in ckpts}
    assert set(lines[0]) >= {"input", "output", "status", "metrics", "error", "seconds"}
    for name in ("alpha", "beta", "gamma"):
        r = by_name[f"{name}.safetensors"]
        assert r["status"] == "ok" and r["error"] is None and r["seconds"] >= 0
        assert r["metrics"]["num_params"] == 30 and "stats" in r["metrics"]["tensors"][0]
        assert r["output"] == str(out / f"{name}.json")
        saved = json.loads((out / f"{name}.json").read_text())
        assert saved["metrics"] == r["metrics"] and len(saved["source"]["sha256"]) == 64
    bad = by_name["broken.safetensors"]
    assert bad["status"] == "failed" and bad["metrics"] is None
    assert "not a valid safetensors file" in bad["error"]
    assert not (out / "broken.json").exists()
    assert "3 ok, 1 failed" in result.stderr  # the summary table is on stderr, stdout is only JSON Lines


def test_stdin_pipeline_streams_json_lines(batch_cli, ckpts):
    text = "# comment\n" + "\n".join(str(p) for p in ckpts[:2]) + "\n\n"
    result = batch_cli("-", "--quiet", "--", "inspect", input=text)
    assert result.exit_code == 0, result.stderr
    lines = batch_cli.lines(result)
    assert [Path(r["input"]).name for r in sorted(lines, key=lambda r: r["index"])] == ["alpha.safetensors",
                                                                                         "beta.safetensors"]
    assert all(r["status"] == "ok" and r["output"] is None for r in lines)
    assert result.stderr == ""  # --quiet: no summary


def test_writer_gets_output_from_template(scale_cli, ckpts, tmp_path):
    out = tmp_path / "out"
    good = ckpts[:3]
    result = scale_cli(*good, "--out-dir", out, "--template", "{stem}-x3.safetensors", "--jobs", "2",
                       "--", "scale", "--factor", "3")
    assert result.exit_code == 0, result.stderr
    for line in scale_cli.lines(result):
        path = Path(line["output"])
        assert path.parent == out and path.name == Path(line["input"]).stem + "-x3.safetensors"
        record = read_header(path).dnnkit_record()
        assert record["recipe"][-1]["params"] == {"factor": 3.0}
        assert record["command"][:3] == ["dnnkit", "scale", line["input"]]  # the item's argv, not batch's
        assert line["argv"][-3:] == ["-o", str(path), "--json"]
        assert Path(str(path) + ".result.json").is_file()
    assert not list(out.glob(".*tmp*"))


def test_manifest_jsonl_per_item_options_and_worker_crash(scale_cli, ckpts, tmp_path):
    manifest = tmp_path / "ckpts" / "runs.jsonl"
    manifest.write_text("\n".join([
        json.dumps({"input": "alpha.safetensors", "options": {"factor": 10}}),
        "beta.safetensors",
        json.dumps({"input": "gamma.safetensors", "options": {"crash": True}}),
        json.dumps({"input": "alpha.safetensors", "args": ["--factor", "0.5"], "output": "alpha-half.safetensors"}),
    ]) + "\n")
    result = scale_cli("--manifest", manifest, "--out-dir", tmp_path / "out", "--jobs", "2", "--", "scale")
    assert result.exit_code == 3, result.stderr
    lines = {r["index"]: r for r in scale_cli.lines(result)}
    assert lines[1]["status"] == "ok" and lines[1]["metrics"]["factor"] == 10.0
    assert lines[2]["status"] == "ok" and lines[2]["metrics"]["factor"] == 2.0
    assert lines[3]["status"] == "failed" and "worker process died" in lines[3]["error"]
    assert lines[4]["status"] == "ok", lines[4]["error"]
    assert lines[4]["output"] == str(tmp_path / "out" / "alpha-half.safetensors")
    assert not (tmp_path / "out" / "gamma.safetensors").exists()


def test_resume_skips_verified_and_redoes_the_rest(scale_cli, ckpts, tmp_path):
    out = tmp_path / "out"
    args = [*ckpts[:3], "--out-dir", out, "--jobs", "2", "--", "scale"]
    first = scale_cli(*args)
    assert first.exit_code == 0, first.stderr
    again = scale_cli(*args)
    assert again.exit_code == 2 and "already exists" in again.stderr and "--resume" in again.stderr
    alpha, beta, gamma = (out / f"{n}.safetensors" for n in ("alpha", "beta", "gamma"))
    alpha_mtime = alpha.stat().st_mtime_ns
    beta.write_bytes(beta.read_bytes()[:50])  # a damaged output does not verify
    gamma.unlink()  # a missing one is simply run
    resumed = scale_cli(*args[:-2], "--resume", "--", "scale")
    assert resumed.exit_code == 0, resumed.stderr
    status = {Path(r["input"]).stem: r["status"] for r in scale_cli.lines(resumed)}
    assert status == {"alpha": "skipped", "beta": "ok", "gamma": "ok"}
    assert alpha.stat().st_mtime_ns == alpha_mtime
    assert read_header(beta).dnnkit_record()["source"]["sha256"]
    skipped = next(r for r in scale_cli.lines(resumed) if r["status"] == "skipped")
    assert skipped["metrics"]["factor"] == 2.0  # the saved result is streamed again

    # A changed input (another sha256) or another command line is redone, not skipped.
    import torch
    from safetensors.torch import save_file

    save_file({"fc.weight": torch.ones(6, 4), "fc.bias": torch.ones(6)}, str(ckpts[0]))
    changed = scale_cli(*args[:-2], "--resume", "--", "scale")
    assert {Path(r["input"]).stem: r["status"] for r in scale_cli.lines(changed)} == {
        "alpha": "ok", "beta": "skipped", "gamma": "skipped"}
    other_args = scale_cli(*args[:-2], "--resume", "--", "scale", "--factor", "5")
    assert all(r["status"] == "ok" for r in scale_cli.lines(other_args))


def test_dry_run_plans_and_writes_nothing(scale_cli, ckpts, tmp_path):
    out = tmp_path / "out"
    result = scale_cli(*ckpts[:2], "--out-dir", out, "--dry-run", "--", "scale")
    assert result.exit_code == 0, result.stderr
    lines = scale_cli.lines(result)
    assert [r["status"] for r in lines] == ["planned", "planned"]
    assert set(lines[0]) >= {"input", "output", "status", "metrics", "error", "seconds"}
    assert not out.exists()


def test_threads_per_job(scale_cli, ckpts, tmp_path):
    default = scale_cli(ckpts[0], "--out-dir", tmp_path / "a", "--", "scale")
    assert default.exit_code == 0, default.stderr
    assert scale_cli.lines(default)[0]["metrics"]["threads"] == 1
    two = scale_cli(ckpts[0], "--out-dir", tmp_path / "b", "--threads-per-job", "2", "--", "scale")
    assert scale_cli.lines(two)[0]["metrics"]["threads"] == 2


@pytest.mark.parametrize("args, match", [
    (["{tmp}/nothing-*.safetensors", "--", "inspect"], "no inputs matched"),
    (["{ck}/alpha.safetensors", "--", "frobnicate"], "unknown command 'frobnicate'"),
    (["{ck}/alpha.safetensors", "--", "zoo"], "not a per-model command"),
    (["{ck}/alpha.safetensors"], "missing `-- COMMAND"),
    (["{ck}/alpha.safetensors", "--"], "no command after"),
    (["{ck}/alpha.safetensors", "--", "inspect", "--bogus"], "No such option"),
    (["{ck}/alpha.safetensors", "--", "eval", "--limit", "zero"], "--limit"),
    (["{ck}/alpha.safetensors", "{tmp}/missing.safetensors", "--", "inspect"], "no such file"),
    (["{ck}/alpha.safetensors", "--out-dir", "{tmp}/o", "--template", "{{size}}.json", "--", "inspect"],
     "unknown field {size}"),
    (["{ck}/alpha.safetensors", "--out-dir", "{tmp}/o", "--template", "../{{stem}}.json", "--", "inspect"],
     "outside --out-dir"),
    (["{ck}/alpha.safetensors", "--resume", "--", "inspect"], "--resume needs --out-dir"),
    (["{ck}/alpha.safetensors", "--executor", "dask", "--", "inspect"], "--executor must be local or ray"),
    (["{ck}/alpha.safetensors", "--", "inspect", "--help"], "--help after `--`"),
])
def test_bad_inputs_exit_2(batch_cli, ckpts, tmp_path, args, match):
    ck = ckpts[0].parent
    result = batch_cli(*[a.format(tmp=tmp_path, ck=ck) for a in args])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert match in result.stderr and result.stderr.startswith("error: ")
    assert result.stdout == ""


def test_manifest_line_that_is_not_a_reference(batch_cli, ckpts, tmp_path):
    manifest = tmp_path / "list.txt"
    manifest.write_text(f"{ckpts[0]}\nthis is not a model\n")
    result = batch_cli("--manifest", manifest, "--", "inspect")
    assert result.exit_code == 2
    assert f"{manifest} line 2 is not a model reference: 'this is not a model'" in result.stderr
    manifest.write_text('{"input": "' + str(ckpts[0]) + '", "ratio": 0.5}\n')
    result = batch_cli("--manifest", manifest, "--", "inspect")
    assert result.exit_code == 2 and "unknown key 'ratio'" in result.stderr


def test_writer_bad_inputs(scale_cli, ckpts, tmp_path):
    no_out = scale_cli(ckpts[0], "--", "scale")
    assert no_out.exit_code == 2 and "pass --out-dir" in no_out.stderr
    dash_o = scale_cli(ckpts[0], "--out-dir", tmp_path, "--", "scale", "-o", tmp_path / "x.safetensors")
    assert dash_o.exit_code == 2 and "do not pass -o" in dash_o.stderr
    other = tmp_path / "other"
    other.mkdir()
    (other / "alpha.safetensors").write_bytes(ckpts[0].read_bytes())
    collide = scale_cli(ckpts[0], other / "alpha.safetensors", "--out-dir", tmp_path / "o", "--", "scale")
    assert collide.exit_code == 2 and "outputs collide" in collide.stderr and "{parent}" in collide.stderr
    ok = scale_cli(ckpts[0], other / "alpha.safetensors", "--out-dir", tmp_path / "o",
                   "--template", "{parent}-{stem}.safetensors", "--", "scale")
    assert ok.exit_code == 0, ok.stderr
    assert sorted(p.name for p in (tmp_path / "o").glob("*.safetensors")) == ["ckpts-alpha.safetensors",
                                                                               "other-alpha.safetensors"]
    into_input = scale_cli(ckpts[0], "--out-dir", ckpts[0].parent, "--", "scale")
    assert into_input.exit_code == 2 and "is the input" in into_input.stderr


def test_eval_metrics_match_single_calls(batch_cli, tmp_path):
    """Untrained digits-mlp checkpoints (no zoo training needed): batch's metrics equal `dnnkit eval`'s."""
    import torch

    from dnnkit.models.save import write_checkpoint
    from dnnkit.zoo.build import build_zoo_network

    arch = {"family": "zoo", "name": "digits-mlp", "task": "classifier", "input_shape": [1, 8, 8],
            "num_classes": 10, "data": "digits"}
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        path = tmp_path / f"mlp{seed}.safetensors"
        write_checkpoint(path, build_zoo_network("digits-mlp").state_dict(), {"arch": arch}, force=False)
        paths.append(path)
    result = batch_cli(*paths, "--jobs", "2", "--", "eval", "--data", "digits", "--limit", "60")
    assert result.exit_code == 0, result.stderr
    lines = sorted(batch_cli.lines(result), key=lambda r: r["index"])
    assert [r["metrics"]["samples"] for r in lines] == [60, 60]
    single = batch_cli.runner.invoke(batch_cli.app, ["eval", str(paths[1]), "--data", "digits", "--limit", "60",
                                                     "--json"])
    assert single.exit_code == 0, single.stderr
    assert lines[1]["metrics"] == json.loads(single.stdout)
