"""Renders ``docs/csv-mapping.md``, the reference of the CSV mapping format, from the model that validates it.

The key tables come from the JSON Schema of :class:`ingest.csv_mapping.CsvMapping`; every example is run
through the real converter when the page is rendered, so the events the page shows are the events the hub
makes. ``python -m ingest.csv_mapping_docs`` rewrites the page; ``--check`` exits with status 1 when the page
differs from what the model renders (a test runs it, so the page cannot go stale).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ingest.csv_adapter import CsvAdapter, CsvStats
from ingest.csv_mapping import CsvMapping, mapping_json_schema

DOC = Path(__file__).resolve().parents[1] / "docs" / "csv-mapping.md"
# Examples without a time column take the time the file is read; the page shows a fixed one.
EXAMPLE_TIME = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
EXAMPLE_SOURCE = "dno"


@dataclass(frozen=True)
class Example:
    """One feature of the format: a mapping, a CSV file it reads, and what the page says about them."""

    title: str
    text: str
    mapping: dict[str, Any]
    csv: str

    def load(self) -> CsvMapping:
        # From the YAML the page shows, so what a reader copies is what was checked.
        return CsvMapping.from_dict(yaml.safe_load(self.mapping_yaml()), where=self.title)

    def mapping_yaml(self) -> str:
        return yaml.safe_dump(self.mapping, sort_keys=False, allow_unicode=True)

    def events(self, ontology: Any | None = None) -> tuple[list[Any], CsvStats]:
        """The events the example's file becomes, and what the converter reported."""
        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder) / "example.csv"
            target.write_text(self.csv, encoding="utf-8")
            adapter = CsvAdapter(
                self.load(), source=EXAMPLE_SOURCE, ontology=ontology, time=EXAMPLE_TIME, version=None
            )
            events = list(adapter.convert(target))
        return events, adapter.stats


EXAMPLES: tuple[Example, ...] = (
    Example(
        "An asset register: one class, mRIDs with a prefix, attributes from columns",
        "Every row is an `EnergyConsumer`; `mrid` names the column with the id and `prefix` puts the "
        "ids into the producer's mRID range. A bare column name is the short form of `{column: NAME}`. "
        "`version` gives every row the same version.",
        {
            "class": "EnergyConsumer",
            "mrid": {"column": "id", "prefix": "dno-"},
            "version": 3,
            "attributes": {"IdentifiedObject.name": "name", "Equipment.inService": "in_service"},
        },
        "id,name,in_service\nld-1,Harbour feeder,true\nld-2,Mill lane,false\n",
    ),
    Example(
        "Units and constants: `scale` and `value`",
        "`scale` multiplies a number (kW in the file, MW in the ontology); `value` gives every row the "
        "same constant instead of reading a column. An empty cell leaves the attribute out.",
        {
            "class": "EnergyConsumer",
            "mrid": {"column": "id", "prefix": "dno-"},
            "version": 3,
            "attributes": {
                "EnergyConsumer.p": {"column": "p_kw", "scale": 0.001},
                "EnergyConsumer.q": {"column": "q_kvar", "scale": 0.001},
                "IdentifiedObject.description": {"value": "from the asset register"},
            },
        },
        "id,p_kw,q_kvar\nld-1,1250,300\nld-2,800,\n",
    ),
    Example(
        "References: one target, or several with `separator`",
        "A reference names the target's mRID; `prefix` works as for the mRID. An association that "
        "takes several targets reads them from one cell split at `separator`.",
        {
            "class": "GasOfftake",
            "mrid": {"column": "offtake", "prefix": "nggt-"},
            "version": 1,
            "attributes": {"IdentifiedObject.name": "name"},
            "references": {
                "GasOfftake.Node": {"column": "node", "prefix": "gaslib-40."},
                "GasOfftake.GeneratingUnits": {"column": "units", "prefix": "genco-", "separator": ";"},
            },
        },
        "offtake,name,node,units\not-1,Offtake north,sink_28,unit-a;unit-b\n",
    ),
    Example(
        "Classes and event types from columns: `class_column`, `type_column`",
        "One file can hold several classes and event types: `class_column` names each row's class, "
        "`type_column` its event type (`upsert`, `measurement` or `delete`). A row naming an unknown "
        "class or type is skipped and reported with its line, column and value.",
        {
            "mrid": "mrid",
            "class_column": "kind",
            "type_column": "what",
            "version_column": "rev",
            "attributes": {"Switch.open": "open"},
        },
        "mrid,kind,what,open,rev\nsw-1,Breaker,measurement,true,4\nsw-2,Disconnector,measurement,false,4\n",
    ),
    Example(
        "Versions: one for the file, one per row, or from each row's time",
        "`version` gives every row one version and `version_column` each row its own. With neither, a "
        "`time_column` gives each row the version of its time (microseconds since 1970-01-01T00:00:00Z): "
        "of several readings of one object the latest wins in the graph, whatever the order of the rows. "
        "Without any of the three, `hub produce --version` (default: now) applies.",
        {
            "class": "EnergyConsumer",
            "type": "measurement",
            "mrid": {"column": "meter", "prefix": "dno-"},
            "time_column": "at",
            "attributes": {"EnergyConsumer.p": {"column": "p_kw", "scale": 0.001}},
        },
        "meter,p_kw,at\nld-1,1300,2024-05-01T11:00:00Z\nld-1,1250,2024-05-01T10:45:00Z\n",
    ),
    Example(
        "Security labels: `label` or `label_column`",
        "`label` labels every row's object and `label_column` each row's; a label is checked when the "
        "mapping is read. Without either the producer's default label applies (or "
        "`hub produce --label`).",
        {
            "class": "EnergyConsumer",
            "mrid": {"column": "id", "prefix": "dno-"},
            "version": 3,
            "label_column": "label",
            "attributes": {"IdentifiedObject.name": "name"},
        },
        "id,name,label\nld-1,Harbour feeder,classification=PUBLIC\nld-2,Hospital,org=dno|org=neso\n",
    ),
    Example(
        "Another delimiter: `delimiter`",
        "Spreadsheets saved with a comma as the decimal mark separate cells with `;`.",
        {
            "class": "EnergyConsumer",
            "mrid": {"column": "id", "prefix": "dno-"},
            "version": 3,
            "delimiter": ";",
            "attributes": {"IdentifiedObject.name": "name"},
        },
        "id;name\nld-1;Harbour feeder, east\n",
    ),
)


