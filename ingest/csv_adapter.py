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
(it does not remove it; the envelope's ``null`` does that).

Defects cost as little as they can (:mod:`ingest.defects`): a cell the ontology refuses (not a number, not
a literal, several targets for a to-one reference, a target that is no mRID) is left out and the row's
other columns kept; a row without what every event needs (its mRID, class, type, time, version) is
skipped; a time whose date runs into its hour without the ``T`` gets it back. Each is recorded in
``CsvStats.defects`` with the file, line, row mRID, column and value; the rest of the file goes through.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub.events import MRID_PATTERN, Event, EventType, normalise_mrid, time_version
from ingest.cgmes import default_ontology, event_id
from ingest.csv_mapping import CsvMapping, MappingError
from ingest.defects import DefectKind, Defects, check_value, repair_datetime

_TYPES = {t.value for t in EventType}


@dataclass
class CsvStats:
    rows: int = 0
    events: int = 0
    skipped: int = 0  # rows that became no event
    classes: Counter[str] = field(default_factory=Counter)
    defects: Defects = field(default_factory=Defects)  # skipped rows and left-out cells, and where


class _RowProblem(ValueError):
    """The row cannot become an event; the caller records it and goes on with the next row."""

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
        self._path = Path("-")

    def convert(self, path: Path | str) -> Iterator[Event]:
        path = Path(path)
        self._path = path
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
                    event = self.row_event(row, line)
                except _RowProblem as problem:
                    self.stats.skipped += 1
                    raw_mrid = (row.get(self.mapping.id_column.column or "") or "").strip()
                    mrid = self.mapping.id_column.prefix + raw_mrid if raw_mrid else None
                    self.stats.defects.add(
                        path,
                        line,
                        mrid,
                        problem.column,
                        DefectKind.BAD_OBJECT,
                        f"value {problem.value!r}: {problem.reason}",
                    )
                    continue
                self.stats.events += 1
                self.stats.classes[event.class_] += 1
                yield event

    def _cell(
        self, line: int, mrid: str, column: str | None, kind: DefectKind, reason: str, recovered: bool = False
    ) -> None:
        self.stats.defects.add(self._path, line, mrid, column, kind, reason, recovered=recovered)

    def row_event(self, row: Mapping[str, str], line: int = 0) -> Event:
        """The event of one row (``line`` locates the defects); _RowProblem if the row cannot be one."""
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
            repaired = repair_datetime(raw_time)
            if repaired is not None:
                self._cell(
                    line,
                    mrid,
                    m.time_column,
                    DefectKind.DATE_SEPARATOR,
                    f"time {raw_time!r} runs date and time together; read as {repaired!r}",
                    recovered=True,
                )
                raw_time = repaired
            if len(raw_time) > 10 and raw_time[10] not in "Tt ":
                # fromisoformat would take any character there and misread the time.
                raise _RowProblem(
                    m.time_column,
                    raw_time,
                    f"expected 'T' between the date and the time, got {raw_time[10]!r}",
                )
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
                self._cell(
                    line,
                    mrid,
                    col.column,
                    DefectKind.BAD_VALUE,
                    f"class {class_name} has no attribute {qname!r}",
                )
                continue
            value = col.read(row)
            if isinstance(value, str):
                value = value.strip()
                if not value:
                    continue
                if col.scale is not None:
                    try:
                        value = float(value) * col.scale
                    except ValueError:
                        self._cell(
                            line,
                            mrid,
                            col.column,
                            DefectKind.BAD_VALUE,
                            f"{qname}: {value!r} is not a number",
                        )
                        continue
            defect, value, reason = check_value(self.ontology, class_name, qname, value)
            if defect is not None:
                recovered = defect is DefectKind.DATE_SEPARATOR
                self._cell(line, mrid, col.column, defect, reason, recovered)
                if not recovered:
                    continue
            attributes[qname] = value
        references: dict[str, str | list[str]] = {}
        for qname, col in m.references.items():
            association = assocs.get(qname)
            if association is None:
                self._cell(
                    line,
                    mrid,
                    col.column,
                    DefectKind.BAD_VALUE,
                    f"class {class_name} has no association {qname!r}",
                )
                continue
            raw = col.read(row)
            text = "" if raw is None else str(raw).strip()
            if not text:
                continue
            parts = [p.strip() for p in text.split(col.separator)] if col.separator else [text]
            targets = [col.prefix + p for p in parts if p]
            bad = [t for t in targets if not MRID_PATTERN.match(normalise_mrid(t))]
            if bad:
                self._cell(
                    line,
                    mrid,
                    col.column,
                    DefectKind.BAD_REFERENCE,
                    f"{qname}: {bad[0]!r} is not a well-formed mRID",
                )
            elif association.many:
                references[qname] = targets
            elif len(targets) != 1:
                self._cell(
                    line,
                    mrid,
                    col.column,
                    DefectKind.TOO_MANY_TARGETS,
                    f"{qname} takes one target, got {len(targets)}: {text!r}",
                )
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
