"""I/O benchmark: `inspect` on a large safetensors file vs the safetensors library's own header read,
dnnkit's validated load vs `safetensors.torch.load_file`, and `dnnkit --help` start-up (section `io`);
weight-only commands (`prune --method global|uniform|lamp`, `inspect --stats`) end to end against the
plain scripts `baseline_stream_prune.py` and `baseline_stats.py` on a bare file of 1024x1024 fp32
tensors, with their peak RSS (section `stream`); and `--threads 1` against `--threads 2` (section
`threads`).

Each measurement runs in a fresh subprocess, repeated and interleaved; the tables report medians.
Sections run alone keep the page's other sections. Run: `.venv/bin/python benchmarks/io.py`
(e.g. `--sections stream --repeats 3`, or `--stream-tensors 8` for a quick try).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import DOCS, ROOT, Page, Run, Timer, Timing, fmt, log, machine_note, mark, median, parser, table

STREAM_HEADING = "## Weight-only commands against plain streaming scripts"
THREADS_HEADING = "## Threads: --threads 1 against --threads 2"
SECTIONS = ("io", "stream", "threads")

BASELINE = "baseline: python + import torch"
HEADER_SAFE = "safetensors safe_open: keys + shapes"
HEADER_DNNKIT = "dnnkit describe (= inspect, header-only)"
LOAD_SAFE = "safetensors.torch.load_file"
LOAD_DNNKIT = "dnnkit load_tensors (validated)"
SNIPPETS = {
    BASELINE: "import torch\n",
    HEADER_SAFE: (
        "import torch\nfrom safetensors import safe_open\n"
        "t, c = time.perf_counter(), time.process_time()\n"
        "with safe_open(PATH, framework='pt') as f:\n"
        "    shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}\n"
        "elapsed, cpu = time.perf_counter() - t, time.process_time() - c\n"),
    HEADER_DNNKIT: (
        "from dnnkit.models.describe import describe\n"
        "t, c = time.perf_counter(), time.process_time()\n"
        "r = describe(PATH)\n"
        "elapsed, cpu = time.perf_counter() - t, time.process_time() - c\n"),
    LOAD_SAFE: (
        "from safetensors.torch import load_file\n"
        "t, c = time.perf_counter(), time.process_time()\n"
        "d = load_file(PATH)\n"
        "s = sum(float(v.sum()) for v in d.values())\n"
        "elapsed, cpu = time.perf_counter() - t, time.process_time() - c\n"),
    LOAD_DNNKIT: (
        "import torch\nfrom dnnkit.models.safetensors_io import load_tensors\n"
        "t, c = time.perf_counter(), time.process_time()\n"
        "d = load_tensors(PATH)\n"
        "s = sum(float(v.sum()) for v in d.values())\n"
        "elapsed, cpu = time.perf_counter() - t, time.process_time() - c\n"),
}

# Peak RSS is read from /proc/self/status (VmHWM), which starts afresh at exec (ru_maxrss would
# inherit the parent's peak). CPU time (process_time) is reported beside wall time: on a shared,
# loaded machine it is the steadier of the two.
RUNNER = ("import time, json, sys, re\nPATH = sys.argv[1]\nelapsed = cpu = 0.0\n{body}\n"
          "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) / 1024\n"
          "print(json.dumps({{'s': elapsed, 'cpu': cpu, 'rss_mb': hwm}}))")


def make_file(path: Path, gigabytes: float) -> None:
    """Write the test file in a child process, so this process stays small."""
    n = max(1, int(gigabytes * 1024))  # 1 MiB tensors (512x512 fp32)
    code = ("import sys, torch\nfrom safetensors.torch import save_file\n"
            f"save_file({{f'layers.{{i}}.weight': torch.randn(512, 512) for i in range({n})}}, sys.argv[1])")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)


def run_snippet(body: str, path: Path) -> dict:
    code = RUNNER.format(body=body)
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def help_time(repeats: int) -> tuple[float, float]:
    """Median wall seconds of `dnnkit --help` and of `python -c pass`, interleaved."""
    cli, bare = Timing(), Timing()
    for _ in range(repeats):
        for timing, cmd in ((cli, ["-m", "dnnkit", "--help"]), (bare, ["-c", "pass"])):
            with Timer() as t:
                subprocess.run([sys.executable, *cmd], capture_output=True, check=True)
            timing.add(t)
    return cli.wall, bare.wall


def io_section(args) -> str:
    """The page's first part (its preamble): header reads, loads and `--help`."""
    run = Run()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        path = Path(tmp) / "large.safetensors"
        make_file(path, args.gigabytes)
        size_mb = path.stat().st_size / 1e6
        runs: dict[str, list[dict]] = {name: [] for name in SNIPPETS}
        for _ in range(args.repeats):  # interleaved, so load on the machine hits every row alike
            for name, body in SNIPPETS.items():
                runs[name].append(run_snippet(body, path))
    results = {name: {k: median(r[k] for r in rs) for k in ("s", "cpu", "rss_mb")}
               for name, rs in runs.items()}
    base_rss = results[BASELINE]["rss_mb"]
    rows = []
    for name, r in results.items():
        if name == BASELINE:
            rows.append([name, "-", "-", f"{r['rss_mb']:.0f}", "-"])
        else:
            rows.append([name, f"{r['s'] * 1000:.1f}", f"{r['cpu'] * 1000:.1f}", f"{r['rss_mb']:.0f}",
                         f"{r['rss_mb'] - base_rss:+.0f}"])
    help_s, py_s = help_time(max(3, args.repeats))
    record = run.finish()
    header, safe, load, ours = (results[k] for k in (HEADER_DNNKIT, HEADER_SAFE, LOAD_SAFE, LOAD_DNNKIT))
    n_tensors = int(args.gigabytes * 1024)
    text = f"""# I/O benchmark

`benchmarks/io.py` (run: `.venv/bin/python benchmarks/io.py --gigabytes {args.gigabytes} --repeats {args.repeats}`),
{machine_note(record)}. Each row is the median of {args.repeats} fresh subprocesses, run interleaved; wall
and CPU time are the operation's alone inside the process (imports done before), peak RSS (VmHWM) is
the whole process; the baseline row is Python plus `import torch` (dnnkit's header-only path never
imports torch, hence its row below the baseline; every other row imports torch before its timer
starts). Wall times are noisy on a shared machine: CPU times and memory are the figures to read.
File: {size_mb:.0f} MB of fp32 tensors ({n_tensors} tensors of 512x512).

{table(["operation", "wall (ms)", "CPU (ms)", "peak RSS (MB)", "RSS over baseline (MB)"], rows)}

- `inspect` (header-only) / safetensors' own header read: **{header["cpu"] / safe["cpu"]:.3f}x** the CPU time
  ({header["cpu"] * 1000:.1f} ms against {safe["cpu"] * 1000:.1f} ms: dnnkit parses and validates the
  {n_tensors}-entry header in Python and builds the whole report). It reads no tensor data and never imports
  torch, so the process peaks at {header["rss_mb"]:.0f} MB against {safe["rss_mb"]:.0f} MB with torch.
- dnnkit's validated load / `safetensors.torch.load_file`: **{ours["cpu"] / load["cpu"]:.2f}x** the CPU time
  ({fmt(ours["cpu"], 2)} s against {fmt(load["cpu"], 2)} s; both read and sum every tensor, dnnkit validates
  the header first).
- `dnnkit --help`: **{help_s * 1000:.0f} ms** wall (median), against {py_s * 1000:.0f} ms for `python -c pass`;
  it imports neither torch nor rich (a test checks this).

Times on this shared {record["cores"]}-core machine vary between runs; compare ratios within one run.
"""
    return text


