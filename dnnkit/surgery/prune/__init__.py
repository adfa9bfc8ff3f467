"""`dnnkit prune`: unstructured magnitude pruning with per-layer allocations.

Data-free allocations (uniform, uniform-plus, global, ERK, LAMP) and the layer-adaptive
rate-distortion DP of Xu et al. (ICCV 2023) with dnnkit's additivity check and `--refine`
correction. Import the pieces from their modules (`allocate`, `curves`, `dp`, `run`); this
package keeps its import light because `dnnkit.surgery` imports `replay` on every checkpoint load.
"""
