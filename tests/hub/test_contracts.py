"""Data contracts (hub/contracts.py): reading ODCS files, linting them against the ontology and the
producers, comparing versions, and the per-event rules the worker enforces."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.demo.network import build_network
from devstack.demo.producers import PRODUCER_CONFIG, PRODUCER_IDS
from hub.contracts import (
    Breach,
    ClassRules,
    ContractBook,
    ContractError,
    Problem,
    breaking_changes,
    compare,
    lint,
    load_contracts,
    parse_contract,
)
from hub.labels import intern, parse
from hub.producers import ProducerRegistry
from hub.validation import validate_event
from ontology.loader import load_ontology
from ontology.model import Ontology

DEMO_CONTRACTS = Path(__file__).resolve().parents[2] / "devstack" / "demo" / "contracts"


@pytest.fixture(scope="module")
def ontology() -> Ontology:
    return load_ontology()


@pytest.fixture(scope="module")
def registry() -> ProducerRegistry:
    return ProducerRegistry(PRODUCER_CONFIG)


def base() -> dict[str, Any]:
    """A small valid contract of the demo producer nggt."""
    return {
        "apiVersion": "v3.2.0",
        "kind": "DataContract",
        "id": "urn:test:contract:nggt",
        "name": "Gas network",
        "version": "1.2.0",
        "status": "active",
        "description": {"purpose": "Gas network for planners.", "limitations": "Simulated measurements."},
        "team": {"name": "Gas data", "members": [{"username": "owner@nggt", "role": "owner"}]},
        "support": [{"channel": "email", "url": "mailto:gas@nggt.example"}],
        "slaProperties": [
            {"property": "frequency", "value": 1, "unit": "m"},
            {"property": "latency", "value": 5, "unit": "min"},
        ],
        "customProperties": [
            {"property": "producer", "value": "nggt"},
            {"property": "defaultLabel", "value": "classification=OFFICIAL"},
            {"property": "maximumLabel", "value": "classification=OFFICIAL&org=nggt"},
            {"property": "licence", "value": "https://creativecommons.org/licenses/by/4.0/"},
            {"property": "sensitivity", "value": "OE-SB"},
        ],
        "schema": [
            {
                "name": "GasPipe",
                "properties": [
                    {"name": "IdentifiedObject.name", "logicalType": "string", "required": True},
                    {
                        "name": "GasPipe.length",
                        "logicalType": "number",
                        "logicalTypeOptions": {"exclusiveMinimum": 0, "maximum": 500},
                    },
                ],
            },
            {"name": "GasNode", "properties": [{"name": "GasNode.pressureMax", "logicalType": "number"}]},
            {
                "name": "OperationalLimitType",
                "properties": [
                    {
                        "name": "OperationalLimitType.direction",
                        "logicalType": "string",
                        "enum": [{"value": "high"}, {"value": "low"}],
                    }
                ],
            },
        ],
    }


def custom(doc: dict[str, Any], key: str, value: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for entry in doc["customProperties"]:
        if entry["property"] == key:
            entry["value"] = value
            return doc
    doc["customProperties"].append({"property": key, "value": value})
    return doc


def test_the_demo_ships_a_contract_per_producer_that_lints_cleanly(
    ontology: Ontology, registry: ProducerRegistry
) -> None:
    contracts = load_contracts(DEMO_CONTRACTS)
    assert sorted(contracts) == sorted(PRODUCER_IDS)
    for producer, contract in contracts.items():
        assert lint(contract, ontology, registry) == [], producer
        assert contract.sensitivity in {"OE-O", "OE-SA", "OE-SB", "OE-SP", "OE-C"}
        assert contract.licence.startswith("https://")
        assert contract.contacts and contract.owner and contract.purpose and contract.limitations
        assert contract.freshness.seconds > 0 and contract.frequency.seconds > 0
        assert contract.default_label == PRODUCER_CONFIG[producer]["default_label"]


def test_every_demo_event_keeps_its_producers_contract(ontology: Ontology) -> None:
    """The demo's own events must pass enforcement, or the demo would dead-letter its network."""
    book = ContractBook(load_contracts(DEMO_CONTRACTS), ontology)
    network = build_network(ontology)
    checked = 0
    for producer, events in network.events.items():
        enforcer = book.enforcer(producer)
        assert enforcer is not None
        for event in events:
            valid = validate_event(event.model_dump(by_alias=True, mode="json"), ontology)
            rules = enforcer.rules(valid.class_name)
            assert isinstance(rules, ClassRules), rules
            assert rules.check(valid.properties) is None
            assert rules.on_create is None or rules.on_create.missing(valid.properties) is None
            text = event.label or network.header_label(producer) or PRODUCER_CONFIG[producer]["default_label"]
            tree = parse(text)
            assert enforcer.label(intern(tree)[0], tree) is None, (producer, text)
            checked += 1
    assert checked == network.count() > 1000


