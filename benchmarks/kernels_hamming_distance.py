"""GPU timing of the `hamming_distance` kernel op: Triton kernel vs the torch reference (run on a CUDA machine).

Checks the kernel against the reference on every shape, then prints a Markdown table of times and
peak memory. Without CUDA (or Triton) it prints a note and exits 0.

Usage: python benchmarks/kernels_hamming_distance.py [--out FILE.md]
"""

from __future__ import annotations

import sys
from functools import partial

from harness import cuda_device, cuda_ms, cuda_peak_mib, header, parser, row, write_page

SHAPES = [  # (queries, training codes, bits)
    (2000, 10000, 260),
    (10000, 10000, 260),
    (10000, 60000, 1024),
    (4096, 4096, 24000),
]
REPEATS = 3  # timed calls per shape and implementation (one CUDA-event pair around them)


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--out", help="also write the table to this Markdown file")
    args = ap.parse_args()
    import torch

    from dnnkit.kernels.dispatch import triton_available
    from dnnkit.kernels.hamming_distance import hamming_distance_torch, hamming_distance_triton

    device = cuda_device()
    if device is None or not triton_available():
        print("no CUDA device or no Triton: nothing to time (the kernel is tested on CPU under TRITON_INTERPRET=1)")
        return 0
    dev = "cuda"
    gen = torch.Generator(device=dev).manual_seed(0)
    lines = [f"device: {device}", "", *header(["queries x train x bits", "torch ms", "triton ms", "speed-up",
                                               "torch peak MiB", "triton peak MiB", "equal"])]
    print("\n".join(lines), flush=True)
    for m, n, bits in SHAPES:
        w = (bits + 7) // 8
        a = torch.randint(0, 256, (m, w), dtype=torch.uint8, device=dev, generator=gen)
        b = torch.randint(0, 256, (n, w), dtype=torch.uint8, device=dev, generator=gen)
        cells, outs = [], []
        for fn in (hamming_distance_torch, hamming_distance_triton):
            fn(a[:8], b[:8])  # compile / warm up on a small slice
            call = partial(fn, a, b)
            cells.append((cuda_ms(call, REPEATS, 0, each=False), cuda_peak_mib(call)))
            outs.append(call())
        equal = bool(torch.equal(outs[0], outs[1]))
        (tt, tm), (kt, km) = cells
        lines.append(row([f"{m} x {n} x {bits}", f"{tt:.2f}", f"{kt:.2f}", f"{tt / kt:.1f}x", f"{tm:.0f}", f"{km:.0f}",
                          equal]))
        print(lines[-1], flush=True)
        if not equal:
            print("error: the Triton kernel disagrees with the reference", file=sys.stderr)
            return 1
    if args.out:
        write_page(args.out, "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
