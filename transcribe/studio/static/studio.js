// transcribe studio: the page. Plain JavaScript, no build step, nothing fetched from elsewhere.
"use strict";

const TOKEN = document.querySelector('meta[name="studio-token"]').content;
const $ = (id) => document.getElementById(id);
const NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];
const noteName = (p) => NAMES[p % 12] + (Math.floor(p / 12) - 1);
const isBlack = (p) => [1, 3, 6, 8, 10].includes(p % 12);
const KEYS_W = 46;  // keyboard width, px

const state = {
  jobs: [], refused: [], current: null, notes: null, seconds: 0, maxDur: 0,
  view: 0, pxPerSec: 80, lo: 21, hi: 108, playhead: 0, playing: null, decodeSeq: 0, config: null,
};

function api(path, opts = {}) {
  opts.headers = Object.assign({"X-Studio-Token": TOKEN}, opts.headers || {});
  return fetch(path, opts);
}

window.__messages = [];  // what the page said, for its tests
function say(text, isError = false) {
  if (text) window.__messages.push(text);
  const m = $("message");
  m.textContent = text;
  m.className = isError ? "error" : "";
}

async function errorOf(resp) {
  try { return (await resp.json()).error || resp.statusText; } catch (e) { return resp.statusText; }
}

// ------------------------------------------------------------------ settings

function settings() {
  return {
    onset_threshold: +$("onset").value, frame_threshold: +$("frame").value,
    min_note_ms: +$("minms").value, min_pitch: +$("lowkey").value, max_pitch: +$("highkey").value,
    pedal: $("pedal").checked, notes: $("notekind").value,
  };
}

function showValues() {
  $("onset-v").textContent = (+$("onset").value).toFixed(2);
  $("frame-v").textContent = (+$("frame").value).toFixed(2);
  $("minms-v").textContent = $("minms").value + " ms";
  $("lowkey-v").textContent = noteName(+$("lowkey").value);
  $("highkey-v").textContent = noteName(+$("highkey").value);
}

async function loadConfig() {
  const r = await api("/api/config");
  state.config = await r.json();
  const d = state.config.decode;
  $("onset").value = d.onset_threshold; $("frame").value = d.frame_threshold;
  $("minms").value = d.min_note_ms; $("lowkey").value = d.min_pitch; $("highkey").value = d.max_pitch;
  $("pedal").checked = d.pedal; $("notekind").value = d.notes;
  if (state.config.sonify) { $("play-rendered").classList.remove("hidden"); $("dl-sonified").classList.remove("hidden"); }
  else $("play-rendered").title = state.config.sonify_reason;
  if (!d.has_pedal) { $("pedal").disabled = true; $("notekind").disabled = true; }
  showValues();
}

function onSettingChange(ev) {
  if (ev && ev.target.id === "notekind" && $("notekind").value === "key") $("pedal").checked = true;
  if (ev && ev.target.id === "pedal" && !$("pedal").checked) $("notekind").value = "sounding";
  if (+$("lowkey").value > +$("highkey").value) {
    if (ev && ev.target.id === "lowkey") $("highkey").value = $("lowkey").value; else $("lowkey").value = $("highkey").value;
  }
  showValues();
  redecode();
}

// ------------------------------------------------------------------ uploads and jobs

async function upload(file, name) {
  name = name || file.name || "recording";
  say(`uploading ${name}…`);
  try {
    const r = await api("/api/upload?name=" + encodeURIComponent(name), {method: "POST", body: file});
    if (!r.ok) {  // refused: the reason stays in the list until dismissed
      const why = await errorOf(r);
      say(why, true);
      state.refused.push({name, error: why});
      renderJobs();
      return;
    }
    const job = await r.json();
    say(`${job.name}: transcribing…`);
    if (!state.current) state.current = job.id;
    await refreshJobs();
  } catch (e) {
    say(`${name}: upload failed (${e})`, true);
  }
}

function uploadAll(files) {
  // one after another: the server queues them; the page stays responsive
  let chain = Promise.resolve();
  for (const f of files) chain = chain.then(() => upload(f));
  return chain;
}

