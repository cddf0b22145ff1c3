"""The playground: a browser page at ``/playground/`` to pick or clone a voice and hear it stream.

The page (``static/playground/``: HTML, one script, one style sheet, an icon) has no build step
and loads nothing from elsewhere, so it works offline; its Content-Security-Policy allows only
this origin. It talks to the public API the way any client does: ``GET /v1/voices`` and
``/v1/models``, ``POST /v1/voices/add``, and the ``stream-input`` websocket with an explicit
``output_format=pcm_24000`` (played through Web Audio as chunks arrive).

**Auth.** The page is served with or without auth (``playground.enabled``, on by default): it is
static and carries no data and no secret. Where auth is on it asks for a key, keeps it in the
page only (never stored, never sent to this route) and sends it with each request: the
``xi-api-key`` header over HTTP and ``xi_api_key`` in the websocket's first message (a browser
cannot set websocket headers, and a first-message key stays out of URLs and access logs).
``/playground/config.json`` tells the page whether to ask, so it never fires a request that can
only fail. The broker relays these files from a balancer (``xtts_broker.playground``) and
answers ``config.json`` itself, with its own auth.

Only the files listed in :data:`FILES` are served: a request names a file, never a path.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from xtts_balancer.settings import BalancerSettings

__all__ = ["FILES", "PAGE_HEADERS", "playground_routes"]

#: The page's files and their media types.
FILES: Final = {
    "index.html": "text/html; charset=utf-8",
    "playground.js": "text/javascript; charset=utf-8",
    "playground.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
#: Sent with every file: nothing from another origin, no framing, no type sniffing.
PAGE_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self'; "
        "media-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def playground_routes(settings: BalancerSettings) -> list[BaseRoute]:
    """``/``, ``/playground`` and ``/playground/{name}``; none when the playground is off."""
    if not settings.playground.enabled:
        return []
    page_config = {"auth_required": settings.auth.enabled}

    async def config(request: Request) -> Response:
        return JSONResponse(page_config, headers={"Cache-Control": "no-store"})

    return [
        Route("/", _to_page, methods=["GET", "HEAD"]),
        Route("/playground", _to_page, methods=["GET", "HEAD"]),
        Route("/playground/", _page_file, methods=["GET", "HEAD"]),
        Route("/playground/config.json", config, methods=["GET"]),
        Route("/playground/{name}", _page_file, methods=["GET", "HEAD"]),
    ]


async def _to_page(request: Request) -> Response:
    return RedirectResponse("/playground/", status_code=307)


async def _page_file(request: Request) -> Response:
    name = request.path_params.get("name", "index.html")
    media_type = FILES.get(name)
    if media_type is None:
        return JSONResponse({"detail": f"no such playground file: {name}"}, status_code=404)
    content = resources.files(__package__).joinpath("static", "playground", name).read_bytes()
    return Response(content, media_type=media_type, headers=PAGE_HEADERS)
