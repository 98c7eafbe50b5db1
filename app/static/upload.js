// ECG web page, upload and processing: choose a file, upload it to its presigned URL with
// progress, start the analysis and follow it stage by stage (the guide's client flow).

import { api } from "./api.js";
import { API, DEFAULT_STAGES, POLL_MS } from "./constants.js";
import { $, clearError, fmtBytes, setState, showError, state } from "./page.js";

let stages = DEFAULT_STAGES;

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

export function wireDropzone() {
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

export async function loadStages() {
  try {
    const resp = await fetch(`${API}/stages`);
    const body = resp.ok ? await resp.json() : null;
    if (body && Array.isArray(body.stages) && body.stages.length) stages = body.stages;
  } catch (_) { /* keep the built-in list */ }
}

function renderStages(current, status) {
  const idx = stages.indexOf(current);
  $("stages").innerHTML = "";
  for (const [i, name] of stages.entries()) {
    const li = document.createElement("li");
    li.textContent = name;
    if (status === "completed" || (idx >= 0 && i < idx)) li.className = "done";
    else if (i === idx) li.className = status === "failed" ? "failed" : "active";
    $("stages").appendChild(li);
  }
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// Upload the chosen file, start its job and wait for it; `onDone(status, file)` shows it.
async function analyze(onDone) {
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
    if ($("model").value) body.model = $("model").value;
    const job = await api(`${API}/request-process`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    state.jobId = job.job_id;
    state.names = {};
    const status = await poll(job.job_id);
    onDone(status, file);
  } catch (err) {
    showError(err.message);
  }
}

export function wireAnalyze(onDone) {
  $("analyze-btn").addEventListener("click", () => analyze(onDone));
}

// Follow the job until it is final: its status once completed; a failure is thrown.
export async function poll(jobId) {
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
