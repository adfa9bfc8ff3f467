"""What codes say: redundancy ratio, collisions, and k-NN / logistic regression / K-Means accuracy."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np


def redundancy(codes: np.ndarray) -> dict[str, Any]:
    """RR = (N - #unique) / N, #unique and the largest group sharing one code."""
    n = len(codes)
    if n == 0:
        return {"n": 0, "unique": 0, "rr": None, "max_collision": 0}
    _, counts = np.unique(codes, axis=0, return_counts=True)
    return {"n": n, "unique": int(len(counts)), "rr": (n - len(counts)) / n, "max_collision": int(counts.max())}


def seen_in_train(train: np.ndarray, test: np.ndarray) -> float | None:
    """Share of test codes that also occur among the training codes."""
    if len(test) == 0:
        return None
    seen = {r.tobytes() for r in train}
    return float(np.mean([r.tobytes() in seen for r in test]))


def stratified_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """At most n indices, stratified by label (all when n >= len(y)); sorted."""
    if n >= len(y):
        return np.arange(len(y))
    from sklearn.model_selection import train_test_split

    try:
        idx, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=seed)
    except ValueError:  # a class too small to stratify
        idx = np.random.default_rng(seed).choice(len(y), size=n, replace=False)
    return np.sort(idx)


def _vote(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Majority label per row (ties to the smaller label, as sklearn's uniform-weight k-NN)."""
    counts = np.zeros((labels.shape[0], n_classes), dtype=np.int64)
    for j in range(labels.shape[1]):
        np.add.at(counts, (np.arange(labels.shape[0]), labels[:, j]), 1)
    return counts.argmax(1)


def knn_hamming(train: np.ndarray, ytr: np.ndarray, test: np.ndarray, k: int, n_classes: int) -> np.ndarray:
    """k-NN predictions with Hamming distance on packed codes (kernel op `hamming_distance`)."""
    import torch

    from dnnkit.kernels.hamming_distance import knn_indices

    idx = knn_indices(torch.from_numpy(np.ascontiguousarray(test)), torch.from_numpy(np.ascontiguousarray(train)),
                      k).numpy()
    return _vote(ytr[idx], n_classes)


def knn_euclid(train: np.ndarray, ytr: np.ndarray, test: np.ndarray, k: int) -> np.ndarray:
    """k-NN predictions with Euclidean distance (raw inputs, pooled codes)."""
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(n_neighbors=min(k, len(train)), algorithm="brute").fit(train, ytr).predict(test)


def logistic(train: np.ndarray, ytr: np.ndarray, test: np.ndarray) -> np.ndarray:
    """One-vs-one logistic regression (authors' protocol)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsOneClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return OneVsOneClassifier(LogisticRegression(max_iter=2000)).fit(train, ytr).predict(test)


def kmeans_accuracy(features: np.ndarray, y: np.ndarray, n_classes: int, n_init: int, seed: int,
                    mapping: str = "hungarian") -> float:
    """K-Means with K = #classes; accuracy after a one-to-one Hungarian (or greedy majority) cluster -> label map."""
    from scipy.optimize import linear_sum_assignment
    from sklearn.cluster import KMeans

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer distinct points than clusters
        clusters = KMeans(n_clusters=n_classes, n_init=n_init, random_state=seed).fit_predict(features)
    table = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(table, (clusters, y), 1)
    if mapping == "greedy":
        return float(table.max(1).sum() / len(y))
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / len(y))


def categorise(train: np.ndarray, ytr: np.ndarray, test: np.ndarray, yte: np.ndarray, *, hamming: bool,
               bits: int | None, n_classes: int, k: int, kmeans_init: int, kmeans_seed: int, kmeans_map: str,
               notes: list[str], what: str) -> dict[str, float | None]:
    """k-NN, LR and K-Means accuracies for one representation (train is already the --max-train subset)."""
    from dnnkit.probes.hashcodes.codes import unpack_float

    out: dict[str, float | None] = {"knn": None, "lr": None, "kmeans": None}
    if len(train) == 0 or len(test) == 0:
        return out
    k = min(k, len(train))
    pred = knn_hamming(train, ytr, test, k, n_classes) if hamming else knn_euclid(train, ytr, test, k)
    out["knn"] = float((pred == yte).mean())
    ftr = unpack_float(train, bits) if hamming else train
    fte = unpack_float(test, bits) if hamming else test
    if set(np.unique(ytr)) >= set(np.unique(yte)) and len(np.unique(ytr)) > 1:
        out["lr"] = float((logistic(ftr, ytr, fte) == yte).mean())
    else:
        notes.append(f"{what}: a class is missing from the training subset; logistic regression skipped")
    distinct = len(np.unique(fte, axis=0))
    if distinct < n_classes:
        notes.append(f"{what}: {distinct} distinct test codes for {n_classes} clusters")
    out["kmeans"] = kmeans_accuracy(fte, yte, n_classes, kmeans_init, kmeans_seed, kmeans_map)
    return out
