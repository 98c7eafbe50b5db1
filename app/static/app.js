// ECG web page: the guide's client flow in the browser, then expressive captions over playback.
// ES modules, no build step; talks only to the backend's documented API. This module shows a
// result (summary, speakers, transcript, charts), keeps the history and permalinks, and wires
// the page: api.js (backend calls), upload.js (upload and progress), player.js (captions),
// charts.js (timeline and plot), page.js (state and helpers), constants.js.

import { api, authHeaders, errorText } from "./api.js";
import { renderPlot, renderTimeline } from "./charts.js";
import { API, DOWNLOADS, HISTORY_KEY, HISTORY_MAX, LOW_LANGUAGE_CONFIDENCE } from "./constants.js";
import { $, el, fmtTime, nameOf, setState, showError, speakerColor, state } from "./page.js";
import { currentTime, emotionBadge, renderAt, seek, volumeScale, wirePlayer } from "./player.js";
import { loadStages, poll, wireAnalyze, wireDropzone } from "./upload.js";

// ------------------------------------------------------------------ result display

// "en (97%)"; a guess below LOW_LANGUAGE_CONFIDENCE says so, since the transcript may be wrong.
function languageText(meta) {
  if (!meta.language) return "–";
  const p = meta.language_probability;
  if (typeof p !== "number") return meta.language;
  const pct = Math.round(p * 100);
  return p < LOW_LANGUAGE_CONFIDENCE ? `${meta.language}? (low confidence, ${pct}%)` : `${meta.language} (${pct}%)`;
}

// The pipeline reports seconds per stage; a `total` key wins when present.
function analysisSeconds(pt) {
  if (!pt) return "–";
  const total = typeof pt.total === "number" ? pt.total : Object.values(pt).reduce((a, b) => a + (Number(b) || 0), 0);
  return total > 0 ? `${total.toFixed(1)} s` : "–";
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

// A link cannot carry a header: with a token, downloads go through fetch and a blob.
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

// The models the server holds (`GET /v1/models`); `whisper-1` is its default, the first entry.
async function offerModels() {
  let listed = [];
  try {
    listed = (await api("/v1/models")).data.map((m) => m.id).filter((id) => id !== "whisper-1");
  } catch (_) {
    return; // an older server, or sign-in needed first: the default model runs
  }
  const select = $("model");
  const chosen = select.value;
  const options = [["", "server default"], ...listed.map((id) => [id, id])];
  select.replaceChildren(...options.map(([value, text]) => {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    return o;
  }));
  select.value = listed.includes(chosen) ? chosen : "";
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

// The page's state and result view, reachable from the browser console and the page tests.
Object.assign(window, { state, showResult, seek });

wireDropzone();
wirePlayer();
wireDownloads();
wirePlot();
renderHistory();
// A permalink shows its stage chips: the server's stage list first, or the chips of a
// finished job are drawn from the built-in copy and never redrawn.
loadStages().finally(openPermalink);
wireAnalyze((status, file) => {
  remember(state.jobId, file.name);
  showResult(status.result, file);
});
checkHealth();
offerModels();
$("token").addEventListener("change", offerModels);
setInterval(checkHealth, 15000);
