"""Where the API finds the planners' built page (frontend/, built with Vite).

A wheel ships the page inside this package (``hubql/page/``, see pyproject.toml), so an installed hub
serves it from wherever it is installed; a source checkout, installed editable, has it in
``frontend/dist`` once built. ``HUB_FRONTEND_DIR`` points elsewhere, e.g. at a page built separately.
"""

from __future__ import annotations

from pathlib import Path

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
