"""Release gates on metrics: `--require 'accuracy>=0.9'` expressions, and warnings when a surgery's
after-metric falls far below its before-metric (a pipeline must not ship a broken model silently)."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dnnkit.errors import InputError, RuntimeFailure

_OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le, ">": operator.gt,
                                                   "<": operator.lt, "==": operator.eq}
_EXPR = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=|==|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")

# How far an after-metric may fall before a warning: absolute drop for scores in [0, 1], ratio for the rest.
DROP_ABS = {"accuracy": 0.05, "cosine": 0.05, "grid_pointing": 0.1}
RISE_RATIO = {"perplexity": 1.5, "output_mse": 4.0}


class RequirementFailed(RuntimeFailure):
    """A --require gate failed (exit 1): the work ran, the result is not good enough, nothing was written."""


@dataclass(frozen=True)
class Requirement:
    """One `metric OP value` gate."""

    metric: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"

    def holds(self, actual: float) -> bool:
        return math.isfinite(actual) and _OPS[self.op](actual, self.value)


def parse_requirements(exprs: list[str] | None) -> list[Requirement]:
    """Parse --require values (each may hold several, comma-separated); bad syntax is an InputError."""
    out: list[Requirement] = []
    for raw in exprs or []:
        for part in str(raw).split(","):
            if not part.strip():
                continue
            m = _EXPR.match(part)
            if not m:
                raise InputError(f"--require {part.strip()!r} is not METRIC OP NUMBER",
                                 hint="e.g. --require 'accuracy>=0.9' or --require 'perplexity<=30' "
                                      "(OP is one of >= <= > < ==)")
            out.append(Requirement(m.group(1), m.group(2), float(m.group(3))))
    return out


def flat_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numeric entries of a metrics mapping (nested mappings are skipped; bools are not numbers)."""
    return {str(k): float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def check_requirements(reqs: list[Requirement], after: Mapping[str, Any], what: str = "the result") -> None:
    """Raise RequirementFailed naming every failed gate; an unknown metric names the ones available."""
    if not reqs:
        return
    values = flat_metrics(after)
    unknown = [r.metric for r in reqs if r.metric not in values]
    if unknown:
        names = ", ".join(sorted(k for k in values if k != "samples")) or "none"
        raise RequirementFailed(f"--require names {unknown[0]!r}, which {what} does not report; nothing was written",
                                hint=f"metrics reported here: {names}")
    failed = [f"{r} (got {values[r.metric]:.6g})" for r in reqs if not r.holds(values[r.metric])]
    if failed:
        raise RequirementFailed(f"requirement failed: {'; '.join(failed)}; nothing was written",
                                hint="the work ran; relax --require or change the settings")


def drop_warnings(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """One message per metric whose after-value fell far below its before-value."""
    b, a = flat_metrics(before), flat_metrics(after)
    out = []
    for name in sorted(set(a) & set(b)):
        was, now = b[name], a[name]
        if not (math.isfinite(was) and math.isfinite(now)) or name == "samples":
            if math.isfinite(was) and not math.isfinite(now):
                out.append(f"{name} became {now} (was {was:.4g})")
            continue
        if name in RISE_RATIO and was > 0 and now > RISE_RATIO[name] * was:
            out.append(f"{name} rose from {was:.4g} to {now:.4g} ({now / was:.1f}x)")
        elif name in DROP_ABS and now < was - DROP_ABS[name]:
            out.append(f"{name} fell from {was:.4g} to {now:.4g} ({100 * (was - now):.1f} points)")
    return out
