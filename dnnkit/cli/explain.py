"""`dnnkit explain MODEL (--data D --index I[,I...] | --input FILE...)`: W(x)·x of a B-cos network
(input×gradient for other models), the completeness check, and a PNG grid."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dnnkit.cli.options import DataOpt, ModelArg
from dnnkit.cli.shared import LOAD, WRITE, Shared, shared_options

DTYPES = {"float32": "float32", "fp32": "float32", "float64": "float64", "fp64": "float64", "float16": "float16",
          "fp16": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16"}


def _parse_indices(raw: list[str]) -> list[int]:
    from dnnkit.errors import InputError

    out = []
    for part in ",".join(raw).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(int(part))
        except ValueError as exc:
            raise InputError(f"--index {part!r} is not an integer") from exc
    return out


def _read_input(path: str) -> Any:
    """An image file (PNG/JPEG: pixels / 255) or a .npy array (C x H x W or H x W, values in [0, 1])."""
    import numpy as np
    import torch

    from dnnkit.errors import InputError

    p = Path(path)
    if not p.is_file():
        raise InputError(f"--input {path}: no such file")
    try:
        if p.suffix == ".npy":
            arr = np.load(p, allow_pickle=False).astype(np.float32)
        else:
            from PIL import Image

            with Image.open(p) as im:
                arr = np.asarray(im.convert("L" if im.mode in ("L", "1", "I", "I;16", "P") else "RGB"),
                                 dtype=np.float32) / 255.0
            arr = arr.transpose(2, 0, 1) if arr.ndim == 3 else arr
    except (OSError, ValueError) as exc:
        raise InputError(f"--input {path} is unreadable ({type(exc).__name__})") from exc
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise InputError(f"--input {path} has {arr.ndim} dimensions; expected C x H x W")
    return torch.from_numpy(np.ascontiguousarray(arr))


@shared_options(LOAD, WRITE, helps={"output": "PNG of the explanations (parent folders are created)."})
def explain_command(
    model: ModelArg,
    data: DataOpt = None,
    index: Annotated[list[str] | None, typer.Option("--index", help="Sample index(es) of --split, e.g. 0,5,9.")] = None,
    split: Annotated[str, typer.Option("--split", help="train or test.")] = "test",
    input_files: Annotated[list[str] | None, typer.Option("--input", help="Image file(s) (.png/.jpg, or .npy "
                                                                          "C x H x W in [0, 1]).")] = None,
    class_: Annotated[str, typer.Option("--class", help="Class index to explain, or pred.")] = "pred",
    method: Annotated[str, typer.Option("--method", help="auto (dynamic for B-cos, else ixg), dynamic or "
                                                         "ixg.")] = "auto",
    smooth: Annotated[int | None, typer.Option("--smooth", help="Alpha smoothing kernel K (odd; default "
                                                                "15 H / 224).", min=1)] = None,
    percentile: Annotated[float, typer.Option("--percentile", help="Percentile that maps to full alpha / "
                                                                   "colour.")] = 99.5,
    save_maps: Annotated[str | None, typer.Option("--save-maps", help="Write W(x), x_enc and R to this .npz.")] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="float32, float64, float16 or bfloat16.")] = None,
    *,
    shared: Shared,
) -> None:
    """Explain a classifier's predictions: B-cos contributions W(x)·x, or input×gradient."""
    from dnnkit.errors import InputError

    out, output, device = shared.out, shared.output, shared.device
    if (index is None) == (input_files is None):
        raise InputError("pass exactly one of --index (with --data) and --input")
    if method not in ("auto", "dynamic", "ixg"):
        raise InputError(f"--method must be auto, dynamic or ixg, got {method!r}")
    if split not in ("train", "test"):
        raise InputError(f"--split must be train or test, got {split!r}")
    if not 0 < percentile <= 100:
        raise InputError("--percentile must be in (0, 100]")
    if dtype is not None and dtype not in DTYPES:
        raise InputError(f"unknown --dtype {dtype!r}", hint="use float32, float64, float16 or bfloat16")
    if class_ != "pred" and not class_.lstrip("-").isdigit():
        raise InputError(f"--class must be a class index or pred, got {class_!r}")
    indices = _parse_indices(index) if index is not None else []
    if index is not None and not indices:
        raise InputError("--index names no sample")
    for path in (output, save_maps):
        if path is not None and not shared.dry_run:
            shared.check_output(path, model)
    if data is not None:
        from dnnkit.data.registry import check_data_spec

        check_data_spec(data)


    from dnnkit.models.registry import load_model
    from dnnkit.probes.explain.dynamic import check_pixels, explain, is_bcos

    want = DTYPES.get(dtype or "float32")
    loaded = load_model(model, arch=shared.arch, weights=shared.weights, device=device,
                        dtype=None if want in ("float32", "float64") else want, progress=out.progress())
    net = loaded.require_network("explain")
    if want == "float64":
        net.double()
    if loaded.info.task != "classifier":
        raise InputError(f"{model} is not an image classifier")
    bcos = is_bcos(net)
    if method == "dynamic" and not bcos:
        raise InputError(f"--method dynamic needs a B-cos network; {model} is not one",
                         hint="make one with `dnnkit bcosify`, or use --method ixg")
    x, labels, names = _inputs(loaded, data, split, indices, input_files)
    check_pixels(x, "input")
    from dnnkit.evaluate import check_image_shape

    check_image_shape(net, x, loaded.info.input_shape, "--input" if input_files else f"--data {data}", model)
    num_classes = loaded.info.num_classes
    cls: Any = "pred"
    if class_ != "pred":
        cls = int(class_)
        if num_classes is not None and not 0 <= cls < num_classes:
            raise InputError(f"--class {cls} outside 0..{num_classes - 1}")
    param = next(net.parameters())
    x = x.to(device=param.device, dtype=param.dtype)
    try:
        exp = explain(net, x, cls, method)
    except RuntimeError as exc:
        raise InputError(f"the model cannot take inputs of shape {'x'.join(map(str, x.shape[1:]))} "
                         f"({str(exc).splitlines()[0][:120]})") from exc
    from dnnkit.nn.bcos import current_b

    report = _report(model, exp, labels, names, bcos)
    for row, i in zip(report["inputs"], indices or [None] * len(names), strict=True):
        row["index"] = i
        row["file"] = None if i is not None else row["input"]
    report["b"] = current_b(net) if bcos else None
    report["png"] = None
    report["maps"] = None
    if output is not None and not shared.dry_run:
        report["png"] = str(_plot(output, exp, x, names, smooth, percentile))
    if save_maps is not None and not shared.dry_run:
        report["maps"] = str(_save_maps(save_maps, exp))
    report["dry_run"] = shared.dry_run
    out.result(report, lambda console: _render(console, report))


