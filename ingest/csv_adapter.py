"""CSV rows to hub events, through a column mapping the producer writes once (YAML or JSON).

Many producers keep asset registers and readings as spreadsheets. A mapping file says which column holds
the mRID, which ontology class the rows are, and which column feeds which CIM attribute or reference::

    class: EnergyConsumer            # or  class_column: kind
    type: upsert                     # upsert | measurement | delete, or  type_column: ...
    mrid: {column: id, prefix: "dno-"}
    version: 1                       # or  version_column: rev, or neither with a time_column
    time_column: observed_at         # optional; RFC 3339, default: when the file is read
    label: "org=dno|org=neso"        # optional, or  label_column: ...
    attributes:
      IdentifiedObject.name: name                     # column name
      EnergyConsumer.p: {column: p_kw, scale: 0.001}  # kW in the file, MW in the ontology
      Equipment.inService: {value: true}              # a constant
    references:
      Equipment.EquipmentContainer: {column: substation, prefix: "dno-"}
      GasOfftake.GeneratingUnits: {column: units, separator: ";"}

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
import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from hub.events import MRID_PATTERN, Event, EventType, normalise_mrid, time_version
from ingest.cgmes import default_ontology, event_id
from ingest.defects import DefectKind, Defects, check_value, repair_datetime

_TYPES = {t.value for t in EventType}


class MappingError(ValueError):
    """The mapping file is unusable; the message names the key and the value."""


@dataclass(frozen=True)
class Column:
    """Where one value comes from: a column (with optional prefix, scale, list separator) or a constant."""

    column: str | None = None
    value: Any = None
    prefix: str = ""
    scale: float | None = None
    separator: str | None = None

    def read(self, row: Mapping[str, str]) -> Any:
        if self.column is None:
            return self.value
        return row.get(self.column)


@dataclass
class CsvStats:
    rows: int = 0
    events: int = 0
    skipped: int = 0  # rows that became no event
    classes: Counter[str] = field(default_factory=Counter)
    defects: Defects = field(default_factory=Defects)  # skipped rows and left-out cells, and where


@dataclass(frozen=True)
class CsvMapping:
    mrid: Column
    class_name: str | None = None
    class_column: str | None = None
    type: str = "upsert"
    type_column: str | None = None
    version: int | None = None
    version_column: str | None = None
    time_column: str | None = None
    label: str | None = None
    label_column: str | None = None
    attributes: dict[str, Column] = field(default_factory=dict)
    references: dict[str, Column] = field(default_factory=dict)
    delimiter: str = ","

    @classmethod
    def load(cls, path: Path | str) -> CsvMapping:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise MappingError(f"mapping file {str(path)!r} cannot be read: {exc.strerror}") from None
        try:
            data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise MappingError(f"mapping file {str(path)!r} is not valid YAML/JSON: {exc}") from None
        return cls.from_dict(data, where=str(path))

    @classmethod
    def from_dict(cls, data: object, where: str = "mapping") -> CsvMapping:
        if not isinstance(data, Mapping):
            raise MappingError(f"{where}: must be a mapping of keys to values, got {type(data).__name__}")
        known = {
            "class",
            "class_column",
            "type",
            "type_column",
            "mrid",
            "mrid_column",
            "version",
            "version_column",
            "time_column",
            "label",
            "label_column",
            "attributes",
            "references",
            "delimiter",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise MappingError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(known)}")
        if "mrid" in data:
            mrid = _column(data["mrid"], f"{where}: mrid")
        elif "mrid_column" in data:
            mrid = _column(data["mrid_column"], f"{where}: mrid_column")
        else:
            raise MappingError(f"{where}: 'mrid' (or 'mrid_column') is required")
        if mrid.column is None:
            raise MappingError(f"{where}: mrid must name a column, got a constant {mrid.value!r}")
        class_name, class_column = data.get("class"), data.get("class_column")
        if (class_name is None) == (class_column is None):
            raise MappingError(f"{where}: give exactly one of 'class' and 'class_column'")
        kind = str(data.get("type", "upsert"))
        if kind not in _TYPES:
            raise MappingError(f"{where}: type = {kind!r} is not one of {sorted(_TYPES)}")
        version = data.get("version")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
            raise MappingError(f"{where}: version = {version!r} must be a positive integer")
        delimiter = str(data.get("delimiter", ","))
        if len(delimiter) != 1:
            raise MappingError(f"{where}: delimiter = {delimiter!r} must be one character")
        return cls(
            mrid=mrid,
            class_name=_opt_str(class_name, f"{where}: class"),
            class_column=_opt_str(class_column, f"{where}: class_column"),
            type=kind,
            type_column=_opt_str(data.get("type_column"), f"{where}: type_column"),
            version=version,
            version_column=_opt_str(data.get("version_column"), f"{where}: version_column"),
            time_column=_opt_str(data.get("time_column"), f"{where}: time_column"),
            label=_opt_str(data.get("label"), f"{where}: label"),
            label_column=_opt_str(data.get("label_column"), f"{where}: label_column"),
            attributes=_columns(data.get("attributes"), f"{where}: attributes"),
            references=_columns(data.get("references"), f"{where}: references"),
            delimiter=delimiter,
        )

    @property
    def versions_from_time(self) -> bool:
        """True when each row's version is its time (the mapping names a time and no version)."""
        return self.version is None and self.version_column is None and self.time_column is not None

    def columns(self) -> set[str]:
        """Every column the mapping reads (to check the file's header once)."""
        names = {self.mrid.column} | {
            c
            for c in (
                self.class_column,
                self.type_column,
                self.version_column,
                self.time_column,
                self.label_column,
            )
            if c
        }
        names |= {c.column for c in (*self.attributes.values(), *self.references.values()) if c.column}
        return {n for n in names if n}

    def check(self, ontology: Any) -> None:
        """Every qualified name must belong to the class (when the class is fixed) or to some class."""
        if self.class_name is not None:
            try:
                ontology.get(self.class_name)
            except KeyError:
                raise MappingError(f"class = {self.class_name!r} is not an ontology class") from None
            attrs = ontology.attributes_of(self.class_name)
            assocs = ontology.associations_of(self.class_name)
            for qname in self.attributes:
                if qname not in attrs:
                    raise MappingError(
                        f"attributes: {qname!r} is not an attribute of {self.class_name} (or its ancestors)"
                    )
            for qname in self.references:
                if qname not in assocs:
                    raise MappingError(
                        f"references: {qname!r} is not an association of {self.class_name} (or its ancestors)"
                    )


