// lossnet studio: the page. Everything it shows comes from the JSON API (/api/methods describes every form).
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const state = { methods: [], method: null, files: {} };

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
    thumbs.replaceChildren(...state.files[u.field].map(f => f.type.startsWith("image/")
      ? el("img", { src: URL.createObjectURL(f), alt: f.name, title: f.name }) : el("span", {}, f.name)));
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
    input = el("select", { id, name: p.name },
      ...(p.default === null ? [el("option", { value: "" }, "(default)")] : []),
      ...p.choices.map(c => el("option", { value: c, selected: c === p.default }, String(c))));
    if (p.name === "model") input.addEventListener("change", refreshSliders);
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
      const model = $("#param-model")?.value, info = state.method.models?.[model];
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
    watch(body, state.method.title);
  } catch (e) {
    errorBox.textContent = "the server is not answering";
    errorBox.hidden = false;
  } finally {
    $("#run").disabled = false;
    loadHealth();
  }
}

function watch(job, title) {
  const card = $("#job-template").content.firstElementChild.cloneNode(true);
  card.dataset.id = job.id;
  $(".job-title", card).textContent = title;
  $("#no-jobs").hidden = true;
  $("#job-list").prepend(card);
  $(".cancel", card).addEventListener("click", async () => {
    $(".cancel", card).disabled = true;
    await fetch(`/api/jobs/${job.id}`, { method: "DELETE" });
  });
  show(card, job);
  const source = new EventSource(`/api/jobs/${job.id}/events`);
  source.onmessage = message => {
    const update = JSON.parse(message.data);
    show(card, update);
    if (["done", "failed", "cancelled"].includes(update.state)) { source.close(); loadHealth(); }
  };
  source.onerror = () => {
    if (["done", "failed", "cancelled"].includes(card.dataset.state)) source.close();
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
  const preview = $(".job-preview", card);
  if (job.preview_url && running && preview.dataset.src !== job.preview_url) {
    preview.dataset.src = job.preview_url;
    preview.src = job.preview_url;
    preview.hidden = false;
  }
  if (job.state === "done" && job.result_url) {
    preview.hidden = true;
    const result = $(".job-result", card), link = $(".job-download", card);
    result.src = job.result_url;
    result.hidden = false;
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
  document.body.dataset.ready = "true";
}

start();
