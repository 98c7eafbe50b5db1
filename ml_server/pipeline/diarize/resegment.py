"""Re-segmentation: a Viterbi pass over the time-ordered speaker-embedding windows.

Each window scores every speaker model (centroid) by cosine similarity; moving to another
speaker costs a fixed penalty, so one odd window inside a turn does not flip it, but a run of
windows that sound like someone else does. The speaker models are re-estimated from the path
and the pass repeated (the nearest-model loop of VBx, without its PLDA). Pure numpy.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Labels = npt.NDArray[np.int64]


def viterbi(scores: npt.NDArray[np.float64], penalty: float) -> Labels:
    """Best label path for per-step scores (n, k) where changing label costs `penalty`."""
    n, k = scores.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    back = np.zeros((n, k), dtype=np.int64)
    total = scores[0].copy()
    states = np.arange(k)
    for i in range(1, n):
        best = int(np.argmax(total))
        switch = total[best] - penalty
        stay = total >= switch
        back[i] = np.where(stay, states, best)
        total = np.where(stay, total, switch) + scores[i]
    path = np.zeros(n, dtype=np.int64)
    path[-1] = int(np.argmax(total))
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def centroids(
    embeddings: npt.NDArray[np.float32], labels: Labels, k: int, fallback: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Unit-length mean embedding per label; `fallback[j]` for a label with no member."""
    out = fallback.copy()
    for j in range(k):
        members = embeddings[labels == j]
        if len(members):
            v = members.mean(axis=0)
            out[j] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out


def resegment(
    embeddings: npt.NDArray[np.float32],
    models: npt.NDArray[np.float64],
    scale: float,
    penalty: float,
    iterations: int,
) -> Labels:
    """Speaker of each window (rows of `embeddings`, in time order) given initial speaker
    models; emissions are `scale` × cosine similarity. A speaker may end up with no window."""
    k = models.shape[0]
    path = np.zeros(embeddings.shape[0], dtype=np.int64)
    if k <= 1 or embeddings.shape[0] == 0:
        return path
    x = embeddings.astype(np.float64)
    for _ in range(max(1, iterations)):
        path = viterbi(scale * (x @ models.T), penalty)
        models = centroids(embeddings, path, k, models)
    return path
