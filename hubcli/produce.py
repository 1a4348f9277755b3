"""``hub produce``: publish files to a producer's topic with a progress bar, a rate limit and a summary.

Inputs, by what they are:

* a folder of CGMES RDF/XML files, or ``.xml`` files (all of them form one model: profiles extend each
  other's objects, so they are merged before anything is sent);
* GasLib ``.net`` networks, with their compressor-station file (``--compressors FILE.cs``);
* JSON lines (``.jsonl``, ``.ndjson``, ``.json``): one event envelope per line;
* ``.csv`` files with a column mapping (``--mapping``; the format is ``docs/csv-mapping.md``, generated from
  :mod:`ingest.csv_mapping`, whose JSON Schema ``--mapping-schema`` prints).

Every event is checked locally against the ontology before it is sent (``--no-validate`` skips that);
rejected events are listed in the summary with the reason, and the command exits with status 2.

Defects of the files cost as little as they can (:mod:`ingest.defects`): a bad property is left out and
its object sent, an object that cannot be an event (an element without an mRID, a CSV row without a
time, a JSON-lines line that is not a JSON object) is skipped, and a defect whose meaning is unambiguous
is repaired. The summary lists every defect with its file, line, object and property (``--json`` also
writes each as a JSON object on stderr), and the command exits with status 4; ``--strict`` sends
nothing at all when a file has a defect.

Exit statuses: 0 all converted and sent; 1 failed (a file unreadable or not XML, a bad option, Kafka
unreachable); 2 an event refused, locally or (``--wait``) by the worker; 3 (``--wait``) events still
unknown; 4 converted with defects (with ``--strict``: nothing sent). The first that applies wins.

Versions mean time. A record of a time series carries the version of its own timestamp, in microseconds
since the Unix epoch (:func:`hub.events.time_version`): a CSV row whose mapping names a ``time_column`` and
no version, a JSON line without ``version`` (from its ``time``). So the latest reading of an object wins in
the graph however the records arrive. Whole models (CGMES, GasLib, CSV without times) take ``--version``,
by default the time of publication in the same unit, so a model published after a series still counts.
Events of one call that give one object the same version are counted and warned about: the worker
applies only the first of them.

``--emit jsonl`` also writes every event sent (with ``--dry-run``: every event that would be sent) as
one JSON object per line, to stdout or ``--emit-to FILE``: the message values themselves, in send order.
When they go to stdout, the progress bars and the summary go to stderr.

``--wait`` then follows every sent event to what the worker made of it (:mod:`hubcli.outcomes`): applied
(a change record names it), dead-lettered (with the worker's reason), superseded or unchanged (the worker
passed it without a change of its own), or still unknown when ``--wait-timeout`` ran out; the counts and
the reasons follow the summary, and ``--json`` writes one JSON object per event to stdout instead. It
reads the change feed and the dead letters as the operator; given the producer's own credentials
(``HUB_KAFKA_USERNAME=producer-<id>``) it reads that producer's own dead letters only, and reports the
events not dead-lettered by the end of ``--wait-timeout`` as unknown: see :mod:`hubcli.outcomes`.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from hub.events import time_version
from hub.kafka_clients import KafkaCredentialsError
from hub.settings import get_settings
from hubcli.deadletters import ReadError
from hubcli.outcomes import MEANING, Outcome, OutcomeWatch, Tracked
from hubcli.pipes import silence_stdout
from ingest.cgmes import CgmesConverter, ConversionError, convert_cgmes
from ingest.csv_adapter import CsvAdapter, CsvMapping, MappingError
from ingest.csv_mapping import mapping_json_schema
from ingest.defects import DefectKind, Defects
from ingest.difference import DifferenceConverter
from ingest.gaslib import GasLibConverter
from ingest.gaslib_compressors import CompressorStationConverter
from ingest.producer import Encoded, EventLike, HubProducer, LocalRejection, ProducerError

console = Console()
err_console = Console(stderr=True)
# Events named in the warnings about repeated versions, per input (the count is always exact).
MAX_REPEAT_EXAMPLES = 10
# What --emit-to takes for standard output.
STDOUT = "-"
# Dead letters and events of the other outcomes listed by --wait's summary (the counts are always exact).
MAX_LISTED = 20
# Exit statuses: an event refused (locally or by the worker); events still unknown when --wait ended.
EXIT_FAILED = 1
EXIT_REFUSED = 2
EXIT_UNKNOWN = 3
# Everything that could be converted was sent, but the files had defects (left out, skipped or repaired).
EXIT_DEFECTS = 4
EXIT_STATUSES = (
    f"Exit status: 0 all converted; {EXIT_FAILED} failed; {EXIT_REFUSED} an event refused (locally, or by "
    f"the worker with --wait); {EXIT_UNKNOWN} events still unknown after --wait; {EXIT_DEFECTS} converted "
    "with defects (every defect is listed; with --strict nothing is sent). The first that applies wins."
)


class Format(StrEnum):
    auto = "auto"
    cgmes = "cgmes"
    gaslib = "gaslib"
    jsonl = "jsonl"
    csv = "csv"


_SUFFIXES = {
    ".xml": Format.cgmes,
    ".rdf": Format.cgmes,
    ".net": Format.gaslib,
    ".jsonl": Format.jsonl,
    ".ndjson": Format.jsonl,
    ".json": Format.jsonl,
    ".csv": Format.csv,
}


class EmitFormat(StrEnum):
    jsonl = "jsonl"


class RateColumn(ProgressColumn):
    """Events per second of a task, as rich measures it over the last updates."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} ev/s", style="progress.data.speed")


