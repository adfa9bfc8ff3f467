"""Benchmark `dnnkit invert`: GMI against direct pixel inversion on the same budget (spec section 5).

For each dataset and protocol (shared = public and private samples disjoint, same classes; disjoint = public
classes 0-4, private 5-9, the hard case), it trains the target T on the private train images only, an
independent all-class evaluator E of another architecture, the WGAN-GP prior on the public images, runs both
attacks on every private class, and writes a Markdown table plus image grids into docs/benchmarks/.

    python benchmarks/invert.py                      # digits full, Fashion-MNIST scaled (2-core CPU budget)
    python benchmarks/invert.py --datasets digits --profile ci
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from harness import (
    DOCS,
    Run,
    dump_json,
    fmt,
    header,
    load_json,
    load_span,
    log,
    machine_note,
    mark,
    parser,
    row,
    write_page,
)

from dnnkit.probes.inversion.attack import AttackConfig
from dnnkit.probes.inversion.metrics import evaluate_images
from dnnkit.probes.inversion.nets import evaluator_net, mlp_classifier
from dnnkit.probes.inversion.prior import PriorConfig
from dnnkit.probes.inversion.run import (
    ClassMapped,
    build_report,
    check_evaluator,
    load_split_data,
    plan_attack,
    run_attack,
    train_auto_evaluator,
    train_prior_on,
    write_grids,
)
from dnnkit.progress import CallbackProgress
from dnnkit.train import TrainConfig, accuracy, fit

# Internals on purpose (not `dnnkit.train_prior` / `dnnkit.invert`): the target T is trained here on the private
# split only and stays in memory with the prior, the auto evaluator and a closed-set evaluator that only this page
# shows; the commands take a saved target and prior file, so the same attack would be another pipeline around them.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    # spec's full digits protocol; Fashion-MNIST scaled down to fit ~15 min on a shared 2-core machine
    "default": {
        "digits": {"prior_steps": 6000, "per_class": 20, "restarts": 5, "steps": 1500, "t_hidden": (128, 128),
                   "t_epochs": 60, "e_epochs": 60},
        "fashion-mnist": {"prior_steps": 3000, "per_class": 10, "restarts": 5, "steps": 1000,
                          "t_hidden": (256, 256), "t_epochs": 3, "e_epochs": 2},
    },
    "full": {
        "digits": {"prior_steps": 6000, "per_class": 20, "restarts": 5, "steps": 1500, "t_hidden": (128, 128),
                   "t_epochs": 60, "e_epochs": 60},
        "fashion-mnist": {"prior_steps": 6000, "per_class": 10, "restarts": 5, "steps": 1500,
                          "t_hidden": (256, 256), "t_epochs": 5, "e_epochs": 2},
    },
    "ci": {
        "digits": {"prior_steps": 2000, "per_class": 5, "restarts": 5, "steps": 300, "t_hidden": (128, 128),
                   "t_epochs": 60, "e_epochs": 30},
        "fashion-mnist": {"prior_steps": 500, "per_class": 3, "restarts": 2, "steps": 200, "t_hidden": (256, 256),
                          "t_epochs": 1, "e_epochs": 1},
    },
}
# the spec's targets: digits shared GMI top-1 and nearest-private L2 against pixel's; digits disjoint (the hard case)
# GMI top-1 below; Fashion-MNIST shared KNN distance against pixel's and top-1
TARGETS = {"digits_top1": 0.9, "digits_l2_ratio": 0.5, "disjoint_top1": 0.2, "fashion_knn_ratio": 0.25,
           "fashion_top1": 0.5}


def spec_full(name: str) -> str:
    """The spec's full budget for a dataset (the `full` profile)."""
    f = PROFILES["full"][name]
    return f"{f['prior_steps']} prior steps, {f['per_class']} attempts x {f['restarts']} restarts x {f['steps']} steps"


def cell(v: Any, digits: int = 3) -> str:
    """A results-table cell: a missing figure is an en dash on this page."""
    return fmt(v, digits, missing="–")


