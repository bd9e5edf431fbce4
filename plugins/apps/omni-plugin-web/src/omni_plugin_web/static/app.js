// omni web: the page. Forms come from the server's option groups (the commands' own options dataclasses and
// the installed plugins'); nothing here knows an option by name.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { command: "sft", groups: [], raw: {}, choices: {}, selectedRun: null, compared: new Set(), chat: [] };

async function api(method, path, body) {
  const response = await fetch(path, {
    method, headers: { "Content-Type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(data.error || (data.detail && JSON.stringify(data.detail)) || `HTTP ${response.status}`);
  return data;
}

function notice(message, ok = false) {
  const box = $("notice");
  box.textContent = message;
  box.className = ok ? "ok" : "";
  box.hidden = !message;
  clearTimeout(notice.timer);
  if (ok) notice.timer = setTimeout(() => (box.hidden = true), 5000); // errors stay until the next action
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children);
  return node;
}

// ---------------------------------------------------------------- tabs
function showTab(name) {
  document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll(".tab").forEach((s) => (s.hidden = s.id !== name));
  if (name === "runs") refreshRuns();
  if (name === "compare") refreshCompare();
}
document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));

// ---------------------------------------------------------------- compose
function defaultText(field) {
  if (field.default === null || field.default === undefined) return "";
  if (Array.isArray(field.default)) return field.default.join(", ");
  return String(field.default);
}

function typedValue(field, raw) {
  const one = (text) => {
    if (field.type === "int" && /^-?\d+$/.test(text)) return parseInt(text, 10);
    if (field.type === "float" && text !== "" && !isNaN(Number(text))) return Number(text);
    if (field.type === "bool" && (text === "true" || text === "false")) return text === "true";
    return text; // omni checks it when the run starts, and says what is wrong
  };
  if (field.is_list) return raw.split(/[,\n]/).map((s) => s.trim()).filter(Boolean).map(one);
  if (raw === "" && field.optional) return null;
  return one(raw);
}

function fieldInput(field) {
  const id = `option-${field.name}`;
  const value = field.name in state.raw ? state.raw[field.name] : defaultText(field);
  let input;
  const options = field.choices || (field.type === "bool" && !field.is_list ? [true, false] : null);
  if (options) {
    input = el("select", { id });
    if (field.optional || field.default === null) input.append(el("option", { value: "", text: "(unset)" }));
    for (const choice of options) input.append(el("option", { value: String(choice), text: String(choice) }));
    input.value = value;
  } else {
    const type = !field.is_list && (field.type === "int" || field.type === "float") ? "number" : "text";
    input = el("input", { id, type, step: type === "number" ? "any" : undefined, placeholder: field.is_list ? "comma-separated" : "" });
    if (field.selects && state.choices[field.selects]) input.setAttribute("list", `choices-${field.selects}`);
    input.value = value;
  }
  input.dataset.name = field.name;
  const row = el("div", { class: "field", "data-field": field.name },
    el("label", { for: id, text: field.flag }), input, el("div", { class: "help", text: field.help + (defaultText(field) ? ` (default: ${defaultText(field)})` : "") }));
  row.classList.toggle("changed", value !== defaultText(field));
  input.addEventListener("change", () => {
    state.raw[field.name] = input.value;
    row.classList.toggle("changed", input.value !== defaultText(field));
    if (field.selects) refreshForm(); // another tuner, algorithm or reward: its options join the form
    else refreshPreview();
  });
  input.addEventListener("input", () => { state.raw[field.name] = input.value; schedulePreview(); });
  return row;
}

