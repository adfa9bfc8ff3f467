"""Model outputs and held-out metrics shared by eval, surgeries and probes.

The per-family "output" Y (pre-softmax logits for classifiers and LMs, the mean-pooled
embedding for encoders) is defined once here, so distortion objectives and fidelity metrics
mean the same thing in every command.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dnnkit.data import ImageData, TextData, load_data, subset_indices
from dnnkit.errors import InputError
from dnnkit.models.registry import LoadedModel


@dataclass
class Inputs:
    """A batch of model inputs: images (x, labels) or token blocks (input_ids, attention_mask)."""

    kind: str  # "images" | "tokens"
    x: torch.Tensor
    y: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def slice(self, start: int, stop: int) -> Inputs:
        """Rows [start, stop)."""
        return Inputs(self.kind, self.x[start:stop], None if self.y is None else self.y[start:stop],
                      None if self.attention_mask is None else self.attention_mask[start:stop])

    def take(self, idx: list[int] | torch.Tensor) -> Inputs:
        """Rows at `idx`."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        return Inputs(self.kind, self.x[idx], None if self.y is None else self.y[idx],
                      None if self.attention_mask is None else self.attention_mask[idx])


def check_task_data(loaded: LoadedModel, data_spec: str) -> None:
    """Cheap compatibility check of model task vs dataset kind (before heavy work)."""
    from dnnkit.data.registry import check_data_spec

    kind = check_data_spec(data_spec).kind
    text_kinds = ("wiki", "text", "memory-tokens")
    if loaded.info.task == "classifier" and kind in text_kinds + ("jsonl",):
        raise InputError(f"--data {data_spec} is text, but {loaded.ref.raw} is an image classifier")
    if loaded.info.task in ("causal-lm", "encoder") and kind not in text_kinds:
        raise InputError(f"--data {data_spec} is not text, but {loaded.ref.raw} is a {loaded.info.task}",
                         hint="use --data wiki or text:PATH")


def check_image_shape(model: nn.Module | None, x: torch.Tensor, expected: tuple[int, ...] | None, where: str,
                      model_name: str = "the model") -> None:
    """The one input-shape rule: images of the model's declared shape pass; other sizes pass when the network
    takes them (one forward pass on one image: a fully convolutional net accepts any size); a channel
    mismatch, or a shape the network rejects, is an InputError naming both shapes."""
    got = tuple(int(d) for d in x.shape[1:])
    fmt = "x".join
    if expected is not None and got == tuple(expected):
        return
    if expected is not None and len(expected) == len(got) and got[0] != expected[0]:
        raise InputError(f"{where} gives {fmt(map(str, got))} images but {model_name} expects "
                         f"{expected[0]} channels ({fmt(map(str, expected))})")
    if model is None:
        if expected is not None:
            raise InputError(f"{where} gives {fmt(map(str, got))} images but {model_name} expects "
                             f"{fmt(map(str, expected))}")
        return
    param = next(iter(model.parameters()), None)
    probe = x[:1] if param is None else x[:1].to(device=param.device, dtype=param.dtype)
    try:
        with torch.no_grad():
            model(probe)
    except (RuntimeError, ValueError, IndexError, AssertionError, TypeError) as exc:
        want = f" expects {fmt(map(str, expected))}" if expected is not None else " rejects them"
        raise InputError(f"{where} gives {fmt(map(str, got))} images but {model_name}{want} "
                         f"({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})") from exc


def load_inputs(loaded: LoadedModel, data_spec: str, split: str, n: int | None = None, seed: int = 0,
                seq_len: int = 128) -> Inputs:
    """`n` samples (all when None) of a split, prepared for the model (images or token blocks)."""
    check_task_data(loaded, data_spec)
    data = load_data(data_spec, split)
    if isinstance(data, ImageData):
        check_image_shape(loaded.model, data.x, loaded.info.input_shape, f"--data {data_spec}", loaded.ref.raw)
        if n is not None:
            data = data.take(subset_indices(len(data), n, seed))
        return Inputs("images", data.x, data.y)
    from dnnkit.data.memory import TokenData

    if isinstance(data, TokenData):
        ids = data.ids if n is None else data.ids[subset_indices(len(data), min(n, len(data)), seed)]
        return Inputs("tokens", ids, None, torch.ones_like(ids))
    if isinstance(data, TextData):
        tok = loaded.tokenizer()
        if loaded.info.task == "encoder":
            texts = data.texts if n is None else [data.texts[i] for i in subset_indices(len(data), min(n, len(data)),
                                                                                         seed)]
            enc = tok(texts, padding=True, truncation=True, max_length=seq_len, return_tensors="pt")
            return Inputs("tokens", enc["input_ids"], None, enc["attention_mask"])
        blocks = _lm_blocks(tok, data.texts, seq_len, n, seed)
        return Inputs("tokens", blocks, None, torch.ones_like(blocks))
    raise InputError(f"--data {data_spec} holds question/answer records, not model inputs")


