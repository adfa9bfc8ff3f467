"""B-cosification: turn a trained CNN or ViT into a B-cos network (dynamic linear, explains itself).

Importing this package registers the recipe replay of op "bcosify" (light: torch is imported on use).
"""

from dnnkit.surgery.bcos import replay  # noqa: F401
