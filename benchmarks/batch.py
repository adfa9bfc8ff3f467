"""Benchmark: `dnnkit batch` over 32 zoo-sized checkpoints vs a shell loop of single `dnnkit` calls.

The claim: a batch pays the interpreter + torch start-up once per worker, not once per checkpoint,
so many small jobs run several times faster than a loop of single commands. Compared side by side,
on the same 32 checkpoints (16 digits-mlp + 16 digits-cnn variants), the same subcommand
(`eval --data digits`, load + 540-sample evaluation) and the same results (checked equal):

  1. a shell loop: `for f in ...; do dnnkit eval $f ...; done` (one process per checkpoint, serial)
  2. `xargs -P JOBS`: single calls, JOBS at a time (same parallelism as the pool, start-up per call)
  3. `dnnkit batch --jobs JOBS` (local process pool)
  4. `dnnkit batch --executor ray` on a Ray cluster started here (`ray start --head`, JOBS CPUs);
     the cluster's start-up is reported on its own line, not in the job time.

Writes docs/benchmarks/batch.md. Run: `python benchmarks/batch.py [--n 32] [--jobs 2] [--no-ray]`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import DOCS, ROOT, Run, Timer, header, machine_note, mark, parser, row, write_page

LOOP_TARGET, XARGS_TARGET = 3.0, 2.0  # the throughput targets: batch vs the shell loop, vs xargs


def make_checkpoints(folder: Path, n: int) -> list[Path]:
    """n distinct zoo-sized checkpoints: the digits zoo models with a little weight noise each."""
    import torch

    from dnnkit.models.registry import load_model
    from dnnkit.models.save import write_checkpoint

    paths = []
    for name in ("digits-mlp", "digits-cnn"):
        loaded = load_model(f"zoo:{name}")
        base = {k: v.clone() for k, v in loaded.model.state_dict().items()}
        for i in range(n // 2):
            gen = torch.Generator().manual_seed(i)
            state = {k: (v + 1e-3 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v)
                     for k, v in base.items()}
            path = folder / f"{name}-{i:02d}.safetensors"
            write_checkpoint(path, state, {"arch": loaded.arch, "source": loaded.source_record()}, force=True)
            paths.append(path)
    return paths


def timed(cmd: str | list[str], env: dict[str, str], **kw: object) -> tuple[float, str]:
    with Timer() as t:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, **kw)  # noqa: S603
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {cmd}\n{proc.stderr[-2000:]}")
    return t.wall, proc.stdout


def accuracies_from_lines(stdout: str, key: str = "model") -> dict[str, float]:
    out = {}
    for line in stdout.splitlines():
        if not line.startswith("{"):
            continue
        obj = json.loads(line)
        if "metrics" in obj:  # a batch result line
            if obj["status"] == "ok":
                out[Path(obj["input"]).name] = obj["metrics"]["accuracy"]
        else:
            out[Path(obj[key]).name] = obj["accuracy"]
    return out


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--out", default=str(DOCS / "batch.md"))
    args = ap.parse_args()
    py = sys.executable
    dnnkit = [py, "-m", "dnnkit"]
    work = Path(tempfile.mkdtemp(prefix="dnnkit-bench-batch-"))
    env = {**os.environ, "DNNKIT_THREADS": "1", "OMP_NUM_THREADS": "1"}
    run = Run(threads=1)
    from dnnkit.data import load_data

    n_test = len(load_data("digits", "test"))
    (work / "ckpts").mkdir()
    ckpts = make_checkpoints(work / "ckpts", args.n)
    files = " ".join(f"'{p}'" for p in ckpts)
    eval_args = "--data digits --threads 1 --json"
    rows: list[tuple[str, float, str]] = []
    results: dict[str, dict[str, float]] = {}

    run.log(f"{len(ckpts)} checkpoints in {work}; shell loop ...")
    loop = f"for f in {files}; do {py} -m dnnkit eval \"$f\" {eval_args} || exit 1; done"
    t, out = timed(["bash", "-c", loop], env, cwd=ROOT)
    rows.append(("shell loop of single `dnnkit eval` calls", t, "1 process per checkpoint, serial"))
    results["loop"] = accuracies_from_lines(out)

    run.log("xargs ...")
    xargs = (f"printf '%s\\n' {files} | xargs -P {args.jobs} -I{{}} {py} -m dnnkit eval {{}} {eval_args}")
    t, out = timed(["bash", "-c", xargs], env, cwd=ROOT)
    rows.append((f"`xargs -P {args.jobs}` of single calls", t, f"{args.jobs} processes at a time, start-up per call"))
    results["xargs"] = accuracies_from_lines(out)

    run.log("batch local ...")
    batch = [*dnnkit, "batch", str(work / "ckpts"), "--jobs", str(args.jobs), "--quiet", "--", "eval",
             "--data", "digits"]
    t, out = timed(batch, env, cwd=ROOT)
    rows.append((f"`dnnkit batch --jobs {args.jobs}` (local pool)", t, f"{args.jobs} workers x 1 thread"))
    results["local"] = accuracies_from_lines(out)

    ray_note = "not run (--no-ray)"
    if not args.no_ray:
        ray_bin = str(Path(py).parent / "ray")
        run.log("ray start ...")
        subprocess.run([ray_bin, "stop"], capture_output=True, check=False)
        with Timer() as ray_start:
            subprocess.run([ray_bin, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", "6395",
                            "--num-cpus", str(args.jobs), "--include-dashboard", "false", "--disable-usage-stats"],
                           env=env, capture_output=True, check=True, cwd=ROOT)
        try:
            run.log("batch ray ...")
            t, out = timed([*dnnkit, "batch", str(work / "ckpts"), "--executor", "ray", "--address",
                            "127.0.0.1:6395", "--quiet", "--", "eval", "--data", "digits"], env, cwd=ROOT)
            rows.append(("`dnnkit batch --executor ray` (cluster on this machine)", t,
                         f"{args.jobs} CPUs, 1 task per checkpoint"))
            results["ray"] = accuracies_from_lines(out)
            ray_note = f"`ray start --head` took {ray_start.wall:.1f} s (not included above)"
        finally:
            subprocess.run([ray_bin, "stop"], capture_output=True, check=False)

    names = sorted(results["loop"])
    same = all(results[k] == results["loop"] for k in results)
    assert len(names) == len(ckpts), f"shell loop gave {len(names)} results for {len(ckpts)} checkpoints"
    loop_s, xargs_s, local_s = rows[0][1], rows[1][1], rows[2][1]
    record = run.finish()
    lines = [
        "# `dnnkit batch`: throughput over many checkpoints",
        "",
        f"Command: `python benchmarks/batch.py --n {args.n} --jobs {args.jobs}{' --no-ray' if args.no_ray else ''}` "
        f"(subcommand `eval --data digits`: load a checkpoint, evaluate it on the {n_test} digits test images).",
        f"Machine: {machine_note(record)}; Python {record['python']}; every `dnnkit` process runs 1 torch thread; "
        f"the whole run took {record['wall_s'] / 60:.0f} min. Other jobs share the machine: times are pessimistic "
        "and noisy.",
        f"Inputs: {len(ckpts)} checkpoints ({args.n // 2} digits-mlp + {args.n // 2} digits-cnn variants, "
        f"{sum(p.stat().st_size for p in ckpts) / 1e6:.1f} MB in all).",
        "",
        *header(["method", "wall s", "checkpoints/s", "speed-up vs shell loop", "notes"], "lrrrl"),
    ]
    for label, secs, note in rows:
        lines.append(row([label, f"{secs:.1f}", f"{len(ckpts) / secs:.2f}", f"{loop_s / secs:.1f}x", note]))
    lines += [
        "",
        f"Ray: {ray_note}.",
        f"Results identical across methods (accuracy of every checkpoint): {'yes' if same else 'NO'}.",
        "",
        "Targets:",
        f"- batch (local pool) at least {LOOP_TARGET:g}x the shell loop's throughput: "
        f"{mark(loop_s / local_s >= LOOP_TARGET, bold=False)} ({loop_s / local_s:.1f}x).",
        f"- batch (local pool) at least {XARGS_TARGET:g}x `xargs -P {args.jobs}` (same parallelism; the gain is "
        f"start-up saved): {mark(xargs_s / local_s >= XARGS_TARGET, bold=False)} ({xargs_s / local_s:.1f}x).",
    ]
    if "ray" in results:
        ray_s = rows[3][1]
        lines.append(f"- batch on Ray faster than the shell loop: {mark(ray_s < loop_s, bold=False)} "
                     f"({loop_s / ray_s:.1f}x; Ray adds its driver connection and task scheduling).")
    text = "\n".join(lines)
    write_page(args.out, text)
    print(text)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
