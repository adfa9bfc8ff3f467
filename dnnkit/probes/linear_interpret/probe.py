"""`linear-interpret` as a Probe: freeze the network's gates at x0 and report the affine map it then is,
y = A(x0) x + c(x0) (rows, columns, bias path, votes); the writer saves report.json and the PNGs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnnkit.errors import InputError
from dnnkit.probes.contract import Probe, ProbeResult

DTYPES = ("float32", "float64")
SMOOTH_RULES = ("secant", "tangent")


@dataclass
class LinearInterpretConfig:
    """Options of one linear-interpret run (CLI names): the inputs are `index`..`index+count-1` of `split`
    of `data`, or the examples of `input_file`."""

    data: str | None = None  # default: the model's own
    index: int | None = None
    count: int = 1
    split: str = "test"
    input_file: str | None = None
    outputs: str = "pred"  # pred, all or "K,K,..."
    columns: str = "none"  # none or "P,P,..."
    svd: int = 0
    eval_n: int = 0
    smooth: str = "secant"
    checks: bool = True  # --check/--no-check: identity, linearity and Jacobian checks
    dtype: str = "float32"  # the network and inputs are cast to this (float32 or float64)
    batch_size: int = 64
    seed: int = 0
    device: str | None = None  # where inputs go; default: the network's device

    def check(self) -> None:
        """Option checks that need no model (exit 2)."""
        if (self.input_file is None) == (self.index is None):
            raise InputError("give exactly one of --index I (with --data) or --input FILE")
        if self.input_file is not None and self.eval_n:
            raise InputError("--eval needs --data (it summarises examples of a split)")
        if self.split not in ("train", "test"):
            raise InputError(f"--split must be train or test, got {self.split!r}")
        if self.dtype not in DTYPES:
            raise InputError(f"--dtype must be float32 or float64, got {self.dtype!r}",
                             hint="fp16/bf16 models are interpreted in float32")
        if self.smooth not in SMOOTH_RULES:
            raise InputError(f"--smooth must be secant or tangent, got {self.smooth!r}")
        if self.index is not None and self.index < 0:
            raise InputError(f"--index must be >= 0, got {self.index}")
        if self.count < 1 or self.svd < 0 or self.eval_n < 0 or self.batch_size < 1:
            raise InputError("--count and --batch-size must be >= 1, --svd and --eval >= 0")


class LinearInterpretProbe(Probe):
    """Reads a network; on save writes a report folder (report.json and the PNGs)."""

    name = "linear-interpret"
    Config = LinearInterpretConfig

    def apply(self, loaded: Any, cfg: LinearInterpretConfig, ctx: Any) -> ProbeResult:
        report, items, classes, arrays = interpret(loaded, cfg, ctx.progress)
        return ProbeResult(report, lambda output: write_report(Path(output), report, items, classes, arrays),
                           extra={"items": items, "classes": classes, **arrays})


def interpret(loaded: Any, cfg: LinearInterpretConfig, progress: Any = None
              ) -> tuple[dict[str, Any], list, list[str] | None, dict[str, Any]]:
    """The report, the ItemResults (arrays the plots need), the class names and the eval's bias shares."""
    import torch

    from dnnkit.probes.gating.inputs import check_accepts, load_input_file, load_split, logits_of
    from dnnkit.probes.linear_interpret.analyse import evaluate_split, interpret_items, parse_columns, parse_outputs

    net = loaded.require_network("linear-interpret").eval()
    torch_dtype = getattr(torch, cfg.dtype)
    net.to(dtype=torch_dtype)
    device = cfg.device or _device_of(net)
    expected = loaded.info.input_shape
    data, classes, y_all = cfg.data, None, None
    if cfg.input_file is not None:
        x_all, where = load_input_file(cfg.input_file, expected), f"--input {cfg.input_file}"
        indices = list(range(len(x_all)))
        x, labels = x_all, [None] * len(x_all)
    else:
        data = data or loaded.info.default_data
        if data is None:
            raise InputError(f"{loaded.ref.raw}: no default dataset", hint="pass --data")
        x_all, y_all, classes = load_split(data, cfg.split)
        where, index = f"--data {data}", cfg.index
        if index + cfg.count > len(x_all):
            raise InputError(f"--index {index} (--count {cfg.count}) is out of range: the {cfg.split} split of "
                             f"{data} holds {len(x_all)} examples (0..{len(x_all) - 1})")
        indices = list(range(index, index + cfg.count))
        x = x_all[indices]
        labels = [int(v) for v in y_all[indices]] if y_all is not None else [None] * len(indices)
    x = x.to(device=device, dtype=torch_dtype)
    check_accepts(net, x, where, expected)
    with torch.no_grad():
        n_out = logits_of(net(x[:1])).reshape(1, -1).shape[1]
    outs = parse_outputs(cfg.outputs, n_out)
    cols = parse_columns(cfg.columns, x[0].numel())
    start_t = time.perf_counter()
    items, summary = interpret_items(net, x, labels, indices, outputs=outs, columns=cols, svd=cfg.svd,
                                     check=cfg.checks, smooth=cfg.smooth, seed=cfg.seed, progress=progress)
    report: dict[str, Any] = {"model": loaded.ref.raw, "data": data,
                              "split": cfg.split if cfg.input_file is None else None, "input": cfg.input_file,
                              "dtype": cfg.dtype, "smooth": cfg.smooth, "n_outputs": n_out,
                              "input_shape": list(x.shape[1:]), **summary}
    arrays: dict[str, Any] = {}
    if cfg.eval_n:
        n = min(cfg.eval_n, len(x_all))
        xe = x_all[:n].to(device=device, dtype=torch_dtype)
        ev = evaluate_split(net, xe, y_all[:n] if y_all is not None else None, smooth=cfg.smooth,
                            batch_size=cfg.batch_size)
        arrays["bias_shares"] = ev.pop("bias_shares")
        report["eval"] = ev
    report["items"] = [it.fields for it in items]
    report["notes"] = _notes(summary)
    report["seconds"] = time.perf_counter() - start_t
    return report, items, classes, arrays


