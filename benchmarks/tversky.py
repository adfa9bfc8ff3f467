"""Tversky projection layers vs linear layers (spec section 5), written to docs/benchmarks/tversky.md.

Sections (each scaled to fit a shared 2-core machine; the scale is printed in the table):
1. XOR with one layer: share of seeds reaching 100% (Tversky variants, one linear layer, an MLP control).
2. Frozen CNN trunk trained on digits 0-4, new 10-class head: linear / MLP / Tversky heads, several seeds.
3. Byte-level causal LM (a Hugging Face folder): head swapped under --freeze-rest through the library swap
   (the CLI's code path): linear, Tversky, Tversky tied to the embedding; held-out perplexity, parameters.
4. Cost: forward+backward ms vs nn.Linear; peak memory (RSS, fresh subprocess) of the chunked fused op vs
   the naive n x p x K broadcast.

Run: `python benchmarks/tversky.py` (add `--quick` for a smoke run). Threads pinned to 1.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from harness import DOCS, Run, Timer, Timing, dump_json, machine_note, mark, parser, pm, table, write_page
from torch import nn

from dnnkit.nn.tversky import TverskyProjection
from dnnkit.surgery.tversky.xor import solved_share

DOC = DOCS / "tversky.md"
XOR_TARGET, XOR_TARGET_K = 0.95, 16  # the spec's target: the default layer solves XOR for >= 95 % of seeds at K = 16
MEMORY_TARGET = 0.1  # fused peak memory at most this share of the naive broadcast's
SPEC = {"xor_k": "1–32", "head_steps": 1500, "head_seeds": 5}  # the spec's protocol, where this run scales it down


# ---------------------------------------------------------------------------------------------- 1. XOR


def batched_similarity(ma: torch.Tensor, mb: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor,
                       theta: torch.Tensor, intersection: str, difference: str, reduction: str) -> torch.Tensor:
    """S for a batch of independent layers: ma (S, n, K), mb (S, p, K) -> (S, n, p); naive broadcast (tiny)."""
    from dnnkit.kernels.tversky_similarity import _diff, _psi, combine

    u, v = ma[:, :, None, :], mb[:, None, :, :]
    both = (u > 0) & (v > 0)
    sub = difference == "substractmatch"
    if reduction == "per-feature" or intersection == "product":
        inter = torch.where(both, _psi(u, v, intersection), 0.0).sum(-1)
    if reduction == "per-feature":
        d_ab, d_ba = _diff(u, v, sub).sum(-1), _diff(v, u, sub).sum(-1)
    else:
        i_a, i_b = torch.where(both, u, 0.0).sum(-1), torch.where(both, v, 0.0).sum(-1)
        if intersection != "product":
            inter = torch.where(both.any(-1), _psi(i_a, i_b, intersection), 0.0)
        d_ab, d_ba = _diff(u, v, False).sum(-1), _diff(v, u, False).sum(-1)
        if sub:
            d_ab, d_ba = d_ab + (i_a - i_b).clamp_min(0), d_ba + (i_b - i_a).clamp_min(0)
    return combine(inter, d_ab, d_ba, alpha[:, None, None], beta[:, None, None], theta[:, None, None], "contrast")


def xor_batched(seeds: int, k: int, steps: int, intersection: str = "product", difference: str = "substractmatch",
                reduction: str = "per-feature", init: str = "uniform") -> float:
    """All seeds trained in one program (Adam is per element, so summed losses train them independently)."""
    from dnnkit.surgery.tversky.xor import XOR_X, XOR_Y

    layers = [TverskyProjection(2, 2, k, intersection=intersection, difference=difference, reduction=reduction,
                                init=init, generator=torch.Generator().manual_seed(s)) for s in range(seeds)]
    omega = nn.Parameter(torch.stack([la.features.detach() for la in layers]))
    protos = nn.Parameter(torch.stack([la.prototypes.detach() for la in layers]))
    scalars = nn.Parameter(torch.tensor([[0.5, 0.5, 1.0]] * seeds))

    def forward() -> torch.Tensor:
        ma = XOR_X[None] @ omega.transpose(1, 2)
        mb = protos @ omega.transpose(1, 2)
        return batched_similarity(ma, mb, scalars[:, 0], scalars[:, 1], scalars[:, 2], intersection, difference,
                                  reduction)

    with torch.no_grad():  # the batched program computes exactly the library layer
        assert torch.allclose(forward()[0], layers[0](XOR_X), atol=1e-4)
    opt = torch.optim.Adam([omega, protos, scalars], lr=0.01)
    target = XOR_Y.repeat(seeds)
    for _ in range(steps):
        loss = nn.functional.cross_entropy(forward().reshape(-1, 2), target, reduction="sum")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float((forward().argmax(-1) == XOR_Y).all(-1).float().mean())


def bench_xor(seeds: int, ks: list[int], steps: int) -> str:
    rows = []
    variants = [
        ("product + substractmatch, per-feature (default)", dict()),
        ("product + substractmatch, aggregate", dict(reduction="aggregate")),
        ("product + ignorematch", dict(difference="ignorematch")),
        ("min + substractmatch, per-feature", dict(intersection="min")),
        ("product + substractmatch, N(0,1) init", dict(init="normal")),
    ]
    for label, kw in variants:
        with Timer() as t:
            shares = [xor_batched(seeds, k, steps, **kw) for k in ks]
        rows.append([label, *[f"{s:.2f}" for s in shares], f"{t.wall:.0f}"])
        print(rows[-1], flush=True)

    def linear(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Linear(2, 2)

    def mlp(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))

    lin = solved_share(linear, range(seeds), steps)
    rows.append(["one linear layer (6 params)", *[f"{lin:.2f}"] * len(ks), ""])
    m = solved_share(mlp, range(seeds), steps)
    rows.append(["MLP control 2-8-2 ReLU (42 params)", *[f"{m:.2f}"] * len(ks), ""])
    default = rows[0][1 + ks.index(XOR_TARGET_K)] if XOR_TARGET_K in ks else "n/a"
    verdict = mark(XOR_TARGET_K in ks and float(default) >= XOR_TARGET)
    head = (f"### 1. XOR with one layer\n\nInputs {{0,1}}², d = 2, p = 2, {seeds} seeds per cell batched in one "
            f"program, {steps} full-batch Adam steps at 0.01, summed cross-entropy, U(0,1) init unless stated, no "
            "input standardisation. Share of seeds reaching 100% accuracy (the Tversky layer has 2K + 7 "
            "parameters; the linear and MLP rows do not depend on K).\n\n")
    body = table(["layer", *[f"K = {k}" for k in ks], "seconds"], rows)
    return head + body + (f"\n\nTarget: default ≥ {XOR_TARGET:g} of seeds at K = {XOR_TARGET_K}: {verdict} "
                          f"({default}). One linear layer: {lin:.2f} (it cannot separate XOR).\n")


# ---------------------------------------------------------------------------------------------- 2. frozen trunk


def trunk() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten())


def train_head(head: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float = 1e-2) -> float:
    from dnnkit.train import TrainConfig, fit

    hist = fit(head, x, y, TrainConfig(epochs=steps, lr=lr, batch_size=len(x), seed=0))
    return hist.seconds


def bench_head(seeds: int, steps: int, k: int, trunk_epochs: int) -> str:
    from dnnkit.data import load_data
    from dnnkit.train import TrainConfig, accuracy, fit

    train, test = load_data("digits", "train"), load_data("digits", "test")
    torch.manual_seed(0)
    net = trunk()
    first = train.y < 5
    fit(nn.Sequential(net, nn.Linear(32, 5)), train.x[first], train.y[first],
        TrainConfig(epochs=trunk_epochs, lr=1e-3, batch_size=64, seed=0))
    net.eval()
    with torch.no_grad():
        f_train, f_test = net(train.x), net(test.x)
    mu, sd = f_train.mean(0), f_train.std(0, unbiased=False).clamp_min(1e-6)
    z_train, z_test = (f_train - mu) / sd, (f_test - mu) / sd

    def tversky(seed: int, **kw: object) -> nn.Module:
        return TverskyProjection(32, 10, k, generator=torch.Generator().manual_seed(seed), **kw)

    def class_means(seed: int) -> nn.Module:
        layer = tversky(seed)
        with torch.no_grad():
            layer.prototypes.copy_(torch.stack([z_train[train.y == c].mean(0) for c in range(10)]))
        return layer

    def linear(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Linear(32, 10)

    tv_params = k * 32 + 10 * 32 + 3
    hidden = -(-(tv_params - 10) // (32 + 1 + 10))

    def mlp(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(32, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    heads = [("linear", linear), (f"MLP control 32-{hidden}-10", mlp),
             ("Tversky, per-feature substractmatch, U(0,1)", tversky),
             ("Tversky, per-feature substractmatch, N(0,1)", lambda s: tversky(s, init="normal")),
             ("Tversky, U(0,1), prototypes at class means of x~", class_means),
             ("Tversky, aggregate substractmatch, U(0,1)", lambda s: tversky(s, reduction="aggregate")),
             ("Tversky, ignorematch, U(0,1)", lambda s: tversky(s, difference="ignorematch"))]
    rows = []
    results = {}
    for label, make in heads:
        accs, secs = [], []
        for seed in range(seeds):
            head = make(seed)
            secs.append(train_head(head, z_train, train.y, steps))
            accs.append(accuracy(head, z_test, test.y))
        params = sum(p.numel() for p in head.parameters())
        results[label] = accs
        rows.append([label, f"{params:,}", pm(accs, 1, 100.0), f"{statistics.mean(secs):.1f}"])
        print(rows[-1], flush=True)
    lin, best_tv = statistics.mean(results["linear"]), max(statistics.mean(v) for n, v in results.items()
                                                            if n.startswith("Tversky"))
    head = (f"### 2. Frozen trunk, new task\n\nDigits, the stratified {len(train)}/{len(test)} split. Trunk "
            f"conv3×3 1→16, ReLU, conv 16→32, ReLU, maxpool 2, conv 32→32, ReLU, GAP (32-d), trained {trunk_epochs} "
            f"epochs (Adam 1e-3, batch 64) on digits 0–4 only, then frozen. New 10-class head on standardised trunk "
            "features, full batch, "
            f"{steps} Adam steps at 1e-2, K = {k}, {seeds} seeds (mean ± SD of test accuracy, %).\n\n")
    verdict = ("Tversky beat linear here" if best_tv > lin else
               f"Tversky did **not** beat linear here (best Tversky {best_tv * 100:.1f}% vs linear {lin * 100:.1f}%)")
    return head + table(["head", "params", "test accuracy %", "train s / seed"], rows) + f"\n\n{verdict}.\n"


# ---------------------------------------------------------------------------------------------- 3. LM head


def build_byte_lm(folder: Path, train_steps: int, layers: int = 2, d: int = 128, heads: int = 4,
                  context: int = 128) -> dict:
    """Train a byte-level LlamaForCausalLM (ByT5 tokenizer) with a linear head; save it as an HF folder."""
    from transformers import ByT5Tokenizer, LlamaConfig, LlamaForCausalLM

    from dnnkit.data.text import builtin_corpus_path, load_text, token_blocks
    from dnnkit.train import TrainConfig, fit

    tok = ByT5Tokenizer(extra_ids=0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=d, intermediate_size=4 * d, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=context,
                      tie_word_embeddings=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      bos_token_id=None)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    texts = load_text(builtin_corpus_path(), "train", "wiki").texts
    blocks = token_blocks(texts, tok, context, n_blocks=train_steps * 16)

    def loss(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = m(input_ids=x).logits
        return nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))

    hist = fit(model, blocks, torch.zeros(len(blocks)), TrainConfig(epochs=1, lr=2e-3, batch_size=16, seed=0),
               loss_fn=loss)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return {"train_seconds": hist.seconds, "blocks": len(blocks), "vocab": len(tok), "layers": layers, "d": d,
            "heads": heads, "context": context}


def bench_lm(train_steps: int, head_steps: int, k: int, eval_blocks: int) -> str:
    import dnnkit

    folder = Path(tempfile.mkdtemp(prefix="tversky-bench-lm-"))
    info = build_byte_lm(folder, train_steps)
    print("byte LM trained", info, flush=True)
    runs = [("linear (fresh, standardised input)", dict(kind="linear")),
            (f"Tversky K = {k}, untied", dict(kind="tversky", features=k)),
            (f"Tversky K = {k}, prototypes tied to embed_tokens", dict(kind="tversky", features=k,
                                                                      tie_prototypes="model.embed_tokens"))]
    rows = []
    original = None
    for label, kw in runs:
        with Timer() as t:  # the public API: the CLI's runner, loading the folder as `dnnkit swap-projection` does
            r = dnnkit.swap_projection(str(folder), layers="lm_head", data="wiki", freeze_rest=True, steps=head_steps,
                                       batch_size=8, seed=0, eval_limit=eval_blocks, calib=64, **kw).report
        original = r["metric_before"]["perplexity"]
        lay = r["layers"][0]
        ppl = r["metric_after"]["perplexity"]
        rows.append([label, f"{lay['params_after']:,}", f"{r['params_after']:,}", f"{ppl:.2f}",
                     f"{torch.log2(torch.tensor(ppl)).item():.3f}", f"{t.wall:.0f}",
                     f"{lay['timing_ms']['swapped']:.1f} / {lay['timing_ms']['linear']:.2f}"])
        print(rows[-1], flush=True)
    head = (f"### 3. Language-model head swap (Hugging Face folder input)\n\nByte-level LlamaForCausalLM (ByT5 byte "
            f"tokenizer, vocab {info['vocab']}, {info['layers']} layers, d = {info['d']}, {info['heads']} heads, "
            f"context {info['context']}), trained from scratch with a linear head for {train_steps} steps of 16 blocks "
            f"on the built-in corpus's train split ({info['train_seconds']:.0f} s), saved as a Hugging Face folder. "
            f"Then `dnnkit.swap_projection(folder, layers='lm_head', freeze_rest=True)` (the CLI's runner and code "
            f"path) on that folder: {head_steps} Adam steps at 1e-3, batch 8 blocks, held-out perplexity on "
            f"{eval_blocks} test blocks of {info['context']} bytes. Original linear head: perplexity {original:.2f} "
            f"({torch.log2(torch.tensor(original)).item():.3f} bits per byte). Scaled down: the from-scratch training "
            "with a Tversky head (protocol (a)) was not run.\n\n")
    return head + table(["head", "head params", "model params", "perplexity", "bits/byte", "wall s",
                         "fwd+bwd ms swapped / linear"], rows) + "\n"


# ---------------------------------------------------------------------------------------------- 4. cost, memory


def fwd_bwd_ms(module: nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Median ms of one forward + backward (the input copy made outside the timer), after one warm-up."""
    timing = Timing()
    for i in range(repeats + 1):
        xr = x.clone().requires_grad_(True)
        with Timer() as t:
            module(xr).sum().backward()
        if i:
            timing.add(t)
    return timing.wall * 1000


