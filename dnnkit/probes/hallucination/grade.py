"""Exact-match grading of a generated answer: correct, wrong or no-answer (y = 1 wrong, 0 correct).

The answer clause is the text up to the first newline or sentence-ending "." (a "." inside an
accepted alias such as "St. John's" does not end it). Numbers: first integer after removing
thousands separators. Symbols: the first word must be shaped capital + up to two lower-case letters
and equal an accepted symbol (case-sensitive; "MoS2" is wrong). Names: after normalising (NFKD,
accents stripped, casefold, punctuation to space) and stripping leading fillers, the clause must
start with an accepted alias at a word boundary.
"""

from __future__ import annotations

import re
import unicodedata

CORRECT, WRONG, NO_ANSWER = "correct", "wrong", "no-answer"
FILLERS = ("the", "called", "known as", "city of", "in")  # "in" added after " in Phoenix." was seen
REFUSALS = ("i don t know", "i do not know", "i m not sure", "i am not sure", "not sure", "i cannot", "i can t",
            "unknown", "sorry", "i am unable", "i m unable", "there is no", "no capital", "not known", "n a")
_SYMBOL = re.compile(r"[A-Z][a-z]{0,2}")
_STRIP = "\"'`*()[]{}<>,;:!?."


def normalise(text: str) -> str:
    """NFKD, accents stripped, casefolded, punctuation to spaces, single spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return " ".join("".join(c if c.isalnum() else " " for c in plain).split())


def clause_end(text: str, aliases: list[str] | tuple[str, ...] = ()) -> int:
    """Index where the answer clause of `text` ends (first newline or sentence-ending '.')."""
    protected: list[tuple[int, int]] = []
    low = text.casefold()
    for alias in aliases:
        if "." in alias:
            start = low.find(alias.casefold())
            while start >= 0:
                protected.append((start, start + len(alias)))
                start = low.find(alias.casefold(), start + 1)
    end = len(text)
    nl = text.find("\n")
    if nl >= 0:
        end = nl
    for m in re.finditer(r"\.(?=\s|$)", text[:end]):
        if not any(a <= m.start() < b for a, b in protected):
            return m.start()
    return end


def answer_clause(text: str, aliases: list[str] | tuple[str, ...] = ()) -> str:
    return text[:clause_end(text, aliases)]


def _strip_fillers(norm: str) -> str:
    changed = True
    while changed:
        changed = False
        for f in FILLERS:
            if norm == f or norm.startswith(f + " "):
                norm = norm[len(f):].lstrip()
                changed = True
    return norm


def _starts_with(norm: str, alias: str) -> bool:
    a = normalise(alias)
    return bool(a) and (norm == a or norm.startswith(a + " "))


def _is_refusal(norm: str) -> bool:
    return any(f" {r} " in f" {norm} " for r in REFUSALS)


def first_integer(text: str) -> int | None:
    cleaned = re.sub(r"(?<=\d)[,\u00a0 ](?=\d{3}(?!\d))", "", text)
    m = re.search(r"(?<![\d.])-?\d+", cleaned)
    return int(m.group()) if m else None


def grade(clause: str, gold: list[str], answer_type: str = "name", entity_aliases: tuple[str, ...] | list[str] = ()
          ) -> str:
    """The label of one answer clause given every accepted answer."""
    norm = _strip_fillers(normalise(clause))
    if not norm:
        return NO_ANSWER
    if answer_type == "number":
        value = first_integer(clause)
        golds = {int(g) for g in gold if re.fullmatch(r"-?\d+", g.strip())}
        if value is not None and value in golds:
            return CORRECT
    elif answer_type == "symbol":
        words = [w.strip(_STRIP) for w in clause.split()]
        words = [w for w in words if w and normalise(w) not in FILLERS]
        if words and _SYMBOL.fullmatch(words[0]) and words[0] in {g.strip() for g in gold}:
            return CORRECT
    elif any(_starts_with(norm, g) for g in gold):
        return CORRECT
    if _is_refusal(norm):
        return NO_ANSWER
    if any(_starts_with(norm, e) for e in entity_aliases):
        return NO_ANSWER
    return WRONG
