"""Probes on one layer's hidden state: linear, the neural (MLP) probe, and SAPLMA.

Every probe standardises with the training data's mean and std (stored with it) and scores
P(wrong). Linear: L2 logistic regression, C = 0.05 (Obeso et al.'s single linear head).
MLP: the neural probe of Liang & Wang (Dec 2025) as dnnkit reads it: LayerNorm -> 256 -> GELU ->
dropout 0.1 -> 128 -> GELU -> 1, class-balanced BCE, AdamW lr 1e-3 wd 1e-2, batch 32, <= 100 epochs,
early stop on an inner validation AUROC (patience 10). SAPLMA (Azaria & Mitchell 2023): 256-128-64
ReLU, Adam, BCE, 5 epochs, batch 32.

Position `span` (all answer-clause tokens, a `SpanBatch`): the MLP runs on every token and the item score
is the max token logit; it trains on the joint loss (1 - w) * mean token BCE + w * BCE(max span logit, y),
every token labelled with its item's y, w rising linearly 0 -> 1 over the first half of the step budget
(`max_epochs` epochs) and 1 after (Obeso et al. 2025's annealing). The linear probe and SAPLMA read the
mean of the span's tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PROBE_KINDS = ("mlp", "linear", "saplma")
MLP_WIDTHS = (256, 128)
SAPLMA_WIDTHS = (256, 128, 64)


def auroc_or_nan(y: np.ndarray, s: np.ndarray) -> float:
    """AUROC by ranks (ties averaged); NaN when a class is missing."""
    from scipy.stats import rankdata

    y = np.asarray(y).astype(bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


@dataclass
class SpanBatch:
    """The answer-clause tokens of n items at one layer: tokens [n, T, d] (padded) and lengths [n] (>= 1)."""

    tokens: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def mask(self) -> np.ndarray:
        """[n, T] True on real (not padding) tokens."""
        return np.arange(self.tokens.shape[1])[None, :] < np.asarray(self.lengths)[:, None]

    def flat(self) -> np.ndarray:
        """The real tokens of every item, stacked: [sum(lengths), d]."""
        return self.tokens[self.mask()]

    def mean(self) -> np.ndarray:
        """The mean of each item's real tokens: [n, d]."""
        m = self.mask()[:, :, None]
        total = (self.tokens.astype(np.float64) * m).sum(1)
        return (total / np.maximum(np.asarray(self.lengths), 1)[:, None]).astype(np.float32)


Features = np.ndarray | SpanBatch


def omega(step: int, total_steps: int) -> float:
    """Weight of the span (max-logit) term of the joint loss: linear 0 -> 1 over the first half of
    `total_steps`, then 1."""
    half = 0.5 * total_steps
    return 1.0 if half <= 0 else float(min(1.0, step / half))


def span_joint_loss(logits: Any, mask: Any, y: Any, w: float, pos_weight: Any = None) -> Any:
    """(1 - w) * mean token BCE + w * BCE(max span logit, y) for token logits [B, T] (padding masked out by
    `mask` [B, T]) and item labels y [B]; every real token carries its item's label. `pos_weight` weights
    the wrong class in both terms (class balancing)."""
    import torch.nn.functional as F

    yt = y[:, None].expand_as(logits)
    tok = F.binary_cross_entropy_with_logits(logits, yt, pos_weight=pos_weight, reduction="none")
    tok_mean = (tok * mask).sum() / mask.sum().clamp(min=1)
    span_max = logits.masked_fill(~mask, float("-inf")).max(dim=1).values
    item = F.binary_cross_entropy_with_logits(span_max, y, pos_weight=pos_weight)
    return (1.0 - w) * tok_mean + w * item


@dataclass
class Standardiser:
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardiser:
        x = x.astype(np.float64)
        return cls(x.mean(0).astype(np.float32), np.maximum(x.std(0), 1e-6).astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x.astype(np.float32) - self.mean) / self.std).astype(np.float32)


def _torch_net(kind: str, dim: int) -> Any:
    from torch import nn

    if kind == "mlp":
        return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, MLP_WIDTHS[0]), nn.GELU(), nn.Dropout(0.1),
                             nn.Linear(MLP_WIDTHS[0], MLP_WIDTHS[1]), nn.GELU(), nn.Linear(MLP_WIDTHS[1], 1))
    layers: list[Any] = []
    prev = dim
    for w in SAPLMA_WIDTHS:
        layers += [nn.Linear(prev, w), nn.ReLU()]
        prev = w
    return nn.Sequential(*layers, nn.Linear(prev, 1))


