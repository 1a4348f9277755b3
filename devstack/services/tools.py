"""Finding the Java runtime and Maven the launcher needs, with a clear message when either is missing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

from devstack.services.errors import ServiceError

MIN_JAVA = 17
_NO_TOOL_HINT = (
    "The local services need Java {min}+ and Maven (Debian: apt-get install openjdk-17-jre-headless maven); "
    "or run the stack with Docker: docker compose up."
)


def java_executable() -> str:
    """``$JAVA_HOME/bin/java`` when JAVA_HOME is set, else ``java`` from PATH; checks the version."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if not candidate.is_file():
            raise ServiceError(
                f"JAVA_HOME={java_home!r} has no bin/java. " + _NO_TOOL_HINT.format(min=MIN_JAVA)
            )
        java = str(candidate)
    else:
        found = shutil.which("java")
        if found is None:
            raise ServiceError("java was not found on PATH. " + _NO_TOOL_HINT.format(min=MIN_JAVA))
        java = found
    version = java_major_version(java)
    if version < MIN_JAVA:
        raise ServiceError(
            f"{java} is Java {version}; Kafka and Neo4j need Java {MIN_JAVA} or newer. "
            + _NO_TOOL_HINT.format(min=MIN_JAVA)
        )
    return java


@cache
def java_major_version(java: str) -> int:
    try:
        proc = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        raise ServiceError(f"could not run {java} -version: {exc}") from exc
    # `java -version` prints e.g. `openjdk version "17.0.15"` or `java version "1.8.0_392"` on stderr.
    match = re.search(r'version "(\d+)(?:\.(\d+))?', proc.stderr + proc.stdout)
    if match is None:
        raise ServiceError(f"could not read the Java version from {java} -version: {proc.stderr.strip()!r}")
    major = int(match.group(1))
    if major == 1 and match.group(2):
        major = int(match.group(2))
    return major


def maven_executable() -> str:
    found = shutil.which("mvn")
    if found is None:
        raise ServiceError(
            "mvn (Maven) was not found on PATH; it fetches Kafka and Neo4j from Maven Central on first use. "
            + _NO_TOOL_HINT.format(min=MIN_JAVA)
        )
    return found
