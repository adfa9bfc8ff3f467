"""`dnnkit linear-interpret MODEL`: the network at x0 as A(x0) x + c(x0) — rows, columns, bias path, votes."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dnnkit.cli.options import BatchSizeOpt, ModelArg, SeedOpt
from dnnkit.cli.shared import LOAD, WRITE, Shared, shared_options


@shared_options(LOAD, WRITE, helps={"output": "Folder for report.json and the PNGs (created if missing)."})
def linear_interpret_command(
    model: ModelArg,
    data: Annotated[str | None, typer.Option("--data", help="Image dataset (digits, fashion-mnist, npz:PATH, "
                                                              "imagefolder:PATH); default: the model's own.")] = None,
    index: Annotated[int | None, typer.Option("--index", help="First example of the split to interpret.",
                                                 min=0)] = None,
    count: Annotated[int, typer.Option("--count", help="Number of consecutive examples.", min=1)] = 1,
    split: Annotated[str, typer.Option("--split", help="train or test.")] = "test",
    input_file: Annotated[str | None, typer.Option("--input", help="An input as .npy or an image file.")] = None,
    outputs: Annotated[str, typer.Option("--outputs", help="pred, all, or K,K,...: outputs whose rows of A are "
                                                           "computed.")] = "pred",
    columns: Annotated[str, typer.Option("--columns", help="none or P,P,...: flat input positions whose columns "
                                                           "of A are computed.")] = "none",
    svd: Annotated[int, typer.Option("--svd", help="Top-k singular triplets of A(x0).", min=0)] = 0,
    eval_n: Annotated[int, typer.Option("--eval", help="Also summarise N examples of the split (bias share, "
                                                       "A-only accuracy).", min=0)] = 0,
    smooth: Annotated[str, typer.Option("--smooth", help="Rule for smooth units: secant or tangent.")] = "secant",
    check: Annotated[bool, typer.Option("--check/--no-check", help="Identity, linearity and Jacobian checks.")] = True,
    dtype: Annotated[str, typer.Option("--dtype", help="float32 or float64.")] = "float32",
    batch_size: BatchSizeOpt = 64,
    seed: SeedOpt = 0,
    *,
    shared: Shared,
) -> None:
    """Freeze the network's gates at x0 and show the affine map it then is: y = A(x0) x + c(x0)."""
    from dnnkit.errors import InputError

    out, output, dry_run = shared.out, shared.output, shared.dry_run
    if (input_file is None) == (index is None):
        raise InputError("give exactly one of --index I (with --data) or --input FILE")
    if input_file is not None and eval_n:
        raise InputError("--eval needs --data (it summarises examples of a split)")
    if split not in ("train", "test"):
        raise InputError(f"--split must be train or test, got {split!r}")
    if dtype not in ("float32", "float64"):
        raise InputError(f"--dtype must be float32 or float64, got {dtype!r}",
                         hint="fp16/bf16 models are interpreted in float32")
    if smooth not in ("secant", "tangent"):
        raise InputError(f"--smooth must be secant or tangent, got {smooth!r}")
    if data is not None:
        from dnnkit.data.registry import check_data_spec

        check_data_spec(data)
    dest = None
    if output is not None and not dry_run:
        dest = shared.check_output(output, model)
    report, items, classes, extra = _run(model, data, index, count, split, input_file, outputs, columns, svd, eval_n,
                                         smooth, check, dtype, batch_size, seed, shared)
    if dest is not None:
        _write(dest, report, items, classes, extra)
        report["output"] = str(dest)
    report["dry_run"] = dry_run
    out.result(report, lambda console: _render(console, report))


