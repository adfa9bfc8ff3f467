"""The Python API: one function per command, on any `nn.Module` or model reference.

    import dnnkit
    result = dnnkit.prune(model, ratio=0.7, method="rd", data=(x, y))
    result.model      # a new module (the input module is never modified)
    result.report     # the same dict as `dnnkit prune --json`
    result.save("pruned.safetensors")

`model` is an `nn.Module` (copied first), or any reference the CLI takes (`zoo:digits-cnn`, a
safetensors file, a Hugging Face or timm folder, a GGUF file, `timm:NAME` with `weights=`). `data` is
a `--data` spec, an `(x, y)` pair, `{"train": (x, y), "test": (x, y)}`, a tensor of token ids, or a
DataLoader. Keyword options are the command's options (`--max-layer-sparsity` -> `cap`, see each
Config); an unknown one is a TypeError naming the valid ones. Progress goes to `progress=` (a
`dnnkit.progress.ProgressReporter`, e.g. `CallbackProgress(print)`); the library never prints.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from dnnkit.probes.contract import ProbeResult
    from dnnkit.surgery.contract import Result


def _config(cls: type, given: dict[str, Any], command: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(given) - names)
    if unknown:
        raise TypeError(f"dnnkit.{command}() got unknown option(s) {', '.join(unknown)}; "
                        f"valid: {', '.join(sorted(names))}")
    return cls(**given)


def _load_options(arch: Any, weights: str | None, device: str, dtype: str | None) -> Any:
    from dnnkit.runner import LoadOptions

    return LoadOptions(arch=arch, weights=weights, device=device, dtype=dtype)


def _surgery(name: str, cls: type, model: Any, data: Any, options: dict[str, Any], *, output: str | None,
             force: bool, require: list[str] | None, arch: Any, weights: str | None, device: str,
             dtype: str | None, progress: Any, max_shard_size: int | str | None = None) -> Result:
    from dnnkit.data.memory import as_data_spec
    from dnnkit.runner import run_surgery

    cfg = _config(cls, options, name.replace("-", "_"))
    return run_surgery(name, model, cfg, data=as_data_spec(data), load=_load_options(arch, weights, device, dtype),
                       output=output, force=force, require=require, progress=progress, stream=output is not None,
                       max_shard_size=max_shard_size)


def load(model: str, *, arch: Any = None, weights: str | None = None, device: str = "cpu",
         dtype: str | None = None) -> nn.Module:
    """The network behind a reference (eval mode), rebuilt by recipe replay for dnnkit checkpoints."""
    from dnnkit.models.registry import load_model

    return load_model(model, arch=arch, weights=weights, device=device, dtype=dtype).require_network("dnnkit.load")


def evaluate(model: Any, data: Any = None, *, split: str = "test", limit: int | None = None, seq_len: int = 128,
             batch_size: int = 256, seed: int = 0, arch: Any = None, weights: str | None = None,
             device: str = "cpu", dtype: str | None = None) -> dict[str, Any]:
    """Held-out accuracy (classifiers), perplexity (causal LMs) or embedding norm: `dnnkit eval --json`."""
    from dnnkit.data.memory import as_data_spec
    from dnnkit.errors import InputError
    from dnnkit.metrics import evaluate as run_eval
    from dnnkit.progress import NullProgress
    from dnnkit.runner import load_for

    loaded = load_for(model, _load_options(arch, weights, device, dtype), NullProgress())
    spec = as_data_spec(data) or loaded.info.default_data
    if spec is None:
        raise InputError(f"{loaded.ref.raw}: no default dataset", hint="pass data=")
    return run_eval(loaded, spec, split=split, limit=limit, batch_size=batch_size, seq_len=seq_len, seed=seed)


def prune(model: Any, *, ratio: float, method: str = "lamp", data: Any = None, output: str | None = None,
          force: bool = False, require: list[str] | None = None, arch: Any = None, weights: str | None = None,
          device: str = "cpu", dtype: str | None = None, progress: Any = None,
          max_shard_size: int | str | None = None, **options: Any) -> Result:
    """`dnnkit prune`: zero a fraction `ratio` of the Linear/Conv weights with a per-layer allocation
    (`method`: uniform, uniform-plus, global, erk, lamp, rd). Options: see `PruneConfig`. A Hugging Face
    folder `output` keeps a sharded input's shard size unless `max_shard_size` ("2GB", or bytes) is given."""
    from dnnkit.surgery.prune.run import PruneConfig

    return _surgery("prune", PruneConfig, model, data, {"ratio": ratio, "method": method, **options}, output=output,
                    force=force, require=require, arch=arch, weights=weights, device=device, dtype=dtype,
                    progress=progress, max_shard_size=max_shard_size)


