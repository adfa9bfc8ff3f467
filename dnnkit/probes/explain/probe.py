"""`explain` as a Probe: W(x)·x of a B-cos network (input×gradient for other models) for dataset samples
or image files, the completeness check, a PNG grid at the output path and, optionally, the maps as .npz."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnnkit.data.images import read_image
from dnnkit.errors import InputError
from dnnkit.probes.contract import Probe, ProbeResult

DTYPES = {"float32": "float32", "fp32": "float32", "float64": "float64", "fp64": "float64", "float16": "float16",
          "fp16": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16"}
METHODS = ("auto", "dynamic", "ixg")


@dataclass
class ExplainConfig:
    """Options of one explain run (CLI names): the inputs are `indices` of `split` of `data`, or `input_files`."""

    data: str | None = None  # default: the model's own
    indices: list[int] | None = None  # --index
    split: str = "test"
    input_files: list[str] | None = None  # --input
    class_: int | str = "pred"  # --class: a class index, or pred
    method: str = "auto"  # auto (dynamic for B-cos, else ixg), dynamic or ixg
    smooth: int | None = None  # alpha smoothing kernel K; default 15 H / 224
    percentile: float = 99.5
    save_maps: str | None = None  # write W(x), x_enc and R to this .npz (on a real run)
    dtype: str | None = None  # cast the network (and inputs) to this; default: as loaded

    def check(self) -> None:
        """Option checks that need no model (exit 2)."""
        if (self.indices is None) == (self.input_files is None):
            raise InputError("pass exactly one of --index (with --data) and --input")
        if self.method not in METHODS:
            raise InputError(f"--method must be auto, dynamic or ixg, got {self.method!r}")
        if self.split not in ("train", "test"):
            raise InputError(f"--split must be train or test, got {self.split!r}")
        if not 0 < self.percentile <= 100:
            raise InputError("--percentile must be in (0, 100]")
        if self.dtype is not None and self.dtype not in DTYPES:
            raise InputError(f"unknown --dtype {self.dtype!r}", hint="use float32, float64, float16 or bfloat16")
        if not isinstance(self.class_, int) and (self.class_ != "pred" and not str(self.class_).lstrip("-").isdigit()):
            raise InputError(f"--class must be a class index or pred, got {self.class_!r}")
        if self.indices is not None and not self.indices:
            raise InputError("--index names no sample")
        if self.smooth is not None and self.smooth < 1:
            raise InputError(f"--smooth must be >= 1, got {self.smooth}")


class ExplainProbe(Probe):
    """Reads an image classifier; the writer saves the PNG grid at the output path (and the maps)."""

    name = "explain"
    Config = ExplainConfig

    def side_outputs(self, cfg: ExplainConfig) -> list[Path]:
        return [Path(cfg.save_maps)] if cfg.save_maps is not None else []

    def apply(self, loaded: Any, cfg: ExplainConfig, ctx: Any) -> ProbeResult:
        report, exp, x, names = run_explain(loaded, cfg)

        def write(output: str) -> None:
            report["png"] = str(plot(output, exp, x, names, cfg.smooth, cfg.percentile))
            if cfg.save_maps is not None and report["maps"] is None:
                report["maps"] = str(save_maps(cfg.save_maps, exp))

        if cfg.save_maps is not None and not ctx.dry_run and ctx.output is None:
            report["maps"] = str(save_maps(cfg.save_maps, exp))  # no -o: the runner calls no writer
        return ProbeResult(report, write, extra={"explanation": exp, "inputs": x})


def run_explain(loaded: Any, cfg: ExplainConfig) -> tuple[dict[str, Any], Any, Any, list[str]]:
    """The report, the Explanation, the input batch and the row names (nothing written)."""
    import torch

    from dnnkit.metrics import check_image_shape
    from dnnkit.nn.bcos import current_b
    from dnnkit.probes.explain.dynamic import check_pixels, explain, is_bcos

    model = loaded.ref.raw
    net = loaded.require_network("explain")
    if cfg.dtype is not None:
        net.to(getattr(torch, DTYPES[cfg.dtype]))
    if loaded.info.task != "classifier":
        raise InputError(f"{model} is not an image classifier")
    bcos = is_bcos(net)
    if cfg.method == "dynamic" and not bcos:
        raise InputError(f"--method dynamic needs a B-cos network; {model} is not one",
                         hint="make one with `dnnkit bcosify`, or use --method ixg")
    x, labels, names = load_inputs(loaded, cfg)
    check_pixels(x, "input")
    check_image_shape(net, x, loaded.info.input_shape, "--input" if cfg.input_files else f"--data {cfg.data}", model)
    num_classes = loaded.info.num_classes
    cls: Any = "pred"
    if cfg.class_ != "pred":
        cls = int(cfg.class_)
        if num_classes is not None and not 0 <= cls < num_classes:
            raise InputError(f"--class {cls} outside 0..{num_classes - 1}")
    param = next(net.parameters())
    x = x.to(device=param.device, dtype=param.dtype)
    try:
        exp = explain(net, x, cls, cfg.method)
    except RuntimeError as exc:
        raise InputError(f"the model cannot take inputs of shape {'x'.join(map(str, x.shape[1:]))} "
                         f"({str(exc).splitlines()[0][:120]})") from exc
    report = _report(model, exp, labels, names, bcos)
    for row, i in zip(report["inputs"], cfg.indices or [None] * len(names), strict=True):
        row["index"] = i
        row["file"] = None if i is not None else row["input"]
    report["b"] = current_b(net) if bcos else None
    report["png"] = None
    report["maps"] = None
    return report, exp, x, names


def read_input(path: str) -> Any:
    """An image file (PNG/JPEG: pixels / 255) or a .npy array (C x H x W or H x W, values in [0, 1])."""
    import numpy as np
    import torch

    p = Path(path)
    if not p.is_file():
        raise InputError(f"--input {path}: no such file")
    try:
        if p.suffix == ".npy":
            arr = np.load(p, allow_pickle=False).astype(np.float32)
        else:
            arr = read_image(p)
            arr = arr.transpose(2, 0, 1) if arr.ndim == 3 else arr
    except (OSError, ValueError) as exc:
        raise InputError(f"--input {path} is unreadable ({type(exc).__name__})") from exc
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise InputError(f"--input {path} has {arr.ndim} dimensions; expected C x H x W")
    return torch.from_numpy(np.ascontiguousarray(arr))


def load_inputs(loaded: Any, cfg: ExplainConfig) -> tuple[Any, list[int | None], list[str]]:
    """(x, labels, row names) for the input files, or for the indices of the dataset split."""
    import torch

    from dnnkit.data import ImageData, load_data

    files, indices, split = cfg.input_files, cfg.indices or [], cfg.split
    if files is not None:
        xs = [read_input(f) for f in files]
        first = tuple(xs[0].shape)
        for f, t in zip(files, xs, strict=True):
            if tuple(t.shape) != first:
                raise InputError(f"--input {f} has shape {'x'.join(map(str, t.shape))}, unlike "
                                 f"{'x'.join(map(str, first))}")
        return torch.stack(xs), [None] * len(xs), list(files)
    data = cfg.data or loaded.info.default_data
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


def plot(path: str, exp: Any, x: Any, names: list[str], smooth: int | None, percentile: float) -> Path:
    """The PNG grid (a row per input: image, B-cos colour explanation, contributions), written atomically."""
    from dnnkit.probes.explain.render import Row, colour_image, save_rows

    rows = []
    for i, name in enumerate(names):
        colour = colour_image(exp.weights[i].cpu(), exp.contributions[i].cpu(), smooth, percentile) \
            if exp.method == "dynamic" else None
        title = f"{name}: class {int(exp.classes[i])} (pred {int(exp.predicted[i])})"
        rows.append(Row(x[i].cpu(), exp.contributions[i].cpu(), colour, title))
    return save_rows(path, rows, percentile)


def save_maps(path: str, exp: Any) -> Path:
    """W(x), the encoded inputs, the contributions, classes and logits as one .npz (atomic)."""
    import numpy as np

    from dnnkit.models.atomic import atomic_file

    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, weights=exp.weights.cpu().numpy(), inputs=exp.inputs.cpu().numpy(),
                 contributions=exp.contributions.cpu().numpy(), classes=exp.classes.cpu().numpy(),
                 logits=exp.logits.cpu().numpy())
    return Path(path)


EXPLAIN = ExplainProbe()
