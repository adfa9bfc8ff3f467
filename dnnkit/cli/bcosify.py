"""`dnnkit bcosify MODEL --data D -o OUT`: turn a trained CNN or ViT into a B-cos network and fine-tune it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dnnkit.cli.options import BatchSizeOpt, DataOpt, ModelArg, SeedOpt
from dnnkit.cli.shared import DTYPE, GATE, LOAD, WRITE, Shared, shared_options


def png_paths(out: str | None) -> dict[str, Path]:
    """Where the explanation and comparison PNGs of a bcosify output go."""
    if out is None:
        return {}
    base = Path(out)
    stem = base.with_suffix("") if base.suffix == ".safetensors" else base
    return {"explain": Path(f"{stem}.explain.png"), "compare": Path(f"{stem}.compare.png")}


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
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate (cosine schedule).")] = 1e-3,
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
    from dnnkit.errors import InputError
    from dnnkit.surgery.bcos.pipeline import BcosifyConfig, check_config

    out = shared.out
    dry_run, force = shared.dry_run, shared.force
    cfg = BcosifyConfig(b=b, b_warmup=b_warmup, encoding=encoding, mean=list(mean) if mean else None,
                        std=list(std) if std else None, epochs=epochs, lr=lr, batch_size=batch_size, augment=augment,
                        keep_maxpool=keep_maxpool, gap_reorder=not no_gap_reorder, seed=seed, grids=grids,
                        train_limit=limit, logit_scale=logit_scale)
    check_config(cfg)
    output = shared.output_or_error("name the B-cos checkpoint (.safetensors)")
    if output is not None and not output.endswith(".safetensors"):
        raise InputError(f"output {output!r} must end in .safetensors",
                         hint="a B-cos model is a dnnkit checkpoint that reloads by recipe replay")
    pngs = {} if no_plots or dry_run else png_paths(output)
    from dnnkit.data.registry import check_data_spec

    if output is not None and not dry_run:
        shared.check_output(output, model)
        for p in pngs.values():
            shared.check_output(p)
    if data is not None:
        check_data_spec(data)

    loaded = shared.load(model)
    net = loaded.require_network("bcosify")
    from dnnkit.probes.explain.dynamic import is_bcos

    if is_bcos(net):
        raise InputError(f"{model} is already a B-cos network")
    if loaded.info.task != "classifier":
        raise InputError(f"{model} is not an image classifier (task {loaded.info.task})")
    data = data or loaded.info.default_data
    if data is None:
        raise InputError(f"{model}: no default dataset", hint="pass --data")
    train, test = _load_images(data)
    from dnnkit.surgery.bcos.pipeline import bcosify

    progress = out.progress()
    result, opts = bcosify(net, loaded.arch, train, test, cfg, dry_run=dry_run, progress=progress, warn=out.warn)
    report = _report(model, data, cfg, result, opts)
    shared.gate({"accuracy": report["accuracy"]["original"]}, _after_metrics(report), "bcosify")
    if not dry_run:
        from dnnkit.models.save import save_model

        metrics = {k: report[k] for k in ("accuracy", "completeness_error", "grid_pointing", "equivalence_max_abs")}
        save_model(loaded, result.model, output, result.step(cfg, opts), metrics, force=force, structural=True)
        report["output"] = output
        if pngs:
            report["png"] = _plots(net, result, opts, test, pngs)
    report["dry_run"] = dry_run
    out.result(report, lambda console: _render(console, report))


def _after_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """The figures `--require` may gate on: accuracy, max completeness error, grid pointing score."""
    after = {"accuracy": report["accuracy"]["final"]}
    if report.get("completeness_error"):
        after["completeness_error"] = report["completeness_error"]["max"]
    if report.get("grid_pointing"):
        after["grid_pointing"] = report["grid_pointing"]["score"]
    return after


def _load_images(data: str) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    from dnnkit.data import ImageData, load_data
    from dnnkit.errors import InputError

    train, test = load_data(data, "train"), load_data(data, "test")
    if not isinstance(train, ImageData):
        raise InputError(f"--data {data} holds no images")
    return (train.x, train.y), (test.x, test.y)


def _report(model: str, data: str, cfg: Any, result: Any, opts: Any) -> dict[str, Any]:
    ft = result.finetune
    return {
        "model": model, "data": data, "b": cfg.b, "b_warmup": cfg.b_warmup, "encoding": opts.encoding,
        "mean": opts.mean, "std": opts.std, "normalisation_source": result.normalisation_source,
        "logit_bias": result.model.logit_bias, "logit_scale": result.model.logit_scale,
        "modules": [c.as_dict() for c in result.changes],
        "gap_reorder": {"applied": result.plan.gap_pool is not None, "reason": result.plan.gap_reason},
        "equivalence_max_abs": result.equivalence_max_abs,
        "accuracy": {"original": result.accuracy_original, "epoch0": result.accuracy_epoch0,
                     "epochs": ft.accuracy, "final": ft.accuracy[-1] if ft.accuracy else result.accuracy_epoch0},
        "loss": ft.loss, "b_per_epoch": ft.b, "seconds_per_epoch": ft.seconds_per_epoch,
        "completeness_error": result.completeness, "grid_pointing": result.pointing,
        "output": None, "png": None,
    }


def _plots(original: Any, result: Any, opts: Any, test: tuple[Any, Any], pngs: dict[str, Path]) -> dict[str, str]:
    import torch

    from dnnkit.probes.explain.dynamic import explain_dynamic, input_x_gradient
    from dnnkit.probes.explain.render import Row, colour_image, save_rows
    from dnnkit.surgery.bcos.pipeline import original_on_pixels

    x, y = test
    picks = [int((y == c).nonzero()[0]) for c in torch.unique(y)[:8]]
    xs = x[picks]
    bc = explain_dynamic(result.model, xs)
    ixg = input_x_gradient(original_on_pixels(original, opts.mean, opts.std), xs, bc.classes)
    rows, compare = [], []
    for i, idx in enumerate(picks):
        colour = colour_image(bc.weights[i], bc.contributions[i])
        title = f"#{idx} label {int(y[idx])} pred {int(bc.predicted[i])}"
        rows.append(Row(xs[i], bc.contributions[i], colour, title))
        compare.append(Row(xs[i], bc.contributions[i], colour, title,
                           extra=[("original: input×gradient", ixg.contributions[i])]))
    save_rows(pngs["explain"], rows)
    save_rows(pngs["compare"], compare)
    return {k: str(v) for k, v in pngs.items()}


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
