"""I/O benchmark: `inspect` on a large safetensors file vs the safetensors library's own header read,
dnnkit's validated load vs `safetensors.torch.load_file`, and `dnnkit --help` start-up.

Each measurement runs in a fresh subprocess (wall time of the operation inside it, and the
process's peak RSS), repeated; the table reports medians. Run: `.venv/bin/python benchmarks/io.py`.
"""

from __future__ import annotations

import argparse
import json
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
        "from safetensors import safe_open\n"
        "t = time.perf_counter()\n"
        "with safe_open(PATH, framework='pt') as f:\n"
        "    shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}\n"
        "elapsed = time.perf_counter() - t\n"),
    "dnnkit describe (= inspect, header-only)": (
        "from dnnkit.models.describe import describe\n"
        "t = time.perf_counter()\n"
        "r = describe(PATH)\n"
        "elapsed = time.perf_counter() - t\n"),
    "safetensors.torch.load_file": (
        "from safetensors.torch import load_file\n"
        "t = time.perf_counter()\n"
        "d = load_file(PATH)\n"
        "s = sum(float(v[0, 0]) for v in d.values())\n"
        "elapsed = time.perf_counter() - t\n"),
    "dnnkit load_tensors (validated)": (
        "from dnnkit.models.safetensors_io import load_tensors\n"
        "t = time.perf_counter()\n"
        "d = load_tensors(PATH)\n"
        "s = sum(float(v[0, 0]) for v in d.values())\n"
        "elapsed = time.perf_counter() - t\n"),
}

RUNNER = ("import resource, time, json, sys\nPATH = sys.argv[1]\nelapsed = 0.0\n{body}\n"
          "print(json.dumps({{'s': elapsed, 'rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))")


def make_file(path: Path, gigabytes: float) -> None:
    import torch
    from safetensors.torch import save_file

    n = max(1, int(gigabytes * 1024))  # tensors of 1 MiB x 1 (256k fp32)
    tensors = {f"layers.{i}.weight": torch.randn(512, 512) for i in range(n)}
    save_file(tensors, str(path))


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
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "large.safetensors"
        make_file(path, args.gigabytes)
        size_mb = path.stat().st_size / 1e6
        rows = []
        results = {}
        for name, body in SNIPPETS.items():
            runs = [run_snippet(body, path) for _ in range(args.repeats)]
            results[name] = (statistics.median(r["s"] for r in runs), statistics.median(r["rss_mb"] for r in runs))
        base_rss = results["baseline: python + import torch"][1]
        for name, (secs, rss) in results.items():
            if name.startswith("baseline"):
                rows.append([name, "-", f"{rss:.0f}", "-"])
            else:
                rows.append([name, f"{secs * 1000:.1f}", f"{rss:.0f}", f"{rss - base_rss:+.0f}"])
    help_s, py_s = help_time(max(3, args.repeats))
    ratio_inspect = results["dnnkit describe (= inspect, header-only)"][0] / results[
        "safetensors safe_open: keys + shapes"][0]
    ratio_load = results["dnnkit load_tensors (validated)"][0] / results["safetensors.torch.load_file"][0]
    text = f"""# I/O benchmark

`benchmarks/io.py` (run: `.venv/bin/python benchmarks/io.py --gigabytes {args.gigabytes} --repeats {args.repeats}`),
{machine_note()}. Each row is the median of {args.repeats} fresh subprocesses; time is the operation
inside the process, peak RSS is the whole process (the baseline row is Python plus `import torch`).
File: {size_mb:.0f} MB of fp32 tensors ({int(args.gigabytes * 1024)} tensors of 512x512).

{table(["operation", "time (ms)", "peak RSS (MB)", "RSS over baseline (MB)"], rows)}

- `inspect` (header-only) / safetensors' own header read: **{ratio_inspect:.2f}x** the time; it reads
  no tensor data, so its memory stays at the baseline however large the file is.
- dnnkit's validated load / `safetensors.torch.load_file`: **{ratio_load:.2f}x** the time (the extra is
  the header validation, which parses the header once more in Python).
- `dnnkit --help`: **{help_s * 1000:.0f} ms** wall (median), against {py_s * 1000:.0f} ms for `python -c pass`;
  it imports neither torch nor rich (a test checks this).

Times on this shared 2-core machine vary between runs; compare ratios within one run.
"""
    print(write_doc("io", text))


if __name__ == "__main__":
    main()
