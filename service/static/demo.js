"use strict";
// Each slot asks POST /v1/decide; whatever goes wrong (network, timeout, a
// non-200 answer, an unknown slot), the slot shows its static default: never
// a blank or endless skeleton.
const SLOTS = ["home-hero", "sidebar-offer"];
const TIMEOUT_MS = 2000;
const FALLBACK = {
  "home-hero": { title: "Welcome to Summit Sports", body: "Gear for every sport, picked by people who play it.", cta: "Shop all", link: "/shop" },
  "sidebar-offer": { title: "Free shipping over $50", body: "On every order, every day.", cta: "Start shopping", link: "/shop" },
};
const REASONS = {
  redis_timeout: "the visitor store answered too slowly",
  redis_unavailable: "the visitor store is unavailable",
  no_model: "no model is loaded",
  score_error: "scoring failed",
  unknown_placement: "this slot is not configured",
  no_catalog: "no content catalog is loaded",
  internal_error: "of an internal error",
};
const skeletons = {};
for (const name of SLOTS) skeletons[name] = document.getElementById("slot-" + name).innerHTML;

// Storage can be blocked (privacy settings); the page must still work.
const store = {
  get(key) { try { return localStorage.getItem(key); } catch (e) { return null; } },
  set(key, value) { try { localStorage.setItem(key, value); } catch (e) { /* remembered for this page only */ } },
};
let choice = store.get("persona-consent");

function consentHeader() {
  return choice === "granted" ? "personalization,analytics" : "none";
}

function device() {
  if (matchMedia("(max-width: 700px)").matches) return "mobile";
  if (matchMedia("(max-width: 1100px) and (pointer: coarse)").matches) return "tablet";
  return "desktop";
}

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

// Only links within this site: content comes from the catalog, not from this page.
function safeLink(link) {
  if (typeof link !== "string") return null;
  try {
    const url = new URL(link, location.href);
    return url.origin === location.origin && (url.protocol === "http:" || url.protocol === "https:") ? url.pathname + url.search + url.hash : null;
  } catch (e) {
    return null;
  }
}

function showSkeleton(name) {
  const slot = document.getElementById("slot-" + name);
  slot.classList.add("skeleton");
  slot.setAttribute("aria-busy", "true");
  slot.innerHTML = skeletons[name];
}

function why(decision) {
  const box = el("details");
  box.append(el("summary", "Why am I seeing this?"));
  let reason;
  if (decision.fallback) {
    reason = "The standard content, because " + (REASONS[decision.fallback] || decision.fallback.replace(/_/g, " ")) + ".";
  } else if (decision.policy === "model") {
    reason = "Chosen by the model as the best match for this page" + (consentHeader() === "none" ? " (you chose no personalization, so only the page was used)." : " and what you browsed here.");
  } else if (decision.policy === "explore") {
    reason = "A random pick: we sometimes show other content to learn what works.";
  } else {
    reason = "The standard content: a small group of visitors always sees it, so we can measure whether personalization helps.";
  }
  box.append(el("p", reason));
  const facts = el("p");
  facts.append("Policy ", el("code", decision.policy), " · variant ", el("code", String(decision.variant_id)), " · decision ", el("code", decision.decision_id));
  box.append(facts);
  return box;
}

function render(name, content, decision) {
  const slot = document.getElementById("slot-" + name);
  slot.classList.remove("skeleton");
  slot.replaceChildren();
  slot.append(el("h2", content.title || ""), el("p", content.body || ""));
  const href = safeLink(content.link);
  if (href) slot.append(el("a", content.cta || "More", { href: href, class: "cta" }));
  if (decision) slot.append(why(decision));
  slot.setAttribute("aria-busy", "false");
}

let generation = 0;

async function load() {
  const mine = ++generation;
  SLOTS.forEach(showSkeleton);
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
  let decisions = {};
  try {
    const res = await fetch("/v1/decide", {
      method: "POST",
      credentials: "same-origin",
      signal: abort.signal,
      headers: { "Content-Type": "application/json", "X-Persona-Consent": consentHeader() },
      body: JSON.stringify({
        placements: SLOTS,
        context: { page_type: "home", device: device() },
      }),
    });
    if (!res.ok) throw new Error("HTTP " + res.status);
    decisions = (await res.json()).decisions || {};
  } catch (err) {
    decisions = {};  // the static defaults below
  } finally {
    clearTimeout(timer);
  }
  if (mine !== generation) return;  // a newer load (a new consent choice) owns the slots
  for (const name of SLOTS) {
    const d = decisions[name];
    try {
      render(name, (d && d.content) || FALLBACK[name], d || null);
    } catch (err) {
      render(name, FALLBACK[name], null);
    }
  }
}

const banner = document.getElementById("consent");
const privacy = document.getElementById("privacy");
function ask() {
  banner.hidden = false;
  privacy.setAttribute("aria-expanded", "true");
  document.getElementById("accept").focus();
}
function hideBanner() {
  banner.hidden = true;
  privacy.setAttribute("aria-expanded", "false");
  privacy.focus();
}
function choose(value) {
  choice = value;
  store.set("persona-consent", value);
  hideBanner();
  load();
}
document.getElementById("accept").addEventListener("click", () => choose("granted"));
document.getElementById("refuse").addEventListener("click", () => choose("denied"));
privacy.addEventListener("click", ask);
banner.addEventListener("keydown", (e) => { if (e.key === "Escape") hideBanner(); });
privacy.setAttribute("aria-expanded", "false");
if (!choice) ask();
load();
