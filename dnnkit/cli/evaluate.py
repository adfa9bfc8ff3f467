"""`dnnkit eval MODEL --data D`: accuracy of a classifier, perplexity of a causal LM."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dnnkit.cli.options import BatchSizeOpt, ModelArg, SeedOpt, SeqLenOpt
from dnnkit.cli.shared import DTYPE, GATE, LOAD, Shared, shared_options


@shared_options(LOAD, DTYPE, GATE)
def eval_command(
    model: ModelArg,
    data: Annotated[str | None, typer.Option("--data", help="Dataset (default: the model's own, e.g. digits "
                                                              "for zoo:digits-cnn, wiki for LMs).")] = None,
    split: Annotated[str, typer.Option("--split", help="train or test.")] = "test",
    limit: Annotated[int | None, typer.Option("--limit", help="Evaluate on this many samples / token blocks.",
                                                 min=1)] = None,
    seq_len: SeqLenOpt = 128,
    batch_size: BatchSizeOpt = 256,
    seed: SeedOpt = 0,
    *,
    shared: Shared,
) -> None:
    """Evaluate a model on held-out data."""
    from dnnkit.data.registry import check_data_spec
    from dnnkit.errors import InputError

    out = shared.out
    if split not in ("train", "test"):
        raise InputError(f"--split must be train or test, got {split!r}")
    if data is not None:
        check_data_spec(data)
    from dnnkit.metrics import check_task_data, evaluate
    loaded = shared.load(model)
    loaded.require_network("eval")
    data = data or loaded.info.default_data
    if data is None:
        raise InputError(f"{model}: no default dataset", hint="pass --data")
    if loaded.info.task not in ("classifier", "causal-lm", "encoder"):
        raise InputError(f"{model}: eval needs a classifier, a causal LM or an encoder")
    check_task_data(loaded, data)
    result = evaluate(loaded, data, split=split, limit=limit, batch_size=batch_size, seq_len=seq_len, seed=seed)
    result["model"] = model
    out.result(result, lambda console: _render(console, result))
    shared.gate({}, result, "eval")  # after the report: eval writes nothing, a failed gate is exit 1


def _render(console: Any, r: dict[str, Any]) -> None:
    line = f"{r['model']} on {r['data']} ({r['split']}, {r['samples']} samples):"
    if "accuracy" in r:
        line += f" accuracy {r['accuracy']:.4f}"
    if "perplexity" in r:
        line += f" perplexity {r['perplexity']:.3f} over {r['tokens']} tokens"
    if "embedding_norm" in r:
        line += f" mean embedding norm {r['embedding_norm']:.4f}"
    console.print(line)
