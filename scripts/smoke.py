#!/usr/bin/env python3
"""Smoke run: every documented command, as written, on a fresh machine state.

`make smoke` (or `.venv/bin/python scripts/smoke.py`) runs the commands of the README's tour and
of each doc's quick example in a fresh temporary folder with a fresh `$DNNKIT_HOME` and `$HOME`, so
zoo models are trained or converted there (SmolLM2 included), and checks exit codes and `--json`
output. The commands are read from the docs themselves, so a doc cannot drift from what is tested.

Where the commands come from (the marker convention)
-----------------------------------------------------
- `README.md`: every fenced block of the section `## A tour`.
- `docs/*.md`: every fenced block whose opening fence comes right after a line `<!-- smoke -->`
  (blank lines in between are allowed). `<!-- smoke: script -->` runs the whole block as one bash
  script (for blocks whose lines share shell variables); it is reported as one command.
  `<!-- smoke: python -->` runs the whole block with the venv's Python (docs/python-api.md).
- A doc without any marker can be listed in `UNMARKED` below (heading + mode) until its owner adds
  the marker; prefer the marker.

Inside a block: blank lines and `#` comment lines are skipped; a leading `$ ` prompt is dropped; a
line ending in `\\` or `|`, or followed by a line starting with `|`, `&&` or `||`, continues the
command; a heredoc (`<<'EOF'`) runs to its terminator. A trailing comment `# exits N` (for example
`dnnkit explain ... --index 540   # exits 2: index out of range`) marks a command that fails on
purpose: its exit code must be N and its stderr must hold one `error:` line and no traceback.

What is checked
---------------
Every command runs with `bash -o pipefail -c`, `dnnkit` resolved to the venv's program (.venv/bin
first on PATH), in one temporary folder per document (commands run in document order, so a file one
command writes is there for the next one). It passes when its exit code is the expected one (0
unless marked). When stdout is dnnkit's own (no pipe or redirection) and the command asks for
`--json`, stdout must be exactly one JSON object; for `dnnkit batch`, JSON Lines (one object per
line). Commands that need the network (`hf:ORG/NAME`) or a Ray cluster are skipped with the reason
(`SKIPS`). Placeholder files the docs name (`model.safetensors`, `ckpts/*.safetensors`, `release/`
...) are prepared first (`FIXTURES`).

Usage: smoke.py [--list] [--only REGEX] [--keep] [--workdir DIR] [--timeout S]
`$DNNKIT_HOME` set in the environment is reused (a warm cache, for quick iterations); unset, a
fresh one is made inside the temporary folder. Exit 1 when any command fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"

MARKER = re.compile(r"^\s*<!--\s*smoke(?:\s*:\s*(?P<mode>[\w-]+))?\s*-->\s*$")
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w-]*)\s*$")
EXITS = re.compile(r"#\s*exits?\s+(\d+)\b")
HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")

# Docs that carry no marker yet (their owner adds `<!-- smoke -->`): (heading or None for the
# first block, mode). A marker in the doc wins over this table.
UNMARKED: dict[str, tuple[str | None, str]] = {
    "docs/batch.md": ("## Examples", "commands"),
    "docs/release-workflow.md": (None, "script"),
}

# Commands that cannot run here: (regex over the command, reason).
SKIPS: list[tuple[str, str]] = [
    (r"\bhf:[\w.-]+/", "needs the network (hf:ORG/NAME downloads from the Hugging Face Hub)"),
    (r"--executor\s+ray|\bray\s+start\b", "needs a Ray cluster"),
]


@dataclass
class Command:
    """One command of a doc, as written."""

    doc: str
    line: int
    text: str
    expect: int = 0
    script: bool = False
    skip: str | None = None
    python: bool = False

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    def label(self) -> str:
        if self.script:
            first = next((ln for ln in self.text.splitlines() if ln.strip() and not ln.startswith("#")), "")
            return f"[script, {self.text.count(chr(10)) + 1} lines] {first.strip()} ..."
        return " ".join(self.text.replace("\\\n", " ").split())


@dataclass
class Result:
    command: Command
    status: str  # PASS | FAIL | SKIP
    seconds: float = 0.0
    why: str = ""
    stderr_tail: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- extraction


def _blocks(lines: list[str]) -> list[tuple[int, str | None, list[str], str | None]]:
    """Fenced blocks: (line number of the first body line, mode from a marker or None, body, heading)."""
    out, i, heading, pending = [], 0, None, None
    while i < len(lines):
        line = lines[i]
        m = MARKER.match(line)
        if m:
            pending = m.group("mode") or "commands"
            i += 1
            continue
        f = FENCE.match(line)
        if f:
            fence, j = f.group(1), i + 1
            while j < len(lines) and not lines[j].strip().startswith(fence):
                j += 1
            out.append((i + 2, pending, lines[i + 1:j], heading))
            pending, i = None, j + 1
            continue
        if line.startswith("#"):
            heading = line.strip()
        if line.strip():
            pending = None
        i += 1
    return out


def split_commands(body: list[str], first_line: int, doc: str) -> list[Command]:
    """The commands of one block (continuations, pipes and heredocs joined)."""
    cmds: list[Command] = []
    i = 0
    while i < len(body):
        raw = body[i]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start, parts = i, []
        while True:
            line = body[i].rstrip()
            if line.lstrip().startswith("$ ") and not parts:
                line = line.lstrip()[2:]
            parts.append(line)
            h = HEREDOC.search(line)
            if h and not line.lstrip().startswith("#"):
                end = h.group(2)
                i += 1
                while i < len(body) and body[i].strip() != end:
                    parts.append(body[i].rstrip())
                    i += 1
                if i < len(body):
                    parts.append(body[i].rstrip())
            code = _strip_comment(line).rstrip()
            nxt = body[i + 1].lstrip() if i + 1 < len(body) else ""
            i += 1
            if code.endswith("\\") or code.endswith("|") or code.endswith("&&") or code.endswith("||"):
                continue
            if nxt.startswith(("|", "&&", "||")):
                continue
            break
        text = "\n".join(parts)
        m = EXITS.search(text)
        cmds.append(Command(doc, first_line + start, text, expect=int(m.group(1)) if m else 0))
    return cmds


def _strip_comment(line: str) -> str:
    """A shell line without its trailing `# comment` (quotes respected)."""
    quote = None
    for k, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (k == 0 or line[k - 1].isspace()):
            return line[:k]
    return line


def extract(doc: Path) -> list[Command]:
    """The smoke commands of one doc, by the marker convention."""
    rel = doc.relative_to(ROOT).as_posix()
    lines = doc.read_text(encoding="utf-8").splitlines()
    blocks = _blocks(lines)
    chosen: list[tuple[int, list[str], str]] = []
    if rel == "README.md":
        chosen = [(n, body, mode or "commands") for n, mode, body, h in blocks if h == "## A tour"]
    else:
        chosen = [(n, body, mode) for n, mode, body, _ in blocks if mode]
        if not chosen and rel in UNMARKED:
            heading, mode = UNMARKED[rel]
            hits = [(n, body, mode) for n, _, body, h in blocks if heading is None or h == heading]
            chosen = hits[:1]
    cmds: list[Command] = []
    for first, body, mode in chosen:
        if mode in ("script", "python"):
            cmds.append(Command(rel, first, "\n".join(body), script=True, python=mode == "python"))
        else:
            cmds.extend(split_commands(body, first, rel))
    for c in cmds:
        for pattern, reason in SKIPS:
            if re.search(pattern, c.text):
                c.skip = reason
    return cmds


def all_docs() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def collect() -> list[Command]:
    return [c for doc in all_docs() for c in extract(doc)]


# ---------------------------------------------------------------- fixtures


def _zoo_file(name: str) -> Path:
    from dnnkit.zoo.build import ensure_zoo

    return Path(ensure_zoo(name))


def _bare(name: str) -> Callable[[Path], None]:
    """A bare safetensors file (tensors only, no dnnkit metadata) from a zoo model's state dict."""

    def make(dest: Path) -> None:
        from safetensors.torch import load_file, save_file

        save_file(load_file(str(_zoo_file(name))), str(dest))

    return make