def bench_cost(shapes: list[tuple[int, int, int, int]], repeats: int) -> str:
    rows = []
    for n, d, p, k in shapes:
        x = torch.randn(n, d)
        lin = fwd_bwd_ms(nn.Linear(d, p), x, repeats)
        for diff in ("ignorematch", "substractmatch"):
            tv = fwd_bwd_ms(TverskyProjection(d, p, k, difference=diff, init="normal"), x, repeats)
            rows.append([f"({n}, {d}, {p}, {k})", f"product + {diff}", f"{lin:.2f}", f"{tv:.1f}",
                         f"{tv / lin:.1f}×"])
            print(rows[-1], flush=True)
    return ("### 4a. Cost: forward + backward vs nn.Linear (CPU, PyTorch reference)\n\n(n, d, p, K) = (rows, "
            f"input width, prototypes/outputs, features); median of {repeats}. Product + ignorematch runs as "
            "matmuls; substractmatch adds one chunked pass for the shared-feature excess.\n\n"
            + table(["(n, d, p, K)", "variant", "nn.Linear ms", "Tversky ms", "ratio"], rows) + "\n")


MEM_SNIPPET = """
import torch
torch.set_num_threads(1)
from dnnkit.kernels.tversky_similarity import tversky_similarity_naive, tversky_similarity_torch
n, p, k = {n}, {p}, {k}
g = torch.Generator().manual_seed(0)
ma = torch.randn(n, k, generator=g, requires_grad=True)
mb = torch.randn(p, k, generator=g, requires_grad=True)
fn = {fn}
fn(ma[:2], mb[:2], intersection={inter!r}, difference='substractmatch').sum().backward()
def status(key):
    for line in open('/proc/self/status'):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
open('/proc/self/clear_refs', 'w').write('5')  # reset the peak (VmHWM) to the current RSS
base = status('VmRSS')
fn(ma, mb, intersection={inter!r}, difference='substractmatch').sum().backward()
print(status('VmHWM') - base)
"""


