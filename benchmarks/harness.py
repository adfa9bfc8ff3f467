"""The one harness of every benchmark script: machine notes, Markdown tables, number formatting, timers,
JSON results and pages made of sections.

Scripts import it as `from harness import ...`: the script's own folder is on `sys.path` when it runs as
`python benchmarks/NAME.py`, and dnnkit is installed (editable) in the venv, so no script edits `sys.path`.

- `Run`: one run of a script. It records when, where (CPU, cores, torch and its threads) and the load
  average at its start; `finish()` adds the load average at the end and the run's wall and CPU seconds.
  `machine_note(record)` writes that record as one sentence, so no page types a load figure in.
- `header`, `row`, `table`: Markdown tables; `fmt`, `sci`, `mean_sd`, `pm`, `mark`: numbers and verdicts.
- `Timer`, `repeat`, `Timing`: wall and CPU seconds, repeated timings with their median;
  `cuda_ms`, `cuda_peak_mib`: the same on a GPU (CUDA events, peak allocated memory).
- `dump_json`, `load_json`, `merge_results`: result files (atomic writes, readable indentation).
- `Page`: a Markdown page of sections; one section is replaced in place, the others are kept.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks"
_T0 = time.perf_counter()


# ------------------------------------------------------------------------------------------- machine notes

def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load averages ([] where the OS does not report them)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return []


def now_utc() -> str:
    return f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC"


def command_line(argv: Sequence[str] | None = None) -> str:
    """`python benchmarks/NAME.py ARGS` for this process (the script path relative to the repository)."""
    argv = list(sys.argv if argv is None else argv)
    if argv:
        script = Path(argv[0])
        if script.resolve().is_relative_to(ROOT):
            argv[0] = str(script.resolve().relative_to(ROOT))
    return " ".join(["python", *argv]).strip()


class Run:
    """One run of a benchmark script: its machine record, its clocks and its log.

    `Run(threads=1)` pins torch to that many threads first. `record` is a plain dict (saved with the
    results); `finish()` adds the end-of-run load average and the wall/CPU seconds and returns it.
    """

    def __init__(self, threads: int | None = None, command: str | None = None, torch: bool = True) -> None:
        version, n_threads = None, threads
        if torch:
            import torch as _torch

            if threads is not None:
                _torch.set_num_threads(threads)
            version, n_threads = _torch.__version__, _torch.get_num_threads()
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        self.record: dict[str, Any] = {
            "date": now_utc(), "command": command or command_line(), "machine": platform.machine(),
            "cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(), "torch": version,
            "threads": n_threads, "load_start": load_average()}

    @property
    def elapsed(self) -> float:
        """Wall seconds since the run started."""
        return time.perf_counter() - self.wall0

    def finish(self) -> dict[str, Any]:
        self.record.update(load_end=load_average(), wall_s=round(self.elapsed, 2),
                           cpu_s=round(time.process_time() - self.cpu0, 2))
        return self.record

    def note(self) -> str:
        return machine_note(self.record)

    def log(self, msg: str) -> None:
        print(f"[{self.elapsed:7.1f}s] {msg}", file=sys.stderr, flush=True)


def log(msg: str) -> None:
    """A progress line on stderr, stamped with the seconds since the harness was imported."""
    print(f"[{time.perf_counter() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def _load_text(record: dict[str, Any]) -> str | None:
    start, end = record.get("load_start") or [], record.get("load_end") or []
    if not start and not end:
        return None
    parts = [f"{start[0]:.1f} at the start" if start else None, f"{end[0]:.1f} at the end" if end else None]
    return "load average (1 min) " + ", ".join(p for p in parts if p)


def machine_note(record: dict[str, Any] | None, *, date: bool = True, load: bool = True) -> str:
    """One sentence from a `Run` record: date, CPU, cores, torch and threads, load at the start and the end.

    Fields a record lacks (results saved before the harness recorded them) are left out; a missing load
    average is said to be unrecorded rather than guessed.
    """
    r = record or {}
    parts = []
    if date and r.get("date"):
        parts.append(str(r["date"]))
    where = r.get("machine") or ""
    if r.get("cpu") and r.get("cpu") != where:
        where = f"{where} ({r['cpu']})" if where else str(r["cpu"])
    if r.get("cores"):
        where += f"{', ' if where else ''}{r['cores']} cores"
    if where:
        parts.append(where)
    if r.get("torch"):
        parts.append(f"torch {r['torch']}")
    if r.get("threads"):
        parts.append(f"{r['threads']} torch thread{'s' if r['threads'] != 1 else ''}")
    if load:
        parts.append(_load_text(r) or "load average not recorded")
    return "; ".join(parts)


def load_span(records: Iterable[dict[str, Any] | None]) -> str:
    """The 1-minute load averages of several runs (start and end of each) as `lowest–highest`, or
    `not recorded` when no run recorded one."""
    values = [x[0] for r in records if r for x in (r.get("load_start"), r.get("load_end")) if x]
    if not values:
        return "not recorded"
    lo, hi = min(values), max(values)
    return f"{lo:.1f}" if f"{lo:.1f}" == f"{hi:.1f}" else f"{lo:.1f}–{hi:.1f}"


# ------------------------------------------------------------------------------------------------ tables

def header(headers: Sequence[object], align: str | None = None) -> list[str]:
    """The two header lines of a Markdown table; `align` has one letter per column (l, r or c)."""
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    seps = [marks[a] for a in align] if align else ["---"] * len(headers)
    if len(seps) != len(headers):
        raise ValueError(f"align {align!r} has {len(seps)} letters for {len(headers)} columns")
    return [row(headers), row(seps)]


def row(cells: Iterable[object]) -> str:
    """One Markdown table row."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def table(headers: Sequence[object], rows: Iterable[Iterable[object]], align: str | None = None) -> str:
    """A Markdown table (cells formatted by the caller; see `fmt`)."""
    return "\n".join([*header(headers, align), *(row(r) for r in rows)])


