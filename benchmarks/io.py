"""I/O benchmark: `inspect` on a large safetensors file vs the safetensors library's own header read,
dnnkit's validated load vs `safetensors.torch.load_file`, and `dnnkit --help` start-up.

Each measurement runs in a fresh subprocess (wall time of the operation inside it, and the
process's peak RSS), repeated; the table reports medians. Run: `.venv/bin/python benchmarks/io.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_note, table, write_doc  # noqa: E402

SNIPPETS = {
    "baseline: python + import torch": "import torch\n",
    "safetensors safe_open: keys + shapes": (
        "import torch\nfrom safetensors import safe_open\n"
        "t, c = time.perf_counter(), time.process_time()\n"
        "with safe_open(PATH, framework='pt') as f:\n"
        "    shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}\n"
        "elapsed, cpu = time.perf_counter() - t, time.process_time() - c\n"),
    "dnnkit describe (= inspect, header-only)": (
        "from dnnkit.models.describe import describe\n"
        "t, c = time.perf_counter(), time.process_time()\n"
        "r = describe(PATH)\n"
        "elapsed, cpu = time.perf_counter() - t, time.process_time() - c\n"),
    "safetensors.torch.load_file": (
        "from safetensors.torch import load_file\n"
        "t, c = time.perf_counter(), time.process_time()\n"
        "d = load_file(PATH)\n"
        "s = sum(float(v.sum()) for v in d.values())\n"
        "elapsed, cpu = time.perf_counter() - t, time.process_time() - c\n"),
    "dnnkit load_tensors (validated)": (
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
    times, base = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dnnkit", "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], capture_output=True, check=True)
        base.append(time.perf_counter() - t)
    return statistics.median(times), statistics.median(base)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gigabytes", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "large.safetensors"
        make_file(path, args.gigabytes)
        size_mb = path.stat().st_size / 1e6
        rows = []
        runs: dict[str, list[dict]] = {name: [] for name in SNIPPETS}
        for _ in range(args.repeats):  # interleaved, so load on the machine hits every row alike
            for name, body in SNIPPETS.items():
                runs[name].append(run_snippet(body, path))
        results = {name: (statistics.median(r["s"] for r in rs), statistics.median(r["cpu"] for r in rs),
                          statistics.median(r["rss_mb"] for r in rs)) for name, rs in runs.items()}
        base_rss = results["baseline: python + import torch"][2]
        for name, (secs, cpu, rss) in results.items():
            if name.startswith("baseline"):
                rows.append([name, "-", "-", f"{rss:.0f}", "-"])
            else:
                rows.append([name, f"{secs * 1000:.1f}", f"{cpu * 1000:.1f}", f"{rss:.0f}", f"{rss - base_rss:+.0f}"])
    help_s, py_s = help_time(max(3, args.repeats))
    def cpu(name: str) -> float:
        return results[name][1]

    ratio_inspect = cpu("dnnkit describe (= inspect, header-only)") / cpu("safetensors safe_open: keys + shapes")
    ratio_load = cpu("dnnkit load_tensors (validated)") / cpu("safetensors.torch.load_file")
    text = f"""# I/O benchmark

`benchmarks/io.py` (run: `.venv/bin/python benchmarks/io.py --gigabytes {args.gigabytes} --repeats {args.repeats}`),
{machine_note()}. Each row is the median of {args.repeats} fresh subprocesses, run interleaved; wall
and CPU time are the operation's alone inside the process (imports done before), peak RSS (VmHWM) is
the whole process; the baseline row is Python plus `import torch` (dnnkit's header-only path never
imports torch, hence its row below the baseline; every other row imports torch before its timer
starts). Load average on the 2 cores at the start of the run: {load:.1f}; wall times are noisy on a
shared machine, CPU times and memory are the figures to read.
File: {size_mb:.0f} MB of fp32 tensors ({int(args.gigabytes * 1024)} tensors of 512x512).

{table(["operation", "wall (ms)", "CPU (ms)", "peak RSS (MB)", "RSS over baseline (MB)"], rows)}

- `inspect` (header-only) / safetensors' own header read: **{ratio_inspect:.3f}x** the CPU time. It reads
  no tensor data and never imports torch, so its memory stays flat however large the file is.
- dnnkit's validated load / `safetensors.torch.load_file`: **{ratio_load:.2f}x** the CPU time (both read
  and sum every tensor; dnnkit validates the header first, a few milliseconds).
- `dnnkit --help`: **{help_s * 1000:.0f} ms** wall (median), against {py_s * 1000:.0f} ms for `python -c pass`;
  it imports neither torch nor rich (a test checks this).

Times on this shared 2-core machine vary between runs; compare ratios within one run.
"""
    print(write_doc("io", text))


if __name__ == "__main__":
    main()
