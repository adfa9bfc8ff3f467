"""Export benchmark: every surgery's output of the zoo digits models (plain, prune, lowrank, bcosify with and
without --explain, swap-projection tversky) exported to ONNX and to torch.export `.pt2`, as `dnnkit export`
does it (trace, convert, reload, check on 64 held-out digits). Per row: export time, file size, the max
absolute difference of the reloaded file against the torch model, and the CPU latency of onnxruntime and of
the reloaded `.pt2` against eager torch on the same inputs (one thread each; the ratios come from one run,
the three runtimes timed in interleaved rounds). Writes docs/benchmarks/export.md (+ export.json).

Run: flock /tmp/dnnkit-heavy.lock .venv/bin/python benchmarks/export.py   (one torch thread, ~2-3 minutes)
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import DOCS, Run, Timer, dump_json, fmt, log, median, parser, table, write_page

MODELS = ("zoo:digits-cnn", "zoo:digits-mlp")
# label -> (the dnnkit command that makes the output, or None for the zoo model itself; export with --explain;
# the models it applies to: bcosify needs a Conv2d first layer, so the MLP has no B-cos rows)
BCOSIFY = ["bcosify", "{ref}", "--epochs", "0", "--grids", "0", "--no-plots"]
SURGERIES: dict[str, tuple[list[str] | None, bool, tuple[str, ...]]] = {
    "plain": (None, False, MODELS),
    "prune 0.5": (["prune", "{ref}", "--ratio", "0.5"], False, MODELS),
    "lowrank svd 0.3": (["lowrank", "{ref}", "--svd", "--rank-ratio", "0.3", "--no-plots"], False, MODELS),
    "bcosify": (BCOSIFY, False, ("zoo:digits-cnn",)),
    "bcosify --explain": (BCOSIFY, True, ("zoo:digits-cnn",)),
    "swap-projection tversky": (["swap-projection", "tversky", "{ref}", "--layers", "9", "--features", "16",
                                 "--epochs", "1", "--limit", "64", "--no-plots"], False, MODELS),
}
BATCHES = (1, 64)
ROUNDS = 7  # interleaved timing rounds per runtime and batch size; the median is reported
SAMPLE_S = 0.03  # each timed sample repeats the call until it lasts about this long


def make_output(ref: str, args: list[str] | None, folder: Path, cache: dict[tuple[str, str], str]) -> str:
    """The surgery's output checkpoint (made once per command), or the zoo reference itself."""
    if args is None:
        return ref
    key = (ref, " ".join(args))
    if key not in cache:
        from typer.testing import CliRunner

        from dnnkit.cli.app import app

        out = folder / f"{ref.split(':')[-1]}-{args[0]}-{len(cache)}.safetensors"
        argv = [a.replace("{ref}", ref) for a in args] + ["-o", str(out), "--quiet"]
        res = CliRunner().invoke(app, argv)
        if res.exit_code != 0:
            raise SystemExit(f"dnnkit {' '.join(argv)} failed: {res.stderr or res.output}")
        cache[key] = str(out)
    return cache[key]


def _calls_per_sample(fn: Any) -> int:
    with Timer() as t:
        fn()
    return max(1, min(2000, math.ceil(SAMPLE_S / max(t.wall, 1e-6))))


def latencies(runners: dict[str, Any], args: tuple[Any, ...]) -> dict[str, float]:
    """Milliseconds per call of each runner on `args`: interleaved rounds, median over rounds."""
    for fn in runners.values():
        for _ in range(3):
            fn(args)
    calls = {name: _calls_per_sample(lambda fn=fn: fn(args)) for name, fn in runners.items()}
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(ROUNDS):
        for name, fn in runners.items():
            started = time.perf_counter()
            for _ in range(calls[name]):
                fn(args)
            samples[name].append((time.perf_counter() - started) / calls[name] * 1e3)
    return {name: median(values) for name, values in samples.items()}


def measure(path: str, explain: bool, folder: Path) -> dict[str, Any]:
    """Export `path` to both formats (check included) and time the three runtimes."""
    from dnnkit.export.backends import onnx_runner, pt2_runner
    from dnnkit.export.config import ExportConfig
    from dnnkit.export.forward import forward_spec
    from dnnkit.export.probe import export_file
    from dnnkit.metrics import load_inputs
    from dnnkit.models.registry import load_model

    loaded = load_model(path)
    row: dict[str, Any] = {"model": path, "explain": explain, "formats": {}}
    staged: dict[str, Path] = {}
    for fmt_name in ("onnx", "pt2"):
        sub = folder / f"{fmt_name}-{time.monotonic_ns()}"
        sub.mkdir()
        report, staged[fmt_name] = export_file(loaded, ExportConfig(format=fmt_name, explain=explain), sub)
        check = report["check"]
        row["formats"][fmt_name] = {"export_s": report["timing"]["export_s"], "check_s": report["timing"]["check_s"],
                                    "file_size": report["file_size"], "max_abs_diff": check["max_abs_diff"],
                                    "max_rel_diff": check["max_rel_diff"], "passed": check["passed"],
                                    "top1_agreement": check["top1_agreement"], "opset": report["opset"]}
    net = loaded.require_network().eval()
    data = loaded.info.default_data
    inputs = load_inputs(loaded, data, "test", max(BATCHES), 0)
    spec = forward_spec(net, loaded.info.task, inputs.kind, explain, (inputs.take([0, 1]).x,))
    runners = {"torch": spec.reference, "onnxruntime": onnx_runner(staged["onnx"], spec.input_names),
               "pt2": pt2_runner(staged["pt2"])}
    row["latency_ms"] = {}
    for batch in BATCHES:
        args = spec.args(inputs.take(list(range(batch))))
        row["latency_ms"][str(batch)] = latencies(runners, args)
    return row


