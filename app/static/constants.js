// ECG web page, constants. PALETTE and LOUDNESS are the caption export's too
// (app/services/captions/ass.py); tests/product/test_page_constants.py keeps them equal.

// One colour per speaker, in order of first appearance.
export const PALETTE = ["#38bdf8", "#f472b6", "#facc15", "#34d399", "#a78bfa", "#fb923c", "#f87171", "#2dd4bf"];

// Word size from loudness, relative to the recording: its low..high percentile of volume_db
// (at least minSpanDb apart) spans sizes floor..floor+range of the base size.
export const LOUDNESS = { lowPercentile: 0.1, highPercentile: 0.9, minSpanDb: 1, floor: 0.8, range: 0.75 };

export const API = "/api/upload-video";
// The chips follow the server's own stage list (GET /api/upload-video/stages); this copy only
// until it answers.
export const DEFAULT_STAGES = ["queued", "download", "decode", "vad", "transcribe", "align", "diarize", "prosody", "emotion", "finalize"];
// Below this, Whisper's language guess is less likely than not: the page says it is a guess.
export const LOW_LANGUAGE_CONFIDENCE = 0.5;
export const EMOJI = {
  neutral: "😐", calm: "😌", happy: "😊", joy: "😊", positive: "🙂", excited: "🤩",
  sad: "😢", sadness: "😢", negative: "🙁", angry: "😠", anger: "😠", fear: "😨",
  fearful: "😨", surprise: "😮", surprised: "😮", disgust: "🤢", frustrated: "😤",
};
export const POLL_MS = 400;
export const HISTORY_KEY = "ecg.history";
export const HISTORY_MAX = 20;
// The result's download formats (GET /api/upload-video/result/{id}?format=…).
export const DOWNLOADS = ["srt", "vtt", "json", "ass", "txt"];
