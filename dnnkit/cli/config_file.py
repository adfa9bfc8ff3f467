"""`--config FILE.yaml`: option values read from a file, checked before Click sees them.

The file is untrusted text: it is parsed with YAML's safe loader (no Python objects), and it must be a
mapping of option names to scalars (or lists of scalars), optionally grouped under command names.
Anything else, including alias bombs and deep nesting, is one InputError (exit 2).
"""

from __future__ import annotations

from typing import Any

from dnnkit.errors import InputError

MAX_CONFIG_BYTES = 1024 * 1024
MAX_LIST = 10_000
_SCALARS = (str, int, float, bool, type(None))


def read_config(path: str, commands: set[str]) -> dict[str, Any]:
    """Option name (snake_case) -> value; a command's own section stays a nested dict under its name."""
    import yaml

    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read --config {path}: {exc.strerror}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise InputError(f"--config {path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: fast, and bounds nesting depth itself
        data = yaml.load(raw.decode("utf-8"), Loader=loader) or {}  # noqa: S506 - a safe loader
    except UnicodeDecodeError as exc:
        raise InputError(f"--config {path} is not UTF-8 text") from exc
    except (yaml.YAMLError, RecursionError, ValueError, TypeError) as exc:  # safe_load may raise the last ones too
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        raise InputError(f"--config {path} is not valid YAML{at}") from exc
    if not isinstance(data, dict):
        raise InputError(f"--config {path} must hold a mapping of option names to values")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key in commands:
            out[key] = {_name(k, path): _value(v, f"{key}.{k}", path) for k, v in value.items()}
            continue
        name = _name(key, path)
        if isinstance(value, dict) and name in commands:
            out[name] = {_name(k, path): _value(v, f"{name}.{k}", path) for k, v in value.items()}
        else:
            out[name] = _value(value, name, path)
    return out


def _name(key: Any, path: str) -> str:
    if not isinstance(key, str) or not key.strip("-") or len(key) > 100:
        raise InputError(f"--config {path}: {str(key)[:40]!r} is not an option name")
    return key.lstrip("-").replace("-", "_")


def _value(value: Any, name: str, path: str) -> Any:
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, list) and len(value) <= MAX_LIST and all(isinstance(v, _SCALARS) for v in value):
        return value
    raise InputError(f"--config {path}: the value of {name!r} must be a number, a string, a boolean or a list of "
                     "them", hint="group a command's options under its name, e.g. `prune: {ratio: 0.5}`")
