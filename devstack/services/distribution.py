"""Kafka and Neo4j jars, fetched from Maven Central with Maven into the shared cache folder once.

A distribution lives in ``<cache_dir>/<service>-<version>-<recipe hash>/lib``; the hash covers the pom
(and, for Neo4j, the launcher's Java source), so changing either builds a new folder instead of reusing a
stale one. A ``.complete`` marker is written last: when it exists nothing is run at all.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devstack.services.errors import ServiceError
from devstack.services.layout import ServiceName
from devstack.services.tools import maven_executable
from hub.filelock import locked
from hub.settings import Settings

JAVA_DIR = Path(__file__).resolve().parent / "java"
_MARKER = ".complete"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Recipe:
    name: ServiceName
    title: str
    version: str
    pom: Path
    version_property: str
    # Files whose content decides the cache folder (pom, sources).
    inputs: tuple[Path, ...]
    # A jar that must be present after a successful fetch.
    sentinel: str


@dataclass(frozen=True)
class Distribution:
    name: ServiceName
    title: str
    lib_dir: Path

    @property
    def classpath(self) -> str:
        # The JVM expands a trailing `*` to every jar in the folder.
        return str(self.lib_dir / "*")


def recipe(settings: Settings, name: ServiceName) -> Recipe:
    if name == "kafka":
        pom = JAVA_DIR / "kafka" / "pom.xml"
        return Recipe(
            name="kafka",
            title=f"Apache Kafka {settings.kafka_version}",
            version=settings.kafka_version,
            pom=pom,
            version_property="kafka.version",
            inputs=(pom,),
            sentinel=f"kafka_2.13-{settings.kafka_version}.jar",
        )
    pom = JAVA_DIR / "pom.xml"
    sources = tuple(sorted((JAVA_DIR / "src").rglob("*.java")))
    return Recipe(
        name="neo4j",
        title=f"Neo4j Community {settings.neo4j_version}",
        version=settings.neo4j_version,
        pom=pom,
        version_property="neo4j.version",
        inputs=(pom, *sources),
        sentinel="hub-neo4j.jar",
    )


def _folder(settings: Settings, rec: Recipe) -> Path:
    digest = hashlib.sha256()
    for path in rec.inputs:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return settings.cache_dir.expanduser().resolve() / f"{rec.name}-{rec.version}-{digest.hexdigest()[:10]}"


def cached(settings: Settings, name: ServiceName) -> Distribution | None:
    """The distribution if it is already in the cache, without running anything."""
    rec = recipe(settings, name)
    folder = _folder(settings, rec)
    if (folder / _MARKER).is_file():
        return Distribution(name=name, title=rec.title, lib_dir=folder / "lib")
    return None


def ensure(settings: Settings, name: ServiceName, progress: Progress | None = None) -> Distribution:
    """The distribution, fetching (and for Neo4j building) it first if the cache lacks it."""
    found = cached(settings, name)
    if found is not None:
        return found
    rec = recipe(settings, name)
    folder = _folder(settings, rec)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Two launchers (demo and tests, or two test runs) may fetch at once; the second waits and reuses.
    with locked(folder.parent / ".fetch.lock"):
        found = cached(settings, name)
        if found is not None:
            return found
        _fetch(rec, folder, progress or (lambda _msg: None))
    return Distribution(name=name, title=rec.title, lib_dir=folder / "lib")


def _fetch(rec: Recipe, folder: Path, progress: Progress) -> None:
    mvn = maven_executable()
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    log = partial / "maven.log"
    args = [
        "-B",
        "-f",
        str(rec.pom),
        f"-D{rec.version_property}={rec.version}",
        f"-Dhub.build.dir={partial / 'build'}",
        f"-Dhub.lib.dir={partial / 'lib'}",
        "package",
    ]
    # Offline first: when Maven's local repository already holds everything, no network is touched.
    progress(f"{rec.title}: resolving from the local Maven repository")
    if _run_maven([mvn, "-o", *args], log, rec, progress) != 0:
        shutil.rmtree(partial / "lib", ignore_errors=True)
        progress(f"{rec.title}: downloading from Maven Central")
        if _run_maven([mvn, *args], log, rec, progress) != 0:
            raise ServiceError(
                f"Maven could not fetch {rec.title} (version from settings: {rec.version!r}); "
                f"full log: {log}\n{_maven_errors(log)}"
            )
    lib = partial / "lib"
    if not (lib / rec.sentinel).is_file():
        raise ServiceError(f"Maven finished but {lib / rec.sentinel} is missing; full log: {log}")
    shutil.rmtree(partial / "build", ignore_errors=True)
    (partial / _MARKER).write_text(rec.version + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)


def _run_maven(argv: list[str], log: Path, rec: Recipe, progress: Progress) -> int:
    downloaded = 0
    with log.open("a") as out:
        out.write("$ " + " ".join(argv) + "\n")
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
        )
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                out.write(line)
                if line.startswith("Downloaded from"):
                    downloaded += 1
                    # "Downloaded from central: <url> (12 kB at 1.0 MB/s)"
                    parts = line.split()
                    artifact = parts[3].rsplit("/", 1)[-1] if len(parts) > 3 else ""
                    progress(f"{rec.title}: downloaded {downloaded} files ({artifact})")
        except BaseException:
            # Interrupted (Ctrl-C, a stop signal to this process alone): Maven goes too, instead of
            # downloading on into a folder the next start throws away.
            proc.kill()
            proc.wait()
            raise
        return proc.wait()


def _maven_errors(log: Path, limit: int = 15) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if "[ERROR]" in line]
    return "\n".join(lines[:limit]) or "(no [ERROR] lines in the Maven output)"
