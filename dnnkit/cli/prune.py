"""`dnnkit prune MODEL --ratio R -o OUT`: unstructured magnitude pruning with per-layer allocations."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dnnkit.cli.options import BatchSizeOpt, DataOpt, ModelArg, SeedOpt, SeqLenOpt
from dnnkit.cli.shared import DTYPE, GATE, LOAD, SHARDS, WRITE, Shared, shared_options


@shared_options(LOAD, DTYPE, WRITE, SHARDS, GATE)
def prune_command(
    model: ModelArg,
    ratio: Annotated[float | None, typer.Option("--ratio", help="Fraction of the prunable weights set to zero, in "
                                                                 "[0, 1) (implied by --pattern).")] = None,
    method: Annotated[str | None, typer.Option("--method", help="How many per layer: uniform, uniform-plus, global, "
                                                                 "erk, lamp (default), owl (needs --data) or rd.")
                      ] = None,
    criterion: Annotated[str, typer.Option("--criterion", help="Which inside a layer: magnitude (free), wanda (one "
                                                               "calibration pass) or sparsegpt (sequential "
                                                               "calibration + weight update, the slowest and best); "
                                                               "auto: sparsegpt with --data, else magnitude.")
                         ] = "auto",
    pattern: Annotated[str | None, typer.Option("--pattern", help="N:M: keep at most N of every M consecutive "
                                                                   "inputs (2:4, 4:8); implies --method uniform.")
                       ] = None,
    dampening: Annotated[float, typer.Option("--dampening", help="SparseGPT: fraction of the mean Hessian "
                                                                 "diagonal added to it.")] = 0.01,
    layer_adaptive: Annotated[bool, typer.Option("--layer-adaptive", help="Same as --method rd (Xu et al. 2023).")
                              ] = False,
    include: Annotated[list[str] | None, typer.Option("--include", help="Also prune tensors matching this glob "
                                                                         "(repeatable).")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", help="Do not prune tensors matching this glob "
                                                                         "(repeatable).")] = None,
    max_layer_sparsity: Annotated[float | None, typer.Option("--max-layer-sparsity", "--max-layer-ratio",
                                                             help="Per-layer sparsity cap (rd, owl: default 0.99; "
                                                                  "baselines: none unless given).")] = None,
    data: DataOpt = None,
    calib: Annotated[int, typer.Option("--calib", help="Calibration samples for rd curves (text: token blocks).",
                                       min=1)] = 256,
    seq_len: SeqLenOpt = 64,
    seed: SeedOpt = 0,
    objective: Annotated[str, typer.Option("--objective", help="rd distortion: mean or worst-case.")] = "mean",
    levels: Annotated[int, typer.Option("--levels", help="Sparsity levels per layer for rd curves.")] = 101,
    rd_curves: Annotated[str, typer.Option("--rd-curves", help="rd curves: exact (every level's output distortion "
                                                               "measured) or proxy (one level per layer measured, "
                                                               "the others scaled by their reconstruction error "
                                                               "on the calibration inputs: ~levels x cheaper).")
                         ] = "exact",
    rd_calib: Annotated[int | None, typer.Option("--rd-calib", help="rd: measure the curves' output distortion "
                                                                     "on the first N of the --calib samples (the "
                                                                     "criterion's statistics use all of them); "
                                                                     "default all. Curve cost is linear in N.")
                        ] = None,
    dp_units: Annotated[str, typer.Option("--dp-units", help="DP budget buckets: auto (exact when small) or U.")
                        ] = "auto",
    steps: Annotated[int, typer.Option("--steps", help="Iterative pruning steps (fine-tune between).")] = 1,
    refine: Annotated[int, typer.Option("--refine", help="Rounds of rd additivity correction (0 = paper).")] = 0,
    finetune_epochs: Annotated[int, typer.Option("--finetune-epochs", help="Masked fine-tuning epochs per step.")
                               ] = 0,
    lr: Annotated[float, typer.Option("--lr", help="Fine-tuning learning rate.")] = 1e-3,
    fmt: Annotated[str, typer.Option("--format", help="dense (loads anywhere) or sparse (bitmask + values).")
                   ] = "dense",
    limit: Annotated[int | None, typer.Option("--limit", help="Held-out samples for metrics (default: all images, "
                                                               "16 text blocks).", min=1)] = None,
    batch_size: BatchSizeOpt = 256,
    *,
    shared: Shared,
) -> None:
    """Zero a fraction of a model's weights: --method decides how many per layer, --criterion which."""
    from dnnkit.errors import InputError
    from dnnkit.surgery.prune.criteria.pattern import parse_pattern
    from dnnkit.surgery.prune.run import PruneConfig

    parsed = parse_pattern(pattern)
    if ratio is None:
        if parsed is None:
            raise InputError("missing option --ratio", hint="for example --ratio 0.5, or --pattern 2:4")
        ratio = parsed.sparsity
    method = method or ("uniform" if parsed is not None else "lamp")
    if layer_adaptive:
        if method not in ("lamp", "rd"):
            raise InputError(f"--layer-adaptive is --method rd; it conflicts with --method {method}")
        method = "rd"
    if dp_units == "auto":
        units = None
    else:
        try:
            units = int(dp_units)
        except ValueError:
            raise InputError(f"--dp-units must be auto or an integer, got {dp_units!r}") from None
    cfg = PruneConfig(ratio=ratio, method=method, include=list(include or []), exclude=list(exclude or []),
                      cap=max_layer_sparsity, data=data, calib=calib, seed=seed, objective=objective, levels=levels,
                      rd_curves=rd_curves, rd_calib=rd_calib, dp_units=units, steps=steps, refine=refine,
                      finetune_epochs=finetune_epochs, lr=lr, format=fmt,
                      batch_size=batch_size, eval_limit=limit, seq_len=seq_len, criterion=criterion, pattern=pattern,
                      dampening=dampening)
    report = shared.run("prune", model, cfg, "name the pruned checkpoint").report
    shared.out.result(report, lambda console: _render(console, report))


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


