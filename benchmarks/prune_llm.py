"""SmolLM2-135M pruned one-shot by dnnkit and by llm-compressor, side by side, on the same calibration tokens.

Rows: the dense model; dnnkit's magnitude, Wanda and SparseGPT criteria with a uniform allocation, Wanda with
the OWL allocation; llm-compressor 0.14's SparseGPTModifier and WandaPruningModifier (uniform, and Wanda with
its OWL profile). Sparsities 50/60/70 % unstructured and 2:4. Every output is scored by one evaluator,
`dnnkit eval OUT --data wiki --limit 64 --seq-len 128` (64 held-out blocks of 128 tokens), so only the pruning
differs. Each prune runs as its own process with one torch thread; wall seconds and peak RSS are that
process's (os.wait4), load and save included for both tools.

Calibration: 32 blocks of 128 tokens of the wiki train split (`dnnkit.metrics.load_inputs`, seed 0), written
to a file that llm-compressor's runner (`benchmarks/llmc_prune.py`, in its own venv) reads.

    python benchmarks/prune_llm.py --llmc-python /tmp/llmc-venv/bin/python
    python benchmarks/prune_llm.py --only 'dnnkit sparsegpt'      # rows whose label contains the text

Results are kept per row in docs/benchmarks/prune-llm.json (a rerun measures only the missing rows;
--redo measures again) and the section `## SmolLM2-135M beside llm-compressor` of docs/benchmarks/prune.md
with its target rows is rewritten from them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from harness import DOCS, ROOT, Page, Run, dump_json, header, load_json, log, machine_note, parser, row

RESULTS = DOCS / "prune-llm.json"
PAGE = DOCS / "prune.md"
SECTION = "## SmolLM2-135M beside llm-compressor"
TARGET_PREFIX = "| SmolLM2-135M vs llm-compressor"
CALIB, CALIB_LEN, TEST, TEST_LEN = 32, 128, 64, 128
RD_LEVELS = 11  # rd: 0, 10, ..., 90 % and the 99 % cap, proxy curves (one measured level per layer)
RD_CALIB = 8  # rd: the curves' output distortion on the first 8 calibration blocks (the criterion uses all 32)
MOONSHOT_S = 15 * 60  # the moonshot: the whole rd + sparsegpt prune, curves included, within 15 min
TIE = 1.02  # "at least as good": perplexity within 2 % of the other tool's counts as a tie
DNNKIT = str(Path(sys.executable).parent / "dnnkit")


@dataclass(frozen=True)
class Case:
    """One row: which tool, allocation and criterion, at which sparsity (None = dense) or N:M pattern."""

    tool: str  # "dense", "dnnkit" or "llm-compressor"
    criterion: str
    allocation: str = "uniform"
    sparsity: float | None = None
    pattern: str | None = None

    @property
    def level(self) -> str:
        if self.pattern:
            return self.pattern
        return "dense" if self.sparsity is None else f"{round(100 * self.sparsity)} %"

    @property
    def label(self) -> str:
        if self.tool == "dense":
            return "dense"
        alloc = "" if self.allocation == "uniform" else f"{self.allocation}+"
        return f"{self.tool} {alloc}{self.criterion} {self.level}"


def cases(order: str = "measure") -> list[Case]:
    """Every row; in measuring order (50 %, 2:4, 70 %, 60 %: the most asked-for first) or table order."""
    def level(s: float) -> list[Case]:
        crits = ("magnitude", "wanda", "sparsegpt") if s == 0.5 else ("wanda", "sparsegpt")
        rows = [Case("dnnkit", c, sparsity=s) for c in crits]
        rows += [Case("llm-compressor", c, sparsity=s) for c in ("wanda", "sparsegpt")]
        if s != 0.6:
            rows += [Case("dnnkit", "wanda", "owl", s), Case("llm-compressor", "wanda", "owl", s)]
        if s == 0.5:  # rd over a criterion: what no other tool offers
            rows += [Case("dnnkit", c, "rd", s) for c in ("wanda", "sparsegpt")]
        return rows

    nm = [Case(t, c, pattern="2:4") for c in ("wanda", "sparsegpt") for t in ("dnnkit", "llm-compressor")]
    if order == "table":
        return [Case("dense", "-"), *level(0.5), *level(0.6), *level(0.7), *nm]
    return [Case("dense", "-"), *level(0.5), *nm, *level(0.7), *level(0.6)]


class Failed(Exception):
    """A measured process exited non-zero (the message is the last line of its stderr)."""


def measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run a process; its wall seconds, peak RSS in GB and stdout. Raises Failed with its last stderr line."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        log(f"{' '.join(cmd)} failed:\n{stderr[-3000:]}")
        lines = [x for x in stderr.splitlines() if x.strip()]
        raise Failed(lines[-1] if lines else f"exit {os.waitstatus_to_exitcode(status)}")
    return wall, usage.ru_maxrss / 1e6, stdout


def prune_command(case: Case, work: Path, out: Path, llmc_python: str) -> list[str]:
    if case.tool == "dnnkit":
        cmd = [DNNKIT, "prune", "zoo:smollm2-135m", "--method", case.allocation, "--criterion", case.criterion,
               "--data", "wiki", "--calib", str(CALIB), "--seq-len", str(CALIB_LEN), "--limit", "2",
               "--threads", "1", "-o", str(out), "--force", "--json"]
        if case.allocation == "rd":
            cmd += ["--rd-curves", "proxy", "--levels", str(RD_LEVELS), "--rd-calib", str(RD_CALIB)]
        return cmd + (["--pattern", case.pattern] if case.pattern else ["--ratio", str(case.sparsity)])
    from dnnkit.zoo.catalog import converted_path, zoo_entry

    cmd = [llmc_python, str(ROOT / "benchmarks" / "llmc_prune.py"), str(converted_path(zoo_entry("smollm2-135m"))),
           str(work / "calib.safetensors"), str(out), "--modifier", case.criterion, "--threads", "1"]
    cmd += ["--sparsity", "0.5", "--mask", case.pattern] if case.pattern else ["--sparsity", str(case.sparsity)]
    return cmd + (["--owl"] if case.allocation == "owl" else [])


def evaluate(target: str, env: dict[str, str]) -> dict[str, Any]:
    _, _, stdout = measured([DNNKIT, "eval", target, "--data", "wiki", "--limit", str(TEST), "--seq-len",
                             str(TEST_LEN), "--threads", "1", "--json"], env)
    return json.loads(stdout)


def write_calibration(work: Path) -> None:
    """The calibration blocks dnnkit's prune draws (`--calib 32 --seq-len 128`, seed 0), for llm-compressor."""
    from safetensors.torch import save_file

    from dnnkit.metrics import load_inputs
    from dnnkit.models.registry import load_model

    loaded = load_model("zoo:smollm2-135m")
    ids = load_inputs(loaded, "wiki", "train", CALIB, 0, CALIB_LEN).x
    save_file({"input_ids": ids.contiguous()}, str(work / "calib.safetensors"))


