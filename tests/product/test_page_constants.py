"""The web page and the ASS caption export draw the same captions: one speaker palette and one
loudness scale, written once in each language (app/static/constants.js, app/services/captions/
ass.py) and kept equal here."""

from __future__ import annotations

import re
from pathlib import Path

from app.services.captions import ass

CONSTANTS_JS = Path(__file__).resolve().parents[2] / "app/static/constants.js"


def _js_constant(name: str) -> str:
    match = re.search(rf"export const {name} = (.+?);\n", CONSTANTS_JS.read_text(encoding="utf-8"))
    assert match, f"{name} not found in {CONSTANTS_JS}"
    return match.group(1)


def test_palettes_are_the_same_colours_in_the_same_order() -> None:
    page = [
        tuple(int(h[i : i + 2], 16) for i in (0, 2, 4))
        for h in re.findall(r'"#([0-9a-fA-F]{6})"', _js_constant("PALETTE"))
    ]
    assert page == list(ass.PALETTE)


def test_loudness_scales_are_the_same() -> None:
    page = {k: float(v) for k, v in re.findall(r"(\w+): ([\d.]+)", _js_constant("LOUDNESS"))}
    assert page == {
        "lowPercentile": ass.LOUDNESS_PERCENTILES[0],
        "highPercentile": ass.LOUDNESS_PERCENTILES[1],
        "minSpanDb": ass.LOUDNESS_MIN_SPAN_DB,
        "floor": ass.SIZE_FLOOR,
        "range": ass.SIZE_RANGE,
    }
