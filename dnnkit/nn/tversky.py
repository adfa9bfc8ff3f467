"""The Tversky projection layer (Doumbouya, Jurafsky, Manning, ICLR 2026), from the paper's equations.

TP(x)_i = S(x~, pi_i): the Tversky similarity of the (standardised) input to each learned prototype,
where objects are sets of learned features (feature k is present in a iff a . omega_k > 0). Unlike
one linear layer it can model XOR. `StandardizedLinear` is the linear control with the same input
standardisation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dnnkit.kernels.tversky_similarity import check_options, tversky_similarity

INITS = ("uniform", "normal", "orthogonal")


def init_tensor(t: torch.Tensor, init: str, generator: torch.Generator | None = None) -> None:
    """U(0, 1) (the authors' code), N(0, 1) or orthogonal (the paper's XOR sweep), in place."""
    with torch.no_grad():
        if init == "uniform":
            t.uniform_(0.0, 1.0, generator=generator)
        elif init == "normal":
            t.normal_(0.0, 1.0, generator=generator)
        elif init == "orthogonal":
            nn.init.orthogonal_(t, generator=generator)
        else:
            raise ValueError(f"unknown init {init!r}; use one of {INITS}")


class TverskyProjection(nn.Module):
    """Linear-layer replacement: similarity of each input to `out_features` prototypes over `features` features.

    Parameters: `features` (K x d feature bank, or a shared bank), `prototypes` (p x d, or the rows of
    a tied embedding), scalars `alpha`, `beta`, `theta`. Buffers `in_mean`, `in_std` standardise
    inputs (a dnnkit addition; identity unless calibrated). No bias.
    """

    def __init__(self, in_features: int, out_features: int, features: int, *, intersection: str = "product",
                 difference: str = "substractmatch", similarity: str = "contrast", reduction: str = "per-feature",
                 alpha: float = 0.5, beta: float = 0.5, theta: float = 1.0, init: str = "uniform",
                 bank: nn.Parameter | None = None, tied: nn.Module | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        check_options(intersection, difference, similarity, reduction)
        if in_features <= 0 or out_features <= 0 or features <= 0:
            raise ValueError("in_features, out_features and features must be positive")
        self.in_features, self.out_features, self.num_features = in_features, out_features, features
        self.intersection, self.difference = intersection, difference
        self.similarity, self.reduction, self.init = similarity, reduction, init
        self._shared_bank: list[nn.Parameter] = []
        self._tied: list[nn.Module] = []
        if bank is None:
            self.features = nn.Parameter(torch.empty(features, in_features))
            init_tensor(self.features, init, generator)
        else:
            if tuple(bank.shape) != (features, in_features):
                raise ValueError(f"shared bank is {tuple(bank.shape)}, expected {(features, in_features)}")
            self._shared_bank.append(bank)
        if tied is None:
            self.prototypes = nn.Parameter(torch.empty(out_features, in_features))
            init_tensor(self.prototypes, init, generator)
        else:
            if tuple(tied.weight.shape) != (out_features, in_features):
                raise ValueError(f"tied weight is {tuple(tied.weight.shape)}, expected {(out_features, in_features)}")
            self._tied.append(tied)
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))
        self.beta = nn.Parameter(torch.tensor(float(beta)))
        self.theta = nn.Parameter(torch.tensor(float(theta)))
        self.register_buffer("in_mean", torch.zeros(in_features))
        self.register_buffer("in_std", torch.ones(in_features))

    @property
    def bank(self) -> torch.Tensor:
        """The feature bank Omega (K x d): own parameter or the shared one."""
        return self._shared_bank[0] if self._shared_bank else self.features

    @property
    def prototype_matrix(self) -> torch.Tensor:
        """The prototypes Pi (p x d): own parameter or the tied embedding's rows."""
        return self._tied[0].weight if self._tied else self.prototypes

    @property
    def shares_bank(self) -> bool:
        return bool(self._shared_bank)

    @property
    def is_tied(self) -> bool:
        return bool(self._tied)

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """x~ = (x - mu) / sigma per input dimension (frozen buffers)."""
        return (x - self.in_mean) / self.in_std

    def measures(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(M_a, M_b): feature measures of the flattened standardised inputs (n x K) and prototypes (p x K)."""
        omega = self.bank.float()
        xt = self.standardize(x.reshape(-1, self.in_features).float())
        return xt @ omega.T, self.prototype_matrix.float() @ omega.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ma, mb = self.measures(x)
        s = tversky_similarity(ma, mb, self.alpha, self.beta, self.theta, intersection=self.intersection,
                               difference=self.difference, similarity=self.similarity, reduction=self.reduction)
        return s.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def own_parameter_count(self) -> int:
        """Parameters this layer stores itself (a shared bank or tied prototypes are not counted)."""
        return sum(p.numel() for p in self.parameters(recurse=False))

    def extra_repr(self) -> str:
        bank = "shared" if self.shares_bank else "own"
        protos = "tied" if self.is_tied else "own"
        return (f"in={self.in_features}, out={self.out_features}, features={self.num_features} ({bank} bank, "
                f"{protos} prototypes), {self.similarity}/{self.intersection}/{self.difference}/{self.reduction}")


class StandardizedLinear(nn.Linear):
    """nn.Linear on standardised inputs: the control of `swap-projection linear` (same x~ as Tversky)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.register_buffer("in_mean", torch.zeros(in_features))
        self.register_buffer("in_std", torch.ones(in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xt = ((x.float() - self.in_mean) / self.in_std).to(self.weight.dtype)
        return nn.functional.linear(xt, self.weight, self.bias).to(x.dtype)


def direct_similarity(x: torch.Tensor, layer: TverskyProjection) -> torch.Tensor:
    """Slow per-(i, j, k) float64 evaluation of the layer from the paper's definitions (tests, docs)."""
    from dnnkit.kernels.tversky_similarity import RATIO_EPS

    ma, mb = (m.detach().double() for m in layer.measures(x))
    alpha, beta, theta = (float(t.detach()) for t in (layer.alpha, layer.beta, layer.theta))
    out = torch.zeros(ma.shape[0], mb.shape[0], dtype=torch.float64)
    for i in range(ma.shape[0]):
        for j in range(mb.shape[0]):
            inter = d_ab = d_ba = 0.0
            for a, b in zip(ma[i].tolist(), mb[j].tolist(), strict=True):
                if a > 0 and b > 0:
                    inter += _psi_scalar(a, b, layer.intersection)
                    if layer.difference == "substractmatch":
                        d_ab += max(a - b, 0.0)
                        d_ba += max(b - a, 0.0)
                elif a > 0:
                    d_ab += a
                elif b > 0:
                    d_ba += b
            if layer.similarity == "contrast":
                out[i, j] = theta * inter - alpha * d_ab - beta * d_ba
            else:
                out[i, j] = inter / (inter + alpha * d_ab + beta * d_ba + RATIO_EPS)
    return out


def _psi_scalar(a: float, b: float, kind: str) -> float:
    if kind == "product":
        return a * b
    if kind == "min":
        return min(a, b)
    if kind == "max":
        return max(a, b)
    if kind == "mean":
        return (a + b) / 2
    if kind == "gmean":
        return math.sqrt(a * b)
    return -math.log(math.exp(-a) + math.exp(-b))
