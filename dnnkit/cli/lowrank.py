"""`dnnkit lowrank MODEL (--svd | --asvd | --whiten | --maestro) [rank rule] -o OUT`: factor layers."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dnnkit.cli.options import BatchSizeOpt, CalibOpt, DataOpt, ModelArg, SeedOpt, SeqLenOpt
from dnnkit.cli.shared import DTYPE, GATE, LOAD, WRITE, Shared, shared_options

_FloatOpt = float | None


@shared_options(LOAD, DTYPE, WRITE, GATE)
def lowrank_command(
    model: ModelArg,
    svd: Annotated[bool, typer.Option("--svd", help="Plain truncated SVD (no data needed; bare files work).")] = False,
    asvd: Annotated[bool, typer.Option("--asvd", help="Activation-aware SVD (scales input channels by "
                                                      "mean|x|^alpha; needs --data).")] = False,
    whiten: Annotated[bool, typer.Option("--whiten", help="SVD-LLM: whiten by the Cholesky factor of the "
                                                          "calibration covariance (needs --data).")] = False,
    maestro: Annotated[bool, typer.Option("--maestro", help="Trainable decomposition with ordered dropout, "
                                                            "group lasso and progressive shrinking (needs "
                                                            "--data).")] = False,
    truncate: Annotated[bool, typer.Option("--truncate", help="Re-cut the factored layers of a dnnkit lowrank "
                                                              "checkpoint to smaller ranks.")] = False,
    rank_ratio: Annotated[_FloatOpt, typer.Option("--rank-ratio", help="r = max(1, floor(R min(m, n))), "
                                                                        "0 < R <= 1.")] = None,
    energy: Annotated[_FloatOpt, typer.Option("--energy", help="Smallest r keeping this share of the squared "
                                                                "spectrum, 0 < E <= 1.")] = None,
    params: Annotated[_FloatOpt, typer.Option("--params", help="Keep this fraction of the selected layers' "
                                                                "weights, 0 < P <= 1.")] = None,
    allocate: Annotated[str, typer.Option("--allocate", help="uniform (per layer) or global (--params "
                                                             "budget across layers).")] = "uniform",
    include: Annotated[list[str] | None, typer.Option("--include", help="Glob of layer names to factor "
                                                                          "(repeatable).")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", help="Glob of layer names to keep "
                                                                          "(repeatable).")] = None,
    factor_head: Annotated[bool, typer.Option("--factor-head", help="Also factor the output head.")] = False,
    data: DataOpt = None,
    calib: CalibOpt = 256,
    seq_len: SeqLenOpt = 128,
    alpha: Annotated[float, typer.Option("--alpha", help="ASVD scale exponent.")] = 0.5,
    finetune_epochs: Annotated[int, typer.Option("--finetune-epochs", help="Adam epochs after factoring "
                                                                             "(SVD family).", min=0)] = 0,
    lr: Annotated[_FloatOpt, typer.Option("--lr", help="Learning rate (default 1e-3; 3e-3 from "
                                                        "scratch).")] = None,
    train_limit: Annotated[int | None, typer.Option("--train-limit", help="Use at most this many training "
                                                                           "samples.", min=1)] = None,
    eval_limit: Annotated[int, typer.Option("--eval-limit", help="Held-out samples for fidelity.", min=1)] = 1000,
    from_scratch: Annotated[bool, typer.Option("--from-scratch", help="Maestro: re-initialise before "
                                                                       "decomposing.")] = False,
    epochs: Annotated[int, typer.Option("--epochs", help="Maestro training epochs.", min=1)] = 100,
    lambda_gl: Annotated[float, typer.Option("--lambda-gl", help="Maestro group-lasso weight.")] = 1e-3,
    eps: Annotated[float, typer.Option("--eps", help="Maestro shrinking threshold.")] = 1e-5,
    sampler: Annotated[str, typer.Option("--sampler", help="Maestro rank sampler: independent or "
                                                           "pair.")] = "independent",
    min_rank: Annotated[int, typer.Option("--min-rank", help="Maestro: smallest rank kept.")] = 1,
    full_pass: Annotated[bool, typer.Option("--full-pass", help="Maestro: add the full model's loss each "
                                                                "step.")] = False,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Write no PNG plots.")] = False,
    seed: SeedOpt = 0,
    batch_size: BatchSizeOpt = 64,
    *,
    shared: Shared,
) -> None:
    """Factor Linear, Conv2d and transformers Conv1D layers into two thinner layers (SVD, ASVD, whitening, Maestro)."""
    from dnnkit.errors import InputError

    methods = [name for name, on in (("svd", svd), ("asvd", asvd), ("whiten", whiten), ("maestro", maestro),
                                     ("truncate", truncate)) if on]
    if len(methods) != 1:
        raise InputError("pass exactly one method: --svd, --asvd, --whiten, --maestro or --truncate"
                         + (f" (got {', '.join('--' + m for m in methods)})" if methods else ""))
    method = methods[0]
    rules = [(r, v) for r, v in (("ratio", rank_ratio), ("energy", energy), ("params", params)) if v is not None]
    if len(rules) > 1:
        raise InputError("pass one rank rule: --rank-ratio, --energy or --params")
    rule, value = rules[0] if rules else (None, None)
    from dnnkit.surgery.lowrank.api import LowRankConfig

    cfg = LowRankConfig(method=method, rule=rule, value=value, allocate=allocate, include=list(include or []),
                        exclude=list(exclude or []), factor_head=factor_head, data=data, calib=calib,
                        seq_len=seq_len, alpha=alpha, finetune_epochs=finetune_epochs, lr=lr,
                        train_limit=train_limit, eval_limit=eval_limit, from_scratch=from_scratch, epochs=epochs,
                        lambda_gl=lambda_gl, eps=eps, sampler=sampler, min_rank=min_rank, full_pass=full_pass,
                        seed=seed, batch_size=batch_size, sweep=not no_plots and not shared.dry_run,
                        plots=not no_plots)
    report = shared.run("lowrank", model, cfg, "name the factored checkpoint (.safetensors)").report
    report["model"] = model
    shared.out.result(report, lambda console: _render(console, report))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _render(console: Any, r: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    for col in ("layer", "shape", "rank", "energy", "params before", "params after", "factored"):
        table.add_column(col, justify="left" if col in ("layer", "shape") else "right")
    for row in r["layers"]:
        e = row.get("energy_kept")
        table.add_row(row["name"], "x".join(map(str, row["shape"])), f"{row['rank']}/{row['full_rank']}",
                      "-" if e is None else f"{e:.4f}", str(row["params_before"]), str(row["params_after"]),
                      "yes" if row["factored"] else "no")
    console.print(table)
    t = r["totals"]
    sel, mod = t["selected"], t.get("model")
    console.print(f"selected layers: {sel['params_before']} -> {sel['params_after']} params "
                  f"({sel['params_kept']:.1%} kept), MACs {sel['macs_before']} -> {sel['macs_after']}")
    if mod:
        console.print(f"whole model: {mod['params_before']} -> {mod['params_after']} params "
                      f"({mod['params_kept']:.1%}), Linear/Conv MACs {mod['macs_before']} -> {mod['macs_after']} "
                      f"({r.get('macs_unit', 'per sample')})")
    fid = r.get("fidelity") or {}
    if fid:
        dense, fact = fid["dense"], fid["factored"]
        parts = [f"{k} {_fmt(dense.get(k))} -> {_fmt(v)}" if k in dense else f"{k} {_fmt(v)}"
                 for k, v in fact.items()]
        console.print(f"fidelity on {fid['data']} ({fid['samples']} held-out samples): " + ", ".join(parts))
    if r.get("maestro"):
        m = r["maestro"]
        console.print(f"maestro: {m['epochs']} epochs ({m['steps']} steps, {m['train_seconds']} s), final ranks "
                      + ", ".join(f"{k}={v}" for k, v in m["final_ranks"].items()))
    for k in r.get("skipped", []):
        console.print(f"skipped {k['name']}: {k['reason']}")
    if r.get("output"):
        console.print(f"wrote {r['output']}" + (f" and {len(r['plots'])} plots" if r.get("plots") else ""))
    elif r.get("dry_run"):
        console.print("dry run: nothing written")
