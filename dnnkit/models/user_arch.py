"""A user's own architecture: `--arch py:path/to/file.py:factory[?key=value&...]`.

The file the user names on the command line is imported and `factory(**kwargs)` builds the network.
This is the only place dnnkit imports code it did not ship, and only on the user's own flag: a
checkpoint written from such a model records the reference (and the file's sha256) but loading it
never imports anything by itself; without `--arch` it is bad input with the hint to pass it.

A factory (or the module it returns) may carry `dnnkit_info = {"task": "classifier", "input_shape":
[1, 8, 8], "num_classes": 10, "data": "digits"}` so that commands know what the network eats.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from dnnkit.errors import InputError

if TYPE_CHECKING:
    from torch import nn

PREFIX = "py:"
INFO_KEYS = ("task", "input_shape", "num_classes", "data")


def parse_py_arch(value: str, parse_value: Any) -> dict[str, Any]:
    """The spec of `py:FILE.py:FACTORY[?k=v&...]` (the file must exist; nothing is imported yet)."""
    body, _, query = value[len(PREFIX):].partition("?")
    path_text, sep, factory = body.rpartition(":")
    if not sep or not path_text or not factory.isidentifier():
        raise InputError(f"--arch {value!r} is not py:FILE.py:FACTORY",
                         hint="e.g. --arch py:models/mlp.py:build_mlp?hidden=128")
    path = Path(path_text).expanduser()
    if path.suffix != ".py" or not path.is_file():
        raise InputError(f"--arch {value!r}: no such Python file {path_text!r}")
    return {"family": "py", "file": str(path.resolve()), "factory": factory,
            "kwargs": {k: parse_value(v) for k, v in parse_qsl(query)}, "sha256": _sha256(path),
            "reference": value}


def build_py_arch(spec: dict[str, Any]) -> nn.Module:
    """Import the user's file and call its factory (the caller checked that the spec is the user's own)."""
    from torch import nn

    path = Path(spec["file"])
    if not path.is_file():
        raise InputError(f"--arch py: file {path} no longer exists")
    module_name = f"dnnkit_user_arch_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise InputError(f"--arch py: cannot import {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's own code failed: one clear line
        sys.modules.pop(module_name, None)
        raise InputError(f"--arch py: importing {path.name} failed: {type(exc).__name__}: {exc}") from exc
    factory = getattr(module, spec["factory"], None)
    if not callable(factory):
        raise InputError(f"--arch py: {path.name} has no callable {spec['factory']!r}")
    try:
        model = factory(**spec.get("kwargs", {}))
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"--arch py: {spec['factory']}(...) failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise InputError(f"--arch py: {spec['factory']}(...) returned {type(model).__name__}, not a torch nn.Module")
    info = getattr(model, "dnnkit_info", None) or getattr(factory, "dnnkit_info", None) or {}
    spec["info"] = {k: info[k] for k in INFO_KEYS if k in info}
    return model


def needs_user_flag(spec: dict[str, Any]) -> InputError:
    """The error for a checkpoint built from a user architecture, loaded without --arch."""
    ref = spec.get("reference") or f"py:{spec.get('file')}:{spec.get('factory')}"
    return InputError("this checkpoint was built from a user architecture; dnnkit never imports code a checkpoint "
                      "names", hint=f"pass --arch {ref} (your own file) to rebuild it")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
