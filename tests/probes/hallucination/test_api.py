"""`probe-hallucination` through the library entry: `dnnkit.runner.run_probe` with DATASET_BUILD, TRAIN, SCORE."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dnnkit.errors import InputError
from dnnkit.probes.hallucination.probe import (
    DATASET_BUILD,
    SCORE,
    TRAIN,
    DatasetConfig,
    ScoreConfig,
    TrainConfig,
)
from dnnkit.runner import run_probe
from tests.probes.hallucination.test_train_score import _records, _write


def test_dataset_build_through_run_probe(tmp_path: Path) -> None:
    out = tmp_path / "qa.jsonl"
    res = run_probe(DATASET_BUILD, None, DatasetConfig(tasks="capitals,arithmetic", n_arith=20), output=str(out))
    r = res.report
    assert r["n"] == 229 and r["counts"] == {"capitals": 209, "arithmetic": 20} and r["dry_run"] is False
    assert r["manifest"] == str(out) + ".manifest.json" and len(res.extra["records"]) == 229
    assert json.loads(Path(r["manifest"]).read_text())["sha256"] == r["sha256"]
    again = tmp_path / "again.jsonl"
    Path(str(again) + ".manifest.json").write_text("{}")
    with pytest.raises(InputError, match="manifest.json' already exists"):  # checked before building
        run_probe(DATASET_BUILD, None, DatasetConfig(), output=str(again))
    assert not again.exists()
    dry = run_probe(DATASET_BUILD, None, DatasetConfig(tasks="arithmetic", n_arith=5), output=str(again),
                    dry_run=True)
    assert dry.report["output"] is None and dry.report["n"] == 5 and not again.exists()


def test_train_and_score_through_run_probe(tiny_lm: str, tmp_path: Path) -> None:
    data = _write(tmp_path / "qa.jsonl", _records(20))
    out = tmp_path / "probe.safetensors"
    cfg = TrainConfig(qa=f"jsonl:{data}", folds=3, n_boot=100, grid=False, layer="1")
    res = run_probe(TRAIN, tiny_lm, cfg, output=str(out), argv=["dnnkit", "probe-hallucination", "train"])
    r = res.report
    assert r["output"] == str(out) and r["layer"] == 1 and r["n_labelled"] == 40 and r["model"] == tiny_lm
    assert r["report_dir"] == str(tmp_path / "probe_report") and "roc.png" in r["figures"]
    assert json.loads((tmp_path / "probe_report" / "report.json").read_text())["output"] == str(out)
    assert res.extra["probe"].info["layer"] == 1 and set(r["cost"]) >= {"load_s", "threads", "cached"}

    scored = run_probe(SCORE, tiny_lm, ScoreConfig(probe=str(out), qa=f"jsonl:{data}", threshold=0.5))
    s = scored.report
    assert s["output"] is None and s["n"] == 40 and s["threshold"] == 0.5 and len(scored.extra["rows"]) == 40
    with pytest.raises(InputError, match="is the input"):  # never the probe file, even with force
        run_probe(SCORE, tiny_lm, ScoreConfig(probe=str(out), qa=f"jsonl:{data}"), output=str(out), force=True)


def test_configs_and_prechecks(tiny_lm: str, tiny_encoder: str, tmp_path: Path) -> None:
    data = _write(tmp_path / "qa.jsonl", _records(12))
    weights = str(Path(tiny_lm) / "model.safetensors")  # a safetensors file that is not a probe
    for cfg, needle in [(TrainConfig(folds=1), "--folds"), (TrainConfig(layer="top"), "--layer"),
                        (TrainConfig(qa="squad"), "builtin-qa or jsonl:PATH"), (DatasetConfig(tasks="x"), "x"),
                        (ScoreConfig(probe=weights, qa=f"jsonl:{data}"), "not a probe"),
                        (ScoreConfig(probe=str(tmp_path / "none.safetensors")), "does not exist")]:
        with pytest.raises(InputError, match=needle):
            cfg.check()
    with pytest.raises(InputError, match="outside 0..2"):  # from the model's files, before it is loaded
        TRAIN.precheck(tiny_lm, TrainConfig(qa=f"jsonl:{data}", layer="7"))
    with pytest.raises(InputError, match="not a causal language model"):
        TRAIN.precheck(tiny_encoder, TrainConfig(qa=f"jsonl:{data}"))
