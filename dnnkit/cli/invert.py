"""`dnnkit invert`: generative model-inversion (GMI) audit of an image classifier.

`dnnkit invert train-prior --data D -o prior.safetensors` trains the WGAN-GP prior on public images;
`dnnkit invert attack MODEL --prior prior.safetensors -o DIR` (also spelled `dnnkit invert MODEL ...`) runs
GMI and the pixel baseline and evaluates them with an independent evaluator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from dnnkit.cli.options import DeviceOpt, ModelArg, SeedOpt
from dnnkit.cli.shared import LOAD, WRITE, Shared, shared_options

if TYPE_CHECKING:
    import click

THREADS_ONE = "torch CPU threads (default 1: small nets run fastest on one)."


class InvertGroup(TyperGroup):
    """A group whose default command is `attack`: `dnnkit invert MODEL ...` = `dnnkit invert attack MODEL ...`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args:  # help on stderr, exit 2 (click's NoArgsIsHelpError escapes the root's handler here)
            import click  # only here: the click package is not needed to start other commands

            click.echo(ctx.get_help(), err=True)
            ctx.exit(2)
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["attack", *args]
        return super().resolve_command(ctx, args)


app = typer.Typer(cls=InvertGroup, no_args_is_help=False, add_completion=False, rich_markup_mode=None,
                  help="Model-inversion audit (GMI): train-prior, then attack MODEL (`dnnkit invert MODEL` works too).")


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
    from dnnkit.probes.inversion.probe import TRAIN_PRIOR, TrainPriorConfig, prior_pngs

    shared.output_or_error("name the prior file (PRIOR.safetensors)")
    if shared.output is not None:
        prior_pngs(shared.output)  # the suffix, on --dry-run too
    cfg = TrainPriorConfig(data=data, split=split, prior_arch=prior_arch, z_dim=z_dim, steps=steps, n_critic=n_critic,
                           gp_weight=gp_weight, lr=lr, batch_size=batch_size, width=width, seed=seed, device=device)
    r = shared.run_probe(TRAIN_PRIOR, None, cfg).report
    shared.out.result(r, lambda console: console.print(
        f"prior {r['prior']['arch']} z={r['prior']['z_dim']} trained in {r['seconds']:.1f} s on "
        f"{r['data']['n_public']} public images; critic loss {r['last']['critic_loss']:.4f}; "
        + (f"written to {r['output']} (samples: {r['samples_png']})" if r["samples_png"] else
           "nothing written (dry run)")))


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
    from dnnkit.probes.inversion.probe import INVERT, InvertConfig

    shared.output_or_error("name the report folder (-o DIR)")
    cfg = InvertConfig(per_class=per_class, restarts=restarts, steps=steps, lr=lr, momentum=momentum,
                       id_weight=id_weight, seed=seed, prior=prior, data=data, targets=targets,
                       target_class=target_class, method=method, evaluator=evaluator, evaluator_epochs=evaluator_epochs,
                       allow_closed_set_evaluator=allow_closed_set_evaluator, target_labels=target_labels,
                       device=shared.device)
    report = shared.run_probe(INVERT, model, cfg).report
    shared.out.result(report, lambda console: _render_attack(console, report))


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
