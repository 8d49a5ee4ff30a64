"use strict";
// The demo shop's own script: its cart, its consent banner, its "what Persona
// knows" panel. Personalization goes through persona.js alone, as on any site.
(function () {
  const facts = document.body.dataset;
  const page = { page_type: facts.pageType || "other" };
  if (facts.category) page.category = facts.category;
  if (facts.tags) page.tags = facts.tags.split(",");
  if (facts.priceBand) page.price_band = Number(facts.priceBand);
  if (facts.itemId) page.item_id = facts.itemId;

  // The consent choice persona.js remembers; the banner asks until there is one.
  Persona.init({ timeoutMs: 1500, policyVersion: "demo-1" });
  Persona.page(page);

  const $ = (id) => document.getElementById(id);
  const banner = $("consent-banner");
  banner.hidden = Persona.consentState() !== null;
  $("privacy-choices").addEventListener("click", () => {
    banner.hidden = false;
    $("consent-accept").focus();
  });
  function choose(yes) {
    banner.hidden = true;
    Persona.consent({ personalization: yes, analytics: yes }).then(showPanel);
  }
  $("consent-accept").addEventListener("click", () => choose(true));
  $("consent-refuse").addEventListener("click", () => choose(false));

  // ---- the cart, kept in this browser ----
  const CART = "summit.cart";
  function cart() {
    try {
      return JSON.parse(localStorage.getItem(CART) || "[]");
    } catch (e) {
      return [];
    }
  }
  function save(items) {
    try {
      localStorage.setItem(CART, JSON.stringify(items));
    } catch (e) {
      /* storage blocked: the cart lives for this page */
    }
    $("cart-count").textContent = String(items.length);
  }
  save(cart());
  const add = $("add-to-cart");
  if (add) {
    add.addEventListener("click", () => {
      save(cart().concat([{ id: add.dataset.item, name: add.dataset.name, price: Number(add.dataset.price) }]));
      $("added").textContent = add.dataset.name + " is in your cart.";
    });
  }
  const list = $("cart-items");
  if (list) {
    const items = cart();
    for (const item of items) {
      const li = document.createElement("li");
      li.textContent = item.name + " — $" + item.price;
      list.append(li);
    }
    const total = items.reduce((sum, item) => sum + item.price, 0);
    $("cart-total").textContent = items.length ? "Total: $" + total : "Your cart is empty.";
    $("place-order").disabled = !items.length;
    $("place-order").addEventListener("click", () => {
      const order = "D-" + Date.now().toString(36);
      Persona.track("conversion", { value: total, currency: "USD", order_id: order });
      Persona.flush();
      save([]);
      list.replaceChildren();
      $("cart-total").textContent = "";
      $("ordered").textContent = "Thank you! Order " + order + " is placed.";
      $("place-order").disabled = true;
    });
  }

  // ---- what Persona knows ----
  const panel = $("panel");
  const toggle = $("panel-toggle");
  toggle.addEventListener("click", () => {
    panel.hidden = !panel.hidden;
    toggle.setAttribute("aria-expanded", String(!panel.hidden));
    if (!panel.hidden) showPanel();
  });

  function row(dl, term, value) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    dl.append(dt, dd);
  }

  function showPanel() {
    if (panel.hidden) return;
    const target = $("panel-body");
    const consent = Persona.consentState();
    if (!consent || !consent.personalization) {
      target.textContent = "Nothing: personalization is off, so this shop keeps no profile of you.";
      return;
    }
    Persona.me()
      .then((me) => {
        if (!me.known) {
          target.textContent = "Nothing yet: browse a little and look again.";
          return;
        }
        const p = me.profile;
        const dl = document.createElement("dl");
        row(dl, "Interests", p.interests.map((i) => i.name + " (" + i.weight + ")").join(", ") || "none yet");
        row(dl, "Topics", p.topics.map((i) => i.name).join(", ") || "none yet");
        row(dl, "Recently viewed", p.recent_categories.join(", ") || "nothing");
        row(dl, "Visits and page views", p.visits + " visits, " + p.page_views + " pages");
        row(dl, "Content seen and clicked", p.content_seen + " seen, " + p.content_clicked + " clicked");
        row(dl, "Orders", p.orders + (p.orders ? " ($" + p.order_value + ")" : ""));
        row(dl, "First seen", p.first_seen || "—");
        target.replaceChildren(dl);
      })
      .catch(() => {
        target.textContent = "Persona could not be reached just now.";
      });
  }
})();