def _device_of(net: Any) -> str:
    param = next(iter(net.parameters()), None)
    return str(param.device) if param is not None else "cpu"


def _notes(summary: dict[str, Any]) -> list[str]:
    notes = []
    if summary["affine_model"]:
        notes.append("model is affine: A and c do not depend on x0")
    if not summary["piecewise_linear"]:
        notes.append("the model has smooth units or normalisation: A x0 + c = f(x0) holds exactly at x0, but away "
                     "from x0 the replay is an approximation (local_error: relative error at 1% input noise)")
    notes.append("c(x0) depends on x0 through the frozen gates: the bias path is not input-independent")
    notes.append("rows of A are in the units of the tensor fed to the model")
    return notes


def write_report(dest: Path, report: dict[str, Any], items: list, classes: list[str] | None,
                 arrays: dict[str, Any]) -> None:
    """The report folder: report.json and one PNG per item (rows, columns, SVD) plus the eval's bias shares."""
    from dnnkit.jsonsafe import to_json
    from dnnkit.models.atomic import atomic_dir
    from dnnkit.probes.linear_interpret import plots

    with atomic_dir(dest) as tmp:
        pngs = []
        for it in items:
            idx = it.fields["index"]
            if it.x.ndim >= 1:
                plots.item_png(it, tmp / f"item_{idx}.png", classes)
                pngs.append(f"item_{idx}.png")
            if it.columns:
                plots.columns_png(it, tmp / f"columns_{idx}.png", tuple(it.x.shape))
                pngs.append(f"columns_{idx}.png")
            if it.svd_values:
                plots.svd_png(it, tmp / f"svd_{idx}.png")
                pngs.append(f"svd_{idx}.png")
        if "bias_shares" in arrays:
            plots.bias_share_png(arrays["bias_shares"], tmp / "bias_share.png",
                                 f"{report['model']}: bias share over {len(arrays['bias_shares'])} examples")
            pngs.append("bias_share.png")
        report["pngs"] = pngs
        report["output"] = str(dest)
        (tmp / "report.json").write_text(to_json(report) + "\n", encoding="utf-8")


LINEAR_INTERPRET = LinearInterpretProbe()
