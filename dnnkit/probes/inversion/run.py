"""The audit as library calls: train a prior on a split's public images; plan, run and write an attack.

`plan_attack` does every cheap check (exit 2 on bad input) before `run_attack` does the heavy work, so the
CLI and the benchmark share one path. Nothing here prints; progress goes to a ProgressReporter.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dnnkit import __version__
from dnnkit.data.registry import ImageData
from dnnkit.errors import InputError
from dnnkit.probes.inversion.attack import AttackConfig, AttackResult, run_inversion
from dnnkit.probes.inversion.metrics import EvalData, evaluate_images
from dnnkit.probes.inversion.nets import evaluator_net
from dnnkit.probes.inversion.prior import Prior, PriorConfig, train_prior
from dnnkit.probes.inversion.splits import (
    InversionSplit,
    SplitSpec,
    data_sha256,
    image_hashes,
    make_split,
    parse_split,
)
from dnnkit.progress import ProgressReporter, or_null


@dataclass
class SplitData:
    """A dataset cut by the protocol: train/test images plus the split's index sets."""

    name: str
    train: ImageData
    test: ImageData
    split: InversionSplit
    sha256: str
    seed: int = 0

    @property
    def n_classes(self) -> int:
        return len(self.train.classes)

    @property
    def public_x(self) -> torch.Tensor:
        return self.train.x[self.split.public]

    def eval_data(self) -> EvalData:
        s = self.split
        return EvalData(self.train.x[s.private_train], self.train.y[s.private_train], self.test.x[s.private_test],
                        self.test.y[s.private_test], self.train.x, self.train.y, self.n_classes)

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "split": str(self.split.spec), "split_seed": self.seed,
                "n_public": len(self.split.public), "n_private_train": len(self.split.private_train),
                "n_private_test": len(self.split.private_test), "dropped_duplicates": self.split.dropped_duplicates}


def load_split_data(data_spec: str, split: SplitSpec | str, seed: int) -> SplitData:
    """Load train/test of an image dataset and cut it by the protocol (public and private samples disjoint)."""
    from dnnkit.data.registry import load_data

    spec = parse_split(split) if isinstance(split, str) else split
    train, test = load_data(data_spec, "train"), load_data(data_spec, "test")
    if not isinstance(train, ImageData):
        raise InputError(f"--data {data_spec!r} is not an image dataset")
    cut = make_split(train.y.numpy(), test.y.numpy(), spec, len(train.classes), seed, image_hashes(train.x),
                     image_hashes(test.x))
    if len(cut.public) == 0 or len(cut.private_train) == 0:
        raise InputError(f"--split {spec}: the public or the private part is empty")
    return SplitData(train.name, train, test, cut, data_sha256(train.x, train.y), seed)


def train_prior_on(data: SplitData, cfg: PriorConfig, *, device: str = "cpu",
                   progress: ProgressReporter | None = None) -> tuple[Prior, dict[str, Any]]:
    """Stage 1 on the public images; returns the prior (with public hashes) and its metadata record.

    `meta["snapshots"]` holds (step, G(z) for 8 fixed latents) at every log point: the progress grid.
    """
    fixed_z = torch.randn(8, cfg.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 3)).to(device)
    snapshots: list[tuple[int, torch.Tensor]] = []
    prior, history = train_prior(data.public_x, cfg, device=device, progress=progress,
                                 on_log=lambda step, _losses, gen: snapshots.append((step, gen(fixed_z).cpu())))
    prior.public_hashes = image_hashes(data.public_x)
    meta = {"data": data.summary(), "steps": cfg.steps, "history": history,
            "seconds": history["seconds"], "dnnkit_version": __version__}
    prior.meta = meta
    return prior, {**meta, "snapshots": snapshots}


def progress_rows(snapshots: list[tuple[int, torch.Tensor]]) -> list[tuple[str, list[torch.Tensor | None]]]:
    """Rows of the training-progress grid: one row per log point, the same 8 latents in every row."""
    return [(f"step {step}", list(images)) for step, images in snapshots]


# ---------------------------------------------------------------- attack planning (cheap checks)