def test_a_contract_is_read_with_its_hub_fields(ontology: Ontology, registry: ProducerRegistry) -> None:
    contract = parse_contract(base(), "nggt.yaml")
    assert (contract.id, contract.version, contract.producer) == ("urn:test:contract:nggt", "1.2.0", "nggt")
    assert contract.owner == "owner@nggt" and contract.contacts == ("mailto:gas@nggt.example",)
    assert contract.freshness.seconds == 300 and contract.frequency.seconds == 60
    assert contract.metadata_label == "classification=PUBLIC"
    length = contract.classes["GasPipe"].attributes["GasPipe.length"]
    assert length.bounds == {"exclusiveMinimum": 0, "maximum": 500}
    assert length.clause == "schema[GasPipe].properties[GasPipe.length]"
    assert lint(contract, ontology, registry) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("apiVersion"), r"nggt\.yaml: apiVersion: missing"),
        (lambda d: d.update(apiVersion="v2.9"), r"apiVersion: 'v2\.9' is not one of"),
        (lambda d: d.update(kind="Contract"), r"kind: must be 'DataContract'"),
        (lambda d: d.update(version="1.2"), r"version: '1\.2' is not a semantic version"),
        (lambda d: d.update(status="live"), r"status: 'live' is not one of"),
        (lambda d: d.update(colour="red"), r"colour: Extra inputs are not permitted \(ODCS\)"),
        (lambda d: d.pop("support"), r"support: names no contact"),
        (lambda d: d["description"].pop("limitations"), r"description\.limitations: must be a non-empty"),
        (lambda d: d["slaProperties"].pop(1), r"slaProperties\[latency\]: missing"),
        (lambda d: d["slaProperties"][0].update(unit="fortnight"), r"\[frequency\]\.unit: 'fortnight'"),
        (lambda d: d.update(schema=[]), r"schema: a contract promises at least one class"),
        (
            lambda d: d["schema"][0]["properties"][1]["logicalTypeOptions"].update(maximum="big"),
            r"schema\[GasPipe\]\.properties\[GasPipe\.length\]\.logicalTypeOptions\.maximum: "
            "must be a finite",
        ),
    ],
)
def test_a_file_that_is_not_a_contract_is_refused_naming_the_clause(change: Any, message: str) -> None:
    doc = base()
    change(doc)
    with pytest.raises(ContractError, match=message):
        parse_contract(doc, "nggt.yaml")


def lint_messages(doc: dict[str, Any], ontology: Ontology, registry: ProducerRegistry) -> list[str]:
    return [f"{p.clause}: {p.message}" for p in lint(parse_contract(doc, "c.yaml"), ontology, registry)]


