"""GPU check of the `tensor_stats` op: Triton kernel vs the PyTorch reference (agreement and time).

Prints a Markdown table; on a machine without CUDA it says so and exits 0.
Run: `python benchmarks/kernels_tensor_stats.py [--out FILE.md]`.
"""

from __future__ import annotations

from harness import cuda_device, cuda_ms, header, parser, row, write_page

REPEATS, WARMUP = 20, 3  # median of single timed calls (CUDA events) after untimed warm-up calls


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--out", help="also write the table to this Markdown file")
    args = ap.parse_args()
    device = cuda_device()
    if device is None:
        print("tensor_stats: no CUDA device; nothing to time")
        return 0
    import torch

    from dnnkit.kernels.tensor_stats import tensor_stats_torch, tensor_stats_triton

    lines = [f"### tensor_stats on {device}", "",
             *header(["dtype", "elements", "torch ref (ms)", "triton (ms)", "speed-up", "GB/s (triton)", "agree"])]
    print("\n".join(lines), flush=True)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        for n in (1 << 20, 1 << 24, 1 << 28):
            t = torch.randn(n, device="cuda", dtype=dtype)
            t[::97] = 0
            ref, tri = tensor_stats_torch(t), tensor_stats_triton(t)
            agree = (ref.zeros == tri.zeros and ref.nan == tri.nan and ref.inf == tri.inf and ref.min == tri.min
                     and ref.max == tri.max and abs(ref.l2 - tri.l2) <= 1e-6 * ref.l2)
            t_ref = cuda_ms(lambda t=t: tensor_stats_torch(t), REPEATS, WARMUP)
            t_tri = cuda_ms(lambda t=t: tensor_stats_triton(t), REPEATS, WARMUP)
            gbs = n * t.element_size() / (t_tri * 1e-3) / 1e9
            lines.append(row([str(dtype).replace("torch.", ""), f"{n:,}", f"{t_ref:.3f}", f"{t_tri:.3f}",
                              f"{t_ref / t_tri:.1f}x", f"{gbs:.0f}", agree]))
            print(lines[-1], flush=True)
            del t
    if args.out:
        write_page(args.out, "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
