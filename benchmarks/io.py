"""I/O benchmark: `inspect` on a large safetensors file vs the safetensors library's own header read,
dnnkit's validated load vs `safetensors.torch.load_file`, and `dnnkit --help` start-up.

Each measurement runs in a fresh subprocess (wall time of the operation inside it, and the
process's peak RSS), repeated; the table reports medians. Run: `.venv/bin/python benchmarks/io.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import DOCS, Run, Timer, Timing, fmt, machine_note, median, parser, table, write_page

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


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--gigabytes", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(DOCS / "io.md"))
    args = ap.parse_args()
    run = Run()
    with tempfile.TemporaryDirectory() as tmp:
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
    print(write_page(args.out, text))


if __name__ == "__main__":
    main()
