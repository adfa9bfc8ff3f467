"""Hash-code metrics on hand-made codes and a tiny trained MLP: RR, constant columns, k-NN, K-Means mapping."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dnnkit.probes.gating.units import find_gates
from dnnkit.probes.hashcodes import metrics
from dnnkit.probes.hashcodes.codes import compute_codes, constant_columns, keep_columns
from dnnkit.probes.hashcodes.report import HashOptions, analyse


def test_redundancy_and_seen() -> None:
    codes = np.packbits(np.array([[1, 0, 1], [1, 0, 1], [0, 0, 1], [1, 1, 1]], dtype=bool), axis=1)
    r = metrics.redundancy(codes)
    assert r == {"n": 4, "unique": 3, "rr": 0.25, "max_collision": 2}
    assert metrics.seen_in_train(codes[:2], codes[2:]) == 0.0
    assert metrics.seen_in_train(codes, codes[:1]) == 1.0


def test_constant_columns_dropped_over_both_splits() -> None:
    bits = np.array([[1, 0, 1, 0], [1, 1, 1, 0], [1, 0, 0, 0]], dtype=bool)
    tr, te = np.packbits(bits[:2], axis=1), np.packbits(bits[2:], axis=1)
    keep, off, on = constant_columns([tr, te], 4)
    assert keep.tolist() == [False, True, True, False] and (off, on) == (1, 1)
    kept = keep_columns(np.packbits(bits, axis=1), 4, keep)
    assert np.array_equal(np.unpackbits(kept, axis=1, count=2), bits[:, 1:3].astype(np.uint8))


def test_kmeans_hungarian_is_one_to_one() -> None:
    # two well separated groups but three labels: greedy maps both clusters' majority, Hungarian cannot reuse one
    x = np.array([[0.0], [0.1], [0.05], [10.0], [10.1], [10.2]])
    y = np.array([0, 0, 1, 0, 0, 2])
    greedy = metrics.kmeans_accuracy(x, y, 3, 4, 9, "greedy")
    hung = metrics.kmeans_accuracy(x, y, 3, 4, 9, "hungarian")
    assert hung <= greedy
    assert 0 < hung <= 1


def test_knn_hamming_matches_sklearn_on_untied_codes() -> None:
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    tr_bits = rng.random((60, 97)) < 0.5
    te_bits = rng.random((20, 97)) < 0.5
    ytr = rng.integers(0, 3, 60)
    ours = metrics.knn_hamming(np.packbits(tr_bits, axis=1), ytr, np.packbits(te_bits, axis=1), 1, 3)
    ref = KNeighborsClassifier(1, metric="hamming", algorithm="brute").fit(tr_bits, ytr).predict(te_bits)
    d = (te_bits[:, None] != tr_bits[None]).sum(-1)
    untied = np.sort(d, 1)[:, 0] < np.sort(d, 1)[:, 1]
    assert untied.any()
    assert np.array_equal(ours[untied], ref[untied])


def test_analyse_on_tiny_mlp() -> None:
    from sklearn.datasets import make_blobs

    x, y = make_blobs(300, n_features=6, centers=3, random_state=0)
    x = torch.tensor(x, dtype=torch.float32)
    y = torch.tensor(y)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3)).eval()
    res = analyse(net, x[:200], y[:200], x[200:], y[200:], find_gates(net), HashOptions(max_train=150))
    r = res.report
    assert r["bits_total"] == 32 and 0 < r["bits_kept"] <= 32
    assert r["dead_units"] + r["always_on_units"] + r["bits_kept"] == 32
    codes, _ = compute_codes(net, x[200:], find_gates(net))
    with torch.no_grad():
        expect = np.packbits((net[0](x[200:]) > 0).numpy(), axis=1)
    assert np.array_equal(codes.codes, expect)
    n_unique = len({row.tobytes() for row in res.test_codes})
    assert r["unique_test"] == n_unique and abs(r["rr_test"] - (100 - n_unique) / 100) < 1e-12
    for key in ("knn_test", "lr_test", "kmeans_test"):
        assert 0.0 <= r[key] <= 1.0
    assert r["raw"]["knn"] > 0.9  # blobs are separable in the raw space
    assert r["n_train_used"] == 150