def _opt_str(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise MappingError(f"{where} = {value!r} must be a non-empty string")
    return value


def _column(spec: object, where: str) -> Column:
    if isinstance(spec, str):
        if not spec:
            raise MappingError(f"{where} = '' must name a column")
        return Column(column=spec)
    if not isinstance(spec, Mapping):
        raise MappingError(f"{where} = {spec!r} must be a column name or a mapping")
    unknown = sorted(set(spec) - {"column", "value", "prefix", "scale", "separator"})
    if unknown:
        raise MappingError(
            f"{where}: unknown key(s) {unknown}; allowed: column, value, prefix, scale, separator"
        )
    if ("column" in spec) == ("value" in spec):
        raise MappingError(f"{where}: give exactly one of 'column' and 'value', got {dict(spec)!r}")
    scale = spec.get("scale")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int | float)):
        raise MappingError(f"{where}.scale = {scale!r} must be a number")
    return Column(
        column=_opt_str(spec.get("column"), f"{where}.column"),
        value=spec.get("value"),
        prefix=str(spec.get("prefix", "")),
        scale=float(scale) if scale is not None else None,
        separator=_opt_str(spec.get("separator"), f"{where}.separator"),
    )


def _columns(spec: object, where: str) -> dict[str, Column]:
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise MappingError(f"{where} must map qualified names to columns, got {spec!r}")
    return {str(qname): _column(col, f"{where}.{qname}") for qname, col in spec.items()}


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
                    raw_mrid = (row.get(self.mapping.mrid.column or "") or "").strip()
                    mrid = self.mapping.mrid.prefix + raw_mrid if raw_mrid else None
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
        mrid_raw = (row.get(m.mrid.column or "") or "").strip()
        if not mrid_raw:
            raise _RowProblem(m.mrid.column, mrid_raw, "the mRID is empty")
        mrid = m.mrid.prefix + mrid_raw
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
