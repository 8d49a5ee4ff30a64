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
  const MAX_BATCH_BYTES = 60000; // under the API's body limit and a keepalive request's
  const RETRIES = 3;
  const URL_ATTRS = ["href", "src", "srcset", "action", "formaction", "poster", "cite", "data", "ping", "background"];
  const SAFE_SCHEMES = ["http:", "https:", "mailto:", "tel:"];
  const WHY = {
    model: "Chosen for you from what you looked at on this site and the page you are on.",
    context: "Chosen for this page. Personalization is off, so nothing about you was used.",
    explore: "We sometimes show something different to learn what people like.",
    holdout: "Standard content, shown to a small group of visitors so we can measure whether personalization helps.",
    fallback: "Standard content.",
  };
  const STORE_KEY = "persona.consent";

  const cfg = { endpoint: "", timeoutMs: 1000, policyVersion: "", flushMs: 2000 };
  const slots = new WeakMap(); // element -> {name, defaults, decision, showing, timer, visible, saved}
  const known = new Set(); // slot elements on the page
  const impressed = new Set(); // decision ids whose impression is sent
  let page = {};
  let pendingView = null; // this page's view, until the visitor consents
  let consent = null; // {personalization, analytics} once known
  let consentGen = 0; // the latest recorded choice (older retries are dropped)
  let cmp = false; // a consent manager answers through a callback
  let decideStarted = false;
  let waiters = [];
  let queue = [];
  let flushTimer = 0;
  let decideInFlight = Promise.resolve();
  let cookieReady; // settles after the first decision: its answer sets the cookie
  const cookieSet = new Promise((resolve) => (cookieReady = resolve));
  let started = false;

  // ---------- small helpers ----------

  function warn(message) {
    if (window.console) console.warn("Persona: " + message);
  }

  function make(tag, text, attrs) {
    const node = document.createElement(tag);
    if (text) node.textContent = text;
    for (const k in attrs || {}) node.setAttribute(k, attrs[k]);
    return node;
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Array.from(crypto.getRandomValues(new Uint8Array(16)), (x) => x.toString(16).padStart(2, "0")).join("");
  }

  function storage(value) {
    try {
      if (value === undefined) return normalizeConsent(JSON.parse(localStorage.getItem(STORE_KEY) || "null"));
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

  function same(a, b) {
    return !!a && !!b && a.personalization === b.personalization && a.analytics === b.analytics;
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
      const name = pair.slice(0, i).trim().toLowerCase();
      let value = field(content, pair.slice(i + 1).trim());
      // plain names only: no event handlers, no styles, no namespaced or odd attributes
      if (i < 0 || value == null || !/^[a-z][a-z0-9-]*$/.test(name) || /^on|^style$|^srcdoc$/.test(name)) continue;
      if (URL_ATTRS.indexOf(name) >= 0 && (value = safeUrl(value)) === null) continue;
      node.setAttribute(name, String(value));
    }
  }

  function fill(fragment, content) {
    const each = (attr, apply) => {
      for (const node of fragment.querySelectorAll("[" + attr + "]")) apply(node, field(content, node.getAttribute(attr)));
    };
    each("data-persona-if", (node, v) => v || node.remove());
    each("data-persona-text", (node, v) => (node.textContent = v == null ? "" : String(v)));
    // the site's template marked this field as trusted HTML
    each("data-persona-html", (node, v) => (node.innerHTML = v == null ? "" : String(v)));
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
      const button = make("button", "Why am I seeing this?", { type: "button", class: "persona-why", "aria-haspopup": "dialog" });
      button.addEventListener("click", () => {
        const dialog = make("dialog", "", { class: "persona-why-dialog", "aria-label": "Why am I seeing this?" });
        const text = make("p", whyText(decision));
        const close = make("button", "Close", { type: "button" });
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

  // Keeps a laid-out slot's height while its content changes: nothing below it moves.
  function reserve(el, state) {
    const css = getComputedStyle(el);
    let height = el.getBoundingClientRect().height;
    if (!height) return; // not laid out (hidden) or without a size: nothing to keep
    if (css.boxSizing !== "border-box") {
      for (const side of ["paddingTop", "paddingBottom", "borderTopWidth", "borderBottomWidth"]) height -= parseFloat(css[side]) || 0;
    }
    if (!state.saved) state.saved = [el.style.height, el.style.overflowY];
    el.style.height = height + "px";
    el.style.overflowY = "clip"; // unlike "hidden", changes no margin collapsing or floats
  }

  function release(el, state) {
    if (!state.saved) return;
    [el.style.height, el.style.overflowY] = state.saved;
    state.saved = null;
  }

  function swap(el, state, nodes) {
    reserve(el, state);
    for (const child of Array.from(el.childNodes)) if (child.tagName !== "TEMPLATE") child.remove();
    el.append(nodes);
    if (el.scrollHeight > el.clientHeight + 1 && state.saved) {
      warn("slot '" + state.name + "' is taller than its reserved size; give it a min-height");
    }
  }

  function render(el, state, decision) {
    if (decision.content && decision.policy !== "fallback" && decision.policy !== "holdout") {
      const fragment = templateFor(el).content.cloneNode(true);
      fill(fragment, decision.content);
      swap(el, state, fragment);
      state.showing = decision.variant_id;
    } else if (state.showing !== "default") {
      swap(el, state, state.defaults.cloneNode(true));
      state.showing = "default";
    }
    addWhy(el, decision);
    el.setAttribute("data-persona-policy", decision.policy);
    if (decision.variant_id) el.setAttribute("data-persona-variant", decision.variant_id);
    el.dispatchEvent(new CustomEvent("persona:decision", { bubbles: true, detail: { slot: state.name, decision } }));
  }

  // ---------- slots and decisions ----------

  function register(el) {
    let state = slots.get(el);
    if (!state) {
      const defaults = document.createDocumentFragment();
      for (const child of el.childNodes) if (child.tagName !== "TEMPLATE") defaults.append(child.cloneNode(true));
      state = { name: el.getAttribute(SLOT), defaults, decision: null, showing: "default", timer: 0 };
      slots.set(el, state);
      el.addEventListener("click", onClick);
    }
    if (!known.has(el)) {
      known.add(el);
      if (visibility) visibility.observe(el);
    }
    return state;
  }

  function forget(el) {
    const state = slots.get(el);
    known.delete(el);
    if (visibility) visibility.unobserve(el);
    if (state) {
      clearTimeout(state.timer);
      state.visible = false;
    }
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

  // A consent manager gets part of the budget to answer; without an answer the
  // page is decided on its context alone, and decided again once it answers.
  function waitForConsent(ms) {
    if (consent || !cmp) return Promise.resolve();
    return new Promise((resolve) => {
      waiters.push(resolve);
      setTimeout(resolve, ms);
    });
  }

  async function decide(elements) {
    const began = Date.now();
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
    await waitForConsent(cfg.timeoutMs / 2);
    decideStarted = true;
    const left = () => cfg.timeoutMs - (Date.now() - began);
    // the first call alone: its answer sets the cookie every later call then carries
    const answers = await ask(names.slice(0, MAX_PLACEMENTS), left());
    const rest = [];
    for (let i = MAX_PLACEMENTS; i < names.length; i += MAX_PLACEMENTS) rest.push(ask(names.slice(i, i + MAX_PLACEMENTS), left()));
    Object.assign(answers, ...(await Promise.all(rest)));
    for (const [name, els] of byName) {
      const decision = answers[name];
      for (const el of els) {
        const state = slots.get(el);
        el.setAttribute("data-persona-state", decision ? "done" : "timeout");
        if (!decision) continue; // what the slot shows, and its decision, stay
        state.decision = decision;
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
      cookieReady();
    }
  }

  function scan(root, attr) {
    const found = [];
    if (root.nodeType !== 1) return found;
    if (root.hasAttribute(attr)) found.push(root);
    found.push(...root.querySelectorAll("[" + attr + "]"));
    return found;
  }

  function run(elements) {
    const job = decideInFlight.then(() => decide(elements));
    decideInFlight = job.catch(() => {});
    return job;
  }

  function onMutations(records) {
    const added = [];
    for (const record of records) {
      for (const node of record.removedNodes) for (const el of scan(node, SLOT)) forget(el);
      for (const node of record.addedNodes) {
        for (const el of scan(node, SLOT)) {
          if (slots.has(el)) register(el); // moved: still the same slot and decision
          else added.push(el);
        }
        scan(node, FEEDBACK).forEach(feedbackWidget);
      }
    }
    if (added.length) run(added.filter((el) => el.isConnected));
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
    if (!d || !d.decision_id || d.policy === "fallback" || impressed.has(d.decision_id)) return;
    if (!state.visible || document.visibilityState !== "visible") return;
    state.timer = setTimeout(() => {
      if (state.decision !== d || impressed.has(d.decision_id) || !el.isConnected) return;
      impressed.add(d.decision_id);
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
    if (queue.length >= 20) flush();
    else if (!flushTimer) flushTimer = setTimeout(flush, cfg.flushMs);
    return true;
  }

  function flush(leaving) {
    clearTimeout(flushTimer);
    flushTimer = 0;
    const sends = [];
    while (queue.length) {
      let n = 0;
      let bytes = 0;
      while (n < queue.length && n < MAX_BATCH && (bytes += JSON.stringify(queue[n]).length + 1) < MAX_BATCH_BYTES) n++;
      sends.push(send(queue.splice(0, Math.max(n, 1)), leaving === true, 0, consentGen));
    }
    return Promise.all(sends).then(() => undefined);
  }

  // Sends after the first decision (which set the cookie) so one visitor id serves both;
  // the consent header is the visitor's choice at the moment of each attempt.
  async function send(events, leaving, attempt, gen) {
    if (!leaving) await cookieSet;
    // after a withdrawal only the withdrawal goes; a newer choice replaces an older one
    events = events.filter((e) => (e.type === "consent" ? gen === consentGen : personalized()));
    if (!events.length) return;
    let wait = 0;
    try {
      const r = await fetch(url("/v1/events"), {
        method: "POST",
        credentials: credentials(),
        keepalive: leaving, // outlives the page; such requests are limited to 64 KB in all
        headers: Object.assign({ "Content-Type": "application/json" }, consentHeader()),
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
      return send(events, leaving, attempt + 1, gen);
    }
    warn("events dropped after " + RETRIES + " attempts");
  }

  // ---------- consent ----------

  // Takes the visitor's choice; ``source`` records it (a consent event) when it is new.
  function setConsent(next, source) {
    consent = next;
    for (const resolve of waiters.splice(0)) resolve();
    if (!next.personalization) queue = [];
    else if (pendingView && enqueue(pendingView)) pendingView = null;
    if (!source) return Promise.resolve();
    storage(next);
    const gen = ++consentGen;
    if (!cfg.policyVersion) warn("set policyVersion in Persona.init: it is kept as proof of what the visitor agreed to");
    const event = {
      type: "consent",
      event_id: uuid(),
      personalization: next.personalization,
      analytics: next.analytics,
      policy_version: cfg.policyVersion || "unspecified",
      source: source,
    };
    // a withdrawal goes out though personal events stop: it deletes what was kept
    return send([event], false, 0, gen);
  }

  // Another tab of the site recorded a choice: this one follows it.
  function onStorage(e) {
    const next = e.key === STORE_KEY && storage();
    if (next && !same(next, consent)) setConsent(next).then(() => Persona.refresh());
  }

  // ---------- feedback widget ----------

  function feedbackWidget(el) {
    if (el.querySelector(".persona-feedback")) return;
    const set = make("fieldset", "", { class: "persona-feedback" });
    const legend = make("legend", el.getAttribute("data-persona-label") || "How relevant was this for you?");
    const status = make("p", "", { role: "status" });
    const row = make("div", "", { role: "group" });
    for (let n = 1; n <= 7; n++) {
      const b = make("button", String(n), {
        type: "button",
        "aria-label": n + " of 7" + (n === 1 ? ", not at all" : n === 7 ? ", very" : ""),
        "aria-pressed": "false",
      });
      b.addEventListener("click", () => {
        const slotEl = document.querySelector("[" + SLOT + '="' + CSS.escape(el.getAttribute(FEEDBACK)) + '"]');
        const state = slotEl && slots.get(slotEl);
        const event = { type: "feedback", question_id: el.getAttribute("data-persona-question") || "relevance", rating: n };
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

  function start() {
    addEventListener("pagehide", () => flush(true));
    addEventListener("storage", onStorage);
    let width = innerWidth;
    // a new viewport width lays the page out anew: slots may take their content's size
    addEventListener("resize", () => {
      if (innerWidth === width) return;
      width = innerWidth;
      for (const el of known) release(el, slots.get(el));
    });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") flush(true);
      for (const el of known) armImpression(el, slots.get(el));
    });
    if ("MutationObserver" in window) {
      new MutationObserver(onMutations).observe(document.documentElement, { childList: true, subtree: true });
    }
    scan(document.documentElement, FEEDBACK).forEach(feedbackWidget);
    const elements = scan(document.documentElement, SLOT);
    if (!elements.length) cookieReady(); // nothing to decide: events need not wait
    return run(elements);
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
        cmp = true;
        consent = null;
        options.consent((choice) => {
          const next = normalizeConsent(choice);
          if (!next || same(next, consent)) return;
          // recorded when it differs from the choice this browser last recorded
          const done = setConsent(next, same(next, storage()) ? null : "api");
          if (decideStarted) done.then(() => Persona.refresh());
        });
      } else {
        consent = normalizeConsent(options.consent) || consent || storage();
      }
      if (started) return Persona.refresh();
      started = true;
      // after the calling script, so a Persona.page() right after init is in the first decision
      return new Promise((resolve) => {
        const go = () => Promise.resolve().then(start).then(resolve);
        if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", go, { once: true });
        else go();
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
      return setConsent(next, (options && options.source) || "banner").then(() => Persona.refresh());
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
      for (const el of scan(document.documentElement, SLOT)) register(el);
      return run(Array.from(known).filter((el) => el.isConnected));
    },

    /** The decision a slot shows (null before the answer, after a timeout or for an unknown slot). */
    decision(name) {
      for (const el of known) {
        const state = slots.get(el);
        if (state.name === name && state.decision) return Object.assign({}, state.decision);
      }
      return null;
    },

    /** What Persona holds about this visitor, in readable form ({known, profile}). */
    me() {
      return flush().then(() =>
        fetch(url("/v1/me"), { credentials: credentials() }).then((r) => {
          if (!r.ok) throw new Error("HTTP " + r.status);
          return r.json();
        })
      );
    },

    /** Sends the queued events now. */
    flush() {
      return flush(false);
    },
  };

  window.Persona = Persona;
})(window, document);
