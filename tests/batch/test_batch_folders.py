"""Model folders (Hugging Face, timm) as batch items: found inside a folder of checkpoints, named as folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer

from dnnkit.batch.inputs import expand_inputs
from dnnkit.batch.plan import build_items, resolve_command
from dnnkit.errors import InputError
from tests.batch.conftest import make_bert_folder, make_timm_folder


@pytest.fixture
def root():
    from dnnkit.cli.app import app

    return typer.main.get_command(app)


@pytest.fixture
def models(ckpts, tmp_path) -> Path:
    """A folder with one bare checkpoint, a Hugging Face folder, a timm folder (.bin), and things that are not
    models: a config-only folder, a hidden temporary folder (an atomic writer's), a result record."""
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(ckpts[0], folder / "alpha.safetensors")
    make_bert_folder(folder / "bert")
    make_timm_folder(folder / "tres", safe=False)
    (folder / "notes").mkdir()
    (folder / "notes" / "config.json").write_text("{}")
    make_bert_folder(folder / ".bert.tmp-123-abcdef01")
    (folder / ".alpha.safetensors.tmp-1-ab").write_bytes(b"partial")
    (folder / "alpha.safetensors.result.json").write_text("{}")
    return folder


def test_folder_lists_model_subfolders(models):
    specs = expand_inputs([str(models)])
    assert [Path(s.reference).name for s in specs] == ["alpha.safetensors", "bert", "tres"]


def test_folder_of_only_model_folders(models):
    (models / "alpha.safetensors").unlink()
    assert [Path(s.reference).name for s in expand_inputs([str(models)])] == ["bert", "tres"]
    empty = models.parent / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "model.safetensors").write_bytes(b"")  # weights without config.json: not a model folder
    with pytest.raises(InputError, match="no inputs matched in folder") as err:
        expand_inputs([str(empty)])
    assert "**/*.safetensors" in (err.value.hint or "")


def test_batch_inspects_hf_and_timm_folders(batch_cli, models):
    result = batch_cli(models, "--jobs", "2", "--", "inspect")
    assert result.exit_code == 0, result.stderr
    lines = {Path(r["input"]).name: r for r in batch_cli.lines(result)}
    assert set(lines) == {"alpha.safetensors", "bert", "tres"}
    assert all(r["status"] == "ok" for r in lines.values()), lines
    assert lines["bert"]["metrics"]["num_params"] > 0 and lines["tres"]["metrics"]["num_params"] > 0


def test_folder_items_default_to_folder_outputs_for_prune(root, models, tmp_path):
    specs = expand_inputs([str(models)])
    out = tmp_path / "out"
    items = build_items(specs, resolve_command(root, ["prune", "--ratio", "0.5"]), root, out, None, force=False)
    assert [Path(i.output).name for i in items] == ["alpha.safetensors", "bert", "tres"]
    sparse = build_items(specs, resolve_command(root, ["prune", "--ratio", "0.5", "--format", "sparse"]), root, out,
                         None, force=False)
    assert [Path(i.output).name for i in sparse] == ["alpha.safetensors", "bert.safetensors", "tres.safetensors"]
    explicit = build_items(specs, resolve_command(root, ["prune", "--ratio", "0.5"]), root, out,
                           "{stem}-p.safetensors", force=False)
    assert [Path(i.output).name for i in explicit] == ["alpha-p.safetensors", "bert-p.safetensors",
                                                       "tres-p.safetensors"]
    reports = build_items(specs, resolve_command(root, ["inspect"]), root, out, None, force=False)
    assert [Path(i.output).name for i in reports] == ["alpha.json", "bert.json", "tres.json"]


def test_prune_hf_folder_writes_folder_and_resumes(batch_cli, models, tmp_path):
    shutil.rmtree(models / "tres")
    out = tmp_path / "pruned"
    args = [models, "--out-dir", out, "--jobs", "2", "--", "prune", "--ratio", "0.5"]
    first = batch_cli(*args)
    assert first.exit_code == 0, first.stderr
    lines = {Path(r["input"]).name: r for r in batch_cli.lines(first)}
    assert lines["bert"]["output"] == str(out / "bert") and lines["bert"]["status"] == "ok"
    assert {p.name for p in (out / "bert").iterdir()} >= {"config.json", "model.safetensors", "dnnkit.json"}
    assert json.loads((out / "bert.result.json").read_text())["status"] == "ok"
    from transformers import BertModel

    BertModel.from_pretrained(str(out / "bert"))  # plain transformers still loads it

    again = batch_cli(*args[:-4], "--resume", "--", "prune", "--ratio", "0.5")
    assert again.exit_code == 0, again.stderr
    assert {r["status"] for r in batch_cli.lines(again)} == {"skipped"}

    # The output folder, as the next step's input: checkpoints and model folders, not the result records.
    reports = batch_cli(out, "--out-dir", tmp_path / "reports", "--", "inspect")
    assert reports.exit_code == 0, reports.stderr
    assert sorted(Path(r["input"]).name for r in batch_cli.lines(reports)) == ["alpha.safetensors", "bert"]
