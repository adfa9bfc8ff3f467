"""Grader, decoding, probes, layer search and metrics on small inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dnnkit.probes.hallucination.grade import CORRECT, NO_ANSWER, WRONG, answer_clause, first_integer, grade
from dnnkit.probes.hallucination.layersearch import search_layers, start_layers
from dnnkit.probes.hallucination.metrics import (
    grouped_folds,
    paired_diff,
    recall_at_fpr,
    scorer_summary,
    threshold_at_fpr,
    within_strata,
)
from dnnkit.probes.hallucination.probes import Probe, auroc_or_nan, fit_probe


@pytest.mark.parametrize(("text", "gold", "kind", "entity", "want"), [
    (" known as Tehran.", ["Tehran"], "name", [], CORRECT),
    (" the city of Paris.", ["Paris"], "name", [], CORRECT),
    (" Kiev, the capital", ["Kiev", "Kyiv"], "name", [], CORRECT),
    (" Kyiv.", ["Kiev", "Kyiv"], "name", [], CORRECT),
    (" Sucre.", ["La Paz", "Sucre"], "name", [], CORRECT),
    (" La Paz.", ["La Paz", "Sucre"], "name", [], CORRECT),
    (" Bras\u00edlia.", ["Brasilia"], "name", [], CORRECT),
    (" Parisian food", ["Paris"], "name", [], WRONG),
    (" Lyon.\nParis", ["Paris"], "name", [], WRONG),
    (" St. John's. It is", ["St. John's"], "name", [], CORRECT),
    (" Algeria, a country", ["Algiers"], "name", ["Algeria"], NO_ANSWER),
    (" Djibouti.", ["Djibouti"], "name", ["Djibouti"], CORRECT),
    (" I don't know.", ["Paris"], "name", [], NO_ANSWER),
    ("", ["Paris"], "name", [], NO_ANSWER),
    (" MoS2.", ["Mo"], "symbol", [], WRONG),
    (" Al-Berylium.", ["Be"], "symbol", [], WRONG),
    (" Al-Berylium.", ["Al"], "symbol", [], WRONG),
    (" Fe.", ["Fe"], "symbol", [], CORRECT),
    (" fe.", ["Fe"], "symbol", [], WRONG),
    (" Carbon.", ["C"], "symbol", ["Carbon"], NO_ANSWER),
    (" 1,234.", ["1234"], "number", [], CORRECT),
    (" 29. This is a unique", ["101"], "number", [], WRONG),
    (" 12", ["123"], "number", [], WRONG),
])
def test_grader_cases(text: str, gold: list[str], kind: str, entity: list[str], want: str) -> None:
    assert grade(answer_clause(text, gold), gold, kind, entity) == want


def test_clause_and_integers() -> None:
    assert answer_clause(" 3.5 is it. Then") == " 3.5 is it"
    assert first_integer("about 1,250,000 people") == 1250000
    assert first_integer("none") is None


def test_layer_search_finds_the_maximum_of_a_known_curve() -> None:
    for peak in (4, 11, 23):
        res = search_layers(lambda layer, p=peak: 0.6 + 0.3 * math.exp(-((layer - p) / 4) ** 2), 30)
        assert res.chosen == peak, res.as_dict()
        assert len(res.evaluated) <= 3 + 6
    assert start_layers(30) == [7, 15, 28]


def _synthetic(n: int = 240, d: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.int64)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[:, 0] += 1.5 * y
    return x, y


@pytest.mark.parametrize("kind", ["linear", "mlp", "saplma"])
def test_probes_learn_and_round_trip(kind: str) -> None:
    x, y = _synthetic()
    probe = fit_probe(kind, x[:160], y[:160], np.arange(160), seed=0)
    p = probe.predict(x[160:])
    assert auroc_or_nan(y[160:], p) > 0.75
    again = Probe.from_tensors(kind, probe.tensors())
    np.testing.assert_allclose(again.predict(x[160:]), p, rtol=1e-5, atol=1e-6)


def test_metrics() -> None:
    rng = np.random.default_rng(0)
    y = np.array([0] * 100 + [1] * 50)
    s = np.concatenate([rng.normal(0, 1, 100), rng.normal(1.5, 1, 50)])
    t = threshold_at_fpr(y, s, 0.1)
    assert np.mean(s[y == 0] >= t) <= 0.1
    assert 0 < recall_at_fpr(y, s) <= 1
    summ = scorer_summary(y, s, n_boot=200)
    assert summ["ci95"][0] < summ["auroc"] < summ["ci95"][1]
    small = scorer_summary(np.array([0] * 30 + [1] * 5), np.zeros(35), n_boot=100)
    assert small["auroc"] is None and "< 10" in small["reason"]
    strata = np.array(["a"] * 75 + ["b"] * 75)
    ws = within_strata(y, s, strata)
    assert ws["mean"] is not None
    d = paired_diff(y, s, -s, None, n_boot=200)
    assert d["diff"] > 0 and d["excludes_zero"]
    d = paired_diff(y, s, s + 0.0, strata, n_boot=200)
    assert abs(d["diff"]) < 1e-12


def test_grouped_folds_keep_groups_together() -> None:
    groups = np.repeat(np.arange(60), 2)
    y = np.tile([0, 1], 60)
    cells = np.array(["a", "b"] * 60)
    for tr, te in grouped_folds(5, y, cells, groups, 0):
        assert not set(groups[tr]) & set(groups[te])
