"""`hash-codes` as a Probe: binary activation codes of a dataset through a ReLU network (redundancy
ratio; k-NN / LR / K-Means on codes vs raw inputs), or `sweep` over a trained MLP family."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnnkit.errors import InputError
from dnnkit.probes.contract import Probe, ProbeResult

SWEEPS = ("width", "epochs", "samples")


@dataclass
class HashCodesConfig:
    """Options of one hash-codes run (CLI names)."""

    data: str | None = None  # default: the model's own; digits for a sweep
    layers: list[str] | None = None
    code: str = "binary"
    max_train: int = 10000
    knn_k: int = 9
    kmeans_init: int = 4
    kmeans_seed: int = 9
    kmeans_map: str = "hungarian"
    raw: bool = True
    max_bits: int = 1 << 20
    codes_out: str | None = None
    sweep: str | None = None
    depth: int = 1
    widths: tuple[int, ...] = (3, 10, 20, 40, 60, 100, 200)
    epochs: int = 100
    snapshots: tuple[int, ...] = (0, 1, 3, 10, 30, 100)
    samples: tuple[int | None, ...] = (10, 30, 100, 300, None)
    seeds: int = 2
    lr: float = 1e-2
    seed: int = 0
    batch_size: int = 64
    device: str = "cpu"

    def check(self) -> None:
        """Option checks that need no model (exit 2)."""
        if self.code not in ("binary", "pooled"):
            raise InputError(f"--code must be binary or pooled, got {self.code!r}")
        if self.kmeans_map not in ("hungarian", "greedy"):
            raise InputError(f"--kmeans-map must be hungarian or greedy, got {self.kmeans_map!r}")
        if self.sweep is not None and self.sweep not in SWEEPS:
            raise InputError(f"--sweep must be width, epochs or samples, got {self.sweep!r}")
        if self.sweep is not None and min(self.widths) < self.depth:
            raise InputError(f"--widths entries must be at least --depth {self.depth} (one unit per hidden layer)")
        if self.codes_out is not None and self.code != "binary":
            raise InputError("--codes-out needs --code binary")
        if self.codes_out is not None and not self.codes_out.endswith(".npz"):
            raise InputError(f"--codes-out {self.codes_out!r} must end in .npz")


class HashCodesProbe(Probe):
    """Reads a ReLU network (or trains the sweep's MLPs); writes a report folder on save."""

    name = "hash-codes"
    Config = HashCodesConfig

    def apply(self, loaded: Any, cfg: HashCodesConfig, ctx: Any) -> ProbeResult:
        from dnnkit.probes.hashcodes.report import HashOptions

        if (cfg.sweep is None) == (loaded is None):
            raise InputError("give a MODEL, or --sweep width|epochs|samples" if loaded is None else
                             "--sweep trains its own MLP family: give no MODEL with --sweep")
        opts = HashOptions(mode=cfg.code, max_train=cfg.max_train, knn_k=cfg.knn_k, kmeans_init=cfg.kmeans_init,
                           kmeans_seed=cfg.kmeans_seed, kmeans_map=cfg.kmeans_map, raw=cfg.raw, seed=cfg.seed,
                           batch_size=max(cfg.batch_size, 256))
        if cfg.sweep is not None:
            report, res = _sweep(cfg, opts, ctx.progress), None
        else:
            report, res = _single(loaded, cfg, opts, ctx.progress)
        report.setdefault("warnings", []).extend(report.get("notes", []))
        return ProbeResult(report, lambda output: write_report(Path(output), report, res, cfg.codes_out),
                           extra={"analysis": res})


def _single(loaded: Any, cfg: HashCodesConfig, opts: Any, progress: Any) -> tuple[dict[str, Any], Any]:
    import torch

    from dnnkit.probes.gating.inputs import check_accepts, load_split
    from dnnkit.probes.gating.units import find_gates
    from dnnkit.probes.hashcodes.codes import check_max_bits, code_length
    from dnnkit.probes.hashcodes.report import analyse

    net = loaded.require_network("hash-codes").eval().float()
    data = cfg.data or loaded.info.default_data
    if data is None:
        raise InputError(f"{loaded.ref.raw}: no default dataset", hint="pass --data")
    gates = find_gates(net, cfg.layers)
    xte, yte, _ = load_split(data, "test")
    xte = xte.to(cfg.device)
    check_accepts(net, xte, f"--data {data}", loaded.info.input_shape)
    check_max_bits(code_length(net, xte, gates, "binary"), cfg.max_bits)
    xtr, ytr, _ = load_split(data, "train")
    xtr = xtr.to(cfg.device)
    with torch.no_grad():
        res = analyse(net, xtr, ytr, xte, yte, gates, opts, progress=progress)
    return {"model": loaded.ref.raw, "data": data, **res.report}, res


def _sweep(cfg: HashCodesConfig, opts: Any, progress: Any) -> dict[str, Any]:
    from dnnkit.probes.gating.inputs import load_split
    from dnnkit.probes.hashcodes.sweep import SweepConfig, run_sweep

    data = cfg.data or "digits"
    xtr, ytr, _ = load_split(data, "train")
    xte, yte, _ = load_split(data, "test")
    epochs = max(cfg.snapshots) if cfg.sweep == "epochs" else cfg.epochs
    sweep_cfg = SweepConfig(kind=cfg.sweep, depth=cfg.depth, widths=cfg.widths, epochs=epochs,
                            snapshots=cfg.snapshots, samples=cfg.samples, seeds=cfg.seeds, lr=cfg.lr,
                            batch_size=cfg.batch_size)
    sw = run_sweep(xtr, ytr, xte, yte, sweep_cfg, opts, progress=progress)
    return {"model": None, "data": data, "sweep": sw, "notes": sw["notes"]}


def write_report(dest: Path, report: dict[str, Any], res: Any, codes_out: str | None) -> None:
    """The report folder: report.json, the PNG, and the packed codes when asked (atomic)."""
    import numpy as np

    from dnnkit.jsonsafe import to_json
    from dnnkit.models.atomic import atomic_dir
    from dnnkit.probes.hashcodes import plots

    with atomic_dir(dest) as tmp:
        pngs = []
        if "sweep" in report:
            name = f"sweep_{report['sweep']['kind']}.png"
            plots.sweep_png(report["sweep"], tmp / name, f"{report['data']}: MLP depth {report['sweep']['depth']}, "
                                                         f"sweep over {report['sweep']['kind']}")
            pngs.append(name)
        elif res is not None and res.bits_per_call:
            plots.bits_per_layer_png(res.bits_per_call, tmp / "bits_per_layer.png",
                                     f"{report['model']} on {report['data']}: bits per gate call")
            pngs.append("bits_per_layer.png")
        if codes_out is not None and res is not None and res.train_codes is not None:
            off = res.layer_offsets
            np.savez(tmp / codes_out, train=res.train_codes, test=res.test_codes, kept_mask=res.keep,
                     layer_names=np.array(off["names"]), layer_offsets=np.array(off["offsets"]),
                     layer_units=np.array(off["units"]), bits_kept=np.array(int(res.keep.sum())))
            report["codes_file"] = codes_out
        report["pngs"] = pngs
        report["output"] = str(dest)
        (tmp / "report.json").write_text(to_json(report) + "\n", encoding="utf-8")


HASH_CODES = HashCodesProbe()
