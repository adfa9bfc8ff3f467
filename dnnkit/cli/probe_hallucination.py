"""`dnnkit probe-hallucination`: build QA data, train hidden-state probes that flag wrong answers, score."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dnnkit.cli.options import ModelArg, SeedOpt
from dnnkit.cli.shared import WRITE, Shared, shared_options

THREADS_ONE = "torch CPU threads (default 1: LM decoding on a shared CPU is fastest on one)."

app = typer.Typer(name="probe-hallucination", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Hidden-state probes that flag wrong answers of a causal LM.")
dataset_app = typer.Typer(name="dataset", no_args_is_help=True, help="Question-answer data with exact labels.")
app.add_typer(dataset_app, name="dataset")


@dataset_app.command("build")
@shared_options(WRITE, helps={"output": "Output QA.jsonl (a manifest QA.jsonl.manifest.json goes beside it)."})
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
    *,
    shared: Shared,
) -> None:
    """Build question-answer items (fact tables + stratified arithmetic) as JSONL."""
    from dnnkit.probes.hallucination.probe import DATASET_BUILD, DatasetConfig

    shared.output_or_error("name the JSONL file to write")
    cfg = DatasetConfig(tasks=tasks, facts=facts, n_arith=n_arith, arith_ops=arith_ops, arith_digits=arith_digits,
                        seed=seed)
    result = shared.run_probe(DATASET_BUILD, None, cfg).report
    shared.out.result(result, lambda console: _render_dataset(console, result))


def _render_dataset(console: Any, r: dict[str, Any]) -> None:
    where = r["output"] or "(dry run, nothing written)"
    counts = ", ".join(f"{k} {v}" for k, v in r["counts"].items())
    console.print(f"{r['n']} items -> {where}: {counts}; {r['dropped']} rows dropped, {r['overrides']} overrides")


@app.command("train")
@shared_options(WRITE, defaults={"threads": 1}, helps={"threads": THREADS_ONE, "output": "Output PROBE.safetensors."})
def train_command(
    model: ModelArg,
    data: Annotated[str, typer.Option("--data", help="builtin-qa (built in memory) or jsonl:PATH.")] = "builtin-qa",
    probe: Annotated[str, typer.Option("--probe", help="mlp (the neural probe) or linear.")] = "mlp",
    layer: Annotated[str, typer.Option("--layer", help="auto (GP layer search on training folds), N, or a "
                                                       "fraction f (floor(f*L)).")] = "auto",
    position: Annotated[str, typer.Option("--position", help="first (first answer token), tbg (last prompt "
                                                             "token), slt (second-last answer token) or span "
                                                             "(every answer-clause token; score = max).")]
    = "first",
    holdout_family: Annotated[str, typer.Option("--holdout-family", help="arithmetic, geography, chemistry or "
                                                                         "none.")] = "none",
    folds: Annotated[int, typer.Option("--folds", help="Outer cross-validation folds (>= 2).")] = 5,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Greedy decoding bound.")] = 8,
    no_answer: Annotated[str, typer.Option("--no-answer", help="exclude or as-wrong.")] = "exclude",
    cache: Annotated[str | None, typer.Option("--cache", help="Folder caching answers and hidden states.")] = None,
    report_dir: Annotated[str | None, typer.Option("--report-dir", help="Folder for report.json and PNGs "
                                                                        "(default: OUTPUT stem + _report).")]
    = None,
    grid: Annotated[bool, typer.Option("--grid/--no-grid", help="Also report AUROC at every layer.")] = True,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Prompts per batch.", min=1)] = 16,
    n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap resamples for CIs.", min=100)] = 1000,
    seed: SeedOpt = 0,
    *,
    shared: Shared,
) -> None:
    """Answer questions, label them, and train a probe that flags wrong answers (with baselines)."""
    from dnnkit.probes.hallucination.probe import TRAIN, TrainConfig

    shared.output_or_error("name the probe .safetensors to write")
    cfg = TrainConfig(probe=probe, layer=layer, position=position, holdout_family=holdout_family, folds=folds,
                      max_new_tokens=max_new_tokens, no_answer=no_answer, seed=seed, grid=grid, n_boot=n_boot, qa=data,
                      cache=cache, report_dir=report_dir, batch_size=batch_size)
    result = shared.run_probe(TRAIN, model, cfg).report
    shared.out.result(result, lambda console: _render_train(console, result))


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def _render_train(console: Any, r: dict[str, Any]) -> None:
    from rich.table import Table

    d = r["data"]["tasks"]
    console.print(f"{r['model']}: {r['n_labelled']} labelled answers ({r['n_wrong']} wrong), "
                  + ", ".join(f"{t} acc {v['accuracy']:.2f}" for t, v in d.items()))
    table = Table(title=f"AUROC for wrong answers ({r['probe']} probe, position {r['position']}, layer {r['layer']})")
    for col in ("scorer", "pooled", "CI95", "recall@10%FPR", "within-strata mean", "held-out"):
        table.add_column(col)
    for name, s in r["scorers"].items():
        ho = next(iter((s.get("heldout") or {}).values()), {}) if s.get("heldout") else {}
        ci = s.get("ci95")
        table.add_row(name, _fmt(s.get("auroc")), "-" if not ci else f"{ci[0]:.2f}-{ci[1]:.2f}",
                      _fmt(s.get("recall_at_10fpr")), _fmt(s.get("within_strata_mean")), _fmt(ho.get("auroc")))
    console.print(table)
    console.print(f"verdict: {'passes' if r['verdict']['passes'] else 'does not pass'} - {r['verdict']['reason']}")
    for w in r["warnings"]:
        console.print(f"warning: {w}")
    if r["output"]:
        console.print(f"probe -> {r['output']}; report -> {r['report_dir']}")


@app.command("score")
@shared_options(WRITE, defaults={"threads": 1}, helps={"threads": THREADS_ONE, "output": "Output SCORED.jsonl."})
def score_command(
    model: ModelArg,
    probe: Annotated[str, typer.Option("--probe", help="PROBE.safetensors written by `train`.")],
    data: Annotated[str, typer.Option("--data", help="jsonl:PATH of records with `question` (optional id, task, "
                                                     "answer_stem, answer, gold).")],
    threshold: Annotated[str, typer.Option("--threshold", help="auto (the probe's, 10% FPR) or a number.")]
    = "auto",
    max_new_tokens: Annotated[int | None, typer.Option("--max-new-tokens", help="Default: the probe's.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Prompts per batch.", min=1)] = 16,
    *,
    shared: Shared,
) -> None:
    """Risk scores (P(wrong)) for answers to new questions, as JSON Lines; AUROC when `gold` is given."""
    from dnnkit.probes.hallucination.probe import SCORE, ScoreConfig

    shared.output_or_error("name the scored JSONL to write")
    cfg = ScoreConfig(probe=probe, qa=data, threshold=threshold, max_new_tokens=max_new_tokens, batch_size=batch_size)
    r = shared.run_probe(SCORE, model, cfg).report
    shared.out.result(r, lambda console: console.print(
        f"{r['n']} items scored, {r['flagged']} flagged (p_wrong >= {r['threshold']:.3f})"
        + (f"; AUROC {_fmt(r.get('auroc'))}, recall at 10% FPR {_fmt(r.get('recall_at_10fpr'))}"
           if "labelled" in r else "") + (f" -> {r['output']}" if r["output"] else " (dry run)")))
