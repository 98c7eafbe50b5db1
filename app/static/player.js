// ECG web page, the player: expressive captions over playback — the current turn in its
// speaker's colour, each word sized by its loudness and lit as it is said.

import { updatePlayhead } from "./charts.js";
import { EMOJI, LOUDNESS } from "./constants.js";
import { $, el, fmtTime, nameOf, speakerColor, state } from "./page.js";

// Word size is relative to this recording: its LOUDNESS percentiles of volume_db span the scale.
export function volumeScale(segments) {
  const vols = segments.flatMap((s) => s.words.map((w) => w.volume_db)).filter((v) => typeof v === "number");
  if (!vols.length) return () => 1;
  vols.sort((a, b) => a - b);
  const lo = vols[Math.floor(vols.length * LOUDNESS.lowPercentile)];
  const hi = vols[Math.floor(vols.length * LOUDNESS.highPercentile)];
  const span = Math.max(hi - lo, LOUDNESS.minSpanDb);
  return (v) => (typeof v !== "number" ? 1 : LOUDNESS.floor + LOUDNESS.range * Math.min(1, Math.max(0, (v - lo) / span)));
}

export function emotionBadge(emotion) {
  if (!emotion || !emotion.label) return "";
  const e = EMOJI[emotion.label.toLowerCase()] || "💬";
  const pct = typeof emotion.score === "number" ? ` ${Math.round(emotion.score * 100)}%` : "";
  return `${e} ${emotion.label}${pct}`;
}

export function currentTime() {
  const video = $("video");
  return video.readyState >= 1 && !video.error ? video.currentTime : (state.clock || 0);
}

export function seek(t) {
  const video = $("video");
  state.clock = t;
  // A file the browser cannot decode still gets its captions: the clock drives them then.
  if (video.readyState >= 1 && !video.error) video.currentTime = t;
  renderAt(t);
}

function segmentAt(t) {
  const segs = state.result ? state.result.segments : [];
  for (let i = 0; i < segs.length; i++) {
    if (t >= segs[i].start - 0.05 && t <= segs[i].end + 0.3) return i;
  }
  return -1;
}

export function renderAt(t) {
  if (!state.result) return;
  const i = segmentAt(t);
  const box = $("captions");
  if (i !== state.segIndex) {
    state.segIndex = i;
    box.innerHTML = "";
    document.querySelectorAll("#segment-list li.current").forEach((n) => n.classList.remove("current"));
    if (i >= 0) {
      const s = state.result.segments[i];
      const color = speakerColor(s.speaker.speaker_id);
      const cue = el("div", "cue");
      cue.style.setProperty("--speaker", color);
      cue.dataset.speaker = s.speaker.speaker_id;
      const who = el("div", "who");
      who.append(el("span", "speaker-name", nameOf(s.speaker.speaker_id)));
      if (s.emotion && s.emotion.label) who.append(el("span", "emotion", emotionBadge(s.emotion)));
      const line = el("div", "line");
      const words = s.words.length ? s.words : [{ word: s.text, start: s.start, end: s.end }];
      words.forEach((w, k) => {
        const span = el("span", "word", w.word.trim());
        span.dataset.k = String(k);
        // em: relative to the caption line, whose size follows the player's width (style.css).
        span.style.fontSize = `${(1.5 * state.volume(w.volume_db)).toFixed(2)}em`;
        // A turn can change inside a segment: such a word wears its own speaker's colour.
        if (w.speaker_id && w.speaker_id !== s.speaker.speaker_id) span.style.setProperty("--speaker", speakerColor(w.speaker_id));
        const pitch = typeof w.pitch_hz === "number" ? `${Math.round(w.pitch_hz)} Hz` : "unvoiced";
        const vol = typeof w.volume_db === "number" ? `${w.volume_db.toFixed(1)} dB` : "–";
        span.title = `${fmtTime(w.start)} · ${vol} · ${pitch}`;
        line.appendChild(span);
      });
      cue.append(who, line);
      box.appendChild(cue);
      const item = document.querySelector(`#segment-list li[data-index="${i}"]`);
      if (item) { item.classList.add("current"); item.scrollIntoView({ block: "nearest" }); }
    }
  }
  updatePlayhead($("timeline"), t);
  if (i < 0) return;
  const words = state.result.segments[i].words;
  box.querySelectorAll(".word").forEach((span) => {
    const w = words[Number(span.dataset.k)];
    if (!w) return;
    span.classList.toggle("active", t >= w.start && t < w.end + 0.05);
    span.classList.toggle("spoken", t >= w.end + 0.05);
    span.classList.toggle("upcoming", t < w.start);
  });
}

export function wirePlayer() {
  const video = $("video");
  const tick = () => {
    if (!video.paused) { renderAt(video.currentTime); requestAnimationFrame(tick); }
  };
  video.addEventListener("play", () => requestAnimationFrame(tick));
  video.addEventListener("seeked", () => renderAt(video.currentTime));
  video.addEventListener("timeupdate", () => renderAt(video.currentTime));
}