def output_mapping(n_outputs: int, n_classes: int, private: tuple[int, ...], spec: str) -> dict[int, int]:
    """Dataset class -> T's output index, from `--target-labels` (auto or an explicit list)."""
    if spec == "auto":
        if n_outputs == n_classes:
            return {c: c for c in range(n_classes)}
        if n_outputs == len(private):
            return {c: j for j, c in enumerate(private)}
        raise InputError(f"the target has {n_outputs} outputs, the dataset {n_classes} classes and the split "
                         f"{len(private)} private classes: the label mapping is unknown",
                         hint="give it with --target-labels, e.g. 5,6,7,8,9 (dataset class of output 0, 1, ...)")
    try:
        labels = [int(t) for t in spec.split(",")]
    except ValueError as exc:
        raise InputError(f"--target-labels {spec!r}: expected auto or a comma list of class ids") from exc
    if len(labels) != n_outputs or len(set(labels)) != len(labels) or any(not 0 <= c < n_classes for c in labels):
        raise InputError(f"--target-labels {spec!r}: need {n_outputs} distinct class ids in 0..{n_classes - 1}")
    return {c: j for j, c in enumerate(labels)}


def check_targets(targets: list[int] | None, n_classes: int, private: tuple[int, ...], protocol: str,
                  output_of: dict[int, int]) -> list[int]:
    """The attacked dataset classes (default: all private classes), each checked."""
    chosen = sorted(set(targets)) if targets else [c for c in private if c in output_of]
    for c in chosen:
        if not 0 <= c < n_classes:
            raise InputError(f"target class {c} is out of range: the dataset has classes 0..{n_classes - 1}")
        if c not in private:
            what = "a public class under the disjoint split" if protocol == "disjoint" else \
                "not a private class of the prior's split"
            raise InputError(f"target class {c} is {what} ({protocol}:{','.join(map(str, private))})",
                             hint="attack one of the private classes")
        if c not in output_of:
            raise InputError(f"target class {c} is not among the target model's outputs", hint="see --target-labels")
    if not chosen:
        raise InputError("no class to attack")
    return chosen


def check_differentiable(model: nn.Module, what: str) -> None:
    """InputError for a model with integer (quantised) weights: no gradient flows through it."""
    params = list(model.parameters()) + list(model.buffers())
    if not any(p.is_floating_point() for p in model.parameters()):
        raise InputError(f"{what} has no floating-point parameters: the attack needs a differentiable model")
    if any(not p.is_floating_point() and p.dim() > 1 for p in params):
        raise InputError(f"{what} has integer-quantised weights: the attack needs a differentiable model")


def check_shapes(prior_shape: tuple[int, ...], model_shape: tuple[int, ...] | None, data_shape: tuple[int, ...],
                 what: str = "target") -> None:
    """The prior's images must have the model's and the data's input shape (no resize is recorded)."""
    if tuple(prior_shape) != tuple(data_shape):
        raise InputError(f"the prior draws images of shape {tuple(prior_shape)} but the data has {tuple(data_shape)}",
                         hint="train the prior on this dataset")
    if model_shape is not None and tuple(model_shape) != tuple(prior_shape):
        raise InputError(f"the prior draws images of shape {tuple(prior_shape)} but the {what} model takes "
                         f"{tuple(model_shape)}", hint="use a prior trained on the model's input size")