let pollTimer = null;
async function refreshJobs() {
  let jobs;
  try { jobs = await (await api("/api/jobs")).json(); } catch (e) { return; }
  state.jobs = jobs;
  renderJobs();
  const cur = jobs.find((j) => j.id === state.current);
  if (cur && cur.status === "done" && state.loaded !== cur.id) selectJob(cur.id);
  const busy = jobs.some((j) => ["queued", "running", "uploading"].includes(j.status));
  clearTimeout(pollTimer);
  if (busy) pollTimer = setTimeout(refreshJobs, 400);
}

function renderJobs() {
  const ul = $("jobs");
  ul.textContent = "";
  state.refused.forEach((f, i) => {
    const li = document.createElement("li");
    li.dataset.status = "refused";
    const x = document.createElement("button");
    x.className = "x"; x.type = "button"; x.textContent = "dismiss";
    x.onclick = () => { state.refused.splice(i, 1); renderJobs(); };
    const name = document.createElement("div");
    name.className = "name"; name.textContent = f.name;
    const st = document.createElement("div");
    st.className = "state failed"; st.textContent = f.error;
    li.append(x, name, st);
    ul.append(li);
  });
  for (const j of state.jobs) {
    const li = document.createElement("li");
    li.dataset.id = j.id; li.dataset.status = j.status;
    if (j.id === state.current) li.className = "selected";
    const x = document.createElement("button");
    x.className = "x"; x.type = "button";
    x.textContent = ["queued", "running"].includes(j.status) ? "cancel" : "remove";
    x.onclick = async (ev) => {
      ev.stopPropagation();
      if (["queued", "running"].includes(j.status)) await api(`/api/jobs/${j.id}/cancel`, {method: "POST"});
      else {
        await api(`/api/jobs/${j.id}`, {method: "DELETE"});
        if (state.current === j.id) { state.current = null; state.loaded = null; state.notes = null; draw(); }
      }
      refreshJobs();
    };
    const name = document.createElement("div");
    name.className = "name"; name.textContent = j.name;
    const st = document.createElement("div");
    st.className = "state " + j.status;
    if (j.status === "done") st.textContent = `${j.notes} notes · ${j.seconds.toFixed(1)} s audio in ${j.transcribe_seconds.toFixed(1)} s` + (j.warning ? ` · ${j.warning}` : "");
    else if (j.status === "failed") st.textContent = j.error;
    else st.textContent = j.status;
    li.append(x, name, st);
    if (["queued", "running"].includes(j.status)) {
      const p = document.createElement("progress");
      p.max = 1; p.value = j.progress;
      li.append(p);
    }
    li.onclick = () => { if (j.status === "done") selectJob(j.id); };
    ul.append(li);
  }
}

function selectJob(id) {
  stop();
  state.current = id; state.loaded = id;
  const j = state.jobs.find((x) => x.id === id);
  $("current-name").textContent = j ? j.name : "";
  $("audio").src = `/api/jobs/${id}/audio?token=${encodeURIComponent(TOKEN)}`;
  state.view = 0; state.playhead = 0;
  state.scoreFor = null;
  renderJobs();
  redecode();
}

// ------------------------------------------------------------------ decoding (no network run)

let decodeBusy = false, decodeAgain = false;
async function redecode() {
  if (!state.current || state.loaded !== state.current) return;
  if (decodeBusy) { decodeAgain = true; return; }  // the latest settings win; one request at a time
  decodeBusy = true;
  const id = state.current, s = settings();
  try {
    const r = await api(`/api/jobs/${id}/decode`, {method: "POST", body: JSON.stringify(s),
                                                   headers: {"Content-Type": "application/json"}});
    if (!r.ok) { say(await errorOf(r), true); }
    else {
      const d = await r.json();
      if (id === state.current) {
        state.notes = d; state.seconds = d.seconds;
        let m = 0;
        for (let i = 0; i < d.onset.length; i++) m = Math.max(m, d.offset[i] - d.onset[i]);
        state.maxDur = m;
        if (state.fitted !== id) fitKeys(d);
        $("note-count").textContent = d.count;
        $("decode-ms").textContent = `(decoded in ${d.decode_ms.toFixed(0)} ms)`;
        $("scroll").max = Math.max(0, state.seconds - 1);
        updateDownloads(s);
        say("");
        draw();
        if (!$("view-score").classList.contains("hidden")) loadScore();
        state.beats = null;
        if ($("grid").value === "bars") loadBeats();
      }
    }
  } catch (e) { say(`decoding failed: ${e}`, true); }
  decodeBusy = false;
  if (decodeAgain) { decodeAgain = false; redecode(); }
}

