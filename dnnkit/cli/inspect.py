"""`dnnkit inspect MODEL`: format, architecture, sizes, dtypes, tensors and provenance."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dnnkit.cli.options import ModelArg
from dnnkit.cli.shared import Shared, shared_options


@shared_options()
def inspect_command(
    model: ModelArg,
    stats: Annotated[bool, typer.Option("--stats", help="Read the data: per-tensor zero fraction, norms, min/max, "
                                                        "NaN/Inf counts.")] = False,
    limit: Annotated[int, typer.Option("--limit", help="Tensors shown in the table (JSON lists all).", min=0)] = 40,
    *,
    shared: Shared,
) -> None:
    """Show what a checkpoint holds (header-only unless --stats)."""
    from dnnkit.models.describe import describe

    out = shared.out
    report = describe(model, stats=stats, progress=out.progress())
    for w in report["warnings"]:
        out.warn(w)
    out.result(report, lambda console: _render(console, report, limit))


def _fmt_count(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return str(n)


def _render(console: Any, r: dict[str, Any], limit: int) -> None:
    from rich.table import Table

    arch = r["architecture"]
    arch_text = "none (bare weights)" if arch is None else ", ".join(
        f"{k}={v}" for k, v in arch.items() if v is not None)
    console.print(f"[bold]{r['reference']}[/bold]  format: {r['format']}  size: {r['file_bytes'] / 1e6:.1f} MB")
    console.print(f"architecture: {arch_text}")
    dtypes = ", ".join(f"{k} {_fmt_count(v)}" for k, v in r["dtypes"].items())
    console.print(f"parameters: {_fmt_count(r['num_params'])} in {r['num_tensors']} tensors ({dtypes})")
    if r.get("sparse_tensors"):
        console.print(f"sparse storage: {r['sparse_tensors']} tensors in bitmask-v1 format")
    prov = r.get("provenance")
    if prov:
        src = prov.get("source") or {}
        console.print(f"provenance: dnnkit {prov.get('version')} from {src.get('reference')} "
                      f"(sha256 {str(src.get('sha256'))[:12]}), created {prov.get('created')}")
        for i, step in enumerate(prov.get("recipe") or [], 1):
            console.print(f"  recipe {i}: {step.get('op')} {step.get('params', {})}")
        if prov.get("metrics"):
            console.print(f"  metrics: {prov['metrics']}")
    stats = any("stats" in t for t in r["tensors"])
    table = Table(show_edge=False, header_style="bold")
    for col in ("tensor", "shape", "dtype", "params"):
        table.add_column(col, justify="right" if col == "params" else "left")
    if stats:
        for col in ("zeros", "L2", "min", "max", "NaN/Inf"):
            table.add_column(col, justify="right")
    for t in r["tensors"][:limit] if limit else r["tensors"]:
        row = [t["name"], "x".join(map(str, t["shape"])) or "scalar", t["dtype"], _fmt_count(t["numel"])]
        if stats:
            s = t["stats"]
            row += [f"{s['zero_fraction']:.1%}", f"{s['l2']:.4g}", _num(s["min"]), _num(s["max"]),
                    f"{s['nan']}/{s['inf']}"]
        table.add_row(*row)
    console.print(table)
    hidden = len(r["tensors"]) - limit
    if limit and hidden > 0:
        console.print(f"... {hidden} more tensors (--limit 0 shows all, --json lists all)")


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}"
