"""The demo shop's pages: a small sports shop that personalizes through persona.js only.

Every page is rendered here as a site's server would: its own markup, the
slots' default content inside ``data-persona-slot`` elements, its own
``<template>``s for the variants, and the page's facts on ``<body>`` for the
shop's script (``static/shop.js``) to pass to ``Persona.page``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from html import escape
from pathlib import Path
from typing import Any

import orjson

from service.settings import DEFAULT_CATALOG

SHOP = Path(__file__).with_name("shop.json")
ROOT = "/demo/"


@dataclass(frozen=True, slots=True)
class Product:
    """One article of the shop."""

    id: str
    name: str
    category: str
    tags: tuple[str, ...]
    price: int
    price_band: int
    blurb: str


@dataclass(frozen=True, slots=True)
class Shop:
    """The shop's categories, collections and products."""

    categories: dict[str, tuple[str, str]]
    collections: dict[tuple[str, str], str]
    products: dict[str, Product]
    defaults: dict[str, dict[str, Any]]

    def in_category(self, slug: str, tag: str | None) -> list[Product]:
        """The products of a category (of one of its collections when ``tag`` is given)."""
        return [
            p
            for p in self.products.values()
            if p.category == slug and (tag is None or tag in p.tags)
        ]


@cache
def shop() -> Shop:
    """The demo shop, with each slot's default content from the demo catalog."""
    doc = orjson.loads(SHOP.read_bytes())
    catalog = orjson.loads(DEFAULT_CATALOG.read_bytes())
    variants = {v["id"]: v["content"] for v in catalog["variants"]}
    return Shop(
        categories={c["slug"]: (c["name"], c["blurb"]) for c in doc["categories"]},
        collections={(c["category"], c["tag"]): c["name"] for c in doc["collections"]},
        products={
            p["id"]: Product(
                p["id"],
                p["name"],
                p["category"],
                tuple(p["tags"]),
                p["price"],
                p["price_band"],
                p["blurb"],
            )
            for p in doc["products"]
        },
        defaults={p["name"]: variants[p["default_variant"]] for p in catalog["placements"]},
    )


@dataclass(frozen=True, slots=True)
class PageFacts:
    """What the page tells Persona about itself (``Persona.page``)."""

    page_type: str
    category: str = ""
    tags: tuple[str, ...] = ()
    price_band: int | None = None
    item_id: str = ""

    def attributes(self) -> str:
        """The facts as ``data-`` attributes of ``<body>``."""
        attrs = {
            "data-page-type": self.page_type,
            "data-category": self.category,
            "data-tags": ",".join(self.tags),
            "data-price-band": "" if self.price_band is None else str(self.price_band),
            "data-item-id": self.item_id,
        }
        return " ".join(f'{k}="{escape(v)}"' for k, v in attrs.items() if v)


def _slot(name: str, css: str, template: str) -> str:
    """A slot with its default content as plain markup (what shows without Persona)."""
    d = shop().defaults[name]
    return (
        f'<section class="slot {css}" data-persona-slot="{name}" '
        f'data-persona-template="{template}" aria-label="{escape(css.title())}">'
        f"<h2>{escape(d['title'])}</h2><p>{escape(d['body'])}</p>"
        f'<a class="cta" href="{escape(d["link"])}">{escape(d["cta"])}</a>'
        "<div data-persona-why></div></section>"
    )


_TEMPLATES = """
<template id="tpl-hero">
  <h2 data-persona-text="title"></h2>
  <p data-persona-text="body"></p>
  <a class="cta" data-persona-if="link" data-persona-attr="href:link" data-persona-text="cta"></a>
  <div data-persona-why></div>
</template>
<template id="tpl-offer">
  <h2 data-persona-text="title"></h2>
  <p data-persona-text="body"></p>
  <a class="cta" data-persona-if="link" data-persona-attr="href:link" data-persona-text="cta"></a>
  <div data-persona-why></div>
</template>"""


def _product_card(p: Product) -> str:
    return (
        f'<li class="card"><a href="{ROOT}p/{escape(p.id)}"><span class="art {escape(p.category)}"'
        f' aria-hidden="true"></span><strong>{escape(p.name)}</strong></a>'
        f'<span class="price">${p.price}</span></li>'
    )


def _layout(title: str, facts: PageFacts, main: str, integrity: str) -> str:
    nav = "".join(
        f'<a href="{ROOT}c/{slug}">{escape(name)}</a>'
        for slug, (name, _) in shop().categories.items()
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} — Summit Sports (Persona demo)</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/shop.css">
<script src="/sdk/v1/persona.js" integrity="{integrity}" crossorigin="anonymous" defer></script>
<script src="/static/shop.js" defer></script>
</head>
<body {facts.attributes()}>
<header class="top">
  <a class="logo" href="{ROOT}">Summit Sports</a>
  <nav aria-label="Categories">{nav}</nav>
  <a class="cart-link" href="{ROOT}cart">Cart (<span id="cart-count">0</span>)</a>
  <button type="button" id="privacy-choices">Privacy choices</button>
  <button type="button" id="panel-toggle" aria-controls="panel" aria-expanded="false">
    What Persona knows</button>
