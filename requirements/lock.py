"""The Python lock files: every package the hub installs, pinned with hashes, one file per install kind.

``runtime.lock`` is what an installed hub needs (``[project.dependencies]``); ``dev.lock`` adds the
``dev`` extra and pins the runtime packages to the same versions. Both are universal (any platform,
Python 3.11 and newer) and installed with plain pip, nothing else:

    pip install --require-hashes -r requirements/dev.lock && pip install --no-deps -e .

    python requirements/lock.py check    # exit 1 if a lock no longer matches pyproject.toml
    python requirements/lock.py update   # resolve again (installs uv into the running venv first)

Each lock starts with the SHA-256 of the pyproject.toml fields it was resolved from, so ``check`` needs
neither the network nor the resolver: a change to the dependencies without a new lock fails at once.
It also checks every requirement of pyproject.toml is pinned, with hashes, to a version it allows, so
a lock edited by hand fails too.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

HERE = Path(__file__).resolve().parent
PYPROJECT = HERE.parent / "pyproject.toml"
# The resolver, installed into the running venv only to regenerate the locks.
UV = "uv>=0.5,<1"
STAMP = "# pyproject-sha256: "
COMMAND = "python requirements/lock.py update"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(?P<version>[^\s;\\]+)")


@dataclass(frozen=True)
class Lock:
    """One lock file: its name, the extras it installs besides the runtime dependencies."""

    name: str
    extras: tuple[str, ...]

    @property
    def path(self) -> Path:
        return HERE / f"{self.name}.lock"


LOCKS = (Lock("runtime", ()), Lock("dev", ("dev",)))


def _project() -> dict[str, object]:
    with PYPROJECT.open("rb") as f:
        project: dict[str, object] = tomllib.load(f)["project"]
    return project


def requirements(lock: Lock) -> list[str]:
    """The requirement strings of pyproject.toml this lock is resolved from."""
    project = _project()
    found = list(project.get("dependencies", []))  # type: ignore[call-overload]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})  # type: ignore[assignment]
    for extra in lock.extras:
        if extra not in optional:
            raise SystemExit(f"lock {lock.name!r}: pyproject.toml has no extra {extra!r}")
        found += optional[extra]
    return found


def fingerprint(lock: Lock) -> str:
    """SHA-256 of what this lock depends on in pyproject.toml (the requirements and requires-python)."""
    basis = {"requires-python": _project().get("requires-python"), "requirements": requirements(lock)}
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()


def pins(text: str) -> dict[str, set[Version]]:
    """Pinned versions per package name (a universal lock may pin a package twice, under markers)."""
    found: dict[str, set[Version]] = {}
    entry = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        entry += line.rstrip("\\").strip() + " "
        if line.rstrip().endswith("\\"):
            continue
        match = PIN.match(entry.strip())
        if match:
            if "--hash=sha256:" not in entry:
                raise ValueError(f"pin {entry.split()[0]!r} has no --hash")
            found.setdefault(canonicalize_name(match["name"]), set()).add(Version(match["version"]))
        elif entry.strip():
            raise ValueError(f"line {entry.strip()[:80]!r} is no hashed pin")
        entry = ""
    return found


def problems(lock: Lock) -> list[str]:
    """What is wrong with one lock file, as messages naming the file and the requirement; empty: fine."""
    if not lock.path.is_file():
        return [f"{lock.path.name} is missing"]
    text = lock.path.read_text()
    stamp = next((line[len(STAMP) :].strip() for line in text.splitlines() if line.startswith(STAMP)), None)
    out = []
    if stamp != fingerprint(lock):
        out.append(
            f"{lock.path.name} was resolved from other dependencies than pyproject.toml's now "
            f"(stamp {stamp}, pyproject {fingerprint(lock)})"
        )
    try:
        pinned = pins(text)
    except ValueError as exc:
        return [*out, f"{lock.path.name}: {exc}"]
    for raw in requirements(lock):
        req = Requirement(raw)
        if req.marker is not None and not any(
            req.marker.evaluate({"python_version": v, "sys_platform": p})
            for v in ("3.11", "3.12", "3.13")
            for p in ("linux", "darwin", "win32")
        ):
            continue
        versions = pinned.get(canonicalize_name(req.name))
        if not versions:
            out.append(f"{lock.path.name} pins no version of {req.name!r} (pyproject.toml: {raw!r})")
            continue
        refused = sorted(str(v) for v in versions if not req.specifier.contains(v, prereleases=True))
        if refused:
            out.append(f"{lock.path.name} pins {req.name}=={', '.join(refused)}, outside {raw!r}")
    return out


def check() -> int:
    found = [p for lock in LOCKS for p in problems(lock)]
    for message in found:
        print(f"error: {message}", file=sys.stderr)
    if found:
        print(f"error: the Python lock files are stale; run `{COMMAND}` and commit them", file=sys.stderr)
        return 1
    print(f"lock files match pyproject.toml: {', '.join(lock.path.name for lock in LOCKS)}")
    return 0


def update() -> int:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", UV], check=True)
    constraints: list[str] = []
    for lock in LOCKS:
        argv = [
            sys.executable,
            "-m",
            "uv",
            "pip",
            "compile",
            "pyproject.toml",
            "--universal",
            "--python-version",
            "3.11",
            "--generate-hashes",
            "--quiet",
            "--custom-compile-command",
            COMMAND,
            *[arg for extra in lock.extras for arg in ("--extra", extra)],
            *constraints,
            "--output-file",
            str(lock.path.relative_to(PYPROJECT.parent)),
        ]
        subprocess.run(argv, cwd=PYPROJECT.parent, check=True)
        body = lock.path.read_text()
        lock.path.write_text(f"{STAMP}{fingerprint(lock)}\n{body}")
        # The dev lock pins the runtime packages exactly as the runtime lock does.
        constraints = ["--constraints", str(LOCKS[0].path.relative_to(PYPROJECT.parent))]
    return check()


def main(argv: list[str]) -> int:
    if argv == ["check"]:
        return check()
    if argv == ["update"]:
        return update()
    print(__doc__, file=sys.stderr)
    print(f"usage: python {Path(__file__).name} check|update", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