function renderForm() {
  const form = $("form");
  form.replaceChildren();
  for (const [kind, items] of Object.entries(state.choices)) {
    form.append(el("datalist", { id: `choices-${kind}` }, ...items.map((c) => el("option", { value: c.name, text: c.description }))));
  }
  const section = (title, note, fields, open) => {
    const details = el("details", { open, "data-open": open }, el("summary", {}, title, " ", el("span", { class: "muted", text: note })));
    fields.forEach((f) => details.append(fieldInput(f)));
    form.append(details);
  };
  state.groups.forEach((group, index) => {
    if (group.kind !== "commands") { section(group.title, "", group.fields, group.selected_by !== null); return; }
    // The options that pick plugins first (their options join the form), then the rest by the dataclass
    // declaring them, in the command's order: what to load and read comes first.
    const pickers = group.fields.filter((f) => f.selects);
    if (pickers.length) section("Plugins", `(${pickers.map((f) => f.flag).join(", ")})`, pickers, true);
    const rest = group.fields.filter((f) => !f.selects);
    [...new Set(rest.map((f) => f.section))].forEach((title, position) =>
      section(title, `(${group.distribution})`, rest.filter((f) => f.section === title), index === 0 && position < 2));
  });
  applyFilter();
}

function currentValues() {
  const values = {};
  for (const group of state.groups) for (const field of group.fields) {
    if (field.name in state.raw && state.raw[field.name] !== defaultText(field)) values[field.name] = typedValue(field, state.raw[field.name]);
  }
  return values;
}

function selectorValues() {
  // What decides which plugins' options join: the selector options' values (a tuner, an algorithm, rewards).
  const values = {};
  for (const group of state.groups) for (const field of group.fields) {
    if (field.selects && field.name in state.raw) values[field.name] = typedValue(field, state.raw[field.name]);
  }
  return values;
}

async function refreshForm() {
  try {
    const data = await api("POST", "/api/form", { command: state.command, values: selectorValues() });
    state.groups = data.groups;
    renderForm();
    notice("");
    await refreshPreview();
  } catch (error) {
    notice(error.message);
  }
}

let previewTimer = null;
function schedulePreview() { clearTimeout(previewTimer); previewTimer = setTimeout(refreshPreview, 300); }

async function refreshPreview() {
  try {
    const preview = await api("POST", "/api/preview", { command: state.command, values: currentValues() });
    $("preview-command").textContent = preview.command;
    $("preview-yaml").textContent = preview.yaml;
    $("preview-config-command").textContent = preview.config_command;
  } catch (error) {
    notice(error.message);
  }
}

function applyFilter() {
  const plain = (text) => text.toLowerCase().replaceAll("_", "-"); // max_steps finds --max-steps
  const words = plain($("option-filter").value.trim());
  document.querySelectorAll("#form .field").forEach((row) => {
    row.hidden = Boolean(words) && !plain(row.textContent).includes(words);
  });
  // Sections with a match open; an empty filter puts them back as they were drawn.
  document.querySelectorAll("#form details").forEach((d) => {
    d.open = words ? Boolean(d.querySelector(".field:not([hidden])")) : d.dataset.open !== undefined;
  });
}
$("option-filter").addEventListener("input", applyFilter);

$("command").addEventListener("change", () => {
  state.command = $("command").value;
  state.raw = {};
  $("command-description").textContent = $("command").selectedOptions[0].title;
  refreshForm();
});

$("start").addEventListener("click", async () => {
  $("start").disabled = true;
  try {
    const run = await api("POST", "/api/runs", { command: state.command, values: currentValues(), name: $("run-name").value.trim() });
    notice(`started ${run.name}`, true);
    $("run-name").value = "";
    state.selectedRun = run.name;
    showTab("runs");
  } catch (error) {
    notice(error.message);
  } finally {
    $("start").disabled = false;
  }
});

// ---------------------------------------------------------------- charts
const COLORS = ["#2f6fdd", "#d9480f", "#2b8a3e", "#862e9c", "#e8590c", "#0b7285", "#5c940d", "#c2255c"];

