// ECG web page, charts: a speaker timeline (who talks when) and a loudness/pitch plot. Pure
// drawing: the caller passes the data, the colours and names, and what a click does.

// One lane per speaker; each segment a block placed by time. A click calls onSeek(segment index).
export function renderTimeline(box, segments, duration, colorOf, nameOf, onSeek) {
  box.innerHTML = "";
  const total = Math.max(duration || 0, ...segments.map((s) => s.end), 0.001);
  const ids = [...new Set(segments.map((s) => s.speaker.speaker_id))];
  for (const id of ids) {
    const lane = document.createElement("div");
    lane.className = "lane";
    lane.dataset.speaker = id;
    lane.style.setProperty("--speaker", colorOf(id));
    const label = document.createElement("span");
    label.className = "lane-label";
    label.textContent = nameOf(id);
    const track = document.createElement("div");
    track.className = "track";
    segments.forEach((s, i) => {
      if (s.speaker.speaker_id !== id) return;
      const block = document.createElement("button");
      block.type = "button";
      block.className = "turn";
      block.dataset.index = String(i);
      block.style.left = `${(100 * s.start) / total}%`;
      block.style.width = `${Math.max(0.4, (100 * (s.end - s.start)) / total)}%`;
      block.title = `${nameOf(id)} · ${s.start.toFixed(1)}–${s.end.toFixed(1)} s · ${s.text.trim().slice(0, 80)}`;
      block.addEventListener("click", () => onSeek(i));
      track.appendChild(block);
    });
    lane.append(label, track);
    box.appendChild(lane);
  }
  const head = document.createElement("div");
  head.className = "playhead";
  head.dataset.total = String(total);
  box.appendChild(head);
}

export function updatePlayhead(box, t) {
  const head = box.querySelector(".playhead");
  if (!head) return;
  const total = Number(head.dataset.total) || 1;
  head.style.left = `calc(var(--lane-label) + (100% - var(--lane-label)) * ${Math.min(1, Math.max(0, t / total))})`;
}

// Loudness (bars, dB, left axis) and pitch (dots, Hz, right axis) of every word in [t0, t1].
// Returns what was drawn, for the page's caption and for tests.
export function renderPlot(canvas, words, t0, t1, colorOf) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width;
  const H = canvas.height;
  const pad = { l: 44, r: 48, t: 12, b: 22 };
  ctx.clearRect(0, 0, W, H);
  ctx.font = "11px system-ui, sans-serif";
  const shown = words.filter((w) => w.end >= t0 && w.start <= t1);
  const span = Math.max(t1 - t0, 0.001);
  const x = (t) => pad.l + ((t - t0) / span) * (W - pad.l - pad.r);
  const vols = shown.map((w) => w.volume_db).filter((v) => typeof v === "number");
  const pitches = shown.map((w) => w.pitch_hz).filter((v) => typeof v === "number");
  const vLo = Math.min(-60, ...vols);
  const vHi = Math.max(0, ...vols);
  const pLo = pitches.length ? Math.max(0, Math.min(...pitches) - 20) : 50;
  const pHi = pitches.length ? Math.max(...pitches) + 20 : 400;
  const yV = (v) => H - pad.b - ((v - vLo) / (vHi - vLo || 1)) * (H - pad.t - pad.b);
  const yP = (p) => H - pad.b - ((p - pLo) / (pHi - pLo || 1)) * (H - pad.t - pad.b);

  // Axes and labels.
  ctx.strokeStyle = "#334155";
  ctx.fillStyle = "#94a3b8";
  ctx.beginPath();
  ctx.moveTo(pad.l, pad.t);
  ctx.lineTo(pad.l, H - pad.b);
  ctx.lineTo(W - pad.r, H - pad.b);
  ctx.lineTo(W - pad.r, pad.t);
  ctx.stroke();
  ctx.textAlign = "right";
  ctx.fillText(`${Math.round(vHi)} dB`, pad.l - 4, pad.t + 8);
  ctx.fillText(`${Math.round(vLo)} dB`, pad.l - 4, H - pad.b);
  ctx.textAlign = "left";
  ctx.fillText(`${Math.round(pHi)} Hz`, W - pad.r + 4, pad.t + 8);
  ctx.fillText(`${Math.round(pLo)} Hz`, W - pad.r + 4, H - pad.b);
  ctx.textAlign = "center";
  ctx.fillText(`${t0.toFixed(1)} s`, pad.l, H - 6);
  ctx.fillText(`${t1.toFixed(1)} s`, W - pad.r, H - 6);

  // Loudness: one bar per word, in its speaker's colour.
  for (const w of shown) {
    if (typeof w.volume_db !== "number") continue;
    const x0 = x(Math.max(w.start, t0));
    const x1 = Math.max(x(Math.min(w.end, t1)), x0 + 1);
    ctx.fillStyle = colorOf(w.speaker_id);
    ctx.globalAlpha = 0.55;
    ctx.fillRect(x0, yV(w.volume_db), x1 - x0, H - pad.b - yV(w.volume_db));
  }
  ctx.globalAlpha = 1;
  // Pitch: a dot per voiced word, joined within runs.
  ctx.strokeStyle = "#f8fafc";
  ctx.fillStyle = "#f8fafc";
  ctx.beginPath();
  let open = false;
  for (const w of shown) {
    if (typeof w.pitch_hz !== "number") { open = false; continue; }
    const px = x((w.start + w.end) / 2);
    const py = yP(w.pitch_hz);
    if (open) ctx.lineTo(px, py); else ctx.moveTo(px, py);
    open = true;
  }
  ctx.stroke();
  for (const w of shown) {
    if (typeof w.pitch_hz !== "number") continue;
    ctx.beginPath();
    ctx.arc(x((w.start + w.end) / 2), yP(w.pitch_hz), 2.5, 0, 2 * Math.PI);
    ctx.fill();
  }
  return { t0, t1, words: shown.length, voiced: pitches.length, loud: vols.length };
}
