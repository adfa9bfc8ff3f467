"""Prune a Hugging Face causal LM with llm-compressor (SparseGPT or Wanda, optional OWL profile), on calibration
token blocks read from a file, and save the result as a plain HF folder any loader reads.

Runs in llm-compressor's own venv (it pins an older torch than dnnkit's); `benchmarks/prune_llm.py` calls it
with the same calibration tokens dnnkit uses, so both tools see identical data:

    LLMC/bin/python benchmarks/llmc_prune.py MODEL_DIR CALIB.safetensors OUT_DIR --modifier sparsegpt \\
        --sparsity 0.5 [--mask 2:4] [--owl] [--threads 1]

Prints one JSON object (wall seconds of the prune alone, the achieved sparsity of the pruned Linear weights).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

COPIED = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
          "special_tokens_map.json", "chat_template.jinja")


def calibration_loader(path: str) -> torch.utils.data.DataLoader:
    """One batch per calibration block: {"input_ids": [1, T], "attention_mask": [1, T]}."""
    ids = load_file(path)["input_ids"].long()
    rows = [{"input_ids": r.unsqueeze(0), "attention_mask": torch.ones(1, r.numel(), dtype=torch.long)} for r in ids]
    return torch.utils.data.DataLoader(rows, batch_size=None, shuffle=False)


def modifier(name: str, sparsity: float, mask: str, owl: bool) -> object:
    from llmcompressor.modifiers.pruning import SparseGPTModifier, WandaPruningModifier

    kw: dict[str, object] = {"sparsity": sparsity, "mask_structure": mask, "targets": ["Linear"],
                             "ignore": ["re:.*lm_head"]}
    if owl:
        kw.update(sparsity_profile="owl", owl_m=5, owl_lmbda=0.08)
    if name == "sparsegpt":
        return SparseGPTModifier(dampening_frac=0.01, block_size=128, **kw)
    return WandaPruningModifier(**kw)


def save_plain(model: torch.nn.Module, source: Path, out: Path) -> None:
    """The state dict as one model.safetensors (tied head dropped) beside the source's config and tokenizer."""
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    for name in COPIED:
        if (source / name).exists():
            shutil.copy2(source / name, out / name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("calib")
    ap.add_argument("out", type=Path)
    ap.add_argument("--modifier", choices=("sparsegpt", "wanda"), required=True)
    ap.add_argument("--sparsity", type=float, required=True)
    ap.add_argument("--mask", default="0:0", help="N:M mask structure (0:0 = unstructured)")
    ap.add_argument("--owl", action="store_true", help="OWL layer-wise sparsity profile (M=5, lambda=0.08)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(args.model)  # oneshot asks for a processor when given data
    loader = calibration_loader(args.calib)
    t0 = time.perf_counter()
    recipe = [modifier(args.modifier, args.sparsity, args.mask, args.owl)]
    oneshot(model=model, processor=tokenizer, dataset=loader, recipe=recipe,
            num_calibration_samples=len(loader.dataset))
    wall = time.perf_counter() - t0
    zeros = total = 0
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and "lm_head" not in name:
            zeros += int((mod.weight == 0).sum())
            total += mod.weight.numel()
    save_plain(model, args.model, args.out)
    print(json.dumps({"prune_s": round(wall, 2), "achieved": zeros / max(total, 1)}))


if __name__ == "__main__":
    main()