def peak_bytes(fn: str, n: int, p: int, k: int, inter: str) -> int:
    code = MEM_SNIPPET.format(n=n, p=p, k=k, fn=fn, inter=inter)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def bench_memory(n: int, p: int, k: int) -> str:
    rows = []
    ratios = []
    for inter in ("min", "product"):
        naive = peak_bytes("tversky_similarity_naive", n, p, k, inter)
        fused = peak_bytes("tversky_similarity_torch", n, p, k, inter)
        ratios.append(fused / naive)
        rows.append([f"{inter} + substractmatch", f"{naive / 2**20:.0f}", f"{fused / 2**20:.0f}",
                     f"{fused / naive:.3f}"])
        print(rows[-1], flush=True)
    one = n * p * k * 4 / 1e6
    verdict = mark(max(ratios) <= MEMORY_TARGET)
    return (f"### 4b. Peak memory: fused (chunked, recomputing backward) vs naive broadcast, CPU\n\n"
            f"(n, p, K) = ({n}, {p}, {k}); one float32 n×p×K tensor is {one:.0f} MB. Extra peak RSS of one "
            "forward+backward in a fresh process (after a warm-up call).\n\n"
            + table(["variant", "naive MiB", "fused MiB", "fused / naive"], rows)
            + f"\n\nTarget fused ≤ {MEMORY_TARGET:g} × naive: {verdict} (worst {max(ratios):.3f}). The Triton "
              "kernel's GPU figures come from `benchmarks/kernels_tversky_similarity.py`.\n")


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (does not write the doc)")
    ap.add_argument("--sections", default="xor,head,lm,cost,memory")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--head-seeds", type=int, default=3)
    ap.add_argument("--head-steps", type=int, default=600)
    ap.add_argument("--out", default=str(DOC))
    args = ap.parse_args()
    run = Run(threads=1)
    q = args.quick
    sections = args.sections.split(",")
    scale = {"xor_seeds": 2 if q else args.seeds, "xor_k": [4, 16] if q else [1, 4, 16],
             "xor_steps": 100 if q else 1000,
             "head_seeds": 1 if q else args.head_seeds, "head_steps": 20 if q else args.head_steps, "head_k": 64,
             "trunk_epochs": 2 if q else 30, "lm_train_steps": 5 if q else 150, "lm_head_steps": 3 if q else 100,
             "lm_k": 16, "lm_eval_blocks": 4 if q else 32,
             "cost_shapes": [(256, 64, 10, 64)] if q else [(256, 64, 10, 64), (256, 512, 1000, 256)],
             "cost_repeats": 2 if q else 5, "memory": (64, 100, 64) if q else (256, 1000, 256)}
    parts = []
    if "xor" in sections:
        parts.append(bench_xor(scale["xor_seeds"], scale["xor_k"], scale["xor_steps"]))
    if "head" in sections:
        parts.append(bench_head(scale["head_seeds"], scale["head_steps"], scale["head_k"], scale["trunk_epochs"]))
    if "lm" in sections:
        parts.append(bench_lm(scale["lm_train_steps"], scale["lm_head_steps"], scale["lm_k"], scale["lm_eval_blocks"]))
    if "cost" in sections:
        parts.append(bench_cost(scale["cost_shapes"], scale["cost_repeats"]))
    if "memory" in sections:
        parts.append(bench_memory(*scale["memory"]))
    record = run.finish()
    note = (f"{machine_note(record)}; total wall {record['wall_s'] / 60:.1f} min (other jobs running: timings "
            "indicative)")
    text = ("# Benchmark: Tversky projection layers (`swap-projection`)\n\n"
            f"Command: `{record['command']}`  \nMachine: {note}\n\n"
            "Settings unless stated: contrast similarity, α = β = 0.5, θ = 1 (learned), product intersection, "
            "substractmatch difference, per-feature reduction, no bias. Cited, not reproduced: the paper's NABirds "
            "and GPT-2/PTB results.\n\n" + scale_note(scale, sections) + "\n\n" + "\n".join(parts))
    if q:
        print(text)
        return
    if set(sections) != {"xor", "head", "lm", "cost", "memory"}:
        out = Path(args.out).with_suffix(f".{'-'.join(sections)}.json")
        dump_json(out, {"sections": sections, "text": "\n".join(parts), "note": note, "cmd": record["command"],
                        "run": record, "scale": scale}, indent=None)
        print(f"wrote {out}")
        return
    print(f"wrote {write_page(args.out, text)}")


def scale_note(scale: dict, sections: list[str]) -> str:
    """How this run is scaled down from the spec's protocol, from the settings it ran with."""
    parts = []
    if "xor" in sections:
        parts.append(f"XOR K ∈ {{{', '.join(str(k) for k in scale['xor_k'])}}} only (spec: {SPEC['xor_k']})")
    if "head" in sections:
        seeds = f"{scale['head_seeds']} seed{'s' if scale['head_seeds'] != 1 else ''}"
        parts.append(f"frozen-trunk heads {scale['head_steps']} steps and {seeds} (spec protocol: "
                     f"{SPEC['head_steps']} steps, {SPEC['head_seeds']} seeds); Fashion-MNIST repeat not run")
    if "lm" in sections:
        parts.append(f"LM: a {scale['lm_train_steps']}-step byte-level model and {scale['lm_head_steps']} head steps, "
                     "protocol (b) only")
    return "Scale (to fit a shared machine): " + "; ".join(parts) + "." if parts else ""


if __name__ == "__main__":
    main()
