"""Transformations that return a new model. Importing this package registers every surgery's
recipe replay with `dnnkit.models.recipe` (keep the imported modules light: no torch at top level
beyond what replay needs)."""

from dnnkit.surgery.prune import replay as _prune_replay  # noqa: F401
