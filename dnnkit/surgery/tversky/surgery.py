"""`swap-projection` as a Surgery: Tversky projection layers (or the fresh-Linear control with the same
budget) in place of the matched Linear layers, then training and the before/after metric."""

from __future__ import annotations

from typing import Any

from dnnkit.errors import InputError
from dnnkit.surgery.contract import Artifact, Context, Result, Surgery
from dnnkit.surgery.tversky.swap import SwapConfig


class SwapProjectionSurgery(Surgery):
    """Replace projections (structural); `cfg.kind` is tversky or linear."""

    name = "swap-projection"
    Config = SwapConfig
    structural = True

    def apply(self, loaded: Any, cfg: SwapConfig, ctx: Context) -> Result:
        from dnnkit.surgery.tversky.swap import swap_projection

        loaded.require_network("swap-projection")
        data = cfg.data or loaded.info.default_data
        if data is None:
            raise InputError(f"{loaded.ref.raw}: no default dataset", hint="pass --data")
        originals = dict(loaded.model.named_modules())
        done = swap_projection(loaded, data, cfg, progress=ctx.progress, dry_run=ctx.dry_run)
        report = {"model": loaded.ref.raw, "data": data, "output": None, **done.report, "plots": []}
        before, after = _metric(report, "metric_before"), _metric(report, "metric_after")
        record_metrics = {"before": report["metric_before"], "after": report["metric_after"],
                          "params_before": report["params_before"], "params_after": report["params_after"]}
        plots = cfg.plots and cfg.kind == "tversky" and not ctx.dry_run
        artifacts = [Artifact(lambda output: _plots(loaded, done, originals, output, report))] if plots else []
        return Result(done.model, done.step, report, loaded, before=before, after=after,
                      record_metrics=record_metrics, structural=True, artifacts=artifacts)


def _metric(report: dict[str, Any], key: str) -> dict[str, Any]:
    """`metric_before`/`metric_after` as a metrics mapping (a dict already, or one named figure)."""
    value = report.get(key)
    if isinstance(value, dict):
        return value
    return {} if value is None else {str(report.get("metric", "metric")): value}


def _plots(loaded: Any, done: Any, originals: dict[str, Any], output: str, report: dict[str, Any]) -> dict[str, str]:
    from dnnkit.surgery.tversky.plots import write_plots

    report["plots"] = write_plots(loaded, done, originals, output)
    return {f"plot{i}": p for i, p in enumerate(report["plots"])}


SWAP_PROJECTION = SwapProjectionSurgery()
