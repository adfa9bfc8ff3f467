"""`dnnkit export MODEL -o FILE.onnx|FILE.pt2`: a file that runs without dnnkit (onnxruntime, or
torch.export.load), checked against the torch model on held-out inputs before it is written."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dnnkit.cli.options import DataOpt, ModelArg, SeedOpt, SeqLenOpt
from dnnkit.cli.shared import LOAD, WRITE, Shared, shared_options


@shared_options(LOAD, WRITE, helps={"output": "FILE.onnx (onnxruntime) or FILE.pt2 (torch.export); parent folders "
                                               "are created."})
def export_command(
    model: ModelArg,
    format_: Annotated[str | None, typer.Option("--format", help="onnx or pt2 (default: from the -o suffix; "
                                                                 "needed with --dry-run and no -o).")] = None,
    data: DataOpt = None,
    samples: Annotated[int, typer.Option("--samples", help="Held-out inputs (test split) compared between torch "
                                                           "and the exported file.", min=1)] = 64,
    atol: Annotated[float, typer.Option("--atol", help="Accepted difference: max |diff| <= atol + rtol x max "
                                                       "|torch output|; above it, exit 1 and write nothing.",
                                        min=0)] = 1e-4,
    rtol: Annotated[float, typer.Option("--rtol", help="Relative part of the accepted difference.", min=0)] = 1e-5,
    explain: Annotated[bool, typer.Option("--explain", help="B-cos: export the forward that also returns the "
                                                            "contribution maps (logits, contributions).")] = False,
    static_batch: Annotated[int | None, typer.Option("--static-batch", help="Fix the batch size (default: "
                                                                            "dynamic).", min=1)] = None,
    opset: Annotated[int | None, typer.Option("--opset", help="ONNX opset (default: the exporter's).")] = None,
    seq_len: SeqLenOpt = 32,
    seed: SeedOpt = 0,
    *,
    shared: Shared,
) -> None:
    """Export to ONNX or torch.export (.pt2), checked against the torch model before writing."""
    from dnnkit.export import ExportConfig, format_for
    from dnnkit.export.probe import EXPORT

    output = shared.output_or_error("the exported file (FILE.onnx or FILE.pt2)")
    cfg = ExportConfig(format=format_for(output, format_), data=data, samples=samples, atol=atol, rtol=rtol,
                       explain=explain, static_batch=static_batch, opset=opset, seq_len=seq_len, seed=seed)
    report = shared.run_probe(EXPORT, model, cfg).report
    shared.out.result(report, lambda console: _render(console, report))


def _shape(row: dict[str, Any]) -> str:
    return f"{row['name']} {'x'.join(str(d) for d in row['shape'])} {row['dtype']}"


def _render(console: Any, r: dict[str, Any]) -> None:
    from rich.table import Table

    c = r["check"]
    t = Table(title=f"export {r['model']} -> {r['output'] or '(dry run)'} ({r['format']})", show_header=False)
    t.add_column("field")
    t.add_column("value")
    t.add_row("size", f"{r['file_size'] / 1e6:.3f} MB")
    if r["opset"] is not None:
        t.add_row("opset", str(r["opset"]))
    t.add_row("inputs", ", ".join(_shape(x) for x in r["inputs"]))
    t.add_row("outputs", ", ".join(_shape(x) for x in r["outputs"]))
    t.add_row("check", f"{c['samples']} held-out inputs of {r['data']}: max |diff| {c['max_abs_diff']:.3g}, "
                       f"relative {c['max_rel_diff']:.3g} (tolerance {c['tolerance']:.3g})")
    if c["top1_agreement"] is not None:
        t.add_row("same class", f"{100 * c['top1_agreement']:.1f}%")
    t.add_row("graph", f"{r['graph']['nodes']} nodes")
    t.add_row("time", f"export {r['timing']['export_s']:.2f} s, check {r['timing']['check_s']:.2f} s")
    console.print(t)
