"""PNG plots beside the output (matplotlib, Agg backend): spectra with the cuts, Maestro's rank
trajectory, and the metric-vs-parameters truncation sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> str:
    from dnnkit.models.atomic import atomic_file

    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return str(path)


def spectrum_plot(path: Path, spectra: dict[str, Any], ranks: dict[str, int], title: str) -> str:
    """Normalised singular values sigma_j / sigma_1 per layer (log scale), the kept rank marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (name, s) in enumerate(spectra.items()):
        s = s.double()
        y = (s / s[0].clamp_min(1e-300)).clamp_min(1e-12).numpy()
        (line,) = ax.plot(range(1, len(y) + 1), y, lw=1.2, label=name if i < 12 else None)
        r = ranks.get(name)
        if r:
            ax.plot([r], [y[r - 1]], "o", color=line.get_color(), ms=5)
    ax.set_yscale("log")
    ax.set_xlabel("component j")
    ax.set_ylabel("sigma_j / sigma_1")
    ax.set_title(title + " (dots: rank kept)")
    if len(spectra) <= 12:
        ax.legend(fontsize=7)
    out = _save(fig, path)
    plt.close(fig)
    return out


def ranks_plot(path: Path, trajectory: dict[str, list[int]], title: str) -> str:
    """Maestro: rank per layer after each epoch."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, ranks in trajectory.items():
        ax.plot(range(1, len(ranks) + 1), ranks, lw=1.4, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("rank kept (progressive shrinking)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    out = _save(fig, path)
    plt.close(fig)
    return out


def tradeoff_plot(path: Path, sweep: list[dict[str, Any]], title: str) -> str:
    """Metric vs parameters when every factored layer keeps a prefix of its components."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    pts = [(p["params"], p["value"]) for p in sweep if p["value"] is not None]
    ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-")
    for p in sweep:
        if p["value"] is not None:
            ax.annotate(f"{p['fraction']:.1f}", (p["params"], p["value"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.set_xlabel("parameters (whole model)")
    ax.set_ylabel(sweep[0]["metric"] if sweep else "metric")
    ax.set_title(title + " (labels: share of each rank kept)")
    out = _save(fig, path)
    plt.close(fig)
    return out


def write_plots(output: str, result: Any, report: dict[str, Any]) -> dict[str, str]:
    """Write the plots that apply to this run; returns {kind: path}."""
    base = Path(output)
    stem = base.with_suffix("") if base.suffix == ".safetensors" else base
    paths: dict[str, str] = {}
    ranks = {row["name"]: row["rank"] for row in report["layers"] if row["factored"]}
    if result.decompositions:
        spectra = {n: d.s for n, d in result.decompositions.items()}
        paths["spectrum"] = spectrum_plot(Path(f"{stem}.spectrum.png"), spectra, ranks,
                                          f"lowrank --{report['method']} spectra")
    maestro = report.get("maestro")
    if maestro and maestro.get("rank_trajectory"):
        paths["ranks"] = ranks_plot(Path(f"{stem}.ranks.png"), maestro["rank_trajectory"],
                                    "Maestro rank per layer")
    if report.get("sweep"):
        paths["tradeoff"] = tradeoff_plot(Path(f"{stem}.tradeoff.png"), report["sweep"],
                                          f"lowrank --{report['method']}: truncation sweep")
    return paths
