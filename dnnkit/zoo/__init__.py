"""Built-in reference models that work offline (`zoo:NAME`)."""

from dnnkit.zoo.catalog import ZOO, ZooEntry, dnnkit_home, zoo_entry, zoo_status

__all__ = ["ZOO", "ZooEntry", "dnnkit_home", "zoo_entry", "zoo_status"]
