"""`dnnkit invert`: generative model-inversion (GMI) audit of an image classifier.

`dnnkit invert train-prior --data D -o prior.safetensors` trains the WGAN-GP prior on public images;
`dnnkit invert attack MODEL --prior prior.safetensors -o DIR` (also spelled `dnnkit invert MODEL ...`) runs
GMI and the pixel baseline and evaluates them with an independent evaluator.
"""

from __future__ import annotations

from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from dnnkit.cli.common import command_line
from dnnkit.cli.options import DeviceOpt, ModelArg, SeedOpt
from dnnkit.cli.shared import LOAD, WRITE, Shared, shared_options

THREADS_ONE = "torch CPU threads (default 1: small nets run fastest on one)."


class InvertGroup(TyperGroup):
    """A group whose default command is `attack`: `dnnkit invert MODEL ...` = `dnnkit invert attack MODEL ...`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args:  # help on stderr, exit 2 (click's NoArgsIsHelpError escapes the root's handler here)
            click.echo(ctx.get_help(), err=True)
            ctx.exit(2)
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["attack", *args]
        return super().resolve_command(ctx, args)


app = typer.Typer(cls=InvertGroup, no_args_is_help=False, add_completion=False, rich_markup_mode=None,
                  help="Model-inversion audit (GMI): train-prior, then attack MODEL (`dnnkit invert MODEL` works too).")


def _check_device(device: str) -> None:
    import torch

    from dnnkit.errors import InputError

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device}: no CUDA device is available")
    if not (device == "cpu" or device.startswith("cuda")):
        raise InputError(f"--device {device!r}: use cpu or cuda[:N]")


@app.command("train-prior")
@shared_options(WRITE, defaults={"threads": 1}, helps={
    "threads": THREADS_ONE,
    "output": "Prior file (.safetensors); PRIOR.samples.png and PRIOR.progress.png are written beside it."})
def train_prior_command(
    data: Annotated[str, typer.Option("--data", help="Image dataset: digits, fashion-mnist, imagefolder:PATH, "
                                                     "npz:PATH.")],
    split: Annotated[str, typer.Option("--split", help="shared:CLASSES (public = a random half of train, labels "
                                                       "dropped) or disjoint:CLASSES (public = the other classes).")]
    = "shared:5-9",
    prior_arch: Annotated[str, typer.Option("--prior-arch", help="auto (mlp on CPU, dcgan on CUDA), mlp or "
                                                                 "dcgan.")] = "auto",
    z_dim: Annotated[str, typer.Option("--z-dim", help="Latent size: auto (20 for 8x8 mlp, 32 for larger mlp, "
                                                       "100 dcgan) or a number.")] = "auto",
    steps: Annotated[int, typer.Option("--steps", help="Critic steps.", min=1)] = 6000,
    n_critic: Annotated[int, typer.Option("--n-critic", help="Critic steps per generator step.", min=1)] = 5,
    gp_weight: Annotated[float, typer.Option("--gp-weight", help="Gradient-penalty weight.", min=0.0)] = 10.0,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate (betas 0.5, 0.999).")] = 2e-4,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size.", min=1)] = 64,
    width: Annotated[int, typer.Option("--width", help="dcgan base width.", min=4)] = 64,
    seed: SeedOpt = 0,
    device: DeviceOpt = "cpu",
    *,
    shared: Shared,
) -> None:
    """Train the GMI prior (WGAN-GP generator and critic) on the public images of a split."""

    from dnnkit.data.registry import check_data_spec
    from dnnkit.errors import InputError
    from dnnkit.probes.inversion.splits import parse_split

    out, output, dry_run = shared.out, shared.output, shared.dry_run
    spec = parse_split(split)
    if lr <= 0:
        raise InputError("--lr must be > 0")
    if prior_arch not in ("auto", "mlp", "dcgan"):
        raise InputError(f"--prior-arch {prior_arch!r}: use auto, mlp or dcgan")
    if z_dim != "auto" and not (z_dim.isdigit() and int(z_dim) > 0):
        raise InputError(f"--z-dim {z_dim!r}: use auto or a positive integer")
    shared.output_or_error("name the prior file (PRIOR.safetensors)")
    if output is not None and not output.endswith(".safetensors"):
        raise InputError(f"output {output!r} must end in .safetensors")
    if output is not None and not dry_run:
        shared.check_output(output)
        shared.check_output(_samples_path(output), replace=True)
        shared.check_output(_samples_path(output, "progress"), replace=True)
    check_data_spec(data)
    _check_device(device)
    import torch

    from dnnkit.probes.inversion.nets import default_z_dim
    from dnnkit.probes.inversion.prior import PriorConfig, save_prior
    from dnnkit.probes.inversion.run import load_split_data, train_prior_on

    arch = prior_arch if prior_arch != "auto" else ("dcgan" if device.startswith("cuda") else "mlp")
    split_data = load_split_data(data, spec, seed)
    shape = tuple(int(s) for s in split_data.train.x.shape[1:])
    if arch == "dcgan" and (shape[1] > 32 or shape[2] > 32):
        raise InputError(f"--prior-arch dcgan draws 32x32 images; the data is {shape[1]}x{shape[2]}")
    cfg = PriorConfig(arch=arch, z_dim=default_z_dim(arch, shape) if z_dim == "auto" else int(z_dim), steps=steps,
                      n_critic=n_critic, gp_weight=gp_weight, lr=lr, batch_size=batch_size, seed=seed, width=width)
    out.info(f"invert: training a {arch} prior (z {cfg.z_dim}) on {len(split_data.split.public)} public images of "
             f"{split_data.name} ({spec}), {steps} critic steps")
    prior, meta = train_prior_on(split_data, cfg, device=device, progress=out.progress())
    samples_png = progress_png = None
    snapshots = meta.pop("snapshots")
    if output is not None and not dry_run:
        from dnnkit.models.atomic import atomic_file
        from dnnkit.probes.inversion.grids import save_grid, square_grid
        from dnnkit.probes.inversion.run import progress_rows

        samples_png, progress_png = _samples_path(output), _samples_path(output, "progress")
        with atomic_file(samples_png) as tmp:
            square_grid(tmp, prior.sample(64, seed=seed), title=f"prior samples G(z), {arch}, {steps} critic steps")
        with atomic_file(progress_png) as tmp:
            save_grid(tmp, progress_rows(snapshots), title="the same 8 latents during training")
        save_prior(output, prior, {**meta, "command": command_line()}, force=shared.force)
    result = {"dnnkit_version": _version(), "command": command_line(), "output": output,
              "samples_png": str(samples_png) if samples_png else None,
              "progress_png": str(progress_png) if progress_png else None, "dry_run": dry_run,
              "data": split_data.summary(),
              "prior": {"arch": arch, "z_dim": cfg.z_dim, "image_shape": list(prior.image_shape), "steps": steps,
                        "n_critic": n_critic, "gp_weight": gp_weight, "lr": lr, "batch_size": batch_size,
                        "seed": seed, "threads": torch.get_num_threads()},
              "last": meta["history"]["last"], "seconds": meta["seconds"]}
    out.result(result, lambda console: console.print(
        f"prior {arch} z={cfg.z_dim} trained in {meta['seconds']:.1f} s on {result['data']['n_public']} public "
        f"images; critic loss {result['last']['critic_loss']:.4f}; "
        + (f"written to {output} (samples: {samples_png})" if samples_png else "nothing written (dry run)")))


def _samples_path(output: str, kind: str = "samples") -> Any:
    from pathlib import Path

    p = Path(output)
    return p.with_name(p.name[: -len(".safetensors")] + f".{kind}.png")


def _version() -> str:
    from dnnkit import __version__

    return __version__


def _parse_targets(targets: str, target_class: list[int] | None) -> list[int] | None:
    from dnnkit.probes.inversion.splits import parse_classes

    chosen: set[int] = set(target_class or [])
    if targets != "all-private":
        chosen.update(parse_classes(targets, "--targets"))
    return sorted(chosen) if chosen else None


@app.command("attack")
@shared_options(LOAD, WRITE, defaults={"threads": 1}, helps={
    "threads": THREADS_ONE, "output": "Output folder (report.json, PNG grids, reconstructions.safetensors)."})
def attack_command(
    model: ModelArg,
    prior: Annotated[str, typer.Option("--prior", help="Prior file from `dnnkit invert train-prior`.")],
    data: Annotated[str | None, typer.Option("--data", help="Dataset (default: the prior's).")] = None,
    targets: Annotated[str, typer.Option("--targets", help="Private classes to attack: all-private, 5-9 or "
                                                           "0,2,4.")] = "all-private",
    target_class: Annotated[list[int] | None, typer.Option("--target-class", help="A class to attack "
                                                                                   "(repeatable).")] = None,
    method: Annotated[str, typer.Option("--method", help="gmi, pixel or both.")] = "both",
    per_class: Annotated[int, typer.Option("--per-class", help="Attempts per class.")] = 20,
    restarts: Annotated[int, typer.Option("--restarts", help="Restarts per attempt (best by target logit).")] = 5,
    steps: Annotated[int, typer.Option("--steps", help="Optimisation steps (same budget for both methods).")] = 1500,
    lr: Annotated[float, typer.Option("--lr", help="Step size of the Nesterov update.")] = 0.02,
    momentum: Annotated[float, typer.Option("--momentum", help="Nesterov momentum, in [0, 1).")] = 0.9,
    id_weight: Annotated[float, typer.Option("--id-weight", help="lambda: weight of the identity (CE) loss.")]
    = 100.0,
    evaluator: Annotated[str, typer.Option("--evaluator", help="auto (train a different architecture on all "
                                                               "classes), none (the target itself: not "
                                                               "independent), or a model reference.")] = "auto",
    evaluator_epochs: Annotated[int | None, typer.Option("--evaluator-epochs", help="Epochs of the auto "
                                                                                     "evaluator.", min=1)] = None,
    allow_closed_set_evaluator: Annotated[bool, typer.Option("--allow-closed-set-evaluator",
                                                             help="Accept an evaluator that knows fewer classes "
                                                                  "than the dataset (with a warning).")] = False,
    target_labels: Annotated[str, typer.Option("--target-labels", help="auto, or the dataset class of each target "
                                                                       "output: 5,6,7,8,9.")] = "auto",
    seed: SeedOpt = 0,
    *,
    shared: Shared,
) -> None:
    """Invert MODEL: GMI latent search under the prior and/or direct pixel optimisation, evaluated independently."""
    from dnnkit.errors import InputError
    from dnnkit.probes.inversion.attack import AttackConfig
    from dnnkit.probes.inversion.prior import read_prior_info

    out, output, dry_run, device = shared.out, shared.output, shared.dry_run, shared.device
    cfg = AttackConfig(per_class=per_class, restarts=restarts, steps=steps, lr=lr, momentum=momentum,
                       id_weight=id_weight, seed=seed)
    cfg.check()
    methods = {"both": ["gmi", "pixel"], "gmi": ["gmi"], "pixel": ["pixel"], "pixels": ["pixel"]}.get(method)
    if methods is None:
        raise InputError(f"--method {method!r}: use gmi, pixel or both")
    chosen = _parse_targets(targets, target_class)
    shared.output_or_error("name the report folder (-o DIR)")
    if output is not None and not dry_run:
        shared.check_output(output, model)
        shared.check_output(output, prior)
    info = read_prior_info(prior)
    data_spec = data or info.get("data", {}).get("name")
    if not data_spec:
        raise InputError("the prior records no dataset", hint="pass --data")
    from dnnkit.data.registry import check_data_spec

    check_data_spec(data_spec)
    _check_device(device)
    from dnnkit.models.registry import load_model
    from dnnkit.probes.inversion import run
    from dnnkit.probes.inversion.prior import load_prior

    progress = out.progress()
    loaded = shared.load(model)
    target = loaded.require_network("invert")
    if loaded.info.task not in ("classifier", "unknown"):
        raise InputError(f"{model} is a {loaded.info.task}; invert audits image classifiers")
    target_info = {"ref": model, "sha256": loaded.sha256(), "arch": loaded.arch,
                   "input_shape": list(loaded.info.input_shape) if loaded.info.input_shape else None}
    prior_obj = load_prior(prior, device=device)
    split_info = info.get("data", {})
    split_data = run.load_split_data(data_spec, split_info.get("split", "shared:5-9"), int(split_info.get("split_seed",
                                                                                                           0)))
    plan = run.plan_attack(target, target_info, prior_obj, {"ref": prior}, split_data, targets=chosen,
                           methods=methods, cfg=cfg, target_labels=target_labels, device=device)
    if evaluator == "none":
        run.use_target_as_evaluator(plan)
    elif evaluator != "auto":
        e_loaded = load_model(evaluator, device=device, progress=progress)
        e_net = e_loaded.require_network("--evaluator")
        run.check_evaluator(plan, e_net, {"ref": evaluator, "sha256": e_loaded.sha256(), "arch": e_loaded.arch,
                                          "input_shape": list(e_loaded.info.input_shape)
                                          if e_loaded.info.input_shape else None}, allow_closed_set_evaluator)
    plan.target_info["test_accuracy"] = _target_accuracy(plan)
    if evaluator == "auto":
        out.info("invert: training the auto evaluator on all train images of all classes")
        e_net, e_info = run.train_auto_evaluator(split_data, seed, evaluator_epochs, progress=progress)
        run.check_evaluator(plan, e_net.to(device), e_info, allow_closed_set_evaluator)
    if evaluator != "auto" and evaluator != "none":
        plan.evaluator_info["test_accuracy"] = _evaluator_accuracy(plan)
    for w in plan.warnings:
        out.warn(w)
    outcome = run.run_attack(plan, progress=progress)
    report = run.build_report(plan, outcome, command_line())
    report["output"] = output
    report["dry_run"] = dry_run
    if output is not None and not dry_run:
        report["files"] = run.write_outputs(output, plan, outcome, report)
    out.result(report, lambda console: _render_attack(console, report))


def _target_accuracy(plan: Any) -> float:
    """T's accuracy on the held-out private images (through its label mapping)."""
    import torch

    d = plan.data
    x, y = d.test.x[d.split.private_test], d.test.y[d.split.private_test]
    keep = torch.tensor([int(c) in plan.output_of for c in y], dtype=torch.bool)
    if not bool(keep.any()):
        return float("nan")
    mapped = torch.tensor([plan.output_of[int(c)] for c in y[keep]])
    with torch.no_grad():
        pred = plan.target(x[keep].to(plan.device)).argmax(1).cpu()
    return float((pred == mapped).float().mean())


