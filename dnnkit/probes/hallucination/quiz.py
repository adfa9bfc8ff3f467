"""Parser for the `quiz` data files of the BSD games (Debian package bsdgames).

A line holds colon-separated fields; `\\` escapes the next character and a trailing `\\` continues
the line. Inside a field `a|b` is an alternative, `{x}` an optional part and `[...]` a group.
`expand_field` turns a field into every string it accepts; accented letters, written as
backspace overstrikes (`'`, BS, `e`) or as UTF-8, become plain ASCII letters.
"""

from __future__ import annotations

import itertools
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from dnnkit.errors import InputError

_ESC = "\x00"  # marks an escaped character in the token stream


@dataclass(frozen=True)
class QuizRow:
    """One logical line of a quiz file: every field expanded into its accepted strings."""

    source: str
    line: int
    fields: tuple[tuple[str, ...], ...]


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Join continued lines (trailing backslash); return (first line number, text) pairs."""
    out: list[tuple[int, str]] = []
    buf = ""
    start = 0
    for number, raw in enumerate(text.split("\n"), start=1):
        if not buf:
            start = number
        trailing = len(raw) - len(raw.rstrip("\\"))
        if trailing % 2 == 1:  # an odd run of backslashes: the last one continues the line
            buf += raw[:-1]
            continue
        buf += raw
        if buf.strip():
            out.append((start, buf))
        buf = ""
    if buf.strip():
        out.append((start, buf))
    return out


def _tokens(text: str) -> list[str]:
    """Characters with escapes resolved: an escaped character is prefixed by _ESC."""
    toks: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            toks.append(_ESC + text[i + 1])
            i += 2
            continue
        toks.append(ch)
        i += 1
    return toks


def split_fields(text: str) -> list[list[str]]:
    """Split a logical line on unescaped colons outside of brackets."""
    fields: list[list[str]] = [[]]
    depth = 0
    for tok in _tokens(text):
        if tok in ("{", "["):
            depth += 1
        elif tok in ("}", "]"):
            depth = max(0, depth - 1)
        if tok == ":" and depth == 0:
            fields.append([])
            continue
        fields[-1].append(tok)
    return fields


def _parse_alternatives(toks: list[str], pos: int, closer: str | None) -> tuple[list[str], int]:
    """Parse `seq ('|' seq)*` up to `closer`; return the expansions and the position after it."""
    alternatives: list[str] = []
    current: list[str] = [""]
    while pos < len(toks):
        tok = toks[pos]
        if closer is not None and tok == closer:
            alternatives.extend(current)
            return alternatives, pos + 1
        if tok == "|":
            alternatives.extend(current)
            current = [""]
            pos += 1
            continue
        if tok in ("{", "["):
            inner, pos = _parse_alternatives(toks, pos + 1, "}" if tok == "{" else "]")
            if tok == "{":
                inner = [*inner, ""]
            current = [a + b for a, b in itertools.product(current, inner)]
            continue
        ch = tok[1:] if tok.startswith(_ESC) else tok
        current = [c + ch for c in current]
        pos += 1
    if closer is not None:
        raise ValueError(f"unbalanced bracket: missing {closer!r}")
    alternatives.extend(current)
    return alternatives, pos


def plain_letters(text: str) -> str:
    """Collapse backspace overstrikes to their letter, then strip accents (NFKD) to ASCII letters."""
    chars = list(text)
    out: list[str] = []
    i = 0
    while i < len(chars):
        if i + 2 < len(chars) and chars[i + 1] == "\b":
            a, b = chars[i], chars[i + 2]
            out.append(b if b.isalnum() and not a.isalnum() else a)
            i += 3
            continue
        if chars[i] != "\b":
            out.append(chars[i])
        i += 1
    decomposed = unicodedata.normalize("NFKD", "".join(out))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).strip()


def expand_field(tokens: list[str] | str) -> tuple[str, ...]:
    """Every string a field accepts, accents made plain, duplicates and empties dropped, order kept."""
    toks = _tokens(tokens) if isinstance(tokens, str) else tokens
    expansions, _ = _parse_alternatives(toks, 0, None)
    seen: dict[str, None] = {}
    for e in expansions:
        e = " ".join(plain_letters(e).split())
        if e:
            seen.setdefault(e, None)
    return tuple(seen)


def parse_quiz_text(text: str, source: str) -> list[QuizRow]:
    """All rows of one quiz file's text."""
    rows = []
    for number, line in logical_lines(text):
        try:
            fields = tuple(expand_field(f) for f in split_fields(line))
        except ValueError as exc:
            raise InputError(f"{source}:{number}: {exc}") from exc
        rows.append(QuizRow(source, number, fields))
    return rows


def read_quiz_file(path: Path) -> list[QuizRow]:
    """Parse a quiz file (UTF-8, with Latin-1 as the fallback for old installs)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return parse_quiz_text(text, path.name)


def longest(expansions: tuple[str, ...]) -> str:
    """The longest expansion (ties: the first), used to name an entity in a question."""
    return max(expansions, key=len)
