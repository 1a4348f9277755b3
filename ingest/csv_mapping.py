"""The CSV mapping format: one pydantic model that validates a mapping file and is its documented schema.

A producer writes a mapping once (YAML or JSON) to say how the rows of a CSV file become hub events. The
model below is the only definition of the format: :meth:`CsvMapping.load` validates a file with it (errors
name the key and the value), :func:`mapping_json_schema` is its JSON Schema (``hub produce
--mapping-schema``), and ``docs/csv-mapping.md`` is generated from both by :mod:`ingest.csv_mapping_docs`.
What the model cannot know (whether a qualified name belongs to the class) :meth:`CsvMapping.check` checks
against the ontology before the first row is read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hub.labels import LabelError, parse

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://w3id.org/energy-hub/csv-mapping.schema.json"


class MappingError(ValueError):
    """The mapping file is unusable; the message names the key and the value."""


def _shorthand(value: object) -> object:
    # A bare string is the most common spelling of a column: `IdentifiedObject.name: name`.
    return {"column": value} if isinstance(value, str) else value


class Column(BaseModel):
    """Where one value comes from: a column of the file (``column``) or a constant (``value``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Column")

    column: str | None = Field(
        default=None, min_length=1, description="Name of the CSV column (as in the header row)."
    )
    value: str | int | float | bool | None = Field(
        default=None, description="A constant used for every row instead of a column."
    )
    prefix: str = Field(
        default="",
        description="Text put before the cell's value: gives the file's ids the producer's mRID range.",
    )
    scale: Annotated[float, Field(strict=True)] | None = Field(
        default=None,
        description="Factor the cell's number is multiplied by, to convert into the ontology's unit "
        "(e.g. 0.001 from kW to MW).",
    )
    separator: str | None = Field(
        default=None,
        min_length=1,
        description="Splits one cell into several values, for references to several objects.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Column:
        if (self.column is None) == ("value" not in self.model_fields_set):
            given = {k: getattr(self, k) for k in ("column", "value") if k in self.model_fields_set}
            raise ValueError(f"give exactly one of 'column' and 'value', got {given!r}")
        return self

    def read(self, row: Mapping[str, str]) -> Any:
        if self.column is None:
            return self.value
        return row.get(self.column)


# A column as a mapping file writes it: a column name, or the full form.
ColumnSpec = Annotated[Column, BeforeValidator(_shorthand, json_schema_input_type=str | Column)]


class CsvMapping(BaseModel):
    """How the rows of a CSV file become hub events: one event per row."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        title="CSV mapping",
        json_schema_extra={
            "allOf": [
                {"oneOf": [{"required": ["mrid"]}, {"required": ["mrid_column"]}]},
                {"oneOf": [{"required": ["class"]}, {"required": ["class_column"]}]},
            ]
        },
    )

    mrid: ColumnSpec | None = Field(
        default=None,
        description="The column holding each row's mRID, usually with a `prefix` that puts the file's ids "
        "into the producer's range. Required (or its older spelling `mrid_column`).",
    )
    mrid_column: str | None = Field(
        default=None, min_length=1, description="Older spelling of `mrid: COLUMN`; give one of the two."
    )
    class_name: str | None = Field(
        default=None,
        alias="class",
        min_length=1,
        description="The ontology class of every row (e.g. `EnergyConsumer`). Give this or `class_column`.",
    )
    class_column: str | None = Field(
        default=None, min_length=1, description="A column naming each row's ontology class."
    )
    type: Literal["upsert", "measurement", "delete"] = Field(
        default="upsert",
        description="The event type of every row: `upsert` (create or change), `measurement` (change "
        "values only) or `delete`.",
    )
    type_column: str | None = Field(
        default=None, min_length=1, description="A column giving each row's event type instead of `type`."
    )
    version: Annotated[int, Field(strict=True, ge=1)] | None = Field(
        default=None,
        description="The version of every row's event (an object's event applies only when its version is "
        "newer than the stored one).",
    )
    version_column: str | None = Field(
        default=None, min_length=1, description="A column giving each row's version (a positive integer)."
    )
    time_column: str | None = Field(
        default=None,
        min_length=1,
        description="A column with each row's time (RFC 3339). Without `version` and `version_column` the "
        "row's version is its time in microseconds since 1970-01-01T00:00:00Z, so the latest reading "
        "of an object wins whatever the order of the rows. Without it the time is when the file is read.",
    )
    label: str | None = Field(
        default=None,
        min_length=1,
        description="Security label of every row's object (e.g. `org=dno|classification=OFFICIAL`); "
        "without it the producer's default applies.",
    )
    label_column: str | None = Field(
        default=None, min_length=1, description="A column giving each row's security label."
    )
    attributes: dict[str, ColumnSpec] = Field(
        default_factory=dict,
        description="Ontology attributes by qualified name (`Class.attribute`, inherited ones count), each "
        "from a column or a constant. An empty cell leaves the attribute out.",
    )
    references: dict[str, ColumnSpec] = Field(
        default_factory=dict,
        description="Ontology associations by qualified name, each from a column of target mRIDs (with "
        "`prefix`, and `separator` for several targets).",
    )
    delimiter: str = Field(
        default=",", min_length=1, max_length=1, description="The character between the file's cells."
    )

    @field_validator("attributes", "references", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # YAML writes a key with nothing under it as null: the same as leaving it out.
        return {} if value is None else value

    @field_validator("label")
    @classmethod
    def _label_parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse(value)
            except LabelError as exc:
                raise ValueError(f"not a label expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _exclusive(self) -> CsvMapping:
        if (self.mrid is None) == (self.mrid_column is None):
            raise ValueError("give exactly one of 'mrid' and 'mrid_column'")
        if (self.class_name is None) == (self.class_column is None):
            raise ValueError("give exactly one of 'class' and 'class_column'")
        if self.id_column.column is None:
            raise ValueError(f"mrid must name a column, got a constant {self.id_column.value!r}")
        return self

    @property
    def id_column(self) -> Column:
        """Where each row's mRID comes from, whichever spelling the mapping used."""
        if self.mrid is not None:
            return self.mrid
        return Column(column=self.mrid_column)

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
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise MappingError(f"{where}: " + "; ".join(_describe(exc))) from None

    @property
    def versions_from_time(self) -> bool:
        """True when each row's version is its time (the mapping names a time and no version)."""
        return self.version is None and self.version_column is None and self.time_column is not None

    def columns(self) -> set[str]:
        """Every column the mapping reads (to check the file's header once)."""
        names = {self.id_column.column} | {
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
        """Every qualified name must belong to the class (when the class is fixed)."""
        if self.class_name is None:
            return
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


def _allowed(loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed where an unknown key was found: a column's or the mapping's."""
    model: type[BaseModel] = Column if loc else CsvMapping
    return sorted(f.alias or name for name, f in model.model_fields.items())


def _describe(exc: ValidationError) -> list[str]:
    """Each problem once, as ``key = value: reason``; unknown keys together with the allowed ones."""
    unknown: dict[tuple[int | str, ...], list[str]] = {}
    messages: list[str] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        if error["type"] == "extra_forbidden":
            unknown.setdefault(loc[:-1], []).append(str(loc[-1]))
            continue
        key = ".".join(str(p) for p in loc)
        reason = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "value_error" and not key:
            messages.append(reason)  # a rule over several keys names them itself
        elif not key:
            messages.append(f"{error['input']!r}: {reason}")
        else:
            messages.append(f"{key} = {error['input']!r}: {reason}")
    for parent, keys in unknown.items():
        where = ".".join(str(p) for p in parent)
        messages.insert(
            0, f"{where + ': ' if where else ''}unknown key(s) {sorted(keys)}; allowed: {_allowed(parent)}"
        )
    return messages


def mapping_json_schema() -> dict[str, Any]:
    """The JSON Schema of a mapping file (draft 2020-12), as ``hub produce --mapping-schema`` prints it."""
    schema = CsvMapping.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": SCHEMA_ID, **schema}
