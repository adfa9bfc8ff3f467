"""Layers that surgeries write and probes read: B-cos (`bcos`), Tversky projections (`tversky`) and
factored low-rank layers (`lowrank`). Below both `surgery` and `probes`, so neither imports the other
for a layer."""
