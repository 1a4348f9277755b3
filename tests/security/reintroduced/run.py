"""Shows that each finding's tests fail when the finding is put back (issue 12: "a test that fails before
the fix").

Each ``NN-name.patch`` here puts one red-team finding back into the current code, in the fewest lines that
do it: a metric of withheld objects on the API's port, HTTP ingest that trusts an ``org`` claim, invented
producers, every write failure retried as "database unavailable", and so on (the first lines of each
patch's hunks say what). For each patch this script checks the tree out into a scratch worktree, applies
the patch, runs that finding's tests (FINDINGS below) against the real Kafka and Neo4j of the test suite,
and records which tests failed. A finding passes this check when its tests *fail* with the patch applied
(and they pass on the unpatched tree: that is the suite's own job).

    .venv/bin/python tests/security/reintroduced/run.py [NN ...]   # all findings, or those numbered

Results: ``tests/security/reintroduced/RESULTS.md``. A patch that no longer applies is reported as such:
renew it against the code that replaced the lines it touches. Not part of ``./dev.sh test``: each finding
is a pytest run of its own (the whole set takes 20-30 minutes).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]

# Finding number -> the tests that must fail with it put back (pytest node ids or -k expressions).
FINDINGS: dict[str, tuple[str, list[str]]] = {
    "01": ("/metrics is an anonymous oracle", ["tests/security/test_api_exposure.py", "-k", "metrics"]),
    "02": (
        "members of a producer's organisation declassify its data",
        ["tests/security/test_writes.py", "tests/security/test_write_properties.py"],
    ),
    "03": (
        "anyone with an org claim becomes a producer",
        ["tests/security/test_writes.py", "-k", "configured or absent or stubs or owns"],
    ),
    "04": ("one event stops all ingest for good", ["tests/ingest/test_poison.py"]),
    "05": ("subscriptions", ["tests/graphql/test_subscriptions_security.py"]),
    "06": (
        "group names act as attributes",
        ["tests/security/test_api_exposure.py", "tests/hub/test_labels.py", "-k", "group"],
    ),
    "07": ("denial of service without a token", ["tests/security/test_api_limits.py"]),
    "08": (
        "insecure defaults",
        [
            "tests/security/test_api_exposure.py",
            "tests/devstack/services/test_compose.py",
            "-k",
            "default or loopback or client_address",
        ],
    ),
    "09": (
        "audit gaps",
        ["tests/security/test_api_exposure.py", "tests/security/test_writes.py", "-k", "audit"],
    ),
    "10": ("Kafka is open", ["tests/security/test_kafka_security.py"]),
}


def _git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def run_one(number: str, patch: Path, scratch: Path) -> dict[str, object]:
    title, args = FINDINGS[number]
    tree = scratch / number
    _git("worktree", "add", "--quiet", "--detach", str(tree), "HEAD")
    try:
        applied = subprocess.run(["git", "apply", str(patch)], cwd=tree, capture_output=True, text=True)
        if applied.returncode != 0:
            return {
                "number": number,
                "title": title,
                "verdict": "PATCH DOES NOT APPLY",
                "detail": applied.stderr,
            }
        # The patched tree's modules come first for pytest and for every process it starts (worker, API).
        env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'graphql'}"}
        # The services of the checkout's own test runs (one Kafka, one Neo4j), not a second set.
        env.setdefault("HUB_TEST_STATE_DIR", str(REPO / ".hub-test"))
        env.setdefault("HUB_SECURITY_EXAMPLES", "200")
        started = time.monotonic()
        result = subprocess.run(
            # -v: each test's outcome is on its own line as it finishes, so the names are known even when
            # pytest does not get to its summary (a finding put back can let a test's attack exhaust
            # memory, and the kernel kills the run).
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "--timeout=600", *args],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
        )
        # Both forms: "<test> FAILED" as each test ends, and "FAILED <test> - ..." in the summary (a test's
        # own line can be split by its log output).
        failed = sorted(
            set(re.findall(r"^(\S+::\S+) (?:FAILED|ERROR)", result.stdout, re.MULTILINE))
            | set(re.findall(r"^(?:FAILED|ERROR) (\S+::[^\s]+)", result.stdout, re.MULTILINE))
        )
        summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
        if result.returncode == 1 and failed:
            verdict = "caught"
        elif result.returncode < 0 and failed:
            verdict = f"caught ({len(failed)} failed, then pytest was killed by signal {-result.returncode})"
        else:
            verdict = f"NOT CAUGHT (pytest exit {result.returncode})"
        return {
            "number": number,
            "title": title,
            "verdict": verdict,
            "failed": failed,
            "summary": summary,
            "seconds": round(time.monotonic() - started),
        }
    finally:
        _git("worktree", "remove", "--force", str(tree))


def main(selected: list[str]) -> int:
    patches = sorted(HERE.glob("*.patch"))
    chosen = [p for p in patches if not selected or p.name[:2] in selected]
    head = _git("rev-parse", "--short", "HEAD").strip()
    results = []
    with tempfile.TemporaryDirectory(prefix="reintroduced-") as scratch:
        for patch in chosen:
            print(f"==> {patch.name}", flush=True)
            outcome = run_one(patch.name[:2], patch, Path(scratch))
            print(f"    {outcome['verdict']}: {outcome.get('summary', '')}", flush=True)
            results.append((patch.name, outcome))
    # One section per patch; a run of some findings replaces their sections and keeps the others'.
    sections = _sections(HERE / "RESULTS.md")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for name, o in results:
        lines = [f"## {name}: {o['title']} — {o['verdict']}", "", f"Tree {head}, {when}.", ""]
        if "summary" in o:
            lines.append(f"pytest ({o['seconds']} s): `{o['summary']}`; failing with the finding put back:")
            lines.append("")
            failed = o["failed"]
            assert isinstance(failed, list)
            lines.extend([f"- `{t}`" for t in failed] or ["- none"])
        else:
            lines.append(f"```\n{o['detail']}\n```")
        sections[name] = "\n".join(lines).strip() + "\n"
    head_text = "# Findings put back: do their tests fail?\n\nWritten by `run.py` (see its docstring).\n"
    body = "\n".join(sections[k] for k in sorted(sections))
    (HERE / "RESULTS.md").write_text(f"{head_text}\n{body}")
    return 0 if all(str(o["verdict"]).startswith("caught") for _, o in results) else 1


def _sections(path: Path) -> dict[str, str]:
    """The per-patch sections of an earlier RESULTS.md, by patch file name."""
    if not path.exists():
        return {}
    found: dict[str, str] = {}
    for chunk in path.read_text().split("\n## ")[1:]:
        name = chunk.split(":", 1)[0]
        if name.endswith(".patch"):
            found[name] = "## " + chunk.strip() + "\n"
    return found


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
