"""The demo builds the planners' page itself: missing or stale, it is built; fresh, it is left alone."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack import page_build
from devstack.demo import orchestrator
from devstack.page_build import FRONTEND, PageBuildError, ensure_page, is_fresh
from hub.settings import Settings


def _copy_sources(to: Path) -> Path:
    """The page's sources in a folder of their own, sharing the checkout's installed packages."""
    to.mkdir()
    for name in page_build.BUILD_INPUTS:
        src = FRONTEND / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, to / name)
    (to / "node_modules").symlink_to(FRONTEND / "node_modules")
    return to


def test_a_missing_page_is_built_a_fresh_one_kept_and_a_stale_one_rebuilt(
    frontend_dist: Path, tmp_path: Path
) -> None:
    # frontend_dist: the checkout's packages are installed (npm ci) before the copy shares them.
    frontend = _copy_sources(tmp_path / "frontend")
    assert not is_fresh(frontend)
    steps: list[str] = []
    dist = ensure_page(frontend, steps.append)
    assert (dist / "index.html").is_file() and is_fresh(frontend)
    assert steps == ["Building the planners' page (npm run build in frontend/)"]

    built_at = (dist / "index.html").stat().st_mtime_ns
    steps.clear()
    ensure_page(frontend, steps.append)
    assert steps == [] and (dist / "index.html").stat().st_mtime_ns == built_at

    # A source edited after the build: the built page is made older than it (a source dated in the future
    # would stay newer than a build finishing within the same seconds).
    source = next((frontend / "src").rglob("*.ts"))
    earlier = source.stat().st_mtime - 60
    os.utime(dist / "index.html", (earlier, earlier))
    assert not is_fresh(frontend)
    ensure_page(frontend, steps.append)
    assert steps == ["Building the planners' page (npm run build in frontend/)"] and is_fresh(frontend)


def test_without_npm_the_error_says_what_is_needed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frontend = tmp_path / "frontend"
    frontend.mkdir()
    (frontend / "package.json").write_text("{}")
    (frontend / "package-lock.json").write_text("{}")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(PageBuildError, match=r"npm is not on PATH: building the page needs Node\.js 20"):
        ensure_page(frontend)


def test_a_folder_without_the_pages_sources_is_named(tmp_path: Path) -> None:
    with pytest.raises(PageBuildError, match=f"{tmp_path} is not the page's source folder"):
        ensure_page(tmp_path)


def test_the_demo_builds_nothing_when_the_settings_name_a_page(tmp_path: Path) -> None:
    steps: list[str] = []
    assert orchestrator._build_page(Settings(frontend_dir=tmp_path), steps.append) is None
    assert steps == []


def _processes_in(folder: Path) -> dict[int, str]:
    """Live processes working in ``folder`` (npm and everything it ran: node, vite, esbuild)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if state not in {"Z", "X"} and (cwd == str(folder) or cwd.startswith(f"{folder}{os.sep}")):
            found[int(entry.name)] = cmdline.strip()[:200]
    return found


def test_an_interrupted_build_stops_everything_npm_ran(frontend_dist: Path, tmp_path: Path) -> None:
    """SIGINT to the building process alone (as a supervisor sends it to the demo) while vite builds: npm
    and its children stop with it, and nothing goes on to write the page afterwards."""
    frontend = _copy_sources(tmp_path / "frontend")
    # The builder takes SIGINT as the demo does, even when it was started with SIGINT ignored (a
    # background job of a script, as CI may run the suite): Python then installs no handler of its own.
    script = (
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from pathlib import Path; from devstack.page_build import ensure_page; "
        f"ensure_page(Path({str(frontend)!r}))"
    )
    builder = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        # vite itself is running (npm's grandchild, after the type check), not only npm starting up.
        while not (vite := [p for p, cmd in _processes_in(frontend).items() if "/.bin/vite build" in cmd]):
            assert builder.poll() is None, "the build ended before it could be interrupted"
            assert time.monotonic() < deadline, f"no vite build in {frontend} within 300 s"
            time.sleep(0.1)
        # Held where it is, so that the signal lands while the page is being built: a small page builds
        # in a second or two, which a scan of the process table can miss.
        for pid in vite:
            os.kill(pid, signal.SIGSTOP)
        os.kill(builder.pid, signal.SIGINT)
        builder.wait(timeout=120)
        assert builder.returncode != 0
        deadline = time.monotonic() + 60
        while _processes_in(frontend) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _processes_in(frontend) == {}
        assert not (frontend / "dist" / "index.html").exists(), "the interrupted build wrote the page"
    finally:
        if builder.poll() is None:
            os.killpg(builder.pid, signal.SIGKILL)
            builder.wait()
        for pid in _processes_in(frontend):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
