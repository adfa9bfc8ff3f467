"""GPU timing of the `hamming_distance` kernel op: Triton kernel vs the torch reference (run on a CUDA machine).

Checks the kernel against the reference on every shape, then prints a Markdown table of times and
peak memory. Without CUDA (or Triton) it prints a note and exits 0.

Usage: python benchmarks/kernels_hamming_distance.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = [  # (queries, training codes, bits)
    (2000, 10000, 260),
    (10000, 10000, 260),
    (10000, 60000, 1024),
    (4096, 4096, 24000),
]


def main() -> int:
    import torch

    from dnnkit.kernels.dispatch import triton_available
    from dnnkit.kernels.hamming_distance import hamming_distance_torch, hamming_distance_triton

    if not torch.cuda.is_available() or not triton_available():
        print("no CUDA device or no Triton: nothing to time (the kernel is tested on CPU under TRITON_INTERPRET=1)")
        return 0
    dev = "cuda"
    gen = torch.Generator(device=dev).manual_seed(0)
    print(f"device: {torch.cuda.get_device_name()}\n")
    print("| queries x train x bits | torch ms | triton ms | speed-up | torch peak MiB | triton peak MiB | equal |")
    print("|---|---|---|---|---|---|---|")
    for m, n, bits in SHAPES:
        w = (bits + 7) // 8
        a = torch.randint(0, 256, (m, w), dtype=torch.uint8, device=dev, generator=gen)
        b = torch.randint(0, 256, (n, w), dtype=torch.uint8, device=dev, generator=gen)
        row = []
        outs = []
        for fn in (hamming_distance_torch, hamming_distance_triton):
            fn(a[:8], b[:8])
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            reps = 3
            start.record()
            for _ in range(reps):
                out = fn(a, b)
            end.record()
            torch.cuda.synchronize()
            row.append((start.elapsed_time(end) / reps, (torch.cuda.max_memory_allocated() - base) / 2**20))
            outs.append(out)
        equal = bool(torch.equal(outs[0], outs[1]))
        (tt, tm), (kt, km) = row
        print(f"| {m} x {n} x {bits} | {tt:.2f} | {kt:.2f} | {tt / kt:.1f}x | {tm:.0f} | {km:.0f} | {equal} |")
        if not equal:
            print("error: the Triton kernel disagrees with the reference", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