@dataclass
class Source:
    """One unit of publication: a CGMES file set, or one GasLib, JSON-lines or CSV file."""

    format: Format
    paths: list[Path]
    total: int | None = None
    notes: list[str] = field(default_factory=list)
    sent: int = 0
    rejected: int = 0
    classes: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    # Events that gave an object a version an earlier event of the call gave it, and the first of them.
    repeated: int = 0
    repeats: list[str] = field(default_factory=list)
    # What the converter left out, skipped or repaired in the files, and where.
    defects: Defects = field(default_factory=Defects)
    # The line of the JSON-lines file whose event is being handled, to name it when it is refused.
    line: int | None = None
    # A CGMES IEC 61970-552 difference model (one file): its upserts and deletes.
    difference: bool = False

    @property
    def title(self) -> str:
        if len(self.paths) == 1:
            return self.paths[0].name
        return f"{self.paths[0].parent.name}/ ({len(self.paths)} files)"


def classify(paths: list[Path], forced: Format) -> list[Source]:
    """Group the inputs: every CGMES file forms one model; other files stand alone."""
    cgmes: list[Path] = []
    sources: list[Source] = []
    for path in paths:
        if not path.exists():
            raise typer.BadParameter(f"path {str(path)!r} does not exist")
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".xml", ".rdf"))
            if forced not in (Format.auto, Format.cgmes) or not files:
                raise typer.BadParameter(
                    f"path {str(path)!r} is a folder; only a folder of CGMES .xml files can be published"
                )
            cgmes.extend(files)
            continue
        fmt = forced if forced is not Format.auto else _SUFFIXES.get(path.suffix.lower())
        if fmt is None:
            raise typer.BadParameter(
                f"path {str(path)!r}: cannot tell the format from suffix {path.suffix!r}; "
                f"use --format ({', '.join(f.value for f in Format if f is not Format.auto)})"
            )
        if fmt is Format.cgmes and is_difference_model(path):
            sources.append(Source(Format.cgmes, [path], difference=True))
        elif fmt is Format.cgmes:
            cgmes.append(path)
        else:
            sources.append(Source(fmt, [path]))
    if cgmes:
        sources.insert(0, Source(Format.cgmes, cgmes))
    return sources


# The header element of an IEC 61970-552 difference model, near the start of its file.
_DIFFERENCE_HEADER = re.compile(rb"<[A-Za-z_][\w.-]*:DifferenceModel[\s>/]")


def is_difference_model(path: Path) -> bool:
    """Whether a CGMES file is a difference model (its header comes before any object)."""
    with path.open("rb") as handle:
        return _DIFFERENCE_HEADER.search(handle.read(64 * 1024)) is not None


def classes_of(paths: list[Path], ontology: Any) -> dict[str, str]:
    """mRID -> class of every object of a CGMES model (read, not published): the classes of objects a
    difference model only describes (``rdf:Description``)."""
    files = [f for p in paths for f in (sorted(p.glob("*.xml")) if p.is_dir() else [p])]
    return {e.subject: e.class_ for e in convert_cgmes(files, source="base", ontology=ontology)}


def _auto_version() -> int:
    # The time of publication, in the unit of versions taken from times: a re-publication of a changed model
    # carries a newer version, and so does a model published after readings of its objects.
    return time_version(datetime.now(UTC))