function updateDownloads(s) {
  const q = `?token=${encodeURIComponent(TOKEN)}&settings=${encodeURIComponent(JSON.stringify(s))}`;
  for (const fmt of ["mid", "musicxml", "csv", "json", "png"].concat(state.config.sonify ? ["sonified"] : [])) {
    $("dl-" + fmt).href = `/api/jobs/${state.current}/download/${fmt}${q}`;
  }
}

// ------------------------------------------------------------------ piano roll

const canvas = $("roll");
const ctx2d = canvas.getContext("2d");

function lowerBound(arr, x) {
  let lo = 0, hi = arr.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (arr[mid] < x) lo = mid + 1; else hi = mid; }
  return lo;
}

function fitKeys(d) {
  // the keys the recording uses, with a margin, at least two octaves (all 88 keys when it has no notes)
  state.fitted = state.current;
  if (!d.pitch.length) { state.lo = 21; state.hi = 108; return; }
  let a = 108, b = 21;
  for (const p of d.pitch) { if (p < a) a = p; if (p > b) b = p; }  // a loop: an hour's notes overflow min(...spread)
  let lo = Math.max(21, a - 3), hi = Math.min(108, b + 3);
  while (hi - lo < 24) { if (lo > 21) lo--; if (hi < 108) hi++; }
  state.lo = lo; state.hi = hi;
}

function gridStep(pxPerSec) {
  for (const s of [0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600]) if (s * pxPerSec >= 60) return s;
  return 1200;
}

function clock(t, tenths = true) {
  const m = Math.floor(t / 60), s = t - 60 * m;
  return `${m}:${(tenths ? s.toFixed(1) : Math.floor(s).toString()).padStart(tenths ? 4 : 2, "0")}`;
}

