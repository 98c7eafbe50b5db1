"""How speakers are found: the settings of every diarization step, each tuned number with where
it was chosen (docs/pipeline.md, "Diarization")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DiarizeSettings:
    """How speakers are found. Every tuned number was chosen on the AMI `trn*` dev clips and
    checked on the held-out `dev*`/`tst*` clips (bench/bench_diarization.py --calibrate;
    docs/pipeline.md "Diarization")."""

    min_speakers: int | None = None
    max_speakers: int | None = None
    # Window hop: 0.8 s keeps one hour of speech under a minute of encoder time on one core.
    step_s: float = 0.8
    # Units: a new one starts after a pause this long, at an ASR segment or VAD region start,
    # or when it would grow past max_unit_s (the grid found pause 0.2–0.5 s alike on trn).
    unit_pause_s: float = 0.3
    max_unit_s: float = 6.0
    # More than one speaker only if the best cut's weighted silhouette beats this
    # (calibrated on trn from 0.1–0.3 for the count on speech units, below; the silhouette is
    # scale-free, so clean studio voices and far-field meeting voices share it, where a
    # distance threshold did not).
    min_silhouette: float = 0.15
    # The fewest speakers whose silhouette is within this of the best wins: with a dozen units
    # the silhouette of neighbouring counts differs by noise, and an invented speaker costs
    # more than a missed one (calibrated on trn from 0 / 0.03 / 0.06).
    count_tolerance: float = 0.03
    # A speaker with fewer words (or their estimate from speech time) than this is folded
    # into the nearest one: a caption with a wrong extra speaker is worse than a missed
    # interjection (calibrated on trn from 6 / 10 / 20).
    min_speaker_words: float = 10.0
    # Re-segmentation (Viterbi over windows): emission = scale × cosine; a speaker change
    # costs `reseg_penalty` (calibrated on trn; 0 iterations turns it off).
    reseg_scale: float = 10.0
    reseg_penalty: float = 0.5
    reseg_iterations: int = 2
    # Gap statistic (gap_count.py): a larger count it finds replaces the silhouette's.
    # `gap_references` uniform reference sets (0 turns it off) over the units' first
    # `gap_dims` principal components; k + 1 must beat k by `gap_z` spreads. Chosen on the trn
    # clips and seven espeak tuning sets no test uses (docs/pipeline.md "Diarization").
    gap_references: int = 10
    gap_dims: int = 4
    gap_z: float = 1.0
    max_auto_speakers: int = 10  # the count search's upper end without a max_speakers hint
    batch_size: int = 64
    max_cluster_units: int = 2000  # the tree is quadratic in memory: sample above this