def _kb(n: int) -> str:
    return f"{n / 1024:.1f}"


def _diff(x: float) -> str:
    return "0" if x == 0 else f"{x:.1e}"


def render(rows: list[dict[str, Any]], run: Run) -> str:
    export_rows, latency_rows, ratios = [], [], {"onnxruntime": [], "pt2": []}
    for r in rows:
        name = r["model"].split(":")[-1]
        o, p = r["formats"]["onnx"], r["formats"]["pt2"]
        export_rows.append([name, r["surgery"], fmt(o["export_s"], 2), _kb(o["file_size"]), _diff(o["max_abs_diff"]),
                            fmt(p["export_s"], 2), _kb(p["file_size"]), _diff(p["max_abs_diff"])])
        cells = [name, r["surgery"]]
        for batch in BATCHES:
            lat = r["latency_ms"][str(batch)]
            ort_ratio, pt2_ratio = lat["onnxruntime"] / lat["torch"], lat["pt2"] / lat["torch"]
            ratios["onnxruntime"].append(ort_ratio)
            ratios["pt2"].append(pt2_ratio)
            cells += [fmt(lat["torch"], 3), fmt(lat["onnxruntime"], 3), f"**{ort_ratio:.2f}**", f"{pt2_ratio:.2f}"]
        latency_rows.append(cells)
    lat_head = ["model", "surgery"]
    for batch in BATCHES:
        lat_head += [f"b{batch} torch ms", f"b{batch} ort ms", f"b{batch} ort/torch", f"b{batch} pt2/torch"]
    passed = all(f["passed"] for r in rows for f in r["formats"].values())
    lines = [
        "# Export: every surgery's output to ONNX and torch.export",
        "",
        "`dnnkit export` on the outputs of each surgery for the two zoo digits models: export time (trace +",
        "convert or save), file size, and the largest absolute difference between the reloaded file and the",
        f"torch model on 64 held-out digits ({'every file passed the check' if passed else 'NOT every file passed'};",
        "tolerance 1e-4 + 1e-5 x max |output|). Then the CPU latency of onnxruntime and of the reloaded `.pt2`",
        "against eager torch on the same inputs (as `dnnkit export` runs them: one thread each, numpy",
        "conversion included for onnxruntime), timed in interleaved rounds in one run; the ratios are what",
        "to read. `bcosify --explain` exports the forward that also returns the contribution maps (its torch",
        "side is dnnkit's own explanation: a forward plus the input gradient). `bcosify` uses `--epochs 0`",
        "(convert only) and swap-projection one epoch on 64 digits: export does not care how well they train.",
        "bcosify needs a Conv2d first layer, so the MLP has no B-cos rows.",
        "",
        f"Run: `{run.record['command']}` (wrapped in `flock /tmp/dnnkit-heavy.lock`), {run.record['wall_s']:.0f} s;",
        f"{run.note()}.",
        "",
        "## Export",
        "",
        table(["model", "surgery", "onnx export s", "onnx KB", "onnx max diff", "pt2 export s", "pt2 KB",
               "pt2 max diff"], export_rows, "llrrrrrr"),
        "",
        "## Latency (CPU, one thread)",
        "",
        table(lat_head, latency_rows, "ll" + "r" * (len(lat_head) - 2)),
        "",
        f"Median ratio over all rows and batch sizes: onnxruntime/torch {median(ratios['onnxruntime']):.2f}, "
        f"pt2/torch {median(ratios['pt2']):.2f} (below 1: faster than eager torch). These are tiny models, where",
        "per-call overhead dominates; a ratio here says little about large models.",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--out", default=str(DOCS / "export.md"))
    args = ap.parse_args()
    run = Run(threads=1)
    import os

    os.environ.setdefault("DNNKIT_THREADS", "1")
    rows: list[dict[str, Any]] = []
    cache: dict[tuple[str, str], str] = {}
    with tempfile.TemporaryDirectory(prefix="dnnkit-bench-export-") as tmp:
        folder = Path(tmp)
        for ref in MODELS:
            for label, (command, explain, models) in SURGERIES.items():
                if ref not in models:
                    continue
                path = make_output(ref, command, folder, cache)
                log(f"{ref} {label}: exporting")
                row = measure(path, explain, folder)
                row["model"], row["surgery"] = ref, label  # the zoo model, not the temporary output path
                row["command"] = None if command is None else "dnnkit " + " ".join(command).replace("{ref}", ref)
                rows.append(row)
    record = run.finish()
    dump_json(Path(args.out).with_suffix(".json"), {"run": record, "rows": rows})
    print(write_page(args.out, render(rows, run)))


if __name__ == "__main__":
    main()
