"""Input expansion, manifests, templates and argv building (no workers run here)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import typer

from dnnkit.batch.inputs import expand_inputs, options_to_args, read_manifest
from dnnkit.batch.plan import build_items, input_stem, resolve_command
from dnnkit.cli.batch import split_at_double_dash
from dnnkit.errors import InputError


@pytest.fixture
def root():
    from dnnkit.cli.app import app

    return typer.main.get_command(app)


def test_split_at_the_first_double_dash():
    assert split_at_double_dash(["a", "-j", "2", "--", "prune", "--", "x"]) == (["a", "-j", "2"],
                                                                               ["prune", "--", "x"])
    assert split_at_double_dash(["a"]) == (["a"], None)


def test_globs_folders_and_stdin(ckpts, tmp_path):
    folder = ckpts[0].parent
    by_glob = expand_inputs([str(folder / "*a.safetensors")])
    assert [Path(s.reference).name for s in by_glob] == ["alpha.safetensors", "beta.safetensors",
                                                         "gamma.safetensors"]
    by_folder = expand_inputs([str(folder)])
    assert len(by_folder) == 4
    piped = expand_inputs(["-"], stdin=io.StringIO(f"{ckpts[1]}\n# note\n\nzoo:digits-mlp\n"))
    assert [s.reference for s in piped] == [str(ckpts[1]), "zoo:digits-mlp"]
    with pytest.raises(InputError, match="no inputs matched"):
        expand_inputs(["-"], stdin=io.StringIO("\n"))


def test_manifest_paths_are_relative_to_the_manifest(ckpts, tmp_path):
    manifest = ckpts[0].parent / "m.jsonl"
    manifest.write_text('alpha.safetensors\n{"input": "beta.safetensors", "options": {"ratio": 0.5, '
                        '"layer_adaptive": true, "include": ["a.*", "b.*"], "skip": false}}\n')
    alpha, beta = read_manifest(str(manifest))
    assert alpha.reference == str(ckpts[0].parent / "alpha.safetensors")
    assert beta.args == ("--ratio", "0.5", "--layer-adaptive", "--include", "a.*", "--include", "b.*")


def test_options_to_args_rejects_nested_values():
    with pytest.raises(InputError, match="must be a string, number or boolean"):
        options_to_args({"x": {"y": 1}}, "m line 1")


def test_stems():
    assert input_stem("zoo:digits-mlp")[0] == "digits-mlp"
    assert input_stem("hf:org/name")[0] == "name"
    assert input_stem("a/b/model.safetensors") == ("model", "b")


def test_items_argv_and_outputs(root, ckpts, tmp_path):
    specs = expand_inputs([str(p) for p in ckpts[:2]])
    command = resolve_command(root, ["eval", "--data", "digits"])
    assert not command.writes
    items = build_items(specs, command, root, tmp_path / "o", "{index:03d}-{stem}.json", force=False)
    assert items[0].argv == ["eval", str(ckpts[0]), "--data", "digits", "--json"]
    assert items[1].output == str(tmp_path / "o" / "002-beta.json") and items[1].report
    no_out = build_items(specs, command, root, None, None, force=False)
    assert no_out[0].output is None and not no_out[0].report
    with pytest.raises(InputError, match="--template needs --out-dir"):
        build_items(specs, command, root, None, "{stem}.json", force=False)


def test_result_lines_are_strict_json(batch_cli, ckpts):
    result = batch_cli(ckpts[0], "--quiet", "--", "inspect")
    (line,) = result.stdout.splitlines()
    assert json.loads(line)["status"] == "ok"
