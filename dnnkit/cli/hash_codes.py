"""`dnnkit hash-codes MODEL --data D`: ReLU activation patterns as hash codes (uniqueness, class content)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dnnkit.cli.options import BatchSizeOpt, SeedOpt
from dnnkit.cli.shared import LOAD, WRITE, Shared, shared_options


def _ints(spec: str, option: str) -> tuple[int, ...]:
    from dnnkit.errors import InputError

    try:
        vals = tuple(int(s) for s in spec.split(",") if s.strip())
    except ValueError as exc:
        raise InputError(f"{option} must be a comma list of integers, got {spec!r}") from exc
    if not vals or min(vals) < 0:
        raise InputError(f"{option} must be a comma list of non-negative integers, got {spec!r}")
    return vals


@shared_options(LOAD, WRITE, helps={"output": "Folder for report.json, PNGs and codes (created if missing)."})
def hash_codes_command(
    model: Annotated[str | None, typer.Argument(help="Model (zoo:NAME, timm:NAME, file); omitted with --sweep.",
                                                show_default=False)] = None,
    data: Annotated[str | None, typer.Option("--data", help="Image dataset (digits, fashion-mnist, npz:PATH, "
                                                              "imagefolder:PATH); default: the model's own.")] = None,
    layers: Annotated[list[str] | None, typer.Option("--layers", help="Glob of gate module names (repeatable); "
                                                                        "default: every ReLU-family unit.")] = None,
    code: Annotated[str, typer.Option("--code", help="binary, or pooled (per-channel spatial sums).")] = "binary",
    max_train: Annotated[int, typer.Option("--max-train", help="Training codes used by k-NN / LR (stratified "
                                                               "subset).", min=1)] = 10000,
    knn_k: Annotated[int, typer.Option("--knn-k", help="k of the k-NN.", min=1)] = 9,
    kmeans_init: Annotated[int, typer.Option("--kmeans-init", help="K-Means restarts.", min=1)] = 4,
    kmeans_seed: Annotated[int, typer.Option("--kmeans-seed", help="K-Means random_state.")] = 9,
    kmeans_map: Annotated[str, typer.Option("--kmeans-map", help="hungarian (one-to-one) or greedy (majority, "
                                                                 "inflates).")] = "hungarian",
    no_raw: Annotated[bool, typer.Option("--no-raw", help="Skip the raw-input baselines.")] = False,
    max_bits: Annotated[int, typer.Option("--max-bits", help="Refuse codes longer than this per example.",
                                          min=1)] = 1 << 20,
    codes_out: Annotated[str | None, typer.Option("--codes-out", help="Write the packed codes (.npz) into -o DIR "
                                                                      "under this name.")] = None,
    sweep: Annotated[str | None, typer.Option("--sweep", help="width, epochs or samples: train the MLP family "
                                                              "instead of reading MODEL.")] = None,
    depth: Annotated[int, typer.Option("--depth", help="Sweep: hidden layers.", min=1)] = 1,
    widths: Annotated[str, typer.Option("--widths", help="Sweep: total hidden units (first one for epochs/"
                                                         "samples).")] = "3,10,20,40,60,100,200",
    epochs: Annotated[int, typer.Option("--epochs", help="Sweep: training epochs.", min=1)] = 100,
    snapshots: Annotated[str, typer.Option("--snapshots", help="Sweep epochs: evaluated epochs.")] = "0,1,3,10,30,100",
    samples: Annotated[str, typer.Option("--samples", help="Sweep samples: training sizes (all = every "
                                                           "example).")] = "10,30,100,300,all",
    seeds: Annotated[int, typer.Option("--seeds", help="Sweep: seeds per point.", min=1)] = 2,
    lr: Annotated[float, typer.Option("--lr", help="Sweep: Adam learning rate.")] = 1e-2,
    batch_size: BatchSizeOpt = 64,
    seed: SeedOpt = 0,
    *,
    shared: Shared,
) -> None:
    """Binary activation codes of a dataset: redundancy ratio and k-NN / LR / K-Means on codes vs raw inputs."""
    from dnnkit.errors import InputError

    out, output, dry_run = shared.out, shared.output, shared.dry_run
    if code not in ("binary", "pooled"):
        raise InputError(f"--code must be binary or pooled, got {code!r}")
    if kmeans_map not in ("hungarian", "greedy"):
        raise InputError(f"--kmeans-map must be hungarian or greedy, got {kmeans_map!r}")
    if sweep is not None and sweep not in ("width", "epochs", "samples"):
        raise InputError(f"--sweep must be width, epochs or samples, got {sweep!r}")
    if sweep is not None and model is not None:
        raise InputError("--sweep trains its own MLP family: give no MODEL with --sweep")
    if sweep is None and model is None:
        raise InputError("give a MODEL, or --sweep width|epochs|samples")
    width_list = _ints(widths, "--widths")
    if sweep is not None and min(width_list) < depth:
        raise InputError(f"--widths entries must be at least --depth {depth} (one unit per hidden layer)")
    snap_list = _ints(snapshots, "--snapshots")
    sample_list = tuple(None if s.strip() == "all" else _ints(s, "--samples")[0] for s in samples.split(",")
                        if s.strip())
    if codes_out is not None and (output is None or code != "binary"):
        raise InputError("--codes-out needs -o DIR and --code binary")
    if codes_out is not None and not codes_out.endswith(".npz"):
        raise InputError(f"--codes-out {codes_out!r} must end in .npz")
    if data is not None:
        from dnnkit.data.registry import check_data_spec

        check_data_spec(data)
    if sweep is not None and data is None:
        data = "digits"
    dest = None
    if output is not None and not dry_run:
        dest = shared.check_output(output, model)
    from dnnkit.probes.hashcodes.report import HashOptions

    opts = HashOptions(mode=code, max_train=max_train, knn_k=knn_k, kmeans_init=kmeans_init, kmeans_seed=kmeans_seed,
                       kmeans_map=kmeans_map, raw=not no_raw, seed=seed, batch_size=max(batch_size, 256))
    if sweep is not None:
        report, res = _sweep(data, sweep, depth, width_list, epochs, snap_list, sample_list, seeds, lr, opts,
                             batch_size, out), None
    else:
        report, res = _single(model, data, layers, max_bits, opts, shared)
    for n in report.get("notes", []):
        out.warn(n)
    if dest is not None:
        _write(dest, report, res, codes_out)
        report["output"] = str(dest)
    report["dry_run"] = dry_run
    out.result(report, lambda console: _render(console, report))


def _single(model_ref: str, data: str | None, layers: list[str] | None, max_bits: int, opts: Any,
            shared: Shared) -> tuple[dict[str, Any], Any]:
    import torch

    from dnnkit.errors import InputError
    from dnnkit.probes.gating.inputs import check_accepts, load_split
    from dnnkit.probes.gating.units import find_gates
    from dnnkit.probes.hashcodes.codes import check_max_bits, code_length
    from dnnkit.probes.hashcodes.report import analyse

    out, device = shared.out, shared.device
    loaded = shared.load(model_ref)
    net = loaded.require_network("hash-codes").eval().float()
    data = data or loaded.info.default_data
    if data is None:
        raise InputError(f"{model_ref}: no default dataset", hint="pass --data")
    gates = find_gates(net, layers)
    xte, yte, _ = load_split(data, "test")
    xte = xte.to(device)
    check_accepts(net, xte, f"--data {data}", loaded.info.input_shape)
    check_max_bits(code_length(net, xte, gates, "binary"), max_bits)
    xtr, ytr, _ = load_split(data, "train")
    xtr = xtr.to(device)
    with torch.no_grad():
        res = analyse(net, xtr, ytr, xte, yte, gates, opts, progress=out.progress())
    report = {"model": model_ref, "data": data, **res.report}
    return report, res


def _sweep(data: str, kind: str, depth: int, widths: tuple[int, ...], epochs: int, snapshots: tuple[int, ...],
           samples: tuple[int | None, ...], seeds: int, lr: float, opts: Any, batch_size: int,
           out: Any) -> dict[str, Any]:
    from dnnkit.probes.gating.inputs import load_split
    from dnnkit.probes.hashcodes.sweep import SweepConfig, run_sweep

    xtr, ytr, _ = load_split(data, "train")
    xte, yte, _ = load_split(data, "test")
    if kind == "epochs":
        epochs = max(snapshots)
    cfg = SweepConfig(kind=kind, depth=depth, widths=widths, epochs=epochs, snapshots=snapshots, samples=samples,
                      seeds=seeds, lr=lr, batch_size=batch_size)
    sw = run_sweep(xtr, ytr, xte, yte, cfg, opts, progress=out.progress())
    return {"model": None, "data": data, "sweep": sw, "notes": sw["notes"]}


def _write(dest: Any, report: dict[str, Any], res: Any, codes_out: str | None) -> None:
    import numpy as np

    from dnnkit.cli.output import to_json
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
        (tmp / "report.json").write_text(to_json(report) + "\n", encoding="utf-8")


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def _render(console: Any, r: dict[str, Any]) -> None:
    from rich.table import Table

    if "sweep" in r:
        sw = r["sweep"]
        t = Table(sw["kind"], "seeds", "bits kept", "RR train", "RR test", "K-Means", "k-NN", "LR", "net",
                  title=f"{r['data']}: MLP sweep over {sw['kind']} (depth {sw['depth']})")
        for row in sorted(sw["rows"], key=lambda x: x["x"]):
            m = row["mean"]
            t.add_row(str(row["x"]), str(row["seeds"]), *(_fmt(m[k]) for k in (
                "bits_kept", "rr_train", "rr_test", "kmeans_test", "knn_test", "lr_test", "net_test")))
        console.print(t)
        if sw.get("raw"):
            console.print("raw inputs: " + ", ".join(f"{k} {_fmt(v)}" for k, v in sw["raw"].items()))
        return
    t = Table("figure", "codes", "raw inputs", title=f"{r['model']} on {r['data']} ({r['code']} codes)")
    raw = r.get("raw") or {}
    t.add_row("bits total / kept", f"{r['bits_total']} / {_fmt(r.get('bits_kept'))}", "")
    t.add_row("redundancy ratio train / test", f"{_fmt(r['rr_train'])} / {_fmt(r['rr_test'])}", "")
    t.add_row("unique codes train / test", f"{_fmt(r['unique_train'])} / {_fmt(r['unique_test'])}", "")
    t.add_row("test codes seen in train", _fmt(r.get("test_codes_seen_in_train")), "")
    t.add_row("k-NN test accuracy", _fmt(r["knn_test"]), _fmt(raw.get("knn")))
    t.add_row("logistic regression", _fmt(r["lr_test"]), _fmt(raw.get("lr")))
    t.add_row(f"K-Means ({r['kmeans_map']})", _fmt(r["kmeans_test"]), _fmt(raw.get("kmeans")))
    t.add_row("network train / test", f"{_fmt(r['net_train'])} / {_fmt(r['net_test'])}", "")
    console.print(t)
