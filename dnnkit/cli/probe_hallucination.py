"""`dnnkit probe-hallucination`: build QA data, train hidden-state probes that flag wrong answers, score."""

from __future__ import annotations

from pathlib import Path
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
    import json

    from dnnkit.models.atomic import atomic_file
    from dnnkit.probes.hallucination.arithmetic import parse_digits, parse_ops
    from dnnkit.probes.hallucination.dataset import build_dataset, dataset_sha256, parse_tasks, records_jsonl
    from dnnkit.probes.hallucination.facts import check_facts_spec

    out, dry_run = shared.out, shared.dry_run
    parse_tasks(tasks)
    parse_ops(arith_ops)
    parse_digits(arith_digits)
    check_facts_spec(facts)
    dest = manifest_path = None
    if not dry_run:
        dest = shared.check_output(shared.output_or_error("name the JSONL file to write"))
        manifest_path = shared.check_output(Path(str(dest) + ".manifest.json"))
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


def _load_records(data: str, require_gold: bool, seed: int) -> tuple[list[dict[str, Any]], str]:
    from dnnkit.errors import InputError
    from dnnkit.probes.hallucination.dataset import build_dataset, load_qa_jsonl

    if data == "builtin-qa":
        return build_dataset(seed=seed)[0], data
    path = data[6:] if data.startswith("jsonl:") else data
    if not (data.startswith("jsonl:") or path.endswith(".jsonl")):
        raise InputError(f"--data must be builtin-qa or jsonl:PATH, got {data!r}")
    return load_qa_jsonl(path, require_gold=require_gold), data


def _not_causal(model: str, task: str | None) -> Any:
    from dnnkit.errors import InputError

    return InputError(f"{model} is not a causal language model (task: {task})",
                      hint="probe-hallucination needs a model that generates text (…ForCausalLM)")


def _load_causal_lm(model: str, out: Any, facts: dict[str, Any]) -> tuple[Any, Any, float]:
    import time

    from dnnkit.models.registry import load_model

    if facts.get("task") not in (None, "causal-lm"):
        raise _not_causal(model, facts["task"])
    t0 = time.perf_counter()
    loaded = load_model(model, progress=out.progress())
    net = loaded.require_network("probe-hallucination")
    if loaded.info.task != "causal-lm":
        raise _not_causal(model, loaded.info.task)
    tokenizer = loaded.tokenizer()
    return loaded, (net, tokenizer), time.perf_counter() - t0


