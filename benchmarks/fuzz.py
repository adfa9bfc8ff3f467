"""Fuzz benchmark: 10^5 mutated inputs per parser of untrusted input; every outcome must be an accepted
input or a clean InputError (exit 2). Writes docs/benchmarks/fuzz.md.

The cases are the seeded generators of tests/fuzz/fuzz_cases.py (the test suite runs a few hundred of
each). Each parser runs in its own subprocess, so its peak RSS (VmHWM) is its own. Every case runs under
a memory limit (RLIMIT_AS: the worker's address space after its imports and a few warm-up cases, plus
`--mem-mib`) and a time limit (`--time-s`, SIGALRM; a case stuck in C code past it is killed by the parent
watchdog). A case that hits either limit, or kills its worker, is a failure (never a clean error); the
parent then restarts the worker at the next case. Run, under the shared lock with one thread:
`flock /tmp/dnnkit-heavy.lock .venv/bin/python benchmarks/fuzz.py`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import DOCS, ROOT, Run, fmt, log, machine_note, parser, table, write_page

CASES_FILE = Path(os.environ.get("DNNKIT_FUZZ_CASES", ROOT / "tests" / "fuzz" / "fuzz_cases.py"))  # env: harness tests
WARMUP_CASES = 10  # per worker, from another seed, not counted: they pay the lazy imports before the limits
WHAT = {
    "safetensors-header": "`read_header`, then the safetensors library loads every accepted file",
    "dnnkit-record": "`load_model` of a checkpoint whose `dnnkit` record/recipe is mutated (meta-device check)",
    "bitmask-v1": "`dnnkit.sparse` metadata and stored parts: header check, decode, `load_tensors`",
    "gguf-header": "`GGUFWeights`: header walk, metadata fields, then every tensor dequantised",
    "hf-config": "`read_hf_config` + architecture spec + `inspect` summary",
    "data-npz": "`--data npz:` (object arrays, forged .npy headers, labels)",
    "data-jsonl": "`--data jsonl:`",
    "data-text": "`--data text:`",
    "data-imagefolder": "`--data imagefolder:` (broken images, PNG headers claiming 2^31 pixels)",
    "config-yaml": "`--config FILE.yaml` (alias bombs, deep nesting, Python tags)",
}


def _cases_module():
    spec = importlib.util.spec_from_file_location("fuzz_cases", CASES_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_cases"] = module
    spec.loader.exec_module(module)
    return module


def _status(key: str) -> int:
    """A /proc/self/status figure in bytes (VmSize, VmHWM)."""
    return int(re.search(rf"{key}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024


class CaseTimeout(BaseException):
    """Raised by SIGALRM in the case that ran past the time limit (a BaseException: no parser swallows it)."""


def _caused_by_memory(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, MemoryError):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _watched(fn, raised: list[BaseException]) -> None:
    try:
        fn()
    except BaseException as exc:
        raised.append(exc)
        raise


def worker(name: str, start: int, stop: int, seed: int, mem_mib: int, time_s: float, progress: str,
           warmup: int = WARMUP_CASES) -> None:
    """Run cases start..stop-1 of one target in this process, each under the limits; print the tally (one JSON
    line). The index of the running case is written to `progress` first, so the parent knows which case a
    crash or a hang belongs to."""
    import resource
    import signal

    import torch

    torch.set_num_threads(1)
    mod = _cases_module()
    target = mod.TARGETS[name]
    t0 = time.perf_counter()
    tally = {"cases": 0, "accepted": 0, "clean": 0, "other": 0, "limit": 0, "slowest_s": 0.0, "slowest_case": -1,
             "examples": [], "limit_examples": []}
    fd = os.open(progress, os.O_WRONLY)
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as tmp:
        workdir = Path(tmp)
        state = target.setup(workdir)

        def on_alarm(*_: object) -> None:
            raise CaseTimeout

        signal.signal(signal.SIGALRM, on_alarm)
        os.pwrite(fd, f"{'warmup':>20}".encode(), 0)
        for j in range(warmup):  # under the time limit too; what they do is not counted
            signal.setitimer(signal.ITIMER_REAL, time_s)
            try:
                mod.run_case(target.case(random.Random(f"warmup:{name}:{j}"), workdir, state))
            except CaseTimeout:
                pass
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        cap = _status("VmSize") + mem_mib * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        for i in range(start, stop):
            os.pwrite(fd, f"{i:>20}".encode(), 0)
            rng = random.Random(f"{seed}:{name}:{i}")
            t1 = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, time_s)
            raised: list[BaseException] = []  # run_case drops a clean error; its chain tells a memory-limit hit
            try:
                fn = target.case(rng, workdir, state)
                outcome, exc = mod.run_case(lambda fn=fn, raised=raised: _watched(fn, raised))
                limit = "memory limit" if raised and _caused_by_memory(raised[0]) else None
            except CaseTimeout:
                outcome, exc, limit = "limit", None, f"time limit ({time_s:g} s)"
            except MemoryError:
                outcome, exc, limit = "limit", None, "memory limit (in the harness)"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            dt = time.perf_counter() - t1
            if limit:
                outcome = "limit"
                if len(tally["limit_examples"]) < 5:
                    tally["limit_examples"].append(f"case {i}: {limit}")
            elif exc is not None and len(tally["examples"]) < 5:
                tally["examples"].append(f"case {i}: {type(exc).__name__}: {str(exc)[:200]}")
            tally["cases"] += 1
            tally[outcome] += 1
            if dt > tally["slowest_s"]:
                tally["slowest_s"], tally["slowest_case"] = dt, i
    tally["wall_s"] = time.perf_counter() - t0
    tally["peak_rss_mib"] = _status("VmHWM") / 2**20
    print(json.dumps(tally))


def run_target(name: str, n: int, seed: int, mem_mib: int, time_s: float, env: dict[str, str],
               grace_s: float = 60.0) -> dict:
    """All n cases of one target. A case that kills or hangs its worker is a limit hit; the cases around it
    run in fresh workers (the ones before it again, since a dead worker reports nothing)."""
    total = {"cases": 0, "accepted": 0, "clean": 0, "other": 0, "limit": 0, "slowest_s": 0.0, "slowest_case": -1,
             "examples": [], "limit_examples": [], "wall_s": 0.0, "peak_rss_mib": 0.0, "workers": 0}
    todo = [(0, n)]
    warmup = WARMUP_CASES
    with tempfile.TemporaryDirectory() as tmp:
        progress, out_path, err_path = (Path(tmp) / f for f in ("progress", "out", "err"))
        while todo:
            start, stop = todo.pop(0)
            if start >= stop:
                continue
            progress.write_text(f"{'setup':>20}")
            t0 = time.perf_counter()
            with open(out_path, "w") as out, open(err_path, "w") as err:
                proc = subprocess.Popen([sys.executable, __file__, "--worker", name, "--start", str(start),
                                         "--cases", str(stop), "--seed", str(seed), "--mem-mib", str(mem_mib),
                                         "--time-s", str(time_s), "--progress", str(progress),
                                         "--warmup", str(warmup)],
                                        stdout=out, stderr=err, env=env)
                last, changed, hung = progress.read_text(), time.monotonic(), False
                while proc.poll() is None:
                    time.sleep(0.5)
                    now = progress.read_text()
                    if now != last:
                        last, changed = now, time.monotonic()
                    elif now.strip() != "setup" and time.monotonic() - changed > time_s + grace_s:
                        proc.kill()  # stuck where SIGALRM cannot reach it (inside C code)
                        proc.wait()
                        hung = True
            total["workers"] += 1
            total["wall_s"] += time.perf_counter() - t0
            lines = out_path.read_text().strip().splitlines()
            if proc.returncode == 0 and lines:
                part = json.loads(lines[-1])
                for k in ("cases", "accepted", "clean", "other", "limit"):
                    total[k] += part[k]
                for k in ("examples", "limit_examples"):
                    total[k] = (total[k] + part[k])[:5]
                if part["slowest_s"] > total["slowest_s"]:
                    total["slowest_s"], total["slowest_case"] = part["slowest_s"], part["slowest_case"]
                total["peak_rss_mib"] = max(total["peak_rss_mib"], part["peak_rss_mib"])
                continue
            mark = progress.read_text().strip()
            if mark == "setup" or (mark == "warmup" and not warmup):
                raise SystemExit(f"{name}: the worker failed before its first case: {_last_line(err_path)}")
            if mark == "warmup":  # an uncounted warm-up case broke it: go on without warm-up
                log(f"{name}: a warm-up case killed the worker ({_last_line(err_path)}); running without warm-up")
                warmup = 0
                todo.insert(0, (start, stop))
                continue
            failed = int(mark)
            why = (f"hung past the time limit (killed after {time_s + grace_s:g} s)" if hung else
                   f"killed the worker (exit {proc.returncode}: {_last_line(err_path)})")
            log(f"{name}: case {failed} {why}")
            total["limit_examples"] = (total["limit_examples"] + [f"case {failed}: {why}"])[:5]
            total["cases"] += 1
            total["limit"] += 1
            todo[:0] = [(start, failed), (failed + 1, stop)]
    return total


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:160] if lines else "no output"


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--cases", type=int, default=100_000, help="cases per parser")
    ap.add_argument("--cases-for", default="", help="per-parser overrides, e.g. dnnkit-record=20000,data-npz=5000")
    ap.add_argument("--only", default="", help="comma-separated parsers (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mem-mib", type=int, default=2048, help="per-case memory limit above the worker's baseline")
    ap.add_argument("--time-s", type=float, default=10.0, help="per-case time limit (seconds)")
    ap.add_argument("--grace-s", type=float, default=60.0, help="watchdog: kill a worker stuck this long past --time-s")
    ap.add_argument("--worker", default=None, help=argparse_hidden())
    ap.add_argument("--start", type=int, default=0, help=argparse_hidden())
    ap.add_argument("--warmup", type=int, default=WARMUP_CASES, help=argparse_hidden())
    ap.add_argument("--progress", default=None, help=argparse_hidden())
    ap.add_argument("--out", default=str(DOCS / "fuzz.md"))
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.start, args.cases, args.seed, args.mem_mib, args.time_s, args.progress, args.warmup)
        return
    run = Run(threads=1)
    names = [n for n in _cases_module().TARGETS if not args.only or n in args.only.split(",")]
    overrides = dict(kv.split("=") for kv in args.cases_for.split(",") if kv)
    results: dict[str, dict] = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for name in names:
        n = int(overrides.get(name, args.cases))
        log(f"{name}: {n} cases")
        results[name] = r = run_target(name, n, args.seed, args.mem_mib, args.time_s, env, args.grace_s)
        log(f"{name}: {r['accepted']} accepted, {r['clean']} clean, {r['other']} other, {r['limit']} limit hits, "
            f"{r['wall_s']:.0f} s")
    record = run.finish()
    Path(args.out).with_suffix(".json").write_text(json.dumps({"record": record, "results": results}, indent=1) + "\n")
    print(write_page(args.out, page(results, record, args)))


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


def page(results: dict[str, dict], record: dict, args) -> str:
    rows = []
    for name, r in results.items():
        rows.append([f"`{name}`", f"{r['cases']:,}", f"{r['accepted']:,}", f"{r['clean']:,}", f"**{r['other']}**",
                     f"**{r['limit']}**", f"{r['slowest_s'] * 1000:.1f} (case {r['slowest_case']})",
                     f"{r['wall_s'] / max(r['cases'], 1) * 1000:.2f}", f"{r['peak_rss_mib']:.0f}"])
    total = sum(r["cases"] for r in results.values())
    other = sum(r["other"] for r in results.values())
    limit = sum(r["limit"] for r in results.values())
    short = [n for n, r in results.items() if r["cases"] < 100_000]
    examples = [f"- `{n}`: {e}" for n, r in results.items() for e in r["examples"] + r.get("limit_examples", [])]
    lines = [
        "# Fuzzing the parsers of untrusted input",
        "",
        f"`benchmarks/fuzz.py` (run: `{record['command']}`), {machine_note(record)}.",
        f"Every case is one mutated input (seeded: `--seed {args.seed}` reproduces it) handed to one parser. "
        "*Accepted*: the "
        "parser returned (for safetensors and GGUF the data is then read as well, so an accepted file really "
        "loads); *clean*: an `InputError` with a one-line message (exit 2 on the command line); *other*: any other "
        "exception, a bug; *limit hits*: a case that ran past the per-case limits (memory: the worker's address space "
        f"after its imports plus {args.mem_mib} MiB, `RLIMIT_AS`; time: {args.time_s:g} s, `SIGALRM`, with a watchdog "
        "killing a worker stuck in C code) or killed its worker, also a bug (counted apart from the other "
        f"exceptions, never as a clean error). Each worker first runs {WARMUP_CASES} uncounted warm-up cases of "
        "another seed, which pay the lazy imports (torch, transformers, scikit-learn), so the slowest case is a "
        "parser's own time. Peak RSS is the whole worker process (VmHWM), imports included.",
        "",
        table(["parser", "cases", "accepted", "clean errors", "other exceptions", "limit hits", "slowest case (ms)",
               "mean ms / case", "peak RSS (MiB)"], rows),
        "",
        f"**{other} other exceptions and {limit} limit hits in {total:,} cases.**",
        "",
        "What each parser row runs:",
        "",
        *[f"- `{n}`: {WHAT.get(n, '')}" for n in results],
    ]
    if short:
        counts = ", ".join(f"`{n}` ({results[n]['cases']:,})" for n in short)
        lines += ["", f"Parsers run with fewer than 10^5 cases in this run (time on the shared machine): {counts}; "
                      "`--cases-for` sets the count per parser."]
    if examples:
        lines += ["", "Other exceptions seen (first few per parser):", "", *examples]
    lines += ["", f"Total wall time {fmt(record.get('wall_s'), 0)} s. Regenerate with the command above; the test "
                  "suite runs the same generators (`tests/fuzz/test_fuzz.py`, a few hundred cases per parser)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
