// lossnet studio: the page. Everything it shows comes from the JSON API (/api/methods describes every form).
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const state = { methods: [], method: null, files: {}, gallery: [] };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) node.append(child);
  return node;
}

function seconds(s) {
  if (s === null || s === undefined) return "";
  if (s < 60) return `${Math.round(s)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

async function loadHealth() {
  try {
    const h = await (await fetch("/api/health")).json();
    $("#health").textContent = `lossnet ${h.version} · ${h.workers} worker${h.workers > 1 ? "s" : ""} · ` +
      `${h.running} running, ${h.queued} waiting · uploads up to ${h.max_upload_mb} MB, ${(h.max_pixels / 1e6).toFixed(0)} MP`;
    $("#notice").textContent = h.notice || "";
    $("#notice").hidden = !h.notice;
  } catch (e) {
    $("#health").textContent = "the server is not answering";
  }
}

// ---- the form, drawn from the method's description
function drawMethod(name) {
  state.method = state.methods.find(m => m.name === name);
  state.files = {};
  $("#method-command").textContent = `the same as: ${state.method.command}`;
  const uploads = $("#uploads"), params = $("#params");
  uploads.replaceChildren(); params.replaceChildren();
  for (const u of state.method.uploads) uploads.append(dropZone(u));
  for (const p of state.method.params) params.append(paramField(p));
  refreshSliders();
  $("#form-error").hidden = true;
}

function dropZone(u) {
  const input = el("input", { type: "file", name: u.field, accept: u.kind === "image" ? "image/*" : ".safetensors",
                              multiple: u.multiple > 1 });
  const thumbs = el("div", { class: "thumbs" });
  const zone = el("div", { class: "drop", "data-field": u.field, tabindex: "0" },
    el("strong", {}, `${u.field}${u.required ? "" : " (optional)"}`), el("br"),
    el("span", { class: "muted" }, `${u.help} — drop ${u.multiple > 1 ? `up to ${u.multiple} files` : "a file"} here or click`),
    input, thumbs);
  const take = files => {
    state.files[u.field] = Array.from(files).slice(0, u.multiple);
    thumbs.replaceChildren(...state.files[u.field].map(f => f.type.startsWith("image/")  // each URL let go once drawn
      ? el("img", { src: URL.createObjectURL(f), alt: f.name, title: f.name, onload: e => URL.revokeObjectURL(e.target.src),
                    onerror: e => URL.revokeObjectURL(e.target.src) }) : el("span", {}, f.name)));
    refreshSliders();
  };
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", e => { if (e.key === "Enter" || e.key === " ") input.click(); });
  input.addEventListener("change", () => take(input.files));
  zone.addEventListener("dragover", e => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", e => { e.preventDefault(); zone.classList.remove("over"); take(e.dataTransfer.files); });
  return zone;
}

function paramField(p) {
  const id = `param-${p.name}`;
  const shown = value => Array.isArray(value) ? value.join(",") : String(value);
  const help = el("span", { class: "help" }, p.help + (p.cli_default !== null && shown(p.cli_default) !== shown(p.default)
    ? ` (command line default ${shown(p.cli_default)})` : ""));
  let input;
  if (p.type === "boolean") {
    input = el("input", { type: "checkbox", id, name: p.name, checked: p.default === true });
    return el("label", { class: "row check" }, input, p.name, help);
  }
  if (p.type === "choice") {
    const uploaded = p.name === "model" && state.method.name === "fast-style"
      ? state.gallery.filter(g => g.source === "uploaded") : [];
    input = el("select", { id, name: p.name },
      ...(p.default === null ? [el("option", { value: "" }, "(default)")] : []),
      ...p.choices.map(c => el("option", { value: c, selected: c === p.default }, String(c))),
      ...uploaded.map(g => el("option", { value: g.key }, `${g.name} (uploaded)`)));
    if (p.name === "model") input.addEventListener("change", () => { refreshSliders(); markPicked(); });
  } else if (p.type === "integer" || p.type === "number") {
    input = el("input", { type: "number", id, name: p.name, value: p.default ?? "", step: p.type === "integer" ? "1" : "any",
                          min: p.minimum, max: p.maximum, placeholder: p.default === null ? "default" : undefined });
  } else {
    const value = Array.isArray(p.default) ? p.default.join(",") : p.default ?? "";
    input = el("input", { type: "text", id, name: p.name, value, placeholder: p.default === null ? "default" : undefined });
  }
  const row = el("label", { class: "row", "data-param": p.name }, p.name, input, help);
  if (p.weights_over) row.append(el("div", { class: "sliders", "data-for": p.name }));
  return row;
}

// Blend weights as one slider per style (files of a field, or styles of a multi-style model).
function refreshSliders() {
  for (const p of state.method.params.filter(q => q.weights_over)) {
    const row = $(`[data-param="${p.name}"]`), box = $(".sliders", row), text = $("input", row);
    let labels = [];
    if (p.weights_over.startsWith("upload:")) labels = (state.files[p.weights_over.slice(7)] || []).map(f => f.name);
    else {
      const model = $("#param-model")?.value;
      const info = state.gallery.find(g => g.key === model) || state.method.models?.[model];
      labels = state.files.model_file?.length ? [] : (info?.styles || []);
    }
    box.replaceChildren();
    text.hidden = labels.length > 1;
    if (labels.length < 2) { text.value = ""; continue; }
    const sync = () => { text.value = Array.from(box.querySelectorAll("input")).map(i => i.value).join(","); };
    labels.forEach(label => {
      const slider = el("input", { type: "range", min: "0", max: "1", step: "0.05", value: (1 / labels.length).toFixed(2),
                                   "aria-label": `weight of ${label}` });
      const shown = el("span", {}, slider.value);
      slider.addEventListener("input", () => { shown.textContent = slider.value; sync(); });
      box.append(el("div", { class: "slider" }, el("span", {}, label), slider, shown));
    });
    sync();
  }
}

// ---- jobs
async function submit(event) {
  event.preventDefault();
  const form = new FormData();
  form.append("method", state.method.name);
  for (const [field, files] of Object.entries(state.files)) for (const f of files) form.append(field, f, f.name);
  for (const p of state.method.params) {
    const input = $(`#param-${p.name}`);
    if (!input) continue;
    if (p.type === "boolean") form.append(p.name, input.checked ? "true" : "false");
    else if (input.value !== "") form.append(p.name, input.value);
  }
  const errorBox = $("#form-error");
  errorBox.hidden = true;
  $("#run").disabled = true;
  try {
    const response = await fetch("/api/jobs", { method: "POST", body: form });
    const body = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
    if (!response.ok) {
      const wait = response.headers.get("Retry-After");
      errorBox.textContent = body.error + (wait ? ` (retry in ${wait} s)` : "");
      errorBox.hidden = false;
      return;
    }
    watch(body);
  } catch (e) {
    errorBox.textContent = "the server is not answering";
    errorBox.hidden = false;
  } finally {
    $("#run").disabled = false;
    loadHealth();
  }
}