@app.command("train")
@shared_options(WRITE, defaults={"threads": 1}, helps={"threads": THREADS_ONE, "output": "Output PROBE.safetensors."})
def train_command(
    model: ModelArg,
    data: Annotated[str, typer.Option("--data", help="builtin-qa (built in memory) or jsonl:PATH.")] = "builtin-qa",
    probe: Annotated[str, typer.Option("--probe", help="mlp (the neural probe) or linear.")] = "mlp",
    layer: Annotated[str, typer.Option("--layer", help="auto (GP layer search on training folds), N, or a "
                                                       "fraction f (floor(f*L)).")] = "auto",
    position: Annotated[str, typer.Option("--position", help="first (first answer token), tbg (last prompt "
                                                             "token) or slt (second-last answer token).")]
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
    import json

    from dnnkit.models.atomic import atomic_dir
    from dnnkit.probes.hallucination.pipeline import TrainOptions, check_options, model_facts

    out, dry_run = shared.out, shared.dry_run
    opts = TrainOptions(probe=probe, layer=layer, position=position, holdout_family=holdout_family, folds=folds,
                        max_new_tokens=max_new_tokens, no_answer=no_answer, seed=seed, grid=grid, n_boot=n_boot)
    check_options(opts)
    records, data_name = _load_records(data, require_gold=True, seed=seed)
    check_options(opts, records)
    dest = report = None
    if not dry_run:
        dest = shared.check_output(shared.output_or_error("name the probe .safetensors to write"), model)
        report = Path(report_dir) if report_dir else dest.parent / f"{dest.stem}_report"
        shared.check_output(report)
    facts = model_facts(model)
    if facts["n_blocks"] is not None:
        check_options(opts, records, int(facts["n_blocks"]))
    loaded, (net, tokenizer), load_s = _load_causal_lm(model, out, facts)
    from dnnkit.probes.hallucination.answers import answer_and_extract
    from dnnkit.probes.hallucination.pipeline import run_train

    n_blocks = int(net.config.num_hidden_layers)
    check_options(opts, records, n_blocks)
    answers = answer_and_extract(net, tokenizer, records, loaded.sha256(), max_new_tokens, batch_size, cache,
                                 out.progress())
    width = int(answers.hidden[position].shape[-1])
    fitted, rep, plot_data = run_train(answers, opts, n_blocks, out.progress())
    result: dict[str, Any] = {
        "model": model, "output": str(dest) if dest else None, "report_dir": str(report) if report else None,
        "dry_run": dry_run, "probe": probe, "position": position, "layer": fitted.info["layer"],
        "cost": {"load_s": round(load_s, 2), "per_item_s": round(answers.seconds / len(records), 4),
                 "answer_seconds": round(answers.seconds, 1), "threads": shared.threads, "cached": answers.cached},
        **rep,
    }
    if dest is not None and report is not None:
        from dnnkit.models.save import write_checkpoint
        from dnnkit.probes.hallucination.pipeline import probe_record
        from dnnkit.probes.hallucination.plots import write_plots

        record = probe_record(model, loaded.sha256(), n_blocks, width, opts, tokenizer, records, data_name, rep,
                              fitted.info["layer"])
        write_checkpoint(dest, fitted.tensors(), record, force=shared.force)
        with atomic_dir(report) as tmp:
            from dnnkit.cli.output import to_json

            result["figures"] = write_plots(tmp, plot_data, f"{probe} probe")
            (tmp / "report.json").write_text(json.dumps(json.loads(to_json(result)), indent=1) + "\n")
    else:
        result["figures"] = []
    out.result(result, lambda console: _render_train(console, result))


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
    from dnnkit.errors import InputError
    from dnnkit.models.atomic import atomic_file
    from dnnkit.models.safetensors_io import load_tensors, read_header
    from dnnkit.probes.hallucination.pipeline import model_facts

    out, dry_run = shared.out, shared.dry_run
    probe_path = Path(probe)
    if not probe_path.is_file():
        raise InputError(f"probe file {probe!r} does not exist")
    record = read_header(probe_path).dnnkit_record() or {}
    arch = record.get("arch") or {}
    if arch.get("family") != "hallucination-probe":
        raise InputError(f"{probe} is not a probe written by `dnnkit probe-hallucination train`")
    try:
        thr = None if threshold == "auto" else float(threshold)
    except ValueError as exc:
        raise InputError(f"--threshold must be auto or a number, got {threshold!r}") from exc
    records, _ = _load_records(data, require_gold=False, seed=0)
    dest = None
    if not dry_run:
        dest = shared.check_output(shared.output_or_error("name the scored JSONL to write"), model)
        shared.check_output(dest, probe)
    facts = model_facts(model)
    source = record.get("source") or {}
    if facts["sha256"] is not None and source.get("sha256") and facts["sha256"] != source["sha256"]:
        raise InputError(f"{probe} was trained on another model (sha256 {str(source['sha256'])[:12]}..., "
                         f"{model} has {facts['sha256'][:12]}...)", hint=f"score with {source.get('reference')}")
    if facts["width"] is not None and int(facts["width"]) != int(arch.get("input_dim", -1)):
        raise InputError(f"{probe} reads width {arch.get('input_dim')}, {model} has width {facts['width']}")
    layer = int(record["layer"])
    if facts["n_blocks"] is not None and layer > int(facts["n_blocks"]):
        raise InputError(f"{probe} reads layer {layer}, {model} has only {facts['n_blocks']} blocks")
    loaded, (net, tokenizer), load_s = _load_causal_lm(model, out, facts)
    if source.get("sha256") and loaded.sha256() and loaded.sha256() != source["sha256"]:
        raise InputError(f"{probe} was trained on another model (sha256 mismatch)",
                         hint=f"score with {source.get('reference')}")
    if int(net.config.hidden_size) != int(arch.get("input_dim", -1)):
        raise InputError(f"{probe} reads width {arch.get('input_dim')}, {model} has width {net.config.hidden_size}")
    if (record.get("prompt") or {}).get("answer_stems") and any("answer_stem" not in r for r in records):
        out.warn("the probe was trained with answer stems; records without `answer_stem` get an empty "
                 "assistant turn, which the probe has not seen")
    from dnnkit.probes.hallucination.answers import answer_and_extract
    from dnnkit.probes.hallucination.pipeline import score_records
    from dnnkit.probes.hallucination.probes import Probe

    fitted = Probe.from_tensors(str(arch.get("type")), load_tensors(probe_path))
    mnt = max_new_tokens or int((record.get("decoding") or {}).get("max_new_tokens", 8))
    answers = answer_and_extract(net, tokenizer, records, loaded.sha256(), mnt, batch_size, None, out.progress())
    thr_value = float(record.get("threshold", 0.5)) if thr is None else thr
    rows, summary = score_records(answers, fitted, layer, str(record.get("position", "first")), thr_value)
    if dest is not None:
        from dnnkit.cli.output import to_json

        with atomic_file(dest) as tmp:
            tmp.write_text("".join(to_json(r) + "\n" for r in rows), encoding="utf-8")
    result = {"model": model, "probe": probe, "output": str(dest) if dest else None, "dry_run": dry_run,
              "layer": layer, "position": record.get("position"),
              "cost": {"load_s": round(load_s, 2), "per_item_s": round(answers.seconds / len(records), 4),
                       "threads": shared.threads}, **summary}
    out.result(result, lambda console: console.print(
        f"{summary['n']} items scored, {summary['flagged']} flagged (p_wrong >= {thr_value:.3f})"
        + (f"; AUROC {_fmt(summary.get('auroc'))}, recall at 10% FPR {_fmt(summary.get('recall_at_10fpr'))}"
           if "labelled" in summary else "") + (f" -> {dest}" if dest else " (dry run)")))
