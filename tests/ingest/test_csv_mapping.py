"""The CSV mapping format: the model validates mapping files; its page and schema are generated from it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from hub.validation import validate_event
from ingest.csv_mapping import CsvMapping, MappingError, mapping_json_schema
from ingest.csv_mapping_docs import DOC, EXAMPLES, Example, main, render
from ontology.loader import load_ontology
from ontology.model import Ontology


@pytest.fixture(scope="module")
def ontology() -> Ontology:
    return load_ontology()


def test_the_page_is_what_the_model_renders(tmp_path: Path) -> None:
    # `--check` is what keeps the page current: it passes on the committed page, fails on any other.
    assert main(["--check"]) == 0
    assert DOC.read_text(encoding="utf-8") == render()
    stale = tmp_path / "csv-mapping.md"
    stale.write_text(DOC.read_text(encoding="utf-8").replace("`scale`", "`factor`"), encoding="utf-8")
    assert main(["--check", "--output", str(stale)]) == 1
    assert main(["--output", str(stale)]) == 0
    assert main(["--check", "--output", str(stale)]) == 0


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.title.split(":")[0])
def test_each_example_is_valid_and_every_row_becomes_an_accepted_event(
    example: Example, ontology: Ontology
) -> None:
    mapping = example.load()
    mapping.check(ontology)
    rows = list(csv.DictReader(io.StringIO(example.csv), delimiter=mapping.delimiter))
    events, stats = example.events(ontology)
    assert stats.skipped == 0, [str(e) for e in stats.errors]
    assert len(events) == len(rows) > 0
    for event, row in zip(events, rows, strict=True):
        assert event.subject == mapping.id_column.prefix + row[mapping.id_column.column or ""]
        validate_event(event.to_json_dict(), ontology)
    # The page shows these very events.
    page = DOC.read_text(encoding="utf-8")
    assert example.mapping_yaml() in page
    for event in events:
        assert f'"subject": "{event.subject}"' in page


def test_the_examples_cover_every_key_of_the_format() -> None:
    schema = mapping_json_schema()
    used: set[str] = set()
    column_keys: set[str] = set()
    for example in EXAMPLES:
        used |= set(example.mapping)
        for spec in (*example.mapping.get("attributes", {}).values(), example.mapping.get("mrid")):
            if isinstance(spec, dict):
                column_keys |= set(spec)
        for spec in example.mapping.get("references", {}).values():
            if isinstance(spec, dict):
                column_keys |= set(spec)
    # mrid_column is the older spelling of mrid, and label the constant form of label_column.
    assert set(schema["properties"]) - used <= {"mrid_column", "label"}
    assert column_keys == set(schema["$defs"]["Column"]["properties"])


def test_the_schema_is_the_models_and_names_the_rules(ontology: Ontology) -> None:
    schema = mapping_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert {f.alias or name for name, f in CsvMapping.model_fields.items()} == set(schema["properties"])
    assert schema["properties"]["type"]["enum"] == ["upsert", "measurement", "delete"]
    assert {"required": ["class"]} in schema["allOf"][1]["oneOf"]
    # A column is a name or the full form, wherever one is expected.
    assert {"type": "string"} in schema["properties"]["mrid"]["anyOf"]
    attribute = schema["properties"]["attributes"]["additionalProperties"]
    assert {"type": "string"} in attribute["anyOf"] and {"$ref": "#/$defs/Column"} in attribute["anyOf"]


def test_hub_produce_prints_the_schema_and_points_to_the_page() -> None:
    from hubcli.main import app

    printed = CliRunner().invoke(app, ["produce", "--mapping-schema"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.stdout) == mapping_json_schema()
    helped = CliRunner().invoke(app, ["produce", "--help"], env={"COLUMNS": "200"})
    assert "docs/csv-mapping.md" in helped.output and "--mapping-schema" in helped.output
    readme = (DOC.parents[1] / "README.md").read_text(encoding="utf-8")
    assert "(docs/csv-mapping.md)" in readme


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"class": "X", "mrid": "id", "colour": "blue"}, "unknown key(s) ['colour']; allowed: ['attributes'"),
        (
            {"class": "X", "mrid": {"column": "id", "colour": "blue"}},
            "mrid: unknown key(s) ['colour']; allowed: ['column', 'prefix', 'scale', 'separator', 'value']",
        ),
        ({"class": "X", "mrid": "id", "type": "replace"}, "type = 'replace': Input should be"),
        ({"class": "X", "mrid": "id", "version": True}, "version = True"),
        ({"class": "X", "mrid": "id", "version": 0}, "version = 0: Input should be greater than or equal"),
        ({"class": "X", "mrid": "id", "delimiter": ";;"}, "delimiter = ';;'"),
        ({"class": "X", "mrid": "id", "label": "a|b&c"}, "label = 'a|b&c': not a label expression"),
        ({"class": "X", "mrid": {"value": "x"}}, "mrid must name a column, got a constant 'x'"),
        ({"mrid": "id"}, "give exactly one of 'class' and 'class_column'"),
        ({"class": "X", "mrid": "id", "mrid_column": "id"}, "give exactly one of 'mrid' and 'mrid_column'"),
        ({"class": "X", "mrid": "id", "attributes": ["a"]}, "attributes = ['a']"),
        (
            {"class": "X", "mrid": "id", "attributes": {"A.b": {"column": "c", "scale": "1k"}}},
            "attributes.A.b.scale = '1k'",
        ),
        (
            {"class": "X", "mrid": "id", "references": {"A.b": {"column": "c", "value": "d"}}},
            "give exactly one of 'column' and 'value'",
        ),
        ({"class": "X", "mrid": "id", "attributes": {"A.b": ""}}, "attributes.A.b.column = ''"),
        ("class: X", "must be a mapping of keys to values, got str"),
    ],
)
def test_errors_name_the_key_and_the_value(data: Any, message: str) -> None:
    with pytest.raises(MappingError) as caught:
        CsvMapping.from_dict(data, where="m.yaml")
    assert str(caught.value).startswith("m.yaml: ")
    assert message in str(caught.value)


def test_short_and_older_spellings_mean_the_same(tmp_path: Path) -> None:
    short = CsvMapping.from_dict({"class": "EnergyConsumer", "mrid": "id", "attributes": None})
    older = CsvMapping.from_dict({"class": "EnergyConsumer", "mrid_column": "id", "time_column": None})
    full = CsvMapping.from_dict({"class": "EnergyConsumer", "mrid": {"column": "id"}, "attributes": {}})
    assert short.id_column == older.id_column == full.id_column
    assert short.attributes == {} and older.time_column is None
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"class": "EnergyConsumer", "mrid": "id", "version": 2}), encoding="utf-8")
    assert CsvMapping.load(path).version == 2
    path.write_text(yaml.safe_dump({"class": "EnergyConsumer", "mrid": "id"}), encoding="utf-8")
    with pytest.raises(MappingError, match="is not valid YAML/JSON"):
        CsvMapping.load(path)