def _lm_blocks(tok: Any, texts: list[str], seq_len: int, n: int | None, seed: int) -> torch.Tensor:
    from dnnkit.data.text import token_blocks

    if n is None:
        return token_blocks(texts, tok, seq_len)
    order = subset_indices(len(texts), len(texts), seed)  # a seeded permutation of the documents
    rng = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(order), generator=rng).tolist()
    return token_blocks([texts[i] for i in perm], tok, seq_len, n_blocks=n)


def forward_output(model: nn.Module, task: str, inputs: Inputs) -> torch.Tensor:
    """The model's output Y on a batch: logits (classifier, causal LM) or pooled embedding (encoder)."""
    if inputs.kind == "images":
        out = model(inputs.x)
        return out.logits if hasattr(out, "logits") else out
    out = model(input_ids=inputs.x, attention_mask=inputs.attention_mask)
    if task == "encoder":
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        mask = inputs.attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
    return out.logits


@torch.no_grad()
def outputs(model: nn.Module, task: str, inputs: Inputs, batch_size: int = 256) -> torch.Tensor:
    """`forward_output` over all rows, in batches, in fp32."""
    model.eval()
    parts = [forward_output(model, task, inputs.slice(i, i + batch_size)).float()
             for i in range(0, len(inputs), batch_size)]
    return torch.cat(parts)


def token_nll(logits: torch.Tensor, ids: torch.Tensor) -> tuple[float, int]:
    """Summed next-token negative log-likelihood of a batch of token blocks, and the number of predictions."""
    logits = logits.float()
    loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                                       reduction="sum")
    return float(loss), ids[:, 1:].numel()


@torch.no_grad()
def perplexity(model: nn.Module, inputs: Inputs, batch_size: int = 8) -> float:
    """Token-level perplexity of a causal LM on token blocks (next-token prediction)."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(inputs), batch_size):
        ids = inputs.x[i:i + batch_size]
        nll, n = token_nll(model(input_ids=ids).logits, ids)
        total += nll
        count += n
    return math.exp(total / max(count, 1))


def evaluate(loaded: LoadedModel, data_spec: str, *, split: str = "test", limit: int | None = None,
             batch_size: int = 256, seq_len: int = 128, seed: int = 0,
             reference: torch.Tensor | None = None) -> dict[str, Any]:
    """Held-out metrics: accuracy (classifier), perplexity (causal LM), embedding stats (encoder).

    With `reference` (outputs of another model on the same inputs), adds output MSE and, for
    encoders, mean cosine similarity to it.
    """
    model = loaded.require_network("evaluation")
    inputs = load_inputs(loaded, data_spec, split, limit, seed, seq_len)
    task = loaded.info.task
    result: dict[str, Any] = {"task": task, "data": data_spec, "split": split, "samples": len(inputs)}
    if task == "causal-lm":
        result["perplexity"] = perplexity(model, inputs, batch_size=min(batch_size, 8))
        result["tokens"] = int(inputs.x.numel())
    y = outputs(model, task, inputs, batch_size if inputs.kind == "images" else min(batch_size, 8)) \
        if task != "causal-lm" or reference is not None else None
    if task == "classifier" and inputs.y is not None:
        result["accuracy"] = float((y.argmax(-1) == inputs.y).float().mean())
    if task == "encoder":
        result["embedding_norm"] = float(y.norm(dim=-1).mean())
    if reference is not None and y is not None:
        result["output_mse"] = float(((y - reference) ** 2).mean())
        if task == "encoder":
            result["cosine_to_reference"] = float(nn.functional.cosine_similarity(y, reference, dim=-1).mean())
    return result
