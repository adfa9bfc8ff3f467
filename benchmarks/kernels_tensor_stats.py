"""GPU check of the `tensor_stats` op: Triton kernel vs the PyTorch reference (agreement and time).

Prints a Markdown table; on a machine without CUDA it says so and exits 0.
Run: `python benchmarks/kernels_tensor_stats.py`.
"""

from __future__ import annotations

import torch

from dnnkit.kernels.tensor_stats import tensor_stats_torch, tensor_stats_triton


def bench(fn, t: torch.Tensor, repeats: int = 20) -> float:
    """Median milliseconds of fn(t) with CUDA events."""
    for _ in range(3):
        fn(t)
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(t)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def main() -> None:
    if not torch.cuda.is_available():
        print("tensor_stats: no CUDA device; nothing to time")
        return
    print(f"### tensor_stats on {torch.cuda.get_device_name()}\n")
    print("| dtype | elements | torch ref (ms) | triton (ms) | speed-up | GB/s (triton) | agree |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        for n in (1 << 20, 1 << 24, 1 << 28):
            t = torch.randn(n, device="cuda", dtype=dtype)
            t[::97] = 0
            ref, tri = tensor_stats_torch(t), tensor_stats_triton(t)
            agree = (ref.zeros == tri.zeros and ref.nan == tri.nan and ref.inf == tri.inf and ref.min == tri.min
                     and ref.max == tri.max and abs(ref.l2 - tri.l2) <= 1e-6 * ref.l2)
            t_ref, t_tri = bench(tensor_stats_torch, t), bench(tensor_stats_triton, t)
            gbs = n * t.element_size() / (t_tri * 1e-3) / 1e9
            print(f"| {str(dtype).replace('torch.', '')} | {n:,} | {t_ref:.3f} | {t_tri:.3f} | {t_ref / t_tri:.1f}x | "
                  f"{gbs:.0f} | {agree} |")
            del t


if __name__ == "__main__":
    main()