def _render(console: Any, r: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    cols = ["layer", "shape", "size", "kept", "sparsity"] + (["level", "D_l"] if r["method"] == "rd" else [])
    for c in cols:
        table.add_column(c, justify="left" if c in ("layer", "shape") else "right")
    for row in r["layers"]:
        cells = [row["name"], "x".join(map(str, row["shape"])), str(row["size"]), str(row["kept"]),
                 _pct(row["sparsity"])]
        if r["method"] == "rd":
            d = row.get("distortion")
            cells += [str(row.get("level", "-")), "-" if d is None else f"{d:.4g}"]
        table.add_row(*cells)
    console.print(table)
    crit = r.get("criterion") or {"name": "magnitude", "pattern": None}
    how = crit["name"] + (f" {crit['pattern']}" if crit.get("pattern") else "")
    console.print(f"method {r['method']}, criterion {how}: target {_pct(r['ratio'])}, achieved {_pct(r['achieved'])} "
                  f"({r['pruned']} of {r['total']} prunable weights zero, {r['kept']} kept)")
    for when in ("before", "after"):
        m = r["metrics"].get(when)
        if m:
            parts = [f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in m.items()
                     if k in ("accuracy", "perplexity", "output_mse", "cosine")]
            console.print(f"{when}: " + ", ".join(parts) + f" ({m['samples']} held-out samples)")
    a = r.get("additivity")
    if a:
        rho = "-" if a["rho"] is None else f"{a['rho']:.2f}"
        console.print(f"additivity: predicted {a['predicted']:.4g} vs measured {a['measured']:.4g} distortion "
                      f"(rho {rho}, {a['objective']}); curve reuse: {a['curve_reuse']}")
    t = r["timing"]
    console.print(f"time: curves {t['curves_s']:.2f} s (naive estimate {t['naive_estimate_s']:.2f} s), "
                  f"DP {t['dp_s']:.3f} s, fine-tune {t['finetune_s']:.2f} s, total {t['total_s']:.2f} s")
    b = r["bytes"]
    if r.get("output"):
        size = "-" if b["out"] is None else f"{b['out'] / 1e6:.2f} MB"
        console.print(f"wrote {r['output']} ({r['format']}, {size}; input {b['in'] / 1e6:.2f} MB)")
    elif r.get("dry_run"):
        console.print("dry run: nothing written")
