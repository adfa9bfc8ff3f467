"""GPU check and timing of the `tversky_similarity` op: Triton kernel vs chunked PyTorch reference vs naive broadcast.

On a CUDA machine: checks the kernel against the reference (values and gradients) on every intersection x
difference variant, then prints a Markdown table of forward+backward times and peak GPU memory for the
naive n x p x K broadcast, the chunked reference and the Triton kernel. Without CUDA it prints a note and
exits 0. Run: `python benchmarks/kernels_tversky_similarity.py [--out docs/benchmarks/kernels_tversky_similarity.md]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dnnkit.kernels.tversky_similarity import (  # noqa: E402
    DIFFERENCES,
    INTERSECTIONS,
    tversky_similarity_naive,
    tversky_similarity_torch,
    tversky_similarity_triton,
)

SHAPES = [(256, 10, 64), (256, 1000, 256), (256, 1000, 1024), (64, 10000, 1024), (4096, 259, 64)]
VARIANTS = [("product", "ignorematch"), ("product", "substractmatch"), ("min", "substractmatch")]
IMPLS = {"naive": tversky_similarity_naive, "torch": tversky_similarity_torch, "triton": tversky_similarity_triton}


def run(fn, ma: torch.Tensor, mb: torch.Tensor, inter: str, diff: str) -> list[torch.Tensor]:
    a, b = ma.clone().requires_grad_(True), mb.clone().requires_grad_(True)
    s = fn(a, b, 0.4, 0.6, 1.1, inter, diff, "contrast")
    s.backward(torch.ones_like(s))
    return [s.detach(), a.grad, b.grad]


def check(device: str) -> list[str]:
    failures = []
    g = torch.Generator(device="cpu").manual_seed(0)
    ma, mb = torch.randn(77, 45, generator=g).to(device), torch.randn(53, 45, generator=g).to(device)
    for inter in INTERSECTIONS:
        for diff in DIFFERENCES:
            want = run(tversky_similarity_torch, ma, mb, inter, diff)
            got = run(tversky_similarity_triton, ma, mb, inter, diff)
            for name, w, o in zip(("S", "dM_a", "dM_b"), want, got, strict=True):
                if not torch.allclose(o, w, atol=1e-3, rtol=1e-3):
                    failures.append(f"{inter}/{diff} {name}: max diff {(o - w).abs().max().item():.3g}")
    return failures


def measure(fn, ma: torch.Tensor, mb: torch.Tensor, inter: str, diff: str, repeats: int = 10) -> tuple[float, float]:
    """(median ms of forward+backward, peak MiB above the inputs)."""
    run(fn, ma, mb, inter, diff)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    run(fn, ma, mb, inter, diff)
    torch.cuda.synchronize()
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run(fn, ma, mb, inter, diff)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2], peak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="also write the table to this Markdown file")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("note: no CUDA device; the tversky_similarity kernel benchmark needs a GPU (CPU tests run the kernel "
              "under TRITON_INTERPRET=1). Nothing measured.")
        return 0
    device = "cuda"
    failures = check(device)
    lines = [f"# tversky_similarity kernel on {torch.cuda.get_device_name()}",
             f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='minutes')}, torch {torch.__version__}",
             "", "Correctness (Triton vs reference, values and gradients, every intersection x difference): "
             + ("all match" if not failures else "MISMATCH: " + "; ".join(failures)), "",
             "| (n, p, K) | variant | naive ms | torch ms | triton ms | naive MiB | torch MiB | triton MiB | "
             "triton/naive memory |", "|" + " --- |" * 9]
    g = torch.Generator(device="cpu").manual_seed(1)
    for n, p, k in SHAPES:
        ma, mb = torch.randn(n, k, generator=g).to(device), torch.randn(p, k, generator=g).to(device)
        for inter, diff in VARIANTS:
            cells = {}
            for name, fn in IMPLS.items():
                try:
                    cells[name] = measure(fn, ma, mb, inter, diff)
                except torch.OutOfMemoryError:
                    torch.cuda.empty_cache()
                    cells[name] = (float("nan"), float("nan"))
            ratio = cells["triton"][1] / cells["naive"][1] if cells["naive"][1] == cells["naive"][1] else float("nan")
            lines.append(f"| ({n}, {p}, {k}) | {inter} + {diff} | " + " | ".join(f"{cells[i][0]:.2f}" for i in IMPLS)
                         + " | " + " | ".join(f"{cells[i][1]:.0f}" for i in IMPLS) + f" | {ratio:.3f} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
