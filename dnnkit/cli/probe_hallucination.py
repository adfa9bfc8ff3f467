"""`dnnkit probe-hallucination`: build QA data, train hidden-state probes that flag wrong answers, score."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dnnkit.cli.common import start
from dnnkit.cli.options import DryRunOpt, ForceOpt, JsonOpt, QuietOpt, SeedOpt, VerboseOpt

app = typer.Typer(name="probe-hallucination", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Hidden-state probes that flag wrong answers of a causal LM.")
dataset_app = typer.Typer(name="dataset", no_args_is_help=True, help="Question-answer data with exact labels.")
app.add_typer(dataset_app, name="dataset")


def _require_output(output: str | None, what: str) -> str:
    from dnnkit.errors import InputError

    if not output:
        raise InputError(f"-o/--output is required ({what})")
    return output


@dataset_app.command("build")
def dataset_build(
    tasks: Annotated[str, typer.Option("--tasks", help="all or a comma list of capitals, state-capitals, "
                                                       "element-symbols, element-numbers, arithmetic.")] = "all",
    facts: Annotated[str, typer.Option("--facts", help="builtin (shipped tables) or quiz:DIR (a bsdgames "
                                                       "install, e.g. quiz:/usr/share/games/bsdgames/quiz).")]
    = "builtin",
    n_arith: Annotated[int, typer.Option("--n-arith", help="Number of arithmetic items.", min=0)] = 400,
    arith_ops: Annotated[str, typer.Option("--arith-ops", help="Comma list of add, sub, mul.")] = "add,sub,mul",
    arith_digits: Annotated[str, typer.Option("--arith-digits", help="Operand digits, e.g. 1-4 or 1,2.")] = "1-4",
    seed: SeedOpt = 0,
    output: Annotated[str | None, typer.Option("--output", "-o", help="Output QA.jsonl (a manifest "
                                                                       "QA.jsonl.manifest.json goes beside it).")]
    = None,
    force: ForceOpt = False,
    dry_run: DryRunOpt = False,
    json_mode: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Build question-answer items (fact tables + stratified arithmetic) as JSONL."""
    import json

    from dnnkit.models.atomic import atomic_file, check_output_path
    from dnnkit.probes.hallucination.arithmetic import parse_digits, parse_ops
    from dnnkit.probes.hallucination.dataset import build_dataset, dataset_sha256, parse_tasks, records_jsonl
    from dnnkit.probes.hallucination.facts import check_facts_spec

    out = start(json_mode, quiet, verbose)
    parse_tasks(tasks)
    parse_ops(arith_ops)
    parse_digits(arith_digits)
    check_facts_spec(facts)
    dest = manifest_path = None
    if not dry_run:
        dest = check_output_path(_require_output(output, "the JSONL file to write"), force)
        manifest_path = check_output_path(Path(str(dest) + ".manifest.json"), force)
    records, manifest = build_dataset(tasks, facts, n_arith, arith_ops, arith_digits, seed)
    manifest["sha256"] = dataset_sha256(records)
    if dest is not None and manifest_path is not None:
        with atomic_file(dest) as tmp:
            tmp.write_text(records_jsonl(records), encoding="utf-8")
        with atomic_file(manifest_path) as tmp:
            tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    result = {"output": str(dest) if dest else None, "manifest": str(manifest_path) if manifest_path else None,
              "dry_run": dry_run, "n": len(records), "counts": manifest["counts"], "sha256": manifest["sha256"],
              "dropped": len(manifest["dropped"]), "overrides": len(manifest["overrides"])}
    out.result(result, lambda console: _render_dataset(console, result))


def _render_dataset(console: Any, r: dict[str, Any]) -> None:
    where = r["output"] or "(dry run, nothing written)"
    counts = ", ".join(f"{k} {v}" for k, v in r["counts"].items())
    console.print(f"{r['n']} items -> {where}: {counts}; {r['dropped']} rows dropped, {r['overrides']} overrides")
