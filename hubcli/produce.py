"""``hub produce``: publish files to a producer's topic with a progress bar, a rate limit and a summary.

Inputs, by what they are:

* a folder of CGMES RDF/XML files, or ``.xml`` files (all of them form one model: profiles extend each
  other's objects, so they are merged before anything is sent);
* GasLib ``.net`` networks;
* JSON lines (``.jsonl``, ``.ndjson``, ``.json``): one event envelope per line;
* ``.csv`` files with a column mapping (``--mapping``; see :mod:`ingest.csv_adapter`).

Every event is checked locally against the ontology before it is sent (``--no-validate`` skips that);
rejected events are listed in the summary with the reason, and the command exits with status 2.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

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

from hub.kafka_clients import KafkaCredentialsError
from hub.settings import get_settings
from ingest.cgmes import CgmesConverter, ConversionError
from ingest.csv_adapter import CsvAdapter, CsvMapping, MappingError
from ingest.gaslib import GasLibConverter
from ingest.producer import EventLike, HubProducer, LocalRejection, ProducerError

console = Console()
err_console = Console(stderr=True)


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
        if fmt is Format.cgmes:
            cgmes.append(path)
        else:
            sources.append(Source(fmt, [path]))
    if cgmes:
        sources.insert(0, Source(Format.cgmes, cgmes))
    return sources


def _auto_version() -> int:
    # Whole seconds since the epoch: a re-publication of a changed model always carries a newer version.
    return int(time.time())


@dataclass
class Options:
    producer: str
    version: int
    label: str | None
    mapping: CsvMapping | None
    ontology: Any


def events_of(source: Source, options: Options) -> Iterator[EventLike]:
    """The events of one source; sets ``source.total`` as soon as it is known and notes what was left out."""
    if source.format is Format.cgmes:
        converter = CgmesConverter(
            source=options.producer, version=options.version, label=options.label, ontology=options.ontology
        )
        converter.read(source.paths)
        source.total = sum(1 for obj in converter.index.values() if obj.tags)
        yield from converter.emit()
        st = converter.stats
        if st.skipped_classes:
            source.notes.append(
                f"classes unknown to the ontology left out: {sum(st.skipped_classes.values())}"
                f" elements ({', '.join(sorted(_local(k) for k in st.skipped_classes)[:5])})"
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
        yield from gas.convert(source.paths[0])
        if gas.stats.skipped_elements:
            source.notes.append(f"GasLib elements left out: {dict(gas.stats.skipped_elements)}")
    elif source.format is Format.jsonl:
        path = source.paths[0]
        source.total = _count_lines(path)
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                text = line.strip()
                if not text:
                    continue
                try:
                    yield json.loads(text)
                except ValueError as exc:
                    yield _BadLine(f"{path.name} line {number}: not JSON: {exc}")
    else:
        if options.mapping is None:
            raise typer.BadParameter(f"{source.paths[0]}: a CSV file needs --mapping FILE")
        mapping = options.mapping
        version = options.version if (mapping.version is None and mapping.version_column is None) else None
        adapter = CsvAdapter(
            mapping, source=options.producer, ontology=options.ontology, version=version, label=options.label
        )
        source.total = max(_count_lines(source.paths[0]) - 1, 0)
        yield from adapter.convert(source.paths[0])
        for err in adapter.stats.errors:
            source.notes.append(f"skipped {err}")
        source.rejected += adapter.stats.skipped


class _BadLine(str):
    """A JSON-lines line that is not JSON, carried to the sender so that it is counted where it fails."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].rsplit("#", 1)[-1]


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


