"use strict";
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("persona-token") || "";
let draftVersion = null;
let config = null;

async function request(method, path, body) {
  const resp = await fetch(path, {
    method,
    headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json",
              ...(draftVersion !== null && method !== "GET" ? {"If-Match": `"${draftVersion}"`} : {})},
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = resp.status === 204 ? {} : await resp.json();
  if (!resp.ok) { const e = new Error(data.message || resp.statusText); e.status = resp.status; throw e; }
  return { data, headers: resp.headers };
}

async function api(method, path, body) { return (await request(method, path, body)).data; }

function say(text) { $("status").textContent = text; }
function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }
function clearErrors(form) { form.querySelectorAll(".error").forEach((p) => { p.textContent = ""; }); form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid")); }

// Put a 422 message next to the field its path names (`$.variants[2].content` -> content).
function showError(prefix, fields, message) {
  const at = /at `([^`]*)`/.exec(message);
  const path = at ? at[1] : "";
  const field = fields.find((f) => new RegExp("[.\\]]" + f + "(?:[.\\[]|$)").test(path)) || fields.find((f) => message.includes(f));
  const target = $("err-" + prefix + "-" + (field || "form")) || $("err-" + prefix + "-form");
  target.textContent = message;
  const input = document.querySelector(`[aria-describedby~="${target.id}"]`);
  if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
}

async function load() {
  const got = await request("GET", "/v1/admin/config");
  config = got.data;
  draftVersion = Number(got.headers.get("ETag").replaceAll('"', ""));
  const live = got.headers.get("X-Persona-Live-Version");
  $("draft").hidden = false;
  $("draft").textContent = `Draft: version ${draftVersion}` + (live ? ` · live: version ${live}` : " · nothing published yet");
  const pl = $("placements-list"); pl.replaceChildren();
  for (const p of config.placements) {
    const tr = document.createElement("tr");
    tr.append(cell(p.name), cell(p.variants.join(", ")), cell(p.default_variant), cell(p.status || "live"));
    const td = document.createElement("td"); const b = document.createElement("button");
    b.className = "secondary"; b.textContent = "Edit"; b.setAttribute("aria-label", "Edit placement " + p.name);
    b.onclick = () => fillPlacement(p); td.append(b); tr.append(td); pl.append(tr);
  }
  const vl = $("variants-list"); vl.replaceChildren();
  for (const v of config.variants) {
    const tr = document.createElement("tr");
    tr.append(cell(v.id), cell(v.category), cell((v.content || {}).title || ""), cell(v.rule ? JSON.stringify(v.rule) : "everyone"), cell(v.status || "live"));
    const td = document.createElement("td"); const b = document.createElement("button");
    b.className = "secondary"; b.textContent = "Edit"; b.setAttribute("aria-label", "Edit variant " + v.id);
    b.onclick = () => fillVariant(v); td.append(b); tr.append(td); vl.append(tr);
  }
  const al = $("audiences-list"); al.replaceChildren();
  for (const [name, rule] of Object.entries(config.audiences || {})) {
    const tr = document.createElement("tr"); tr.append(cell(name), cell(JSON.stringify(rule)));
    const td = document.createElement("td"); const b = document.createElement("button");
    b.className = "secondary"; b.textContent = "Edit"; b.setAttribute("aria-label", "Edit audience " + name);
    b.onclick = () => { $("a-name").value = name; $("a-rule").value = JSON.stringify(rule, null, 2); }; td.append(b); tr.append(td); al.append(tr);
  }
  const sel = $("pv-placement"); sel.replaceChildren();
  for (const p of config.placements) { const o = document.createElement("option"); o.textContent = p.name; sel.append(o); }
  await loadVersions();
  await loadStats();
}

function fillPlacement(p) {
  $("p-name").value = p.name; $("p-status").value = p.status || "live"; $("p-description").value = p.description || "";
  $("p-variants").value = p.variants.join(", "); $("p-default").value = p.default_variant;
  $("p-count").value = p.count || 1; $("p-explore").value = p.explore_share || 0; $("p-holdout").value = p.holdout_share || 0; $("p-cap").value = p.frequency_cap || "";
}

function fillVariant(v) {
  $("v-id").value = v.id; $("v-category").value = v.category; $("v-status").value = v.status || "live";
  $("v-priority").value = v.priority || 0; $("v-tags").value = (v.tags || []).join(", ");
  $("v-content").value = JSON.stringify(v.content, null, 2); $("v-rule").value = v.rule ? JSON.stringify(v.rule, null, 2) : "";
  const s = v.schedule || {}; $("v-start").value = (s.start || "").slice(0, 16); $("v-end").value = (s.end || "").slice(0, 16); $("v-tz").value = s.timezone || "UTC";
}

const list = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);

function parseJson(text, prefix, field) {
  try { return JSON.parse(text); } catch (e) { showError(prefix, [field], `not valid JSON: ${e.message} - at \`$.${field}\``); throw e; }
}