function draw() {
  const dpr = window.devicePixelRatio || 1;
  const W = canvas.clientWidth, H = canvas.clientHeight;
  if (canvas.width !== Math.round(W * dpr) || canvas.height !== Math.round(H * dpr)) {
    canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
  }
  const g = ctx2d;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, W, H);
  const top = 16;  // time labels
  const lo = state.lo, hi = state.hi, rows = hi - lo + 1, rowH = (H - top) / rows;
  const y = (p) => top + (hi - p) * rowH;
  const t0 = state.view, t1 = t0 + (W - KEYS_W) / state.pxPerSec;
  const x = (t) => KEYS_W + (t - t0) * state.pxPerSec;
  // rows: black keys shaded
  for (let p = lo; p <= hi; p++) {
    g.fillStyle = isBlack(p) ? "#f0f0f3" : "#fff";
    g.fillRect(KEYS_W, y(p), W - KEYS_W, rowH);
    if (p % 12 === 0) { g.fillStyle = "#d8d8e0"; g.fillRect(KEYS_W, y(p) + rowH - 0.5, W - KEYS_W, 1); }
  }
  g.font = "10px system-ui, sans-serif"; g.textBaseline = "top";
  const b = state.beats;
  if ($("grid").value === "bars" && b && b.times.length) {
    // bar grid: the beats the score uses; bar lines darker, numbered (bar 1 at the first downbeat)
    const per = Math.max(b.beats_per_bar, 1), showBeats = (b.times[1] - b.times[0]) * state.pxPerSec >= 8;
    for (let i = Math.max(lowerBound(b.times, t0) - 1, 0); i < b.times.length && b.times[i] <= t1; i++) {
      const k = i - b.downbeat, bar = ((k % per) + per) % per === 0;
      if (!bar && !showBeats) continue;
      const xx = x(b.times[i]);
      g.fillStyle = bar ? "#c4c4d0" : "#ececf2"; g.fillRect(xx, top, 1, H - top);
      if (bar) { g.fillStyle = "#555"; g.fillText(String(Math.floor(k / per) + 1), xx + 2, 2); }
    }
  } else {  // second grid
    const step = gridStep(state.pxPerSec);
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      const xx = x(t);
      g.fillStyle = "#e2e2e8"; g.fillRect(xx, top, 1, H - top);
      g.fillStyle = "#555"; g.fillText(clock(t, step < 1), xx + 2, 2);
    }
  }
  // notes in the window only: binary search on the sorted onsets
  const n = state.notes;
  if (n && n.onset.length) {
    const a = lowerBound(n.onset, t0 - state.maxDur), b = lowerBound(n.onset, t1);
    for (let i = a; i < b; i++) {
      if (n.offset[i] < t0) continue;
      const v = n.velocity[i] / 127;
      g.fillStyle = `hsl(220, 80%, ${Math.round(78 - 50 * v)}%)`;  // louder = darker
      const xs = Math.max(x(n.onset[i]), KEYS_W), xe = x(n.offset[i]);
      g.fillRect(xs, y(n.pitch[i]) + 0.5, Math.max(xe - xs, 1.5), Math.max(rowH - 1, 1));
    }
    // pedal
    g.fillStyle = "rgba(255, 170, 0, 0.35)";
    for (const [d, u] of n.pedal) if (u >= t0 && d <= t1) g.fillRect(Math.max(x(d), KEYS_W), H - 4, x(u) - Math.max(x(d), KEYS_W), 4);
  }
  // keyboard with note names
  for (let p = lo; p <= hi; p++) {
    g.fillStyle = isBlack(p) ? "#333" : "#fff";
    g.fillRect(0, y(p), KEYS_W, rowH);
    g.strokeStyle = "#bbb"; g.strokeRect(0.5, y(p) + 0.5, KEYS_W - 1, rowH);
    if ((p % 12 === 0 || (rowH >= 11 && !isBlack(p))) && rowH >= 4) { g.fillStyle = "#333"; g.textBaseline = "middle"; g.fillText(noteName(p), 3, y(p) + rowH / 2); }
  }
  g.fillStyle = "#fff"; g.fillRect(0, 0, KEYS_W, top);
  // cursor
  if (state.playhead >= t0 && state.playhead <= t1) {
    g.fillStyle = "#c1121f"; g.fillRect(x(state.playhead) - 1, top, 2, H - top);
  }
  canvas.dataset.playhead = state.playhead.toFixed(3);
  canvas.dataset.view = t0.toFixed(3);
  $("time").textContent = clock(state.playhead);
  $("scroll").value = state.view;
}

canvas.addEventListener("wheel", (ev) => {
  ev.preventDefault();
  if (ev.ctrlKey) zoom(ev.deltaY < 0 ? 1.25 : 0.8, ev.offsetX);
  else setView(state.view + (ev.deltaX || ev.deltaY) / state.pxPerSec);
}, {passive: false});
canvas.addEventListener("click", (ev) => {
  if (ev.offsetX < KEYS_W) return;
  seek(state.view + (ev.offsetX - KEYS_W) / state.pxPerSec);
});
$("scroll").addEventListener("input", () => setView(+$("scroll").value));
$("zoom-in").onclick = () => zoom(1.5);
$("zoom-out").onclick = () => zoom(1 / 1.5);
window.addEventListener("resize", draw);

function setView(t) { state.view = Math.max(0, Math.min(t, Math.max(0, state.seconds - 1))); draw(); }
function zoom(f, atX) {
  const px = (atX === undefined ? canvas.clientWidth / 2 : atX) - KEYS_W;
  const at = state.view + px / state.pxPerSec;
  state.pxPerSec = Math.max(2, Math.min(2000, state.pxPerSec * f));
  setView(at - px / state.pxPerSec);
}

// ------------------------------------------------------------------ playback

let audioCtx = null;
const synth = {start: 0, offset: 0, next: 0, timer: null, voices: []};