def measure(case: Case, work: Path, llmc_python: str, env: dict[str, str]) -> dict[str, Any]:
    if case.tool == "dense":
        return {"perplexity": evaluate("zoo:smollm2-135m", env)["perplexity"]}
    out = work / ("out.safetensors" if case.tool == "dnnkit" else "out-hf")
    try:
        wall, rss, stdout = measured(prune_command(case, work, out, llmc_python), env)
    except Failed as exc:
        if case.tool == "dnnkit":
            raise SystemExit(f"error: {case.label}: {exc}") from None
        return {"error": str(exc)}  # the other tool's failure is a result: the row says so
    report = json.loads(stdout.strip().splitlines()[-1])
    achieved = report.get("achieved")
    ppl = evaluate(str(out), env)["perplexity"]
    shutil.rmtree(out) if out.is_dir() else out.unlink()
    return {"perplexity": ppl, "wall_s": round(wall, 1), "peak_rss_gb": round(rss, 2), "achieved": achieved,
            "prune_s": report.get("prune_s") or (report.get("timing") or {}).get("total_s")}


# ------------------------------------------------------------------------------------------------ page

def _ppl(r: dict[str, Any] | None) -> str:
    return "-" if not r else f"{r['perplexity']:.2f}"


RUN_SPAN = timedelta(hours=3)  # rows dated within this of the newest row count as one run (one session)