def _evaluator_accuracy(plan: Any) -> float:
    import torch

    d = plan.data
    with torch.no_grad():
        pred = plan.evaluator(d.test.x.to(plan.device)).argmax(1).cpu()
    return float((pred == d.test.y).float().mean())


def _render_attack(console: Any, r: dict[str, Any]) -> None:
    from rich.table import Table

    a = r["attack"]
    table = Table(title=f"invert {r['target']['ref']} on {r['data']['name']} ({r['data']['split']}), classes "
                        f"{a['classes_attacked']}, {a['per_class']} attempts x {a['restarts']} restarts x "
                        f"{a['steps']} steps")
    cols = ["top1", "knn1_top1", "target_top1", "knn_dist", "feat_dist", "nearest_pixel_l2sq", "psnr", "leak_ratio",
            "distinct"]
    table.add_column("images")
    for c in cols:
        table.add_column(c, justify="right")
    rows = [(m, v) for m, v in r["results"].items()] + [(f"ref: {m}", v) for m, v in r["references"].items()]
    for name, v in rows:
        table.add_row(name, *[_fmt(v.get(c)) for c in cols])
    console.print(table)
    e = r["evaluator"]
    console.print(f"evaluator: {e.get('ref')} {e.get('arch') if isinstance(e.get('arch'), str) else ''} "
                  f"(test accuracy {_fmt(r['evaluator'].get('test_accuracy'))}); top-5 is uninformative with "
                  f"<= 10 classes" if not next(iter(r["results"].values()))["top5_informative"] else "")
    if r.get("files"):
        console.print(f"written to {r['output']}: {', '.join(r['files'])}")
    for w in r["warnings"]:
        console.print(f"warning: {w}")


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)
