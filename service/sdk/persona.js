/*! persona.js v1 — Persona's web SDK. Apache-2.0. https://github.com/persona/persona */
// Slots keep the site's default markup until Persona answers or the timeout
// passes; nothing on the page is ever hidden by this script. Content is bound
// as text unless the site's own template marks a field as trusted HTML.
(function (window, document) {
  "use strict";
  if (window.Persona && window.Persona.version) return;

  const SLOT = "data-persona-slot";
  const FEEDBACK = "data-persona-feedback";
  const MAX_PLACEMENTS = 10; // the API's limit per call
  const MAX_BATCH = 100; // events per call
  const RETRIES = 3;
  const URL_ATTRS = ["href", "src", "action", "formaction", "poster", "xlink:href", "cite", "data"];
  const SAFE_SCHEMES = ["http:", "https:", "mailto:", "tel:"];
  const WHY = {
    model: "Chosen for you from what you looked at on this site and the page you are on.",
    context: "Chosen for this page. Personalization is off, so nothing about you was used.",
    explore: "We sometimes show something different to learn what people like.",
    holdout: "Standard content, shown to a small group of visitors so we can measure whether personalization helps.",
    fallback: "Standard content.",
  };
  const STORE_KEY = "persona.consent";

  const cfg = { endpoint: "", timeoutMs: 1000, policyVersion: undefined, flushMs: 2000 };
  const slots = new WeakMap(); // element -> {name, defaults, decision, seen, timer, armed}
  const known = new Set(); // slot elements (for refresh)
  let page = {};
  let pendingView = null;
  let consent = null; // {personalization, analytics} once known
  let consentWaiters = [];
  let queue = [];
  let flushTimer = 0;
  let decideInFlight = Promise.resolve();
  let started = false;
  let observer = null;

  // ---------- small helpers ----------

  function warn(message) {
    if (window.console) console.warn("Persona: " + message);
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  function storage(value) {
    try {
      if (value === undefined) return JSON.parse(localStorage.getItem(STORE_KEY) || "null");
      localStorage.setItem(STORE_KEY, JSON.stringify(value));
    } catch (e) {
      return null; // blocked storage: the choice holds for this page only
    }
  }

  function url(path) {
    return cfg.endpoint.replace(/\/$/, "") + path;
  }

  function credentials() {
    try {
      return new URL(cfg.endpoint || "/", location.href).origin === location.origin ? "same-origin" : "include";
    } catch (e) {
      return "same-origin";
    }
  }

  function personalized() {
    return !!(consent && consent.personalization);
  }

  function consentHeader() {
    if (!consent) return {}; // unknown: the service's default applies and nothing is withdrawn
    const parts = [];
    if (consent.personalization) parts.push("personalization");
    if (consent.analytics) parts.push("analytics");
    return { "X-Persona-Consent": parts.join(",") || "none" };
  }

  function normalizeConsent(choice) {
    if (choice === "granted" || choice === true) return { personalization: true, analytics: true };
    if (choice === "denied" || choice === false) return { personalization: false, analytics: false };
    if (choice && typeof choice === "object") {
      return { personalization: !!choice.personalization, analytics: !!choice.analytics };
    }
    return null;
  }

  function safeUrl(value) {
    try {
      const u = new URL(String(value), location.href);
      return SAFE_SCHEMES.indexOf(u.protocol) >= 0 ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  function field(content, path) {
    let v = content;
    for (const key of path.split(".")) v = v == null ? undefined : v[key];
    return v;
  }

  // ---------- rendering ----------

  const BUILT_IN = document.createElement("template");
  BUILT_IN.innerHTML =
    '<h2 data-persona-text="title"></h2><p data-persona-text="body"></p>' +
    '<a data-persona-if="link" data-persona-attr="href:link" data-persona-text="cta"></a>' +
    "<div data-persona-why></div>";

  function templateFor(el) {
    const id = el.getAttribute("data-persona-template");
    const named = id && document.getElementById(id);
    if (named && named.tagName === "TEMPLATE") return named;
    for (const child of el.children) if (child.tagName === "TEMPLATE") return child;
    return BUILT_IN;
  }

  function bindAttrs(node, spec, content) {
    for (const pair of spec.split(";")) {
      const i = pair.indexOf(":");
      if (i < 0) continue;
      const name = pair.slice(0, i).trim().toLowerCase();
      let value = field(content, pair.slice(i + 1).trim());
      if (value == null || name.startsWith("on") || name === "style" || name === "srcdoc") continue;
      if (URL_ATTRS.indexOf(name) >= 0 && (value = safeUrl(value)) === null) continue;
      node.setAttribute(name, String(value));
    }
  }

  function fill(fragment, content) {
    for (const node of fragment.querySelectorAll("[data-persona-if]")) {
      if (!field(content, node.getAttribute("data-persona-if"))) node.remove();
    }
    for (const node of fragment.querySelectorAll("[data-persona-text]")) {
      const v = field(content, node.getAttribute("data-persona-text"));
      node.textContent = v == null ? "" : String(v);
    }
    for (const node of fragment.querySelectorAll("[data-persona-html]")) {
      // the site's template marked this field as trusted HTML
      const v = field(content, node.getAttribute("data-persona-html"));
      node.innerHTML = v == null ? "" : String(v);
    }
    for (const node of fragment.querySelectorAll("[data-persona-attr]")) {
      bindAttrs(node, node.getAttribute("data-persona-attr"), content);
    }
  }

  function whyText(decision) {
    if (decision.policy === "model") return personalized() ? WHY.model : WHY.context;
    return WHY[decision.policy] || WHY.fallback;
  }

  // The explanation opens in a dialog (the top layer): the slot keeps its size.
  function addWhy(el, decision) {
    for (const spot of el.querySelectorAll("[data-persona-why]")) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "persona-why";
      button.textContent = "Why am I seeing this?";
      button.setAttribute("aria-haspopup", "dialog");
      button.addEventListener("click", () => {
        const dialog = document.createElement("dialog");
        dialog.className = "persona-why-dialog";
        dialog.setAttribute("aria-label", "Why am I seeing this?");
        const text = document.createElement("p");
        text.textContent = whyText(decision);
        const close = document.createElement("button");
        close.type = "button";
        close.textContent = "Close";
        close.addEventListener("click", () => dialog.close());
        dialog.addEventListener("close", () => dialog.remove());
        dialog.append(text, close);
        document.body.append(dialog);
        dialog.showModal();
        explain(decision, text);
      });
      spot.replaceChildren(button);
    }
  }

  // Asks the explanation endpoint when the service has one; the plain words stay otherwise.
  function explain(decision, text) {
    if (!personalized() || !decision.decision_id) return;
    fetch(url("/v1/explain?decision_id=" + encodeURIComponent(decision.decision_id)), {
      credentials: credentials(),
      headers: consentHeader(),
    })
      .then((r) => (r.ok ? r.json() : null))
      .then((body) => {
        if (body && typeof body.summary === "string") {
          const reasons = (body.reasons || []).map((r) => r && r.text).filter((t) => typeof t === "string");
          text.textContent = [body.summary].concat(reasons).join(" ");
        }
      })
      .catch(() => {});
  }

  // Keeps the slot's box as it is while its content changes: nothing below it moves.
  function reserve(el) {
    const css = getComputedStyle(el);
    let height = el.getBoundingClientRect().height;
    if (css.boxSizing !== "border-box") {
      for (const side of ["paddingTop", "paddingBottom", "borderTopWidth", "borderBottomWidth"]) height -= parseFloat(css[side]) || 0;
    }
    el.style.height = height + "px";
    el.style.overflow = "clip"; // unlike "hidden", changes no margin collapsing or floats
  }

  function render(el, state, decision) {
    const fresh = decision.content && decision.policy !== "fallback" && decision.policy !== "holdout";
    if (fresh) {
      const fragment = templateFor(el).content.cloneNode(true);
      fill(fragment, decision.content);
      reserve(el);
      for (const child of Array.from(el.childNodes)) if (child.tagName !== "TEMPLATE") child.remove();
      el.append(fragment);
      state.showing = decision.variant_id;
      if (el.scrollHeight > el.clientHeight + 1) {
        warn("slot '" + state.name + "' is taller than its reserved size; give it a min-height");
      }
    } else {
      restore(el, state);
    }
    addWhy(el, decision);
    el.setAttribute("data-persona-policy", decision.policy);
    if (decision.variant_id) el.setAttribute("data-persona-variant", decision.variant_id);
    el.dispatchEvent(new CustomEvent("persona:decision", { bubbles: true, detail: { slot: state.name, decision } }));
  }

  function restore(el, state) {
    if (state.showing === "default") return;
    reserve(el);
    for (const child of Array.from(el.childNodes)) if (child.tagName !== "TEMPLATE") child.remove();
    el.append(state.defaults.cloneNode(true));
    state.showing = "default";
  }

  // ---------- slots and decisions ----------

  function register(el) {
    let state = slots.get(el);
    if (!state) {
      const defaults = document.createDocumentFragment();
      for (const child of el.childNodes) if (child.tagName !== "TEMPLATE") defaults.append(child.cloneNode(true));
      state = { name: el.getAttribute(SLOT), defaults, decision: null, showing: "default", timer: 0, seen: false };
      slots.set(el, state);
      known.add(el);
      el.addEventListener("click", onClick);
      if (visibility) visibility.observe(el);
    }
    return state;
  }

  function context() {
    const now = new Date();
    const ctx = { local_hour: now.getHours(), day_of_week: (now.getDay() + 6) % 7 };
    if (page.page_type) ctx.page_type = page.page_type;
    if (page.category) ctx.category = page.category;
    if (personalized()) {
      ctx.url = location.href.slice(0, 2048);
      if (document.referrer) ctx.referrer = document.referrer.slice(0, 2048);
    }
    return ctx;
  }

  function waitForConsent(ms) {
    if (consent || !cfg.consentCallback) return Promise.resolve();
    return new Promise((resolve) => {
      consentWaiters.push(resolve);
      setTimeout(resolve, ms);
    });
  }

  async function decide(elements) {
    const started_ = Date.now();
    const byName = new Map();
    for (const el of elements) {
      const state = register(el);
      if (!state.name) continue;
      el.setAttribute("data-persona-state", "loading");
      if (!byName.has(state.name)) byName.set(state.name, []);
      byName.get(state.name).push(el);
    }
    const names = Array.from(byName.keys());
    if (!names.length) return;
    await waitForConsent(cfg.timeoutMs);
    const left = cfg.timeoutMs - (Date.now() - started_);
    const calls = [];
    for (let i = 0; i < names.length; i += MAX_PLACEMENTS) calls.push(ask(names.slice(i, i + MAX_PLACEMENTS), left));
    const answers = Object.assign({}, ...(await Promise.all(calls)));
    for (const [name, els] of byName) {
      const decision = answers[name];
      for (const el of els) {
        const state = slots.get(el);
        el.setAttribute("data-persona-state", decision ? "done" : "timeout");
        if (!decision) continue; // what the slot shows, and its decision, stay
        state.decision = decision;
        state.seen = false;
        render(el, state, decision);
        armImpression(el, state);
      }
    }
  }

  async function ask(names, ms) {
    if (ms <= 0) return {};
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), ms);
    try {
      const r = await fetch(url("/v1/decide"), {
        method: "POST",
        credentials: credentials(),
        signal: abort.signal,
        headers: Object.assign({ "Content-Type": "application/json" }, consentHeader()),
        body: JSON.stringify({ placements: names, context: context() }),
      });
      if (!r.ok) throw new Error("HTTP " + r.status);
      return (await r.json()).decisions || {};
    } catch (e) {
      warn("the slots keep their defaults (" + (abort.signal.aborted ? "timeout" : e.message) + ")");
      return {};
    } finally {
      clearTimeout(timer);
    }
  }

  function scan(root) {
    const found = [];
    if (root.nodeType !== 1) return found;
    if (root.hasAttribute(SLOT)) found.push(root);
    found.push(...root.querySelectorAll("[" + SLOT + "]"));
    return found;
  }

  function run(elements) {
    const job = decideInFlight.then(() => decide(elements));
    decideInFlight = job.catch(() => {});
    for (const el of elements) if (el.hasAttribute(FEEDBACK)) feedbackWidget(el);
    return job;
  }

  // ---------- impressions and clicks ----------

  const visibility =
    "IntersectionObserver" in window
      ? new IntersectionObserver(
          (entries) => {
            for (const entry of entries) {
              const state = slots.get(entry.target);
              if (!state) continue;
              state.visible = entry.intersectionRatio >= 0.5;
              armImpression(entry.target, state);
            }
          },
          { threshold: [0, 0.5, 1] }
        )
      : null;

  // An impression: at least half the slot on screen for a whole second, once per decision.
  function armImpression(el, state) {
    clearTimeout(state.timer);
    const d = state.decision;
    if (!d || state.seen || !state.visible || document.visibilityState !== "visible") return;
    if (d.policy === "fallback" || !d.decision_id) return;
    state.timer = setTimeout(() => {
      if (state.decision !== d || state.seen) return;
      state.seen = true;
      enqueue({ type: "impression", decision_id: d.decision_id, placement: state.name, variant_id: d.variant_id });
    }, 1000);
  }

  function onClick(e) {
    const state = slots.get(e.currentTarget);
    const d = state && state.decision;
    const link = e.target.closest && e.target.closest("a[href], [data-persona-click]");
    if (!d || !link || !d.decision_id || d.policy === "fallback" || !e.currentTarget.contains(link)) return;
    enqueue({ type: "click", decision_id: d.decision_id, placement: state.name, variant_id: d.variant_id });
    flush(true);
  }

  // ---------- events ----------

  function enqueue(event) {
    if (!personalized()) return false; // nothing personal leaves the page without consent
    if (!event.event_id) event.event_id = uuid();
    queue.push(event);
    clearTimeout(flushTimer);
    flushTimer = setTimeout(flush, queue.length >= 20 ? 0 : cfg.flushMs);
    return true;
  }

  function flush(leaving) {
    clearTimeout(flushTimer);
    const sends = [];
    while (queue.length) sends.push(send(queue.splice(0, MAX_BATCH), consentHeader(), leaving === true, 0));
    return Promise.all(sends).then(() => undefined);
  }

  // Sends after the first decision (which set the cookie) so one visitor id serves both.
  async function send(events, headers, leaving, attempt) {
    if (!leaving) await decideInFlight;
    let wait = 0;
    try {
      const r = await fetch(url("/v1/events"), {
        method: "POST",
        credentials: credentials(),
        keepalive: true,
        headers: Object.assign({ "Content-Type": "application/json" }, headers),
        body: JSON.stringify({ events }),
      });
      if (r.status !== 503 && r.status !== 429) {
        if (!r.ok) warn("events refused: HTTP " + r.status);
        return;
      }
      wait = Math.min(10, Number(r.headers.get("Retry-After")) || 1) * 1000;
    } catch (e) {
      wait = 1000;
    }
    // the same event ids again: the API counts a replayed id once
    if (attempt + 1 < RETRIES) {
      await new Promise((resolve) => setTimeout(resolve, wait));
      return send(events, headers, leaving, attempt + 1);
    }
    warn("events dropped after " + RETRIES + " attempts");
  }

  // ---------- feedback widget ----------

  function feedbackWidget(el) {
    if (el.querySelector(".persona-feedback")) return;
    const set = document.createElement("fieldset");
    set.className = "persona-feedback";
    const legend = document.createElement("legend");
    legend.textContent = el.getAttribute("data-persona-label") || "How relevant was this for you?";
    const status = document.createElement("p");
    status.setAttribute("role", "status");
    const row = document.createElement("div");
    row.setAttribute("role", "group");
    for (let n = 1; n <= 7; n++) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = String(n);
      b.setAttribute("aria-label", n + " of 7" + (n === 1 ? ", not at all" : n === 7 ? ", very" : ""));
      b.setAttribute("aria-pressed", "false");
      b.addEventListener("click", () => {
        const slotEl = document.querySelector("[" + SLOT + '="' + CSS.escape(el.getAttribute(FEEDBACK)) + '"]');
        const state = slotEl && slots.get(slotEl);
        const event = {
          type: "feedback",
          question_id: el.getAttribute("data-persona-question") || "relevance",
          rating: n,
        };
        if (state && state.decision && state.decision.decision_id) event.decision_id = state.decision.decision_id;
        else event.url = location.href.slice(0, 2048);
        for (const other of row.children) other.setAttribute("aria-pressed", String(other === b));
        status.textContent = enqueue(event) ? "Thank you." : "Thank you. (Not sent: personalization is off.)";
      });
      row.append(b);
    }
    set.append(legend, row, status);
    el.append(set);
  }

  // ---------- public API ----------

  function recordConsent(choice, source) {
    consent = choice;
    storage(choice);
    if (pendingView && enqueue(pendingView)) pendingView = null;
    for (const resolve of consentWaiters.splice(0)) resolve();
    const event = {
      type: "consent",
      event_id: uuid(),
      personalization: choice.personalization,
      analytics: choice.analytics,
      source: source,
    };
    if (cfg.policyVersion) event.policy_version = cfg.policyVersion;
    // a withdrawal goes out even though personal events stop: it deletes what was kept
    return send([event], consentHeader(), false, 0);
  }

  const Persona = {
    version: "1",

    /** Starts the SDK: {endpoint, consent, timeoutMs, page, policyVersion}. */
    init(options) {
      options = options || {};
      if (options.endpoint !== undefined) cfg.endpoint = String(options.endpoint);
      if (options.timeoutMs !== undefined) cfg.timeoutMs = Number(options.timeoutMs);
      if (options.policyVersion !== undefined) cfg.policyVersion = String(options.policyVersion);
      if (options.page) page = Object.assign({}, options.page);
      if (typeof options.consent === "function") {
        cfg.consentCallback = true;
        const stored = storage();
        options.consent((choice) => {
          const next = normalizeConsent(choice);
          if (!next) return;
          const changed = !stored || stored.personalization !== next.personalization || stored.analytics !== next.analytics;
          const first = !consent;
          if (changed) recordConsent(next, "api").then(() => first || Persona.refresh());
          else {
            consent = next;
            for (const resolve of consentWaiters.splice(0)) resolve();
          }
        });
      } else {
        consent = normalizeConsent(options.consent) || normalizeConsent(storage());
      }
      if (started) return Persona.refresh();
      started = true;
      addEventListener("pagehide", () => flush(true));
      let width = innerWidth;
      // a new viewport width lays the page out anew: slots may take their content's size
      addEventListener("resize", () => {
        if (innerWidth === width) return;
        width = innerWidth;
        for (const el of known) el.style.height = el.style.overflow = "";
      });
      document.addEventListener("visibilitychange", () => {
        if (document.visibilityState === "hidden") flush(true);
        for (const el of known) {
          const state = slots.get(el);
          if (state) armImpression(el, state);
        }
      });
      const go = () => {
        if ("MutationObserver" in window) {
          observer = new MutationObserver((records) => {
            const added = [];
            for (const record of records) {
              for (const node of record.addedNodes) {
                for (const el of scan(node)) if (!slots.has(el)) added.push(el);
                if (node.nodeType === 1 && node.matches("[" + FEEDBACK + "]")) feedbackWidget(node);
              }
              for (const node of record.removedNodes) {
                for (const el of scan(node)) {
                  known.delete(el);
                  if (visibility) visibility.unobserve(el);
                }
              }
            }
            if (added.length) run(added);
          });
          observer.observe(document.documentElement, { childList: true, subtree: true });
        }
        for (const el of document.querySelectorAll("[" + FEEDBACK + "]")) feedbackWidget(el);
        return run(Array.from(document.querySelectorAll("[" + SLOT + "]")));
      };
      // after the calling script, so a Persona.page() right after init is in the first decision
      return new Promise((resolve) => {
        const start = () => Promise.resolve().then(go).then(resolve);
        if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start, { once: true });
        else start();
      });
    },

    /** The page being shown: {page_type, category, tags, price_band, item_id}; records a view. */
    page(info) {
      page = Object.assign({}, info || {});
      const view = { type: "view", url: location.href.slice(0, 2048), path: location.pathname.slice(0, 2048) };
      for (const k of ["page_type", "category", "tags", "price_band", "item_id"]) if (page[k] !== undefined) view[k] = page[k];
      if (document.referrer) view.referrer = document.referrer.slice(0, 2048);
      // kept until the visitor consents on this page, then sent
      pendingView = enqueue(view) ? null : view;
    },

    /** Records an event of the page: track("conversion", {value, currency, order_id}). */
    track(type, fields) {
      return enqueue(Object.assign({}, fields || {}, { type: String(type) }));
    },

    /** Records the visitor's choice {personalization, analytics}; withdrawing deletes the cookie. */
    consent(choice, options) {
      const next = normalizeConsent(choice);
      if (!next) throw new TypeError("Persona.consent expects {personalization, analytics}");
      return recordConsent(next, (options && options.source) || "banner").then(() => Persona.refresh());
    },

    /** The visitor's consent as the SDK knows it, or null before a choice. */
    consentState() {
      return consent && Object.assign({}, consent);
    },

    /** After a login: the customer id and the login token the site's server made for this browser. */
    identify(customerId, token) {
      return enqueue({ type: "identify", customer_id: String(customerId), signature: String(token) });
    },

    /** Decides every slot on the page again (after a route change in a single-page app). */
    refresh() {
      for (const el of document.querySelectorAll("[" + SLOT + "]")) register(el);
      return run(Array.from(known).filter((el) => el.isConnected));
    },

    /** The decision a slot shows (null before the answer, after a timeout or for an unknown slot). */
    decision(name) {
      for (const el of known) {
        const state = slots.get(el);
        if (state && state.name === name && state.decision) return Object.assign({}, state.decision);
      }
      return null;
    },

    /** What Persona holds about this visitor, in readable form ({known, profile}). */
    me() {
      return flush(false).then(() => fetch(url("/v1/me"), { credentials: credentials(), headers: consentHeader() }).then((r) => {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      }));
    },

    /** Sends the queued events now. */
    flush() {
      return flush(false);
    },
  };

  window.Persona = Persona;
})(window, document);