# ------------------------------------------------------------------- weight-only commands, end to end

# A command runs as the grandchild of this process: a small runner (no torch) starts it and reads its
# rusage with os.wait4. ru_maxrss survives exec, so a child started straight from this process (which
# holds torch) would report this process's peak; the runner's own few MB are below every peak measured.
MEASURE = ("import json, os, subprocess, sys, time\n"
           "t = time.perf_counter()\n"
           "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
           "_, status, ru = os.wait4(p.pid, 0)\n"
           "print(json.dumps({'rc': os.waitstatus_to_exitcode(status), 's': time.perf_counter() - t,\n"
           "                  'cpu': ru.ru_utime + ru.ru_stime, 'rss_mb': ru.ru_maxrss / 1024}))")
DNNKIT = [sys.executable, "-m", "dnnkit"]
BENCH = ROOT / "benchmarks"
RATIO = 0.5
# (label, dnnkit command, baseline label, baseline command, target ratio); FILE and OUT are filled in.
PAIRS = [
    ("prune --method global", [*DNNKIT, "prune", "FILE", "--method", "global", "--ratio", str(RATIO), "-o", "OUT",
                               "--force"],
     "baseline_stream_prune.py global", [sys.executable, str(BENCH / "baseline_stream_prune.py"), "FILE", "OUT",
                                         "global", str(RATIO)], 1.2),
    ("prune --method uniform", [*DNNKIT, "prune", "FILE", "--method", "uniform", "--ratio", str(RATIO), "-o",
                                "OUT", "--force"],
     "baseline_stream_prune.py uniform", [sys.executable, str(BENCH / "baseline_stream_prune.py"), "FILE", "OUT",
                                          "uniform", str(RATIO)], 1.2),
    ("prune --method lamp", [*DNNKIT, "prune", "FILE", "--method", "lamp", "--ratio", str(RATIO), "-o", "OUT",
                             "--force"],
     "baseline_stream_prune.py lamp", [sys.executable, str(BENCH / "baseline_stream_prune.py"), "FILE", "OUT",
                                       "lamp", str(RATIO)], 1.5),
    ("inspect --stats", [*DNNKIT, "inspect", "FILE", "--stats"],
     "baseline_stats.py", [sys.executable, str(BENCH / "baseline_stats.py"), "FILE"], 1.1),
]
TORCH_IMPORT = "python -c 'import torch'"
# Bit-for-bit comparison of two safetensors files, tensor by tensor (names, dtypes, shapes, bytes).
SAME = ("import json, sys, torch\nfrom safetensors import safe_open\n"
        "with safe_open(sys.argv[1], framework='pt') as a, safe_open(sys.argv[2], framework='pt') as b:\n"
        "    names = sorted(a.keys())\n"
        "    same, zeros = names == sorted(b.keys()), 0\n"
        "    for n in names if same else []:\n"
        "        x, y = a.get_tensor(n), b.get_tensor(n)\n"
        "        same = same and x.dtype == y.dtype and x.shape == y.shape and bool(torch.equal(\n"
        "            x.contiguous().view(torch.uint8), y.contiguous().view(torch.uint8)))\n"
        "        zeros += int((x == 0).sum())\n"
        "print(json.dumps({'tensors': len(names), 'identical': same, 'zeros': zeros}))")