def _inner_split(y: np.ndarray, groups: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A grouped, stratified 80/20 split for early stopping."""
    from sklearn.model_selection import StratifiedGroupKFold

    g = groups if groups is not None else np.arange(len(y))
    splitter = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed)
    tr, va = next(splitter.split(np.zeros(len(y)), y, g))
    return tr, va


@dataclass
class Probe:
    """A fitted probe: kind, standardiser and weights (numpy for linear, a torch module otherwise)."""

    kind: str
    norm: Standardiser
    linear: tuple[np.ndarray, float] | None = None
    net: Any = None
    info: dict[str, Any] = field(default_factory=dict)

    def predict(self, x: Features) -> np.ndarray:
        """P(wrong) per item; a `SpanBatch` is scored by the max token logit (MLP) or its token mean (others)."""
        if isinstance(x, SpanBatch):
            if self.kind != "mlp":
                return self.predict(x.mean())
            return 1.0 / (1.0 + np.exp(-self.span_logits(x)))
        z = self.norm(x)
        if self.kind == "linear":
            assert self.linear is not None
            w, b = self.linear
            return 1.0 / (1.0 + np.exp(-(z @ w + b)))
        import torch

        self.net.eval()
        with torch.inference_mode():
            return torch.sigmoid(self.net(torch.from_numpy(z))[:, 0]).numpy().astype(np.float64)

    def span_logits(self, x: SpanBatch) -> np.ndarray:
        """The MLP's max token logit over each item's span."""
        import torch

        n, t, d = x.tokens.shape
        z = self.norm(x.tokens.reshape(n * t, d))
        self.net.eval()
        with torch.inference_mode():
            logits = self.net(torch.from_numpy(z))[:, 0].numpy().reshape(n, t).astype(np.float64)
        return np.where(x.mask(), logits, -np.inf).max(1)

    def tensors(self) -> dict[str, Any]:
        """The probe's weights as named tensors (plus norm.mean / norm.std) for a safetensors file."""
        import torch

        out = {"norm.mean": torch.from_numpy(self.norm.mean.copy()), "norm.std": torch.from_numpy(self.norm.std.copy())}
        if self.kind == "linear":
            assert self.linear is not None
            out["probe.weight"] = torch.from_numpy(self.linear[0].astype(np.float32)[None, :].copy())
            out["probe.bias"] = torch.tensor([float(self.linear[1])], dtype=torch.float32)
        else:
            out.update({f"probe.{k}": v.detach().clone() for k, v in self.net.state_dict().items()})
        return out

    @classmethod
    def from_tensors(cls, kind: str, tensors: dict[str, Any]) -> Probe:
        norm = Standardiser(tensors["norm.mean"].numpy(), tensors["norm.std"].numpy())
        if kind == "linear":
            return cls(kind, norm, (tensors["probe.weight"][0].numpy().astype(np.float64),
                                    float(tensors["probe.bias"][0])))
        net = _torch_net(kind, int(norm.mean.shape[0]))
        net.load_state_dict({k[len("probe."):]: v for k, v in tensors.items() if k.startswith("probe.")}, strict=True)
        return cls(kind, norm, net=net)


def fit_probe(kind: str, x: Features, y: np.ndarray, groups: np.ndarray | None = None, seed: int = 0,
              max_epochs: int = 100, patience: int = 10) -> Probe:
    """Fit a probe of `kind` on features x [n, d] (or a `SpanBatch` of n items) and labels y (1 = wrong)."""
    if isinstance(x, SpanBatch):
        if kind == "mlp":
            return _fit_span_mlp(x, np.asarray(y).astype(np.int64), groups, seed, max_epochs, patience)
        x = x.mean()
    norm = Standardiser.fit(x)
    z = norm(x)
    y = np.asarray(y).astype(np.int64)
    if kind == "linear":
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=0.05, max_iter=2000)
        clf.fit(z, y)
        return Probe(kind, norm, (clf.coef_[0].astype(np.float64), float(clf.intercept_[0])))
    if kind == "mlp":
        return _fit_mlp(z, y, norm, groups, seed, max_epochs, patience)
    if kind == "saplma":
        return _fit_saplma(z, y, norm, seed)
    raise ValueError(f"unknown probe kind {kind!r}")


def _train_epoch(net: Any, opt: Any, loss_fn: Any, xt: Any, yt: Any, gen: Any, batch: int = 32) -> None:
    """One shuffled pass of mini-batch training of a one-logit probe network."""
    import torch

    net.train()
    perm = torch.randperm(len(xt), generator=gen)
    for i in range(0, len(perm), batch):
        b = perm[i:i + batch]
        opt.zero_grad()
        loss_fn(net(xt[b])[:, 0], yt[b]).backward()
        opt.step()



