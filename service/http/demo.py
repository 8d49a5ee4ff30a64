"""The demo shop under ``/demo/``: server-rendered pages that personalize through persona.js."""

from __future__ import annotations

from aiohttp import web

from service.demo import pages
from service.http.middleware import PAGE_HEADERS
from service.http.sdk import SCRIPT


def _page(html: str | None, request: web.Request) -> web.Response:
    if html is None:
        html = pages.not_found(request.app[SCRIPT].integrity)
        status = 404
    else:
        status = 200
    return web.Response(
        status=status,
        text=html,
        content_type="text/html",
        headers={**PAGE_HEADERS, "Cache-Control": "no-cache"},
    )


async def home(request: web.Request) -> web.Response:
    """The shop's home page."""
    return _page(pages.home(request.app[SCRIPT].integrity), request)


async def category(request: web.Request) -> web.Response:
    """A category page, or one of its collections (``?tag=trail``)."""
    tag = request.query.get("tag")
    html = pages.category(request.match_info["slug"], tag, request.app[SCRIPT].integrity)
    return _page(html, request)


async def product(request: web.Request) -> web.Response:
    """A product page."""
    return _page(pages.product(request.match_info["item"], request.app[SCRIPT].integrity), request)


async def cart(request: web.Request) -> web.Response:
    """The cart page."""
    return _page(pages.cart(request.app[SCRIPT].integrity), request)


async def to_home(request: web.Request) -> web.Response:
    """``/`` and ``/demo`` lead to the shop."""
    raise web.HTTPFound(pages.ROOT)


def add_routes(app: web.Application) -> None:
    """The shop's routes."""
    app.router.add_get("/", to_home)
    app.router.add_get("/demo", to_home)
    app.router.add_get("/demo/", home)
    app.router.add_get("/demo/c/{slug}", category)
    app.router.add_get("/demo/p/{item}", product)
    app.router.add_get("/demo/cart", cart)
