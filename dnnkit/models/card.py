"""Model cards: the `README.md` in the Hub's format that every HF or timm folder dnnkit writes carries.

YAML front matter (`base_model`, `tags: [dnnkit, <op>]`, `library_name`), then a dnnkit section: the
recipe in words, the before/after metrics when the command measured them, and the exact command. An
input folder's own card is kept: its front matter gains dnnkit's tags, its text gains the section.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

CARD_NAME = "README.md"
_MAX_CARD_BYTES = 1 << 20  # a card larger than this is kept verbatim, its front matter unread
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.\-]*/[\w.\-]+")


def is_hub_id(name: Any) -> bool:
    """Whether `name` reads as a Hub repository id (ORG/NAME), not a local path."""
    return isinstance(name, str) and _HUB_ID.fullmatch(name) is not None and not Path(name).exists()


def base_model_name(reference: str, config: dict[str, Any] | None = None) -> str:
    """What the output was made from: the hub id of an `hf:` input or of a config's `_name_or_path`,
    else the input's name or path as the user gave it."""
    if reference.startswith("hf:"):
        return reference[3:]
    name = (config or {}).get("_name_or_path")
    return name if is_hub_id(name) else reference


def split_front_matter(text: str) -> tuple[dict[str, Any] | None, str]:
    """(front matter, body) of a card; (None, text) when it has no readable YAML front matter."""
    match = re.match(r"\A---[ \t]*\r?\n(.*?\r?\n)?---[ \t]*(\r?\n|\Z)", text, re.DOTALL)
    if match is None or len(text) > _MAX_CARD_BYTES:
        return None, text
    import yaml

    try:
        meta = yaml.load(match.group(1) or "", Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except yaml.YAMLError:
        return None, text
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        return None, text
    return meta, text[match.end():]


def _merge_tags(existing: Any, new: list[str]) -> list[str]:
    tags = [existing] if isinstance(existing, str) else [t for t in (existing or []) if isinstance(t, str)]
    return list(dict.fromkeys([*tags, *new]))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _pct(value: Any) -> str:
    return f"{100 * value:.4g} %" if isinstance(value, (int, float)) else str(value)


def describe_step(step: dict[str, Any]) -> str:
    """One recipe step in words."""
    op = str(step.get("op", "?"))
    params = step.get("params") if isinstance(step.get("params"), dict) else {}
    layers = step.get("layers") if isinstance(step.get("layers"), dict) else {}
    if op == "prune":
        how = f"method {params.get('method')}, criterion {params.get('criterion') or 'magnitude'}"
        if params.get("pattern"):
            how += f", pattern {params['pattern']} (at most N of every M consecutive weights kept)"
        if params.get("data"):
            how += f", calibrated on `{params['data']}`"
        if params.get("steps", 1) and params.get("steps", 1) > 1:
            how += f", {params['steps']} steps"
        if params.get("finetune_epochs"):
            how += f", {params['finetune_epochs']} masked fine-tuning epochs per step"
        text = f"**prune**: {_pct(params.get('ratio'))} of the prunable weights set to zero ({how})"
        if layers:
            text += f" over {len(layers)} layers"
        return text + "; the architecture is unchanged, so the pruned weights are stored as exact zeros."
    shown = {k: v for k, v in params.items() if v is not None and not isinstance(v, (dict, list))}
    text = f"**{op}**"
    if shown:
        text += " with " + ", ".join(f"{k} {_fmt(v)}" for k, v in shown.items())
    if layers:
        text += f" over {len(layers)} layers"
    return text + "."


def metrics_table(metrics: dict[str, Any]) -> list[str]:
    """A Markdown table of the scalar before/after metrics (empty when the command measured none)."""
    before = metrics.get("before") if isinstance(metrics.get("before"), dict) else {}
    after = metrics.get("after") if isinstance(metrics.get("after"), dict) else {}
    keys = [k for k in dict.fromkeys([*before, *after]) if k != "samples"
            and isinstance(before.get(k, after.get(k)), (int, float)) and not isinstance(before.get(k), bool)]
    if not keys:
        return []
    rows = ["| metric | before | after |", "| --- | ---: | ---: |"]
    rows += [f"| {k} | {_fmt(before.get(k, '-'))} | {_fmt(after.get(k, '-'))} |" for k in keys]
    samples = after.get("samples", before.get("samples"))
    if isinstance(samples, int):
        rows += ["", f"Measured on {samples} held-out samples."]
    return rows


def dnnkit_section(record: dict[str, Any]) -> str:
    """dnnkit's part of the card: where the model came from, the recipe, the metrics, the command."""
    recipe = [s for s in record.get("recipe") or [] if isinstance(s, dict)]
    op = str(recipe[-1].get("op", "surgery")) if recipe else "surgery"
    source = record.get("source") or {}
    lines = [f"## dnnkit: {op}", ""]
    origin = f"Written by dnnkit {record.get('version', '')} from `{source.get('reference', '?')}`"
    if source.get("sha256"):
        origin += f" (weights sha256 `{str(source['sha256'])[:16]}…`)"
    if record.get("created"):
        origin += f" on {record['created']}"
    lines += [origin + ".", "", "### Recipe", ""]
    for i, step in enumerate(recipe, 1):
        earlier = " (already in the input)" if i < len(recipe) else ""
        lines.append(f"{i}. {describe_step(step)}{earlier}")
    table = metrics_table(record.get("metrics") or {})
    lines += ["", "### Metrics", ""]
    lines += table or ["The command measured no metrics (pass `--data` to measure before and after)."]
    command = [str(c) for c in record.get("command") or []] if isinstance(record.get("command"), list) else []
    lines += ["", "### Command", ""]
    if command and Path(command[0]).name == "dnnkit":
        lines += ["```bash", shlex.join(command), "```"]
    else:
        lines.append(f"Made through dnnkit's Python API (`dnnkit.{op.replace('-', '_')}(...)`)"
                     + (f" in `{shlex.join(command)}`." if command and command != ["-"] else "."))
    lines += ["", "The full record (recipe, source, metrics) is in `dnnkit.json` beside the weights.", ""]
    return "\n".join(lines)


def model_card(record: dict[str, Any], *, base_model: str | None, library_name: str,
               existing: str | None = None) -> str:
    """The card text: `existing` (the input's card, kept) with dnnkit's front matter and section added
    (no `base_model` when None: an in-memory module with no hub id)."""
    import yaml

    recipe = [s for s in record.get("recipe") or [] if isinstance(s, dict)]
    op = str(recipe[-1].get("op", "surgery")) if recipe else "surgery"
    meta, body = split_front_matter(existing) if existing else (None, "")
    if meta is None:
        meta = {}
    chained = "dnnkit" in _merge_tags(meta.get("tags"), [])  # the input is a dnnkit output: keep its base
    out = dict(meta)
    if base_model is not None and not (chained and meta.get("base_model")):
        out["base_model"] = base_model
    out["tags"] = _merge_tags(meta.get("tags"), ["dnnkit", op])
    out.setdefault("library_name", library_name)
    front = yaml.safe_dump(out, sort_keys=False, allow_unicode=True, width=120)
    if not body.strip():
        source = base_model or str((record.get("source") or {}).get("reference") or "a model")
        body = f"# {source} ({op} by dnnkit)\n\nThis model is `{source}` after dnnkit surgery.\n"
    return f"---\n{front}---\n\n{body.rstrip()}\n\n{dnnkit_section(record)}"


def write_card(folder: Path, record: dict[str, Any], *, base_model: str | None, library_name: str) -> Path:
    """Write (or extend) `folder/README.md`; a card already there (copied from the input) is kept."""
    path = folder / CARD_NAME
    existing = None
    if path.is_file():
        existing = path.read_bytes().decode("utf-8", errors="replace")
    path.write_text(model_card(record, base_model=base_model, library_name=library_name, existing=existing),
                    encoding="utf-8")
    return path
