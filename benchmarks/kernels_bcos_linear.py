"""GPU timing of the fused `bcos_linear` Triton kernel against the PyTorch reference.

On a CUDA machine: checks the kernel against the reference (forward and backward), then prints a
Markdown table of forward and forward+backward times and peak memory for ViT-like shapes, B = 2.
Without CUDA it prints a note and exits 0 (the lead runs all kernel benchmarks in one GPU session).

    python benchmarks/kernels_bcos_linear.py [--out FILE.md]
"""

from __future__ import annotations

from harness import cuda_device, cuda_ms, cuda_peak_mib, header, parser, row, write_page

SHAPES = [  # (tokens M, in K, out N): ViT-Ti/S/B MLP and projection layers at batch 64 x 197 tokens
    (64 * 197, 192, 768),
    (64 * 197, 384, 1536),
    (64 * 197, 768, 3072),
    (64 * 197, 3072, 768),
    (4096, 4096, 4096),
]
REPEATS, WARMUP = 20, 3  # timed calls (one CUDA-event pair around all of them), untimed warm-up calls


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--out", help="also write the table to this Markdown file")
    args = ap.parse_args()
    device = cuda_device()
    if device is None:
        print("no CUDA device: bcos_linear kernel benchmark skipped (run on a GPU machine)")
        return 0
    import torch

    from dnnkit.kernels.bcos_linear import bcos_linear_torch, bcos_linear_triton

    def timed(fn) -> float:
        return cuda_ms(fn, REPEATS, WARMUP, each=False)

    lines = [f"device: {device}", "",
             *header(["dtype", "M x K -> N", "fwd torch ms", "fwd triton ms", "speed-up", "fwd+bwd torch ms",
                      "fwd+bwd triton ms", "speed-up", "fwd peak MiB torch / triton", "max rel err"])]
    print("\n".join(lines), flush=True)
    ok = True
    dev = torch.device("cuda")
    for dtype in (torch.float16, torch.float32):
        for m, k, n in SHAPES:
            torch.manual_seed(0)
            x = torch.randn(m, k, device=dev, dtype=dtype, requires_grad=True)
            w = (torch.randn(n, k, device=dev) / k ** 0.5).to(dtype).requires_grad_(True)
            with torch.no_grad():
                ref = bcos_linear_torch(x.float(), w.float(), 2.0)
                got = bcos_linear_triton(x, w, 2.0).float()
            err = float((got - ref).abs().max() / ref.abs().max())
            g = torch.randn(m, n, device=dev, dtype=dtype)
            gr = torch.autograd.grad(bcos_linear_torch(x, w, 2.0), (x, w), g)
            gt = torch.autograd.grad(bcos_linear_triton(x, w, 2.0), (x, w), g)
            gerr = max(float((a.float() - b.float()).abs().max() / b.float().abs().max())
                       for a, b in zip(gt, gr, strict=True))
            tol = 2e-2 if dtype == torch.float16 else 1e-3
            ok &= err < tol and gerr < tol
            with torch.no_grad():
                f_t = timed(lambda x=x, w=w: bcos_linear_torch(x, w, 2.0))
                f_k = timed(lambda x=x, w=w: bcos_linear_triton(x, w, 2.0))
                p_t = cuda_peak_mib(lambda x=x, w=w: bcos_linear_torch(x, w, 2.0))
                p_k = cuda_peak_mib(lambda x=x, w=w: bcos_linear_triton(x, w, 2.0))
            b_t = timed(lambda x=x, w=w, g=g: torch.autograd.grad(bcos_linear_torch(x, w, 2.0), (x, w), g))
            b_k = timed(lambda x=x, w=w, g=g: torch.autograd.grad(bcos_linear_triton(x, w, 2.0), (x, w), g))
            name = str(dtype).replace("torch.", "")
            lines.append(row([name, f"{m} x {k} -> {n}", f"{f_t:.3f}", f"{f_k:.3f}", f"{f_t / f_k:.2f}x",
                              f"{b_t:.3f}", f"{b_k:.3f}", f"{b_t / b_k:.2f}x", f"{p_t:.0f} / {p_k:.0f}",
                              f"{max(err, gerr):.1e}"]))
            print(lines[-1], flush=True)
    lines += ["", "kernel matches the reference" if ok else "MISMATCH: kernel differs from the reference"]
    print(lines[-1])
    if args.out:
        write_page(args.out, "\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