$("placement-form").addEventListener("submit", async (ev) => {
  ev.preventDefault(); const f = ev.target; clearErrors(f);
  const body = {
    name: $("p-name").value.trim(), description: $("p-description").value, status: $("p-status").value,
    variants: list($("p-variants").value), default_variant: $("p-default").value.trim(),
    explore_share: Number($("p-explore").value || 0), holdout_share: Number($("p-holdout").value || 0),
    count: Number($("p-count").value || 1),
  };
  if ($("p-cap").value) body.frequency_cap = Number($("p-cap").value);
  try { const v = await api("PUT", "/v1/admin/placements/" + encodeURIComponent(body.name), body); say(`Saved placement ${body.name}: version ${v.version}.`); await load(); }
  catch (e) { showError("p", ["default_variant", "variants", "explore_share", "holdout_share", "frequency_cap", "count", "name"], e.message); }
});

$("variant-form").addEventListener("submit", async (ev) => {
  ev.preventDefault(); const f = ev.target; clearErrors(f);
  let body;
  try {
    body = { id: $("v-id").value.trim(), category: $("v-category").value.trim(), status: $("v-status").value,
             priority: Number($("v-priority").value || 0), tags: list($("v-tags").value),
             content: parseJson($("v-content").value, "v", "content") };
    if ($("v-rule").value.trim()) body.rule = parseJson($("v-rule").value, "v", "rule");
  } catch (e) { return; }
  if ($("v-start").value || $("v-end").value) {
    body.schedule = { timezone: $("v-tz").value.trim() || "UTC" };
    if ($("v-start").value) body.schedule.start = $("v-start").value + ":00";
    if ($("v-end").value) body.schedule.end = $("v-end").value + ":00";
  }
  try { const v = await api("PUT", "/v1/admin/variants/" + encodeURIComponent(body.id), body); say(`Saved variant ${body.id}: version ${v.version}.`); await load(); }
  catch (e) { showError("v", ["content", "rule", "schedule", "category", "tags", "id"], e.message); }
});

$("audience-form").addEventListener("submit", async (ev) => {
  ev.preventDefault(); const f = ev.target; clearErrors(f);
  let rule; try { rule = parseJson($("a-rule").value, "a", "rule"); } catch (e) { return; }
  const name = $("a-name").value.trim();
  try { const v = await api("PUT", "/v1/admin/audiences/" + encodeURIComponent(name), rule); say(`Saved audience ${name}: version ${v.version}.`); await load(); }
  catch (e) { showError("a", ["rule"], e.message); }
});