def child_env(threads: int | None) -> dict[str, str]:
    """The environment of a measured command: one OpenMP/MKL thread unless `threads` says otherwise."""
    env = {k: v for k, v in os.environ.items() if k != "DNNKIT_THREADS"}
    n = str(threads or 1)
    env.update(OMP_NUM_THREADS=n, MKL_NUM_THREADS=n)
    return env


def measure(cmd: list[str], threads: int | None = None) -> dict:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of one command, start-up included."""
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True,
                         env=child_env(threads), cwd=ROOT)
    result = json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {"rc": out.returncode}
    if out.returncode or result["rc"]:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result}):\n{out.stderr[-2000:]}")
    return result


def make_stream_file(path: Path, tensors: int, dim: int) -> None:
    """`tensors` fp32 tensors of dim x dim (normal, seed 0), written in a child process."""
    code = ("import sys, torch\nfrom safetensors.torch import save_file\ntorch.manual_seed(0)\n"
            f"save_file({{f'layers.{{i}}.weight': torch.randn({dim}, {dim}) for i in range({tensors})}}, sys.argv[1])")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, env=child_env(1))


def fill(cmd: list[str], file: Path, out: Path) -> list[str]:
    return [str(file) if c == "FILE" else str(out) if c == "OUT" else c for c in cmd]


def medians(rs: list[dict]) -> dict:
    return {k: median(r[k] for r in rs) for k in ("s", "cpu", "rss_mb")}


def run_command(args) -> str:
    """The command line of this run (heavy jobs on the shared machine take the lock first)."""
    only = f" --stream-only {args.stream_only}" if args.stream_only else ""
    return (f"flock /tmp/dnnkit-heavy.lock env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/io.py --sections "
            f"{args.sections} --repeats {args.repeats} --stream-tensors {args.stream_tensors} --stream-dim "
            f"{args.stream_dim}{only}")


def stream_section(args) -> list[str]:
    """dnnkit's weight-only commands against the plain scripts, in one run, one thread, interleaved."""
    run = Run(threads=1)
    pairs = [p for p in PAIRS if not args.stream_only or any(w in p[0] for w in args.stream_only.split(","))]
    runs: dict[str, list[dict]] = {TORCH_IMPORT: []}
    for label, _, base, _, _ in pairs:
        runs[label], runs[base] = [], []
    checks: dict[str, dict] = {}
    largest_mb = args.stream_dim ** 2 * 4 / 2**20
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        path = Path(tmp) / "stream.safetensors"
        make_stream_file(path, args.stream_tensors, args.stream_dim)
        size_mb = path.stat().st_size / 1e6
        for rep in range(args.repeats):  # interleaved: load on the machine hits dnnkit and its baseline alike
            runs[TORCH_IMPORT].append(measure([sys.executable, "-c", "import torch"]))
            for i, (label, cmd, base, base_cmd, _) in enumerate(pairs):
                ours, theirs = Path(tmp) / f"dnnkit{i}.safetensors", Path(tmp) / f"base{i}.safetensors"
                order = [(label, cmd, ours), (base, base_cmd, theirs)]
                for name, c, out in order if rep % 2 == 0 else order[::-1]:
                    runs[name].append(measure([*fill(c, path, out), *(["--threads", "1"] if c[:3] == DNNKIT
                                                                      else [])]))
                    log(f"stream {rep + 1}/{args.repeats} {name}: {runs[name][-1]}")
                if label.startswith("prune") and label not in checks:
                    same = subprocess.run([sys.executable, "-c", SAME, str(ours), str(theirs)], capture_output=True,
                                          text=True, check=True, env=child_env(1))
                    checks[label] = json.loads(same.stdout)
    record = run.finish()
    res = {name: medians(rs) for name, rs in runs.items()}
    torch_rss = res[TORCH_IMPORT]["rss_mb"]
    rss_limit = 1.5 * torch_rss + 4 * largest_mb
    rows = [[TORCH_IMPORT, fmt(res[TORCH_IMPORT]["s"], 2), fmt(res[TORCH_IMPORT]["cpu"], 2),
             f"{torch_rss:.0f}", "-", "-", "-", "-"]]
    verdicts = []
    for label, _, base, _, target in pairs:
        a, b = res[label], res[base]
        cpu_ratio, wall_ratio = a["cpu"] / b["cpu"], a["s"] / b["s"]
        ok = cpu_ratio <= target
        rows.append([f"`dnnkit {label}`", fmt(a["s"], 2), fmt(a["cpu"], 2), f"{a['rss_mb']:.0f}",
                     f"**{cpu_ratio:.2f}x**", f"{wall_ratio:.2f}x", f"<= {target}x: {mark(ok)}",
                     f"{a['rss_mb'] / b['rss_mb']:.2f}x"])
        rows.append([f"`{base}`", fmt(b["s"], 2), fmt(b["cpu"], 2), f"{b['rss_mb']:.0f}", "-", "-", "-", "-"])
        verdicts.append((label, ok))
    rss_rows = []
    for label, *_ in pairs:
        if label.startswith("prune"):
            r = res[label]["rss_mb"]
            rss_rows.append([f"`dnnkit {label}`", f"{r:.0f}", f"{r - torch_rss:+.0f}", f"{rss_limit:.0f}",
                             mark(r <= rss_limit)])
    check_lines = [f"- `{label}`: {c['tensors']} tensors, {c['zeros']:,} zeros, "
                   f"{'**bit-identical** to' if c['identical'] else '**DIFFERENT** from'} the baseline's output"
                   for label, c in checks.items()]
    met = sum(ok for _, ok in verdicts)
    return [
        STREAM_HEADING, "",
        f"Run: `{run_command(args)}`; {machine_note(record)}.",
        "The machine was shared with other jobs, so the load average above is the one to keep in mind: CPU times",
        "(user + system, from `os.wait4`) are the steadier figures and the verdicts use them; wall ratios are",
        "shown beside them.",
        f"File: a bare safetensors file of {args.stream_tensors} fp32 tensors of {args.stream_dim}x{args.stream_dim}"
        f" ({size_mb:.0f} MB, normal values, seed 0) on /tmp (disk, page-cached after it is written).",
        f"Each figure is the median of {args.repeats} runs; every command is a fresh process measured end to end",
        "(interpreter start, imports, reading, writing), dnnkit with `--threads 1`, everything with",
        "`OMP_NUM_THREADS=1`, dnnkit and its baseline back to back in alternating order within each repeat.",
        f"Prune ratio {RATIO}. The baselines import no dnnkit: `benchmarks/baseline_stream_prune.py` (safe_open, an",
        "exact radix-selected global threshold, kthvalue masks, a hand-written output) and",
        "`benchmarks/baseline_stats.py` (one plain torch pass per tensor: zeros, L2, min, max, NaN, Inf; dnnkit's",
        "`--stats` also computes L1 and prints the report).", "",
        table(["command", "wall (s)", "CPU (s)", "peak RSS (MB)", "CPU / baseline", "wall / baseline", "target (CPU)",
               "RSS / baseline"], rows),
        "",
        f"Time targets met: {met} of {len(verdicts)}.", "",
        "Outputs, checked after the first repeat (every tensor compared byte for byte):", "",
        *check_lines, "",
        f"Peak RSS of a streamed prune against the target 1.5 x the RSS of `import torch` ({torch_rss:.0f} MB)",
        f"+ 4 x the largest tensor ({largest_mb:.0f} MB) = {rss_limit:.0f} MB:", "",
        table(["command", "peak RSS (MB)", "over `import torch` (MB)", "target (MB)", "verdict"], rss_rows),
        "",
        "Peak RSS is `ru_maxrss` of the command (a small runner without torch starts it, so no parent's peak is",
        "inherited). The global and LAMP rows once peaked far above the uniform one (1.0 GB against 327 MB in",
        "issue 19's figures): their radix selection kept each tensor's small in-bucket tallies as new tensors",
        "allocated inside the loop, which sat above the freed per-tensor temporaries on the malloc heap, so",
        "the heap could not shrink and grew by a few MB per tensor. The tallies now go into buffers allocated",
        "before the loop (`dnnkit/surgery/prune/select.py`); the counts, hence the outputs, are unchanged.",
        "",
    ]


