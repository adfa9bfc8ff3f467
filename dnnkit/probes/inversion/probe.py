"""`dnnkit invert` as two Probes: `TRAIN_PRIOR` (stage 1, reads no model; writes PRIOR.safetensors plus
PRIOR.samples.png and PRIOR.progress.png) and `INVERT` (stage 2 on MODEL; writes a report folder).

Both run through `dnnkit.runner.run_probe`; the reports are the commands' `--json` objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dnnkit.errors import InputError
from dnnkit.probes.contract import Probe, ProbeResult
from dnnkit.probes.inversion.config import InvertConfig, TrainPriorConfig


def prior_pngs(output: str | Path) -> tuple[Path, Path]:
    """PRIOR.samples.png and PRIOR.progress.png beside PRIOR.safetensors (InputError for another suffix)."""
    p = Path(output)
    if not p.name.endswith(".safetensors"):
        raise InputError(f"output {str(output)!r} must end in .safetensors")
    stem = p.name[: -len(".safetensors")]
    return p.with_name(f"{stem}.samples.png"), p.with_name(f"{stem}.progress.png")


class TrainPriorProbe(Probe):
    """Trains the WGAN-GP prior on the public images of a split; saving writes the prior and two PNGs."""

    name = "invert train-prior"
    Config = TrainPriorConfig
    needs_model = False

    def output_paths(self, cfg: TrainPriorConfig, output: str) -> list[Path]:
        prior_pngs(output)  # the suffix; the PNGs are replaced without --force, so they are checked in apply
        return []

    def apply(self, loaded: Any, cfg: TrainPriorConfig, ctx: Any) -> ProbeResult:
        import torch

        from dnnkit import __version__
        from dnnkit.models.atomic import check_output_path
        from dnnkit.probes.inversion.nets import default_z_dim
        from dnnkit.probes.inversion.prior import PriorConfig
        from dnnkit.probes.inversion.run import load_split_data, train_prior_on
        from dnnkit.probes.inversion.splits import parse_split

        if ctx.output is not None:
            for png in prior_pngs(ctx.output):
                check_output_path(png, True)
        spec = parse_split(cfg.split)
        arch = cfg.arch()
        split_data = load_split_data(cfg.data, spec, cfg.seed)
        shape = tuple(int(s) for s in split_data.train.x.shape[1:])
        if arch == "dcgan" and (shape[1] > 32 or shape[2] > 32):
            raise InputError(f"--prior-arch dcgan draws 32x32 images; the data is {shape[1]}x{shape[2]}")
        z_dim = default_z_dim(arch, shape) if str(cfg.z_dim) == "auto" else int(cfg.z_dim)
        pcfg = PriorConfig(arch=arch, z_dim=z_dim, steps=cfg.steps, n_critic=cfg.n_critic, gp_weight=cfg.gp_weight,
                           lr=cfg.lr, batch_size=cfg.batch_size, seed=cfg.seed, width=cfg.width)
        ctx.progress.log(f"invert: training a {arch} prior (z {z_dim}) on {len(split_data.split.public)} public "
                         f"images of {split_data.name} ({spec}), {cfg.steps} critic steps")
        prior, meta = train_prior_on(split_data, pcfg, device=cfg.device, progress=ctx.progress)
        snapshots = meta.pop("snapshots")
        report: dict[str, Any] = {
            "dnnkit_version": __version__, "command": ctx.argv, "output": None, "samples_png": None,
            "progress_png": None, "dry_run": ctx.dry_run, "data": split_data.summary(),
            "prior": {"arch": arch, "z_dim": z_dim, "image_shape": list(prior.image_shape), "steps": cfg.steps,
                      "n_critic": cfg.n_critic, "gp_weight": cfg.gp_weight, "lr": cfg.lr,
                      "batch_size": cfg.batch_size, "seed": cfg.seed, "threads": torch.get_num_threads()},
            "last": meta["history"]["last"], "seconds": meta["seconds"]}

        def write(output: str) -> None:
            write_prior(output, prior, meta, snapshots, cfg, ctx.argv)
            samples, progress = prior_pngs(output)
            report.update(output=output, samples_png=str(samples), progress_png=str(progress))

        return ProbeResult(report, write, extra={"prior": prior, "snapshots": snapshots})


def write_prior(output: str, prior: Any, meta: dict[str, Any], snapshots: list[Any], cfg: TrainPriorConfig,
                argv: list[str] | None) -> None:
    """The two PNGs (replaced freely), then the prior file; each write atomic."""
    from dnnkit.models.atomic import atomic_file
    from dnnkit.probes.inversion.grids import save_grid, square_grid
    from dnnkit.probes.inversion.prior import save_prior
    from dnnkit.probes.inversion.run import progress_rows

    samples, progress = prior_pngs(output)
    with atomic_file(samples) as tmp:
        square_grid(tmp, prior.sample(64, seed=cfg.seed),
                    title=f"prior samples G(z), {prior.config.arch}, {cfg.steps} critic steps")
    with atomic_file(progress) as tmp:
        save_grid(tmp, progress_rows(snapshots), title="the same 8 latents during training")
    save_prior(output, prior, {**meta, "command": argv}, force=True, command=argv)


class InvertProbe(Probe):
    """GMI latent search under a prior and/or direct pixel optimisation against MODEL, judged by an
    independent evaluator; saving writes report.json, PNG grids and reconstructions.safetensors."""

    name = "invert"

    def input_paths(self, cfg: Any) -> list[str]:
        return [str(cfg.prior)]
    Config = InvertConfig
    needs_model = True

    def apply(self, loaded: Any, cfg: InvertConfig, ctx: Any) -> ProbeResult:
        from dnnkit.models.registry import load_model
        from dnnkit.probes.inversion import run
        from dnnkit.probes.inversion.prior import load_prior

        if loaded is None:
            raise InputError("invert needs MODEL, the classifier to audit")
        info = cfg.prior_info()
        data_spec = cfg.data_spec()
        target = loaded.require_network("invert")
        if loaded.info.task not in ("classifier", "unknown"):
            raise InputError(f"{loaded.ref.raw} is a {loaded.info.task}; invert audits image classifiers")
        target_info = {"ref": loaded.ref.raw, "sha256": loaded.sha256(), "arch": loaded.arch,
                       "input_shape": list(loaded.info.input_shape) if loaded.info.input_shape else None}
        prior = load_prior(str(cfg.prior), device=cfg.device)
        split_info = info.get("data", {})
        split_data = run.load_split_data(data_spec, split_info.get("split", "shared:5-9"),
                                         int(split_info.get("split_seed", 0)))
        plan = run.plan_attack(target, target_info, prior, {"ref": cfg.prior}, split_data,
                               targets=cfg.chosen_targets(), methods=cfg.methods, cfg=cfg,
                               target_labels=cfg.target_labels, device=cfg.device)
        if cfg.evaluator == "none":
            run.use_target_as_evaluator(plan)
        elif cfg.evaluator != "auto":
            e_loaded = load_model(cfg.evaluator, device=cfg.device, progress=ctx.progress)
            e_net = e_loaded.require_network("--evaluator")
            run.check_evaluator(plan, e_net, {"ref": cfg.evaluator, "sha256": e_loaded.sha256(),
                                              "arch": e_loaded.arch, "input_shape": list(e_loaded.info.input_shape)
                                              if e_loaded.info.input_shape else None},
                                cfg.allow_closed_set_evaluator)
        plan.target_info["test_accuracy"] = run.target_accuracy(plan)
        if cfg.evaluator == "auto":
            ctx.progress.log("invert: training the auto evaluator on all train images of all classes")
            e_net, e_info = run.train_auto_evaluator(split_data, cfg.seed, cfg.evaluator_epochs,
                                                     progress=ctx.progress)
            run.check_evaluator(plan, e_net.to(cfg.device), e_info, cfg.allow_closed_set_evaluator)
        if cfg.evaluator not in ("auto", "none"):
            plan.evaluator_info["test_accuracy"] = run.evaluator_accuracy(plan)
        outcome = run.run_attack(plan, progress=ctx.progress)
        report = run.build_report(plan, outcome, ctx.argv)
        report["output"] = None
        report["dry_run"] = ctx.dry_run

        def write(output: str) -> None:
            report.update(output=output, dry_run=False)
            report["files"] = run.write_outputs(output, plan, outcome, report)

        return ProbeResult(report, write, extra={"plan": plan, "outcome": outcome})


TRAIN_PRIOR = TrainPriorProbe()
INVERT = InvertProbe()