def train_target(data: Any, hidden: tuple[int, ...], epochs: int, seed: int) -> tuple[torch.nn.Module, float]:
    """T: an MLP over the private classes (output j = j-th private class), trained on private train images only."""
    s = data.split
    classes = list(s.spec.classes)
    remap = {c: j for j, c in enumerate(classes)}
    torch.manual_seed(seed)
    net = mlp_classifier(tuple(data.train.x.shape[1:]), hidden, len(classes))
    x, y = data.train.x[s.private_train], data.train.y[s.private_train]
    fit(net, x, torch.tensor([remap[int(c)] for c in y]), TrainConfig(epochs=epochs, lr=1e-3, batch_size=64,
                                                                      seed=seed))
    xt, yt = data.test.x[s.private_test], data.test.y[s.private_test]
    return net, accuracy(net, xt, torch.tensor([remap[int(c)] for c in yt]))


def train_closed_set_evaluator(data: Any, epochs: int, seed: int) -> tuple[torch.nn.Module, float]:
    """A closed-set evaluator that knows only the private classes (shown to make the point, never claimed)."""
    s = data.split
    classes = list(s.spec.classes)
    remap = {c: j for j, c in enumerate(classes)}
    torch.manual_seed(seed + 5)
    net = evaluator_net(tuple(data.train.x.shape[1:]), len(classes))
    x, y = data.train.x[s.private_train], data.train.y[s.private_train]
    fit(net, x, torch.tensor([remap[int(c)] for c in y]), TrainConfig(epochs=epochs, lr=2e-3, seed=seed))
    xt, yt = data.test.x[s.private_test], data.test.y[s.private_test]
    acc = accuracy(net, xt, torch.tensor([remap[int(c)] for c in yt]))
    return ClassMapped(net, remap, data.n_classes), acc


def run_case(name: str, protocol: str, prof: dict[str, Any], seed: int, grid_dir: Path) -> dict[str, Any]:
    run = Run(threads=1)
    data = load_split_data(name, f"{protocol}:5-9", seed)
    log(f"{name} {protocol}: {data.summary()}")
    target, t_acc = train_target(data, prof["t_hidden"], prof["t_epochs"], seed)
    log(f"target test accuracy {t_acc:.3f}")
    prior, meta = train_prior_on(data, PriorConfig(arch="mlp", z_dim=20 if name == "digits" else 32,
                                                   steps=prof["prior_steps"], seed=seed),
                                 progress=CallbackProgress(log))
    cfg = AttackConfig(per_class=prof["per_class"], restarts=prof["restarts"], steps=prof["steps"], seed=seed)
    plan = plan_attack(target, {"ref": "benchmark MLP", "arch": f"MLP {prof['t_hidden']}", "test_accuracy": t_acc},
                       prior, {"ref": "benchmark prior"}, data, targets=None, methods=["gmi", "pixel"], cfg=cfg)
    e_net, e_info = train_auto_evaluator(data, seed, prof["e_epochs"])
    check_evaluator(plan, e_net, e_info, allow_closed_set=False)
    log(f"evaluator {e_info['arch']} test accuracy {e_info['test_accuracy']:.3f}")
    outcome = run_attack(plan, progress=CallbackProgress(log))
    report = build_report(plan, outcome, ["python", "benchmarks/invert.py"])
    closed = None
    if protocol == "disjoint":
        c_net, c_acc = train_closed_set_evaluator(data, prof["e_epochs"], seed)
        ev = data.eval_data()
        closed = {"test_accuracy": c_acc, **{m: evaluate_images(r.images, r.classes, c_net, ev)["top1"]
                                             for m, r in outcome["attacks"].items()}}
        report["closed_set_evaluator"] = closed
    with tempfile.TemporaryDirectory() as tmp:
        write_grids(Path(tmp), plan, outcome)
        for f in ("grid_compare.png", "grid_gmi.png", "grid_pixel.png", "prior_samples.png"):
            shutil.copy(Path(tmp) / f, grid_dir / f"invert_{name}_{protocol}_{f}")
    record = run.finish()
    report["wall_s"] = round(record["wall_s"], 1)
    report["run"] = record
    log(f"{name} {protocol} done in {report['wall_s']} s")
    return report


def results_table(reports: dict[str, dict[str, Any]]) -> list[str]:
    rows = header(["data", "split", "images", "E top-1 (all classes)", "closed-set E top-1", "1-NN top-1", "T top-1",
                   "KNN dist (f_E)", "feat dist", "nearest-private L2²", "PSNR dB", "leak ratio", "distinct / n",
                   "Fréchet"])
    for key, r in reports.items():
        name, protocol = key.split("/")
        closed = r.get("closed_set_evaluator") or {}
        blocks = [(m, r["results"][m]) for m in r["results"]] + [(f"ref: {m}", v) for m, v in r["references"].items()]
        for label, b in blocks:
            rows.append(row([name, protocol, label, cell(b["top1"], 2), cell(closed.get(label), 2),
                             cell(b["knn1_top1"], 2), cell(b["target_top1"], 2), cell(b["knn_dist"], 2),
                             cell(b["feat_dist"], 2), cell(b["nearest_pixel_l2sq"], 2), cell(b["psnr"], 1),
                             cell(b["leak_ratio"], 2), f"{b['distinct']} / {b['n']}", cell(b["frechet"], 1)]))
    return rows


