// ECG web page, the shared page state and small DOM and formatting helpers every module uses.

import { PALETTE } from "./constants.js";

export const $ = (id) => document.getElementById(id);

// The one page state: the chosen file, the job shown, its result and how it is drawn.
export const state = {
  file: null, jobId: null, result: null, colors: {}, volume: null, segIndex: -1, clock: null,
  names: {}, plotMode: "all", plotSeg: 0, plot: null,
};

export function setState(name) { document.body.dataset.state = name; }

export function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
  setState("error");
  $("analyze-btn").disabled = !state.file;
}

export function clearError() { $("error").hidden = true; $("error").textContent = ""; }

export function fmtTime(t) {
  const s = Math.max(0, t || 0);
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(1).padStart(4, "0")}`;
}

export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

export function el(tag, cls, text) {
  const n = document.createElement(tag);
  if (cls) n.className = cls;
  if (text !== undefined) n.textContent = text;
  return n;
}

export function nameOf(id) { return state.names[id] || id; }

export function speakerColor(id) {
  if (!(id in state.colors)) state.colors[id] = PALETTE[Object.keys(state.colors).length % PALETTE.length];
  return state.colors[id];
}
