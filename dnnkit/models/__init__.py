"""The model registry: references, loading, saving, provenance and recipe replay."""

from dnnkit.models.reference import ModelRef, parse_reference

__all__ = ["ModelRef", "parse_reference"]
