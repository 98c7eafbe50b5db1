// ECG web page: the guide's client flow in the browser, then expressive captions over playback.
// Plain script, no build step. Talks only to the backend's documented API.
"use strict";

const API = "/api/upload-video";
// The chips follow the server's own stage list (GET /api/upload-video/stages); this copy only
// until it answers.
let STAGES = ["queued", "download", "decode", "vad", "transcribe", "align", "diarize", "prosody", "emotion", "finalize"];
// Below this, Whisper's language guess is less likely than not: the page says it is a guess.
const LOW_LANGUAGE_CONFIDENCE = 0.5;
const PALETTE = ["#38bdf8", "#f472b6", "#facc15", "#34d399", "#a78bfa", "#fb923c", "#f87171", "#2dd4bf"];
const EMOJI = {
  neutral: "😐", calm: "😌", happy: "😊", joy: "😊", positive: "🙂", excited: "🤩",
  sad: "😢", sadness: "😢", negative: "🙁", angry: "😠", anger: "😠", fear: "😨",
  fearful: "😨", surprise: "😮", surprised: "😮", disgust: "🤢", frustrated: "😤",
};
const POLL_MS = 400;

const $ = (id) => document.getElementById(id);
const state = {
  file: null, jobId: null, result: null, colors: {}, volume: null, segIndex: -1, clock: null,
  names: {}, plotMode: "all", plotSeg: 0, plot: null,
};
const HISTORY_KEY = "ecg.history";
const HISTORY_MAX = 20;

function setState(name) { document.body.dataset.state = name; }

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
  setState("error");
  $("analyze-btn").disabled = !state.file;
}

function clearError() { $("error").hidden = true; $("error").textContent = ""; }

