"""Packaging: the installed package must not shadow graphql-core (``graphql/`` in the repo is only a source
root); the lock files match pyproject.toml and a stale one fails; the wheel, installed into a fresh venv
from the runtime lock alone, runs outside the source tree with its page and without development packages.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_graphql_resolves_to_graphql_core_from_the_repo_root() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import graphql; print(graphql.__file__)"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    path = Path(out.stdout.strip())
    assert "site-packages" in path.parts, path
    assert not path.is_relative_to(REPO_ROOT / "graphql"), path


def test_hubql_is_importable_as_its_own_package() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import hubql; print(hubql.__file__)"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert Path(out.stdout.strip()) == REPO_ROOT / "graphql" / "hubql" / "__init__.py"


def test_the_wheel_and_the_image_hold_every_layer() -> None:
    """Each package the import contracts name is shipped in the wheel and copied into the image."""
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    layers = project["tool"]["importlinter"]["root_packages"]
    shipped = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert sorted(Path(p).name for p in shipped) == sorted(layers)
    assert sorted(project["tool"]["mypy"]["packages"]) == sorted(layers)
    # The image builds the wheel from the whole checkout (the Dockerfile's ``COPY . .``), so it holds
    # whatever the wheel does; a .dockerignore must not leave a layer out.
    dockerfile = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "\nCOPY . .\n" in dockerfile
    ignore = REPO_ROOT / ".dockerignore"
    ignored = ignore.read_text(encoding="utf-8").split() if ignore.exists() else []
    for path in shipped:
        top = Path(path).parts[0]
        assert top not in ignored and f"{top}/" not in ignored, path


# ------------------------------------------------------------------------------------------ locks


def _lock_check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "requirements" / "lock.py"), "check"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_lock_files_match_pyproject() -> None:
    result = _lock_check(REPO_ROOT)
    assert result.returncode == 0, result.stderr


def _copy_of_the_locks(tmp_path: Path) -> Path:
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(REPO_ROOT / "requirements", tmp_path / "requirements")
    return tmp_path


def test_a_dependency_added_without_a_new_lock_fails_the_check(tmp_path: Path) -> None:
    root = _copy_of_the_locks(tmp_path)
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text()
    assert '  "pyyaml>=6.0",\n' in text
    pyproject.write_text(text.replace('  "pyyaml>=6.0",\n', '  "pyyaml>=6.0",\n  "tomli-w>=1.0",\n'))
    result = _lock_check(root)
    assert result.returncode == 1
    assert "runtime.lock was resolved from other dependencies" in result.stderr
    assert "pins no version of 'tomli-w'" in result.stderr
    assert "requirements/lock.py update" in result.stderr


def test_a_pin_edited_outside_pyproject_ranges_fails_the_check(tmp_path: Path) -> None:
    root = _copy_of_the_locks(tmp_path)
    lock = root / "requirements" / "dev.lock"
    text = lock.read_text()
    pinned = re.search(r"^pytest==(\S+) ", text, re.MULTILINE)
    assert pinned is not None
    lock.write_text(text.replace(f"pytest=={pinned[1]} ", "pytest==7.0.0 "))
    result = _lock_check(root)
    assert result.returncode == 1
    assert "dev.lock pins pytest==7.0.0, outside 'pytest>=8.2'" in result.stderr


# ------------------------------------------------------------------------------- the installed wheel

_PROBE = """
import importlib.util, json, sys
from hub.settings import Settings
from hubql.page import page_dir
settings = Settings()
page = page_dir(settings)
print(json.dumps({
    "prefix": sys.prefix,
    "state_dir": str(settings.state_dir),
    "page": None if page is None else str(page),
    "dev_only_importable": [m for m in ("pytest", "testcontainers", "owlready2", "hypothesis")
                            if importlib.util.find_spec(m) is not None],
}))
"""


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{argv[:4]} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_the_wheel_installs_from_the_runtime_lock_and_runs_outside_the_source_tree(
    tmp_path: Path, frontend_dist: Path
) -> None:
    # Nothing of this checkout or of the test session may leak into the installed hub's view.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "PYTHON", "VIRTUAL_ENV"))}
    wheels, venv, run = tmp_path / "wheels", tmp_path / "venv", tmp_path / "run"
    run.mkdir()
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO_ROOT)], run, env
    )
    (wheel,) = wheels.glob("energy_hub-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    built = {
        f"hubql/page/{p.relative_to(frontend_dist).as_posix()}"
        for p in frontend_dist.rglob("*")
        if p.is_file()
    }
    assert "hubql/page/index.html" in built and built <= shipped, sorted(built - shipped)

    _run([sys.executable, "-m", "venv", str(venv)], run, env)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    _run([*pip, "--require-hashes", "-r", str(REPO_ROOT / "requirements" / "runtime.lock")], run, env)
    _run([*pip, "--no-deps", str(wheel)], run, env)
    # The lock holds everything the wheel requires, at versions it allows.
    _run([str(venv / "bin" / "python"), "-m", "pip", "check"], run, env)

    assert "Usage" in _run([str(venv / "bin" / "hub"), "--help"], run, env, timeout=120)
    probe = json.loads(_run([str(venv / "bin" / "python"), "-c", _PROBE], run, env, timeout=120))
    assert Path(probe["state_dir"]) == run / ".hub"
    assert probe["dev_only_importable"] == []
    assert probe["page"] is not None, "the installed hub finds no built page"
    page = Path(probe["page"])
    assert page.is_relative_to(probe["prefix"]) and not page.is_relative_to(REPO_ROOT), page
    index = (page / "index.html").read_text()
    assets = re.findall(r'(?:src|href)="\./(assets/[^"]+)"', index)
    assert assets, index[:500]
    for asset in assets:
        assert (page / asset).is_file(), asset
