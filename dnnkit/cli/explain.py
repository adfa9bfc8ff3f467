"""`dnnkit explain MODEL (--data D --index I[,I...] | --input FILE...)`: W(x)·x of a B-cos network
(input×gradient for other models), the completeness check, and a PNG grid."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dnnkit.cli.options import DataOpt, ModelArg
from dnnkit.cli.shared import LOAD, WRITE, Shared, shared_options


def _parse_indices(raw: list[str]) -> list[int]:
    from dnnkit.errors import InputError

    out = []
    for part in ",".join(raw).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(int(part))
        except ValueError as exc:
            raise InputError(f"--index {part!r} is not an integer") from exc
    return out


@shared_options(LOAD, WRITE, helps={"output": "PNG of the explanations (parent folders are created)."})
def explain_command(
    model: ModelArg,
    data: DataOpt = None,
    index: Annotated[list[str] | None, typer.Option("--index", help="Sample index(es) of --split, e.g. 0,5,9.")] = None,
    split: Annotated[str, typer.Option("--split", help="train or test.")] = "test",
    input_files: Annotated[list[str] | None, typer.Option("--input", help="Image file(s) (.png/.jpg, or .npy "
                                                                          "C x H x W in [0, 1]).")] = None,
    class_: Annotated[str, typer.Option("--class", help="Class index to explain, or pred.")] = "pred",
    method: Annotated[str, typer.Option("--method", help="auto (dynamic for B-cos, else ixg), dynamic or "
                                                         "ixg.")] = "auto",
    smooth: Annotated[int | None, typer.Option("--smooth", help="Alpha smoothing kernel K (odd; default "
                                                                "15 H / 224).", min=1)] = None,
    percentile: Annotated[float, typer.Option("--percentile", help="Percentile that maps to full alpha / "
                                                                   "colour.")] = 99.5,
    save_maps: Annotated[str | None, typer.Option("--save-maps", help="Write W(x), x_enc and R to this .npz.")] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="float32, float64, float16 or bfloat16.")] = None,
    *,
    shared: Shared,
) -> None:
    """Explain a classifier's predictions: B-cos contributions W(x)·x, or input×gradient."""
    from dnnkit.probes.explain.probe import EXPLAIN, ExplainConfig

    cfg = ExplainConfig(data=data, indices=_parse_indices(index) if index is not None else None, split=split,
                        input_files=input_files, class_=class_, method=method, smooth=smooth, percentile=percentile,
                        save_maps=save_maps, dtype=dtype)
    report = shared.run_probe(EXPLAIN, model, cfg).report
    shared.out.result(report, lambda console: _render(console, report))


def _render(console: Any, r: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title=f"explain {r['model']} ({'B-cos W(x)·x' if r['method'] == 'dynamic' else 'input×gradient'})")
    for col in ("input", "label", "pred", "class", "logit", "ΣR", "constants", "completeness err"):
        t.add_column(col)
    for row in r["inputs"]:
        t.add_row(row["input"], str(row["label"]), str(row["predicted"]), str(row["class"]), f"{row['logit']:.4g}",
                  f"{row['contribution_sum']:.4g}", f"{row['constant_share']:.3g}", f"{row['completeness_error']:.2e}")
    console.print(t)
    if r.get("png"):
        console.print(f"wrote {r['png']}")