function fmtTime(t) {
  const s = Math.max(0, t || 0);
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(1).padStart(4, "0")}`;
}

function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

// The backend answers errors as {"error": CODE, "detail": "…" | [{loc, msg}]}.
async function errorText(resp) {
  let body = null;
  try { body = await resp.json(); } catch (_) { /* not JSON */ }
  if (body && body.detail !== undefined) {
    const d = body.detail;
    if (Array.isArray(d) && d.length) return d.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("; ");
    if (typeof d === "object") return d.message || d.error || JSON.stringify(d);
    return String(d);
  }
  return `${resp.status} ${resp.statusText}`;
}

// An optional Bearer token (servers with JWT_SECRET); kept for this browser tab only.
function authHeaders() {
  const token = $("token").value.trim();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function api(path, options = {}) {
  let resp;
  try {
    resp = await fetch(path, { ...options, headers: { ...(options.headers || {}), ...authHeaders() } });
  } catch (err) {
    throw new Error(`Cannot reach the backend (${err.message}).`);
  }
  if (!resp.ok) throw new Error(`${await errorText(resp)} (HTTP ${resp.status})`);
  return resp.json();
}

// ------------------------------------------------------------------ file choice

function chooseFile(file) {
  if (!file) return;
  clearError();
  state.file = file;
  $("drop-title").textContent = file.name;
  $("drop-hint").textContent = `${fmtBytes(file.size)} · ${file.type || "unknown type"}`;
  $("dropzone").classList.add("has-file");
  $("analyze-btn").disabled = false;
  setState("ready");
}

function wireDropzone() {
  const zone = $("dropzone");
  $("file-input").addEventListener("change", (e) => chooseFile(e.target.files[0]));
  ["dragenter", "dragover"].forEach((ev) => zone.addEventListener(ev, (e) => {
    e.preventDefault(); zone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((ev) => zone.addEventListener(ev, (e) => {
    e.preventDefault(); zone.classList.remove("over");
  }));
  zone.addEventListener("drop", (e) => chooseFile(e.dataTransfer.files[0]));
  zone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file-input").click(); }
  });
}

// ------------------------------------------------------------------ upload + process

function uploadWithProgress(url, file, contentType) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.setRequestHeader("Content-Type", contentType);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) setBar("upload", (100 * e.loaded) / e.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) { setBar("upload", 100); resolve(); return; }
      const m = /<Message>([^<]*)<\/Message>/.exec(xhr.responseText || "");
      let detail = m ? m[1] : "";
      try { detail = detail || JSON.parse(xhr.responseText).detail; } catch (_) { /* plain text */ }
      reject(new Error(`Upload refused: ${detail || xhr.statusText} (HTTP ${xhr.status})`));
    };
    xhr.onerror = () => reject(new Error("Upload failed: the storage server could not be reached."));
    xhr.send(file);
  });
}

function setBar(which, pct) {
  const v = Math.max(0, Math.min(100, pct));
  $(`${which}-bar`).style.width = `${v}%`;
  $(`${which}-pct`).textContent = `${Math.round(v)}%`;
}

async function loadStages() {
  try {
    const resp = await fetch(`${API}/stages`);
    const body = resp.ok ? await resp.json() : null;
    if (body && Array.isArray(body.stages) && body.stages.length) STAGES = body.stages;
  } catch (_) { /* keep the built-in list */ }
}

function renderStages(current, status) {
  const idx = STAGES.indexOf(current);
  $("stages").innerHTML = "";
  for (const [i, name] of STAGES.entries()) {
    const li = document.createElement("li");
    li.textContent = name;
    if (status === "completed" || (idx >= 0 && i < idx)) li.className = "done";
    else if (i === idx) li.className = status === "failed" ? "failed" : "active";
    $("stages").appendChild(li);
  }
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

async function analyze() {
  const file = state.file;
  if (!file) return;
  clearError();
  $("analyze-btn").disabled = true;
  $("progress").hidden = false;
  $("upload-row").hidden = false;
  $("results").hidden = true;
  setBar("upload", 0);
  setBar("analysis", 0);
  renderStages("queued", "pending");
  try {
    setState("uploading");
    $("status-line").textContent = "Requesting an upload URL…";
    const contentType = file.type || "video/mp4";
    const urls = await api(`${API}/generate-url`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ filename: file.name, content_type: contentType }),
    });
    const target = new URL(urls.presigned_url || urls.url, window.location.href).toString();
    $("status-line").textContent = `Uploading ${fmtBytes(file.size)}…`;
    await uploadWithProgress(target, file, contentType);

    setState("processing");
    $("status-line").textContent = "Starting the analysis…";
    const body = { fileKey: urls.file_key || urls.fileKey, language: $("language").value };
    const minS = parseInt($("min-speakers").value, 10);
    const maxS = parseInt($("max-speakers").value, 10);
    if (minS > 0) body.min_speakers = minS;
    if (maxS > 0) body.max_speakers = maxS;
    if ($("task").value === "translate") body.task = "translate";
    const job = await api(`${API}/request-process`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    state.jobId = job.job_id;
    state.names = {};
    const status = await poll(job.job_id);
    remember(job.job_id, file.name);
    showResult(status.result, file);
  } catch (err) {
    showError(err.message);
  }
}

async function poll(jobId) {
  for (;;) {
    const s = await api(`${API}/status/${jobId}`);
    setBar("analysis", s.progress || 0);
    renderStages(s.stage || (s.status === "pending" ? "queued" : ""), s.status);
    $("status-line").textContent = `Job ${jobId.slice(0, 8)} · ${s.status}${s.stage ? ` · ${s.stage}` : ""}`;
    if (s.status === "completed") { setBar("analysis", 100); return s; }
    if (s.status === "failed") {
      throw new Error(`Analysis failed: ${s.error_code || "UNKNOWN_ERROR"} — ${s.error_message || "no details"}`);
    }
    await sleep(POLL_MS);
  }
}

// ------------------------------------------------------------------ result display

function nameOf(id) { return state.names[id] || id; }

function speakerColor(id) {
  if (!(id in state.colors)) state.colors[id] = PALETTE[Object.keys(state.colors).length % PALETTE.length];
  return state.colors[id];
}

// Word size is relative to this recording: the 10th..90th percentile of volume_db spans the scale.
function volumeScale(segments) {
  const vols = segments.flatMap((s) => s.words.map((w) => w.volume_db)).filter((v) => typeof v === "number");
  if (!vols.length) return () => 1;
  vols.sort((a, b) => a - b);
  const lo = vols[Math.floor(vols.length * 0.1)];
  const hi = vols[Math.floor(vols.length * 0.9)];
  const span = Math.max(hi - lo, 1);
  return (v) => (typeof v !== "number" ? 1 : 0.8 + 0.75 * Math.min(1, Math.max(0, (v - lo) / span)));
}

// "en (97%)"; a guess below LOW_LANGUAGE_CONFIDENCE says so, since the transcript may be wrong.
function languageText(meta) {
  if (!meta.language) return "–";
  const p = meta.language_probability;
  if (typeof p !== "number") return meta.language;
  const pct = Math.round(p * 100);
  return p < LOW_LANGUAGE_CONFIDENCE ? `${meta.language}? (low confidence, ${pct}%)` : `${meta.language} (${pct}%)`;
}

function emotionBadge(emotion) {
  if (!emotion || !emotion.label) return "";
  const e = EMOJI[emotion.label.toLowerCase()] || "💬";
  const pct = typeof emotion.score === "number" ? ` ${Math.round(emotion.score * 100)}%` : "";
  return `${e} ${emotion.label}${pct}`;
}

// The pipeline reports seconds per stage; a `total` key wins when present.
function analysisSeconds(pt) {
  if (!pt) return "–";
  const total = typeof pt.total === "number" ? pt.total : Object.values(pt).reduce((a, b) => a + (Number(b) || 0), 0);
  return total > 0 ? `${total.toFixed(1)} s` : "–";
}

function el(tag, cls, text) {
  const n = document.createElement(tag);
  if (cls) n.className = cls;
  if (text !== undefined) n.textContent = text;
  return n;
}

// A <video> cannot send the token: the stored upload plays from a short-lived signed URL.
async function playStored(video, jobId) {
  try {
    const media = await api(`/api/jobs/${jobId}/media-url`);
    if (state.jobId === jobId) video.src = media.url;
  } catch (err) {
    showError(`The stored video cannot be played: ${err.message}`);
  }
}

// `file` is the local file just analysed; a permalink (file null) plays the stored upload.
function showResult(result, file) {
  state.result = result;
  state.colors = {};
  state.segIndex = -1;
  const segments = result.segments || [];
  segments.forEach((s) => speakerColor(s.speaker.speaker_id));
  state.volume = volumeScale(segments);
  const meta = result.metadata || {};

  const video = $("video");
  if (video.dataset.url) URL.revokeObjectURL(video.dataset.url);
  video.dataset.url = file ? URL.createObjectURL(file) : "";
  if (file) video.src = video.dataset.url;
  else playStored(video, state.jobId);

  renderSpeakers(segments);

  // Transcript list; a click seeks the player there.
  const list = $("segment-list");
  list.innerHTML = "";
  segments.forEach((s, i) => {
    const li = el("li");
    li.dataset.index = String(i);
    li.dataset.speaker = s.speaker.speaker_id;
    li.style.setProperty("--speaker", speakerColor(s.speaker.speaker_id));
    const head = el("div", "seg-head");
    // A turn read in another language than the media's says which (and `lang` lets the
    // browser pick the right fonts and voice for it, Chinese glyphs in French media say).
    const language = s.language || meta.language || "";
    const other = language && language !== meta.language ? `${language.toUpperCase()} · ` : "";
    head.append(el("span", "spk", nameOf(s.speaker.speaker_id)), el("span", "", `${other}${emotionBadge(s.emotion)}  ${fmtTime(s.start)}–${fmtTime(s.end)}`));
    const text = el("div", "seg-text", s.text.trim());
    if (language) text.lang = language;
    li.append(head, text);
    li.addEventListener("click", () => seek(s.start + 0.01));
    list.appendChild(li);
  });

  const stats = [
    ["Duration", meta.duration ? fmtTime(meta.duration) : "–"],
    ["Speakers", meta.unique_speakers ?? Object.keys(state.colors).length],
    ["Segments", meta.total_segments ?? segments.length],
    ["Language", languageText(meta)],
    ["Analysis time", analysisSeconds(meta.processing_time)],
  ];
  const summary = $("summary");
  summary.innerHTML = "";
  stats.forEach(([k, v]) => { const d = el("div", "stat", k); d.prepend(el("b", "", String(v))); summary.appendChild(d); });

  const stem = ((file && file.name) || (meta.filename || "video").replace(/^\d{8}_\d{6}_[0-9a-f]{8}_/, "")).replace(/\.[^.]+$/, "");
  for (const fmt of DOWNLOADS) {
    const a = $(`dl-${fmt}`);
    a.href = `${API}/result/${state.jobId}?format=${fmt}`;
    a.setAttribute("download", `${stem}.${fmt}`);
  }

  state.plotMode = "all";
  state.plotSeg = 0;
  drawVoice();
  $("results").hidden = false;
  $("status-line").textContent = `Done: ${segments.length} segments, ${Object.keys(state.colors).length} speakers.`;
  setState("done");
  $("analyze-btn").disabled = false;
  renderAt(0);
}

// Speakers with their talk time; a click on a name renames the speaker for this job.
function renderSpeakers(segments) {
  const talk = {};
  segments.forEach((s) => { talk[s.speaker.speaker_id] = (talk[s.speaker.speaker_id] || 0) + (s.end - s.start); });
  const spk = $("speakers");
  spk.innerHTML = "";
  Object.keys(state.colors).forEach((id) => {
    const li = el("li", "speaker");
    li.dataset.speaker = id;
    li.style.setProperty("--speaker", state.colors[id]);
    const name = el("span", "name", nameOf(id));
    name.title = `${id} — click to rename`;
    name.addEventListener("click", () => startRename(li, name, id));
    li.append(el("span", "swatch"), name, el("span", "talk", `${fmtTime(talk[id])} spoken`));
    spk.appendChild(li);
  });
}

function startRename(li, name, id) {
  const input = Object.assign(document.createElement("input"), { className: "rename", value: nameOf(id), maxLength: 64 });
  name.replaceWith(input);
  input.focus();
  input.select();
  let done = false;
  const finish = async (save) => {
    if (done) return;
    done = true;
    if (save && input.value.trim() !== nameOf(id)) {
      try {
        const body = await api(`/api/jobs/${state.jobId}/speakers`, {
          method: "PUT",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ names: { [id]: input.value.trim() } }),
        });
        state.names = body.names || {};
      } catch (err) {
        showError(`Rename failed: ${err.message}`);
      }
    }
    refreshNames();
  };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") finish(true);
    if (e.key === "Escape") finish(false);
  });
  input.addEventListener("blur", () => finish(true));
}

// Every place a speaker is named: the list, the transcript, the timeline and the caption.
function refreshNames() {
  const segments = state.result ? state.result.segments : [];
  renderSpeakers(segments);
  document.querySelectorAll("#segment-list li").forEach((li) => {
    li.querySelector(".spk").textContent = nameOf(li.dataset.speaker);
  });
  drawVoice();
  state.segIndex = -2;  // redraw the caption with the new name
  renderAt(currentTime());
}

function currentTime() {
  const video = $("video");
  return video.readyState >= 1 && !video.error ? video.currentTime : (state.clock || 0);
}

// The timeline (who talks when) and the loudness/pitch plot of the clip or of one segment.
function drawVoice() {
  if (!state.result) return;
  const segments = state.result.segments || [];
  const duration = (state.result.metadata || {}).duration || 0;
  renderTimeline($("timeline"), segments, duration, speakerColor, nameOf, (i) => {
    state.plotMode = "seg";
    state.plotSeg = i;
    drawPlot();
    seek(segments[i].start + 0.01);
  });
  drawPlot();
}

function drawPlot() {
  const segments = state.result.segments || [];
  const words = segments.flatMap((s) => s.words.map((w) => ({ ...w, speaker_id: w.speaker_id || s.speaker.speaker_id })));
  let t0 = 0;
  let t1 = Math.max((state.result.metadata || {}).duration || 0, ...segments.map((s) => s.end), 0.001);
  const seg = segments[state.plotSeg];
  if (state.plotMode === "seg" && seg) { t0 = seg.start; t1 = seg.end; }
  state.plot = renderPlot($("prosody-plot"), words, t0, t1, speakerColor);
  $("plot-range").textContent = state.plotMode === "seg" && seg
    ? `· ${nameOf(seg.speaker.speaker_id)}, ${fmtTime(t0)}–${fmtTime(t1)}` : "· whole clip";
  $("plot-all").classList.toggle("active", state.plotMode !== "seg");
  $("plot-seg").classList.toggle("active", state.plotMode === "seg");
  document.querySelectorAll("#timeline .turn").forEach((b) => {
    b.classList.toggle("current", state.plotMode === "seg" && Number(b.dataset.index) === state.plotSeg);
  });
}

function wirePlot() {
  $("plot-all").addEventListener("click", () => { state.plotMode = "all"; if (state.result) drawPlot(); });
  $("plot-seg").addEventListener("click", () => {
    state.plotMode = "seg";
    if (state.segIndex >= 0) state.plotSeg = state.segIndex;
    if (state.result) drawPlot();
  });
}

// ------------------------------------------------------------------ history and permalinks

function loadHistory() {
  try { return JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]"); } catch (_) { return []; }
}

function remember(jobId, name) {
  const items = [{ id: jobId, name, at: new Date().toISOString() }, ...loadHistory().filter((h) => h.id !== jobId)];
  localStorage.setItem(HISTORY_KEY, JSON.stringify(items.slice(0, HISTORY_MAX)));
  window.history.replaceState(null, "", `?job=${encodeURIComponent(jobId)}`);
  renderHistory();
}

function renderHistory() {
  const items = loadHistory();
  $("history-card").hidden = !items.length;
  const list = $("history");
  list.innerHTML = "";
  for (const h of items) {
    const li = el("li");
    const a = el("a", "", h.name || h.id);
    a.href = `?job=${encodeURIComponent(h.id)}`;
    li.append(a, el("span", "muted small", new Date(h.at).toLocaleString()));
    list.appendChild(li);
  }
}

// `?job=<id>`: show that job (waiting for it if it is still running) — a reload keeps the result.
async function openPermalink() {
  const jobId = new URLSearchParams(window.location.search).get("job");
  if (!jobId) return;
  state.jobId = jobId;
  $("progress").hidden = false;
  $("upload-row").hidden = true; // nothing is uploaded here: the video is already stored
  try {
    setState("processing");
    const status = await poll(jobId);
    try {
      state.names = (await api(`/api/jobs/${jobId}/speakers`)).names || {};
    } catch (_) {
      state.names = {};
    }
    showResult(status.result, null);
  } catch (err) {
    showError(err.message);
  }
}

function seek(t) {
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

function renderAt(t) {
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

// A link cannot carry a header: with a token, downloads go through fetch and a blob.
const DOWNLOADS = ["srt", "vtt", "json", "ass", "txt"];

function wireDownloads() {
  for (const fmt of DOWNLOADS) {
    $(`dl-${fmt}`).addEventListener("click", async (e) => {
      if (!$("token").value.trim()) return;
      e.preventDefault();
      const a = e.currentTarget;
      try {
        const resp = await fetch(a.href, { headers: authHeaders() });
        if (!resp.ok) throw new Error(`${await errorText(resp)} (HTTP ${resp.status})`);
        const url = URL.createObjectURL(await resp.blob());
        const tmp = Object.assign(document.createElement("a"), { href: url, download: a.getAttribute("download") });
        tmp.click();
        setTimeout(() => URL.revokeObjectURL(url), 10000);
      } catch (err) {
        showError(`Download failed: ${err.message}`);
      }
    });
  }
}

function wirePlayer() {
  const video = $("video");
  const tick = () => {
    if (!video.paused) { renderAt(video.currentTime); requestAnimationFrame(tick); }
  };
  video.addEventListener("play", () => requestAnimationFrame(tick));
  video.addEventListener("seeked", () => renderAt(video.currentTime));
  video.addEventListener("timeupdate", () => renderAt(video.currentTime));
}

// The language menu offers what the ML server's model can transcribe (its /health lists them);
// the static options stay only until the first answer.
let offeredLanguages = "";
function offerLanguages(codes) {
  const key = codes.join(",");
  if (key === offeredLanguages) return;
  offeredLanguages = key;
  const select = $("language");
  const chosen = select.value;
  let names = null;
  try { names = new Intl.DisplayNames(["en"], { type: "language" }); } catch (_) { names = null; }
  const label = (c) => { try { return (names && names.of(c)) || c; } catch (_) { return c; } };
  const options = [["auto", "auto-detect"], ...codes.map((c) => [c, `${label(c)} (${c})`])
    .sort((a, b) => a[1].localeCompare(b[1]))];
  select.replaceChildren(...options.map(([value, text]) => {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    return o;
  }));
  select.value = options.some(([v]) => v === chosen) ? chosen : "auto";
}

async function checkHealth() {
  const badge = $("ml-health");
  try {
    const resp = await fetch(`${API}/ml-server/health`);
    const body = await resp.json();
    const ok = resp.ok && body.status === "healthy";
    badge.textContent = ok ? `ML server ● ${Math.round(body.response_time_ms || 0)} ms` : "ML server ● down";
    badge.className = `health ${ok ? "ok" : "bad"}`;
    if (ok && Array.isArray(body.languages)) offerLanguages(body.languages);
  } catch (_) {
    badge.textContent = "ML server ● unreachable";
    badge.className = "health bad";
  }
}

wireDropzone();
wirePlayer();
loadStages();
wireDownloads();
wirePlot();
renderHistory();
openPermalink();
$("analyze-btn").addEventListener("click", analyze);
checkHealth();
setInterval(checkHealth, 15000);
