"""Prompts, batched greedy decoding and one teacher-forced pass that reads hidden states.

Prompt = the model's chat template (default system prompt included) with the generation prompt,
then the answer stem without a trailing space; special tokens are not added a second time.
Decoding is greedy and bounded; prompts are sorted by length and left-padded into batches.
The teacher-forced pass over prompt + generated tokens returns, per item, the hidden states
(all L + 1 of them: index 0 = embeddings, index i = output of block i; transformers applies the
final norm to index L) at the single positions `tbg`, `first`, `slt`, plus token log-probs and
next-token entropies of the generated tokens. On request also `span`: every answer-clause token, as
hidden["span"] float16 [items, L + 1, T, width] (T = the longest clause in tokens, shorter ones
zero-padded) with hidden["span_len"] int32 [items]; an empty clause keeps the first generated token.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dnnkit.probes.hallucination.grade import clause_end
from dnnkit.progress import ProgressReporter, or_null

if TYPE_CHECKING:
    import numpy as np
    import torch

POSITIONS = ("first", "tbg", "slt")  # single positions, always read (and part of the cache key)
SPAN = "span"
TRAIN_POSITIONS = (*POSITIONS, SPAN)
FALLBACK_TEMPLATE = "Question: {question}\nAnswer:"


def template_sha256(tokenizer: Any) -> str:
    """sha256 of the chat template (or of the plain fallback format when the tokenizer has none)."""
    tpl = getattr(tokenizer, "chat_template", None) or FALLBACK_TEMPLATE
    return hashlib.sha256(str(tpl).encode("utf-8")).hexdigest()


def build_prompt(tokenizer: Any, question: str, stem: str | None) -> list[int]:
    """Token ids of the chat prompt for `question`, followed by the answer stem (no trailing space)."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                             tokenize=False)
    else:
        text = FALLBACK_TEMPLATE.format(question=question)
    if stem:
        text += stem.rstrip()
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _stop_ids(tokenizer: Any, model: Any) -> set[int]:
    ids: set[int] = set()
    for source in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, (list, tuple)):
            ids.update(int(i) for i in source)
    for tok in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>"):
        tid = tokenizer.convert_tokens_to_ids(tok) if tok in tokenizer.get_vocab() else None
        if isinstance(tid, int):
            ids.add(tid)
    return ids


def _cache_argument(model: Any) -> str:
    """`cache` in transformers >= 5.x (where `past_key_values` is deprecated), else `past_key_values`."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _pad_id(tokenizer: Any, stop: set[int]) -> int:
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    return min(stop) if stop else 0


def _left_pad(seqs: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
        mask[i, width - len(s):] = 1
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    return ids, mask, pos


def stack_span(per_item: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-item span states [L + 1, k_i, width] -> (float16 [items, L + 1, max k, width] zero-padded, k int32)."""
    import numpy as np

    lengths = np.array([a.shape[1] for a in per_item], dtype=np.int32)
    first = per_item[0]
    out = np.zeros((len(per_item), first.shape[0], int(lengths.max()), first.shape[2]), dtype=np.float16)
    for i, a in enumerate(per_item):
        out[i, :, :a.shape[1]] = a
    return out, lengths


def _batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def greedy_generate(model: Any, tokenizer: Any, prompts: list[list[int]], max_new_tokens: int = 8,
                    batch_size: int = 16, progress: ProgressReporter | None = None) -> list[list[int]]:
    """Greedy continuations (up to and including a stop token, at most `max_new_tokens`), batched."""
    conts, _ = greedy_decode(model, tokenizer, prompts, max_new_tokens, batch_size, None, progress)
    return conts


def _common_prefix(prompts: list[list[int]]) -> int:
    """Length of the token prefix all prompts share (the system prompt), leaving >= 1 own token each."""
    if not prompts:
        return 0
    n = min(len(p) for p in prompts) - 1
    first = prompts[0]
    for p in prompts[1:]:
        k = 0
        while k < n and p[k] == first[k]:
            k += 1
        n = k
    return max(n, 0)