def _inputs(loaded: Any, data: str | None, split: str, indices: list[int], files: list[str] | None
            ) -> tuple[Any, list[int | None], list[str]]:
    import torch

    from dnnkit.data import ImageData, load_data
    from dnnkit.errors import InputError

    if files is not None:
        xs = [_read_input(f) for f in files]
        first = tuple(xs[0].shape)
        for f, t in zip(files, xs, strict=True):
            if tuple(t.shape) != first:
                raise InputError(f"--input {f} has shape {'x'.join(map(str, t.shape))}, unlike "
                                 f"{'x'.join(map(str, first))}")
        return torch.stack(xs), [None] * len(xs), list(files)
    data = data or loaded.info.default_data
    if data is None:
        raise InputError("--index needs --data")
    ds = load_data(data, split)
    if not isinstance(ds, ImageData):
        raise InputError(f"--data {data} holds no images")
    for i in indices:
        if not 0 <= i < len(ds):
            raise InputError(f"index {i} outside 0..{len(ds) - 1} of split {split}")
    return ds.x[indices], [int(ds.y[i]) for i in indices], [f"{split}[{i}]" for i in indices]


def _report(model: str, exp: Any, labels: list[int | None], names: list[str], bcos: bool) -> dict[str, Any]:
    import statistics

    rows = []
    err = exp.completeness_error.tolist()
    for i, name in enumerate(names):
        rows.append({
            "input": name, "label": labels[i], "predicted": int(exp.predicted[i]), "class": int(exp.classes[i]),
            "logit": float(exp.logits[i]), "logit_bias": exp.logit_bias,
            "contribution_sum": float(exp.contribution_sum[i]), "constant_share": float(exp.constant_share[i]),
            "completeness_error": err[i],
        })
    return {"model": model, "method": exp.method, "bcos": bcos, "b": None, "inputs": rows,
            "completeness_error": {"median": statistics.median(err), "max": max(err)}}


def _plot(path: str, exp: Any, x: Any, names: list[str], smooth: int | None, percentile: float) -> Path:
    from dnnkit.probes.explain.render import Row, colour_image, save_rows

    rows = []
    for i, name in enumerate(names):
        colour = colour_image(exp.weights[i].cpu(), exp.contributions[i].cpu(), smooth, percentile) \
            if exp.method == "dynamic" else None
        title = f"{name}: class {int(exp.classes[i])} (pred {int(exp.predicted[i])})"
        rows.append(Row(x[i].cpu(), exp.contributions[i].cpu(), colour, title))
    return save_rows(path, rows, percentile)


def _save_maps(path: str, exp: Any) -> Path:
    import numpy as np

    from dnnkit.models.atomic import atomic_file

    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, weights=exp.weights.cpu().numpy(), inputs=exp.inputs.cpu().numpy(),
                 contributions=exp.contributions.cpu().numpy(), classes=exp.classes.cpu().numpy(),
                 logits=exp.logits.cpu().numpy())
    return Path(path)


def _render(console: Any, r: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title=f"explain {r['model']} ({'B-cos W(x)·x' if r['method'] == 'dynamic' else 'input×gradient'})")
    for col in ("input", "label", "pred", "class", "logit", "ΣR", "constants", "completeness err"):
        t.add_column(col)
    for row in r["inputs"]:
        t.add_row(row["input"], str(row["label"]), str(row["predicted"]), str(row["class"]), f"{row['logit']:.4g}",
                  f"{row['contribution_sum']:.4g}", f"{row['constant_share']:.3g}", f"{row['completeness_error']:.2e}")
    console.print(t)
    if r.get("png"):
        console.print(f"wrote {r['png']}")
