// The playground: list or clone voices over the HTTP API, stream speech over stream-input and play
// each audio message through Web Audio the moment it arrives, with its alignment highlighted in
// time with the audio. The API key lives in the key field only; it is sent as the xi-api-key
// header over HTTP and as xi_api_key in the websocket's first message (browsers cannot set
// websocket headers). window.playground exposes what was scheduled and measured, for tests.

const OUTPUT_FORMAT = "pcm_24000"; // named explicitly: the server's default may be another format
const SAMPLE_RATE = 24000;
const LEAD_S = 0.05; // first chunk starts this far ahead of "now", so it is never late

const $ = (id) => document.getElementById(id);
const els = {
  status: $("status"), key: $("key"), voice: $("voice"), language: $("language"),
  reload: $("reload"), cloneName: $("clone-name"), cloneFile: $("clone-file"),
  cloneButton: $("clone-button"), text: $("text"), speak: $("speak"), stop: $("stop"),
  error: $("error"), firstAudio: $("first-audio"), rtf: $("rtf"), audioSeconds: $("audio-seconds"),
  chunks: $("chunks"), level: $("level"), transcript: $("transcript"),
};

// What tests read: samples handed to Web Audio, the loudest sample the graph has played, timings.
const stats = {
  state: "idle", chunks: 0, samplesScheduled: 0, audioSeconds: 0, peak: 0,
  firstAudioMs: null, rtf: null, alignedChars: 0, spokenChars: 0, error: null,
  highlightDelay: { min: null, max: null }, // seconds between a character's audio and its light
};
window.playground = stats;

let config = { auth_required: false };
let audio = null; // { ctx, analyser, samples }
let stream = null; // the running stream: { ws, sentAt, playhead, chars, next, sources, finished, failed }

// --- messages to the person ------------------------------------------------------------------

function showError(text) {
  stats.error = text;
  els.error.textContent = text;
  els.error.hidden = false;
}

function clearError() {
  stats.error = null;
  els.error.hidden = true;
  els.error.textContent = "";
}

function setStatus(text) {
  els.status.textContent = text;
}

// --- HTTP API --------------------------------------------------------------------------------

function apiKey() {
  return els.key.value.trim();
}

// The readable part of an error answer: ElevenLabs' {"detail": {"message"}}, a validation list
// {"detail": [{"msg"}]}, or the broker's {"detail": "..."}.
function describe(response, body) {
  const detail = body && body.detail;
  if (detail && typeof detail.message === "string") return detail.message;
  if (Array.isArray(detail)) return detail.map((item) => item.msg).join("; ");
  if (typeof detail === "string") return detail;
  return `HTTP ${response.status} ${response.statusText}`.trim();
}

async function api(path, init = {}) {
  const headers = new Headers(init.headers);
  if (apiKey()) headers.set("xi-api-key", apiKey());
  const response = await fetch(path, { ...init, headers });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error(describe(response, body));
  return body;
}

function fillSelect(select, first, options, keep) {
  select.replaceChildren(new Option(first.label, first.value));
  for (const { value, label } of options) select.add(new Option(label, value));
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
}

async function loadVoices(select) {
  if (config.auth_required && !apiKey()) {
    setStatus("This server needs an API key: enter it above.");
    return;
  }
  try {
    const [{ voices }, models] = await Promise.all([api("/v1/voices"), api("/v1/models")]);
    const voiceOptions = voices.map((v) => ({ value: v.voice_id, label: `${v.name} (${v.category})` }));
    fillSelect(els.voice, { value: "default", label: "Default voice" }, voiceOptions, select ?? els.voice.value);
    const languages = models.flatMap((m) => m.languages || []);
    const languageOptions = languages.map((l) => ({ value: l.language_id, label: l.name }));
    fillSelect(els.language, { value: "", label: "Server default" }, languageOptions, els.language.value);
    setStatus(`Ready: ${voices.length} voice${voices.length === 1 ? "" : "s"}.`);
    clearError();
  } catch (error) {
    setStatus("Could not list the voices.");
    showError(`Could not list the voices: ${error.message}`);
  }
}