def test_lint_names_each_clause_that_does_not_fit_the_ontology(
    ontology: Ontology, registry: ProducerRegistry
) -> None:
    doc = base()
    doc["schema"].append({"name": "Unicorn"})
    props = doc["schema"][0]["properties"]
    props.append({"name": "GasPipe.colour", "logicalType": "string"})
    props.append({"name": "GasPipe.diameter", "logicalType": "integer"})
    props.append(
        {
            "name": "IdentifiedObject.description",
            "logicalType": "string",
            "logicalTypeOptions": {"minimum": 1},
        }
    )
    doc["schema"][1]["properties"].append(
        {
            "name": "GasNode.pressureMin",
            "logicalType": "number",
            "logicalTypeOptions": {"minimum": 5, "maximum": 1},
        }
    )
    doc["schema"][2]["properties"][0]["enum"].append({"value": "sideways"})
    messages = lint_messages(doc, ontology, registry)
    assert messages == [
        "schema[GasPipe].properties[GasPipe.colour]: 'GasPipe.colour' is not an attribute of GasPipe or its "
        "superclasses",
        "schema[GasPipe].properties[GasPipe.diameter].logicalType: 'integer' does not fit GasPipe.diameter "
        "(float): use ['number']",
        "schema[GasPipe].properties[IdentifiedObject.description].logicalTypeOptions: a numeric range on "
        "IdentifiedObject.description, which is string",
        "schema[GasNode].properties[GasNode.pressureMin].logicalTypeOptions: empty range: 5.0 > 1.0",
        "schema[OperationalLimitType].properties[OperationalLimitType.direction].enum: ['sideways'] are not "
        "literals of OperationalLimitDirectionKind (OperationalLimitType.direction)",
        "schema[Unicorn]: class 'Unicorn' is not in the ontology",
    ]


def test_lint_checks_labels_against_the_producer(ontology: Ontology, registry: ProducerRegistry) -> None:
    # nggt is cleared OFFICIAL-SENSITIVE and is org=nggt: it cannot assign a SECRET or another org's label.
    assert lint_messages(custom(base(), "maximumLabel", "classification=SECRET"), ontology, registry) == [
        "customProperties.maximumLabel: 'classification=SECRET' is beyond producer 'nggt''s clearance "
        "(org=nggt, clearance=OFFICIAL-SENSITIVE): it could not assign it"
    ]
    assert lint_messages(custom(base(), "maximumLabel", "org=ngt&(x"), ontology, registry)[0].startswith(
        "customProperties.maximumLabel: 'org=ngt&(x' is not a valid label"
    )
    assert lint_messages(custom(base(), "defaultLabel", "org=nggt"), ontology, registry) == [
        "customProperties.defaultLabel: 'org=nggt' is not producer 'nggt''s configured default label "
        "'classification=OFFICIAL'"
    ]
    # A default more restrictive than the maximum: someone who may see everything could not see it.
    narrow = custom(base(), "maximumLabel", "classification=PUBLIC")
    assert lint_messages(narrow, ontology, registry) == [
        "customProperties.defaultLabel: 'classification=OFFICIAL' is more restrictive than maximumLabel "
        "'classification=PUBLIC'"
    ]
    assert lint_messages(custom(base(), "producer", "acme"), ontology, registry) == [
        "customProperties.producer: producer 'acme' is not configured (HUB_PRODUCERS names ['dno', 'genco', "
        "'neso', 'nggt', 'ngt'])"
    ]
    assert lint_messages(custom(base(), "sensitivity", "secret-ish"), ontology, registry) == [
        "customProperties.sensitivity: 'secret-ish' is not one of ('OE-O', 'OE-SA', 'OE-SB', 'OE-SP', 'OE-C')"
    ]
    assert lint_messages(custom(base(), "licence", "CC-BY"), ontology, registry) == [
        "customProperties.licence: 'CC-BY' is not an http(s) URL"
    ]


def versions(change: Any, version: str = "1.3.0") -> tuple[Any, Any]:
    old = base()
    new = copy.deepcopy(old)
    change(new)
    new["version"] = version
    return parse_contract(old, "old.yaml"), parse_contract(new, "new.yaml")


def pipe(doc: dict[str, Any]) -> list[dict[str, Any]]:
    props: list[dict[str, Any]] = doc["schema"][0]["properties"]
    return props