def _when(r: dict[str, Any] | None) -> datetime | None:
    """The row's measurement time (rows without a date predate per-row dates)."""
    date = (r or {}).get("date")
    return datetime.strptime(date, "%Y-%m-%d %H:%M UTC") if date else None


def _latest(results: dict[str, Any]) -> datetime | None:
    return max((w for w in map(_when, results.values()) if w is not None), default=None)


def _same_run(a: datetime | None, b: datetime | None) -> bool:
    return a is not None and b is not None and abs(a - b) <= RUN_SPAN


def _this_run(r: dict[str, Any], latest: datetime | None) -> bool:
    return _same_run(_when(r), latest)


def earlier_note(results: dict[str, Any]) -> list[str]:
    """A footnote naming the rows (†) measured in an earlier run: their wall and RSS are not this run's."""
    latest = _latest(results)
    old = [f"{label} ({r.get('date') or '2026-12-07'})" for label, r in results.items()
           if label != "dense" and not _this_run(r, latest)]
    if not old:
        return []
    return ["", "† measured in an earlier run on the same kind of 2-core machine (perplexity is deterministic; wall "
                f"and peak RSS are that run's): {', '.join(old)}. Every other row: the run of "
                f"{latest:%Y-%m-%d %H:%M} UTC (rows within {RUN_SPAN.seconds // 3600} h of it)."]


def table_lines(results: dict[str, Any], dense: float) -> list[str]:
    latest = _latest(results)
    lines = header(["sparsity", "tool", "allocation", "criterion", "perplexity", "× dense", "wall s",
                    "peak RSS GB", "achieved"], "llllrrrrr")
    for case in cases("table"):
        r = results.get(case.label)
        if not r:
            continue
        if "error" in r:
            lines.append(row([case.level, case.tool, case.allocation, case.criterion,
                              f"failed: `{r['error'][:120]}`", "-", "-", "-", "-"]))
            continue
        achieved = r.get("achieved")
        mark = "" if case.tool == "dense" or _this_run(r, latest) else " †"
        alloc = "-" if case.tool == "dense" else case.allocation
        lines.append(row([case.level, case.tool + mark, alloc, case.criterion, _ppl(r),
                          f"{r['perplexity'] / dense:.2f}", r.get("wall_s", "-"),
                          r.get("peak_rss_gb", "-"), "-" if achieved is None else f"{100 * achieved:.1f} %"]))
    return lines