def lowrank(model: Any, *, method: str = "svd", rank_ratio: float | None = None, energy: float | None = None,
            params: float | None = None, data: Any = None, output: str | None = None, force: bool = False,
            require: list[str] | None = None, arch: Any = None, weights: str | None = None, device: str = "cpu",
            dtype: str | None = None, progress: Any = None, **options: Any) -> Result:
    """`dnnkit lowrank`: factor layers (`method`: svd, asvd, whiten, maestro, truncate) by one rank rule
    (`rank_ratio`, `energy` or `params`). Options: see `LowRankConfig`."""
    from dnnkit.errors import InputError
    from dnnkit.surgery.lowrank.api import LowRankConfig

    rules = [(r, v) for r, v in (("ratio", rank_ratio), ("energy", energy), ("params", params)) if v is not None]
    if len(rules) > 1:
        raise InputError("pass one rank rule: rank_ratio, energy or params")
    rule, value = rules[0] if rules else (None, None)
    return _surgery("lowrank", LowRankConfig, model, data, {"method": method, "rule": rule, "value": value,
                                                            **options},
                    output=output, force=force, require=require, arch=arch, weights=weights, device=device,
                    dtype=dtype, progress=progress)


def bcosify(model: Any, *, data: Any = None, output: str | None = None, force: bool = False,
            require: list[str] | None = None, arch: Any = None, weights: str | None = None, device: str = "cpu",
            dtype: str | None = None, progress: Any = None, **options: Any) -> Result:
    """`dnnkit bcosify`: a B-cos network that explains itself, fine-tuned. Options: see `BcosifyConfig`."""
    from dnnkit.surgery.bcos.pipeline import BcosifyConfig

    return _surgery("bcosify", BcosifyConfig, model, data, options, output=output, force=force, require=require,
                    arch=arch, weights=weights, device=device, dtype=dtype, progress=progress)


def swap_projection(model: Any, *, layers: str, kind: str = "tversky", data: Any = None, output: str | None = None,
                    force: bool = False, require: list[str] | None = None, arch: Any = None,
                    weights: str | None = None, device: str = "cpu", dtype: str | None = None, progress: Any = None,
                    **options: Any) -> Result:
    """`dnnkit swap-projection`: Tversky projections (`kind="tversky"`, needs `features=K`) or the
    fresh-Linear control (`kind="linear"`) in place of the `layers` glob. Options: see `SwapConfig`."""
    from dnnkit.surgery.tversky.swap import SwapConfig

    return _surgery("swap-projection", SwapConfig, model, data, {"kind": kind, "layers": layers, **options},
                    output=output, force=force, require=require, arch=arch, weights=weights, device=device,
                    dtype=dtype, progress=progress)


def _probe(probe: Any, cls: type, model: Any, data: Any, options: dict[str, Any], *, output: str | None,
           force: bool, arch: Any, weights: str | None, device: str, dtype: str | None, progress: Any,
           command: str) -> ProbeResult:
    from dnnkit.data.memory import as_data_spec
    from dnnkit.runner import run_probe

    fields = {f.name for f in dataclasses.fields(cls)}
    given = dict(options)
    if "data" in fields:
        given["data"] = as_data_spec(data)
    if "device" in fields:
        given.setdefault("device", device)
    cfg = _config(cls, given, command)
    return run_probe(probe, model, cfg, load=_load_options(arch, weights, device, dtype), output=output,
                     force=force, progress=progress)