@pytest.mark.parametrize(
    ("change", "clause", "message"),
    [
        (lambda d: d["schema"].pop(1), "schema[GasNode]", "class 'GasNode' was removed"),
        (
            lambda d: pipe(d).pop(1),
            "schema[GasPipe].properties[GasPipe.length]",
            "attribute 'GasPipe.length' of GasPipe was removed",
        ),
        (
            lambda d: pipe(d)[1].update(logicalType="integer"),
            "schema[GasPipe].properties[GasPipe.length].logicalType",
            "type changed from 'number' to 'integer'",
        ),
        (
            lambda d: pipe(d)[1]["logicalTypeOptions"].update(maximum=400),
            "schema[GasPipe].properties[GasPipe.length].logicalTypeOptions.maximum",
            "tightened from <= 500 to <= 400",
        ),
        (
            lambda d: pipe(d)[1]["logicalTypeOptions"].update(minimum=1),
            "schema[GasPipe].properties[GasPipe.length].logicalTypeOptions.minimum",
            "tightened from > 0 to >= 1",
        ),
        (
            lambda d: d["schema"][1]["properties"][0].update(logicalTypeOptions={"maximum": 100}),
            "schema[GasNode].properties[GasNode.pressureMax].logicalTypeOptions.maximum",
            "a bound maximum=100 was added",
        ),
        (
            lambda d: pipe(d)[1].update(required=True),
            "schema[GasPipe].properties[GasPipe.length].required",
            "GasPipe.length became required",
        ),
        (
            lambda d: pipe(d).append(
                {"name": "GasPipe.roughness", "logicalType": "number", "required": True}
            ),
            "schema[GasPipe].properties[GasPipe.roughness]",
            "GasPipe.roughness was added as required",
        ),
        (
            lambda d: d["schema"][2]["properties"][0]["enum"].pop(),
            "schema[OperationalLimitType].properties[OperationalLimitType.direction].enum",
            "values ['low'] are no longer allowed",
        ),
        (
            lambda d: d["schema"][1]["properties"][0].update(enum=[{"value": "x"}]),
            "schema[GasNode].properties[GasNode.pressureMax].enum",
            "an enumeration was added",
        ),
        (
            lambda d: d.update(custom(d, "maximumLabel", "classification=OFFICIAL-SENSITIVE&org=nggt")),
            "customProperties.maximumLabel",
            "tightened from 'classification=OFFICIAL&org=nggt' to",
        ),
    ],
)
def test_each_breaking_change_is_named(change: Any, clause: str, message: str) -> None:
    old, new = versions(change)
    found = breaking_changes(old, new)
    assert [p.clause for p in found] == [clause]
    assert message in found[0].message
    # A minor version may not make it; a new major version may.
    refused = compare({"nggt": old}, {"nggt": new})
    assert [p.clause for p in refused] == [clause]
    assert (
        "a breaking change needs a new major version (from 1.2.0 to 2.0.0), not 1.3.0" in refused[0].message
    )
    assert compare({"nggt": old}, {"nggt": versions(change, "2.0.0")[1]}) == []


def test_compatible_changes_need_no_major_version() -> None:
    def widen(d: dict[str, Any]) -> None:
        pipe(d)[1]["logicalTypeOptions"] = {"minimum": 0}  # looser: exclusive 0 and max 500 dropped
        pipe(d).append({"name": "GasPipe.roughness", "logicalType": "number"})
        d["schema"].append({"name": "GasSource"})
        d["schema"][2]["properties"][0]["enum"].append({"value": "absoluteValue"})
        d.update(custom(d, "maximumLabel", "classification=OFFICIAL&(org=nggt|org=neso)"))

    old, new = versions(widen)
    assert breaking_changes(old, new) == []
    assert compare({"nggt": old}, {"nggt": new}) == []


def test_versions_only_move_forward_and_a_change_needs_a_new_one() -> None:
    old, same = versions(lambda d: d["description"].update(purpose="Changed."), "1.2.0")
    assert compare({"nggt": old}, {"nggt": same}) == [
        Problem("new.yaml", "version", "the contract changed but its version is still 1.2.0")
    ]
    assert compare({"nggt": old}, {"nggt": parse_contract(base(), "same.yaml")}) == []
    _, older = versions(lambda d: None, "1.1.9")
    assert compare({"nggt": old}, {"nggt": older}) == [
        Problem("new.yaml", "version", "1.1.9 is older than 1.2.0")
    ]
    _, pre = versions(lambda d: None, "1.2.0-rc.1")
    assert [p.message for p in compare({"nggt": old}, {"nggt": pre})] == ["1.2.0-rc.1 is older than 1.2.0"]
    assert [p.message for p in compare({"nggt": old}, {})] == [
        "the contract of producer 'nggt' (urn:test:contract:nggt) was removed"
    ]


