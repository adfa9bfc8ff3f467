"""Legacy PyTorch weights (`.pt/.pth/.bin`), loaded only with `torch.load(weights_only=True)`.

A pickle that would need to run code is refused by PyTorch's restricted unpickler; there is no
fallback to full unpickling, ever.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from dnnkit.errors import InputError

if TYPE_CHECKING:
    import torch

STATE_KEYS = ("state_dict", "model_state_dict", "model", "module", "net")


def load_legacy_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The state dict in a legacy file, or an InputError (refused pickle, not a state dict)."""
    import torch

    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols; the verdict below is what counts
            warnings.simplefilter("ignore")
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - anything the restricted unpickler rejects is refused input
        import pickle

        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, pickle.UnpicklingError) or any(
                k in str(exc) for k in ("weights_only", "Unsupported global", "GLOBAL")):
            raise InputError(f"refused to load {path}: its pickle asks to run code or build objects "
                             "(only plain tensors are accepted)",
                             hint="convert it to safetensors in a trusted environment") from exc
        raise InputError(f"cannot read {path} as PyTorch weights: {first[:200]}") from exc
    tensors = _find_state_dict(obj)
    if tensors is None:
        raise InputError(f"{path} holds no state dict of tensors")
    return tensors


def _find_state_dict(obj: object) -> dict[str, torch.Tensor] | None:
    import torch

    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {str(k): v for k, v in obj.items()}
    if isinstance(obj, dict):
        for key in STATE_KEYS:
            if key in obj:
                found = _find_state_dict(obj[key])
                if found is not None:
                    return found
    return None