function playNote(when, pitch, dur, vel) {
  // a piano-like voice: two detuned partials, fast attack, exponential decay
  const f = 440 * Math.pow(2, (pitch - 69) / 12);
  const g = audioCtx.createGain();
  const peak = 0.04 + 0.16 * (vel / 127);
  g.gain.setValueAtTime(0, when);
  g.gain.linearRampToValueAtTime(peak, when + 0.005);
  g.gain.exponentialRampToValueAtTime(peak * 0.3, when + Math.min(dur, 1.5) + 0.005);
  g.gain.exponentialRampToValueAtTime(0.0001, when + dur + 0.25);
  g.connect(audioCtx.destination);
  for (const [mult, type, amp] of [[1, "triangle", 1], [2, "sine", 0.3]]) {
    const o = audioCtx.createOscillator();
    o.type = type; o.frequency.value = f * mult;
    const og = audioCtx.createGain(); og.gain.value = amp;
    o.connect(og); og.connect(g);
    o.start(when); o.stop(when + dur + 0.3);
    synth.voices.push(o);
  }
}

function schedule() {
  // schedule only the next half second of notes: an hour of notes never sits in the audio graph
  const n = state.notes;
  const now = audioCtx.currentTime, until = now + 0.5;
  const tUntil = synth.offset + (until - synth.start);
  let i = synth.next;
  while (i < n.onset.length && n.onset[i] < tUntil) {
    const when = synth.start + (n.onset[i] - synth.offset);
    if (when >= now - 0.05) playNote(Math.max(when, now), n.pitch[i], n.offset[i] - n.onset[i], n.velocity[i]);
    i++;
  }
  synth.next = i;
  synth.voices = synth.voices.filter((o) => o.context && true).slice(-400);
}

function play(what) {
  if (!state.notes) return;
  stop();
  const from = state.playhead >= state.seconds - 0.05 ? 0 : state.playhead;
  state.playing = what;
  if (what === "notes" || what === "both") {
    audioCtx = audioCtx || new AudioContext();
    audioCtx.resume();
    synth.start = audioCtx.currentTime + 0.05; synth.offset = from;
    synth.next = lowerBound(state.notes.onset, from);
    schedule();
    synth.timer = setInterval(schedule, 100);
  }
  if (what === "rendered") {  // FluidSynth's rendering of the current settings, made on the server
    const r = $("rendered");
    const src = $("dl-mid").href.replace("/download/mid?", "/download/sonified?");
    if (r.dataset.src !== src) { r.src = src; r.dataset.src = src; }
    r.currentTime = from;
    r.play().catch((e) => say(`cannot play the rendering: ${e.message}`, true));
  } else if (what !== "notes") {
    const a = $("audio");
    a.currentTime = from;
    a.play().catch((e) => say(`cannot play the recording: ${e.message}`, true));
  }
  requestAnimationFrame(tick);
}

function currentTime() {
  if (state.playing === "notes") return synth.offset + (audioCtx.currentTime - synth.start);
  if (state.playing === "rendered") return $("rendered").currentTime;
  return $("audio").currentTime;
}

function tick() {
  if (!state.playing) return;
  state.playhead = Math.max(0, currentTime());
  const W = canvas.clientWidth - KEYS_W, visible = W / state.pxPerSec;
  if (state.playhead > state.view + visible * 0.9 || state.playhead < state.view) state.view = Math.max(0, state.playhead - visible * 0.1);
  if (state.playhead >= state.seconds) { stop(); state.playhead = state.seconds; }
  draw();
  if (state.playing) requestAnimationFrame(tick);
}

function stop() {
  state.playing = null;
  if (synth.timer) { clearInterval(synth.timer); synth.timer = null; }
  for (const o of synth.voices) { try { o.stop(); } catch (e) { /* already stopped */ } }
  synth.voices = [];
  $("audio").pause();
  $("rendered").pause();
}

function seek(t) {
  const was = state.playing;
  state.playhead = Math.max(0, Math.min(t, state.seconds));
  if (was) play(was); else draw();
}

$("play-audio").onclick = () => play("audio");
$("play-notes").onclick = () => play("notes");
$("play-both").onclick = () => play("both");
$("play-rendered").onclick = () => play("rendered");
$("stop").onclick = () => { stop(); draw(); };

// ------------------------------------------------------------------ bar grid