def _checkpoints(names: dict[str, str]) -> Callable[[Path], None]:
    """A folder of dnnkit checkpoints: {file name: zoo model}."""

    def make(dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        for file, zoo in names.items():
            shutil.copyfile(_zoo_file(zoo), dest / file)

    return make


def _digit_npy(dest: Path) -> None:
    """One held-out digit as a 1x8x8 .npy in [0, 1]."""
    import numpy as np

    from dnnkit.data import load_data

    np.save(dest, load_data("digits", "test").x[0].numpy())


def _questions(dest: Path) -> None:
    """New questions for `probe-hallucination score`, with gold answers."""
    rows = [{"id": "n1", "question": "What is the capital of Peru?", "answer_stem": "The capital of Peru is",
             "gold": ["Lima"]},
            {"id": "n2", "question": "What is the chemical symbol of Tin?",
             "answer_stem": "The chemical symbol of Tin is", "gold": ["Sn"]},
            {"id": "n3", "question": "What is 27 + 15?", "answer_stem": "27 + 15 =", "gold": ["42"]}]
    dest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _hf_causal_lm(dest: Path) -> None:
    """A Hugging Face causal-LM folder: SmolLM2-135M converted from the zoo's GGUF."""
    shutil.copytree(_zoo_file("smollm2-135m"), dest)


# Placeholder paths the docs use -> how the smoke run prepares them (in the doc's folder, before
# its first command, when some command of that doc names the path).
FIXTURES: dict[str, tuple[Callable[[Path], None], str]] = {
    "model.safetensors": (_bare("digits-mlp"), "bare safetensors of zoo:digits-mlp's state dict"),
    "weights.safetensors": (_bare("digits-mlp"), "bare safetensors of zoo:digits-mlp's state dict"),
    "ckpts/": (_checkpoints({"a.safetensors": "digits-mlp", "b.safetensors": "digits-cnn"}),
               "two dnnkit checkpoints (digits-mlp, digits-cnn)"),
    "sweep/": (_checkpoints({"lr-1e-3.safetensors": "digits-mlp", "lr-3e-3.safetensors": "digits-mlp"}),
               "two dnnkit checkpoints (digits-mlp)"),
    "runs/": (_checkpoints({"mlp.safetensors": "digits-mlp", "cnn.safetensors": "digits-cnn"}),
              "two dnnkit checkpoints (digits-mlp, digits-cnn)"),
    "release": (_checkpoints({"small.safetensors": "digits-mlp", "base.safetensors": "digits-cnn",
                              "large.safetensors": "digits-mlp"}),
                "three dnnkit checkpoints (digits-mlp, digits-cnn, digits-mlp)"),
    "x.npy": (_digit_npy, "one digits test image, 1x8x8 in [0, 1]"),
    "new.jsonl": (_questions, "three new questions with gold answers"),
    "./my-lm": (_hf_causal_lm, "a Hugging Face causal-LM folder (SmolLM2-135M from the zoo)"),
}


def _fixture_used(key: str, cmds: list[Command]) -> bool:
    pattern = re.escape(key) + ("" if key.endswith("/") else r"(?![\w.-])")
    if key == "release":
        pattern = r"\brelease/|RELEASE=release\b"
    return any(re.search(r"(?<![\w./-])" + pattern, c.text) for c in cmds)


def prepare_fixtures(folder: Path, cmds: list[Command]) -> list[str]:
    made = []
    for key, (make, what) in FIXTURES.items():
        if _fixture_used(key, cmds):
            dest = folder / key.rstrip("/")
            if not dest.exists():
                make(dest)
                made.append(f"{key} ({what})")
    return made


# ---------------------------------------------------------------- running


def _shell_tokens(text: str) -> list[str]:
    lex = shlex.shlex(text, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    try:
        return list(lex)
    except ValueError:
        return []


def json_check(cmd: Command) -> str | None:
    """'object', 'lines' or None: what stdout must be, when stdout is dnnkit's own."""
    if cmd.script or cmd.expect != 0:
        return None
    tokens = _shell_tokens(cmd.text)
    if not tokens or tokens[0] != "dnnkit":
        return None
    if any(t in {"|", "||", "&&", ";", "&", ">", ">>", "<", "|&", "&>"} for t in tokens):
        return None
    if "batch" in tokens[1:2] or (tokens[1:2] == ["--config"] and "batch" in tokens[3:4]):
        return "lines"
    return "object" if "--json" in tokens else None


def _check_stdout(kind: str, out: str) -> str | None:
    if kind == "object":
        try:
            value = json.loads(out)
        except json.JSONDecodeError as exc:
            return f"--json stdout is not one JSON object ({exc.msg} at char {exc.pos})"
        return None if isinstance(value, dict) else f"--json stdout is a {type(value).__name__}, not an object"
    lines = [ln for ln in out.splitlines() if ln.strip()]
    if not lines:
        return "batch printed no JSON line"
    for k, ln in enumerate(lines, 1):
        try:
            if not isinstance(json.loads(ln), dict):
                return f"batch stdout line {k} is not a JSON object"
        except json.JSONDecodeError:
            return f"batch stdout line {k} is not JSON: {ln[:80]!r}"
    return None


def run_one(cmd: Command, cwd: Path, env: dict[str, str], logs: Path, n: int, timeout: float) -> Result:
    if cmd.skip:
        return Result(cmd, "SKIP", why=cmd.skip)
    t0 = time.perf_counter()
    argv = [str(VENV_BIN / "python"), "-c", cmd.text] if cmd.python else ["bash", "-o", "pipefail", "-c", cmd.text]
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code = None
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    seconds = time.perf_counter() - t0
    (logs / f"{n:03d}.cmd").write_text(cmd.text + "\n")
    (logs / f"{n:03d}.out").write_text(out)
    (logs / f"{n:03d}.err").write_text(err)
    why = None
    if code is None:
        why = f"timed out after {timeout:.0f} s"
    elif code != cmd.expect:
        why = f"exit {code}, expected {cmd.expect}"
    elif cmd.expect != 0:
        errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
        if len(errors) != 1 or "Traceback" in err:
            why = f"exit {code} as expected, but stderr has {len(errors)} 'error:' lines" + (
                " and a traceback" if "Traceback" in err else "")
    else:
        kind = json_check(cmd)
        if kind:
            why = _check_stdout(kind, out)
    tail = [ln for ln in err.splitlines() if ln.strip()][-12:] if why else []
    return Result(cmd, "FAIL" if why else "PASS", seconds, why or "", tail)


def smoke_env(home: Path, dnnkit_home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)
    env["DNNKIT_HOME"] = str(dnnkit_home)
    env.pop("VIRTUAL_ENV", None)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env["MPLBACKEND"] = "Agg"
    return env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list", action="store_true", help="print the extracted commands and exit")
    ap.add_argument("--only", metavar="REGEX", help="run only commands whose 'DOC:LINE COMMAND' matches")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--workdir", metavar="DIR", help="work here instead of a new temporary folder")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per command (default 900)")
    args = ap.parse_args(argv)

    cmds = collect()
    if args.only:
        rx = re.compile(args.only)
        cmds = [c for c in cmds if rx.search(f"{c.where} {c.text}")]
    if args.list:
        for c in cmds:
            flag = f"SKIP ({c.skip})" if c.skip else (f"exits {c.expect}" if c.expect else "")
            print(f"{c.where:32s} {flag:9s} {c.label()}" if not c.skip else f"{c.where:32s} {c.label()}  [{flag}]")
        docs = {}
        for c in cmds:
            docs[c.doc] = docs.get(c.doc, 0) + 1
        print(f"{len(cmds)} commands: " + ", ".join(f"{d} {k}" for d, k in docs.items()))
        return 0
    if not VENV_BIN.joinpath("dnnkit").exists():
        print(f"smoke: {VENV_BIN / 'dnnkit'} is missing: run `make setup` first", file=sys.stderr)
        return 2
    if shutil.which("jq") is None and any(re.search(r"\bjq\b", c.text) for c in cmds):
        print("smoke: warning: jq is not installed; the commands that pipe into jq will fail", file=sys.stderr)

    base = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="dnnkit-smoke-"))
    base.mkdir(parents=True, exist_ok=True)
    home = base / "home"
    home.mkdir(exist_ok=True)
    dnnkit_home = Path(os.environ["DNNKIT_HOME"]) if os.environ.get("DNNKIT_HOME") else home / ".cache" / "dnnkit"
    os.environ["DNNKIT_HOME"] = str(dnnkit_home)  # for the fixtures built in this process
    env = smoke_env(home, dnnkit_home)
    logs = base / "logs"
    logs.mkdir(exist_ok=True)
    print(f"smoke: {len(cmds)} commands, work folder {base}, DNNKIT_HOME {dnnkit_home}", flush=True)

    results: list[Result] = []
    t_start = time.perf_counter()
    by_doc: dict[str, list[Command]] = {}
    for c in cmds:
        by_doc.setdefault(c.doc, []).append(c)
    for doc, doc_cmds in by_doc.items():
        folder = base / "work" / Path(doc).stem.lower()
        folder.mkdir(parents=True, exist_ok=True)
        print(f"\n== {doc} ({len(doc_cmds)} commands, in {folder})", flush=True)
        t_doc = time.perf_counter()
        try:
            made = prepare_fixtures(folder, [c for c in doc_cmds if not c.skip])
        except Exception as exc:  # a broken fixture fails the doc's commands, not the run
            print(f"FAIL  fixtures: {type(exc).__name__}: {exc}", flush=True)
            results.extend(Result(c, "FAIL", why=f"fixture failed: {exc}") for c in doc_cmds)
            continue
        if made:
            print(f"      fixtures: {'; '.join(made)}  ({time.perf_counter() - t_doc:.1f} s)", flush=True)
        for c in doc_cmds:
            r = run_one(c, folder, env, logs, len(results) + 1, args.timeout)
            results.append(r)
            secs = f"{r.seconds:6.1f}s" if r.status != "SKIP" else "     - "
            print(f"{r.status:4s}  {secs}  {c.where:30s} {c.label()}", flush=True)
            if r.status == "SKIP":
                print(f"      skipped: {r.why}", flush=True)
            elif r.status == "FAIL":
                print(f"      {r.why} (logs: {logs}/{len(results):03d}.*)", flush=True)
                for ln in r.stderr_tail:
                    print(f"      | {ln}", flush=True)
        print(f"   {doc}: {time.perf_counter() - t_doc:.1f} s", flush=True)

    total = time.perf_counter() - t_start
    counts = {s: sum(r.status == s for r in results) for s in ("PASS", "FAIL", "SKIP")}
    print(f"\nsmoke: {counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped "
          f"in {total:.1f} s ({total / 60:.1f} min)")
    for r in results:
        if r.status == "SKIP":
            print(f"  skipped {r.command.where}: {r.why}")
    for r in results:
        if r.status == "FAIL":
            print(f"  FAILED  {r.command.where}: {r.why}: {r.command.label()}")
    if args.keep or args.workdir:
        print(f"smoke: work folder kept: {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
