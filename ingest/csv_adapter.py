"""CSV rows to hub events, through a column mapping the producer writes once (YAML or JSON).

Many producers keep asset registers and readings as spreadsheets. A mapping file says which column holds
the mRID, which ontology class the rows are, and which column feeds which CIM attribute or reference. Its
format is the model :class:`ingest.csv_mapping.CsvMapping`; ``docs/csv-mapping.md`` documents it with an
example per feature (generated from the model), and ``hub produce --mapping-schema`` prints its JSON Schema.

Versions. ``version_column`` gives each row its own version, ``version`` gives every row the same one.
With neither, a mapping that names a ``time_column`` takes each row's version from its time: microseconds
since 1970-01-01T00:00:00Z (:func:`hub.events.time_version`), so of several readings of one object the
latest wins in the graph whatever order the rows are in, and two rows of one object at the same instant
share a version (the worker applies only the first; ``hub produce`` warns). Without any of the three the
caller supplies the version (``hub produce --version``, or the time of publication in the same unit).

The mapping is checked against the ontology before the first row is read: every qualified name must be
an attribute or association of the class (inherited ones count). An empty cell leaves the attribute out
(it does not remove it; the envelope's ``null`` does that). A row that cannot become an event is skipped
and reported with its line number, column and value; the rest of the file still goes through.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub.events import Event, EventType, time_version
from ingest.cgmes import default_ontology, event_id
from ingest.csv_mapping import CsvMapping, MappingError

_TYPES = {t.value for t in EventType}
# Rows reported verbatim in the stats; the count is always exact.
MAX_KEPT_ERRORS = 100


@dataclass(frozen=True)
class RowError:
    line: int
    column: str | None
    value: object
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column!r}" if self.column else "")
        return f"{where}: value {self.value!r}: {self.reason}"


@dataclass
class CsvStats:
    rows: int = 0
    events: int = 0
    skipped: int = 0
    classes: Counter[str] = field(default_factory=Counter)
    errors: list[RowError] = field(default_factory=list)

    def error(self, err: RowError) -> None:
        self.skipped += 1
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append(err)


class _RowProblem(ValueError):
    def __init__(self, column: str | None, value: object, reason: str) -> None:
        super().__init__(reason)
        self.column, self.value, self.reason = column, value, reason


class CsvAdapter:
    """Streams the rows of one CSV file as events of ``source``; ``stats`` reports skipped rows."""

    def __init__(
        self,
        mapping: CsvMapping,
        *,
        source: str,
        ontology: Any | None = None,
        time: datetime | None = None,
        version: int | None = None,
        label: str | None = None,
    ) -> None:
        self.mapping = mapping
        self.source = source
        self.ontology = ontology if ontology is not None else default_ontology()
        mapping.check(self.ontology)
        self.time = time or datetime.now(UTC)
        self.version = version if version is not None else mapping.version
        if self.version is None and mapping.version_column is None and mapping.time_column is None:
            raise MappingError(
                "version: give 'version', 'version_column' or 'time_column' in the mapping (or --version)"
            )
        self.label = label if label is not None else mapping.label
        self.stats = CsvStats()

    def convert(self, path: Path | str) -> Iterator[Event]:
        path = Path(path)
        try:
            handle = path.open(newline="", encoding="utf-8-sig")
        except OSError as exc:
            raise MappingError(f"CSV file {str(path)!r} cannot be read: {exc.strerror}") from None
        with handle:
            reader = csv.DictReader(handle, delimiter=self.mapping.delimiter)
            header = set(reader.fieldnames or ())
            missing = sorted(self.mapping.columns() - header)
            if missing:
                raise MappingError(
                    f"CSV file {str(path)!r} lacks column(s) {missing} named by the mapping "
                    f"(its columns: {sorted(header)})"
                )
            for row in reader:
                self.stats.rows += 1
                line = reader.line_num
                try:
                    event = self.row_event(row)
                except _RowProblem as problem:
                    self.stats.error(RowError(line, problem.column, problem.value, problem.reason))
                    continue
                self.stats.events += 1
                self.stats.classes[event.class_] += 1
                yield event

    def row_event(self, row: Mapping[str, str]) -> Event:
        m = self.mapping
        mrid_raw = (row.get(m.id_column.column or "") or "").strip()
        if not mrid_raw:
            raise _RowProblem(m.id_column.column, mrid_raw, "the mRID is empty")
        mrid = m.id_column.prefix + mrid_raw
        class_name = m.class_name or (row.get(m.class_column or "") or "").strip()
        if m.class_name is None:
            try:
                self.ontology.get(class_name)
            except KeyError:
                raise _RowProblem(m.class_column, class_name, "not an ontology class") from None
        kind = (row.get(m.type_column) or "").strip() if m.type_column else m.type
        if kind not in _TYPES:
            raise _RowProblem(m.type_column, kind, f"not one of {sorted(_TYPES)}")
        time = self.time
        if m.time_column:
            raw_time = (row.get(m.time_column) or "").strip()
            try:
                time = datetime.fromisoformat(raw_time.replace("Z", "+00:00"))
            except ValueError:
                raise _RowProblem(m.time_column, raw_time, "not an RFC 3339 time") from None
            if time.tzinfo is None:
                raise _RowProblem(m.time_column, raw_time, "time has no time zone")
        version = self.version
        if version is None and m.version_column:
            raw_version = (row.get(m.version_column) or "").strip()
            try:
                version = int(raw_version)
            except ValueError:
                raise _RowProblem(m.version_column, raw_version, "not an integer version") from None
        elif version is None:
            # Only a mapping with a time column gets here (see __init__).
            try:
                version = time_version(time)
            except ValueError as exc:
                raise _RowProblem(m.time_column, time.isoformat(), str(exc)) from None
        label = ((row.get(m.label_column) or "").strip() or None) if m.label_column else self.label
        attrs = self.ontology.attributes_of(class_name)
        assocs = self.ontology.associations_of(class_name)
        attributes: dict[str, Any] = {}
        for qname, col in m.attributes.items():
            if qname not in attrs:
                raise _RowProblem(m.class_column, class_name, f"class has no attribute {qname!r}")
            value = col.read(row)
            if isinstance(value, str):
                value = value.strip()
                if not value:
                    continue
                if col.scale is not None:
                    try:
                        value = float(value) * col.scale
                    except ValueError:
                        raise _RowProblem(col.column, value, f"{qname}: not a number") from None
            attributes[qname] = value
        references: dict[str, str | list[str]] = {}
        for qname, col in m.references.items():
            association = assocs.get(qname)
            if association is None:
                raise _RowProblem(m.class_column, class_name, f"class has no association {qname!r}")
            raw = col.read(row)
            text = "" if raw is None else str(raw).strip()
            if not text:
                continue
            parts = [p.strip() for p in text.split(col.separator)] if col.separator else [text]
            targets = [col.prefix + p for p in parts if p]
            if association.many:
                references[qname] = targets
            elif len(targets) != 1:
                raise _RowProblem(col.column, text, f"{qname} takes one target, got {len(targets)}")
            else:
                references[qname] = targets[0]
        event_type = EventType(kind)
        body = {
            "id": event_id(self.source, mrid, version, event_type),
            "source": self.source,
            "type": event_type,
            "subject": mrid,
            "time": time,
            "version": version,
            "class": class_name,
            "attributes": attributes if event_type is not EventType.DELETE else {},
            "references": references if event_type is EventType.UPSERT else {},
            "label": label if event_type is EventType.UPSERT else None,
        }
        try:
            return Event.model_validate(body)
        except ValueError as exc:
            first = exc.errors()[0] if hasattr(exc, "errors") else {"loc": (), "msg": str(exc)}
            loc = ".".join(str(p) for p in first.get("loc", ()))
            raise _RowProblem(
                None, body.get(loc.split(".")[0]) if loc else None, f"{loc}: {first.get('msg')}"
            ) from None


def convert_csv(
    path: Path | str,
    mapping: CsvMapping | Path | str,
    *,
    source: str,
    ontology: Any | None = None,
    version: int | None = None,
    label: str | None = None,
    time: datetime | None = None,
    stats: CsvStats | None = None,
) -> Iterator[Event]:
    """Events for one CSV file under ``mapping`` (a :class:`CsvMapping` or the mapping file's path)."""
    if not isinstance(mapping, CsvMapping):
        mapping = CsvMapping.load(mapping)
    adapter = CsvAdapter(mapping, source=source, ontology=ontology, version=version, label=label, time=time)
    if stats is not None:
        adapter.stats = stats
    return adapter.convert(path)