$("preview-form").addEventListener("submit", async (ev) => {
  ev.preventDefault(); clearErrors(ev.target);
  const body = { placement: $("pv-placement").value, context: { device: $("pv-device").value, page_type: $("pv-page").value } };
  if ($("pv-visitor").value.trim()) body.visitor_id = $("pv-visitor").value.trim();
  try {
    const r = await api("POST", "/v1/admin/preview", body);
    const table = document.createElement("table");
    table.innerHTML = "<caption>Variants for this visitor (draft)</caption><thead><tr><th>Variant</th><th>Score</th><th>Eligible</th><th>Why not</th></tr></thead>";
    const tb = document.createElement("tbody");
    for (const v of r.variants) {
      const tr = document.createElement("tr");
      tr.append(cell(v.variant_id + (v.default ? " (default)" : "")), cell(v.score === null ? "–" : v.score.toFixed(4)), cell(v.eligible ? "yes" : "no"), cell(v.excluded_because || ""));
      tb.append(tr);
    }
    table.append(tb);
    const choice = document.createElement("p"); choice.id = "preview-choice";
    choice.textContent = `Would show: ${r.choice.variant_id} (${r.choice.policy}); ${r.known_visitor ? "known visitor" : "new visitor"}.`;
    $("preview-result").replaceChildren(choice, table);
  } catch (e) { $("err-pv-form").textContent = e.message; }
});

async function loadStats() {
  let data; try { data = await api("GET", "/v1/admin/stats?days=" + $("stats-days").value); } catch (e) { return; }
  const tb = $("stats-list"); tb.replaceChildren();
  for (const [placement, variants] of Object.entries(data.placements)) {
    for (const [variant, c] of Object.entries(variants)) {
      const tr = document.createElement("tr");
      tr.append(cell(placement), cell(variant), cell(String(c.impressions)), cell(String(c.clicks)),
                cell((100 * c.ctr).toFixed(1) + " %"), cell(String(c.conversions)), cell(c.value.toFixed(2)));
      tb.append(tr);
    }
  }
  if (!tb.children.length) { const tr = document.createElement("tr"); const td = cell("No impressions in this period."); td.colSpan = 7; tr.append(td); tb.append(tr); }
}
$("stats-days").addEventListener("change", loadStats);

async function loadVersions() {
  let data; try { data = await api("GET", "/v1/admin/versions"); } catch (e) { return; }
  const tb = $("versions-list"); tb.replaceChildren();
  for (const v of data.versions) {
    const tr = document.createElement("tr");
    const n = cell(String(v.version)); if (v.live) { const s = document.createElement("span"); s.className = "badge live"; s.textContent = "live"; n.append(" ", s); }
    tr.append(n, cell(v.author), cell(new Date(v.created * 1000).toLocaleString()), cell(v.changes.join("; ") || v.message));
    const td = document.createElement("td"); const b = document.createElement("button");
    b.className = "secondary"; b.textContent = "Restore"; b.setAttribute("aria-label", "Restore version " + v.version);
    b.onclick = async () => { try { const r = await api("POST", `/v1/admin/versions/${v.version}/restore`); say(`Restored version ${v.version} as draft version ${r.version}; publish to serve it.`); await load(); } catch (e) { say(e.message); } };
    td.append(b); tr.append(td); tb.append(tr);
  }
}

$("publish").addEventListener("click", async () => {
  try { const v = await api("POST", "/v1/admin/publish", {}); say(`Published version ${v.version}: live in every process within a second.`); await load(); }
  catch (e) { say(e.message); }
});

document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => show(b.dataset.tab)));
function show(tab) {
  document.querySelectorAll("nav button").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.tab === tab)));
  document.querySelectorAll("section[id^=tab-]").forEach((s) => { s.hidden = s.id !== "tab-" + tab; });
}

async function signIn() {
  try {
    const me = await api("GET", "/v1/admin/whoami");
    $("who").textContent = `Signed in as ${me.name} (${me.scopes.join(", ")})`;
    $("signin").hidden = true; $("nav").hidden = false; show("placements");
    await load();
  } catch (e) {
    sessionStorage.removeItem("persona-token");
    $("signin").hidden = false;
    $("token-error").textContent = e.status === 401 ? "That token is not valid." : e.message;
  }
}

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault(); token = $("token").value.trim(); sessionStorage.setItem("persona-token", token); await signIn();
});
if (token) signIn();
