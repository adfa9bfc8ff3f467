"""`dnnkit swap-projection tversky|linear MODEL --layers P --data D -o OUT`: Tversky projection layers
in place of Linear ones (or the fresh-Linear control with the same budget)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dnnkit.cli.options import CalibOpt, ModelArg, SeedOpt, SeqLenOpt
from dnnkit.cli.shared import DTYPE, GATE, LOAD, WRITE, Shared, shared_options

app = typer.Typer(help="Replace Linear layers by Tversky projection layers (or fresh Linear controls) and "
                       "fine-tune.", no_args_is_help=True)

LayersOpt = Annotated[str, typer.Option("--layers", help="Module name glob(s), comma-separated; every match must be "
                                                         "nn.Linear.", show_default=False)]
SwapDataOpt = Annotated[str | None, typer.Option("--data", help="Training/evaluation data (default: the model's "
                                                                "own): digits, fashion-mnist, wiki, npz:PATH, "
                                                                "text:PATH ...")]
NumClassesOpt = Annotated[int | None, typer.Option("--num-classes", help="New output size of the final layer (a new "
                                                                         "label set).")]
FreezeOpt = Annotated[bool, typer.Option("--freeze-rest", help="Train only the swapped layers (BN/dropout in eval).")]
EpochsOpt = Annotated[int | None, typer.Option("--epochs", help="Training epochs (default 10; frozen head: --steps).")]
StepsOpt = Annotated[int | None, typer.Option("--steps", help="Optimiser steps (default 1500 for a frozen final "
                                                              "layer trained on cached inputs).")]
LrOpt = Annotated[float | None, typer.Option("--lr", help="Adam learning rate (default 1e-2 frozen head, else 1e-3).")]
TrainBatchOpt = Annotated[int | None, typer.Option("--batch-size", help="Batch size (default: full batch up to 4096 "
                                                                        "for a frozen head, else 64).")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="Train on at most this many samples / token blocks.",
                                              min=1)]
EvalLimitOpt = Annotated[int | None, typer.Option("--eval-limit", help="Evaluate on at most this many samples "
                                                                        "(default: all images, 64 token blocks).",
                                                  min=1)]
NoStdOpt = Annotated[bool, typer.Option("--no-standardize", help="Do not standardise layer inputs (x - mu) / sigma.")]
NoPlotsOpt = Annotated[bool, typer.Option("--no-plots", help="Write no PNG.")]


@shared_options(LOAD, DTYPE, WRITE, GATE)
def _tversky_command(
    model: ModelArg,
    layers: LayersOpt,
    features: Annotated[int | None, typer.Option("--features", help="Feature bank size K (required).",
                                                 show_default=False)] = None,
    prototypes: Annotated[str, typer.Option("--prototypes", help="'out' (one per output unit) or N = out_features.")
                          ] = "out",
    num_classes: NumClassesOpt = None,
    share_features: Annotated[bool, typer.Option("--share-features", help="One feature bank per input width for all "
                                                                          "matched layers.")] = False,
    tie_prototypes: Annotated[str | None, typer.Option(
        "--tie-prototypes", help="Prototypes are the rows of this embedding module (LM heads).")] = None,
    similarity: Annotated[str, typer.Option("--similarity", help="contrast or ratio.")] = "contrast",
    alpha: Annotated[float, typer.Option("--alpha", help="Initial alpha (learned).")] = 0.5,
    beta: Annotated[float, typer.Option("--beta", help="Initial beta (learned).")] = 0.5,
    theta: Annotated[float, typer.Option("--theta", help="Initial theta (learned).")] = 1.0,
    intersection: Annotated[str, typer.Option("--intersection", help="product, min, max, mean, gmean or softmin.")
                            ] = "product",
    difference: Annotated[str, typer.Option("--difference", help="substractmatch or ignorematch.")] = "substractmatch",
    reduction: Annotated[str, typer.Option("--reduction", help="per-feature (the paper) or aggregate (sum first).")
                         ] = "per-feature",
    init: Annotated[str, typer.Option("--init", help="uniform (U(0,1)), normal or orthogonal.")] = "uniform",
    no_standardize: NoStdOpt = False,
    data: SwapDataOpt = None,
    calib: CalibOpt = 256,
    freeze_rest: FreezeOpt = False,
    epochs: EpochsOpt = None,
    steps: StepsOpt = None,
    lr: LrOpt = None,
    batch_size: TrainBatchOpt = None,
    limit: LimitOpt = None,
    eval_limit: EvalLimitOpt = None,
    seq_len: SeqLenOpt = 128,
    no_plots: NoPlotsOpt = False,
    seed: SeedOpt = 0,
    *,
    shared: Shared,
) -> None:
    """Replace the matched Linear layers by Tversky projections and fine-tune."""
    from dnnkit.errors import InputError

    protos: int | None = None
    if prototypes != "out":
        try:
            protos = int(prototypes)
        except ValueError as exc:
            raise InputError(f"--prototypes must be 'out' or an integer, got {prototypes!r}") from exc
        if protos <= 0:
            raise InputError(f"--prototypes must be positive, got {protos}")
    opts = dict(kind="tversky", layers=layers, features=features, prototypes=protos, num_classes=num_classes,
                share_features=share_features, tie_prototypes=tie_prototypes, similarity=similarity, alpha=alpha,
                beta=beta, theta=theta, intersection=intersection, difference=difference, reduction=reduction,
                init=init, standardize=not no_standardize)
    _run(model, opts, data, calib, freeze_rest, epochs, steps, lr, batch_size, limit, eval_limit, seq_len, no_plots,
         seed, shared)


@shared_options(LOAD, DTYPE, WRITE, GATE)
def _linear_command(
    model: ModelArg,
    layers: LayersOpt,
    num_classes: NumClassesOpt = None,
    no_standardize: NoStdOpt = False,
    data: SwapDataOpt = None,
    calib: CalibOpt = 256,
    freeze_rest: FreezeOpt = False,
    epochs: EpochsOpt = None,
    steps: StepsOpt = None,
    lr: LrOpt = None,
    batch_size: TrainBatchOpt = None,
    limit: LimitOpt = None,
    eval_limit: EvalLimitOpt = None,
    seq_len: SeqLenOpt = 128,
    no_plots: NoPlotsOpt = False,
    seed: SeedOpt = 0,
    *,
    shared: Shared,
) -> None:
    """Control: re-train the matched layers as fresh (standardised-input) Linear layers, same budget."""
    opts = dict(kind="linear", layers=layers, num_classes=num_classes, standardize=not no_standardize)
    _run(model, opts, data, calib, freeze_rest, epochs, steps, lr, batch_size, limit, eval_limit, seq_len, no_plots,
         seed, shared)


app.command("tversky")(_tversky_command)
app.command("linear")(_linear_command)


def _run(model: str, fields: dict[str, Any], data: str | None, calib: int, freeze_rest: bool, epochs: int | None,
         steps: int | None, lr: float | None, batch_size: int | None, limit: int | None, eval_limit: int | None,
         seq_len: int, no_plots: bool, seed: int, shared: Shared) -> None:
    from dnnkit.surgery.tversky.swap import SwapConfig

    cfg = SwapConfig(**fields, calib=calib, freeze_rest=freeze_rest, epochs=epochs, steps=steps, lr=lr,
                     batch_size=batch_size, seed=seed, limit=limit, eval_limit=eval_limit, seq_len=seq_len, data=data,
                     plots=not no_plots)
    report = shared.run("swap-projection", model, cfg, "name the swapped checkpoint (.safetensors)").report
    report["model"] = model
    shared.out.result(report, lambda console: _render(console, report))


def _render(console: Any, r: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"swap-projection {r['kind']}: {r['model']} on {r['data']}"
                        + (" (dry run)" if r.get("dry_run") else ""))
    for col in ("layer", "in", "out", "K", "params before", "params after", "alpha/beta/theta", "active share",
                "dead", "fwd+bwd ms (linear)"):
        table.add_column(col)
    for lay in r["layers"]:
        abt = "/".join(f"{lay[k]:.2f}" for k in ("alpha", "beta", "theta")) if "alpha" in lay else ""
        share = f"{lay['active_feature_share']:.2f}" if lay.get("active_feature_share") is not None else ""
        timing = lay.get("timing_ms")
        ms = f"{timing['swapped']:.2f} ({timing['linear']:.2f})" if timing else ""
        table.add_row(lay["name"], str(lay["in_features"]), str(lay["out_features"]), str(lay.get("features") or ""),
                      f"{lay['params_before']:,}", f"{lay['params_after']:,}", abt, share,
                      str(lay.get("dead_features", "")), ms)
    console.print(table)
    console.print(f"parameters {r['params_before']:,} -> {r['params_after']:,}; metric before {r['metric_before']} "
                  f"after {r['metric_after']}")
    if r.get("output") and not r.get("dry_run"):
        console.print(f"wrote {r['output']}" + (f"; plots: {', '.join(r['plots'])}" if r.get("plots") else ""))