function watch(job) {
  const card = $("#job-template").content.firstElementChild.cloneNode(true);
  card.dataset.id = job.id;
  $(".job-title", card).textContent = job.title || job.method;
  $(".job-when", card).textContent = job.created ? new Date(job.created * 1000).toLocaleString() : "";
  $(".job-params", card).textContent = Object.entries(job.params || {})
    .map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(",") : v}`).join(" · ");
  $("#no-jobs").hidden = true;
  $("#job-list").prepend(card);
  $(".cancel", card).addEventListener("click", async () => {
    $(".cancel", card).disabled = true;
    await fetch(`/api/jobs/${job.id}/cancel`, { method: "POST" });
  });
  $(".delete", card).addEventListener("click", async () => {
    $(".delete", card).disabled = true;
    const response = await fetch(`/api/jobs/${job.id}`, { method: "DELETE" });
    if (response.ok || response.status === 404) {
      card.remove();
      $("#no-jobs").hidden = $("#job-list").children.length > 0;
      loadHealth();
    } else $(".delete", card).disabled = false;
  });
  const range = $(".compare-range", card);
  range.addEventListener("input", () => $(".compare", card).style.setProperty("--split", `${range.value}%`));
  show(card, job);
  if (["done", "failed", "cancelled"].includes(job.state)) return;
  const source = new EventSource(`/api/jobs/${job.id}/events`);
  source.onmessage = message => {
    const update = JSON.parse(message.data);
    show(card, update);
    if (["done", "failed", "cancelled"].includes(update.state)) { source.close(); loadHealth(); }
  };
  source.onerror = () => {
    if (["done", "failed", "cancelled"].includes(card.dataset.state) || !card.isConnected) source.close();
  };
}

function show(card, job) {
  card.dataset.state = job.state;
  $(".job-state", card).textContent = job.state;
  $(".job-progress", card).value = job.progress || 0;
  const info = [];
  if (job.state === "queued") info.push(job.position === 0 ? "next in the queue" : `${job.position} ahead in the queue`);
  if (job.stage && job.state === "running") info.push(job.stage);
  if (job.state === "queued" || job.state === "running") {
    info.push(`${Math.round(100 * (job.progress || 0))} %`);
    if (job.eta_s !== null && job.eta_s !== undefined) info.push(`about ${seconds(job.eta_s)} left`);
  } else if (job.elapsed_s) info.push(`took ${seconds(job.elapsed_s)}`);
  $(".job-info", card).textContent = info.join(" · ");
  const running = job.state === "queued" || job.state === "running";
  $(".cancel", card).hidden = !running;
  $(".job-progress", card).hidden = !running;
  const preview = $(".job-preview", card);
  if (job.preview_url && running && preview.dataset.src !== job.preview_url) {
    preview.dataset.src = job.preview_url;
    preview.src = job.preview_url;
    preview.hidden = false;
  }
  if (job.state === "done" && job.result_url) {
    preview.hidden = true;
    const compare = $(".compare", card), result = $(".job-result", card), link = $(".job-download", card);
    if (result.getAttribute("src") !== job.result_url) result.src = job.result_url;
    compare.hidden = false;
    if (job.input_url) {  // the before/after slider: the input over the result, cut at the divider
      const before = $(".job-input", card);
      if (before.getAttribute("src") !== job.input_url) before.src = job.input_url;
      for (const part of [before, $(".divider", card), $(".before-tag", card), $(".compare-range", card)]) part.hidden = false;
      compare.classList.add("sliding");
    }
    link.href = `${job.result_url}?download=1`;
    link.setAttribute("download", `lossnet-${job.method}-${job.id.slice(0, 8)}.png`);
    link.hidden = false;
  }
  if (job.error) {
    const box = $(".job-error", card);
    box.textContent = job.error;
    box.hidden = false;
  }
}

async function loadJobs() {
  const { jobs } = await (await fetch("/api/jobs")).json();
  for (const job of jobs) watch(job);  // oldest first: each is put on top
}

// ---- the gallery: one reference photo in every style of every style model
async function loadGallery() {
  const { models } = await (await fetch("/api/gallery")).json();
  state.gallery = models;
  const list = $("#gallery-list");
  list.replaceChildren(...models.map(g => el("div", { class: g.styles.length > 1 ? "model multi" : "model", "data-model": g.key },
    el("div", { class: "model-text" },
      el("div", { class: "model-head" }, el("strong", {}, g.name), g.source === "uploaded" ? el("span", { class: "muted" }, " uploaded") : ""),
      el("div", { class: "model-description muted", title: g.description }, g.description)),
    el("div", { class: "thumbs" }, ...g.thumbs.map((url, i) => el("button", {
      type: "button", class: "thumb", "data-model": g.key, "data-style": String(i),
      title: g.styles.length > 1 ? `${g.name}: ${g.styles[i]}` : g.name,
      onclick: () => pick(g.key, i) },
      el("img", { src: url, alt: `${g.name}${g.styles.length > 1 ? ": " + g.styles[i] : ""}`, loading: "lazy" }),
      g.styles.length > 1 ? el("span", {}, g.styles[i]) : ""))))));
  const liveModel = $("#live-model"), current = liveModel.value || "starry-lite";
  liveModel.replaceChildren(...models.map(g => el("option", { value: g.key, selected: g.key === current }, g.name)));
  liveBlendSliders();
  if (state.method?.name === "fast-style") drawMethod("fast-style");
}

function pick(key, index) {
  const info = state.gallery.find(g => g.key === key);
  const weights = info.styles.length > 1 ? info.styles.map((_, i) => (i === index ? 1 : 0)) : null;
  if (state.method.name !== "fast-style") { $("#method").value = "fast-style"; drawMethod("fast-style"); }
  $("#param-model").value = key;
  refreshSliders();
  if (weights) {
    const sliders = document.querySelectorAll("[data-param=blend] input[type=range]");
    sliders.forEach((slider, i) => { slider.value = weights[i]; slider.dispatchEvent(new Event("input")); });
  }
  $("#live-model").value = key;
  liveBlendSliders(weights);
  liveSettings();
  markPicked(index);
}

function markPicked(index) {
  const key = $("#param-model")?.value;
  for (const thumb of document.querySelectorAll(".thumb")) {
    thumb.classList.toggle("picked", thumb.dataset.model === key && (index === undefined || thumb.dataset.style === String(index)));
  }
}

async function uploadModel(input) {
  const box = $("#gallery-error");
  box.hidden = true;
  const form = new FormData();
  form.append("model", input.files[0], input.files[0].name);
  const response = await fetch("/api/models", { method: "POST", body: form });
  const body = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
  input.value = "";
  if (!response.ok) { box.textContent = body.error; box.hidden = false; return; }
  await loadGallery();
}

// ---- live mode: frames over a WebSocket, the newest one stylised, drawn back on a canvas
const live = { ws: null, stream: null, running: false, starts: 0, seq: 0, sent: new Map(), arrivals: [], latencies: [],
               frames: 0, timer: null, capture: document.createElement("canvas") };
window.studioLive = live;  // for tests and the curious: the stream, the counters

function liveBlendSliders(weights) {
  const info = state.gallery.find(g => g.key === $("#live-model").value), box = $("#live-blend");
  box.replaceChildren();
  if (!info || info.styles.length < 2) return;
  info.styles.forEach((name, i) => {
    const slider = el("input", { type: "range", min: "0", max: "1", step: "0.05", value: weights ? weights[i] : (i === 0 ? 1 : 0),
                                 "aria-label": `live weight of ${name}` });
    slider.addEventListener("input", liveSettings);
    box.append(el("div", { class: "slider" }, el("span", {}, name), slider));
  });
}

function liveSettings() {
  if (!live.ws || live.ws.readyState !== WebSocket.OPEN) return;
  const sliders = Array.from(document.querySelectorAll("#live-blend input[type=range]"));
  const blend = sliders.length > 1 ? sliders.map(s => Number(s.value)) : null;
  live.ws.send(JSON.stringify({ type: "settings", model: $("#live-model").value,
                                blend: blend && blend.some(w => w > 0) ? blend : null, stabilise: $("#live-stabilise").checked }));
}

function liveError(text) {
  $("#live-error").textContent = text;
  $("#live-error").hidden = !text;
}

async function liveStart(file) {
  liveStop();
  liveError("");
  const start = ++live.starts;  // a later start or a Stop while the camera is asked for makes this one stale
  const video = $("#live-video");
  try {
    if (file) {
      video.src = URL.createObjectURL(file);
      video.loop = true;
    } else {
      const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
      if (start !== live.starts) { for (const track of stream.getTracks()) track.stop(); return; }
      live.stream = stream;
      video.srcObject = stream;
    }
    await video.play();
  } catch (e) {
    if (start !== live.starts) return;
    liveError(file ? `cannot play that video: ${e.message}` : `no camera: ${e.message}`);
    liveStop();
    return;
  }
  if (start !== live.starts) return;
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/live`);
  ws.binaryType = "arraybuffer";
  live.ws = ws;
  ws.onopen = () => {
    liveSettings();
    live.running = true;
    document.body.dataset.live = "on";
    $(".live-view").hidden = false;
    $("#live-stop").disabled = $("#live-snapshot").disabled = false;
    pump();
  };
  ws.onmessage = liveMessage;
  ws.onclose = event => {  // also a connection refused before it opened (too many pages): the camera goes off
    if (live.ws === ws) { liveError(event.reason || "the live connection closed"); liveStop(); }
  };
}

