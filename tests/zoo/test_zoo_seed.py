"""The zoo training seed as a parameter: `train_zoo_network(name, seed)` and the cached default build."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dnnkit.zoo import build, catalog


@pytest.fixture()
def quick_recipe(monkeypatch: pytest.MonkeyPatch) -> catalog.ZooEntry:
    """digits-cnn with a one-epoch recipe, so each training takes about a second."""
    entry = dataclasses.replace(catalog.ZOO["digits-cnn"], train={**catalog.ZOO["digits-cnn"].train, "epochs": 1})
    monkeypatch.setitem(catalog.ZOO, "digits-cnn", entry)
    return entry


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_seeds_give_different_networks_and_seed_0_is_the_default_build(quick_recipe, tmp_path):
    from safetensors.torch import load_file

    net0, metrics0 = build.train_zoo_network("digits-cnn", seed=0)
    net0_again, _ = build.train_zoo_network("digits-cnn", seed=0)
    net1, metrics1 = build.train_zoo_network("digits-cnn", seed=1)
    assert metrics0["seed"] == 0 and metrics1["seed"] == 1
    assert 0.0 <= metrics1["test_accuracy"] <= 1.0
    assert not net0.training
    assert _same(net0.state_dict(), net0_again.state_dict())
    assert not _same(net0.state_dict(), net1.state_dict())

    path = tmp_path / "digits-cnn.safetensors"
    metrics = build.train_zoo_model(quick_recipe, path)
    assert "seed" not in metrics and metrics["test_accuracy"] == metrics0["test_accuracy"]
    assert _same(load_file(str(path)), net0.state_dict())