class ClassMapped(nn.Module):
    """Lift a classifier over a subset of classes to dataset-class logits (-1e9 for classes it lacks)."""

    def __init__(self, model: nn.Module, output_of: dict[int, int], n_classes: int) -> None:
        super().__init__()
        self.model = model
        self.n_classes = n_classes
        self.register_buffer("dataset_ids", torch.tensor(sorted(output_of), dtype=torch.int64), persistent=False)
        self.register_buffer("output_ids", torch.tensor([output_of[c] for c in sorted(output_of)]), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        logits = self.model(x)
        full = logits.new_full((len(x), self.n_classes), -1e9)
        full[:, self.dataset_ids] = logits[:, self.output_ids]
        return full


def target_accuracy(plan: AttackPlan) -> float:
    """T's accuracy on the held-out private images (through its label mapping)."""
    d = plan.data
    x, y = d.test.x[d.split.private_test], d.test.y[d.split.private_test]
    keep = torch.tensor([int(c) in plan.output_of for c in y], dtype=torch.bool)
    if not bool(keep.any()):
        return float("nan")
    mapped = torch.tensor([plan.output_of[int(c)] for c in y[keep]])
    with torch.no_grad():
        pred = plan.target(x[keep].to(plan.device)).argmax(1).cpu()
    return float((pred == mapped).float().mean())


def evaluator_accuracy(plan: AttackPlan) -> float:
    """The evaluator's accuracy on every test image."""
    assert plan.evaluator is not None
    d = plan.data
    with torch.no_grad():
        pred = plan.evaluator(d.test.x.to(plan.device)).argmax(1).cpu()
    return float((pred == d.test.y).float().mean())


def train_auto_evaluator(data: SplitData, seed: int, epochs: int | None = None,
                         progress: ProgressReporter | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """`--evaluator auto`: a different architecture trained on all train images of all classes."""
    from dnnkit.train import TrainConfig, accuracy, fit

    torch.manual_seed(seed + 17)
    shape = tuple(data.train.x.shape[1:])
    net = evaluator_net(shape, data.n_classes)
    small = shape[1] * shape[2] <= 64
    cfg = TrainConfig(epochs=epochs or (60 if small else 2), lr=2e-3 if small else 1e-3, batch_size=64, seed=seed)
    hist = fit(net, data.train.x, data.train.y, cfg, progress=progress, description="train evaluator")
    arch = "tanh-MLP 64-256-64" if small else "CNN conv16-conv32-fc128"
    return net, {"ref": "auto", "arch": arch, "classes": data.n_classes, "epochs": cfg.epochs,
                 "test_accuracy": accuracy(net, data.test.x, data.test.y), "train_seconds": round(hist.seconds, 1)}


@dataclass
class AttackPlan:
    """Everything an attack needs, checked."""

    target: nn.Module
    target_info: dict[str, Any]
    prior: Prior
    prior_info: dict[str, Any]
    data: SplitData
    classes: list[int]
    output_of: dict[int, int]
    cfg: AttackConfig
    methods: list[str]
    evaluator: nn.Module | None = None
    evaluator_info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    device: str = "cpu"


def plan_attack(target: nn.Module, target_info: dict[str, Any], prior: Prior, prior_info: dict[str, Any],
                data: SplitData, *, targets: list[int] | None, methods: list[str], cfg: AttackConfig,
                target_labels: str = "auto", device: str = "cpu") -> AttackPlan:
    """Cheap checks of a target against a prior and a dataset; raises InputError on bad input."""
    cfg.check()
    check_differentiable(target, "the target")
    check_shapes(prior.image_shape, target_info.get("input_shape"), tuple(data.train.x.shape[1:]))
    warnings: list[str] = []
    if prior.meta.get("data", {}).get("sha256") not in (None, data.sha256):
        warnings.append("the prior was trained on other data than --data (its sha256 differs)")
    if prior.public_hashes is not None:
        priv = np.concatenate([image_hashes(data.train.x[data.split.private_train]),
                               image_hashes(data.test.x[data.split.private_test])])
        overlap = int(np.isin(priv, prior.public_hashes).sum())
        if overlap:
            raise InputError(f"{overlap} private images are in the prior's public training set: the audit would "
                             "measure memorisation of public data", hint="use the split the prior was trained on")
    with torch.no_grad():
        n_out = int(target(data.train.x[:2].to(device)).shape[1])
    output_of = output_mapping(n_out, data.n_classes, data.split.spec.classes, target_labels)
    classes = check_targets(targets, data.n_classes, data.split.spec.classes, data.split.spec.protocol, output_of)
    target_info = {**target_info, "outputs": n_out}
    return AttackPlan(target, target_info, prior, prior_info, data, classes, output_of, cfg, methods,
                      warnings=warnings, device=device)


def check_evaluator(plan: AttackPlan, evaluator: nn.Module, info: dict[str, Any], allow_closed_set: bool) -> None:
    """An independent evaluator knows all classes, has other weights and (ideally) another architecture."""
    n = plan.data.n_classes
    try:
        with torch.no_grad():
            k = int(evaluator(plan.data.train.x[:2].to(plan.device)).shape[1])
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"the evaluator does not take images of shape {tuple(plan.data.train.x.shape[1:])}: "
                         f"{str(exc).splitlines()[0][:160]}") from exc
    if k > n:
        raise InputError(f"the evaluator has {k} outputs but the dataset has {n} classes")
    if k < n:
        msg = (f"evaluator knows {k} of {n} classes; a closed-set evaluator accepts images of other classes, "
               "see docs/invert.md")
        if not allow_closed_set:
            raise InputError(msg, hint="pass an evaluator trained on all classes, or --allow-closed-set-evaluator")
        plan.warnings.append(msg)
    if info.get("sha256") and info.get("sha256") == plan.target_info.get("sha256"):
        raise InputError("the evaluator has the target's weights: it is not an independent evaluator")
    if info.get("arch") is not None and info.get("arch") == plan.target_info.get("arch"):
        plan.warnings.append("the evaluator has the target's architecture: shared blind spots inflate accuracy")
    plan.evaluator, plan.evaluator_info = evaluator, {**info, "classes": k}


def use_target_as_evaluator(plan: AttackPlan) -> None:
    """`--evaluator none`: measure with the attacked model itself (not independent; a warning says so)."""
    plan.evaluator = ClassMapped(plan.target, plan.output_of, plan.data.n_classes)
    plan.evaluator_info = {"ref": "none (the target itself)", "classes": len(plan.output_of)}
    plan.warnings.append("no independent evaluator: accuracies are measured by the attacked model itself, which "
                         "any adversarial image fools; pass --evaluator auto or a model trained on all classes")


# ---------------------------------------------------------------- attack run

def reference_images(plan: AttackPlan, classes: torch.Tensor) -> dict[str, torch.Tensor]:
    """Reference rows: uniform noise, random public images, random prior samples (one per reconstruction)."""
    n = len(classes)
    gen = torch.Generator().manual_seed(plan.cfg.seed + 99)
    shape = plan.prior.image_shape
    public = plan.data.public_x
    pick = torch.randperm(len(public), generator=gen)[:n]
    if len(pick) < n:
        pick = torch.randint(len(public), (n,), generator=gen)
    return {"noise": torch.rand(n, *shape, generator=gen), "public": public[pick],
            "prior_samples": plan.prior.sample(n, seed=plan.cfg.seed + 7)}


def run_attack(plan: AttackPlan, progress: ProgressReporter | None = None) -> dict[str, Any]:
    """Run each method, evaluate it and the reference rows; returns {results, attacks, references, timing}."""
    progress = or_null(progress)
    assert plan.evaluator is not None, "check_evaluator or use_target_as_evaluator first"
    target = plan.target.to(plan.device).eval()
    for p in target.parameters():
        p.requires_grad_(False)
    eval_data = plan.data.eval_data()
    attacks: dict[str, AttackResult] = {}
    results: dict[str, Any] = {}
    timing: dict[str, float] = {}
    for method in plan.methods:
        res = run_inversion(method, target, plan.classes, plan.output_of, plan.cfg,
                            generator=plan.prior.generator.to(plan.device), critic=plan.prior.critic.to(plan.device),
                            z_dim=plan.prior.config.z_dim, image_shape=plan.prior.image_shape, device=plan.device,
                            progress=progress)
        attacks[method] = res
        timing[method] = res.seconds
        results[method] = evaluate_images(res.images, res.classes, plan.evaluator, eval_data, target, plan.output_of)
        progress.log(f"{method}: evaluator top-1 {results[method]['top1']:.3f}, "
                     f"KNN dist {results[method]['knn_dist']:.3f}, ({res.seconds:.1f} s)")
    classes = next(iter(attacks.values())).classes
    references = {name: evaluate_images(x, classes, plan.evaluator, eval_data, target, plan.output_of)
                  for name, x in reference_images(plan, classes).items()}
    return {"results": results, "attacks": attacks, "references": references, "timing": timing}


def build_report(plan: AttackPlan, outcome: dict[str, Any], command: list[str]) -> dict[str, Any]:
    """The report.json object of spec section 4."""
    cfg = plan.cfg
    prior_cfg = plan.prior.config
    return {
        "dnnkit_version": __version__,
        "command": command,
        "data": plan.data.summary(),
        "target": plan.target_info,
        "evaluator": plan.evaluator_info,
        "prior": {**plan.prior_info, "arch": prior_cfg.arch, "z_dim": prior_cfg.z_dim,
                  "steps": plan.prior.meta.get("steps", prior_cfg.steps)},
        "attack": {"classes_attacked": plan.classes, "methods": plan.methods, **cfg.budget(),
                   "selection": "best of restarts by target logit (never by the evaluator)",
                   "target_outputs": {str(c): plan.output_of[c] for c in plan.classes}},
        "results": outcome["results"],
        "references": outcome["references"],
        "timing_s": {"prior": plan.prior.meta.get("seconds"), "attack": outcome["timing"],
                     "evaluator": plan.evaluator_info.get("train_seconds")},
        "warnings": plan.warnings,
    }


def write_outputs(outdir: str | Path, plan: AttackPlan, outcome: dict[str, Any], report: dict[str, Any]) -> list[str]:
    """Write report.json, the grids and reconstructions.safetensors into OUTDIR atomically (all or nothing)."""
    from dnnkit.models.atomic import atomic_dir
    from dnnkit.models.save import write_checkpoint

    written: list[str] = []
    with atomic_dir(outdir) as tmp:
        write_grids(tmp, plan, outcome)
        tensors: dict[str, torch.Tensor] = {}
        for method, res in outcome["attacks"].items():
            tensors[f"{method}.images"] = res.images
            tensors[f"{method}.classes"] = res.classes
            tensors[f"{method}.attempts"] = res.attempts
            tensors[f"{method}.restarts"] = res.restarts
            tensors[f"{method}.target_logit"] = res.target_logit
        write_checkpoint(tmp / "reconstructions.safetensors", tensors,
                         {"arch": None, "source": {"target": plan.target_info.get("ref"),
                                                   "prior": plan.prior_info.get("ref")},
                          "inversion": {"attack": report["attack"], "data": report["data"]}}, force=True,
                         command=report.get("command"))
        (tmp / "report.json").write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
        written = sorted(p.name for p in tmp.iterdir())
    return written


def write_grids(folder: Path, plan: AttackPlan, outcome: dict[str, Any]) -> None:
    """grid_compare.png, grid_<method>.png, prior_samples.png (spec section 4)."""
    from dnnkit.probes.inversion.grids import save_grid, square_grid
    from dnnkit.probes.inversion.metrics import sq_dists

    attacks: dict[str, AttackResult] = outcome["attacks"]
    data = plan.data
    priv_x, priv_y = data.train.x[data.split.private_train], data.train.y[data.split.private_train]
    names = data.train.classes
    cols = [str(c) if names[c] == str(c) else f"{c} {names[c]}"[:14] for c in plan.classes]
    rows: list[tuple[str, list[torch.Tensor | None]]] = []
    for i in range(2):
        rows.append((f"private {i + 1}", [priv_x[priv_y == c][i] if int((priv_y == c).sum()) > i else None
                                          for c in plan.classes]))
    for method, res in attacks.items():
        rows.append((method, [res.images[(res.classes == c).nonzero()[0, 0]] for c in plan.classes]))
    lead = attacks.get("gmi") or next(iter(attacks.values()))
    nearest = []
    for c in plan.classes:
        img = lead.images[(lead.classes == c).nonzero()[0, 0]]
        pool = priv_x[priv_y == c]
        nearest.append(pool[sq_dists(img[None], pool).argmin()])
    rows.append((f"nearest private\nto {lead.method}", nearest))
    save_grid(folder / "grid_compare.png", rows, cols, title="attempt 1 per class; real private images on top")
    for method, res in attacks.items():
        per = plan.cfg.per_class
        save_grid(folder / f"grid_{method}.png",
                  [(cols[i], list(res.images[res.classes == c][:per])) for i, c in enumerate(plan.classes)],
                  title=f"{method}: rows = attacked classes, columns = attempts")
    square_grid(folder / "prior_samples.png", plan.prior.sample(64, seed=plan.cfg.seed + 7),
                title=f"prior samples G(z), {plan.prior.config.arch}")


def _json_default(obj: object) -> object:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """(fn(*args, **kwargs), seconds)."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, round(time.perf_counter() - start, 2)
