"""Tversky projection layers (`dnnkit swap-projection tversky|linear`): layer, swap, replay, plots."""
