"""Fact tables from the bsdgames quiz data: capitals, US state capitals, element symbols and numbers.

`builtin` reads the CSVs shipped in `facts/` (the parsed quiz rows, see facts/NOTICE); `quiz:DIR`
parses an install (`/usr/share/games/bsdgames/quiz`). Both go through the same version-controlled
overrides (`OVERRIDES`), which correct or drop outdated rows; each override carries its reason.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

from dnnkit.errors import InputError
from dnnkit.probes.hallucination.quiz import QuizRow, longest, read_quiz_file

BUILTIN_DIR = Path(__file__).parent / "facts"
CAPITAL_FILES = ("africa", "asia", "europe", "america")
QUIZ_FILES = (*CAPITAL_FILES, "state", "elements")


@dataclass(frozen=True)
class Override:
    """One correction of the old quiz data: drop a row, rename the asked entity, or replace answers."""

    table: str  # "capitals" | "elements" | "state"
    entity: str  # the longest key expansion as parsed
    action: str  # "drop" | "rename" | "answers"
    value: tuple[str, ...] = ()
    reason: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"table": self.table, "entity": self.entity, "action": self.action, "value": list(self.value),
                "reason": self.reason}


OVERRIDES: tuple[Override, ...] = (
    Override("elements", "Lawrencium", "answers", ("Lr",), "symbol changed from Lw to Lr (IUPAC 1963/1997)"),
    Override("capitals", "Swaziland", "rename", ("Eswatini",), "country renamed Eswatini in 2018"),
    Override("capitals", "Burma", "rename", ("Myanmar",), "country officially Myanmar since 1989"),
    Override("capitals", "Malagasy Republic", "rename", ("Madagascar",), "the name since 1975"),
    Override("capitals", "Rep. Congo", "rename", ("Republic of the Congo",), "abbreviation spelled out"),
    Override("capitals", "Netherlands Antilles", "drop", (), "dissolved in 2010"),
    Override("capitals", "Abkhazia", "drop", (), "contested status"),
    Override("capitals", "Israel", "drop", (), "contested capital"),
    Override("capitals", "Sri Lanka", "drop", (), "two capitals; the file lists only Kotte"),
    Override("capitals", "Bolivia", "answers", ("La Paz", "Sucre"), "both listed capitals kept on purpose"),
)


@dataclass
class FactRow:
    """One question-ready fact: the entity named in the question and every accepted answer."""

    table: str
    entity: str
    entity_aliases: tuple[str, ...]
    answers: dict[str, tuple[str, ...]]  # field name -> accepted strings
    source: str
    line: int


@dataclass
class FactTables:
    rows: dict[str, list[FactRow]]
    sources: dict[str, str]  # file name -> sha256
    dropped: list[dict[str, object]] = field(default_factory=list)
    applied: list[dict[str, object]] = field(default_factory=list)


def rows_to_csv(rows: list[QuizRow]) -> str:
    """The shipped CSV form of parsed quiz rows: source, line, then each field's expansions joined by '|'."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for r in rows:
        writer.writerow([r.source, r.line, *("|".join(f) for f in r.fields)])
    return buf.getvalue()


def rows_from_csv(text: str) -> list[QuizRow]:
    rows = []
    for rec in csv.reader(line for line in io.StringIO(text) if not line.startswith("#")):
        if rec:
            rows.append(QuizRow(rec[0], int(rec[1]), tuple(tuple(f.split("|")) for f in rec[2:])))
    return rows


def _read_source(facts: str) -> tuple[dict[str, list[QuizRow]], dict[str, str]]:
    if facts == "builtin":
        paths = {name: BUILTIN_DIR / f"{name}.csv" for name in QUIZ_FILES}
        return ({n: rows_from_csv(p.read_text(encoding="utf-8")) for n, p in paths.items()},
                {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths.values()})
    check_facts_spec(facts)
    folder = Path(facts[5:])
    return ({n: read_quiz_file(folder / n) for n in QUIZ_FILES},
            {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in QUIZ_FILES})


def check_facts_spec(facts: str) -> None:
    """Cheap validation of --facts (the form, and that a quiz folder holds the files)."""
    if facts == "builtin":
        return
    if not facts.startswith("quiz:"):
        raise InputError(f"--facts must be builtin or quiz:DIR, got {facts!r}")
    folder = Path(facts[5:])
    missing = [n for n in QUIZ_FILES if not (folder / n).is_file()]
    if missing:
        raise InputError(f"--facts {facts}: {folder} lacks the quiz file(s) {', '.join(missing)}",
                         hint="install bsdgames (apt-get install bsdgames) or use --facts builtin")


def load_fact_tables(facts: str = "builtin") -> FactTables:
    """Parse the fact tables, deduplicate countries listed in two files, and apply the overrides."""
    raw, sources = _read_source(facts)
    tables: dict[str, list[FactRow]] = {"capitals": [], "state": [], "elements": []}
    for name in CAPITAL_FILES:
        for r in raw[name]:
            tables["capitals"].append(FactRow("capitals", longest(r.fields[0]), r.fields[0],
                                              {"capital": r.fields[1]}, name, r.line))
    for r in raw["state"]:
        tables["state"].append(FactRow("state", longest(r.fields[0]), r.fields[0], {"capital": r.fields[1]},
                                       "state", r.line))
    for r in raw["elements"]:
        tables["elements"].append(FactRow("elements", longest(r.fields[3]), r.fields[3],
                                          {"symbol": r.fields[0], "number": r.fields[1]}, "elements", r.line))
    out = FactTables(tables, sources)
    _apply_overrides(out)
    _dedupe(out)
    return out


def _apply_overrides(tables: FactTables) -> None:
    for ov in OVERRIDES:
        rows = tables.rows[ov.table]
        hits = [r for r in rows if r.entity == ov.entity]
        if not hits:
            continue
        tables.applied.append(ov.as_dict())
        for r in hits:
            if ov.action == "drop":
                rows.remove(r)
                tables.dropped.append({"table": ov.table, "entity": r.entity, "source": r.source, "line": r.line,
                                       "reason": ov.reason})
            elif ov.action == "rename":
                r.entity = ov.value[0]
                r.entity_aliases = (*ov.value, *r.entity_aliases)
            elif ov.action == "answers":
                key = "symbol" if ov.table == "elements" else "capital"
                r.answers[key] = ov.value


def _dedupe(tables: FactTables) -> None:
    """Countries listed in two continent files (e.g. Russia, Turkey) keep their first row, answers merged."""
    kept: dict[str, FactRow] = {}
    for r in list(tables.rows["capitals"]):
        if r.entity in kept:
            first = kept[r.entity]
            first.answers["capital"] = tuple(dict.fromkeys(first.answers["capital"] + r.answers["capital"]))
            tables.rows["capitals"].remove(r)
            tables.dropped.append({"table": "capitals", "entity": r.entity, "source": r.source, "line": r.line,
                                   "reason": f"duplicate of {first.source}:{first.line}"})
        else:
            kept[r.entity] = r
