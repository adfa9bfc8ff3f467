"""Datasets and calibration batches: `load_data(spec, split, seed)` for every `--data` form.

Forms: `digits`, `fashion-mnist`, `imagefolder:PATH`, `npz:PATH`, `text:PATH`, `wiki` (the
built-in English corpus), `jsonl:PATH`. Train/test partitions are fixed (so zoo accuracies stay
meaningful); `--seed` chooses calibration subsets within a split, deterministically.
"""

from dnnkit.data.registry import (
    DATA_FORMS,
    ImageData,
    QAData,
    TextData,
    check_data_spec,
    load_data,
    subset_indices,
)

__all__ = ["DATA_FORMS", "ImageData", "QAData", "TextData", "check_data_spec", "load_data", "subset_indices"]
