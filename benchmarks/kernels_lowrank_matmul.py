"""GPU timing of the fused low-rank matmul kernel (`lowrank_linear`) against the PyTorch reference.

On a CUDA machine: checks the Triton kernel against the reference on every shape, then prints a
Markdown table of median times (torch: two F.linear calls; triton: one launch) and peak memory.
Without CUDA it prints a note and exits 0. Run: `python benchmarks/kernels_lowrank_matmul.py [--out FILE.md]`.
"""

from __future__ import annotations

from functools import partial

from harness import cuda_device, cuda_peak_mib, header, parser, row, write_page

SHAPES = [  # (rows, n_in, n_out, rank): MiniLM FFN, SmolLM2 FFN / attention, a CNN-head-sized case
    (4096, 384, 1536, 64), (4096, 1536, 384, 64), (8192, 576, 1536, 128), (8192, 576, 576, 144),
    (16384, 384, 1536, 32), (2048, 4096, 4096, 256),
]


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--out", help="also write the table to this Markdown file")
    args = ap.parse_args()
    device = cuda_device()
    if device is None:
        print("no CUDA device: the lowrank_linear kernel benchmark needs a GPU (nothing measured)")
        return 0
    import torch
    from triton.testing import do_bench  # Triton's own median timer (it flushes the L2 cache between calls)

    from dnnkit.kernels.lowrank_matmul import lowrank_linear_torch, lowrank_linear_triton

    lines = [f"device: {device}", "",
             *header(["rows x n_in -> n_out, rank", "dtype", "max rel err", "torch ms", "triton ms", "speed-up",
                      "torch peak MiB", "triton peak MiB"])]
    print("\n".join(lines), flush=True)
    ok = True
    for rows, n, m, r in SHAPES:
        for dtype in (torch.float16, torch.float32):
            g = torch.Generator(device="cuda").manual_seed(0)
            x = torch.randn(rows, n, device="cuda", generator=g).to(dtype)
            down = (torch.randn(r, n, device="cuda", generator=g) / n ** 0.5).to(dtype)
            up = (torch.randn(m, r, device="cuda", generator=g) / r ** 0.5).to(dtype)
            bias = torch.randn(m, device="cuda", generator=g).to(dtype)
            want = lowrank_linear_torch(x.float(), down.float(), up.float(), bias.float())
            got = lowrank_linear_triton(x, down, up, bias).float()
            err = float((got - want).abs().max() / want.abs().max())
            ok &= err < (2e-2 if dtype == torch.float16 else 1e-3)
            calls = [partial(fn, x, down, up, bias) for fn in (lowrank_linear_torch, lowrank_linear_triton)]
            peaks = [cuda_peak_mib(call) for call in calls]
            t_torch, t_triton = (do_bench(call) for call in calls)
            lines.append(row([f"{rows} x {n} -> {m}, {r}", str(dtype).replace("torch.", ""), f"{err:.2e}",
                              f"{t_torch:.4f}", f"{t_triton:.4f}", f"{t_torch / t_triton:.2f}x", f"{peaks[0]:.1f}",
                              f"{peaks[1]:.1f}"]))
            print(lines[-1], flush=True)
    lines.append("kernel matches the reference on every shape" if ok else
                 "MISMATCH: the kernel differs from the reference")
    print(lines[-1])
    if args.out:
        write_page(args.out, "\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
