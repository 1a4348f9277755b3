"""``hub deadletters`` against the real Kafka and a real worker: the dead letters of two producers, read
back with their reasons, by producer, from a time on, as JSON lines and as a table."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from click.testing import Result
from typer.testing import CliRunner

from hub.settings import get_settings
from hubcli import deadletters as deadletters_command
from hubcli.deadletters import parse_since
from hubcli.main import app
from tests.ingest.test_poison import REPO, Stream, Worker, _produce, keyed, run, stream  # noqa: F401

pytestmark = pytest.mark.services


@pytest.fixture
def worker(
    stream: Stream,  # noqa: F811 - the fixture imported above
    settings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Worker]:
    """A real worker on the stream's topics; the command reads the same dead-letter topic."""
    running = Worker(settings, stream, tmp_path)
    for name in ("HUB_INGEST_TOPIC_PREFIX", "HUB_DEADLETTER_TOPIC"):
        monkeypatch.setenv(name, running.env[name])
    get_settings.cache_clear()
    running.start()
    try:
        yield running
    finally:
        running.stop()
        monkeypatch.undo()
        get_settings.cache_clear()


def deadletters(*args: str) -> Result:
    return CliRunner().invoke(app, ["deadletters", *args])


def letters(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_dead_letters_are_read_by_producer_and_from_a_time_with_their_reasons(
    stream: Stream,  # noqa: F811 - the fixture imported above
    worker: Worker,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    st = stream
    foreign = st.event(st.a, "x", subject="someone-elses-x")
    odd = st.event(st.b, "odd", attributes={"AccumulatorValue.nonsense": 1})
    fine = st.event(st.a, "fine")
    run(_produce(kafka_bootstrap, [keyed(st, st.a, foreign), keyed(st, st.b, odd), keyed(st, st.a, fine)]))
    worker.wait_until_done(kafka_bootstrap)
    # Dead letters carry the time the worker wrote them; the second batch comes well after this.
    time.sleep(1.0)
    between = datetime.now(UTC)
    time.sleep(1.0)
    secret = st.event(st.a, "secret", label="SECRET")
    run(_produce(kafka_bootstrap, [keyed(st, st.a, secret)]))
    worker.wait_until_done(kafka_bootstrap)

    # The topic is the stream's own: every dead letter in it is one of these, in time order.
    everything = letters(deadletters("--json"))
    assert sorted(x["event_id"] for x in everything) == sorted([foreign["id"], odd["id"], secret["id"]])
    assert everything[-1]["event_id"] == secret["id"]

    of_a = letters(deadletters("--producer", st.a, "--json"))
    assert [(x["event_id"], x["producer"], x["reason_class"]) for x in of_a] == [
        (foreign["id"], st.a, "ownership"),
        (secret["id"], st.a, "label"),
    ]
    first = of_a[0]
    assert first["mrid"] == "someone-elses-x"
    assert "may only write mRIDs starting" in first["reason"]
    # Where the refused event was, and the event itself.
    assert first["source"] == {"topic": st.topic(st.a), "partition": 0, "offset": 0}
    assert first["event"] == foreign

    later = letters(deadletters("--producer", st.a, "--since", between.isoformat(), "--json"))
    assert [x["event_id"] for x in later] == [secret["id"]]
    assert letters(deadletters("--producer", st.b, "--since", between.isoformat(), "--json")) == []
    # A duration back from now reaches the first batch again.
    assert [x["event_id"] for x in letters(deadletters("-p", st.b, "--since", "1h", "--json"))] == [odd["id"]]

    # Wide enough for the table's rows to keep the reason on one line.
    monkeypatch.setattr(deadletters_command.console, "width", 300)
    table = deadletters("--producer", st.b)
    assert table.exit_code == 0, table.output
    shown = " ".join(table.stdout.split())
    assert "attribute" in shown and "AccumulatorValue.nonsense" in shown and st.b in shown
    assert "1 dead letter(s)" in table.stderr


def test_an_unreachable_kafka_is_named_with_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_KAFKA_BOOTSTRAP", "127.0.0.1:9")
    get_settings.cache_clear()
    try:
        result = deadletters("--json")
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert result.exit_code == 1, result.output
    assert "cannot reach Kafka at HUB_KAFKA_BOOTSTRAP='127.0.0.1:9'" in " ".join(result.stderr.split())


def test_since_takes_a_time_or_a_duration_and_names_what_it_cannot_read() -> None:
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert parse_since("90s", now) == datetime(2026, 12, 6, 11, 58, 30, tzinfo=UTC)
    assert parse_since("2h", now) == datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    assert parse_since("2026-12-01T08:00:00+01:00") == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    # Without a zone: UTC.
    assert parse_since("2026-12-01") == datetime(2026, 12, 1, tzinfo=UTC)
    with pytest.raises(typer.BadParameter, match="--since 'yesterday' is neither a time"):
        parse_since("yesterday")


def test_follow_shows_a_new_dead_letter_and_stops_promptly_on_sigint(
    stream: Stream,  # noqa: F811 - the fixture imported above
    worker: Worker,
    kafka_bootstrap: str,
) -> None:
    """`hub deadletters --follow` as a process: a dead letter written after it started appears as a line,
    and SIGINT ends it at once with status 0."""
    st = stream
    # The worker makes the dead-letter topic when it starts; the command needs it there.
    run(_produce(kafka_bootstrap, [keyed(st, st.a, st.event(st.a, "warm"))]))
    worker.wait_until_done(kafka_bootstrap)
    follow = subprocess.Popen(
        [sys.executable, "-m", "hubcli.main", "deadletters", "--follow", "--json"],
        cwd=REPO,
        env=worker.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        refused = st.event(st.b, "refused", attributes={"AccumulatorValue.nonsense": 1})
        # Produced once the command has been reading for a while; the topic holds no dead letter before
        # it, so the first line must be its.
        time.sleep(3.0)
        assert follow.poll() is None, follow.stderr.read() if follow.stderr else ""
        run(_produce(kafka_bootstrap, [keyed(st, st.b, refused)]))
        assert follow.stdout is not None
        got = json.loads(follow.stdout.readline())
        assert (got["event_id"], got["producer"], got["reason_class"]) == (refused["id"], st.b, "attribute")
        signalled = time.monotonic()
        follow.send_signal(signal.SIGINT)
        status = follow.wait(timeout=10)
        assert time.monotonic() - signalled < 5.0
        assert status in (0, 130), follow.stderr.read() if follow.stderr else ""
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait(timeout=10)
