"""Keep transformers, huggingface_hub and tqdm quiet while dnnkit loads a model: dnnkit owns stderr
(its own progress bars, only on a terminal), so a pipeline's stderr never fills with their bars."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Within the block: transformers logs errors only, and no tqdm/hub progress bar is drawn.

    The previous settings are restored afterwards, so a notebook's own transformers use is unchanged.
    """
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hub_bars_off = are_progress_bars_disabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    disable_progress_bars()
    try:
        with _plain_tqdm_disabled():
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
        if not hub_bars_off:
            enable_progress_bars()


@contextlib.contextmanager
def _plain_tqdm_disabled() -> Iterator[None]:
    """Make `disable=True` the default of every tqdm bar created in the block.

    transformers' GGUF conversion ("Converting and de-quantizing GGUF tensors") uses plain `tqdm.auto`,
    which no transformers/hub switch reaches; and `TQDM_DISABLE` is read once, when tqdm is first
    imported, so setting the variable later does nothing.
    """
    from functools import partialmethod

    from tqdm import std

    original = std.tqdm.__dict__["__init__"]
    std.tqdm.__init__ = partialmethod(original, disable=True)
    try:
        yield
    finally:
        std.tqdm.__init__ = original
