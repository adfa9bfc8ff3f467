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
    from dnnkit.probes.hashcodes.probe import HASH_CODES, HashCodesConfig

    if codes_out is not None and shared.output is None:
        raise InputError("--codes-out needs -o DIR (the codes go into the report folder)")
    sample_list = tuple(None if s.strip() == "all" else _ints(s, "--samples")[0] for s in samples.split(",")
                        if s.strip())
    cfg = HashCodesConfig(data=data, layers=layers, code=code, max_train=max_train, knn_k=knn_k,
                          kmeans_init=kmeans_init, kmeans_seed=kmeans_seed, kmeans_map=kmeans_map, raw=not no_raw,
                          max_bits=max_bits, codes_out=codes_out, sweep=sweep, depth=depth,
                          widths=_ints(widths, "--widths"), epochs=epochs, snapshots=_ints(snapshots, "--snapshots"),
                          samples=sample_list, seeds=seeds, lr=lr, seed=seed, batch_size=batch_size,
                          device=shared.device)
    report = shared.run_probe(HASH_CODES, model, cfg).report
    shared.out.result(report, lambda console: _render(console, report))


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