async function cloneVoice() {
  const file = els.cloneFile.files[0];
  const name = els.cloneName.value.trim() || (file && file.name.replace(/\.[^.]*$/, ""));
  if (!file) {
    showError("Choose an audio clip to clone a voice from.");
    return;
  }
  const form = new FormData();
  form.append("name", name);
  form.append("files", file, file.name);
  els.cloneButton.disabled = true;
  setStatus(`Cloning "${name}"…`);
  try {
    const { voice_id: voiceId } = await api("/v1/voices/add", { method: "POST", body: form });
    await loadVoices(voiceId);
    setStatus(`Cloned "${name}": selected.`);
  } catch (error) {
    setStatus("Cloning failed.");
    showError(`Could not clone the voice: ${error.message}`);
  } finally {
    els.cloneButton.disabled = false;
  }
}

// --- Web Audio -------------------------------------------------------------------------------

// One context for the page, made on the first click (browsers only start audio after a gesture).
// Every chunk goes source -> analyser -> speakers; the analyser measures what really plays.
function audioGraph() {
  if (audio === null) {
    const ctx = new AudioContext();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 1024;
    analyser.connect(ctx.destination);
    audio = { ctx, analyser, samples: new Float32Array(analyser.fftSize) };
    requestAnimationFrame(animate);
  }
  return audio;
}

function decodePcm(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const view = new DataView(bytes.buffer);
  const samples = new Float32Array(bytes.length >> 1);
  for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(2 * i, true) / 32768;
  return samples;
}

function schedule(current, message) {
  const { ctx, analyser } = audioGraph();
  const samples = decodePcm(message.audio);
  if (samples.length === 0) return;
  const buffer = ctx.createBuffer(1, samples.length, SAMPLE_RATE);
  buffer.copyToChannel(samples, 0);
  const source = ctx.createBufferSource();
  source.buffer = buffer;
  source.connect(analyser);
  const startAt = Math.max(current.playhead, ctx.currentTime + LEAD_S);
  source.start(startAt);
  current.sources.push(source);
  current.playhead = startAt + buffer.duration;
  stats.chunks += 1;
  stats.samplesScheduled += samples.length;
  stats.audioSeconds += buffer.duration;
  // Alignment times are relative to this message's audio: place each character on the clock.
  const alignment = message.alignment || message.normalizedAlignment;
  if (alignment && Array.isArray(alignment.chars)) {
    alignment.chars.forEach((char, i) => {
      const span = document.createElement("span");
      span.textContent = char;
      els.transcript.append(span);
      current.chars.push({ at: startAt + (alignment.charStartTimesMs[i] || 0) / 1000, span });
    });
    stats.alignedChars += alignment.chars.length;
  }
}

// Each frame: light up the characters whose time has come, show the output level.
function animate() {
  const { ctx, analyser, samples } = audio;
  analyser.getFloatTimeDomainData(samples);
  let peak = 0;
  for (const s of samples) peak = Math.max(peak, Math.abs(s));
  stats.peak = Math.max(stats.peak, peak);
  els.level.style.width = `${Math.min(100, peak * 100)}%`;
  const current = stream;
  if (current) {
    const now = ctx.currentTime;
    while (current.next < current.chars.length && current.chars[current.next].at <= now) {
      if (current.next > 0) current.chars[current.next - 1].span.className = "spoken";
      current.chars[current.next].span.className = "now";
      // How late after its audio a character lit up (never early: it waits for the clock).
      const late = now - current.chars[current.next].at;
      stats.highlightDelay.min = Math.min(stats.highlightDelay.min ?? late, late);
      stats.highlightDelay.max = Math.max(stats.highlightDelay.max ?? late, late);
      current.next += 1;
      stats.spokenChars = current.next;
    }
    if (current.finished && now >= current.playhead) {
      if (current.next > 0) current.chars[current.next - 1].span.className = "spoken";
      stream = null;
      stats.state = "done";
      setStatus("Done.");
      els.stop.disabled = true;
    }
  }
  requestAnimationFrame(animate);
}

// --- streaming -------------------------------------------------------------------------------

function resetStream() {
  Object.assign(stats, {
    chunks: 0, samplesScheduled: 0, audioSeconds: 0, firstAudioMs: null, rtf: null,
    alignedChars: 0, spokenChars: 0, highlightDelay: { min: null, max: null },
  });
  for (const el of [els.firstAudio, els.rtf, els.audioSeconds, els.chunks]) el.textContent = "–";
  els.transcript.replaceChildren();
}