@dataclass
class Options:
    producer: str
    version: int
    label: str | None
    mapping: CsvMapping | None
    ontology: Any
    # True when the caller chose the version (--version), to say so when a time series does not take it.
    version_given: bool = False
    # A GasLib compressor-station file (.cs) published after the network's .net.
    compressors: Path | None = None
    # mRID -> class from the base model (--base), for difference models.
    classes: dict[str, str] = field(default_factory=dict)


class RepeatedVersions:
    """Spots events of one call that give an object a version an earlier event of the call gave it.

    The worker applies an event only when its version is newer than the object's stored one, so of such
    events only the first to arrive counts and the others are lost. Keeps one entry per event checked.
    """

    def __init__(self) -> None:
        self._seen: set[tuple[bytes, int]] = set()

    def repeats(self, encoded: Encoded) -> bool:
        if encoded.version is None:
            return False
        key = (encoded.key, encoded.version)
        if key in self._seen:
            return True
        self._seen.add(key)
        return False


class Emitter:
    """Writes each event as it is sent, one JSON object (the message value) per line."""

    def __init__(self, out: IO[bytes], name: str) -> None:
        self.out = out
        self.name = name
        self.count = 0

    @classmethod
    def open(cls, target: str) -> Emitter:
        """``target`` is a file path, or ``-`` for standard output; errors name the option and the path."""
        if target == STDOUT:
            return cls(sys.stdout.buffer, "stdout")
        try:
            return cls(Path(target).open("wb"), target)
        except OSError as exc:
            raise typer.BadParameter(f"--emit-to {target!r} cannot be written: {exc.strerror}") from None

    def write(self, value: bytes) -> None:
        self.out.write(value)
        self.out.write(b"\n")
        self.count += 1

    def close(self) -> None:
        if self.out is sys.stdout.buffer:
            self.out.flush()
        else:
            self.out.close()


def events_of(source: Source, options: Options) -> Iterator[EventLike]:
    """The events of one source; sets ``source.total`` as soon as it is known and notes what was left out."""
    if source.difference:
        difference = DifferenceConverter(
            source=options.producer, version=options.version, label=options.label, ontology=options.ontology
        )
        difference.stats.defects = source.defects
        yield from difference.convert_difference(source.paths[0], options.classes)
        source.total = difference.stats.objects
    elif source.format is Format.cgmes:
        converter = CgmesConverter(
            source=options.producer, version=options.version, label=options.label, ontology=options.ontology
        )
        converter.stats.defects = source.defects
        converter.read(source.paths)
        source.total = sum(1 for obj in converter.index.values() if obj.tags)
        yield from converter.emit()
        st = converter.stats
        if st.skipped_classes:
            source.notes.append(
                f"classes unknown to the ontology left out: {sum(st.skipped_classes.values())}"
                f" elements ({', '.join(sorted(_local(k) for k in st.skipped_classes)[:5])})"
            )
        if st.skipped_properties:
            # Names the ontology does not give the object's class (CGMES 3.0 names some classes' objects
            # though 2.4.15 classes have no name): not a defect of the file, a limit of the ontology.
            top = ", ".join(f"{_local(k)} {n}" for k, n in st.skipped_properties.most_common(5))
            source.notes.append(
                f"properties the ontology does not know for their class left out: "
                f"{sum(st.skipped_properties.values())} ({top})"
            )
        if st.dangling:
            source.notes.append(
                f"references to {len(st.dangling)} objects defined in none of the files "
                "(they become stubs until published)"
            )
    elif source.format is Format.gaslib:
        gas = GasLibConverter(
            source=options.producer, version=options.version, label=options.label, ontology=options.ontology
        )
        gas.stats.defects = source.defects
        yield from gas.convert(source.paths[0])
        if gas.stats.skipped_elements:
            source.notes.append(f"GasLib elements left out: {dict(gas.stats.skipped_elements)}")
        if options.compressors is not None:
            # Named as the .net's network, so that drives and units refer to the stations it published.
            stations = CompressorStationConverter(
                source=options.producer,
                version=options.version,
                label=options.label,
                ontology=options.ontology,
                network=gas.stats.network,
            )
            yield from stations.convert(options.compressors)
            cs = stations.compressor_stats
            source.notes.append(
                f"{options.compressors.name}: {cs.drives} drives and {cs.units} compressor units "
                f"of {cs.stations} stations"
            )
            if cs.skipped_properties:
                source.notes.append(f"compressor data left out: {dict(cs.skipped_properties)}")
            if cs.missing_drives:
                source.notes.append(f"units naming a drive their station lacks: {cs.missing_drives}")
    elif source.format is Format.jsonl:
        path = source.paths[0]
        source.total = _count_lines(path)
        from_time = 0
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                text = line.strip()
                if not text:
                    continue
                try:
                    body = json.loads(text)
                except ValueError as exc:
                    source.defects.add(path, number, None, None, DefectKind.BAD_LINE, f"not JSON: {exc}")
                    continue
                if not isinstance(body, dict):
                    source.defects.add(
                        path,
                        number,
                        None,
                        None,
                        DefectKind.BAD_LINE,
                        f"a JSON {type(body).__name__}, not an event object",
                    )
                    continue
                if _version_from_time(body):
                    from_time += 1
                source.line = number
                yield body
        if from_time:
            source.notes.append(
                f"{from_time} line(s) without a version took it from their time "
                "(microseconds since the epoch)"
            )
    else:
        if options.mapping is None:
            raise typer.BadParameter(f"{source.paths[0]}: a CSV file needs --mapping FILE")
        mapping = options.mapping
        own = mapping.version is not None or mapping.version_column is not None or mapping.time_column
        version = None if own else options.version
        if mapping.versions_from_time:
            source.notes.append(
                f"versions from column {mapping.time_column!r} (microseconds since the epoch)"
                + ("; --version is for whole models, not time series" if options.version_given else "")
            )
        adapter = CsvAdapter(
            mapping, source=options.producer, ontology=options.ontology, version=version, label=options.label
        )
        adapter.stats.defects = source.defects
        source.total = max(_count_lines(source.paths[0]) - 1, 0)
        yield from adapter.convert(source.paths[0])


