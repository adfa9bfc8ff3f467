"""The data-free path over a bare weights file: allocate and write tensor by tensor.

Only a few tensors are in memory at once: allocation streams them (global and LAMP select by
radix histograms), and the output is written through the foundation's `StreamingWriter`, whose
header is declared up front (the exact zero counts are known, so sparse sizes are too).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dnnkit.models.atomic import atomic_file
from dnnkit.models.save import complete_record
from dnnkit.models.sparse_format import FORMAT, SPARSE_KEY, encode_sparse, sparse_pays
from dnnkit.models.weights import WeightSource
from dnnkit.surgery.prune.masks import keep_mask

DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def write_pruned_file(source: WeightSource, out: Path, zeros: dict[str, int], record: dict[str, Any],
                      sparse: bool, keep: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
                      ) -> dict[str, Any]:
    """Write every tensor of `source` to `out`, the prunable ones masked (and bitmask-encoded when
    `sparse` and it pays). `keep(tensor, zeros)` makes a keep-mask (default: magnitude order; it must
    remove exactly `zeros`). Atomic; returns the completed record."""
    from dnnkit.models.safetensors_io import StreamingWriter

    record = complete_record(record)
    specs: dict[str, tuple[str, tuple[int, ...]]] = {}
    encoded: dict[str, dict[str, Any]] = {}
    for name in source.names():
        dtype, shape = source.dtype(name), tuple(source.shape(name))
        n = math.prod(shape)
        if sparse and name in zeros and sparse_pays(n, n - zeros[name], DTYPE_BYTES.get(dtype, 4)):
            specs[f"{name}.__bitmask"] = ("U8", (math.ceil(n / 8),))
            specs[f"{name}.__values"] = (dtype, (n - zeros[name],))
            encoded[name] = {"shape": list(shape), "dtype": dtype}
        else:
            specs[name] = (dtype, shape)
    metadata = {"format": "pt", "dnnkit": json.dumps(record, default=str)}
    if encoded:
        metadata[SPARSE_KEY] = json.dumps({"format": FORMAT, "tensors": encoded})
    with atomic_file(out) as tmp, StreamingWriter(tmp, specs, metadata) as writer:
        for name in source.names():
            tensor = source.get(name)
            if name in zeros:
                mask = keep_mask(tensor, zeros[name]) if keep is None else keep(tensor, zeros[name])
                tensor = tensor * mask.to(tensor.dtype)
            if name in encoded:
                for key, part in encode_sparse(name, tensor).items():
                    writer.write(key, part)
            else:
                writer.write(name, tensor.contiguous())
    return record
