"""`train` and `score` end to end on a tiny random causal LM, and their bad inputs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dnnkit.cli.app import app
from dnnkit.models.registry import load_model
from dnnkit.models.safetensors_io import read_header
from dnnkit.probes.hallucination.generate import POSITIONS, SPAN, build_prompt, greedy_decode, teacher_forced

runner = CliRunner()


def _records(n: int = 40, seed: int = 0, answers: bool = True) -> list[dict]:
    """Arithmetic and element-number items; with `answers`, half teacher-forced right and half wrong."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        rec = {"id": f"a{i}", "task": "arithmetic", "family": "arithmetic", "group": f"a{i}",
               "stratum": "add-2d", "question": f"What is {a} + {b}?", "answer_stem": f"{a} + {b} =",
               "gold": [str(a + b)], "meta": {"op": "add", "digits": 2, "carries": int(a % 10 + b % 10 > 9),
                                              "result_digits": len(str(a + b))}}
        if answers:
            rec["answer"] = str(a + b) if i % 2 == 0 else str(a + b + 7)
        out.append(rec)
    for i in range(n):
        z = rng.randint(1, 100)
        rec = {"id": f"e{i}", "task": "element-numbers", "group": f"e{i}",
               "question": f"What is the atomic number of E{i}?", "answer_stem": f"The atomic number of E{i} is",
               "gold": [str(z)], "meta": {"entity": f"E{i}", "entity_len": 2 + len(str(i))}}
        if answers:
            rec["answer"] = str(z) if i % 2 == 1 else f"{z + 3}."
        out.append(rec)
    return out


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _train_args(model: str, data: Path, out: Path, *extra: str) -> list[str]:
    return ["probe-hallucination", "train", model, "--data", f"jsonl:{data}", "--folds", "3", "--n-boot", "100",
            "-o", str(out), "--json", *extra]


