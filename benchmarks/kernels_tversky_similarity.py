"""GPU check and timing of the `tversky_similarity` op: Triton kernel vs chunked PyTorch reference vs naive broadcast.

On a CUDA machine: checks the kernel against the reference (values and gradients) on every intersection x
difference variant, then prints a Markdown table of forward+backward times and peak GPU memory for the
naive n x p x K broadcast, the chunked reference and the Triton kernel. Without CUDA it prints a note and
exits 0. Run: `python benchmarks/kernels_tversky_similarity.py [--out docs/benchmarks/kernels_tversky_similarity.md]`.
"""

from __future__ import annotations

from functools import partial

from harness import cuda_device, cuda_ms, cuda_peak_mib, header, now_utc, parser, row, write_page

SHAPES = [(256, 10, 64), (256, 1000, 256), (256, 1000, 1024), (64, 10000, 1024), (4096, 259, 64)]
VARIANTS = [("product", "ignorematch"), ("product", "substractmatch"), ("min", "substractmatch")]
REPEATS = 10  # median of single timed forward+backward passes (CUDA events), after one warm-up and the peak pass


def run(fn, ma, mb, inter: str, diff: str) -> list:
    import torch

    a, b = ma.clone().requires_grad_(True), mb.clone().requires_grad_(True)
    s = fn(a, b, 0.4, 0.6, 1.1, inter, diff, "contrast")
    s.backward(torch.ones_like(s))
    return [s.detach(), a.grad, b.grad]


def check(device: str) -> list[str]:
    import torch

    from dnnkit.kernels.tversky_similarity import (
        DIFFERENCES,
        INTERSECTIONS,
        tversky_similarity_torch,
        tversky_similarity_triton,
    )

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


def measure(fn, ma, mb, inter: str, diff: str) -> tuple[float, float]:
    """(median ms of forward+backward, peak MiB above the inputs)."""
    call = partial(run, fn, ma, mb, inter, diff)
    call()  # warm-up
    peak = cuda_peak_mib(call)
    return cuda_ms(call, REPEATS, 0), peak


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--out", help="also write the table to this Markdown file")
    args = ap.parse_args()
    if cuda_device() is None:
        print("note: no CUDA device; the tversky_similarity kernel benchmark needs a GPU (CPU tests run the kernel "
              "under TRITON_INTERPRET=1). Nothing measured.")
        return 0
    import torch

    from dnnkit.kernels.tversky_similarity import (
        tversky_similarity_naive,
        tversky_similarity_torch,
        tversky_similarity_triton,
    )

    impls = {"naive": tversky_similarity_naive, "torch": tversky_similarity_torch, "triton": tversky_similarity_triton}
    device = "cuda"
    failures = check(device)
    lines = [f"# tversky_similarity kernel on {torch.cuda.get_device_name()}",
             f"{now_utc()}, torch {torch.__version__}", "",
             "Correctness (Triton vs reference, values and gradients, every intersection x difference): "
             + ("all match" if not failures else "MISMATCH: " + "; ".join(failures)), "",
             *header(["(n, p, K)", "variant", "naive ms", "torch ms", "triton ms", "naive MiB", "torch MiB",
                      "triton MiB", "triton/naive memory"])]
    g = torch.Generator(device="cpu").manual_seed(1)
    for n, p, k in SHAPES:
        ma, mb = torch.randn(n, k, generator=g).to(device), torch.randn(p, k, generator=g).to(device)
        for inter, diff in VARIANTS:
            cells = {}
            for name, fn in impls.items():
                try:
                    cells[name] = measure(fn, ma, mb, inter, diff)
                except torch.OutOfMemoryError:
                    torch.cuda.empty_cache()
                    cells[name] = (float("nan"), float("nan"))
            ratio = cells["triton"][1] / cells["naive"][1] if cells["naive"][1] == cells["naive"][1] else float("nan")
            lines.append(row([f"({n}, {p}, {k})", f"{inter} + {diff}", *(f"{cells[i][0]:.2f}" for i in impls),
                              *(f"{cells[i][1]:.0f}" for i in impls), f"{ratio:.3f}"]))
            print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    if args.out:
        write_page(args.out, text)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