def test_the_rules_of_a_class_fold_in_its_promised_ancestors(ontology: Ontology) -> None:
    contract = parse_contract(base(), "nggt.yaml")
    enforcer = ContractBook({"nggt": contract}, ontology).enforcer("nggt")
    assert enforcer is not None
    # GasSink is a GasNode: promised through its superclass.
    sink = enforcer.rules("GasSink")
    assert isinstance(sink, ClassRules) and sink.on_create is None
    refused = enforcer.rules("GasMeasurement")
    assert isinstance(refused, Breach) and refused.clause == "schema"
    assert "class GasMeasurement is not promised by the contract" in refused.reason
    rules = enforcer.rules("GasPipe")
    assert isinstance(rules, ClassRules)
    assert rules.check({"length": 12.5, "name": "p1"}) is None
    assert rules.check({"other": -1}) is None  # attributes not named are the ontology's business
    zero = rules.check({"length": 0.0})
    assert zero is not None and zero.clause.endswith("[GasPipe.length].logicalTypeOptions.exclusiveMinimum")
    assert zero.reason == (
        "contract: GasPipe.length = 0.0 is below 0 (contract urn:test:contract:nggt 1.2.0, clause "
        "schema[GasPipe].properties[GasPipe.length].logicalTypeOptions.exclusiveMinimum)"
    )
    assert dict(zero.headers) == {
        "contract-id": b"urn:test:contract:nggt",
        "contract-version": b"1.2.0",
        "contract-clause": zero.clause.encode(),
    }
    big = rules.check({"length": 500.5})
    assert big is not None and big.clause.endswith("logicalTypeOptions.maximum")
    assert rules.check({"length": 500}) is None
    removed = rules.check({"name": None})
    assert (
        removed is not None and removed.clause == "schema[GasPipe].properties[IdentifiedObject.name].required"
    )
    assert rules.on_create is not None
    assert rules.on_create.missing({"length": 3.0}) == Breach(
        "urn:test:contract:nggt",
        "1.2.0",
        "schema[GasPipe].properties[IdentifiedObject.name].required",
        "IdentifiedObject.name is required and missing from the upsert that creates the object",
    )
    direction = enforcer.rules("OperationalLimitType")
    assert isinstance(direction, ClassRules)
    assert direction.check({"direction": "high"}) is None
    wrong = direction.check({"direction": "absoluteValue"})
    assert wrong is not None and "not one of ['high', 'low']" in wrong.message


def test_a_label_above_the_maximum_breaks_the_contract(ontology: Ontology) -> None:
    enforcer = ContractBook({"nggt": parse_contract(base(), "nggt.yaml")}, ontology).enforcer("nggt")
    assert enforcer is not None
    for text in ("classification=PUBLIC", "classification=OFFICIAL", "org=nggt|org=neso", "org=nggt"):
        tree = parse(text)
        assert enforcer.label(intern(tree)[0], tree) is None, text
    for text in ("classification=OFFICIAL-SENSITIVE", "org=neso", "org=nggt&role=planner"):
        tree = parse(text)
        breach = enforcer.label(intern(tree)[0], tree)
        assert breach is not None and breach.clause == "customProperties.maximumLabel", text


def test_a_folder_with_two_contracts_for_one_producer_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(base()))
    other = base()
    other["id"] = "urn:test:contract:other"
    (tmp_path / "b.yml").write_text(yaml.safe_dump(other))
    with pytest.raises(ContractError, match=r"b\.yml: customProperties\.producer: producer 'nggt' already"):
        load_contracts(tmp_path)
    (tmp_path / "b.yml").write_text("{not: [yaml")
    with pytest.raises(ContractError, match=r"b\.yml: cannot be read as YAML"):
        load_contracts(tmp_path)
    with pytest.raises(ContractError, match="contracts folder does not exist"):
        load_contracts(tmp_path / "missing")