def _run(model_ref: str, data: str | None, index: int | None, count: int, split: str, input_file: str | None,
         outputs: str, columns: str, svd: int, eval_n: int, smooth: str, check: bool, dtype: str, batch_size: int,
         seed: int, shared: Shared) -> tuple[dict[str, Any], list, list[str] | None, dict]:
    import time

    import torch

    from dnnkit.errors import InputError
    from dnnkit.probes.gating.inputs import check_accepts, load_input_file, load_split, logits_of
    from dnnkit.probes.linear_interpret.analyse import (
        evaluate_split,
        interpret_items,
        parse_columns,
        parse_outputs,
    )

    out, device = shared.out, shared.device
    loaded = shared.load(model_ref)
    net = loaded.require_network("linear-interpret").eval()
    torch_dtype = getattr(torch, dtype)
    net.to(dtype=torch_dtype)
    expected = loaded.info.input_shape
    classes = None
    if input_file is not None:
        x_all, y_all, where = load_input_file(input_file, expected), None, f"--input {input_file}"
        indices = list(range(len(x_all)))
        x, labels = x_all, [None] * len(x_all)
    else:
        data = data or loaded.info.default_data
        if data is None:
            raise InputError(f"{model_ref}: no default dataset", hint="pass --data")
        x_all, y_all, classes = load_split(data, split)
        where = f"--data {data}"
        if index + count > len(x_all):
            raise InputError(f"--index {index} (--count {count}) is out of range: the {split} split of {data} "
                             f"holds {len(x_all)} examples (0..{len(x_all) - 1})")
        indices = list(range(index, index + count))
        x = x_all[indices]
        labels = [int(v) for v in y_all[indices]] if y_all is not None else [None] * len(indices)
    x = x.to(device=device, dtype=torch_dtype)
    check_accepts(net, x, where, expected)
    with torch.no_grad():
        n_out = logits_of(net(x[:1])).reshape(1, -1).shape[1]
    outs = parse_outputs(outputs, n_out)
    cols = parse_columns(columns, x[0].numel())
    start_t = time.perf_counter()
    items, summary = interpret_items(net, x, labels, indices, outputs=outs, columns=cols, svd=svd, check=check,
                                     smooth=smooth, seed=seed, progress=out.progress())
    report: dict[str, Any] = {"model": model_ref, "data": data, "split": split if input_file is None else None,
                              "input": input_file, "dtype": dtype, "smooth": smooth, "n_outputs": n_out,
                              "input_shape": list(x.shape[1:]), **summary}
    notes = []
    if summary["affine_model"]:
        notes.append("model is affine: A and c do not depend on x0")
    if not summary["piecewise_linear"]:
        notes.append("the model has smooth units or normalisation: A x0 + c = f(x0) holds exactly at x0, but away "
                     "from x0 the replay is an approximation (local_error: relative error at 1% input noise)")
    notes.append("c(x0) depends on x0 through the frozen gates: the bias path is not input-independent")
    notes.append("rows of A are in the units of the tensor fed to the model")
    extra: dict[str, Any] = {}
    if eval_n:
        n = min(eval_n, len(x_all))
        xe = x_all[:n].to(device=device, dtype=torch_dtype)
        ev = evaluate_split(net, xe, y_all[:n] if y_all is not None else None, smooth=smooth, batch_size=batch_size)
        extra["bias_shares"] = ev.pop("bias_shares")
        report["eval"] = ev
    report["items"] = [it.fields for it in items]
    report["notes"] = notes
    report["seconds"] = time.perf_counter() - start_t
    return report, items, classes, extra


def _write(dest: Any, report: dict[str, Any], items: list, classes: list[str] | None, extra: dict[str, Any]) -> None:
    from dnnkit.cli.output import to_json
    from dnnkit.models.atomic import atomic_dir
    from dnnkit.probes.linear_interpret import plots

    with atomic_dir(dest) as tmp:
        pngs = []
        for it in items:
            idx = it.fields["index"]
            if it.x.ndim >= 1:
                plots.item_png(it, tmp / f"item_{idx}.png", classes)
                pngs.append(f"item_{idx}.png")
            if it.columns:
                plots.columns_png(it, tmp / f"columns_{idx}.png", tuple(it.x.shape))
                pngs.append(f"columns_{idx}.png")
            if it.svd_values:
                plots.svd_png(it, tmp / f"svd_{idx}.png")
                pngs.append(f"svd_{idx}.png")
        if "bias_shares" in extra:
            plots.bias_share_png(extra["bias_shares"], tmp / "bias_share.png",
                                 f"{report['model']}: bias share over {len(extra['bias_shares'])} examples")
            pngs.append("bias_share.png")
        report["pngs"] = pngs
        (tmp / "report.json").write_text(to_json(report) + "\n", encoding="utf-8")


def _render(console: Any, r: dict[str, Any]) -> None:
    from rich.table import Table

    console.print(f"{r['model']}: units {r['units'] or 'none'}; piecewise linear: {r['piecewise_linear']}; "
                  f"exact at x0: {r['exact_at_x0']}")
    t = Table("index", "label", "pred", "bias share", "A-only pred", "c-only pred", "identity err", "jacobian err",
              "local err")

    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:.2e}" if isinstance(v, float) else str(v)

    for it in r["items"]:
        t.add_row(str(it["index"]), fmt(it["label"]), str(it["pred"]), f"{it['bias_share']:.3f}",
                  str(it["Ax_only_pred"]), str(it["c_only_pred"]), fmt(it["identity_error"]),
                  fmt(it.get("jacobian_error")), fmt(it.get("local_error")))
    console.print(t)
    if "eval" in r:
        e = r["eval"]
        console.print(f"over {e['n']} examples: accuracy f {e.get('acc_full', float('nan')):.3f}, A x only "
                      f"{e.get('acc_Ax_only', float('nan')):.3f}, c only {e.get('acc_c_only', float('nan')):.3f}; "
                      f"unchanged without c {e['unchanged_without_c']:.3f}; bias share mean {e['bias_share_mean']:.3f}")
    for n in r["notes"]:
        console.print(f"note: {n}")
    if r.get("output"):
        console.print(f"wrote {r['output']}/report.json and {len(r.get('pngs', []))} PNGs")
