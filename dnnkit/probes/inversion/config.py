"""The options of `dnnkit invert`: `TrainPriorConfig` (stage 1) and `InvertConfig` (stage 2, an `AttackConfig`
with what the audit adds), each with a cheap `check()` (exit 2 before any heavy work). Torch is not imported
here except to ask whether a CUDA device exists.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from dnnkit.errors import InputError

PRIOR_ARCHS = ("auto", "mlp", "dcgan")
METHOD_LISTS = {"both": ["gmi", "pixel"], "gmi": ["gmi"], "pixel": ["pixel"], "pixels": ["pixel"]}


def check_device(device: str) -> None:
    """cpu or cuda[:N], and a CUDA device must exist for cuda."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InputError(f"--device {device}: no CUDA device is available")
    if not (device == "cpu" or device.startswith("cuda")):
        raise InputError(f"--device {device!r}: use cpu or cuda[:N]")


@dataclass
class TrainPriorConfig:
    """Options of `invert train-prior` (CLI names): the WGAN-GP prior on the public images of a split."""

    data: str = "digits"
    split: str = "shared:5-9"
    prior_arch: str = "auto"  # auto: mlp on CPU, dcgan on CUDA
    z_dim: str | int = "auto"
    steps: int = 6000
    n_critic: int = 5
    gp_weight: float = 10.0
    lr: float = 2e-4
    batch_size: int = 64
    width: int = 64
    seed: int = 0
    device: str = "cpu"

    def check(self) -> None:
        """Option checks that need no data (exit 2)."""
        from dnnkit.probes.inversion.splits import parse_split

        parse_split(self.split)
        if not self.lr > 0:
            raise InputError("--lr must be > 0")
        if self.prior_arch not in PRIOR_ARCHS:
            raise InputError(f"--prior-arch {self.prior_arch!r}: use auto, mlp or dcgan")
        z = str(self.z_dim)
        if z != "auto" and not (z.isdigit() and int(z) > 0):
            raise InputError(f"--z-dim {self.z_dim!r}: use auto or a positive integer")
        for name, least in (("steps", 1), ("n_critic", 1), ("batch_size", 1), ("width", 4)):
            if getattr(self, name) < least:
                raise InputError(f"--{name.replace('_', '-')} must be at least {least}")
        if not self.gp_weight >= 0:
            raise InputError("--gp-weight must be >= 0")
        check_device(self.device)

    def arch(self) -> str:
        """The prior architecture `auto` resolves to on this device."""
        if self.prior_arch != "auto":
            return self.prior_arch
        return "dcgan" if self.device.startswith("cuda") else "mlp"


@dataclass
class AttackConfig:
    """Stage-2 budget and update (defaults from the authors' code; steps 1,500 for both methods)."""

    per_class: int = 20
    restarts: int = 5
    steps: int = 1500
    lr: float = 0.02
    momentum: float = 0.9
    id_weight: float = 100.0
    seed: int = 0

    def check(self) -> None:
        """InputError for values that make no sense (before any work)."""
        for name in ("per_class", "restarts", "steps"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1")
        if not self.lr > 0:
            raise InputError("--lr must be > 0")
        if not 0 <= self.momentum < 1:
            raise InputError("--momentum must be in [0, 1)")
        if not self.id_weight >= 0:
            raise InputError("--id-weight must be >= 0")

    def budget(self) -> dict[str, Any]:
        """The stage-2 fields alone (the report's `attack` block records these)."""
        return {f.name: getattr(self, f.name) for f in fields(AttackConfig)}


@dataclass
class InvertConfig(AttackConfig):
    """Options of `invert attack` (CLI names): the stage-2 budget plus prior, data, targets and evaluator."""

    prior: str | None = None  # PRIOR.safetensors from train-prior (required)
    data: str | None = None  # default: the prior's dataset
    targets: str = "all-private"
    target_class: list[int] | None = None
    method: str = "both"
    evaluator: str = "auto"  # auto, none, or a model reference
    evaluator_epochs: int | None = None
    allow_closed_set_evaluator: bool = False
    target_labels: str = "auto"
    device: str = "cpu"

    def check(self) -> None:
        """Option checks, and the prior's header (cheap): exit 2 before the target is loaded."""
        super().check()
        if self.method not in METHOD_LISTS:
            raise InputError(f"--method {self.method!r}: use gmi, pixel or both")
        self.chosen_targets()
        if self.evaluator_epochs is not None and self.evaluator_epochs < 1:
            raise InputError("--evaluator-epochs must be at least 1")
        if self.prior is None:
            raise InputError("missing --prior", hint="train one with `dnnkit invert train-prior`")
        from dnnkit.data.registry import check_data_spec

        check_data_spec(self.data_spec())
        check_device(self.device)

    @property
    def methods(self) -> list[str]:
        return list(METHOD_LISTS[self.method])

    def chosen_targets(self) -> list[int] | None:
        """The attacked classes from --targets and --target-class (None: every private class)."""
        from dnnkit.probes.inversion.splits import parse_classes

        chosen: set[int] = set(self.target_class or [])
        if self.targets != "all-private":
            chosen.update(parse_classes(self.targets, "--targets"))
        return sorted(chosen) if chosen else None

    def prior_info(self) -> dict[str, Any]:
        """The prior's record (header only); InputError when --prior is not a dnnkit prior."""
        from dnnkit.probes.inversion.prior import read_prior_info

        if self.prior is None:
            raise InputError("missing --prior", hint="train one with `dnnkit invert train-prior`")
        return read_prior_info(self.prior)

    def data_spec(self) -> str:
        """--data, else the dataset the prior was trained on."""
        spec = self.data or self.prior_info().get("data", {}).get("name")
        if not spec:
            raise InputError("the prior records no dataset", hint="pass --data")
        return str(spec)