function drawChart(svg, series) {
  svg.replaceChildren();
  const NS = "http://www.w3.org/2000/svg";
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  const points = series.flatMap((s) => s.points);
  if (!points.length) { add("text", { x: 250, y: 150 }, "no loss logged yet"); return; }
  const [left, right, top, bottom] = [50, 590, 15, 270];
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) x1 = x0 + 1;
  if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
  const sx = (x) => left + ((x - x0) / (x1 - x0)) * (right - left);
  const sy = (y) => bottom - ((y - y0) / (y1 - y0)) * (bottom - top);
  add("line", { x1: left, y1: bottom, x2: right, y2: bottom, stroke: "#999" });
  add("line", { x1: left, y1: top, x2: left, y2: bottom, stroke: "#999" });
  const stepTicks = new Set();
  for (let i = 0; i <= 4; i++) {
    const y = y0 + ((y1 - y0) * i) / 4;
    add("text", { x: 4, y: sy(y) + 4 }, y.toPrecision(3));
    stepTicks.add(Math.round(x0 + ((x1 - x0) * i) / 4)); // steps are whole numbers: each labelled once
  }
  stepTicks.forEach((x) => add("text", { x: sx(x) - 8, y: bottom + 16 }, String(x)));
  add("text", { x: right - 30, y: bottom + 28 }, "step");
  series.forEach((s, i) => {
    const color = s.color || COLORS[i % COLORS.length];
    if (!s.points.length) return;
    add("polyline", { points: s.points.map((p) => `${sx(p[0])},${sy(p[1])}`).join(" "), fill: "none", stroke: color,
      "stroke-width": 2, "stroke-dasharray": s.dashed ? "5 4" : "none", class: "series", "data-label": s.label });
    s.points.forEach((p) => add("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 2.5, fill: color }));
    add("text", { x: right - 150, y: top + 14 * (i + 1), fill: color, style: `fill:${color}` }, s.label);
  });
}

function lossSeries(records, label, color) {
  const train = records.filter((r) => "loss" in r).map((r) => [r.step, r.loss]);
  const evals = records.filter((r) => "eval_loss" in r).map((r) => [r.step, r.eval_loss]);
  const series = [{ label: `${label}train loss`, points: train, color }];
  if (evals.length) series.push({ label: `${label}eval loss`, points: evals, color, dashed: true });
  return series;
}

// ---------------------------------------------------------------- runs
async function refreshRuns() {
  let runs;
  try { runs = await api("GET", "/api/runs"); } catch (error) { notice(error.message); return; }
  const body = document.querySelector("#run-table tbody");
  body.replaceChildren(...runs.map((run) => {
    const box = el("input", { type: "checkbox", checked: state.compared.has(run.name), title: "compare" });
    box.addEventListener("click", (event) => {
      event.stopPropagation();
      box.checked ? state.compared.add(run.name) : state.compared.delete(run.name);
    });
    const steps = run.total_steps ? `${run.step}/${run.total_steps}` : run.step ? String(run.step) : "";
    const row = el("tr", { "data-run": run.name, class: run.name === state.selectedRun ? "selected" : "" },
      el("td", {}, box), el("td", { text: run.name }), el("td", { text: run.command }),
      el("td", {}, el("span", { class: `badge ${run.status}`, text: run.status })), el("td", { text: steps }),
      el("td", { text: run.loss === null ? "" : run.loss.toFixed(4) }));
    row.addEventListener("click", () => { state.selectedRun = run.name; refreshRuns(); });
    return row;
  }));
  const names = new Set(runs.map((r) => r.name));
  if (state.selectedRun && names.has(state.selectedRun)) await refreshRunDetail(); else $("run-detail").hidden = true;
  fillChatRuns(runs);
}

async function refreshRunDetail() {
  const run = await api("GET", `/api/runs/${encodeURIComponent(state.selectedRun)}`);
  $("run-detail").hidden = false;
  $("run-title").textContent = run.name;
  const badge = $("run-status");
  badge.textContent = run.status;
  badge.className = `badge ${run.status}`;
  $("run-progress").max = run.total_steps || 1;
  $("run-progress").value = run.total_steps ? run.step : 0;
  $("run-steps").textContent = run.total_steps ? `step ${run.step} of ${run.total_steps}` : "";
  $("run-error").hidden = !run.error;
  $("run-error").textContent = run.error || "";
  $("run-stop").disabled = run.status !== "running";
  const training = ["sft", "pt", "rlhf"].includes(run.command);
  $("run-resume").disabled = run.status === "running" || !training;
  $("run-chat").disabled = run.status !== "finished" || !training;
  const checkpoint = $("run-checkpoint");
  const choice = checkpoint.value;
  checkpoint.replaceChildren(el("option", { value: "last", text: "the last checkpoint" }), ...run.checkpoints.map((c) => el("option", { value: c, text: c })));
  if ([...checkpoint.options].some((o) => o.value === choice)) checkpoint.value = choice;
  $("run-config").textContent = run.config;
  const log = $("run-log");
  const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 5;
  log.textContent = run.log;
  if (atEnd) log.scrollTop = log.scrollHeight;
  drawChart($("run-chart"), lossSeries(run.records, ""));
  $("run-report").replaceChildren(...(run.report ? [el("h3", { text: "Report" }), el("pre", { text: JSON.stringify(run.report, null, 2) })] : []));
}

async function runAction(action, body) {
  try {
    await api("POST", `/api/runs/${encodeURIComponent(state.selectedRun)}/${action}`, body);
    notice("");
    refreshRuns();
  } catch (error) {
    notice(error.message);
  }
}
$("run-stop").addEventListener("click", () => runAction("stop"));
$("run-resume").addEventListener("click", () => runAction("resume", { checkpoint: $("run-checkpoint").value }));
$("run-chat").addEventListener("click", () => { $("chat-run").value = state.selectedRun; showTab("chat"); loadChat(); });

// ---------------------------------------------------------------- compare
async function refreshCompare() {
  const names = [...state.compared];
  const runs = await Promise.all(names.map((n) => api("GET", `/api/runs/${encodeURIComponent(n)}`).catch(() => null)));
  const shown = runs.filter(Boolean);
  // Options that differ between the runs, then each run's last losses and an eval report's numbers.
  const keys = [...new Set(shown.flatMap((r) => Object.keys(r.values)))].filter(
    (k) => k !== "output_dir" && new Set(shown.map((r) => JSON.stringify(r.values[k] ?? null))).size > 1);
  const last = (r, key) => { const found = r.records.filter((x) => key in x); return found.length ? found[found.length - 1][key] : null; };
  const reportNumbers = (r) => Object.fromEntries(flatten(r.report || {}).filter(([, v]) => typeof v === "number"));
  const reportKeys = [...new Set(shown.flatMap((r) => Object.keys(reportNumbers(r))))];
  const columns = ["run", "command", "status", "steps", "train loss", "eval loss", ...keys, ...reportKeys];
  const rows = shown.map((r) => [r.name, r.command, r.status, r.step, last(r, "loss"), last(r, "eval_loss"),
    ...keys.map((k) => r.values[k] ?? "(default)"), ...reportKeys.map((k) => reportNumbers(r)[k] ?? "")]);
  const cell = (v) => (typeof v === "number" && !Number.isInteger(v) ? v.toFixed(4) : v === null ? "" : Array.isArray(v) ? v.join(", ") : String(v));
  $("compare-table").replaceChildren(el("tr", {}, ...columns.map((c) => el("th", { text: c }))),
    ...rows.map((row) => el("tr", {}, ...row.map((v) => el("td", { text: cell(v) })))));
  drawChart($("compare-chart"), shown.flatMap((r, i) => lossSeries(r.records, `${r.name}: `, COLORS[i % COLORS.length])));
}

function flatten(value, prefix = "") {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    return Object.entries(value).flatMap(([k, v]) => flatten(v, prefix ? `${prefix}.${k}` : k));
  }
  return [[prefix, value]];
}