</header>
<main>
{main}
</main>
<aside id="panel" aria-labelledby="panel-title" hidden>
  <h2 id="panel-title">What Persona knows about you</h2>
  <div id="panel-body"><p>Nothing yet.</p></div>
</aside>
<section id="consent-banner" role="region" aria-labelledby="consent-title" hidden>
  <h2 id="consent-title">Personalization</h2>
  <p>May we remember what you browse here to show you more relevant content?
  You can change this at any time under “Privacy choices”.</p>
  <button type="button" class="primary" id="consent-accept">Personalize</button>
  <button type="button" id="consent-refuse">No thanks</button>
</section>
{_TEMPLATES}
</body>
</html>
"""


def home(integrity: str) -> str:
    """The home page: the hero, the offer beside featured categories, a feedback question."""
    s = shop()
    tiles = "".join(
        f'<li class="tile"><a href="{ROOT}c/{slug}"><span class="art {slug}" aria-hidden="true">'
        f"</span><strong>{escape(name)}</strong><span>{escape(blurb)}</span></a></li>"
        for slug, (name, blurb) in s.categories.items()
    )
    main = (
        _slot("home-hero", "hero", "tpl-hero")
        + '<div data-persona-feedback="home-hero" data-persona-question="relevance" '
        'data-persona-label="How relevant is this banner for you?"></div>'
        + '<div class="with-offer"><section aria-labelledby="shop-by">'
        f'<h2 id="shop-by">Shop by sport</h2><ul class="tiles">{tiles}</ul></section>'
        + _slot("sidebar-offer", "offer", "tpl-offer")
        + "</div>"
    )
    return _layout("Home", PageFacts("home"), main, integrity)


def category(slug: str, tag: str | None, integrity: str) -> str | None:
    """A category page (or one of its collections, e.g. trail running); ``None`` if unknown."""
    s = shop()
    if slug not in s.categories or (tag is not None and (slug, tag) not in s.collections):
        return None
    name, blurb = s.categories[slug]
    title = s.collections[(slug, tag)] if tag else name
    collections = "".join(
        f'<a href="{ROOT}c/{slug}?tag={escape(t)}">{escape(n)}</a>'
        for (c, t), n in s.collections.items()
        if c == slug and t != tag
    )
    cards = "".join(_product_card(p) for p in s.in_category(slug, tag))
    main = (
        f'<div class="with-offer"><section aria-labelledby="title"><h1 id="title">{escape(title)}'
        f"</h1><p>{escape(blurb)}</p>"
        + (f'<p class="collections">{collections}</p>' if collections else "")
        + f'<ul class="cards">{cards}</ul></section>'
        + _slot("sidebar-offer", "offer", "tpl-offer")
        + "</div>"
    )
    facts = PageFacts("category", slug, (tag,) if tag else ())
    return _layout(title, facts, main, integrity)


def product(item_id: str, integrity: str) -> str | None:
    """A product page with an add-to-cart button; ``None`` if unknown."""
    p = shop().products.get(item_id)
    if p is None:
        return None
    category_name = shop().categories[p.category][0]
    main = (
        f'<div class="with-offer"><article class="product" aria-labelledby="title">'
        f'<p class="crumbs"><a href="{ROOT}c/{p.category}">{escape(category_name)}</a></p>'
        f'<span class="art big {escape(p.category)}" aria-hidden="true"></span>'
        f'<h1 id="title">{escape(p.name)}</h1><p>{escape(p.blurb)}</p>'
        f'<p class="price">${p.price}</p>'
        f'<button type="button" class="primary" id="add-to-cart" data-item="{escape(p.id)}" '
        f'data-name="{escape(p.name)}" data-price="{p.price}">Add to cart</button>'
        f'<p id="added" role="status"></p></article>'
        + _slot("sidebar-offer", "offer", "tpl-offer")
        + "</div>"
        + _slot("article-footer", "guide", "tpl-offer")
    )
    facts = PageFacts("product", p.category, p.tags, p.price_band, p.id)
    return _layout(p.name, facts, main, integrity)


def cart(integrity: str) -> str:
    """The cart (kept in the browser by the shop's script); placing an order is a conversion."""
    main = (
        '<section aria-labelledby="title"><h1 id="title">Your cart</h1>'
        '<ul id="cart-items" class="cart"></ul><p id="cart-total"></p>'
        '<button type="button" class="primary" id="place-order">Place order</button>'
        '<p id="ordered" role="status"></p></section>'
    )
    return _layout("Cart", PageFacts("cart"), main, integrity)


def not_found(integrity: str) -> str:
    """The shop's own 404 page."""
    main = f'<h1>Not found</h1><p><a href="{ROOT}">Back to the shop</a></p>'
    return _layout("Not found", PageFacts("other"), main, integrity)