def _version_from_time(body: object) -> bool:
    """Give an envelope without a version the version of its time; True if it did.

    An envelope whose time is missing or unreadable is left as it is: the local check then names the field.
    """
    if not isinstance(body, dict) or "version" in body or not isinstance(body.get("time"), str):
        return False
    try:
        body["version"] = time_version(datetime.fromisoformat(body["time"]))
    except ValueError:
        return False
    return True


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].rsplit("#", 1)[-1]


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


async def publish(
    sources: list[Source],
    producer: HubProducer,
    options: Options,
    progress: Progress,
    dry_run: bool,
    emit: Emitter | None = None,
    watch: OutcomeWatch | None = None,
) -> None:
    """Send (with ``dry_run`` only check) every event of ``sources`` in order, writing each to ``emit``
    and telling ``watch`` of each sent or refused."""
    # Across inputs: two files of one call that give an object the same version lose events the same way.
    versions = RepeatedVersions()
    for source in sources:
        task = progress.add_task(source.title, total=None)
        began = time.monotonic()
        before_sent, before_rejected = producer.stats.sent, producer.stats.rejected
        before_classes = Counter(producer.stats.classes)
        done = 0
        for event in events_of(source, options):
            if source.total is not None and progress.tasks[task].total is None:
                progress.update(task, total=source.total)
            try:
                encoded = producer.encode(event)
            except LocalRejection as rejection:
                if source.format is Format.jsonl:
                    # Name the line, so that the producer finds the event in its file.
                    reason = f"{source.paths[0].name} line {source.line}: {rejection.reason}"
                    rejection = LocalRejection(rejection.subject, reason)
                producer.stats.reject(rejection)
                if watch is not None:
                    watch.rejected(event, rejection.reason, rejection.subject)
                encoded = None
            if encoded is not None:
                if dry_run:
                    producer.stats.sent += 1
                    producer.stats.classes[encoded.class_name] += 1
                else:
                    delivery = await producer.send_encoded(encoded)
                    if watch is not None:
                        watch.sent(encoded, delivery)
                if emit is not None:
                    emit.write(encoded.value)
                if versions.repeats(encoded):
                    source.repeated += 1
                    if len(source.repeats) < MAX_REPEAT_EXAMPLES:
                        source.repeats.append(
                            f"{encoded.subject} ({encoded.class_name}): version {encoded.version} again"
                        )
            done += 1
            if done % 200 == 0:
                progress.update(task, completed=done)
        await producer.flush()
        progress.update(task, completed=done, total=max(done, source.total or 0))
        source.elapsed_s = time.monotonic() - began
        source.sent = producer.stats.sent - before_sent
        source.rejected += producer.stats.rejected - before_rejected
        source.classes = producer.stats.classes - before_classes


