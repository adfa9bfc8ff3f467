"""`lowrank` as a Surgery: factor the network's Linear/Conv2d/Conv1D layers (SVD, ASVD, SVD-LLM
whitening, Maestro, or re-cut with --truncate); `apply_weights` truncates a bare file tensor by tensor
(plain SVD only: no data can flow through a file without an architecture)."""

from __future__ import annotations

from typing import Any

from dnnkit.errors import InputError
from dnnkit.surgery.contract import Artifact, Context, Result, Surgery
from dnnkit.surgery.lowrank.api import LowRankConfig


class LowRankSurgery(Surgery):
    """Two thinner layers in place of one (recorded as a structural recipe step)."""

    name = "lowrank"
    Config = LowRankConfig
    structural = True

    def streams(self, ref: Any, cfg: LowRankConfig, arch: str | None) -> bool:
        from dnnkit.surgery.lowrank.bare import is_bare

        if not is_bare(ref, arch):
            return False
        if cfg.method == "truncate":
            raise InputError("--truncate needs a checkpoint with factored layers (written by dnnkit lowrank)")
        if cfg.method != "svd":
            raise InputError(f"--{cfg.method} needs the network (calibration data flows through it): "
                             f"{ref.raw} has no architecture", hint="pass --arch, or use --svd")
        return True

    def apply_weights(self, ref: Any, cfg: LowRankConfig, ctx: Context) -> Result:
        from dnnkit.surgery.lowrank.bare import lowrank_bare

        report = lowrank_bare(ref, cfg, ctx.output, force=True, progress=ctx.progress)
        report.update({"model": ref.raw, "plots": {}})
        return Result(None, None, report, written=ctx.output is not None)

    def apply(self, loaded: Any, cfg: LowRankConfig, ctx: Context) -> Result:
        from dnnkit.surgery.lowrank.api import lowrank, plan

        plan(loaded, cfg)
        done = lowrank(loaded, cfg, ctx.progress)
        report = done.report
        report.update({"model": loaded.ref.raw, "plots": {}})
        fid = report.get("fidelity") or {}
        artifacts = [Artifact(lambda output: _plots(output, done, report))] if cfg.plots else []
        return Result(done.model, done.step, report, loaded, before=dict(fid.get("dense") or {}),
                      after=dict(fid.get("factored") or {}),
                      record_metrics={"lowrank": {"totals": report["totals"], "fidelity": report["fidelity"]}},
                      structural=True, artifacts=artifacts)


def _plots(output: str, done: Any, report: dict[str, Any]) -> dict[str, str]:
    from dnnkit.surgery.lowrank.plots import write_plots

    report["plots"] = write_plots(output, done, report)
    return report["plots"]


LOWRANK = LowRankSurgery()