class _EarlyStop:
    """Early stopping on a validation score: keeps the best state of `net`, stops after `patience` epochs
    without improvement; `restore` loads the best state and sets eval mode."""

    def __init__(self, net: Any, patience: int) -> None:  # a torch.nn.Module (torch is imported lazily)
        self.net, self.patience = net, patience
        self.best, self.bad, self.state = -1.0, 0, None

    def should_stop(self, score: float) -> bool:
        if score > self.best + 1e-6:
            self.best, self.bad = score, 0
            self.state = {k: v.clone() for k, v in self.net.state_dict().items()}
            return False
        self.bad += 1
        return self.bad >= self.patience

    @property
    def best_score(self) -> float | None:
        return self.best if self.best >= 0 else None

    def restore(self) -> None:
        if self.state is not None:
            self.net.load_state_dict(self.state)
        self.net.eval()


def _fit_mlp(z: np.ndarray, y: np.ndarray, norm: Standardiser, groups: np.ndarray | None, seed: int,
             max_epochs: int, patience: int) -> Probe:
    import torch

    torch.manual_seed(seed)
    tr, va = _inner_split(y, groups, seed)
    if len(set(y[va].tolist())) < 2:  # too few items for a validation split: train on all, fixed epochs
        tr, va = np.arange(len(y)), np.array([], dtype=np.int64)
    net = _torch_net("mlp", z.shape[1])
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
    xt, yt = torch.from_numpy(z[tr]), torch.from_numpy(y[tr]).float()
    pos = float(yt.sum())
    pos_weight = torch.tensor((len(yt) - pos) / max(pos, 1.0))
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    gen = torch.Generator().manual_seed(seed)
    stop, epochs = _EarlyStop(net, patience), 0
    xv = torch.from_numpy(z[va]) if len(va) else None
    for _ in range(max_epochs):
        epochs += 1
        _train_epoch(net, opt, loss_fn, xt, yt, gen)
        if xv is None:
            continue
        net.eval()
        with torch.inference_mode():
            score = auroc_or_nan(y[va], net(xv)[:, 0].numpy())
        if stop.should_stop(score):
            break
    stop.restore()
    return Probe("mlp", norm, net=net, info={"epochs": epochs, "val_auroc": stop.best_score})


def _fit_saplma(z: np.ndarray, y: np.ndarray, norm: Standardiser, seed: int) -> Probe:
    import torch

    torch.manual_seed(seed)
    net = _torch_net("saplma", z.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(z), torch.from_numpy(y).float()
    gen = torch.Generator().manual_seed(seed)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for _ in range(5):
        _train_epoch(net, opt, loss_fn, xt, yt, gen)
    net.eval()
    return Probe("saplma", norm, net=net)


def _fit_span_mlp(x: SpanBatch, y: np.ndarray, groups: np.ndarray | None, seed: int, max_epochs: int,
                  patience: int, batch: int = 32) -> Probe:
    """The MLP on every span token with the joint loss; early stop on the validation AUROC of the max logit."""
    import torch

    torch.manual_seed(seed)
    norm = Standardiser.fit(x.flat())
    n, t, d = x.tokens.shape
    z = norm(x.tokens.reshape(n * t, d)).reshape(n, t, d)
    mask = x.mask()
    tr, va = _inner_split(y, groups, seed)
    if len(set(y[va].tolist())) < 2:  # too few items for a validation split: train on all, fixed epochs
        tr, va = np.arange(len(y)), np.array([], dtype=np.int64)
    net = _torch_net("mlp", d)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
    zt, mt, yt = torch.from_numpy(z[tr]), torch.from_numpy(mask[tr]), torch.from_numpy(y[tr]).float()
    pos = float(yt.sum())
    pos_weight = torch.tensor((len(yt) - pos) / max(pos, 1.0))
    gen = torch.Generator().manual_seed(seed)
    total_steps = max_epochs * math.ceil(len(tr) / batch)
    step = 0
    stop, epochs = _EarlyStop(net, patience), 0
    val = SpanBatch(x.tokens[va], x.lengths[va]) if len(va) else None
    probe = Probe("mlp", norm, net=net)
    for _ in range(max_epochs):
        epochs += 1
        net.train()
        perm = torch.randperm(len(tr), generator=gen)
        for i in range(0, len(perm), batch):
            b = perm[i:i + batch]
            opt.zero_grad()
            logits = net(zt[b].reshape(-1, d))[:, 0].reshape(len(b), t)
            span_joint_loss(logits, mt[b], yt[b], omega(step, total_steps), pos_weight).backward()
            opt.step()
            step += 1
        if val is None:
            continue
        score = auroc_or_nan(y[va], probe.span_logits(val))
        if stop.should_stop(score):
            break
    stop.restore()
    probe.info = {"epochs": epochs, "val_auroc": stop.best_score, "omega_last": omega(step, total_steps)}
    return probe