def summary(sources: list[Source], producer: HubProducer, dry_run: bool) -> Table:
    verb = "valid (dry run)" if dry_run else "sent"
    table = Table(
        title=f"Published to {producer.topic}" if not dry_run else f"Checked for {producer.topic}",
        header_style="bold",
    )
    table.add_column("input")
    table.add_column("format")
    table.add_column(verb, justify="right")
    table.add_column("rejected", justify="right")
    table.add_column("defects", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("events/s", justify="right")
    # Only when it happened: events an object's earlier version in this call makes the worker ignore.
    repeats = any(s.repeated for s in sources)
    if repeats:
        table.add_column("same version", justify="right")
    table.add_column("classes (top 4)")
    for s in sources:
        rate = s.sent / s.elapsed_s if s.elapsed_s > 0 else 0.0
        top = ", ".join(f"{name} {count}" for name, count in s.classes.most_common(4))
        rejected = f"[red]{s.rejected}[/]" if s.rejected else "0"
        repeated = [f"[yellow]{s.repeated:,}[/]" if s.repeated else "0"] if repeats else []
        table.add_row(
            s.title,
            s.format.value,
            f"{s.sent:,}",
            rejected,
            f"[yellow]{len(s.defects):,}[/]" if s.defects else "0",
            f"{s.elapsed_s:.1f}",
            f"{rate:,.0f}",
            *repeated,
            top,
        )
    if len(sources) > 1:
        total_sent = sum(s.sent for s in sources)
        total_s = sum(s.elapsed_s for s in sources)
        table.add_row(
            "[bold]total[/]",
            "",
            f"[bold]{total_sent:,}[/]",
            str(sum(s.rejected for s in sources)),
            f"{sum(len(s.defects) for s in sources):,}",
            f"{total_s:.1f}",
            f"{(total_sent / total_s if total_s else 0):,.0f}",
            *([f"{sum(s.repeated for s in sources):,}"] if repeats else []),
            "",
        )
    return table


def outcome_table(watch: OutcomeWatch, waited_s: float) -> Table:
    """How many events met each outcome, and what that means."""
    table = Table(title=f"Outcomes in the worker (after {waited_s:.1f} s)", header_style="bold")
    table.add_column("outcome")
    table.add_column("events", justify="right")
    table.add_column("meaning")
    style = {Outcome.dead_lettered: "red", Outcome.rejected_locally: "red", Outcome.unknown: "yellow"}
    for outcome, count in watch.counts().items():
        if count or outcome in (Outcome.applied, Outcome.dead_lettered):
            colour = style.get(outcome) if count else None
            shown = f"[{colour}]{count:,}[/]" if colour else f"{count:,}"
            table.add_row(outcome.value, shown, MEANING[outcome])
    return table


def report_outcomes(watch: OutcomeWatch, out: Console, timeout_s: float) -> None:
    """After the outcome table: the events dead-lettered with their reasons, and the ones the worker
    changed nothing for or had not reached, each listed up to :data:`MAX_LISTED`."""
    settings = watch.settings

    def listed(outcome: Outcome, heading: str, line: Callable[[Tracked], str]) -> None:
        found = [t for t in watch.events if t.outcome is outcome]
        if not found:
            return
        out.print(heading, highlight=False)
        for tracked in found[:MAX_LISTED]:
            out.print(f"  {line(tracked)}", highlight=False, markup=False)
        if len(found) > MAX_LISTED:
            out.print(f"  ... and {len(found) - MAX_LISTED:,} more (--json lists every event)")

    def who(t: Tracked) -> str:
        return f"{t.event_id or '<no id>'} {t.subject or '<no subject>'}"

    listed(
        Outcome.dead_lettered,
        f"[red]dead-lettered[/] by the worker (`hub deadletters --producer {watch.producer}` shows them):",
        lambda t: f"{who(t)} v{t.version}: [{t.reason_class}] {t.reason}",
    )
    listed(
        Outcome.superseded,
        "superseded: no change of their own (folded into a newer change of the object, or stale behind it):",
        lambda t: (
            f"{who(t)} v{t.version}: object at v{t.by[0] if t.by else '?'} "
            f"by event {t.by[1] if t.by else '?'}"
        ),
    )
    listed(
        Outcome.unchanged,
        "[yellow]no change[/]: the worker passed them without a change record "
        "(stale: not newer than the stored version, or ignored):",
        lambda t: f"{who(t)} v{t.version}",
    )
    listed(
        Outcome.unknown,
        f"[yellow]not dead-lettered[/] within --wait-timeout {timeout_s:g} s: applied, superseded or "
        "unchanged, or not reached yet; reading as the producer, only the dead letters are known (the "
        "change feed and the worker's progress take the operator's credentials)"
        if watch.as_producer
        else f"[yellow]still unknown[/] after --wait-timeout {timeout_s:g} s: the worker (group "
        f"HUB_WORKER_ID={settings.worker_id!r}) has not committed them; is it running, and behind?",
        lambda t: f"{who(t)} at {watch.topic}/{t.partition}/{t.offset}",
    )


def report_defects(sources: list[Source], out: Console, as_json: bool) -> None:
    """Every defect of the files, one line each (with ``as_json`` also one JSON object each on stderr)."""
    found = [defect for source in sources for defect in source.defects]
    if not found:
        return
    recovered = sum(1 for d in found if d.recovered)
    skipped = sum(1 for d in found if d.skips_object and not d.recovered)
    left_out = len(found) - recovered - skipped
    out.print(
        f"[yellow]{len(found):,} defect(s)[/] in the files: {left_out:,} propert(ies) left out, "
        f"{skipped:,} object(s) skipped, {recovered:,} repaired; everything else converted:",
        highlight=False,
    )
    for defect in found:
        out.print(f"  {defect}", highlight=False, markup=False, soft_wrap=True)
    if as_json:
        for defect in found:
            typer.echo(json.dumps({"defect": defect.to_json()}, ensure_ascii=False), err=True)


def strict_check(sources: list[Source], options: Options) -> list[Source]:
    """Convert every input once without sending, for --strict: the sources with their defects."""
    checked = [Source(s.format, s.paths) for s in sources]
    for source in checked:
        for _event in events_of(source, options):
            pass
    return checked


def warn_repeats(sources: list[Source]) -> None:
    """On stderr: the events of the call that repeat a version, which the worker will not apply."""
    for source in sources:
        if not source.repeated:
            continue
        err_console.print(
            f"[bold yellow]warning:[/] {source.title}: {source.repeated:,} event(s) give an object a version "
            "an earlier event of this call gave it; the worker applies only the first of each (records of "
            "one object need distinct times or versions). First ones:",
            highlight=False,
        )
        for repeat in source.repeats:
            err_console.print(f"  {repeat}", highlight=False, markup=False)


def _print_mapping_schema(value: bool) -> None:
    # Eager: answered before the files and the producer are asked for.
    if value:
        sys.stdout.write(json.dumps(mapping_json_schema(), indent=2) + "\n")
        raise typer.Exit()


def produce(
    paths: Annotated[
        list[Path], typer.Argument(help="Files or CGMES folders to publish.", show_default=False)
    ],
    producer: Annotated[str, typer.Option("--producer", "-p", help="Producer id (topic cim.ingest.<id>).")],
    fmt: Annotated[
        Format, typer.Option("--format", "-f", help="Input format (default: by suffix).")
    ] = Format.auto,
    mapping: Annotated[
        Path | None,
        typer.Option(
            help="Column mapping (YAML/JSON) for CSV inputs; the format, with an example per feature: "
            "docs/csv-mapping.md, its JSON Schema: --mapping-schema."
        ),
    ] = None,
    mapping_schema: Annotated[
        bool,
        typer.Option(
            "--mapping-schema",
            help="Print the JSON Schema of CSV mapping files and exit.",
            is_eager=True,
            callback=_print_mapping_schema,
        ),
    ] = False,
    label: Annotated[str | None, typer.Option(help="Security label put in every converted event.")] = None,
    label_header: Annotated[
        str | None, typer.Option(help="Security label sent as the Security-Label header of every message.")
    ] = None,
    rate: Annotated[float | None, typer.Option(help="At most this many events per second.")] = None,
    version: Annotated[
        int | None,
        typer.Option(
            help="Version of whole models (CGMES, GasLib, CSV without times; default: now, in microseconds "
            "since the epoch). Time series take their records' times: CSV rows through the mapping's "
            "time_column, JSON lines without a version through their time."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Events awaited together.")] = 500,
    validate: Annotated[bool, typer.Option(help="Check each event against the ontology first.")] = True,
    dry_run: Annotated[bool, typer.Option(help="Convert and check only; send nothing.")] = False,
    emit: Annotated[
        EmitFormat | None,
        typer.Option(
            help="Also write every event sent (with --dry-run: that would be sent), one JSON object per "
            "line, to stdout (progress and summary then go to stderr) or to --emit-to."
        ),
    ] = None,
    emit_to: Annotated[
        str | None,
        typer.Option(
            "--emit-to",
            metavar="FILE",
            help="Where --emit writes ('-' is stdout); alone it means --emit jsonl.",
            show_default=False,
        ),
    ] = None,
    compressors: Annotated[
        Path | None,
        typer.Option(
            "--compressors",
            metavar="FILE.cs",
            help="With one GasLib .net: also publish its compressor-station file (drives and compressor "
            "units of each station, attached to the network's stations).",
            show_default=False,
        ),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Then follow each sent event to its outcome in the worker: applied (the change feed), "
            "dead-lettered (with the reason), or passed without a change; print the counts and the "
            "reasons. Reads the change feed and the dead letters with the operator's (admin) Kafka "
            "credentials from the state folder; given the producer's own (HUB_KAFKA_USERNAME=producer-ID), "
            "reads its own dead letters only, and the rest stay unknown. Exit status "
            f"{EXIT_REFUSED} if any event was refused, {EXIT_UNKNOWN} if any was still unknown.",
        ),
    ] = False,
    wait_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds --wait waits for the worker (group HUB_WORKER_ID) to get through the events; "
            "those it has not reached by then are reported unknown.",
        ),
    ] = 60.0,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help='Defects of the files as JSON on stderr, one object {"defect": {...}} each; with --wait '
            "also one JSON object per event on stdout (id, subject, version, partition, offset, outcome, "
            "reason_class, reason). Progress and summary go to stderr.",
        ),
    ] = False,
    scenario: Annotated[
        str | None,
        typer.Option(
            "--scenario",
            metavar="ID",
            help="Publish into this scenario (its id, as createScenario returns it) instead of the live "
            "graph: the worker keeps the events apart, on top of the scenario's base (create it first: the "
            "createScenario mutation, listing this producer).",
            show_default=False,
        ),
    ] = None,
    base: Annotated[
        list[Path] | None,
        typer.Option(
            "--base",
            metavar="PATH",
            help="CGMES files or folder of the base model difference models apply to: read (not "
            "published) for the classes of objects a difference model only describes.",
            show_default=False,
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Convert everything first and send nothing if a file has a defect (a property left out, "
            f"an object skipped, a value repaired); exit status {EXIT_DEFECTS}.",
        ),
    ] = False,
) -> None:
    """Publish CGMES, GasLib, JSON-lines or CSV files to a producer's topic.

    A CGMES difference model (IEC 61970-552) is sent as the upserts and deletes it states; --scenario ID
    publishes into a scenario instead of the live graph.

    CSV files go through a column mapping (--mapping), documented in docs/csv-mapping.md.

    --mapping-schema prints the mapping format's JSON Schema.

    A defect in a file costs only the bad property or object: the rest is sent and every defect listed.

    With --wait, report what the worker made of every event: applied, or dead-lettered and why.
    """
    settings = get_settings()
    if emit_to is not None and emit is None:
        emit = EmitFormat.jsonl
    emit_target = (emit_to or STDOUT) if emit is not None else None
    if wait and dry_run:
        raise typer.BadParameter("--wait follows sent events; --dry-run sends none")
    if as_json and wait and emit_target == STDOUT:
        raise typer.BadParameter("--json with --wait and --emit both write to stdout; give --emit-to FILE")
    if wait and wait_timeout <= 0:
        raise typer.BadParameter(f"--wait-timeout {wait_timeout!r} must be a positive number of seconds")
    # Standard output carries only the events (or their outcomes) when they go there.
    out = err_console if emit_target == STDOUT or as_json else console
    try:
        csv_mapping = CsvMapping.load(mapping) if mapping is not None else None
        sources = classify(paths, fmt)
        if compressors is not None:
            if sum(s.format is Format.gaslib for s in sources) != 1:
                raise typer.BadParameter("--compressors FILE.cs goes with exactly one GasLib .net input")
            if not compressors.is_file():
                raise typer.BadParameter(f"--compressors {str(compressors)!r} is not a file")
        if any(s.format is Format.csv for s in sources) and csv_mapping is None:
            raise typer.BadParameter("CSV inputs need --mapping FILE (see docs/csv-mapping.md)")
        from ontology.loader import load_ontology

        ontology = load_ontology()
        client = HubProducer(
            producer,
            settings=settings,
            ontology=ontology,
            validate=validate,
            label_header=label_header,
            batch_size=batch_size,
            rate=rate,
            scenario=scenario,
        )
        classes = classes_of(base, ontology) if base else {}
    except (ProducerError, MappingError, ConversionError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(code=1) from None
    options = Options(
        producer,
        version if version is not None else _auto_version(),
        label,
        csv_mapping,
        ontology,
        version_given=version is not None,
        compressors=compressors,
        classes=classes,
    )
    emitter = Emitter.open(emit_target) if emit_target is not None else None
    try:
        watch = OutcomeWatch(settings, client.topic, producer) if wait else None
    except ReadError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(code=1) from None
    waited_s = 0.0

    if strict:
        try:
            checked = strict_check(sources, options)
        except (ConversionError, MappingError) as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(code=EXIT_FAILED) from None
        if any(s.defects for s in checked):
            report_defects(checked, out, as_json)
            err_console.print(
                "[bold red]--strict:[/] the files have defects; nothing was sent", highlight=False
            )
            raise typer.Exit(code=EXIT_DEFECTS)

    async def run() -> None:
        nonlocal waited_s
        columns = (
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=out, transient=False) as progress:
            if dry_run:
                await publish(sources, client, options, progress, dry_run=True, emit=emitter)
            elif watch is None:
                async with client:
                    await publish(sources, client, options, progress, dry_run=False, emit=emitter)
            else:
                try:
                    # Before the first send: the worker's answers to this call come after this point.
                    await watch.start()
                    async with client:
                        await publish(sources, client, options, progress, False, emitter, watch)
                    task = progress.add_task("worker outcomes", total=client.stats.sent)
                    began = time.monotonic()

                    def settled(done: int, total: int) -> None:
                        progress.update(task, completed=done, total=total)

                    await watch.wait(wait_timeout, settled)
                    waited_s = time.monotonic() - began
                finally:
                    await watch.stop()

    try:
        try:
            asyncio.run(run())
        finally:
            if emitter is not None:
                emitter.close()
    except (ConversionError, MappingError, ProducerError, KafkaCredentialsError, ReadError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(code=1) from None
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: events already acknowledged stay published")
        raise typer.Exit(code=130) from None
    except BrokenPipeError:
        # The reader of the emitted events (head, a pager) went away: stop, as a pipeline's writer does.
        silence_stdout()
        err_console.print(
            "[yellow]stopped[/]: the reader of --emit's output went away; "
            "events already acknowledged stay published"
        )
        raise typer.Exit(code=1) from None
    except Exception as exc:  # Kafka unreachable and the like: one clear line, not a traceback
        if "Kafka" in type(exc).__name__ or "Connection" in type(exc).__name__:
            err_console.print(
                f"[bold red]error:[/] cannot publish to Kafka at {settings.kafka_bootstrap} "
                f"(HUB_KAFKA_BOOTSTRAP): {exc}",
                highlight=False,
            )
            raise typer.Exit(code=1) from None
        raise
    out.print(summary(sources, client, dry_run))
    for source in sources:
        for note in source.notes[:10]:
            out.print(f"[dim]{source.title}:[/] {note}", highlight=False)
    if emitter is not None and emitter.name != "stdout":
        out.print(f"{emitter.count:,} event(s) written to {emitter.name}", highlight=False)
    warn_repeats(sources)
    report_defects(sources, out, as_json)
    if client.stats.rejections:
        out.print(f"[red]{client.stats.rejected} event(s) rejected locally[/], first ones:")
        for rejection in client.stats.rejections[:10]:
            out.print(f"  {rejection}", highlight=False, markup=False)
    if watch is not None:
        out.print(outcome_table(watch, waited_s))
        report_outcomes(watch, out, wait_timeout)
        if as_json:
            for tracked in watch.events:
                typer.echo(json.dumps(tracked.to_json(), ensure_ascii=False))
        counts = watch.counts()
        if counts[Outcome.dead_lettered]:
            raise typer.Exit(code=EXIT_REFUSED)
    if client.stats.rejected or any(s.rejected for s in sources):
        raise typer.Exit(code=EXIT_REFUSED)
    if watch is not None and watch.counts()[Outcome.unknown]:
        raise typer.Exit(code=EXIT_UNKNOWN)
    if any(s.defects for s in sources):
        raise typer.Exit(code=EXIT_DEFECTS)
