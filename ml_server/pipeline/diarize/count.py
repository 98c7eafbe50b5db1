"""How many speakers: the one place the count is decided (`count_speakers`), and the
clustering with an automatic count it and the word stage share.

The count is judged on the speech alone — VAD regions cut into units — never on the
transcript, so a difference in the ASR's words (another CPU's int8 arithmetic) cannot move it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.cluster.hierarchy import fcluster, linkage

from ml_server.pipeline.diarize.embed import Embeddings, SpeakerEmbeddings, speech_regions
from ml_server.pipeline.diarize.gap_count import gap_count
from ml_server.pipeline.diarize.settings import DiarizeSettings
from ml_server.pipeline.diarize.speaker_units import region_units, unit_embeddings

Labels = npt.NDArray[np.int64]
Weights = npt.NDArray[np.float64]


def _unit(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out


def _merge_into(labels: Labels, src: int, dst: int) -> Labels:
    out = labels.copy()
    out[out == src] = dst
    return out


def fold_small(
    x: npt.NDArray[np.float64],
    labels: Labels,
    weights: npt.NDArray[np.float64],
    min_weight: float,
    lo: int,
) -> Labels:
    """Fold the lightest cluster into the one with the most similar centroid while it weighs
    less than `min_weight` and more than `lo` clusters are left."""
    while True:
        ks = np.unique(labels)
        if len(ks) <= max(1, lo):
            return labels
        mass = np.array([weights[labels == k].sum() for k in ks])
        small = int(np.argmin(mass))
        if mass[small] >= min_weight:
            return labels
        cents = np.stack([_unit(x[labels == k].mean(axis=0)) for k in ks])
        sims = cents @ cents[small]
        sims[small] = -np.inf
        labels = _merge_into(labels, int(ks[small]), int(ks[int(np.argmax(sims))]))


def merge_to(x: npt.NDArray[np.float64], labels: Labels, hi: int) -> Labels:
    """Merge the two clusters with the most similar centroids until at most `hi` are left."""
    while len(ks := np.unique(labels)) > hi:
        cents = np.stack([_unit(x[labels == k].mean(axis=0)) for k in ks])
        sims = cents @ cents.T
        np.fill_diagonal(sims, -np.inf)
        i, j = divmod(int(np.argmax(sims)), len(ks))
        labels = _merge_into(labels, int(ks[i]), int(ks[j]))
    return labels


def _consecutive(labels: Labels) -> Labels:
    out: Labels = np.unique(labels, return_inverse=True)[1].astype(np.int64)
    return out


def count_bounds(opts: DiarizeSettings, n: int) -> tuple[int, int]:
    """(lo, hi): the speaker-count range the hints allow for `n` units (hints are hard)."""
    hi = min(n, opts.max_speakers or opts.max_auto_speakers)
    lo = min(max(1, opts.min_speakers or 1), hi)
    return lo, hi


def silhouette(distances: npt.NDArray[np.float64], labels: Labels, weights: Weights) -> float:
    """Weighted mean silhouette: how much nearer each item is to its own cluster than to the
    next one, relative to the larger of the two (scale-free: clean studio voices and far-field
    meeting voices sit at very different absolute distances). -1 for a single cluster."""
    ks, idx = np.unique(labels, return_inverse=True)
    if len(ks) < 2:
        return -1.0
    member = np.zeros((len(labels), len(ks)))
    member[np.arange(len(labels)), idx] = weights
    mass = member.sum(axis=0)
    sums = distances @ member  # (n, k): weighted distance sums to each cluster
    own_mass = mass[idx] - weights
    a = np.where(own_mass > 0, sums[np.arange(len(labels)), idx] / np.maximum(own_mass, 1e-12), 0)
    means = sums / np.maximum(mass, 1e-12)
    means[np.arange(len(labels)), idx] = np.inf
    b = means.min(axis=1)
    s = np.where(own_mass > 0, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float((s * weights).sum() / weights.sum())


def cluster(
    embeddings: Embeddings,
    opts: DiarizeSettings,
    weights: Weights | None = None,
) -> Labels:
    """Cluster labels (0-based, consecutive) with the speaker count chosen automatically.

    A Ward tree over the unit-length embeddings is cut into k = 2…max clusters; in each cut,
    clusters lighter than `min_speaker_words` (by `weights`, default 1 per row) fold into their
    nearest neighbour; among the cuts whose weighted silhouette beats `min_silhouette`, the one
    with the fewest speakers within `count_tolerance` of the best silhouette wins, else
    everything is one speaker. When the gap statistic finds more speakers, its cut wins (the
    silhouette prefers a coarse split when two voices are close). The count is always within
    [min_speakers, max_speakers].
    """
    n = embeddings.shape[0]
    lo, hi = count_bounds(opts, n)
    if n == 0 or hi <= 1:
        return np.zeros(n, dtype=np.int64)
    x = embeddings.astype(np.float64)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    # Ward (on unit vectors, so Euclidean ~ cosine) keeps clusters compact and balanced;
    # average linkage split lone outlier units off first, which the fold then undid, so the
    # cuts for 3 and 4 speakers often came back as 2.
    tree = linkage(x, method="ward")
    distances = np.clip(1.0 - x @ x.T, 0.0, 2.0)
    cuts: list[tuple[float, int, Labels]] = []
    for k in range(max(2, lo), hi + 1):
        cut = fcluster(tree, t=k, criterion="maxclust").astype(np.int64)
        labels = fold_small(x, cut, w, opts.min_speaker_words, lo)
        cuts.append((silhouette(distances, labels, w), len(np.unique(labels)), labels))
    chosen = choose_cut(cuts, opts, lo, n)
    if opts.gap_references > 0:
        gap = gap_count(
            x,
            w,
            hi,
            lambda y, cut: fold_small(y, cut, w, opts.min_speaker_words, lo),
            opts.gap_references,
            opts.gap_dims,
            opts.gap_z,
        )
        if gap is not None and len(np.unique(gap)) > len(np.unique(chosen)):
            chosen = gap
    return _consecutive(merge_to(x, chosen, hi))


def choose_cut(
    cuts: list[tuple[float, int, Labels]], opts: DiarizeSettings, lo: int, n: int
) -> Labels:
    """The fewest-speaker cut among those within `count_tolerance` of the best silhouette
    (all of them above `min_silhouette`); one speaker when none is, unless `lo` asks for more
    (then the best cut, whatever its score)."""
    if not cuts:
        return np.zeros(n, dtype=np.int64)
    top = max(score for score, _, _ in cuts)
    good = [c for c in cuts if c[0] > opts.min_silhouette and c[0] >= top - opts.count_tolerance]
    if not good:
        if lo <= 1:
            return np.zeros(n, dtype=np.int64)
        good = [max(cuts, key=lambda c: c[0])]
    return min(good, key=lambda c: c[1])[2]


def cluster_all(
    embeddings: Embeddings, opts: DiarizeSettings, weights: npt.NDArray[np.float64]
) -> Labels:
    """Cluster an even sample of at most `max_cluster_units`, then label every unit by its
    nearest centroid (the tree is quadratic in memory; hours of media stay bounded)."""
    n = embeddings.shape[0]
    if n <= opts.max_cluster_units:
        return cluster(embeddings, opts, weights)
    pick = np.linspace(0, n - 1, opts.max_cluster_units).round().astype(np.intp)
    sample_labels = cluster(embeddings[pick], opts, weights[pick] * n / len(pick))
    k = int(sample_labels.max()) + 1
    cents = np.stack([embeddings[pick][sample_labels == c].mean(axis=0) for c in range(k)])
    labels: Labels = np.argmax(embeddings @ cents.T, axis=1).astype(np.int64)
    return labels


def count_speakers(speech: SpeakerEmbeddings, opts: DiarizeSettings) -> int:
    """How many speakers talk, judged on the speech alone: VAD regions cut into units of at
    most `max_unit_s`, clustered with the automatic count within the hints.

    Never on the transcript: word units move with every difference in the ASR's words and
    times, and those differ between CPUs (CTranslate2's int8 arithmetic: MKL on Intel, oneDNN
    elsewhere); counted on word units, 2 of the 11 AMI dev clips changed count between the two
    paths on one machine, on speech units none did (docs/pipeline.md, "Diarization").
    The hints (`min_speakers`, `max_speakers`) are hard bounds; nothing after this changes the
    count.
    """
    units = region_units(speech_regions(speech), opts.max_unit_s)
    starts = np.array([w.start for w in speech.windows])
    ends = np.array([w.end for w in speech.windows])
    x = unit_embeddings(units, starts, ends, speech.embeddings)
    labels = cluster_all(x, opts, np.array([u.weight for u in units]))
    return int(labels.max()) + 1 if labels.size else 1
