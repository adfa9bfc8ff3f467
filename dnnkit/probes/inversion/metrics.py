"""Evaluation of reconstructions (spec section 2): evaluator accuracy, feature and pixel distances to the private
class, 1-NN accuracy, leak ratio, diversity and a Frechet distance.

Every number is read against reference rows (noise, public images, prior samples) put through the same code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

DISTINCT_THRESHOLD = 1e-3


@dataclass
class EvalData:
    """What the metrics compare against: private train/held-out images and all train images, with labels."""

    private_x: torch.Tensor
    private_y: torch.Tensor
    heldout_x: torch.Tensor
    heldout_y: torch.Tensor
    train_x: torch.Tensor
    train_y: torch.Tensor
    n_classes: int


def last_linear(model: nn.Module) -> nn.Linear:
    """The classifier's last nn.Linear (its input is the penultimate feature vector)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("model has no nn.Linear head")
    return linears[-1]


@torch.no_grad()
def logits_and_features(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, penultimate features f(x)) through a forward hook on the last linear layer."""
    model.eval()
    device = next(model.parameters()).device
    feats: list[torch.Tensor] = []
    handle = last_linear(model).register_forward_hook(lambda m, inp, out: feats.append(inp[0].flatten(1).cpu()))
    try:
        logits = [model(x[i:i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)]
    finally:
        handle.remove()
    if not logits:
        return torch.zeros(0), torch.zeros(0)
    return torch.cat(logits), torch.cat(feats)


def sq_dists(a: torch.Tensor, b: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Squared Euclidean distances between the rows of a and b (flattened), exact (no matmul trick)."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    return torch.cat([torch.cdist(a[i:i + chunk], b).pow(2) for i in range(0, len(a), chunk)]).float() \
        if len(a) else torch.zeros(0, len(b))


def diversity(x: torch.Tensor) -> tuple[float, int]:
    """(mean pairwise squared pixel distance, count of distinct images at distance > 1e-3)."""
    n = len(x)
    if n < 2:
        return 0.0, n
    d = sq_dists(x, x)
    iu = torch.triu_indices(n, n, 1)
    distinct: list[int] = []
    for i in range(n):
        if all(float(d[i, j]) > DISTINCT_THRESHOLD for j in distinct):
            distinct.append(i)
    return float(d[iu[0], iu[1]].mean()), len(distinct)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """Frechet distance between Gaussians fitted to feature sets a and b; None with < 2 x width samples in a."""
    import numpy as np
    from scipy import linalg

    if len(a) < 2 * a.shape[1] or len(b) < 2 * b.shape[1]:
        return None
    a64, b64 = a.double().numpy(), b.double().numpy()
    mu1, mu2 = a64.mean(0), b64.mean(0)
    s1, s2 = np.cov(a64, rowvar=False), np.cov(b64, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(sum(vals) / len(vals)) if vals else None


def evaluate_images(images: torch.Tensor, classes: torch.Tensor, evaluator: nn.Module, data: EvalData,
                    target: nn.Module | None = None, output_of: dict[int, int] | None = None) -> dict[str, Any]:
    """All metrics of one set of reconstructions (each row aimed at dataset class `classes[i]`)."""
    images = images.detach().cpu()
    classes = classes.cpu()
    pixels = images[0].numel()
    e_logits, e_feats = logits_and_features(evaluator, images)
    k_top = min(5, e_logits.shape[1])
    top1 = (e_logits.argmax(1) == classes).float()
    top5 = (e_logits.topk(k_top, dim=1).indices == classes.view(-1, 1)).any(1).float()
    t_hit = None
    if target is not None and output_of is not None:
        t_logits, _ = logits_and_features(target, images)
        t_hit = (t_logits.argmax(1) == torch.tensor([output_of[int(c)] for c in classes])).float()
    nn_all = sq_dists(images, data.train_x).argmin(1)
    knn1 = (data.train_y[nn_all] == classes).float()
    _, priv_feats_all = logits_and_features(evaluator, data.private_x)
    per_class: dict[str, Any] = {}
    for k in sorted({int(c) for c in classes}):
        sel = classes == k
        xk = images[sel]
        pk = data.private_x[data.private_y == k]
        fk = priv_feats_all[data.private_y == k]
        hk = data.heldout_x[data.heldout_y == k]
        d_priv = sq_dists(xk, pk)
        nearest = d_priv.min(1).values
        mse = (nearest / pixels).clamp_min(1e-12)
        knn = sq_dists(e_feats[sel], fk).min(1).values
        centroid = fk.mean(0, keepdim=True)
        feat = (e_feats[sel] - centroid).pow(2).sum(1)
        leak = None
        if len(hk):
            d_held = sq_dists(xk, hk).min(1).values.sqrt()
            leak = float((nearest.sqrt() / d_held.clamp_min(1e-12)).mean())
        div, distinct = diversity(xk)
        per_class[str(k)] = {
            "n": int(sel.sum()), "top1": float(top1[sel].mean()), "top5": float(top5[sel].mean()),
            "target_top1": float(t_hit[sel].mean()) if t_hit is not None else None,
            "knn1_top1": float(knn1[sel].mean()), "knn_dist": float(knn.mean()), "feat_dist": float(feat.mean()),
            "psnr": float((10 * torch.log10(1 / mse)).mean()), "nearest_pixel_l2sq": float(nearest.mean()),
            "leak_ratio": leak, "diversity": div, "distinct": distinct,
        }
    attacked = torch.isin(data.private_y, torch.tensor(sorted({int(c) for c in classes})))
    rows = list(per_class.values())
    weights = [r["n"] for r in rows]

    def wmean(key: str) -> float | None:
        pairs = [(r[key], w) for r, w in zip(rows, weights, strict=True) if r[key] is not None]
        return float(sum(v * w for v, w in pairs) / sum(w for _, w in pairs)) if pairs else None

    return {
        "n": len(images), "top1": float(top1.mean()), "top5": float(top5.mean()),
        "top5_informative": data.n_classes > 10,
        "target_top1": float(t_hit.mean()) if t_hit is not None else None,
        "knn1_top1": float(knn1.mean()), "knn_dist": wmean("knn_dist"), "feat_dist": wmean("feat_dist"),
        "psnr": wmean("psnr"), "nearest_pixel_l2sq": wmean("nearest_pixel_l2sq"), "leak_ratio": wmean("leak_ratio"),
        "diversity": _mean([r["diversity"] for r in rows]), "distinct": sum(r["distinct"] for r in rows),
        "frechet": frechet_distance(e_feats, priv_feats_all[attacked]),
        "per_class": per_class,
    }
