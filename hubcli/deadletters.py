"""``hub deadletters``: the events the worker refused, each with its reason, read from the dead-letter topic.

The worker copies every event it refuses to ``HUB_DEADLETTER_TOPIC`` with headers saying why (``reason``,
``reason-class``) and where the event was (``source-topic``, ``-partition``, ``-offset``; see
:mod:`ingest.dead_letters`). This command reads them from the beginning, or from ``--since`` (found with
Kafka's offsets-for-times, so older records are not fetched at all), keeps those of ``--producer`` (the
source topic is the producer's topic, which only that producer may write), and prints a table or, with
``--json``, one JSON object per dead letter (with ``contract``: the id, version and clause of the data
contract an event broke, for reason class ``contract``). ``--follow`` keeps reading until Ctrl-C, one
line per dead letter.

Who reads what. The operator (the ``admin`` principal whose credentials the launcher keeps in the state
folder, or any ``HUB_KAFKA_USERNAME`` that is not a producer's) reads the shared topic, which holds every
producer's dead letters. A process given a producer's own credentials (``HUB_KAFKA_USERNAME=producer-<id>``
and its password, as ``hub produce`` signs in) reads that producer's own dead-letter topic
``<HUB_DEADLETTER_TOPIC>.<id>``, the only one its ACLs allow (see :mod:`ingest.dead_letters`): it sees its
own refused events and nothing of any other producer's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

import typer
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAuthorizationFailedError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hub import dead_letter_headers
from hub.kafka_clients import ADMIN, KafkaCredentialsError, aiokafka_options, producer_principal
from hub.kafka_topics import partition_ids, topic_admin
from hub.settings import Settings, get_settings
from hubcli.pipes import silence_stdout

console = Console()
err_console = Console(stderr=True)

# The principal that reads every dead letter and the change feed for the command line (the operator).
READER: Final = ADMIN
# How long one poll of the topic waits for records.
POLL_MS: Final = 500
# How long --follow waits for its Kafka client to close after Ctrl-C before it leaves anyway.
STOP_WAIT_S: Final = 2.0
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Records larger than the client's default fetch size (the worker copies events of up to max_event_bytes
# and its request limit): room for any of them.
FETCH_BYTES: Final = 4 * 1024 * 1024


class ReadError(RuntimeError):
    """The dead letters (or the change feed) cannot be read; the message names the setting and value."""


def parse_since(text: str, now: datetime | None = None, option: str = "--since") -> datetime:
    """A time given to ``option``: RFC 3339 (without a zone: UTC), or a duration back from now (``90s``,
    ``15m``, ``2h``, ``1d``)."""
    value = text.strip()
    match = _DURATION.match(value)
    if match:
        return (now or datetime.now(UTC)) - timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{option} {text!r} is neither a time (2026-01-31T12:00:00Z) nor a duration (90s, 15m, 2h, 1d)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def producer_of(topic: str | None, prefix: str) -> str | None:
    """The producer whose ingest topic is ``topic`` (None: not an ingest topic under ``prefix``)."""
    if topic is None or not topic.startswith(prefix) or len(topic) == len(prefix):
        return None
    return topic[len(prefix) :]


@dataclass(frozen=True)
class Letter:
    """One dead letter as the command shows it."""

    time: datetime
    partition: int
    offset: int
    producer: str | None
    mrid: str | None
    event_id: str | None
    letter: dead_letter_headers.Received
    # The refused event: its JSON value, or its text when it is not JSON (None: the record has none).
    event: Any

    @classmethod
    def of(cls, record: ConsumerRecord[bytes, bytes], prefix: str) -> Letter:
        received = dead_letter_headers.read(record.key, record.value, list(record.headers or ()))
        event: Any = None
        if received.value is not None:
            text = received.value.decode("utf-8", "replace")
            try:
                event = json.loads(text)
            except ValueError:
                event = text  # not JSON (a reason to refuse it), or cut to fit the topic
        event_id = event.get("id") if isinstance(event, dict) else None
        mrid = received.key.decode("utf-8", "replace") if received.key else None
        if mrid is None and isinstance(event, dict) and isinstance(event.get("subject"), str):
            mrid = event["subject"]
        source_topic = received.source[0] if received.source else None
        return cls(
            time=datetime.fromtimestamp(record.timestamp / 1000, UTC),
            partition=record.partition,
            offset=record.offset,
            producer=producer_of(source_topic, prefix),
            mrid=mrid,
            event_id=event_id if isinstance(event_id, str) else None,
            letter=received,
            event=event,
        )

    def to_json(self) -> dict[str, Any]:
        source = self.letter.source
        return {
            "time": self.time.isoformat(),
            "producer": self.producer,
            "mrid": self.mrid,
            "event_id": self.event_id,
            "reason_class": self.letter.reason_class,
            "reason": self.letter.reason,
            "source": {"topic": source[0], "partition": source[1], "offset": source[2]} if source else None,
            "partition": self.partition,
            "offset": self.offset,
            "cut": self.letter.cut,
            "contract": self.letter.contract,
            "event": self.event,
        }


@dataclass(frozen=True)
class Reading:
    """Who this process reads the dead letters as: the operator, or one producer (its own only)."""

    principal: str
    producer: str | None

    def deadletter_topic(self, settings: Settings) -> str:
        if self.producer is None:
            return settings.deadletter_topic
        return settings.producer_deadletter_topic(self.producer)


def reading_as(settings: Settings) -> Reading:
    """The producer whose credentials the process was given (``HUB_KAFKA_USERNAME=producer-<id>``), else
    the operator."""
    user = settings.kafka_username
    prefix = producer_principal("")
    if user and user.startswith(prefix) and len(user) > len(prefix):
        return Reading(user, user[len(prefix) :])
    return Reading(READER, None)


def reader(settings: Settings, principal: str = READER, **options: Any) -> AIOKafkaConsumer:
    """A consumer that reads as ``principal``, in no group and committing nothing."""
    return AIOKafkaConsumer(
        **aiokafka_options(settings, principal),
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=FETCH_BYTES,
        fetch_max_bytes=FETCH_BYTES,
        **options,
    )


def read_error(exc: BaseException, settings: Settings, what: str, principal: str = READER) -> ReadError:
    """One line for a Kafka failure while reading ``what`` (topics and their settings)."""
    if isinstance(exc, KafkaConnectionError):
        return ReadError(f"cannot reach Kafka at HUB_KAFKA_BOOTSTRAP={settings.kafka_bootstrap!r}: {exc}")
    if "Authorization" in type(exc).__name__:
        who = settings.kafka_username or principal
        return ReadError(
            f"principal {who!r} may not read {what}: the change feed and the shared dead letters take the "
            "operator's credentials (admin, kept in the state folder); a producer's own read its own "
            f"dead letters only ({settings.deadletter_topic}.<producer id>)"
        )
    return ReadError(f"reading {what} from {settings.kafka_bootstrap} failed: {exc!r}")


async def partitions(admin: AIOKafkaAdminClient, topic: str) -> list[TopicPartition]:
    """The partitions of ``topic`` as the cluster has them now (none: it does not exist yet).

    Asked of an admin client: a consumer knows the partitions only of topics it already reads. A topic
    the principal may not see is an error, not a missing topic."""
    for described in await admin.describe_topics([topic]):
        if described["error_code"] == TopicAuthorizationFailedError.errno:
            raise TopicAuthorizationFailedError(topic)
    return [TopicPartition(topic, p) for p in await partition_ids(admin, topic)]


async def start_offsets(
    consumer: AIOKafkaConsumer, parts: list[TopicPartition], since: datetime | None
) -> dict[TopicPartition, int]:
    """Where reading starts in each partition: its beginning, or its first record at or after ``since``
    (the partition's end when it has none)."""
    if since is None:
        return dict(await consumer.beginning_offsets(parts))
    millis = int(since.timestamp() * 1000)
    found = await consumer.offsets_for_times({tp: millis for tp in parts})
    ends = await consumer.end_offsets(parts)
    return {tp: found[tp].offset if found.get(tp) is not None else ends[tp] for tp in parts}


async def read_letters(
    settings: Settings,
    *,
    since: datetime | None,
    producer: str | None,
    follow: bool,
    show: Callable[[list[Letter]], None],
) -> int:
    """Read the dead letters from ``since`` and hand each fetched batch (in time order) to ``show``;
    without ``follow`` stops at the topic's end as it was when reading began. Returns how many were shown.
    As a producer (:func:`reading_as`), reads that producer's own topic."""
    reading = reading_as(settings)
    if reading.producer is not None and producer not in (None, reading.producer):
        raise ReadError(
            f"HUB_KAFKA_USERNAME={settings.kafka_username!r} reads the dead letters of producer "
            f"{reading.producer!r} only, not those of --producer {producer!r}"
        )
    topic = reading.deadletter_topic(settings)
    what = f"dead-letter topic {topic!r}"
    wanted = None if producer is None else f"{settings.ingest_topic_prefix}{producer}"
    try:
        async with topic_admin(aiokafka_options(settings, reading.principal)) as admin:
            parts = await partitions(admin, topic)
    except (KafkaError, OSError) as exc:
        raise read_error(exc, settings, what, reading.principal) from None
    if not parts:
        raise ReadError(
            f"{what} (HUB_DEADLETTER_TOPIC={settings.deadletter_topic!r}) does not exist on Kafka at "
            f"{settings.kafka_bootstrap} (the worker creates it when it starts; `hub producers add` "
            "a producer's own)"
        )
    consumer = reader(settings, reading.principal)
    shown = 0
    # --follow ends on Ctrl-C between two polls, and leaves even if the client is slow to close: a
    # cancellation raised inside the Kafka client's fetch could wait on it for longer than a person does.
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    if follow:
        loop.add_signal_handler(signal.SIGINT, interrupted.set)
    try:
        await consumer.start()
        consumer.assign(parts)
        starts = await start_offsets(consumer, parts, since)
        for tp, offset in starts.items():
            consumer.seek(tp, offset)
        ends = await consumer.end_offsets(parts)
        while not interrupted.is_set():
            if not follow and all([await _reached(consumer, tp, ends[tp]) for tp in parts]):
                return shown
            fetched = await consumer.getmany(timeout_ms=POLL_MS)
            letters = [
                Letter.of(record, settings.ingest_topic_prefix)
                for records in fetched.values()
                for record in records
                if follow or record.offset < ends[TopicPartition(record.topic, record.partition)]
            ]
            if wanted is not None:
                letters = [x for x in letters if x.letter.source and x.letter.source[0] == wanted]
            if letters:
                letters.sort(key=lambda x: (x.time, x.partition, x.offset))
                show(letters)
                shown += len(letters)
    except (ReadError, KafkaCredentialsError, BrokenPipeError, asyncio.CancelledError, KeyboardInterrupt):
        raise
    except (KafkaError, OSError) as exc:
        raise read_error(exc, settings, what, reading.principal) from None
    finally:
        if follow:
            loop.remove_signal_handler(signal.SIGINT)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(consumer.stop(), STOP_WAIT_S if interrupted.is_set() else None)
    return shown


async def _reached(consumer: AIOKafkaConsumer, tp: TopicPartition, end: int) -> bool:
    return bool(await consumer.position(tp) >= end)


def table(letters: Iterable[Letter], title: str) -> Table:
    view = Table(title=title, header_style="bold")
    view.add_column("time (UTC)", no_wrap=True)
    view.add_column("producer")
    view.add_column("mRID")
    view.add_column("reason-class")
    view.add_column("reason", overflow="fold")
    for x in letters:
        view.add_row(
            x.time.strftime("%Y-%m-%d %H:%M:%S"),
            x.producer or "-",
            x.mrid or "-",
            x.letter.reason_class or "-",
            x.letter.reason + (" [dim](event cut to fit)[/]" if x.letter.cut else ""),
        )
    return view


def line(x: Letter) -> Text:
    """One dead letter on one line, for --follow (a table would need every row before it is drawn)."""
    text = Text(f"{x.time:%Y-%m-%d %H:%M:%S}  {x.producer or '-'}  {x.mrid or '-'}  ")
    text.append(f"[{x.letter.reason_class or '-'}]", style="bold red")
    text.append(f" {x.letter.reason}" + (" (event cut to fit)" if x.letter.cut else ""))
    return text


def deadletters(
    producer: Annotated[
        str | None,
        typer.Option("--producer", "-p", help="Only the dead letters of this producer's topic."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Only dead letters written at or after this time: RFC 3339 (no zone: UTC) or a duration "
            "back from now (90s, 15m, 2h, 1d). Default: from the beginning.",
            show_default=False,
        ),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep reading new ones until Ctrl-C.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per dead letter (with the refused event).")
    ] = False,
) -> None:
    """Read the dead letters: the events the worker refused, with their reasons.

    Reads HUB_DEADLETTER_TOPIC, every producer's, as the operator (the admin credentials in the state
    folder). Given a producer's credentials (HUB_KAFKA_USERNAME=producer-<id> and HUB_KAFKA_PASSWORD),
    reads that producer's own dead letters only, from HUB_DEADLETTER_TOPIC.<id>.
    """
    settings = get_settings()
    start = parse_since(since) if since is not None else None
    title = f"Dead letters in {reading_as(settings).deadletter_topic(settings)}" + (
        f" of {producer}" if producer else ""
    )
    collected: list[Letter] = []

    def show(letters: list[Letter]) -> None:
        if as_json:
            for x in letters:
                typer.echo(json.dumps(x.to_json(), ensure_ascii=False))
        elif follow:
            for x in letters:
                console.print(line(x), highlight=False)
        else:
            collected.extend(letters)

    try:
        count = asyncio.run(read_letters(settings, since=start, producer=producer, follow=follow, show=show))
    except (ReadError, KafkaCredentialsError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(code=1) from None
    except KeyboardInterrupt:
        raise typer.Exit(code=130 if not follow else 0) from None
    except BrokenPipeError:
        # The reader (head, a pager) has what it wanted.
        silence_stdout()
        raise typer.Exit(code=0) from None
    if not as_json:
        if collected:
            console.print(table(collected, title), highlight=False)
        err_console.print(f"{count:,} dead letter(s)", highlight=False)
