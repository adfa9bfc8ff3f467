"""Fuzz benchmark: 10^5 mutated inputs per parser of untrusted input; every outcome must be an accepted
input or a clean InputError (exit 2). Writes docs/benchmarks/fuzz.md.

The cases are the seeded generators of tests/fuzz/fuzz_cases.py (the test suite runs a few hundred of
each). Each parser runs in its own subprocess, so its peak RSS (VmHWM) is its own. Run, under the
shared lock with one thread: `flock /tmp/dnnkit-heavy.lock .venv/bin/python benchmarks/fuzz.py`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import DOCS, ROOT, Run, fmt, log, machine_note, parser, table, write_page

CASES_FILE = ROOT / "tests" / "fuzz" / "fuzz_cases.py"
WHAT = {
    "safetensors-header": "`read_header`, then the safetensors library loads every accepted file",
    "dnnkit-record": "`load_model` of a checkpoint whose `dnnkit` record/recipe is mutated (meta-device check)",
    "bitmask-v1": "`dnnkit.sparse` metadata and stored parts: header check, decode, `load_tensors`",
    "gguf-header": "`GGUFWeights`: header, metadata fields, then every tensor dequantised",
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


def worker(name: str, cases: int, seed: int) -> None:
    """Run one target in this process and print its tally (plus peak RSS) as one JSON line."""
    import torch

    torch.set_num_threads(1)
    targets = _cases_module().TARGETS
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as tmp:
        tally = targets[name].run(cases, seed, Path(tmp))
    result = tally.as_dict()
    result["wall_s"] = time.perf_counter() - t0
    result["peak_rss_mib"] = int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024
    print(json.dumps(result))


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--cases", type=int, default=100_000, help="cases per parser")
    ap.add_argument("--cases-for", default="", help="per-parser overrides, e.g. dnnkit-record=20000,data-npz=5000")
    ap.add_argument("--only", default="", help="comma-separated parsers (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worker", default=None, help=argparse_hidden())
    ap.add_argument("--out", default=str(DOCS / "fuzz.md"))
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.cases, args.seed)
        return
    run = Run(threads=1)
    names = [n for n in _cases_module().TARGETS if not args.only or n in args.only.split(",")]
    overrides = dict(kv.split("=") for kv in args.cases_for.split(",") if kv)
    results: dict[str, dict] = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in names:
        n = int(overrides.get(name, args.cases))
        log(f"{name}: {n} cases")
        out = subprocess.run([sys.executable, __file__, "--worker", name, "--cases", str(n), "--seed", str(args.seed)],
                             capture_output=True, text=True, env=env, check=True)
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[name]
        log(f"{name}: {r['accepted']} accepted, {r['clean']} clean, {r['other']} other, {r['wall_s']:.0f} s")
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
                     f"{r['slowest_s'] * 1000:.1f} (case {r['slowest_case']})",
                     f"{r['wall_s'] / max(r['cases'], 1) * 1000:.2f}", f"{r['peak_rss_mib']:.0f}"])
    total = sum(r["cases"] for r in results.values())
    other = sum(r["other"] for r in results.values())
    short = [n for n, r in results.items() if r["cases"] < 100_000]
    examples = [f"- `{n}`: {e}" for n, r in results.items() for e in r["examples"]]
    lines = [
        "# Fuzzing the parsers of untrusted input",
        "",
        f"`benchmarks/fuzz.py` (run: `{record['command']}`), {machine_note(record)}.",
        f"Every case is one mutated input (seeded: `--seed {args.seed}` reproduces it) handed to one parser. "
        "*Accepted*: the "
        "parser returned (for safetensors and GGUF the data is then read as well, so an accepted file really "
        "loads); *clean*: an `InputError` with a one-line message (exit 2 on the command line); *other*: any other "
        "exception, a bug. The first case of each parser pays its imports (torch, transformers, scikit-learn), "
        "which is usually the slowest case. Peak RSS is the whole worker process (VmHWM), imports included.",
        "",
        table(["parser", "cases", "accepted", "clean errors", "other exceptions", "slowest case (ms)",
               "mean ms / case", "peak RSS (MiB)"], rows),
        "",
        f"**{other} other exceptions in {total:,} cases.**",
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
