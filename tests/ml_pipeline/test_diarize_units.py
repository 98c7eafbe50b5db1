"""Diarization's pure parts on hand-made embeddings: count selection, hard bounds, folding of
few-word speakers, units, and the Viterbi re-segmentation."""

from __future__ import annotations

import numpy as np

from ml_server.pipeline.data import AsrWord, SpeechRegion
from ml_server.pipeline.diarize import DiarizeSettings, choose_cut, cluster, fold_small, silhouette
from ml_server.pipeline.diarize.gap_count import gap_count
from ml_server.pipeline.diarize.resegment import resegment, viterbi
from ml_server.pipeline.diarize.speaker_units import Unit, region_units, unit_embeddings, word_units

DIM = 16


def _voices(sizes: list[int], spread: float = 0.25, seed: int = 0) -> np.ndarray:
    """Rows drawn around len(sizes) random unit directions, `sizes[i]` rows for voice i."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), DIM))
    rows = [c + spread * rng.normal(size=(n, DIM)) for c, n in zip(centres, sizes, strict=True)]
    x = np.concatenate(rows).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _count(labels: np.ndarray) -> int:
    return len(set(labels.tolist()))


def test_count_follows_the_voices() -> None:
    for sizes in ([12], [10, 10], [8, 9, 10], [8, 8, 8, 8]):
        # Each row a unit of two words: every voice holds more than min_speaker_words.
        labels = cluster(_voices(sizes), DiarizeSettings(), np.full(sum(sizes), 2.0))
        assert _count(labels) == len(sizes), sizes
        # Every voice's rows share one label.
        start = 0
        for n in sizes:
            assert _count(labels[start : start + n]) == 1
            start += n


def test_hints_are_hard_bounds() -> None:
    x = _voices([8, 9, 10])
    assert _count(cluster(x, DiarizeSettings(max_speakers=1))) == 1
    assert _count(cluster(x, DiarizeSettings(max_speakers=2))) == 2
    assert _count(cluster(x, DiarizeSettings(min_speakers=5))) == 5
    assert _count(cluster(x, DiarizeSettings(min_speakers=2, max_speakers=2))) == 2
    one = _voices([15])
    assert _count(cluster(one, DiarizeSettings(min_speakers=2))) == 2


def test_few_word_speaker_is_folded_not_invented() -> None:
    x = _voices([10, 10, 1])
    weights = np.array([3.0] * 20 + [2.0])  # the third voice says two words
    labels = cluster(x, DiarizeSettings(), weights)
    assert _count(labels) == 2
    heavy = cluster(x, DiarizeSettings(), np.array([3.0] * 20 + [12.0]))
    assert _count(heavy) == 3


def test_fewest_speakers_within_the_tolerance_win() -> None:
    two, three, four = (np.arange(6, dtype=np.int64) % k for k in (2, 3, 4))
    cuts = [(0.40, 2, two), (0.42, 3, three), (0.30, 4, four)]
    opts = DiarizeSettings(min_silhouette=0.25, count_tolerance=0.03)
    assert choose_cut(cuts, opts, 1, 6) is two  # 0.40 is within 0.03 of the best 0.42
    exact = DiarizeSettings(min_silhouette=0.25, count_tolerance=0.0)
    assert choose_cut(cuts, exact, 1, 6) is three
    strict = DiarizeSettings(min_silhouette=0.5)
    assert _count(choose_cut(cuts, strict, 1, 6)) == 1  # no cut clear enough: one speaker
    assert choose_cut(cuts, strict, 3, 6) is three  # a min_speakers hint takes the best cut
    assert _count(choose_cut([], opts, 1, 6)) == 1


def test_an_outlier_row_does_not_cost_a_voice() -> None:
    # Three voices and one stray row far from all: the stray folds away, three voices stay.
    x = _voices([8, 8, 8, 1], spread=0.2, seed=5)
    weights = np.array([5.0] * 24 + [1.0])
    labels = cluster(x, DiarizeSettings(), weights)
    assert _count(labels[:24]) == 3
    assert _count(labels) == 3


def _two_close_voices_and_a_far_one(seed: int, n: int = 6) -> np.ndarray:
    """Three tight voices: `b` and `c` close together (as two male voices are), `a` far."""
    rng = np.random.default_rng(seed)
    a, b = (v / np.linalg.norm(v) for v in rng.normal(size=(2, DIM)))
    c = b + 0.4 * rng.normal(size=DIM) / np.sqrt(DIM)
    rows = [
        v / np.linalg.norm(v) + 0.1 * rng.normal(size=(n, DIM)) / np.sqrt(DIM) for v in (a, b, c)
    ]
    x = np.concatenate(rows)
    out: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def test_gap_statistic_finds_the_close_pair_the_silhouette_merges() -> None:
    for seed in range(3):
        x = _two_close_voices_and_a_far_one(seed)
        w = np.full(18, 8.0)
        silhouette_only = cluster(x, DiarizeSettings(gap_references=0), w)
        assert _count(silhouette_only) == 2, seed  # the coarse split wins on silhouette
        labels = cluster(x, DiarizeSettings(), w)
        assert _count(labels) == 3, seed
        assert all(_count(labels[i : i + 6]) == 1 for i in (0, 6, 12)), seed
        # Hints stay hard bounds when the gap statistic asks for more.
        assert _count(cluster(x, DiarizeSettings(max_speakers=2), w)) == 2


def test_gap_statistic_sees_no_structure_in_one_voice() -> None:
    w = np.full(16, 8.0)

    def fold(y: np.ndarray, cut: np.ndarray) -> np.ndarray:
        return fold_small(y, cut, w, 4.0, 1)

    for seed in range(3):
        x = _voices([16], seed=seed).astype(np.float64)
        assert gap_count(x, w, 8, fold) is None, seed
        # Isotropic noise in 16 dimensions splits with a silhouette of 0.15-0.25 (GE2E's 256
        # dimensions of one real voice do not: the one-voice media tests); the gap statistic
        # adds nothing on top of a silhouette rule that keeps one voice.
        assert _count(cluster(x, DiarizeSettings(min_silhouette=0.25), w)) == 1


def test_silhouette_prefers_the_true_split() -> None:
    x = _voices([10, 10]).astype(np.float64)
    d = np.clip(1 - x @ x.T, 0, 2)
    w = np.ones(20)
    true = np.array([0] * 10 + [1] * 10, dtype=np.int64)
    mixed = np.array([0, 1] * 10, dtype=np.int64)
    assert silhouette(d, true, w) > 0.3 > silhouette(d, mixed, w)
    assert silhouette(d, np.zeros(20, dtype=np.int64), w) == -1.0


def test_viterbi_ignores_a_blip_but_follows_a_turn() -> None:
    a, b = [1.0, 0.0], [0.0, 1.0]
    scores = np.array([a, a, a, b, a, a, b, b, b, b], dtype=np.float64)
    assert viterbi(scores, penalty=1.5).tolist() == [0] * 6 + [1] * 4
    assert viterbi(scores, penalty=0.0).tolist() == [0, 0, 0, 1, 0, 0, 1, 1, 1, 1]
    assert viterbi(np.zeros((0, 2)), 1.0).size == 0


def test_resegment_moves_windows_to_the_voice() -> None:
    x = _voices([12, 12], spread=0.3, seed=3)
    # Start from rough models (each mixed 3:1) – the pass must still find the two runs.
    m0 = x[:12].mean(0) * 0.75 + x[12:].mean(0) * 0.25
    m1 = x[12:].mean(0) * 0.75 + x[:12].mean(0) * 0.25
    models = np.stack([m0, m1]).astype(np.float64)
    models /= np.linalg.norm(models, axis=1, keepdims=True)
    path = resegment(x, models, scale=10.0, penalty=1.0, iterations=2)
    assert path.tolist() == [0] * 12 + [1] * 12


def test_word_units_cut_at_pauses_segments_regions_and_length() -> None:
    words = [AsrWord(f" w{i}", s, s + 0.3, 1.0) for i, s in enumerate([0.0, 0.4, 0.8, 2.0, 2.4])]
    regions = [SpeechRegion(0.0, 3.0)]
    units = word_units(words, {0}, regions, pause_s=0.5, max_unit_s=30.0)
    assert [u.words for u in units] == [(0, 1, 2), (3, 4)]  # the 0.9 s pause cuts
    units = word_units(words, {0, 1}, regions, pause_s=0.5, max_unit_s=30.0)
    assert [u.words for u in units] == [(0,), (1, 2), (3, 4)]  # a segment start cuts
    units = word_units(words, {0}, regions, pause_s=5.0, max_unit_s=1.0)
    assert [u.words for u in units] == [(0, 1), (2,), (3, 4)]  # length caps
    split = [SpeechRegion(0.0, 1.0), SpeechRegion(1.2, 3.0)]
    assert len(word_units(words, {0}, split, pause_s=5.0, max_unit_s=30.0)) == 2


def test_region_units_and_unit_embeddings() -> None:
    units = region_units([SpeechRegion(0.0, 5.0), SpeechRegion(6.0, 7.0)], max_unit_s=2.0)
    assert [(u.start, u.end) for u in units][-1] == (6.0, 7.0)
    assert len(units) == 4 and units[0].weight > 0
    starts = np.array([0.0, 0.8, 1.6, 3.0])
    ends = starts + 1.6
    emb = np.eye(4, dtype=np.float32)
    x = unit_embeddings([Unit(0.0, 2.4), Unit(3.5, 3.9)], starts, ends, emb)
    assert np.allclose(x[0], np.array([1, 1, 0, 0]) / np.sqrt(2))  # the two windows inside
    assert np.allclose(x[1], [0, 0, 0, 1])  # shorter than a window: the one centred in it
