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


def _bce(z: float, y: float, pw: float = 1.0) -> float:
    """-[pw * y * log(sigmoid z) + (1 - y) * log(1 - sigmoid z)]."""
    s = 1.0 / (1.0 + math.exp(-z))
    return -(pw * y * math.log(s) + (1 - y) * math.log(1 - s))


@pytest.mark.parametrize("w", [0.0, 0.5, 1.0])
def test_span_joint_loss_by_hand(w: float) -> None:
    import torch

    from dnnkit.probes.hallucination.probes import span_joint_loss

    # item 0 (wrong, 3 tokens), item 1 (correct, 2 tokens, one padding slot); wrong class weighted 2
    logits = torch.tensor([[0.5, -1.0, 2.0], [-0.3, 1.2, 9.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    y = torch.tensor([1.0, 0.0])
    tokens = [_bce(0.5, 1, 2), _bce(-1.0, 1, 2), _bce(2.0, 1, 2), _bce(-0.3, 0, 2), _bce(1.2, 0, 2)]
    items = [_bce(2.0, 1, 2), _bce(1.2, 0, 2)]
    want = (1 - w) * sum(tokens) / 5 + w * sum(items) / 2
    got = float(span_joint_loss(logits, mask, y, w, torch.tensor(2.0)))
    assert got == pytest.approx(want, rel=1e-6)


def test_omega_schedule() -> None:
    from dnnkit.probes.hallucination.probes import omega

    assert [omega(s, 200) for s in (0, 25, 50, 99, 100, 150, 200)] == [0.0, 0.25, 0.5, 0.99, 1.0, 1.0, 1.0]
    assert omega(0, 0) == 1.0


def _synthetic_span(n: int = 240, t: int = 6, d: int = 16, seed: int = 0, strength: float = 4.0):  # noqa: ANN202
    """Spans of 2..t tokens; a wrong item carries the signal on ONE random token of its span only."""
    from dnnkit.probes.hallucination.probes import SpanBatch

    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.int64)
    lengths = rng.integers(2, t + 1, size=n).astype(np.int32)
    tokens = rng.normal(size=(n, t, d)).astype(np.float32)
    tokens[np.arange(t)[None, :] >= lengths[:, None]] = 0.0
    hot = (rng.random(n) * lengths).astype(int)
    tokens[np.flatnonzero(y), hot[y == 1], 0] += strength
    return SpanBatch(tokens, lengths), y


def test_span_mlp_learns_a_signal_on_one_token_and_round_trips() -> None:
    from dnnkit.probes.hallucination.probes import SpanBatch

    x, y = _synthetic_span()
    tr = SpanBatch(x.tokens[:160], x.lengths[:160])
    te = SpanBatch(x.tokens[160:], x.lengths[160:])
    probe = fit_probe("mlp", tr, y[:160], np.arange(160), seed=0)
    p = probe.predict(te)
    assert auroc_or_nan(y[160:], p) > 0.9
    assert probe.info["epochs"] >= 1 and probe.norm.mean.shape == (16,)
    again = Probe.from_tensors("mlp", probe.tensors())
    np.testing.assert_allclose(again.predict(te), p, rtol=1e-5, atol=1e-6)
    # padding never counts: garbage in the padded slots leaves the scores unchanged
    noisy = te.tokens.copy()
    noisy[~te.mask()] = 50.0
    np.testing.assert_allclose(probe.predict(SpanBatch(noisy, te.lengths)), p, rtol=1e-6)
    # the linear probe and SAPLMA read the span's token mean
    lin = fit_probe("linear", tr, y[:160])
    np.testing.assert_allclose(lin.predict(te), lin.predict(te.mean()))
    np.testing.assert_allclose(te.mean()[0], te.tokens[0, :te.lengths[0]].mean(0), rtol=1e-5)


def test_layer_search_and_views_on_span_features() -> None:
    from dnnkit.probes.hallucination.config import TrainConfig
    from dnnkit.probes.hallucination.pipeline import HiddenStates, choose_layer

    n_blocks = 6
    layers = [_synthetic_span(n=160, d=8, seed=1, strength=3.0 * math.exp(-((k - 4) / 1.5) ** 2))
              for k in range(n_blocks + 1)]  # the signal peaks at layer 4
    x, y = layers[4]
    hidden = np.stack([s.tokens for s, _ in layers], axis=1).astype(np.float16)
    rows = np.arange(10, len(y))
    view = HiddenStates.of({"span": hidden, "span_len": x.lengths}, "span", rows)
    feats = view.at(np.array([0, 2]), 4)
    np.testing.assert_array_equal(feats.lengths, x.lengths[[10, 12]])
    assert feats.tokens.shape == (2, int(x.lengths[[10, 12]].max()), 8)
    assert len(view[np.arange(5)]) == 5
    opts = TrainConfig(probe="linear", position="span")
    groups = np.array([str(i) for i in rows])
    layer, search = choose_layer(opts, view, y[rows], groups, np.array(["c"] * len(rows)), n_blocks)
    assert layer == 4 and search is not None and 4 in search.evaluated, search.as_dict()
