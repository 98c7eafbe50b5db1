"""ASS (Advanced SubStation Alpha) export via pysubs2: the web page's look in any player.

Each speaker gets a style in the page's colour; each word's size follows its `volume_db` on the
page's scale (the recording's 10th..90th percentile spans 0.8x..1.55x of the base size); with
`highlight_words` the words carry karaoke timing (`\\k`), so a player colours each as it is said.
"""

from __future__ import annotations

import pysubs2

from app.services.captions.cues import CaptionOptions, Cue, build_cues, one_line
from ecg_protocol import AnalysisResult

# The web page's speaker palette (app/static/constants.js PALETTE), in the same order.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (0x38, 0xBD, 0xF8),
    (0xF4, 0x72, 0xB6),
    (0xFA, 0xCC, 0x15),
    (0x34, 0xD3, 0x99),
    (0xA7, 0x8B, 0xFA),
    (0xFB, 0x92, 0x3C),
    (0xF8, 0x71, 0x71),
    (0x2D, 0xD4, 0xBF),
)
# The web page's loudness scale (app/static/constants.js LOUDNESS): the recording's 10th..90th
# percentile of volume_db, at least 1 dB apart, spans SIZE_FLOOR..SIZE_FLOOR + SIZE_RANGE of the
# base size. tests/product/test_page_constants.py keeps the two equal.
LOUDNESS_PERCENTILES = (0.1, 0.9)
LOUDNESS_MIN_SPAN_DB = 1.0
SIZE_FLOOR = 0.8
SIZE_RANGE = 0.75
PLAY_RES = (1920, 1080)
BASE_FONT_SIZE = 44  # at 1080 lines: about the page's 1.5rem caption on a full-screen player
_NOT_YET = pysubs2.Color(200, 200, 200)  # karaoke: a word not yet said


def _ass_text(text: str) -> str:
    """Literal text: braces open override blocks and backslashes escape in ASS; keep them out."""
    return text.replace("\\", "\uff3c").replace("{", "\uff5b").replace("}", "\uff5d")


def _ass_name(name: str) -> str:
    """A style or actor name: one line, and no comma (the field separator of `Style:` and
    `Dialogue:` lines; "Smith, John" would shift every field after it)."""
    return one_line(name).strip().replace(",", "\uff0c")


def volume_scale(result: AnalysisResult) -> tuple[float, float]:
    """(low, span) of the recording's loudness: its 10th and 90th percentile of `volume_db`."""
    vols = sorted(w.volume_db for s in result.segments for w in s.words if w.volume_db is not None)
    if not vols:
        return 0.0, 0.0
    low, high = LOUDNESS_PERCENTILES
    lo, hi = vols[int(len(vols) * low)], vols[int(len(vols) * high)]
    return lo, max(hi - lo, LOUDNESS_MIN_SPAN_DB)


def _font_size(volume_db: float | None, scale: tuple[float, float]) -> int:
    lo, span = scale
    if volume_db is None or span <= 0:
        return BASE_FONT_SIZE
    return round(
        BASE_FONT_SIZE * (SIZE_FLOOR + SIZE_RANGE * min(1.0, max(0.0, (volume_db - lo) / span)))
    )


def _style(color: tuple[int, int, int] | None) -> pysubs2.SSAStyle:
    style = pysubs2.SSAStyle(fontsize=BASE_FONT_SIZE, outline=2, shadow=0, marginv=60)
    if color is not None:
        style.primarycolor = pysubs2.Color(*color)
    style.secondarycolor = _NOT_YET
    return style


def _event_text(
    cue: Cue,
    volumes: dict[tuple[float, str], float | None],
    opts: CaptionOptions,
    scale: tuple[float, float],
) -> str:
    lines: list[str] = []
    t = cue.start
    for words in cue.line_words() if cue.line_sizes else [cue.words]:
        parts: list[str] = []
        for word in words:
            tags = f"\\fs{_font_size(volumes.get((word.start, word.text)), scale)}"
            if opts.highlight_words:
                # \k counts centiseconds from the previous word's end: the gap waits unlit.
                until = min(max(word.end, t), cue.end)
                tags = f"\\k{max(0, round((until - t) * 100))}" + tags
                t = until
            parts.append("{" + tags + "}" + _ass_text(word.text))
        lines.append(" ".join(parts))
    return "\\N".join(lines)


def to_ass(result: AnalysisResult, opts: CaptionOptions) -> str:
    """An ASS script: one style per speaker (colour), word sizes from loudness."""
    subs = pysubs2.SSAFile()
    subs.info["PlayResX"], subs.info["PlayResY"] = (str(v) for v in PLAY_RES)
    subs.info["Title"] = one_line(result.metadata.filename or "").strip() or "ECG captions"
    subs.styles["Default"] = _style(None)
    speakers = list(dict.fromkeys(s.speaker.speaker_id for s in result.segments))
    if opts.speaker_labels:
        for n, speaker in enumerate(speakers):
            subs.styles[_ass_name(speaker)] = _style(PALETTE[n % len(PALETTE)])
    volumes = {(w.start, w.word.strip()): w.volume_db for s in result.segments for w in s.words}
    scale = volume_scale(result)
    cues = build_cues(result, max_line_length=opts.max_line_length, max_lines=opts.max_lines)
    for cue in cues:
        subs.append(
            pysubs2.SSAEvent(
                start=round(cue.start * 1000),
                end=round(cue.end * 1000),
                style=_ass_name(cue.speaker) if opts.speaker_labels else "Default",
                name=_ass_name(cue.speaker) if opts.speaker_labels else "",
                text=_event_text(cue, volumes, opts, scale),
            )
        )
    return str(subs.to_string("ass"))
