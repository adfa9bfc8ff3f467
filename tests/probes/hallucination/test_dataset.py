"""Quiz parser, fact tables, arithmetic and `dataset build`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dnnkit.cli.app import app
from dnnkit.errors import InputError
from dnnkit.probes.hallucination.arithmetic import count_carries, sample_arithmetic
from dnnkit.probes.hallucination.dataset import build_dataset, load_qa_jsonl
from dnnkit.probes.hallucination.facts import load_fact_tables
from dnnkit.probes.hallucination.quiz import expand_field, logical_lines, parse_quiz_text, split_fields

QUIZ_DIR = Path("/usr/share/games/bsdgames/quiz")
runner = CliRunner()
cli = app


def test_alternatives_optional_groups_and_nesting() -> None:
    assert set(expand_field("Vienna|Wien")) == {"Vienna", "Wien"}
    assert set(expand_field("Cal{if{ornia}}|CA")) == {"Cal", "Calif", "California", "CA"}
    assert set(expand_field("Wars[aw|zawa]")) == {"Warsaw", "Warszawa"}
    assert set(expand_field("Port[-| ]au[-| ]Prince")) == {"Port-au-Prince", "Port au-Prince", "Port-au Prince",
                                                          "Port au Prince"}
    assert set(expand_field("{{People's }Republic of }China")) == {"People's Republic of China",
                                                                   "Republic of China", "China"}


def test_escapes_and_continuation() -> None:
    assert expand_field(r"a\|b") == ("a|b",)
    assert split_fields(r"x\:y:z") and len(split_fields(r"x\:y:z")) == 2
    assert logical_lines("one:\\\ntwo\nthree:four\n") == [(1, "one:two"), (3, "three:four")]


def test_overstrikes_digraphs_and_utf8() -> None:
    assert set(expand_field("Yaound['\be|e\b'|e]")) == {"Yaounde"}
    assert set(expand_field("K[o|o\b/|/\bo]benhavn")) == {"Kobenhavn"}
    assert set(expand_field("Mo[z|,\bc|c\b,|c]ambique")) == {"Mozambique", "Mocambique"}
    assert set(expand_field("[°\bA|A\b°|A]land Islands")) == {"Aland Islands"}
    assert expand_field("Bras\u00edlia") == ("Brasilia",)
    rows = parse_quiz_text("S[~\ba|a\b~|a]o Tom['\be|e\b'|e]:x\n", "africa")
    assert rows[0].fields[0] == ("Sao Tome",)


def test_unbalanced_bracket_names_the_line() -> None:
    with pytest.raises(InputError, match="africa:2"):
        parse_quiz_text("a:b\nc{d:e\n", "africa")


def test_builtin_tables_counts_and_overrides() -> None:
    t = load_fact_tables("builtin")
    assert len(t.rows["capitals"]) == 209  # 221 rows, 8 duplicates, 4 dropped
    assert len(t.rows["state"]) == 50 and len(t.rows["elements"]) == 103
    ents = {r.entity: r for r in t.rows["capitals"]}
    assert "Eswatini" in ents and "Myanmar" in ents and "Swaziland" not in ents
    assert not {"Israel", "Abkhazia", "Sri Lanka", "Netherlands Antilles"} & set(ents)
    assert set(ents["Bolivia"].answers["capital"]) == {"La Paz", "Sucre"}
    assert "Democratic Republic of the Congo" in ents
    law = [r for r in t.rows["elements"] if r.entity == "Lawrencium"][0]
    assert law.answers["symbol"] == ("Lr",)
    assert {d["entity"] for d in t.dropped} >= {"Israel", "Georgia", "Russia"}


@pytest.mark.skipif(not QUIZ_DIR.is_dir(), reason="bsdgames not installed")
def test_builtin_equals_install() -> None:
    a, b = load_fact_tables("builtin"), load_fact_tables(f"quiz:{QUIZ_DIR}")
    for k in a.rows:
        assert [(r.entity, r.answers) for r in a.rows[k]] == [(r.entity, r.answers) for r in b.rows[k]]


def test_arithmetic_strata_groups_and_metadata() -> None:
    items = sample_arithmetic(300, ["add", "sub", "mul"], [1, 2, 3, 4], seed=3)
    assert len({(i.op, i.a, i.b) for i in items}) == 300
    assert all(i.a >= i.b for i in items if i.op == "sub")
    assert all(len(str(i.a)) <= 2 for i in items if i.op == "mul")
    assert count_carries(58, 67, "add") == 2 and count_carries(100, 1, "sub") == 2 and count_carries(12, 3, "add") == 0
    records, manifest = build_dataset(tasks="arithmetic,element-symbols,element-numbers", n_arith=120, seed=1)
    groups: dict[str, set[str]] = {}
    for r in records:
        groups.setdefault(r["group"], set()).add(r["task"])
    assert any(len(v) == 2 for v in groups.values())  # one element in both chemistry tasks shares a group
    arith = [r for r in records if r["task"] == "arithmetic"]
    r0 = arith[0]
    a, b = (int(x) for x in r0["id"].split("-")[2:])
    assert r0["stratum"] == f"{r0['meta']['op']}-{r0['meta']['digits']}d" and r0["gold"][0] == str(
        {"add": a + b, "sub": a - b, "mul": a * b}[r0["meta"]["op"]])
    assert manifest["counts"] == {"element-symbols": 103, "element-numbers": 103, "arithmetic": 120}
    # same seed, same items; another seed, other items
    assert build_dataset(tasks="arithmetic", n_arith=50, seed=1)[0] == build_dataset(tasks="arithmetic",
                                                                                       n_arith=50, seed=1)[0]
    assert build_dataset(tasks="arithmetic", n_arith=50, seed=2)[0] != build_dataset(tasks="arithmetic",
                                                                                       n_arith=50, seed=1)[0]


def test_templates() -> None:
    records, _ = build_dataset(tasks="state-capitals,capitals", n_arith=0)
    ga = [r for r in records if r["meta"]["entity"] == "Georgia"]
    assert {r["question"] for r in ga} == {"What is the capital of Georgia?",
                                            "What is the capital of the US state of Georgia?"}
    assert all(not r["answer_stem"].endswith(" ") for r in records)


def test_cli_dataset_build_writes_jsonl_and_manifest(tmp_path: Path) -> None:
    out = tmp_path / "qa.jsonl"
    res = runner.invoke(cli, ["probe-hallucination", "dataset", "build", "--tasks", "capitals,arithmetic",
                              "--n-arith", "40", "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["counts"] == {"capitals": 209, "arithmetic": 40} and data["n"] == 249
    lines = out.read_text().splitlines()
    assert len(lines) == 249
    rec = json.loads(lines[0])
    assert set(rec) >= {"id", "task", "family", "group", "stratum", "question", "answer_stem", "gold", "meta"}
    manifest = json.loads((tmp_path / "qa.jsonl.manifest.json").read_text())
    assert manifest["sha256"] == data["sha256"] and manifest["overrides"]
    assert len(load_qa_jsonl(out, require_gold=True)) == 249
    # existing output without --force: exit 2, file untouched
    before = out.read_bytes()
    res = runner.invoke(cli, ["probe-hallucination", "dataset", "build", "-o", str(out)])
    assert res.exit_code == 2 and out.read_bytes() == before


def test_cli_dataset_build_bad_inputs_and_dry_run(tmp_path: Path) -> None:
    out = tmp_path / "qa.jsonl"
    for args in (["--tasks", "nope"], ["--arith-ops", "div"], ["--arith-digits", "0-3"], ["--facts", "web"],
                 ["--facts", f"quiz:{tmp_path}"]):
        res = runner.invoke(cli, ["probe-hallucination", "dataset", "build", *args, "-o", str(out)])
        assert res.exit_code == 2, (args, res.output)
        assert "error:" in res.stderr
    res = runner.invoke(cli, ["probe-hallucination", "dataset", "build", "--dry-run", "-o", str(out), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["dry_run"] is True
    assert not out.exists()


def test_load_qa_jsonl_reports_line_numbers(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"question": "q", "gold": ["a"]}\n{broken\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: not valid JSON"):
        load_qa_jsonl(p, require_gold=True)
    p.write_text('{"question": "q", "gold": ["a"]}\n\n{"gold": ["a"]}\n')
    with pytest.raises(InputError, match=r":3: missing field 'question'"):
        load_qa_jsonl(p, require_gold=True)
    p.write_text('{"question": "q"}\n')
    with pytest.raises(InputError, match="gold"):
        load_qa_jsonl(p, require_gold=True)
    assert load_qa_jsonl(p, require_gold=False)[0]["id"] == "1"
    p.write_text('{"question": "q", "task": "poetry"}\n')
    with pytest.raises(InputError, match="unknown task"):
        load_qa_jsonl(p, require_gold=False)
    p.write_text("\n\n")
    with pytest.raises(InputError, match="empty"):
        load_qa_jsonl(p, require_gold=False)