def _type_text(prop: dict[str, Any]) -> str:
    """A property's JSON Schema type in a few words (`string`, `integer ≥ 1`, `column`, ...)."""
    if "anyOf" in prop:
        parts = [_type_text(p) for p in prop["anyOf"] if p.get("type") != "null"]
        return " or ".join(dict.fromkeys(parts))
    if "$ref" in prop:
        return "column (object)"
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    kind = prop.get("type", "any")
    if kind == "object" and "additionalProperties" in prop:
        return f"map of qualified name to {_type_text(prop['additionalProperties'])}"
    if prop.get("maxLength") == 1:
        return "one character"
    if "minimum" in prop:
        return f"{kind} ≥ {prop['minimum']}"
    return str(kind)


def _default_text(prop: dict[str, Any]) -> str:
    if "default" not in prop or prop["default"] is None:
        return ""
    return f"`{json.dumps(prop['default'])}`"


def _table(schema: dict[str, Any]) -> list[str]:
    rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, prop in schema["properties"].items():
        description = " ".join(str(prop.get("description", "")).split()).replace("|", "\\|")
        rows.append(f"| `{name}` | {_type_text(prop)} | {_default_text(prop)} | {description} |")
    return rows


def _event_line(event: Any) -> str:
    body = event.to_json_dict()
    keys = ("subject", "class", "type", "version", "attributes", "references", "label")
    shown = {k: body.get(k) for k in keys}
    return json.dumps({k: v for k, v in shown.items() if v not in (None, {})}, ensure_ascii=False)


def render(ontology: Any | None = None) -> str:
    """The page, from the model's JSON Schema and the examples run through the converter."""
    schema = mapping_json_schema()
    column = schema["$defs"]["Column"]
    lines = [
        "# The CSV mapping format",
        "",
        "<!-- Generated by `python -m ingest.csv_mapping_docs` from ingest/csv_mapping.py; do not edit. -->",
        "",
        "`hub produce FILE.csv --mapping MAPPING.yaml -p PRODUCER` turns each row of a CSV file into one hub "
        "event. The mapping (YAML or JSON) says which column holds the mRID, which ontology class the rows "
        "are, and which column feeds which attribute or reference, named by its CIM qualified name "
        "(`Class.attribute`; `hub schema export` lists them). It is validated when it is read: an unknown "
        "key, a value of the wrong kind or a name that is not an attribute or association of the class is "
        "an error naming the key and the value, before any row is read. A row that cannot become an event "
        "is skipped and reported with its line, column and value; the other rows still go through.",
        "",
        "`hub produce --mapping-schema` prints the format's JSON Schema (draft 2020-12); editors that read "
        "JSON Schema complete and check mapping files with it.",
        "",
        "## Keys of a mapping",
        "",
        " ".join(str(schema.get("description", "")).split())
        + " Give exactly one of `mrid` and `mrid_column`, and exactly one of `class` and `class_column`.",
        "",
        *_table(schema),
        "",
        "## A column",
        "",
        "Where an attribute, a reference or the mRID comes from: a column name (`name`), or an object. "
        "Give exactly one of `column` and `value`.",
        "",
        *_table(column),
        "",
        "## Examples",
        "",
        "Each example is checked by the hub's tests: the mapping is valid, every row becomes an event the "
        f"ontology accepts, and the events below are what the converter makes of the file (producer "
        f"`{EXAMPLE_SOURCE}`; shown without `id` and `time`).",
    ]
    for example in EXAMPLES:
        events, _stats = example.events(ontology)
        lines += [
            "",
            f"### {example.title}",
            "",
            example.text,
            "",
            "```yaml",
            example.mapping_yaml().rstrip("\n"),
            "```",
            "",
            "```csv",
            example.csv.rstrip("\n"),
            "```",
            "",
            "becomes",
            "",
            "```json",
            *(_event_line(e) for e in events),
            "```",
        ]
    lines += [
        "",
        "## JSON Schema",
        "",
        "```json",
        json.dumps(schema, indent=2, ensure_ascii=False),
        "```",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render docs/csv-mapping.md from the mapping model.")
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is not what is rendered")
    parser.add_argument("--output", type=Path, default=DOC, help="the page (default: %(default)s)")
    args = parser.parse_args(argv)
    page = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != page:
            print(f"{args.output} is stale: run python -m ingest.csv_mapping_docs", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(page, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
