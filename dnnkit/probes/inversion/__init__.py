"""Generative model inversion (GMI) audit of an image classifier, with a direct pixel-inversion baseline.

Modules: `splits` (public/private protocols), `nets` (prior, evaluator and demo target networks),
`prior` (WGAN-GP stage 1, save/load), `attack` (stage 2 latent search and the pixel baseline),
`metrics` (evaluation), `grids` (PNG image grids), `run` (the whole audit as one call).
Torch is imported by the sub-modules only.
"""
