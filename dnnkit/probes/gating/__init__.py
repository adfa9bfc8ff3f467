"""Which units are on: the shared capture behind `hash-codes` and `linear-interpret`.

`units` classifies modules (ReLU family, max-pool, smooth, normalisation, unsupported);
`capture` records the on/off pattern of chosen gates per example (hash codes);
`scope` freezes every gate at x0 so the network becomes the affine map A(x0) x + c(x0);
`inputs` loads images for a model and checks that it accepts them.
"""

from dnnkit.probes.gating.units import GateInfo, classify, find_gates

__all__ = ["GateInfo", "classify", "find_gates"]
