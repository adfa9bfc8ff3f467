"""`dnnkit bcosify MODEL --data D -o OUT`: turn a trained CNN or ViT into a B-cos network and fine-tune it."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dnnkit.cli.options import BatchSizeOpt, DataOpt, ModelArg, SeedOpt
from dnnkit.cli.shared import DTYPE, GATE, LOAD, WRITE, Shared, shared_options


@shared_options(LOAD, DTYPE, WRITE, GATE)
def bcosify_command(
    model: ModelArg,
    data: DataOpt = None,
    b: Annotated[float, typer.Option("--b", help="B of the B-cos layers (>= 1; 2 as in the papers).")] = 2.0,
    b_warmup: Annotated[int, typer.Option("--b-warmup", help="Ramp B linearly from 1 over this many epochs "
                                                             "(0: B from the start).")] = 0,
    encoding: Annotated[str, typer.Option("--encoding", help="exact (complete explanations) or paper (authors' "
                                                            "normalised [x, 1-x]).")] = "exact",
    mean: Annotated[list[float] | None, typer.Option("--mean", help="Input normalisation mean per channel "
                                                                   "(repeat the option).")] = None,
    std: Annotated[list[float] | None, typer.Option("--std", help="Input normalisation std per channel.")] = None,
    logit_scale: Annotated[str, typer.Option("--logit-scale", help="Fixed logit scale: auto (1 with norm layers, "
                                                                  "else calibrated to the original's logits) or a "
                                                                  "number.")] = "auto",
    epochs: Annotated[int, typer.Option("--epochs", help="Fine-tuning epochs (0: convert only).", min=0)] = 10,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate (cosine schedule).")] = 3e-3,
    batch_size: BatchSizeOpt = 64,
    augment: Annotated[str, typer.Option("--augment", help="shift (random 1-pixel shifts) or none.")] = "shift",
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Write no PNG.")] = False,
    keep_maxpool: Annotated[bool, typer.Option("--keep-maxpool", help="Keep max pooling (default: average "
                                                                       "pooling, as the authors).")] = False,
    no_gap_reorder: Annotated[bool, typer.Option("--no-gap-reorder", help="Keep the classifier after global "
                                                                           "pooling.")] = False,
    grids: Annotated[int, typer.Option("--grids", help="2x2 grids for the grid pointing game (0: skip).",
                                       min=0)] = 250,
    limit: Annotated[int | None, typer.Option("--limit", help="Fine-tune on this many training samples.",
                                              min=1)] = None,
    seed: SeedOpt = 0,
    *,
    shared: Shared,
) -> None:
    """Convert a trained image classifier into a B-cos network (explains itself) and fine-tune it."""
    from dnnkit.surgery.bcos.pipeline import BcosifyConfig

    cfg = BcosifyConfig(b=b, b_warmup=b_warmup, encoding=encoding, mean=list(mean) if mean else None,
                        std=list(std) if std else None, epochs=epochs, lr=lr, batch_size=batch_size, augment=augment,
                        keep_maxpool=keep_maxpool, gap_reorder=not no_gap_reorder, seed=seed, grids=grids,
                        train_limit=limit, logit_scale=logit_scale, data=data, plots=not no_plots)
    report = shared.run("bcosify", model, cfg, "name the B-cos checkpoint (.safetensors)").report
    report["model"] = model
    shared.out.result(report, lambda console: _render(console, report))


def _render(console: Any, r: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title=f"bcosify {r['model']} (B={r['b']}, {r['encoding']} encoding)")
    for col in ("module", "from", "to", "bias removed", "note"):
        t.add_column(col)
    from rich.markup import escape

    for m in r["modules"]:
        removed = "yes" if m["bias_removed"] else "no"
        t.add_row(escape(m["name"]), m["from"], escape(m["to"]), removed, escape(m["note"]))
    console.print(t)
    acc = r["accuracy"]
    console.print(f"GAP reorder: {r['gap_reorder']['reason']}", markup=False)
    console.print(f"equivalence (B=1, biases kept) max |delta logit|: {r['equivalence_max_abs']:.3g}")
    if acc["original"] is not None:
        per = ", ".join(f"{a:.4f}" for a in acc["epochs"])
        console.print(f"accuracy: original {acc['original']:.4f}, after conversion {acc['epoch0']:.4f}, "
                      f"per epoch [{per}]")
    if r["completeness_error"]:
        c = r["completeness_error"]
        console.print(f"completeness error: median {c['median']:.3g}, max {c['max']:.3g} ({c['inputs']} inputs)")
    if r["grid_pointing"]:
        console.print(f"grid pointing game: {r['grid_pointing']['score']:.3f} ({r['grid_pointing']['grids']} grids)")
    if r.get("output"):
        console.print(f"wrote {r['output']}" + (f" and {', '.join(r['png'].values())}" if r.get("png") else ""))