@pytest.fixture(scope="module")
def trained(tiny_lm: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("trained")
    data = _write(folder / "qa.jsonl", _records())
    out = folder / "probe.safetensors"
    res = runner.invoke(app, _train_args(tiny_lm, data, out, "--holdout-family", "chemistry", "--cache",
                                         str(folder / "cache")))
    assert res.exit_code == 0, res.output
    return {"result": json.loads(res.stdout), "probe": out, "data": data, "folder": folder}


def test_decoding_states_equal_teacher_forced_and_batching(tiny_lm: str) -> None:
    loaded = load_model(tiny_lm)
    tok = loaded.tokenizer()
    questions = ["What is 2 + 3?", "What is the capital of France?", "What is 12 + 30?", "Hi?"]
    prompts = [build_prompt(tok, q, "x =") for q in questions]
    assert tok.decode(prompts[0]).endswith("<|im_start|>assistant\nx =")
    assert tok.decode(prompts[0]).count("<|im_start|>system") == 1
    conts, ex = greedy_decode(loaded.model, tok, prompts, 5, 3, [[]] * 4, span=True)
    assert all(1 <= len(c) <= 5 for c in conts)
    single = [greedy_decode(loaded.model, tok, [p], 5, 1, [[]])[0][0] for p in prompts]
    assert conts == single
    tf = teacher_forced(loaded.model, tok, prompts, conts, [[]] * 4, 2, (*POSITIONS, SPAN))
    for pos in POSITIONS:
        np.testing.assert_allclose(ex.hidden[pos].astype(np.float32), tf.hidden[pos].astype(np.float32), atol=2e-2)
        assert ex.hidden[pos].shape == (4, 3, 32)
    # span: every clause token (an empty clause keeps the first generated token), zero-padded to the longest
    lengths = np.maximum(np.array(ex.clause_tokens), 1)
    np.testing.assert_array_equal(ex.hidden["span_len"], lengths)
    np.testing.assert_array_equal(tf.hidden["span_len"], lengths)
    assert ex.hidden[SPAN].shape == (4, 3, int(lengths.max()), 32)
    np.testing.assert_allclose(ex.hidden[SPAN].astype(np.float32), tf.hidden[SPAN].astype(np.float32), atol=2e-2)
    np.testing.assert_array_equal(ex.hidden[SPAN][:, :, 0], ex.hidden["first"])
    for i, k in enumerate(lengths):
        assert not ex.hidden[SPAN][i, :, k:].any()
        if ex.clause_tokens[i] >= 2:
            np.testing.assert_array_equal(ex.hidden[SPAN][i, :, k - 2], ex.hidden["slt"][i])
    assert not np.allclose(ex.hidden["tbg"][0], ex.hidden["tbg"][1])
    for a, b in zip(ex.token_logprobs, tf.token_logprobs, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_train_end_to_end(trained: dict, tiny_lm: str) -> None:
    r = trained["result"]
    for key in ("model", "cost", "data", "scorers", "layer_search", "comparisons", "verdict", "grader_audit",
                "warnings", "threshold"):
        assert key in r
    assert r["n_labelled"] == 80 and r["n_wrong"] == 40
    for name in ("probe", "linear", "saplma", "layer0_control", "metadata", "task_base_rate", "neg_mean_logprob",
                 "neg_first_logprob", "first_entropy", "neg_min_prob"):
        assert name in r["scorers"], name
    probe = r["scorers"]["probe"]
    assert probe["auroc"] is not None and "add-2d" in probe["within_strata"]
    assert "chemistry" in probe["heldout"]
    assert set(r["comparisons"]) == {"pooled", "within_strata_mean", "heldout"}
    assert isinstance(r["verdict"]["passes"], bool)
    assert r["layer_search"]["grid"] and 0 <= r["layer_search"]["chosen"] <= 2
    record = read_header(trained["probe"]).dnnkit_record()
    assert record["arch"]["family"] == "hallucination-probe" and record["arch"]["input_dim"] == 32
    assert record["source"]["sha256"] == load_model(tiny_lm).sha256()
    assert record["position"] == "first" and record["threshold"] == r["threshold"]
    report = Path(r["report_dir"])
    assert {"report.json", "roc.png", "layers.png", "strata.png"} <= {p.name for p in report.iterdir()}
    assert list((trained["folder"] / "cache").glob("*.npz"))


def test_train_reuses_the_cache(trained: dict, tiny_lm: str) -> None:
    out = trained["folder"] / "again.safetensors"
    res = runner.invoke(app, _train_args(tiny_lm, trained["data"], out, "--layer", "1", "--probe", "linear",
                                         "--no-grid", "--cache", str(trained["folder"] / "cache")))
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["cost"]["cached"] is True and r["layer"] == 1


def test_score_with_labels(trained: dict, tiny_lm: str, tmp_path: Path) -> None:
    out = tmp_path / "scored.jsonl"
    res = runner.invoke(app, ["probe-hallucination", "score", tiny_lm, "--probe", str(trained["probe"]),
                              "--data", f"jsonl:{trained['data']}", "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["n"] == 80 and summary["auroc"] is not None and summary["recall_at_10fpr"] is not None
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 80
    assert set(rows[0]) >= {"id", "question", "answer", "p_wrong", "flagged", "label", "mean_logprob"}
    assert all(r["flagged"] == (r["p_wrong"] >= summary["threshold"]) for r in rows)


def test_score_generates_without_answers_and_warns_without_stems(trained: dict, tiny_lm: str,
                                                                 tmp_path: Path) -> None:
    data = _write(tmp_path / "new.jsonl", [{"question": "What is 1 + 1?"}, {"question": "What is 5 + 5?",
                                                                            "answer_stem": "5 + 5 ="}])
    res = runner.invoke(app, ["probe-hallucination", "score", tiny_lm, "--probe", str(trained["probe"]),
                              "--data", f"jsonl:{data}", "--dry-run", "--json", "--threshold", "0.5"])
    assert res.exit_code == 0, res.output
    assert "answer_stem" in res.stderr
    summary = json.loads(res.stdout)
    assert summary["n"] == 2 and "auroc" not in summary and summary["output"] is None


def test_dry_run_writes_nothing(tiny_lm: str, tmp_path: Path) -> None:
    data = _write(tmp_path / "qa.jsonl", _records(20))
    out = tmp_path / "p.safetensors"
    res = runner.invoke(app, _train_args(tiny_lm, data, out, "--dry-run", "--no-grid", "--layer", "2"))
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["output"] is None and "scorers" in r
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qa.jsonl"]


def test_bad_inputs_exit_2(tiny_lm: str, tiny_encoder: str, trained: dict, tmp_path: Path) -> None:
    good = _write(tmp_path / "good.jsonl", _records(20))
    broken = tmp_path / "broken.jsonl"
    broken.write_text(good.read_text().splitlines()[0] + "\n{not json\n")
    noq = _write(tmp_path / "noq.jsonl", [{"gold": ["1"]}])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    out = tmp_path / "p.safetensors"
    cases = [
        (_train_args(tiny_lm, broken, out), "broken.jsonl:2"),
        (_train_args(tiny_lm, noq, out), "question"),
        (_train_args(tiny_lm, empty, out), "empty"),
        (_train_args(tiny_encoder, good, out), "not a causal language model"),
        (_train_args(tiny_lm, good, out, "--layer", "7"), "outside 0..2"),
        (_train_args(tiny_lm, good, out, "--folds", "1"), "--folds"),
        (_train_args(tiny_lm, good, out, "--holdout-family", "geography"), "geography"),
        (_train_args(tiny_lm, good, out, "--position", "mean"), "--position"),
    ]
    for args, needle in cases:
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
        assert res.stderr.startswith("error:") and needle in res.stderr, res.stderr
        assert not out.exists()


def test_probe_for_another_model_exits_2(trained: dict, tmp_path: Path) -> None:
    from tests.probes.hallucination.conftest import build_tiny_lm

    other = build_tiny_lm(tmp_path / "other", seed=1)
    out = tmp_path / "s.jsonl"
    res = runner.invoke(app, ["probe-hallucination", "score", str(other), "--probe", str(trained["probe"]),
                              "--data", f"jsonl:{trained['data']}", "-o", str(out)])
    assert res.exit_code == 2 and "another model" in res.stderr and not out.exists()


def test_too_few_labels_exit_1(tiny_lm: str, tmp_path: Path) -> None:
    # a random model answers arithmetic wrongly: no correct answers, so no probe
    data = _write(tmp_path / "qa.jsonl", _records(12, answers=False)[:12])
    res = runner.invoke(app, _train_args(tiny_lm, data, tmp_path / "p.safetensors", "--max-new-tokens", "3"))
    assert res.exit_code == 1, res.output
    assert "needs >= 10 of each" in res.stderr and "hint:" in res.stderr


def test_single_position_cache_key_is_unchanged() -> None:
    import hashlib

    from dnnkit.probes.hallucination.answers import cache_key
    from dnnkit.probes.hallucination.dataset import dataset_sha256

    recs = _records(4)
    blob = json.dumps({"v": 2, "model": "m", "template": "t", "decoding": {"greedy": True, "max_new_tokens": 8},
                       "positions": ["first", "tbg", "slt"], "data": dataset_sha256(recs)}, sort_keys=True)
    old = hashlib.sha256(blob.encode()).hexdigest()[:32]
    assert cache_key("m", "t", 8, recs) == old  # caches written before span existed still load
    assert cache_key("m", "t", 8, recs, span=True) != old


def test_span_train_and_score(trained: dict, tiny_lm: str, tmp_path: Path) -> None:
    cache = trained["folder"] / "cache"
    before = set(cache.glob("*.npz"))
    out = tmp_path / "span.safetensors"
    res = runner.invoke(app, _train_args(tiny_lm, trained["data"], out, "--position", "span", "--layer", "1",
                                         "--no-grid", "--cache", str(cache)))
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["position"] == "span" and r["cost"]["cached"] is False  # the single-position cache has no span
    assert r["scorers"]["probe"]["auroc"] is not None and r["layer"] == 1
    assert {"linear", "saplma", "layer0_control"} <= set(r["scorers"])
    after = set(cache.glob("*.npz"))
    assert before < after and len(after - before) == 1
    record = read_header(out).dnnkit_record()
    assert record["position"] == "span" and record["span"]["score"] == "max token logit"
    scored = tmp_path / "scored.jsonl"
    res = runner.invoke(app, ["probe-hallucination", "score", tiny_lm, "--probe", str(out), "--data",
                              f"jsonl:{trained['data']}", "-o", str(scored), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["position"] == "span" and summary["auroc"] is not None
    assert len(scored.read_text().splitlines()) == 80


def test_single_position_run_reuses_a_span_cache(tiny_lm: str, tmp_path: Path) -> None:
    data = _write(tmp_path / "qa.jsonl", _records(20))
    cache = tmp_path / "cache"
    first = runner.invoke(app, _train_args(tiny_lm, data, tmp_path / "s.safetensors", "--position", "span",
                                           "--probe", "linear", "--layer", "1", "--no-grid", "--cache", str(cache)))
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, _train_args(tiny_lm, data, tmp_path / "f.safetensors", "--position", "tbg",
                                           "--probe", "linear", "--layer", "1", "--no-grid", "--cache", str(cache)))
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["cost"]["cached"] is True and len(list(cache.glob("*.npz"))) == 1