function liveStop() {
  live.starts += 1;
  live.running = false;
  clearTimeout(live.timer);
  if (live.ws) { const ws = live.ws; live.ws = null; ws.close(); }
  if (live.stream) { for (const track of live.stream.getTracks()) track.stop(); }  // the camera's light goes out
  const video = $("#live-video");
  video.pause();
  video.srcObject = null;
  if (video.src) { URL.revokeObjectURL(video.src); video.removeAttribute("src"); video.load(); }
  live.sent.clear();
  document.body.dataset.live = "off";
  $("#live-stop").disabled = $("#live-snapshot").disabled = true;
}

// A frame goes out when fewer than two are unanswered: the server keeps only the newest anyway.
function pump() {
  if (!live.running) return;
  live.timer = setTimeout(pump, 1000 / 30);
  const video = $("#live-video");
  if (live.sent.size >= 2 || video.readyState < 2 || !video.videoWidth) return;
  const width = Number($("#live-size").value);
  const height = 2 * Math.round(width * video.videoHeight / video.videoWidth / 2);
  const canvas = live.capture;
  if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
  canvas.getContext("2d").drawImage(video, 0, 0, width, height);
  const seq = ++live.seq;
  live.sent.set(seq, performance.now());
  canvas.toBlob(async blob => {
    if (!blob || !live.ws || live.ws.readyState !== WebSocket.OPEN) { live.sent.delete(seq); return; }
    const head = new Uint8Array(4);
    new DataView(head.buffer).setUint32(0, seq);
    live.ws.send(new Blob([head, blob]));
  }, "image/jpeg", 0.85);
}

