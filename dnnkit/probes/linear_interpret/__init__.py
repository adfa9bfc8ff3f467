"""`linear-interpret`: the network at x0 as the affine map A(x0) x + c(x0) (LinearScope)."""

from dnnkit.probes.linear_interpret.replay import Interpreter

__all__ = ["Interpreter"]
