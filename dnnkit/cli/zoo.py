"""`dnnkit zoo list|build`: the built-in reference models."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dnnkit.cli.shared import Shared, shared_options

app = typer.Typer(help="Built-in reference models that work offline.", no_args_is_help=True)


@app.command("list")
@shared_options()
def list_command(*, shared: Shared) -> None:
    """List zoo models, what they are and whether they are ready."""
    from dnnkit.zoo.catalog import ZOO, zoo_status

    out = shared.out
    models = [{"name": f"zoo:{e.name}", "task": e.task, "source": e.source, "data": e.data,
               "description": e.description, "status": zoo_status(e)} for e in ZOO.values()]
    out.result({"models": models}, lambda console: _render(console, models))


@app.command("build")
@shared_options()
def build_command(
    names: Annotated[list[str] | None, typer.Argument(help="Zoo names (default: all).", show_default=False)] = None,
    *,
    shared: Shared,
) -> None:
    """Train (or convert) zoo models now and report their held-out metrics."""
    from dnnkit.zoo.catalog import ZOO, zoo_entry

    out = shared.out
    wanted = [zoo_entry(n.removeprefix("zoo:")) for n in names] if names else list(ZOO.values())
    from dnnkit.metrics import evaluate
    from dnnkit.models.registry import load_model

    results = []
    for entry in wanted:
        loaded = load_model(f"zoo:{entry.name}", progress=out.progress())
        limit = 64 if entry.task == "causal-lm" else None
        metrics = evaluate(loaded, entry.data, limit=limit, batch_size=256 if entry.task == "classifier" else 8)
        results.append({"name": f"zoo:{entry.name}", "path": str(loaded.ref.path), **metrics})
    out.result({"models": results}, lambda console: [console.print(r) for r in results])


def _render(console: Any, models: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    for col in ("model", "task", "data", "status", "description"):
        table.add_column(col)
    for m in models:
        table.add_row(m["name"], m["task"], m["data"] or "-", m["status"], m["description"])
    console.print(table)