// ---------------------------------------------------------------- chat
function fillChatRuns(runs) {
  const select = $("chat-run");
  const choice = select.value;
  const finished = runs.filter((r) => r.status === "finished" && ["sft", "pt", "rlhf"].includes(r.command));
  select.replaceChildren(el("option", { value: "", text: "(none: a model or adapter path)" }), ...finished.map((r) => el("option", { value: r.name, text: r.name })));
  if ([...select.options].some((o) => o.value === choice)) select.value = choice;
}

function showChatStatus(status) {
  const badge = $("chat-status");
  badge.textContent = status.status;
  badge.className = `badge ${status.status}`;
  $("chat-error").hidden = !status.error;
  $("chat-error").textContent = status.error || "";
}

async function loadChat() {
  try {
    showChatStatus(await api("POST", "/api/chat/load", {
      run: $("chat-run").value, model: $("chat-model").value.trim(), adapter: $("chat-adapter").value.trim(), infer_backend: $("chat-engine").value,
    }));
    pollChat();
  } catch (error) {
    showChatStatus({ status: "failed", error: error.message });
  }
}
$("chat-load").addEventListener("click", loadChat);

async function pollChat() {
  const status = await api("GET", "/api/chat/status");
  showChatStatus(status);
  if (status.status === "loading") setTimeout(pollChat, 1000);
}

