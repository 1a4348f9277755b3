"""The installed package must not shadow graphql-core: ``graphql/`` in the repo is only a source root."""

from __future__ import annotations

import subprocess
import sys
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
    dockerfile = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    for path in shipped:
        top = Path(path).parts[0]
        assert f"COPY {top} ./{top}\n" in dockerfile, path