# ---------------------------------------------------------------------------------------------- numbers

def fmt(value: Any, digits: int = 3, missing: str = "-") -> str:
    """A float to `digits` decimals, None as `missing`, anything else as `str`."""
    if value is None:
        return missing
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def sci(value: float, digits: int = 0) -> str:
    """Compact scientific notation: `sci(1e-3)` is `1e-3`, `sci(2.5e-4, 1)` is `2.5e-4`."""
    mantissa, exp = f"{value:.{digits}e}".split("e")
    return f"{mantissa}e{int(exp)}"


def mean_sd(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample SD (0 for one value; NaN, NaN for none)."""
    xs = list(values)
    if not xs:
        return math.nan, math.nan
    return statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0


def pm(values: Iterable[float], digits: int = 1, scale: float = 1.0) -> str:
    """`mean ± SD` of the values times `scale`."""
    mu, sd = mean_sd(values)
    return f"{mu * scale:.{digits}f} ± {sd * scale:.{digits}f}"


def mark(ok: bool, bold: bool = True) -> str:
    """The verdict of a target: met or missed."""
    word = "met" if ok else "missed"
    return f"**{word}**" if bold else word


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


# ----------------------------------------------------------------------------------------------- timing

class Timer:
    """Wall and CPU seconds of a block: `with Timer() as t: ...`, then `t.wall`, `t.cpu` (readable while
    the block still runs)."""

    def __init__(self) -> None:
        self.start()

    def start(self) -> Timer:
        self._wall, self._cpu, self._stopped = time.perf_counter(), time.process_time(), None
        return self

    def stop(self) -> Timer:
        self._stopped = (time.perf_counter() - self._wall, time.process_time() - self._cpu)
        return self

    def __enter__(self) -> Timer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def wall(self) -> float:
        return self._stopped[0] if self._stopped else time.perf_counter() - self._wall

    @property
    def cpu(self) -> float:
        return self._stopped[1] if self._stopped else time.process_time() - self._cpu


@dataclass
class Timing:
    """Repeated timings (seconds) of one operation; `wall` and `cpu` are their medians."""

    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    value: Any = None

    @property
    def wall(self) -> float:
        return median(self.walls) if self.walls else math.nan

    @property
    def cpu(self) -> float:
        return median(self.cpus) if self.cpus else math.nan

    def add(self, timer: Timer) -> None:
        self.walls.append(timer.wall)
        self.cpus.append(timer.cpu)


def repeat(fn: Callable[[], Any], repeats: int = 1, warmup: int = 0) -> Timing:
    """Call `fn` `warmup` times untimed, then `repeats` times timed; `.value` is the last result."""
    for _ in range(warmup):
        fn()
    out = Timing()
    for _ in range(repeats):
        with Timer() as t:
            out.value = fn()
        out.add(t)
    return out


def cuda_ms(fn: Callable[[], Any], repeats: int = 20, warmup: int = 3, *, each: bool = True) -> float:
    """Milliseconds per call of `fn` on the GPU (CUDA events): the median of `repeats` single calls
    (`each=True`), or one event pair around all of them divided by `repeats` (`each=False`)."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    if not each:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(repeats):
            fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / repeats
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return median(times)


def cuda_peak_mib(fn: Callable[[], Any]) -> float:
    """Peak GPU memory (MiB) that one call of `fn` allocates above what was allocated before it."""
    import torch

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def cuda_device() -> str | None:
    """`NAME, torch VERSION` of the GPU, or None without CUDA (the kernel scripts then measure nothing)."""
    import torch

    if not torch.cuda.is_available():
        return None
    return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"


# ------------------------------------------------------------------------------------------------- JSON

def _default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def dump_json(path: str | Path, obj: Any, indent: int | None = 1) -> Path:
    """Write `obj` as JSON (tensors and arrays as lists, anything else unknown as a string), atomically:
    an interrupted write never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=indent, default=_default) + "\n")
    tmp.replace(path)
    return path


def load_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def merge_results(parts: Iterable[dict[str, Any]], *, add: Iterable[str] = (), skip: Iterable[str] = ()) -> dict:
    """One result dict from several runs' dumps: lists are concatenated and dicts merged (recursively);
    keys in `add` are summed; other values: the last one given wins; keys in `skip` are left out."""
    add, skip = set(add), set(skip)

    def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        out = dict(a)
        for k, v in b.items():
            if k in skip:
                continue
            if (k in add and k in out) or (isinstance(v, list) and isinstance(out.get(k), list)):
                out[k] = out[k] + v
            elif isinstance(v, dict) and isinstance(out.get(k), dict):
                out[k] = merge(out[k], v)
            else:
                out[k] = v
        return out

    result: dict[str, Any] = {}
    for part in parts:
        result = merge(result, part)
    return result


# ------------------------------------------------------------------------------------------------ pages

class Page:
    """A Markdown page as a preamble and `## ` sections, in order.

    `Page.read(path)` parses a page written earlier; `set(heading, lines)` replaces the section whose
    heading line starts with `heading` in place (or inserts it before the section `before`, else at the
    end) and keeps every other section; `replace_lines` swaps single lines (e.g. a table row a section
    contributes to another); `write(path)` writes atomically.
    """

    def __init__(self, preamble: Sequence[str] = ()) -> None:
        self.preamble: list[str] = list(preamble)
        self.sections: list[list[str]] = []

    @classmethod
    def read(cls, path: str | Path) -> Page:
        page = cls()
        path = Path(path)
        lines = path.read_text().splitlines() if path.exists() else []
        for line in lines:
            if line.startswith("## "):
                page.sections.append([line])
            elif page.sections:
                page.sections[-1].append(line)
            else:
                page.preamble.append(line)
        return page

    def _find(self, heading: str) -> int | None:
        return next((i for i, s in enumerate(self.sections) if s[0].startswith(heading)), None)

    def has(self, heading: str) -> bool:
        return self._find(heading) is not None

    def add(self, lines: Sequence[str]) -> Page:
        """Append a section (its first line is its `## ` heading)."""
        if not lines or not lines[0].startswith("## "):
            raise ValueError("a section starts with its '## ' heading line")
        self.sections.append(list(lines))
        return self

    def set(self, heading: str, lines: Sequence[str], before: str | None = None) -> Page:
        """Replace the section whose heading starts with `heading` by `lines` (heading included), or
        insert it before the section starting with `before` (at the end when there is none)."""
        if not lines or not lines[0].startswith(heading):
            raise ValueError(f"the section's first line must start with {heading!r}")
        at = self._find(heading)
        if at is not None:
            self.sections[at] = list(lines)
            return self
        at = self._find(before) if before else None
        self.sections.insert(len(self.sections) if at is None else at, list(lines))
        return self

    def remove(self, heading: str) -> Page:
        self.sections = [s for s in self.sections if not s[0].startswith(heading)]
        return self

    def replace_lines(self, prefixes: Sequence[str], new: Sequence[str], after: Sequence[str] = ()) -> bool:
        """Drop every line starting with one of `prefixes` and put `new` where the first of them was (or,
        when none was there, right after the first line starting with the first of `after` that is found).
        False if neither is found."""
        blocks = [self.preamble, *self.sections]
        spot: tuple[int, int] | None = None
        for b, block in enumerate(blocks):
            kept = []
            for line in block:
                if line.startswith(tuple(prefixes)):
                    if spot is None:
                        spot = (b, len(kept))
                    continue
                kept.append(line)
            block[:] = kept
        for prefix in after:
            if spot is not None:
                break
            spot = next(((b, i + 1) for b, block in enumerate(blocks) for i, line in enumerate(block)
                         if line.startswith(prefix)), None)
        if spot is None:
            return False
        b, i = spot
        blocks[b][i:i] = list(new)
        return True

    def text(self) -> str:
        lines = [*self.preamble, *(line for s in self.sections for line in s)]
        return "\n".join(lines).rstrip("\n") + "\n"

    def write(self, path: str | Path) -> Path:
        return write_page(path, self.text())


def write_page(path: str | Path, text: str) -> Path:
    """Write a page atomically (one trailing newline); a bare name is a page under docs/benchmarks/."""
    path = Path(path)
    if path.parent == Path(".") and not path.suffix:
        path = DOCS / f"{path}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text.rstrip("\n") + "\n")
    tmp.replace(path)
    return path


def parser(doc: str | None, **kw: Any) -> Any:
    """An argparse parser whose description is the script's docstring (shown by --help)."""
    import argparse

    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter, **kw)