function readMedia(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function sendChat() {
  const text = $("chat-input").value.trim();
  const file = $("chat-media").files[0];
  if (!text && !file) return;
  let content = text;
  if (file) { // OpenAI content parts: omni serve turns them into the row's images or audios
    const uri = await readMedia(file);
    const part = file.type.startsWith("audio/")
      ? { type: "input_audio", input_audio: { data: uri.split(",")[1], format: file.name.split(".").pop() } }
      : { type: "image_url", image_url: { url: uri } };
    content = [part, { type: "text", text }];
  }
  state.chat.push({ role: "user", content });
  $("chat-input").value = "";
  $("chat-media").value = "";
  $("chat-log").append(el("div", { class: "message user", text: text + (file ? ` [${file.name}]` : "") }));
  const answer = el("div", { class: "message assistant" });
  $("chat-log").append(answer);
  $("chat-send").disabled = true;
  try {
    const response = await fetch("/api/chat", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ messages: state.chat, max_tokens: Number($("chat-max-tokens").value) || null }) });
    if (!response.ok) throw new Error((await response.json()).error);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      const events = buffer.split("\n\n");
      buffer = events.pop();
      for (const event of events) {
        const data = event.replace(/^data: /, "").trim();
        if (!data || data === "[DONE]") continue;
        const parsed = JSON.parse(data);
        if (parsed.error) throw new Error(parsed.error.message);
        answer.textContent += parsed.choices?.[0]?.delta?.content || "";
      }
    }
    answer.dataset.done = "true";
    state.chat.push({ role: "assistant", content: answer.textContent });
  } catch (error) {
    state.chat.pop();
    answer.remove();
    showChatStatus({ status: $("chat-status").textContent, error: error.message });
  } finally {
    $("chat-send").disabled = false;
  }
}
$("chat-send").addEventListener("click", sendChat);
$("chat-input").addEventListener("keydown", (event) => { if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); sendChat(); } });
$("chat-clear").addEventListener("click", () => { state.chat = []; $("chat-log").replaceChildren(); });

// ---------------------------------------------------------------- start
async function start() {
  try {
    const [commands, choices] = await Promise.all([api("GET", "/api/commands"), api("GET", "/api/choices")]);
    state.choices = choices;
    $("command").replaceChildren(...commands.map((c) => el("option", { value: c.name, text: c.name, title: c.description })));
    state.command = commands[0].name;
    $("command-description").textContent = commands[0].description;
    $("chat-engine").replaceChildren(el("option", { value: "", text: "(omni serve's default)" }),
      ...choices.engines.map((e) => el("option", { value: e.name, text: e.name, title: e.description })));
    await refreshForm();
    pollChat();
  } catch (error) {
    notice(error.message);
  }
  setInterval(() => { if (!$("runs").hidden) refreshRuns(); }, 1500);
}
start();