function showTimings() {
  els.chunks.textContent = String(stats.chunks);
  els.audioSeconds.textContent = `${stats.audioSeconds.toFixed(2)} s`;
  if (stats.firstAudioMs !== null) els.firstAudio.textContent = `${Math.round(stats.firstAudioMs)} ms`;
  if (stats.rtf !== null) els.rtf.textContent = stats.rtf.toFixed(2);
}

function closeText(event, opened) {
  const reason = event.reason ? `: ${event.reason}` : "";
  if (!opened) return `Could not open the stream to the server (close ${event.code}${reason}).`;
  if (event.code === 1006) return "The connection to the server was lost (close 1006).";
  return `The server closed the stream (close ${event.code}${reason}).`;
}

// Ends the running stream: closes its socket and silences what it scheduled.
function stopStream() {
  if (stream) {
    stream.ws.close(1000);
    for (const source of stream.sources) source.stop();
    stream = null;
  }
  stats.state = "idle";
  els.stop.disabled = true;
}

async function speak() {
  clearError();
  const text = els.text.value.trim();
  if (!text) {
    showError("Type something to say first.");
    return;
  }
  if (config.auth_required && !apiKey()) {
    showError("This server needs an API key: enter it above.");
    return;
  }
  stopStream();
  resetStream();
  const { ctx } = audioGraph();
  await ctx.resume();
  const query = new URLSearchParams({ output_format: OUTPUT_FORMAT });
  if (els.language.value) query.set("language_code", els.language.value);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const voice = encodeURIComponent(els.voice.value || "default");
  const ws = new WebSocket(`${scheme}//${location.host}/v1/text-to-speech/${voice}/stream-input?${query}`);
  const current = { ws, sentAt: 0, playhead: 0, chars: [], next: 0, sources: [], finished: false, failed: false };
  stream = current;
  stats.state = "connecting";
  els.stop.disabled = false;
  setStatus("Connecting…");

  ws.onopen = () => {
    const first = { text: " " };
    if (apiKey()) first.xi_api_key = apiKey();
    ws.send(JSON.stringify(first));
    current.sentAt = performance.now();
    ws.send(JSON.stringify({ text: `${text} ` }));
    ws.send(JSON.stringify({ text: "" })); // end of input: generate the rest, then close
    stats.state = "streaming";
    setStatus("Streaming…");
  };
  ws.onmessage = (event) => {
    if (stream !== current) return;
    const message = JSON.parse(event.data);
    if (message.error) {
      current.failed = true;
      showError(`${message.message} (${message.error})`);
      return;
    }
    if (message.audio) {
      if (stats.firstAudioMs === null) stats.firstAudioMs = performance.now() - current.sentAt;
      schedule(current, message);
    }
    if (message.isFinal) {
      current.finished = true;
      const seconds = (performance.now() - current.sentAt) / 1000;
      stats.rtf = stats.audioSeconds > 0 ? seconds / stats.audioSeconds : null;
      setStatus("Playing the rest…");
    }
    showTimings();
  };
  ws.onclose = (event) => {
    if (stream !== current) return;
    if (!current.finished) {
      if (!current.failed) showError(closeText(event, current.sentAt > 0));
      stream = null;
      stats.state = "error";
      setStatus("Stopped.");
      els.stop.disabled = true;
    }
  };
}

// --- start -----------------------------------------------------------------------------------

async function start() {
  try {
    const response = await fetch("config.json");
    if (response.ok) config = await response.json();
  } catch {
    // No config: assume no key is needed; a request that needs one says so.
  }
  els.key.placeholder = config.auth_required ? "xi-api-key (required here)" : "not needed by this server";
  els.key.addEventListener("change", () => loadVoices());
  els.reload.addEventListener("click", () => loadVoices());
  els.cloneButton.addEventListener("click", cloneVoice);
  els.speak.addEventListener("click", speak);
  els.stop.addEventListener("click", () => {
    stopStream();
    setStatus("Stopped.");
  });
  await loadVoices();
  document.body.dataset.ready = "true";
}

start();
