"""Pruning a built network: any method, one-shot or iterative, with masked fine-tuning and
held-out metrics before and after."""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from dnnkit.errors import InputError
from dnnkit.progress import ProgressReporter, or_null
from dnnkit.surgery.prune.allocate import allocate
from dnnkit.surgery.prune.criteria.apply import apply_criterion, check_pattern
from dnnkit.surgery.prune.criteria.owl import owl_zeros
from dnnkit.surgery.prune.criteria.variants import criterion_variants
from dnnkit.surgery.prune.curves import Curves, forward_y, reference_outputs
from dnnkit.surgery.prune.layers import PrunableLayer, network_weight_names, scan_layers, select_layers
from dnnkit.surgery.prune.lm_head import head_shortcut
from dnnkit.surgery.prune.rd import RDOutcome, apply_zeros, rd_allocate
from dnnkit.surgery.prune.run import PruneConfig, layer_rows, sparsity_warnings, step_ratios


def network_layers(model: torch.nn.Module, opts: PruneConfig) -> list[PrunableLayer]:
    """The prunable layers of a network after --include/--exclude, with their existing zeros."""
    from dnnkit.models.weights import StateDictWeights

    params = dict(model.named_parameters())
    all_names = list(params)
    floats = {n for n, p in params.items() if p.is_floating_point()}
    names = select_layers(network_weight_names(model), all_names, floats, opts.include, opts.exclude)
    return scan_layers(StateDictWeights({n: params[n].detach() for n in names}), names)


def check_data(loaded: Any, opts: PruneConfig) -> None:
    """Cheap data checks before heavy work."""
    if opts.method == "rd" and opts.data is None:
        raise InputError("--method rd needs calibration data: add --data (e.g. digits)")
    if opts.finetune_epochs > 0 and opts.data is None:
        raise InputError("--finetune-epochs needs training data: add --data (e.g. digits)")
    if opts.data is None:
        return
    from dnnkit.data.registry import check_data_spec
    from dnnkit.metrics import check_task_data

    check_data_spec(opts.data)
    check_task_data(loaded, opts.data)
    if opts.finetune_epochs > 0 and loaded.info.task != "classifier":
        raise InputError(f"--finetune-epochs trains with labels: {loaded.ref.raw} is a {loaded.info.task}",
                         hint="fine-tuning is supported for image classifiers")


def check_budget(layers: list[PrunableLayer], opts: PruneConfig) -> None:
    """The ratio must be reachable: above the existing zeros, below the per-layer caps (checked early)."""
    import math

    total = sum(layer.n for layer in layers)
    p = round(opts.ratio * total)
    have = sum(layer.zeros for layer in layers)
    if have > p:
        raise InputError(f"input has {100 * have / total:.1f} % zeros among prunable weights; "
                         f"pass --ratio >= {have / total:.3f}")
    cap = opts.rd_cap if opts.method in ("rd", "owl") else opts.cap
    if cap is not None:
        reach = sum(max(math.floor(cap * layer.n), layer.zeros) for layer in layers)
        if reach < p:
            raise InputError(f"--ratio {opts.ratio} is unreachable under the per-layer cap {cap}: "
                             f"the largest reachable is {reach / total:.4f}",
                             hint="lower --ratio or raise --max-layer-sparsity")


def _calibration_batch(opts: PruneConfig, task: str) -> int:
    """Rows per calibration forward of the calibrated criteria (im2col and Hessians stay small)."""
    return min(opts.batch_size, 32) if task == "classifier" else min(opts.batch_size, 8)


def _calibration(loaded: Any, opts: PruneConfig) -> Any:
    from dnnkit.metrics import load_inputs

    return load_inputs(loaded, opts.data, "train", opts.calib, opts.seed, opts.seq_len)


LOGIT_BUDGET = 8_000_000  # floats of held-out logits per forward (SmolLM2, 128 tokens: one row at a time)


