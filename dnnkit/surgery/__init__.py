"""Transformations that return a new model. Importing this package registers every surgery's
recipe replay with `dnnkit.models.recipe` (keep the imported modules light: no torch at top level
beyond what replay needs)."""

from dnnkit.surgery.bcos import replay as _bcos_replay  # noqa: F401
from dnnkit.surgery.lowrank import replay as _lowrank_replay  # noqa: F401
from dnnkit.surgery.prune import replay as _prune_replay  # noqa: F401
from dnnkit.surgery.tversky import replay as _tversky_replay  # noqa: F401
