"""Per-item analyses of the linear interpreter (rows, columns, bias share, votes, SVD, checks) and a split summary."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from dnnkit.errors import InputError
from dnnkit.probes.linear_interpret.checks import jacobian_rows, linearity_check, local_error
from dnnkit.probes.linear_interpret.replay import Interpreter
from dnnkit.progress import ProgressReporter, or_null

SVD_DENSE_LIMIT = 4_000_000


@dataclass
class ItemResult:
    """One interpreted input: JSON fields plus the arrays the plots need."""

    fields: dict[str, Any]
    x: np.ndarray
    rows: dict[int, np.ndarray] = field(default_factory=dict)  # output -> row of A (input-shaped)
    columns: dict[int, np.ndarray] = field(default_factory=dict)  # input position -> column of A
    c: np.ndarray | None = None
    ax: np.ndarray | None = None
    svd_values: list[float] = field(default_factory=list)
    svd_inputs: list[np.ndarray] = field(default_factory=list)


def parse_outputs(spec: str, n_out: int) -> str | list[int]:
    """'pred', 'all' or a comma list of output indices (validated)."""
    if spec in ("pred", "all"):
        return spec
    try:
        outs = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError as exc:
        raise InputError(f"--outputs must be pred, all or K,K,..., got {spec!r}") from exc
    bad = [o for o in outs if not 0 <= o < n_out]
    if not outs or bad:
        raise InputError(f"--outputs {spec!r}: the model has outputs 0..{n_out - 1}")
    return outs


def parse_columns(spec: str, n_in: int) -> list[int]:
    """'none' or a comma list of flat input positions (validated)."""
    if spec in ("none", ""):
        return []
    try:
        cols = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError as exc:
        raise InputError(f"--columns must be none or P,P,..., got {spec!r}") from exc
    bad = [p for p in cols if not 0 <= p < n_in]
    if bad:
        raise InputError(f"--columns {bad[0]} is outside the input (flat positions 0..{n_in - 1})")
    return cols


def bias_share(c_k: torch.Tensor, ax_k: torch.Tensor) -> torch.Tensor:
    """|c_k| / (|c_k| + |(A x)_k|): the share of a score that does not come from the input."""
    return c_k.abs() / (c_k.abs() + ax_k.abs()).clamp_min(torch.finfo(c_k.dtype).tiny)


def interpret_items(model: nn.Module, x: torch.Tensor, labels: list[int | None], indices: list[int], *,
                    outputs: str | list[int] = "pred", columns: list[int] | None = None, svd: int = 0,
                    check: bool = True, smooth: str = "secant", seed: int = 0,
                    progress: ProgressReporter | None = None) -> tuple[list[ItemResult], dict[str, Any]]:
    """Interpret each input x[j] (model in eval mode, x already in the model's dtype and device)."""
    progress = or_null(progress)
    columns = columns or []
    items: list[ItemResult] = []
    summary: dict[str, Any] = {}
    with Interpreter(model, smooth) as it:
        summary.update(rules=it.scope.rules(), units=dict(it.scope.units), piecewise_linear=it.scope.piecewise_linear,
                       affine_model=not it.scope.modules)
        lin = linearity_check(it, x[: min(len(x), 8)], seed) if check else None
        summary["linearity_error"] = lin
        t_rows = 0.0
        n_rows = 0
        for j in range(len(x)):
            x0 = x[j:j + 1]
            f, c = it.bias(x0)
            n_out = f.shape[1]
            pred = int(f.argmax(1))
            outs = [pred] if outputs == "pred" else list(range(n_out)) if outputs == "all" else list(outputs)
            t0 = time.perf_counter()
            _, _, rows = it.rows(x0, torch.tensor([outs]))
            t_rows += time.perf_counter() - t0
            n_rows += len(outs)
            rows = rows[0]
            flat_rows = rows.reshape(len(outs), -1)
            ax_sel = flat_rows @ x0.reshape(-1)
            ax = f[0] - c[0]  # A x for every output (exact by linearity; identity checked on computed rows)
            ident = (ax_sel + c[0, outs] - f[0, outs]).abs().max()
            fscale = f.abs().max().clamp_min(torch.finfo(f.dtype).tiny)
            fields: dict[str, Any] = {
                "index": indices[j], "label": labels[j], "pred": pred, "logits": f[0].tolist(), "c": c[0].tolist(),
                "Ax": ax.tolist(), "outputs": outs,
                "bias_share": float(bias_share(c[0, pred], ax[pred])),
                "c_only_pred": int(c[0].argmax()), "Ax_only_pred": int(ax.argmax()),
                "identity_error": float(ident / fscale), "identity_error_abs": float(ident),
            }
            res = ItemResult(fields, x0[0].detach().cpu().double().numpy(), c=c[0].cpu().double().numpy(),
                             ax=ax.cpu().double().numpy())
            for o, r in zip(outs, rows, strict=True):
                res.rows[o] = r.detach().cpu().double().numpy()
            if pred in outs:
                votes = rows[outs.index(pred)] * x0[0]
                nz = votes[votes != 0]
                fields["vote_positive_share"] = float((nz > 0).float().mean()) if nz.numel() else None
                fields["vote_sum"] = float(votes.sum())
            if columns:
                cols = it.columns(x0, columns)[0]
                for p, col in zip(columns, cols, strict=True):
                    res.columns[p] = col.cpu().double().numpy()
                fields["columns_vs_rows_error"] = float(max(
                    (abs(float(cols[ci, o]) - float(flat_rows[oi, p])) for ci, p in enumerate(columns)
                     for oi, o in enumerate(outs)), default=0.0))
            if check:
                fields["jacobian_error"] = None
                if it.scope.piecewise_linear:
                    with it.scope.suspended():
                        jac = jacobian_rows(model, x0[0]).reshape(n_out, -1)
                    fields["jacobian_error"] = float((jac[outs] - flat_rows).abs().max())
                fields["local_error"] = float(local_error(it, x0, seed=seed)[0])
            if svd:
                vals, vecs = top_singular(it, x0, n_out, svd)
                fields["top_singular_values"] = vals
                res.svd_values, res.svd_inputs = vals, vecs
            items.append(res)
            progress.log(f"item {indices[j]}: pred {pred}, bias share {fields['bias_share']:.3f}, "
                         f"identity {fields['identity_error']:.1e}")
        summary["rows_s"] = t_rows
        summary["rows_per_s"] = n_rows / t_rows if t_rows > 0 else None
    errs = [r.fields["identity_error"] for r in items]
    summary["identity_error_max"] = max(errs) if errs else None
    tol = 1e-10 if x.dtype == torch.float64 else 1e-5
    summary["exact_at_x0"] = bool(errs) and max(errs) <= tol
    return items, summary


def top_singular(it: Interpreter, x0: torch.Tensor, n_out: int, k: int) -> tuple[list[float], list[np.ndarray]]:
    """Top-k singular values and input-side singular vectors of A(x0): exact SVD, or Lanczos when A is large."""
    n_in = x0[0].numel()
    k = min(k, n_out, n_in)
    if n_in * n_out <= SVD_DENSE_LIMIT:
        a = it.full_matrix(x0, n_out)[0]
        _, s, vh = torch.linalg.svd(a.double(), full_matrices=False)
        return s[:k].tolist(), [v.reshape(x0.shape[1:]).numpy() for v in vh[:k]]
    from scipy.sparse.linalg import LinearOperator, svds

    k = min(k, min(n_out, n_in) - 1)
    dt = x0.dtype

    def matvec(v: np.ndarray) -> np.ndarray:
        xs = torch.as_tensor(np.asarray(v).reshape(1, 1, *x0.shape[1:]), dtype=dt, device=x0.device)
        _, y = it.apply(x0, torch.cat([torch.zeros_like(xs), xs], dim=1))
        return (y[0, 1] - y[0, 0]).cpu().double().numpy()

    def rmatvec(u: np.ndarray) -> np.ndarray:
        vs = torch.as_tensor(np.asarray(u).reshape(1, 1, n_out), dtype=dt, device=x0.device)
        return it.transpose(x0, vs)[2].reshape(-1).cpu().double().numpy()

    op = LinearOperator((n_out, n_in), matvec=matvec, rmatvec=rmatvec, dtype=np.float64)
    _, s, vh = svds(op, k=k, random_state=0)
    order = np.argsort(s)[::-1]
    return [float(s[i]) for i in order], [vh[i].reshape(tuple(x0.shape[1:])) for i in order]


def evaluate_split(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, *, smooth: str = "secant",
                   batch_size: int = 64) -> dict[str, Any]:
    """Over examples: accuracy of f, of A x alone, of c alone; decisions unchanged without c; bias shares."""
    fs, cs = [], []
    with Interpreter(model, smooth) as it:
        for i in range(0, len(x), batch_size):
            f, c = it.bias(x[i:i + batch_size])
            fs.append(f)
            cs.append(c)
    f, c = torch.cat(fs), torch.cat(cs)
    ax = f - c
    pred = f.argmax(1)
    shares = bias_share(c.gather(1, pred[:, None])[:, 0], ax.gather(1, pred[:, None])[:, 0])
    out: dict[str, Any] = {
        "n": len(x),
        "unchanged_without_c": float((ax.argmax(1) == pred).double().mean()),
        "bias_share_mean": float(shares.mean()),
        "bias_share_median": float(shares.median()),
        "bias_shares": shares.cpu().double().numpy(),
    }
    if y is not None:
        y = y.to(pred.device)
        out.update(acc_full=float((pred == y).double().mean()), acc_Ax_only=float((ax.argmax(1) == y).double().mean()),
                   acc_c_only=float((c.argmax(1) == y).double().mean()))
    return out