def greedy_decode(model: Any, tokenizer: Any, prompts: list[list[int]], max_new_tokens: int = 8,
                  batch_size: int = 16, aliases: list[list[str]] | None = None,
                  progress: ProgressReporter | None = None, span: bool = False
                  ) -> tuple[list[list[int]], Extracted | None]:
    """Greedy decoding that also reads, in the same forwards, what the teacher-forced pass would give:
    hidden states at `tbg` / `first` / `slt` (and with `span` every answer-clause token), each token's
    log-prob and next-token entropy (a causal model sees the same prefix either way). With `aliases=None`
    only the tokens are returned.

    The KV cache of the prefix every prompt shares (the chat template's system turn) is computed once;
    a row is laid out as [shared prefix][padding][own tokens] with matching position ids.
    """
    import copy

    import numpy as np
    import torch

    progress = or_null(progress)
    stop = _stop_ids(tokenizer, model)
    pad = _pad_id(tokenizer, stop)
    cache_arg = _cache_argument(model)
    n = len(prompts)
    conts: list[list[int]] = [[] for _ in prompts]
    want = aliases is not None
    hidden: dict[str, np.ndarray] = {}
    logprobs: list[list[float]] = [[] for _ in range(n)]
    entropies: list[list[float]] = [[] for _ in range(n)]
    step_states: list[list[Any]] = [[] for _ in range(n)]
    common = _common_prefix(prompts)
    prefix_cache = None
    if common >= 2:
        with torch.inference_mode():
            res = model(input_ids=torch.tensor([prompts[0][:common]]), use_cache=True, **{cache_arg: None},
                        logits_to_keep=1)
        prefix_cache = getattr(res, cache_arg, None)
    if prefix_cache is None:
        common = 0
    task = progress.task("generate answers", n)
    for idx in _batches([len(p) for p in prompts], batch_size):
        bsz = len(idx)
        own = [prompts[i][common:] for i in idx]
        ids, mask, pos = _left_pad(own, pad)
        if common:
            past = copy.deepcopy(prefix_cache)
            past.batch_repeat_interleave(bsz)
            cur_mask = torch.cat([torch.ones((bsz, common), dtype=torch.long), mask], dim=1)
            step_pos = pos + common
        else:
            past, cur_mask, step_pos = None, mask, pos
        step_ids = ids
        done = torch.zeros(bsz, dtype=torch.bool)
        generated: list[torch.Tensor] = []
        with torch.inference_mode():
            for step in range(max_new_tokens + 1):
                res = model(input_ids=step_ids, attention_mask=cur_mask, position_ids=step_pos, use_cache=True,
                            output_hidden_states=want, logits_to_keep=1, **{cache_arg: past})
                past = getattr(res, cache_arg, None)
                if want:
                    states = torch.stack([h[:, -1, :] for h in res.hidden_states], dim=1)  # [B, L + 1, D]
                    for row, i in enumerate(idx):
                        step_states[i].append(states[row].float().numpy().astype(np.float16))
                if step == max_new_tokens:
                    break  # this extra forward only reads the states at the last generated token
                logp = torch.log_softmax(res.logits[:, -1, :].float(), dim=-1)
                nxt = logp.argmax(-1)
                if want:
                    ent = -(logp.exp() * logp).sum(-1)
                    for row, i in enumerate(idx):
                        if not bool(done[row]):
                            logprobs[i].append(float(logp[row, nxt[row]]))
                            entropies[i].append(float(ent[row]))
                nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
                generated.append(nxt)
                cur_mask = torch.cat([cur_mask, (~done).long()[:, None]], dim=1)
                step_pos = step_pos[:, -1:] + 1
                step_ids = nxt[:, None]
                done = done | torch.tensor([int(t) in stop for t in nxt.tolist()])
                if bool(done.all()) and (step >= 1 or not want):
                    break
        toks = torch.stack(generated, dim=1).tolist()
        for row, i in enumerate(idx):
            seq: list[int] = []
            for t in toks[row]:
                seq.append(int(t))
                if int(t) in stop:
                    break
            conts[i] = seq
        task.advance(bsz)
    if not want:
        return conts, None
    texts, clauses, n_clause = [], [], []
    spans: list[np.ndarray] = []
    for i, cont in enumerate(conts):
        text, clause, k = _clause_info(tokenizer, cont, aliases[i], stop)
        texts.append(text)
        clauses.append(clause)
        n_clause.append(k)
        # step 0 = last prompt token (tbg), step s = generated token s - 1
        where = {"tbg": 0, "first": min(1, len(step_states[i]) - 1), "slt": max(k - 1, 0)}
        for name in POSITIONS:
            if name not in hidden:
                hidden[name] = np.zeros((n, *step_states[i][0].shape), dtype=np.float16)
            hidden[name][i] = step_states[i][min(where[name], len(step_states[i]) - 1)]
        if span:  # generated token j is step j + 1
            steps = step_states[i][1:k + 1] or [step_states[i][min(1, len(step_states[i]) - 1)]]
            spans.append(np.stack(steps, axis=1))
    if span:
        hidden[SPAN], hidden["span_len"] = stack_span(spans)
    return conts, Extracted(hidden, texts, clauses, logprobs, n_clause, [e[0] if e else 0.0 for e in entropies],
                            [len(c) for c in conts])