def threads_section(args) -> list[str]:
    """`--threads 1` against `--threads 2` for an eval and a streamed prune, interleaved in one run."""
    run = Run(threads=1)
    cases = [("eval zoo:digits-cnn --data digits", [*DNNKIT, "eval", "zoo:digits-cnn", "--data", "digits"])]
    runs: dict[tuple[str, int], list[dict]] = {}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        path, out = Path(tmp) / "stream.safetensors", Path(tmp) / "out.safetensors"
        make_stream_file(path, args.stream_tensors, args.stream_dim)
        cases.append(("prune FILE --method global", fill(PAIRS[0][1], path, out)))
        size_mb = path.stat().st_size / 1e6
        measure([*cases[0][1], "--threads", "1"])  # warm-up: the zoo model is trained and cached on first use
        for rep in range(args.repeats):
            for label, cmd in cases:
                for n in (1, 2) if rep % 2 == 0 else (2, 1):
                    runs.setdefault((label, n), []).append(measure([*cmd, "--threads", str(n)], threads=n))
                    log(f"threads {rep + 1}/{args.repeats} {label} --threads {n}: {runs[(label, n)][-1]}")
    record = run.finish()
    res = {k: medians(v) for k, v in runs.items()}
    rows = []
    for label, _ in cases:
        one, two = res[(label, 1)], res[(label, 2)]
        rows.append([f"`dnnkit {label}`", fmt(one["s"], 2), fmt(two["s"], 2), f"{two['s'] / one['s']:.2f}x",
                     fmt(one["cpu"], 2), fmt(two["cpu"], 2), f"{one['rss_mb']:.0f} / {two['rss_mb']:.0f}"])
    return [
        THREADS_HEADING, "",
        f"Run: `{run_command(args)}`; {machine_note(record)}.",
        f"FILE is the bare file of the section above ({args.stream_tensors} tensors of {args.stream_dim}x"
        f"{args.stream_dim}, {size_mb:.0f} MB); ratio {RATIO}. Each figure is the median of {args.repeats} fresh",
        "processes, end to end, the two thread counts back to back in alternating order. On a machine shared",
        "with other jobs a second thread competes with them: read these as this machine's figures, not a rule.",
        "",
        table(["command", "wall, 1 thread (s)", "wall, 2 threads (s)", "2 / 1 (wall)", "CPU, 1 (s)", "CPU, 2 (s)",
               "peak RSS 1 / 2 (MB)"], rows),
        "",
    ]


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--gigabytes", type=float, default=1.0, help="size of the `io` section's file")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    ap.add_argument("--stream-tensors", type=int, default=128, help="tensors in the `stream`/`threads` file")
    ap.add_argument("--stream-dim", type=int, default=1024, help="each tensor is DIM x DIM fp32")
    ap.add_argument("--stream-only", default="", help="only the pairs whose label contains one of these words")
    ap.add_argument("--tmp", default="/tmp", help="where the test files go (a disk, not /dev/shm)")
    ap.add_argument("--out", default=str(DOCS / "io.md"))
    args = ap.parse_args()
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown section(s) {', '.join(sorted(unknown))}")
    page = Page.read(args.out)
    if "io" in sections:
        page.preamble = io_section(args).rstrip("\n").split("\n") + [""]
    if "stream" in sections:
        page.set(STREAM_HEADING, stream_section(args), before=THREADS_HEADING)
    if "threads" in sections:
        page.set(THREADS_HEADING, threads_section(args))
    print(page.write(args.out))


if __name__ == "__main__":
    main()
