"""Build the planners' page in a checkout when it is missing or older than its sources.

``hub demo`` (and so ``./dev.sh demo``) calls :func:`ensure_page` before it starts the API, and the tests'
``frontend_dist`` fixture uses it too, so the README's command gives a page on a fresh clone and nobody
has to know about npm. ``python -m devstack.page_build`` (``./dev.sh build``) runs it alone.

An installed hub carries its page in its wheel (``hubql/page``) and never builds anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from devstack.services.process import stop_signals_held

# <checkout>/devstack/page_build.py -> <checkout>/frontend
FRONTEND = Path(__file__).resolve().parents[1] / "frontend"
# What the build reads: a change to any of these makes the built page stale.
BUILD_INPUTS = (
    "index.html",
    "access.html",
    "portal.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
    "src",
)
# The build's time limit, and how much of a failed command's output an error quotes.
BUILD_TIMEOUT_S = 900
OUTPUT_TAIL = 4000


class PageBuildError(RuntimeError):
    """The page could not be built; the message says which command failed and why."""


def newest_input_mtime(frontend: Path) -> float:
    newest = 0.0
    for name in BUILD_INPUTS:
        path = frontend / name
        if path.is_dir():
            newest = max([newest, *(f.stat().st_mtime for f in path.rglob("*") if f.is_file())])
        elif path.exists():
            newest = max(newest, path.stat().st_mtime)
    return newest


def is_fresh(frontend: Path) -> bool:
    """The built page exists and is no older than anything it is built from."""
    index = frontend / "dist" / "index.html"
    return index.is_file() and index.stat().st_mtime >= newest_input_mtime(frontend)


def packages_are_fresh(frontend: Path) -> bool:
    """node_modules was installed by ``npm ci`` from the current package-lock.json."""
    marker = frontend / "node_modules" / ".package-lock.json"
    return marker.is_file() and marker.stat().st_mtime >= (frontend / "package-lock.json").stat().st_mtime


def _npm(frontend: Path, *args: str) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise PageBuildError("npm is not on PATH: building the page needs Node.js 20 or newer with npm")
    # npm runs node, which runs more (vite, esbuild): in a process group of their own, so that a build
    # that is interrupted (Ctrl-C, a stop signal to the demo alone) or times out ends all of them, not
    # npm alone while its children build on and write the page after all.
    with stop_signals_held():
        proc = subprocess.Popen(
            [npm, *args],
            cwd=frontend,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    try:
        stdout, stderr = proc.communicate(timeout=BUILD_TIMEOUT_S)
    except BaseException as exc:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        if isinstance(exc, subprocess.TimeoutExpired):
            raise PageBuildError(
                f"npm {' '.join(args)} in {frontend} took more than {BUILD_TIMEOUT_S:g} s"
            ) from None
        raise
    if proc.returncode != 0:
        raise PageBuildError(
            f"npm {' '.join(args)} in {frontend} failed with exit code {proc.returncode}:\n"
            f"{stdout[-OUTPUT_TAIL:]}\n{stderr[-OUTPUT_TAIL:]}"
        )


def ensure_page(frontend: Path = FRONTEND, report: Callable[[str], None] = lambda _: None) -> Path:
    """``frontend/dist``, built first (``npm ci`` if needed, then ``npm run build``) unless it is fresh."""
    if not (frontend / "package.json").is_file():
        raise PageBuildError(f"{frontend} is not the page's source folder (no package.json)")
    (frontend / "node_modules").mkdir(exist_ok=True)
    # Two processes (a demo and a test session) must not build into the same folder at once.
    with open(frontend / "node_modules" / ".hub-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not is_fresh(frontend):
                if not packages_are_fresh(frontend):
                    report("Installing the page's packages (npm ci in frontend/)")
                    _npm(frontend, "ci", "--no-audit", "--no-fund")
                report("Building the planners' page (npm run build in frontend/)")
                _npm(frontend, "run", "build")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    dist = frontend / "dist"
    if not (dist / "index.html").is_file():
        raise PageBuildError(f"{dist / 'index.html'} is missing after the build")
    return dist


def main() -> None:
    try:
        dist = ensure_page(report=print)
    except PageBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"The page is built: {dist}")


if __name__ == "__main__":
    main()
