"""Training of factored models through `dnnkit.train.fit`: fine-tuning and Maestro share it.

Classifiers with labels train on cross-entropy; encoders distil the dense model's pooled
embedding (1 - cosine); causal LMs distil its logits (KL). The rows of the training inputs are
addressed by index, so `fit` batches token blocks with their attention masks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dnnkit.metrics import Inputs, forward_output, outputs
from dnnkit.progress import ProgressReporter
from dnnkit.train import TrainConfig, TrainHistory, fit


def distill_targets(dense: nn.Module, task: str, inputs: Inputs) -> torch.Tensor | None:
    """Precomputed dense outputs for encoders (LM logits are recomputed per batch, they are large)."""
    if task == "encoder":
        return outputs(dense, task, inputs, 16)
    return None


def make_loss(task: str, inputs: Inputs, dense: nn.Module | None, targets: torch.Tensor | None,
              before_forward: Callable[[nn.Module], None] | None = None,
              full_pass: bool = False) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
    """loss_fn(model, idx, _) for `fit`: the task loss of rows `idx` (optionally plus a full-model pass)."""

    def task_loss(model: nn.Module, batch: Inputs, idx: torch.Tensor) -> torch.Tensor:
        out = forward_output(model, task, batch)
        if task == "classifier" and batch.y is not None:
            return nn.functional.cross_entropy(out, batch.y)
        if task == "encoder":
            return (1 - nn.functional.cosine_similarity(out, targets[idx], dim=-1)).mean()
        with torch.no_grad():
            teacher = forward_output(dense, task, batch).float()
        logp = nn.functional.log_softmax(out.float(), dim=-1).flatten(0, -2)
        return nn.functional.kl_div(logp, nn.functional.log_softmax(teacher, dim=-1).flatten(0, -2),
                                    reduction="batchmean", log_target=True)

    def loss_fn(model: nn.Module, idx: torch.Tensor, _y: torch.Tensor) -> torch.Tensor:
        batch = inputs.take(idx)
        if before_forward is not None:
            before_forward(model)
        loss = task_loss(model, batch, idx)
        if full_pass:
            from dnnkit.nn.lowrank import LOWRANK_TYPES

            saved = {m: m.active_rank for m in model.modules() if isinstance(m, LOWRANK_TYPES)}
            for m in saved:
                m.active_rank = None
            loss = loss + task_loss(model, batch, idx)
            for m, b in saved.items():
                m.active_rank = b
        return loss

    return loss_fn


def train_model(model: nn.Module, task: str, inputs: Inputs, cfg: TrainConfig, *, dense: nn.Module | None,
                before_forward: Callable[[nn.Module], None] | None = None, full_pass: bool = False,
                extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
                masks: dict[str, torch.Tensor] | None = None,
                on_epoch_end: Callable[[int, nn.Module], None] | None = None,
                progress: ProgressReporter | None = None, description: str = "fine-tune") -> TrainHistory:
    """Train `model` in place on `inputs` for `cfg.epochs` (see module docstring for the loss)."""
    targets = distill_targets(dense, task, inputs) if dense is not None else None
    idx = torch.arange(len(inputs))
    loss_fn = make_loss(task, inputs, dense, targets, before_forward, full_pass)
    return fit(model, idx, idx, cfg, loss_fn=loss_fn, masks=masks, extra_loss=extra_loss,
               on_epoch_end=on_epoch_end, progress=progress, description=description)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, task: str, inputs: Inputs, batch_size: int = 256) -> None:
    """Recompute BatchNorm running statistics over one pass of `inputs` (cumulative average)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [(m, m.momentum) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    was_training = model.training
    model.train()
    for i in range(0, len(inputs), batch_size):
        forward_output(model, task, inputs.slice(i, i + batch_size))
    for m, mom in saved:
        m.momentum = mom
    model.train(was_training)