def targets(reports: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    t = TARGETS

    def line(ok: bool, text: str) -> None:
        out.append(f"- {mark(ok)}: {text}")

    r = reports.get("digits/shared")
    if r:
        g, p = r["results"]["gmi"], r["results"]["pixel"]
        line(g["top1"] >= t["digits_top1"], f"digits shared, GMI all-class top-1 ≥ {t['digits_top1']}: {g['top1']:.2f}")
        line(g["nearest_pixel_l2sq"] <= t["digits_l2_ratio"] * p["nearest_pixel_l2sq"],
             f"digits shared, GMI nearest-private L2² ≤ {t['digits_l2_ratio']} × pixel's: "
             f"{g['nearest_pixel_l2sq']:.2f} vs {p['nearest_pixel_l2sq']:.2f} "
             f"(ratio {g['nearest_pixel_l2sq'] / p['nearest_pixel_l2sq']:.2f})")
        line(g["knn_dist"] < p["knn_dist"], f"digits shared, GMI KNN dist < pixel's: {g['knn_dist']:.2f} vs "
                                            f"{p['knn_dist']:.2f}")
    r = reports.get("digits/disjoint")
    if r:
        g = r["results"]["gmi"]
        line(g["top1"] < t["disjoint_top1"], f"digits disjoint (expected, the hard case), GMI all-class top-1 < "
                                             f"{t['disjoint_top1']}: {g['top1']:.2f} (closed-set E: "
                                             f"{r['closed_set_evaluator']['gmi']:.2f})")
    r = reports.get("fashion-mnist/shared")
    if r:
        g, p = r["results"]["gmi"], r["results"]["pixel"]
        line(g["knn_dist"] <= t["fashion_knn_ratio"] * p["knn_dist"], f"Fashion-MNIST shared, GMI KNN dist ≤ "
             f"{t['fashion_knn_ratio']} × pixel's: {g['knn_dist']:.2f} vs {p['knn_dist']:.2f} "
             f"(ratio {g['knn_dist'] / p['knn_dist']:.2f})")
        line(g["top1"] >= t["fashion_top1"], f"Fashion-MNIST shared, CNN-E top-1 ≥ {t['fashion_top1']}: "
                                             f"{g['top1']:.2f}")
    return out


def case_order(key: str) -> tuple[int, int]:
    name, protocol = key.split("/")
    return (0 if name == "digits" else 1, 0 if protocol == "shared" else 1)


def write_markdown(reports: dict[str, dict[str, Any]], args: argparse.Namespace, path: Path) -> None:
    reports = {k: reports[k] for k in sorted(reports, key=case_order)}
    records = [r.get("run") for r in reports.values()]
    recorded = [x for x in records if x]
    dates = sorted(x["date"] for x in recorded)
    when = (f"{dates[0]}" + (f" to {dates[-1]}" if dates[-1] != dates[0] else "") if dates else
            "not recorded in the case files")
    machine = (f"{machine_note(recorded[-1], date=False, load=False)}; CPU only, shared with other jobs (load average "
               f"(1 min) {load_span(recorded)} at the start and end of the cases"
               + (f"; {len(records) - len(recorded)} of {len(records)} case files recorded none" if
                  len(recorded) < len(records) else "") + ")" if recorded else
               "not recorded in the case files (CPU only, one torch thread per process)")
    lines = ["# Benchmark: `dnnkit invert` (GMI vs pixel inversion)", "",
             f"Commands: `python benchmarks/invert.py --datasets D --protocols P --profile {args.profile}` for each "
             "dataset D and protocol P (one process per case, run side by side; each case's JSON is kept next to "
             "this page as `invert_D_P.json`), then `python benchmarks/invert.py --render-only` for this page.  ",
             f"Date: {when}; machine: {machine}; seed {args.seed}.", "",
             "## Set-up and budget", ""]
    for key, r in reports.items():
        name, protocol = key.split("/")
        prof, full = PROFILES[args.profile][name], PROFILES["full"][name]
        a = r["attack"]
        scaled = "" if all(prof[k] == full[k] for k in ("prior_steps", "per_class", "steps")) else \
            f" **scaled down** from the spec's {spec_full(name)} to fit the time on this machine;"
        lines.append(f"- **{name} {protocol}** ({r['data']['n_public']} public, {r['data']['n_private_train']} "
                     f"private train, {r['data']['n_private_test']} held-out private images): T = {r['target']['arch']}"
                     f" on the {r['target'].get('outputs', len(a['classes_attacked']))} private classes (held-out acc "
                     f"{r['target']['test_accuracy']:.3f}); E = {r['evaluator']['arch']} on all "
                     f"{r['evaluator']['classes']} classes (test acc {r['evaluator']['test_accuracy']:.3f}); "
                     f"mlp prior z {r['prior']['z_dim']}, {r['prior']['steps']} critic steps "
                     f"({r['timing_s']['prior']:.0f} s); attack {len(a['classes_attacked'])} classes × "
                     f"{a['per_class']} attempts × {a['restarts']} restarts × {a['steps']} steps, both methods "
                     f"(GMI {r['timing_s']['attack']['gmi']:.0f} s, pixel {r['timing_s']['attack']['pixel']:.0f} s);"
                     f"{scaled} wall {r['wall_s']:.0f} s.")
    lines += ["", "## Results", "",
              "Accuracies are means over all reconstructions (the best restart per attempt, chosen by the target "
              "logit). KNN/feat dist use E's penultimate features (squared L2). Top-5 is omitted: with "
             f"{next(iter(reports.values()))['evaluator']['classes'] if reports else 'so few'} classes it "
              "is 1.00 for nearly everything and uninformative. `ref:` rows are the floor: uniform noise, random "
              "public images, random prior samples, put through the same metrics.", "", *results_table(reports), "",
              "## Targets", "", *targets(reports), "", "## Image grids", "",
              "Per case: `grid_compare` (columns = attacked classes; rows = two real private images, attempt 1 of GMI "
              "and of pixel inversion, the private image nearest to the GMI result), `grid_gmi` / `grid_pixel` "
              "(rows = classes, columns = attempts) and `prior_samples` (8×8 samples G(z)); grey-scale, range [0, 1].",
              ""]
    for key in reports:
        name, protocol = key.split("/")
        links = " · ".join(f"[{g}](invert_{name}_{protocol}_{g}.png)" for g in ("grid_gmi", "grid_pixel",
                                                                                 "prior_samples"))
        image = f"invert_{name}_{protocol}_grid_compare.png"
        lines += [f"### {name} {protocol}", "", f"![{name} {protocol} compare]({image})", "", links, ""]
    notes = path.with_name("invert_notes.md")
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    write_page(path, "\n".join(lines))


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--datasets", default="digits,fashion-mnist", type=lambda s: s.split(","))
    ap.add_argument("--protocols", default="shared,disjoint", type=lambda s: s.split(","))
    ap.add_argument("--profile", default="default", choices=sorted(PROFILES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(DOCS / "invert.md"))
    ap.add_argument("--render-only", action="store_true", help="rewrite the page from the saved JSON results")
    ap.add_argument("--results", default=str(DOCS), help="folder of the per-case JSON results (invert_*.json); "
                                                          "the table is rendered from all of them")
    args = ap.parse_args()
    torch.set_num_threads(1)
    DOCS.mkdir(parents=True, exist_ok=True)
    results = Path(args.results)
    if args.render_only:
        args.datasets = []
    for name in args.datasets:
        for protocol in args.protocols:
            report = run_case(name, protocol, PROFILES[args.profile][name], args.seed, DOCS)
            dump_json(results / f"invert_{name}_{protocol}.json", report)
            reports = saved_reports(results)
            write_markdown(reports, args, Path(args.out))
            for t in targets(reports):
                log(t)
    if args.render_only:
        write_markdown(saved_reports(results), args, Path(args.out))


def saved_reports(results: Path) -> dict[str, dict[str, Any]]:
    """Every case's JSON in the results folder, keyed `dataset/protocol`."""
    return {f"{n}/{p}": load_json(f) for f in sorted(results.glob("invert_*.json"))
            for n, p in [f.stem[len("invert_"):].rsplit("_", 1)]}


if __name__ == "__main__":
    main()
