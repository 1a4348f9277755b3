"""Build hook: the wheel carries the planners' built page as package data of the API (``hubql/page``).

The page is built by npm (``npm ci && npm run build`` in frontend/), never by the Python build, so a
wheel built before the page fails with a message saying so rather than shipping an API without its page.
An editable install needs nothing: there the API serves frontend/dist of the checkout (hubql/page.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class PageHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        page = Path(self.root) / "frontend" / "dist"
        if not (page / "index.html").is_file():
            raise RuntimeError(
                f"{page / 'index.html'} is missing: build the page first "
                "(npm ci && npm run build in frontend/)"
            )
        build_data["force_include"][str(page)] = "hubql/page"
