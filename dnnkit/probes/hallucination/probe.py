"""`dnnkit probe-hallucination` as three Probes: `DATASET_BUILD` (reads no model; writes QA.jsonl and
QA.jsonl.manifest.json), `TRAIN` (answers, labels and trains on a causal LM; writes PROBE.safetensors and a
report folder) and `SCORE` (risk scores of new answers; writes SCORED.jsonl).

All run through `dnnkit.runner.run_probe`; the reports are the commands' `--json` objects. `precheck(model,
cfg)` holds the checks that need only the model's files (its block count, width, sha256), for a runner that
calls it before loading; `apply` repeats them on the loaded model.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dnnkit.errors import InputError
from dnnkit.probes.contract import Probe, ProbeResult
from dnnkit.probes.hallucination.config import DatasetConfig, ScoreConfig, TrainConfig


def manifest_path(output: str | Path) -> Path:
    """QA.jsonl.manifest.json beside QA.jsonl."""
    return Path(str(output) + ".manifest.json")


class DatasetBuildProbe(Probe):
    """Question-answer items with exact labels; saving writes the JSONL and its manifest."""

    name = "probe-hallucination dataset build"
    Config = DatasetConfig
    needs_model = False

    def output_paths(self, cfg: DatasetConfig, output: str) -> list[Path]:
        return [manifest_path(output)]

    def apply(self, loaded: Any, cfg: DatasetConfig, ctx: Any) -> ProbeResult:
        from dnnkit.probes.hallucination.dataset import build_dataset, dataset_sha256

        records, manifest = build_dataset(cfg.tasks, cfg.facts, cfg.n_arith, cfg.arith_ops, cfg.arith_digits,
                                          cfg.seed)
        manifest["sha256"] = dataset_sha256(records)
        report = {"output": None, "manifest": None, "dry_run": ctx.dry_run, "n": len(records),
                  "counts": manifest["counts"], "sha256": manifest["sha256"], "dropped": len(manifest["dropped"]),
                  "overrides": len(manifest["overrides"])}

        def write(output: str) -> None:
            import json

            from dnnkit.models.atomic import atomic_file
            from dnnkit.probes.hallucination.dataset import records_jsonl

            with atomic_file(output) as tmp:
                tmp.write_text(records_jsonl(records), encoding="utf-8")
            with atomic_file(manifest_path(output)) as tmp:
                tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            report.update(output=str(Path(output)), manifest=str(manifest_path(output)))

        return ProbeResult(report, write, extra={"records": records, "manifest": manifest})


def not_causal(model: str, task: str | None) -> InputError:
    return InputError(f"{model} is not a causal language model (task: {task})",
                      hint="probe-hallucination needs a model that generates text (…ForCausalLM)")


def causal_lm(loaded: Any) -> tuple[Any, Any, float]:
    """(network, tokenizer, seconds to get both) of a loaded causal LM; InputError for another kind of model."""
    if loaded is None:
        raise InputError("probe-hallucination needs MODEL, a causal language model")
    t0 = time.perf_counter()
    net = loaded.require_network("probe-hallucination")
    if loaded.info.task != "causal-lm":
        raise not_causal(loaded.ref.raw, loaded.info.task)
    return net, loaded.tokenizer(), time.perf_counter() - t0


def load_seconds(ctx: Any, prepare_s: float) -> float:
    """Model load time: the runner's (when its Context carries `load_s`) plus network/tokenizer preparation."""
    return float(getattr(ctx, "load_s", None) or 0.0) + prepare_s


def report_dir_of(cfg: TrainConfig, output: str | Path) -> Path:
    """--report-dir, else OUTPUT stem + _report beside OUTPUT."""
    dest = Path(output)
    return Path(cfg.report_dir) if cfg.report_dir else dest.parent / f"{dest.stem}_report"


