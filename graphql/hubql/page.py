"""Where the API finds the planners' built page (frontend/, built with Vite).

A wheel ships the page inside this package (``hubql/page/``, see pyproject.toml), so an installed hub
serves it from wherever it is installed; a source checkout, installed editable, has it in
``frontend/dist`` once built. ``HUB_FRONTEND_DIR`` points elsewhere, e.g. at a page built separately.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.staticfiles import StaticFiles
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketClose

from hub.settings import Settings

# In a wheel: site-packages/hubql/page. In a source checkout: graphql/hubql/page, which is absent.
PACKAGED = Path(__file__).resolve().parent / "page"
# In a source checkout only: <checkout>/graphql/hubql/page.py -> <checkout>/frontend/dist.
SOURCE_TREE = Path(__file__).resolve().parents[2] / "frontend" / "dist"


def is_built(directory: Path) -> bool:
    return (directory / "index.html").is_file()


def page_dir(settings: Settings) -> Path | None:
    """The folder with the built page's index.html, or None when there is none to serve."""
    if settings.frontend_dir is not None:
        return settings.frontend_dir if is_built(settings.frontend_dir) else None
    return next((d for d in (PACKAGED, SOURCE_TREE) if is_built(d)), None)


NOT_BUILT = (
    "The planners' page is not built yet. In a checkout, ./dev.sh demo builds it; by hand: "
    "npm ci && npm run build in frontend/. The API serves it as soon as it exists, without a restart.\n"
)


class PageFiles:
    """The built page at ``/``, looked for again on each request until it exists.

    The API can start before the page is built (``npm run build`` finishing beside a running demo); looking
    the folder up per request serves it from then on without a restart. Once found, the folder is kept.
    """

    def __init__(self, find: Callable[[], Path | None]) -> None:
        self._find = find
        self._files: StaticFiles | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # a websocket to no route: closed, as Starlette's router does
            await WebSocketClose()(scope, receive, send)
            return
        if self._files is None:
            directory = self._find()
            if directory is None:
                root = scope["path"] in ("", "/")
                response = (
                    PlainTextResponse(NOT_BUILT, status_code=404)
                    if root
                    else JSONResponse({"detail": "Not Found"}, status_code=404)
                )
                await response(scope, receive, send)
                return
            self._files = StaticFiles(directory=directory, html=True)
        await self._files(scope, receive, send)