def rd_target_lines(results: dict[str, Any]) -> list[str]:
    """The issue's rd target: rd + sparsegpt at 50 % at least 10 % below uniform sparsegpt and below owl + wanda."""
    rd, uni, owl = (results.get(f"dnnkit {a}50 %") for a in ("rd+sparsegpt ", "sparsegpt ", "owl+wanda "))
    if not rd or not uni or not owl or any("error" in r for r in (rd, uni, owl)):
        return []
    gain = 1 - rd["perplexity"] / uni["perplexity"]
    verdict = "met" if gain >= 0.10 and rd["perplexity"] < owl["perplexity"] else "missed"
    return [row([f"{TARGET_PREFIX[2:]}: rd+sparsegpt 50 % ≥ 10 % below uniform sparsegpt and below owl+wanda",
                 "smollm2-135m", f"{rd['perplexity']:.2f} vs {uni['perplexity']:.2f} ({100 * gain:+.1f} %) and "
                 f"{owl['perplexity']:.2f}", verdict, f"wall {rd['wall_s']:.0f} s (uniform sparsegpt "
                 f"{uni['wall_s']:.0f} s), proxy curves, {RD_LEVELS} levels"]),
            row([f"{TARGET_PREFIX[2:]}: moonshot, the whole rd+sparsegpt 50 % prune within {MOONSHOT_S // 60} min",
                 "smollm2-135m", f"{rd['wall_s'] / 60:.1f} min wall (1 thread)",
                 "met" if rd["wall_s"] <= MOONSHOT_S else "missed", "curves, DP, sequential SparseGPT, save"])]


def sparsegpt_target_line(results: dict[str, Any]) -> list[str]:
    """The issue's first target: sparsegpt 50 % within 2 % of llm-compressor's perplexity at no more wall
    time and peak memory, the two measured in one run."""
    mine, theirs = results.get("dnnkit sparsegpt 50 %"), results.get("llm-compressor sparsegpt 50 %")
    if not mine or not theirs or "error" in mine or "error" in theirs:
        return []
    ratio = mine["perplexity"] / theirs["perplexity"]
    checks = {"perplexity": ratio <= TIE, "wall": mine["wall_s"] <= theirs["wall_s"],
              "peak RSS": mine["peak_rss_gb"] <= theirs["peak_rss_gb"]}
    same = _same_run(_when(mine), _when(theirs))
    verdict = "met" if all(checks.values()) and same else "missed"
    failed = [k for k, ok in checks.items() if not ok] + ([] if same else ["not one run"])
    return [row([f"{TARGET_PREFIX[2:]}: sparsegpt 50 % within 2 % at no more wall and peak RSS", "smollm2-135m",
                 f"{ratio:.3f}× perplexity, {mine['wall_s']:.0f} vs {theirs['wall_s']:.0f} s, "
                 f"{mine['peak_rss_gb']:.2f} vs {theirs['peak_rss_gb']:.2f} GB", verdict,
                 "missed on: " + ", ".join(failed) if failed else "all three in one run"])]


def target_lines(results: dict[str, Any]) -> list[str]:
    """One target row per (criterion, allocation, level) where both tools were measured."""
    out = sparsegpt_target_line(results) + rd_target_lines(results)
    for case in cases("table"):
        if case.tool != "dnnkit":
            continue
        other = Case("llm-compressor", case.criterion, case.allocation, case.sparsity, case.pattern)
        mine, theirs = results.get(case.label), results.get(other.label)
        if not mine or not theirs or "error" in theirs:
            continue
        ratio = mine["perplexity"] / theirs["perplexity"]
        verdict = "met" if ratio <= TIE else "missed"
        speed = theirs["wall_s"] / mine["wall_s"]
        mem = mine["peak_rss_gb"] / theirs["peak_rss_gb"]
        name = f"{case.allocation}+{case.criterion}" if case.allocation != "uniform" else case.criterion
        out.append(row([f"{TARGET_PREFIX[2:]}: {name} {case.level} perplexity ≤ {TIE:.2f}× theirs", "smollm2-135m",
                        f"{mine['perplexity']:.2f} vs {theirs['perplexity']:.2f} ({ratio:.3f}×)", verdict,
                        f"wall {mine['wall_s']:.0f} s vs {theirs['wall_s']:.0f} s ({speed:.2f}× their speed); "
                        f"peak RSS {mine['peak_rss_gb']:.2f} vs {theirs['peak_rss_gb']:.2f} GB ({mem:.2f}×)"
                        + ("" if _same_run(_when(mine), _when(theirs)) else
                           " (the two from different runs, †)")]))
    return out


