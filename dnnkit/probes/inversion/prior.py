"""GMI stage 1: a WGAN-GP prior (generator G and critic D) trained on public images only.

Critic loss L_D = mean D(G(z)) - mean D(x) + gp * mean(||grad_xhat D(xhat)||_2 - 1)^2 with
xhat = eps*x + (1-eps)*G(z), eps ~ U[0,1] per sample; generator loss L_G = -mean D(G(z)), one generator
step per `n_critic` critic steps; Adam(lr, betas (0.5, 0.999)). Steps count critic steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dnnkit.errors import InputError, RuntimeFailure
from dnnkit.probes.inversion.nets import build_prior_nets
from dnnkit.progress import ProgressReporter, or_null

PRIOR_FORMAT = "dnnkit-inversion-prior-v1"


@dataclass
class PriorConfig:
    """Hyper-parameters of stage 1 (defaults from the authors' code; steps count critic steps)."""

    arch: str = "mlp"
    z_dim: int = 20
    steps: int = 6000
    n_critic: int = 5
    gp_weight: float = 10.0
    lr: float = 2e-4
    batch_size: int = 64
    seed: int = 0
    width: int = 64


@dataclass
class Prior:
    """A trained (or loaded) prior with what `attack` needs to check it against its inputs."""

    generator: nn.Module
    critic: nn.Module
    config: PriorConfig
    image_shape: tuple[int, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    public_hashes: np.ndarray | None = None

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """n images G(z), z ~ N(0, I) (eval mode, no gradient)."""
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.config.z_dim, generator=gen)
        device = next(self.generator.parameters()).device
        self.generator.eval()
        with torch.no_grad():
            return self.generator(z.to(device)).cpu()


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """mean (||grad_xhat D(xhat)||_2 - 1)^2 at xhat = eps*real + (1-eps)*fake (eps per sample)."""
    eps = eps.view(-1, *([1] * (real.dim() - 1)))
    xhat = (eps * real + (1 - eps) * fake).detach().requires_grad_(True)
    out = critic(xhat)
    (grad,) = torch.autograd.grad(out.sum(), xhat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def critic_loss(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor,
                gp_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_D, penalty): mean D(fake) - mean D(real) + gp_weight * penalty."""
    gp = gradient_penalty(critic, real, fake, eps)
    return critic(fake).mean() - critic(real).mean() + gp_weight * gp, gp


def generator_loss(critic: nn.Module, fake: torch.Tensor) -> torch.Tensor:
    """L_G = -mean D(G(z))."""
    return -critic(fake).mean()


def train_prior(public_x: torch.Tensor, cfg: PriorConfig, *, device: str = "cpu",
                progress: ProgressReporter | None = None, log_every: int | None = None,
                on_log: Callable[[int, dict[str, float], nn.Module], None] | None = None
                ) -> tuple[Prior, dict[str, Any]]:
    """Train G and D on `public_x` (N, C, H, W in [0, 1]); returns the prior and a history of losses.

    `on_log(step, losses, G)` runs at every log point with G in eval mode (e.g. to snapshot samples).
    """
    progress = or_null(progress)
    torch.manual_seed(cfg.seed)
    image_shape = tuple(int(s) for s in public_x.shape[1:])
    gen_net, critic = build_prior_nets(cfg.arch, cfg.z_dim, image_shape, cfg.width)
    gen_net.to(device).train()
    critic.to(device).train()
    opt_g = torch.optim.Adam(gen_net.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(critic.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    rng = torch.Generator().manual_seed(cfg.seed)
    n = len(public_x)
    log_every = log_every or max(1, cfg.steps // 10)
    history: dict[str, Any] = {"step": [], "critic_loss": [], "generator_loss": [], "penalty": [],
                               "wasserstein": []}
    last = {"critic_loss": math.nan, "generator_loss": math.nan, "penalty": math.nan, "wasserstein": math.nan}
    task = progress.task("train prior (critic steps)", cfg.steps)
    start = time.perf_counter()
    order = torch.randperm(n, generator=rng)
    pos = 0
    for step in range(1, cfg.steps + 1):
        if pos + cfg.batch_size > n:
            order, pos = torch.randperm(n, generator=rng), 0
        real = public_x[order[pos:pos + cfg.batch_size]].to(device)
        pos += cfg.batch_size
        z = torch.randn(len(real), cfg.z_dim, generator=rng).to(device)
        eps = torch.rand(len(real), generator=rng).to(device)
        with torch.no_grad():
            fake = gen_net(z)
        loss_d, gp = critic_loss(critic, real, fake, eps, cfg.gp_weight)
        _check_finite(loss_d, "critic", step)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        last["critic_loss"], last["penalty"] = float(loss_d.detach()), float(gp.detach())
        last["wasserstein"] = -(last["critic_loss"] - cfg.gp_weight * last["penalty"])
        if step % cfg.n_critic == 0:
            z = torch.randn(cfg.batch_size, cfg.z_dim, generator=rng).to(device)
            for p in critic.parameters():
                p.requires_grad_(False)
            loss_g = generator_loss(critic, gen_net(z))
            for p in critic.parameters():
                p.requires_grad_(True)
            _check_finite(loss_g, "generator", step)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            last["generator_loss"] = float(loss_g.detach())
        task.advance(1, loss=last["critic_loss"])
        if step % log_every == 0 or step == cfg.steps:
            history["step"].append(step)
            for k, v in last.items():
                history[k].append(v)
            progress.log(f"prior step {step}/{cfg.steps}: critic {last['critic_loss']:.4f} "
                         f"generator {last['generator_loss']:.4f} W-estimate {last['wasserstein']:.4f} "
                         f"penalty {last['penalty']:.4f}")
            if on_log is not None:
                gen_net.eval()
                with torch.no_grad():
                    on_log(step, dict(last), gen_net)
                gen_net.train()
    history["seconds"] = round(time.perf_counter() - start, 2)
    history["last"] = dict(last)
    gen_net.eval()
    critic.eval()
    for net in (gen_net, critic):
        for p in net.parameters():
            p.requires_grad_(False)
    return Prior(gen_net, critic, cfg, image_shape), history


def _check_finite(loss: torch.Tensor, stage: str, step: int) -> None:
    if not torch.isfinite(loss).item():
        raise RuntimeFailure(f"the {stage} loss became {float(loss)} at prior step {step}",
                             hint="lower --lr (or --gp-weight) and retrain")


def save_prior(path: str | Path, prior: Prior, meta: dict[str, Any], *, force: bool,
               command: list[str] | None = None) -> dict[str, Any]:
    """Write G, D and the public-image hashes atomically with the dnnkit record (arch, split, data sha256...);
    `command` is the recorded command line (default: sys.argv)."""
    from dnnkit.models.save import write_checkpoint

    state = {f"generator.{k}": v for k, v in prior.generator.state_dict().items()}
    state.update({f"critic.{k}": v for k, v in prior.critic.state_dict().items()})
    if prior.public_hashes is not None:
        state["public_hashes"] = torch.from_numpy(np.asarray(prior.public_hashes, dtype=np.int64))
    meta = {k: v for k, v in meta.items() if k != "snapshots"}
    info = {"format": PRIOR_FORMAT, "config": asdict(prior.config), "image_shape": list(prior.image_shape), **meta}
    record = {"arch": {"family": "inversion-prior", "prior_arch": prior.config.arch, "z_dim": prior.config.z_dim,
                       "image_shape": list(prior.image_shape), "width": prior.config.width},
              "inversion_prior": info, "metrics": meta.get("history", {}).get("last", {})}
    return write_checkpoint(path, state, record, force=force, command=command)


def read_prior_info(path: str | Path) -> dict[str, Any]:
    """The prior's record (header only, cheap); InputError when the file is not a dnnkit prior."""
    from dnnkit.models.safetensors_io import read_header

    p = Path(path)
    if not p.is_file():
        raise InputError(f"--prior {str(path)!r}: no such file")
    header = read_header(p)
    record = header.dnnkit_record() or {}
    info = record.get("inversion_prior")
    if not isinstance(info, dict) or info.get("format") != PRIOR_FORMAT:
        raise InputError(f"--prior {str(path)!r} is not a dnnkit inversion prior",
                         hint="train one with `dnnkit invert train-prior`")
    return info


def load_prior(path: str | Path, device: str = "cpu") -> Prior:
    """Rebuild G and D from a prior file (frozen, eval mode)."""
    from dnnkit.models.registry import load_state_into
    from dnnkit.models.safetensors_io import load_tensors

    info = read_prior_info(path)
    cfg = PriorConfig(**{k: v for k, v in info["config"].items() if k in PriorConfig.__dataclass_fields__})
    shape = tuple(int(s) for s in info["image_shape"])
    gen_net, critic = build_prior_nets(cfg.arch, cfg.z_dim, shape, cfg.width)
    tensors = load_tensors(path)
    load_state_into(gen_net, {k[10:]: v for k, v in tensors.items() if k.startswith("generator.")}, f"{path} (G)")
    load_state_into(critic, {k[7:]: v for k, v in tensors.items() if k.startswith("critic.")}, f"{path} (D)")
    hashes = tensors["public_hashes"].numpy() if "public_hashes" in tensors else None
    for net in (gen_net, critic):
        net.to(device).eval()
        for p in net.parameters():
            p.requires_grad_(False)
    return Prior(gen_net, critic, cfg, shape, {k: v for k, v in info.items() if k != "config"}, hashes)