async def publish(
    sources: list[Source], producer: HubProducer, options: Options, progress: Progress, dry_run: bool
) -> None:
    for source in sources:
        task = progress.add_task(source.title, total=None)
        began = time.monotonic()
        before_sent, before_rejected = producer.stats.sent, producer.stats.rejected
        before_classes = Counter(producer.stats.classes)
        done = 0
        for event in events_of(source, options):
            if source.total is not None and progress.tasks[task].total is None:
                progress.update(task, total=source.total)
            if isinstance(event, _BadLine):
                producer.stats.reject(LocalRejection(None, str(event)))
            elif dry_run:
                try:
                    _key, _value, _subject, class_name = producer.encode(event)
                    producer.stats.sent += 1
                    producer.stats.classes[class_name] += 1
                except LocalRejection as rejection:
                    producer.stats.reject(rejection)
            else:
                await producer.send(event)
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
    table.add_column("seconds", justify="right")
    table.add_column("events/s", justify="right")
    table.add_column("classes (top 4)")
    for s in sources:
        rate = s.sent / s.elapsed_s if s.elapsed_s > 0 else 0.0
        top = ", ".join(f"{name} {count}" for name, count in s.classes.most_common(4))
        rejected = f"[red]{s.rejected}[/]" if s.rejected else "0"
        table.add_row(
            s.title, s.format.value, f"{s.sent:,}", rejected, f"{s.elapsed_s:.1f}", f"{rate:,.0f}", top
        )
    if len(sources) > 1:
        total_sent = sum(s.sent for s in sources)
        total_s = sum(s.elapsed_s for s in sources)
        table.add_row(
            "[bold]total[/]",
            "",
            f"[bold]{total_sent:,}[/]",
            str(sum(s.rejected for s in sources)),
            f"{total_s:.1f}",
            f"{(total_sent / total_s if total_s else 0):,.0f}",
            "",
        )
    return table


def produce(
    paths: Annotated[
        list[Path], typer.Argument(help="Files or CGMES folders to publish.", show_default=False)
    ],
    producer: Annotated[str, typer.Option("--producer", "-p", help="Producer id (topic cim.ingest.<id>).")],
    fmt: Annotated[
        Format, typer.Option("--format", "-f", help="Input format (default: by suffix).")
    ] = Format.auto,
    mapping: Annotated[Path | None, typer.Option(help="Column mapping (YAML/JSON) for CSV inputs.")] = None,
    label: Annotated[str | None, typer.Option(help="Security label put in every converted event.")] = None,
    label_header: Annotated[
        str | None, typer.Option(help="Security label sent as the Security-Label header of every message.")
    ] = None,
    rate: Annotated[float | None, typer.Option(help="At most this many events per second.")] = None,
    version: Annotated[
        int | None, typer.Option(help="Version of converted objects (default: the current Unix time).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Events awaited together.")] = 500,
    validate: Annotated[bool, typer.Option(help="Check each event against the ontology first.")] = True,
    dry_run: Annotated[bool, typer.Option(help="Convert and check only; send nothing.")] = False,
) -> None:
    """Publish CGMES, GasLib, JSON-lines or CSV files to a producer's topic."""
    settings = get_settings()
    try:
        csv_mapping = CsvMapping.load(mapping) if mapping is not None else None
        sources = classify(paths, fmt)
        if any(s.format is Format.csv for s in sources) and csv_mapping is None:
            raise typer.BadParameter("CSV inputs need --mapping FILE (see ingest/csv_adapter.py)")
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
        )
    except (ProducerError, MappingError, KafkaCredentialsError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(code=1) from None
    options = Options(
        producer, version if version is not None else _auto_version(), label, csv_mapping, ontology
    )

    async def run() -> None:
        columns = (
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=False) as progress:
            if dry_run:
                await publish(sources, client, options, progress, dry_run=True)
            else:
                async with client:
                    await publish(sources, client, options, progress, dry_run=False)

    try:
        asyncio.run(run())
    except (ConversionError, MappingError, ProducerError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(code=1) from None
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: events already acknowledged stay published")
        raise typer.Exit(code=130) from None
    except Exception as exc:  # Kafka unreachable and the like: one clear line, not a traceback
        if "Kafka" in type(exc).__name__ or "Connection" in type(exc).__name__:
            err_console.print(
                f"[bold red]error:[/] cannot publish to Kafka at {settings.kafka_bootstrap} "
                f"(HUB_KAFKA_BOOTSTRAP): {exc}",
                highlight=False,
            )
            raise typer.Exit(code=1) from None
        raise
    console.print(summary(sources, client, dry_run))
    for source in sources:
        for note in source.notes[:10]:
            console.print(f"[dim]{source.title}:[/] {note}", highlight=False)
    if client.stats.rejections:
        console.print(f"[red]{client.stats.rejected} event(s) rejected locally[/], first ones:")
        for rejection in client.stats.rejections[:10]:
            console.print(f"  {rejection}", highlight=False, markup=False)
    if client.stats.rejected or any(s.rejected for s in sources):
        raise typer.Exit(code=2)
