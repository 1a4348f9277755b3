"""The exported schema and the named operations: the checked-in SDL matches what the ontology generates,
every operation in graphql/operations is valid against it, and each one runs against the live API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import websockets
from graphkit import Api, Obj, Rel
from hubql.schema import SCHEMA_FILE, export_sdl

from graphql import GraphQLSchema, OperationDefinitionNode, build_schema, parse, validate
from ontology.loader import load_ontology

OPERATIONS = sorted((Path(SCHEMA_FILE).parent / "operations").glob("*.graphql"))


@cache
def checked_in() -> GraphQLSchema:
    return build_schema(SCHEMA_FILE.read_text(encoding="utf-8"))


def test_schema_file_is_up_to_date() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == export_sdl(), (
        "graphql/schema.graphql is stale: run `hub schema export`"
    )


def test_with_descriptions_untrimmed_the_schema_differs_only_in_descriptions() -> None:
    # HUB_API_TRIM_INHERITED_DESCRIPTIONS=false: Strawberry's schema as it builds it (no edit through
    # Schema._schema); the same types, fields and arguments, inherited descriptions repeated.
    from hub.settings import Settings

    untrimmed = build_schema(export_sdl(Settings(api_trim_inherited_descriptions=False)))
    trimmed = checked_in()

    def shape(schema: GraphQLSchema) -> dict[str, Any]:
        return {
            name: sorted(
                (f, str(field.type), sorted(getattr(field, "args", {})))
                for f, field in getattr(t, "fields", {}).items()
            )
            for name, t in schema.type_map.items()
        }

    def described(schema: GraphQLSchema) -> int:
        return sum(
            1
            for t in schema.type_map.values()
            for field in getattr(t, "fields", {}).values()
            if field.description
        )

    assert shape(untrimmed) == shape(trimmed)
    assert described(untrimmed) > described(trimmed) > 0


def test_every_class_is_queryable() -> None:
    schema = checked_in()
    ontology = load_ontology()
    for name in ontology.classes:
        assert name in schema.type_map, name
        if len(ontology.descendants(name)) > 1:
            assert f"{name}Instance" in schema.type_map, name
    conducting = schema.get_possible_types(schema.type_map["ConductingEquipment"])  # type: ignore[arg-type]
    assert {"ACLineSegment", "Breaker", "PowerTransformer", "SwitchInstance"} <= {t.name for t in conducting}


@pytest.mark.parametrize("path", OPERATIONS, ids=[p.stem for p in OPERATIONS])
def test_operation_is_valid(path: Path) -> None:
    schema = checked_in()
    document = parse(path.read_text(encoding="utf-8"))
    assert validate(schema, document) == []
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    assert len(ops) == 1 and ops[0].name is not None and ops[0].name.value == path.stem


@pytest.mark.services
def test_operations_run_against_the_api(
    api: Api, run_id: str, graph_writer: Callable[[list[Obj], list[Rel]], None]
) -> None:
    ont = load_ontology()

    def rel(qname: str) -> str:
        assoc = ont.association_by_qname(qname)
        assert assoc is not None
        return assoc.rel_type

    p = f"{run_id}-"
    graph_writer(
        [
            Obj(p + "sub", "Substation", "classification=PUBLIC", f"Sub {run_id}", x=0.5, y=51.0),
            Obj(p + "vl", "VoltageLevel", "classification=PUBLIC", f"VL {run_id}"),
            Obj(p + "bv", "BaseVoltage", "classification=PUBLIC", "400 kV", {"nominalVoltage": 400.0}),
            Obj(p + "bay", "Bay", "classification=PUBLIC", f"Bay {run_id}"),
            Obj(p + "brk", "Breaker", "classification=PUBLIC", f"Breaker {run_id}", {"open": False}),
            Obj(
                p + "gu",
                "ThermalGeneratingUnit",
                "classification=PUBLIC",
                f"CCGT {run_id}",
                {"maxOperatingP": 300.0},
            ),
            Obj(p + "off", "GasOfftake", "classification=PUBLIC", f"Offtake {run_id}"),
            Obj(p + "node", "GasInnerNode", "classification=PUBLIC", f"Node {run_id}", x=1.0, y=52.0),
        ],
        [
            Rel(p + "vl", rel("VoltageLevel.Substation"), p + "sub"),
            Rel(p + "vl", rel("VoltageLevel.BaseVoltage"), p + "bv"),
            Rel(p + "bay", rel("Bay.VoltageLevel"), p + "vl"),
            Rel(p + "brk", rel("Equipment.EquipmentContainer"), p + "bay"),
            Rel(p + "off", rel("GasOfftake.Node"), p + "node"),
            Rel(p + "off", rel("GasOfftake.GeneratingUnits"), p + "gu"),
        ],
    )
    token = api.token("ops", "ngt", "OFFICIAL")
    # A scenario of the caller's own, with nothing published into it, for Compare.
    made = api.query(
        """mutation($n: String!) {
          createScenario(name: $n, label: "classification=PUBLIC", producers: []) { id } }""",
        {"n": f"Scenario {run_id}"},
        token=token,
    )
    assert "errors" not in made, made
    scenario = made["data"]["createScenario"]["id"]
    variables: dict[str, dict[str, Any]] = {
        "Search": {"text": run_id},
        "ObjectDetail": {"mrid": p + "brk"},
        "ObjectHistory": {"mrid": p + "brk"},
        "ObjectsPage": {"className": "EquipmentContainer", "name": run_id, "first": 2},
        "Neighbourhood": {"mrid": p + "vl", "depth": 2},
        "ShortestPath": {"from": p + "brk", "to": p + "sub", "via": "ANY"},
        "Containment": {"mrid": p + "sub", "depth": 3},
        "Dependencies": {"mrid": p + "node"},
        "SubstationTree": {"mrid": p + "sub"},
        "SubstationDiagram": {"mrid": p + "vl"},
        "GasFiredGeneration": {"first": 50},
        "Counts": {"domain": "GAS"},
        "MeasurementHistory": {"mrid": p + "brk", "maxPoints": 200},
        "DataProductPage": {"id": run_id},
        "RelationsAmong": {"mrids": [p + "brk", p + "bay", p + "vl"]},
        "ClassPage": {"className": "EquipmentContainer", "first": 2},
        "PlacesAndRelations": {"mrids": [p + "brk", p + "bay", p + "vl", p + "sub"]},
        "Compare": {"scenario": scenario},
    }
    for path in OPERATIONS:
        text = path.read_text(encoding="utf-8")
        if text.lstrip("# \n").startswith("subscription") or "\nsubscription " in text:
            asyncio.run(_subscribe_briefly(api, token, text))
            continue
        if "\nmutation " in text:
            # The access page's decisions: run in order by tests/frontend/test_access.py.
            continue
        body = api.query(text, variables.get(path.stem, {}), token=token, operation_name=path.stem)
        assert "errors" not in body, (path.stem, body)
        assert body["data"], path.stem
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        tree = api.query(
            (Path(SCHEMA_FILE).parent / "operations" / "SubstationTree.graphql").read_text(),
            variables["SubstationTree"],
            token=token,
        )["data"]["object"]
    # Three levels of associations under the substation, fetched with the substation in one query.
    audit = [e for e in logs if e["event"] == "graphql operation"]
    assert audit[-1]["queries"] == 1 and audit[-1]["rows"] >= 4
    vl = tree["voltageLevels"][0]
    assert vl["baseVoltage"] == {"nominalVoltage": 400.0}
    assert vl["bays"][0]["equipments"] == [
        {
            "mrid": p + "brk",
            "className": "Breaker",
            "name": f"Breaker {run_id}",
            "open": False,
            "normalOpen": None,
        }
    ]


async def _subscribe_briefly(api: Api, token: str, text: str) -> None:
    async with websockets.connect(
        api.ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
    ) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(
            json.dumps(
                {"id": "1", "type": "subscribe", "payload": {"query": text, "variables": {"domain": "GAS"}}}
            )
        )
        # A valid subscription stays open and silent until a change arrives; an invalid one errors at once.
        with pytest.raises(TimeoutError):
            msg = await asyncio.wait_for(ws.recv(), 2.0)
            raise AssertionError(f"unexpected message {msg!r}")