def write_page(data: dict[str, Any]) -> None:
    results = data["rows"]
    dense = results["dense"]["perplexity"]
    lines = [f"{SECTION} (one-shot, no fine-tune)", "",
             f"Machine: {machine_note(data.get('run'))}. Command: `{data['run']['command']}`.", "",
             f"Calibration: {CALIB} blocks × {CALIB_LEN} tokens of the wiki train split, the same token ids for "
             "both tools. Held out: perplexity from `dnnkit eval OUT --data wiki --limit 64 --seq-len 128` "
             f"({TEST} × {TEST_LEN} test tokens) for every output, so the evaluator is shared. Prunable: the "
             "210 Linear weights of the 30 blocks (the tied embedding / LM head is kept dense by both). "
             "SparseGPT: dampening 0.01 of the mean Hessian diagonal, 128-column blocks, in both tools. "
             f"OWL: M = 5, λ = 0.08 in both. rd (dnnkit only): `--rd-curves proxy --levels {RD_LEVELS} --rd-calib "
             f"{RD_CALIB}`: the criterion's statistics on all {CALIB} calibration blocks, each layer's measured level "
             f"on the first {RD_CALIB}, the DP over the chosen criterion's own variants, then that criterion applied "
             "sequentially to the DP's counts. Wall and peak RSS are those of the prune process (load, calibration, "
             "prune and save; dnnkit's also scores 2 held-out blocks before and after), one torch thread each.",
             "", *table_lines(results, dense), *earlier_note(results), "",
             "llm-compressor's venv (it pins `torch<=2.14.0`, so it is installed beside torch 2.14.1 without its "
             "dependency resolver): `python3 -m venv V && V/bin/pip install torch==2.14.1 transformers==5.17.0 "
             "'accelerate>=1.15' datasets gguf loguru pyyaml 'numpy>=2' requests tqdm nvidia-ml-py pillow pydantic "
             "psutil py-cpuinfo safetensors sentencepiece && V/bin/pip install --no-deps llmcompressor==0.14.0.1 "
             "compressed-tensors==0.19.0 auto-round==0.15.1`.", ""]
    page = Page.read(PAGE)
    page.set(SECTION, lines, before="## digits-cnn")
    new = target_lines(results)
    if new:
        page.replace_lines([TARGET_PREFIX], new, after=["| SmolLM2-135M DP", "| perplexity of SmolLM2-135M"])
    page.write(PAGE)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--llmc-python", default=os.environ.get("DNNKIT_LLMC_PYTHON", "/tmp/llmc-venv/bin/python"),
                    help="python of a venv with llmcompressor 0.14 installed")
    ap.add_argument("--only", default=None, help="measure only rows whose label contains this text")
    ap.add_argument("--redo", action="store_true", help="measure rows that already have results again")
    ap.add_argument("--page-only", action="store_true", help="rewrite the page from the stored results")
    args = ap.parse_args()
    data = load_json(RESULTS) if RESULTS.exists() else {"rows": {}}
    run = Run(threads=1)
    if not args.page_only:
        if not Path(args.llmc_python).exists():
            raise SystemExit(f"error: no python at {args.llmc_python} (see docs/benchmarks/prune.md for the venv)")
        env = dict(os.environ, DNNKIT_THREADS="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
        with tempfile.TemporaryDirectory(prefix="dnnkit-prune-llm-") as tmp:
            work = Path(tmp)
            write_calibration(work)
            for case in cases():
                if args.only and args.only not in case.label:
                    continue
                if case.label in data["rows"] and not args.redo:
                    continue
                log(f"{case.label} ...")
                data["rows"][case.label] = {**measure(case, work, args.llmc_python, env), "date": run.record["date"]}
                log(f"{case.label}: {data['rows'][case.label]}")
                data["run"] = run.finish()
                dump_json(RESULTS, data)
    if "dense" in data["rows"]:
        write_page(data)


if __name__ == "__main__":
    main()