def hash_codes(model: Any = None, *, data: Any = None, output: str | None = None, force: bool = False,
               arch: Any = None, weights: str | None = None, device: str = "cpu", progress: Any = None,
               **options: Any) -> ProbeResult:
    """`dnnkit hash-codes`: ReLU activation patterns as hash codes (redundancy, code-based accuracy);
    `model=None` with `sweep="width"|"epochs"|"samples"` trains the MLP family. Options: `HashCodesConfig`."""
    from dnnkit.probes.hashcodes.probe import HASH_CODES, HashCodesConfig

    return _probe(HASH_CODES, HashCodesConfig, model, data, options, output=output, force=force, arch=arch,
                  weights=weights, device=device, dtype=None, progress=progress, command="hash_codes")


def linear_interpret(model: Any, *, index: int | None = 0, data: Any = None, output: str | None = None,
                     force: bool = False, arch: Any = None, weights: str | None = None, device: str = "cpu",
                     progress: Any = None, **options: Any) -> ProbeResult:
    """`dnnkit linear-interpret`: the ReLU network at x0 as y = A(x0) x + c(x0) (rows, columns, bias path,
    checks); `.extra` holds the arrays. Options: see `LinearInterpretConfig`."""
    from dnnkit.probes.linear_interpret.probe import LINEAR_INTERPRET, LinearInterpretConfig

    return _probe(LINEAR_INTERPRET, LinearInterpretConfig, model, data, {"index": index, **options}, output=output,
                  force=force, arch=arch, weights=weights, device=device, dtype=None, progress=progress,
                  command="linear_interpret")


def explain(model: Any, *, indices: list[int] | None = None, data: Any = None, output: str | None = None,
            force: bool = False, arch: Any = None, weights: str | None = None, device: str = "cpu",
            progress: Any = None, **options: Any) -> ProbeResult:
    """`dnnkit explain`: B-cos contributions W(x)·x (input×gradient for other models) for the test
    samples `indices` (or `input_files=[...]`); `.extra["explanation"]` holds the maps; `output=` a PNG."""
    from dnnkit.probes.explain.probe import EXPLAIN, ExplainConfig

    return _probe(EXPLAIN, ExplainConfig, model, data, {"indices": indices, **options}, output=output, force=force,
                  arch=arch, weights=weights, device=device, dtype=None, progress=progress, command="explain")


def train_prior(*, data: str = "digits", output: str | None = None, force: bool = False, progress: Any = None,
                **options: Any) -> ProbeResult:
    """`dnnkit invert train-prior`: the GMI prior (WGAN-GP) on the public images of a split; `.save(path)`
    writes PRIOR.safetensors and its PNGs. Options: see `TrainPriorConfig`."""
    from dnnkit.probes.inversion.config import TrainPriorConfig
    from dnnkit.probes.inversion.probe import TRAIN_PRIOR
    from dnnkit.runner import run_probe

    cfg = _config(TrainPriorConfig, {"data": data, **options}, "train_prior")
    return run_probe(TRAIN_PRIOR, None, cfg, output=output, force=force, progress=progress)


def invert(model: Any, *, prior: str, data: Any = None, output: str | None = None, force: bool = False,
           arch: Any = None, weights: str | None = None, device: str = "cpu", progress: Any = None,
           **options: Any) -> ProbeResult:
    """`dnnkit invert attack`: GMI latent search under `prior` and the pixel baseline, scored by an
    independent evaluator; `output=` a report folder. Options: see `InvertConfig`."""
    from dnnkit.probes.inversion.config import InvertConfig
    from dnnkit.probes.inversion.probe import INVERT

    return _probe(INVERT, InvertConfig, model, data, {"prior": prior, **options}, output=output, force=force,
                  arch=arch, weights=weights, device=device, dtype=None, progress=progress, command="invert")


def probe_hallucination(model: Any, *, qa: str = "builtin-qa", output: str | None = None, force: bool = False,
                        progress: Any = None, **options: Any) -> ProbeResult:
    """`dnnkit probe-hallucination train`: answer QA items with a causal LM, label them, and train the
    probe that flags wrong answers (with baselines); `qa` is builtin-qa or jsonl:PATH. Options: `TrainConfig`."""
    from dnnkit.probes.hallucination.config import TrainConfig
    from dnnkit.probes.hallucination.probe import TRAIN
    from dnnkit.runner import run_probe

    cfg = _config(TrainConfig, {"qa": qa, **options}, "probe_hallucination")
    return run_probe(TRAIN, model, cfg, output=output, force=force, progress=progress)