class TrainProbe(Probe):
    """Answer, label, cross-validate the probe beside its baselines and fit it; saving writes the probe file
    and the report folder (report.json, PNGs)."""

    name = "probe-hallucination train"
    Config = TrainConfig
    needs_model = True

    def output_paths(self, cfg: TrainConfig, output: str) -> list[Path]:
        return [report_dir_of(cfg, output)]

    def precheck(self, model: Any, cfg: TrainConfig) -> None:
        """The data, and the model's kind and block count read from its files (before it is loaded)."""
        from dnnkit.probes.hallucination.dataset import load_records
        from dnnkit.probes.hallucination.pipeline import check_records, model_facts

        records = load_records(cfg.qa, require_gold=True, seed=cfg.seed)
        check_records(cfg, records)
        if not isinstance(model, str):
            return
        facts = model_facts(model)
        if facts["n_blocks"] is not None:
            check_records(cfg, records, int(facts["n_blocks"]))
        if facts.get("task") not in (None, "causal-lm"):
            raise not_causal(model, facts["task"])

    def apply(self, loaded: Any, cfg: TrainConfig, ctx: Any) -> ProbeResult:
        import torch

        from dnnkit.probes.hallucination.answers import answer_and_extract
        from dnnkit.probes.hallucination.dataset import load_records
        from dnnkit.probes.hallucination.pipeline import check_records, run_train

        records = load_records(cfg.qa, require_gold=True, seed=cfg.seed)
        check_records(cfg, records)
        net, tokenizer, prepare_s = causal_lm(loaded)
        n_blocks = int(net.config.num_hidden_layers)
        check_records(cfg, records, n_blocks)
        answers = answer_and_extract(net, tokenizer, records, loaded.sha256(), cfg.max_new_tokens, cfg.batch_size,
                                     cfg.cache, ctx.progress, span=cfg.position == "span")
        width = int(answers.hidden[cfg.position].shape[-1])
        fitted, rep, plot_data = run_train(answers, cfg, n_blocks, ctx.progress)
        report: dict[str, Any] = {
            "model": loaded.ref.raw, "output": None, "report_dir": None, "dry_run": ctx.dry_run, "probe": cfg.probe,
            "position": cfg.position, "layer": fitted.info["layer"],
            "cost": {"load_s": round(load_seconds(ctx, prepare_s), 2),
                     "per_item_s": round(answers.seconds / len(records), 4),
                     "answer_seconds": round(answers.seconds, 1), "threads": torch.get_num_threads(),
                     "cached": answers.cached},
            **rep, "figures": []}

        def write(output: str) -> None:
            import json

            from dnnkit.jsonsafe import to_json
            from dnnkit.models.atomic import atomic_dir
            from dnnkit.models.save import write_checkpoint
            from dnnkit.probes.hallucination.pipeline import probe_record
            from dnnkit.probes.hallucination.plots import write_plots

            folder = report_dir_of(cfg, output)
            record = probe_record(loaded.ref.raw, loaded.sha256(), n_blocks, width, cfg, tokenizer, records, cfg.qa,
                                  rep, fitted.info["layer"])
            write_checkpoint(output, fitted.tensors(), record, force=True, command=ctx.argv)
            report.update(output=str(Path(output)), report_dir=str(folder), dry_run=False)
            with atomic_dir(folder) as tmp:
                report["figures"] = write_plots(tmp, plot_data, f"{cfg.probe} probe")
                (tmp / "report.json").write_text(json.dumps(json.loads(to_json(report)), indent=1) + "\n")

        return ProbeResult(report, write, extra={"probe": fitted, "answers": answers, "plots": plot_data})


def check_fit(probe: str, record: dict[str, Any], model: str, sha256: str | None, width: int | None,
              n_blocks: int | None) -> None:
    """The probe was trained on this model (sha256), reads its width and one of its layers."""
    source, arch = record.get("source") or {}, record.get("arch") or {}
    if sha256 is not None and source.get("sha256") and sha256 != source["sha256"]:
        raise InputError(f"{probe} was trained on another model (sha256 {str(source['sha256'])[:12]}..., "
                         f"{model} has {sha256[:12]}...)", hint=f"score with {source.get('reference')}")
    if width is not None and int(width) != int(arch.get("input_dim", -1)):
        raise InputError(f"{probe} reads width {arch.get('input_dim')}, {model} has width {width}")
    layer = int(record["layer"])
    if n_blocks is not None and layer > int(n_blocks):
        raise InputError(f"{probe} reads layer {layer}, {model} has only {n_blocks} blocks")


