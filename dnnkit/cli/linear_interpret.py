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
    from dnnkit.probes.linear_interpret.probe import LINEAR_INTERPRET, LinearInterpretConfig

    cfg = LinearInterpretConfig(data=data, index=index, count=count, split=split, input_file=input_file,
                                outputs=outputs, columns=columns, svd=svd, eval_n=eval_n, smooth=smooth,
                                checks=check, dtype=dtype, batch_size=batch_size, seed=seed, device=shared.device)
    report = shared.run_probe(LINEAR_INTERPRET, model, cfg).report
    shared.out.result(report, lambda console: _render(console, report))


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