async function liveMessage(event) {
  if (typeof event.data === "string") {
    const message = JSON.parse(event.data);
    if (message.type === "error") {
      liveError(message.error);
      if (message.seq) for (const seq of live.sent.keys()) if (seq <= message.seq) live.sent.delete(seq);
    } else if (message.type === "snapshot") watch(message.job);
    else if (message.type === "settings") liveError("");
    return;
  }
  const view = new DataView(event.data), length = view.getUint32(0);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(event.data, 4, length)));
  const now = performance.now(), sentAt = live.sent.get(header.seq);
  for (const seq of live.sent.keys()) if (seq <= header.seq) live.sent.delete(seq);  // older ones were dropped
  const bitmap = await createImageBitmap(new Blob([new Uint8Array(event.data, 4 + length)], { type: "image/jpeg" }));
  const output = $("#live-output");
  if (output.width !== bitmap.width || output.height !== bitmap.height) { output.width = bitmap.width; output.height = bitmap.height; }
  output.getContext("2d").drawImage(bitmap, 0, 0);
  bitmap.close();
  output.dataset.model = header.model;
  live.frames += 1;
  live.arrivals.push(now);
  while (live.arrivals.length > 2 && now - live.arrivals[0] > 2000) live.arrivals.shift();
  if (sentAt !== undefined) { live.latencies.push(now - sentAt); if (live.latencies.length > 60) live.latencies.shift(); }
  const span = (live.arrivals[live.arrivals.length - 1] - live.arrivals[0]) / 1000;
  const fps = live.arrivals.length > 1 && span > 0 ? (live.arrivals.length - 1) / span : 0;
  const sorted = [...live.latencies].sort((a, b) => a - b);
  const p95 = sorted[Math.min(sorted.length - 1, Math.round(0.95 * (sorted.length - 1)))];
  $("#live-fps").textContent = `${fps.toFixed(1)} fps`;
  $("#live-fps").dataset.frames = String(live.frames);
  $("#live-latency").textContent = sorted.length ? `latency ${Math.round(sorted[sorted.length >> 1])} ms (p95 ${Math.round(p95)} ms)` : "– ms";
  $("#live-note").textContent = (header.paced ? " · a job is running: live mode slowed to a quarter of a core" : "") +
    (header.dropped ? ` · ${header.dropped} frames dropped (the newest is always taken)` : "");
}

async function start() {
  loadHealth();
  const { methods } = await (await fetch("/api/methods")).json();
  state.methods = methods;
  const select = $("#method");
  select.replaceChildren(...methods.map(m => el("option", { value: m.name }, m.title)));
  select.addEventListener("change", () => drawMethod(select.value));
  $("#job-form").addEventListener("submit", submit);
  $("#reset").addEventListener("click", () => drawMethod(select.value));
  drawMethod(methods[0].name);
  $("#model-upload").addEventListener("change", event => uploadModel(event.target));
  $("#live-camera").addEventListener("click", () => liveStart(null));
  $("#live-file").addEventListener("change", event => { if (event.target.files[0]) liveStart(event.target.files[0]); });
  $("#live-stop").addEventListener("click", liveStop);
  $("#live-snapshot").addEventListener("click", () => live.ws?.send(JSON.stringify({ type: "snapshot" })));
  $("#live-model").addEventListener("change", () => { liveBlendSliders(); liveSettings(); });
  $("#live-stabilise").addEventListener("change", liveSettings);
  await Promise.all([loadGallery(), loadJobs()]);
  document.body.dataset.ready = "true";
}

start();
