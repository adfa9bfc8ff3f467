"""dnnkit: analysis and surgery of trained neural networks.

The package root stays light (no torch at import time) so that `dnnkit --help` is fast;
library entry points live in the sub-packages (`dnnkit.models`, `dnnkit.data`, ...).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
