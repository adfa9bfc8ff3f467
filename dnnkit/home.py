"""Where dnnkit caches what it trains or converts: `$DNNKIT_HOME`, default `~/.cache/dnnkit`."""

from __future__ import annotations

import os
from pathlib import Path


def dnnkit_home() -> Path:
    """Cache root: `$DNNKIT_HOME`, default `~/.cache/dnnkit`."""
    return Path(os.environ.get("DNNKIT_HOME") or Path.home() / ".cache" / "dnnkit")