async function loadBeats() {
  if (!state.current) return;
  const id = state.current, s = JSON.stringify(settings());
  const r = await api(`/api/jobs/${id}/beats?settings=${encodeURIComponent(s)}`);
  if (!r.ok) { say(await errorOf(r), true); return; }
  if (id === state.current) { state.beats = await r.json(); draw(); }
}
$("grid").addEventListener("change", () => { if ($("grid").value === "bars" && !state.beats) loadBeats(); draw(); });

// keyboard: space plays or stops (the transcription), arrows scroll
document.addEventListener("keydown", (ev) => {
  if (ev.target.closest && ev.target.closest("input, select, textarea")) return;
  if (ev.key === " ") { ev.preventDefault(); if (state.playing) { stop(); draw(); } else play("notes"); }
  else if (ev.key === "ArrowRight") setView(state.view + 50 / state.pxPerSec * 4);
  else if (ev.key === "ArrowLeft") setView(state.view - 50 / state.pxPerSec * 4);
});

// ------------------------------------------------------------------ score

async function loadScore() {
  if (!state.current || !state.notes) return;
  const s = JSON.stringify(settings());
  if (state.scoreFor === state.current + s) return;
  state.scoreFor = state.current + s;
  $("score-info").textContent = "engraving…";
  const r = await api(`/api/jobs/${state.current}/score?settings=${encodeURIComponent(s)}`);
  if (!r.ok) { $("score-info").textContent = await errorOf(r); state.scoreFor = null; return; }
  const d = await r.json();
  $("score-info").textContent = `Tempo ♩ = ${d.tempo ? Math.round(d.tempo) : "?"} · Key: ${d.key || "?"} · Time: ${d.time_signature || "?"}`;
  const box = $("score");
  box.textContent = "";
  const parser = new DOMParser();
  for (const svg of d.pages) {
    const doc = parser.parseFromString(svg, "image/svg+xml");  // parsed as SVG: no script runs
    box.append(document.importNode(doc.documentElement, true));
  }
}

for (const b of document.querySelectorAll(".tab")) {
  b.onclick = () => {
    for (const x of document.querySelectorAll(".tab")) x.classList.toggle("active", x === b);
    $("view-roll").classList.toggle("hidden", b.dataset.tab !== "roll");
    $("view-score").classList.toggle("hidden", b.dataset.tab !== "score");
    if (b.dataset.tab === "score") loadScore(); else draw();
  };
}

// ------------------------------------------------------------------ recording

let recorder = null;
$("record").onclick = async () => {
  if (recorder) { recorder.stop(); return; }
  let stream;
  try { stream = await navigator.mediaDevices.getUserMedia({audio: true}); }
  catch (e) { say(`no microphone: ${e.message}`, true); return; }
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (ev) => { if (ev.data.size) chunks.push(ev.data); };
  recorder.onstop = () => {
    stream.getTracks().forEach((t) => t.stop());
    const type = recorder.mimeType || "audio/webm";
    recorder = null;
    $("record").classList.remove("recording"); $("record").textContent = "● Record";
    const ext = type.includes("ogg") ? "ogg" : "webm";
    const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
    state.current = null;
    upload(new Blob(chunks, {type}), `recording-${stamp}.${ext}`);
  };
  recorder.start(250);
  $("record").classList.add("recording"); $("record").textContent = "■ Stop recording";
  say("recording… press again to stop");
};

// ------------------------------------------------------------------ drag and drop, picker

$("picker").addEventListener("change", (ev) => { uploadAll([...ev.target.files]); ev.target.value = ""; });
document.addEventListener("dragover", (ev) => { ev.preventDefault(); document.body.classList.add("dragging"); });
document.addEventListener("dragleave", (ev) => { if (!ev.relatedTarget) document.body.classList.remove("dragging"); });
document.addEventListener("drop", (ev) => {
  ev.preventDefault(); document.body.classList.remove("dragging");
  if (ev.dataTransfer && ev.dataTransfer.files.length) uploadAll([...ev.dataTransfer.files]);
});

for (const id of ["onset", "frame", "minms", "lowkey", "highkey"]) $(id).addEventListener("input", onSettingChange);
for (const id of ["pedal", "notekind"]) $(id).addEventListener("change", onSettingChange);

loadConfig().then(refreshJobs).then(draw);
