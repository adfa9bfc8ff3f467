"""Low-rank factorisation of Linear/Conv2d layers: SVD, ASVD, SVD-LLM whitening and Maestro.

Light at import: the heavy modules (torch) are imported by `dnnkit.surgery.lowrank.api`.
"""
