"""Strict JSON of reports: NaN/Inf become null, tuples/sets lists, tensors and paths plain values."""

from __future__ import annotations

import json
import math
from typing import Any


def clean(obj: Any) -> Any:
    """JSON-safe copy of `obj`."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [clean(v) for v in obj]
    if hasattr(obj, "tolist"):
        return clean(obj.tolist())
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


def to_json(data: Any) -> str:
    """One line of strict JSON."""
    return json.dumps(clean(data), allow_nan=False, separators=(",", ":"))