class ScoreProbe(Probe):
    """Risk scores (P(wrong)) for the answers to new questions, AUROC when gold answers are given; saving
    writes them as JSON Lines."""

    name = "probe-hallucination score"

    def input_paths(self, cfg: Any) -> list[str]:
        return [str(cfg.probe)]
    Config = ScoreConfig
    needs_model = True

    def precheck(self, model: Any, cfg: ScoreConfig) -> None:
        """The data, and the probe against the model's files (sha256, width, blocks) before it is loaded."""
        from dnnkit.probes.hallucination.dataset import load_records
        from dnnkit.probes.hallucination.pipeline import model_facts

        record = cfg.record()
        load_records(str(cfg.qa), require_gold=False)
        if not isinstance(model, str):
            return
        facts = model_facts(model)
        check_fit(str(cfg.probe), record, model, facts["sha256"], facts["width"], facts["n_blocks"])
        if facts.get("task") not in (None, "causal-lm"):
            raise not_causal(model, facts["task"])

    def apply(self, loaded: Any, cfg: ScoreConfig, ctx: Any) -> ProbeResult:
        import torch

        from dnnkit.models.safetensors_io import load_tensors
        from dnnkit.probes.hallucination.answers import answer_and_extract
        from dnnkit.probes.hallucination.dataset import load_records
        from dnnkit.probes.hallucination.pipeline import score_records
        from dnnkit.probes.hallucination.probes import Probe as FittedProbe

        record = cfg.record()
        records = load_records(str(cfg.qa), require_gold=False)
        net, tokenizer, prepare_s = causal_lm(loaded)
        check_fit(str(cfg.probe), record, loaded.ref.raw, loaded.sha256(), int(net.config.hidden_size),
                  int(net.config.num_hidden_layers))
        if (record.get("prompt") or {}).get("answer_stems") and any("answer_stem" not in r for r in records):
            ctx.warn("the probe was trained with answer stems; records without `answer_stem` get an empty "
                     "assistant turn, which the probe has not seen")
        arch = record.get("arch") or {}
        fitted = FittedProbe.from_tensors(str(arch.get("type")), load_tensors(Path(str(cfg.probe))))
        mnt = cfg.max_new_tokens or int((record.get("decoding") or {}).get("max_new_tokens", 8))
        position = str(record.get("position", "first"))
        answers = answer_and_extract(net, tokenizer, records, loaded.sha256(), mnt, cfg.batch_size, None,
                                     ctx.progress, span=position == "span")
        thr = cfg.threshold_value()
        threshold = float(record.get("threshold", 0.5)) if thr is None else thr
        layer = int(record["layer"])
        rows, summary = score_records(answers, fitted, layer, position, threshold)
        report = {"model": loaded.ref.raw, "probe": cfg.probe, "output": None, "dry_run": ctx.dry_run,
                  "layer": layer, "position": record.get("position"),
                  "cost": {"load_s": round(load_seconds(ctx, prepare_s), 2),
                           "per_item_s": round(answers.seconds / len(records), 4),
                           "threads": torch.get_num_threads()}, **summary}

        def write(output: str) -> None:
            from dnnkit.jsonsafe import to_json
            from dnnkit.models.atomic import atomic_file

            with atomic_file(output) as tmp:
                tmp.write_text("".join(to_json(r) + "\n" for r in rows), encoding="utf-8")
            report["output"] = str(Path(output))

        return ProbeResult(report, write, extra={"rows": rows, "answers": answers})


DATASET_BUILD = DatasetBuildProbe()
TRAIN = TrainProbe()
SCORE = ScoreProbe()
