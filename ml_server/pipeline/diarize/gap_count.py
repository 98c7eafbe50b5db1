"""A second opinion on the speaker count: Tibshirani's gap statistic over the unit embeddings.

The silhouette (diarize.cluster) prefers the coarsest clear split: three voices where two are
close come out as two, because splitting off the far voice scores higher than the true
partition. The gap statistic instead asks, for each count k, how much tighter the k clusters
are than k clusters of structureless data spread over the same range; the smallest k whose
gap is not beaten by k + 1 (beyond its sampling spread) wins. Far-field meeting units show no
such structure (the gap says one speaker on every AMI clip), clean voices do, so the pipeline
takes the larger of the two counts. Method and figures: docs/pipeline.md, "Diarization".

Units live in the encoder's dimensions (256 for GE2E) but a clip has a few dozen of them: the
statistic is computed on their leading principal components, where a uniform reference box is
meaningful.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from scipy.cluster.hierarchy import fcluster, linkage

Labels = npt.NDArray[np.int64]
Matrix = npt.NDArray[np.float64]
Fold = Callable[[Matrix, Labels], Labels]


def within_scatter(x: Matrix, weights: Matrix, labels: Labels) -> float:
    """Weighted sum of squared distances of the rows to their cluster's weighted mean."""
    total = 0.0
    for k in np.unique(labels):
        member = labels == k
        mean = np.average(x[member], axis=0, weights=weights[member])
        total += float((weights[member, None] * (x[member] - mean) ** 2).sum())
    return total


def ward_cuts(x: Matrix, kmax: int, fold: Fold | None) -> dict[int, Labels]:
    """Ward-tree cuts for k = 1…kmax (each passed through `fold` when given)."""
    cuts: dict[int, Labels] = {1: np.zeros(x.shape[0], dtype=np.int64)}
    if x.shape[0] < 2:
        return cuts
    tree = linkage(x, method="ward")
    for k in range(2, kmax + 1):
        cut = fcluster(tree, t=k, criterion="maxclust").astype(np.int64)
        cuts[k] = fold(x, cut) if fold is not None else cut
    return cuts


def _log_scatter(x: Matrix, weights: Matrix, cuts: dict[int, Labels]) -> dict[int, float]:
    return {k: float(np.log(max(within_scatter(x, weights, c), 1e-12))) for k, c in cuts.items()}


def gap_count(
    x: Matrix,
    weights: Matrix,
    kmax: int,
    fold: Fold,
    references: int = 10,
    dims: int = 4,
    z: float = 1.0,
) -> Labels | None:
    """Labels of the smallest k ≥ 2 with gap(k) ≥ gap(k+1) − z·spread(k+1), from a Ward tree
    over the first `dims` principal components of the unit-length rows of `x`; None when that
    k is 1 or no k up to `kmax` qualifies. `fold` folds few-word clusters of the real cuts;
    the reference sets (uniform over the components' range, a fixed seed so a result is
    reproducible) are cut without it."""
    n = x.shape[0]
    kmax = min(kmax, n - 1)
    if kmax < 2 or references < 1:
        return None
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    p = centred @ vt[:dims].T
    real = ward_cuts(p, kmax, lambda _, cut: fold(x, cut))
    observed = _log_scatter(p, weights, real)
    rng = np.random.default_rng(0)
    low, high = p.min(axis=0), p.max(axis=0)
    ref: dict[int, list[float]] = {k: [] for k in real}
    for _ in range(references):
        q = rng.uniform(low, high, size=p.shape)
        for k, v in _log_scatter(q, weights, ward_cuts(q, kmax, None)).items():
            ref[k].append(v)
    gap = {k: float(np.mean(ref[k])) - observed[k] for k in real}
    spread = {k: float(np.std(ref[k])) * np.sqrt(1 + 1 / references) for k in real}
    for k in range(1, kmax):
        if gap[k] >= gap[k + 1] - z * spread[k + 1]:
            return real[k] if k >= 2 else None
    return None