@torch.no_grad()
def held_out_metrics(loaded: Any, model: torch.nn.Module, opts: PruneConfig, test: Any,
                     reference: torch.Tensor | None) -> tuple[dict[str, Any], torch.Tensor | None]:
    """Accuracy (classifier), perplexity (causal LM), cosine (encoder) and output MSE vs `reference`, from
    one forward per batch. Returns the outputs Y only without a reference (they become the reference of the
    later call), so the scoring after pruning holds one batch of outputs, not the whole split."""
    from dnnkit.metrics import token_nll

    task = loaded.info.task
    batch = opts.batch_size if test.kind == "images" else min(opts.batch_size, 8)
    if task == "causal-lm":  # rows per batch: the logits (and their log-softmax) of at most ~8 M floats
        vocab = int(getattr(getattr(model, "config", None), "vocab_size", 0) or 0)
        batch = max(1, min(batch, LOGIT_BUDGET // max(vocab * int(test.x.shape[1]), 1)))
    model.eval()
    parts: list[torch.Tensor] = []
    correct, nll, predictions, sq_err, elements, cosine = 0, 0.0, 0, 0.0, 0, 0.0
    for i in range(0, len(test), batch):
        chunk = test.slice(i, i + batch)
        y = forward_y(model, task, chunk)
        if task == "classifier" and test.y is not None:
            correct += int((y.argmax(-1) == chunk.y).sum())
        if task == "causal-lm":
            part_nll, n = token_nll(y, chunk.x)
            nll, predictions = nll + part_nll, predictions + n
        if reference is None:
            parts.append(y)
            continue
        ref = reference[i:i + batch]
        sq_err += float(((y - ref) ** 2).double().sum())
        elements += y.numel()
        if task == "encoder":
            cosine += float(torch.nn.functional.cosine_similarity(y, ref, dim=-1).double().sum())
    out: dict[str, Any] = {"split": "test", "samples": len(test)}
    if task == "classifier" and test.y is not None:
        out["accuracy"] = correct / max(len(test), 1)
    if task == "causal-lm":
        out["perplexity"] = math.exp(nll / max(predictions, 1))
    if reference is not None:
        out["output_mse"] = sq_err / max(elements, 1)
        if task == "encoder":
            out["cosine"] = cosine / max(len(test), 1)
    return out, (torch.cat(parts) if reference is None else None)


def finetune(model: torch.nn.Module, masks: dict[str, torch.Tensor], train: Any, opts: PruneConfig,
             progress: ProgressReporter) -> float:
    """E epochs of task-loss training with the masks held; returns seconds."""
    from dnnkit.train import TrainConfig, fit

    cfg = TrainConfig(epochs=opts.finetune_epochs, lr=opts.lr, batch_size=64, seed=opts.seed)
    hist = fit(model, train.x, train.y, cfg, masks=masks, progress=progress, description="fine-tune")
    return hist.seconds


def prune_network(loaded: Any, layers: list[PrunableLayer], opts: PruneConfig,
                  progress: ProgressReporter | None = None, curves_cache: dict[str, Curves] | None = None,
                  ) -> dict[str, Any]:
    """Prune `loaded.model` in place. Returns the report (layers, metrics, additivity, timing)."""
    from dnnkit.data import ImageData, load_data
    from dnnkit.metrics import load_inputs

    progress = or_null(progress)
    model = loaded.model
    task = loaded.info.task
    names = [layer.name for layer in layers]
    params = dict(model.named_parameters())
    timing = {"curves_s": 0.0, "dp_s": 0.0, "finetune_s": 0.0, "naive_estimate_s": 0.0, "allocation_s": 0.0}
    report: dict[str, Any] = {"metrics": {}, "additivity": None, "steps": []}
    check_budget(layers, opts)
    spec = opts.criterion_spec()
    check_pattern(model, names, spec.pattern)
    calib = train = test = None
    batch = _calibration_batch(opts, task)
    if opts.data is not None:
        calib = _calibration(loaded, opts) if opts.method in ("rd", "owl") or spec.calibrated else None
        if calib is not None:
            import hashlib

            digest = hashlib.sha256(calib.x.contiguous().numpy().tobytes()).hexdigest()[:16]
            report["calibration"] = {"data": opts.data, "split": "train", "samples": len(calib), "seed": opts.seed,
                                     "sha256": digest}
            if calib.kind != "images":
                report["calibration"]["seq_len"] = int(calib.x.shape[1])
            if opts.method == "rd":  # the samples the curves' output distortion is measured on
                report["calibration"]["rd_samples"] = min(opts.rd_calib or len(calib), len(calib))
        test = load_inputs(loaded, opts.data, "test", opts.eval_limit or (None if task == "classifier" else 16),
                           opts.seed, opts.seq_len)
        if opts.finetune_epochs > 0:
            data = load_data(opts.data, "train")
            if not isinstance(data, ImageData):  # pragma: no cover - guarded by check_data
                raise InputError("fine-tuning needs labelled image data")
            train = data
        before, y_dense_test = held_out_metrics(loaded, model, opts, test, None)
        report["metrics"]["before"] = before
    ratios = step_ratios(opts.ratio, opts.steps)
    zeros = [layer.zeros for layer in layers]
    rd_extra: dict[str, dict[str, Any]] = {}
    cur = [PrunableLayer(layer.name, layer.shape, layer.zeros) for layer in layers]
    for j, r in enumerate(ratios, 1):
        step: dict[str, Any] = {"step": j, "ratio": r}
        if opts.method == "rd":
            measured_on = calib if opts.rd_calib is None else calib.slice(0, opts.rd_calib)
            head = head_shortcut(model, task, [n.removesuffix(".weight") for n in names], measured_on)
            reference = reference_outputs(model, task, measured_on, opts.batch_size if calib.kind == "images" else 8,
                                          head)
            key = f"{j}"
            cached = (curves_cache or {}).get(key) if opts.steps == 1 else None
            proxy_curves = opts.rd_curves == "proxy"
            variants, proxy = criterion_variants(model, task, calib, names, spec, batch, proxy_curves) \
                if spec.calibrated or proxy_curves else (None, None)
            outcome: RDOutcome = rd_allocate(model, task, measured_on, reference, cur, r, levels=opts.levels,
                                             cap=opts.rd_cap, objective=opts.objective, dp_units=opts.dp_units,
                                             batch_size=opts.batch_size, iterative=j > 1 or any(layer.zeros for
                                                                                                 layer in cur),
                                             refine=opts.refine if j == len(ratios) else 0, curves=cached,
                                             progress=progress, head=head, variants=variants, proxy=proxy)
            if curves_cache is not None and opts.steps == 1:
                curves_cache[key] = outcome.curves
            zeros = outcome.zeros
            if cached is None:
                timing["curves_s"] += outcome.curves.seconds
                timing["naive_estimate_s"] += outcome.curves.naive_estimate_seconds
            timing["dp_s"] += outcome.dp_seconds
            step.update({"predicted": outcome.predicted, "measured": outcome.measured, "rho": outcome.rho,
                         "unit": outcome.unit, "topped_up": outcome.topped_up, "curve_reuse": outcome.curves.reuse})
            if j == len(ratios):
                report["additivity"] = {"predicted": outcome.predicted, "measured": outcome.measured,
                                        "rho": outcome.rho, "objective": opts.objective, "rounds": outcome.rounds,
                                        "refine_start": outcome.start if opts.refine else None,
                                        "curve_reuse": outcome.curves.reuse, "dp_unit": outcome.unit,
                                        "curves": outcome.curves.source,
                                        "lm_head_shortcut": head.name if head is not None else None,
                                        "topped_up": outcome.topped_up,
                                        "full_pass_s": outcome.curves.full_pass_seconds,
                                        "curve_passes": outcome.curves.naive_passes}
                if outcome.rho is not None and not (0.5 <= outcome.rho <= 2.0):
                    report.setdefault("warnings", []).append(
                        f"additivity check: predicted/measured distortion rho = {outcome.rho:.2f} is outside "
                        "[0.5, 2]; the rd allocation rests on an assumption that fails here (try --refine 3)")
                for name, ds in zip(outcome.curves.names, outcome.curves.distortion, strict=True):
                    if len(ds) > 1 and max(ds) <= 1e-12:
                        report.setdefault("warnings", []).append(
                            f"layer {name} does not change the output on the calibration data (off the output "
                            f"path?): rd prunes it to the cap for free; consider --exclude '{name}'")
                from dnnkit.surgery.prune.dp import LayerOptions, predicted_sum

                for k, name in enumerate(outcome.curves.names):
                    zs, ds, n = outcome.curves.zeros[k], outcome.curves.distortion[k], cur[k].n
                    d_here = predicted_sum([LayerOptions(name, n, [n - z for z in zs], ds)], [n - zeros[k]])
                    # the grid level nearest to the final count (the top-up may land between levels)
                    rd_extra[name] = {"distortion": d_here, "level": round(zeros[k] / n * (opts.levels - 1)),
                                      "on_grid": zeros[k] in zs}
        elif opts.method == "owl":
            t0 = time.perf_counter()
            zeros, step["owl"] = owl_zeros(model, task, calib, cur, r, batch, opts.rd_cap)
            timing["allocation_s"] += time.perf_counter() - t0
        else:
            t0 = time.perf_counter()
            zeros = allocate(opts.method, cur, r, lambda n: params[n].detach(), opts.cap)
            timing["allocation_s"] += time.perf_counter() - t0
        tune = opts.finetune_epochs > 0  # the only use of the masks: held through the fine-tune
        if spec.name == "magnitude" and spec.pattern is None:  # in place, from each parameter (no copy)
            masks = apply_zeros(params, {n: params[n].detach() for n in names}, names, zeros, keep_masks=tune)
        else:
            t0 = time.perf_counter()
            outcomes = apply_criterion(model, task, calib, names, zeros, spec, batch, progress, keep_masks=tune)
            timing["criterion_s"] = timing.get("criterion_s", 0.0) + time.perf_counter() - t0
            masks = {n: outcomes[n]["keep"] for n in names} if tune else {}
            zeros = [outcomes[n]["zeros"] for n in names]
            for n in names:
                rd_extra.setdefault(n, {}).update(criterion=outcomes[n]["criterion"],
                                                  relative_error=outcomes[n]["relative_error"])
        if opts.finetune_epochs > 0:
            timing["finetune_s"] += finetune(model, masks, train, opts, progress)
        cur = [PrunableLayer(layer.name, layer.shape, z) for layer, z in zip(layers, zeros, strict=True)]
        progress.log(f"prune step {j}/{len(ratios)}: sparsity {sum(zeros) / sum(x.n for x in layers):.4f}")
        report["steps"].append(step)
    if test is not None:
        report["metrics"]["after"], _ = held_out_metrics(loaded, model, opts, test, y_dense_test)
    total = sum(layer.n for layer in layers)
    rows = layer_rows(layers, zeros, rd_extra)
    report["criterion"] = {"name": spec.name, "pattern": None if spec.pattern is None else str(spec.pattern),
                           "dampening": spec.dampening if spec.name == "sparsegpt" else None,
                           "block_size": spec.block_size if spec.name == "sparsegpt" else None,
                           "sequential": spec.calibrated}
    report.update({"layers": rows, "zeros": zeros, "achieved": sum(zeros) / total, "pruned": sum(zeros),
                   "kept": total - sum(zeros), "total": total, "timing": timing})
    report.setdefault("warnings", [])
    report["warnings"] += sparsity_warnings(rows)
    if opts.steps > 1 and report["steps"]:
        report["steps"] = [{k: v for k, v in s.items()} for s in report["steps"]]
    return report