def _clause_info(tokenizer: Any, cont: list[int], aliases: list[str], stop: set[int]) -> tuple[str, str, int]:
    """(answer text, answer clause, number of tokens that start inside the clause)."""
    body = [t for t in cont if t not in stop]
    lengths = _decode_lengths(tokenizer, body)
    text = tokenizer.decode(body, skip_special_tokens=True)
    end = clause_end(text, aliases)
    return text, text[:end], sum(1 for j in range(len(body)) if lengths[j] < end)


@dataclass
class Extracted:
    """Per-item outputs of the teacher-forced pass."""

    hidden: dict[str, np.ndarray]  # position -> float16 [items, L + 1, width]; span: see the module doc
    answer_text: list[str]
    clause: list[str]
    token_logprobs: list[list[float]]  # per generated token (clause tokens first, then the rest)
    clause_tokens: list[int]
    first_entropy: list[float]
    n_generated: list[int]
    extra: dict[str, Any] = field(default_factory=dict)


def _decode_lengths(tokenizer: Any, toks: list[int]) -> list[int]:
    """Character length of the decoded text after each prefix of `toks` (special tokens skipped)."""
    return [len(tokenizer.decode(toks[:j], skip_special_tokens=True)) for j in range(len(toks) + 1)]


def teacher_forced(model: Any, tokenizer: Any, prompts: list[list[int]], continuations: list[list[int]],
                   aliases: list[list[str]], batch_size: int = 16, positions: tuple[str, ...] = POSITIONS,
                   progress: ProgressReporter | None = None) -> Extracted:
    """One forward over prompt + continuation per item: hidden states at `positions` (`span` included when
    named), log-probs, entropies."""
    import numpy as np
    import torch

    progress = or_null(progress)
    stop = _stop_ids(tokenizer, model)
    pad = _pad_id(tokenizer, stop)
    n = len(prompts)
    texts, clauses, n_clause = [""] * n, [""] * n, [0] * n
    for i, cont in enumerate(continuations):
        texts[i], clauses[i], n_clause[i] = _clause_info(tokenizer, cont, aliases[i], stop)
    hidden: dict[str, np.ndarray] = {}
    logprobs: list[list[float]] = [[] for _ in range(n)]
    first_entropy = [0.0] * n
    spans: list[np.ndarray] = [np.zeros(0)] * n
    task = progress.task("read hidden states", n)
    for idx in _batches([len(p) + len(c) for p, c in zip(prompts, continuations, strict=True)], batch_size):
        seqs = [prompts[i] + continuations[i] for i in idx]
        ids, mask, pos = _left_pad(seqs, pad)
        width = ids.shape[1]
        with torch.inference_mode():
            res = model(input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=True,
                        use_cache=False)
        states = torch.stack(res.hidden_states, dim=1)  # [B, L + 1, S, D]
        logp = torch.log_softmax(res.logits.float(), dim=-1)
        for row, i in enumerate(idx):
            plen, glen = len(prompts[i]), len(continuations[i])
            start = width - plen - glen  # left padding offset
            tbg = start + plen - 1
            first = tbg + 1 if glen > 0 else tbg
            k = n_clause[i]
            slt = max(tbg + k - 1, tbg)  # second-last clause token; the last prompt token when k <= 1
            where = {"tbg": tbg, "first": first, "slt": slt}
            if SPAN in positions:  # the clause tokens; an empty clause keeps the first generated token
                spans[i] = states[row, :, first:first + max(k, 1), :].float().numpy().astype(np.float16)
            for name in positions:
                if name == SPAN:
                    continue
                if name not in hidden:
                    hidden[name] = np.zeros((n, states.shape[1], states.shape[-1]), dtype=np.float16)
                hidden[name][i] = states[row, :, where[name], :].float().numpy().astype(np.float16)
            if glen > 0:
                preds = logp[row, tbg:tbg + glen, :]
                targets = torch.tensor(continuations[i], dtype=torch.long)
                logprobs[i] = preds.gather(1, targets[:, None])[:, 0].tolist()
                p0 = preds[0].exp()
                first_entropy[i] = float(-(p0 * preds[0]).sum())
        task.advance(len(idx))
    if SPAN in positions and n:
        hidden[SPAN], hidden["span_len"] = stack_span(spans)
    return Extracted(hidden, texts, clauses, logprobs, n_clause, first_entropy,
                     [len(c) for c in continuations])
