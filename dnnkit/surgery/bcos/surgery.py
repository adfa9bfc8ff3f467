"""`bcosify` as a Surgery: convert a trained image classifier into a B-cos network, fine-tune it,
and measure accuracy, completeness and the grid pointing game; PNGs of its explanations on save."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dnnkit.errors import InputError
from dnnkit.surgery.bcos.pipeline import BcosifyConfig
from dnnkit.surgery.contract import Artifact, Context, Result, Surgery


def png_paths(output: str | None) -> dict[str, Path]:
    """Where the explanation and comparison PNGs of a bcosify output go."""
    if output is None:
        return {}
    base = Path(output)
    stem = base.with_suffix("") if base.suffix == ".safetensors" else base
    return {"explain": Path(f"{stem}.explain.png"), "compare": Path(f"{stem}.compare.png")}


class BcosifySurgery(Surgery):
    """B-cos layers in place of Linear/Conv2d (structural), fine-tuned on the model's data."""

    name = "bcosify"
    Config = BcosifyConfig
    structural = True

    def artifact_paths(self, cfg: BcosifyConfig, output: str) -> list[Path]:
        return list(png_paths(output).values()) if cfg.plots else []

    def apply(self, loaded: Any, cfg: BcosifyConfig, ctx: Context) -> Result:
        from dnnkit.probes.explain.dynamic import is_bcos
        from dnnkit.surgery.bcos.pipeline import bcosify

        net = loaded.require_network("bcosify")
        if is_bcos(net):
            raise InputError(f"{loaded.ref.raw} is already a B-cos network")
        if loaded.info.task != "classifier":
            raise InputError(f"{loaded.ref.raw} is not an image classifier (task {loaded.info.task})")
        data = cfg.data or loaded.info.default_data
        if data is None:
            raise InputError(f"{loaded.ref.raw}: no default dataset", hint="pass --data")
        train, test = load_images(data)
        done, opts = bcosify(net, loaded.arch, train, test, cfg, dry_run=ctx.dry_run, progress=ctx.progress,
                             warn=ctx.warn)
        report = bcosify_report(loaded.ref.raw, data, cfg, done, opts)
        metrics = {k: report[k] for k in ("accuracy", "completeness_error", "grid_pointing", "equivalence_max_abs")}
        artifacts = [Artifact(lambda output: _plots(net, done, opts, test, output), lambda output: list(
            png_paths(output).values()))] if cfg.plots and not ctx.dry_run else []
        return Result(done.model, done.step(cfg, opts), report, loaded,
                      before={"accuracy": report["accuracy"]["original"]}, after=after_metrics(report),
                      record_metrics=metrics, structural=True, artifacts=artifacts)

    def finish(self, result: Result, output: str | None) -> None:
        result.report["png"] = result.report.get("artifacts") or None


def load_images(data: str) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """(x, y) of the train and test splits of an image dataset."""
    from dnnkit.data import ImageData, load_data

    train, test = load_data(data, "train"), load_data(data, "test")
    if not isinstance(train, ImageData):
        raise InputError(f"--data {data} holds no images")
    return (train.x, train.y), (test.x, test.y)


def after_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """The figures `--require` may gate on: accuracy, max completeness error, grid pointing score."""
    after = {"accuracy": report["accuracy"]["final"]}
    if report.get("completeness_error"):
        after["completeness_error"] = report["completeness_error"]["max"]
    if report.get("grid_pointing"):
        after["grid_pointing"] = report["grid_pointing"]["score"]
    return after


def bcosify_report(model: str, data: str, cfg: BcosifyConfig, result: Any, opts: Any) -> dict[str, Any]:
    """The `--json` object of one bcosify run."""
    ft = result.finetune
    return {
        "model": model, "data": data, "b": cfg.b, "b_warmup": cfg.b_warmup, "encoding": opts.encoding,
        "mean": opts.mean, "std": opts.std, "normalisation_source": result.normalisation_source,
        "logit_bias": result.model.logit_bias, "logit_scale": result.model.logit_scale,
        "modules": [c.as_dict() for c in result.changes],
        "gap_reorder": {"applied": result.plan.gap_pool is not None, "reason": result.plan.gap_reason},
        "equivalence_max_abs": result.equivalence_max_abs,
        "accuracy": {"original": result.accuracy_original, "epoch0": result.accuracy_epoch0,
                     "epochs": ft.accuracy, "final": ft.accuracy[-1] if ft.accuracy else result.accuracy_epoch0},
        "loss": ft.loss, "b_per_epoch": ft.b, "seconds_per_epoch": ft.seconds_per_epoch,
        "completeness_error": result.completeness, "grid_pointing": result.pointing,
        "output": None, "png": None,
    }


def _plots(original: Any, result: Any, opts: Any, test: tuple[Any, Any], output: str) -> dict[str, str]:
    import torch

    from dnnkit.probes.explain.dynamic import explain_dynamic, input_x_gradient
    from dnnkit.probes.explain.render import Row, colour_image, save_rows
    from dnnkit.surgery.bcos.pipeline import original_on_pixels

    pngs = png_paths(output)
    x, y = test
    picks = [int((y == c).nonzero()[0]) for c in torch.unique(y)[:8]]
    xs = x[picks]
    bc = explain_dynamic(result.model, xs)
    ixg = input_x_gradient(original_on_pixels(original, opts.mean, opts.std), xs, bc.classes)
    rows, compare = [], []
    for i, idx in enumerate(picks):
        colour = colour_image(bc.weights[i], bc.contributions[i])
        title = f"#{idx} label {int(y[idx])} pred {int(bc.predicted[i])}"
        rows.append(Row(xs[i], bc.contributions[i], colour, title))
        compare.append(Row(xs[i], bc.contributions[i], colour, title,
                           extra=[("original: input×gradient", ixg.contributions[i])]))
    save_rows(pngs["explain"], rows)
    save_rows(pngs["compare"], compare)
    return {k: str(v) for k, v in pngs.items()}


BCOSIFY = BcosifySurgery()
